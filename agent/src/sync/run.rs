//! One sync run of one employer, in the order `architecture.md` fixes: plan from the version
//! numbers (high-water mark taken before fetching), fetch only what changed, map and filter by the
//! employer's options, apply in one transaction per batch, and only then move the cursor.
//!
//! Failure rules: a transient failure (5xx, 429, timeouts, a malformed page, the database down)
//! fails the run and moves nothing; a permanent problem with one record (a 404 on a child, a
//! record the contract cannot hold) goes to the retry queue and the run ends `partial`; a rejected
//! refresh token ends the run as `needs_reconnect`.
//!
//! Option changes take effect at the next run: the employer's [`options_fingerprint`] is kept in
//! the state store, and a different one makes the run a full reconciliation, so what an option
//! now allows is fetched and what it no longer allows is purged (with journal rows) at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::config::{EmployerConfig, EmployerOptions};
use crate::loket::{LoketClient, LoketError, models as wire};
use crate::records::{Entity, Record};
use crate::sink::{Sink, SinkError};
use crate::state::{Cursor, RetryKey, RunKind, RunRecord, RunStatus, StateError, StateStore};

use super::calendar;
use super::map::{self, MapError};

/// Days before and after today in which the employer-wide absence calendar is polled on an
/// incremental run; it finds new sick reports and recent closures without asking every employee.
pub const CALENDAR_WINDOW_BEFORE_DAYS: u64 = 42;
pub const CALENDAR_WINDOW_AFTER_DAYS: u64 = 60;
/// Records per database transaction.
pub const BATCH_SIZE: usize = 2_000;
/// More changed employments than this are read through the employer-wide list instead of one
/// detail request each.
const DETAIL_FETCH_LIMIT: usize = 20;

/// What a run needs around it.
#[derive(Clone)]
pub struct SyncContext {
    pub client: LoketClient,
    pub sink: Arc<Sink>,
    pub state: StateStore,
    /// "Today" for history windows and reference dates (UTC date; injectable for tests).
    pub today: NaiveDate,
    /// Where a test stops the process (`ARBOSYNC_FAILPOINT`; see [`FAILPOINTS`]).
    pub failpoint: Option<String>,
    /// Where the run writes on this machine; a run on a full disk stops before it starts
    /// (see [`crate::diskspace`]).
    pub write_paths: Arc<[std::path::PathBuf]>,
    /// Told when a run starts and as it moves through its phases (the service forwards this to
    /// the dashboard). Called inline, so it must be cheap and must not block.
    pub progress: Option<ProgressHook>,
}

/// Receives [`RunProgress`] reports; see [`SyncContext::progress`].
pub type ProgressHook = Arc<dyn Fn(RunProgress) + Send + Sync>;

/// Where a run is. Ids and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    pub employer_id: Uuid,
    pub run_id: Uuid,
    pub kind: RunKind,
    pub phase: RunPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Started,
    Fetching,
    /// `done` of `total` records applied.
    Applying {
        done: u64,
        total: u64,
    },
}

/// The test hooks of a run, in the order a run passes them. The process exits at once with
/// [`FAILPOINT_EXIT`] (no destructors, no flush), as a crash would leave it:
/// - `before-apply`: everything is fetched, nothing of this run is applied;
/// - `after-first-batch`: the first batch is committed, later batches, the reconciliation
///   deletes and the retry queue are not;
/// - `after-commit`: everything is committed, the cursor has not moved;
/// - `after-cursor-flush`: the cursor is written and flushed, the run is not yet recorded as
///   finished (history, `sync_run` row).
pub const FAILPOINTS: [&str; 4] = [
    "before-apply",
    "after-first-batch",
    "after-commit",
    "after-cursor-flush",
];

/// The exit code of a failpoint.
pub const FAILPOINT_EXIT: i32 = 86;

impl SyncContext {
    /// Exits the process when `name` is the configured failpoint (a string compare when one is
    /// set, nothing otherwise).
    fn failpoint(&self, name: &str) {
        if self.failpoint.as_deref() == Some(name) {
            eprintln!("failpoint {name}: exiting");
            std::process::exit(FAILPOINT_EXIT);
        }
    }

    fn report(&self, employer_id: Uuid, run_id: Uuid, kind: RunKind, phase: RunPhase) {
        if let Some(hook) = &self.progress {
            hook(RunProgress {
                employer_id,
                run_id,
                kind,
                phase,
            });
        }
    }
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRequest {
    pub full: bool,
    pub manual: bool,
}

/// How a run ended, for the CLI, the history and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunOutcome {
    pub run_id: Uuid,
    pub employer_id: Uuid,
    pub kind: RunKind,
    pub status: RunStatus,
    pub needs_reconnect: bool,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub failed: u64,
    pub requests: u64,
    pub duration_ms: u64,
    /// Operator-facing error: ids and causes only, never personal data.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Loket(#[from] LoketError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    DiskFull(#[from] crate::diskspace::DiskFull),
    #[error("{0}")]
    Other(String),
}

/// Everything one run collects before it applies it.
#[derive(Default)]
struct Collected {
    records: Vec<Record>,
    /// Ids seen at the source per entity, for reconciliation.
    soft_deletes: Vec<(Entity, Vec<String>)>,
    failures: Vec<(String, String, String)>,
    /// Retry-queue entries that succeeded this run.
    resolved: Vec<RetryKey>,
    /// Stored absences that the source shows ended before the history window: purged.
    aged_out: HashSet<String>,
}

impl Collected {
    fn push(&mut self, r: impl Into<Record>) {
        self.records.push(r.into());
    }
    fn fail(&mut self, e: MapError) {
        self.failures
            .push((e.entity.to_string(), e.id.clone(), e.problem.to_string()));
    }
    /// A permanent failure of a record that is fetched through a parent (an employment's
    /// history record, an absence or its progress): queued under the parent (`entity`, `id`),
    /// which later runs fetch again, with the record named in the reason. Once per parent.
    fn fail_under(&mut self, entity: &str, id: &str, reason: String) {
        if !self.failures.iter().any(|(e, i, _)| e == entity && i == id) {
            self.failures
                .push((entity.to_string(), id.to_string(), reason));
        }
    }
}

