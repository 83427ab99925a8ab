//! Normalized records: what the sink writes, after scope and privacy filtering.
//!
//! One struct per entity table of the arbodienst database (see `target-schema.md`). The fields are
//! exactly the contract's columns, minus the bookkeeping columns the sink manages itself
//! (`content_hash`, `first_seen_at`, `updated_at`, `deleted_at`, and `employer.last_synced_at`).
//! These are *not* the Loket wire models (those live in `loket::models`); the mapping between the
//! two is done by the sync.
//!
//! [`Record`] wraps them for the sink: [`Record::columns`] gives the values in the canonical column
//! order of [`Entity::columns`], and [`Record::content_hash`] hashes that canonical form.
//!
//! Privacy: the `Debug` output of records that hold personal data ([`Employee`], [`SalaryPeriod`],
//! [`Absence`], [`AbsenceProgress`]) and of every [`Value`] shows no field values.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};

/// Version tag of the canonical encoding hashed by [`content_hash`]. Changing the encoding (or the
/// column set of an entity) changes every hash; the sink then refreshes hashes without journal rows
/// for rows whose values did not change.
pub const CONTENT_HASH_VERSION: &str = "arbosync-record-v1";

/// An entity table of the arbodienst database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Employer,
    Department,
    Employee,
    Employment,
    DepartmentPeriod,
    WorkweekPeriod,
    SalaryPeriod,
    Absence,
    AbsenceProgress,
}

/// The SQL-independent type of a column. Each backend maps it to its own SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (UUIDs, names, Loket `{key, value}` values, JSON text).
    Text,
    /// 64-bit integer (numbers, Loket `key` codes).
    Int,
    /// Exact money amount with two decimals (`NUMERIC(12,2)` / `'4321.09'`).
    Money,
    /// Exact decimal without a fixed scale (hours, days, percentages).
    Decimal,
    /// Calendar date (`DATE` / `'YYYY-MM-DD'`).
    Date,
    /// Boolean (`BOOLEAN` / `0`, `1`).
    Bool,
}

/// One column of an entity table, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn col(name: &'static str, ty: ColumnType) -> ColumnDef {
    ColumnDef { name, ty }
}

use ColumnType as T;

const EMPLOYER_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("source", T::Text),
    col("employer_number", T::Int),
    col("name", T::Text),
    col("chamber_of_commerce_number", T::Text),
];

const DEPARTMENT_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("code", T::Int),
    col("name", T::Text),
    col("parent_id", T::Text),
];

const EMPLOYEE_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employee_number", T::Int),
    col("initials", T::Text),
    col("first_name", T::Text),
    col("prefix", T::Text),
    col("last_name", T::Text),
    col("formatted_name", T::Text),
    col("date_of_birth", T::Date),
    col("gender", T::Text),
    col("gender_code", T::Int),
    col("email", T::Text),
    col("phone", T::Text),
    col("mobile_phone", T::Text),
    col("street", T::Text),
    col("house_number", T::Int),
    col("house_number_addition", T::Text),
    col("postal_code", T::Text),
    col("city", T::Text),
    col("country_code", T::Text),
    col("bsn", T::Text),
];

const EMPLOYMENT_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employee_id", T::Text),
    col("start_date", T::Date),
    col("end_date", T::Date),
    col("planned_end_date", T::Date),
    col("contract_type", T::Text),
    col("contract_type_code", T::Int),
    col("payroll_tax_number", T::Text),
];

const DEPARTMENT_PERIOD_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employment_id", T::Text),
    col("department_id", T::Text),
    col("function_name", T::Text),
    col("start_date", T::Date),
    col("end_date", T::Date),
];

const WORKWEEK_PERIOD_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employment_id", T::Text),
    col("start_date", T::Date),
    col("end_date", T::Date),
    col("hours_per_week", T::Decimal),
    col("days_per_week", T::Decimal),
    col("parttime_percentage", T::Decimal),
    col("work_pattern", T::Text),
];

const SALARY_PERIOD_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employment_id", T::Text),
    col("start_date", T::Date),
    col("end_date", T::Date),
    col("gross_wage", T::Money),
    col("wage_type", T::Text),
    col("payroll_period", T::Text),
    col("is_full_time_amount", T::Bool),
];

