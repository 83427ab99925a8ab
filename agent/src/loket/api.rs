//! The Loket resources as typed methods on [`LoketClient`], and the matching [`ListRequest`]
//! constructors for reading a list page by page.

use chrono::NaiveDate;

use super::client::LoketClient;
use super::error::LoketError;
use super::models::{
    Absence, AbsenceProgress, ActualOrganizationalEntity, ActualWage, ActualWorkingHours,
    CalendarAbsence, CitizenServiceNumber, Department, Employee, Employer, Employment,
    EmploymentComprehensive, LastModifiedVersionNumber, OrganizationalEntity,
    PayrollAdministration, Wage, WorkingHours,
};
use super::paging::ListRequest;
use super::resources::Resource;

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// `filter=lastModifiedVersionNumber gt N` plus `orderBy=-lastModifiedVersionNumber`.
fn version_filter<T>(request: ListRequest<T>, filter_gt: Option<i64>) -> ListRequest<T> {
    let request = request.order_by("-lastModifiedVersionNumber");
    match filter_gt {
        Some(n) => request.filter(format!("lastModifiedVersionNumber gt {n}")),
        None => request,
    }
}

/// Constructors for every list resource.
impl ListRequest<()> {
    /// Employers visible to the user.
    pub fn employers() -> ListRequest<Employer> {
        ListRequest::new(
            Resource::Employers,
            Resource::Employers.spec().path_template.into(),
        )
    }

    /// Employer version numbers, newest first; only those above `filter_gt` when given.
    pub fn employer_version_numbers(
        filter_gt: Option<i64>,
    ) -> ListRequest<LastModifiedVersionNumber> {
        let r = Resource::EmployerVersionNumbers;
        version_filter(
            ListRequest::new(r, r.spec().path_template.into()),
            filter_gt,
        )
    }

    /// Departments of an employer.
    pub fn departments(employer_id: &str) -> Result<ListRequest<Department>, LoketError> {
        let r = Resource::Departments;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?))
    }

    /// Payroll administrations of an employer.
    pub fn payroll_administrations(
        employer_id: &str,
    ) -> Result<ListRequest<PayrollAdministration>, LoketError> {
        let r = Resource::PayrollAdministrations;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?))
    }

    /// Employees of an employer.
    pub fn employees(employer_id: &str) -> Result<ListRequest<Employee>, LoketError> {
        let r = Resource::Employees;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?))
    }

    /// Employments of an employer (subject to the Loket user's filter settings).
    pub fn employments(employer_id: &str) -> Result<ListRequest<Employment>, LoketError> {
        let r = Resource::Employments;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?))
    }

    /// Employments of one employee.
    pub fn employments_of_employee(
        employee_id: &str,
    ) -> Result<ListRequest<Employment>, LoketError> {
        let r = Resource::EmploymentsOfEmployee;
        Ok(ListRequest::new(r, r.path(&[("employee", employee_id)])?))
    }

    /// Employment version numbers of an employer, newest first; only those above `filter_gt`.
    pub fn employment_version_numbers(
        employer_id: &str,
        filter_gt: Option<i64>,
    ) -> Result<ListRequest<LastModifiedVersionNumber>, LoketError> {
        let r = Resource::EmploymentVersionNumbers;
        Ok(version_filter(
            ListRequest::new(r, r.path(&[("employer", employer_id)])?),
            filter_gt,
        ))
    }

    /// Employments with employee and the records active on `reference_date`.
    pub fn employments_comprehensive(
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<ListRequest<EmploymentComprehensive>, LoketError> {
        let r = Resource::EmploymentsComprehensive;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?)
            .param("referenceDate", date(reference_date)))
    }

    /// Department/function history of an employment.
    pub fn organizational_entities(
        employment_id: &str,
    ) -> Result<ListRequest<OrganizationalEntity>, LoketError> {
        let r = Resource::OrganizationalEntities;
        Ok(ListRequest::new(
            r,
            r.path(&[("employment", employment_id)])?,
        ))
    }

    /// Working-hours history of an employment.
    pub fn working_hours(employment_id: &str) -> Result<ListRequest<WorkingHours>, LoketError> {
        let r = Resource::WorkingHours;
        Ok(ListRequest::new(
            r,
            r.path(&[("employment", employment_id)])?,
        ))
    }

    /// Wage history of an employment.
    pub fn wages(employment_id: &str) -> Result<ListRequest<Wage>, LoketError> {
        let r = Resource::Wages;
        Ok(ListRequest::new(
            r,
            r.path(&[("employment", employment_id)])?,
        ))
    }

    /// Absences of an employee.
    pub fn absences(employee_id: &str) -> Result<ListRequest<Absence>, LoketError> {
        let r = Resource::Absences;
        Ok(ListRequest::new(r, r.path(&[("employee", employee_id)])?))
    }

    /// Progress records of an absence.
    pub fn absence_progress(absence_id: &str) -> Result<ListRequest<AbsenceProgress>, LoketError> {
        let r = Resource::AbsenceProgress;
        Ok(ListRequest::new(r, r.path(&[("absence", absence_id)])?))
    }

    /// Absence periods per employment of an employer between `start` and `end`.
    pub fn calendar_absences(
        employer_id: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<ListRequest<CalendarAbsence>, LoketError> {
        let r = Resource::CalendarAbsences;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?)
            .param("startDate", date(start))
            .param("endDate", date(end)))
    }

    /// The organizational entity active on `reference_date` for every employment of an employer.
    pub fn actual_organizational_entities(
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<ListRequest<ActualOrganizationalEntity>, LoketError> {
        let r = Resource::ActualOrganizationalEntities;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?)
            .param("referenceDate", date(reference_date)))
    }

    /// The working hours active on `reference_date` for every employment of an employer.
    pub fn actual_working_hours(
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<ListRequest<ActualWorkingHours>, LoketError> {
        let r = Resource::ActualWorkingHours;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?)
            .param("referenceDate", date(reference_date)))
    }

    /// The wage active on `reference_date` for every employment of an employer.
    pub fn actual_wages(
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<ListRequest<ActualWage>, LoketError> {
        let r = Resource::ActualWages;
        Ok(ListRequest::new(r, r.path(&[("employer", employer_id)])?)
            .param("referenceDate", date(reference_date)))
    }
}

