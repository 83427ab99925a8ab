//! The scripting commands (`arbosync status|sync|pause|resume|errors`): one request each over
//! the control socket, printed as a table or as JSON. Exit codes: 0 done; 1 the run failed or
//! ended partial (`sync --wait`), or the agent refused the request; 2 the agent could not be
//! reached (not running, no permission, protocol mismatch).

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use arbosync_shared::{
    EmployerView, Event, Health, Reply, Request, RunOutcomeKind, RunSummary, Snapshot,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::client::{ClientError, Session};

/// Exit code when the agent cannot be reached or refuses this client.
pub const EXIT_UNREACHABLE: u8 = 2;

/// Maps a client error to an exit code and prints it.
pub fn report(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        ClientError::Request(_) => ExitCode::from(1),
        _ => ExitCode::from(EXIT_UNREACHABLE),
    }
}

async fn snapshot(session: &Session) -> Result<Snapshot, ClientError> {
    match session.request(Request::Snapshot).await? {
        Reply::Snapshot { snapshot } => Ok(*snapshot),
        _ => Err(ClientError::Protocol("expected a snapshot".into())),
    }
}

pub async fn status(socket: &Path, json: bool) -> Result<ExitCode, ClientError> {
    let session = Session::connect(socket).await?;
    let snap = snapshot(&session).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&snap)
                .map_err(|e| ClientError::Protocol(e.to_string()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let a = &snap.agent;
    println!(
        "arbosync-agent {}  up {}  database {}  channel {}{}",
        a.version,
        ago(a.started_at, now),
        a.database,
        a.update.channel,
        a.update
            .pending
            .as_ref()
            .map(|v| format!(" (update {v} pending)"))
            .unwrap_or_default()
    );
    for alert in &a.alerts {
        println!("alert: {alert}");
    }
    println!();
    println!(
        "{:<36}  {:<22}  {:<14}  {:<12}  {:>8}  {:<16}  {:<10}",
        "employer", "name", "status", "last run", "took", "changes", "next run"
    );
    for e in &snap.employers {
        print_employer(e, now);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_employer(e: &EmployerView, now: DateTime<Utc>) {
    let last = e.last_run();
    let changes = last
        .map(|r| format!("+{} ~{} -{}", r.inserted, r.updated, r.deleted))
        .unwrap_or_default();
    let took = last
        .map(|r| format!("{:.1}s", r.duration_ms as f64 / 1000.0))
        .unwrap_or_default();
    println!(
        "{:<36}  {:<22.22}  {:<14}  {:<12}  {:>8}  {:<16}  {:<10}",
        e.id,
        e.name,
        health_label(e),
        last.map(|r| ago(r.finished_at, now))
            .unwrap_or_else(|| "never".into()),
        took,
        changes,
        e.next_run_at
            .map(|t| until(t, now))
            .unwrap_or_else(|| "-".into()),
    );
    if let Some(err) = &e.last_error
        && matches!(
            e.health,
            Health::Failed | Health::NeedsReconnect | Health::Partial
        )
    {
        println!("    error: {err}");
    }
}

pub fn health_label(e: &EmployerView) -> String {
    match e.health {
        Health::New => "new".into(),
        Health::Ok => "ok".into(),
        Health::Running => "running".into(),
        Health::Partial => "partial".into(),
        Health::Failed => "failed".into(),
        Health::NeedsReconnect => "needs reconnect".into(),
        Health::Paused => "paused".into(),
        Health::Inactive => "inactive".into(),
    }
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", span(now.signed_duration_since(t)))
}

fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t.signed_duration_since(now);
    if d.num_seconds() <= 0 {
        "due".into()
    } else {
        format!("in {}", span(d))
    }
}

fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub async fn sync(
    socket: &Path,
    employer: Option<Uuid>,
    full: bool,
    wait: bool,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let session = Session::connect(socket).await?;
    // Subscribe first so the run's end cannot slip past.
    let mut events = if wait {
        Some(session.subscribe().await?.1)
    } else {
        None
    };
    let asked_at = Utc::now();
    let queued = match session.request(Request::SyncNow { employer, full }).await? {
        Reply::SyncQueued { employers } => employers,
        _ => return Err(ClientError::Protocol("expected sync queued".into())),
    };
    let Some(events) = events.as_mut() else {
        if json {
            println!("{}", serde_json::json!({ "queued": queued }));
        } else {
            println!("queued {} employer(s)", queued.len());
        }
        return Ok(ExitCode::SUCCESS);
    };
    let mut waiting: HashSet<Uuid> = queued.iter().copied().collect();
    let mut results: Vec<(Uuid, RunSummary)> = Vec::new();
    while !waiting.is_empty() {
        match events.recv().await {
            None => return Err(ClientError::Disconnected),
            // A run that started after the request answers it (an older run still going
            // when the request came does not).
            Some(Event::RunFinished { employer, run })
                if waiting.contains(&employer) && run.started_at >= asked_at =>
            {
                waiting.remove(&employer);
                if !json {
                    println!(
                        "{employer}  {:<8} {} +{} ~{} -{} failed {} ({} requests, {:.1}s){}",
                        outcome_label(run.outcome),
                        if run.full { "full" } else { "incremental" },
                        run.inserted,
                        run.updated,
                        run.deleted,
                        run.failed,
                        run.requests,
                        run.duration_ms as f64 / 1000.0,
                        run.error
                            .as_ref()
                            .map(|e| format!("\n    error: {e}"))
                            .unwrap_or_default()
                    );
                }
                results.push((employer, run));
            }
            Some(_) => {}
        }
    }
    let ok = results.iter().all(|(_, r)| r.outcome == RunOutcomeKind::Ok);
    if json {
        let runs: Vec<_> = results
            .iter()
            .map(|(e, r)| serde_json::json!({ "employer": e, "run": r }))
            .collect();
        println!("{}", serde_json::json!({ "ok": ok, "runs": runs }));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn outcome_label(o: RunOutcomeKind) -> &'static str {
    match o {
        RunOutcomeKind::Ok => "ok",
        RunOutcomeKind::Partial => "partial",
        RunOutcomeKind::Failed => "failed",
        RunOutcomeKind::Cancelled => "cancelled",
    }
}

pub async fn pause(socket: &Path, employer: Uuid, paused: bool) -> Result<ExitCode, ClientError> {
    let session = Session::connect(socket).await?;
    let request = if paused {
        Request::Pause { employer }
    } else {
        Request::Resume { employer }
    };
    match session.request(request).await? {
        Reply::Employer { employer: view } => {
            println!("{}: {}", view.id, health_label(&view));
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(ClientError::Protocol("expected the employer's view".into())),
    }
}

pub async fn errors(
    socket: &Path,
    employer: Option<Uuid>,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let session = Session::connect(socket).await?;
    let (errors, retry_queue) = match session.request(Request::Errors { employer }).await? {
        Reply::Errors {
            errors,
            retry_queue,
        } => (errors, retry_queue),
        _ => return Err(ClientError::Protocol("expected errors".into())),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "errors": errors, "retry_queue": retry_queue })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("recent errors ({}):", errors.len());
    for e in &errors {
        println!(
            "  {}  {}  {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.employer
                .map(|id| id.to_string())
                .unwrap_or_else(|| "agent".into()),
            e.message
        );
    }
    println!("retry queue ({}):", retry_queue.len());
    for r in &retry_queue {
        println!(
            "  {}  {} {}  attempts {}  {}",
            r.employer, r.entity, r.record_id, r.attempts, r.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
