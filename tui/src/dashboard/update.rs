//! `update(model, msg) -> commands`: every state change of the dashboard, with no I/O.
//!
//! Keys, socket messages, request results, ticks and resizes come in as [`Msg`]; what must happen
//! outside (send a request, reconnect now, quit) goes out as [`Command`]s for the run loop.

use std::time::Duration;

use arbosync_shared::{
    EmployerView, Event, Health, Progress, Reply, Request, RequestError, Role, RunOutcomeKind,
    RunningView, Snapshot,
};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{
    Back, Confirm, Connection, MAX_ERRORS, MAX_RUNS, Model, READ_ONLY_REASON, Refusal, Screen,
    ToastKind,
};

/// Everything that can happen to the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal was resized to (columns, rows).
    Resize(u16, u16),
    /// The clock moved on.
    Tick(DateTime<Utc>),
    /// A session was established (the handshake passed).
    Connected {
        role: Role,
        agent_version: String,
    },
    /// The snapshot that follows `Subscribe`.
    Snapshot(Box<Snapshot>),
    /// A pushed event.
    Event(Event),
    /// The connection failed or was lost; the socket task retries after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// The agent cannot be used (not running, no permission, protocol mismatch).
    Refused {
        refusal: Refusal,
        retry_in: Duration,
    },
    /// The answer to a [`Command::Send`].
    RequestDone {
        request: Request,
        result: Result<Reply, RequestFailure>,
    },
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestFailure {
    /// The agent answered with an error.
    Agent(RequestError),
    /// The request did not get an answer (not connected, connection lost).
    Connection(String),
}

/// What the run loop must do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Send(Request),
    /// Skip the backoff and try to connect now.
    ReconnectNow,
    Quit,
}

/// Rows of chrome around a list screen: header (2), status and footer lines (2), the table's
/// borders (2) and header row (1).
pub const LIST_CHROME_ROWS: u16 = 7;

/// Rows a list screen shows at the model's terminal height.
pub fn page_rows(model: &Model) -> usize {
    usize::from(model.size.1.saturating_sub(LIST_CHROME_ROWS).max(1))
}

/// Applies one message. Pure: no I/O, time comes from the model.
pub fn update(model: &mut Model, msg: Msg) -> Vec<Command> {
    match msg {
        Msg::Key(key) => on_key(model, key),
        Msg::Resize(columns, rows) => {
            model.size = (columns, rows);
            keep_offsets(model);
            Vec::new()
        }
        Msg::Tick(now) => {
            model.now = now;
            model.toasts.retain(|t| t.until > now);
            Vec::new()
        }
        Msg::Connected {
            role,
            agent_version,
        } => {
            let was_lost = matches!(
                model.connection,
                Connection::Lost { .. } | Connection::Refused { .. }
            );
            model.connection = Connection::Connected { since: model.now };
            model.role = Some(role);
            model.agent_version = Some(agent_version);
            if was_lost {
                model.toast(ToastKind::Info, "reconnected to the agent");
            }
            Vec::new()
        }
        Msg::Snapshot(snapshot) => {
            model.apply_snapshot(*snapshot);
            after_data_change(model);
            Vec::new()
        }
        Msg::Event(event) => {
            on_event(model, event);
            // Live events keep the data fresh as much as a snapshot does.
            model.data_at = Some(model.now);
            Vec::new()
        }
        Msg::Disconnected { reason, retry_in } => {
            let attempt = next_attempt(&model.connection);
            model.connection = Connection::Lost {
                reason,
                attempt,
                retry_at: model.now + to_chrono(retry_in),
            };
            model.confirm = None;
            Vec::new()
        }
        Msg::Refused { refusal, retry_in } => {
            let attempt = next_attempt(&model.connection);
            model.connection = Connection::Refused {
                refusal,
                attempt,
                retry_at: model.now + to_chrono(retry_in),
            };
            model.confirm = None;
            model.filter_editing = false;
            Vec::new()
        }
        Msg::RequestDone { request, result } => {
            on_request_done(model, request, result);
            Vec::new()
        }
    }
}

