//! Config file parsing: a full valid example, defaults, durations and every error kind with its
//! line number.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arbosync_agent::config::{
    Config, ConfigError, DatabaseBackend, Environment, Principal, UpdateChannel, parse_duration,
};

const SECRET_VALUE: &str = "s3cr3t-client-secret-canary";
const EMPLOYER_A: &str = "2f3c6a1e-8d4b-4c2a-9f1e-1234567890ab";
const EMPLOYER_B: &str = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("acme.secret"), format!("{SECRET_VALUE}\n")).unwrap();
        std::fs::write(dir.path().join("ca.pem"), PEM).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("agent.toml")
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, self.config_path())
    }

    fn problems(&self, text: &str) -> ConfigError {
        match self.parse(text) {
            Ok(_) => panic!("expected the config to be rejected:\n{text}"),
            Err(e) => e,
        }
    }
}

fn full_example(fx: &Fixture) -> String {
    format!(
        r#"[agent]
state_dir = "/srv/arbosync"
socket = "/run/arbosync/test.sock"
log_dir = "/var/log/arbosync"
log_level = "info,arbosync_agent=debug"
interval = "30m"
full_reconcile_interval = "1d"
max_concurrent_employers = 2
admin_users = ["root", 0]
admin_groups = ["arbosync-admin"]
read_users = [1000]
read_groups = ["arbosync"]

[database]
url = "postgres://sync@db.example.org/arbodienst"
schema = "loket_sync"

[update]
channel = "1.4.2"
manifest_url = "https://releases.example.org/arbosync/{{channel}}/manifest.json"
check_interval = "6h"
enabled = false

[[connection]]
name = "acme"
environment = "acceptance"
client_id = "client-123"
client_secret_file = "{secret}"
ca_file = "{ca}"
requests_per_second = 2.5
max_parallel_requests = 8

[[connection]]
name = "sim"
api_url = "http://127.0.0.1:8080/v2"
oauth_url = "http://localhost:8080"
client_id = "sim-client"
requests_per_second = 10

[[employer]]
id = "{EMPLOYER_A}"
connection = "acme"
name = "Acme B.V."
active = true
all_employments = true
absences = false
salary = true
bsn = true
history_months = 12

[[employer]]
id = "{EMPLOYER_B}"
connection = "sim"
"#,
        secret = fx.path("acme.secret").display(),
        ca = fx.path("ca.pem").display(),
    )
}

#[test]
fn full_valid_example_parses_into_typed_settings() {
    let fx = Fixture::new();
    let config = fx
        .parse(&full_example(&fx))
        .unwrap_or_else(|e| panic!("{e}"));

    let a = &config.agent;
    assert_eq!(a.state_dir, Path::new("/srv/arbosync"));
    assert_eq!(a.socket, Path::new("/run/arbosync/test.sock"));
    assert_eq!(a.log_dir.as_deref(), Some(Path::new("/var/log/arbosync")));
    assert_eq!(a.log_level.as_deref(), Some("info,arbosync_agent=debug"));
    assert_eq!(a.interval, Duration::from_secs(30 * 60));
    assert_eq!(a.full_reconcile_interval, Duration::from_secs(86_400));
    assert_eq!(a.max_concurrent_employers, 2);
    assert_eq!(
        a.admin_users,
        vec![Principal::Name("root".into()), Principal::Id(0)]
    );
    assert_eq!(
        a.admin_groups,
        vec![Principal::Name("arbosync-admin".into())]
    );
    assert_eq!(a.read_users, vec![Principal::Id(1000)]);
    assert_eq!(a.read_groups, vec![Principal::Name("arbosync".into())]);

    assert_eq!(
        config.database.url,
        "postgres://sync@db.example.org/arbodienst"
    );
    assert_eq!(config.database.backend, DatabaseBackend::Postgres);
    assert_eq!(config.database.schema, "loket_sync");

    assert_eq!(config.update.channel, UpdateChannel::Pinned("1.4.2".into()));
    assert_eq!(
        config.update.manifest_url.as_deref(),
        Some("https://releases.example.org/arbosync/{channel}/manifest.json")
    );
    assert_eq!(config.update.check_interval, Duration::from_secs(6 * 3600));
    assert!(!config.update.enabled);

    assert_eq!(config.connections.len(), 2);
    let acme = config.connection("acme").unwrap();
    assert_eq!(acme.environment, Some(Environment::Acceptance));
    assert_eq!(acme.api_url.as_str(), "https://api.loket-acc.nl/v2");
    assert_eq!(acme.oauth_url.as_str(), "https://oauth.loket-acc.nl/");
    assert_eq!(acme.client_id, "client-123");
    assert_eq!(
        acme.client_secret.as_ref().unwrap().expose_secret(),
        SECRET_VALUE
    );
    assert_eq!(
        acme.client_secret_file.as_deref(),
        Some(fx.path("acme.secret").as_path())
    );
    assert_eq!(acme.ca_file.as_deref(), Some(fx.path("ca.pem").as_path()));
    assert_eq!(acme.requests_per_second, 2.5);
    assert_eq!(acme.max_parallel_requests, 8);

    let sim = config.connection("sim").unwrap();
    assert_eq!(sim.environment, None);
    assert_eq!(sim.api_url.as_str(), "http://127.0.0.1:8080/v2");
    assert_eq!(sim.requests_per_second, 10.0);
    assert_eq!(sim.max_parallel_requests, 4);
    assert!(sim.client_secret.is_none());

    let a = config.employer(EMPLOYER_A.parse().unwrap()).unwrap();
    assert_eq!(a.connection, "acme");
    assert_eq!(a.name.as_deref(), Some("Acme B.V."));
    assert!(a.active);
    assert!(a.options.all_employments && !a.options.absences && a.options.salary && a.options.bsn);
    assert_eq!(a.options.history_months, 12);

    // The second employer gets the privacy-minimal defaults.
    let b = config.employer(EMPLOYER_B.parse().unwrap()).unwrap();
    assert!(!b.active);
    assert!(
        !b.options.all_employments && b.options.absences && !b.options.salary && !b.options.bsn
    );
    assert_eq!(b.options.history_months, 24);
    assert_eq!(b.name, None);
}

