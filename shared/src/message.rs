//! The frames: what a client sends, what the agent answers and pushes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::view::{AgentInfo, EmployerView, ErrorEntry, RetryEntryView, RunSummary, Snapshot};

/// Client → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// The first frame of a session.
    Hello {
        protocol_version: u32,
        /// Free-form client name and version, for the agent's log (e.g. `arbosync 0.1.0`).
        client: String,
    },
    Request {
        id: u64,
        request: Request,
    },
}

/// What a client can ask. Reads are open to every allowed peer; the rest need the admin role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The current picture, once.
    Snapshot,
    /// The current picture, then pushed [`Event`]s on this connection.
    Subscribe,
    /// Recent errors and retry-queue entries, optionally for one employer.
    Errors {
        employer: Option<Uuid>,
    },
    /// Run now, ahead of the schedule. `employer: None` means every active employer.
    SyncNow {
        employer: Option<Uuid>,
        full: bool,
    },
    Pause {
        employer: Uuid,
    },
    Resume {
        employer: Uuid,
    },
    /// Retry a retry-queue entry at the next run with a fresh attempt count.
    Requeue {
        employer: Uuid,
        entity: String,
        record_id: String,
    },
}

impl Request {
    /// Whether this request changes anything (and so needs the admin role).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Request::SyncNow { .. }
                | Request::Pause { .. }
                | Request::Resume { .. }
                | Request::Requeue { .. }
        )
    }
}

/// What a peer may do, decided by the agent from the socket's peer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ReadOnly,
    Admin,
}

/// Agent → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        protocol_version: u32,
        agent_version: String,
        role: Role,
    },
    /// The session is refused (protocol mismatch, no permission); the agent closes after this.
    Refused {
        protocol_version: u32,
        agent_version: String,
        reason: RefusalReason,
        message: String,
    },
    Response {
        id: u64,
        #[serde(flatten)]
        outcome: ResponseOutcome,
    },
    Event {
        event: Event,
    },
    /// A protocol error not tied to a request (e.g. a malformed frame); the agent closes after.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    ProtocolMismatch,
    NotPermitted,
    HelloExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseOutcome {
    Ok(Reply),
    Err(RequestError),
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Snapshot {
        snapshot: Box<Snapshot>,
    },
    Errors {
        errors: Vec<ErrorEntry>,
        retry_queue: Vec<RetryEntryView>,
    },
    /// A sync was queued; one entry per employer it covers.
    SyncQueued {
        employers: Vec<Uuid>,
    },
    /// Pause, resume, requeue: the employer's new view.
    Employer {
        employer: Box<EmployerView>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum RequestError {
    #[error("not permitted: {reason}")]
    NotPermitted { reason: String },
    #[error("unknown employer {employer}")]
    UnknownEmployer { employer: Uuid },
    #[error("employer {employer} is not active")]
    Inactive { employer: Uuid },
    #[error("no such retry-queue entry")]
    UnknownRetryEntry,
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// Pushed after `Subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        employer: Uuid,
        run_id: Uuid,
        full: bool,
        at: chrono::DateTime<chrono::Utc>,
    },
    RunProgress {
        employer: Uuid,
        run_id: Uuid,
        progress: crate::view::Progress,
    },
    RunFinished {
        employer: Uuid,
        run: RunSummary,
    },
    /// An employer's view changed (paused, resumed, scheduled, reconnect needed, options).
    EmployerChanged {
        employer: Box<EmployerView>,
    },
    /// An employer left the configuration.
    EmployerRemoved {
        employer: Uuid,
    },
    ErrorRecorded {
        error: ErrorEntry,
    },
    /// The agent-level picture changed (update found, config reloaded, alerts).
    AgentChanged {
        agent: Box<AgentInfo>,
    },
    /// The agent lost events for this client (it was too slow); a fresh snapshot follows.
    Resync {
        snapshot: Box<Snapshot>,
    },
}