fn describe(e: &MapError) -> String {
    format!("{} {}: {}", e.entity, e.id, e.problem)
}

/// The previously stored picture of an employer, read from the database at the start of a run.
struct Stored {
    employees: HashSet<String>,
    employments: HashMap<String, crate::sink::StoredEmployment>,
    absences: HashMap<String, crate::sink::StoredAbsence>,
    children: HashMap<Entity, HashMap<String, String>>,
    case_watch: HashSet<i64>,
}

/// A stable, opaque fingerprint of what an employer's options allow. When it changes, the next
/// run is a full reconciliation (see [`StateStore::note_options`]).
pub fn options_fingerprint(o: &EmployerOptions) -> String {
    use sha2::{Digest, Sha256};
    let canonical = format!(
        "arbosync-options-v1;all_employments={};absences={};salary={};bsn={};history_months={}",
        o.all_employments, o.absences, o.salary, o.bsn, o.history_months
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Runs one employer. Never panics and never returns an error: every failure is an outcome.
pub async fn run_employer(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    request: RunRequest,
    employer_version: Option<i64>,
) -> RunOutcome {
    let run_id = Uuid::new_v4();
    let started = Instant::now();
    let started_at = Utc::now();
    let requests_before = ctx.client.requests_sent();
    // An option change takes effect at this run: a new fingerprint marks the cursor `needs_full`.
    // If it cannot be recorded, this run is full anyway (always safe).
    let options_unknown = match ctx
        .state
        .note_options(employer.id, &options_fingerprint(&employer.options))
        .await
    {
        Ok(scheduled) => {
            if scheduled {
                info!(employer = %employer.id, "options changed: this run is a full reconciliation");
            }
            false
        }
        Err(e) => {
            warn!(employer = %employer.id, error = %e, "could not record the options fingerprint");
            true
        }
    };
    let cursor = ctx.state.cursor(employer.id).ok().flatten();
    let full = request.full || options_unknown || cursor.as_ref().is_none_or(|c| c.needs_full);
    let kind = if full {
        RunKind::Full
    } else {
        RunKind::Incremental
    };
    let span = info_span!("sync_run", employer = %employer.id, run = %run_id, kind = ?kind);
    ctx.report(employer.id, run_id, kind, RunPhase::Started);
    let result = async {
        info!("run started");
        run_inner(
            ctx,
            employer,
            run_id,
            full,
            cursor,
            employer_version,
            request.manual,
        )
        .await
    }
    .instrument(span.clone())
    .await;

    let requests = ctx.client.requests_sent().saturating_sub(requests_before);
    let mut outcome = RunOutcome {
        run_id,
        employer_id: employer.id,
        kind,
        status: RunStatus::Ok,
        needs_reconnect: false,
        inserted: 0,
        updated: 0,
        deleted: 0,
        failed: 0,
        requests,
        duration_ms: started.elapsed().as_millis() as u64,
        error: None,
    };
    match result {
        Ok(counts) => {
            outcome.inserted = counts.inserted;
            outcome.updated = counts.updated;
            outcome.deleted = counts.deleted;
            outcome.failed = counts.failed;
            outcome.status = if counts.failed > 0 {
                RunStatus::Partial
            } else {
                RunStatus::Ok
            };
        }
        Err(e) => {
            outcome.status = RunStatus::Failed;
            if let RunError::Loket(l) = &e {
                outcome.needs_reconnect = l.needs_reconnect();
            }
            outcome.error = Some(e.to_string());
        }
    }
    let _enter = span.enter();
    info!(
        status = ?outcome.status,
        inserted = outcome.inserted,
        updated = outcome.updated,
        deleted = outcome.deleted,
        failed = outcome.failed,
        requests = outcome.requests,
        duration_ms = outcome.duration_ms,
        "run finished"
    );
    record_outcome(ctx, &outcome, started_at).await;
    outcome
}

async fn record_outcome(ctx: &SyncContext, outcome: &RunOutcome, started_at: DateTime<Utc>) {
    let record = RunRecord {
        run_id: outcome.run_id,
        employer_id: outcome.employer_id,
        kind: outcome.kind,
        started_at,
        finished_at: Some(Utc::now()),
        status: outcome.status,
        inserted: outcome.inserted,
        updated: outcome.updated,
        deleted: outcome.deleted,
        failed: outcome.failed,
        requests: outcome.requests,
        error: outcome.error.clone(),
    };
    if let Err(e) = ctx.state.record_run(&record) {
        warn!(error = %e, "could not record the run in the state store");
    }
    let status_result = if outcome.needs_reconnect {
        ctx.state
            .set_needs_reconnect(outcome.employer_id, true)
            .map(|_| ())
    } else if outcome.status != RunStatus::Failed {
        ctx.state
            .set_needs_reconnect(outcome.employer_id, false)
            .map(|_| ())
    } else {
        Ok(())
    };
    if let Err(e) = status_result {
        warn!(error = %e, "could not update the employer status");
    }
    if let Some(err) = &outcome.error {
        let _ = ctx
            .state
            .set_last_error(outcome.employer_id, Some(err), Utc::now());
    }
    let finish = ctx
        .sink
        .finish_run(
            &outcome.run_id.to_string(),
            match outcome.status {
                RunStatus::Ok => crate::sink::RunStatus::Ok,
                RunStatus::Partial => crate::sink::RunStatus::Partial,
                _ => crate::sink::RunStatus::Failed,
            },
            crate::sink::RunCounts {
                inserted: outcome.inserted,
                updated: outcome.updated,
                deleted: outcome.deleted,
                failed: outcome.failed,
            },
        )
        .await;
    if let Err(e) = finish {
        warn!(error = %e, "could not record the run in the database");
    }
}

struct Counts {
    inserted: u64,
    updated: u64,
    deleted: u64,
    failed: u64,
}

async fn run_inner(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    run_id: Uuid,
    full: bool,
    cursor: Option<Cursor>,
    employer_version: Option<i64>,
    manual: bool,
) -> Result<Counts, RunError> {
    let employer_id = employer.id.to_string();
    let run = run_id.to_string();
    let opts = &employer.options;
    // The kind reported to the progress hook (the same as `run_employer` reported at the start).
    let run_kind = if full {
        RunKind::Full
    } else {
        RunKind::Incremental
    };

    // A full disk stops the run before it asks Loket (a rotated refresh token must be saved)
    // or writes anything.
    crate::diskspace::ensure_room(&ctx.write_paths)?;

    // The run's `sync_run` row first, so a run that fails at the token or the plan is
    // recorded as failed too (and `finish_run` always has a row to close).
    let kind = if full {
        crate::sink::RunKind::Full
    } else if manual {
        crate::sink::RunKind::Manual
    } else {
        crate::sink::RunKind::Incremental
    };
    ctx.sink.start_run(&run, &employer_id, kind).await?;

    // 1. Token (the client refreshes single-flight) and 2. the plan, with the high-water mark
    //    taken before anything is fetched.
    let hwm = match employer_version {
        Some(v) => v,
        None => ctx
            .client
            .employer_version_numbers(None)
            .await?
            .into_iter()
            .find(|v| v.id.eq_ignore_ascii_case(&employer_id))
            .map(|v| v.last_modified_version_number)
            .ok_or_else(|| {
                RunError::Other(format!(
                    "employer {employer_id} is not visible to this Loket user (check its rights and teams)"
                ))
            })?,
    };

    let previous = cursor.as_ref().map(|c| c.employer_version);
    let retry = ctx.state.retry_entries(employer.id)?;
    // Queued employments and employees are fetched again even when nothing moved at Loket.
    let static_retry = retry
        .iter()
        .any(|r| r.entity == "employment" || r.entity == "employee" || r.entity == "employee_bsn");
    let static_changed = full || previous.is_none_or(|p| hwm > p) || static_retry;
    let stored = load_stored(ctx, &employer_id).await?;

    let mut out = Collected::default();

    // Privacy purges for options that are off: idempotent, and they journal what they remove.
    let mut purged = 0u64;
    if !opts.bsn {
        purged += ctx.sink.purge_bsn(&run, &employer_id).await?;
    }
    if !opts.salary {
        purged += ctx.sink.purge_salary(&run, &employer_id).await?;
    }
    if !opts.absences {
        purged += ctx.sink.purge_absences(&run, &employer_id).await?;
    }

    // 3. Fetch.
    ctx.report(employer.id, run_id, run_kind, RunPhase::Fetching);
    let mut fetched = Fetched::default();
    if static_changed {
        fetch_static(ctx, &employer_id, full, previous, &retry, &mut fetched).await?;
    }
    let scope = Scope::decide(ctx, employer, full, &stored, &fetched).await?;

    if static_changed {
        map_static(ctx, employer, &scope, &stored, &mut fetched, &mut out).await?;
    } else {
        // Employees that came into scope through a first sick report, or a case_watch entry.
        bring_in_new_people(ctx, employer, &scope, &stored, &mut out).await?;
    }
    if opts.absences {
        sync_absences(
            ctx, employer, full, &scope, &stored, &fetched, &retry, &mut out,
        )
        .await?;
    }

    // 4-5. Apply in batches, then the reconciliation deletes.
    let mut counts = Counts {
        inserted: 0,
        updated: 0,
        deleted: purged,
        failed: 0,
    };
    let mut records = std::mem::take(&mut out.records);
    let total = records.len() as u64;
    let mut done = 0u64;
    ctx.report(
        employer.id,
        run_id,
        run_kind,
        RunPhase::Applying { done, total },
    );
    ctx.failpoint("before-apply");
    let mut first_batch = true;
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(BATCH_SIZE));
        done += records.len() as u64;
        let stats = ctx.sink.apply(&run, records).await?;
        if std::mem::take(&mut first_batch) {
            ctx.failpoint("after-first-batch");
        }
        ctx.report(
            employer.id,
            run_id,
            run_kind,
            RunPhase::Applying { done, total },
        );
        counts.inserted += stats.inserted;
        counts.updated += stats.updated;
        counts.deleted += stats.deleted;
        records = rest;
    }
    for (entity, ids) in &out.soft_deletes {
        if !ids.is_empty() {
            counts.deleted += ctx
                .sink
                .soft_delete(&run, *entity, &employer_id, ids)
                .await?;
        }
    }
    // Absences that ended before the history window are not stored (a shorter window, or time
    // passing): purged with journal rows, like an option switched off.
    counts.deleted += ctx
        .sink
        .purge_absence_ids(&run, &employer_id, &out.aged_out)
        .await?;
    if full && !opts.all_employments {
        counts.deleted += ctx
            .sink
            .purge_out_of_scope(&run, &employer_id, &scope.employees)
            .await?;
    }

    // A full run read everything in scope again: queued entries it did not fail again are
    // resolved (stored now, gone at the source, or out of scope).
    if full {
        out.resolved.extend(retry.iter().map(|r| r.key()));
    }
    // Queued employments that Loket no longer has.
    out.resolved.extend(
        fetched
            .retry_gone
            .iter()
            .map(|(entity, id)| RetryKey::new(employer.id, entity.clone(), id.clone())),
    );
    // Only what was queued needs dropping.
    let queued: HashSet<RetryKey> = retry.iter().map(|r| r.key()).collect();
    out.resolved.retain(|k| queued.contains(k));

    // Permanent per-record failures go to the retry queue; the run is partial.
    let now = Utc::now();
    for (entity, id, reason) in &out.failures {
        ctx.state.record_failure(
            &RetryKey::new(employer.id, entity.clone(), id.clone()),
            reason,
            now,
        )?;
    }
    for key in &out.resolved {
        if !out
            .failures
            .iter()
            .any(|(e, id, _)| *e == key.entity && *id == key.record_id)
        {
            ctx.state.drop_retry(key)?;
        }
    }
    counts.failed = out.failures.len() as u64;

    ctx.failpoint("after-commit");

    // 6. Only now move the cursor, and flush it.
    let mut next = cursor.unwrap_or_default();
    next.employer_version = hwm;
    next.employment_versions_max = next
        .employment_versions_max
        .max(fetched.employment_versions_max);
    next.needs_full = false;
    if full {
        next.last_full_reconcile = Some(now);
    } else {
        next.last_incremental = Some(now);
    }
    ctx.state.set_cursor(employer.id, &next).await?;
    ctx.failpoint("after-cursor-flush");
    Ok(counts)
}