#[test]
fn client_secret_never_appears_in_debug_output() {
    let fx = Fixture::new();
    let config = fx.parse(&full_example(&fx)).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET_VALUE), "secret leaked: {debug}");
    assert!(debug.contains("redacted"));
}

#[test]
fn database_password_is_redacted_in_debug_output() {
    let fx = Fixture::new();
    let config = fx
        .parse("[database]\nurl = \"postgres://sync:hunter2pw@db/arbo\"\n")
        .unwrap();
    assert_eq!(config.database.url, "postgres://sync:hunter2pw@db/arbo");
    assert!(!format!("{config:?}").contains("hunter2pw"));
}

#[test]
fn empty_file_gives_all_defaults() {
    let fx = Fixture::new();
    let config = fx.parse("").unwrap();
    assert_eq!(config.agent.state_dir, Path::new("/var/lib/arbosync"));
    assert_eq!(config.agent.socket, Path::new("/run/arbosync/agent.sock"));
    assert_eq!(config.agent.log_dir, None);
    assert_eq!(config.agent.log_level, None);
    assert_eq!(config.agent.interval, Duration::from_secs(7200));
    assert_eq!(
        config.agent.full_reconcile_interval,
        Duration::from_secs(86_400)
    );
    assert_eq!(config.agent.max_concurrent_employers, 4);
    assert!(config.agent.admin_users.is_empty() && config.agent.read_groups.is_empty());
    assert_eq!(
        config.database.url,
        "sqlite:///var/lib/arbosync/arbodienst.db"
    );
    assert_eq!(
        config.database.backend,
        DatabaseBackend::Sqlite {
            path: "/var/lib/arbosync/arbodienst.db".into()
        }
    );
    assert_eq!(config.database.schema, "arbosync");
    assert_eq!(config.update.channel, UpdateChannel::Stable);
    assert_eq!(config.update.check_interval, Duration::from_secs(6 * 3600));
    assert!(config.update.enabled);
    assert!(config.connections.is_empty() && config.employers.is_empty());
}

