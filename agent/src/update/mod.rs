//! The updater: a signed release channel, staged downloads, atomic swaps and rollback.
//!
//! Owns everything between "is there a newer release?" and "the new binary is installed and
//! healthy, or the previous one is back". The service supervisor drives it between sync runs:
//!
//! ```text
//! check()  ── manifest for the channel ──► CheckOutcome (UpToDate | Available | Pinned | Refused)
//! stage()  ── download into <state_dir>/update, digest + zipsign signature, extract, smoke test
//! apply()  ── tarball install: swap bin_dir/{arbosync-agent,arbosync}, previous kept, `pending`
//!             package install: write update/staged/ready; the root oneshot unit re-verifies and swaps
//! restart_required() → exit with EXIT_CODE_RESTART between runs; systemd starts the new binary
//! confirm_healthy()  ── the new agent is ready: raise the version floor, clear `pending`
//! ```
//!
//! If the new version never confirms (crash loop, hang: systemd's start timeout and watchdog kill
//! it), the `ExecStartPre=` guard script (`packaging/arbosync-update-guard`) restores the previous
//! binaries on the next start and records why; [`swap`] documents the shared file layout.
//!
//! Trust: only archives signed by a key in [`keys::RELEASE_KEYS`] (compiled in, never empty) are
//! installed; the signature's context is the asset's file name, which carries the version and the
//! target, so a signed archive cannot be renamed or re-published under another version. Versions
//! lower than the highest ever installed (the floor in the state store) are refused, and so are
//! versions that were rolled back. The manifest is self_update's schema 1; see [`manifest`].
//!
//! `enabled` and `check_interval` of `[update]` are the supervisor's business (the schedule);
//! [`Updater::check`] always looks, so `arbosync-agent update check` works by hand.

pub mod keys;
pub mod manifest;
pub mod swap;
pub mod verify;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::config::{UpdateChannel, UpdateSettings};
use crate::state::{StateError, StateStore};

pub use keys::{RELEASE_KEYS, TrustedKeys, VerifyingKeyBytes};
pub use manifest::{
    AssessContext, AssetEntry, Candidate, ReleaseEntry, Selection, assess_release, asset_name,
    select,
};
pub use swap::{Pending, RollbackRecord};

/// The binaries a release carries, in `arbosync-<v>-<target>/bin/`. The first (the agent) is
/// required; the dashboard is swapped too when it is installed next to the agent.
pub const BINARIES: &[&str] = &["arbosync-agent", "arbosync"];

/// The exit code with which the agent asks systemd to start it again on the new binary
/// (`RestartForceExitStatus=75` and `SuccessExitStatus=75` in the unit; 75 is EX_TEMPFAIL).
pub const EXIT_CODE_RESTART: u8 = 75;