async fn load_stored(ctx: &SyncContext, employer_id: &str) -> Result<Stored, RunError> {
    let sink = &ctx.sink;
    let mut children = HashMap::new();
    for entity in [
        Entity::DepartmentPeriod,
        Entity::WorkweekPeriod,
        Entity::SalaryPeriod,
        Entity::AbsenceProgress,
    ] {
        children.insert(entity, sink.stored_parents(employer_id, entity).await?);
    }
    Ok(Stored {
        employees: sink.stored_ids(employer_id, Entity::Employee).await?,
        employments: sink.stored_employments(employer_id).await?,
        absences: sink.stored_absences(employer_id).await?,
        children,
        case_watch: sink.case_watch_employee_numbers(employer_id).await?,
    })
}

/// What the static part of a run read from Loket.
#[derive(Default)]
struct Fetched {
    employer: Option<wire::Employer>,
    departments: Option<Vec<wire::Department>>,
    payroll_tax_numbers: HashMap<String, String>,
    /// All employees of the employer (read whenever the employer's number moved).
    employees: Option<Vec<wire::Employee>>,
    /// The employments to (re)process, and whether that is the complete list.
    employments: Vec<wire::Employment>,
    employments_complete: bool,
    employment_versions_max: i64,
    /// Employees whose employment (or the person itself) changed.
    changed_employees: HashSet<String>,
    /// Retry-queue entries (entity, id) whose employment Loket no longer has.
    retry_gone: Vec<(String, String)>,
}