#[test]
fn default_database_follows_state_dir_and_relative_paths_follow_the_config_file() {
    let fx = Fixture::new();
    let config = fx
        .parse("[agent]\nstate_dir = \"state\"\n\n[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\nclient_secret_file = \"acme.secret\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.agent.state_dir, fx.path("state"));
    assert_eq!(
        config.database.url,
        format!("sqlite://{}", fx.path("state/arbodienst.db").display())
    );
    let acme = config.connection("acme").unwrap();
    assert_eq!(acme.api_url.as_str(), "https://api.loket.nl/v2");
    assert_eq!(acme.oauth_url.as_str(), "https://oauth.loket.nl/");
    assert_eq!(
        acme.client_secret.as_ref().unwrap().expose_secret(),
        SECRET_VALUE
    );
}

#[test]
fn relative_sqlite_path_follows_the_config_file() {
    let fx = Fixture::new();
    let config = fx
        .parse("[database]\nurl = \"sqlite://data/arbo.db\"\n")
        .unwrap();
    assert_eq!(
        config.database.backend,
        DatabaseBackend::Sqlite {
            path: fx.path("data/arbo.db")
        }
    );
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let fx = Fixture::new();
    std::fs::write(fx.config_path(), "[agent]\ninterval = \"2 hours\"\n").unwrap();
    let err = Config::load(fx.config_path()).unwrap_err();
    assert_eq!(err.file, fx.config_path());
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}:2:12: agent.interval: invalid duration",
            fx.config_path().display()
        )),
        "{shown}"
    );

    let missing = Config::load(fx.path("nope.toml")).unwrap_err();
    assert_eq!(missing.problems.len(), 1);
    assert_eq!(missing.problems[0].line, 0);
    assert!(
        missing
            .to_string()
            .contains("cannot read the configuration file"),
        "{missing}"
    );
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

#[test]
fn durations_accept_the_four_units() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
}

#[test]
fn durations_reject_everything_else() {
    for bad in [
        "",
        "s",
        "2",
        "2x",
        "1.5h",
        "-1h",
        " 2h",
        "2h ",
        "2 h",
        "2H",
        "1h30m",
        "2ms",
        "99999999999999999999d",
        "18446744073709551615d",
    ] {
        let err = parse_duration(bad).unwrap_err();
        assert!(err.to_string().contains("30s, 15m, 2h, 1d"), "{bad}: {err}");
    }
}

#[test]
fn zero_and_malformed_durations_in_the_file_are_reported_with_lines() {
    let fx = Fixture::new();
    let err = fx.problems("[agent]\ninterval = \"0s\"\nfull_reconcile_interval = \"1w\"\n\n[update]\ncheck_interval = \"6\"\n");
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "agent.interval"),
            (3, "agent.full_reconcile_interval"),
            (6, "update.check_interval")
        ]
    );
    assert!(err.problems[0].message.contains("longer than zero"));
}

// ---------------------------------------------------------------------------------------------
// Errors: each kind with the right line
// ---------------------------------------------------------------------------------------------

fn only(err: &ConfigError) -> &arbosync_agent::config::Problem {
    assert_eq!(err.problems.len(), 1, "expected one problem, got:\n{err}");
    &err.problems[0]
}

#[test]
fn syntax_error_names_line_and_column() {
    let fx = Fixture::new();
    let err = fx.problems("[agent]\ninterval = \"2h\"\nsocket = \n");
    let p = &err.problems[0];
    assert_eq!(p.line, 3, "{err}");
    assert!(p.column >= 1);
}

#[test]
fn duplicate_key_is_a_syntax_error_with_its_line() {
    let fx = Fixture::new();
    let err = fx.problems("[agent]\ninterval = \"2h\"\n\ninterval = \"3h\"\n");
    assert_eq!(err.problems[0].line, 4, "{err}");
}

#[test]
fn unknown_key_in_a_section_is_named_with_its_line() {
    let fx = Fixture::new();
    let err = fx.problems("[agent]\ninterval = \"2h\"\nintervall = \"3h\"\n");
    let p = only(&err);
    assert_eq!(
        (p.line, p.column, p.key.as_str()),
        (3, 1, "agent.intervall"),
        "{err}"
    );
    assert!(p.message.contains("unknown field"), "{err}");
}

#[test]
fn unknown_section_is_named_with_its_line() {
    let fx = Fixture::new();
    let err = fx.problems("[agent]\n\n[agnet]\nx = 1\n");
    let p = only(&err);
    assert_eq!((p.line, p.key.as_str()), (3, "agnet"), "{err}");
}

