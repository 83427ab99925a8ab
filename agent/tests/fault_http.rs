//! HTTP faults through the real binary (R5, R6, R7 of `reliability-security.md` §4), on SQLite
//! and on PostgreSQL (the stall test on SQLite only: it waits out the client's fixed 30 s read
//! timeout). Every run is checked with the oracle of `common_e2e`: an employer whose run failed
//! has no new journal rows and unchanged tables, one whose run succeeded equals the truth.
//! - R5: 429 with `Retry-After` in seconds and as an HTTP date: the waits between requests,
//!   measured from the simulator's arrival log, are at least what was advised; a `Retry-After`
//!   beyond the client's cap fails the run at once instead of sleeping.
//! - R6: 500/502/503 bursts retried with growing backoff; a connection reset mid-body (the
//!   in-process TCP proxy of `fault_common`) retried; persistent resets and a refused connection
//!   end the run after a bounded number of attempts without moving the cursor or the data;
//!   accept-and-hang and headers-then-stall end in the read timeout and a successful retry.
//! - R7: an HTML "200" from a proxy, a JSON `null` page and a record without `id` reject the
//!   page as a whole: that employer's run fails (others complete), again on the next run while
//!   the fault lasts (the stream halts, nothing is skipped), and completes once it is gone.

mod common_e2e;
mod fault_common;

use std::time::{Duration, Instant};

use arbosync_agent::state::Cursor;
use common_e2e::*;
use fault_common::*;
use loket_sim::{Arrival, FaultKind, FaultSpec, SimHandle, Uuid};

fn status_fault(path: &str, status: u16, times: u32) -> FaultSpec {
    let mut f = FaultSpec::new(FaultKind::Status);
    f.status = Some(status);
    f.path_contains = Some(path.to_string());
    f.times = Some(times);
    f
}

fn arrivals_at(h: &SimHandle, path: &str) -> Vec<Arrival> {
    h.arrivals()
        .into_iter()
        .filter(|a| a.path.contains(path))
        .collect()
}

fn statuses(a: &[Arrival]) -> Vec<u16> {
    a.iter().map(|x| x.status).collect()
}

fn calendar_of(employer: Uuid) -> String {
    format!("{employer}/employees/employments/calendar/absences")
}

/// The requests for the first page of a list (the ones the proxy faults are armed for).
fn first_pages_of(events: &[ProxyEvent], path: &str) -> Vec<ProxyEvent> {
    events
        .iter()
        .filter(|e| e.target.contains(path) && e.target.contains("pageNumber=1&"))
        .cloned()
        .collect()
}

fn cursor_of(env: &Env, employer: Uuid) -> Option<Cursor> {
    state_of(env).0.remove(&employer)
}

/// A new sick report for someone healthy at `employer` (an incremental run must fetch it).
fn new_absence(env: &Env, employer: Uuid) -> (Uuid, Uuid) {
    let h = env.handle();
    let world = h.truth();
    let p = healthy_person(&world, employer, &[]);
    let a = h
        .create_absence(p, world.today, None, None)
        .expect("absence");
    (p, a)
}

