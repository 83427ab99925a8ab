//! Swapping binaries atomically, keeping the previous ones, and putting them back.
//!
//! Layout of a *work directory* (the agent's `<state_dir>/update` for tarball installs; the
//! root-owned `/var/lib/arbosync-update` for package installs, where the swap runs in the
//! `arbosync-agent-update.service` oneshot):
//!
//! ```text
//! previous/<binary>   the binaries that were installed before the last swap (+ previous/VERSION)
//! pending             key=value: the swapped-in version awaiting its health confirmation
//! pending-starts      one line per service start since the swap (written by the guard script)
//! last-rollback       key=value: what was rolled back, when and why
//! rejected            one version per line: rolled back, never installed again automatically
//! ```
//!
//! The same layout is read by `packaging/arbosync-update-guard` (a POSIX shell script that runs as
//! `ExecStartPre=` and must not depend on the new, possibly broken, binary): keep both in step.
//!
//! Every file is replaced by write-to-temporary + fsync + rename + fsync of the directory, so a
//! process killed at any point leaves either the old or the new file, never a torn one. The
//! installed binary itself is replaced the same way (a rename within its own directory); the
//! previous binary is saved completely *before* the swap starts.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use semver::Version;

use super::{UpdateError, fsync_dir, io_err};

/// File names inside a work directory.
pub const PENDING: &str = "pending";
pub const PENDING_STARTS: &str = "pending-starts";
pub const PREVIOUS_DIR: &str = "previous";
pub const PREVIOUS_VERSION: &str = "VERSION";
pub const LAST_ROLLBACK: &str = "last-rollback";
pub const REJECTED: &str = "rejected";
/// Written by the new agent once it is ready (in the agent's own update directory).
pub const HEALTHY: &str = "healthy";

/// Largest key=value record read (they are a few lines).
const MAX_RECORD_BYTES: u64 = 16 * 1024;

/// A swapped-in version waiting for its health confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub version: Version,
    pub previous_version: Version,
    /// Unix seconds after which an unconfirmed version is rolled back.
    pub deadline: u64,
    pub install_dir: PathBuf,
}

/// The record of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RollbackRecord {
    pub version: String,
    pub restored: String,
    /// Unix seconds.
    pub at: u64,
    pub reason: String,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `content` to `path` atomically (temporary file in the same directory, fsync, rename,
/// fsync of the directory), with `mode`.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), UpdateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_nofollow())
        .open(&tmp)
        .map_err(|e| io_err("create", &tmp, e))?;
    f.write_all(content).map_err(|e| io_err("write", &tmp, e))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("chmod", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err("rename", &tmp, e))?;
    fsync_dir(dir)
}

/// Copies `from` to `to` atomically (see [`write_atomic`]), streaming, with `mode`.
pub fn copy_atomic(from: &Path, to: &Path, mode: u32) -> Result<(), UpdateError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let _ = fs::remove_file(&tmp);
    let mut src = open_no_follow(from)?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err("create", &tmp, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| io_err("copy to", &tmp, e))?;
    dst.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("chmod", &tmp, e))?;
    dst.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
    drop(dst);
    fs::rename(&tmp, to).map_err(|e| io_err("rename", &tmp, e))?;
    fsync_dir(dir)
}

/// Opens a regular file for reading, refusing a symbolic link (the root-run swap reads files
/// from a directory the unprivileged agent can write).
pub fn open_no_follow(path: &Path) -> Result<File, UpdateError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc_nofollow())
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    let meta = f.metadata().map_err(|e| io_err("stat", path, e))?;
    if !meta.is_file() {
        return Err(io_err(
            "open",
            path,
            std::io::Error::other("not a regular file"),
        ));
    }
    Ok(f)
}

/// `O_NOFOLLOW`: opening a symbolic link fails.
const fn libc_nofollow() -> i32 {
    libc::O_NOFOLLOW
}

/// Reads a small key=value file; `Ok(None)` when it does not exist.
pub fn read_record(path: &Path) -> Result<Option<Vec<(String, String)>>, UpdateError> {
    let f = match open_no_follow(path) {
        Ok(f) => f,
        Err(UpdateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_RECORD_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| io_err("read", path, e))?;
    Ok(Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    ))
}

fn get<'a>(record: &'a [(String, String)], key: &str) -> Option<&'a str> {
    record
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A value for a key=value file: one line, no `=` games.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Reads `<work>/pending`.
pub fn read_pending(work: &Path) -> Result<Option<Pending>, UpdateError> {
    let path = work.join(PENDING);
    let Some(rec) = read_record(&path)? else {
        return Ok(None);
    };
    let bad = || UpdateError::Corrupt {
        path: path.clone(),
        what: "pending update record",
    };
    let version = get(&rec, "version")
        .and_then(|v| Version::parse(v).ok())
        .ok_or_else(bad)?;
    let previous_version = get(&rec, "previous_version")
        .and_then(|v| Version::parse(v).ok())
        .ok_or_else(bad)?;
    let deadline = get(&rec, "deadline")
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)?;
    let install_dir = get(&rec, "install_dir")
        .map(PathBuf::from)
        .ok_or_else(bad)?;
    Ok(Some(Pending {
        version,
        previous_version,
        deadline,
        install_dir,
    }))
}

/// Reads `<work>/last-rollback`.
pub fn read_last_rollback(work: &Path) -> Result<Option<RollbackRecord>, UpdateError> {
    let Some(rec) = read_record(&work.join(LAST_ROLLBACK))? else {
        return Ok(None);
    };
    Ok(Some(RollbackRecord {
        version: get(&rec, "version").unwrap_or_default().to_string(),
        restored: get(&rec, "restored").unwrap_or_default().to_string(),
        at: get(&rec, "at").and_then(|v| v.parse().ok()).unwrap_or(0),
        reason: get(&rec, "reason").unwrap_or_default().to_string(),
    }))
}