#[test]
fn unknown_key_in_an_employer_entry_is_named() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\n\n[[employer]]\nid = \"{EMPLOYER_A}\"\nconnection = \"acme\"\nbsn_number = true\n"
    );
    let err = fx.problems(&text);
    let p = only(&err);
    assert_eq!(
        (p.line, p.key.as_str()),
        (9, "employer[0].bsn_number"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_named_with_its_line() {
    let fx = Fixture::new();
    let err = fx.problems("[update]\nenabled = \"yes\"\n");
    let p = only(&err);
    assert_eq!((p.line, p.key.as_str()), (2, "update.enabled"), "{err}");
}

#[test]
fn missing_required_key_names_the_key() {
    let fx = Fixture::new();
    let err = fx.problems("[[connection]]\nname = \"acme\"\nenvironment = \"production\"\n");
    let p = only(&err);
    assert_eq!(p.key, "connection[0].client_id", "{err}");
    assert!(p.message.contains("missing field"), "{err}");
    // Points at the entry's `[[connection]]` header, as the key itself is absent.
    assert_eq!(p.line, 1, "{err}");
}

#[test]
fn employer_naming_a_missing_connection() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\n\n[[employer]]\nid = \"{EMPLOYER_A}\"\nconnection = \"acmee\"\n"
    );
    let err = fx.problems(&text);
    let p = only(&err);
    assert_eq!(
        (p.line, p.column, p.key.as_str()),
        (8, 14, "employer[0].connection"),
        "{err}"
    );
    assert!(
        p.message.contains("acmee") && p.message.contains("acme"),
        "{err}"
    );
}

#[test]
fn duplicate_employer_ids() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\n\n[[employer]]\nid = \"{EMPLOYER_A}\"\nconnection = \"acme\"\n\n[[employer]]\nid = \"{}\"\nconnection = \"acme\"\n",
        EMPLOYER_A.to_uppercase()
    );
    let err = fx.problems(&text);
    let p = only(&err);
    assert_eq!((p.line, p.key.as_str()), (11, "employer[1].id"), "{err}");
    assert!(
        p.message.contains("duplicate") && p.message.contains("line 7"),
        "{err}"
    );
}

#[test]
fn duplicate_connection_names() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\n\n[[connection]]\nname = \"acme\"\nenvironment = \"acceptance\"\nclient_id = \"d\"\n",
    );
    let p = only(&err);
    assert_eq!((p.line, p.key.as_str()), (7, "connection[1].name"), "{err}");
    assert!(
        p.message.contains("duplicate") && p.message.contains("line 2"),
        "{err}"
    );
}

#[test]
fn employer_id_that_is_not_a_uuid() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\n\n[[employer]]\nid = \"2f3c...-uuid\"\nconnection = \"acme\"\n",
    );
    let p = only(&err);
    assert_eq!((p.line, p.key.as_str()), (7, "employer[0].id"), "{err}");
    assert!(p.message.contains("not a UUID"), "{err}");
}

#[test]
fn unreadable_client_secret_and_ca_files() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\nca_file = \"{}\"\n",
        fx.path("missing.secret").display(),
        fx.path("missing.pem").display()
    );
    let err = fx.problems(&text);
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, "connection[0].client_secret_file"),
            (6, "connection[0].ca_file")
        ],
        "{err}"
    );
    assert!(err.problems[0].message.contains("cannot read"), "{err}");
}

#[test]
fn ca_file_without_a_certificate_is_refused() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\nca_file = \"{}\"\n",
        fx.path("acme.secret").display()
    );
    let err = fx.problems(&text);
    let p = only(&err);
    assert_eq!(
        (p.line, p.key.as_str()),
        (5, "connection[0].ca_file"),
        "{err}"
    );
    // The message names the file but never prints its content (it held a secret here).
    assert!(!err.to_string().contains(SECRET_VALUE));
}

#[test]
fn non_positive_rates_and_counts() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[agent]\nmax_concurrent_employers = 0\n\n[[connection]]\nname = \"acme\"\nenvironment = \"production\"\nclient_id = \"c\"\nrequests_per_second = 0.0\nmax_parallel_requests = -2\n\n[[connection]]\nname = \"b\"\nenvironment = \"production\"\nclient_id = \"c\"\nrequests_per_second = -1\n",
    );
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "agent.max_concurrent_employers"),
            (8, "connection[0].requests_per_second"),
            (9, "connection[0].max_parallel_requests"),
            (15, "connection[1].requests_per_second"),
        ],
        "{err}"
    );
}