fn next_attempt(connection: &Connection) -> u32 {
    match connection {
        Connection::Lost { attempt, .. } | Connection::Refused { attempt, .. } => attempt + 1,
        Connection::Connecting | Connection::Connected { .. } => 1,
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Whether the screen is one of the full-screen connection messages (no data to show).
pub fn blocking_screen(model: &Model) -> bool {
    match model.connection {
        Connection::Refused { .. } => true,
        Connection::Connecting | Connection::Lost { .. } => !model.has_data(),
        Connection::Connected { .. } => !model.has_data(),
    }
}

fn on_key(model: &mut Model, key: KeyEvent) -> Vec<Command> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return vec![Command::Quit];
    }
    if model.confirm.is_some() {
        return on_confirm_key(model, key);
    }
    if model.filter_editing {
        on_filter_key(model, key);
        return Vec::new();
    }
    if model.help {
        match key.code {
            KeyCode::Char('?') | KeyCode::Esc => model.help = false,
            KeyCode::Char('q') => return vec![Command::Quit],
            _ => {}
        }
        return Vec::new();
    }
    if blocking_screen(model) {
        return match key.code {
            KeyCode::Char('q') => vec![Command::Quit],
            KeyCode::Char('r') | KeyCode::Enter => vec![Command::ReconnectNow],
            KeyCode::Char('?') => {
                model.help = true;
                Vec::new()
            }
            _ => Vec::new(),
        };
    }
    match key.code {
        KeyCode::Char('q') => return vec![Command::Quit],
        KeyCode::Char('?') => model.help = true,
        KeyCode::Up | KeyCode::Char('k') => move_selection(model, -1),
        KeyCode::Down | KeyCode::Char('j') => move_selection(model, 1),
        KeyCode::PageUp => move_selection(model, -(page_rows(model) as isize)),
        KeyCode::PageDown => move_selection(model, page_rows(model) as isize),
        KeyCode::Home | KeyCode::Char('g') => move_selection(model, isize::MIN),
        KeyCode::End | KeyCode::Char('G') => move_selection(model, isize::MAX),
        KeyCode::Enter => open(model),
        KeyCode::Esc => back(model),
        KeyCode::Tab => switch(model, next_tab(model.screen, 1)),
        KeyCode::BackTab => switch(model, next_tab(model.screen, -1)),
        KeyCode::Char('1') => switch(model, Screen::Overview),
        KeyCode::Char('2') => switch(model, Screen::Errors),
        KeyCode::Char('3') => switch(model, Screen::Agent),
        KeyCode::Char('/') => match model.screen {
            Screen::Overview | Screen::Errors => model.filter_editing = true,
            _ => model.toast(ToastKind::Info, "filter works on the overview and errors"),
        },
        KeyCode::Char('s') => return act_on_selected(model, false),
        KeyCode::Char('f') => return act_on_selected(model, true),
        KeyCode::Char('S') => ask_all(model, false),
        KeyCode::Char('F') => ask_all(model, true),
        KeyCode::Char('p') => return pause_or_resume(model),
        KeyCode::Char('r') => return requeue(model),
        _ => {}
    }
    Vec::new()
}

fn on_confirm_key(model: &mut Model, key: KeyEvent) -> Vec<Command> {
    let Some(confirm) = model.confirm.take() else {
        return Vec::new();
    };
    match key.code {
        KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
            if let Err(reason) = may_mutate(model) {
                model.toast(ToastKind::Error, reason);
                return Vec::new();
            }
            vec![Command::Send(confirm.request)]
        }
        _ => {
            model.toast(ToastKind::Info, "cancelled");
            Vec::new()
        }
    }
}

fn on_filter_key(model: &mut Model, key: KeyEvent) {
    let list = match model.screen {
        Screen::Errors => &mut model.errors_list,
        _ => &mut model.overview,
    };
    match key.code {
        KeyCode::Enter => model.filter_editing = false,
        KeyCode::Esc => {
            list.filter.clear();
            model.filter_editing = false;
        }
        KeyCode::Backspace => {
            list.filter.pop();
        }
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
            list.filter.push(c);
        }
        _ => return,
    }
    list.selected = 0;
    list.offset = 0;
    model.clamp_selections();
}

