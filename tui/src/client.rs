//! The control-socket client shared by the dashboard and the scripting CLI.
//!
//! A [`Session`] is one connection after a successful `Hello`. A background task reads frames:
//! responses are matched to their request by id, pushed events go to the subscriber. Requests
//! can be sent from several tasks at once; the session is cheap to clone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbosync_shared::{
    ClientFrame, Event, PROTOCOL_VERSION, RefusalReason, Reply, Request, RequestError,
    ResponseOutcome, Role, ServerFrame, Snapshot, codec, decode, encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Pushed events a subscriber may fall behind by before it is cut off.
const EVENT_BUFFER: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the agent is not running (no socket at {})", socket.display())]
    NotRunning { socket: PathBuf },
    #[error("no permission to use the agent socket {}: {message}", socket.display())]
    NoPermission { socket: PathBuf, message: String },
    #[error(
        "protocol version mismatch: this client speaks v{PROTOCOL_VERSION}, the agent (version {agent_version}) speaks v{agent_protocol}; use matching versions"
    )]
    ProtocolMismatch {
        agent_version: String,
        agent_protocol: u32,
    },
    #[error("the agent refused the request: {0}")]
    Request(RequestError),
    #[error("the connection to the agent was closed")]
    Disconnected,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

type Writer =
    FramedWrite<tokio::net::unix::OwnedWriteHalf, tokio_util::codec::LengthDelimitedCodec>;
type Pending = HashMap<u64, oneshot::Sender<ResponseOutcome>>;

struct Inner {
    writer: Mutex<Writer>,
    pending: Arc<std::sync::Mutex<Pending>>,
    events: Arc<std::sync::Mutex<Option<mpsc::Sender<Event>>>>,
    next_id: AtomicU64,
    role: Role,
    agent_version: String,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One connection to the agent. Clone it freely; the connection closes when the last clone drops.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.inner.role)
            .field("agent_version", &self.inner.agent_version)
            .finish()
    }
}

impl Session {
    /// Connects and performs the `Hello` handshake.
    pub async fn connect(socket: &Path) -> Result<Session, ClientError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        socket: socket.to_path_buf(),
                    }
                }
                std::io::ErrorKind::PermissionDenied => ClientError::NoPermission {
                    socket: socket.to_path_buf(),
                    message: "the socket's file permissions do not allow this user (is it in the arbosync group?)".into(),
                },
                _ => ClientError::Io(e),
            })?;
        let (read, write) = stream.into_split();
        let mut reader = FramedRead::new(read, codec());
        let mut writer = FramedWrite::new(write, codec());
        let hello = ClientFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: format!("arbosync {}", env!("CARGO_PKG_VERSION")),
        };
        send(&mut writer, &hello).await?;
        let (role, agent_version) = match next_frame(&mut reader).await? {
            ServerFrame::Welcome {
                protocol_version,
                agent_version,
                role,
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(ClientError::ProtocolMismatch {
                        agent_version,
                        agent_protocol: protocol_version,
                    });
                }
                (role, agent_version)
            }
            ServerFrame::Refused {
                protocol_version,
                agent_version,
                reason,
                message,
            } => {
                return Err(match reason {
                    RefusalReason::ProtocolMismatch => ClientError::ProtocolMismatch {
                        agent_version,
                        agent_protocol: protocol_version,
                    },
                    RefusalReason::NotPermitted => ClientError::NoPermission {
                        socket: socket.to_path_buf(),
                        message,
                    },
                    RefusalReason::HelloExpected => ClientError::Protocol(message),
                });
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a welcome, got {}",
                    frame_name(&other)
                )));
            }
        };

        let pending: Arc<std::sync::Mutex<Pending>> = Arc::default();
        let events: Arc<std::sync::Mutex<Option<mpsc::Sender<Event>>>> = Arc::default();
        let reader_task =
            tokio::spawn(read_loop(reader, Arc::clone(&pending), Arc::clone(&events)));
        Ok(Session {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                pending,
                events,
                next_id: AtomicU64::new(1),
                role,
                agent_version,
                reader: reader_task,
            }),
        })
    }

    /// What the agent lets this user do.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    pub fn agent_version(&self) -> &str {
        &self.inner.agent_version
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, tx);
        let frame = ClientFrame::Request { id, request };
        let sent = {
            let mut writer = self.inner.writer.lock().await;
            send(&mut writer, &frame).await
        };
        if let Err(e) = sent {
            lock(&self.inner.pending).remove(&id);
            return Err(e);
        }
        match rx.await {
            Ok(ResponseOutcome::Ok(reply)) => Ok(reply),
            Ok(ResponseOutcome::Err(e)) => Err(ClientError::Request(e)),
            Err(_) => Err(ClientError::Disconnected),
        }
    }

    /// Subscribes: returns the snapshot, and a receiver of pushed events that yields `None`
    /// when the connection closes.
    pub async fn subscribe(&self) -> Result<(Snapshot, mpsc::Receiver<Event>), ClientError> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        *lock(&self.inner.events) = Some(tx);
        match self.request(Request::Subscribe).await? {
            Reply::Snapshot { snapshot } => Ok((*snapshot, rx)),
            other => Err(ClientError::Protocol(format!(
                "expected a snapshot, got {}",
                reply_name(&other)
            ))),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked while holding it; the map is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn send(writer: &mut Writer, frame: &ClientFrame) -> Result<(), ClientError> {
    let bytes = encode(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
    writer
        .send(Bytes::from(bytes))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                ClientError::Disconnected
            }
            _ => ClientError::Io(e),
        })
}

async fn next_frame(
    reader: &mut FramedRead<
        tokio::net::unix::OwnedReadHalf,
        tokio_util::codec::LengthDelimitedCodec,
    >,
) -> Result<ServerFrame, ClientError> {
    match reader.next().await {
        None => Err(ClientError::Disconnected),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Err(ClientError::Disconnected)
        }
        Some(Err(e)) => Err(ClientError::Protocol(e.to_string())),
        Some(Ok(bytes)) => decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string())),
    }
}

async fn read_loop(
    mut reader: FramedRead<
        tokio::net::unix::OwnedReadHalf,
        tokio_util::codec::LengthDelimitedCodec,
    >,
    pending: Arc<std::sync::Mutex<Pending>>,
    events: Arc<std::sync::Mutex<Option<mpsc::Sender<Event>>>>,
) {
    while let Ok(frame) = next_frame(&mut reader).await {
        match frame {
            ServerFrame::Response { id, outcome } => {
                if let Some(tx) = lock(&pending).remove(&id) {
                    let _ = tx.send(outcome);
                }
            }
            ServerFrame::Event { event } => {
                let tx = lock(&events).clone();
                if let Some(tx) = tx
                    && tx.send(event).await.is_err()
                {
                    *lock(&events) = None;
                }
            }
            ServerFrame::Error { .. } => break,
            ServerFrame::Welcome { .. } | ServerFrame::Refused { .. } => break,
        }
    }
    // Closing: every waiting request gets `Disconnected`, the subscriber sees the end.
    lock(&pending).clear();
    lock(&events).take();
}

fn frame_name(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Welcome { .. } => "welcome",
        ServerFrame::Refused { .. } => "refusal",
        ServerFrame::Response { .. } => "response",
        ServerFrame::Event { .. } => "event",
        ServerFrame::Error { .. } => "error",
    }
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Snapshot { .. } => "snapshot",
        Reply::Errors { .. } => "errors",
        Reply::SyncQueued { .. } => "sync queued",
        Reply::Employer { .. } => "employer",
    }
}
