//! The service end to end: the real `arbosync-agent run` and `arbosync` binaries, the simulator
//! and SQLite. Schedules, manual runs, pause across a restart, SIGTERM mid-run, SIGHUP reloads,
//! a revoked connection, socket abuse, socket permissions, and log files (bounded, no canaries).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod tmpfs;

const AGENT: &str = env!("CARGO_BIN_EXE_arbosync-agent");
const CANARY_BSN: &str = "999999990";
const CANARY_COMMENT: &str = "CANARY-COMMENT-svc-51c2";

/// The `arbosync` CLI, built next to the agent by `cargo test --workspace`.
fn cli_bin() -> PathBuf {
    let p = Path::new(AGENT).with_file_name("arbosync");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo test --workspace` does)",
        p.display()
    );
    p
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    db: PathBuf,
    logs: PathBuf,
    sims: Vec<loket_sim::RunningSim>,
}

#[derive(Clone)]
struct Emp {
    id: String,
    connection: &'static str,
    extra: &'static str,
}

impl Env {
    async fn new(sims: Vec<loket_sim::SimConfig>) -> Env {
        let mut started = Vec::new();
        for cfg in sims {
            started.push(loket_sim::start(cfg).await.expect("simulator starts"));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        Env {
            config: dir.path().join("agent.toml"),
            socket: dir.path().join("run").join("agent.sock"),
            db: dir.path().join("arbodienst.db"),
            logs: dir.path().join("logs"),
            dir,
            sims: started,
        }
    }

    fn write_config(&self, interval: &str, employers: &[Emp], agent_extra: &str) {
        let mut text = format!(
            "[agent]\nstate_dir = \"{}\"\nsocket = \"{}\"\nlog_dir = \"{}\"\ninterval = \"{interval}\"\nfull_reconcile_interval = \"1h\"\n{agent_extra}\n\n[database]\nurl = \"sqlite://{}\"\n",
            self.dir.path().join("state").display(),
            self.socket.display(),
            self.logs.display(),
            self.db.display(),
        );
        for (i, sim) in self.sims.iter().enumerate() {
            text.push_str(&format!(
                "\n[[connection]]\nname = \"sim{i}\"\napi_url = \"{}\"\noauth_url = \"{}\"\nclient_id = \"{}\"\nrequests_per_second = 500.0\n",
                sim.api_url, sim.oauth_url, sim.client_id
            ));
        }
        for e in employers {
            text.push_str(&format!(
                "\n[[employer]]\nid = \"{}\"\nconnection = \"{}\"\nname = \"Employer {}\"\nactive = true\n{}\n",
                e.id,
                e.connection,
                &e.id[..8],
                e.extra
            ));
        }
        std::fs::write(&self.config, text).expect("write config");
    }

    fn connect(&self, connection: &str, token: &str) {
        let mut child = Command::new(AGENT)
            .args(["connect", connection, "--refresh-token-stdin", "--config"])
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("connect starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("write token");
        let out = child.wait_with_output().expect("connect ends");
        assert!(out.status.success(), "connect failed: {}", text(&out));
    }

    fn start(&self) -> Agent {
        self.start_with_env(&[])
    }

    fn start_with_env(&self, env: &[(&str, String)]) -> Agent {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.stderr"))
            .expect("stderr file");
        let child = Command::new(AGENT)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("agent starts");
        let agent = Agent { child };
        wait_until(Duration::from_secs(20), "the control socket", || {
            UnixStream::connect(&self.socket).is_ok()
        });
        agent
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(cli_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("arbosync runs")
    }

    fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    fn employer(&self, id: &str) -> Value {
        self.status()["employers"]
            .as_array()
            .expect("employers")
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("employer {id} not in status"))
    }

    fn runs_of(&self, id: &str) -> usize {
        self.employer(id)["recent_runs"]
            .as_array()
            .map_or(0, Vec::len)
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).expect("open the SQLite target")
    }

    /// Journal rows that would double a change: an insert recorded twice for one row.
    fn duplicate_inserts(&self) -> i64 {
        self.db()
            .query_row(
                "SELECT count(*) FROM (SELECT entity, entity_id FROM mutation WHERE op = 'insert' GROUP BY entity, entity_id HAVING count(*) > 1)",
                [],
                |r| r.get(0),
            )
            .expect("query the journal")
    }

    /// Everything the test run left on disk and in output, for canary greps.
    fn all_text(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    out.push((p, bytes));
                }
            }
        }
        out
    }
}

struct Agent {
    child: Child,
}

impl Agent {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, and the exit status and how long the exit took.
    fn stop(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        self.signal("-TERM");
        let deadline = started + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not stop within 40 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sim_config(seed: u64, employers: usize, latency_ms: u64) -> loket_sim::SimConfig {
    loket_sim::SimConfig {
        seed,
        employers,
        employees_per_employer: 8,
        latency_ms,
        max_page_size: 5,
        ..Default::default()
    }
}

fn emps(sim: &loket_sim::RunningSim, connection: &'static str) -> Vec<Emp> {
    sim.employer_ids
        .iter()
        .map(|id| Emp {
            id: id.clone(),
            connection,
            extra: "",
        })
        .collect()
}

fn last_outcome(e: &Value) -> String {
    e["recent_runs"][0]["outcome"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_manual_runs_and_pause_survive_a_restart() {
    let env = Env::new(vec![sim_config(11, 2, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    env.write_config("3s", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    let (a, b) = (employers[0].id.clone(), employers[1].id.clone());

    // Every active employer runs on its own, and status shows last and next run.
    wait_until(Duration::from_secs(30), "first runs", || {
        env.status()["employers"]
            .as_array()
            .is_some_and(|es| es.iter().all(|e| last_outcome(e) == "ok"))
    });
    let e = env.employer(&a);
    assert_eq!(e["health"], "ok");
    assert!(e["next_run_at"].is_string(), "next run shown: {e}");
    // After a sync the name is Loket's, and the live rows per table are shown.
    let truth = env.sims[0].state().truth();
    let loket_name = truth
        .employers
        .iter()
        .find(|x| x.id.to_string() == a)
        .map(|x| x.company_name.clone())
        .expect("employer in truth");
    assert_eq!(e["name"], loket_name.as_str());
    assert!(
        e["entity_counts"]["employee"].as_u64().unwrap_or(0) > 0,
        "rows per table: {e}"
    );
    // And again on the interval, without being asked.
    let before = env.runs_of(&b);
    wait_until(Duration::from_secs(30), "a scheduled second run", || {
        env.runs_of(&b) > before
    });

    // `sync --wait` runs one now and exits with its result.
    let out = env.cli(&["sync", &a, "--wait", "--json"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["runs"][0]["employer"], a.as_str());

    // Pause holds across a restart.
    let out = env.cli(&["pause", &a]);
    assert!(out.status.success(), "pause: {}", text(&out));
    assert_eq!(env.employer(&a)["health"], "paused");
    let (status, _) = agent.stop();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    let agent = env.start();
    let paused_runs = env.runs_of(&a);
    assert_eq!(env.employer(&a)["health"], "paused");
    assert!(env.employer(&a)["next_run_at"].is_null());
    let b_runs = env.runs_of(&b);
    wait_until(
        Duration::from_secs(30),
        "the other employer to keep running",
        || env.runs_of(&b) > b_runs,
    );
    assert_eq!(
        env.runs_of(&a),
        paused_runs,
        "a paused employer did not run"
    );

    // Resume starts it again.
    let out = env.cli(&["resume", &a]);
    assert!(out.status.success(), "resume: {}", text(&out));
    wait_until(Duration::from_secs(30), "a run after resume", || {
        env.runs_of(&a) > paused_runs
    });
    let (status, _) = agent.stop();
    assert!(status.success());
    assert_eq!(env.duplicate_inserts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_in_time_and_the_next_start_completes_without_duplicates() {
    // 150 ms per request and 20 employees make the first run take several seconds, longer
    // than the 1 s grace: the run is abandoned mid-way.
    let mut cfg = sim_config(12, 1, 150);
    cfg.employees_per_employer = 20;
    let env = Env::new(vec![cfg]).await;
    let mut employers = emps(&env.sims[0], "sim0");
    employers[0].extra = "all_employments = true";
    env.write_config("1h", &employers, "shutdown_grace = \"1s\"");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    let id = employers[0].id.clone();
    wait_until(Duration::from_secs(20), "the run to start", || {
        env.employer(&id)["health"] == "running"
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = agent.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        took < Duration::from_secs(8),
        "stopped after {took:?}, well over the 1 s grace"
    );
    let stderr = std::fs::read_to_string(env.dir.path().join("agent.stderr")).expect("stderr");
    assert!(
        stderr.contains("abandoning"),
        "the run was abandoned, not finished"
    );

    let agent = env.start();
    wait_until(Duration::from_secs(90), "the completing run", || {
        last_outcome(&env.employer(&id)) == "ok"
    });
    // A full reconciliation finds nothing missing.
    let out = env.cli(&["sync", &id, "--full", "--wait", "--json"]);
    assert!(out.status.success(), "full reconciliation: {}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let run = &doc["runs"][0]["run"];
    assert_eq!(
        (
            run["inserted"].as_u64(),
            run["updated"].as_u64(),
            run["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "the interrupted run left something out: {run}"
    );
    let (status, _) = agent.stop();
    assert!(status.success());
    assert_eq!(env.duplicate_inserts(), 0, "no change journalled twice");
    let unfinished: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM sync_run WHERE finished_at IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("sync_run");
    assert_eq!(unfinished, 0, "the abandoned run is closed in sync_run");
    let employments: i64 = env
        .db()
        .query_row("SELECT count(*) FROM employment", [], |r| r.get(0))
        .expect("count");
    let truth = env.sims[0].state().truth();
    assert_eq!(
        employments as usize,
        truth.employments.len(),
        "every employment arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_employers_applies_option_changes_and_keeps_a_good_config_over_a_bad_one() {
    let env = Env::new(vec![sim_config(13, 2, 0)]).await;
    let all = emps(&env.sims[0], "sim0");
    let mut first = all[0].clone();
    first.extra = "salary = true\nall_employments = true";
    env.write_config("1h", &[first.clone()], "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    wait_until(Duration::from_secs(30), "the first employer", || {
        last_outcome(&env.employer(&first.id)) == "ok"
    });
    let wages = |env: &Env| -> i64 {
        env.db()
            .query_row("SELECT count(*) FROM employment_salary_period", [], |r| {
                r.get(0)
            })
            .expect("count salary periods")
    };
    assert!(wages(&env) > 0, "salary synced while allowed");

    // A broken file is reported and the running config stays.
    std::fs::write(&env.config, "[agent]\nnot valid = = toml\n").expect("write");
    agent.signal("-HUP");
    wait_until(Duration::from_secs(10), "the reload error", || {
        env.status()["errors"].as_array().is_some_and(|e| {
            e.iter().any(|x| {
                x["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("reload failed"))
            })
        })
    });
    assert_eq!(env.status()["employers"].as_array().map(Vec::len), Some(1));

    // Add the second employer and switch salary off for the first.
    let mut changed = first.clone();
    changed.extra = "all_employments = true";
    env.write_config("1h", &[changed, all[1].clone()], "");
    agent.signal("-HUP");
    wait_until(
        Duration::from_secs(30),
        "the added employer's first run",
        || {
            env.status()["employers"]
                .as_array()
                .is_some_and(|es| es.len() == 2 && es.iter().all(|e| last_outcome(e) == "ok"))
        },
    );
    wait_until(Duration::from_secs(30), "the salary purge", || {
        wages(&env) == 0
    });
    let purged: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM mutation WHERE entity = 'employment_salary_period' AND op = 'delete'",
            [],
            |r| r.get(0),
        )
        .expect("journal");
    assert!(purged > 0, "the purge is journalled");
    let (status, _) = agent.stop();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_connection_needs_reconnect_while_others_keep_syncing() {
    let env = Env::new(vec![sim_config(14, 1, 0), sim_config(15, 1, 0)]).await;
    let mut employers = emps(&env.sims[0], "sim0");
    employers.extend(emps(&env.sims[1], "sim1"));
    env.write_config("2s", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    env.connect("sim1", &env.sims[1].refresh_token);
    let agent = env.start();
    let (dead, alive) = (employers[0].id.clone(), employers[1].id.clone());
    wait_until(Duration::from_secs(30), "first runs", || {
        last_outcome(&env.employer(&dead)) == "ok" && last_outcome(&env.employer(&alive)) == "ok"
    });

    let h = env.sims[0].state();
    h.revoke_refresh_tokens();
    h.expire_access_tokens();
    wait_until(Duration::from_secs(30), "needs_reconnect", || {
        env.employer(&dead)["health"] == "needs_reconnect"
    });
    let dead_runs = env.runs_of(&dead);
    let alive_runs = env.runs_of(&alive);
    wait_until(
        Duration::from_secs(30),
        "the other connection to keep syncing",
        || env.runs_of(&alive) >= alive_runs + 2,
    );
    assert_eq!(env.runs_of(&dead), dead_runs, "no runs without a consent");

    // The error survives a restart (the Errors tab is filled from the run history), and so does
    // the need for a new consent.
    let dead_errors = |env: &Env| -> Vec<String> {
        env.status()["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["employer"].as_str() == Some(dead.as_str()))
            .filter_map(|x| x["message"].as_str().map(str::to_string))
            .collect()
    };
    let before = dead_errors(&env);
    assert!(!before.is_empty(), "the rejected token is an error");
    let (status, _) = agent.stop();
    assert!(status.success());
    let agent = env.start();
    wait_until(Duration::from_secs(15), "the restarted agent", || {
        env.employer(&dead)["health"] == "needs_reconnect"
    });
    assert_eq!(dead_errors(&env), before, "the errors survived the restart");

    // A new consent (written while the agent runs) resumes it.
    env.connect("sim0", &h.mint_refresh_token());
    wait_until(Duration::from_secs(30), "the reconnected employer", || {
        let e = env.employer(&dead);
        e["health"] == "ok" && env.runs_of(&dead) > dead_runs
    });
    let (status, _) = agent.stop();
    assert!(status.success());
}

/// Sends raw bytes as one length-delimited frame (or as given) and returns what came back.
fn raw_exchange(socket: &Path, payload: &[u8], framed: bool) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    if framed {
        s.write_all(&(payload.len() as u32).to_be_bytes())
            .expect("len");
    }
    let _ = s.write_all(payload);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn frames(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if bytes.len() < 4 + n {
            break;
        }
        out.push(serde_json::from_slice(&bytes[4..4 + n]).expect("the agent sends JSON"));
        bytes = &bytes[4 + n..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_abuse_gets_errors_and_the_agent_stays_up() {
    let env = Env::new(vec![sim_config(16, 1, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    env.write_config("1h", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();

    let garbage = frames(&raw_exchange(&env.socket, b"\x00\x01not json at all", true));
    assert_eq!(garbage[0]["type"], "error", "{garbage:?}");

    let mut huge = (64u32 * 1024 * 1024).to_be_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let oversized = frames(&raw_exchange(&env.socket, &huge, false));
    assert_eq!(oversized[0]["type"], "error", "{oversized:?}");
    assert!(
        oversized[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("limit")
    );

    let old = frames(&raw_exchange(
        &env.socket,
        br#"{"type":"hello","protocol_version":999,"client":"future"}"#,
        true,
    ));
    assert_eq!(old[0]["type"], "refused");
    assert_eq!(old[0]["reason"], "protocol_mismatch");

    let no_hello = frames(&raw_exchange(
        &env.socket,
        br#"{"type":"request","id":1,"request":{"op":"snapshot"}}"#,
        true,
    ));
    assert_eq!(no_hello[0]["type"], "refused");
    assert_eq!(no_hello[0]["reason"], "hello_expected");

    // Half a frame, then the write side closed.
    let _ = raw_exchange(&env.socket, b"\x00\x00\x01\x00{\"type\"", false);
    // A client that connects and says nothing, left open while others work.
    let idle = UnixStream::connect(&env.socket).expect("idle connect");

    let out = env.cli(&["status"]);
    assert!(out.status.success(), "status after abuse: {}", text(&out));
    drop(idle);
    let (status, _) = agent.stop();
    assert!(status.success());
}

fn setpriv(env: &Env, args: &[&str], cli: &[&str]) -> Output {
    assert!(
        Path::new("/usr/bin/setpriv").exists() || Path::new("/bin/setpriv").exists(),
        "this test needs setpriv (util-linux) to act as another user"
    );
    Command::new("setpriv")
        .args(args)
        .arg(cli_bin())
        .arg("--socket")
        .arg(&env.socket)
        .args(cli)
        .output()
        .expect("setpriv runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_access_follows_peer_credentials() {
    let own_uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(
        own_uid.ok(),
        Some(0),
        "this test switches users with setpriv and must run as root (CI does)"
    );
    let env = Env::new(vec![sim_config(17, 1, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    let id = employers[0].id.clone();
    // The test directory must be traversable for the other user to reach the socket at all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::create_dir_all(env.socket.parent().expect("dir")).expect("mkdir");
    std::fs::set_permissions(
        env.socket.parent().expect("dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    env.write_config(
        "1h",
        &employers,
        "read_users = [\"nobody\"]\nadmin_users = [0]\nadmin_groups = [4242]",
    );
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    let mode = std::fs::metadata(&env.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "socket mode");

    // nobody, outside the socket's group: the file mode keeps it out.
    let out = setpriv(
        &env,
        &["--reuid=nobody", "--regid=nogroup", "--clear-groups"],
        &["status"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no permission"), "{}", text(&out));

    // nobody with the socket's group: a reader per the config, but no admin.
    let out = setpriv(
        &env,
        &["--reuid=nobody", "--regid=0", "--clear-groups"],
        &["status", "--json"],
    );
    assert!(out.status.success(), "read as nobody: {}", text(&out));
    let out = setpriv(
        &env,
        &["--reuid=nobody", "--regid=0", "--clear-groups"],
        &["pause", &id],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not permitted"), "{}", text(&out));

    // Another user with the group but on no list is refused by the agent itself.
    let out = setpriv(
        &env,
        &["--reuid=daemon", "--regid=0", "--clear-groups"],
        &["status"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("may not use this agent"),
        "{}",
        text(&out)
    );

    // Admins (root here) may.
    let out = env.cli(&["pause", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let (status, _) = agent.stop();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_are_bounded_and_hold_no_canaries() {
    let env = Env::new(vec![sim_config(18, 1, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    // Old rolling files from earlier days: the agent prunes them to its bound at start.
    std::fs::create_dir_all(&env.logs).expect("logs dir");
    for day in 1..=25 {
        std::fs::write(
            env.logs
                .join(format!("arbosync-agent.2026-01-{day:02}.log")),
            "old\n",
        )
        .expect("old log");
    }
    let h = env.sims[0].state();
    let world = h.truth();
    for e in world.employees.values() {
        h.patch_employee(
            e.id,
            loket_sim::EmployeePatch {
                bsn: Some(CANARY_BSN.into()),
                ..Default::default()
            },
        )
        .expect("canary bsn");
    }
    let person = world.employees.values().next().expect("an employee");
    h.create_absence(person.id, world.today, None, Some(CANARY_COMMENT.into()))
        .expect("canary comment");
    env.write_config("2s", &employers, "log_level = \"trace\"");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    let id = employers[0].id.clone();
    wait_until(Duration::from_secs(30), "two runs", || {
        env.runs_of(&id) >= 2
    });
    let out = env.cli(&["status", "--json"]);
    let status_text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, _) = agent.stop();
    assert!(status.success());

    let logs: Vec<_> = std::fs::read_dir(&env.logs)
        .expect("logs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        logs.len() <= arbosync_agent::logging::MAX_LOG_FILES,
        "{} log files: {logs:?}",
        logs.len()
    );
    let today = logs
        .iter()
        .any(|n| n.starts_with("arbosync-agent.") && !n.contains("2026-01-"));
    assert!(today, "today's log file exists: {logs:?}");

    let token = env.sims[0].refresh_token.clone();
    for canary in [CANARY_BSN, CANARY_COMMENT, token.as_str()] {
        assert!(!status_text.contains(canary), "status printed a canary");
        for (path, bytes) in env.all_text() {
            let hit = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!hit, "canary {canary:?} found in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_gets_ready_status_watchdog_and_stopping() {
    let env = Env::new(vec![sim_config(19, 1, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    env.write_config("1h", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let notify_path = env.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // A 1 s watchdog: the agent must ping at least every 0.5 s.
    let agent = env.start_with_env(&[
        ("NOTIFY_SOCKET", notify_path.display().to_string()),
        ("WATCHDOG_USEC", "1000000".to_string()),
    ]);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline
        && !(seen.contains("READY=1") && seen.matches("WATCHDOG=1").count() >= 3)
    {
        if let Ok(n) = notify.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    assert!(seen.contains("READY=1"), "READY sent: {seen}");
    assert!(seen.contains("STATUS="), "STATUS sent: {seen}");
    assert!(
        seen.matches("WATCHDOG=1").count() >= 3,
        "watchdog pings: {seen}"
    );
    let (status, _) = agent.stop();
    assert!(status.success());
    let mut rest = String::new();
    while let Ok(n) = notify.recv(&mut buf) {
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains("STOPPING=1"), "STOPPING sent: {rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_newer_release_makes_the_service_exit_75_between_runs() {
    let env = Env::new(vec![sim_config(20, 1, 0)]).await;
    let employers = emps(&env.sims[0], "sim0");
    env.write_config("1h", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let mut agent = env.start();
    let id = employers[0].id.clone();
    wait_until(Duration::from_secs(30), "the first run", || {
        last_outcome(&env.employer(&id)) == "ok"
    });
    // What an in-place swap leaves behind: a pending record for a newer installed version.
    let update_dir = env.dir.path().join("state").join("update");
    std::fs::create_dir_all(&update_dir).expect("update dir");
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 900;
    std::fs::write(
        update_dir.join("pending"),
        format!(
            "version=9.9.9\nprevious_version={}\ndeadline={deadline}\ninstall_dir={}\n",
            env!("CARGO_PKG_VERSION"),
            env.dir.path().display()
        ),
    )
    .expect("pending record");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = agent.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not restart for the installed release"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status.code(),
        Some(i32::from(arbosync_agent::update::EXIT_CODE_RESTART)),
        "exit code for systemd's RestartForceExitStatus"
    );
    let stderr = std::fs::read_to_string(env.dir.path().join("agent.stderr")).expect("stderr");
    assert!(stderr.contains("restart required"), "the reason is logged");
}

/// A full disk under the service (R9): the state directory on a tmpfs of the test's own fills up.
/// Scheduled runs fail with "the disk is full" (shown in status and errors), the service stays
/// up and answers, and once space is freed the runs succeed again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_runs_clearly_and_the_service_recovers_by_itself() {
    let env = Env::new(vec![sim_config(17, 1, 0)]).await;
    let fs = tmpfs::Tmpfs::mount_at(&env.dir.path().join("state"), 64);
    let employers = emps(&env.sims[0], "sim0");
    let id = employers[0].id.clone();
    env.write_config("2s", &employers, "");
    env.connect("sim0", &env.sims[0].refresh_token);
    let agent = env.start();
    wait_until(Duration::from_secs(30), "the first run", || {
        last_outcome(&env.employer(&id)) == "ok"
    });

    let ballast = tmpfs::fill(&fs.path, "ballast");
    let tokens_before = env.sims[0].state().stats().token_requests;
    let disk_full_errors = |env: &Env| -> usize {
        env.status()["errors"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|x| {
                    x["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("the disk is full"))
                })
                .count()
        })
    };
    wait_until(
        Duration::from_secs(30),
        "a run failing on the full disk",
        || disk_full_errors(&env) >= 1,
    );
    assert_eq!(
        env.employer(&id)["health"],
        "failed",
        "{}",
        env.employer(&id)
    );
    // An operator's manual run fails the same way, at once and clearly.
    let out = env.cli(&["sync", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    wait_until(Duration::from_secs(10), "the manual run's error", || {
        disk_full_errors(&env) >= 2
    });
    assert_eq!(
        env.sims[0].state().stats().token_requests,
        tokens_before,
        "no token was rotated while it could not be saved"
    );

    std::fs::remove_file(&ballast).expect("remove the ballast");
    // The backoff after a failure is 30 s: the next scheduled run succeeds by itself.
    wait_until(
        Duration::from_secs(45),
        "a good run once there is room",
        || last_outcome(&env.employer(&id)) == "ok",
    );
    let (status, _) = agent.stop();
    assert!(status.success(), "the service stopped cleanly");
    drop(fs);
}
