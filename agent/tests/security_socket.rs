//! R17, no personal data on the control socket, in logs or in the state directory. The real
//! `arbosync-agent run` syncs two employers from a simulator seeded with canaries (BSNs that pass
//! the 11-test, distinctive wages, last names, e-mail addresses, absence comments): one employer
//! with `bsn` and `salary` on, one with them off. A raw control-socket session subscribes, asks
//! for snapshots and errors, and triggers runs, also while faults make records and requests fail
//! (a truncated BSN body, wrong-typed values that carry a canary, 500s), so error texts and
//! retry-queue entries go over the socket too. The whole transcript, the log files, the service's
//! stdout/stderr and the state directory (sled) hold none of the canaries; the database holds
//! exactly what the options allow (so the canaries really passed through the agent).

mod security_common;

use std::path::PathBuf;
use std::time::Duration;

use loket_sim::{EmployeePatch, FaultKind, FaultSpec};
use security_common::*;

const WAGE: f64 = 87123.45;
const WAGE_TEXTS: [&str; 2] = ["87123.45", "87123,45"];
const LAST_NAME: &str = "Kanariepiet";
const EMAIL: &str = "kanarie.r17@example.invalid";
const COMMENT: &str = "CANARY-COMMENT-r17 burn-out na conflict";

fn canaries() -> Vec<String> {
    let mut c: Vec<String> = CANARY_BSNS.iter().map(|s| s.to_string()).collect();
    c.extend(WAGE_TEXTS.iter().map(|s| s.to_string()));
    c.extend([LAST_NAME, EMAIL, COMMENT].map(String::from));
    c
}

/// Puts the canaries into every employee of the simulator.
fn seed_canaries(sim: &loket_sim::RunningSim) {
    let h = sim.state();
    let world = h.truth();
    let today = world.today;
    for (n, e) in world.employees.values().enumerate() {
        h.patch_employee(
            e.id,
            EmployeePatch {
                bsn: Some(CANARY_BSNS[n % 2].into()),
                email: Some(EMAIL.into()),
                last_name: Some(LAST_NAME.into()),
            },
        )
        .expect("patch employee");
        for x in &e.employment_ids {
            let emp = &world.employments[x];
            if emp.end_date.is_none() && emp.wages.iter().all(|w| w.start_date < today) {
                h.change_wage(emp.id, today, WAGE).expect("wage canary");
            }
        }
        h.create_absence(e.id, today, None, Some(COMMENT.into()))
            .expect("comment canary");
    }
}

fn fault(kind: FaultKind, path: &str, times: u32) -> FaultSpec {
    let mut f = FaultSpec::new(kind);
    f.path_contains = Some(path.into());
    f.times = Some(times);
    f
}

/// Triggers a run of `employer` and returns its `run_finished` event (matched by run id).
async fn run_and_wait(control: &mut Control, employer: &str, full: bool) -> serde_json::Value {
    control.events.clear();
    let r = control
        .request(serde_json::json!({"op": "sync_now", "employer": employer, "full": full}))
        .await;
    assert!(r.get("ok").is_some(), "sync_now refused: {r}");
    let started = control
        .wait_event(Duration::from_secs(60), |e| {
            e["kind"] == "run_started" && e["employer"] == employer
        })
        .await;
    let run_id = started["run_id"].clone();
    control
        .wait_event(Duration::from_secs(180), |e| {
            e["kind"] == "run_finished" && e["run"]["run_id"] == run_id
        })
        .await
}

