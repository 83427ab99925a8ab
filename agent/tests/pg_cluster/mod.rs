//! A throw-away PostgreSQL cluster for tests that stop, kill or reconfigure a database: initdb
//! into a temp dir, its own port and socket directory, trust auth. Never the shared server.
//! Fails (never skips) when PostgreSQL's initdb/pg_ctl are not installed.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A throw-away PostgreSQL cluster in a temp dir, on its own port, owned by the test. As root
/// the server runs as the `postgres` user (initdb refuses root). Stopped when dropped.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Extra `postgres` options (`-c key=value ...`) for every start.
    extra_opts: String,
}

/// Writes files into a new cluster's directory.
pub type Prepare<'a> = Box<dyn FnOnce(&Path) + 'a>;

/// How to set up a cluster before its first start.
#[derive(Default)]
pub struct ClusterOptions<'a> {
    /// Extra `postgres` options, e.g. `-c ssl=on -c ssl_cert_file=...`.
    pub extra_opts: String,
    /// Writes files into the cluster's directory before it is handed to the `postgres` user.
    pub prepare: Option<Prepare<'a>>,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("this test needs PostgreSQL's initdb and pg_ctl under /usr/lib/postgresql/*/bin")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        OwnCluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions<'_>) -> OwnCluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("arbosync-pg-")
            .tempdir()
            .expect("tempdir");
        if let Some(prepare) = options.prepare {
            prepare(dir.path());
        }
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster directory to postgres");
        }
        let cluster = OwnCluster {
            port: free_port(),
            dir,
            bin,
            extra_opts: options.extra_opts,
        };
        let data = cluster.data();
        let out = cluster.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start_server();
        cluster
    }

    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The cluster's own directory (data, socket, log, prepared files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(name);
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=30 {}",
            self.port,
            self.dir.path().display(),
            self.extra_opts
        );
        let log = self.log_file().display().to_string();
        let out = self.tool(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m immediate`: the server dies without a checkpoint, as on a crash.
    pub fn stop_immediate(&self) {
        let out = self.tool(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A client of `db` on this cluster.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.conninfo(db), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the own cluster on port {}: {e}", self.port));
        tokio::spawn(conn);
        client
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}
