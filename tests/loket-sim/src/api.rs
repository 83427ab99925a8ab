//! The Loket REST routes under `/v2`: routing by template, request recording, latency,
//! faults, bearer-token check, version negotiation, paging/filter/orderBy and the
//! handlers themselves.
//!
//! Request pipeline: record (stats + request log) -> configured latency -> faults ->
//! only GET (405 otherwise) -> `Authorization: Bearer` check (401) -> unknown path (404)
//! -> `Accept` version (406/400) -> handler. Ids in paths are matched
//! case-insensitively; a malformed id is a 404 (like a route constraint). Static path
//! segments take priority over `{param}` segments.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accept::{AcceptError, negotiate};
use crate::faults::{self, Gate};
use crate::filter;
use crate::model::{Employee, Employer, Employment, active_on};
use crate::paging::{self, Paging};
use crate::render;
use crate::state::{RecordedRequest, Shared, lock};
use crate::store::Store;

const V2018: &[&str] = &["2018-01-01"];
const V_EMPLOYEE: &[&str] = &["2018-12-31", "2021-03-29"];
const V_EMPLOYMENT: &[&str] = &["2019-12-16"];
const V_ABSENCE: &[&str] = &["2020-03-16"];

/// A 4xx answer with Loket's `messages` body.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: i32,
    description: String,
}

impl ApiError {
    fn not_found(what: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "NotFound",
            code: 404,
            description: format!("The {what} was not found."),
        }
    }
    fn bad_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "BrokenBusinessRule",
            code: 400,
            description: description.into(),
        }
    }
}

/// Per-request inputs for a handler.
pub struct Ctx {
    params: Vec<String>,
    query: HashMap<String, String>,
    version: &'static str,
    today: NaiveDate,
}

impl Ctx {
    fn id(&self, i: usize, what: &str) -> Result<Uuid, ApiError> {
        self.params
            .get(i)
            .and_then(|p| Uuid::parse_str(p).ok())
            .ok_or_else(|| ApiError::not_found(what))
    }

    fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        match self.query.get(&name.to_ascii_lowercase()) {
            None => Ok(None),
            Some(raw) => {
                // Accept `yyyy-MM-dd` and an ISO date-time (the date part is used).
                let d = raw.get(..10).unwrap_or(raw);
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "The value '{raw}' is not a valid date (yyyy-MM-dd) for {name}."
                        ))
                    })
            }
        }
    }

    fn reference_date(&self) -> Result<NaiveDate, ApiError> {
        Ok(self.date("referenceDate")?.unwrap_or(self.today))
    }
}

type ListFn = fn(&Store, &Ctx) -> Result<Vec<Value>, ApiError>;
type SingleFn = fn(&Store, &Ctx) -> Result<Value, ApiError>;

enum Kind {
    List(ListFn),
    Single(SingleFn),
}

struct Route {
    template: &'static str,
    versions: &'static [&'static str],
    kind: Kind,
}

