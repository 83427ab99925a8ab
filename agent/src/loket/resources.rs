//! The one table of Loket resources the client reads: path template, Loket activity
//! (`operationId`) and the pinned resource version sent in `Accept`.
//!
//! Contract tests read [`RESOURCES`] and check every row against the official OpenAPI document.

/// Resource version for employers, departments, payroll administrations, organizational
/// entities, working hours, wages, the actual* lists, version numbers, calendar and BSN.
pub const VERSION_2018_01_01: &str = "2018-01-01";
/// Resource version for employees (adds the business contact fields).
pub const VERSION_EMPLOYEES: &str = "2021-03-29";
/// Resource version for employments (all list variants and detail).
pub const VERSION_EMPLOYMENTS: &str = "2019-12-16";
/// Resource version for absences and absence progress.
pub const VERSION_ABSENCES: &str = "2020-03-16";

/// The Loket resources the client reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `GET /providers/employers`
    Employers,
    /// `GET /providers/employers/{employerId}`
    Employer,
    /// `GET /providers/employers/lastmodifiedversionnumbers`
    EmployerVersionNumbers,
    /// `GET /providers/employers/{employerId}/departments`
    Departments,
    /// `GET /providers/employers/{employerId}/payrolladministrations`
    PayrollAdministrations,
    /// `GET /providers/employers/{employerId}/employees`
    Employees,
    /// `GET /providers/employers/employees/{employeeId}`
    Employee,
    /// `GET /providers/employers/employees/{employeeId}/citizenservicenumber`
    CitizenServiceNumber,
    /// `GET /providers/employers/{employerId}/employees/employments`
    Employments,
    /// `GET /providers/employers/employees/employments/{employmentId}`
    Employment,
    /// `GET /providers/employers/employees/{employeeId}/employments`
    EmploymentsOfEmployee,
    /// `GET /providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers`
    EmploymentVersionNumbers,
    /// `GET /providers/employers/{employerId}/employees/employments/comprehensive`
    EmploymentsComprehensive,
    /// `GET /providers/employers/employees/employments/{employmentId}/organizationalentities`
    OrganizationalEntities,
    /// `GET /providers/employers/employees/employments/{employmentId}/workinghours`
    WorkingHours,
    /// `GET /providers/employers/employees/employments/{employmentId}/wages`
    Wages,
    /// `GET /providers/employers/employees/{employeeId}/absences`
    Absences,
    /// `GET /providers/employers/employees/absences/{absenceId}`
    Absence,
    /// `GET /providers/employers/employees/absences/{absenceId}/absenceprogress`
    AbsenceProgress,
    /// `GET /providers/employers/{employerId}/employees/employments/calendar/absences`
    CalendarAbsences,
    /// `GET /providers/employers/{employerId}/actualorganizationalentities`
    ActualOrganizationalEntities,
    /// `GET /providers/employers/{employerId}/actualworkinghours`
    ActualWorkingHours,
    /// `GET /providers/employers/{employerId}/actualwages`
    ActualWages,
}

/// One row of the resource table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Which resource.
    pub resource: Resource,
    /// The OpenAPI path, relative to the API base URL (`…/v2`), with `{placeholders}`.
    pub path_template: &'static str,
    /// Loket's `operationId`, which is also the "activity" a 403 names.
    pub operation_id: &'static str,
    /// The pinned resource version (`Accept: application/json;version=…`).
    pub version: &'static str,
    /// Whether the response is a paged list (`_embedded`) rather than one entity (`content`).
    pub paged: bool,
}

impl ResourceSpec {
    /// The `Accept` header value for this resource.
    pub fn accept(&self) -> String {
        format!("application/json;version={}", self.version)
    }
}

macro_rules! spec {
    ($r:ident, $path:literal, $op:literal, $v:expr, $paged:literal) => {
        ResourceSpec {
            resource: Resource::$r,
            path_template: $path,
            operation_id: $op,
            version: $v,
            paged: $paged,
        }
    };
}