fn move_selection(model: &mut Model, delta: isize) {
    let len = match model.screen {
        Screen::Overview => model.visible_employer_count(),
        Screen::Errors => model.visible_errors().len(),
        Screen::Detail { employer, .. } => {
            model.employer(employer).map_or(0, |e| e.retry_queue.len())
        }
        Screen::Agent => 0,
    };
    let current = match model.screen {
        Screen::Overview => model.overview.selected,
        Screen::Errors => model.errors_list.selected,
        Screen::Detail { .. } => model.retry_selected,
        Screen::Agent => return,
    };
    let last = len.saturating_sub(1);
    let target = if delta < 0 {
        current.saturating_sub(delta.unsigned_abs())
    } else {
        current.saturating_add(delta.unsigned_abs()).min(last)
    };
    match model.screen {
        Screen::Overview => model.overview.selected = target,
        Screen::Errors => model.errors_list.selected = target,
        Screen::Detail { .. } => model.retry_selected = target,
        Screen::Agent => {}
    }
    keep_offsets(model);
}

/// Moves the scroll offsets so the selections stay on screen.
fn keep_offsets(model: &mut Model) {
    let rows = page_rows(model);
    for list in [&mut model.overview, &mut model.errors_list] {
        if list.selected < list.offset {
            list.offset = list.selected;
        } else if list.selected >= list.offset + rows {
            list.offset = list.selected + 1 - rows;
        }
    }
}

fn open(model: &mut Model) {
    let target = match model.screen {
        Screen::Overview => model
            .selected_overview_id()
            .map(|employer| (employer, Back::Overview)),
        Screen::Errors => {
            let selected = model
                .visible_errors()
                .get(model.errors_list.selected)
                .map(|e| e.employer);
            match selected {
                Some(Some(employer)) if model.employer(employer).is_some() => {
                    Some((employer, Back::Errors))
                }
                Some(_) => {
                    model.toast(
                        ToastKind::Info,
                        "this error is not about a configured employer",
                    );
                    None
                }
                None => None,
            }
        }
        Screen::Detail { .. } | Screen::Agent => None,
    };
    if let Some((employer, from)) = target {
        model.screen = Screen::Detail { employer, from };
        model.retry_selected = 0;
    }
}

fn back(model: &mut Model) {
    match model.screen {
        Screen::Detail { from, .. } => {
            model.screen = match from {
                Back::Overview => Screen::Overview,
                Back::Errors => Screen::Errors,
            }
        }
        Screen::Overview if !model.overview.filter.is_empty() => {
            let keep = model.selected_overview_id();
            model.overview.filter.clear();
            model.reselect_overview(keep);
            model.clamp_selections();
            keep_offsets(model);
        }
        Screen::Errors if !model.errors_list.filter.is_empty() => {
            model.errors_list.filter.clear();
            model.clamp_selections();
            keep_offsets(model);
        }
        Screen::Errors | Screen::Agent => model.screen = Screen::Overview,
        Screen::Overview => {}
    }
}

fn next_tab(screen: Screen, step: isize) -> Screen {
    const TABS: [Screen; 3] = [Screen::Overview, Screen::Errors, Screen::Agent];
    let current = match screen {
        Screen::Overview | Screen::Detail { .. } => 0,
        Screen::Errors => 1,
        Screen::Agent => 2,
    };
    let next = (current as isize + step).rem_euclid(TABS.len() as isize) as usize;
    TABS[next]
}

fn switch(model: &mut Model, screen: Screen) {
    model.screen = screen;
    model.clamp_selections();
}

/// `Ok` when a mutating request may be sent; the reason otherwise.
fn may_mutate(model: &Model) -> Result<(), String> {
    if !model.is_connected() {
        return Err("not connected to the agent".to_owned());
    }
    match model.role {
        Some(Role::Admin) => Ok(()),
        Some(Role::ReadOnly) | None => Err(READ_ONLY_REASON.to_owned()),
    }
}

