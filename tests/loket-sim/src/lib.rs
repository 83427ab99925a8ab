//! A faithful, stateful stand-in for the Loket REST API (see `shared/docs/interfaces.md`
//! and `shared/docs/loket-api.md`), for tests, benchmarks and the demo.
//!
//! # Starting it
//! In process: [`start`] with a [`SimConfig`] returns a [`RunningSim`] (URLs, client id,
//! a valid initial refresh token, employer ids) and a [`SimHandle`] for mutations. As a
//! process: `loket-sim [--listen 127.0.0.1:0] [--seed N] [--employers N]
//! [--employees-per-employer N] [--latency-ms N] [--max-page-size N] [--today YYYY-MM-DD]
//! [--client-id ID] [--client-secret S] [--access-token-ttl-secs N]` prints ONE JSON line
//! `{"api_url","oauth_url","client_id","refresh_token","employer_ids","base_url"}` once it
//! listens and serves until killed.
//!
//! The dataset is a pure function of `(seed, employers, employees_per_employer, today)`;
//! see `generator.rs` for what every employer is guaranteed to contain.
//!
//! # Loket API (`/v2`, bearer token required)
//! Employers, employer detail, employer version numbers, departments (+ detail),
//! payroll administrations, employees (+ detail, BSN), employments (employer list,
//! version numbers, detail, per employee), organizational entities, working hours,
//! wages, absences (per employee, detail), absence progress (list, detail), calendar
//! absences, actual organizational entities / working hours / wages and the comprehensive
//! employment list; paths exactly as in the OpenAPI document.
//! Behaviour: list envelope `{_embedded,currentPage,pageSize,totalPages,totalSize,version,messages}`,
//! single envelope `{content,version,messages}` (+ `ETag`); `pageSize` default 250, capped
//! at `max_page_size`; `filter` (eq/ne/gt/ge/lt/le/lk, and/or, parentheses, dotted fields,
//! i64 exact) and `orderBy` work on every list; errors use Loket's `messages` envelope
//! (`BrokenBusinessRule` 400, `NotFound` 404); 401 body
//! `{"message":"Authorization has been denied for this request."}`.
//!
//! # Decisions where `loket-api.md` says UNCERTAIN
//! * `Accept` without `version=` (or no header) -> the newest resource version; a version
//!   date older than the resource's first version -> **406** with a `messages` body
//!   (`BrokenBusinessRule`); a malformed version -> 400; non-JSON media types -> 406.
//! * Maximum page size: `SimConfig::max_page_size` (default 250), applied silently.
//! * `totalPages` is 0 for an empty collection.
//! * Refresh tokens rotate (a used one is invalid: `invalid_grant`); they never expire by
//!   time. Access tokens live `access_token_ttl_secs` (default 3599).
//! * Absences are NOT part of the last-modified version numbers.
//! * `endOfAbsence` is nested in `progress` (as in the 2020-03-16 schema), never at top
//!   level. `progress.startDate` is the first day of absence;
//!   `progress.currentIncapacityPercentage` is the record active today (else the last).
//!   Closing an absence sets the last progress record's `endDate` to the end date.
//! * Comprehensive list / `actual*` lists: a record not active on `referenceDate` (default:
//!   the simulator's today) is omitted (key absent in comprehensive, item absent in
//!   `actual*`). The calendar returns absences' own first/last day, unclipped.
//! * The employer-level employment lists return ALL (past, current, future) employments
//!   (as with the user filter setting `AllEmployments`). Deleted employments disappear.
//! * Ids are lowercase UUIDs like all of Loket's own examples. NOTE: the OpenAPI `pattern`
//!   on uuid fields is `[0-9A-F]` (upper case only) while all 2,388 uuid examples in the
//!   same document are lower case; a contract test should match that pattern
//!   case-insensitively. Path ids are accepted in any case; a malformed id is a 404.
//! * Message `code`s are the HTTP status (Loket warns codes may change anyway).
//! * Absence metadata key lists (cause, expected duration, action, end reason, type of
//!   work resumption) are the simulator's own (`catalog.rs`); maternity leave is cause
//!   key 2 "Zwangerschap/bevalling (WAZO)". The [`catalog`] module is public so tests can
//!   turn the truth's `*_key` integers into the texts the API sends.
//!
//! # Test-only API (`/_sim`, no auth, JSON in/out; same effect as the `SimHandle` method)
//! Dates are `yyyy-MM-dd`, ids UUID strings. Errors: 400/404 `{"error": "..."}`.
//! * `POST /_sim/absences {employee_id, first_day, cause_key?, comments?}` -> `{"id"}`:
//!   new open absence with one 100% progress record ([`SimHandle::create_absence`]).
//! * `POST /_sim/absences/{id}/progress {start_date, incapacity_percentage}` -> `{"id"}`:
//!   partial recovery; the previous record ends at `start_date - 1`.
//! * `POST /_sim/absences/{id}/close {date, reason_key?}`: full recovery (`date` = last
//!   day of absence; reason default 1 "Volledig hersteld").
//! * `PATCH /_sim/absences/{id} {first_day?}`: correct the first day (moves the first
//!   progress record; must stay before the second record and the end).
//! * `DELETE /_sim/absences/{id}`: withdrawn at the source (progress goes too).
//! * `POST /_sim/employments/{id}/workinghours {start_date, hours_per_week}` -> `{"id"}`
//! * `POST /_sim/employments/{id}/department {start_date, department_id}` -> `{"id"}`
//! * `POST /_sim/employments/{id}/wage {start_date, gross_wage}` -> `{"id"}`
//!   (these three insert a record into the linked chain, replacing one with the same start
//!   date; `start_date` must lie within the employment)
//! * `POST /_sim/employments/{id}/terminate {end_date}`
//! * `DELETE /_sim/employments/{id}`
//! * `POST /_sim/employers/{id}/employees {first_name?, last_name?, start_date?}` ->
//!   `{"employee_id","employment_id"}` (start date default: the simulator's today)
//! * `PATCH /_sim/employees/{id} {bsn?, email?, last_name?}` (empty string clears bsn/email;
//!   bsn must be 9 digits, the 11-proof is NOT enforced so invalid canaries are possible)
//! * `PATCH /_sim/departments/{id} {description}`
//! * `POST /_sim/bump {employer_id, employment_ids?}` -> `{"employer_version"}`: new version
//!   numbers without a data change for the listed employments (default: all of the
//!   employer's) and the employer.
//! * `POST /_sim/faults {kind, path_contains?, query_contains?, status?, retry_after_secs?,
//!   retry_after_http_date?, latency_ms?, times?, item_id?, field?, value?, body?,
//!   content_type?}` -> `{"id"}`; `DELETE /_sim/faults` clears all. Kinds and matching: see
//!   `faults.rs` (`latency`, `status`, `drop`, `malformed`, `truncated`, `expire_tokens`,
//!   `patch`, `body`, `repeat_item`).
//! * `POST /_sim/oauth/revoke`: every refresh token becomes invalid.
//! * `POST /_sim/oauth/refresh-token` -> `{"refresh_token"}`: a fresh valid refresh token.
//! * `GET /_sim/stats` -> `{"total","by_template":{"GET /v2/...{employerId}...": n},"token_requests"}`;
//!   `DELETE /_sim/stats` resets counters and the request log. Every `/v2` request is
//!   counted (also 401s and faulted ones); `token_requests` counts `POST /oauth/token`.
//! * `GET /_sim/requests` -> the last 10,000 `/v2` requests `[{method,path,query,accept,template}]`.
//!   In process, [`SimHandle::arrivals`] has the same requests with their arrival time (ms
//!   since the epoch) and the status answered, for measuring waits between requests.
//! * `GET /_sim/truth` -> the whole dataset, [`World`] serialised with serde:
//!   `{today, version_counter, employers:[{id, employer_number, company_name, ...,
//!   payroll_administrations:[...], departments:[{id,code,description,parent_id}],
//!   functions, employee_ids, employment_ids, last_modified_version_number}],
//!   employees:{id:{..., bsn, employment_ids, absence_ids}}, employments:{id:{...,
//!   organizational_entities, working_hours, wages, last_modified_version_number}},
//!   absences:{id:{..., comments, end_of_absence:{date,reason_key}|null, progress:[...]}}}`
//!   (snake_case; money as integer `gross_wage_cents`; metadata as `*_key` integers).
//!
//! # Version-number rules
//! See `store.rs`: one global counter starting above 2^33; employment-related changes
//! bump the employment and its employer; department renames, new employees and deleted
//! employments bump the employer; absences bump nothing.