/// Every resource the client reads. The single source of truth for paths and versions.
pub const RESOURCES: &[ResourceSpec] = &[
    spec!(
        Employers,
        "/providers/employers",
        "GetEmployersByUserId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        Employer,
        "/providers/employers/{employerId}",
        "GetEmployerByEmployerId",
        VERSION_2018_01_01,
        false
    ),
    spec!(
        EmployerVersionNumbers,
        "/providers/employers/lastmodifiedversionnumbers",
        "GetEmployerLastModifiedVersionNumbersByUser",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        Departments,
        "/providers/employers/{employerId}/departments",
        "GetDepartmentsByEmployerId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        PayrollAdministrations,
        "/providers/employers/{employerId}/payrolladministrations",
        "GetPayrollAdministrationsByEmployerId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        Employees,
        "/providers/employers/{employerId}/employees",
        "GetEmployeesByEmployerId",
        VERSION_EMPLOYEES,
        true
    ),
    spec!(
        Employee,
        "/providers/employers/employees/{employeeId}",
        "GetEmployeeByEmployeeId",
        VERSION_EMPLOYEES,
        false
    ),
    spec!(
        CitizenServiceNumber,
        "/providers/employers/employees/{employeeId}/citizenservicenumber",
        "GetCitizenServiceNumberByEmployeeId",
        VERSION_2018_01_01,
        false
    ),
    spec!(
        Employments,
        "/providers/employers/{employerId}/employees/employments",
        "GetEmploymentsByEmployerId",
        VERSION_EMPLOYMENTS,
        true
    ),
    spec!(
        Employment,
        "/providers/employers/employees/employments/{employmentId}",
        "GetEmploymentByEmploymentId",
        VERSION_EMPLOYMENTS,
        false
    ),
    spec!(
        EmploymentsOfEmployee,
        "/providers/employers/employees/{employeeId}/employments",
        "GetEmploymentsByEmployeeId",
        VERSION_EMPLOYMENTS,
        true
    ),
    spec!(
        EmploymentVersionNumbers,
        "/providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers",
        "GetEmploymentLastModifiedVersionNumbersByUser",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        EmploymentsComprehensive,
        "/providers/employers/{employerId}/employees/employments/comprehensive",
        "GetEmploymentsComprehensiveByEmployerId",
        VERSION_EMPLOYMENTS,
        true
    ),
    spec!(
        OrganizationalEntities,
        "/providers/employers/employees/employments/{employmentId}/organizationalentities",
        "GetOrganizationalEntitiesByEmploymentId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        WorkingHours,
        "/providers/employers/employees/employments/{employmentId}/workinghours",
        "GetWorkingHoursByEmploymentId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        Wages,
        "/providers/employers/employees/employments/{employmentId}/wages",
        "GetWagesByEmploymentId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        Absences,
        "/providers/employers/employees/{employeeId}/absences",
        "GetAbsencesByEmployeeId",
        VERSION_ABSENCES,
        true
    ),
    spec!(
        Absence,
        "/providers/employers/employees/absences/{absenceId}",
        "GetAbsenceByAbsenceId",
        VERSION_ABSENCES,
        false
    ),
    spec!(
        AbsenceProgress,
        "/providers/employers/employees/absences/{absenceId}/absenceprogress",
        "GetAbsenceProgressByAbsenceId",
        VERSION_ABSENCES,
        true
    ),
    spec!(
        CalendarAbsences,
        "/providers/employers/{employerId}/employees/employments/calendar/absences",
        "GetCalendarAbsencesByEmployerId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        ActualOrganizationalEntities,
        "/providers/employers/{employerId}/actualorganizationalentities",
        "GetActualOrganizationalEntitiesByEmployerId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        ActualWorkingHours,
        "/providers/employers/{employerId}/actualworkinghours",
        "GetActualWorkingHoursByEmployerId",
        VERSION_2018_01_01,
        true
    ),
    spec!(
        ActualWages,
        "/providers/employers/{employerId}/actualwages",
        "GetActualWagesByEmployerId",
        VERSION_2018_01_01,
        true
    ),
];

