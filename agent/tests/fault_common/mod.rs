//! Shared harness of the fault-injection suite (`fault_*.rs`), on top of `common_e2e` (the real
//! binary, the simulator, a real database and the truth oracle):
//! - [`assert_converged`]: after a clean full run, every table of every employer equals the
//!   simulator's truth, and the whole journal is a valid history (no duplicate rows);
//! - [`journal_violations`]: replays the journal per row (insert, update, soft delete, purge)
//!   and reports every step that is impossible (an insert of a live row, a delete of a deleted
//!   one...) and every row whose stored state differs from the replay;
//! - [`Spawned`]: an agent process to SIGKILL at a chosen moment;
//! - [`mutate`]: seeded random changes at the source between runs;
//! - [`FaultProxy`]: an in-process TCP proxy between the agent and the simulator that resets
//!   connections mid-body, accepts and never answers, or sends headers and then stalls;
//! - [`OwnCluster`]: a throw-away PostgreSQL cluster (initdb in a temp dir, its own port) that
//!   a test may stop and start; the shared server is never touched;
//! - [`hold_sqlite_exclusive`]: another holder of `BEGIN EXCLUSIVE` on the SQLite target.

#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbosync_agent::records::Entity;
use arbosync_agent::state::{Cursor, RetryEntry, StateStore};
use chrono::Days;
use loket_sim::{EmployeePatch, NewEmployee, SimConfig, SimHandle, Uuid, World};
use rand::Rng;
use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common_e2e::*;

// ------------------------------------------------------------------------------ invariants

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    Live,
    SoftDeleted,
}

