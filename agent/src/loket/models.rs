//! Loket wire models: what the API returns, as serde types. Kept apart from the sink's
//! normalized records; the mapping between them lives in the sync engine.
//!
//! Rules for every model here:
//! - tolerant: unknown fields are ignored and every field that can be `null` is an `Option`;
//!   only an entity's own `id` (and a version number's value) is required;
//! - exact: amounts, hours and factors are [`Decimal`]s parsed from the JSON number's text;
//! - private: free text (absence comments, case manager, the contact address during illness,
//!   reintegration notes) is not part of any struct, so it is dropped while parsing; `Debug` of
//!   anything with personal, health or salary data shows ids only.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use super::error::ApiMessage;

/// Implements `Debug` that prints only the listed (non-personal) fields.
macro_rules! debug_only {
    ($t:ident { $($f:ident),* }) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($f), &self.$f))*
                    .finish_non_exhaustive()
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------------

/// `version` of a response: the resource version the server used.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersion {
    /// The resource version used (for example `2020-03-16`).
    #[serde(default, deserialize_with = "de::opt_date")]
    pub resource_version: Option<NaiveDate>,
    /// When this version stops being served (normally null).
    #[serde(default, deserialize_with = "de::opt_date")]
    pub obsolete_date: Option<NaiveDate>,
}

/// A paged list response (`_embedded` plus paging fields).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct ListEnvelope<T> {
    /// The items of this page.
    #[serde(
        rename = "_embedded",
        default = "Vec::new",
        deserialize_with = "de::null_as_empty"
    )]
    pub embedded: Vec<T>,
    /// Total items after the filter.
    pub total_size: Option<i64>,
    /// The page size the server used (may be smaller than requested).
    pub page_size: Option<i64>,
    /// Pages at this page size.
    pub total_pages: Option<i64>,
    /// The page returned (1-based).
    pub current_page: Option<i64>,
    /// The resource version used.
    pub version: Option<ResourceVersion>,
    /// Warnings and other messages.
    #[serde(default = "Vec::new", deserialize_with = "de::null_as_empty")]
    pub messages: Vec<ApiMessage>,
}

/// A single-entity response (`content`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct SingleEnvelope<T> {
    /// The entity.
    pub content: Option<T>,
    /// The resource version used.
    pub version: Option<ResourceVersion>,
    /// Warnings and other messages.
    #[serde(default = "Vec::new", deserialize_with = "de::null_as_empty")]
    pub messages: Vec<ApiMessage>,
}

// ---------------------------------------------------------------------------------------------
// Shared small types
// ---------------------------------------------------------------------------------------------

/// A Loket "metadata" value: an option from a list, `{key, value}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// The option's numeric key.
    pub key: Option<i64>,
    /// The option's display text.
    pub value: Option<String>,
}

/// A reference to an entity with a UUID key, a code and a description (department,
/// distribution unit, contract code).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CodedRef {
    /// The referenced entity's UUID.
    pub key: Option<String>,
    /// Its visible code.
    pub code: Option<i64>,
    /// Its name.
    pub description: Option<String>,
}

/// A reference to a function (job title).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FunctionRef {
    /// The function's UUID.
    pub key: Option<String>,
    /// Its name.
    pub description: Option<String>,
    /// Its group.
    pub group: Option<String>,
}

/// A CAO (standard) function.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StandardFunction {
    /// Numeric key.
    pub key: Option<i64>,
    /// Display text.
    pub value: Option<String>,
    /// Code.
    pub code: Option<String>,
    /// Category.
    pub category: Option<i64>,
}

/// A reference by id only.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IdRef {
    /// The referenced entity's UUID.
    pub id: Option<String>,
}

/// A country.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Country {
    /// Numeric key.
    pub key: Option<i64>,
    /// Name.
    pub value: Option<String>,
    /// ISO code.
    pub iso_code: Option<String>,
}

/// A postal address (of an employer or an employee). `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Street.
    pub street: Option<String>,
    /// House number.
    pub house_number: Option<i64>,
    /// House number addition.
    pub house_number_addition: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Country.
    pub country: Option<Country>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// Employers and their lists
// ---------------------------------------------------------------------------------------------