mod accept;
mod admin;
mod api;
pub mod catalog;
mod faults;
mod filter;
mod generator;
mod model;
mod oauth;
mod paging;
mod render;
mod state;
mod store;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use chrono::NaiveDate;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use chrono;
pub use faults::{Arrival, FaultKind, FaultSpec};
pub use generator::{VERSION_COUNTER_START, is_valid_bsn};
pub use model::*;
pub use state::{RecordedRequest, StatsSnapshot};
pub use store::{EmployeePatch, NewEmployee, SimError};
pub use uuid::Uuid;

use crate::generator::GenParams;
use crate::oauth::AuthState;
use crate::state::{Settings, Shared, Stats, lock};
use crate::store::Store;

/// Simulator settings.
#[derive(Clone)]
pub struct SimConfig {
    /// Default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    pub seed: u64,
    /// Default 3.
    pub employers: usize,
    /// Default 20.
    pub employees_per_employer: usize,
    /// Added to every `/v2` request. Default 0.
    pub latency_ms: u64,
    /// Server-side page-size cap. Default 250.
    pub max_page_size: usize,
    /// Default 3599.
    pub access_token_ttl_secs: u64,
    /// Default `"arbosync-sim"`.
    pub client_id: String,
    /// When set, the token endpoint requires it.
    pub client_secret: Option<String>,
    /// The generator's "today"; default: today in UTC.
    pub today: Option<NaiveDate>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 0,
            employers: 3,
            employees_per_employer: 20,
            latency_ms: 0,
            max_page_size: 250,
            access_token_ttl_secs: 3599,
            client_id: "arbosync-sim".into(),
            client_secret: None,
            today: None,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .field("employers", &self.employers)
            .field("employees_per_employer", &self.employees_per_employer)
            .field("latency_ms", &self.latency_ms)
            .field("max_page_size", &self.max_page_size)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("today", &self.today)
            .finish()
    }
}