async fn fetch_static(
    ctx: &SyncContext,
    employer_id: &str,
    full: bool,
    previous: Option<i64>,
    retry: &[crate::state::RetryEntry],
    f: &mut Fetched,
) -> Result<(), RunError> {
    let c = &ctx.client;
    let (employer, admins, departments, employees) = tokio::try_join!(
        c.employer(employer_id),
        c.payroll_administrations(employer_id),
        c.departments(employer_id),
        c.employees(employer_id),
    )?;
    f.employer = Some(employer);
    f.payroll_tax_numbers = admins
        .into_iter()
        .filter_map(|a| a.payroll_taxes_number.map(|n| (a.id, n)))
        .collect();
    f.departments = Some(departments);
    f.employees = Some(employees);

    let retry_employments: BTreeSet<&str> = retry
        .iter()
        .filter(|r| r.entity == "employment" || r.entity.starts_with("employment_"))
        .map(|r| r.record_id.as_str())
        .collect();
    let mut not_found: Vec<String> = Vec::new();

    match (full, previous) {
        (false, Some(prev)) => {
            let changed = c
                .employment_version_numbers(employer_id, Some(prev))
                .await?;
            f.employment_versions_max = changed
                .iter()
                .map(|v| v.last_modified_version_number)
                .max()
                .unwrap_or(0);
            let mut ids: BTreeSet<String> = changed.into_iter().map(|v| v.id).collect();
            ids.extend(retry_employments.iter().map(|s| s.to_string()));
            let mut one_by_one: Vec<String> = ids.iter().cloned().collect();
            if ids.len() > DETAIL_FETCH_LIMIT {
                let all = c.employments(employer_id).await?;
                f.employments = all.into_iter().filter(|e| ids.contains(&e.id)).collect();
                // A row can be missing from a list that shifted while it was paged: the ones
                // asked for and not seen are read one by one.
                let seen: HashSet<&str> = f.employments.iter().map(|e| e.id.as_str()).collect();
                one_by_one.retain(|id| !seen.contains(id.as_str()));
            } else {
                f.employments.clear();
            }
            let (found, gone) = employments_by_id(ctx, one_by_one).await?;
            f.employments.extend(found);
            not_found = gone;
        }
        _ => {
            f.employments = c.employments(employer_id).await?;
            f.employments_complete = true;
        }
    }
    f.retry_gone = retry
        .iter()
        .filter(|r| {
            (r.entity == "employment" || r.entity.starts_with("employment_"))
                && not_found.contains(&r.record_id)
        })
        .map(|r| (r.entity.clone(), r.record_id.clone()))
        .collect();
    f.changed_employees = f
        .employments
        .iter()
        .filter_map(|e| e.employee.as_ref().and_then(|r| r.id.clone()))
        .collect();
    Ok(())
}