/// The SBI (industry) code of an employer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sbi {
    /// Numeric key.
    pub key: Option<i64>,
    /// The SBI code.
    pub sbi_code: Option<String>,
    /// Description.
    pub value: Option<String>,
}

/// An employer (a company), `GET /providers/employers[/{id}]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employer {
    /// The employer UUID: use it, not `employer_number`, as the key.
    pub id: String,
    /// Display number.
    pub employer_number: Option<i64>,
    /// Company name.
    pub company_name: Option<String>,
    /// KvK number.
    pub chamber_of_commerce_number: Option<String>,
    /// Legal form.
    pub legal_form: Option<Metadata>,
    /// Industry.
    pub sbi: Option<Sbi>,
    /// Visiting address.
    pub address: Option<Address>,
}

/// A last-modified version number of an employer or an employment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastModifiedVersionNumber {
    /// The employer or employment UUID.
    pub id: String,
    /// A database-wide, increasing 64-bit sequence number.
    pub last_modified_version_number: i64,
}

/// A payroll administration (holds the loonheffingennummer).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayrollAdministration {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Client number.
    pub client_number: Option<i64>,
    /// Short name.
    pub short_name: Option<String>,
    /// The loonheffingennummer (12 characters).
    pub payroll_taxes_number: Option<String>,
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// 1 = month, 3 = four weeks, 4 = week.
    pub payroll_period_type: Option<Metadata>,
}

/// A department of an employer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    /// UUID.
    pub id: String,
    /// Visible code.
    pub code: Option<i64>,
    /// Name.
    pub description: Option<String>,
    /// The parent department.
    pub sub_department_of: Option<CodedRef>,
}

// ---------------------------------------------------------------------------------------------
// Employees
// ---------------------------------------------------------------------------------------------

/// An employee's personal details. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDetails {
    /// First name.
    pub first_name: Option<String>,
    /// Initials.
    pub initials: Option<String>,
    /// Prefix (tussenvoegsel).
    pub prefix: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Partner's last name.
    pub last_name_partner: Option<String>,
    /// Partner's prefix.
    pub prefix_partner: Option<String>,
    /// The name as Loket formats it.
    pub formatted_name: Option<String>,
    /// How the last name is composed.
    pub how_to_format_last_name: Option<Metadata>,
    /// Date of birth.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub date_of_birth: Option<NaiveDate>,
    /// Date of death.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub date_of_death: Option<NaiveDate>,
    /// AOW date.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub aow_date: Option<NaiveDate>,
    /// Gender.
    pub gender: Option<Metadata>,
    /// Nationality.
    pub nationality: Option<Metadata>,
    /// Civil status.
    pub civil_status: Option<Metadata>,
    /// Title.
    pub title: Option<Metadata>,
}

impl fmt::Debug for PersonalDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalDetails(<redacted>)")
    }
}

/// An employee's contact information (the business fields need version 2021-03-29).
/// `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactInformation {
    /// Private e-mail address.
    pub email_address: Option<String>,
    /// Phone number.
    pub phone_number: Option<String>,
    /// Mobile phone number.
    pub mobile_phone_number: Option<String>,
    /// Business e-mail address.
    pub business_email_address: Option<String>,
    /// Business phone number.
    pub business_phone_number: Option<String>,
    /// Business mobile phone number.
    pub business_mobile_phone_number: Option<String>,
}

impl fmt::Debug for ContactInformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContactInformation(<redacted>)")
    }
}

/// An employee (a person). `Debug` shows ids only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employee {
    /// UUID.
    pub id: String,
    /// Employee number, unique within the employer.
    pub employee_number: Option<i64>,
    /// Names, birth date, gender...
    pub personal_details: Option<PersonalDetails>,
    /// E-mail and phone.
    pub contact_information: Option<ContactInformation>,
    /// Home address.
    pub address: Option<Address>,
    /// The employee is excluded from absence information.
    pub exclusion_from_absence_status: Option<bool>,
}
debug_only!(Employee {
    id,
    employee_number
});

/// The BSN of an employee. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CitizenServiceNumber {
    /// Nine digits, or null.
    pub citizen_service_number: Option<String>,
}