/// Replays the whole journal row by row and compares the result with what is stored. Returns
/// one line per problem (empty = the journal is a valid, duplicate-free history of the tables).
///
/// Rules: `insert` only for a row that is not stored; `update` only for a live row, or for a
/// soft-deleted one when it names `deleted_at` (a revival); a soft delete (`["deleted_at"]`)
/// only of a live row; a purge (every column) of a stored row, which removes it. The sink purges
/// a row that is already soft-deleted without a second `delete` row (consumers were told it was
/// gone), so a soft-deleted row may also vanish silently (and later be inserted again).
pub async fn journal_violations(db: &Db) -> Vec<String> {
    let mut state: HashMap<(String, String), RowState> = HashMap::new();
    let mut problems = Vec::new();
    // `Db::journal` orders by `seq`, which PostgreSQL resolves to the selected text column
    // (`CAST(seq AS TEXT)` keeps the name): sort by the number here.
    let mut journal = db.journal(0).await;
    journal.sort_by_key(|r| r.seq);
    let history = |entity: &str, id: &str| -> String {
        journal
            .iter()
            .filter(|r| r.j.entity == entity && r.j.id == id)
            .map(|r| {
                format!(
                    "{}:{}{:?}@{}",
                    r.seq,
                    r.j.op,
                    r.j.fields,
                    &r.run_id[..8.min(r.run_id.len())]
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for row in &journal {
        let j = &row.j;
        let key = (j.entity.clone(), j.id.clone());
        let before = state.get(&key).copied();
        let soft = j.fields == ["deleted_at"];
        let after = match (j.op.as_str(), before) {
            ("insert", None | Some(RowState::SoftDeleted)) => Some(RowState::Live),
            ("update", Some(RowState::Live)) if !j.fields.is_empty() => Some(RowState::Live),
            ("update", Some(RowState::SoftDeleted))
                if j.fields.iter().any(|f| f == "deleted_at") =>
            {
                Some(RowState::Live)
            }
            ("delete", Some(RowState::Live)) if soft => Some(RowState::SoftDeleted),
            ("delete", Some(_)) if !soft => None,
            _ => {
                problems.push(format!(
                    "journal seq {}: {} {} {} {:?} on a row that is {:?}; its history: {}",
                    row.seq,
                    j.op,
                    j.entity,
                    j.id,
                    j.fields,
                    before,
                    history(&j.entity, &j.id)
                ));
                continue;
            }
        };
        match after {
            Some(s) => state.insert(key, s),
            None => state.remove(&key),
        };
    }
    let mut stored: HashMap<(String, String), RowState> = HashMap::new();
    for entity in Entity::ALL {
        let rows = db
            .query(&format!(
                "SELECT CAST(id AS TEXT), CAST(deleted_at AS TEXT) FROM {{s}}{}",
                entity.table()
            ))
            .await;
        for r in rows {
            let id = r[0].clone().unwrap_or_default();
            let s = if r[1].is_some() {
                RowState::SoftDeleted
            } else {
                RowState::Live
            };
            if stored
                .insert((entity.table().to_string(), id.clone()), s)
                .is_some()
            {
                problems.push(format!("{entity} {id} is stored twice"));
            }
        }
    }
    let mut keys: Vec<&(String, String)> = state.keys().chain(stored.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (j, s) = (state.get(key), stored.get(key));
        let silently_purged = j == Some(&RowState::SoftDeleted) && s.is_none();
        if j != s && !silently_purged {
            problems.push(format!(
                "{} {}: the journal says {j:?}, the table holds {s:?}",
                key.0, key.1
            ));
        }
    }
    problems
}

/// Asserts that the journal is a valid history of the stored rows.
pub async fn assert_journal_valid(db: &Db, what: &str) {
    let problems = journal_violations(db).await;
    assert!(
        problems.is_empty(),
        "{what}: the journal has {} problem(s) (duplicates or rows without history):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The rows every employer must hold according to the truth, for a database that has just
/// finished a clean full reconciliation (the scope is then exactly the source scope).
pub async fn expected_after_full(env: &Env) -> BTreeMap<Uuid, Model> {
    let world = env.handle().truth();
    let mut out = BTreeMap::new();
    for (id, opts) in &env.employers {
        let cw = env.db.case_watch(*id).await;
        let scope = source_scope(&world, *id, *opts, &cw);
        out.insert(*id, expected(&world, *id, *opts, scope.as_ref()));
    }
    out
}

/// Runs one clean `sync --once --full` (it must succeed), then asserts zero loss (every table of
/// every employer equals the truth), zero duplicates (the journal replays to exactly the stored
/// rows) and that no run is left `running`.
pub async fn assert_converged(env: &Env, what: &str) {
    let doc = env.sync_ok(&["--full"]).await;
    assert_eq!(doc["ok"], true, "{what}: the clean full run: {doc}");
    assert_matches_truth(env, what).await;
}

/// The database equals the truth for every employer (after a full run) and the journal is valid.
pub async fn assert_matches_truth(env: &Env, what: &str) {
    for (id, model) in expected_after_full(env).await {
        let live = env.db.live_model(id).await;
        let diff = model_diff(&model, &live);
        assert!(
            diff.is_empty(),
            "{what}: employer {id} differs from the truth ({}):\n{diff}",
            env.db.url()
        );
    }
    assert_journal_valid(&env.db, what).await;
    let running = env
        .db
        .scalar("SELECT CAST(COUNT(*) AS TEXT) FROM {s}sync_run WHERE status = 'running'")
        .await;
    assert_eq!(
        running.as_deref(),
        Some("0"),
        "{what}: a run is left running"
    );
}

/// The live rows of every configured employer.
pub async fn live_models(env: &Env) -> BTreeMap<Uuid, Model> {
    let mut out = BTreeMap::new();
    for (id, _) in &env.employers {
        out.insert(*id, env.db.live_model(*id).await);
    }
    out
}

// ------------------------------------------------------------------------------ state store

/// Cursors and retry entries, read from the sled store after the agent exited.
pub fn state_of(env: &Env) -> (BTreeMap<Uuid, Cursor>, BTreeMap<Uuid, Vec<RetryEntry>>) {
    let (store, _) = StateStore::open(env.sled_dir()).expect("open the state store");
    let cursors: BTreeMap<Uuid, Cursor> = store.cursors().expect("cursors").into_iter().collect();
    let mut retry = BTreeMap::new();
    for (id, _) in &env.employers {
        retry.insert(*id, store.retry_entries(*id).expect("retry entries"));
    }
    (cursors, retry)
}

/// The employer version in each cursor.
pub fn cursor_versions(env: &Env) -> BTreeMap<Uuid, i64> {
    state_of(env)
        .0
        .into_iter()
        .map(|(id, c)| (id, c.employer_version))
        .collect()
}

// ------------------------------------------------------------------------------ processes

/// A `sync --once` process whose output goes to files, to be killed at a chosen moment.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub started: Instant,
    pub out: PathBuf,
    pub err: PathBuf,
}

/// Starts `arbosync-agent <args> --config <config>` with `RUST_LOG=debug` and `envs`.
pub fn spawn_agent(env: &Env, args: &[&str], envs: &[(&str, &str)], tag: &str) -> Spawned {
    let out = env.dir.path().join(format!("{tag}.stdout"));
    let err = env.dir.path().join(format!("{tag}.stderr"));
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .arg("--config")
        .arg(&env.config)
        .env("RUST_LOG", "debug")
        .env_remove("ARBOSYNC_FAILPOINT")
        .env_remove("ARBOSYNC_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Spawned {
        child: cmd.spawn().expect("the agent binary starts"),
        started: Instant::now(),
        out,
        err,
    }
}

/// How a [`Spawned`] process ended.
#[derive(Debug)]
pub enum Ended {
    /// SIGKILLed after this long.
    Killed(Duration),
    /// Exited by itself with this code after this long.
    Exited(Option<i32>, Duration),
}

impl Spawned {
    /// SIGKILLs the process at `after` unless it exited before.
    pub async fn kill_after(&mut self, after: Duration) -> Ended {
        let deadline = self.started + after;
        tokio::select! {
            status = self.child.wait() => {
                let status = status.expect("wait for the agent");
                Ended::Exited(status.code(), self.started.elapsed())
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                // `start_kill` sends SIGKILL on Unix.
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                Ended::Killed(self.started.elapsed())
            }
        }
    }

    /// Waits for the process (at most `limit`, then SIGKILL and panic).
    pub async fn wait(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => (
                status.expect("wait for the agent").code(),
                self.started.elapsed(),
            ),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                panic!(
                    "the agent did not finish within {limit:?}:\n{}",
                    self.output()
                );
            }
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// stdout and stderr, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// The `--json` document on stdout (`Null` when there is none).
    pub fn doc(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or(serde_json::Value::Null)
    }
}

/// Whether every employer of a `--json` document ended needing a new consent (the refresh
/// token was rotated by Loket but never saved: a kill between the token response and the save).
pub fn locked_out(doc: &serde_json::Value) -> bool {
    doc["employers"].as_array().is_some_and(|list| {
        !list.is_empty()
            && list.iter().all(|o| {
                o["needs_reconnect"] == true
                    && o["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("needs a new consent"))
            })
    })
}

/// What an operator does after a lockout: a new consent (here: a fresh refresh token from the
/// simulator, stored with `connect --refresh-token-stdin`).
pub async fn reconnect(env: &Env) {
    let token = env.handle().mint_refresh_token();
    let out = env
        .agent(
            &["connect", "sim", "--refresh-token-stdin"],
            &[],
            Some(&token),
        )
        .await;
    assert!(out.status.success(), "connect failed: {}", text(&out));
}

// ------------------------------------------------------------------------------ source changes

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        Some(&items[rng.random_range(0..items.len())])
    }
}

/// Makes 1 to `max` random changes at the source for the given employers (seeded): new sick
/// reports, partial and full recoveries, withdrawn absences, hours and department changes,
/// renamed departments, renamed people, new employees and deleted employments. Changes the
/// simulator refuses (an invalid date, say) are skipped. Returns how many were made.
pub fn mutate(h: &SimHandle, rng: &mut StdRng, employers: &[Uuid], max: usize) -> usize {
    let n = rng.random_range(1..=max.max(1));
    let mut made = 0;
    for _ in 0..n {
        let world = h.truth();
        let today = world.today;
        let Some(&er_id) = pick(rng, employers) else {
            return made;
        };
        let er = sim_employer(&world, er_id);
        let people: Vec<Uuid> = er.employee_ids.clone();
        let open: Vec<Uuid> = people
            .iter()
            .filter_map(|p| world.employees.get(p))
            .flat_map(|e| e.absence_ids.iter())
            .filter(|a| {
                world
                    .absences
                    .get(a)
                    .is_some_and(|a| a.end_of_absence.is_none())
            })
            .copied()
            .collect();
        let employments: Vec<Uuid> = er
            .employment_ids
            .iter()
            .filter(|e| {
                world
                    .employments
                    .get(e)
                    .is_some_and(|e| e.end_date.is_none() && e.start_date < today)
            })
            .copied()
            .collect();
        let roll = rng.random_range(0..100);
        let ok = match roll {
            0..=29 => {
                // Someone without an open absence, employed on the first day of absence (the
                // absence calendar, and so the scope, goes by employment).
                let first = today - Days::new(rng.random_range(0..5));
                let healthy: Vec<Uuid> = people
                    .iter()
                    .filter(|p| {
                        world.employees.get(p).is_some_and(|e| {
                            e.absence_ids
                                .iter()
                                .all(|a| world.absences[a].end_of_absence.is_some())
                                && e.employment_ids.iter().any(|x| {
                                    world.employments.get(x).is_some_and(|x| {
                                        x.start_date <= first
                                            && x.end_date.is_none_or(|end| end >= today)
                                    })
                                })
                        })
                    })
                    .copied()
                    .collect();
                pick(rng, &healthy).is_some_and(|p| h.create_absence(*p, first, None, None).is_ok())
            }
            30..=44 => pick(rng, &open).is_some_and(|a| {
                let pct = rng.random_range(1..=99);
                h.add_absence_progress(*a, today, pct).is_ok()
            }),
            45..=59 => pick(rng, &open).is_some_and(|a| h.close_absence(*a, today, None).is_ok()),
            60..=74 => pick(rng, &employments).is_some_and(|e| {
                let hours = f64::from(rng.random_range(8..=40));
                h.add_working_hours(*e, today, hours).is_ok()
            }),
            75..=79 => pick(rng, &er.departments).is_some_and(|d| {
                let name = format!("Afdeling {}", rng.random_range(0..10_000));
                h.rename_department(d.id, &name).is_ok()
            }),
            80..=89 => pick(rng, &people).is_some_and(|p| {
                let patch = EmployeePatch {
                    last_name: Some(format!("Achternaam{}", rng.random_range(0..10_000))),
                    ..Default::default()
                };
                h.patch_employee(*p, patch).is_ok()
            }),
            90..=94 => h
                .add_employee(
                    er_id,
                    NewEmployee {
                        first_name: None,
                        last_name: None,
                        start_date: Some(today - Days::new(rng.random_range(0..30))),
                    },
                )
                .is_ok(),
            95..=96 => {
                // Only of people without absences: an absence belongs to an employment.
                let free: Vec<Uuid> = employments
                    .iter()
                    .filter(|e| {
                        world.employments.get(e).is_some_and(|e| {
                            world
                                .employees
                                .get(&e.employee_id)
                                .is_some_and(|p| p.absence_ids.is_empty())
                        })
                    })
                    .copied()
                    .collect();
                pick(rng, &free).is_some_and(|e| h.delete_employment(*e).is_ok())
            }
            _ => pick(rng, &open).is_some_and(|a| h.delete_absence(*a).is_ok()),
        };
        made += usize::from(ok);
    }
    made
}

/// Someone without an open absence, with an employment covering today.
pub fn healthy_person(world: &World, employer: Uuid, skip: &[Uuid]) -> Uuid {
    let today = world.today;
    sim_employer(world, employer)
        .employee_ids
        .iter()
        .filter(|id| !skip.contains(id))
        .filter_map(|id| world.employees.get(id))
        .find(|e| {
            e.absence_ids
                .iter()
                .all(|a| world.absences[a].end_of_absence.is_some())
                && e.employment_ids.iter().any(|x| {
                    let emp = &world.employments[x];
                    emp.start_date < today - Days::new(30) && emp.end_date.is_none()
                })
        })
        .map(|e| e.id)
        .expect("a healthy person")
}

/// An open employment of `person` that started before today.
pub fn open_employment_of(world: &World, person: Uuid) -> Uuid {
    let today = world.today;
    world.employees[&person]
        .employment_ids
        .iter()
        .copied()
        .find(|x| {
            let e = &world.employments[x];
            e.end_date.is_none()
                && e.working_hours.iter().all(|w| w.start_date < today)
                && e.start_date < today
        })
        .expect("an open employment")
}

/// A seed from `var` or from the clock, printed so a failure can be replayed.
pub fn seed_from_env(var: &str, what: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{what}: seed {seed} (replay with {var}={seed})");
    seed
}

// ------------------------------------------------------------------------------ configuration

/// Rewrites the configuration file with `f` (the employers stay as configured).
pub fn edit_config(env: &Env, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&env.config).expect("read the configuration");
    std::fs::write(&env.config, f(text)).expect("write the configuration");
}

/// Points the connection's `api_url` at `url` (a proxy in front of the simulator).
pub fn point_api_at(env: &Env, url: &str) {
    let from = format!("api_url = \"{}\"", env.sim.api_url);
    let to = format!("api_url = \"{url}\"");
    edit_config(env, |t| {
        assert!(t.contains(&from), "the configuration names the simulator");
        t.replace(&from, &to)
    });
}

/// The simulator with `employees` people per employer and the given page size.
pub fn sim_sized(seed: u64, employers: usize, employees: usize, page: usize) -> SimConfig {
    SimConfig {
        max_page_size: page,
        ..sim_config(seed, employers, employees)
    }
}

// ------------------------------------------------------------------------------ TCP fault proxy

/// What the proxy does to one request's exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFault {
    /// Forward the response head and this many body bytes, then reset the connection (RST).
    ResetMidBody(usize),
    /// Take the request and never answer (the connection stays open).
    Hang,
    /// Forward the response head, then nothing more (the connection stays open).
    HeadersThenStall,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct ProxyEvent {
    pub at: Instant,
    /// The request target (path and query).
    pub target: String,
    pub fault: Option<ProxyFault>,
}

#[derive(Default)]
struct ProxyPlan {
    /// (substring of the request target, fault, remaining hits; 0 = until cleared)
    faults: Vec<(String, ProxyFault, u32)>,
    events: Vec<ProxyEvent>,
}

impl ProxyPlan {
    fn take(&mut self, target: &str) -> Option<ProxyFault> {
        let idx = self
            .faults
            .iter()
            .position(|(s, _, _)| target.contains(s.as_str()))?;
        let fault = self.faults[idx].1;
        if self.faults[idx].2 > 0 {
            self.faults[idx].2 -= 1;
            if self.faults[idx].2 == 0 {
                self.faults.remove(idx);
            }
        }
        Some(fault)
    }
}

/// A TCP proxy between the agent and the simulator (HTTP/1.1, requests are recognised by their
/// request line). Faults are armed per request-target substring.
pub struct FaultProxy {
    pub addr: SocketAddr,
    plan: Arc<Mutex<ProxyPlan>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultProxy {
    /// A proxy in front of the simulator whose API is at `api_url` (`http://127.0.0.1:P/v2`).
    pub async fn start(api_url: &str) -> FaultProxy {
        let url = url::Url::parse(api_url).expect("the simulator's URL");
        let upstream: SocketAddr = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().expect("port")
        )
        .parse()
        .expect("a socket address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let plan = Arc::new(Mutex::new(ProxyPlan::default()));
        let p = Arc::clone(&plan);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = Arc::clone(&p);
                tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(upstream).await {
                        serve_connection(client, up, p).await;
                    }
                });
            }
        });
        FaultProxy { addr, plan, task }
    }

    /// `http://127.0.0.1:P/v2`, to put in the configuration.
    pub fn api_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// Applies `fault` to the next `times` requests whose target contains `target` (0 = all).
    pub fn arm(&self, target: &str, fault: ProxyFault, times: u32) {
        lock(&self.plan)
            .faults
            .push((target.to_string(), fault, times));
    }

    pub fn disarm(&self) {
        lock(&self.plan).faults.clear();
    }

    pub fn events(&self) -> Vec<ProxyEvent> {
        lock(&self.plan).events.clone()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Makes the next close of `s` a reset (SO_LINGER 0).
fn set_reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s` and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn serve_connection(mut client: TcpStream, mut up: TcpStream, plan: Arc<Mutex<ProxyPlan>>) {
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut ubuf = vec![0u8; 64 * 1024];
    let mut current: Option<ProxyFault> = None;
    // Response bytes of the current request forwarded so far, and where its head ended.
    let mut head: Vec<u8> = Vec::new();
    let mut head_end: Option<usize> = None;
    let mut body_sent = 0usize;
    let mut stalled = false;
    loop {
        tokio::select! {
            r = client.read(&mut cbuf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let chunk = &cbuf[..n];
                if chunk.starts_with(b"GET ") || chunk.starts_with(b"POST ") {
                    let line_end = find(chunk, b"\r\n").unwrap_or(n);
                    let line = String::from_utf8_lossy(&chunk[..line_end]).to_string();
                    let target = line.split(' ').nth(1).unwrap_or("").to_string();
                    let mut p = lock(&plan);
                    current = p.take(&target);
                    p.events.push(ProxyEvent { at: Instant::now(), target, fault: current });
                    drop(p);
                    head.clear();
                    head_end = None;
                    body_sent = 0;
                    stalled = matches!(current, Some(ProxyFault::Hang));
                }
                if matches!(current, Some(ProxyFault::Hang)) {
                    continue;
                }
                if up.write_all(chunk).await.is_err() {
                    return;
                }
            }
            r = up.read(&mut ubuf), if !stalled => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let mut chunk = &ubuf[..n];
                match current {
                    None | Some(ProxyFault::Hang) => {
                        if client.write_all(chunk).await.is_err() { return; }
                    }
                    Some(fault) => {
                        if head_end.is_none() {
                            let before = head.len();
                            head.extend_from_slice(chunk);
                            if let Some(pos) = find(&head, b"\r\n\r\n") {
                                let end = pos + 4;
                                head_end = Some(end);
                                let head_part = end - before;
                                if client.write_all(&chunk[..head_part]).await.is_err() { return; }
                                chunk = &chunk[head_part..];
                            } else {
                                if client.write_all(chunk).await.is_err() { return; }
                                continue;
                            }
                        }
                        match fault {
                            ProxyFault::HeadersThenStall => {
                                stalled = true;
                            }
                            ProxyFault::ResetMidBody(limit) => {
                                let room = limit.saturating_sub(body_sent).min(chunk.len());
                                if room > 0 && client.write_all(&chunk[..room]).await.is_err() {
                                    return;
                                }
                                body_sent += room;
                                if body_sent >= limit {
                                    let _ = client.flush().await;
                                    set_reset_on_close(&client);
                                    set_reset_on_close(&up);
                                    return;
                                }
                            }
                            ProxyFault::Hang => {}
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------ own PostgreSQL

#[path = "../pg_cluster/mod.rs"]
mod pg_cluster;
pub use pg_cluster::OwnCluster;

/// Like `Env::start` on PostgreSQL, but on `cluster` (a database created there).
pub async fn env_on_cluster(cluster: &OwnCluster, sim: SimConfig, opts: &[Opts]) -> Env {
    let sim = loket_sim::start(sim).await.expect("the simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("arbosync_own_{}", Uuid::new_v4().simple());
    cluster
        .client("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the database on the own cluster");
    let db = Db::Postgres {
        name: name.clone(),
        client: cluster.client(&name).await,
    };
    let env = Env::assemble(sim, db, dir, opts);
    let shared = env.db.url();
    let own = cluster.url(&name);
    edit_config(&env, |t| t.replace(&shared, &own));
    arbosync_agent::sink::Sink::connect(&own, PG_SCHEMA)
        .await
        .expect("the schema is created on the own cluster");
    env.connect_sim().await;
    env
}

/// Replaces the test's own connection to the database (after the cluster restarted).
pub async fn reconnect_db(env: &mut Env, cluster: &OwnCluster) {
    let Db::Postgres { name, .. } = &env.db else {
        panic!("reconnect_db is for PostgreSQL");
    };
    let name = name.clone();
    let client = cluster.client(&name).await;
    // The old value's Drop only drops a same-named database on the shared server: none exists.
    env.db = Db::Postgres { name, client };
}

// ------------------------------------------------------------------------------ SQLite lock

/// Holds `BEGIN EXCLUSIVE` on the SQLite file for `hold` on its own thread (another writer, as
/// another process would be); the returned handle ends when the lock is released. The lock is
/// taken before this returns.
pub fn hold_sqlite_exclusive(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).expect("open the SQLite file");
        conn.busy_timeout(Duration::from_secs(30))
            .expect("busy timeout");
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("take the exclusive lock");
        let _ = tx.send(());
        std::thread::sleep(hold);
        conn.execute_batch("ROLLBACK").expect("release the lock");
    });
    rx.recv().expect("the lock was taken");
    handle
}

// ------------------------------------------------------------------------------ waiting

/// Polls `f` every 5 ms until it is true or `limit` passes; returns whether it became true.
pub async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// A short description of an arrival list, for failure messages.
pub fn describe_arrivals(a: &[loket_sim::Arrival]) -> String {
    a.iter()
        .map(|x| format!("{} {}?{} -> {}", x.at_ms, x.path, x.query, x.status))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The gaps between consecutive items, in milliseconds.
pub fn gaps_ms(times: &[u64]) -> Vec<u64> {
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect()
}
