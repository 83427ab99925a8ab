//! The test-only `/_sim` HTTP API (no auth, JSON in and out). Every route calls the
//! [`SimHandle`] method with the same effect; see the crate docs for the list.
//! Errors: 400 `{"error": "..."}` for bad JSON, bad ids or invalid values; 404
//! `{"error": "..."}` for unknown ids.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::SimHandle;
use crate::faults::FaultSpec;
use crate::state::Shared;
use crate::store::{EmployeePatch, NewEmployee, SimError};

/// An error answer: `{"error": message}` with a 4xx/5xx status.
struct AdminError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<SimError> for AdminError {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::NotFound { .. } => StatusCode::NOT_FOUND,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        AdminError {
            status,
            message: e.to_string(),
        }
    }
}

type R = Result<Response, AdminError>;

fn err(status: StatusCode, msg: impl std::fmt::Display) -> AdminError {
    AdminError {
        status,
        message: msg.to_string(),
    }
}

fn ok(v: Value) -> R {
    Ok(axum::Json(v).into_response())
}

fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, AdminError> {
    let raw: &[u8] = if b.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        b
    };
    serde_json::from_slice(raw)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn id(raw: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(raw).map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            format!("'{raw}' is not a valid id"),
        )
    })
}

fn handle(sh: &Arc<Shared>) -> SimHandle {
    SimHandle {
        shared: Arc::clone(sh),
    }
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/absences", post(create_absence))
        .route(
            "/_sim/absences/{id}",
            patch(patch_absence).delete(delete_absence),
        )
        .route("/_sim/absences/{id}/progress", post(absence_progress))
        .route("/_sim/absences/{id}/close", post(close_absence))
        .route("/_sim/employments/{id}", delete(delete_employment))
        .route("/_sim/employments/{id}/workinghours", post(working_hours))
        .route("/_sim/employments/{id}/department", post(department))
        .route("/_sim/employments/{id}/wage", post(wage))
        .route("/_sim/employments/{id}/terminate", post(terminate))
        .route("/_sim/employers/{id}/employees", post(add_employee))
        .route("/_sim/employees/{id}", patch(patch_employee))
        .route("/_sim/departments/{id}", patch(rename_department))
        .route("/_sim/bump", post(bump))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/oauth/revoke", post(revoke))
        .route("/_sim/oauth/refresh-token", post(mint_refresh_token))
        .route("/_sim/stats", get(stats).delete(reset_stats))
        .route("/_sim/requests", get(requests))
        .route("/_sim/truth", get(truth))
}

#[derive(Deserialize)]
struct CreateAbsence {
    employee_id: Uuid,
    first_day: NaiveDate,
    cause_key: Option<i32>,
    comments: Option<String>,
}

async fn create_absence(State(sh): State<Arc<Shared>>, b: Bytes) -> R {
    let req: CreateAbsence = body(&b)?;
    let new =
        handle(&sh).create_absence(req.employee_id, req.first_day, req.cause_key, req.comments)?;
    ok(json!({ "id": new }))
}

#[derive(Deserialize)]
struct Progress {
    start_date: NaiveDate,
    incapacity_percentage: i32,
}

async fn absence_progress(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Progress = body(&b)?;
    let new =
        handle(&sh).add_absence_progress(id(&p)?, req.start_date, req.incapacity_percentage)?;
    ok(json!({ "id": new }))
}

#[derive(Deserialize)]
struct Close {
    date: NaiveDate,
    reason_key: Option<i32>,
}

