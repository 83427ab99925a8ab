//! R16, no plaintext secrets at rest or in the environment. The real `arbosync-agent run` syncs
//! through a recording proxy with short-lived access tokens, so refresh tokens rotate several
//! times; every token seen on the wire, the initial refresh token and the OAuth client secret are
//! canaries. None may appear in the state directory (sled, sealed token files), the SQLite
//! database, the log files, stdout/stderr, or `/proc/<pid>/environ` and `cmdline` of the running
//! service. A PostgreSQL password in the database URL is not printed either, also when the
//! connection fails. A sealed token does not open with another key (library), and the binary
//! reports a wrong, malformed or too-open key file as a clear error, never a panic.

mod security_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbosync_agent::secrets::{SecretError, SecretStore};
use security_common::*;

const CLIENT_SECRET: &str = "CANARY-CLIENT-SECRET-5d0c2e";

struct Setup {
    dir: tempfile::TempDir,
    sim: loket_sim::RunningSim,
    tee: Tee,
    config: PathBuf,
    socket: PathBuf,
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }
}

/// A simulator that requires the client secret and issues access tokens valid for `ttl` seconds,
/// behind a recording proxy; a configuration that reaches it through the proxy.
async fn setup(seed: u64, ttl: u64, interval: &str) -> Setup {
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed,
        employers: 2,
        employees_per_employer: 6,
        max_page_size: 4,
        access_token_ttl_secs: ttl,
        client_secret: Some(CLIENT_SECRET.into()),
        ..Default::default()
    })
    .await
    .expect("the simulator starts");
    let tee = Tee::start(sim_addr(&sim)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("client.secret");
    std::fs::write(&secret_file, CLIENT_SECRET).expect("secret file");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let socket = dir.path().join("run").join("agent.sock");
    let base = format!("http://127.0.0.1:{}", tee.port);
    let mut text = format!(
        r#"[agent]
state_dir = "{state}"
socket = "{socket}"
log_dir = "{logs}"
log_level = "trace"
interval = "{interval}"
full_reconcile_interval = "1h"

[database]
url = "sqlite://{state}/arbodienst.db"

[[connection]]
name = "sim"
api_url = "{base}/v2"
oauth_url = "{base}/oauth"
client_id = "{client}"
client_secret_file = "{secret}"
requests_per_second = 1000.0
"#,
        state = dir.path().join("state").display(),
        socket = socket.display(),
        logs = dir.path().join("logs").display(),
        client = sim.client_id,
        secret = secret_file.display(),
    );
    for id in &sim.employer_ids {
        text.push_str(&format!(
            "\n[[employer]]\nid = \"{id}\"\nconnection = \"sim\"\nactive = true\nall_employments = true\n"
        ));
    }
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, text).expect("config");
    Setup {
        dir,
        sim,
        tee,
        config,
        socket,
    }
}