impl fmt::Debug for CitizenServiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CitizenServiceNumber(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// Employments
// ---------------------------------------------------------------------------------------------

/// The person embedded (read-only) in an employment. `Debug` shows ids only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmployeeRef {
    /// The employee UUID.
    pub id: Option<String>,
    /// Employee number.
    pub employee_number: Option<i64>,
    /// The name as Loket formats it.
    pub formatted_name: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Initials.
    pub initials: Option<String>,
    /// Prefix.
    pub prefix: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Date of birth.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub date_of_birth: Option<NaiveDate>,
}
debug_only!(EmployeeRef {
    id,
    employee_number
});

/// The payroll administration an employment belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdministrationRef {
    /// UUID.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Client number.
    pub client_number: Option<i64>,
}

/// An employment (dienstverband). `Debug` shows ids and dates only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employment {
    /// UUID.
    pub id: String,
    /// The person.
    pub employee: Option<EmployeeRef>,
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day, null while employed.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// First day over all employments.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub historical_start_date: Option<NaiveDate>,
    /// Planned end of a fixed-term contract.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub commission_until_date: Option<NaiveDate>,
    /// Start of the contract of indefinite duration.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date_contract_of_indefinite_duration: Option<NaiveDate>,
    /// Contract type.
    pub employment_contract_type: Option<Metadata>,
    /// Definite or indefinite.
    pub employment_duration_type: Option<Metadata>,
    /// Kind of employee.
    pub type_of_employee: Option<Metadata>,
    /// Category.
    pub employment_category_type: Option<Metadata>,
    /// On-call employment.
    pub is_on_call_employment: Option<bool>,
    /// Payroll number of this employment.
    pub payroll_id: Option<i64>,
    /// Nummer inkomstenverhouding.
    pub income_relationship_number: Option<i64>,
    /// The payroll administration.
    pub payroll_administration: Option<AdministrationRef>,
    /// The non-payroll administration.
    pub non_payroll_administration: Option<AdministrationRef>,
    /// Reason the employment ended.
    pub end_of_employment_reason: Option<Metadata>,
    /// Ended because of illness.
    pub end_of_employment_due_to_illness: Option<bool>,
    /// Linked employment UUID.
    pub linked_employment: Option<String>,
}
debug_only!(Employment {
    id,
    employee,
    start_date,
    end_date
});

/// An employment from the `comprehensive` list: the employment, the full employee and the
/// records active on the reference date. `Debug` shows ids only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmploymentComprehensive {
    /// The full employee.
    pub employee: Option<Employee>,
    /// Working hours active on the reference date (Loket spells the key `workinghours`).
    #[serde(alias = "workinghours")]
    pub working_hours: Option<WorkingHours>,
    /// Organizational entity active on the reference date.
    pub organizational_entity: Option<OrganizationalEntity>,
    /// Wage active on the reference date.
    pub wage: Option<Wage>,
    /// The employment fields (its `employee` is empty here; see the field above).
    #[serde(flatten)]
    pub employment: Employment,
}

impl fmt::Debug for EmploymentComprehensive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmploymentComprehensive")
            .field("id", &self.employment.id)
            .field("employee", &self.employee.as_ref().map(|e| &e.id))
            .finish_non_exhaustive()
    }
}

/// A department/function period of an employment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalEntity {
    /// UUID.
    pub id: String,
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day (inclusive), null while current.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// Department.
    pub department: Option<CodedRef>,
    /// Function.
    pub function: Option<FunctionRef>,
    /// Function name that overrides the function's.
    pub deviating_function_description: Option<String>,
    /// Function group that overrides the function's.
    pub deviating_function_group: Option<String>,
    /// CAO function.
    pub standard_function: Option<StandardFunction>,
    /// Distribution unit (often a cost centre).
    pub distribution_unit: Option<CodedRef>,
    /// Standplaats.
    pub place_of_employment: Option<String>,
}

/// A shift (rooster) with its full-time norm.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shift {
    /// Shift number.
    pub shift_number: Option<i64>,
    /// Full-time hours per week of this shift.
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub full_time_hours_per_week: Option<Decimal>,
    /// Bonus percentage.
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub bonus_percentage: Option<Decimal>,
}

/// Hours per weekday of one week of a work pattern.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct WeekHours {
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub monday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub tuesday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub wednesday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub thursday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub friday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub saturday: Option<Decimal>,
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub sunday: Option<Decimal>,
}