/// Runs `f` with the selected employer if actions are allowed; toasts why not otherwise.
fn with_selected(
    model: &mut Model,
    f: impl FnOnce(&mut Model, &EmployerView) -> Vec<Command>,
) -> Vec<Command> {
    if let Err(reason) = may_mutate(model) {
        model.toast(ToastKind::Error, reason);
        return Vec::new();
    }
    match model.selected_employer().cloned() {
        Some(employer) => f(model, &employer),
        None => {
            model.toast(ToastKind::Info, "select an employer first");
            Vec::new()
        }
    }
}

fn act_on_selected(model: &mut Model, full: bool) -> Vec<Command> {
    with_selected(model, |model, employer| {
        let what = if full { "full reconcile" } else { "sync" };
        model.toast(
            ToastKind::Info,
            format!("{what} requested for {}", employer.name),
        );
        vec![Command::Send(Request::SyncNow {
            employer: Some(employer.id),
            full,
        })]
    })
}

fn ask_all(model: &mut Model, full: bool) {
    if let Err(reason) = may_mutate(model) {
        model.toast(ToastKind::Error, reason);
        return;
    }
    let active = model.employers.iter().filter(|e| e.active).count();
    let what = if full {
        "Full reconcile of ALL"
    } else {
        "Sync ALL"
    };
    model.confirm = Some(Confirm {
        prompt: format!("{what} {active} active employers now?"),
        request: Request::SyncNow {
            employer: None,
            full,
        },
    });
}

fn pause_or_resume(model: &mut Model) -> Vec<Command> {
    with_selected(model, |model, employer| {
        let request = if employer.paused {
            model.toast(ToastKind::Info, format!("resuming {}", employer.name));
            Request::Resume {
                employer: employer.id,
            }
        } else {
            model.toast(ToastKind::Info, format!("pausing {}", employer.name));
            Request::Pause {
                employer: employer.id,
            }
        };
        vec![Command::Send(request)]
    })
}

fn requeue(model: &mut Model) -> Vec<Command> {
    if !matches!(model.screen, Screen::Detail { .. }) {
        model.toast(
            ToastKind::Info,
            "open an employer (Enter) to pick a retry-queue entry",
        );
        return Vec::new();
    }
    let selected = model.retry_selected;
    with_selected(model, |model, employer| {
        match employer.retry_queue.get(selected) {
            Some(entry) => {
                model.toast(
                    ToastKind::Info,
                    format!("requeueing {} {}", entry.entity, entry.record_id),
                );
                vec![Command::Send(Request::Requeue {
                    employer: employer.id,
                    entity: entry.entity.clone(),
                    record_id: entry.record_id.clone(),
                })]
            }
            None => {
                model.toast(ToastKind::Info, "no retry-queue entry to requeue");
                Vec::new()
            }
        }
    })
}

