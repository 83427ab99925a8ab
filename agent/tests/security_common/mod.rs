//! Shared harness of the security tests (`security_*.rs`): running the real `arbosync-agent`
//! binary, certificates generated in the test (rcgen), a TLS-terminating proxy and a recording
//! ("tee") proxy in front of the Loket simulator, canary searches over bytes and directory trees,
//! and PostgreSQL administration on the shared server (databases and roles created per test and
//! dropped afterwards).

#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub const BIN: &str = env!("CARGO_BIN_EXE_arbosync-agent");
pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// Valid test BSNs (they pass the 11-test) from `reliability-security.md` §3.3.
pub const CANARY_BSNS: [&str; 2] = ["111222333", "123456782"];

// ------------------------------------------------------------------------------ processes

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the agent binary with `args` (plus `--config`), debug logging, optional stdin.
pub async fn agent(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "debug")
        .env_remove("ARBOSYNC_FAILPOINT")
        .env_remove("ARBOSYNC_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the agent binary starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    child.wait_with_output().await.expect("the agent finishes")
}

/// `connect NAME --refresh-token-stdin`, which must succeed (it stores the token offline).
pub async fn connect(config: &Path, name: &str, token: &str) {
    let out = agent(
        config,
        &["connect", name, "--refresh-token-stdin"],
        &[],
        Some(token),
    )
    .await;
    assert!(out.status.success(), "connect failed: {}", text(&out));
}

/// A panic anywhere in the output is a bug: failures must be reported, not crash.
pub fn assert_no_panic(what: &str, output: &str) {
    assert!(
        !output.contains("panicked") && !output.contains("RUST_BACKTRACE"),
        "{what}: the agent panicked:\n{output}"
    );
}

// ------------------------------------------------------------------------------ canaries

/// The canaries found in `haystack` (byte search: binary files count too).
pub fn canaries_in(haystack: &[u8], canaries: &[String]) -> Vec<String> {
    canaries
        .iter()
        .filter(|c| !c.is_empty() && haystack.windows(c.len()).any(|w| w == c.as_bytes()))
        .cloned()
        .collect()
}

