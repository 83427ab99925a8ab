//! The dashboard's state: what the agent told us (agent info, employers, errors), the connection,
//! and the operator's place in the UI (screen, selections, filters, help, confirmation, toasts).
//!
//! Plain data with no I/O. `now` is injected (by ticks) so the views are deterministic.

use std::collections::BTreeMap;

use arbosync_shared::{AgentInfo, EmployerView, ErrorEntry, Health, Request, Role, Snapshot};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// At most this many errors are kept (newest first).
pub const MAX_ERRORS: usize = 1000;
/// At most this many runs are kept per employer (newest first).
pub const MAX_RUNS: usize = 50;
/// At most this many toasts are kept; the newest is shown.
pub const MAX_TOASTS: usize = 5;

/// Why mutating keys are disabled for a read-only session.
pub const READ_ONLY_REASON: &str =
    "read-only session: actions need root, the agent's user or the arbosync admin group";

/// The state of the link to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// The first attempt is in flight.
    Connecting,
    Connected {
        since: DateTime<Utc>,
    },
    /// The connection failed or was lost; the socket task retries at `retry_at`.
    Lost {
        reason: String,
        attempt: u32,
        retry_at: DateTime<Utc>,
    },
    /// The agent could not be used for a reason the operator must fix; retried at `retry_at`.
    Refused {
        refusal: Refusal,
        attempt: u32,
        retry_at: DateTime<Utc>,
    },
}

/// The reasons that get a screen of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotRunning,
    NoPermission {
        message: String,
    },
    ProtocolMismatch {
        agent_version: String,
        agent_protocol: u32,
    },
}

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    /// One employer; `Esc` returns to `from`.
    Detail {
        employer: Uuid,
        from: Back,
    },
    Errors,
    Agent,
}

/// Where `Esc` returns from the detail screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    Overview,
    Errors,
}

/// A list's selection, scroll offset and filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListState {
    /// Index into the filtered list.
    pub selected: usize,
    /// First visible row (a hint; the view keeps the selection visible).
    pub offset: usize,
    pub filter: String,
}

/// An action waiting for `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub prompt: String,
    pub request: Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Info,
    Error,
}

/// A short message in the status line that expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub kind: ToastKind,
    pub text: String,
    pub until: DateTime<Utc>,
}

/// Everything the views draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub now: DateTime<Utc>,
    /// The socket path, for the connection screens.
    pub socket: String,
    /// False when `NO_COLOR` is set: the views then use modifiers only.
    pub color: bool,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub connection: Connection,
    /// Known once a session was established.
    pub role: Option<Role>,
    pub agent_version: Option<String>,
    /// The last snapshot, kept up to date by events.
    pub agent: Option<AgentInfo>,
    /// Sorted by name (case-insensitive), then id.
    pub employers: Vec<EmployerView>,
    /// Newest first.
    pub errors: Vec<ErrorEntry>,
    /// When the last snapshot arrived.
    pub data_at: Option<DateTime<Utc>>,
    pub screen: Screen,
    pub overview: ListState,
    pub errors_list: ListState,
    /// Selected retry-queue entry on the detail screen.
    pub retry_selected: usize,
    /// Keys go to the current screen's filter.
    pub filter_editing: bool,
    pub help: bool,
    pub confirm: Option<Confirm>,
    /// Oldest first.
    pub toasts: Vec<Toast>,
}

impl Model {
    pub fn new(socket: impl Into<String>, now: DateTime<Utc>, color: bool) -> Self {
        Model {
            now,
            socket: socket.into(),
            color,
            size: (80, 24),
            connection: Connection::Connecting,
            role: None,
            agent_version: None,
            agent: None,
            employers: Vec::new(),
            errors: Vec::new(),
            data_at: None,
            screen: Screen::Overview,
            overview: ListState::default(),
            errors_list: ListState::default(),
            retry_selected: 0,
            filter_editing: false,
            help: false,
            confirm: None,
            toasts: Vec::new(),
        }
    }