#[test]
fn plain_http_is_refused_except_for_loopback() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[[connection]]\nname = \"acme\"\napi_url = \"http://api.loket.nl/v2\"\noauth_url = \"http://[::1]:9000\"\nclient_id = \"c\"\n",
    );
    let p = only(&err);
    assert_eq!(
        (p.line, p.column, p.key.as_str()),
        (3, 11, "connection[0].api_url"),
        "{err}"
    );
    assert!(p.message.contains("loopback"), "{err}");

    let err = fx.problems("[[connection]]\nname = \"acme\"\napi_url = \"ftp://x/v2\"\noauth_url = \"https://o\"\nclient_id = \"c\"\n");
    assert_eq!(only(&err).line, 3);
}

#[test]
fn connection_needs_an_environment_or_both_urls() {
    let fx = Fixture::new();
    let err = fx.problems("[[connection]]\nname = \"acme\"\napi_url = \"https://api.example/v2\"\nclient_id = \"c\"\n");
    let p = only(&err);
    assert_eq!(p.key, "connection[0]", "{err}");
    assert!(p.message.contains("environment"), "{err}");

    let err = fx.problems(
        "[[connection]]\nname = \"acme\"\nenvironment = \"staging\"\nclient_id = \"c\"\n",
    );
    assert_eq!(
        (only(&err).line, only(&err).key.as_str()),
        (3, "connection[0].environment")
    );
}

#[test]
fn connection_name_must_be_file_name_safe() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[[connection]]\nname = \"../etc\"\nenvironment = \"production\"\nclient_id = \"c\"\n",
    );
    assert_eq!(only(&err).key, "connection[0].name");
}

#[test]
fn other_semantic_checks() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[agent]\nlog_level = \"info,=[\"\n\n[database]\nurl = \"mysql://x/y\"\nschema = \"drop table\"\n\n[update]\nchannel = \"nightly\"\nmanifest_url = \"http://releases.example.org/{channel}\"\n",
    );
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "agent.log_level"),
            (5, "database.url"),
            (6, "database.schema"),
            (9, "update.channel"),
            (10, "update.manifest_url"),
        ],
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_not_only_the_first() {
    let fx = Fixture::new();
    let text = format!(
        r#"[agent]
interval = "2 hours"
bogus = 1

[[connection]]
name = "acme"
environment = "production"
client_id = "c"
requests_per_second = 0

[[connection]]
name = "acme"
environment = "production"
client_id = "c"

[[employer]]
id = "not-a-uuid"
connection = "acme"

[[employer]]
id = "{EMPLOYER_A}"
connection = "nobody"
"#
    );
    let err = fx.problems(&text);
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "agent.interval"),
            (3, "agent.bogus"),
            (9, "connection[0].requests_per_second"),
            (12, "connection[1].name"),
            (17, "employer[0].id"),
            (22, "employer[1].connection"),
        ],
        "{err}"
    );
    // Display: one `file:line:col: key: message` line per problem.
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 6, "{shown}");
    let file = fx.config_path().display().to_string();
    assert!(
        lines[1].starts_with(&format!("{file}:3:1: agent.bogus: ")),
        "{shown}"
    );
    assert!(
        lines[5].starts_with(&format!("{file}:22:14: employer[1].connection: ")),
        "{shown}"
    );
}

#[test]
fn several_bad_keys_in_one_section_are_all_reported() {
    let fx = Fixture::new();
    let err = fx.problems(
        "[agent]\nsocket = 5\nfoo = 1\nmax_concurrent_employers = \"many\"\nbar = 2\ninterval = \"3x\"\n",
    );
    let got: Vec<(usize, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "agent.socket"),
            (3, "agent.foo"),
            (4, "agent.max_concurrent_employers"),
            (5, "agent.bar"),
            (6, "agent.interval"),
        ],
        "{err}"
    );
}

#[test]
fn employer_of_a_broken_connection_gets_no_misleading_error() {
    let fx = Fixture::new();
    let text = format!(
        "[[connection]]\nname = \"acme\"\nenvironment = \"production\"\n\n[[employer]]\nid = \"{EMPLOYER_A}\"\nconnection = \"acme\"\n"
    );
    let err = fx.problems(&text);
    assert_eq!(only(&err).key, "connection[0].client_id", "{err}");
}

#[test]
fn default_config_path_is_etc_without_the_env_var() {
    // The variable is not set in the test environment; setting it would race other tests.
    if std::env::var_os("ARBOSYNC_CONFIG").is_none() {
        assert_eq!(
            arbosync_agent::config::default_config_path(),
            Path::new("/etc/arbosync/agent.toml")
        );
    }
}
