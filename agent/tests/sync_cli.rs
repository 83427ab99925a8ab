//! End-to-end through the real `arbosync-agent` binary, the simulator and a real database:
//! `connect --refresh-token-stdin`, `sync --once` (initial, replay, full), a new sick report at the
//! source, and canary values that the options exclude never reaching the database or the output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::NaiveDate;

const BIN: &str = env!("CARGO_BIN_EXE_arbosync-agent");
const CANARY_BSN: &str = "999999990";
const CANARY_COMMENT: &str = "CANARY-COMMENT-7f3a hernia details";

fn agent(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agent binary starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("the agent finishes")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Scenario {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    sim: loket_sim::RunningSim,
    all_data: String,
}

async fn setup(db_url: impl FnOnce(&Path) -> String) -> Scenario {
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 5,
        employers: 2,
        employees_per_employer: 15,
        max_page_size: 7,
        today: Some(NaiveDate::from_ymd_opt(2026, 12, 1).expect("date")),
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db_url(dir.path());
    let all_data = sim.employer_ids[0].clone();
    let minimal = sim.employer_ids[1].clone();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
state_dir = "{state}"

[database]
url = "{url}"
schema = "arbosync_e2e"

[[connection]]
name = "sim"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 500.0

[[employer]]
id = "{all_data}"
connection = "sim"
name = "All but BSN"
active = true
all_employments = true
salary = true

[[employer]]
id = "{minimal}"
connection = "sim"
name = "Privacy-minimal"
active = true
"#,
            state = dir.path().join("state").display(),
            api = sim.api_url,
            oauth = sim.oauth_url,
            client = sim.client_id,
        ),
    )
    .expect("write config");

    // Canaries at the source: a BSN the options exclude, and absence free text.
    let handle = sim.state();
    let world = handle.truth();
    for e in world.employees.values() {
        handle
            .patch_employee(
                e.id,
                loket_sim::EmployeePatch {
                    bsn: Some(CANARY_BSN.into()),
                    ..Default::default()
                },
            )
            .expect("plant BSN canary");
    }
    let person = world
        .employees
        .values()
        .find(|e| e.employer_id.to_string() == all_data)
        .expect("an employee");
    handle
        .create_absence(person.id, world.today, None, Some(CANARY_COMMENT.into()))
        .expect("absence with a comment canary");

    Scenario {
        _dir: dir,
        config,
        sim,
        all_data,
    }
}

async fn run_scenario(s: &Scenario, journal_rows: impl Fn() -> i64, dump: impl Fn() -> String) {
    let out = agent(
        &s.config,
        &["connect", "sim", "--refresh-token-stdin"],
        Some(&s.sim.refresh_token),
    );
    assert!(out.status.success(), "connect failed: {}", text(&out));

    let out = agent(&s.config, &["sync", "--once", "--json"], None);
    assert!(out.status.success(), "initial sync failed: {}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["employers"].as_array().map(Vec::len), Some(2));
    let inserted: u64 = doc["employers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["inserted"].as_u64().unwrap_or(0))
        .sum();
    let after_initial = journal_rows();
    assert!(
        inserted > 0 && after_initial as u64 >= inserted,
        "initial sync wrote {inserted} rows, {after_initial} journal rows"
    );

    // Replays change nothing: incremental, then a full reconciliation.
    for args in [&["sync", "--once"][..], &["sync", "--once", "--full"][..]] {
        let out = agent(&s.config, args, None);
        assert!(out.status.success(), "{args:?} failed: {}", text(&out));
        assert_eq!(journal_rows(), after_initial, "{args:?} added journal rows");
        for canary in [CANARY_BSN, CANARY_COMMENT, s.sim.refresh_token.as_str()] {
            assert!(!text(&out).contains(canary), "{args:?} printed a canary");
        }
    }

    // A new sick report at the source arrives at the next incremental run: exactly the absence
    // and its first progress record.
    let handle = s.sim.state();
    let world = handle.truth();
    let person = world
        .employees
        .values()
        .find(|e| {
            e.employer_id.to_string() == s.all_data
                && e.absence_ids.iter().all(|a| {
                    world
                        .absences
                        .get(a)
                        .is_none_or(|x| x.end_of_absence.is_some())
                })
        })
        .expect("an employee without an open absence");
    handle
        .create_absence(person.id, world.today, None, None)
        .expect("new absence");
    let out = agent(&s.config, &["sync", "--once"], None);
    assert!(
        out.status.success(),
        "sync after a new absence failed: {}",
        text(&out)
    );
    assert_eq!(
        journal_rows(),
        after_initial + 2,
        "a new absence is one absence and one progress row"
    );

    let everything = dump();
    assert!(
        !everything.contains(CANARY_BSN),
        "a BSN reached the database although `bsn` is off"
    );
    assert!(
        !everything.contains(CANARY_COMMENT),
        "absence free text reached the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_on_sqlite() {
    let s = setup(|dir| format!("sqlite://{}", dir.join("arbodienst.db").display())).await;
    let db = s.config.parent().expect("dir").join("arbodienst.db");
    let count = || {
        let c = rusqlite::Connection::open(&db).expect("open db");
        c.query_row("select count(*) from mutation", [], |r| r.get::<_, i64>(0))
            .expect("count")
    };
    let dump = || {
        // The whole file, WAL included, as bytes: nothing may hide in free pages either.
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            all.extend(std::fs::read(&p).unwrap_or_default());
        }
        String::from_utf8_lossy(&all).into_owned()
    };
    run_scenario(&s, count, dump).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_on_postgres() {
    let admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be reachable at 127.0.0.1:5432 (user postgres) for this test");
    tokio::spawn(conn);
    let name = format!("arbosync_e2e_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let s = setup(|_| url.clone()).await;
    let db = format!("host=127.0.0.1 port=5432 user=postgres dbname={name}");
    let query = |sql: &'static str| {
        let db = db.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let (c, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                c.query_one(sql, &[])
                    .await
                    .expect("query")
                    .get::<_, String>(0)
            })
        })
        .join()
        .expect("query thread")
    };
    let count = || {
        query("select count(*)::text from arbosync_e2e.mutation")
            .parse::<i64>()
            .expect("count")
    };
    let dump = || {
        query(
            "select coalesce(string_agg(t::text, ' '), '') from (
               select row_to_json(e)::text as t from arbosync_e2e.employee e
               union all select row_to_json(a)::text from arbosync_e2e.absence a
               union all select row_to_json(m)::text from arbosync_e2e.mutation m) x",
        )
    };
    run_scenario(&s, count, dump).await;
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
}