const ABSENCE_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("employee_id", T::Text),
    col("employment_id", T::Text),
    col("first_day", T::Date),
    col("last_day", T::Date),
    col("end_reason", T::Text),
    col("end_reason_code", T::Int),
    col("cause", T::Text),
    col("cause_code", T::Int),
    col("expected_duration", T::Text),
    col("expected_duration_code", T::Int),
    col("is_work_related", T::Bool),
    col("is_accident", T::Bool),
    col("is_third_party_liability", T::Bool),
    col("current_incapacity_percentage", T::Decimal),
];

const ABSENCE_PROGRESS_COLUMNS: &[ColumnDef] = &[
    col("id", T::Text),
    col("employer_id", T::Text),
    col("absence_id", T::Text),
    col("start_date", T::Date),
    col("end_date", T::Date),
    col("incapacity_percentage", T::Decimal),
    col("work_resumption_type", T::Text),
    col("work_resumption_type_code", T::Int),
];

impl Entity {
    /// Every entity, parents before children (the order the sink applies a batch in).
    pub const ALL: [Entity; 9] = [
        Entity::Employer,
        Entity::Department,
        Entity::Employee,
        Entity::Employment,
        Entity::DepartmentPeriod,
        Entity::WorkweekPeriod,
        Entity::SalaryPeriod,
        Entity::Absence,
        Entity::AbsenceProgress,
    ];

    /// The table name (also the `mutation.entity` value).
    pub fn table(self) -> &'static str {
        match self {
            Entity::Employer => "employer",
            Entity::Department => "department",
            Entity::Employee => "employee",
            Entity::Employment => "employment",
            Entity::DepartmentPeriod => "employment_department_period",
            Entity::WorkweekPeriod => "employment_workweek_period",
            Entity::SalaryPeriod => "employment_salary_period",
            Entity::Absence => "absence",
            Entity::AbsenceProgress => "absence_progress",
        }
    }

    /// The entity whose table is named `table`.
    pub fn from_table(table: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.table() == table)
    }

    /// The record columns in canonical order (`id` and `employer_id` first).
    pub fn columns(self) -> &'static [ColumnDef] {
        match self {
            Entity::Employer => EMPLOYER_COLUMNS,
            Entity::Department => DEPARTMENT_COLUMNS,
            Entity::Employee => EMPLOYEE_COLUMNS,
            Entity::Employment => EMPLOYMENT_COLUMNS,
            Entity::DepartmentPeriod => DEPARTMENT_PERIOD_COLUMNS,
            Entity::WorkweekPeriod => WORKWEEK_PERIOD_COLUMNS,
            Entity::SalaryPeriod => SALARY_PERIOD_COLUMNS,
            Entity::Absence => ABSENCE_COLUMNS,
            Entity::AbsenceProgress => ABSENCE_PROGRESS_COLUMNS,
        }
    }

    /// The column naming the record this one hangs off (used to scope deletions), if any.
    pub fn parent_column(self) -> Option<&'static str> {
        match self {
            Entity::Employer | Entity::Department | Entity::Employee => None,
            Entity::Employment | Entity::Absence => Some("employee_id"),
            Entity::DepartmentPeriod | Entity::WorkweekPeriod | Entity::SalaryPeriod => {
                Some("employment_id")
            }
            Entity::AbsenceProgress => Some("absence_id"),
        }
    }

    /// The entities whose rows hang off this one through their [`Entity::parent_column`].
    pub fn children(self) -> &'static [Entity] {
        match self {
            Entity::Employee => &[Entity::Employment, Entity::Absence],
            Entity::Employment => &[
                Entity::DepartmentPeriod,
                Entity::WorkweekPeriod,
                Entity::SalaryPeriod,
            ],
            Entity::Absence => &[Entity::AbsenceProgress],
            _ => &[],
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}

/// A column value. `Debug` never shows the value itself (it may be a BSN or a wage).
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Decimal(Decimal),
    Date(NaiveDate),
    Bool(bool),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Value::Null => "Null",
            Value::Text(_) => "Text(..)",
            Value::Int(_) => "Int(..)",
            Value::Decimal(_) => "Decimal(..)",
            Value::Date(_) => "Date(..)",
            Value::Bool(_) => "Bool(..)",
        })
    }
}