/// How long a swapped-in version has to confirm that it is healthy.
pub const DEFAULT_HEALTH_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The root-owned work directory of package installs (`StateDirectory=arbosync-update` of
/// `arbosync-agent-update.service`).
pub const ROOT_WORK_DIR: &str = "/var/lib/arbosync-update";

/// The updater's directory inside the agent's state directory.
pub const UPDATE_DIR: &str = "update";
/// Subdirectories / files of the agent's update directory.
pub const DOWNLOAD_DIR: &str = "download";
pub const STAGED_DIR: &str = "staged";
/// The trigger file the path unit `arbosync-agent-update.path` watches (package installs).
pub const STAGED_TRIGGER: &str = "ready";
const STATUS_FILE: &str = "status.json";

// ------------------------------------------------------------------------------------ errors

/// Why a release was not installed. Messages name versions and files, never URLs' credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    InvalidVersion,
    PrereleaseOnStable,
    NotNewer { current: String },
    BelowFloor { floor: String },
    RolledBackBefore,
    NoAssetForTarget { expected: String },
    DuplicateAsset { expected: String },
    InsecureUrl,
    NoDigest,
    BadDigest,
    ChecksumMismatch,
    Unsigned,
    SignatureMismatch,
    TooLarge,
    BadArchive { detail: String },
    MissingBinary { path: String },
    BinaryDoesNotRun { detail: String },
    Unreadable { detail: String },
    BadStagedRequest,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidVersion => write!(f, "the version is not a semantic version"),
            Refusal::PrereleaseOnStable => {
                write!(f, "it is a pre-release and the channel is not \"beta\"")
            }
            Refusal::NotNewer { current } => {
                write!(f, "it is not newer than the running version {current}")
            }
            Refusal::BelowFloor { floor } => write!(
                f,
                "it is older than {floor}, the highest version ever installed here (downgrades are refused)"
            ),
            Refusal::RolledBackBefore => write!(
                f,
                "it was rolled back here after failing its health check; waiting for a newer release"
            ),
            Refusal::NoAssetForTarget { expected } => write!(
                f,
                "the release has no asset named {expected} (asset names must carry the release's version and this platform)"
            ),
            Refusal::DuplicateAsset { expected } => {
                write!(f, "the release lists {expected} more than once")
            }
            Refusal::InsecureUrl => write!(
                f,
                "the asset URL is not https (plain http is only accepted for loopback hosts)"
            ),
            Refusal::NoDigest => write!(f, "the manifest gives no sha256 digest for the asset"),
            Refusal::BadDigest => write!(
                f,
                "the manifest's digest is not of the form sha256:<hex> or sha512:<hex>"
            ),
            Refusal::ChecksumMismatch => write!(
                f,
                "the downloaded archive does not match the manifest's digest"
            ),
            Refusal::Unsigned => write!(f, "the archive carries no zipsign signature"),
            Refusal::SignatureMismatch => write!(
                f,
                "the archive's signature does not verify with any trusted release key for this asset name (wrong key, tampered archive, or an archive renamed after signing)"
            ),
            Refusal::TooLarge => write!(f, "the archive is larger than the updater accepts"),
            Refusal::BadArchive { detail } => write!(f, "the archive is malformed: {detail}"),
            Refusal::MissingBinary { path } => write!(f, "the archive has no {path}"),
            Refusal::BinaryDoesNotRun { detail } => {
                write!(f, "the new binary does not run: {detail}")
            }
            Refusal::Unreadable { detail } => write!(f, "the archive cannot be read: {detail}"),
            Refusal::BadStagedRequest => write!(
                f,
                "the staged request does not name a release archive for this platform"
            ),
        }
    }
}

/// Errors of the updater.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("update to {version} refused: {reason}")]
    Refused { version: String, reason: Refusal },
    #[error("updates are not configured: set [update] manifest_url")]
    NotConfigured,
    #[error("the release manifest {url} cannot be used: {message}")]
    Manifest { url: String, message: String },
    #[error("cannot download {asset}: {message}")]
    Download { asset: String, message: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {} is unreadable; remove it to continue", path.display())]
    Corrupt { path: PathBuf, what: &'static str },
    #[error("the version floor in the state store is not a version; fix it with the state store")]
    BadFloor,
    #[error("state store: {0}")]
    State(#[from] StateError),
    #[error("no release-signing keys: the updater never runs without one")]
    NoTrustedKeys,
    #[error("release key #{index} is not an ed25519 public key")]
    InvalidKey { index: usize },
    #[error("no previous version is kept here; there is nothing to roll back to")]
    NoPrevious,
    #[error("the running binary's path cannot be determined: {0}")]
    CurrentExe(std::io::Error),
    #[error("the HTTP client cannot be built: {0}")]
    Http(String),
}

pub(crate) fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> UpdateError {
    UpdateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// fsync of a directory, so that renames inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), UpdateError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

/// A URL without user info and query (either could carry a token).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid URL>".into(),
    }
}

// ------------------------------------------------------------------------------------ types

/// Where the binaries live and who swaps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallMode {
    /// Tarball install (`/opt/arbosync/bin`): the agent swaps its own binaries, which the unit
    /// makes writable with `ReadWritePaths=/opt/arbosync/bin`.
    InPlace { bin_dir: PathBuf },
    /// Package install (`/usr/bin`, owned by dpkg, read-only for the agent): the agent stages and
    /// writes the trigger; `arbosync-agent-update.service` (root) re-verifies and swaps, keeping
    /// its records in `work_dir`.
    Package { work_dir: PathBuf },
}