/// A two-week work pattern.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkPattern {
    /// Odd weeks.
    pub odd_weeks: Option<WeekHours>,
    /// Even weeks.
    pub even_weeks: Option<WeekHours>,
}

/// A working-hours period of an employment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingHours {
    /// UUID.
    pub id: String,
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day (inclusive), null while current.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// Loket's own "hours per week" (use for contract hours).
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub aggregated_hours_per_week: Option<Decimal>,
    /// Overrides the shift's full-time hours.
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub deviating_hours_per_week: Option<Decimal>,
    /// Administrative average (flexible contracts).
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub average_hours_per_week: Option<Decimal>,
    /// Administrative part-time factor (percentage).
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub average_parttime_factor: Option<Decimal>,
    /// The shift and its full-time norm.
    pub shift: Option<Shift>,
    /// Regular work pattern.
    pub regular_work_pattern: Option<bool>,
    /// Hours per day over two weeks.
    pub work_pattern: Option<WorkPattern>,
    /// Flexible hours contract kind.
    pub flexible_hours_contract: Option<Metadata>,
    /// Deviating SV days per period.
    pub deviating_sv_days_per_period: Option<i64>,
}

/// A wage period of an employment. `Debug` shows ids and dates only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wage {
    /// UUID.
    pub id: String,
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day, null while current.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// Gross amount, exact.
    #[serde(default, deserialize_with = "de::opt_decimal")]
    pub gross_wage: Option<Decimal>,
    /// Periodic (key 1) or hourly.
    pub gross_wage_type: Option<Metadata>,
    /// The amount is a full-time amount.
    pub is_gross_wage_full_time: Option<bool>,
    /// 1 = month, 3 = four weeks, 4 = week.
    pub payroll_period_type: Option<Metadata>,
}
debug_only!(Wage {
    id,
    start_date,
    end_date
});

/// The current organizational entity of one employment (`actualorganizationalentities`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualOrganizationalEntity {
    /// The employment UUID.
    pub employment_id: String,
    /// Its record active on the reference date.
    pub organizational_entity: Option<OrganizationalEntity>,
}

/// The current working hours of one employment (`actualworkinghours`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualWorkingHours {
    /// The employment UUID.
    pub employment_id: String,
    /// Its record active on the reference date.
    pub working_hours: Option<WorkingHours>,
}

/// The current wage of one employment (`actualwages`). `Debug` shows ids only.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualWage {
    /// The employment UUID.
    pub employment_id: String,
    /// Its record active on the reference date.
    pub wage: Option<Wage>,
}

// ---------------------------------------------------------------------------------------------
// Absences
// ---------------------------------------------------------------------------------------------

/// The end of an absence (full recovery or another reason).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndOfAbsence {
    /// The last day of absence.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub date: Option<NaiveDate>,
    /// Why it ended.
    pub reason: Option<Metadata>,
}
debug_only!(EndOfAbsence { date });

/// The read-only progress summary inside an absence.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbsenceProgressSummary {
    /// Start of the progress data.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Current incapacity, 1–100.
    pub current_incapacity_percentage: Option<i64>,
    /// The end of the absence, null while open.
    pub end_of_absence: Option<EndOfAbsence>,
}
debug_only!(AbsenceProgressSummary { start_date });

/// Reintegration (Wet verbetering poortwachter): structured fields only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reintegration {
    /// Goal.
    pub reintegration_goal: Option<Metadata>,
    /// When the plan of action was finalised.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub date_of_finalizing_plan_of_action: Option<NaiveDate>,
}
debug_only!(Reintegration {});