impl Value {
    /// Whether this value may be stored in a column of type `ty` (`Null` fits every column).
    pub fn fits(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::Text(_), ColumnType::Text)
                | (Value::Int(_), ColumnType::Int)
                | (Value::Decimal(_), ColumnType::Money | ColumnType::Decimal)
                | (Value::Date(_), ColumnType::Date)
                | (Value::Bool(_), ColumnType::Bool)
        )
    }

    /// Canonical, type-tagged text of the value for hashing. Decimals are normalized so that
    /// `32`, `32.0` and `32.00` hash the same (they compare equal too).
    fn canonical(&self) -> String {
        match self {
            Value::Null => "N".to_owned(),
            Value::Text(s) => format!("T:{s}"),
            Value::Int(i) => format!("I:{i}"),
            Value::Decimal(d) => format!("D:{}", d.normalize()),
            Value::Date(d) => format!("d:{}", d.format("%Y-%m-%d")),
            Value::Bool(b) => format!("B:{}", u8::from(*b)),
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn opt_text(s: &Option<String>) -> Value {
    s.as_deref().map_or(Value::Null, text)
}

fn opt_int(i: Option<i64>) -> Value {
    i.map_or(Value::Null, Value::Int)
}

fn opt_date(d: Option<NaiveDate>) -> Value {
    d.map_or(Value::Null, Value::Date)
}

fn opt_bool(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

fn opt_decimal(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, Value::Decimal)
}

/// Money is stored with exactly two decimals; rounding here keeps hash and stored value in step.
fn opt_money(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, |d| {
        Value::Decimal(d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
    })
}

/// The employer (`employer`). Its `employer_id` column equals `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employer {
    pub id: String,
    /// `loket` (room for other HR systems later).
    pub source: String,
    pub employer_number: Option<i64>,
    pub name: String,
    pub chamber_of_commerce_number: Option<String>,
}

/// A department (`department`, bedrijfsonderdeel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub employer_id: String,
    pub code: Option<i64>,
    pub name: Option<String>,
    pub parent_id: Option<String>,
}

/// The person (`employee`, werknemer). `bsn` must be `None` unless the employer's `bsn` option is on.
#[derive(Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: String,
    pub employer_id: String,
    pub employee_number: i64,
    pub initials: Option<String>,
    pub first_name: Option<String>,
    pub prefix: Option<String>,
    pub last_name: Option<String>,
    pub formatted_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<String>,
    pub gender_code: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub street: Option<String>,
    pub house_number: Option<i64>,
    pub house_number_addition: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    /// ISO country code.
    pub country_code: Option<String>,
    pub bsn: Option<String>,
}

/// An employment (`employment`, dienstverband).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employment {
    pub id: String,
    pub employer_id: String,
    pub employee_id: String,
    pub start_date: NaiveDate,
    /// Last day (inclusive); `None` while open-ended.
    pub end_date: Option<NaiveDate>,
    /// End of a fixed-term contract (Loket `commissionUntilDate`).
    pub planned_end_date: Option<NaiveDate>,
    /// Loket `employmentDurationType.value`.
    pub contract_type: Option<String>,
    /// Loket `employmentDurationType.key`.
    pub contract_type_code: Option<i64>,
    pub payroll_tax_number: Option<String>,
}

/// A department period of an employment (`employment_department_period`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentPeriod {
    pub id: String,
    pub employer_id: String,
    pub employment_id: String,
    pub department_id: Option<String>,
    pub function_name: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

/// A work-week period of an employment (`employment_workweek_period`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkweekPeriod {
    pub id: String,
    pub employer_id: String,
    pub employment_id: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub hours_per_week: Option<Decimal>,
    pub days_per_week: Option<Decimal>,
    pub parttime_percentage: Option<Decimal>,
    /// Hours per weekday for odd and even weeks, as JSON text.
    pub work_pattern: Option<String>,
}

/// How a wage amount is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WageType {
    Period,
    Hourly,
}

impl WageType {
    pub fn as_str(self) -> &'static str {
        match self {
            WageType::Period => "period",
            WageType::Hourly => "hourly",
        }
    }
}

/// The payroll period a wage belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayrollPeriod {
    Month,
    FourWeeks,
    Week,
}

impl PayrollPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            PayrollPeriod::Month => "month",
            PayrollPeriod::FourWeeks => "four_weeks",
            PayrollPeriod::Week => "week",
        }
    }
}

