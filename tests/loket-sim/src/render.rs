//! Turns the internal model into Loket's JSON wire format (field names, `{key,value}`
//! metadata, `yyyy-MM-dd` dates), following the OpenAPI 200-response schemas.
//!
//! Fields the schemas mark non-nullable are either filled or left out entirely (the
//! schemas require no field), never sent as `null`.

use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::catalog::{self, value};
use crate::model::{
    Absence, AbsenceProgress, Address, Department, Employee, Employer, Employment,
    OrganizationalEntity, PayrollAdministration, Wage, WorkingHours, active_on,
};

fn kv(list: &[(i32, &'static str)], key: i32) -> Value {
    json!({ "key": key, "value": value(list, key) })
}

fn opt_kv(list: &[(i32, &'static str)], key: Option<i32>) -> Value {
    key.map(|k| kv(list, k)).unwrap_or(Value::Null)
}

fn netherlands() -> Value {
    json!({ "key": 530, "value": "Nederland", "isoCode": "NL" })
}

fn address(a: &Address) -> Value {
    json!({
        "street": a.street,
        "houseNumber": a.house_number,
        "houseNumberAddition": a.house_number_addition,
        "postalCode": a.postal_code,
        "city": a.city,
        "location": null,
        "country": netherlands(),
        "furtherIndication": null,
    })
}

fn money(cents: i64) -> Value {
    // Two-decimal amounts: cents / 100 is exactly representable to 2 decimals when printed
    // with the shortest round-trip form serde_json uses.
    json!(cents as f64 / 100.0)
}

pub fn employer(e: &Employer) -> Value {
    let mut addr = address(&e.address);
    addr["province"] = Value::Null;
    json!({
        "id": e.id,
        "employerNumber": e.employer_number,
        "companyName": e.company_name,
        "chamberOfCommerceNumber": e.chamber_of_commerce_number,
        "legalForm": { "key": 4, "value": "Besloten vennootschap" },
        "branch": null,
        "sbi": { "key": e.sbi_key, "sbiCode": format!("{:04}", e.sbi_key * 37 % 10000), "value": "Overige zakelijke dienstverlening" },
        "address": addr,
        "deviatingPostalAddress": null,
        "contact": null,
        "contactInformation": {
            "emailAddress": e.email_address,
            "phoneNumber": e.phone_number,
            "faxNumber": null,
            "website": e.website,
        },
        "providerSettings": {
            "administrationNumber": null,
            "groupCode": null,
            "parentEmployerForConsolidatedOverviews": null,
            "sendEmailWhenSalarySlipIsAvailable": false,
        },
        "employerLogo": null,
        "providerLogo": null,
    })
}

pub fn payroll_administration(a: &PayrollAdministration, employer: &Employer) -> Value {
    let mut addr = address(&employer.address);
    addr["province"] = Value::Null;
    json!({
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "clientNumber": a.client_number,
        "shortName": null,
        "administrationNumber": null,
        "groupCode": 1,
        "payrollTaxesNumber": a.payroll_taxes_number,
        "startDate": a.start_date,
        "endDate": null,
        "payrollPeriodType": kv(catalog::PAYROLL_PERIOD_TYPE, a.payroll_period_type_key),
        "address": addr,
        "deviatingPostalAddress": null,
        "contact": null,
        "claTaxReturnCBSCode": null,
        "groupClassification": null,
    })
}

pub fn department(d: &Department, employer: &Employer) -> Value {
    let parent = d
        .parent_id
        .and_then(|p| employer.departments.iter().find(|x| x.id == p));
    json!({
        "id": d.id,
        "code": d.code,
        "description": d.description,
        "subDepartmentOf": parent.map(|p| json!({ "key": p.id, "code": p.code, "description": p.description })),
        "emailLeaveRequest": null,
    })
}

/// The AOW (state pension) date: 67 years and 3 months after birth (simplified).
fn aow_date(dob: NaiveDate) -> NaiveDate {
    dob.checked_add_months(chrono::Months::new(67 * 12 + 3))
        .unwrap_or(dob)
}

/// Full employee. `with_business_contact` is the 2021-03-29 resource version.
pub fn employee(e: &Employee, with_business_contact: bool) -> Value {
    let mut contact = json!({
        "emailAddress": e.email_address,
        "phoneNumber": e.phone_number,
        "mobilePhoneNumber": e.mobile_phone_number,
        "faxNumber": null,
    });
    if with_business_contact {
        contact["businessEmailAddress"] = json!(e.business_email_address);
        contact["businessPhoneNumber"] = json!(e.business_phone_number);
        contact["businessMobilePhoneNumber"] = Value::Null;
    }
    json!({
        "id": e.id,
        "employeeNumber": e.employee_number,
        "personalDetails": {
            "firstName": e.first_name,
            "initials": e.initials,
            "prefix": e.prefix,
            "lastName": e.last_name,
            "lastNamePartner": null,
            "prefixPartner": null,
            "formattedName": e.formatted_name(),
            "howToFormatLastName": { "key": 1, "value": "Eigen naam" },
            "dateOfBirth": e.date_of_birth,
            "placeOfBirth": e.place_of_birth,
            "dateOfDeath": null,
            "aowDate": aow_date(e.date_of_birth),
            "gender": kv(catalog::GENDER, e.gender_key),
            "nationality": { "key": 1, "value": "Nederlandse" },
            "civilStatus": null,
            "title": null,
            "photo": null,
        },
        "contactInformation": contact,
        "address": address(&e.address),
        "deviatingPostalAddress": null,
        "identityDocument": null,
        "travel": { "travelDistanceToWork": null },
        "exclusionFromAbsenceStatus": false,
        "statusEmployeeSelfService": null,
        "revokeEmployeeSelfServiceAccessOn": null,
    })
}

/// The read-only person embedded in an employment.
fn employment_employee(e: &Employee) -> Value {
    json!({
        "id": e.id,
        "employeeNumber": e.employee_number,
        "firstName": e.first_name,
        "initials": e.initials,
        "prefix": e.prefix,
        "lastName": e.last_name,
        "lastNamePartner": null,
        "prefixPartner": null,
        "formattedName": e.formatted_name(),
        "dateOfBirth": e.date_of_birth,
        "photo": null,
    })
}

pub fn employment(e: &Employment, employee: &Employee, employer: &Employer) -> Value {
    let admin = employer
        .payroll_administrations
        .iter()
        .find(|a| a.id == e.payroll_administration_id);
    json!({
        "id": e.id,
        "employee": employment_employee(employee),
        "startDate": e.start_date,
        "endDate": e.end_date,
        "historicalStartDate": e.historical_start_date,
        "commissionUntilDate": e.commission_until_date,
        "startDateContractOfIndefiniteDuration": if e.employment_duration_type_key == 1 { json!(e.start_date) } else { Value::Null },
        "employmentDurationType": kv(catalog::DURATION_TYPE, e.employment_duration_type_key),
        "employmentContractType": { "key": 1, "value": "Arbeidsovereenkomst (excl BBL)" },
        "typeOfEmployee": { "key": 1, "value": "Personeelslid" },
        "employmentCategoryType": { "key": 1, "value": "Normaal" },
        "isOnCallEmployment": false,
        "hasOnCallAppearanceObligation": null,
        "payrollId": e.payroll_id,
        "incomeRelationshipNumber": e.income_relationship_number,
        "payrollAdministration": admin.map(|a| json!({
            "id": a.id, "name": a.name, "description": a.description, "clientNumber": a.client_number,
        })),
        "nonPayrollAdministration": null,
        "endOfEmploymentReason": opt_kv(catalog::END_OF_EMPLOYMENT_REASON, e.end_of_employment_reason_key),
        "endOfEmploymentReasonTaxAuthorities": null,
        "endOfEmploymentDueToIllness": e.end_date.map(|_| false),
        "cancellationPeriodEmployee": null,
        "cancellationPeriodEmployer": null,
        "cancellationPeriodTimeUnit": null,
        "linkedEmployment": null,
        "isAnonymousEmployee": false,
        "isDirectorAndMajorShareholder": false,
        "isFamilyOfOwner": false,
        "isPreviousOwner": false,
        "writtenEmploymentContract": true,
        "calculateWorkingHours": false,
        "emailLeaveRequest": null,
        "namePayslip": null,
    })
}

pub fn organizational_entity(o: &OrganizationalEntity, employer: &Employer) -> Value {
    let dep = employer
        .departments
        .iter()
        .find(|d| d.id == o.department_id);
    let fun = employer.functions.iter().find(|f| f.id == o.function_id);
    let mut v = json!({
        "id": o.id,
        "startDate": o.start_date,
        "endDate": o.end_date,
        "deviatingFunctionDescription": null,
        "deviatingFunctionGroup": null,
        "standardFunction": null,
        "placeOfEmployment": o.place_of_employment,
        "internalTelephoneExtensionNumber": null,
    });
    if let Some(d) = dep {
        v["department"] = json!({ "key": d.id, "code": d.code, "description": d.description });
    }
    if let Some(f) = fun {
        v["function"] = json!({ "key": f.id, "description": f.description, "group": f.group });
    }
    v
}

fn week(days: &[f64; 7]) -> Value {
    json!({
        "monday": days[0], "tuesday": days[1], "wednesday": days[2], "thursday": days[3],
        "friday": days[4], "saturday": days[5], "sunday": days[6],
    })
}

pub fn working_hours(w: &WorkingHours) -> Value {
    json!({
        "id": w.id,
        "startDate": w.start_date,
        "endDate": w.end_date,
        "aggregatedHoursPerWeek": w.aggregated_hours_per_week,
        "deviatingHoursPerWeek": w.deviating_hours_per_week,
        "averageHoursPerWeek": null,
        "averageParttimeFactor": w.average_parttime_factor,
        "shift": { "shiftNumber": w.shift_number, "fullTimeHoursPerWeek": w.full_time_hours_per_week },
        "regularWorkPattern": w.regular_work_pattern,
        "workPattern": w.work_pattern.as_ref().map(|p| json!({ "oddWeeks": week(&p.odd_weeks), "evenWeeks": week(&p.even_weeks) })),
        "deviatingSvDaysPerPeriod": null,
        "flexibleHoursContract": null,
        "calculateUsingWorkPattern": {
            "leaveHours": false, "hoursBrokenPeriod": false, "hoursRegularPeriod": false,
            "daysDailyRate": false, "deviatingDaysAndHours": false,
        },
        "contractCode": null,
    })
}

pub fn wage(w: &Wage) -> Value {
    json!({
        "id": w.id,
        "startDate": w.start_date,
        "endDate": w.end_date,
        "grossWage": money(w.gross_wage_cents),
        "grossWageType": kv(catalog::GROSS_WAGE_TYPE, w.gross_wage_type_key),
        "isGrossWageFullTime": w.is_gross_wage_full_time,
        "netWage": null,
        "netWageType": null,
        "employerCosts": null,
        "employerCostsType": null,
        "payrollPeriodType": kv(catalog::PAYROLL_PERIOD_TYPE, w.payroll_period_type_key),
        "payScale": null,
        "payGrade": null,
        "applyPayGrade": null,
    })
}

/// Absence, resource version 2020-03-16: `endOfAbsence` is nested in `progress`.
/// `progress.startDate` is the first day of absence; `currentIncapacityPercentage` is the
/// percentage of the progress record active on `today` (or of the last record).
pub fn absence(a: &Absence, today: NaiveDate) -> Value {
    let current = active_on(&a.progress, today).or(a.progress.last());
    json!({
        "id": a.id,
        "causeOfAbsence": kv(catalog::CAUSE_OF_ABSENCE, a.cause_of_absence_key),
        "expectedDuration": opt_kv(catalog::EXPECTED_DURATION, a.expected_duration_key),
        "isRecoveredWithinTwoWeeks": a.is_recovered_within_two_weeks,
        "actionToBeTakenByOccupationalHealthAndSafetyService": kv(catalog::ACTION_BY_OHS, a.action_key),
        "accidentType": null,
        "isThirdPartyLiability": null,
        "isWorkRelatedIllness": a.is_work_related_illness,
        "isDisruptedEmploymentRelationship": a.is_disrupted_employment_relationship,
        "hasMobilityIssue": null,
        "isHospitalised": null,
        "hoursWorkedOnFirstDayOfAbsence": a.hours_worked_on_first_day,
        "expectedDateOfChildbirth": a.expected_date_of_childbirth,
        "expectedEndDateOfMaternityLeave": a.expected_end_date_of_maternity_leave,
        "contactInformation": null,
        "caseManager": null,
        "reintegration": null,
        "comments": a.comments,
        "progress": {
            "startDate": a.first_day(),
            "currentIncapacityPercentage": current.map(|p| p.incapacity_percentage).unwrap_or(100),
            "endOfAbsence": a.end_of_absence.as_ref().map(|e| json!({
                "date": e.date,
                "reason": kv(catalog::END_OF_ABSENCE_REASON, e.reason_key),
            })),
        },
    })
}

pub fn absence_progress(p: &AbsenceProgress) -> Value {
    json!({
        "id": p.id,
        "startDate": p.start_date,
        "endDate": p.end_date,
        "incapacityPercentage": p.incapacity_percentage,
        "typeOfWorkResumption": opt_kv(catalog::TYPE_OF_WORK_RESUMPTION, p.type_of_work_resumption_key),
        "comments": p.comments,
    })
}