/// One method per resource. Lists are read completely (see [`LoketClient::get_all`]).
impl LoketClient {
    /// `GET /providers/employers`
    pub async fn employers(&self) -> Result<Vec<Employer>, LoketError> {
        self.get_all(ListRequest::employers()).await
    }

    /// `GET /providers/employers/{employerId}`
    pub async fn employer(&self, employer_id: &str) -> Result<Employer, LoketError> {
        let r = Resource::Employer;
        self.get_single(r, &r.path(&[("employer", employer_id)])?)
            .await
    }

    /// `GET /providers/employers/lastmodifiedversionnumbers[?filter=lastModifiedVersionNumber gt N]`
    pub async fn employer_version_numbers(
        &self,
        filter_gt: Option<i64>,
    ) -> Result<Vec<LastModifiedVersionNumber>, LoketError> {
        self.get_all(ListRequest::employer_version_numbers(filter_gt))
            .await
    }

    /// `GET /providers/employers/{employerId}/departments`
    pub async fn departments(&self, employer_id: &str) -> Result<Vec<Department>, LoketError> {
        self.get_all(ListRequest::departments(employer_id)?).await
    }

    /// `GET /providers/employers/{employerId}/payrolladministrations`
    pub async fn payroll_administrations(
        &self,
        employer_id: &str,
    ) -> Result<Vec<PayrollAdministration>, LoketError> {
        self.get_all(ListRequest::payroll_administrations(employer_id)?)
            .await
    }

    /// `GET /providers/employers/{employerId}/employees`
    pub async fn employees(&self, employer_id: &str) -> Result<Vec<Employee>, LoketError> {
        self.get_all(ListRequest::employees(employer_id)?).await
    }

    /// `GET /providers/employers/employees/{employeeId}`
    pub async fn employee(&self, employee_id: &str) -> Result<Employee, LoketError> {
        let r = Resource::Employee;
        self.get_single(r, &r.path(&[("employee", employee_id)])?)
            .await
    }

    /// `GET /providers/employers/employees/{employeeId}/citizenservicenumber` (needs the BSN right).
    pub async fn citizen_service_number(
        &self,
        employee_id: &str,
    ) -> Result<CitizenServiceNumber, LoketError> {
        let r = Resource::CitizenServiceNumber;
        self.get_single(r, &r.path(&[("employee", employee_id)])?)
            .await
    }

    /// `GET /providers/employers/{employerId}/employees/employments`
    pub async fn employments(&self, employer_id: &str) -> Result<Vec<Employment>, LoketError> {
        self.get_all(ListRequest::employments(employer_id)?).await
    }