/// A running simulator. Dropping it stops the server task.
pub struct RunningSim {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `base_url + "/v2"`
    pub api_url: String,
    /// `base_url + "/oauth"`
    pub oauth_url: String,
    pub client_id: String,
    /// A valid initial refresh token.
    pub refresh_token: String,
    pub employer_ids: Vec<String>,
    handle: SimHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("refresh_token", &"<redacted>")
            .field("employer_ids", &self.employer_ids)
            .finish()
    }
}

impl RunningSim {
    /// A cheap handle for in-process mutations (same effect as the `/_sim` endpoints).
    pub fn state(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Stop serving: graceful for up to 5 seconds, then the task is aborted.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Generate the dataset, bind `cfg.listen`, spawn the server and return once listening.
pub async fn start(cfg: SimConfig) -> anyhow::Result<RunningSim> {
    let today = cfg.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let (world, gen_) = generator::generate(GenParams {
        seed: cfg.seed,
        employers: cfg.employers,
        employees_per_employer: cfg.employees_per_employer,
        today,
    });
    let employer_ids = world.employers.iter().map(|e| e.id.to_string()).collect();
    let mut auth = AuthState::default();
    let refresh_token = auth.mint_refresh_token();
    let shared = Arc::new(Shared {
        settings: Settings {
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            access_token_ttl_secs: cfg.access_token_ttl_secs,
            latency_ms: cfg.latency_ms,
            max_page_size: cfg.max_page_size.max(1),
        },
        store: Mutex::new(Store::new(world, gen_)),
        auth: Mutex::new(auth),
        faults: Mutex::new(faults::FaultBook::default()),
        stats: Mutex::new(Stats::default()),
    });
    let app = Router::new()
        .route("/v2", any(api::handle))
        .route("/v2/{*rest}", any(api::handle))
        // Only the `/v2` routes above: arrival log and the faults that need the whole exchange.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            faults::routed_layer,
        ))
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/token", post(oauth::token))
        .merge(admin::router())
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "message": "Not found." })),
            )
                .into_response()
        })
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let mut addr = listener.local_addr().context("reading the bound address")?;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    let base_url = format!("http://{addr}");
    Ok(RunningSim {
        api_url: format!("{base_url}/v2"),
        oauth_url: format!("{base_url}/oauth"),
        base_url,
        client_id: cfg.client_id,
        refresh_token,
        employer_ids,
        handle: SimHandle { shared },
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// In-process access to a running simulator's state. Cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimHandle")
    }
}