const ROUTES: &[Route] = &[
    Route {
        template: "/providers/employers",
        versions: V2018,
        kind: Kind::List(employers),
    },
    Route {
        template: "/providers/employers/{employerId}",
        versions: V2018,
        kind: Kind::Single(employer),
    },
    Route {
        template: "/providers/employers/lastmodifiedversionnumbers",
        versions: V2018,
        kind: Kind::List(employer_versions),
    },
    Route {
        template: "/providers/employers/{employerId}/departments",
        versions: V2018,
        kind: Kind::List(departments),
    },
    Route {
        template: "/providers/employers/departments/{departmentId}",
        versions: V2018,
        kind: Kind::Single(department),
    },
    Route {
        template: "/providers/employers/{employerId}/payrolladministrations",
        versions: V2018,
        kind: Kind::List(payroll_administrations),
    },
    Route {
        template: "/providers/employers/{employerId}/employees",
        versions: V_EMPLOYEE,
        kind: Kind::List(employees),
    },
    Route {
        template: "/providers/employers/employees/{employeeId}",
        versions: V_EMPLOYEE,
        kind: Kind::Single(employee),
    },
    Route {
        template: "/providers/employers/employees/{employeeId}/citizenservicenumber",
        versions: V2018,
        kind: Kind::Single(citizen_service_number),
    },
    Route {
        template: "/providers/employers/{employerId}/employees/employments",
        versions: V_EMPLOYMENT,
        kind: Kind::List(employments),
    },
    Route {
        template: "/providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers",
        versions: V2018,
        kind: Kind::List(employment_versions),
    },
    Route {
        template: "/providers/employers/employees/employments/{employmentId}",
        versions: V_EMPLOYMENT,
        kind: Kind::Single(employment),
    },
    Route {
        template: "/providers/employers/employees/{employeeId}/employments",
        versions: V_EMPLOYMENT,
        kind: Kind::List(employee_employments),
    },
    Route {
        template: "/providers/employers/employees/employments/{employmentId}/organizationalentities",
        versions: V2018,
        kind: Kind::List(organizational_entities),
    },
    Route {
        template: "/providers/employers/employees/employments/{employmentId}/workinghours",
        versions: V2018,
        kind: Kind::List(working_hours),
    },
    Route {
        template: "/providers/employers/employees/employments/{employmentId}/wages",
        versions: V2018,
        kind: Kind::List(wages),
    },
    Route {
        template: "/providers/employers/employees/{employeeId}/absences",
        versions: V_ABSENCE,
        kind: Kind::List(absences),
    },
    Route {
        template: "/providers/employers/employees/absences/{absenceId}",
        versions: V_ABSENCE,
        kind: Kind::Single(absence),
    },
    Route {
        template: "/providers/employers/employees/absences/{absenceId}/absenceprogress",
        versions: V_ABSENCE,
        kind: Kind::List(absence_progress),
    },
    Route {
        template: "/providers/employers/employees/absences/absenceprogress/{absenceProgressId}",
        versions: V_ABSENCE,
        kind: Kind::Single(absence_progress_one),
    },
    Route {
        template: "/providers/employers/{employerId}/employees/employments/calendar/absences",
        versions: V2018,
        kind: Kind::List(calendar_absences),
    },
    Route {
        template: "/providers/employers/{employerId}/actualorganizationalentities",
        versions: V2018,
        kind: Kind::List(actual_organizational_entities),
    },
    Route {
        template: "/providers/employers/{employerId}/actualworkinghours",
        versions: V2018,
        kind: Kind::List(actual_working_hours),
    },
    Route {
        template: "/providers/employers/{employerId}/actualwages",
        versions: V2018,
        kind: Kind::List(actual_wages),
    },
    Route {
        template: "/providers/employers/{employerId}/employees/employments/comprehensive",
        versions: V_EMPLOYMENT,
        kind: Kind::List(comprehensive),
    },
];

/// Match a path (relative to `/v2`) to a route; returns the route and its parameters.
fn match_route(path: &str) -> Option<(&'static Route, Vec<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut best: Option<(&Route, Vec<String>, usize)> = None;
    for r in ROUTES {
        let tsegs: Vec<&str> = r.template.trim_matches('/').split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut statics = 0;
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                params.push((*s).to_string());
                !s.is_empty()
            } else {
                statics += 1;
                t.eq_ignore_ascii_case(s)
            }
        });
        if ok && best.as_ref().is_none_or(|b| statics > b.2) {
            best = Some((r, params, statics));
        }
    }
    best.map(|(r, p, _)| (r, p))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::EXPIRES, "-1")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn error_response(e: ApiError, version: Option<&str>) -> Response {
    json_response(
        e.status,
        &paging::error_envelope(version, e.kind, e.code, &e.description),
    )
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({ "message": "Authorization has been denied for this request." }),
    )
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The single entry point for every `/v2/...` request.
pub async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rel = path.strip_prefix("/v2").unwrap_or(&path).to_string();
    let query_raw = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let matched = match_route(&rel);
    let template = matched
        .as_ref()
        .map(|(r, _)| format!("/v2{}", r.template))
        .unwrap_or_else(|| "(unmatched)".into());
    lock(&sh.stats).record(RecordedRequest {
        method: req.method().to_string(),
        path: path.clone(),
        query: query_raw.clone(),
        accept: accept.clone(),
        template,
    });
    if sh.settings.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sh.settings.latency_ms)).await;
    }
    let truncate = match faults::gate(&sh, &path, true).await {
        Gate::Respond(r) => return r,
        Gate::Continue { truncate } => truncate,
    };
    if req.method() != Method::GET {
        let mut r = error_response(
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                kind: "BrokenBusinessRule",
                code: 405,
                description: "Only GET is simulated.".into(),
            },
            None,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let authorized = bearer(&req).is_some_and(|t| lock(&sh.auth).access_token_valid(t));
    if !authorized {
        return unauthorized();
    }
    let Some((route, params)) = matched else {
        return error_response(ApiError::not_found("resource"), None);
    };
    let resp = serve(&sh, route, params, &query_raw, accept.as_deref());
    if truncate {
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        return faults::truncated_response(status, &bytes);
    }
    resp
}

