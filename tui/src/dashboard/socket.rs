//! The socket task: owns the [`Session`], turns what the agent says into [`Msg`]s, and runs the
//! requests the UI asks for. Connects with backoff, subscribes, and after a lost connection
//! reconnects and starts again from a fresh snapshot. The UI never waits on it.

use std::path::PathBuf;
use std::time::Duration;

use arbosync_shared::Request;
use tokio::sync::mpsc;

use super::model::Refusal;
use super::update::{Msg, RequestFailure};
use crate::client::{ClientError, Session};

/// What the UI asks the socket task to do.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketCommand {
    Send(Request),
    /// Skip the current backoff wait.
    ReconnectNow,
}

/// The wait before attempt `attempt + 1` (0-based): 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.min(5));
    Duration::from_millis(ms.min(10_000))
}

/// How a failed connect or subscribe is shown.
pub fn failure_msg(error: &ClientError, retry_in: Duration) -> Msg {
    let refusal = match error {
        ClientError::NotRunning { .. } => Some(Refusal::NotRunning),
        ClientError::NoPermission { message, .. } => Some(Refusal::NoPermission {
            message: message.clone(),
        }),
        ClientError::ProtocolMismatch {
            agent_version,
            agent_protocol,
        } => Some(Refusal::ProtocolMismatch {
            agent_version: agent_version.clone(),
            agent_protocol: *agent_protocol,
        }),
        ClientError::Request(_)
        | ClientError::Disconnected
        | ClientError::Protocol(_)
        | ClientError::Io(_) => None,
    };
    match refusal {
        Some(refusal) => Msg::Refused { refusal, retry_in },
        None => Msg::Disconnected {
            reason: error.to_string(),
            retry_in,
        },
    }
}

fn request_failure(error: ClientError) -> RequestFailure {
    match error {
        ClientError::Request(e) => RequestFailure::Agent(e),
        other => RequestFailure::Connection(other.to_string()),
    }
}

/// Runs until the UI drops its side of either channel.
pub async fn run(
    socket: PathBuf,
    msgs: mpsc::Sender<Msg>,
    mut commands: mpsc::Receiver<SocketCommand>,
) {
    let mut attempt: u32 = 0;
    loop {
        let failure = match Session::connect(&socket).await {
            Ok(session) => {
                let connected = Msg::Connected {
                    role: session.role(),
                    agent_version: session.agent_version().to_owned(),
                };
                if msgs.send(connected).await.is_err() {
                    return;
                }
                match session.subscribe().await {
                    Ok((snapshot, events)) => {
                        attempt = 0;
                        if msgs.send(Msg::Snapshot(Box::new(snapshot))).await.is_err() {
                            return;
                        }
                        match serve(&session, events, &msgs, &mut commands).await {
                            Some(error) => error,
                            None => return,
                        }
                    }
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        let retry_in = backoff(attempt);
        attempt = attempt.saturating_add(1);
        if msgs.send(failure_msg(&failure, retry_in)).await.is_err() {
            return;
        }
        if !wait(retry_in, &msgs, &mut commands).await {
            return;
        }
    }
}

/// Forwards events and runs requests while the session lasts. `None` when the UI is gone.
async fn serve(
    session: &Session,
    mut events: mpsc::Receiver<arbosync_shared::Event>,
    msgs: &mpsc::Sender<Msg>,
    commands: &mut mpsc::Receiver<SocketCommand>,
) -> Option<ClientError> {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if msgs.send(Msg::Event(event)).await.is_err() {
                        return None;
                    }
                }
                None => return Some(ClientError::Disconnected),
            },
            command = commands.recv() => match command {
                Some(SocketCommand::Send(request)) => {
                    let session = session.clone();
                    let msgs = msgs.clone();
                    tokio::spawn(async move {
                        let result = session
                            .request(request.clone())
                            .await
                            .map_err(request_failure);
                        // The UI may be gone; nothing to do then.
                        let _ = msgs.send(Msg::RequestDone { request, result }).await;
                    });
                }
                Some(SocketCommand::ReconnectNow) => {}
                None => return None,
            },
        }
    }
}

/// Waits out a backoff; `r` cuts it short. Requests meanwhile fail at once. False when the UI
/// is gone.
async fn wait(
    delay: Duration,
    msgs: &mpsc::Sender<Msg>,
    commands: &mut mpsc::Receiver<SocketCommand>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            command = commands.recv() => match command {
                Some(SocketCommand::ReconnectNow) => return true,
                Some(SocketCommand::Send(request)) => {
                    let done = Msg::RequestDone {
                        request,
                        result: Err(RequestFailure::Connection(
                            "not connected to the agent".to_owned(),
                        )),
                    };
                    if msgs.send(done).await.is_err() {
                        return false;
                    }
                }
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let ms: Vec<u128> = (0..8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn failures_map_to_screens() {
        let d = Duration::from_secs(1);
        let not_running = ClientError::NotRunning {
            socket: PathBuf::from("/x"),
        };
        assert_eq!(
            failure_msg(&not_running, d),
            Msg::Refused {
                refusal: Refusal::NotRunning,
                retry_in: d
            }
        );
        let mismatch = ClientError::ProtocolMismatch {
            agent_version: "9.0.0".into(),
            agent_protocol: 9,
        };
        assert!(matches!(
            failure_msg(&mismatch, d),
            Msg::Refused {
                refusal: Refusal::ProtocolMismatch {
                    agent_protocol: 9,
                    ..
                },
                ..
            }
        ));
        let denied = ClientError::NoPermission {
            socket: PathBuf::from("/x"),
            message: "not in group".into(),
        };
        assert!(matches!(
            failure_msg(&denied, d),
            Msg::Refused {
                refusal: Refusal::NoPermission { .. },
                ..
            }
        ));
        assert!(matches!(
            failure_msg(&ClientError::Disconnected, d),
            Msg::Disconnected { .. }
        ));
    }
}