/// A salary period of an employment (`employment_salary_period`); only with the `salary` option.
#[derive(Clone, PartialEq, Eq)]
pub struct SalaryPeriod {
    pub id: String,
    pub employer_id: String,
    pub employment_id: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Stored with two decimals (rounded half away from zero).
    pub gross_wage: Option<Decimal>,
    pub wage_type: Option<WageType>,
    pub payroll_period: Option<PayrollPeriod>,
    pub is_full_time_amount: Option<bool>,
}

/// A sick report (`absence`, verzuim); only with the `absences` option. No free text, ever.
#[derive(Clone, PartialEq, Eq)]
pub struct Absence {
    pub id: String,
    pub employer_id: String,
    pub employee_id: String,
    /// Resolved by date overlap; `None` when ambiguous.
    pub employment_id: Option<String>,
    pub first_day: NaiveDate,
    /// `None` while the absence is open.
    pub last_day: Option<NaiveDate>,
    pub end_reason: Option<String>,
    pub end_reason_code: Option<i64>,
    pub cause: Option<String>,
    pub cause_code: Option<i64>,
    pub expected_duration: Option<String>,
    pub expected_duration_code: Option<i64>,
    pub is_work_related: Option<bool>,
    pub is_accident: Option<bool>,
    pub is_third_party_liability: Option<bool>,
    /// 1–100, from the latest progress record.
    pub current_incapacity_percentage: Option<Decimal>,
}

/// A progress period of an absence (`absence_progress`: recovery and partial recovery).
#[derive(Clone, PartialEq, Eq)]
pub struct AbsenceProgress {
    pub id: String,
    pub employer_id: String,
    pub absence_id: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// 100 = fully unable to work.
    pub incapacity_percentage: Option<Decimal>,
    pub work_resumption_type: Option<String>,
    pub work_resumption_type_code: Option<i64>,
}

/// Writes `Name { entity, id }` only: for records that hold personal data.
fn redacted_debug(f: &mut fmt::Formatter<'_>, name: &str, entity: Entity, id: &str) -> fmt::Result {
    f.debug_struct(name)
        .field("entity", &entity.table())
        .field("id", &id)
        .finish_non_exhaustive()
}

impl fmt::Debug for Employee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "Employee", Entity::Employee, &self.id)
    }
}

impl fmt::Debug for SalaryPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "SalaryPeriod", Entity::SalaryPeriod, &self.id)
    }
}

impl fmt::Debug for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "Absence", Entity::Absence, &self.id)
    }
}

impl fmt::Debug for AbsenceProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "AbsenceProgress", Entity::AbsenceProgress, &self.id)
    }
}

/// Any normalized record, as handed to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "records live in batches of a few thousand; one allocation per boxed employee buys nothing"
)]
pub enum Record {
    Employer(Employer),
    Department(Department),
    Employee(Employee),
    Employment(Employment),
    DepartmentPeriod(DepartmentPeriod),
    WorkweekPeriod(WorkweekPeriod),
    SalaryPeriod(SalaryPeriod),
    Absence(Absence),
    AbsenceProgress(AbsenceProgress),
}

impl Record {
    pub fn entity(&self) -> Entity {
        match self {
            Record::Employer(_) => Entity::Employer,
            Record::Department(_) => Entity::Department,
            Record::Employee(_) => Entity::Employee,
            Record::Employment(_) => Entity::Employment,
            Record::DepartmentPeriod(_) => Entity::DepartmentPeriod,
            Record::WorkweekPeriod(_) => Entity::WorkweekPeriod,
            Record::SalaryPeriod(_) => Entity::SalaryPeriod,
            Record::Absence(_) => Entity::Absence,
            Record::AbsenceProgress(_) => Entity::AbsenceProgress,
        }
    }

    /// The source system's id of the record.
    pub fn id(&self) -> &str {
        match self {
            Record::Employer(r) => &r.id,
            Record::Department(r) => &r.id,
            Record::Employee(r) => &r.id,
            Record::Employment(r) => &r.id,
            Record::DepartmentPeriod(r) => &r.id,
            Record::WorkweekPeriod(r) => &r.id,
            Record::SalaryPeriod(r) => &r.id,
            Record::Absence(r) => &r.id,
            Record::AbsenceProgress(r) => &r.id,
        }
    }