async fn close_absence(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Close = body(&b)?;
    handle(&sh).close_absence(id(&p)?, req.date, req.reason_key)?;
    ok(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct PatchAbsence {
    first_day: Option<NaiveDate>,
}

async fn patch_absence(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: PatchAbsence = body(&b)?;
    let aid = id(&p)?;
    if let Some(d) = req.first_day {
        handle(&sh).correct_absence_first_day(aid, d)?;
    } else if !handle(&sh).with_world(|w| w.absences.contains_key(&aid)) {
        return Err(SimError::NotFound {
            kind: "absence",
            id: aid,
        }
        .into());
    }
    ok(json!({ "ok": true }))
}

async fn delete_absence(State(sh): State<Arc<Shared>>, Path(p): Path<String>) -> R {
    handle(&sh).delete_absence(id(&p)?)?;
    ok(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct Hours {
    start_date: NaiveDate,
    hours_per_week: f64,
}

async fn working_hours(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Hours = body(&b)?;
    let new = handle(&sh).add_working_hours(id(&p)?, req.start_date, req.hours_per_week)?;
    ok(json!({ "id": new }))
}

#[derive(Deserialize)]
struct Dept {
    start_date: NaiveDate,
    department_id: Uuid,
}

async fn department(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Dept = body(&b)?;
    let new = handle(&sh).change_department(id(&p)?, req.start_date, req.department_id)?;
    ok(json!({ "id": new }))
}

#[derive(Deserialize)]
struct WageReq {
    start_date: NaiveDate,
    gross_wage: f64,
}

async fn wage(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: WageReq = body(&b)?;
    let new = handle(&sh).change_wage(id(&p)?, req.start_date, req.gross_wage)?;
    ok(json!({ "id": new }))
}

#[derive(Deserialize)]
struct Terminate {
    end_date: NaiveDate,
}

async fn terminate(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Terminate = body(&b)?;
    handle(&sh).terminate_employment(id(&p)?, req.end_date)?;
    ok(json!({ "ok": true }))
}

async fn delete_employment(State(sh): State<Arc<Shared>>, Path(p): Path<String>) -> R {
    handle(&sh).delete_employment(id(&p)?)?;
    ok(json!({ "ok": true }))
}

async fn add_employee(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: NewEmployee = body(&b)?;
    let (employee_id, employment_id) = handle(&sh).add_employee(id(&p)?, req)?;
    ok(json!({ "employee_id": employee_id, "employment_id": employment_id }))
}

async fn patch_employee(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: EmployeePatch = body(&b)?;
    handle(&sh).patch_employee(id(&p)?, req)?;
    ok(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct Rename {
    description: String,
}

async fn rename_department(State(sh): State<Arc<Shared>>, Path(p): Path<String>, b: Bytes) -> R {
    let req: Rename = body(&b)?;
    handle(&sh).rename_department(id(&p)?, &req.description)?;
    ok(json!({ "ok": true }))
}

#[derive(Deserialize)]
struct Bump {
    employer_id: Uuid,
    employment_ids: Option<Vec<Uuid>>,
}

async fn bump(State(sh): State<Arc<Shared>>, b: Bytes) -> R {
    let req: Bump = body(&b)?;
    let v = handle(&sh).bump(req.employer_id, req.employment_ids)?;
    ok(json!({ "employer_version": v }))
}

async fn add_fault(State(sh): State<Arc<Shared>>, b: Bytes) -> R {
    let spec: FaultSpec = body(&b)?;
    let fid = handle(&sh).add_fault(spec)?;
    ok(json!({ "id": fid }))
}

async fn clear_faults(State(sh): State<Arc<Shared>>) -> R {
    handle(&sh).clear_faults();
    ok(json!({ "ok": true }))
}

async fn revoke(State(sh): State<Arc<Shared>>) -> R {
    handle(&sh).revoke_refresh_tokens();
    ok(json!({ "ok": true }))
}

async fn mint_refresh_token(State(sh): State<Arc<Shared>>) -> R {
    ok(json!({ "refresh_token": handle(&sh).mint_refresh_token() }))
}

async fn stats(State(sh): State<Arc<Shared>>) -> R {
    ok(serde_json::to_value(handle(&sh).stats()).unwrap_or(Value::Null))
}

async fn reset_stats(State(sh): State<Arc<Shared>>) -> R {
    handle(&sh).reset_stats();
    ok(json!({ "ok": true }))
}

async fn requests(State(sh): State<Arc<Shared>>) -> R {
    ok(serde_json::to_value(handle(&sh).requests()).unwrap_or(Value::Null))
}

async fn truth(State(sh): State<Arc<Shared>>) -> R {
    let v = handle(&sh)
        .with_world(|w| serde_json::to_value(w))
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    ok(v)
}
