//! R19 for PostgreSQL: with TLS configured the agent refuses a certificate that is not valid for
//! the host name (`verify-full`), and one from an unknown CA, and works with the right CA in
//! `sslrootcert`. Each test starts its OWN throw-away cluster (initdb in a temp dir, its own port
//! and Unix socket directory, trust auth, `ssl = on` with a server certificate for `localhost`
//! only, signed by a test CA generated here with rcgen); the shared server on 5432 is never
//! touched. Checked through `Sink::connect` (with `pg_stat_ssl` telling whether the session is
//! encrypted) and through the real binary (`sync --once` against the simulator, with the
//! server's connection log telling the same). The URL's password is a canary that must never be
//! printed. Without initdb these tests FAIL (they never skip).

mod pg_cluster;
mod security_common;

use std::path::{Path, PathBuf};

use arbosync_agent::sink::{SCHEMA_VERSION, Sink};
use pg_cluster::{ClusterOptions, OwnCluster};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use security_common::{agent, assert_no_panic, connect, text};

/// In every URL; trust auth never asks for it, so it may only ever show up if printed.
const PASSWORD: &str = "CANARY-PGPASS-tls-5be2c9";
const SCHEMA: &str = "arbosync_tls";

// ------------------------------------------------------------------------------ certificates

struct TestPki {
    ca_pem: String,
    /// For `localhost` only (not `127.0.0.1`): leaf then CA.
    server_chain_pem: String,
    server_key_pem: String,
}

fn generate_pki() -> TestPki {
    use chrono::Datelike;
    let year = chrono::Utc::now().year();
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "arbosync PostgreSQL TLS test CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = date_time_ymd(year - 1, 1, 1);
    ca.not_after = date_time_ymd(year + 2, 12, 31);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");

    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "arbosync PostgreSQL TLS test server");
    leaf.distinguished_name = dn;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = date_time_ymd(year - 1, 1, 1);
    leaf.not_after = date_time_ymd(year + 1, 12, 31);
    let key = KeyPair::generate().expect("server key");
    let cert = leaf.signed_by(&key, &ca).expect("sign the server cert");
    TestPki {
        ca_pem: ca.pem(),
        server_chain_pem: format!("{}{}", cert.pem(), ca.pem()),
        server_key_pem: key.serialize_pem(),
    }
}

// ------------------------------------------------------------------------------ own cluster

/// A throw-away cluster (the shared test helper) with `ssl = on`, stopped when dropped.
struct TlsCluster {
    cluster: OwnCluster,
    port: u16,
    /// The test CA, readable by the agent.
    ca_file: PathBuf,
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let pki = generate_pki();
        let prepare = move |dir: &Path| {
            std::fs::write(dir.join("test-ca.pem"), &pki.ca_pem).expect("write CA");
            let tls = dir.join("tls");
            std::fs::create_dir(&tls).expect("mkdir tls");
            std::fs::write(tls.join("server.crt"), &pki.server_chain_pem).expect("write cert");
            std::fs::write(tls.join("server.key"), &pki.server_key_pem).expect("write key");
            use std::os::unix::fs::PermissionsExt;
            // PostgreSQL refuses a key file that others may read.
            std::fs::set_permissions(
                tls.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod key");
        };
        // PostgreSQL resolves relative file names against the data directory, whose parent
        // (the cluster's directory) holds `tls/`.
        // trust over TCP (initdb's pg_hba.conf has `host all all 127.0.0.1/32 trust`), with and
        // without TLS: the server allows plain, so `sslmode=disable` can be shown to work.
        let cluster = OwnCluster::start_with(ClusterOptions {
            extra_opts: "-c listen_addresses=127.0.0.1,::1 -c ssl=on \
                         -c ssl_cert_file=../tls/server.crt -c ssl_key_file=../tls/server.key \
                         -c log_connections=on"
                .to_string(),
            prepare: Some(Box::new(prepare)),
        });
        let ca_file = cluster.dir().join("test-ca.pem");
        TlsCluster {
            port: cluster.port,
            cluster,
            ca_file,
        }
    }