/// Every regular file under `dir` (recursively), except paths for which `skip` is true.
pub fn files_under(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if skip(&p) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `(file, canary)` for every canary found in a file under `dir` (minus `skip`).
pub fn grep_tree(dir: &Path, canaries: &[String], skip: &dyn Fn(&Path) -> bool) -> Vec<String> {
    let mut hits = Vec::new();
    for p in files_under(dir, skip) {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        for c in canaries_in(&bytes, canaries) {
            hits.push(format!("{c:?} in {}", p.display()));
        }
    }
    hits
}

/// Strings that follow `"key":"` in `bytes` (the OAuth token responses, which are JSON).
pub fn json_string_values(bytes: &[u8], key: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let needle = format!("\"{key}\":\"");
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Values of `key=` in form-encoded request bodies in `bytes` (the OAuth refresh requests).
pub fn form_values(bytes: &[u8], key: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let needle = format!("{key}=");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&needle) {
        let starts_field = at == 0 || matches!(text.as_bytes()[at - 1], b'&' | b'\n' | b'?');
        if !starts_field {
            continue;
        }
        let rest = &text[at + needle.len()..];
        let end = rest
            .find(|c: char| c == '&' || c.is_whitespace())
            .unwrap_or(rest.len());
        if end > 0 {
            out.push(rest[..end].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

// ------------------------------------------------------------------------------ certificates

/// A server certificate chain (leaf first) and its PKCS#8 private key.
#[derive(Clone)]
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

/// Every certificate the TLS tests need, generated fresh.
pub struct Pki {
    /// The test CA, in PEM (what a `ca_file` holds).
    pub ca_pem: String,
    /// Signed by the test CA for `localhost` and `127.0.0.1`, valid now.
    pub good: ServerCert,
    /// A self-signed leaf for `localhost`.
    pub self_signed: ServerCert,
    /// Signed by the test CA, valid now, but only for `wrong.example.org`.
    pub wrong_name: ServerCert,
    /// Signed by the test CA for `localhost`, expired in 2021.
    pub expired: ServerCert,
    /// For `localhost`, valid now, signed by another CA that nobody trusts.
    pub unknown_ca: ServerCert,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "arbosync security tests");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (year, _) = this_year();
    params.not_before = date_time_ymd(year - 5, 1, 1);
    params.not_after = date_time_ymd(year + 5, 12, 31);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

fn this_year() -> (i32, u32) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    (today.year(), today.month())
}

/// Leaf parameters for `names`, valid from `from` to `until` (years).
fn leaf_params(names: &[&str], from: i32, until: i32) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    // A distinctive subject: a self-signed leaf's issuer is its subject, and a system trust
    // store may hold an unrelated root named plainly `CN=localhost` (Debian's snakeoil cert).
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("arbosync test server {}", names[0]),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(until, 12, 31);
    params
}

fn leaf(params: CertificateParams, issuer: &CertifiedIssuer<'static, KeyPair>) -> ServerCert {
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    ServerCert {
        chain: vec![cert.der().clone(), issuer.der().clone()],
        key_pkcs8: key.serialize_der(),
    }
}

impl Pki {
    pub fn generate() -> Pki {
        let (year, _) = this_year();
        let trusted = ca("arbosync test CA");
        let stranger = ca("arbosync unknown CA");
        let self_key = KeyPair::generate().expect("self-signed key");
        let self_cert = leaf_params(&["localhost", "127.0.0.1"], year - 1, year + 1)
            .self_signed(&self_key)
            .expect("self-signed cert");
        Pki {
            ca_pem: trusted.pem(),
            good: leaf(
                leaf_params(&["localhost", "127.0.0.1"], year - 1, year + 1),
                &trusted,
            ),
            self_signed: ServerCert {
                chain: vec![self_cert.der().clone()],
                key_pkcs8: self_key.serialize_der(),
            },
            wrong_name: leaf(
                leaf_params(&["wrong.example.org"], year - 1, year + 1),
                &trusted,
            ),
            expired: leaf(
                leaf_params(&["localhost", "127.0.0.1"], 2019, 2021),
                &trusted,
            ),
            unknown_ca: leaf(
                leaf_params(&["localhost", "127.0.0.1"], year - 1, year + 1),
                &stranger,
            ),
        }
    }
}

// ------------------------------------------------------------------------------ proxies

/// Copies bytes both ways between `a` and `b`, appending everything to `log` when given.
async fn pump<A, B>(a: A, b: B, log: Option<Arc<Mutex<Vec<u8>>>>)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let log2 = log.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match ar.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(l) = &log {
                        l.lock().expect("log").extend_from_slice(&buf[..n]);
                    }
                    if bw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = bw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match br.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(l) = &log2 {
                        l.lock().expect("log").extend_from_slice(&buf[..n]);
                    }
                    if aw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = aw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// An HTTPS front on `127.0.0.1:port` that terminates TLS with a given certificate and passes
/// the plaintext to `upstream` (the simulator). Counts completed and failed handshakes.
pub struct TlsFront {
    pub port: u16,
    pub handshakes_ok: Arc<AtomicU64>,
    pub handshakes_failed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(cert: &ServerCert, upstream: SocketAddr) -> TlsFront {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                cert.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pkcs8.clone())),
            )
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (ok2, failed2) = (Arc::clone(&ok), Arc::clone(&failed));
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (ok, failed) = (Arc::clone(&ok2), Arc::clone(&failed2));
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            if let Ok(up) = TcpStream::connect(upstream).await {
                                pump(tls, up, None).await;
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsFront {
            port,
            handshakes_ok: ok,
            handshakes_failed: failed,
            task,
        }
    }

    pub fn ok(&self) -> u64 {
        self.handshakes_ok.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.handshakes_failed.load(Ordering::SeqCst)
    }

    /// Waits (up to 5 s) until the server side has seen `n` handshakes end, either way: the
    /// client's alert reaches the server after the client has already returned its error.
    pub async fn settle(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.ok() + self.failed() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain TCP proxy on `127.0.0.1:port` that records every byte in both directions (to learn
/// the access and refresh tokens the simulator issued, which the test then uses as canaries).
pub struct Tee {
    pub port: u16,
    pub log: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Tee {
    pub async fn start(upstream: SocketAddr) -> Tee {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = Arc::clone(&log2);
                tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(upstream).await {
                        pump(tcp, up, Some(log)).await;
                    }
                });
            }
        });
        Tee { port, log, task }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.log.lock().expect("log").clone()
    }

    /// Every access and refresh token seen on the wire (requests and responses).
    pub fn tokens(&self) -> Vec<String> {
        let bytes = self.bytes();
        let mut all = json_string_values(&bytes, "access_token");
        all.extend(json_string_values(&bytes, "refresh_token"));
        all.extend(form_values(&bytes, "refresh_token"));
        all.sort();
        all.dedup();
        all
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The simulator's socket address (from its `base_url`, `http://127.0.0.1:PORT`).
pub fn sim_addr(sim: &loket_sim::RunningSim) -> SocketAddr {
    let url = url::Url::parse(&sim.base_url).expect("sim url");
    let port = url.port().expect("sim port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ------------------------------------------------------------------------------ PostgreSQL

/// A connection to the shared server as `postgres`; fails the test clearly when unreachable.
pub async fn pg_connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL must be reachable at 127.0.0.1:5432 (trust auth) for this test \
                 ({conninfo}): {e}"
            )
        });
    tokio::spawn(conn);
    client
}