impl SimHandle {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.shared.store)
    }

    /// Read the dataset without cloning it.
    pub fn with_world<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.store().world)
    }

    /// A copy of the whole dataset (what `GET /_sim/truth` serialises).
    pub fn truth(&self) -> World {
        self.store().world.clone()
    }

    pub fn employer_version(&self, employer_id: Uuid) -> Option<i64> {
        self.store()
            .employer(employer_id)
            .map(|e| e.last_modified_version_number)
    }

    pub fn employment_version(&self, employment_id: Uuid) -> Option<i64> {
        self.store()
            .world
            .employments
            .get(&employment_id)
            .map(|e| e.last_modified_version_number)
    }

    pub fn create_absence(
        &self,
        employee_id: Uuid,
        first_day: NaiveDate,
        cause_key: Option<i32>,
        comments: Option<String>,
    ) -> Result<Uuid, SimError> {
        self.store()
            .create_absence(employee_id, first_day, cause_key, comments)
    }

    pub fn add_absence_progress(
        &self,
        absence_id: Uuid,
        start_date: NaiveDate,
        incapacity_percentage: i32,
    ) -> Result<Uuid, SimError> {
        self.store()
            .add_absence_progress(absence_id, start_date, incapacity_percentage)
    }

    pub fn close_absence(
        &self,
        absence_id: Uuid,
        date: NaiveDate,
        reason_key: Option<i32>,
    ) -> Result<(), SimError> {
        self.store().close_absence(absence_id, date, reason_key)
    }

    pub fn correct_absence_first_day(
        &self,
        absence_id: Uuid,
        first_day: NaiveDate,
    ) -> Result<(), SimError> {
        self.store()
            .correct_absence_first_day(absence_id, first_day)
    }

    pub fn delete_absence(&self, absence_id: Uuid) -> Result<(), SimError> {
        self.store().delete_absence(absence_id)
    }

    pub fn add_working_hours(
        &self,
        employment_id: Uuid,
        start_date: NaiveDate,
        hours_per_week: f64,
    ) -> Result<Uuid, SimError> {
        self.store()
            .add_working_hours(employment_id, start_date, hours_per_week)
    }

    pub fn change_department(
        &self,
        employment_id: Uuid,
        start_date: NaiveDate,
        department_id: Uuid,
    ) -> Result<Uuid, SimError> {
        self.store()
            .change_department(employment_id, start_date, department_id)
    }

    pub fn change_wage(
        &self,
        employment_id: Uuid,
        start_date: NaiveDate,
        gross_wage: f64,
    ) -> Result<Uuid, SimError> {
        self.store()
            .change_wage(employment_id, start_date, gross_wage)
    }

    pub fn terminate_employment(
        &self,
        employment_id: Uuid,
        end_date: NaiveDate,
    ) -> Result<(), SimError> {
        self.store().terminate_employment(employment_id, end_date)
    }

    pub fn delete_employment(&self, employment_id: Uuid) -> Result<(), SimError> {
        self.store().delete_employment(employment_id)
    }

    /// Returns `(employee_id, employment_id)`.
    pub fn add_employee(
        &self,
        employer_id: Uuid,
        spec: NewEmployee,
    ) -> Result<(Uuid, Uuid), SimError> {
        self.store().add_employee(employer_id, spec)
    }

    pub fn patch_employee(&self, employee_id: Uuid, patch: EmployeePatch) -> Result<(), SimError> {
        self.store().patch_employee(employee_id, patch)
    }

    pub fn rename_department(
        &self,
        department_id: Uuid,
        description: &str,
    ) -> Result<(), SimError> {
        self.store()
            .rename_department(department_id, description.to_string())
    }

    /// New version numbers without a data change; returns the employer's new number.
    pub fn bump(
        &self,
        employer_id: Uuid,
        employment_ids: Option<Vec<Uuid>>,
    ) -> Result<i64, SimError> {
        self.store().bump(employer_id, employment_ids)
    }

    /// Register a fault (see `faults.rs`); returns its id.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<u64, SimError> {
        if spec.kind == FaultKind::ExpireTokens && spec.path_contains.is_none() {
            self.expire_access_tokens();
            return Ok(0);
        }
        lock(&self.shared.faults)
            .add(spec)
            .map_err(SimError::Invalid)
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Invalidate every refresh token (the next refresh gets `invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.shared.auth).revoke_refresh_tokens();
    }

    /// Mint an extra valid refresh token.
    pub fn mint_refresh_token(&self) -> String {
        lock(&self.shared.auth).mint_refresh_token()
    }

    /// Invalidate every access token now.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.auth).expire_access_tokens();
    }

    pub fn stats(&self) -> StatsSnapshot {
        lock(&self.shared.stats).counters.clone()
    }

    /// Reset counters, the request log and the arrival log.
    pub fn reset_stats(&self) {
        lock(&self.shared.stats).reset();
        lock(&self.shared.faults).clear_arrivals();
    }

    /// The last 10,000 `/v2` requests with their arrival time and the status answered.
    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.shared.faults).arrivals()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.stats).requests.iter().cloned().collect()
    }
}