fn environ_of(pid: u32) -> Vec<u8> {
    let mut all = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    all.extend(std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline"));
    all
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_the_client_secret_never_rest_in_plaintext() {
    // Access tokens live 2 s and a run is due every 2 s: refreshes (and rotations) keep coming.
    let s = setup(91, 2, "2s").await;
    let initial = s.sim.refresh_token.clone();
    connect(&s.config, "sim", &initial).await;
    let service = Service::start(&s.config, &s.socket, s.dir.path());

    let mut control = Control::open(&s.socket).await;
    control
        .request(serde_json::json!({"op": "subscribe"}))
        .await;
    // Enough finished runs for several refreshes: at least 3 per employer.
    let mut finished = 0;
    while finished < 6 {
        control
            .wait_event(Duration::from_secs(60), |e| e["kind"] == "run_finished")
            .await;
        finished += 1;
    }
    let snapshot = control.request(serde_json::json!({"op": "snapshot"})).await;
    let errors = control
        .request(serde_json::json!({"op": "errors", "employer": null}))
        .await;
    // The running service's environment and command line, while it holds the tokens.
    let environ = environ_of(service.pid());
    let status = service.stop();
    assert!(status.success(), "clean exit: {status}");

    let mut canaries = s.tee.tokens();
    let refreshes = s.sim.state().stats().token_requests;
    assert!(
        refreshes >= 3 && canaries.len() >= 4,
        "sanity: the test must see several rotations ({refreshes} token requests, {} tokens)",
        canaries.len()
    );
    assert!(
        canaries.contains(&initial),
        "sanity: the proxy saw the initial refresh token"
    );
    canaries.push(CLIENT_SECRET.to_string());
    canaries.sort();
    canaries.dedup();
    assert!(
        !canaries_in(&s.tee.bytes(), &[CLIENT_SECRET.to_string()]).is_empty(),
        "sanity: the client secret went over the wire (so the search would find it)"
    );

    eprintln!(
        "R16: {} canaries ({} tokens seen on the wire, {refreshes} token requests)",
        canaries.len(),
        canaries.len() - 1
    );

    // The state directory (sled, sealed tokens, key, SQLite with its WAL), the logs, and every
    // other file of the test except the two inputs that hold a secret on purpose.
    let inputs = [s.config.clone(), s.dir.path().join("client.secret")];
    // Negative control: the search does find a token written in plain text.
    let control_file = s.state().join("negative-control");
    std::fs::write(&control_file, format!("x{}x", canaries[0])).expect("control file");
    assert_eq!(
        grep_tree(s.dir.path(), &canaries, &|p| inputs.iter().any(|i| i == p)).len(),
        1,
        "the search finds a plaintext token"
    );
    std::fs::remove_file(&control_file).expect("remove control file");
    let hits = grep_tree(s.dir.path(), &canaries, &|p| inputs.iter().any(|i| i == p));
    assert!(hits.is_empty(), "secrets at rest: {hits:#?}");
    let log_files = files_under(&s.logs(), &|_| false);
    assert!(!log_files.is_empty(), "sanity: log files were written");
    assert!(
        files_under(&s.state(), &|_| false)
            .iter()
            .any(|p| p.ends_with("secrets/sim.token")),
        "sanity: the sealed token file exists"
    );
    for (what, bytes) in [
        ("environ/cmdline", environ),
        ("socket transcript", control.transcript.clone()),
        ("snapshot", snapshot.to_string().into_bytes()),
        ("errors", errors.to_string().into_bytes()),
    ] {
        let found = canaries_in(&bytes, &canaries);
        assert!(found.is_empty(), "secret in {what}: {found:?}");
    }

    // File modes: the key and token files 0600 in 0700 directories.
    let token = s.state().join("secrets").join("sim.token");
    assert_eq!(mode(&token), 0o600, "token file mode");
    assert_eq!(mode(&s.state().join("secrets")), 0o700, "secrets dir mode");
    assert_eq!(
        mode(&s.state().join("arbosync.key")),
        0o600,
        "key file mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_password_is_never_printed() {
    const PASSWORD: &str = "CANARY-DBPASS-c81f07";
    let s = setup(92, 3599, "1h").await;
    let db = format!("arbosync_secrets_{}", unique());
    let admin = pg_admin().await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create the test database");
    struct DropDb(String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            pg_cleanup_blocking(vec![format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.0
            )]);
        }
    }
    let _cleanup = DropDb(db.clone());
    connect(&s.config, "sim", &s.sim.refresh_token).await;
    let original = std::fs::read_to_string(&s.config).expect("config");
    let sqlite = format!("url = \"sqlite://{}/arbodienst.db\"", s.state().display());
    assert!(original.contains(&sqlite));
    let mut printed = String::new();
    // Trust authentication ignores the password, so the first URL works; the others fail in
    // different places (refused port, unknown database, unknown host, bad option).
    let urls = [
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/{db}"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/{db}"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/{db}_missing"),
        format!("postgres://postgres:{PASSWORD}@no-such-host.invalid:5432/{db}"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/{db}?bogus_option=1"),
    ];
    for (i, url) in urls.iter().enumerate() {
        let config = original.replace(&sqlite, &format!("url = \"{url}\""));
        std::fs::write(&s.config, config).expect("config");
        for args in [&["check-config"][..], &["sync", "--once", "--json"][..]] {
            let out = agent(&s.config, args, &[], None).await;
            let all = text(&out);
            assert_no_panic(url, &all);
            if i == 0 {
                assert!(out.status.success(), "{args:?} with a working URL: {all}");
            } else if args[0] == "sync" {
                assert!(!out.status.success(), "{url}: {all}");
            }
            printed.push_str(&all);
        }
    }
    assert!(
        printed.contains("cannot open the database"),
        "sanity: the failures were reported"
    );
    let canary = [PASSWORD.to_string()];
    assert!(
        canaries_in(printed.as_bytes(), &canary).is_empty(),
        "the database password was printed"
    );
    let hits = grep_tree(s.dir.path(), &canary, &|p| p == s.config);
    assert!(hits.is_empty(), "the database password at rest: {hits:?}");
    // The synced rows landed in PostgreSQL, so the URL really was used.
    let rows: i64 = pg_connect(&format!(
        "host=127.0.0.1 port=5432 user=postgres dbname={db}"
    ))
    .await
    .query_one("SELECT count(*) FROM arbosync.employee", &[])
    .await
    .expect("count employees")
    .get(0);
    assert!(rows > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_clear_error_and_never_a_panic() {
    // Library: sealed under one key, it does not open under another.
    let lib = tempfile::tempdir().expect("tempdir");
    let (creds_a, creds_b) = (lib.path().join("a"), lib.path().join("b"));
    for (d, byte) in [(&creds_a, 1u8), (&creds_b, 2u8)] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("arbosync.key"), [byte; 32]).expect("key");
    }
    let state = lib.path().join("state");
    SecretStore::open_with_credentials_dir(&state, Some(&creds_a))
        .expect("open A")
        .save("sim", "CANARY-LIB-TOKEN-0a9b")
        .expect("seal");
    let err = SecretStore::open_with_credentials_dir(&state, Some(&creds_b))
        .expect("open B")
        .load("sim")
        .expect_err("another key");
    assert!(matches!(err, SecretError::Decrypt { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("CANARY-LIB-TOKEN"));

    // The binary: a token sealed under the state directory's key file.
    let s = setup(93, 3599, "1h").await;
    let token = s.sim.refresh_token.clone();
    connect(&s.config, "sim", &token).await;
    let key = s.state().join("arbosync.key");
    let good_key = std::fs::read(&key).expect("the key file was created");
    let creds = s.dir.path().join("credentials");
    std::fs::create_dir_all(&creds).expect("mkdir");
    std::fs::write(creds.join("arbosync.key"), [7u8; 32]).expect("credential");
    let creds_env = creds.display().to_string();

    let decrypt = "cannot decrypt the stored refresh token of connection `sim`";
    /// What is wrong, how to make it so, the extra environment, the error text expected.
    type Case<'a> = (
        &'a str,
        Box<dyn Fn() + 'a>,
        Vec<(&'a str, &'a str)>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "another key file",
            Box::new(|| std::fs::write(&key, hex::encode([9u8; 32])).expect("key")),
            vec![],
            decrypt,
        ),
        (
            "a systemd credential with another key",
            Box::new(|| std::fs::write(&key, &good_key).expect("key")),
            vec![("CREDENTIALS_DIRECTORY", creds_env.as_str())],
            decrypt,
        ),
        (
            "a malformed key file",
            Box::new(|| std::fs::write(&key, "not a key").expect("key")),
            vec![],
            "must contain exactly 32 raw bytes or 64 hexadecimal characters",
        ),
        (
            "a key file others can read",
            Box::new(|| {
                std::fs::write(&key, &good_key).expect("key");
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            }),
            vec![],
            "refusing to use it",
        ),
    ];
    for (what, prepare, envs, expected) in cases {
        prepare();
        let out = agent(&s.config, &["sync", "--once", "--json"], &envs, None).await;
        let all = text(&out);
        assert_no_panic(what, &all);
        assert!(!out.status.success(), "{what}: the sync succeeded: {all}");
        assert!(all.contains(expected), "{what}: unclear error: {all}");
        assert!(!all.contains(&token), "{what}: the token was printed");
    }
    assert_eq!(
        s.sim.state().stats().total,
        0,
        "no API request without a usable token"
    );

    // Restored, it works again (the failures did not destroy the sealed token).
    std::fs::write(&key, &good_key).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = agent(&s.config, &["sync", "--once", "--json"], &[], None).await;
    assert!(out.status.success(), "with the right key: {}", text(&out));

    // The service with a wrong key stays up and reports the connection, instead of crashing.
    std::fs::write(&key, hex::encode([9u8; 32])).expect("key");
    let service = Service::start(&s.config, &s.socket, s.dir.path());
    let mut control = Control::open(&s.socket).await;
    let employer = s.sim.employer_ids[0].clone();
    control
        .request(serde_json::json!({"op": "subscribe"}))
        .await;
    control
        .request(serde_json::json!({"op": "sync_now", "employer": employer, "full": false}))
        .await;
    let finished = control
        .wait_event(Duration::from_secs(60), |e| {
            e["kind"] == "run_finished" && e["employer"] == employer.as_str()
        })
        .await;
    assert_eq!(finished["run"]["outcome"], "failed", "{finished}");
    let error = finished["run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot decrypt"), "run error: {error}");
    let errors = control
        .request(serde_json::json!({"op": "errors", "employer": null}))
        .await;
    assert!(!errors.to_string().contains(&token));
    let status = service.stop();
    assert!(status.success(), "clean exit after a key error: {status}");
    assert_no_panic(
        "service",
        &std::fs::read_to_string(s.dir.path().join("service.stderr")).unwrap_or_default(),
    );
}