/// Reads `<work>/rejected` (unparsable lines are ignored).
pub fn read_rejected(work: &Path) -> Result<Vec<Version>, UpdateError> {
    let path = work.join(REJECTED);
    let f = match open_no_follow(&path) {
        Ok(f) => f,
        Err(UpdateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_RECORD_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| io_err("read", &path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| Version::parse(l.trim()).ok())
        .collect())
}

fn add_rejected(work: &Path, version: &Version) -> Result<(), UpdateError> {
    let mut list = read_rejected(work)?;
    if !list.contains(version) {
        list.push(version.clone());
    }
    let text: String = list.iter().map(|v| format!("{v}\n")).collect();
    write_atomic(&work.join(REJECTED), text.as_bytes(), 0o644)
}

/// Installs `binaries` (name → new file) into `install_dir`, keeping the current ones in
/// `<work>/previous/` and recording a [`Pending`] health check with `deadline`.
///
/// Order, each step durable before the next: save every current binary to `previous/` (atomic
/// copies) and `previous/VERSION`; write `pending`; then replace each binary by a rename within
/// `install_dir`. A kill at any point leaves every installed binary either old or new and whole.
/// The agent binary is swapped last, so a half-finished swap still runs the old agent.
pub fn install(
    work: &Path,
    install_dir: &Path,
    binaries: &[(String, PathBuf)],
    current_version: &Version,
    new_version: &Version,
    health_deadline: Duration,
) -> Result<Pending, UpdateError> {
    let previous = work.join(PREVIOUS_DIR);
    fs::create_dir_all(&previous).map_err(|e| io_err("create", &previous, e))?;
    // Only binaries that are installed now are replaced (a tarball install has the dashboard, a
    // bare agent install may not); the agent itself must be there.
    let mut plan: Vec<&(String, PathBuf)> = binaries
        .iter()
        .filter(|(name, _)| install_dir.join(name).is_file())
        .collect();
    if !plan.iter().any(|(n, _)| n == super::BINARIES[0]) {
        return Err(io_err(
            "find the installed agent in",
            install_dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    plan.sort_by_key(|(n, _)| n == super::BINARIES[0]);
    // A stale previous set from an older swap must not mix with this one.
    for entry in fs::read_dir(&previous).map_err(|e| io_err("list", &previous, e))? {
        let entry = entry.map_err(|e| io_err("list", &previous, e))?;
        let keep = plan.iter().any(|(n, _)| entry.file_name() == n.as_str());
        if !keep {
            let _ = fs::remove_file(entry.path());
        }
    }
    for (name, _) in &plan {
        copy_atomic(&install_dir.join(name), &previous.join(name), 0o755)?;
    }
    write_atomic(
        &previous.join(PREVIOUS_VERSION),
        format!("{current_version}\n").as_bytes(),
        0o644,
    )?;
    let pending = Pending {
        version: new_version.clone(),
        previous_version: current_version.clone(),
        deadline: unix_now() + health_deadline.as_secs(),
        install_dir: install_dir.to_path_buf(),
    };
    let _ = fs::remove_file(work.join(PENDING_STARTS));
    write_atomic(
        &work.join(PENDING),
        format!(
            "version={}\nprevious_version={}\ndeadline={}\ninstall_dir={}\n",
            pending.version,
            pending.previous_version,
            pending.deadline,
            clean(&install_dir.to_string_lossy()),
        )
        .as_bytes(),
        0o644,
    )?;
    for (name, new_file) in plan {
        copy_atomic(new_file, &install_dir.join(name), 0o755)?;
    }
    Ok(pending)
}

/// Puts `<work>/previous/*` back into `install_dir`, marks `version` as rejected, records why in
/// `last-rollback` and clears `pending`. Returns the restored version.
pub fn restore_previous(
    work: &Path,
    install_dir: &Path,
    version: &Version,
    reason: &str,
) -> Result<RollbackRecord, UpdateError> {
    let previous = work.join(PREVIOUS_DIR);
    let restored = fs::read_to_string(previous.join(PREVIOUS_VERSION))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| Version::parse(s).is_ok())
        .ok_or(UpdateError::NoPrevious)?;
    let mut names: Vec<String> = super::BINARIES
        .iter()
        .filter(|n| previous.join(n).is_file())
        .map(|n| n.to_string())
        .collect();
    if !names.iter().any(|n| n == super::BINARIES[0]) {
        return Err(UpdateError::NoPrevious);
    }
    names.sort_by_key(|n| n == super::BINARIES[0]);
    for name in &names {
        copy_atomic(&previous.join(name), &install_dir.join(name), 0o755)?;
    }
    let record = RollbackRecord {
        version: version.to_string(),
        restored,
        at: unix_now(),
        reason: clean(reason),
    };
    write_atomic(
        &work.join(LAST_ROLLBACK),
        format!(
            "version={}\nrestored={}\nat={}\nreason={}\n",
            record.version, record.restored, record.at, record.reason
        )
        .as_bytes(),
        0o644,
    )?;
    add_rejected(work, version)?;
    clear_pending(work)?;
    Ok(record)
}

/// Removes `pending` and `pending-starts` (the swapped-in version is confirmed, or rolled back).
pub fn clear_pending(work: &Path) -> Result<(), UpdateError> {
    for name in [PENDING, PENDING_STARTS] {
        match fs::remove_file(work.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &work.join(name), e)),
        }
    }
    fsync_dir(work)
}