async fn retry_after_is_honoured(backend: Backend) {
    let env = Env::start(backend, sim_config(81, 1, 10), &[Opts::everything()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    // Three 429s with `Retry-After: 2` on the calendar, one with an HTTP date 3 s ahead on the
    // absence list of the person with a new sick report.
    let (p, _) = new_absence(&env, x);
    let calendar = calendar_of(x);
    let absences = format!("employees/{p}/absences");
    let mut f = status_fault(&calendar, 429, 3);
    f.retry_after_secs = Some(2);
    h.add_fault(f).expect("fault");
    let mut f = status_fault(&absences, 429, 1);
    f.retry_after_secs = Some(3);
    f.retry_after_http_date = true;
    h.add_fault(f).expect("fault");
    h.reset_stats();
    let rows = env.step(&mut tr, &[], "through 429s").await;
    assert_eq!(
        count(
            &rows_of(&rows, x),
            arbosync_agent::records::Entity::Absence,
            "insert"
        ),
        1
    );

    let cal = arrivals_at(&h, &calendar);
    assert_eq!(
        statuses(&cal),
        [429, 429, 429, 200],
        "{}",
        describe_arrivals(&cal)
    );
    let times: Vec<u64> = cal.iter().map(|a| a.at_ms).collect();
    for gap in gaps_ms(&times) {
        assert!(
            (2000..=5000).contains(&gap),
            "Retry-After: 2 honoured without sleeping much longer: {gap} ms\n{}",
            describe_arrivals(&cal)
        );
    }
    let abs = arrivals_at(&h, &absences);
    assert_eq!(statuses(&abs), [429, 200], "{}", describe_arrivals(&abs));
    let gap = abs[1].at_ms - abs[0].at_ms;
    // The date has whole seconds: it is between 2 and 3 s after the 429 was sent.
    assert!(
        (2000..=6000).contains(&gap),
        "Retry-After as an HTTP date honoured: {gap} ms"
    );

    // A `Retry-After` beyond the client's cap (120 s) is not slept through: the run fails at
    // once, moves nothing, and a later run completes.
    new_absence(&env, x);
    let mut f = status_fault(&calendar, 429, 0);
    f.retry_after_secs = Some(600);
    h.add_fault(f).expect("fault");
    let cursor = cursor_of(&env, x);
    h.reset_stats();
    let seq = env.db.max_seq().await;
    let started = Instant::now();
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not slept through"
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(outcome_of(&doc, x)["status"], "failed");
    assert!(
        outcome_of(&doc, x)["error"]
            .as_str()
            .is_some_and(|e| e.contains("429") && e.contains("retry after")),
        "the error names the 429 and its advice: {doc}"
    );
    assert_eq!(arrivals_at(&h, &calendar).len(), 1, "no retry storm");
    env.check_run(&mut tr, &doc, seq, "429 beyond the cap")
        .await;
    assert_eq!(cursor_of(&env, x), cursor, "the cursor did not move");
    h.clear_faults();
    env.step(&mut tr, &[], "after the 429s").await;
    assert_converged(&env, "R5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_sqlite() {
    retry_after_is_honoured(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_postgres() {
    retry_after_is_honoured(Backend::Postgres).await;
}

async fn server_errors_and_resets(backend: Backend) {
    let env = Env::start(
        backend,
        sim_config(82, 2, 10),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let (x, y) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let proxy = FaultProxy::start(&env.sim.api_url).await;
    point_api_at(&env, &proxy.api_url());
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync through the proxy")
        .await;

    // 503, 503 / 502 / 500 / a reset mid-body: each retried, the run completes.
    let change = |env: &Env| {
        let world = env.handle().truth();
        let p = healthy_person(&world, x, &[]);
        let e = open_employment_of(&world, p);
        env.handle()
            .add_working_hours(e, world.today, 30.0)
            .expect("hours");
        new_absence(env, x);
    };
    change(&env);
    let calendar = calendar_of(x);
    h.add_fault(status_fault(&calendar, 503, 2)).expect("fault");
    h.add_fault(status_fault(&format!("{x}/departments"), 502, 1))
        .expect("fault");
    h.add_fault(status_fault(&format!("{x}/payrolladministrations"), 500, 1))
        .expect("fault");
    proxy.arm(&format!("{x}/employees?"), ProxyFault::ResetMidBody(40), 1);
    let seen_before = proxy.events().len();
    h.reset_stats();
    env.step(&mut tr, &[], "through 5xx and a reset").await;
    let cal = arrivals_at(&h, &calendar);
    assert_eq!(
        statuses(&cal),
        [503, 503, 200],
        "{}",
        describe_arrivals(&cal)
    );
    let g = gaps_ms(&cal.iter().map(|a| a.at_ms).collect::<Vec<_>>());
    // Backoff with jitter: 250-500 ms, then 500-1000 ms (plus scheduling).
    assert!(
        (250..=2000).contains(&g[0]) && (500..=3000).contains(&g[1]),
        "backoff grows: {g:?}"
    );
    for path in [
        format!("{x}/departments"),
        format!("{x}/payrolladministrations"),
    ] {
        let a = arrivals_at(&h, &path);
        assert_eq!(statuses(&a)[0] / 100, 5, "{}", describe_arrivals(&a));
        assert_eq!(*statuses(&a).last().expect("retried"), 200);
    }
    let first_pages = first_pages_of(&proxy.events()[seen_before..], &format!("{x}/employees?"));
    assert!(
        first_pages.len() == 2 && first_pages[0].fault.is_some() && first_pages[1].fault.is_none(),
        "the reset request was retried: {first_pages:?}"
    );

    // Persistent resets on X's calendar: bounded attempts, the run fails, nothing moves.
    change(&env);
    new_absence(&env, y);
    proxy.arm(&calendar, ProxyFault::ResetMidBody(10), 0);
    let cursor = cursor_of(&env, x);
    let seq = env.db.max_seq().await;
    let before = proxy.events().len();
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(outcome_of(&doc, x)["status"], "failed", "{doc}");
    assert_eq!(outcome_of(&doc, y)["status"], "ok", "{doc}");
    let attempts = proxy.events()[before..]
        .iter()
        .filter(|e| e.target.contains(&calendar))
        .count();
    assert_eq!(attempts, 4, "bounded attempts (the client's default of 4)");
    env.check_run(&mut tr, &doc, seq, "persistent resets").await;
    assert_eq!(cursor_of(&env, x), cursor, "the cursor did not move");
    proxy.disarm();

    // Loket unreachable (connection refused): every employer fails quickly, nothing moves.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let proxy_url = proxy.api_url();
    edit_config(&env, |t| {
        t.replace(&proxy_url, &format!("http://127.0.0.1:{closed}/v2"))
    });
    let cursors = state_of(&env).0;
    let seq = env.db.max_seq().await;
    let started = Instant::now();
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded retries when the connection is refused"
    );
    env.check_run(&mut tr, &doc, seq, "connection refused")
        .await;
    assert_eq!(state_of(&env).0, cursors, "no cursor moved");

    // Reachable again: the next run completes what failed.
    edit_config(&env, |t| {
        t.replace(&format!("http://127.0.0.1:{closed}/v2"), &proxy_url)
    });
    env.step(&mut tr, &[], "after the faults").await;
    assert_converged(&env, "R6 5xx and resets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_resets_on_sqlite() {
    server_errors_and_resets(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_resets_on_postgres() {
    server_errors_and_resets(Backend::Postgres).await;
}

/// Accept-and-hang and headers-then-stall in the same wave of requests: both end in the read
/// timeout (30 s, fixed in `ConnectionSettings::new`; not configurable per connection) and are
/// retried; the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_end_in_the_read_timeout() {
    let env = Env::start(Backend::Sqlite, sim_config(83, 1, 8), &[Opts::everything()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let proxy = FaultProxy::start(&env.sim.api_url).await;
    point_api_at(&env, &proxy.api_url());
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    // A department rename moves the employer's version: the static lists are read again, four
    // of them at once.
    let world = h.truth();
    h.rename_department(sim_employer(&world, x).departments[0].id, "Stil")
        .expect("rename");
    proxy.arm(&format!("{x}/departments"), ProxyFault::Hang, 1);
    proxy.arm(
        &format!("{x}/payrolladministrations"),
        ProxyFault::HeadersThenStall,
        1,
    );
    let seen_before = proxy.events().len();
    let started = Instant::now();
    env.step(&mut tr, &[], "through two stalls").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(90),
        "the stalls end in the 30 s read timeout, once: {took:?}"
    );
    for path in ["/departments", "/payrolladministrations"] {
        let seen = first_pages_of(&proxy.events()[seen_before..], path);
        assert!(
            seen.len() == 2 && seen[0].fault.is_some() && seen[1].fault.is_none(),
            "the stalled read, then its retry: {seen:?}"
        );
    }
    assert_converged(&env, "R6 stalls").await;
}

async fn malformed_pages(backend: Backend) {
    let env = Env::start(
        backend,
        sim_config(84, 2, 10),
        &[Opts::everything(), Opts::everything()],
    )
    .await;
    let (x, y) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    for kind in ["html", "null", "missing id"] {
        let (p, a) = new_absence(&env, x);
        new_absence(&env, y);
        let mut f = match kind {
            "html" => {
                let mut f = FaultSpec::new(FaultKind::Body);
                f.content_type = Some("text/html".into());
                f.body = Some("<html><body><h1>200 OK</h1>Gateway says hi</body></html>".into());
                f.path_contains = Some(calendar_of(x));
                f
            }
            "null" => {
                let mut f = FaultSpec::new(FaultKind::Body);
                f.body = Some("null".into());
                f.path_contains = Some(format!("employees/{p}/absences"));
                f
            }
            _ => {
                let mut f = FaultSpec::new(FaultKind::Patch);
                f.field = Some("id".into());
                f.item_id = Some(a.to_string());
                f.path_contains = Some(format!("employees/{p}/absences"));
                f
            }
        };
        f.times = Some(0);
        h.add_fault(f).expect("fault");
        let cursor = cursor_of(&env, x);
        for attempt in 1..=2 {
            let what = format!("{kind} page, run {attempt}");
            let seq = env.db.max_seq().await;
            let (out, doc) = env.sync_with(&[], &[]).await;
            assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
            assert_eq!(outcome_of(&doc, x)["status"], "failed", "{what}: {doc}");
            assert_eq!(outcome_of(&doc, y)["status"], "ok", "{what}: {doc}");
            assert!(
                outcome_of(&doc, x)["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("cannot be used")),
                "{what}: the page is reported as unusable: {doc}"
            );
            env.check_run(&mut tr, &doc, seq, &what).await;
            assert_eq!(
                cursor_of(&env, x),
                cursor,
                "{what}: the cursor did not move"
            );
        }
        h.clear_faults();
        let rows = env.step(&mut tr, &[], &format!("{kind} page gone")).await;
        assert_eq!(
            count(
                &rows_of(&rows, x),
                arbosync_agent::records::Entity::Absence,
                "insert"
            ),
            1,
            "{kind}: the held-back sick report arrives"
        );
    }
    assert_converged(&env, "R7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pages_on_sqlite() {
    malformed_pages(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pages_on_postgres() {
    malformed_pages(Backend::Postgres).await;
}
