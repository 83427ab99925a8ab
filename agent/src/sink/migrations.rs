//! Versioned schema migrations of the arbodienst database, for both backends.
//!
//! A migration is an SQL template written once; placeholders are replaced per backend
//! (`{s}` = schema prefix, `{int}`, `{money}`, `{dec}`, `{date}`, `{bool}`, `{ts}`, `{json}`,
//! `{seq}`). Applied migrations are recorded in `schema_migrations`; a migration, once released,
//! is never edited: changes go into a new one. The backends run [`MIGRATIONS`] in one transaction
//! at start-up (PostgreSQL under an advisory lock) and refuse a database whose version is newer
//! than [`SUPPORTED_VERSION`].

/// One schema migration.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    template: &'static str,
}

/// SQL types of one backend.
pub(crate) struct Dialect {
    int: &'static str,
    money: &'static str,
    dec: &'static str,
    date: &'static str,
    boolean: &'static str,
    ts: &'static str,
    json: &'static str,
    seq: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect {
    int: "INTEGER",
    money: "TEXT",
    dec: "TEXT",
    date: "TEXT",
    boolean: "INTEGER",
    ts: "TEXT",
    json: "TEXT",
    seq: "INTEGER PRIMARY KEY AUTOINCREMENT",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    int: "BIGINT",
    money: "NUMERIC(12,2)",
    dec: "NUMERIC",
    date: "DATE",
    boolean: "BOOLEAN",
    ts: "TIMESTAMPTZ",
    json: "JSONB",
    seq: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
};

/// Renders an SQL template for a dialect; `schema_prefix` is `""` or `"\"schema\"."`.
pub(crate) fn render(template: &str, dialect: &Dialect, schema_prefix: &str) -> String {
    template
        .replace("{s}", schema_prefix)
        .replace("{int}", dialect.int)
        .replace("{money}", dialect.money)
        .replace("{dec}", dialect.dec)
        .replace("{date}", dialect.date)
        .replace("{bool}", dialect.boolean)
        .replace("{ts}", dialect.ts)
        .replace("{json}", dialect.json)
        .replace("{seq}", dialect.seq)
}

impl Migration {
    pub(crate) fn sql(&self, dialect: &Dialect, schema_prefix: &str) -> String {
        render(self.template, dialect, schema_prefix)
    }
}

/// The bookkeeping table, created before anything else.
pub(crate) const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS {s}schema_migrations (
    version {int} PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at {ts} NOT NULL
);";

/// The newest schema version this binary knows.
pub(crate) const SUPPORTED_VERSION: i64 = 1;

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial schema",
    template: V1,
}];

/// Version 1: every table of target-schema.md. Entity tables are keyed by `(employer_id, id)`.
const V1: &str = "
CREATE TABLE {s}employer (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL CHECK (employer_id = id),
    source TEXT NOT NULL,
    employer_number {int},
    name TEXT NOT NULL,
    chamber_of_commerce_number TEXT,
    last_synced_at {ts},
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);

CREATE TABLE {s}department (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    code {int},
    name TEXT,
    parent_id TEXT,
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);

CREATE TABLE {s}employee (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employee_number {int} NOT NULL,
    initials TEXT,
    first_name TEXT,
    prefix TEXT,
    last_name TEXT,
    formatted_name TEXT,
    date_of_birth {date},
    gender TEXT,
    gender_code {int},
    email TEXT,
    phone TEXT,
    mobile_phone TEXT,
    street TEXT,
    house_number {int},
    house_number_addition TEXT,
    postal_code TEXT,
    city TEXT,
    country_code TEXT,
    bsn TEXT,
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX employee_number_idx ON {s}employee (employer_id, employee_number);

CREATE TABLE {s}employment (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    start_date {date} NOT NULL,
    end_date {date},
    planned_end_date {date},
    contract_type TEXT,
    contract_type_code {int},
    payroll_tax_number TEXT,
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX employment_employee_idx ON {s}employment (employer_id, employee_id);

CREATE TABLE {s}employment_department_period (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employment_id TEXT NOT NULL,
    department_id TEXT,
    function_name TEXT,
    start_date {date} NOT NULL,
    end_date {date},
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX department_period_employment_idx
    ON {s}employment_department_period (employer_id, employment_id);

CREATE TABLE {s}employment_workweek_period (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employment_id TEXT NOT NULL,
    start_date {date} NOT NULL,
    end_date {date},
    hours_per_week {dec},
    days_per_week {dec},
    parttime_percentage {dec},
    work_pattern TEXT,
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX workweek_period_employment_idx
    ON {s}employment_workweek_period (employer_id, employment_id);

CREATE TABLE {s}employment_salary_period (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employment_id TEXT NOT NULL,
    start_date {date} NOT NULL,
    end_date {date},
    gross_wage {money},
    wage_type TEXT CHECK (wage_type IN ('period', 'hourly')),
    payroll_period TEXT CHECK (payroll_period IN ('month', 'four_weeks', 'week')),
    is_full_time_amount {bool},
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX salary_period_employment_idx
    ON {s}employment_salary_period (employer_id, employment_id);

CREATE TABLE {s}absence (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    employment_id TEXT,
    first_day {date} NOT NULL,
    last_day {date},
    end_reason TEXT,
    end_reason_code {int},
    cause TEXT,
    cause_code {int},
    expected_duration TEXT,
    expected_duration_code {int},
    is_work_related {bool},
    is_accident {bool},
    is_third_party_liability {bool},
    current_incapacity_percentage {dec},
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX absence_employee_idx ON {s}absence (employer_id, employee_id);

CREATE TABLE {s}absence_progress (
    id TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    absence_id TEXT NOT NULL,
    start_date {date} NOT NULL,
    end_date {date},
    incapacity_percentage {dec},
    work_resumption_type TEXT,
    work_resumption_type_code {int},
    content_hash TEXT NOT NULL,
    first_seen_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts},
    PRIMARY KEY (employer_id, id)
);
CREATE INDEX absence_progress_absence_idx ON {s}absence_progress (employer_id, absence_id);

CREATE TABLE {s}mutation (
    seq {seq},
    employer_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    changed_fields {json} NOT NULL,
    run_id TEXT NOT NULL,
    recorded_at {ts} NOT NULL
);
CREATE INDEX mutation_employer_idx ON {s}mutation (employer_id, seq);

CREATE TABLE {s}case_watch (
    employer_id TEXT NOT NULL,
    employee_number {int} NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (employer_id, employee_number)
);

CREATE TABLE {s}sync_run (
    id TEXT PRIMARY KEY,
    employer_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('incremental', 'full', 'manual')),
    started_at {ts} NOT NULL,
    finished_at {ts},
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    inserted {int} NOT NULL DEFAULT 0,
    updated {int} NOT NULL DEFAULT 0,
    deleted {int} NOT NULL DEFAULT 0,
    failed {int} NOT NULL DEFAULT 0
);
CREATE INDEX sync_run_employer_idx ON {s}sync_run (employer_id, started_at);
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_and_end_at_supported() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(
            MIGRATIONS.last().map(|m| m.version),
            Some(SUPPORTED_VERSION)
        );
    }

    #[test]
    fn rendering_leaves_no_placeholder() {
        for dialect in [&SQLITE, &POSTGRES] {
            for m in MIGRATIONS {
                let sql = m.sql(dialect, "\"x\".");
                assert!(!sql.contains('{'), "{sql}");
            }
        }
    }
}