    fn log_file(&self) -> PathBuf {
        self.cluster.log_file()
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// A plain admin client of `db` (trust, no TLS).
    async fn admin(&self, db: &str) -> tokio_postgres::Client {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("admin connection to the TLS test cluster: {e}"));
        tokio::spawn(conn);
        client
    }

    async fn create_db(&self, db: &str) {
        self.admin("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create a database on the test cluster");
    }

    /// `postgres://postgres:PASSWORD@HOST:PORT/DB?PARAMS`.
    fn url(&self, host: &str, db: &str, params: &str) -> String {
        let mut url = format!("postgres://postgres:{PASSWORD}@{host}:{}/{db}", self.port);
        if !params.is_empty() {
            url.push('?');
            url.push_str(params);
        }
        url
    }

    fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }

    /// Whether the sink's session on `db` is encrypted (`pg_stat_ssl`), `None` if it has none.
    async fn agent_session_ssl(&self, db: &str) -> Option<bool> {
        self.admin("postgres")
            .await
            .query_opt(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = $1 AND a.application_name = 'arbosync-agent' LIMIT 1",
                &[&db],
            )
            .await
            .expect("pg_stat_ssl")
            .map(|r| r.get(0))
    }

    /// Whether the sync schema exists in `db`.
    async fn has_schema(&self, db: &str) -> bool {
        self.admin(db)
            .await
            .query_one(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
                &[&SCHEMA],
            )
            .await
            .expect("schemata")
            .get::<_, i64>(0)
            > 0
    }

    async fn rows(&self, db: &str, table: &str) -> i64 {
        self.admin(db)
            .await
            .query_one(&format!("SELECT count(*) FROM {SCHEMA}.{table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("count {table} in {db}: {e}"))
            .get(0)
    }

    /// The server's `connection authorized` lines for the agent's sessions on `db`.
    fn agent_connections(&self, db: &str) -> Vec<String> {
        self.server_log()
            .lines()
            .filter(|l| {
                l.contains("connection authorized")
                    && l.contains(&format!("database={db} "))
                    && l.contains("application_name=arbosync-agent")
            })
            .map(str::to_owned)
            .collect()
    }
}

// ------------------------------------------------------------------------------ Sink API

/// The error text of a connection that must fail; also checks that the password is not in it.
async fn refused(url: &str, what: &str) -> String {
    match Sink::connect(url, SCHEMA).await {
        Ok(_) => panic!("{what}: connected, but must be refused"),
        Err(e) => {
            let msg = e.to_string();
            let debug = format!("{e:?}");
            for shown in [&msg, &debug] {
                assert!(
                    !shown.contains(PASSWORD),
                    "{what}: the password was printed: {shown}"
                );
            }
            eprintln!("{what}: refused: {msg}");
            msg
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_connects_only_to_a_verified_certificate() {
    let started = std::time::Instant::now();
    let pg = TlsCluster::start();
    let ca = pg.ca();

    // verify-full with the test CA and the certificate's name: encrypted, migrated.
    for (db, params) in [
        ("sink_full", format!("sslmode=verify-full&sslrootcert={ca}")),
        // `require` verifies exactly as much (stricter than libpq).
        ("sink_require", format!("sslmode=require&sslrootcert={ca}")),
        // A CA without a mode means verify-full.
        ("sink_rootonly", format!("sslrootcert={ca}")),
    ] {
        pg.create_db(db).await;
        let url = pg.url("localhost", db, &params);
        let sink = Sink::connect(&url, SCHEMA)
            .await
            .unwrap_or_else(|e| panic!("{params}: connect over verified TLS: {e}"));
        assert_eq!(
            sink.schema_version().await.expect("schema version"),
            SCHEMA_VERSION,
            "{params}: migrations ran over TLS"
        );
        assert_eq!(
            pg.agent_session_ssl(db).await,
            Some(true),
            "{params}: the sink's session is not encrypted"
        );
        assert_eq!(sink.backend_name(), "postgres");
        drop(sink);
    }

    // The certificate is for `localhost`, not for `127.0.0.1`: refused in every TLS mode
    // (libpq's `require` and `verify-ca` would not check the name; the agent does).
    pg.create_db("sink_refused").await;
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = pg.url(
            "127.0.0.1",
            "sink_refused",
            &format!("sslmode={mode}&sslrootcert={ca}"),
        );
        let msg = refused(&url, mode).await;
        assert!(
            msg.contains("TLS certificate of the database server rejected")
                && msg.contains("not valid for this host name")
                && msg.contains(&format!("sslmode={mode}")),
            "{mode} with a wrong host name: unclear error: {msg}"
        );
    }
    // The right name, but the CA is not trusted (not in the system store, no sslrootcert).
    for mode in ["verify-full", "require"] {
        let url = pg.url("localhost", "sink_refused", &format!("sslmode={mode}"));
        let msg = refused(&url, mode).await;
        assert!(
            msg.contains("TLS certificate of the database server rejected")
                && msg.contains("unknown issuer")
                && msg.contains("sslrootcert"),
            "{mode} without the CA: unclear error: {msg}"
        );
    }
    // A CA file that does not exist: the error names the path.
    let missing = pg.cluster.dir().join("no-such-ca.pem");
    let url = pg.url(
        "localhost",
        "sink_refused",
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    );
    let msg = refused(&url, "missing sslrootcert").await;
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("sslrootcert"),
        "missing sslrootcert: unclear error: {msg}"
    );
    // A CA with a mode that does not use TLS is a contradiction, not a silent downgrade.
    let url = pg.url(
        "localhost",
        "sink_refused",
        &format!("sslmode=disable&sslrootcert={ca}"),
    );
    let msg = refused(&url, "disable + sslrootcert").await;
    assert!(msg.contains("sslmode=verify-full"), "{msg}");
    assert!(
        !pg.has_schema("sink_refused").await,
        "a refused connection created the schema"
    );

    // Plain where asked for (the server allows it): `disable`, and `prefer`/absent (documented:
    // the agent never does unverified TLS, so prefer stays plain).
    for (db, params) in [("sink_disable", "sslmode=disable"), ("sink_prefer", "")] {
        pg.create_db(db).await;
        let url = pg.url("127.0.0.1", db, params);
        let sink = Sink::connect(&url, SCHEMA)
            .await
            .unwrap_or_else(|e| panic!("{params:?}: plain connect: {e}"));
        assert_eq!(
            sink.schema_version().await.expect("version"),
            SCHEMA_VERSION
        );
        assert_eq!(
            pg.agent_session_ssl(db).await,
            Some(false),
            "{params:?}: expected a plain session"
        );
        drop(sink);
    }
    assert!(
        !pg.server_log().contains(PASSWORD),
        "the password reached the server log"
    );
    eprintln!(
        "sink TLS checks took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------ the binary

async fn start_sim() -> loket_sim::RunningSim {
    loket_sim::start(loket_sim::SimConfig {
        seed: 19,
        employers: 1,
        employees_per_employer: 5,
        max_page_size: 50,
        ..Default::default()
    })
    .await
    .expect("the simulator starts")
}

/// A state dir + config for one run against `url`, with its own refresh token stored.
async fn setup_run(root: &Path, name: &str, url: &str, sim: &loket_sim::RunningSim) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
state_dir = "{state}"

[database]
url = "{url}"
schema = "{SCHEMA}"

[[connection]]
name = "sim"
api_url = "{api}"
oauth_url = "{oauth}"
client_id = "{client}"
requests_per_second = 1000.0

[[employer]]
id = "{employer}"
connection = "sim"
name = "PostgreSQL TLS test"
active = true
all_employments = true
"#,
        state = dir.join("state").display(),
        api = sim.api_url,
        oauth = sim.oauth_url,
        client = sim.client_id,
        employer = sim.employer_ids[0],
    );
    std::fs::write(&config, text).expect("write config");
    // A token per run: the simulator rotates refresh tokens on use.
    connect(&config, "sim", &sim.state().mint_refresh_token()).await;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_writes_over_verified_tls_and_refuses_bad_certificates() {
    let started = std::time::Instant::now();
    let pg = TlsCluster::start();
    let sim = start_sim().await;
    let root = tempfile::tempdir().expect("tempdir");
    let ca = pg.ca();

    // verify-full, host = the certificate's name, CA named: rows arrive, over TLS.
    pg.create_db("cli_tls").await;
    let config = setup_run(
        root.path(),
        "tls",
        &pg.url(
            "localhost",
            "cli_tls",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &sim,
    )
    .await;
    let out = agent(&config, &["sync", "--once"], &[], None).await;
    let all = text(&out);
    assert_no_panic("verify-full", &all);
    assert!(out.status.success(), "sync over verified TLS failed: {all}");
    assert!(!all.contains(PASSWORD), "the password was printed: {all}");
    assert!(pg.rows("cli_tls", "employee").await > 0, "no employees");
    assert!(pg.rows("cli_tls", "mutation").await > 0, "no journal rows");
    let sessions = pg.agent_connections("cli_tls");
    assert!(!sessions.is_empty(), "no agent session in the server log");
    assert!(
        sessions.iter().all(|l| l.contains("SSL enabled")),
        "an agent session on cli_tls was not encrypted: {sessions:#?}"
    );

    // Refused: the wrong host name, an unknown CA, a CA file that does not exist.
    pg.create_db("cli_refused").await;
    let missing = root.path().join("missing-ca.pem");
    let cases = [
        (
            "wrong host name",
            pg.url(
                "127.0.0.1",
                "cli_refused",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            vec![
                "TLS certificate of the database server rejected",
                "not valid for this host name",
            ],
        ),
        (
            "unknown CA",
            pg.url("localhost", "cli_refused", "sslmode=verify-full"),
            vec![
                "TLS certificate of the database server rejected",
                "unknown issuer",
            ],
        ),
        (
            "missing sslrootcert",
            pg.url(
                "localhost",
                "cli_refused",
                &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
            ),
            vec!["sslrootcert", "missing-ca.pem"],
        ),
    ];
    let stats_before = sim.state().stats().total;
    for (i, (what, url, needles)) in cases.into_iter().enumerate() {
        let config = setup_run(root.path(), &format!("refused{i}"), &url, &sim).await;
        let out = agent(&config, &["sync", "--once"], &[], None).await;
        let all = text(&out);
        assert_no_panic(what, &all);
        assert!(!out.status.success(), "{what}: the sync succeeded: {all}");
        assert!(
            all.contains("cannot open the database"),
            "{what}: the error does not say the database failed: {all}"
        );
        for n in needles {
            assert!(all.contains(n), "{what}: unclear error (no {n:?}): {all}");
        }
        assert!(
            !all.contains(PASSWORD),
            "{what}: the password was printed: {all}"
        );
    }
    assert!(
        !pg.has_schema("cli_refused").await,
        "a refused run created the schema"
    );
    assert!(
        pg.agent_connections("cli_refused").is_empty(),
        "a refused run got a database session"
    );
    assert_eq!(
        sim.state().stats().total,
        stats_before,
        "a refused run talked to Loket"
    );

    // sslmode=disable against this server (which allows plain): works, plain.
    pg.create_db("cli_plain").await;
    let config = setup_run(
        root.path(),
        "plain",
        &pg.url("127.0.0.1", "cli_plain", "sslmode=disable"),
        &sim,
    )
    .await;
    let out = agent(&config, &["sync", "--once"], &[], None).await;
    let all = text(&out);
    assert_no_panic("disable", &all);
    assert!(
        out.status.success(),
        "sync with sslmode=disable failed: {all}"
    );
    assert!(!all.contains(PASSWORD), "the password was printed: {all}");
    assert!(pg.rows("cli_plain", "employee").await > 0, "no employees");
    let sessions = pg.agent_connections("cli_plain");
    assert!(!sessions.is_empty(), "no agent session in the server log");
    assert!(
        sessions.iter().all(|l| !l.contains("SSL enabled")),
        "sslmode=disable used TLS: {sessions:#?}"
    );
    assert!(
        !pg.server_log().contains(PASSWORD),
        "the password reached the server log"
    );
    eprintln!(
        "binary TLS checks took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