impl InstallMode {
    /// Package mode for a binary under `/usr/`, in-place otherwise.
    pub fn detect() -> Result<InstallMode, UpdateError> {
        let exe = std::env::current_exe().map_err(UpdateError::CurrentExe)?;
        if exe.starts_with("/usr/") {
            return Ok(InstallMode::Package {
                work_dir: PathBuf::from(ROOT_WORK_DIR),
            });
        }
        let bin_dir = exe
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| UpdateError::CurrentExe(std::io::Error::other("no parent directory")))?;
        Ok(InstallMode::InPlace { bin_dir })
    }
}

/// Result of [`Updater::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// `channel` is a pinned version: stay on the running one.
    Pinned { pinned: String, running: Version },
    /// Nothing newer on the channel.
    UpToDate { running: Version },
    /// A newer release that may be staged.
    Available(Candidate),
    /// The channel offers something that will not be installed, and why.
    Refused { version: String, reason: Refusal },
}

impl fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckOutcome::Pinned { pinned, running } => write!(
                f,
                "pinned to {pinned} by [update] channel; running {running}; not checking"
            ),
            CheckOutcome::UpToDate { running } => write!(f, "up to date ({running})"),
            CheckOutcome::Available(c) => write!(f, "{} is available", c.version),
            CheckOutcome::Refused { version, reason } => {
                write!(f, "{version} is not installed: {reason}")
            }
        }
    }
}

/// A verified, extracted release waiting to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub version: Version,
    pub asset_name: String,
    /// The verified archive (under its asset name).
    pub archive: PathBuf,
    /// Directory with the extracted binaries.
    pub dir: PathBuf,
    /// The binaries found in the archive (names from [`BINARIES`]).
    pub binaries: Vec<String>,
}

/// Result of [`Updater::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Binaries swapped in place; exit with [`EXIT_CODE_RESTART`] between runs.
    Swapped(Pending),
    /// Package install: the root unit was triggered; [`Updater::restart_required`] tells when it
    /// has swapped.
    HandedOff { version: Version },
}

/// Result of [`Updater::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    NotApplied(CheckOutcome),
    Applied(Applied),
}

/// What the dashboard, `arbosync status` and `update check` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateStatus {
    pub running_version: String,
    pub channel: String,
    pub target: String,
    pub floor: Option<String>,
    pub last_check_at: Option<u64>,
    pub last_check: Option<String>,
    pub last_error: Option<String>,
    pub staged: Option<String>,
    pub pending: Option<String>,
    pub pending_deadline: Option<u64>,
    pub restart_required: bool,
    pub last_rollback: Option<RollbackRecord>,
    pub key_fingerprints: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StatusFile {
    last_check_at: Option<u64>,
    last_check: Option<String>,
    last_error: Option<String>,
}

// ------------------------------------------------------------------------------------ updater

/// The agent's updater. Cheap to keep for the life of the service.
pub struct Updater {
    settings: UpdateSettings,
    dir: PathBuf,
    store: StateStore,
    mode: InstallMode,
    current: Version,
    keys: TrustedKeys,
    target: String,
    health_deadline: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for Updater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updater")
            .field("channel", &self.settings.channel)
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("current", &self.current.to_string())
            .field("keys", &self.keys)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The version of this build.
pub fn running_version() -> Version {
    // CARGO_PKG_VERSION is always valid semver (cargo checks it); fall back to 0.0.0 anyway.
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// The target triple of this build (part of every asset name).
pub fn build_target() -> &'static str {
    self_update::get_target()
}

impl Updater {
    /// The production updater: compiled-in keys, this build's version and target, the install
    /// mode detected from the running binary's path, files under `<state_dir>/update`.
    pub fn new(
        settings: &UpdateSettings,
        state_dir: &Path,
        store: StateStore,
    ) -> Result<Updater, UpdateError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("arbosync-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| UpdateError::Http(manifest::describe_reqwest(&e)))?;
        Ok(Updater {
            settings: settings.clone(),
            dir: state_dir.join(UPDATE_DIR),
            store,
            mode: InstallMode::detect()?,
            current: running_version(),
            keys: TrustedKeys::release(),
            target: build_target().to_string(),
            health_deadline: DEFAULT_HEALTH_DEADLINE,
            client,
        })
    }

