//! End-to-end tests of the updater against a release server on 127.0.0.1 started by the test.
//!
//! Releases are built from copies of the project's own binary (`CARGO_BIN_EXE_arbosync-agent`,
//! with a tag appended so each "version" has its own hash and still runs), packed as
//! `arbosync-<v>-<target>.tar.gz` and signed with zipsign under a key generated here. The
//! "installed" binary lives in a temporary `bin/` directory; every refusal must leave its hash
//! unchanged. The health-check rollback runs the real `packaging/arbosync-update-guard` script,
//! as systemd's `ExecStartPre=` would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arbosync_agent::config::{UpdateChannel, UpdateSettings};
use arbosync_agent::state::StateStore;
use arbosync_agent::update::{
    Applied, CheckOutcome, InstallMode, Refusal, StagedInstall, StagedInstallOutcome, TrustedKeys,
    UpdateError, UpdateOutcome, Updater, build_target, swap,
};
use semver::Version;
use zipsign_api::SigningKey;

const AGENT: &str = env!("CARGO_BIN_EXE_arbosync-agent");
const GUARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/arbosync-update-guard"
);

// ------------------------------------------------------------------------------ release server

/// A static file server on 127.0.0.1: path → body. HTTP/1.1, one request per connection.
#[derive(Clone)]
struct Server {
    port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let shared = files.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let files = shared.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if line == "\r\n" || line == "\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("/")
                        .to_string();
                    let body = files.lock().unwrap().get(&path).cloned();
                    let _ = match body {
                        Some(b) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    b.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|()| stream.write_all(&b)),
                        None => stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        ),
                    };
                    let _ = stream.flush();
                });
            }
        });
        Server { port, files }
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), body);
    }

    fn manifest_template(&self) -> String {
        format!("http://127.0.0.1:{}/{{channel}}/manifest.json", self.port)
    }
}

// ------------------------------------------------------------------------------ releases

/// sha256 with coreutils' `sha256sum`: the test profile builds `sha2` without optimisation,
/// which takes seconds per copy of the binary.
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

fn file_hash(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// The project's binary, with its symbols stripped when `strip` is there (half the bytes to
/// hash, sign and copy; it still runs).
fn base_binary() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("arbosync-agent");
        std::fs::copy(AGENT, &copy).expect("copy the agent binary");
        let stripped = Command::new("strip")
            .arg(&copy)
            .status()
            .is_ok_and(|s| s.success());
        std::fs::read(if stripped {
            copy.as_path()
        } else {
            Path::new(AGENT)
        })
        .expect("read the agent binary")
    })
}

/// The project's binary with a tag appended: still runs, different hash per tag.
fn binary(tag: &str) -> Vec<u8> {
    let mut b = base_binary().to_vec();
    b.extend_from_slice(format!("\narbosync-test-build:{tag}\n").as_bytes());
    b
}