    /// The owning employer (for an [`Employer`], its own id).
    pub fn employer_id(&self) -> &str {
        match self {
            Record::Employer(r) => &r.id,
            Record::Department(r) => &r.employer_id,
            Record::Employee(r) => &r.employer_id,
            Record::Employment(r) => &r.employer_id,
            Record::DepartmentPeriod(r) => &r.employer_id,
            Record::WorkweekPeriod(r) => &r.employer_id,
            Record::SalaryPeriod(r) => &r.employer_id,
            Record::Absence(r) => &r.employer_id,
            Record::AbsenceProgress(r) => &r.employer_id,
        }
    }

    /// The column values in the canonical order of [`Entity::columns`].
    pub fn columns(&self) -> Vec<(&'static str, Value)> {
        let values = match self {
            Record::Employer(r) => vec![
                text(&r.id),
                text(&r.id),
                text(&r.source),
                opt_int(r.employer_number),
                text(&r.name),
                opt_text(&r.chamber_of_commerce_number),
            ],
            Record::Department(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                opt_int(r.code),
                opt_text(&r.name),
                opt_text(&r.parent_id),
            ],
            Record::Employee(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                Value::Int(r.employee_number),
                opt_text(&r.initials),
                opt_text(&r.first_name),
                opt_text(&r.prefix),
                opt_text(&r.last_name),
                opt_text(&r.formatted_name),
                opt_date(r.date_of_birth),
                opt_text(&r.gender),
                opt_int(r.gender_code),
                opt_text(&r.email),
                opt_text(&r.phone),
                opt_text(&r.mobile_phone),
                opt_text(&r.street),
                opt_int(r.house_number),
                opt_text(&r.house_number_addition),
                opt_text(&r.postal_code),
                opt_text(&r.city),
                opt_text(&r.country_code),
                opt_text(&r.bsn),
            ],
            Record::Employment(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.employee_id),
                Value::Date(r.start_date),
                opt_date(r.end_date),
                opt_date(r.planned_end_date),
                opt_text(&r.contract_type),
                opt_int(r.contract_type_code),
                opt_text(&r.payroll_tax_number),
            ],
            Record::DepartmentPeriod(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.employment_id),
                opt_text(&r.department_id),
                opt_text(&r.function_name),
                Value::Date(r.start_date),
                opt_date(r.end_date),
            ],
            Record::WorkweekPeriod(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.employment_id),
                Value::Date(r.start_date),
                opt_date(r.end_date),
                opt_decimal(r.hours_per_week),
                opt_decimal(r.days_per_week),
                opt_decimal(r.parttime_percentage),
                opt_text(&r.work_pattern),
            ],
            Record::SalaryPeriod(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.employment_id),
                Value::Date(r.start_date),
                opt_date(r.end_date),
                opt_money(r.gross_wage),
                r.wage_type.map_or(Value::Null, |t| text(t.as_str())),
                r.payroll_period.map_or(Value::Null, |p| text(p.as_str())),
                opt_bool(r.is_full_time_amount),
            ],
            Record::Absence(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.employee_id),
                opt_text(&r.employment_id),
                Value::Date(r.first_day),
                opt_date(r.last_day),
                opt_text(&r.end_reason),
                opt_int(r.end_reason_code),
                opt_text(&r.cause),
                opt_int(r.cause_code),
                opt_text(&r.expected_duration),
                opt_int(r.expected_duration_code),
                opt_bool(r.is_work_related),
                opt_bool(r.is_accident),
                opt_bool(r.is_third_party_liability),
                opt_decimal(r.current_incapacity_percentage),
            ],
            Record::AbsenceProgress(r) => vec![
                text(&r.id),
                text(&r.employer_id),
                text(&r.absence_id),
                Value::Date(r.start_date),
                opt_date(r.end_date),
                opt_decimal(r.incapacity_percentage),
                opt_text(&r.work_resumption_type),
                opt_int(r.work_resumption_type_code),
            ],
        };
        self.entity()
            .columns()
            .iter()
            .map(|c| c.name)
            .zip(values)
            .collect()
    }

    /// Hex SHA-256 of the canonical encoding of [`Record::columns`]; see [`content_hash`].
    pub fn content_hash(&self) -> String {
        content_hash(self.entity(), &self.columns())
    }
}

