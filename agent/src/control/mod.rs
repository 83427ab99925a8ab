//! The control socket: a Unix socket (mode 0660) speaking the `arbosync-shared` protocol.
//!
//! Each connection gets its own task: a `Hello` within [`HELLO_TIMEOUT`], a role from the peer's
//! credentials, then requests answered in order and, after `Subscribe`, pushed events. A bad
//! frame (garbage, too large, wrong protocol version) gets an error frame and that connection is
//! closed; the agent and the other connections carry on.

pub mod peer;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arbosync_shared::{
    self as wire, ClientFrame, PROTOCOL_VERSION, RefusalReason, ResponseOutcome, Role, ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{RwLock, broadcast};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::service::hub::Hub;
use peer::{AccessPolicy, Peer};

/// How long a new connection has to say `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The socket file's mode: owner and group.
pub const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another agent is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds the socket, replacing a stale file left by a crash (but never a live agent's socket).
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        info!(socket = %path.display(), "replacing a stale control socket");
        std::fs::remove_file(path).map_err(|source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(
        |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        },
    )?;
    Ok(listener)
}

/// Accepts connections until `cancel`; each is served on `tracker`.
pub async fn serve(
    listener: UnixListener,
    hub: Arc<Hub>,
    policy: Arc<RwLock<AccessPolicy>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let hub = Arc::clone(&hub);
                    let policy = Arc::clone(&policy);
                    let cancel = cancel.clone();
                    tracker.spawn(async move {
                        serve_connection(stream, hub, policy, cancel).await;
                    });
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

type Reader = FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<tokio::net::unix::OwnedWriteHalf, LengthDelimitedCodec>;

async fn send(writer: &mut Writer, frame: &ServerFrame) -> bool {
    match wire::encode(frame) {
        Ok(bytes) => writer.send(Bytes::from(bytes)).await.is_ok(),
        Err(e) => {
            warn!(error = %e, "could not encode a control frame");
            false
        }
    }
}

fn refused(reason: RefusalReason, message: String) -> ServerFrame {
    ServerFrame::Refused {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        reason,
        message,
    }
}

/// Reads one frame: `None` at end of stream; `Err` with a message for a bad frame.
async fn read_frame(reader: &mut Reader) -> Option<Result<ClientFrame, String>> {
    match reader.next().await? {
        Ok(bytes) => Some(wire::decode(&bytes).map_err(|e| e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(Err(format!(
            "frame rejected ({e}); the limit is {} bytes",
            wire::MAX_FRAME_BYTES
        ))),
        Err(e) => {
            debug!(error = %e, "control connection read failed");
            None
        }
    }
}

async fn serve_connection(
    stream: UnixStream,
    hub: Arc<Hub>,
    policy: Arc<RwLock<AccessPolicy>>,
    cancel: CancellationToken,
) {
    let peer = match Peer::from_stream(&stream) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot read the control peer's credentials; closing");
            return;
        }
    };
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, wire::codec());
    let mut writer = FramedWrite::new(write, wire::codec());

    // 1. Hello.
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut reader)).await;
    let (version, client) = match hello {
        Ok(Some(Ok(ClientFrame::Hello {
            protocol_version,
            client,
        }))) => (protocol_version, client),
        Ok(Some(Ok(ClientFrame::Request { .. }))) => {
            send(
                &mut writer,
                &refused(
                    RefusalReason::HelloExpected,
                    "the first frame must be a hello".into(),
                ),
            )
            .await;
            return;
        }
        Ok(Some(Err(message))) => {
            send(&mut writer, &ServerFrame::Error { message }).await;
            return;
        }
        Ok(None) => return,
        Err(_) => {
            send(
                &mut writer,
                &refused(RefusalReason::HelloExpected, "no hello within 10 s".into()),
            )
            .await;
            return;
        }
    };
    if version != PROTOCOL_VERSION {
        info!(
            uid = peer.uid,
            client_protocol = version,
            "refused a client with another protocol version"
        );
        send(
            &mut writer,
            &refused(
                RefusalReason::ProtocolMismatch,
                format!(
                    "this agent speaks protocol v{PROTOCOL_VERSION}, the client v{version}; use the arbosync dashboard of the same release"
                ),
            ),
        )
        .await;
        return;
    }
    let Some(role) = policy.read().await.role(&peer) else {
        info!(
            uid = peer.uid,
            "refused a control client without permission"
        );
        send(
            &mut writer,
            &refused(
                RefusalReason::NotPermitted,
                format!(
                    "user {} may not use this agent: ask for membership of an allowed group (see read_groups/admin_groups)",
                    peer.uid
                ),
            ),
        )
        .await;
        return;
    };
    debug!(uid = peer.uid, ?role, client = %client.chars().take(64).collect::<String>(), "control client connected");
    if !send(
        &mut writer,
        &ServerFrame::Welcome {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            role,
        },
    )
    .await
    {
        return;
    }

    // 2. Requests and, once subscribed, events.
    let mut events: Option<broadcast::Receiver<wire::Event>> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            frame = read_frame(&mut reader) => {
                let frame = match frame {
                    None => break,
                    Some(Err(message)) => {
                        send(&mut writer, &ServerFrame::Error { message }).await;
                        break;
                    }
                    Some(Ok(f)) => f,
                };
                let (id, request) = match frame {
                    ClientFrame::Request { id, request } => (id, request),
                    ClientFrame::Hello { .. } => {
                        send(&mut writer, &ServerFrame::Error { message: "hello was already received".into() }).await;
                        break;
                    }
                };
                if request.is_mutating() && role != Role::Admin {
                    let outcome = ResponseOutcome::Err(wire::RequestError::NotPermitted {
                        reason: "read-only access: changing the agent needs the admin group".into(),
                    });
                    if !send(&mut writer, &ServerFrame::Response { id, outcome }).await { break; }
                    continue;
                }
                if matches!(request, wire::Request::Subscribe) {
                    // Subscribe before taking the snapshot so nothing falls in between.
                    events = Some(hub.subscribe());
                }
                let outcome = match hub.handle(request).await {
                    Ok(reply) => ResponseOutcome::Ok(reply),
                    Err(e) => ResponseOutcome::Err(e),
                };
                if !send(&mut writer, &ServerFrame::Response { id, outcome }).await { break; }
            }
            event = next_event(&mut events) => {
                let frame = match event {
                    Ok(event) => ServerFrame::Event { event },
                    Err(broadcast::error::RecvError::Lagged(_)) => ServerFrame::Event {
                        event: wire::Event::Resync { snapshot: Box::new(hub.snapshot()) },
                    },
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !send(&mut writer, &frame).await { break; }
            }
        }
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<wire::Event>>,
) -> Result<wire::Event, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
