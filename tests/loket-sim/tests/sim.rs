//! Behaviour tests for the Loket simulator over real HTTP: determinism, paging, version
//! numbers, OAuth rotation, faults, the `/_sim` API and the binary's JSON line.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use loket_sim::chrono::NaiveDate;
use loket_sim::{FaultKind, FaultSpec, RunningSim, SimConfig, Uuid, is_valid_bsn};
use serde_json::{Value, json};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 2).unwrap()
}

fn cfg(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        today: Some(today()),
        ..SimConfig::default()
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

struct Env {
    sim: RunningSim,
    http: reqwest::Client,
    token: String,
}

async fn token_request(
    http: &reqwest::Client,
    sim: &RunningSim,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(format!("{}/token", sim.oauth_url))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn setup(cfg: SimConfig) -> Env {
    let sim = loket_sim::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    let resp = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &sim.refresh_token),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    Env { sim, http, token }
}

impl Env {
    async fn get_raw(&self, path_and_query: &str, accept: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.sim.api_url, path_and_query))
            .bearer_auth(&self.token)
            .header("Accept", accept)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let r = self
            .get_raw(path_and_query, "application/json;version=2021-03-29")
            .await;
        assert_eq!(r.status(), 200, "{path_and_query}");
        r.json().await.unwrap()
    }

    async fn sim_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.sim.base_url, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn truth(&self) -> Value {
        self.http
            .get(format!("{}/_sim/truth", self.sim.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn versions(&self, employer: &str, filter: Option<i64>) -> Vec<(String, i64)> {
        let q = filter
            .map(|n| format!("?filter=lastModifiedVersionNumber%20gt%20{n}"))
            .unwrap_or_default();
        let v = self.get(&format!("/providers/employers/{employer}/employees/employments/lastmodifiedversionnumbers{q}")).await;
        v["_embedded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_str().unwrap().to_string(),
                    x["lastModifiedVersionNumber"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    async fn employer_version(&self, employer: &str) -> i64 {
        let v = self
            .get("/providers/employers/lastmodifiedversionnumbers")
            .await;
        v["_embedded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == employer)
            .unwrap()["lastModifiedVersionNumber"]
            .as_i64()
            .unwrap()
    }
}

#[tokio::test]
async fn same_seed_gives_identical_truth_and_other_seed_differs() {
    let a = setup(cfg(42)).await;
    let b = setup(cfg(42)).await;
    let c = setup(cfg(43)).await;
    let ta = a.truth().await;
    assert_eq!(ta, b.truth().await);
    assert_ne!(ta, c.truth().await);
    assert_eq!(a.sim.employer_ids, b.sim.employer_ids);
    // The rendered Loket view is deterministic too.
    let e = &a.sim.employer_ids[0];
    let p = format!(
        "/providers/employers/{e}/employees/employments/comprehensive?referenceDate=2025-01-01"
    );
    assert_eq!(a.get(&p).await, b.get(&p).await);
}

#[tokio::test]
async fn dataset_contains_the_promised_cases() {
    let env = setup(cfg(7)).await;
    let w = env.sim.state().truth();
    assert_eq!(w.employers.len(), 3);
    assert!(w.version_counter > 1_i64 << 33);
    for er in &w.employers {
        assert_eq!(er.employee_ids.len(), 20);
        assert!(
            er.departments.iter().any(|d| d.parent_id.is_some()),
            "department tree"
        );
        let pt = &er.payroll_administrations[0].payroll_taxes_number;
        assert_eq!(pt.len(), 12);
        assert!(is_valid_bsn(&pt[..9]) && pt.ends_with("L01"));
        let emps: Vec<_> = er
            .employment_ids
            .iter()
            .map(|id| &w.employments[id])
            .collect();
        assert!(
            emps.iter().any(|e| e.end_date.is_some_and(|d| d < today())),
            "terminated"
        );
        assert!(emps.iter().any(|e| e.start_date > today()), "future");
        assert!(
            emps.iter()
                .any(|e| e.organizational_entities.len() > 1 || e.working_hours.len() > 1),
            "histories"
        );
        let people: Vec<_> = er.employee_ids.iter().map(|id| &w.employees[id]).collect();
        assert!(
            people.iter().any(|p| p.employment_ids.len() == 2),
            "two employments"
        );
        assert!(people.iter().any(|p| p.prefix.is_some()), "prefixes");
        for p in &people {
            assert!(is_valid_bsn(p.bsn.as_deref().unwrap()));
            let pc = p.address.postal_code.as_bytes();
            assert!(pc.len() == 7 && pc[..4].iter().all(u8::is_ascii_digit) && pc[4] == b' ');
        }
        let absences: Vec<_> = people
            .iter()
            .flat_map(|p| p.absence_ids.iter().map(|id| &w.absences[id]))
            .collect();
        assert!(
            absences
                .iter()
                .any(|a| a.progress.len() >= 2 && a.end_of_absence.is_some()),
            "partial recovery chain, closed"
        );
        assert!(
            absences.iter().any(|a| a.end_of_absence.is_none()),
            "open absence"
        );
        assert!(
            absences
                .iter()
                .any(|a| a.expected_date_of_childbirth.is_some() && a.cause_of_absence_key == 2),
            "maternity"
        );
        assert!(absences.iter().any(|a| a.comments.is_some()), "comments");
    }
}

#[tokio::test]
async fn page_size_is_capped_server_side_and_pages_cover_everything() {
    let env = setup(SimConfig {
        max_page_size: 5,
        ..cfg(3)
    })
    .await;
    let e = &env.sim.employer_ids[0];
    let first = env
        .get(&format!("/providers/employers/{e}/employees?pageSize=100"))
        .await;
    assert_eq!(first["pageSize"], 5);
    let total = first["totalSize"].as_u64().unwrap();
    assert_eq!(first["totalPages"].as_u64().unwrap(), total.div_ceil(5));
    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let v = env
            .get(&format!(
                "/providers/employers/{e}/employees?pageSize=100&pageNumber={page}"
            ))
            .await;
        assert_eq!(v["currentPage"], page);
        for item in v["_embedded"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_string()));
        }
        if page >= v["totalPages"].as_u64().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len() as u64, total);
    let bad = env
        .get_raw(
            &format!("/providers/employers/{e}/employees?pageNumber=0"),
            "application/json",
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn version_numbers_follow_the_bump_rules() {
    let env = setup(cfg(5)).await;
    let h = env.sim.state();
    let e = env.sim.employer_ids[0].clone();
    let other = env.sim.employer_ids[1].clone();
    let before = env.versions(&e, None).await;
    let max_before = before.iter().map(|x| x.1).max().unwrap();
    let er_before = env.employer_version(&e).await;
    let other_before = env.employer_version(&other).await;
    assert!(max_before > 1_i64 << 33);
    assert!(
        env.versions(&e, Some(h.truth().version_counter))
            .await
            .is_empty()
    );

    // A working-hours change bumps that employment and its employer, to the same value.
    let target = before[3].0.clone();
    let global = h.truth().version_counter;
    let target_start = h.truth().employments[&target.parse::<Uuid>().unwrap()].start_date;
    let at = std::cmp::max(target_start, date("2025-05-01"));
    let (s, _) = env
        .sim_post(
            &format!("/_sim/employments/{target}/workinghours"),
            json!({"start_date": at, "hours_per_week": 27.5}),
        )
        .await;
    assert_eq!(s, 200);
    let changed = env.versions(&e, Some(global)).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, target);
    assert_eq!(env.employer_version(&e).await, changed[0].1);
    assert_eq!(env.employer_version(&other).await, other_before);
    let wh = env
        .get(&format!(
            "/providers/employers/employees/employments/{target}/workinghours"
        ))
        .await;
    let last = wh["_embedded"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["aggregatedHoursPerWeek"], 27.5);

    // Absences bump nothing.
    let snapshot = (env.versions(&e, None).await, env.employer_version(&e).await);
    let employee = h.truth().employers[0].employee_ids[0];
    let (s, _) = env
        .sim_post(
            "/_sim/absences",
            json!({"employee_id": employee, "first_day": "2025-05-20"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        snapshot,
        (env.versions(&e, None).await, env.employer_version(&e).await)
    );

    // A department rename bumps only the employer.
    let dep = h.truth().employers[0].departments[0].id;
    let r = env
        .http
        .patch(format!("{}/_sim/departments/{dep}", env.sim.base_url))
        .json(&json!({"description": "Verkoop Noord"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.versions(&e, None).await, snapshot.0);
    assert!(env.employer_version(&e).await > snapshot.1);

    // A new employee: the employer and the new employment get new numbers.
    let global = h.truth().version_counter;
    let (s, body) = env
        .sim_post(
            &format!("/_sim/employers/{e}/employees"),
            json!({"first_name": "Canary", "last_name": "Vogel"}),
        )
        .await;
    assert_eq!(s, 200);
    let new_employment = body["employment_id"].as_str().unwrap().to_string();
    let changed = env.versions(&e, Some(global)).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, new_employment);

    // A deleted employment disappears and bumps the employer.
    let er_mid = env.employer_version(&e).await;
    let r = env
        .http
        .delete(format!(
            "{}/_sim/employments/{new_employment}",
            env.sim.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        env.versions(&e, None)
            .await
            .iter()
            .all(|x| x.0 != new_employment)
    );
    assert!(env.employer_version(&e).await > er_mid);
    assert!(er_mid > er_before);

    // Employee changes bump all of that person's employments.
    let w = h.truth();
    let two = w.employers[0]
        .employee_ids
        .iter()
        .map(|id| &w.employees[id])
        .find(|p| p.employment_ids.len() == 2)
        .unwrap();
    let global = w.version_counter;
    let r = env
        .http
        .patch(format!("{}/_sim/employees/{}", env.sim.base_url, two.id))
        .json(&json!({"bsn": "123456782"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed: HashSet<String> = env
        .versions(&e, Some(global))
        .await
        .into_iter()
        .map(|x| x.0)
        .collect();
    let expected: HashSet<String> = two.employment_ids.iter().map(|x| x.to_string()).collect();
    assert_eq!(changed, expected);
    let bsn = env
        .get(&format!(
            "/providers/employers/employees/{}/citizenservicenumber",
            two.id
        ))
        .await;
    assert_eq!(bsn["content"]["citizenServiceNumber"], "123456782");

    // Filter combinations and ordering on the employer list.
    let v = env.get(&format!("/providers/employers/lastmodifiedversionnumbers?filter=lastModifiedVersionNumber%20ge%20{other_before}%20and%20lastModifiedVersionNumber%20le%20{other_before}")).await;
    assert_eq!(v["_embedded"].as_array().unwrap().len(), 1);
    let v = env
        .get("/providers/employers/lastmodifiedversionnumbers?orderBy=-lastModifiedVersionNumber")
        .await;
    let nums: Vec<i64> = v["_embedded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["lastModifiedVersionNumber"].as_i64().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[0] >= w[1]));
    let bad = env.get_raw("/providers/employers/lastmodifiedversionnumbers?filter=lastModifiedVersionNumber%20bigger%205", "application/json").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["messages"][0]["type"], "BrokenBusinessRule");
    assert_eq!(body["messages"][0]["id"], Value::Null);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_errors_follow_rfc6749() {
    let env = setup(cfg(1)).await;
    let sim = &env.sim;
    // The initial refresh token was used by setup(): reuse is invalid_grant.
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &sim.refresh_token),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let fresh = sim.state().mint_refresh_token();
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &fresh),
            ("client_id", "someone-else"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    // text/plain body with form content works; the response rotates the token.
    let r = env
        .http
        .post(format!("{}/token", sim.oauth_url))
        .header("Content-Type", "text/plain")
        .body(format!(
            "grant_type=refresh_token&refresh_token={fresh}&client_id={}",
            sim.client_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["two_factor_state"], "None");
    let next = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, fresh);

    // Revocation.
    sim.state().revoke_refresh_tokens();
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Authorization-code flow: auto consent, single-use code, redirect_uri must match.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let r = no_redirect
        .get(format!("{}/authorize", sim.oauth_url))
        .query(&[
            ("client_id", sim.client_id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "all"),
            ("state", "xyz 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = url_params(r.headers()["location"].to_str().unwrap());
    assert_eq!(loc.get("state").map(String::as_str), Some("xyz 1"));
    let code = loc["code"].clone();
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://other/cb"),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The failed attempt consumed the code (single use).
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = no_redirect
        .get(format!("{}/authorize?client_id={}&redirect_uri={redirect}&response_type=code&scope=all&state=s", sim.oauth_url, sim.client_id))
        .send()
        .await
        .unwrap();
    let code = url_params(r.headers()["location"].to_str().unwrap())["code"].clone();
    let r = token_request(
        &env.http,
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &sim.client_id),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    let r = env
        .http
        .get(format!("{}/providers/employers", sim.api_url))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn url_params(u: &str) -> std::collections::HashMap<String, String> {
    let q = u.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace('+', " ").replace("%20", " ")))
        .collect()
}

#[tokio::test]
async fn client_secret_is_enforced_when_configured() {
    let sim = loket_sim::start(SimConfig {
        client_secret: Some("s3cret".into()),
        ..cfg(1)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let rt = sim.refresh_token.clone();
    let r = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &sim.client_id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &sim.client_id),
            ("client_secret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn access_tokens_expire_after_the_ttl() {
    let env = setup(SimConfig {
        access_token_ttl_secs: 3599,
        ..cfg(1)
    })
    .await;
    assert_eq!(
        env.get_raw("/providers/employers", "application/json")
            .await
            .status(),
        200
    );
    tokio::time::advance(Duration::from_secs(3600)).await;
    let r = env
        .get_raw("/providers/employers", "application/json")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Authorization has been denied for this request."})
    );
}

#[tokio::test]
async fn errors_use_loket_envelopes() {
    let env = setup(cfg(2)).await;
    let r = env
        .http
        .get(format!("{}/providers/employers", env.sim.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = env
        .get_raw(
            &format!("/providers/employers/employees/{}", Uuid::nil()),
            "application/json",
        )
        .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["messages"][0]["type"], "NotFound");
    assert_eq!(
        env.get_raw(
            "/providers/employers/employees/not-a-uuid",
            "application/json"
        )
        .await
        .status(),
        404
    );
    // Absences exist only from 2020-03-16.
    let e = env.sim.state().truth().employers[0].employee_ids[0];
    let r = env
        .get_raw(
            &format!("/providers/employers/employees/{e}/absences"),
            "application/json;version=2018-01-01",
        )
        .await;
    assert_eq!(r.status(), 406);
    let r = env
        .get_raw(
            &format!("/providers/employers/employees/{e}/absences"),
            "application/json;version=2024-01-01",
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["version"]["resourceVersion"],
        "2020-03-16"
    );
    // Business contact fields only from employee version 2021-03-29.
    let old: Value = env
        .get_raw(
            &format!("/providers/employers/employees/{e}"),
            "application/json;version=2019-01-01",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["version"]["resourceVersion"], "2018-12-31");
    assert!(
        old["content"]["contactInformation"]
            .get("businessEmailAddress")
            .is_none()
    );
    let new = env
        .get(&format!("/providers/employers/employees/{e}"))
        .await;
    assert!(
        new["content"]["contactInformation"]
            .get("businessEmailAddress")
            .is_some()
    );
    let er = &env.sim.employer_ids[0];
    let r = env
        .get_raw(
            &format!("/providers/employers/{er}/actualwages?referenceDate=2025-13-01"),
            "application/json",
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = env
        .get_raw(
            &format!("/providers/employers/{er}/employees/employments/calendar/absences"),
            "application/json",
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn faults_break_requests_as_asked() {
    let env = setup(cfg(4)).await;
    let h = env.sim.state();
    let e = env.sim.employer_ids[0].clone();
    let deps = format!("/providers/employers/{e}/departments");

    let mut spec = FaultSpec::new(FaultKind::Status);
    spec.status = Some(429);
    spec.retry_after_secs = Some(7);
    spec.path_contains = Some("/departments".into());
    h.add_fault(spec).unwrap();
    let r = env.get_raw(&deps, "application/json").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        env.get_raw(&deps, "application/json").await.status(),
        200,
        "times defaults to 1"
    );

    let (s, _) = env
        .sim_post(
            "/_sim/faults",
            json!({"kind": "status", "status": 503, "times": 2}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        env.get_raw("/providers/employers", "application/json")
            .await
            .status(),
        503
    );
    assert_eq!(env.get_raw(&deps, "application/json").await.status(), 503);
    assert_eq!(env.get_raw(&deps, "application/json").await.status(), 200);

    h.add_fault(FaultSpec::new(FaultKind::Drop)).unwrap();
    let r = env
        .http
        .get(format!("{}{deps}", env.sim.api_url))
        .bearer_auth(&env.token)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(
        failed,
        "a dropped connection must surface as a transport error"
    );

    h.add_fault(FaultSpec::new(FaultKind::Malformed)).unwrap();
    let r = env.get_raw(&deps, "application/json").await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());

    let full = env
        .get_raw(&deps, "application/json")
        .await
        .bytes()
        .await
        .unwrap();
    h.add_fault(FaultSpec::new(FaultKind::Truncated)).unwrap();
    let cut = env
        .get_raw(&deps, "application/json")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&full[..cut.len()], &cut[..]);
    assert!(cut.len() < full.len());
    assert!(serde_json::from_slice::<Value>(&cut).is_err());

    let (s, _) = env
        .sim_post("/_sim/faults", json!({"kind": "expire_tokens"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(env.get_raw(&deps, "application/json").await.status(), 401);

    let (s, _) = env
        .sim_post("/_sim/faults", json!({"kind": "nonsense"}))
        .await;
    assert_eq!(s, 400);
    let r = env
        .http
        .delete(format!("{}/_sim/faults", env.sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn absence_lifecycle_through_sim_api() {
    let env = setup(cfg(9)).await;
    let w = env.sim.state().truth();
    let employee = w.employers[0].employee_ids[0];
    let (s, body) = env
        .sim_post(
            "/_sim/absences",
            json!({"employee_id": employee, "first_day": "2025-05-01", "comments": "Griep"}),
        )
        .await;
    assert_eq!(s, 200);
    let id = body["id"].as_str().unwrap().to_string();
    let (s, _) = env
        .sim_post(
            &format!("/_sim/absences/{id}/progress"),
            json!({"start_date": "2025-05-11", "incapacity_percentage": 50}),
        )
        .await;
    assert_eq!(s, 200);
    let progress = env
        .get(&format!(
            "/providers/employers/employees/absences/{id}/absenceprogress"
        ))
        .await;
    let p = progress["_embedded"].as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (
            p[0]["incapacityPercentage"].clone(),
            p[0]["endDate"].clone()
        ),
        (json!(100), json!("2025-05-10"))
    );
    assert_eq!(
        (
            p[1]["incapacityPercentage"].clone(),
            p[1]["endDate"].clone()
        ),
        (json!(50), Value::Null)
    );
    let a = env
        .get(&format!("/providers/employers/employees/absences/{id}"))
        .await;
    assert_eq!(a["content"]["progress"]["currentIncapacityPercentage"], 50);
    assert_eq!(a["content"]["progress"]["startDate"], "2025-05-01");
    assert_eq!(a["content"]["progress"]["endOfAbsence"], Value::Null);
    assert_eq!(a["content"]["comments"], "Griep");

    // Date correction keeps the chain; bad corrections are refused.
    let r = env
        .http
        .patch(format!("{}/_sim/absences/{id}", env.sim.base_url))
        .json(&json!({"first_day": "2025-04-28"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env
        .http
        .patch(format!("{}/_sim/absences/{id}", env.sim.base_url))
        .json(&json!({"first_day": "2025-05-20"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (s, _) = env
        .sim_post(
            &format!("/_sim/absences/{id}/close"),
            json!({"date": "2025-05-25"}),
        )
        .await;
    assert_eq!(s, 200);
    let a = env
        .get(&format!("/providers/employers/employees/absences/{id}"))
        .await;
    assert_eq!(a["content"]["progress"]["startDate"], "2025-04-28");
    assert_eq!(
        a["content"]["progress"]["endOfAbsence"]["date"],
        "2025-05-25"
    );
    assert_eq!(a["content"]["progress"]["endOfAbsence"]["reason"]["key"], 1);
    assert!(a["content"].get("endOfAbsence").is_none());
    let progress = env
        .get(&format!(
            "/providers/employers/employees/absences/{id}/absenceprogress"
        ))
        .await;
    assert_eq!(progress["_embedded"][1]["endDate"], "2025-05-25");

    let er = &env.sim.employer_ids[0];
    let cal = env.get(&format!("/providers/employers/{er}/employees/employments/calendar/absences?startDate=2025-05-01&endDate=2025-05-31")).await;
    let found = cal["_embedded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["employee"]["id"] == employee.to_string());
    assert!(found);

    let r = env
        .http
        .delete(format!("{}/_sim/absences/{id}", env.sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.get_raw(
            &format!("/providers/employers/employees/absences/{id}"),
            "application/json"
        )
        .await
        .status(),
        404
    );
    let (s, _) = env
        .sim_post(
            &format!("/_sim/absences/{}/close", Uuid::nil()),
            json!({"date": "2025-05-25"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = env
        .sim_post(
            "/_sim/absences",
            json!({"employee_id": employee, "first_day": "01-05-2025"}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn stats_count_requests_by_template() {
    let env = setup(cfg(6)).await;
    let h = env.sim.state();
    h.reset_stats();
    let e = &env.sim.employer_ids[0];
    env.get(&format!("/providers/employers/{e}/departments"))
        .await;
    env.get(&format!(
        "/providers/employers/{}/departments?pageSize=2",
        env.sim.employer_ids[1]
    ))
    .await;
    env.get("/providers/employers").await;
    let stats: Value = env
        .http
        .get(format!("{}/_sim/stats", env.sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total"], 3);
    assert_eq!(
        stats["by_template"]["GET /v2/providers/employers/{employerId}/departments"],
        2
    );
    assert_eq!(stats["by_template"]["GET /v2/providers/employers"], 1);
    let reqs: Value = env
        .http
        .get(format!("{}/_sim/requests", env.sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reqs[1]["query"], "pageSize=2");
    assert_eq!(reqs[1]["accept"], "application/json;version=2021-03-29");
    assert_eq!(
        reqs[1]["template"],
        "/v2/providers/employers/{employerId}/departments"
    );
    let r = env
        .http
        .delete(format!("{}/_sim/stats", env.sim.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h.stats().total, 0);
    env.sim.shutdown().await;
}

#[test]
fn binary_prints_one_json_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loket-sim"))
        .args(["--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert!(
        v["api_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(v["api_url"].as_str().unwrap().ends_with("/v2"));
    assert!(v["oauth_url"].as_str().unwrap().ends_with("/oauth"));
    assert_eq!(v["client_id"], "arbosync-sim");
    assert!(!v["refresh_token"].as_str().unwrap().is_empty());
    assert_eq!(v["employer_ids"].as_array().unwrap().len(), 3);
}