fn serve(
    sh: &Shared,
    route: &Route,
    params: Vec<String>,
    query_raw: &str,
    accept: Option<&str>,
) -> Response {
    let version = match negotiate(accept, route.versions) {
        Ok(v) => v,
        Err(AcceptError::BadRequest(m)) => return error_response(ApiError::bad_request(m), None),
        Err(AcceptError::NotAcceptable(m)) => {
            return error_response(
                ApiError {
                    status: StatusCode::NOT_ACCEPTABLE,
                    kind: "BrokenBusinessRule",
                    code: 406,
                    description: m,
                },
                None,
            );
        }
    };
    let query: HashMap<String, String> = url::form_urlencoded::parse(query_raw.as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    let store = lock(&sh.store);
    let ctx = Ctx {
        params,
        query,
        version,
        today: store.today(),
    };
    match &route.kind {
        Kind::Single(f) => match f(&store, &ctx) {
            Ok(content) => {
                drop(store);
                let env = paging::content_envelope(content, version);
                let mut resp = json_response(StatusCode::OK, &env);
                let mut h = DefaultHasher::new();
                env.to_string().hash(&mut h);
                if let Ok(v) = HeaderValue::from_str(&format!("\"{:016x}\"", h.finish())) {
                    resp.headers_mut().insert(header::ETAG, v);
                }
                resp
            }
            Err(e) => error_response(e, Some(version)),
        },
        Kind::List(f) => {
            let paging = match paging::parse(
                ctx.query.get("pagenumber").map(String::as_str),
                ctx.query.get("pagesize").map(String::as_str),
                sh.settings.max_page_size,
            ) {
                Ok(p) => p,
                Err(m) => return error_response(ApiError::bad_request(m), Some(version)),
            };
            let items = match f(&store, &ctx) {
                Ok(i) => i,
                Err(e) => return error_response(e, Some(version)),
            };
            drop(store);
            match refine(items, &ctx, paging, version) {
                Ok(v) => json_response(StatusCode::OK, &v),
                Err(e) => error_response(e, Some(version)),
            }
        }
    }
}

fn refine(
    mut items: Vec<Value>,
    ctx: &Ctx,
    paging: Paging,
    version: &str,
) -> Result<Value, ApiError> {
    if let Some(f) = ctx.query.get("filter").filter(|f| !f.trim().is_empty()) {
        items = filter::apply_filter(items, f)
            .map_err(|e| ApiError::bad_request(format!("Invalid filter: {e}")))?;
    }
    if let Some(o) = ctx.query.get("orderby").filter(|o| !o.trim().is_empty()) {
        items = filter::apply_order(items, o)
            .map_err(|e| ApiError::bad_request(format!("Invalid orderBy: {e}")))?;
    }
    Ok(paging::list_envelope(items, paging, version))
}

// ----- lookups -----

fn employer_of<'a>(s: &'a Store, ctx: &Ctx) -> Result<&'a Employer, ApiError> {
    s.employer(ctx.id(0, "employer")?)
        .ok_or_else(|| ApiError::not_found("employer"))
}

fn employee_of<'a>(s: &'a Store, ctx: &Ctx) -> Result<&'a Employee, ApiError> {
    s.world
        .employees
        .get(&ctx.id(0, "employee")?)
        .ok_or_else(|| ApiError::not_found("employee"))
}

fn employment_of<'a>(s: &'a Store, ctx: &Ctx) -> Result<&'a Employment, ApiError> {
    s.world
        .employments
        .get(&ctx.id(0, "employment")?)
        .ok_or_else(|| ApiError::not_found("employment"))
}

fn employer_by_id(s: &Store, id: Uuid) -> Result<&Employer, ApiError> {
    s.employer(id)
        .ok_or_else(|| ApiError::not_found("employer"))
}

fn render_employment(s: &Store, e: &Employment) -> Option<Value> {
    let emp = s.world.employees.get(&e.employee_id)?;
    let er = s.employer(e.employer_id)?;
    Some(render::employment(e, emp, er))
}