/// An absence (ziekmelding) of an employee. Free-text fields (`comments`, `caseManager`,
/// `contactInformation`) are deliberately not modelled, so they never leave the parser.
/// `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Absence {
    /// UUID.
    pub id: String,
    /// Illness or a vangnet type.
    pub cause_of_absence: Option<Metadata>,
    /// Expected duration category.
    pub expected_duration: Option<Metadata>,
    /// Expected to recover within two weeks.
    pub is_recovered_within_two_weeks: Option<bool>,
    /// The action asked from the arbodienst.
    pub action_to_be_taken_by_occupational_health_and_safety_service: Option<Metadata>,
    /// Accident type, null without an accident.
    pub accident_type: Option<Metadata>,
    /// Third-party liability.
    pub is_third_party_liability: Option<bool>,
    /// Occupational illness.
    pub is_work_related_illness: Option<bool>,
    /// Disrupted employment relationship.
    pub is_disrupted_employment_relationship: Option<bool>,
    /// Mobility issue.
    pub has_mobility_issue: Option<bool>,
    /// Hospitalised.
    pub is_hospitalised: Option<bool>,
    /// Hours worked on the first day, 1–8.
    pub hours_worked_on_first_day_of_absence: Option<i64>,
    /// Expected date of childbirth.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub expected_date_of_childbirth: Option<NaiveDate>,
    /// Expected end of maternity leave.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub expected_end_date_of_maternity_leave: Option<NaiveDate>,
    /// Read-only progress summary.
    pub progress: Option<AbsenceProgressSummary>,
    /// `endOfAbsence` at the top level, as some sources show it (see [`Absence::end_of_absence`]).
    pub end_of_absence: Option<EndOfAbsence>,
    /// Reintegration goal and plan date.
    pub reintegration: Option<Reintegration>,
}
debug_only!(Absence { id });

impl Absence {
    /// The end of the absence, wherever the server put it: inside `progress` (the OpenAPI
    /// document) or at the top level (seen in a third-party SDK). `progress` wins when both are
    /// set and carry a date.
    pub fn end_of_absence(&self) -> Option<&EndOfAbsence> {
        let nested = self
            .progress
            .as_ref()
            .and_then(|p| p.end_of_absence.as_ref());
        match (nested, self.end_of_absence.as_ref()) {
            (Some(n), Some(top)) if n.date.is_none() && top.date.is_some() => Some(top),
            (Some(n), _) => Some(n),
            (None, top) => top,
        }
    }
}

/// One step of an absence's incapacity chain. `comments` is not modelled.
/// `Debug` shows the id and dates only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbsenceProgress {
    /// UUID.
    pub id: String,
    /// First day this percentage applies.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day it applies, null for the current record.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
    /// 100 = fully unable to work.
    pub incapacity_percentage: Option<i64>,
    /// Kind of work resumption.
    pub type_of_work_resumption: Option<Metadata>,
}
debug_only!(AbsenceProgress {
    id,
    start_date,
    end_date
});

/// One period of the absence calendar.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarPeriod {
    /// First day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub start_date: Option<NaiveDate>,
    /// Last day.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub end_date: Option<NaiveDate>,
}
debug_only!(CalendarPeriod {});

/// Absence periods of one employment in a date window (the employer-wide absence calendar).
/// The employee's name is not modelled. `Debug` shows ids only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarAbsence {
    /// The employee.
    pub employee: Option<IdRef>,
    /// The employment.
    pub employment: Option<IdRef>,
    /// The department.
    pub department: Option<CodedRef>,
    /// The absence periods.
    #[serde(default = "Vec::new", deserialize_with = "de::null_as_empty")]
    pub calendar: Vec<CalendarPeriod>,
}
debug_only!(CalendarAbsence {
    employee,
    employment
});

// ---------------------------------------------------------------------------------------------
// Tolerant deserializers
// ---------------------------------------------------------------------------------------------

/// Deserializers shared by the models.
pub(crate) mod de {
    use super::*;
    use serde::de::Error as _;

