//! The terminal dashboard, Elm-style: [`model`] holds the state, [`update`] changes it with no
//! I/O, [`view`] draws it. [`socket`] talks to the agent in its own task and [`terminal`] owns
//! the real terminal; this module's [`run`] wires them together.
//!
//! ```text
//! input thread ─Msg::Key/Resize─┐
//! socket task ──Msg::Connected/Snapshot/Event/RequestDone/…─┼─► update(model) ─► view(model)
//! 1 s ticker ───Msg::Tick───────┘            │ Command::Send/ReconnectNow ─► socket task
//! ```

pub mod fixtures;
pub mod format;
pub mod model;
pub mod socket;
pub mod terminal;
pub mod update;
pub mod view;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use model::Model;
use socket::SocketCommand;
use update::{Command, Msg, RequestFailure, update as apply};

/// Messages handled before one redraw, so a burst of events costs one frame.
const BATCH: usize = 256;

/// Whether colour is allowed: `NO_COLOR` set to anything non-empty turns it off.
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the dashboard against the agent socket until the operator quits.
pub async fn run(socket: PathBuf) -> anyhow::Result<()> {
    let mut model = Model::new(socket.display().to_string(), Utc::now(), color_allowed());
    let (msg_tx, mut msg_rx) = mpsc::channel::<Msg>(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel::<SocketCommand>(64);
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;

    let mut terminal = terminal::Terminal::enter().context("setting up the terminal")?;
    model.size = terminal.size().context("reading the terminal size")?;
    let input = terminal::Input::spawn(msg_tx.clone()).context("starting the input reader")?;
    let socket_task = tokio::spawn(socket::run(socket, msg_tx.clone(), cmd_rx));
    drop(msg_tx);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let result = async {
        terminal.draw(&model).context("drawing")?;
        loop {
            let first = tokio::select! {
                msg = msg_rx.recv() => match msg {
                    Some(msg) => msg,
                    None => break,
                },
                _ = tick.tick() => Msg::Tick(Utc::now()),
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
            };
            apply(&mut model, Msg::Tick(Utc::now()));
            let commands = apply(&mut model, first);
            let mut quit = execute(&mut model, commands, &cmd_tx);
            let mut handled = 1;
            while !quit && handled < BATCH {
                let Ok(msg) = msg_rx.try_recv() else { break };
                let commands = apply(&mut model, msg);
                quit = execute(&mut model, commands, &cmd_tx);
                handled += 1;
            }
            if quit {
                break;
            }
            terminal.draw(&model).context("drawing")?;
        }
        anyhow::Ok(())
    }
    .await;

    socket_task.abort();
    drop(terminal);
    // With the receiver gone, an input thread blocked on a full channel wakes up and ends.
    drop(msg_rx);
    input.stop();
    result
}

/// Carries out commands; true when the dashboard must quit.
fn execute(
    model: &mut Model,
    commands: Vec<Command>,
    socket: &mpsc::Sender<SocketCommand>,
) -> bool {
    let mut quit = false;
    for command in commands {
        match command {
            Command::Quit => quit = true,
            Command::ReconnectNow => {
                // A full queue already holds work that wakes the socket task.
                let _ = socket.try_send(SocketCommand::ReconnectNow);
            }
            Command::Send(request) => {
                if let Err(e) = socket.try_send(SocketCommand::Send(request)) {
                    let request = match e {
                        mpsc::error::TrySendError::Full(SocketCommand::Send(r))
                        | mpsc::error::TrySendError::Closed(SocketCommand::Send(r)) => r,
                        _ => continue,
                    };
                    let done = Msg::RequestDone {
                        request,
                        result: Err(RequestFailure::Connection(
                            "too many requests in flight".to_owned(),
                        )),
                    };
                    apply(model, done);
                }
            }
        }
    }
    quit
}