/// Hex SHA-256 over a canonical, versioned encoding of an entity's columns: the JSON array
/// `[CONTENT_HASH_VERSION, table, [[column, tagged value], ...]]`. JSON escaping makes the encoding
/// unambiguous; values are type-tagged and decimals normalized (see `Value::canonical`).
///
/// The sink uses this too, to recompute the hash of a stored row it changed itself (BSN purge).
pub fn content_hash(entity: Entity, columns: &[(&str, Value)]) -> String {
    // Written straight into one buffer: the same bytes as `serde_json::json!(..).to_string()`.
    let mut buf: Vec<u8> = Vec::with_capacity(64 + columns.len() * 32);
    buf.push(b'[');
    push_json_string(&mut buf, CONTENT_HASH_VERSION);
    buf.push(b',');
    push_json_string(&mut buf, entity.table());
    buf.extend_from_slice(b",[");
    for (i, (name, value)) in columns.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'[');
        push_json_string(&mut buf, name);
        buf.push(b',');
        push_json_string(&mut buf, &value.canonical());
        buf.push(b']');
    }
    buf.extend_from_slice(b"]]");
    hex::encode(Sha256::digest(&buf))
}

fn push_json_string(buf: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail (no I/O, strings are always valid JSON).
    if serde_json::to_writer(&mut *buf, s).is_err() {
        unreachable!("serializing a string to memory cannot fail");
    }
}

macro_rules! record_from {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Record {
            fn from(r: $variant) -> Record {
                Record::$variant(r)
            }
        })*
    };
}

