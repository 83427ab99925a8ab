//! The Loket client against the Loket simulator over real HTTP: paging, OAuth rotation and
//! single-flight refresh, retries with `Retry-After`, broken bodies, version-number filters and
//! redaction. Timing-sensitive tests run on tokio's paused clock.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arbosync_agent::loket::{
    ConnectionSettings, ListRequest, LoketClient, LoketError, MemoryTokenStore, RESOURCES,
    RefreshToken, RetryPolicy, TokenStore,
};
use chrono::NaiveDate;
use loket_sim::{RunningSim, SimConfig};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

const SECRET: &str = "sim-client-secret";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 16).expect("valid date")
}

async fn start_sim(
    employers: usize,
    employees_per_employer: usize,
    max_page_size: usize,
) -> RunningSim {
    loket_sim::start(SimConfig {
        seed: 7,
        employers,
        employees_per_employer,
        max_page_size,
        client_id: "arbosync-test".into(),
        client_secret: Some(SECRET.into()),
        today: Some(today()),
        ..Default::default()
    })
    .await
    .expect("the simulator starts")
}

fn settings(sim: &RunningSim) -> ConnectionSettings {
    let mut s = ConnectionSettings::new(
        Url::parse(&sim.api_url).expect("sim api url"),
        Url::parse(&sim.oauth_url).expect("sim oauth url"),
        sim.client_id.clone(),
    );
    s.client_secret = Some(arbosync_agent::loket::ClientSecret::new(SECRET));
    s.requests_per_second = f64::INFINITY;
    s.max_parallel_requests = 16;
    s.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(60),
    };
    s
}

fn client_with(
    sim: &RunningSim,
    store: &MemoryTokenStore,
    tweak: impl FnOnce(&mut ConnectionSettings),
) -> LoketClient {
    let mut s = settings(sim);
    tweak(&mut s);
    let store: Arc<dyn TokenStore> = Arc::new(store.clone());
    LoketClient::new(s, store).expect("valid settings")
}

fn fresh_store(sim: &RunningSim) -> MemoryTokenStore {
    MemoryTokenStore::new(Some(RefreshToken::new(sim.refresh_token.clone())))
}

/// The simulator's test-only endpoints.
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    fn new(sim: &RunningSim) -> Self {
        Control {
            http: reqwest::Client::new(),
            base: sim.base_url.trim_end_matches('/').to_owned(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("sim control request");
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn fault(&self, body: Value) {
        self.post("/_sim/faults", body).await;
    }

    async fn clear_faults(&self) {
        let resp = self
            .http
            .delete(format!("{}/_sim/faults", self.base))
            .send()
            .await
            .expect("sim control request");
        assert!(resp.status().is_success());
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sim control request")
            .json()
            .await
            .expect("JSON")
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sim/stats", self.base))
            .send()
            .await
            .expect("sim stats")
            .json()
            .await
            .expect("stats JSON")
    }

    async fn token_requests(&self) -> u64 {
        self.stats().await["token_requests"]
            .as_u64()
            .expect("token_requests")
    }

    async fn count(&self, template: &str) -> u64 {
        self.stats().await["by_template"][format!("GET /v2{template}")]
            .as_u64()
            .unwrap_or(0)
    }

    async fn total(&self) -> u64 {
        self.stats().await["total"].as_u64().expect("total")
    }
}

const EMPLOYEES: &str = "/providers/employers/{employerId}/employees";
const EMPLOYERS: &str = "/providers/employers";

#[tokio::test]
async fn paging_follows_total_pages_when_the_server_sends_smaller_pages() {
    let sim = start_sim(1, 50, 7).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    let employer = &sim.employer_ids[0];

    let employees = client.employees(employer).await.expect("all employees");
    assert_eq!(employees.len(), 50);
    let ids: HashSet<_> = employees.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 50, "no duplicates");
    assert_eq!(ctl.count(EMPLOYEES).await, 8, "ceil(50 / 7) pages");

    // The page-by-page form sees the same pages.
    let mut pager = client.pager(ListRequest::employees(employer).expect("valid id"));
    let mut pages = 0;
    let mut seen = HashSet::new();
    while let Some(page) = pager.next_page().await.expect("page") {
        pages += 1;
        assert_eq!(page.total_pages, 8);
        assert!(page.items.len() <= 7);
        seen.extend(page.items.into_iter().map(|e| e.id));
    }
    assert_eq!(pages, 8);
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn refresh_tokens_rotate_are_saved_before_use_and_old_ones_are_rejected() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let original = RefreshToken::new(sim.refresh_token.clone());
    let store = fresh_store(&sim);
    let client = client_with(&sim, &store, |_| {});

    client.employers().await.expect("employers");
    assert_eq!(store.save_count(), 1);
    let rotated = store.current().expect("a token is stored");
    assert_ne!(
        rotated, original,
        "the refresh token rotated and the new one was saved"
    );
    assert_eq!(ctl.token_requests().await, 1);

    // Someone still holding the old token: Loket rejects it, and it is not retried in a loop.
    let stale = MemoryTokenStore::new(Some(original.clone()));
    let stale_client = client_with(&sim, &stale, |_| {});
    let err = stale_client
        .employers()
        .await
        .expect_err("old token rejected");
    assert!(matches!(err, LoketError::InvalidGrant { .. }), "{err:?}");
    assert!(err.needs_reconnect());
    assert!(!err.is_transient());
    let err = stale_client
        .ensure_token()
        .await
        .expect_err("still rejected");
    assert!(matches!(err, LoketError::InvalidGrant { .. }));
    assert_eq!(
        ctl.token_requests().await,
        2,
        "a rejected token is not sent again"
    );

    // No stored token at all.
    let empty_client = client_with(&sim, &MemoryTokenStore::new(None), |_| {});
    assert!(matches!(
        empty_client.employers().await,
        Err(LoketError::MissingRefreshToken)
    ));
}

#[tokio::test]
async fn no_token_is_rotated_when_there_is_no_room_to_save_it() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let store = fresh_store(&sim);
    store.set_fail_reserves(true);
    let client = client_with(&sim, &store, |_| {});

    let err = client.employers().await.expect_err("no room");
    assert!(matches!(err, LoketError::TokenStore(_)), "{err:?}");
    assert_eq!(ctl.token_requests().await, 0, "Loket was not asked");
    assert_eq!(
        store.current(),
        Some(RefreshToken::new(sim.refresh_token.clone())),
        "the stored token is still the valid one"
    );

    store.set_fail_reserves(false);
    client
        .employers()
        .await
        .expect("employers once there is room");
    assert_eq!(ctl.token_requests().await, 1);
}

