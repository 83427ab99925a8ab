//! The dashboard in a real terminal (issue 5's end-to-end test).
//!
//! The real binaries, as `cargo test --workspace` builds them next to this test: `loket-sim` (a
//! small dataset), `arbosync-agent run` on SQLite in a temporary directory, and the `arbosync`
//! dashboard inside a detached tmux session of a fixed size on a tmux server of its own (`-S`
//! with a socket in the temporary directory), so the user's tmux is never touched. The screen is read with `tmux capture-pane -p` and keys
//! go in with `send-keys`. It checks that employers appear; that `s` runs the selected employer,
//! shown running and then finished with its counts; that a `/_sim/` 500 fault makes an employer
//! fail with the reason on screen; and that killing the agent (SIGKILL) shows the "agent not
//! running" screen and restarting it reconnects to live data.
//!
//! tmux is required (CI installs it); a missing tmux or binary fails the test, never skips it.
//! Every wait polls with a deadline. Set `ARBOSYNC_E2E_SCREENS=DIR` to keep the captured screens.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const COLUMNS: u16 = 160;
const ROWS: u16 = 48;
/// The line under the table: confirmations, toasts and the selected employer's problem.
const STATUS_LINE: usize = ROWS as usize - 2;
/// Characters of an employer's name that fit in the wide overview's Employer column (28).
const NAME_PREFIX: usize = 24;
/// Long enough that no scheduled run interferes within the test: every run after the first
/// ones is one the test asked for (the first runs happen at start, the interval is not waited).
const INTERVAL: &str = "5m";

