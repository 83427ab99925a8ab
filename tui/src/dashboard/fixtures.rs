//! Fixed, deterministic dashboard data for the view snapshots, the update tests and the view
//! benchmark: one employer in every state, a fixed "now", and a generator for many employers.
//! Employer names are invented trade names; there is no personal data here.

use std::collections::BTreeMap;

use arbosync_shared::{
    AgentInfo, EmployerView, ErrorEntry, Health, OptionsView, Progress, RetryEntryView,
    RunOutcomeKind, RunSummary, RunningView, Snapshot, UpdateInfo,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::model::{Connection, Model};
use arbosync_shared::Role;

/// The fixed "now" of every fixture: 2026-03-02 10:00:00 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A deterministic id: `n` in the low bits.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn ago(seconds: i64) -> DateTime<Utc> {
    now() - Duration::seconds(seconds)
}

fn later(seconds: i64) -> DateTime<Utc> {
    now() + Duration::seconds(seconds)
}

pub fn agent() -> AgentInfo {
    AgentInfo {
        version: "0.1.0".to_owned(),
        started_at: ago(3 * 86_400 + 4 * 3600 + 120),
        database: "sqlite:/var/lib/arbosync/arbodienst.db".to_owned(),
        config_path: "/etc/arbosync/agent.toml".to_owned(),
        socket_path: "/run/arbosync/agent.sock".to_owned(),
        state_dir: "/var/lib/arbosync".to_owned(),
        state_store_bytes: 12 * 1024 * 1024 + 300 * 1024,
        update: UpdateInfo {
            channel: "stable".to_owned(),
            pinned: None,
            pending: Some("0.1.1".to_owned()),
            last_check: Some(ago(2 * 3600)),
            last_failure: None,
        },
        alerts: vec!["config reloaded with 1 new employer".to_owned()],
    }
}

fn options(all: bool, absences: bool, salary: bool, bsn: bool) -> OptionsView {
    OptionsView {
        all_employments: all,
        absences,
        salary,
        bsn,
        history_months: 24,
    }
}

/// `count` runs, newest first, ending `last_end` seconds ago, every 15 minutes before that.
pub fn runs(seed: u64, count: usize, last_end: i64, outcome: RunOutcomeKind) -> Vec<RunSummary> {
    (0..count)
        .map(|i| {
            let k = seed.wrapping_mul(31).wrapping_add(i as u64 * 7);
            let duration_ms = 800 + (k * 977) % 4200;
            let finished = ago(last_end + i as i64 * 900);
            let outcome = if i == 0 {
                outcome
            } else if k.is_multiple_of(11) {
                RunOutcomeKind::Partial
            } else {
                RunOutcomeKind::Ok
            };
            RunSummary {
                run_id: id(u128::from(seed) << 32 | i as u128),
                full: i % 8 == 7,
                outcome,
                started_at: finished - Duration::milliseconds(duration_ms as i64),
                finished_at: finished,
                duration_ms,
                inserted: (k * 3) % 17,
                updated: (k * 5) % 23,
                deleted: k % 3,
                failed: u64::from(outcome == RunOutcomeKind::Partial) * 2,
                requests: 12 + k % 30,
                error: match outcome {
                    RunOutcomeKind::Failed => {
                        Some("Loket answered 503 after 5 attempts".to_owned())
                    }
                    RunOutcomeKind::Partial => {
                        Some("2 records failed validation; they are in the retry queue".to_owned())
                    }
                    _ => None,
                },
            }
        })
        .collect()
}