/// Waits until every employer has finished a run and none is running (the service's own first
/// runs at start-up), so that later events belong to the runs the test triggers.
async fn wait_idle(control: &mut Control) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let snap = control.request(serde_json::json!({"op": "snapshot"})).await;
        let employers = snap["ok"]["snapshot"]["employers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let idle = !employers.is_empty()
            && employers.iter().all(|e| {
                e["running"].is_null() && e["recent_runs"].as_array().is_some_and(|r| !r.is_empty())
            });
        if idle {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first runs did not finish: {snap}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_on_the_socket_in_logs_or_in_the_state_directory() {
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 101,
        employers: 2,
        employees_per_employer: 6,
        max_page_size: 4,
        ..Default::default()
    })
    .await
    .expect("the simulator starts");
    seed_canaries(&sim);
    let (on, off) = (sim.employer_ids[0].clone(), sim.employer_ids[1].clone());

    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let logs = dir.path().join("logs");
    let db = dir.path().join("arbodienst.db");
    let socket = dir.path().join("run").join("agent.sock");
    let config = dir.path().join("agent.toml");
    let text_cfg = format!(
        r#"[agent]
state_dir = "{state}"
socket = "{socket}"
log_dir = "{logs}"
log_level = "trace"
interval = "1h"
full_reconcile_interval = "1h"

[database]
url = "sqlite://{db}"

[[connection]]
name = "sim"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 1000.0

[[employer]]
id = "{on}"
connection = "sim"
name = "Options on"
active = true
all_employments = true
salary = true
bsn = true

[[employer]]
id = "{off}"
connection = "sim"
name = "Options off"
active = true
all_employments = true
salary = false
bsn = false
"#,
        state = state.display(),
        socket = socket.display(),
        logs = logs.display(),
        db = db.display(),
        api = sim.api_url,
        oauth = sim.oauth_url,
        client = sim.client_id,
    );
    std::fs::write(&config, text_cfg).expect("config");
    connect(&config, "sim", &sim.refresh_token).await;
    let service = Service::start(&config, &socket, dir.path());

    let mut control = Control::open(&socket).await;
    let subscribed = control
        .request(serde_json::json!({"op": "subscribe"}))
        .await;
    assert!(subscribed.get("ok").is_some(), "{subscribed}");
    wait_idle(&mut control).await;

    // Clean runs first (incremental and full) for both employers.
    for employer in [&on, &off] {
        for full in [false, true] {
            let done = run_and_wait(&mut control, employer, full).await;
            assert_eq!(done["run"]["outcome"], "ok", "{done}");
        }
    }

    // Failing runs: every error text and retry-queue entry is built from data that carries
    // canaries (a BSN body cut in half, wrong-typed values that are canaries, 500s).
    let h = sim.state();
    let mut outcomes = Vec::new();
    let mut record = |done: serde_json::Value| {
        outcomes.push(done["run"]["outcome"].as_str().unwrap_or("?").to_string());
    };
    // (a) The BSN body cut in half (a JSON prefix that holds a canary BSN).
    h.add_fault(fault(FaultKind::Truncated, "/citizenservicenumber", 0))
        .expect("fault");
    h.bump(on.parse().expect("uuid"), None).expect("bump");
    record(run_and_wait(&mut control, &on, false).await);
    h.clear_faults();
    // (b) Wrong-typed values that are canaries: a wage as Dutch-formatted text, a BSN as the
    //     date of birth (new version numbers make the runs fetch again).
    let mut wage = fault(FaultKind::Patch, "/wages", 0);
    wage.field = Some("grossWage".into());
    wage.value = Some(serde_json::json!(WAGE_TEXTS[1]));
    h.add_fault(wage).expect("fault");
    h.bump(on.parse().expect("uuid"), None).expect("bump");
    record(run_and_wait(&mut control, &on, false).await);
    h.clear_faults();
    for employer in [&on, &off] {
        let mut birth = fault(
            FaultKind::Patch,
            &format!("/providers/employers/{employer}/employees"),
            0,
        );
        birth.field = Some("personalDetails.dateOfBirth".into());
        birth.value = Some(serde_json::json!(CANARY_BSNS[0]));
        h.add_fault(birth).expect("fault");
        h.bump(employer.parse().expect("uuid"), None).expect("bump");
        record(run_and_wait(&mut control, employer, false).await);
    }
    h.clear_faults();
    // (c) 503s until the retries give up.
    h.add_fault(fault(FaultKind::Status, "/absences", 0))
        .expect("fault");
    for employer in [&on, &off] {
        record(run_and_wait(&mut control, employer, true).await);
    }
    let errors = control
        .request(serde_json::json!({"op": "errors", "employer": null}))
        .await;
    let snapshot = control.request(serde_json::json!({"op": "snapshot"})).await;
    let reported = errors["ok"]["errors"].as_array().map_or(0, Vec::len)
        + errors["ok"]["retry_queue"].as_array().map_or(0, Vec::len);
    assert!(
        reported > 0 || outcomes.iter().any(|o| o != "ok"),
        "sanity: the faults produced errors ({outcomes:?}): {errors}"
    );

    // Recovery, and one more session that only reads.
    h.clear_faults();
    for employer in [&on, &off] {
        run_and_wait(&mut control, employer, true).await;
    }
    let mut reader = Control::open(&socket).await;
    reader.request(serde_json::json!({"op": "snapshot"})).await;
    reader
        .request(serde_json::json!({"op": "errors", "employer": on}))
        .await;
    let status = service.stop();
    assert!(status.success(), "clean exit: {status}");

    // The canaries went through the agent: the allowed ones are in the database.
    let stored = {
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            all.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
        }
        all
    };
    let in_db = canaries_in(&stored, &canaries());
    for expected in [CANARY_BSNS[0], LAST_NAME, EMAIL] {
        assert!(
            in_db.iter().any(|c| c == expected),
            "sanity: {expected} reached the database ({in_db:?})"
        );
    }
    assert!(
        !in_db.iter().any(|c| c == COMMENT),
        "absence comments were stored"
    );
    let sqlite = rusqlite::Connection::open(&db).expect("open SQLite");
    let count = |sql: &str| -> i64 {
        sqlite
            .query_row(sql, [&off], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(
        count("SELECT count(*) FROM employee WHERE employer_id = ?1 AND bsn IS NOT NULL"),
        0,
        "BSNs stored for the employer with `bsn` off"
    );
    assert_eq!(
        count("SELECT count(*) FROM employment_salary_period WHERE employer_id = ?1"),
        0,
        "wages stored for the employer with `salary` off"
    );
    assert!(count("SELECT count(*) FROM employee WHERE employer_id = ?1") > 0);

    // None of them anywhere else.
    let canaries = canaries();
    let mut transcript = control.transcript.clone();
    transcript.extend_from_slice(&reader.transcript);
    assert!(
        control
            .frames
            .iter()
            .any(|f| f["event"]["kind"] == "run_finished")
            && transcript.len() > 1000,
        "sanity: the transcript holds the session ({} bytes)",
        transcript.len()
    );
    for (what, bytes) in [
        ("the socket transcript", transcript),
        ("the errors reply", errors.to_string().into_bytes()),
        ("the snapshot", snapshot.to_string().into_bytes()),
    ] {
        let found = canaries_in(&bytes, &canaries);
        assert!(found.is_empty(), "personal data in {what}: {found:?}");
    }
    let hits = grep_tree(dir.path(), &canaries, &|p| {
        p == config || p.to_string_lossy().starts_with(&*db.to_string_lossy())
    });
    assert!(
        hits.is_empty(),
        "personal data in logs, output or state: {hits:#?}"
    );
    assert!(
        !files_under(&logs, &|_| false).is_empty() && state.join("sled").exists(),
        "sanity: logs and the sled store were searched"
    );
    eprintln!(
        "R17: transcript of {} frames; {reported} errors/retry entries; outcomes under faults {outcomes:?}",
        control.frames.len() + reader.frames.len()
    );
}

#[test]
fn the_canaries_are_valid_bsns() {
    // 9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 (mod 11): a BSN scrubber would treat them as real.
    for bsn in CANARY_BSNS {
        let d: Vec<i64> = bsn.bytes().map(|b| i64::from(b - b'0')).collect();
        let sum: i64 = (0..8).map(|i| (9 - i as i64) * d[i]).sum::<i64>() - d[8];
        assert_eq!(sum % 11, 0, "{bsn}");
    }
}
