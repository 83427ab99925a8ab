//! A small tmpfs of the test's own, and a ballast file that fills it, for the full-disk tests
//! (R9). Mounting needs root (CI runs as root); elsewhere the test fails and says so.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted (lazily) when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// A tmpfs of `size_mb` on a new temp directory.
    pub fn mount(size_mb: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        let mut fs = Tmpfs::mount_at(&path, size_mb);
        fs._dir = Some(dir);
        fs
    }

    /// A tmpfs of `size_mb` on `path` (created if missing).
    pub fn mount_at(path: &Path, size_mb: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and must run as root (CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
            _dir: None,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process of a failed test may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system holding `dir` with a new ballast file `name`; returns its path.
pub fn fill(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("ballast file");
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // Single bytes for the last partial chunk.
    while let Ok(1) = f.write(&chunk[..1]) {}
    let _ = f.sync_all();
    path
}