fn on_event(model: &mut Model, event: Event) {
    match event {
        Event::RunStarted {
            employer,
            run_id,
            full,
            at,
        } => {
            if let Some(e) = model.employer_mut(employer) {
                e.running = Some(RunningView {
                    run_id,
                    full,
                    started_at: at,
                    progress: Progress::Started,
                });
                e.health = Health::Running;
            }
        }
        Event::RunProgress {
            employer,
            run_id,
            progress,
        } => {
            let now = model.now;
            if let Some(e) = model.employer_mut(employer) {
                match &mut e.running {
                    Some(running) if running.run_id == run_id => running.progress = progress,
                    // A run we did not see start (we subscribed during it).
                    _ => {
                        e.running = Some(RunningView {
                            run_id,
                            full: false,
                            started_at: now,
                            progress,
                        })
                    }
                }
                e.health = Health::Running;
            }
        }
        Event::RunFinished { employer, run } => {
            if let Some(e) = model.employer_mut(employer) {
                if e.running.as_ref().is_some_and(|r| r.run_id == run.run_id) {
                    e.running = None;
                }
                if let Some(error) = &run.error {
                    e.last_error = Some(error.clone());
                    e.last_error_at = Some(run.finished_at);
                }
                e.health = health_after(e, run.outcome);
                e.recent_runs.insert(0, run);
                e.recent_runs.truncate(MAX_RUNS);
            }
        }
        Event::EmployerChanged { employer } => {
            model.upsert_employer(*employer);
        }
        Event::EmployerRemoved { employer } => {
            let keep = model.selected_overview_id();
            model.employers.retain(|e| e.id != employer);
            if matches!(model.screen, Screen::Detail { employer: open, .. } if open == employer) {
                model.screen = Screen::Overview;
                model.toast(
                    ToastKind::Info,
                    "the employer was removed from the configuration",
                );
            }
            model.reselect_overview(keep);
            model.clamp_selections();
        }
        Event::ErrorRecorded { error } => {
            model.errors.insert(0, error);
            model.errors.truncate(MAX_ERRORS);
            // Keep the same error selected when a new one arrives on top.
            if model.errors_list.selected > 0 || model.screen == Screen::Errors {
                let len = model.visible_errors().len();
                if model.errors_list.filter.is_empty() && model.errors_list.selected + 1 < len {
                    model.errors_list.selected += 1;
                }
            }
        }
        Event::AgentChanged { agent } => model.agent = Some(*agent),
        Event::Resync { snapshot } => model.apply_snapshot(*snapshot),
    }
    after_data_change(model);
}

/// The badge after a run, until the agent sends the employer's own view.
fn health_after(employer: &EmployerView, outcome: RunOutcomeKind) -> Health {
    if !employer.active {
        return Health::Inactive;
    }
    if employer.needs_reconnect {
        return Health::NeedsReconnect;
    }
    if employer.paused {
        return Health::Paused;
    }
    match outcome {
        RunOutcomeKind::Ok => Health::Ok,
        RunOutcomeKind::Partial => Health::Partial,
        RunOutcomeKind::Failed => Health::Failed,
        RunOutcomeKind::Cancelled => match employer.last_run().map(|r| r.outcome) {
            Some(RunOutcomeKind::Partial) => Health::Partial,
            Some(RunOutcomeKind::Failed) => Health::Failed,
            Some(RunOutcomeKind::Ok) => Health::Ok,
            Some(RunOutcomeKind::Cancelled) | None => Health::New,
        },
    }
}

fn after_data_change(model: &mut Model) {
    if let Screen::Detail { employer, .. } = model.screen
        && model.employer(employer).is_none()
        && model.has_data()
    {
        model.screen = Screen::Overview;
    }
    model.clamp_selections();
    keep_offsets(model);
}

fn on_request_done(model: &mut Model, request: Request, result: Result<Reply, RequestFailure>) {
    match result {
        Ok(Reply::SyncQueued { employers }) => {
            let text = match employers.as_slice() {
                [one] => format!(
                    "sync queued for {}",
                    model.employer_name(*one).unwrap_or("the employer")
                ),
                many => format!("sync queued for {} employers", many.len()),
            };
            model.toast(ToastKind::Info, text);
        }
        Ok(Reply::Employer { employer }) => {
            let name = employer.name.clone();
            model.upsert_employer(*employer);
            let text = match request {
                Request::Pause { .. } => format!("paused {name}"),
                Request::Resume { .. } => format!("resumed {name}"),
                Request::Requeue {
                    entity, record_id, ..
                } => format!("requeued {entity} {record_id} for the next run of {name}"),
                _ => format!("updated {name}"),
            };
            model.toast(ToastKind::Info, text);
        }
        Ok(Reply::Snapshot { snapshot }) => {
            model.apply_snapshot(*snapshot);
            after_data_change(model);
        }
        Ok(Reply::Errors { .. }) => {}
        Err(RequestFailure::Agent(error)) => {
            model.toast(ToastKind::Error, format!("the agent refused: {error}"));
        }
        Err(RequestFailure::Connection(reason)) => {
            model.toast(ToastKind::Error, format!("request failed: {reason}"));
        }
    }
}