fn employments_of_employer<'a>(
    s: &'a Store,
    er: &'a Employer,
) -> impl Iterator<Item = &'a Employment> + 'a {
    er.employment_ids
        .iter()
        .filter_map(|id| s.world.employments.get(id))
}

// ----- handlers -----

fn employers(s: &Store, _: &Ctx) -> Result<Vec<Value>, ApiError> {
    Ok(s.world.employers.iter().map(render::employer).collect())
}

fn employer(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    Ok(render::employer(employer_of(s, ctx)?))
}

fn employer_versions(s: &Store, _: &Ctx) -> Result<Vec<Value>, ApiError> {
    Ok(s.world
        .employers
        .iter()
        .map(|e| json!({ "id": e.id, "lastModifiedVersionNumber": e.last_modified_version_number }))
        .collect())
}

fn departments(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    Ok(er
        .departments
        .iter()
        .map(|d| render::department(d, er))
        .collect())
}

fn department(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    let id = ctx.id(0, "department")?;
    let (er, di) = s
        .department_owner(id)
        .ok_or_else(|| ApiError::not_found("department"))?;
    er.departments
        .get(di)
        .map(|d| render::department(d, er))
        .ok_or_else(|| ApiError::not_found("department"))
}

fn payroll_administrations(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    Ok(er
        .payroll_administrations
        .iter()
        .map(|a| render::payroll_administration(a, er))
        .collect())
}

fn employees(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let business = ctx.version >= "2021-03-29";
    Ok(er
        .employee_ids
        .iter()
        .filter_map(|id| s.world.employees.get(id))
        .map(|e| render::employee(e, business))
        .collect())
}

fn employee(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    Ok(render::employee(
        employee_of(s, ctx)?,
        ctx.version >= "2021-03-29",
    ))
}

fn citizen_service_number(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    Ok(json!({ "citizenServiceNumber": employee_of(s, ctx)?.bsn }))
}

fn employments(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    Ok(employments_of_employer(s, er)
        .filter_map(|e| render_employment(s, e))
        .collect())
}

fn employment_versions(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    Ok(employments_of_employer(s, er)
        .map(|e| json!({ "id": e.id, "lastModifiedVersionNumber": e.last_modified_version_number }))
        .collect())
}

fn employment(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    render_employment(s, employment_of(s, ctx)?).ok_or_else(|| ApiError::not_found("employment"))
}

fn employee_employments(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let emp = employee_of(s, ctx)?;
    Ok(emp
        .employment_ids
        .iter()
        .filter_map(|id| s.world.employments.get(id))
        .filter_map(|e| render_employment(s, e))
        .collect())
}

fn organizational_entities(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let e = employment_of(s, ctx)?;
    let er = employer_by_id(s, e.employer_id)?;
    Ok(e.organizational_entities
        .iter()
        .map(|o| render::organizational_entity(o, er))
        .collect())
}

fn working_hours(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    Ok(employment_of(s, ctx)?
        .working_hours
        .iter()
        .map(render::working_hours)
        .collect())
}

fn wages(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    Ok(employment_of(s, ctx)?
        .wages
        .iter()
        .map(render::wage)
        .collect())
}

fn absences(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let emp = employee_of(s, ctx)?;
    Ok(emp
        .absence_ids
        .iter()
        .filter_map(|id| s.world.absences.get(id))
        .map(|a| render::absence(a, ctx.today))
        .collect())
}

fn absence(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    let a = s
        .world
        .absences
        .get(&ctx.id(0, "absence")?)
        .ok_or_else(|| ApiError::not_found("absence"))?;
    Ok(render::absence(a, ctx.today))
}

fn absence_progress(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let a = s
        .world
        .absences
        .get(&ctx.id(0, "absence")?)
        .ok_or_else(|| ApiError::not_found("absence"))?;
    Ok(a.progress.iter().map(render::absence_progress).collect())
}

fn absence_progress_one(s: &Store, ctx: &Ctx) -> Result<Value, ApiError> {
    let id = ctx.id(0, "absence progress")?;
    // Linear scan: this endpoint is not on the sync's hot path.
    s.world
        .absences
        .values()
        .flat_map(|a| a.progress.iter())
        .find(|p| p.id == id)
        .map(render::absence_progress)
        .ok_or_else(|| ApiError::not_found("absence progress"))
}