/// `target/<profile>/`: this test runs from `target/<profile>/deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} has no grandparent directory", exe.display()))
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo test --workspace` does, or \
         `cargo build -p arbosync-agent -p arbosync-tui -p loket-sim`)",
        path.display()
    );
    path
}

fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`tmux -V` failed: {}", text(&out)),
        Err(e) => panic!(
            "this test drives the dashboard in tmux, which is not installed ({e}); \
             install it (`apt-get install tmux`; .ci/run does)"
        ),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn sigkill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `loket-sim` binary and a client for its `/_sim/` endpoints.
struct Sim {
    _proc: Proc,
    line: Value,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Sim {
    fn start(dir: &Path) -> Sim {
        let stderr = std::fs::File::create(dir.join("sim.stderr")).expect("sim stderr file");
        let mut child = Command::new(binary("loket-sim"))
            .args([
                "--seed",
                "21",
                "--employers",
                "3",
                "--employees-per-employer",
                "8",
                "--max-page-size",
                "5",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("loket-sim starts");
        let stdout = child.stdout.take().expect("sim stdout");
        let proc = Proc(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("loket-sim printed its connection line within 20 s");
        let line: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let err = std::fs::read_to_string(dir.join("sim.stderr")).unwrap_or_default();
            panic!("loket-sim's first line is not JSON ({e}): {line:?}\n{err}")
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the HTTP client");
        Sim {
            _proc: proc,
            line,
            rt,
            http: reqwest::Client::new(),
        }
    }

    fn field(&self, key: &str) -> &str {
        self.line[key]
            .as_str()
            .unwrap_or_else(|| panic!("loket-sim's line has no {key}: {}", self.line))
    }

    fn employer_ids(&self) -> Vec<String> {
        self.line["employer_ids"]
            .as_array()
            .expect("employer_ids")
            .iter()
            .map(|v| v.as_str().expect("an id").to_owned())
            .collect()
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.field("base_url"));
        self.rt.block_on(async {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            assert!(status.is_success(), "{method} {path}: {status} {body}");
            serde_json::from_str(&body).unwrap_or(Value::Null)
        })
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn clear_faults(&self) {
        self.call(reqwest::Method::DELETE, "/_sim/faults", None);
    }

    /// A new employee of `employer` who reports sick today: work for the next run.
    fn new_sick_employee(&self, employer: &str) {
        let today = self.call(reqwest::Method::GET, "/_sim/truth", None)["today"]
            .as_str()
            .expect("the simulator's today")
            .to_owned();
        let added = self.post(&format!("/_sim/employers/{employer}/employees"), json!({}));
        let employee = added["employee_id"].as_str().expect("employee_id");
        self.post(
            "/_sim/absences",
            json!({ "employee_id": employee, "first_day": today }),
        );
    }
}

/// The agent's files in a temporary directory, and the `arbosync` CLI for its status.
struct Agent {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
}

impl Agent {
    fn new(sim: &Sim, dir: tempfile::TempDir) -> Agent {
        let config = dir.path().join("agent.toml");
        let socket = dir.path().join("run").join("agent.sock");
        let mut toml = format!(
            "[agent]\nstate_dir = \"{}\"\nsocket = \"{}\"\nlog_dir = \"{}\"\ninterval = \"{INTERVAL}\"\nfull_reconcile_interval = \"1h\"\n\n[database]\nurl = \"sqlite://{}\"\n\n[[connection]]\nname = \"sim\"\napi_url = \"{}\"\noauth_url = \"{}\"\nclient_id = \"{}\"\nrequests_per_second = 500.0\n",
            dir.path().join("state").display(),
            socket.display(),
            dir.path().join("logs").display(),
            dir.path().join("arbodienst.db").display(),
            sim.field("api_url"),
            sim.field("oauth_url"),
            sim.field("client_id"),
        );
        let names = ["Aannemer Alfa", "Bakkerij Bravo", "Camping Charlie"];
        for (id, name) in sim.employer_ids().iter().zip(names) {
            toml.push_str(&format!(
                "\n[[employer]]\nid = \"{id}\"\nconnection = \"sim\"\nname = \"{name}\"\nactive = true\n"
            ));
        }
        std::fs::write(&config, toml).expect("write the agent config");
        let agent = Agent {
            dir,
            config,
            socket,
        };
        agent.connect(sim.field("refresh_token"));
        agent
    }

    fn connect(&self, token: &str) {
        let mut child = Command::new(binary("arbosync-agent"))
            .args(["connect", "sim", "--refresh-token-stdin", "--config"])
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("arbosync-agent connect starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("write the token");
        let out = child.wait_with_output().expect("connect ends");
        assert!(out.status.success(), "connect failed: {}", text(&out));
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("agent.stderr")
    }

    /// Starts `arbosync-agent run` and waits until its socket answers.
    fn run(&self) -> Proc {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("agent stderr file");
        let child = Command::new(binary("arbosync-agent"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("arbosync-agent run starts");
        let proc = Proc(child);
        poll(Duration::from_secs(20), || {
            UnixStream::connect(&self.socket).is_ok().then_some(())
        })
        .unwrap_or_else(|| panic!("{}", self.diagnostics("no control socket")));
        proc
    }

    fn status(&self) -> Value {
        let out = Command::new(binary("arbosync"))
            .arg("--socket")
            .arg(&self.socket)
            .args(["status", "--json"])
            .output()
            .expect("arbosync status runs");
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
            .unwrap_or_else(|| panic!("employer {id} not in the status"))
    }

    /// The last lines the agent wrote to stderr, for failure messages.
    fn diagnostics(&self, what: &str) -> String {
        let mut log = String::new();
        if let Ok(mut f) = std::fs::File::open(self.stderr_path()) {
            let _ = f.read_to_string(&mut log);
        }
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{what}\n--- agent stderr (last 30 lines) ---\n{}",
            tail.join("\n")
        )
    }
}

fn latest_run(employer: &Value) -> Value {
    employer["recent_runs"][0].clone()
}

/// The dashboard in a detached tmux session on a tmux server of its own, whose socket lives in
/// the test's temporary directory (`-S`): the user's tmux server is never contacted, and no
/// socket file is left in `/tmp/tmux-UID/` (tmux 3.3 does not remove it on `kill-server`).
struct Tmux {
    server: PathBuf,
}

const SESSION: &str = "dash";

impl Tmux {
    fn start(dir: &Path, socket: &Path) -> Tmux {
        let server = dir.join("tmux.sock");
        let dashboard = format!(
            "exec env TERM=xterm-256color NO_COLOR=1 '{}' --socket '{}'",
            binary("arbosync").display(),
            socket.display()
        );
        let tmux = Tmux { server };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &COLUMNS.to_string(),
            "-y",
            &ROWS.to_string(),
            &dashboard,
            // A dashboard that exits leaves its last screen (and status) to inspect.
            ";",
            "set-option",
            "-w",
            "-t",
            SESSION,
            "remain-on-exit",
            "on",
        ]);
        assert!(out.status.success(), "tmux new-session: {}", text(&out));
        tmux
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.server)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs")
    }

    fn capture(&self) -> Screen {
        let out = self.cmd(&["capture-pane", "-p", "-t", SESSION]);
        assert!(out.status.success(), "capture-pane: {}", text(&out));
        Screen(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn send(&self, key: &str) {
        let out = self.cmd(&["send-keys", "-t", SESSION, key]);
        assert!(out.status.success(), "send-keys {key}: {}", text(&out));
    }

    /// Whether the dashboard process is gone, and how it ended.
    fn pane_state(&self) -> String {
        let out = self.cmd(&[
            "display-message",
            "-p",
            "-t",
            SESSION,
            "dead=#{pane_dead} status=#{pane_dead_status} size=#{pane_width}x#{pane_height}",
        ]);
        text(&out).trim().to_owned()
    }

    /// Polls the screen until `ok` holds; on timeout fails with the last screen.
    fn wait(
        &self,
        agent: &Agent,
        limit: Duration,
        what: &str,
        ok: impl Fn(&Screen) -> bool,
    ) -> Screen {
        let mut last = Screen(String::new());
        let found = poll(limit, || {
            last = self.capture();
            ok(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!(
                "{}\n--- dashboard ({}) ---\n{}",
                agent.diagnostics(&format!("timed out after {limit:?} waiting for {what}")),
                self.pane_state(),
                last.0
            )
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Ends the session; tmux sends SIGHUP to the dashboard.
        let _ = self.cmd(&["kill-server"]);
    }
}

/// One capture of the terminal.
#[derive(Clone)]
struct Screen(String);

impl Screen {
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.0.lines()
    }

    fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    /// The overview's table row of the employer named `name`.
    fn row(&self, name: &str) -> Option<&str> {
        let prefix: String = name.chars().take(NAME_PREFIX).collect();
        self.lines()
            .find(|l| l.starts_with('│') && l.contains(prefix.as_str()))
    }

    /// The selected row of the overview's table.
    fn selected(&self) -> Option<&str> {
        self.lines().find(|l| l.starts_with("│> "))
    }

    fn status_line(&self) -> &str {
        self.lines().nth(STATUS_LINE).unwrap_or("")
    }

    fn header(&self) -> &str {
        self.lines().next().unwrap_or("")
    }

    fn keep(&self, name: &str) {
        if let Some(dir) = std::env::var_os("ARBOSYNC_E2E_SCREENS") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("screens dir");
            std::fs::write(dir.join(format!("{name}.txt")), &self.0).expect("write a screen");
        }
    }
}

/// Calls `f` every 100 ms until it returns `Some` or `limit` passes.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like [`poll`] on the agent's status, failing with diagnostics on timeout.
fn wait_status<T>(
    agent: &Agent,
    limit: Duration,
    what: &str,
    mut f: impl FnMut(&Agent) -> Option<T>,
) -> T {
    poll(limit, || f(agent)).unwrap_or_else(|| {
        panic!(
            "{}\n--- status ---\n{}",
            agent.diagnostics(&format!("timed out after {limit:?} waiting for {what}")),
            agent.status()
        )
    })
}

#[test]
fn dashboard_in_tmux_shows_runs_failures_and_reconnects() {
    let started = Instant::now();
    require_tmux();
    // Fail early and clearly if any binary is missing.
    for name in ["arbosync-agent", "arbosync", "loket-sim"] {
        binary(name);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let agent = Agent::new(&sim, dir);
    let mut agent_proc = agent.run();

    // The first runs happen at start; wait for them so the names are the agent's final ones.
    let ids = sim.employer_ids();
    let names: Vec<String> = wait_status(&agent, Duration::from_secs(30), "first runs", |a| {
        let status = a.status();
        let employers = status["employers"].as_array()?.clone();
        let all_ok = employers.len() == ids.len()
            && employers
                .iter()
                .all(|e| latest_run(e)["outcome"] == "ok" && e["running"].is_null());
        all_ok.then(|| {
            ids.iter()
                .map(|id| {
                    let e = employers.iter().find(|e| e["id"] == id.as_str())?;
                    e["name"].as_str().map(str::to_owned)
                })
                .collect::<Option<Vec<String>>>()
        })?
    });
    let name_of = |id: &str| -> &str {
        let i = ids.iter().position(|x| x == id).expect("a known id");
        &names[i]
    };
    let id_of_row = |row: &str| -> String {
        ids.iter()
            .zip(&names)
            .find(|(_, n)| row.contains(n.chars().take(NAME_PREFIX).collect::<String>().as_str()))
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no known employer in the row {row:?}"))
    };

    let tmux = Tmux::start(agent.dir.path(), &agent.socket);

    // 1. Employers appear, all healthy, with the connection state and the keys.
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(15),
        "the overview with every employer ok",
        |s| {
            s.header().contains("● connected · admin")
                && s.contains(&format!("Employers {}", ids.len()))
                && names
                    .iter()
                    .all(|n| s.row(n).is_some_and(|r| r.contains("✓ ok")))
        },
    );
    assert!(
        screen.contains(" s sync ") && screen.contains(" q quit"),
        "the footer shows the keys:\n{}",
        screen.0
    );
    screen.keep("1-overview");

    // 2. `s` on the selected employer: running, then finished with its counts.
    let selected_row = screen.selected().expect("a selected row").to_owned();
    let first = id_of_row(&selected_row);
    let first_name = name_of(&first).to_owned();
    let before = latest_run(&agent.employer(&first))["run_id"].clone();
    sim.new_sick_employee(&first);
    // Slow this employer's requests so the run is seen running.
    sim.post(
        "/_sim/faults",
        json!({ "kind": "latency", "latency_ms": 400, "path_contains": first, "times": 0 }),
    );
    tmux.send("s");
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(15),
        "the selected employer running",
        |s| s.row(&first_name).is_some_and(|r| r.contains("▶ ")),
    );
    screen.keep("2-running");
    sim.clear_faults();
    let run = wait_status(
        &agent,
        Duration::from_secs(30),
        "the requested run to end",
        |a| {
            let e = a.employer(&first);
            let run = latest_run(&e);
            (run["run_id"] != before && e["running"].is_null()).then_some(run)
        },
    );
    assert_eq!(run["outcome"], "ok", "the requested run: {run}");
    let inserted = run["inserted"].as_u64().expect("inserted");
    assert!(inserted > 0, "the new sick employee was inserted: {run}");
    let counts = format!(
        "+{inserted} ~{} −{}",
        run["updated"].as_u64().expect("updated"),
        run["deleted"].as_u64().expect("deleted")
    );
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(10),
        "the finished run with its counts",
        |s| {
            s.row(&first_name)
                .is_some_and(|r| r.contains("✓ ok") && r.contains(&counts) && !r.contains("▶"))
        },
    );
    screen.keep("3-finished");

    // 3. A 500 from Loket for the next employer: failed, with the reason.
    tmux.send("j");
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(5),
        "the selection to move",
        |s| s.selected().is_some_and(|r| !r.contains(&first_name)),
    );
    let failing = id_of_row(screen.selected().expect("a selected row"));
    let failing_name = name_of(&failing).to_owned();
    let before = latest_run(&agent.employer(&failing))["run_id"].clone();
    sim.post(
        "/_sim/faults",
        json!({ "kind": "status", "status": 500, "path_contains": failing, "times": 0 }),
    );
    tmux.send("s");
    let error = wait_status(
        &agent,
        Duration::from_secs(30),
        "the failing run to end",
        |a| {
            let e = a.employer(&failing);
            let run = latest_run(&e);
            if run["run_id"] == before || !e["running"].is_null() {
                return None;
            }
            assert_eq!(run["outcome"], "failed", "the run against a 500: {run}");
            e["last_error"].as_str().map(str::to_owned)
        },
    );
    assert!(
        error.contains("500"),
        "the reason names the status: {error}"
    );
    // The table's last-error column and, once the "sync queued" toast is gone, the status line.
    let reason_start: String = error.chars().take(40).collect();
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(15),
        "the failed employer with its reason",
        |s| {
            s.row(&failing_name)
                .is_some_and(|r| r.contains("✗ failed") && r.contains(reason_start.as_str()))
                && s.contains("1 failed")
                && s.status_line()
                    .contains(&format!(" {failing_name}: {reason_start}"))
        },
    );
    screen.keep("4-failed");
    // The other employers are unaffected.
    for (id, name) in ids.iter().zip(&names) {
        if *id != failing {
            assert!(
                screen.row(name).is_some_and(|r| r.contains("✓ ok")),
                "{name} stays ok:\n{}",
                screen.0
            );
        }
    }
    sim.clear_faults();

    // 4. The agent dies: the dashboard says so and keeps retrying.
    agent_proc.sigkill();
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(15),
        "the agent-not-running screen",
        |s| {
            s.header().contains("✗ agent not running")
                && s.contains("The agent is not running")
                && s.contains("Retrying")
        },
    );
    screen.keep("5-not-running");

    // 5. It comes back: the dashboard reconnects by itself to live data.
    agent_proc = agent.run();
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(20),
        "the reconnect with every employer back",
        |s| {
            s.header().contains("● connected · admin")
                && !s.contains("The agent is not running")
                && names.iter().all(|n| s.row(n).is_some())
        },
    );
    screen.keep("6-reconnected");
    // Live: a run asked for now on the (still selected) failed employer shows up, now ok.
    let selected = screen
        .selected()
        .expect("a selected row after reconnecting");
    assert!(
        selected.contains(
            failing_name
                .chars()
                .take(NAME_PREFIX)
                .collect::<String>()
                .as_str()
        ),
        "the selection survives the reconnect: {selected:?}"
    );
    let before = latest_run(&agent.employer(&failing))["run_id"].clone();
    tmux.send("s");
    let run = wait_status(
        &agent,
        Duration::from_secs(30),
        "a run after the reconnect",
        |a| {
            let e = a.employer(&failing);
            let run = latest_run(&e);
            (run["run_id"] != before && e["running"].is_null()).then_some(run)
        },
    );
    assert_eq!(
        run["outcome"], "ok",
        "the run after the fault cleared: {run}"
    );
    let screen = tmux.wait(
        &agent,
        Duration::from_secs(10),
        "the recovered employer after the reconnect",
        |s| s.row(&failing_name).is_some_and(|r| r.contains("✓ ok")) && !s.contains("1 failed"),
    );
    screen.keep("7-recovered");

    drop(tmux);
    drop(agent_proc);
    // About 10 s on an idle 2-core machine; the waits above bound it under load.
    eprintln!("dashboard_tmux took {:.1?}", started.elapsed());
}