#[tokio::test]
async fn an_access_token_is_not_used_before_its_rotated_refresh_token_is_saved() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let store = fresh_store(&sim);
    store.set_fail_saves(true);
    let client = client_with(&sim, &store, |_| {});

    let err = client.employers().await.expect_err("saving failed");
    assert!(matches!(err, LoketError::TokenStore(_)), "{err:?}");
    assert_eq!(
        ctl.total().await,
        0,
        "no API request with an access token whose refresh token is unsaved"
    );
    assert_eq!(ctl.token_requests().await, 1);
    assert_eq!(
        store.current(),
        Some(RefreshToken::new(sim.refresh_token.clone()))
    );

    // Once the store works again the held token is saved first, then used; no second refresh.
    store.set_fail_saves(false);
    client.employers().await.expect("employers");
    assert_eq!(ctl.token_requests().await, 1);
    assert_eq!(store.save_count(), 1);
    assert_ne!(
        store.current(),
        Some(RefreshToken::new(sim.refresh_token.clone()))
    );
}

#[tokio::test]
async fn ten_concurrent_401s_cause_exactly_one_refresh() {
    let sim = start_sim(2, 5, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |s| s.max_parallel_requests = 10);
    client.employers().await.expect("warm-up");
    assert_eq!(ctl.token_requests().await, 1);

    ctl.fault(json!({"kind": "expire_tokens"})).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = client.clone();
        let employer = sim.employer_ids[i % sim.employer_ids.len()].clone();
        tasks.push(tokio::spawn(
            async move { client.employer(&employer).await },
        ));
    }
    for t in tasks {
        t.await
            .expect("task")
            .expect("request succeeds after the refresh");
    }
    assert_eq!(ctl.token_requests().await, 2, "one refresh for all ten");
}