/// An unsigned `.tar.gz` with `<root>/bin/arbosync-agent` (and optionally the dashboard).
fn tar_gz(root: &str, agent: &[u8], dashboard: Option<&[u8]>) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append_data(&mut h, format!("{root}/bin/{name}"), data)
            .unwrap();
    };
    add("arbosync-agent", agent);
    if let Some(d) = dashboard {
        add("arbosync", d);
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// zipsign's `.tar.gz` signature with `context` (the asset name it is published under).
fn sign(archive: &[u8], keys: &[SigningKey], context: &str) -> Vec<u8> {
    let mut input = std::io::Cursor::new(archive.to_vec());
    let mut output = std::io::Cursor::new(Vec::new());
    zipsign_api::sign::copy_and_sign_tar(&mut input, &mut output, keys, Some(context.as_bytes()))
        .expect("sign");
    output.into_inner()
}

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The release key of this test run (generated here; the updater is given it with
/// `TrustedKeys::new`, in place of the compiled-in production keys).
fn test_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

fn asset(version: &str) -> String {
    format!("arbosync-{version}-{}.tar.gz", build_target())
}

fn root_dir(version: &str) -> String {
    format!("arbosync-{version}-{}", build_target())
}

/// A correctly built release archive for `version` from `binary(tag)`, signed with the test key
/// under its asset name. Cached: signing hashes the whole archive.
fn signed_release(version: &str, tag: &str) -> Arc<Vec<u8>> {
    type Cache = Vec<((String, String), Arc<Vec<u8>>)>;
    static CACHE: Mutex<Cache> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let key = (version.to_string(), tag.to_string());
    if let Some((_, a)) = cache.iter().find(|(k, _)| *k == key) {
        return a.clone();
    }
    let archive = Arc::new(sign(
        &tar_gz(&root_dir(version), &binary(tag), None),
        std::slice::from_ref(test_key()),
        &asset(version),
    ));
    cache.push((key, archive.clone()));
    archive
}

/// Manifest entries: (version, asset name listed, asset bytes).
fn publish(server: &Server, channel: &str, entries: &[(&str, &str, &[u8])]) {
    let releases: Vec<serde_json::Value> = entries
        .iter()
        .map(|(version, name, bytes)| {
            server.put(&format!("/{channel}/{name}"), bytes.to_vec());
            serde_json::json!({
                "version": version,
                "date": "2026-12-01T00:00:00Z",
                "assets": [{"name": name, "url": name, "digest": format!("sha256:{}", sha256_hex(bytes))}],
            })
        })
        .collect();
    let manifest = serde_json::json!({"schema": 1, "releases": releases});
    server.put(
        &format!("/{channel}/manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    );
}

// ------------------------------------------------------------------------------ installation

struct Install {
    _tmp: tempfile::TempDir,
    state_dir: PathBuf,
    bin_dir: PathBuf,
    store: StateStore,
    server: Server,
    installed_hash: String,
}

impl Install {
    /// An "installed" 1.0.0 (a tagged copy of the agent) with an empty state store.
    fn new() -> Install {
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("state");
        let bin_dir = tmp.path().join("bin");
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::create_dir_all(&bin_dir).unwrap();
        let exe = bin_dir.join("arbosync-agent");
        std::fs::write(&exe, binary("1.0.0")).unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (store, _) = StateStore::open(StateStore::default_dir(&state_dir)).unwrap();
        let installed_hash = file_hash(&exe);
        Install {
            _tmp: tmp,
            state_dir,
            bin_dir,
            store,
            server: Server::start(),
            installed_hash,
        }
    }

    fn exe(&self) -> PathBuf {
        self.bin_dir.join("arbosync-agent")
    }

    fn settings(&self, channel: UpdateChannel) -> UpdateSettings {
        UpdateSettings {
            channel,
            manifest_url: Some(self.server.manifest_template()),
            check_interval: Duration::from_secs(3600),
            enabled: true,
        }
    }

    /// The updater as the agent running `current` would build it, trusting the test key.
    fn updater(&self, current: &str) -> Updater {
        Updater::new(
            &self.settings(UpdateChannel::Stable),
            &self.state_dir,
            self.store.clone(),
        )
        .unwrap()
        .with_keys(TrustedKeys::new(vec![test_key().verifying_key().to_bytes()]).unwrap())
        .with_current_version(Version::parse(current).unwrap())
        .with_install_mode(InstallMode::InPlace {
            bin_dir: self.bin_dir.clone(),
        })
    }

    fn work_dir(&self) -> PathBuf {
        self.state_dir.join("update")
    }

    /// `ExecStartPre=` as systemd would run it for a tarball install.
    fn guard(&self, now: Option<u64>) {
        let work = self.work_dir();
        let mut cmd = Command::new("sh");
        cmd.arg(GUARD).arg(&work).arg(&self.bin_dir).arg(&work);
        if let Some(now) = now {
            cmd.env("ARBOSYNC_GUARD_NOW", now.to_string());
        }
        let out = cmd.output().expect("run the guard script");
        assert!(
            out.status.success(),
            "the guard must never fail a start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn assert_unchanged(&self, case: &str) {
        assert_eq!(
            file_hash(&self.exe()),
            self.installed_hash,
            "{case}: the installed binary must be unchanged"
        );
        assert_runs(&self.exe());
    }
}

fn assert_runs(exe: &Path) {
    let out = Command::new(exe)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    assert!(out.status.success(), "{} --version failed", exe.display());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("arbosync-agent "));
}

/// Runs the whole update and expects a refusal with `expected` as reason.
async fn expect_refused(install: &Install, case: &str, expected: impl Fn(&Refusal) -> bool) {
    let updater = install.updater("1.0.0");
    match updater.update().await {
        Err(UpdateError::Refused { reason, .. })
        | Ok(UpdateOutcome::NotApplied(CheckOutcome::Refused { reason, .. })) => {
            assert!(expected(&reason), "{case}: unexpected reason: {reason:?}");
            // The message a person reads says why.
            assert!(!reason.to_string().is_empty());
        }
        other => panic!("{case}: expected a refusal, got {other:?}"),
    }
    install.assert_unchanged(case);
    assert_eq!(updater.restart_required().unwrap(), None, "{case}");
    let status = updater.status().unwrap();
    assert_eq!(status.pending, None, "{case}");
}

// ------------------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_signed_release_is_installed_and_confirmed() {
    let install = Install::new();
    let new_bin = binary("1.1.0");
    publish(
        &install.server,
        "stable",
        &[
            (
                "1.0.0",
                &asset("1.0.0"),
                signed_release("1.0.0", "1.0.0").as_slice(),
            ),
            (
                "1.1.0",
                &asset("1.1.0"),
                signed_release("1.1.0", "1.1.0").as_slice(),
            ),
        ],
    );
    let updater = install.updater("1.0.0");
    match updater.check().await.unwrap() {
        CheckOutcome::Available(c) => assert_eq!(c.version, Version::new(1, 1, 0)),
        other => panic!("expected 1.1.0 available, got {other:?}"),
    }
    let outcome = updater.update().await.unwrap();
    let UpdateOutcome::Applied(Applied::Swapped(pending)) = outcome else {
        panic!("expected a swap, got {outcome:?}");
    };
    assert_eq!(pending.version, Version::new(1, 1, 0));
    assert_eq!(file_hash(&install.exe()), sha256_hex(&new_bin));
    assert_runs(&install.exe());
    // The previous binary is kept whole.
    assert_eq!(
        file_hash(&install.work_dir().join("previous/arbosync-agent")),
        install.installed_hash
    );
    assert_eq!(
        updater.restart_required().unwrap(),
        Some(Version::new(1, 1, 0))
    );

    // systemd restarts the service: the guard lets the new version start...
    install.guard(None);
    assert_eq!(file_hash(&install.exe()), sha256_hex(&new_bin));
    // ...and the new agent reports ready.
    let after = install.updater("1.1.0");
    after.confirm_healthy().unwrap();
    assert_eq!(after.floor().unwrap(), Some(Version::new(1, 1, 0)));
    let status = after.status().unwrap();
    assert_eq!(status.running_version, "1.1.0");
    assert_eq!(status.pending, None);
    assert!(!status.restart_required);
    assert_eq!(after.restart_required().unwrap(), None);
    // Later restarts leave it alone.
    install.guard(None);
    install.guard(None);
    assert_eq!(file_hash(&install.exe()), sha256_hex(&new_bin));
    assert!(matches!(
        after.check().await.unwrap(),
        CheckOutcome::UpToDate { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_release_is_refused() {
    let install = Install::new();
    let unsigned = tar_gz(&root_dir("1.1.0"), &binary("1.1.0"), None);
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &unsigned)],
    );
    expect_refused(&install, "unsigned", |r| *r == Refusal::Unsigned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_signed_with_another_key_is_refused() {
    let install = Install::new();
    let other = new_key();
    let release = sign(
        &tar_gz(&root_dir("1.1.0"), &binary("1.1.0"), None),
        &[other],
        &asset("1.1.0"),
    );
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &release)],
    );
    expect_refused(&install, "wrong key", |r| *r == Refusal::SignatureMismatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_archive_is_refused() {
    let install = Install::new();
    let mut release = signed_release("1.1.0", "1.1.0").to_vec();
    // Flip a byte inside the signed data; the attacker also publishes the matching digest.
    let i = release.len() / 2;
    release[i] ^= 0x55;
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &release)],
    );
    expect_refused(&install, "tampered", |r| *r == Refusal::SignatureMismatch).await;

    // With the original digest left in the manifest, the checksum catches it first.
    let good = signed_release("1.1.0", "1.1.0");
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &good)],
    );
    install
        .server
        .put(&format!("/stable/{}", asset("1.1.0")), release);
    expect_refused(&install, "tampered, digest kept", |r| {
        *r == Refusal::ChecksumMismatch
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_asset_is_refused() {
    let install = Install::new();
    // Signed under another name (its context), published under the expected one.
    let other_name = format!("arbosync-1.1.0-{}-debug.tar.gz", build_target());
    let signed_elsewhere = sign(
        &tar_gz(&root_dir("1.1.0"), &binary("1.1.0"), None),
        std::slice::from_ref(test_key()),
        &other_name,
    );
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &signed_elsewhere)],
    );
    expect_refused(&install, "renamed after signing", |r| {
        *r == Refusal::SignatureMismatch
    })
    .await;

    // A correctly signed archive listed under a name that is not the release's asset name.
    let good = signed_release("1.1.0", "1.1.0");
    publish(&install.server, "stable", &[("1.1.0", &other_name, &good)]);
    expect_refused(&install, "listed under another name", |r| {
        matches!(r, Refusal::NoAssetForTarget { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_is_refused() {
    let install = Install::new();
    let old = signed_release("0.9.0", "0.9.0");
    publish(
        &install.server,
        "stable",
        &[("0.9.0", &asset("0.9.0"), &old)],
    );
    expect_refused(&install, "older than running", |r| {
        matches!(r, Refusal::NotNewer { .. })
    })
    .await;

    // Running 1.0.0 after a manual rollback, but 1.2.0 was installed here once: 1.1.0 is a
    // downgrade from the floor.
    install.store.set_installed_version_floor("1.2.0").unwrap();
    let mid = signed_release("1.1.0", "1.1.0");
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &mid)],
    );
    expect_refused(
        &install,
        "below the floor",
        |r| matches!(r, Refusal::BelowFloor { floor } if floor == "1.2.0"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_release_republished_under_a_newer_version_is_refused() {
    let install = Install::new();
    // 1.0.5 was released and signed properly (its context is its own asset name).
    let old = signed_release("1.0.5", "1.0.5");
    // Re-published as 1.2.0 under the 1.2.0 asset name: the signature's context differs.
    publish(
        &install.server,
        "stable",
        &[("1.2.0", &asset("1.2.0"), &old)],
    );
    expect_refused(&install, "renamed to the new version", |r| {
        *r == Refusal::SignatureMismatch
    })
    .await;
    // Re-published as 1.2.0 keeping its own name: the name does not match the version.
    publish(
        &install.server,
        "stable",
        &[("1.2.0", &asset("1.0.5"), &old)],
    );
    expect_refused(&install, "kept its old name", |r| {
        matches!(r, Refusal::NoAssetForTarget { .. })
    })
    .await;
}

#[test]
fn an_empty_key_list_cannot_be_configured() {
    assert!(matches!(
        TrustedKeys::new(Vec::new()),
        Err(UpdateError::NoTrustedKeys)
    ));
    // The production list is compiled in and not empty (an empty one fails the build).
    assert!(!TrustedKeys::release().as_slice().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_channel_stays() {
    let install = Install::new();
    let release = signed_release("1.1.0", "1.1.0");
    publish(
        &install.server,
        "stable",
        &[("1.1.0", &asset("1.1.0"), &release)],
    );
    let updater = Updater::new(
        &install.settings(UpdateChannel::Pinned("1.0.0".into())),
        &install.state_dir,
        install.store.clone(),
    )
    .unwrap()
    .with_keys(TrustedKeys::new(vec![test_key().verifying_key().to_bytes()]).unwrap())
    .with_current_version(Version::new(1, 0, 0))
    .with_install_mode(InstallMode::InPlace {
        bin_dir: install.bin_dir.clone(),
    });
    assert!(matches!(
        updater.update().await.unwrap(),
        UpdateOutcome::NotApplied(CheckOutcome::Pinned { .. })
    ));
    install.assert_unchanged("pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_its_health_check_is_rolled_back() {
    let install = Install::new();
    let bad = binary("1.1.0-bad");
    publish(
        &install.server,
        "stable",
        &[(
            "1.1.0",
            &asset("1.1.0"),
            signed_release("1.1.0", "1.1.0-bad").as_slice(),
        )],
    );
    let updater = install.updater("1.0.0");
    assert!(matches!(
        updater.update().await.unwrap(),
        UpdateOutcome::Applied(Applied::Swapped(_))
    ));
    assert_eq!(file_hash(&install.exe()), sha256_hex(&bad));

    // First start of 1.1.0: its trial. It never reports ready (crashes, hangs until systemd's
    // start timeout, or is killed by the watchdog), so systemd starts it again.
    install.guard(None);
    assert_eq!(file_hash(&install.exe()), sha256_hex(&bad));
    install.guard(None);

    // The previous binary is back, and the reason is recorded.
    install.assert_unchanged("rolled back");
    let status = install.updater("1.0.0").status().unwrap();
    let rollback = status.last_rollback.expect("a rollback record");
    assert_eq!(rollback.version, "1.1.0");
    assert_eq!(rollback.restored, "1.0.0");
    assert!(
        rollback.reason.contains("without reporting ready"),
        "{}",
        rollback.reason
    );
    assert_eq!(status.pending, None);
    // The bad version is never installed again; a fixed one is.
    let again = install.updater("1.0.0");
    match again.update().await.unwrap() {
        UpdateOutcome::NotApplied(CheckOutcome::Refused { reason, .. }) => {
            assert_eq!(reason, Refusal::RolledBackBefore)
        }
        other => panic!("expected the rolled-back version to be refused, got {other:?}"),
    }
    install.assert_unchanged("not re-installed");
    let fixed = binary("1.1.1");
    publish(
        &install.server,
        "stable",
        &[
            (
                "1.1.0",
                &asset("1.1.0"),
                signed_release("1.1.0", "1.1.0-bad").as_slice(),
            ),
            (
                "1.1.1",
                &asset("1.1.1"),
                signed_release("1.1.1", "1.1.1").as_slice(),
            ),
        ],
    );
    assert!(matches!(
        again.update().await.unwrap(),
        UpdateOutcome::Applied(Applied::Swapped(p)) if p.version == Version::new(1, 1, 1)
    ));
    assert_eq!(file_hash(&install.exe()), sha256_hex(&fixed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_past_its_health_deadline_is_rolled_back() {
    let install = Install::new();
    publish(
        &install.server,
        "stable",
        &[(
            "1.1.0",
            &asset("1.1.0"),
            signed_release("1.1.0", "1.1.0").as_slice(),
        )],
    );
    let updater = install
        .updater("1.0.0")
        .with_health_deadline(Duration::from_secs(60));
    assert!(matches!(
        updater.update().await.unwrap(),
        UpdateOutcome::Applied(Applied::Swapped(_))
    ));
    let pending = swap::read_pending(&install.work_dir()).unwrap().unwrap();
    // The first start happens after the deadline (the machine was down, say).
    install.guard(Some(pending.deadline + 1));
    install.assert_unchanged("deadline");
    let rollback = swap::read_last_rollback(&install.work_dir())
        .unwrap()
        .unwrap();
    assert!(rollback.reason.contains("deadline"), "{}", rollback.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_by_hand_restores_the_previous_binary() {
    let install = Install::new();
    publish(
        &install.server,
        "stable",
        &[(
            "1.1.0",
            &asset("1.1.0"),
            signed_release("1.1.0", "1.1.0").as_slice(),
        )],
    );
    install.updater("1.0.0").update().await.unwrap();
    let running_new = install.updater("1.1.0");
    running_new.confirm_healthy().unwrap();
    let record = running_new.rollback("operator: bad release").unwrap();
    assert_eq!(record.restored, "1.0.0");
    install.assert_unchanged("manual rollback");
    // The floor stays at 1.1.0: the operator pins the channel to stay on 1.0.0.
    assert_eq!(running_new.floor().unwrap(), Some(Version::new(1, 1, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_installs_are_swapped_by_the_root_unit_after_verifying_again() {
    let install = Install::new();
    let root_work = install.state_dir.join("root-work");
    let new_bin = binary("1.1.0");
    publish(
        &install.server,
        "stable",
        &[(
            "1.1.0",
            &asset("1.1.0"),
            signed_release("1.1.0", "1.1.0").as_slice(),
        )],
    );
    let keys = TrustedKeys::new(vec![test_key().verifying_key().to_bytes()]).unwrap();
    let agent = install
        .updater("1.0.0")
        .with_install_mode(InstallMode::Package {
            work_dir: root_work.clone(),
        });
    let root = StagedInstall {
        agent_update_dir: install.work_dir(),
        work_dir: root_work.clone(),
        install_dir: install.bin_dir.clone(),
        keys: keys.clone(),
        current_version: Version::new(1, 0, 0),
        target: build_target().to_string(),
        health_deadline: Duration::from_secs(600),
    };

    // A compromised agent swaps the verified archive for a tampered one after staging: root
    // verifies again and refuses.
    assert!(matches!(
        agent.update().await.unwrap(),
        UpdateOutcome::Applied(Applied::HandedOff { .. })
    ));
    install.assert_unchanged("handed off, not yet swapped");
    let staged_archive = install.work_dir().join("download").join(asset("1.1.0"));
    let mut bytes = std::fs::read(&staged_archive).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&staged_archive, bytes).unwrap();
    match arbosync_agent::update::install_staged(&root).await {
        Err(UpdateError::Refused { reason, .. }) => assert_eq!(reason, Refusal::SignatureMismatch),
        other => panic!("expected the root unit to refuse, got {other:?}"),
    }
    install.assert_unchanged("root refused");
    assert!(
        std::fs::read_to_string(root_work.join("result"))
            .unwrap()
            .starts_with("error=")
    );
    // The trigger is consumed either way (the path unit must not loop).
    assert_eq!(
        arbosync_agent::update::install_staged(&root).await.unwrap(),
        StagedInstallOutcome::NothingStaged
    );

    // The genuine archive goes through.
    assert!(matches!(
        agent.update().await.unwrap(),
        UpdateOutcome::Applied(Applied::HandedOff { .. })
    ));
    assert!(matches!(
        arbosync_agent::update::install_staged(&root).await.unwrap(),
        StagedInstallOutcome::Installed(p) if p.version == Version::new(1, 1, 0)
    ));
    assert_eq!(file_hash(&install.exe()), sha256_hex(&new_bin));
    assert_eq!(
        agent.restart_required().unwrap(),
        Some(Version::new(1, 1, 0))
    );
    // A trigger naming an older release is refused by root even though it is validly signed.
    let old = signed_release("0.9.0", "0.9.0");
    std::fs::write(
        install.work_dir().join("download").join(asset("0.9.0")),
        old.as_slice(),
    )
    .unwrap();
    std::fs::write(
        install.work_dir().join("staged/ready"),
        format!("asset={}\n", asset("0.9.0")),
    )
    .unwrap();
    let root_now = StagedInstall {
        current_version: Version::new(1, 1, 0),
        ..root
    };
    assert!(matches!(
        arbosync_agent::update::install_staged(&root_now).await,
        Err(UpdateError::Refused {
            reason: Refusal::NotNewer { .. },
            ..
        })
    ));
    assert_eq!(file_hash(&install.exe()), sha256_hex(&new_bin));
}

// ------------------------------------------------------------------------------ kill mid-swap

const CHILD_ENV: &str = "ARBOSYNC_TEST_SWAP_CHILD";

/// Not a test on its own: the child process of `killing_during_the_swap_leaves_a_runnable_binary`
/// (it swaps two binaries back and forth until it is killed).
#[test]
#[ignore = "child process of killing_during_the_swap_leaves_a_runnable_binary"]
fn swap_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let work = dir.join("work");
    let bin_dir = dir.join("bin");
    let a = (
        "arbosync-agent".to_string(),
        dir.join("release-a/arbosync-agent"),
    );
    let b = (
        "arbosync-agent".to_string(),
        dir.join("release-b/arbosync-agent"),
    );
    let v1 = Version::new(1, 0, 0);
    let v2 = Version::new(1, 1, 0);
    println!("swapping");
    std::io::stdout().flush().unwrap();
    for i in 0u64.. {
        let (new, from, to) = if i % 2 == 0 {
            (&b, &v1, &v2)
        } else {
            (&a, &v2, &v1)
        };
        swap::install(
            &work,
            &bin_dir,
            std::slice::from_ref(new),
            from,
            to,
            Duration::from_secs(60),
        )
        .unwrap();
    }
}

#[test]
fn killing_during_the_swap_leaves_a_runnable_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for sub in ["work", "bin", "release-a", "release-b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let a = binary("A");
    let b = binary("B");
    let (ha, hb) = (sha256_hex(&a), sha256_hex(&b));
    std::fs::write(dir.join("release-a/arbosync-agent"), &a).unwrap();
    std::fs::write(dir.join("release-b/arbosync-agent"), &b).unwrap();
    std::fs::write(dir.join("bin/arbosync-agent"), &a).unwrap();
    std::fs::set_permissions(
        dir.join("bin/arbosync-agent"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let me = std::env::current_exe().unwrap();
    let iterations = 12;
    let mut seen = std::collections::HashSet::new();
    for i in 0..iterations {
        let mut child = Command::new(&me)
            .args(["--ignored", "--exact", "swap_child_process", "--nocapture"])
            .env(CHILD_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child is swapping, then kill it at a random moment.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || line.contains("swapping") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rand::random_range(0..1500)));
        child.kill().unwrap();
        let _ = child.wait();
        let _ = out.read_to_end(&mut Vec::new());

        let exe = dir.join("bin/arbosync-agent");
        let h = file_hash(&exe);
        assert!(
            h == ha || h == hb,
            "iteration {i}: the installed binary is neither the old nor the new one"
        );
        assert_runs(&exe);
        seen.insert(h);
        let prev = dir.join("work/previous/arbosync-agent");
        if prev.exists() {
            let hp = file_hash(&prev);
            assert!(hp == ha || hp == hb, "iteration {i}: previous/ is torn");
        }
    }
    // The kills did land at different points (not all before the first swap).
    assert!(!seen.is_empty());
}
