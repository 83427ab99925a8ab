//! R19, TLS fails closed: the Loket client and the real `sync --once` against an HTTPS front
//! (certificates generated here with rcgen) in front of the simulator. A self-signed certificate,
//! one for another name, an expired one and one from an unknown CA are all refused with a clear
//! TLS error, before any request reaches the simulator and without writing any data; the right
//! certificate is accepted only when the connection's `ca_file` names the test CA. Plain
//! `http://` to a host that is not loopback is refused by the configuration and by the client,
//! and a PostgreSQL URL that asks for TLS fails closed when the server cannot be verified
//! (see `security_pg_tls.rs` for PostgreSQL TLS that works).

mod security_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arbosync_agent::loket::{
    ConnectionSettings, LoketClient, LoketError, MemoryTokenStore, RefreshToken, RetryPolicy,
    TokenStore,
};
use security_common::*;
use url::Url;

async fn start_sim(seed: u64) -> loket_sim::RunningSim {
    loket_sim::start(loket_sim::SimConfig {
        seed,
        employers: 1,
        employees_per_employer: 4,
        max_page_size: 50,
        ..Default::default()
    })
    .await
    .expect("the simulator starts")
}

/// The bad certificates, with the reason the error must name.
fn bad_cases(pki: &Pki) -> Vec<(&'static str, ServerCert, &'static str)> {
    vec![
        ("self-signed", pki.self_signed.clone(), "unknown issuer"),
        (
            "wrong name",
            pki.wrong_name.clone(),
            "not valid for this host name",
        ),
        ("expired", pki.expired.clone(), "expired"),
        ("unknown CA", pki.unknown_ca.clone(), "unknown issuer"),
    ]
}

fn settings(
    port: u16,
    host: &str,
    sim: &loket_sim::RunningSim,
    ca: Option<&Path>,
) -> ConnectionSettings {
    let mut s = ConnectionSettings::new(
        Url::parse(&format!("https://{host}:{port}/v2")).expect("api url"),
        Url::parse(&format!("https://{host}:{port}/oauth")).expect("oauth url"),
        sim.client_id.clone(),
    );
    s.ca_file = ca.map(Path::to_path_buf);
    s.requests_per_second = f64::INFINITY;
    s.connect_timeout = Duration::from_secs(5);
    s.retry = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    };
    s
}

fn client(settings: ConnectionSettings, sim: &loket_sim::RunningSim) -> LoketClient {
    // A fresh refresh token per client: Loket (and the simulator) rotate them on use.
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new(Some(RefreshToken::new(
        sim.state().mint_refresh_token(),
    ))));
    LoketClient::new(settings, store).expect("valid settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_bad_certificates_and_trusts_only_the_configured_ca() {
    let sim = start_sim(71).await;
    let pki = Pki::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("test-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write CA");

    for (what, cert, reason) in bad_cases(&pki) {
        let front = TlsFront::start(&cert, sim_addr(&sim)).await;
        // With the test CA configured, so that only the defect itself can be the cause.
        let err = client(settings(front.port, "localhost", &sim, Some(&ca)), &sim)
            .ensure_token()
            .await
            .expect_err(what);
        let message = err.to_string();
        assert!(
            matches!(err, LoketError::Transient { .. }) && message.contains("TLS certificate"),
            "{what}: not a clear TLS error: {message}"
        );
        assert!(
            message.contains(reason),
            "{what}: reason missing: {message}"
        );
        front.settle(1).await;
        assert_eq!(front.ok(), 0, "{what}: a TLS session was established");
        assert!(front.failed() >= 1, "{what}: no handshake was attempted");
    }
    assert_eq!(
        sim.state().stats().token_requests + sim.state().stats().total,
        0,
        "a request reached the simulator through a refused certificate"
    );

    // The right certificate, but its CA is not configured: refused as well.
    let front = TlsFront::start(&pki.good, sim_addr(&sim)).await;
    let err = client(settings(front.port, "localhost", &sim, None), &sim)
        .ensure_token()
        .await
        .expect_err("an untrusted CA");
    assert!(err.to_string().contains("unknown issuer"), "{err}");
    front.settle(1).await;
    assert_eq!(front.ok(), 0);
    assert_eq!(sim.state().stats().token_requests, 0);

    // With `ca_file`: accepted, by name and by IP address.
    for host in ["localhost", "127.0.0.1"] {
        client(settings(front.port, host, &sim, Some(&ca)), &sim)
            .ensure_token()
            .await
            .unwrap_or_else(|e| panic!("the configured CA is trusted ({host}): {e}"));
    }
    assert!(front.ok() >= 2);
    assert!(sim.state().stats().token_requests >= 2);
}

