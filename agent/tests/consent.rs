//! `arbosync-agent connect NAME`: the interactive consent through the real binary against the
//! simulator's authorize and token endpoints: the loopback redirect, a pasted redirect URL, and a
//! forged `state`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_arbosync-agent");

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    sim: loket_sim::RunningSim,
}

async fn setup() -> Setup {
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 21,
        employers: 1,
        employees_per_employer: 5,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[database]\nurl = \"sqlite://{}\"\n\n[[connection]]\nname = \"sim\"\napi_url = \"{}\"\noauth_url = \"{}\"\nclient_id = \"{}\"\n\n[[employer]]\nid = \"{}\"\nconnection = \"sim\"\nactive = true\n",
            dir.path().join("state").display(),
            dir.path().join("db.sqlite").display(),
            sim.api_url,
            sim.oauth_url,
            sim.client_id,
            sim.employer_ids[0],
        ),
    )
    .expect("config");
    Setup {
        _dir: dir,
        config,
        sim,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts `connect` and returns it with its stdin and the authorize URL it printed.
fn start_connect(config: &Path, redirect: &str) -> (Child, ChildStdin, String) {
    let mut child = Command::new(AGENT)
        .args(["connect", "sim", "--redirect-uri", redirect, "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("connect starts");
    let stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("connect printed the authorize URL")
            .expect("read stdout");
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, stdin, url)
}

fn finish(mut child: Child) -> (bool, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            let _ =
                std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
            return (status.success(), err);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connect did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Plays the browser at the authorize URL: returns where Loket sends it back.
async fn consent_redirect(authorize: &str) -> String {
    let resp = no_redirects()
        .get(authorize)
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 302, "the simulator redirects");
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

fn sync_once(config: &Path) -> std::process::Output {
    Command::new(AGENT)
        .args(["sync", "--once", "--config"])
        .arg(config)
        .output()
        .expect("sync runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_returns_to_the_loopback_listener() {
    let s = setup().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let (child, _stdin, url) = start_connect(&s.config, &redirect);
    assert!(
        url.contains("state="),
        "the authorize URL carries a state: {url}"
    );
    assert!(url.contains("response_type=code") && url.contains("scope=all"));
    let back = consent_redirect(&url).await;
    assert!(back.starts_with(&redirect), "{back}");
    // A forged redirect to the listener (wrong state) is refused and does not end the consent.
    let forged = no_redirects()
        .get(format!("{redirect}?code=forged&state=not-the-state"))
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 400);
    let page = no_redirects().get(&back).send().await.expect("callback");
    assert_eq!(page.status(), 200);
    let (ok, err) = finish(child);
    assert!(ok, "connect failed: {err}");
    let out = sync_once(&s.config);
    assert!(
        out.status.success(),
        "sync with the consented token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = &s.sim;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_redirect_url_works_and_a_forged_state_is_refused() {
    let s = setup().await;
    // A redirect URI that is not loopback: no listener, the operator pastes.
    let redirect = "https://arbodienst.example/loket/callback";
    let (child, mut stdin, url) = start_connect(&s.config, redirect);
    let back = consent_redirect(&url).await;
    writeln!(stdin, "{back}").expect("paste");
    let (ok, err) = finish(child);
    assert!(ok, "connect failed: {err}");
    assert!(sync_once(&s.config).status.success());

    let (child, mut stdin, url) = start_connect(&s.config, redirect);
    let back = consent_redirect(&url).await;
    let state = url.split("state=").nth(1).expect("state").to_string();
    let forged = back.replace(&state, "0123456789abcdef0123456789abcdef");
    writeln!(stdin, "{forged}").expect("paste");
    let (ok, err) = finish(child);
    assert!(!ok, "a forged state must fail");
    assert!(err.contains("state does not match"), "{err}");
}