#[tokio::test]
async fn a_second_401_after_the_refresh_is_unauthorized() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    ctl.fault(json!({"kind": "status", "status": 401, "path_contains": "/providers/employers", "times": 2}))
        .await;
    let err = client.employers().await.expect_err("401 twice");
    assert!(matches!(err, LoketError::Unauthorized), "{err:?}");
    // The first token request, plus exactly one refresh after the first 401.
    assert_eq!(ctl.token_requests().await, 2);
    assert_eq!(ctl.count(EMPLOYERS).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_at_least_retry_after() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    client.ensure_token().await.expect("token");

    ctl.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 7, "path_contains": "/providers/employers", "times": 1}))
        .await;
    let started = Instant::now();
    let employers = client.employers().await.expect("succeeds after waiting");
    assert_eq!(employers.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(ctl.count(EMPLOYERS).await, 2);

    // A Retry-After longer than the client waits out goes straight back to the caller.
    ctl.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 3600, "path_contains": "/providers/employers", "times": 1}))
        .await;
    let err = client.employers().await.expect_err("too long to wait");
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(ctl.count(EMPLOYERS).await, 3, "not retried");
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_backoff_then_reported_as_transient() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});

    ctl.fault(json!({"kind": "status", "status": 503, "path_contains": "/providers/employers", "times": 2}))
        .await;
    let started = Instant::now();
    client.employers().await.expect("third attempt succeeds");
    assert_eq!(ctl.count(EMPLOYERS).await, 3);
    // Two backoffs: at least half of 200 ms and half of 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    ctl.fault(json!({"kind": "status", "status": 502, "path_contains": "/providers/employers", "times": 0}))
        .await;
    let err = client.employers().await.expect_err("persistent 5xx");
    assert!(matches!(err, LoketError::Transient { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(ctl.count(EMPLOYERS).await, 3 + 4, "four attempts");
    ctl.clear_faults().await;

    // A connection dropped mid-body is transient and retried.
    ctl.fault(json!({"kind": "drop", "path_contains": "/providers/employers", "times": 1}))
        .await;
    client.employers().await.expect("retried after the drop");
    ctl.fault(json!({"kind": "drop", "path_contains": "/providers/employers", "times": 0}))
        .await;
    let err = client.employers().await.expect_err("always dropped");
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_errors_never_partial_data() {
    let sim = start_sim(1, 20, 7).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    let employer = sim.employer_ids[0].clone();

    ctl.fault(json!({"kind": "malformed", "path_contains": "/employees", "times": 1}))
        .await;
    let err = client.employees(&employer).await.expect_err("not JSON");
    assert!(matches!(err, LoketError::MalformedBody { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("html"),
        "no body content in the message: {err}"
    );

    ctl.fault(json!({"kind": "truncated", "path_contains": "/employees", "times": 1}))
        .await;
    let err = client.employees(&employer).await.expect_err("half a body");
    assert!(matches!(err, LoketError::MalformedBody { .. }), "{err:?}");

    ctl.fault(json!({"kind": "truncated", "path_contains": "/employments/", "times": 1}))
        .await;
    let employment = client.employments(&employer).await.expect("employments")[0]
        .id
        .clone();
    ctl.fault(json!({"kind": "truncated", "path_contains": "/employments/", "times": 1}))
        .await;
    assert!(matches!(
        client.employment(&employment).await,
        Err(LoketError::MalformedBody { .. })
    ));

    // Page 1 is fine, page 2 is broken: the pager reports the error, get_all returns no list.
    let mut pager = client.pager(ListRequest::employees(&employer).expect("valid id"));
    let first = pager.next_page().await.expect("page 1").expect("a page");
    assert_eq!(first.items.len(), 7);
    ctl.fault(json!({"kind": "malformed", "path_contains": "/employees", "times": 1}))
        .await;
    assert!(pager.next_page().await.is_err());
    assert!(pager.next_page().await.expect("finished").is_none());
    ctl.fault(json!({"kind": "truncated", "path_contains": "/employees", "times": 0}))
        .await;
    assert!(client.employees(&employer).await.is_err());
    ctl.clear_faults().await;
    assert_eq!(
        client
            .employees(&employer)
            .await
            .expect("healthy again")
            .len(),
        20
    );
}

#[tokio::test]
async fn forbidden_and_not_found_are_typed() {
    let sim = start_sim(1, 3, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    ctl.fault(json!({"kind": "status", "status": 403, "path_contains": "/employees", "times": 1}))
        .await;
    let err = client
        .employees(&sim.employer_ids[0])
        .await
        .expect_err("403");
    match &err {
        LoketError::Forbidden { activity, .. } => assert_eq!(activity, "simulated"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert!(!err.is_transient());

    let missing = "00000000-0000-4000-8000-000000000000";
    assert!(matches!(
        client.employee(missing).await,
        Err(LoketError::NotFound { .. })
    ));
    assert!(matches!(
        client.employee("../x").await,
        Err(LoketError::InvalidId { .. })
    ));
}

#[tokio::test]
async fn version_number_filters_return_only_what_changed() {
    let sim = start_sim(2, 6, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    let employer = sim.employer_ids[0].clone();

    let employers = client
        .employer_version_numbers(None)
        .await
        .expect("employer versions");
    assert_eq!(employers.len(), 2);
    let high = employers
        .iter()
        .map(|v| v.last_modified_version_number)
        .max()
        .expect("some");
    assert!(
        client
            .employer_version_numbers(Some(high))
            .await
            .expect("filtered")
            .is_empty()
    );
    let employments = client
        .employment_version_numbers(&employer, None)
        .await
        .expect("versions");
    assert!(!employments.is_empty());
    assert!(
        employments
            .windows(2)
            .all(|w| w[0].last_modified_version_number >= w[1].last_modified_version_number),
        "ordered newest first"
    );

    // Change the working hours of one current employment.
    let all = client.employments(&employer).await.expect("employments");
    let target = all
        .iter()
        .find(|e| {
            e.start_date.is_some_and(|d| d <= today()) && e.end_date.is_none_or(|d| d >= today())
        })
        .expect("a current employment");
    ctl.post(
        &format!("/_sim/employments/{}/workinghours", target.id),
        json!({"start_date": today().to_string(), "hours_per_week": 31.5}),
    )
    .await;

    let changed = client
        .employment_version_numbers(&employer, Some(high))
        .await
        .expect("changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].id, target.id);
    assert!(changed[0].last_modified_version_number > high);
    let changed_employers = client
        .employer_version_numbers(Some(high))
        .await
        .expect("changed");
    assert_eq!(changed_employers.len(), 1);
    assert_eq!(changed_employers[0].id, employer);

    let hours = client
        .working_hours(&target.id)
        .await
        .expect("working hours");
    let current = hours
        .iter()
        .find(|h| h.start_date == Some(today()))
        .expect("the new record");
    assert_eq!(
        current.aggregated_hours_per_week,
        Some(Decimal::new(315, 1))
    );

    // Absences are not part of the version numbers.
    let employee = target
        .employee
        .as_ref()
        .and_then(|e| e.id.clone())
        .expect("employee id");
    ctl.post(
        "/_sim/absences",
        json!({"employee_id": employee, "first_day": today().to_string()}),
    )
    .await;
    assert_eq!(
        client
            .employment_version_numbers(&employer, Some(high))
            .await
            .expect("unchanged")
            .len(),
        1
    );
    let absences = client.absences(&employee).await.expect("absences");
    assert!(
        absences
            .iter()
            .any(|a| a.progress.as_ref().and_then(|p| p.start_date) == Some(today()))
    );
}

#[tokio::test]
async fn every_resource_is_readable_with_its_pinned_version() {
    let sim = start_sim(1, 8, 250).await;
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    let employer = sim.employer_ids[0].clone();
    let day = today();

    assert_eq!(client.employers().await.expect("employers").len(), 1);
    assert_eq!(
        client.employer(&employer).await.expect("employer").id,
        employer
    );
    client.departments(&employer).await.expect("departments");
    client
        .payroll_administrations(&employer)
        .await
        .expect("payroll administrations");
    let employees = client.employees(&employer).await.expect("employees");
    let employee = employees[0].id.clone();
    ctl.post(
        "/_sim/absences",
        json!({"employee_id": employee, "first_day": day.to_string()}),
    )
    .await;
    assert_eq!(
        client.employee(&employee).await.expect("employee").id,
        employee
    );
    client.citizen_service_number(&employee).await.expect("bsn");
    let employments = client.employments(&employer).await.expect("employments");
    let employment = employments[0].id.clone();
    assert_eq!(
        client.employment(&employment).await.expect("employment").id,
        employment
    );
    client
        .employments_of_employee(&employee)
        .await
        .expect("employments of employee");
    client
        .organizational_entities(&employment)
        .await
        .expect("organizational entities");
    client
        .working_hours(&employment)
        .await
        .expect("working hours");
    client.wages(&employment).await.expect("wages");
    for e in &employees {
        for a in client.absences(&e.id).await.expect("absences") {
            assert_eq!(client.absence(&a.id).await.expect("absence").id, a.id);
            let progress = client
                .absence_progress(&a.id)
                .await
                .expect("absence progress");
            assert!(!progress.is_empty());
        }
    }
    let start = day - chrono::Days::new(365);
    client
        .calendar_absences(&employer, start, day)
        .await
        .expect("calendar");
    client
        .actual_organizational_entities(&employer, day)
        .await
        .expect("actual org");
    client
        .actual_working_hours(&employer, day)
        .await
        .expect("actual hours");
    client
        .actual_wages(&employer, day)
        .await
        .expect("actual wages");
    let comprehensive = client
        .employments_comprehensive(&employer, day)
        .await
        .expect("comprehensive");
    assert!(!comprehensive.is_empty());

    client
        .employer_version_numbers(None)
        .await
        .expect("employer versions");
    client
        .employment_version_numbers(&employer, Some(0))
        .await
        .expect("employment versions");

    // Every request carried its resource's pinned version, and every resource was read.
    let recorded = ctl.get("/_sim/requests").await;
    let recorded = recorded.as_array().expect("a list of requests");
    let mut hit = HashSet::new();
    for r in recorded {
        let template = r["template"].as_str().expect("template");
        let path = template.strip_prefix("/v2").expect("a /v2 path");
        let spec = RESOURCES
            .iter()
            .find(|s| s.path_template == path)
            .unwrap_or_else(|| panic!("request to a path outside the table: {template}"));
        assert_eq!(
            r["accept"].as_str(),
            Some(spec.accept().as_str()),
            "{template}"
        );
        hit.insert(spec.resource);
    }
    let missed: Vec<_> = RESOURCES
        .iter()
        .filter(|s| !hit.contains(&s.resource))
        .map(|s| s.path_template)
        .collect();
    assert!(missed.is_empty(), "resources never read: {missed:?}");
}

#[tokio::test]
async fn debug_output_holds_no_tokens_or_personal_data() {
    let sim = start_sim(1, 5, 250).await;
    let store = fresh_store(&sim);
    let client = client_with(&sim, &store, |_| {});
    let employees = client
        .employees(&sim.employer_ids[0])
        .await
        .expect("employees");

    let mut secrets: Vec<String> = vec![sim.refresh_token.clone(), SECRET.to_owned()];
    secrets.push(store.current().expect("rotated").expose_secret().to_owned());
    let mut personal = Vec::new();
    for e in &employees {
        let pd = e.personal_details.as_ref().expect("personal details");
        personal.extend(pd.last_name.clone());
        personal.extend(pd.first_name.clone());
        personal.extend(pd.date_of_birth.map(|d| d.to_string()));
        if let Some(ci) = &e.contact_information {
            personal.extend(ci.email_address.clone());
        }
    }
    let bsn = client
        .citizen_service_number(&employees[0].id)
        .await
        .expect("bsn");
    personal.extend(bsn.citizen_service_number.clone());

    let printed = format!(
        "{employees:?} {bsn:?} {client:?} {store:?} {:?} {:?} {}",
        store.current(),
        settings(&sim),
        store.current().expect("token"),
    );
    for s in secrets
        .iter()
        .chain(personal.iter())
        .filter(|s| s.len() >= 3)
    {
        assert!(
            !printed.contains(s.as_str()),
            "Debug output leaks a value: {printed}"
        );
    }
    assert!(printed.contains(&employees[0].id), "ids stay visible");
}

#[tokio::test(start_paused = true)]
async fn access_tokens_are_renewed_shortly_before_they_expire() {
    let sim = loket_sim::start(SimConfig {
        seed: 3,
        employers: 1,
        employees_per_employer: 2,
        access_token_ttl_secs: 40,
        client_id: "arbosync-test".into(),
        client_secret: Some(SECRET.into()),
        today: Some(today()),
        ..Default::default()
    })
    .await
    .expect("the simulator starts");
    let ctl = Control::new(&sim);
    let client = client_with(&sim, &fresh_store(&sim), |_| {});
    client.employers().await.expect("employers");
    assert_eq!(ctl.token_requests().await, 1);

    // Still well within the lifetime: no refresh.
    tokio::time::advance(Duration::from_secs(20)).await;
    client.employers().await.expect("employers");
    assert_eq!(ctl.token_requests().await, 1);

    // Inside the margin (a quarter of 40 s) but before expiry: renewed without a 401.
    tokio::time::advance(Duration::from_secs(12)).await;
    client.employers().await.expect("employers");
    assert_eq!(ctl.token_requests().await, 2);
    assert_eq!(
        ctl.count(EMPLOYERS).await,
        3,
        "no request was answered with a 401"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_are_paced_by_the_rate_limit() {
    let sim = start_sim(1, 2, 250).await;
    let client = client_with(&sim, &fresh_store(&sim), |s| s.requests_per_second = 2.0);
    client.ensure_token().await.expect("token");
    let employer = sim.employer_ids[0].clone();
    let started = Instant::now();
    for _ in 0..5 {
        client.employer(&employer).await.expect("employer");
    }
    // Five requests at two per second: the fifth starts two seconds after the first.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