/// Employer-wide absence calendar: one item per employment with at least one absence
/// overlapping both the window and the employment. Calendar entries carry the absence's
/// own first and last day (not clipped to the window; `endDate` null while open).
fn calendar_absences(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let (Some(from), Some(to)) = (ctx.date("startDate")?, ctx.date("endDate")?) else {
        return Err(ApiError::bad_request(
            "startDate and endDate are required (yyyy-MM-dd).",
        ));
    };
    if to < from {
        return Err(ApiError::bad_request(
            "endDate must not be before startDate.",
        ));
    }
    let mut out = Vec::new();
    for e in employments_of_employer(s, er) {
        let lo = from.max(e.start_date);
        let hi = e.end_date.map_or(to, |end| to.min(end));
        if hi < lo {
            continue;
        }
        let abs = s.absences_overlapping(e.employee_id, lo, hi);
        if abs.is_empty() {
            continue;
        }
        let Some(emp) = s.world.employees.get(&e.employee_id) else {
            continue;
        };
        let org = active_on(&e.organizational_entities, lo).or(e.organizational_entities.last());
        let dep = org.and_then(|o| er.departments.iter().find(|d| d.id == o.department_id));
        let mut item = json!({
            "employee": { "id": emp.id, "formattedName": emp.formatted_name() },
            "employment": { "id": e.id },
            "calendar": abs.iter().map(|a| json!({ "startDate": a.first_day(), "endDate": a.last_day(), "details": null })).collect::<Vec<_>>(),
        });
        if let Some(d) = dep {
            item["department"] =
                json!({ "key": d.id, "code": d.code, "description": d.description });
        }
        out.push(item);
    }
    Ok(out)
}

fn actual_organizational_entities(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let day = ctx.reference_date()?;
    Ok(employments_of_employer(s, er)
        .filter_map(|e| {
            active_on(&e.organizational_entities, day)
                .map(|o| json!({ "employmentId": e.id, "organizationalEntity": render::organizational_entity(o, er) }))
        })
        .collect())
}

fn actual_working_hours(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let day = ctx.reference_date()?;
    Ok(employments_of_employer(s, er)
        .filter_map(|e| {
            active_on(&e.working_hours, day)
                .map(|w| json!({ "employmentId": e.id, "workingHours": render::working_hours(w) }))
        })
        .collect())
}

fn actual_wages(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let day = ctx.reference_date()?;
    Ok(employments_of_employer(s, er)
        .filter_map(|e| {
            active_on(&e.wages, day)
                .map(|w| json!({ "employmentId": e.id, "wage": render::wage(w) }))
        })
        .collect())
}

/// Every employment with the full employee and the working hours, organizational
/// entity and wage active on `referenceDate` (default today). A missing record is left
/// out (the key is absent), not `null`.
fn comprehensive(s: &Store, ctx: &Ctx) -> Result<Vec<Value>, ApiError> {
    let er = employer_of(s, ctx)?;
    let day = ctx.reference_date()?;
    let mut out = Vec::new();
    for e in employments_of_employer(s, er) {
        let Some(emp) = s.world.employees.get(&e.employee_id) else {
            continue;
        };
        let mut v = render::employment(e, emp, er);
        v["employee"] = render::employee(emp, true);
        if let Some(w) = active_on(&e.working_hours, day) {
            v["workinghours"] = render::working_hours(w);
        }
        if let Some(o) = active_on(&e.organizational_entities, day) {
            v["organizationalEntity"] = render::organizational_entity(o, er);
        }
        if let Some(w) = active_on(&e.wages, day) {
            v["wage"] = render::wage(w);
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_segments_win() {
        let (r, p) = match_route("/providers/employers/lastmodifiedversionnumbers").unwrap();
        assert_eq!(
            r.template,
            "/providers/employers/lastmodifiedversionnumbers"
        );
        assert!(p.is_empty());
        let (r, p) = match_route("/providers/employers/employees/abc").unwrap();
        assert_eq!(r.template, "/providers/employers/employees/{employeeId}");
        assert_eq!(p, ["abc"]);
        let (r, _) =
            match_route("/providers/employers/x/employees/employments/comprehensive").unwrap();
        assert!(r.template.ends_with("/comprehensive"));
        let (r, _) = match_route("/providers/employers/employees/employments/e1").unwrap();
        assert_eq!(
            r.template,
            "/providers/employers/employees/employments/{employmentId}"
        );
        assert!(match_route("/providers/nope").is_none());
    }
}