record_from!(
    Employer,
    Department,
    Employee,
    Employment,
    DepartmentPeriod,
    WorkweekPeriod,
    SalaryPeriod,
    Absence,
    AbsenceProgress
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    fn sample_records() -> Vec<Record> {
        vec![
            Employer {
                id: "er".into(),
                source: "loket".into(),
                employer_number: Some(20720),
                name: "Voorbeeld B.V.".into(),
                chamber_of_commerce_number: Some("18124676".into()),
            }
            .into(),
            Department {
                id: "d".into(),
                employer_id: "er".into(),
                code: Some(2),
                name: Some("Verkoop".into()),
                parent_id: None,
            }
            .into(),
            Employee {
                id: "ee".into(),
                employer_id: "er".into(),
                employee_number: 156,
                initials: Some("S.L.".into()),
                first_name: Some("Susan".into()),
                prefix: Some("van".into()),
                last_name: Some("Bergen".into()),
                formatted_name: None,
                date_of_birth: Some(date("1995-05-21")),
                gender: Some("Vrouw".into()),
                gender_code: Some(2),
                email: None,
                phone: None,
                mobile_phone: None,
                street: None,
                house_number: Some(12),
                house_number_addition: None,
                postal_code: None,
                city: None,
                country_code: Some("NL".into()),
                bsn: Some("111222333".into()),
            }
            .into(),
            Employment {
                id: "em".into(),
                employer_id: "er".into(),
                employee_id: "ee".into(),
                start_date: date("2021-03-01"),
                end_date: None,
                planned_end_date: Some(date("2022-02-28")),
                contract_type: Some("Bepaalde tijd".into()),
                contract_type_code: Some(2),
                payroll_tax_number: None,
            }
            .into(),
            DepartmentPeriod {
                id: "dp".into(),
                employer_id: "er".into(),
                employment_id: "em".into(),
                department_id: Some("d".into()),
                function_name: None,
                start_date: date("2021-03-01"),
                end_date: None,
            }
            .into(),
            WorkweekPeriod {
                id: "wp".into(),
                employer_id: "er".into(),
                employment_id: "em".into(),
                start_date: date("2021-03-01"),
                end_date: None,
                hours_per_week: Some(dec("24")),
                days_per_week: Some(dec("4.5")),
                parttime_percentage: Some(dec("60.00")),
                work_pattern: Some("{}".into()),
            }
            .into(),
            SalaryPeriod {
                id: "sp".into(),
                employer_id: "er".into(),
                employment_id: "em".into(),
                start_date: date("2021-03-01"),
                end_date: None,
                gross_wage: Some(dec("4321.09")),
                wage_type: Some(WageType::Period),
                payroll_period: Some(PayrollPeriod::Month),
                is_full_time_amount: Some(true),
            }
            .into(),
            Absence {
                id: "ab".into(),
                employer_id: "er".into(),
                employee_id: "ee".into(),
                employment_id: Some("em".into()),
                first_day: date("2024-01-02"),
                last_day: None,
                end_reason: None,
                end_reason_code: None,
                cause: Some("Ziekte".into()),
                cause_code: Some(1),
                expected_duration: None,
                expected_duration_code: None,
                is_work_related: Some(false),
                is_accident: None,
                is_third_party_liability: Some(false),
                current_incapacity_percentage: Some(dec("100")),
            }
            .into(),
            AbsenceProgress {
                id: "ap".into(),
                employer_id: "er".into(),
                absence_id: "ab".into(),
                start_date: date("2024-01-02"),
                end_date: None,
                incapacity_percentage: Some(dec("100")),
                work_resumption_type: None,
                work_resumption_type_code: None,
            }
            .into(),
        ]
    }

    #[test]
    fn columns_follow_the_entity_definition() {
        let records = sample_records();
        assert_eq!(records.len(), Entity::ALL.len());
        for (record, entity) in records.iter().zip(Entity::ALL) {
            assert_eq!(record.entity(), entity);
            let columns = record.columns();
            let defs = entity.columns();
            assert_eq!(columns.len(), defs.len(), "{entity}");
            for ((name, value), def) in columns.iter().zip(defs) {
                assert_eq!(*name, def.name);
                assert!(value.fits(def.ty), "{entity}.{name}");
            }
            assert_eq!(defs[0].name, "id");
            assert_eq!(defs[1].name, "employer_id");
            assert_eq!(Entity::from_table(entity.table()), Some(entity));
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        for record in sample_records() {
            let hash = record.content_hash();
            assert_eq!(hash.len(), 64);
            assert_eq!(hash, record.clone().content_hash());
        }
        let Record::WorkweekPeriod(mut wp) = sample_records().swap_remove(5) else {
            panic!("sample 5 is a workweek period");
        };
        let before = Record::from(wp.clone()).content_hash();
        wp.hours_per_week = Some(dec("24.00"));
        assert_eq!(
            Record::from(wp.clone()).content_hash(),
            before,
            "scale does not matter"
        );
        wp.hours_per_week = Some(dec("24.5"));
        assert_ne!(Record::from(wp.clone()).content_hash(), before);
    }

    #[test]
    fn hash_encoding_is_the_compact_json_array() {
        let cols = [("a", Value::Text("x\"y".into())), ("b", Value::Null)];
        let json = serde_json::json!([
            CONTENT_HASH_VERSION,
            "department",
            [["a", "T:x\"y"], ["b", "N"]]
        ])
        .to_string();
        assert_eq!(
            content_hash(Entity::Department, &cols),
            hex::encode(Sha256::digest(json.as_bytes()))
        );
    }

    #[test]
    fn hash_encoding_is_unambiguous() {
        let a = [("a", Value::Text("x\",\"b".into())), ("b", Value::Null)];
        let b = [
            ("a", Value::Text("x".into())),
            ("b", Value::Text("b".into())),
        ];
        assert_ne!(
            content_hash(Entity::Department, &a),
            content_hash(Entity::Department, &b)
        );
        assert_ne!(
            content_hash(Entity::Department, &[("a", Value::Int(1))]),
            content_hash(Entity::Department, &[("a", Value::Text("1".into()))])
        );
        assert_ne!(
            content_hash(Entity::Department, &[("a", Value::Null)]),
            content_hash(Entity::Employee, &[("a", Value::Null)])
        );
    }

    #[test]
    fn money_is_rounded_to_cents() {
        let Record::SalaryPeriod(mut sp) = sample_records().swap_remove(6) else {
            panic!("sample 6 is a salary period");
        };
        sp.gross_wage = Some(dec("10.005"));
        let cols = Record::from(sp).columns();
        assert_eq!(cols[5], ("gross_wage", Value::Decimal(dec("10.01"))));
    }

    #[test]
    fn debug_of_personal_records_shows_no_personal_data() {
        for record in sample_records() {
            let shown = format!("{record:?}");
            for canary in [
                "Susan",
                "Bergen",
                "111222333",
                "1995",
                "4321",
                "Ziekte",
                "2024",
            ] {
                assert!(!shown.contains(canary), "{shown} shows {canary}");
            }
        }
        assert_eq!(format!("{:?}", Value::Text("111222333".into())), "Text(..)");
    }
}
