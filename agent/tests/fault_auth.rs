//! OAuth faults through the real binary (R24 of `reliability-security.md` §4):
//! - the process killed between Loket's token response (the refresh token rotated) and the save
//!   of the new refresh token (failpoint `after-token-response`): after a restart, `sync --once`
//!   and (after another such kill) the service report `needs_reconnect` clearly, with one token
//!   request and no loop, nothing is written, and after a new consent the sync completes;
//! - every access token revoked mid-run while up to ten requests are in flight: many 401s, one
//!   refresh, and the run completes with the database equal to the truth.

mod common_e2e;
mod fault_common;

use std::time::Duration;

use common_e2e::*;
use fault_common::*;
use loket_sim::{FaultKind, FaultSpec, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_killed_before_the_rotated_token_is_saved() {
    let env = Env::start(
        Backend::Sqlite,
        sim_config(71, 2, 10),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let h = env.handle();
    h.reset_stats();

    let (out, _) = env
        .sync_with(&[], &[("ARBOSYNC_FAILPOINT", "after-token-response")])
        .await;
    assert_eq!(
        out.status.code(),
        Some(FAILPOINT_EXIT),
        "the failpoint stops the process: {}",
        text(&out)
    );
    assert_eq!(h.stats().token_requests, 1, "one refresh happened");
    assert_eq!(env.db.max_seq().await, 0, "nothing was written");

    // Loket rotated the token; the stored one is the old, now invalid one. The restarted agent
    // says so, once, and does not retry.
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        locked_out(&doc),
        "every employer needs a new consent: {doc}"
    );
    assert_eq!(
        h.stats().token_requests,
        2,
        "one refresh attempt for the whole pass, no retry loop"
    );
    assert_eq!(h.stats().total, 0, "no API request without a token");
    assert_eq!(env.db.max_seq().await, 0, "nothing was written");

    // The same kill, then a restart as the service: it tries once, reports the lockout and
    // waits for a consent instead of retrying every interval.
    reconnect(&env).await;
    let (out, _) = env
        .sync_with(&[], &[("ARBOSYNC_FAILPOINT", "after-token-response")])
        .await;
    assert_eq!(out.status.code(), Some(FAILPOINT_EXIT), "{}", text(&out));
    let dir = env.dir.path().to_path_buf();
    edit_config(&env, |t| {
        t.replacen(
            "[agent]\n",
            &format!(
                "[agent]\nsocket = \"{}\"\nlog_dir = \"{}\"\ninterval = \"2s\"\n",
                dir.join("agent.sock").display(),
                dir.join("logs").display()
            ),
            1,
        )
    });
    let before = h.stats().token_requests;
    let mut service = spawn_agent(&env, &["run"], &[], "service");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // SAFETY: signalling our own child process by its pid.
    let pid = service.child.id().expect("the service runs") as libc::pid_t;
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let (code, _) = service.wait(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "clean stop: {}", service.output());
    let during = h.stats().token_requests - before;
    assert_eq!(
        during, 1,
        "the service tried the rejected token once in 6 s (three intervals), not in a loop"
    );
    assert!(
        service.output().contains("needs a new consent"),
        "the service reports the lockout: {}",
        service.output()
    );
    assert_eq!(h.stats().total, 0, "no API request without a token");

    // A new consent: the sync completes and equals the truth.
    reconnect(&env).await;
    assert_converged(&env, "after a new consent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_give_one_refresh() {
    let sim = SimConfig {
        latency_ms: 30,
        ..sim_config(72, 1, 40)
    };
    let env = Env::start(Backend::Sqlite, sim, &[Opts::everything()]).await;
    edit_config(&env, |t| {
        t.replace("max_parallel_requests = 4", "max_parallel_requests = 10")
    });
    let h = env.handle();
    // Every access token becomes invalid when the first working-hours list is asked for, while
    // the other requests of that wave are still on their way.
    let mut fault = FaultSpec::new(FaultKind::ExpireTokens);
    fault.path_contains = Some("/workinghours".into());
    h.add_fault(fault).expect("fault");
    h.reset_stats();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync with tokens revoked mid-run")
        .await;
    let unauthorized = h.arrivals().iter().filter(|a| a.status == 401).count();
    eprintln!("{unauthorized} requests answered 401 after the tokens were revoked");
    assert!(
        unauthorized >= 3,
        "several requests in flight got a 401 ({unauthorized})"
    );
    assert_eq!(
        h.stats().token_requests,
        2,
        "the first token, and one refresh for all {unauthorized} 401s"
    );
    assert_matches_truth(&env, "after the 401s").await;
}