impl Resource {
    /// This resource's row in [`RESOURCES`].
    pub fn spec(self) -> &'static ResourceSpec {
        // Every variant has exactly one row; the unit test `every_resource_has_one_row` proves it,
        // so the fallback is unreachable. It keeps this function free of panics all the same.
        RESOURCES
            .iter()
            .find(|s| s.resource == self)
            .unwrap_or(&RESOURCES[0])
    }

    /// Builds the path with the given ids substituted for the placeholders, in template order.
    /// Each id must be a plain Loket id (letters, digits, `-`), so it cannot change the path.
    pub(crate) fn path(self, ids: &[(&'static str, &str)]) -> Result<String, super::LoketError> {
        let mut path = self.spec().path_template.to_owned();
        for (what, id) in ids {
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(super::LoketError::InvalidId { what });
            }
            let placeholder = format!("{{{what}Id}}");
            if !path.contains(&placeholder) {
                return Err(super::LoketError::InvalidId { what });
            }
            path = path.replace(&placeholder, id);
        }
        if path.contains('{') {
            // A placeholder was left without an id: a programming error in this module, reported
            // as an id error rather than sent to Loket.
            return Err(super::LoketError::InvalidId { what: "missing" });
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const ALL: &[Resource] = &[
        Resource::Employers,
        Resource::Employer,
        Resource::EmployerVersionNumbers,
        Resource::Departments,
        Resource::PayrollAdministrations,
        Resource::Employees,
        Resource::Employee,
        Resource::CitizenServiceNumber,
        Resource::Employments,
        Resource::Employment,
        Resource::EmploymentsOfEmployee,
        Resource::EmploymentVersionNumbers,
        Resource::EmploymentsComprehensive,
        Resource::OrganizationalEntities,
        Resource::WorkingHours,
        Resource::Wages,
        Resource::Absences,
        Resource::Absence,
        Resource::AbsenceProgress,
        Resource::CalendarAbsences,
        Resource::ActualOrganizationalEntities,
        Resource::ActualWorkingHours,
        Resource::ActualWages,
    ];

    #[test]
    fn every_resource_has_one_row() {
        assert_eq!(ALL.len(), RESOURCES.len());
        for r in ALL {
            assert_eq!(
                RESOURCES.iter().filter(|s| s.resource == *r).count(),
                1,
                "{r:?}"
            );
            assert_eq!(r.spec().resource, *r);
        }
        let paths: HashSet<_> = RESOURCES.iter().map(|s| s.path_template).collect();
        assert_eq!(paths.len(), RESOURCES.len());
    }

    #[test]
    fn versions_are_pinned_as_documented() {
        assert_eq!(Resource::Employees.spec().version, "2021-03-29");
        assert_eq!(Resource::Employee.spec().version, "2021-03-29");
        assert_eq!(Resource::Employments.spec().version, "2019-12-16");
        assert_eq!(
            Resource::EmploymentsComprehensive.spec().version,
            "2019-12-16"
        );
        assert_eq!(Resource::Absences.spec().version, "2020-03-16");
        assert_eq!(Resource::AbsenceProgress.spec().version, "2020-03-16");
        assert_eq!(Resource::CitizenServiceNumber.spec().version, "2018-01-01");
        assert_eq!(
            Resource::Absence.spec().accept(),
            "application/json;version=2020-03-16"
        );
    }

    #[test]
    fn path_substitution_rejects_unsafe_ids() {
        assert_eq!(
            Resource::Absences.path(&[("employee", "ab-12")]).unwrap(),
            "/providers/employers/employees/ab-12/absences"
        );
        for bad in ["", "../x", "a/b", "a?b", "a%2f", "a b"] {
            assert!(
                Resource::Absences.path(&[("employee", bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(Resource::Absences.path(&[("employer", "x")]).is_err());
        assert!(Resource::Absences.path(&[]).is_err());
    }
}