    /// `GET /providers/employers/employees/employments/{employmentId}`
    pub async fn employment(&self, employment_id: &str) -> Result<Employment, LoketError> {
        let r = Resource::Employment;
        self.get_single(r, &r.path(&[("employment", employment_id)])?)
            .await
    }

    /// `GET /providers/employers/employees/{employeeId}/employments`
    pub async fn employments_of_employee(
        &self,
        employee_id: &str,
    ) -> Result<Vec<Employment>, LoketError> {
        self.get_all(ListRequest::employments_of_employee(employee_id)?)
            .await
    }

    /// `GET /providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers`
    pub async fn employment_version_numbers(
        &self,
        employer_id: &str,
        filter_gt: Option<i64>,
    ) -> Result<Vec<LastModifiedVersionNumber>, LoketError> {
        self.get_all(ListRequest::employment_version_numbers(
            employer_id,
            filter_gt,
        )?)
        .await
    }

    /// `GET /providers/employers/{employerId}/employees/employments/comprehensive?referenceDate=`
    pub async fn employments_comprehensive(
        &self,
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<Vec<EmploymentComprehensive>, LoketError> {
        self.get_all(ListRequest::employments_comprehensive(
            employer_id,
            reference_date,
        )?)
        .await
    }

    /// `GET /providers/employers/employees/employments/{employmentId}/organizationalentities`
    pub async fn organizational_entities(
        &self,
        employment_id: &str,
    ) -> Result<Vec<OrganizationalEntity>, LoketError> {
        self.get_all(ListRequest::organizational_entities(employment_id)?)
            .await
    }

    /// `GET /providers/employers/employees/employments/{employmentId}/workinghours`
    pub async fn working_hours(
        &self,
        employment_id: &str,
    ) -> Result<Vec<WorkingHours>, LoketError> {
        self.get_all(ListRequest::working_hours(employment_id)?)
            .await
    }

    /// `GET /providers/employers/employees/employments/{employmentId}/wages`
    pub async fn wages(&self, employment_id: &str) -> Result<Vec<Wage>, LoketError> {
        self.get_all(ListRequest::wages(employment_id)?).await
    }

    /// `GET /providers/employers/employees/{employeeId}/absences`
    pub async fn absences(&self, employee_id: &str) -> Result<Vec<Absence>, LoketError> {
        self.get_all(ListRequest::absences(employee_id)?).await
    }

    /// `GET /providers/employers/employees/absences/{absenceId}`
    pub async fn absence(&self, absence_id: &str) -> Result<Absence, LoketError> {
        let r = Resource::Absence;
        self.get_single(r, &r.path(&[("absence", absence_id)])?)
            .await
    }

    /// `GET /providers/employers/employees/absences/{absenceId}/absenceprogress`
    pub async fn absence_progress(
        &self,
        absence_id: &str,
    ) -> Result<Vec<AbsenceProgress>, LoketError> {
        self.get_all(ListRequest::absence_progress(absence_id)?)
            .await
    }

    /// `GET /providers/employers/{employerId}/employees/employments/calendar/absences?startDate=&endDate=`
    pub async fn calendar_absences(
        &self,
        employer_id: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<CalendarAbsence>, LoketError> {
        self.get_all(ListRequest::calendar_absences(employer_id, start, end)?)
            .await
    }

    /// `GET /providers/employers/{employerId}/actualorganizationalentities?referenceDate=`
    pub async fn actual_organizational_entities(
        &self,
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<Vec<ActualOrganizationalEntity>, LoketError> {
        self.get_all(ListRequest::actual_organizational_entities(
            employer_id,
            reference_date,
        )?)
        .await
    }

    /// `GET /providers/employers/{employerId}/actualworkinghours?referenceDate=`
    pub async fn actual_working_hours(
        &self,
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<Vec<ActualWorkingHours>, LoketError> {
        self.get_all(ListRequest::actual_working_hours(
            employer_id,
            reference_date,
        )?)
        .await
    }

    /// `GET /providers/employers/{employerId}/actualwages?referenceDate=`
    pub async fn actual_wages(
        &self,
        employer_id: &str,
        reference_date: NaiveDate,
    ) -> Result<Vec<ActualWage>, LoketError> {
        self.get_all(ListRequest::actual_wages(employer_id, reference_date)?)
            .await
    }
}