    /// Other verifying keys (tests; a private channel with its own keys). Never empty.
    pub fn with_keys(mut self, keys: TrustedKeys) -> Updater {
        self.keys = keys;
        self
    }

    /// Pretend to run another version (tests).
    pub fn with_current_version(mut self, version: Version) -> Updater {
        self.current = version;
        self
    }

    pub fn with_install_mode(mut self, mode: InstallMode) -> Updater {
        self.mode = mode;
        self
    }

    pub fn with_health_deadline(mut self, deadline: Duration) -> Updater {
        self.health_deadline = deadline;
        self
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Updater {
        self.target = target.into();
        self
    }

    pub fn with_http_client(mut self, client: reqwest::Client) -> Updater {
        self.client = client;
        self
    }

    pub fn settings(&self) -> &UpdateSettings {
        &self.settings
    }

    pub fn current_version(&self) -> &Version {
        &self.current
    }

    pub fn install_mode(&self) -> &InstallMode {
        &self.mode
    }

    /// The agent's update directory (`<state_dir>/update`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory with `pending`, `previous/`, `last-rollback`, `rejected`.
    fn work_dir(&self) -> &Path {
        match &self.mode {
            InstallMode::InPlace { .. } => &self.dir,
            InstallMode::Package { work_dir } => work_dir,
        }
    }

    /// The manifest URL of the configured channel.
    pub fn manifest_url(&self) -> Option<String> {
        self.settings
            .manifest_url
            .as_ref()
            .map(|t| t.replace("{channel}", self.settings.channel.as_str()))
    }

    /// The anti-rollback floor from the state store.
    pub fn floor(&self) -> Result<Option<Version>, UpdateError> {
        match self.store.installed_version_floor()? {
            None => Ok(None),
            Some(s) => Version::parse(s.trim())
                .map(Some)
                .map_err(|_| UpdateError::BadFloor),
        }
    }

    fn rejected(&self) -> Result<Vec<Version>, UpdateError> {
        let mut list = swap::read_rejected(&self.dir)?;
        if let InstallMode::Package { work_dir } = &self.mode {
            list.extend(swap::read_rejected(work_dir)?);
        }
        Ok(list)
    }

    /// Looks at the channel's manifest and decides. Records the outcome for [`Updater::status`].
    pub async fn check(&self) -> Result<CheckOutcome, UpdateError> {
        let result = self.check_inner().await;
        let (text, error) = match &result {
            Ok(o) => (Some(o.to_string()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        self.record_status(|s| {
            s.last_check_at = Some(swap::unix_now());
            if let Some(t) = text {
                s.last_check = Some(t);
            }
            s.last_error = error;
        });
        match &result {
            Ok(CheckOutcome::Available(c)) => {
                tracing::info!(version = %c.version, "update available");
            }
            Ok(CheckOutcome::Refused { version, reason }) => {
                tracing::warn!(%version, %reason, "release on the channel refused");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "update check failed"),
        }
        result
    }

    async fn check_inner(&self) -> Result<CheckOutcome, UpdateError> {
        if let UpdateChannel::Pinned(v) = &self.settings.channel {
            return Ok(CheckOutcome::Pinned {
                pinned: v.clone(),
                running: self.current.clone(),
            });
        }
        let url = self.manifest_url().ok_or(UpdateError::NotConfigured)?;
        let entries = manifest::fetch(&self.client, &url).await?;
        let floor = self.floor()?;
        let rejected = self.rejected()?;
        let ctx = AssessContext {
            current: &self.current,
            floor: floor.as_ref(),
            channel: &self.settings.channel,
            target: &self.target,
            rejected: &rejected,
        };
        Ok(match select(&entries, &ctx) {
            Selection::UpToDate => CheckOutcome::UpToDate {
                running: self.current.clone(),
            },
            Selection::Available(c) => CheckOutcome::Available(c),
            Selection::Refused { version, reason } => CheckOutcome::Refused { version, reason },
        })
    }

    /// Downloads the candidate into the state directory and verifies it (digest, signature over
    /// the asset name, extraction, `--version` smoke test). Nothing installed changes.
    pub async fn stage(&self, candidate: &Candidate) -> Result<Staged, UpdateError> {
        let result = self.stage_inner(candidate).await;
        if let Err(e) = &result {
            tracing::warn!(version = %candidate.version, error = %e, "update not staged");
            let msg = e.to_string();
            self.record_status(|s| s.last_error = Some(msg));
        }
        result
    }

    async fn stage_inner(&self, candidate: &Candidate) -> Result<Staged, UpdateError> {
        // The candidate may come from an older check: judge it again against the floor now.
        self.recheck_version(&candidate.version)?;
        if candidate.asset_name != asset_name(&candidate.version, &self.target) {
            return Err(UpdateError::Refused {
                version: candidate.version.to_string(),
                reason: Refusal::NoAssetForTarget {
                    expected: asset_name(&candidate.version, &self.target),
                },
            });
        }
        let refused = |reason| UpdateError::Refused {
            version: candidate.version.to_string(),
            reason,
        };
        let download_dir = self.dir.join(DOWNLOAD_DIR);
        clean_dir(&download_dir)?;
        let archive = verify::download(&self.client, candidate, &download_dir).await?;
        let checked = verify::verify_digest(&archive, &candidate.digest)
            .and_then(|()| verify::verify_signature(&archive, &self.keys));
        if let Err(reason) = checked {
            let _ = fs::remove_file(&archive);
            return Err(refused(reason));
        }
        let staged_root = self.dir.join(STAGED_DIR);
        let dir = staged_root.join(candidate.version.to_string());
        let binaries = extract_and_test(&archive, &candidate.version, &self.target, &dir)
            .await
            .inspect_err(|_| {
                let _ = fs::remove_file(&archive);
            })
            .map_err(refused)?;
        tracing::info!(version = %candidate.version, "update verified and staged");
        Ok(Staged {
            version: candidate.version.clone(),
            asset_name: candidate.asset_name.clone(),
            archive,
            dir,
            binaries,
        })
    }

    fn recheck_version(&self, version: &Version) -> Result<(), UpdateError> {
        let refused = |reason| UpdateError::Refused {
            version: version.to_string(),
            reason,
        };
        if *version <= self.current {
            return Err(refused(Refusal::NotNewer {
                current: self.current.to_string(),
            }));
        }
        if let Some(floor) = self.floor()?
            && *version < floor
        {
            return Err(refused(Refusal::BelowFloor {
                floor: floor.to_string(),
            }));
        }
        if self.rejected()?.contains(version) {
            return Err(refused(Refusal::RolledBackBefore));
        }
        Ok(())
    }

    /// Installs a staged release: swaps in place (previous binaries kept, `pending` written), or
    /// for package installs writes the trigger for the root unit.
    pub fn apply(&self, staged: &Staged) -> Result<Applied, UpdateError> {
        self.recheck_version(&staged.version)?;
        match &self.mode {
            InstallMode::InPlace { bin_dir } => {
                let binaries: Vec<(String, PathBuf)> = staged
                    .binaries
                    .iter()
                    .map(|n| (n.clone(), staged.dir.join(n)))
                    .collect();
                let pending = swap::install(
                    &self.dir,
                    bin_dir,
                    &binaries,
                    &self.current,
                    &staged.version,
                    self.health_deadline,
                )?;
                tracing::info!(version = %staged.version, previous = %self.current, "update installed; restart pending");
                Ok(Applied::Swapped(pending))
            }
            InstallMode::Package { .. } => {
                let trigger = self.dir.join(STAGED_DIR).join(STAGED_TRIGGER);
                swap::write_atomic(
                    &trigger,
                    format!("asset={}\nversion={}\n", staged.asset_name, staged.version).as_bytes(),
                    0o644,
                )?;
                tracing::info!(version = %staged.version, "update staged for the root update unit");
                Ok(Applied::HandedOff {
                    version: staged.version.clone(),
                })
            }
        }
    }

    /// check → stage → apply.
    pub async fn update(&self) -> Result<UpdateOutcome, UpdateError> {
        match self.check().await? {
            CheckOutcome::Available(c) => {
                let staged = self.stage(&c).await?;
                Ok(UpdateOutcome::Applied(self.apply(&staged)?))
            }
            other => Ok(UpdateOutcome::NotApplied(other)),
        }
    }

    /// The version the service must restart into, if the installed binaries are newer than the
    /// running one (after an in-place swap, or after the root unit swapped a package install).
    pub fn restart_required(&self) -> Result<Option<Version>, UpdateError> {
        Ok(swap::read_pending(self.work_dir())?
            .map(|p| p.version)
            .filter(|v| *v != self.current))
    }

    /// Called by the new agent once it is ready (store open, socket bound, READY sent): confirms
    /// a pending update, raises the version floor to the running version and cleans up the
    /// staged files. Safe to call on every start.
    pub fn confirm_healthy(&self) -> Result<(), UpdateError> {
        let work = self.work_dir().to_path_buf();
        if let Some(p) = swap::read_pending(&work)? {
            if p.version == self.current {
                fs::create_dir_all(&self.dir).map_err(|e| io_err("create", &self.dir, e))?;
                swap::write_atomic(
                    &self.dir.join(swap::HEALTHY),
                    format!("{}\n", self.current).as_bytes(),
                    0o644,
                )?;
                if matches!(self.mode, InstallMode::InPlace { .. }) {
                    swap::clear_pending(&work)?;
                }
                tracing::info!(version = %self.current, "update confirmed healthy");
            } else if p.previous_version == self.current
                && matches!(self.mode, InstallMode::InPlace { .. })
            {
                // The swap was interrupted before the new agent ever ran: the old one is still
                // installed and whole. Forget the half-done update; it will be staged again.
                swap::clear_pending(&work)?;
                tracing::warn!(version = %p.version, "an interrupted update swap was abandoned");
            }
        }
        let raise = match self.floor()? {
            Some(f) => f < self.current,
            None => true,
        };
        if raise {
            self.store
                .set_installed_version_floor(&self.current.to_string())?;
        }
        self.clean_staged()?;
        Ok(())
    }

    /// Rolls back to the previous binaries by hand (or from a supervisor that detected a failure
    /// itself): restores `previous/`, marks the running version rejected, records `reason`.
    /// Package installs need root (the binaries and `previous/` are root's).
    pub fn rollback(&self, reason: &str) -> Result<RollbackRecord, UpdateError> {
        let install_dir = match &self.mode {
            InstallMode::InPlace { bin_dir } => bin_dir.clone(),
            InstallMode::Package { work_dir } => swap::read_pending(work_dir)?
                .map(|p| p.install_dir)
                .or_else(|| {
                    std::env::current_exe()
                        .ok()?
                        .parent()
                        .map(Path::to_path_buf)
                })
                .ok_or(UpdateError::NoPrevious)?,
        };
        let record = swap::restore_previous(self.work_dir(), &install_dir, &self.current, reason)?;
        tracing::warn!(version = %record.version, restored = %record.restored, reason = %record.reason, "rolled back");
        Ok(record)
    }

    /// The updater's state for the dashboard and `update check`.
    pub fn status(&self) -> Result<UpdateStatus, UpdateError> {
        let file = self.read_status_file();
        // Package installs: root's `pending` stays until the next start's guard sees the
        // agent's `healthy`; a confirmed version is not pending any more.
        let healthy = fs::read_to_string(self.dir.join(swap::HEALTHY)).unwrap_or_default();
        let pending = swap::read_pending(self.work_dir())?
            .filter(|p| healthy.trim() != p.version.to_string());
        let staged = self.latest_staged();
        let restart = pending.as_ref().is_some_and(|p| p.version != self.current);
        Ok(UpdateStatus {
            running_version: self.current.to_string(),
            channel: self.settings.channel.as_str().to_string(),
            target: self.target.clone(),
            floor: self.floor()?.map(|v| v.to_string()),
            last_check_at: file.last_check_at,
            last_check: file.last_check,
            last_error: file.last_error,
            staged: staged.map(|v| v.to_string()),
            pending: pending.as_ref().map(|p| p.version.to_string()),
            pending_deadline: pending.as_ref().map(|p| p.deadline),
            restart_required: restart,
            last_rollback: swap::read_last_rollback(self.work_dir())?,
            key_fingerprints: self.keys.fingerprints(),
        })
    }

    fn latest_staged(&self) -> Option<Version> {
        let entries = fs::read_dir(self.dir.join(STAGED_DIR)).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Version::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|v| *v > self.current)
            .max()
    }

    fn clean_staged(&self) -> Result<(), UpdateError> {
        let staged = self.dir.join(STAGED_DIR);
        if let Ok(entries) = fs::read_dir(&staged) {
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                let old = Version::parse(&name).is_ok_and(|v| v <= self.current);
                if old || name.starts_with('.') {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let _ = fs::remove_file(staged.join(STAGED_TRIGGER));
        clean_dir(&self.dir.join(DOWNLOAD_DIR))
    }

    fn read_status_file(&self) -> StatusFile {
        fs::read(self.dir.join(STATUS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Best effort: the status file only feeds the dashboard.
    fn record_status(&self, change: impl FnOnce(&mut StatusFile)) {
        let mut s = self.read_status_file();
        change(&mut s);
        let written = fs::create_dir_all(&self.dir)
            .map_err(|e| io_err("create", &self.dir, e))
            .and_then(|()| {
                let json = serde_json::to_vec_pretty(&s).unwrap_or_default();
                swap::write_atomic(&self.dir.join(STATUS_FILE), &json, 0o644)
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record the update status");
        }
    }
}

/// Removes every file in `dir` (creating it if needed).
fn clean_dir(dir: &Path) -> Result<(), UpdateError> {
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    for e in fs::read_dir(dir).map_err(|e| io_err("list", dir, e))? {
        let e = e.map_err(|e| io_err("list", dir, e))?;
        let _ = fs::remove_file(e.path());
    }
    Ok(())
}

/// Extracts the binaries into `dir` (through a temporary sibling, renamed when complete) and
/// smoke-tests the agent binary.
async fn extract_and_test(
    archive: &Path,
    version: &Version,
    target: &str,
    dir: &Path,
) -> Result<Vec<String>, Refusal> {
    let unreadable = |e: std::io::Error| Refusal::Unreadable {
        detail: e.to_string(),
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(unreadable)?;
    let tmp = parent.join(format!(".{version}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(unreadable)?;
    let binaries = match verify::extract_binaries(archive, version, target, &tmp) {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = verify::smoke_test(&tmp.join(BINARIES[0])).await {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = fs::remove_dir_all(dir);
    fs::rename(&tmp, dir).map_err(unreadable)?;
    Ok(binaries)
}

// ------------------------------------------------------------------------------------ root side

/// What the root oneshot unit (`arbosync-agent update install-staged`, package installs) needs.
#[derive(Debug, Clone)]
pub struct StagedInstall {
    /// The agent's update directory (`/var/lib/arbosync/update`), written by the unprivileged
    /// agent: nothing in it is trusted.
    pub agent_update_dir: PathBuf,
    /// Root's own directory (`/var/lib/arbosync-update`): copies, `previous/`, `pending`.
    pub work_dir: PathBuf,
    /// Where the binaries are installed (`/usr/bin`).
    pub install_dir: PathBuf,
    pub keys: TrustedKeys,
    /// The installed version: the version of the binary running this (it *is* the installed one).
    pub current_version: Version,
    pub target: String,
    pub health_deadline: Duration,
}

impl StagedInstall {
    /// The production values for a package install.
    pub fn package_defaults(state_dir: &Path) -> StagedInstall {
        StagedInstall {
            agent_update_dir: state_dir.join(UPDATE_DIR),
            work_dir: PathBuf::from(ROOT_WORK_DIR),
            install_dir: PathBuf::from("/usr/bin"),
            keys: TrustedKeys::release(),
            current_version: running_version(),
            target: build_target().to_string(),
            health_deadline: DEFAULT_HEALTH_DEADLINE,
        }
    }
}

/// Result of [`install_staged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagedInstallOutcome {
    /// No trigger file: nothing to do.
    NothingStaged,
    Installed(Pending),
}

/// The root side of a package install: reads the agent's trigger, copies the named archive into
/// root's own directory (refusing symbolic links), verifies its signature again with the
/// compiled-in keys, refuses anything not newer than the installed binary or previously rolled
/// back, extracts, smoke-tests and swaps with the previous binaries kept. The trigger is removed
/// whatever happens, and the outcome is written to `<work_dir>/result`.
pub async fn install_staged(opts: &StagedInstall) -> Result<StagedInstallOutcome, UpdateError> {
    let trigger = opts.agent_update_dir.join(STAGED_DIR).join(STAGED_TRIGGER);
    let Some(request) = swap::read_record(&trigger)? else {
        return Ok(StagedInstallOutcome::NothingStaged);
    };
    let result = install_staged_inner(opts, &request).await;
    let _ = fs::remove_file(&trigger);
    let line = match &result {
        Ok(p) => format!("installed={}\nat={}\n", p.version, swap::unix_now()),
        Err(e) => format!(
            "error={}\nat={}\n",
            e.to_string().replace('\n', " "),
            swap::unix_now()
        ),
    };
    if fs::create_dir_all(&opts.work_dir).is_ok() {
        let _ = swap::write_atomic(&opts.work_dir.join("result"), line.as_bytes(), 0o644);
    }
    result.map(StagedInstallOutcome::Installed)
}

async fn install_staged_inner(
    opts: &StagedInstall,
    request: &[(String, String)],
) -> Result<Pending, UpdateError> {
    let asset = request
        .iter()
        .find(|(k, _)| k == "asset")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let Some(version) = manifest::version_from_asset_name(asset, &opts.target) else {
        return Err(UpdateError::Refused {
            version: "?".into(),
            reason: Refusal::BadStagedRequest,
        });
    };
    let refused = |reason| UpdateError::Refused {
        version: version.to_string(),
        reason,
    };
    if version <= opts.current_version {
        return Err(refused(Refusal::NotNewer {
            current: opts.current_version.to_string(),
        }));
    }
    if swap::read_rejected(&opts.work_dir)?.contains(&version) {
        return Err(refused(Refusal::RolledBackBefore));
    }
    let incoming = opts.work_dir.join("incoming");
    let _ = fs::remove_dir_all(&incoming);
    fs::create_dir_all(&incoming).map_err(|e| io_err("create", &incoming, e))?;
    let archive = incoming.join(asset);
    swap::copy_atomic(
        &opts.agent_update_dir.join(DOWNLOAD_DIR).join(asset),
        &archive,
        0o600,
    )?;
    verify::verify_signature(&archive, &opts.keys).map_err(refused)?;
    let dir = incoming.join(version.to_string());
    let binaries = extract_and_test(&archive, &version, &opts.target, &dir)
        .await
        .map_err(refused)?;
    let binaries: Vec<(String, PathBuf)> = binaries
        .into_iter()
        .map(|n| (n.clone(), dir.join(n)))
        .collect();
    let pending = swap::install(
        &opts.work_dir,
        &opts.install_dir,
        &binaries,
        &opts.current_version,
        &version,
        opts.health_deadline,
    )?;
    let _ = fs::remove_dir_all(&incoming);
    Ok(pending)
}