/// A SQLite-backed configuration for one connection behind `base` (`https://localhost:PORT`).
fn write_config(dir: &Path, base: &str, sim: &loket_sim::RunningSim, ca: Option<&Path>) -> PathBuf {
    let ca_line = ca
        .map(|p| format!("ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    let config = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
state_dir = "{state}"

[database]
url = "sqlite://{db}"

[[connection]]
name = "loket"
api_url = "{base}/v2"
oauth_url = "{base}/oauth"
client_id = "{client}"
requests_per_second = 1000.0
{ca_line}
[[employer]]
id = "{employer}"
connection = "loket"
name = "TLS test"
active = true
all_employments = true
"#,
        state = dir.join("state").display(),
        db = dir.join("arbodienst.db").display(),
        client = sim.client_id,
        employer = sim.employer_ids[0],
    );
    std::fs::write(&config, text).expect("write config");
    config
}

fn rows(dir: &Path, table: &str) -> i64 {
    rows_where(dir, table, "1 = 1")
}

fn rows_where(dir: &Path, table: &str, condition: &str) -> i64 {
    let db = dir.join("arbodienst.db");
    if !db.exists() {
        return 0;
    }
    rusqlite::Connection::open(db)
        .expect("open SQLite")
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE {condition}"),
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_fails_closed_on_bad_certificates_and_works_with_ca_file() {
    let sim = start_sim(72).await;
    let pki = Pki::generate();
    let root = tempfile::tempdir().expect("tempdir");
    let ca = root.path().join("test-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write CA");

    // Each bad certificate (CA configured), and the good one without the CA: run concurrently.
    let mut cases = bad_cases(&pki);
    cases.push((
        "good cert, CA not configured",
        pki.good.clone(),
        "unknown issuer",
    ));
    let mut runs = Vec::new();
    for (i, (what, cert, reason)) in cases.into_iter().enumerate() {
        let front = TlsFront::start(&cert, sim_addr(&sim)).await;
        let dir = root.path().join(format!("case{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ca_file = (i < 4).then_some(ca.as_path());
        let config = write_config(
            &dir,
            &format!("https://localhost:{}", front.port),
            &sim,
            ca_file,
        );
        connect(&config, "loket", &sim.refresh_token).await;
        let token = sim.refresh_token.clone();
        runs.push(async move {
            let out = agent(&config, &["sync", "--once", "--json"], &[], None).await;
            (what, reason, front, dir, out, token)
        });
    }
    for (what, reason, front, dir, out, token) in futures_util::future::join_all(runs).await {
        let all = text(&out);
        assert_no_panic(what, &all);
        assert_eq!(out.status.code(), Some(1), "{what}: exit code\n{all}");
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let error = doc["employers"][0]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("TLS certificate") && error.contains(reason),
            "{what}: the run's error is not a clear TLS error: {error:?}\n{all}"
        );
        front.settle(1).await;
        assert_eq!(front.ok(), 0, "{what}: a TLS session was established");
        assert!(front.failed() >= 1, "{what}: no handshake was attempted");
        for table in ["employer", "employee", "employment", "mutation"] {
            assert_eq!(rows(&dir, table), 0, "{what}: rows in {table}");
        }
        // The failed run is on record for the arbodienst's application, and nothing is left
        // `running`.
        let failed_runs = rows_where(&dir, "sync_run", "status = 'failed'");
        assert!(
            failed_runs >= 1,
            "{what}: the failed run is not in sync_run"
        );
        assert_eq!(
            rows(&dir, "sync_run"),
            failed_runs,
            "{what}: a run not closed as failed"
        );
        assert!(
            !all.contains(&token),
            "{what}: the refresh token was printed"
        );
    }
    let stats = sim.state().stats();
    assert_eq!(
        (stats.total, stats.token_requests),
        (0, 0),
        "a request passed a refused certificate"
    );

    // The good certificate with `ca_file` = the test CA: the sync works.
    let front = TlsFront::start(&pki.good, sim_addr(&sim)).await;
    let dir = root.path().join("good");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = write_config(
        &dir,
        &format!("https://localhost:{}", front.port),
        &sim,
        Some(&ca),
    );
    connect(&config, "loket", &sim.refresh_token).await;
    let out = agent(&config, &["sync", "--once", "--json"], &[], None).await;
    assert!(
        out.status.success(),
        "sync over trusted TLS: {}",
        text(&out)
    );
    assert!(front.ok() >= 1);
    assert!(rows(&dir, "employee") > 0, "data arrived over TLS");
    assert!(sim.state().stats().total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_for_hosts_that_are_not_loopback() {
    let sim = start_sim(73).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for base in [
        "http://api.loket.nl",
        "http://10.1.2.3:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
    ] {
        let config = write_config(dir.path(), base, &sim, None);
        for args in [&["check-config"][..], &["sync", "--once"][..]] {
            let out = agent(&config, args, &[], None).await;
            let all = text(&out);
            assert_no_panic(base, &all);
            // check-config: 1 (documented); sync: any failure code (2 = unusable configuration).
            assert!(!out.status.success(), "{base} {args:?}: {all}");
            if args == ["check-config"] {
                assert_eq!(out.status.code(), Some(1), "{base}: {all}");
            }
            assert!(
                all.contains("plain http is only allowed for loopback hosts"),
                "{base} {args:?}: no clear refusal: {all}"
            );
        }
        // The library refuses the same URL on its own (no reliance on the config check).
        let mut s = ConnectionSettings::new(
            Url::parse(&format!("{base}/v2")).expect("url"),
            Url::parse("https://oauth.loket.nl").expect("url"),
            "client",
        );
        s.ca_file = None;
        let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new(None));
        match LoketClient::new(s, store) {
            Err(LoketError::Config(m)) => assert!(m.contains("https://"), "{m}"),
            other => panic!("{base}: accepted by the client: {other:?}"),
        }
    }
    assert_eq!(sim.state().stats().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_url_asking_for_tls_fails_closed() {
    const PASSWORD: &str = "CANARY-PGPASS-7f3a91";
    let sim = start_sim(74).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim.base_url, &sim, None);
    // A database that does not exist: even a connection that wrongly succeeded creates nothing.
    let db = format!("arbosync_tls_never_{}", unique());
    for mode in ["require", "verify-ca", "verify-full"] {
        let text_cfg = std::fs::read_to_string(&config).expect("config");
        let start = text_cfg.find("[database]\nurl = ").expect("db url") + "[database]\n".len();
        let end = start + text_cfg[start..].find('\n').expect("eol");
        let changed = format!(
            "{}url = \"postgres://postgres:{PASSWORD}@127.0.0.1:5432/{db}?sslmode={mode}\"{}",
            &text_cfg[..start],
            &text_cfg[end..]
        );
        std::fs::write(&config, changed).expect("config");
        let out = agent(&config, &["sync", "--once"], &[], None).await;
        let all = text(&out);
        assert_no_panic(mode, &all);
        assert_ne!(
            out.status.code(),
            Some(0),
            "sslmode={mode} connected: {all}"
        );
        assert!(
            all.contains("cannot open the database"),
            "sslmode={mode}: the error does not say the database failed: {all}"
        );
        // Every TLS mode verifies fully: the shared server's certificate (if it has TLS on at
        // all) is not valid for 127.0.0.1 under the system store, so the connection is refused
        // at TLS, never downgraded to plain text.
        let why = "TLS";
        assert!(all.contains(why), "sslmode={mode}: unclear error: {all}");
        assert!(
            !all.contains(PASSWORD),
            "sslmode={mode}: the password was printed: {all}"
        );
    }
    assert_eq!(sim.state().stats().total, 0);
}