fn counts(seed: u64) -> BTreeMap<String, u64> {
    [
        ("employer", 1),
        ("department", 3 + seed % 4),
        ("employee", 40 + seed * 3),
        ("employment", 44 + seed * 3),
        ("employment_department_period", 51 + seed * 4),
        ("absence", 6 + seed % 9),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn base(n: u128, name: &str, connection: &str, health: Health) -> EmployerView {
    let seed = n as u64;
    EmployerView {
        id: id(n),
        name: name.to_owned(),
        connection: connection.to_owned(),
        health,
        active: true,
        paused: false,
        needs_reconnect: false,
        options: options(true, true, seed.is_multiple_of(2), false),
        running: None,
        recent_runs: runs(
            seed,
            12,
            300 + (seed as i64 * 97) % 1500,
            RunOutcomeKind::Ok,
        ),
        next_run_at: Some(later(120 + (seed as i64 * 53) % 700)),
        last_full_reconcile: Some(ago(2 * 86_400 + (seed as i64) * 3600)),
        last_error: None,
        last_error_at: None,
        retry_queue: Vec::new(),
        entity_counts: counts(seed),
    }
}

fn retry_entry(
    employer: Uuid,
    entity: &str,
    record: &str,
    reason: &str,
    attempts: u32,
) -> RetryEntryView {
    RetryEntryView {
        employer,
        entity: entity.to_owned(),
        record_id: record.to_owned(),
        reason: reason.to_owned(),
        attempts,
        first_failed: ago(86_400),
        last_failed: ago(600 * u64::from(attempts) as i64),
    }
}

/// One employer in every state, sorted as the model would sort them.
pub fn employers() -> Vec<EmployerView> {
    let mut list = Vec::new();

    list.push(base(1, "Bakkerij De Korenschoof", "noord", Health::Ok));

    let mut running = base(2, "Van Dijk Installatietechniek", "noord", Health::Running);
    running.running = Some(RunningView {
        run_id: id(0x2_0000_0099),
        full: false,
        started_at: ago(14),
        progress: Progress::Applying {
            done: 90,
            total: 200,
        },
    });
    list.push(running);

    let mut partial = base(3, "Zorggroep Het Baken", "zuid", Health::Partial);
    partial.recent_runs = runs(3, 12, 420, RunOutcomeKind::Partial);
    partial.last_error =
        Some("2 records failed validation; they are in the retry queue".to_owned());
    partial.last_error_at = Some(ago(420));
    partial.retry_queue = vec![
        retry_entry(
            id(3),
            "employment",
            "emp-7731",
            "start date after end date",
            3,
        ),
        retry_entry(
            id(3),
            "absence",
            "abs-0192",
            "references an unknown employment",
            1,
        ),
    ];
    list.push(partial);

    let mut failed = base(4, "Transport Hollander", "zuid", Health::Failed);
    failed.recent_runs = runs(4, 12, 900, RunOutcomeKind::Failed);
    failed.last_error = Some("Loket answered 503 after 5 attempts".to_owned());
    failed.last_error_at = Some(ago(900));
    list.push(failed);

    let mut reconnect = base(
        5,
        "Gemeentewerken Oosterpoort",
        "oost",
        Health::NeedsReconnect,
    );
    reconnect.needs_reconnect = true;
    reconnect.next_run_at = None;
    reconnect.last_error = Some("Loket consent expired: reconnect the employer".to_owned());
    reconnect.last_error_at = Some(ago(5400));
    reconnect.recent_runs = runs(5, 6, 5400, RunOutcomeKind::Failed);
    list.push(reconnect);

    let mut paused = base(6, "Schoonmaakbedrijf Glans", "oost", Health::Paused);
    paused.paused = true;
    list.push(paused);

    let mut inactive = base(7, "Kwekerij Groenrijk", "west", Health::Inactive);
    inactive.active = false;
    inactive.next_run_at = None;
    list.push(inactive);

    let mut new = base(8, "Architectenbureau Lijnwerk", "west", Health::New);
    new.recent_runs = Vec::new();
    new.last_full_reconcile = None;
    new.entity_counts = BTreeMap::new();
    new.next_run_at = Some(later(30));
    list.push(new);

    for (n, name) in [
        (9, "Drukkerij Letterzetter"),
        (10, "Fietsenmakerij Trapvast"),
        (11, "Hotel De Gouden Leeuw"),
        (12, "IJzerhandel Smeets"),
    ] {
        list.push(base(n, name, "noord", Health::Ok));
    }
    list.sort_by_cached_key(|e| (e.name.to_lowercase(), e.id));
    list
}

pub fn errors() -> Vec<ErrorEntry> {
    vec![
        ErrorEntry {
            at: ago(420),
            employer: Some(id(3)),
            run_id: Some(id(3 << 32)),
            message: "employment emp-7731: start date after end date".to_owned(),
        },
        ErrorEntry {
            at: ago(420),
            employer: Some(id(3)),
            run_id: Some(id(3 << 32)),
            message: "absence abs-0192: references an unknown employment".to_owned(),
        },
        ErrorEntry {
            at: ago(900),
            employer: Some(id(4)),
            run_id: Some(id(4 << 32)),
            message: "Loket answered 503 after 5 attempts".to_owned(),
        },
        ErrorEntry {
            at: ago(5400),
            employer: Some(id(5)),
            run_id: None,
            message: "Loket consent expired: reconnect the employer".to_owned(),
        },
        ErrorEntry {
            at: ago(7200),
            employer: None,
            run_id: None,
            message: "update check failed: release server unreachable".to_owned(),
        },
    ]
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        agent: agent(),
        employers: employers(),
        errors: errors(),
    }
}

/// A connected admin session with [`snapshot`] applied, at [`now`], with colour.
pub fn model() -> Model {
    let mut model = Model::new("/run/arbosync/agent.sock", now(), true);
    model.connection = Connection::Connected { since: ago(3600) };
    model.role = Some(Role::Admin);
    model.agent_version = Some("0.1.0".to_owned());
    model.apply_snapshot(snapshot());
    model
}

/// A snapshot with `n` employers in a realistic mix of states, for the benchmark.
pub fn large_snapshot(n: usize) -> Snapshot {
    let kinds = employers();
    let employers = (0..n)
        .map(|i| {
            let mut e = kinds[i % kinds.len()].clone();
            e.id = id(1_000_000 + i as u128);
            e.name = format!("{} {:04}", e.name, i);
            e
        })
        .collect();
    Snapshot {
        agent: agent(),
        employers,
        errors: (0..n).flat_map(|_| errors()).take(1000).collect(),
    }
}
