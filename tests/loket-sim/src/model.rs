//! The simulator's own data model: the "truth" behind every Loket response.
//!
//! These types are what `GET /_sim/truth` serialises (snake_case field names, dates as
//! `yyyy-MM-dd`, ids as lowercase hyphenated UUIDs, money as integer cents). They are
//! deliberately close to Loket's concepts but are NOT Loket's wire format; `render.rs`
//! turns them into Loket JSON. Key/value metadata is stored as the key only; the value
//! texts live in `catalog.rs`.
//!
//! Period chains (organizational entities, working hours, wages, absence progress) are
//! kept sorted by `start_date` with `end_date` derived from the next record's start (see
//! [`relink`]), exactly like Loket's "linked chain" semantics.
//!
//! No type here derives `Debug`: they hold names, BSNs, salaries and absence free text.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The whole simulated dataset.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct World {
    /// The generator's "today" (fixed for the lifetime of a simulator).
    pub today: NaiveDate,
    /// The last issued value of the single, global last-modified version counter.
    pub version_counter: i64,
    /// Employers in API order (by employer number).
    pub employers: Vec<Employer>,
    pub employees: BTreeMap<Uuid, Employee>,
    pub employments: BTreeMap<Uuid, Employment>,
    pub absences: BTreeMap<Uuid, Absence>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Address {
    pub street: String,
    pub house_number: i32,
    pub house_number_addition: Option<String>,
    pub postal_code: String,
    pub city: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Employer {
    pub id: Uuid,
    pub employer_number: i32,
    pub company_name: String,
    pub chamber_of_commerce_number: String,
    pub address: Address,
    pub phone_number: String,
    pub email_address: String,
    pub website: String,
    pub sbi_key: i32,
    pub payroll_administrations: Vec<PayrollAdministration>,
    /// Flat list; the tree is given by `parent_id`.
    pub departments: Vec<Department>,
    pub functions: Vec<JobFunction>,
    /// Employees in API order (by employee number).
    pub employee_ids: Vec<Uuid>,
    /// Employments in API order.
    pub employment_ids: Vec<Uuid>,
    pub next_employee_number: i32,
    pub next_payroll_id: i32,
    pub last_modified_version_number: i64,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct PayrollAdministration {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub client_number: i32,
    /// The loonheffingennummer, e.g. `123456782L01`.
    pub payroll_taxes_number: String,
    /// 1 = month, 3 = 4 weeks, 4 = week.
    pub payroll_period_type_key: i32,
    pub start_date: NaiveDate,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Department {
    pub id: Uuid,
    pub code: i32,
    pub description: String,
    pub parent_id: Option<Uuid>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct JobFunction {
    pub id: Uuid,
    pub description: String,
    pub group: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Employee {
    pub id: Uuid,
    pub employer_id: Uuid,
    pub employee_number: i32,
    pub first_name: String,
    pub initials: String,
    pub prefix: Option<String>,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    /// 1 = Man, 2 = Vrouw.
    pub gender_key: i32,
    pub place_of_birth: String,
    pub email_address: Option<String>,
    pub phone_number: Option<String>,
    pub mobile_phone_number: Option<String>,
    pub business_email_address: Option<String>,
    pub business_phone_number: Option<String>,
    pub address: Address,
    /// Burgerservicenummer (9 digits, passes the 11-proof), returned only by the
    /// `citizenservicenumber` endpoint.
    pub bsn: Option<String>,
    pub employment_ids: Vec<Uuid>,
    pub absence_ids: Vec<Uuid>,
}

impl Employee {
    /// Loket's `formattedName`: last name, initials, prefix (e.g. `Bergen S.L. van`).
    pub fn formatted_name(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{} {} {}", self.last_name, self.initials, p),
            None => format!("{} {}", self.last_name, self.initials),
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Employment {
    pub id: Uuid,
    pub employer_id: Uuid,
    pub employee_id: Uuid,
    pub payroll_administration_id: Uuid,
    pub payroll_id: i32,
    pub income_relationship_number: i32,
    pub start_date: NaiveDate,
    /// Last day of employment (inclusive), if terminated.
    pub end_date: Option<NaiveDate>,
    pub historical_start_date: Option<NaiveDate>,
    /// 1 = Onbepaalde tijd, 2 = Bepaalde tijd.
    pub employment_duration_type_key: i32,
    pub commission_until_date: Option<NaiveDate>,
    pub end_of_employment_reason_key: Option<i32>,
    pub organizational_entities: Vec<OrganizationalEntity>,
    pub working_hours: Vec<WorkingHours>,
    pub wages: Vec<Wage>,
    pub last_modified_version_number: i64,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct OrganizationalEntity {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub department_id: Uuid,
    pub function_id: Uuid,
    pub place_of_employment: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkingHours {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Loket's `aggregatedHoursPerWeek`: the contract hours.
    pub aggregated_hours_per_week: f64,
    pub shift_number: i32,
    pub full_time_hours_per_week: f64,
    pub work_pattern: Option<WorkPattern>,
    pub deviating_hours_per_week: Option<f64>,
    pub average_parttime_factor: Option<f64>,
    pub regular_work_pattern: bool,
}

/// Hours per day, Monday first, for odd and even weeks.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkPattern {
    pub odd_weeks: [f64; 7],
    pub even_weeks: [f64; 7],
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Wage {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub gross_wage_cents: i64,
    /// 1 = Periodeloon, 2 = Uurloon.
    pub gross_wage_type_key: i32,
    pub is_gross_wage_full_time: bool,
    pub payroll_period_type_key: i32,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Absence {
    pub id: Uuid,
    pub employee_id: Uuid,
    pub cause_of_absence_key: i32,
    pub expected_duration_key: Option<i32>,
    pub is_recovered_within_two_weeks: bool,
    pub action_key: i32,
    pub is_work_related_illness: bool,
    pub is_disrupted_employment_relationship: bool,
    pub hours_worked_on_first_day: Option<i32>,
    pub expected_date_of_childbirth: Option<NaiveDate>,
    pub expected_end_date_of_maternity_leave: Option<NaiveDate>,
    /// Free text as entered in Loket (the agent must never keep it).
    pub comments: Option<String>,
    pub end_of_absence: Option<EndOfAbsence>,
    /// Never empty; sorted by start date; the first record's start is the first sick day.
    pub progress: Vec<AbsenceProgress>,
}

impl Absence {
    /// The first day of absence (start of the first progress record).
    pub fn first_day(&self) -> Option<NaiveDate> {
        self.progress.first().map(|p| p.start_date)
    }

    /// Last day of absence, if closed.
    pub fn last_day(&self) -> Option<NaiveDate> {
        self.end_of_absence.as_ref().map(|e| e.date)
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct EndOfAbsence {
    pub date: NaiveDate,
    /// 1 = Hersteld, ...
    pub reason_key: i32,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct AbsenceProgress {
    pub id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub incapacity_percentage: i32,
    pub type_of_work_resumption_key: Option<i32>,
    pub comments: Option<String>,
}

/// A record in a linked chain of periods.
pub trait Period {
    fn start(&self) -> NaiveDate;
    fn end(&self) -> Option<NaiveDate>;
    fn set_end(&mut self, end: Option<NaiveDate>);
}

macro_rules! impl_period {
    ($($t:ty),*) => {$(
        impl Period for $t {
            fn start(&self) -> NaiveDate { self.start_date }
            fn end(&self) -> Option<NaiveDate> { self.end_date }
            fn set_end(&mut self, end: Option<NaiveDate>) { self.end_date = end; }
        }
    )*};
}
impl_period!(OrganizationalEntity, WorkingHours, Wage, AbsenceProgress);

/// Sort a chain by start date and derive every end date from the next record's start
/// (the last record ends at `last_end`, normally `None`).
pub fn relink<T: Period>(chain: &mut [T], last_end: Option<NaiveDate>) {
    chain.sort_by_key(|p| p.start());
    let starts: Vec<NaiveDate> = chain.iter().map(|p| p.start()).collect();
    let n = chain.len();
    for (i, rec) in chain.iter_mut().enumerate() {
        if i + 1 < n {
            rec.set_end(starts[i + 1].pred_opt());
        } else {
            rec.set_end(last_end);
        }
    }
}

/// The record of a chain active on `date`, if any.
pub fn active_on<T: Period>(chain: &[T], date: NaiveDate) -> Option<&T> {
    chain
        .iter()
        .rev()
        .find(|p| p.start() <= date && p.end().is_none_or(|e| e >= date))
}