    /// A list that may be `null`: `null` becomes empty.
    pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }

    /// A date `yyyy-MM-dd`; a date-time (`yyyy-MM-ddT…`) is cut to its date. `null` is `None`.
    pub fn opt_date<'de, D>(d: D) -> Result<Option<NaiveDate>, D::Error>
    where
        D: Deserializer<'de>,
    {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let date_part = match text.split_once('T') {
            Some((date, _)) => date,
            None => text.as_str(),
        };
        NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| D::Error::custom("a date is not in yyyy-MM-dd form"))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(serde_json::Number),
        Text(String),
    }

    /// An exact decimal from a JSON number (or a numeric string). `null` is `None`.
    ///
    /// The number's text is parsed directly into a `Decimal`, so `3200.10` stays `3200.10`
    /// instead of going through binary floating point arithmetic.
    pub fn opt_decimal<'de, D>(d: D) -> Result<Option<Decimal>, D::Error>
    where
        D: Deserializer<'de>,
    {
        match Option::<NumberOrText>::deserialize(d)? {
            None => Ok(None),
            Some(NumberOrText::Number(n)) => parse_decimal(&n.to_string())
                .map(Some)
                .ok_or_else(|| D::Error::custom("a number does not fit a decimal")),
            Some(NumberOrText::Text(s)) => parse_decimal(s.trim())
                .map(Some)
                .ok_or_else(|| D::Error::custom("a text is not a decimal number")),
        }
    }

    pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
        if text.contains(['e', 'E']) {
            Decimal::from_scientific(text).ok()
        } else {
            Decimal::from_str(text).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decimals_are_exact() {
        let w: Wage = serde_json::from_str(
            r#"{"id":"w1","grossWage":3200.10,"startDate":"2024-01-01","endDate":null}"#,
        )
        .unwrap();
        assert_eq!(w.gross_wage, Some(dec("3200.10")));
        assert_eq!(w.gross_wage.unwrap().to_string(), "3200.1");
        for (text, want) in [
            ("0.1", "0.1"),
            ("1234567.89", "1234567.89"),
            ("4321.09", "4321.09"),
            ("1e3", "1000"),
            ("\"2500.50\"", "2500.50"),
            ("12", "12"),
        ] {
            let w: Wage =
                serde_json::from_str(&format!(r#"{{"id":"w","grossWage":{text}}}"#)).unwrap();
            assert_eq!(w.gross_wage, Some(dec(want)), "{text}");
        }
        let w: Wage = serde_json::from_str(r#"{"id":"w","grossWage":null}"#).unwrap();
        assert_eq!(w.gross_wage, None);
        assert!(serde_json::from_str::<Wage>(r#"{"id":"w","grossWage":"lots"}"#).is_err());
        assert!(serde_json::from_str::<Wage>(r#"{"id":"w","grossWage":true}"#).is_err());
    }

    #[test]
    fn dates_nulls_and_unknown_fields_are_tolerated() {
        let e: Employment = serde_json::from_value(json!({
            "id": "e1", "startDate": "2021-03-01T00:00:00", "endDate": null,
            "commissionUntilDate": "2022-02-28", "somethingNew": {"x": 1},
            "employee": {"id": "p1", "employeeNumber": 156, "formattedName": "Bergen S.L. van"},
            "employmentDurationType": {"key": 2, "value": "Bepaalde tijd"},
            "payrollAdministration": {"id": "pa1", "name": null, "clientNumber": 1234},
            "employmentContractType": null
        }))
        .unwrap();
        assert_eq!(e.start_date, NaiveDate::from_ymd_opt(2021, 3, 1));
        assert_eq!(e.end_date, None);
        assert_eq!(
            e.commission_until_date,
            NaiveDate::from_ymd_opt(2022, 2, 28)
        );
        assert_eq!(e.employee.as_ref().unwrap().id.as_deref(), Some("p1"));
        assert_eq!(e.employment_duration_type.as_ref().unwrap().key, Some(2));
        assert!(
            serde_json::from_value::<Employment>(json!({"id": "e", "startDate": "01-03-2021"}))
                .is_err()
        );
        assert!(serde_json::from_value::<Employment>(json!({"startDate": null})).is_err());
    }

    #[test]
    fn absence_drops_free_text_and_finds_end_in_both_places() {
        let a: Absence = serde_json::from_value(json!({
            "id": "ab1",
            "causeOfAbsence": {"key": 1, "value": "Ziekte"},
            "comments": "CANARY-comment", "caseManager": {"name": "CANARY-cm"},
            "contactInformation": {"street": "CANARY-street"},
            "reintegration": {"reintegrationGoal": {"key": 1, "value": "x"}, "dateOfFinalizingPlanOfAction": "2025-03-01"},
            "progress": {"startDate": "2025-02-03", "currentIncapacityPercentage": 50,
                          "endOfAbsence": {"date": "2025-03-10", "reason": {"key": 1, "value": "Hersteld"}}}
        }))
        .unwrap();
        assert_eq!(
            a.end_of_absence().unwrap().date,
            NaiveDate::from_ymd_opt(2025, 3, 10)
        );
        assert_eq!(
            a.progress.as_ref().unwrap().current_incapacity_percentage,
            Some(50)
        );
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("CANARY") && !dbg.contains("Ziekte"), "{dbg}");

        let top: Absence = serde_json::from_value(json!({
            "id": "ab2", "progress": {"startDate": "2025-02-03", "endOfAbsence": null},
            "endOfAbsence": {"date": "2025-02-20", "reason": null}
        }))
        .unwrap();
        assert_eq!(
            top.end_of_absence().unwrap().date,
            NaiveDate::from_ymd_opt(2025, 2, 20)
        );
        let open: Absence = serde_json::from_value(json!({"id": "ab3", "progress": null})).unwrap();
        assert!(open.end_of_absence().is_none());
    }

    #[test]
    fn debug_shows_no_personal_data() {
        let e: Employee = serde_json::from_value(json!({
            "id": "p1", "employeeNumber": 7,
            "personalDetails": {"firstName": "CANARY-first", "lastName": "CANARY-last", "dateOfBirth": "1995-05-21"},
            "contactInformation": {"emailAddress": "canary@example.nl"},
            "address": {"street": "CANARY-street", "houseNumber": 12},
            "exclusionFromAbsenceStatus": false
        }))
        .unwrap();
        let bsn: CitizenServiceNumber =
            serde_json::from_value(json!({"citizenServiceNumber": "042168588"})).unwrap();
        let w: Wage = serde_json::from_value(json!({"id": "w1", "grossWage": 98765.43})).unwrap();
        let dbg = format!("{e:?} {bsn:?} {w:?} {:?}", e.personal_details);
        for canary in ["CANARY", "canary", "1995", "042168588", "98765"] {
            assert!(!dbg.contains(canary), "{canary} in {dbg}");
        }
        assert!(dbg.contains("p1") && dbg.contains("w1"));
    }

    #[test]
    fn envelopes_and_comprehensive() {
        let list: ListEnvelope<EmploymentComprehensive> = serde_json::from_value(json!({
            "totalSize": 1, "pageSize": 250, "totalPages": 1, "currentPage": 1,
            "version": {"resourceVersion": "2019-12-16", "obsoleteDate": null},
            "messages": null,
            "_embedded": [{
                "id": "e1", "startDate": "2020-01-01",
                "employee": {"id": "p1", "personalDetails": {"lastName": "X"}},
                "workinghours": {"id": "wh1", "aggregatedHoursPerWeek": 24.5,
                    "shift": {"fullTimeHoursPerWeek": 40},
                    "workPattern": {"oddWeeks": {"monday": 8, "tuesday": 0}, "evenWeeks": null}},
                "organizationalEntity": {"id": "oe1", "department": {"key": "d1", "code": 2}},
                "wage": null
            }]
        }))
        .unwrap();
        let item = &list.embedded[0];
        assert_eq!(item.employment.id, "e1");
        assert_eq!(item.employee.as_ref().unwrap().id, "p1");
        let wh = item.working_hours.as_ref().unwrap();
        assert_eq!(wh.aggregated_hours_per_week, Some(dec("24.5")));
        assert_eq!(
            wh.shift.as_ref().unwrap().full_time_hours_per_week,
            Some(dec("40"))
        );
        assert_eq!(
            wh.work_pattern
                .as_ref()
                .unwrap()
                .odd_weeks
                .as_ref()
                .unwrap()
                .monday,
            Some(dec("8"))
        );
        assert!(item.wage.is_none());
        assert_eq!(
            list.version.unwrap().resource_version,
            NaiveDate::from_ymd_opt(2019, 12, 16)
        );
        assert!(list.messages.is_empty());

        let empty: ListEnvelope<Department> =
            serde_json::from_value(json!({"_embedded": null, "totalPages": 0})).unwrap();
        assert!(empty.embedded.is_empty());
        let single: SingleEnvelope<CitizenServiceNumber> =
            serde_json::from_value(json!({"content": {"citizenServiceNumber": null}})).unwrap();
        assert_eq!(single.content.unwrap().citizen_service_number, None);
        let v: ListEnvelope<LastModifiedVersionNumber> = serde_json::from_value(
            json!({"_embedded": [{"id": "x", "lastModifiedVersionNumber": 9007199254740993_i64}]}),
        )
        .unwrap();
        assert_eq!(v.embedded[0].last_modified_version_number, 9007199254740993);
    }
}
