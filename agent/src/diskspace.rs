//! Free space where the agent writes: the state directory and a SQLite database's directory.
//!
//! A run checks this before it asks Loket or writes anything, so a full disk fails the run early
//! with a clear "the disk is full" error (R9 of `reliability-security.md`), instead of deep in a
//! batch or, worse, after Loket rotated the refresh token that could then not be saved. Every
//! write is a transaction or an atomic file replace anyway, so a disk that fills up during a run
//! still leaves nothing half-written; this check is about failing clearly and early.

use std::path::{Path, PathBuf};

/// Below this many free bytes the disk counts as full (a batch, its journal rows and sled's log
/// need some room; a server with less than this free is in trouble anyway).
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// A place the agent writes to has too little free space.
#[derive(Debug, thiserror::Error)]
#[error(
    "the disk is full: {path} has {free} bytes free (arbosync needs at least {MIN_FREE_BYTES} \
     bytes to write safely); the run stopped before writing anything"
)]
pub struct DiskFull {
    pub path: PathBuf,
    pub free: u64,
}

/// Fails with [`DiskFull`] for the first of `paths` (files or directories, which need not exist
/// yet: their nearest existing ancestor is measured) with less than [`MIN_FREE_BYTES`] free.
/// A path whose space cannot be measured is not held against the run.
pub fn ensure_room(paths: &[PathBuf]) -> Result<(), DiskFull> {
    for path in paths {
        if let Some(free) = free_bytes(path)
            && free < MIN_FREE_BYTES
        {
            return Err(DiskFull {
                path: path.clone(),
                free,
            });
        }
    }
    Ok(())
}

/// Bytes available to an unprivileged writer on the file system holding `path` (statvfs).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    fs2::available_space(existing).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_measured_at_its_nearest_ancestor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("not/yet/there.db");
        assert_eq!(
            free_bytes(&missing).is_some(),
            free_bytes(dir.path()).is_some()
        );
        assert!(free_bytes(dir.path()).is_some());
    }

    #[test]
    fn the_error_names_the_path_and_the_free_bytes() {
        let e = DiskFull {
            path: PathBuf::from("/var/lib/arbosync"),
            free: 512,
        };
        let text = e.to_string();
        assert!(text.contains("the disk is full"), "{text}");
        assert!(
            text.contains("/var/lib/arbosync has 512 bytes free"),
            "{text}"
        );
    }
}