pub async fn pg_admin() -> tokio_postgres::Client {
    pg_connect(PG_ADMIN).await
}

/// A short random suffix for database and role names on the shared server.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Runs `statements` as `postgres` on the `postgres` database from a separate thread with its
/// own runtime, so `Drop` implementations can clean up (also after a failed test).
pub fn pg_cleanup_blocking(statements: Vec<String>) {
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        rt.block_on(async {
            let (admin, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            for s in &statements {
                admin
                    .batch_execute(s)
                    .await
                    .map_err(|e| format!("{s}: {e}"))?;
            }
            Ok::<(), String>(())
        })
    })
    .join();
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("cleanup on the shared PostgreSQL server failed: {e}"),
        Err(_) => eprintln!("cleanup on the shared PostgreSQL server panicked"),
    }
}

// ------------------------------------------------------------------------------ the service

/// A running `arbosync-agent run` (stdout and stderr go to files); killed on drop.
pub struct Service {
    pub child: std::process::Child,
    pub socket: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Service {
    /// Starts the service and waits (up to 30 s) until its control socket accepts connections.
    pub fn start(config: &Path, socket: &Path, out_dir: &Path) -> Service {
        let stdout = out_dir.join("service.stdout");
        let stderr = out_dir.join("service.stderr");
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("output file")
        };
        let child = std::process::Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug")
            .env_remove("ARBOSYNC_CONFIG")
            .env_remove("ARBOSYNC_FAILPOINT")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr))
            .spawn()
            .expect("the service starts");
        let mut service = Service {
            child,
            socket: socket.to_path_buf(),
            stdout,
            stderr,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "the service exited ({status}) before opening its socket: {}",
                    service.output()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the control socket did not come up: {}",
                service.output()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the service printed so far.
    pub fn output(&self) -> String {
        let mut s = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(&self.stderr).unwrap_or_default());
        s
    }

    /// SIGTERM and wait (up to 30 s) for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to the service");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service did not stop within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw control-socket session (length-delimited JSON frames), recording every byte sent and
/// received in `transcript`.
pub struct Control {
    stream: tokio::net::UnixStream,
    pub transcript: Vec<u8>,
    /// Event frames received and not yet consumed by [`Control::wait_event`].
    pub events: Vec<serde_json::Value>,
    /// Every frame received, in order.
    pub frames: Vec<serde_json::Value>,
    next_id: u64,
}

impl Control {
    /// Connects and says hello; the agent must welcome us.
    pub async fn open(socket: &Path) -> Control {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect to the control socket");
        let mut c = Control {
            stream,
            transcript: Vec::new(),
            events: Vec::new(),
            frames: Vec::new(),
            next_id: 1,
        };
        c.write(&serde_json::json!({
            "type": "hello",
            "protocol_version": arbosync_shared::PROTOCOL_VERSION,
            "client": "security-test",
        }))
        .await;
        let welcome = c.read(std::time::Duration::from_secs(10)).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    async fn write(&mut self, v: &serde_json::Value) {
        let payload = serde_json::to_vec(v).expect("json");
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.transcript.extend_from_slice(&frame);
        self.stream.write_all(&frame).await.expect("write frame");
    }

    async fn read(&mut self, limit: std::time::Duration) -> serde_json::Value {
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((len, payload))
        };
        let (len, payload) = tokio::time::timeout(limit, read)
            .await
            .expect("a frame from the agent in time")
            .expect("read a frame");
        self.transcript.extend_from_slice(&len);
        self.transcript.extend_from_slice(&payload);
        let v: serde_json::Value = serde_json::from_slice(&payload).expect("the agent sends JSON");
        self.frames.push(v.clone());
        v
    }

    /// Sends a request and returns its response frame; events that arrive meanwhile are kept.
    pub async fn request(&mut self, request: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&serde_json::json!({"type": "request", "id": id, "request": request}))
            .await;
        loop {
            let f = self.read(std::time::Duration::from_secs(30)).await;
            match f["type"].as_str() {
                Some("response") if f["id"] == id => return f,
                Some("event") => self.events.push(f["event"].clone()),
                _ => {}
            }
        }
    }

    /// The first event (kept or new) for which `pred` holds, waiting up to `limit`.
    pub async fn wait_event(
        &mut self,
        limit: std::time::Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "timed out waiting for an event");
            let f = self.read(left).await;
            if f["type"] == "event" {
                if pred(&f["event"]) {
                    return f["event"].clone();
                }
                self.events.push(f["event"].clone());
            }
        }
    }
}
