//! The real `arbosync-agent` binary: where it is, the configuration the bench writes for it,
//! `connect NAME --refresh-token-stdin`, and `sync --once --json` measured from outside (wall
//! time from spawn to exit, and the process's own peak RSS).
//!
//! Peak RSS is the agent's `VmHWM` (`/proc/PID/status`), read every 2 ms while it runs: the
//! kernel keeps it per address space, so it is the agent's own peak. `ru_maxrss` from `wait4` is
//! kept too but is NOT the agent's alone: at `exec` the kernel folds the high-water mark of the
//! address space being replaced into it, and std spawns with `posix_spawn` (`CLONE_VM`), whose
//! address space is this bench's — with the simulator and B4's records in it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use super::args::Settings;

/// The connection name in the written configuration.
pub const CONNECTION: &str = "sim";
/// `requests_per_second` in the written configuration: high enough that only
/// `max_parallel_requests` and the latency limit the pace (the lower bound of B1 assumes that).
pub const REQUESTS_PER_SECOND: f64 = 100_000.0;

/// Finds the agent binary: `--agent-bin`, else `arbosync-agent` next to this executable (the
/// same cargo target directory and profile).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let me = std::env::current_exe().context("cannot find this executable's path")?;
            let dir = me
                .parent()
                .context("this executable's path has no directory")?;
            dir.join("arbosync-agent")
        }
    };
    if !path.is_file() {
        bail!(
            "the agent binary is missing at {}: build it first with `cargo build --release -p arbosync-agent` \
             (same profile as this bench), or pass --agent-bin PATH",
            path.display()
        );
    }
    Ok(path)
}

/// What the agent's configuration needs from the simulator and the database.
pub struct ConfigSpec<'a> {
    pub state_dir: &'a Path,
    pub db_url: &'a str,
    pub api_url: &'a str,
    pub oauth_url: &'a str,
    pub client_id: &'a str,
    pub employer_ids: &'a [String],
}