    /// Replaces the data with a fresh snapshot, keeping the operator's selections where possible.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let keep = self.selected_overview_id();
        let Snapshot {
            agent,
            mut employers,
            mut errors,
        } = snapshot;
        sort_employers(&mut employers);
        for employer in &mut employers {
            employer.recent_runs.truncate(MAX_RUNS);
        }
        errors.truncate(MAX_ERRORS);
        self.agent = Some(agent);
        self.employers = employers;
        self.errors = errors;
        self.data_at = Some(self.now);
        self.reselect_overview(keep);
        self.clamp_selections();
    }

    /// Whether there is agent data to show (possibly stale).
    pub fn has_data(&self) -> bool {
        self.agent.is_some()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.connection, Connection::Connected { .. })
    }

    pub fn employer(&self, id: Uuid) -> Option<&EmployerView> {
        self.employers.iter().find(|e| e.id == id)
    }

    pub fn employer_mut(&mut self, id: Uuid) -> Option<&mut EmployerView> {
        self.employers.iter_mut().find(|e| e.id == id)
    }

    pub fn employer_name(&self, id: Uuid) -> Option<&str> {
        self.employer(id).map(|e| e.name.as_str())
    }

    /// The employers the overview shows, after its filter.
    pub fn visible_employers(&self) -> Vec<&EmployerView> {
        let filter = self.overview.filter.to_lowercase();
        if filter.is_empty() {
            return self.employers.iter().collect();
        }
        self.employers
            .iter()
            .filter(|e| employer_matches(e, &filter))
            .collect()
    }

    /// Number of employers the overview shows (without collecting them).
    pub fn visible_employer_count(&self) -> usize {
        let filter = self.overview.filter.to_lowercase();
        if filter.is_empty() {
            return self.employers.len();
        }
        self.employers
            .iter()
            .filter(|e| employer_matches(e, &filter))
            .count()
    }

    /// The errors the errors screen shows, after its filter.
    pub fn visible_errors(&self) -> Vec<&ErrorEntry> {
        let filter = self.errors_list.filter.to_lowercase();
        if filter.is_empty() {
            return self.errors.iter().collect();
        }
        self.errors
            .iter()
            .filter(|e| {
                e.message.to_lowercase().contains(&filter)
                    || e.employer
                        .and_then(|id| self.employer_name(id))
                        .is_some_and(|name| name.to_lowercase().contains(&filter))
            })
            .collect()
    }

    pub fn selected_overview_id(&self) -> Option<Uuid> {
        self.visible_employers()
            .get(self.overview.selected)
            .map(|e| e.id)
    }

    /// The employer the action keys apply to on the current screen.
    pub fn selected_employer(&self) -> Option<&EmployerView> {
        match self.screen {
            Screen::Overview => self.selected_overview_id().and_then(|id| self.employer(id)),
            Screen::Detail { employer, .. } => self.employer(employer),
            Screen::Errors => self
                .visible_errors()
                .get(self.errors_list.selected)
                .and_then(|e| e.employer)
                .and_then(|id| self.employer(id)),
            Screen::Agent => None,
        }
    }

    /// Puts the overview selection on `id` if it is still visible.
    pub fn reselect_overview(&mut self, id: Option<Uuid>) {
        if let Some(id) = id
            && let Some(index) = self.visible_employers().iter().position(|e| e.id == id)
        {
            self.overview.selected = index;
        }
    }

    /// Keeps every selection inside its list.
    pub fn clamp_selections(&mut self) {
        let employers = self.visible_employer_count();
        self.overview.selected = self.overview.selected.min(employers.saturating_sub(1));
        let errors = self.visible_errors().len();
        self.errors_list.selected = self.errors_list.selected.min(errors.saturating_sub(1));
        let retries = match self.screen {
            Screen::Detail { employer, .. } => {
                self.employer(employer).map_or(0, |e| e.retry_queue.len())
            }
            _ => 0,
        };
        self.retry_selected = self.retry_selected.min(retries.saturating_sub(1));
    }

    /// Inserts or replaces an employer, keeping the order and the overview selection.
    pub fn upsert_employer(&mut self, mut employer: EmployerView) {
        let keep = self.selected_overview_id();
        employer.recent_runs.truncate(MAX_RUNS);
        match self.employers.iter_mut().find(|e| e.id == employer.id) {
            Some(slot) => *slot = employer,
            None => self.employers.push(employer),
        }
        sort_employers(&mut self.employers);
        self.reselect_overview(keep);
        self.clamp_selections();
    }

    pub fn toast(&mut self, kind: ToastKind, text: impl Into<String>) {
        let seconds = match kind {
            ToastKind::Info => 5,
            ToastKind::Error => 8,
        };
        self.toasts.push(Toast {
            kind,
            text: text.into(),
            until: self.now + chrono::Duration::seconds(seconds),
        });
        if self.toasts.len() > MAX_TOASTS {
            let extra = self.toasts.len() - MAX_TOASTS;
            self.toasts.drain(..extra);
        }
    }

    /// The newest toast that has not expired.
    pub fn current_toast(&self) -> Option<&Toast> {
        self.toasts.iter().rev().find(|t| t.until > self.now)
    }

    /// Counts of employers per health, for the overview's title.
    pub fn health_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for employer in &self.employers {
            *counts.entry(health_label(employer.health)).or_insert(0) += 1;
        }
        counts
    }
}

/// The label used for a health in badges, counts and the overview filter.
pub fn health_label(health: Health) -> &'static str {
    match health {
        Health::New => "new",
        Health::Ok => "ok",
        Health::Running => "running",
        Health::Partial => "partial",
        Health::Failed => "failed",
        Health::NeedsReconnect => "reconnect",
        Health::Paused => "paused",
        Health::Inactive => "inactive",
    }
}

/// `filter` must be lowercase.
fn employer_matches(employer: &EmployerView, filter: &str) -> bool {
    employer.name.to_lowercase().contains(filter)
        || employer.connection.to_lowercase().contains(filter)
        || health_label(employer.health).contains(filter)
}

fn sort_employers(employers: &mut [EmployerView]) {
    employers.sort_by_cached_key(|e| (e.name.to_lowercase(), e.id));
}