/// Reads employments one by one; the ids that answer 404 (deleted at Loket) come back apart.
async fn employments_by_id(
    ctx: &SyncContext,
    ids: Vec<String>,
) -> Result<(Vec<wire::Employment>, Vec<String>), RunError> {
    let c = &ctx.client;
    let results: Vec<(String, Option<wire::Employment>)> = stream::iter(ids)
        .map(|id| async move {
            match c.employment(&id).await {
                Ok(e) => Ok((id, Some(e))),
                // Deleted since the list was read: the full run soft-deletes it.
                Err(LoketError::NotFound { .. }) => Ok((id, None)),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(c.max_parallel_requests())
        .try_collect()
        .await?;
    let mut found = Vec::new();
    let mut gone = Vec::new();
    for (id, e) in results {
        match e {
            Some(e) => found.push(e),
            None => gone.push(id),
        }
    }
    Ok((found, gone))
}

/// Who is in scope for this run.
struct Scope {
    /// Employees whose data may be stored (all, or the ones with a dossier).
    employees: HashSet<String>,
    /// Absence periods per employee in the calendar window (candidates for absence polling).
    calendar: HashMap<String, Vec<calendar::Period>>,
    /// The days the calendar was read for.
    calendar_window: calendar::Window,
    all: bool,
    /// Absences that ended before this day are not stored.
    history_start: NaiveDate,
}

impl Scope {
    async fn decide(
        ctx: &SyncContext,
        employer: &EmployerConfig,
        full: bool,
        stored: &Stored,
        fetched: &Fetched,
    ) -> Result<Scope, RunError> {
        let opts = &employer.options;
        let employer_id = employer.id.to_string();
        let history_start = history_start(ctx.today, opts);
        // The calendar window: the whole history window when the scope must be decided from
        // scratch, a narrow window around today otherwise; never before the history window (an
        // absence that ended before it neither brings a person into scope nor is stored).
        let narrow = !full || opts.all_employments;
        let start = if narrow {
            (ctx.today - Days::new(CALENDAR_WINDOW_BEFORE_DAYS)).max(history_start)
        } else {
            history_start
        };
        let end = ctx.today + Days::new(CALENDAR_WINDOW_AFTER_DAYS);
        let calendar_window = calendar::Window { start, end };
        let mut calendar: HashMap<String, Vec<calendar::Period>> = HashMap::new();
        if opts.absences || !opts.all_employments {
            for item in ctx
                .client
                .calendar_absences(&employer_id, start, end)
                .await?
            {
                let Some(id) = item.employee.and_then(|e| e.id) else {
                    continue;
                };
                calendar
                    .entry(id)
                    .or_default()
                    .extend(item.calendar.iter().map(|p| (p.start_date, p.end_date)));
            }
        }
        if opts.all_employments {
            return Ok(Scope {
                employees: HashSet::new(),
                calendar,
                calendar_window,
                all: true,
                history_start,
            });
        }
        let mut employees: HashSet<String> = calendar.keys().cloned().collect();
        if !full {
            // Keep everyone already in the database in scope between full reconciliations.
            employees.extend(stored.employees.iter().cloned());
        }
        if !stored.case_watch.is_empty() {
            if let Some(list) = &fetched.employees {
                employees.extend(
                    list.iter()
                        .filter(|e| {
                            e.employee_number
                                .is_some_and(|n| stored.case_watch.contains(&n))
                        })
                        .map(|e| e.id.clone()),
                );
            } else {
                // Numbers are resolved through the employee list only when needed.
                let list = ctx.client.employees(&employer_id).await?;
                employees.extend(
                    list.iter()
                        .filter(|e| {
                            e.employee_number
                                .is_some_and(|n| stored.case_watch.contains(&n))
                        })
                        .map(|e| e.id.clone()),
                );
            }
        }
        Ok(Scope {
            employees,
            calendar,
            calendar_window,
            all: false,
            history_start,
        })
    }

    fn contains(&self, employee_id: &str) -> bool {
        self.all || self.employees.contains(employee_id)
    }
}

fn history_start(today: NaiveDate, opts: &EmployerOptions) -> NaiveDate {
    today
        .checked_sub_months(Months::new(opts.history_months))
        .unwrap_or(NaiveDate::MIN)
}

/// Maps what `fetch_static` read, fetches the children of the employments in scope, and plans
/// reconciliation deletes.
async fn map_static(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    scope: &Scope,
    stored: &Stored,
    f: &mut Fetched,
    out: &mut Collected,
) -> Result<(), RunError> {
    let employer_id = employer.id.to_string();
    let opts = &employer.options;
    if let Some(e) = &f.employer {
        out.push(map::employer(e, employer.name.as_deref().unwrap_or("")));
    }
    if let Some(deps) = &f.departments {
        let seen: HashSet<&str> = deps.iter().map(|d| d.id.as_str()).collect();
        for d in deps {
            out.push(map::department(&employer_id, d));
        }
        let stored_deps = ctx
            .sink
            .stored_ids(&employer_id, Entity::Department)
            .await?;
        let gone: Vec<String> = stored_deps
            .into_iter()
            .filter(|id| !seen.contains(id.as_str()))
            .collect();
        out.soft_deletes.push((Entity::Department, gone));
    }

    // Employees: every one in scope from the list (the hash guard makes unchanged ones free).
    let employees = f.employees.take().unwrap_or_default();
    let source_ids: HashSet<String> = employees.iter().map(|e| e.id.clone()).collect();
    let mut people: Vec<&wire::Employee> =
        employees.iter().filter(|e| scope.contains(&e.id)).collect();
    people.sort_by(|a, b| a.id.cmp(&b.id));
    let bsn_needed: Vec<String> = if opts.bsn {
        people
            .iter()
            .filter(|e| {
                f.employments_complete
                    || !stored.employees.contains(&e.id)
                    || f.changed_employees.contains(&e.id)
            })
            .map(|e| e.id.clone())
            .collect()
    } else {
        Vec::new()
    };
    let bsns = fetch_bsns(ctx, bsn_needed, out).await?;
    // Employees not re-read this run keep their stored BSN (unchanged people, unchanged BSN).
    let stored_bsns = if opts.bsn {
        ctx.sink.stored_bsns(&employer_id).await?
    } else {
        HashMap::new()
    };
    for e in &people {
        let bsn = if opts.bsn {
            match bsns.get(&e.id) {
                Some(b) => b.clone(),
                // Not refetched this run: keep what is stored (it is only a hint to the hash
                // guard; the stored value is unchanged because the person did not change).
                None => stored_bsns.get(&e.id).cloned(),
            }
        } else {
            None
        };
        match map::employee(&employer_id, e, bsn) {
            Ok(r) => {
                out.resolved
                    .push(RetryKey::new(employer.id, "employee", e.id.clone()));
                if bsns.contains_key(&e.id) {
                    out.resolved
                        .push(RetryKey::new(employer.id, "employee_bsn", e.id.clone()));
                }
                out.push(r)
            }
            Err(err) => out.fail(err),
        }
    }
    if f.employments_complete {
        let missing: Vec<String> = stored
            .employees
            .iter()
            .filter(|id| !source_ids.contains(*id))
            .cloned()
            .collect();
        // A row can be missing from a paged list that shifted while it was read (one deleted on
        // an earlier page while another was added): only a 404 on the person proves it gone.
        let mut gone = Vec::new();
        for id in missing {
            match ctx.client.employee(&id).await {
                Ok(person) => {
                    if scope.contains(&person.id) {
                        let bsn = stored_bsns.get(&person.id).cloned().filter(|_| opts.bsn);
                        match map::employee(&employer_id, &person, bsn) {
                            Ok(r) => out.push(r),
                            Err(err) => out.fail(err),
                        }
                    }
                }
                Err(LoketError::NotFound { .. }) => gone.push(id),
                Err(e) => return Err(e.into()),
            }
        }
        out.soft_deletes.push((Entity::Employee, gone));
    }

    // Employments in scope, with their histories.
    let mut employments: Vec<wire::Employment> = std::mem::take(&mut f.employments)
        .into_iter()
        .filter(|e| {
            e.employee
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .is_some_and(|id| scope.contains(id))
        })
        .collect();
    if !f.employments_complete {
        // Only the changed employments were read. People who entered the scope in this run (a
        // first sick report, a dossier opened by hand) need all of theirs.
        let newcomers: Vec<String> = people
            .iter()
            .filter(|e| !stored.employees.contains(&e.id))
            .map(|e| e.id.clone())
            .collect();
        let c = &ctx.client;
        let lists: Vec<Vec<wire::Employment>> = stream::iter(newcomers)
            .map(|id: String| async move {
                match c.employments_of_employee(&id).await {
                    Ok(list) => Ok(list),
                    // Gone since the employee list was read: nothing to add.
                    Err(LoketError::NotFound { .. }) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(c.max_parallel_requests())
            .try_collect()
            .await?;
        let known: HashSet<String> = employments.iter().map(|e| e.id.clone()).collect();
        let mut added: HashSet<String> = HashSet::new();
        for e in lists.into_iter().flatten() {
            if !known.contains(&e.id) && added.insert(e.id.clone()) {
                employments.push(e);
            }
        }
    }
    if f.employments_complete {
        let all_source: HashSet<String> = employments.iter().map(|e| e.id.clone()).collect();
        let missing: Vec<String> = stored
            .employments
            .keys()
            .filter(|id| !all_source.contains(*id) && scope_has_stored(scope, stored, id))
            .cloned()
            .collect();
        // As for people: only a 404 proves an employment gone; one a shifted list skipped is
        // synced with the others.
        let (still_there, gone) = employments_by_id(ctx, missing).await?;
        employments.extend(still_there.into_iter().filter(|e| {
            e.employee
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .is_some_and(|id| scope.contains(id))
        }));
        // When an employment disappears, its periods go too, each with its own delete row.
        for entity in [
            Entity::DepartmentPeriod,
            Entity::WorkweekPeriod,
            Entity::SalaryPeriod,
        ] {
            let children: Vec<String> = stored.children[&entity]
                .iter()
                .filter(|(_, parent)| gone.contains(parent))
                .map(|(id, _)| id.clone())
                .collect();
            out.soft_deletes.push((entity, children));
        }
        out.soft_deletes.push((Entity::Employment, gone));
    }
    fetch_employment_histories(
        ctx,
        employer,
        &employments,
        &f.payroll_tax_numbers,
        stored,
        out,
    )
    .await
}

fn scope_has_stored(scope: &Scope, stored: &Stored, employment_id: &str) -> bool {
    stored
        .employments
        .get(employment_id)
        .is_some_and(|e| scope.contains(&e.employee_id))
}

async fn fetch_bsns(
    ctx: &SyncContext,
    ids: Vec<String>,
    out: &mut Collected,
) -> Result<HashMap<String, Option<String>>, RunError> {
    let c = &ctx.client;
    let results: Vec<(String, Result<wire::CitizenServiceNumber, LoketError>)> = stream::iter(ids)
        .map(|id| async move {
            let r = c.citizen_service_number(&id).await;
            (id, r)
        })
        .buffer_unordered(c.max_parallel_requests())
        .collect()
        .await;
    let mut map = HashMap::new();
    for (id, r) in results {
        match r {
            Ok(csn) => {
                map.insert(id, csn.citizen_service_number);
            }
            Err(LoketError::NotFound { .. }) | Err(LoketError::Forbidden { .. }) => {
                out.failures.push((
                    "employee_bsn".into(),
                    id,
                    "the BSN could not be read (404/403)".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(map)
}

/// Fetches organizational entities, working hours and (with `salary`) wages of each employment,
/// with bounded concurrency, maps them, and soft-deletes children that disappeared.
async fn fetch_employment_histories(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    employments: &[wire::Employment],
    payroll_tax_numbers: &HashMap<String, String>,
    stored: &Stored,
    out: &mut Collected,
) -> Result<(), RunError> {
    let employer_id = employer.id.to_string();
    let salary = employer.options.salary;
    let c = &ctx.client;
    // A named async fn rather than a closure: a closure returning a future that borrows its
    // argument is not general enough over lifetimes for `tokio::spawn` (the service spawns runs).
    let results: Vec<(&wire::Employment, Result<Histories, LoketError>)> = stream::iter(
        employments
            .iter()
            .map(|e| fetch_histories(c, e, salary))
            .collect::<Vec<_>>(),
    )
    .buffer_unordered(c.max_parallel_requests().div_ceil(2).max(1))
    .collect()
    .await;

    for (e, r) in results {
        let (orgs, hours, wages) = match r {
            Ok(h) => h,
            Err(LoketError::NotFound { .. }) => {
                out.failures.push((
                    "employment".into(),
                    e.id.clone(),
                    "a history list answered 404".into(),
                ));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        match map::employment(&employer_id, e, payroll_tax_numbers) {
            Ok(r) => out.push(r),
            Err(err) => {
                out.fail(err);
                continue;
            }
        }
        out.resolved
            .push(RetryKey::new(employer.id, "employment", e.id.clone()));
        let mut seen: HashMap<Entity, HashSet<String>> = HashMap::new();
        for o in &orgs {
            match map::department_period(&employer_id, &e.id, o) {
                Ok(r) => {
                    seen.entry(Entity::DepartmentPeriod)
                        .or_default()
                        .insert(r.id.clone());
                    out.push(r)
                }
                Err(err) => {
                    // It exists at Loket: kept as stored, not deleted.
                    seen.entry(Entity::DepartmentPeriod)
                        .or_default()
                        .insert(o.id.clone());
                    out.fail_under("employment", &e.id, describe(&err))
                }
            }
        }
        for w in &hours {
            match map::workweek_period(&employer_id, &e.id, w) {
                Ok(r) => {
                    seen.entry(Entity::WorkweekPeriod)
                        .or_default()
                        .insert(r.id.clone());
                    out.push(r)
                }
                Err(err) => {
                    seen.entry(Entity::WorkweekPeriod)
                        .or_default()
                        .insert(w.id.clone());
                    out.fail_under("employment", &e.id, describe(&err))
                }
            }
        }
        let mut child_entities = vec![Entity::DepartmentPeriod, Entity::WorkweekPeriod];
        if let Some(wages) = &wages {
            child_entities.push(Entity::SalaryPeriod);
            for w in wages {
                match map::salary_period(&employer_id, &e.id, w) {
                    Ok(r) => {
                        seen.entry(Entity::SalaryPeriod)
                            .or_default()
                            .insert(r.id.clone());
                        out.push(r)
                    }
                    Err(err) => {
                        seen.entry(Entity::SalaryPeriod)
                            .or_default()
                            .insert(w.id.clone());
                        out.fail_under("employment", &e.id, describe(&err))
                    }
                }
            }
        }
        for entity in child_entities {
            let seen = seen.remove(&entity).unwrap_or_default();
            let gone: Vec<String> = stored.children[&entity]
                .iter()
                .filter(|(id, parent)| *parent == &e.id && !seen.contains(*id))
                .map(|(id, _)| id.clone())
                .collect();
            out.soft_deletes.push((entity, gone));
        }
    }
    Ok(())
}

/// On a run where the employer's static data did not move: employees who entered the scope (a
/// first sick report, or a case opened by hand) are read with their employments and histories.
async fn bring_in_new_people(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    scope: &Scope,
    stored: &Stored,
    out: &mut Collected,
) -> Result<(), RunError> {
    if scope.all {
        return Ok(());
    }
    let employer_id = employer.id.to_string();
    let mut new_people: Vec<&String> = scope
        .employees
        .iter()
        .filter(|id| !stored.employees.contains(*id))
        .collect();
    new_people.sort();
    if new_people.is_empty() {
        return Ok(());
    }
    let c = &ctx.client;
    let admins = c.payroll_administrations(&employer_id).await?;
    let taxes: HashMap<String, String> = admins
        .into_iter()
        .filter_map(|a| a.payroll_taxes_number.map(|n| (a.id, n)))
        .collect();
    let mut employments = Vec::new();
    for id in new_people {
        let person = match c.employee(id).await {
            Ok(p) => p,
            Err(LoketError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let bsn = if employer.options.bsn {
            c.citizen_service_number(id).await?.citizen_service_number
        } else {
            None
        };
        match map::employee(&employer_id, &person, bsn) {
            Ok(r) => {
                out.resolved
                    .push(RetryKey::new(employer.id, "employee", id.clone()));
                out.push(r)
            }
            Err(err) => out.fail(err),
        }
        employments.extend(c.employments_of_employee(id).await?);
    }
    fetch_employment_histories(ctx, employer, &employments, &taxes, stored, out).await
}

/// Polls absences: employees with an open absence, employees whose absent days in the calendar
/// window changed, employees whose data changed, retry-queue entries, and at a full
/// reconciliation everyone in scope.
#[allow(clippy::too_many_arguments)]
async fn sync_absences(
    ctx: &SyncContext,
    employer: &EmployerConfig,
    full: bool,
    scope: &Scope,
    stored: &Stored,
    fetched: &Fetched,
    retry: &[crate::state::RetryEntry],
    out: &mut Collected,
) -> Result<(), RunError> {
    let employer_id = employer.id.to_string();
    // People in the retry queue: their absences and progress are read again in full.
    let retried: HashSet<&str> = retry
        .iter()
        .filter(|r| r.entity == "absence_employee")
        .map(|r| r.record_id.as_str())
        .collect();
    let mut poll: BTreeSet<String> = BTreeSet::new();
    // People with an open stored absence: its progress can change without its days changing.
    poll.extend(
        stored
            .absences
            .values()
            .filter(|a| a.last_day.is_none())
            .map(|a| a.employee_id.clone()),
    );
    // People whose absent days in the calendar window differ from the stored ones: a new sick
    // report, a recovery, a withdrawn absence or corrected dates (see `calendar`).
    let mut stored_periods: HashMap<String, Vec<calendar::Period>> = HashMap::new();
    for a in stored.absences.values() {
        stored_periods
            .entry(a.employee_id.clone())
            .or_default()
            .push((Some(a.first_day), a.last_day));
    }
    poll.extend(calendar::changed_people(
        &scope.calendar,
        &stored_periods,
        scope.calendar_window,
    ));
    poll.extend(fetched.changed_employees.iter().cloned());
    poll.extend(
        retry
            .iter()
            .filter(|r| r.entity == "absence_employee")
            .map(|r| r.record_id.clone()),
    );
    if full {
        if scope.all {
            poll.extend(stored.employees.iter().cloned());
            poll.extend(out.records.iter().filter_map(|r| match r {
                Record::Employee(e) => Some(e.id.clone()),
                _ => None,
            }));
        } else {
            poll.extend(scope.employees.iter().cloned());
        }
    }
    poll.retain(|id| scope.contains(id));

    // Employments per person, for tying an absence to an employment by date.
    // Employments this run soft-deletes (gone at the source) no longer count.
    let gone_employments: HashSet<&String> = out
        .soft_deletes
        .iter()
        .filter(|(entity, _)| *entity == Entity::Employment)
        .flat_map(|(_, ids)| ids)
        .collect();
    let mut employments_of: HashMap<String, Vec<(String, NaiveDate, Option<NaiveDate>)>> =
        HashMap::new();
    for (id, e) in stored
        .employments
        .iter()
        .filter(|(id, _)| !gone_employments.contains(id))
    {
        employments_of
            .entry(e.employee_id.clone())
            .or_default()
            .push((id.clone(), e.start_date, e.end_date));
    }
    for r in &out.records {
        if let Record::Employment(e) = r {
            let list = employments_of.entry(e.employee_id.clone()).or_default();
            list.retain(|(id, _, _)| *id != e.id);
            list.push((e.id.clone(), e.start_date, e.end_date));
        }
    }

    let c = &ctx.client;
    let lists: Vec<(String, Result<Vec<wire::Absence>, LoketError>)> = stream::iter(poll)
        .map(|id| async move {
            let r = c.absences(&id).await;
            (id, r)
        })
        .buffer_unordered(c.max_parallel_requests())
        .collect()
        .await;

    let mut stored_by_employee: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, a) in &stored.absences {
        stored_by_employee
            .entry(a.employee_id.as_str())
            .or_default()
            .push(id.as_str());
    }

    // Decide which absences need their progress chain: new ones, and ones whose summary changed.
    let mut need_progress: Vec<(String, wire::Absence)> = Vec::new();
    let mut gone_absences = Vec::new();
    for (employee_id, r) in lists {
        let absences = match r {
            Ok(a) => a,
            Err(LoketError::NotFound { .. }) => {
                out.failures.push((
                    "absence_employee".into(),
                    employee_id,
                    "the absence list answered 404".into(),
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        out.resolved.push(RetryKey::new(
            employer.id,
            "absence_employee",
            employee_id.clone(),
        ));
        let seen: HashSet<&str> = absences.iter().map(|a| a.id.as_str()).collect();
        for id in stored_by_employee
            .get(employee_id.as_str())
            .into_iter()
            .flatten()
        {
            if !seen.contains(id) {
                gone_absences.push(id.to_string());
            }
        }
        for a in absences {
            let last_day = a.end_of_absence().and_then(|e| e.date);
            if !map::in_history_window(last_day, scope.history_start) {
                if stored.absences.contains_key(&a.id) {
                    out.aged_out.insert(a.id.clone());
                }
                continue;
            }
            let unchanged = stored.absences.get(&a.id).is_some_and(|s| {
                // The summary carries the first day too: a corrected first day must show up as
                // a change (the stored one is only the fallback for a summary without it).
                let first_day = map::first_day(&a, &[]).unwrap_or(s.first_day);
                let candidate = map::absence(
                    &employer_id,
                    &employee_id,
                    &a,
                    first_day,
                    map::resolve_employment(
                        first_day,
                        employments_of
                            .get(&employee_id)
                            .into_iter()
                            .flatten()
                            .map(|(id, st, en)| (id.as_str(), *st, *en)),
                    ),
                );
                !full
                    && !retried.contains(employee_id.as_str())
                    && Record::from(candidate).content_hash() == s.content_hash
            });
            if !unchanged {
                need_progress.push((employee_id.clone(), a));
            }
        }
    }
    // A withdrawn absence goes with its progress records, each with its own delete row.
    let gone_progress: Vec<String> = stored.children[&Entity::AbsenceProgress]
        .iter()
        .filter(|(_, parent)| gone_absences.contains(parent))
        .map(|(id, _)| id.clone())
        .collect();
    out.soft_deletes
        .push((Entity::AbsenceProgress, gone_progress));
    out.soft_deletes.push((Entity::Absence, gone_absences));

    type ProgressResult = (
        (String, wire::Absence),
        Result<Vec<wire::AbsenceProgress>, LoketError>,
    );
    let progress: Vec<ProgressResult> = stream::iter(need_progress)
        .map(|(employee_id, a)| async move {
            let r = c.absence_progress(&a.id).await;
            ((employee_id, a), r)
        })
        .buffer_unordered(c.max_parallel_requests())
        .collect()
        .await;
    for ((employee_id, a), r) in progress {
        let chain = match r {
            Ok(p) => p,
            Err(LoketError::NotFound { .. }) => {
                out.fail_under(
                    "absence_employee",
                    &employee_id,
                    format!("absence {}: its progress list answered 404", a.id),
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(first_day) = map::first_day(&a, &chain) else {
            out.fail_under(
                "absence_employee",
                &employee_id,
                format!("absence {}: has no first day", a.id),
            );
            continue;
        };
        let employment_id = map::resolve_employment(
            first_day,
            employments_of
                .get(&employee_id)
                .into_iter()
                .flatten()
                .map(|(id, st, en)| (id.as_str(), *st, *en)),
        );
        out.push(map::absence(
            &employer_id,
            &employee_id,
            &a,
            first_day,
            employment_id,
        ));
        let mut seen = HashSet::new();
        for p in &chain {
            match map::absence_progress(&employer_id, &a.id, p) {
                Ok(r) => {
                    seen.insert(r.id.clone());
                    out.push(r)
                }
                Err(err) => {
                    // It exists at Loket: kept as stored, not deleted.
                    seen.insert(p.id.clone());
                    out.fail_under("absence_employee", &employee_id, describe(&err))
                }
            }
        }
        let gone: Vec<String> = stored.children[&Entity::AbsenceProgress]
            .iter()
            .filter(|(id, parent)| **parent == a.id && !seen.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        out.soft_deletes.push((Entity::AbsenceProgress, gone));
    }
    Ok(())
}

type Histories = (
    Vec<wire::OrganizationalEntity>,
    Vec<wire::WorkingHours>,
    Option<Vec<wire::Wage>>,
);

/// The department, hours and (when allowed) wage histories of one employment.
async fn fetch_histories<'e>(
    c: &LoketClient,
    e: &'e wire::Employment,
    salary: bool,
) -> (&'e wire::Employment, Result<Histories, LoketError>) {
    let r = async {
        let (orgs, hours) =
            tokio::try_join!(c.organizational_entities(&e.id), c.working_hours(&e.id))?;
        let wages = if salary {
            Some(c.wages(&e.id).await?)
        } else {
            None
        };
        Ok((orgs, hours, wages))
    }
    .await;
    (e, r)
}