/// Writes `agent.toml` into `dir`: one connection, every employer active with
/// `all_employments`, `absences` and `salary` on (BSN off), so B1 and B6 read the same data.
pub fn write_config(dir: &Path, spec: &ConfigSpec<'_>, settings: &Settings) -> Result<PathBuf> {
    let mut text = format!(
        r#"[agent]
state_dir = "{state}"
socket = "{socket}"
log_level = "info"
max_concurrent_employers = {concurrent}

[database]
url = "{db}"
schema = "arbosync"

[[connection]]
name = "{conn}"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = {rps:.1}
max_parallel_requests = {parallel}
"#,
        state = spec.state_dir.display(),
        socket = spec.state_dir.join("agent.sock").display(),
        concurrent = settings.concurrent_employers,
        db = spec.db_url,
        conn = CONNECTION,
        api = spec.api_url,
        oauth = spec.oauth_url,
        client = spec.client_id,
        rps = REQUESTS_PER_SECOND,
        parallel = settings.parallel,
    );
    for (i, id) in spec.employer_ids.iter().enumerate() {
        text.push_str(&format!(
            r#"
[[employer]]
id = "{id}"
connection = "{conn}"
name = "Bench employer {n}"
active = true
all_employments = true
absences = true
salary = true
bsn = false
"#,
            conn = CONNECTION,
            n = i + 1,
        ));
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `arbosync-agent connect sim --refresh-token-stdin --config F`.
pub fn connect(bin: &Path, config: &Path, refresh_token: &str) -> Result<()> {
    let mut child = Command::new(bin)
        .args(["connect", CONNECTION, "--refresh-token-stdin", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    {
        let mut stdin = child.stdin.take().context("no stdin pipe")?;
        stdin
            .write_all(refresh_token.as_bytes())
            .context("cannot hand the refresh token to the agent")?;
    }
    let out = child.wait_with_output().context("waiting for `connect`")?;
    if !out.status.success() {
        bail!(
            "`arbosync-agent connect` failed ({}): {}",
            out.status,
            // The token went in on stdin; the agent never prints it (R16), but be safe anyway.
            String::from_utf8_lossy(&out.stderr).replace(refresh_token, "<token>")
        );
    }
    Ok(())
}

/// One employer's entry in `sync --once --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmployerOutcome {
    pub employer_id: String,
    pub kind: String,
    pub status: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Records sent to the retry queue.
    pub failed: u64,
    pub requests: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// The `sync --once --json` document.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncDoc {
    pub ok: bool,
    pub employers: Vec<EmployerOutcome>,
}

impl SyncDoc {
    pub fn requests(&self) -> u64 {
        self.employers.iter().map(|e| e.requests).sum()
    }
    pub fn inserted(&self) -> u64 {
        self.employers.iter().map(|e| e.inserted).sum()
    }
    pub fn updated(&self) -> u64 {
        self.employers.iter().map(|e| e.updated).sum()
    }
    pub fn deleted(&self) -> u64 {
        self.employers.iter().map(|e| e.deleted).sum()
    }
    pub fn failed(&self) -> u64 {
        self.employers.iter().map(|e| e.failed).sum()
    }
    pub fn max_duration_ms(&self) -> u64 {
        self.employers
            .iter()
            .map(|e| e.duration_ms)
            .max()
            .unwrap_or(0)
    }
}

/// One `sync --once --json` process, measured.
#[derive(Debug, Clone)]
pub struct SyncRun {
    /// From spawn to exit (process start, configuration, database open and migrations included).
    pub wall: Duration,
    /// The agent's own peak resident set size (last `VmHWM` read before it exited), in KiB.
    pub peak_rss_kib: u64,
    /// `ru_maxrss` of `wait4`, in KiB: includes the spawning process's peak (see the module doc).
    pub ru_maxrss_kib: u64,
    pub doc: SyncDoc,
}

/// Runs `arbosync-agent sync --once --json --config F` to completion. Blocking: call it from
/// `spawn_blocking`. Fails when the process fails, prints no JSON, or outlives `timeout`.
pub fn sync_once(bin: &Path, config: &Path, log: &Path, timeout: Duration) -> Result<SyncRun> {
    let dir = log.parent().context("the log path has no directory")?;
    let stdout_path = dir.join("sync-stdout.json");
    let stdout = File::create(&stdout_path)
        .with_context(|| format!("cannot create {}", stdout_path.display()))?;
    let stderr = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let started = Instant::now();
    let child = Command::new(bin)
        .args(["sync", "--once", "--json", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("ARBOSYNC_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid does not fit pid_t")?;
    // The std `Child` is never waited on: `wait4` below reaps it and returns its own rusage
    // (RUSAGE_CHILDREN would report the largest of all children, `connect` included).
    let (status, usage, hwm_kib) = wait_watching(pid, started, timeout)?;
    let wall = started.elapsed();
    drop(child);

    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let tail = log_tail(log);
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !libc::WIFEXITED(status) {
        bail!(
            "the agent was ended by signal {} during `sync --once`; its log ends with:\n{tail}",
            libc::WTERMSIG(status)
        );
    }
    let doc: SyncDoc = serde_json::from_str(&out).with_context(|| {
        format!(
            "`sync --once --json` exited with {} and printed no valid JSON; its log ends with:\n{tail}",
            libc::WEXITSTATUS(status)
        )
    })?;
    if !exited_ok || !doc.ok {
        let errors: Vec<String> = doc
            .employers
            .iter()
            .filter(|e| e.status != "ok")
            .take(5)
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.employer_id,
                    e.status,
                    e.error.as_deref().unwrap_or("-")
                )
            })
            .collect();
        bail!(
            "`sync --once` did not succeed (exit {}, ok={}): {}\nlog tail:\n{tail}",
            libc::WEXITSTATUS(status),
            doc.ok,
            errors.join("; ")
        );
    }
    ensure!(
        hwm_kib > 0,
        "could not read the agent's VmHWM from /proc while it ran"
    );
    Ok(SyncRun {
        wall,
        peak_rss_kib: hwm_kib,
        // ru_maxrss is in KiB on Linux.
        ru_maxrss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        doc,
    })
}

/// Reaps `pid` with `wait4`, polling every 2 ms so that a hung agent can be killed after
/// `timeout`, and reading its `VmHWM` on every poll. Returns the status, the rusage and the last
/// `VmHWM` seen (KiB; it only grows, so the last reading is the peak up to 2 ms before the exit).
fn wait_watching(
    pid: libc::pid_t,
    started: Instant,
    timeout: Duration,
) -> Result<(libc::c_int, libc::rusage, u64)> {
    let status_file = format!("/proc/{pid}/status");
    let mut hwm_kib = 0u64;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        let flags = if killed { 0 } else { libc::WNOHANG };
        // SAFETY: `pid` is our own child, which nothing else waits on; the pointers are to live
        // locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            if killed {
                bail!(
                    "the agent did not finish within {} s and was killed",
                    timeout.as_secs()
                );
            }
            return Ok((status, usage, hwm_kib));
        }
        if r == -1 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("wait4 on the agent process");
        }
        // r == 0: still running (or a zombie, whose status has no VmHWM line any more).
        if let Some(kib) = vm_hwm_kib(&status_file) {
            hwm_kib = hwm_kib.max(kib);
        }
        if started.elapsed() > timeout {
            // SAFETY: the child has not been reaped (wait4 just returned 0), so the pid is
            // still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `VmHWM` line of a `/proc/PID/status` file, in KiB.
fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// The last lines of a log file (for error messages; the agent logs ids and counts only).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
