//! Persistence behind a small trait, with [`SledStore`] as the implementation.
//!
//! The trait speaks the domain's types; how keys are laid out is the
//! implementation's business (see `sled_store.rs` and ARCHITECTURE.md). Every
//! method that changes several keys does so atomically. Methods are blocking:
//! async callers run them on a blocking thread (the service does). The
//! execution plane's run writes go through [`StoreWriter`] instead
//! ([`ExecutionStore::writer`]): awaited, and batched with every other run
//! write waiting into one transaction.

mod access;
mod backup;
mod execution;
mod quarantine;
mod retention;
mod secrets;
mod sled_store;
mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::automation::Automation;
use crate::domain::config::Config;
use crate::domain::ids::{AppId, AutomationId, ConfigId, RunId};
use crate::domain::run::{Run, RunFilter, RunStatus, RunTransitionError};
pub use access::AccessStore;
pub use backup::{BackupKind, BackupRecord, BackupStore, IndexReport};
pub use execution::{EventRecord, ExecutionStore};
pub use quarantine::{QuarantineStore, QuarantinedRecord, RecordKind, RecordScan};
pub use retention::RetentionStore;
pub use secrets::SecretStore;
pub use sled_store::{FORMAT_VERSION, HOLD_FILE_ENV, PROGRESS_FLUSH_DELAY, SledStore};
pub use writer::{MAX_BATCH, QUEUE_CAPACITY, RunChange, StoreWriter};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another automation of the app already has this lookup key.
    #[error("lookup_key `{key}` is already used by automation {by}")]
    LookupKeyTaken { key: String, by: AutomationId },
    /// The automation to change does not exist (any more).
    #[error("automation {0} does not exist")]
    AutomationNotFound(AutomationId),
    /// The run to change does not exist.
    #[error("run {0} does not exist")]
    RunNotFound(RunId),
    /// A run change broke the run lifecycle.
    #[error(transparent)]
    Transition(#[from] RunTransitionError),
    /// The data directory is locked by another process.
    #[error("the data directory {0} is in use by another automata process")]
    Locked(String),
    /// A stored value cannot be read back (records that cannot are
    /// quarantined instead; this is left for the store's own metadata).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The storage engine failed (disk full, IO error, …).
    #[error("storage error: {0}")]
    Backend(String),
    /// A write or flush to disk failed earlier (the message is the first
    /// failure): the store takes no more writes until the process restarts,
    /// because sled keeps its first IO error until it is reopened.
    #[error(
        "the store takes no more writes: writing to disk failed ({0}); free disk space \
         (or fix the disk), then restart automata"
    )]
    Unavailable(String),
}

/// Pending runs cancelled along with an automation change: why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// Stored as the runs' `reason`, e.g. `automation paused`.
    pub reason: String,
    /// The cancellation time.
    pub at: DateTime<Utc>,
}

/// When writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every write is on disk before the call returns — except run progress
    /// (a run's start and end, [`ExecutionStore::finish_run`]), which
    /// reaches the disk within [`PROGRESS_FLUSH_DELAY`] without waiting.
    /// Writers waiting at the same time share one flush (group commit). A
    /// crash loses nothing that was acknowledged. The default.
    Immediate,
    /// Writes are flushed in the background at this interval and nothing
    /// waits: a crash (power loss, SIGKILL) loses at most the last interval;
    /// a clean shutdown loses nothing.
    Interval(Duration),
}

/// How a [`SledStore`] is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// When writes reach the disk.
    pub durability: Durability,
    /// The storage engine's page cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Immediate,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything the host persists: apps and keys, configs (metadata, and
/// component bytes stored once per digest), automations, runs and secrets.
pub trait Store:
    ExecutionStore
    + QuarantineStore
    + AccessStore
    + RetentionStore
    + BackupStore
    + SecretStore
    + Send
    + Sync
    + 'static
{
    /// Stores a config and, unless a config with the same digest already holds
    /// them, its component bytes.
    fn insert_config(&self, config: &Config, component: &[u8]) -> Result<(), StoreError>;
    /// One config of an app.
    fn config(&self, app: &AppId, id: &ConfigId) -> Result<Option<Config>, StoreError>;
    /// An app's configs, oldest first.
    fn configs(&self, app: &AppId) -> Result<Vec<Config>, StoreError>;
    /// Deletes a config, and its component bytes when no other config shares
    /// them. Whether it existed.
    fn delete_config(&self, app: &AppId, id: &ConfigId) -> Result<bool, StoreError>;
    /// The component bytes with this digest (`sha256:…`).
    fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores a new automation; refused if its lookup key is taken.
    fn insert_automation(&self, automation: &Automation) -> Result<(), StoreError>;
    /// Replaces a stored automation (same app and id); refused if its new
    /// lookup key is taken. With `cancel`, its pending runs are cancelled in
    /// the same transaction. Returns the cancelled runs.
    fn update_automation(
        &self,
        automation: &Automation,
        cancel: Option<&Cancellation>,
    ) -> Result<Vec<RunId>, StoreError>;
    /// Deletes an automation and cancels its pending runs, atomically.
    /// Returns the deleted automation and the cancelled runs.
    fn delete_automation(
        &self,
        app: &AppId,
        id: &AutomationId,
        cancel: &Cancellation,
    ) -> Result<(Automation, Vec<RunId>), StoreError>;
    /// One automation.
    fn automation(&self, app: &AppId, id: &AutomationId) -> Result<Option<Automation>, StoreError>;
    /// The automation with this lookup key.
    fn automation_by_lookup_key(
        &self,
        app: &AppId,
        key: &str,
    ) -> Result<Option<Automation>, StoreError>;
    /// An app's automations, oldest first.
    fn automations(&self, app: &AppId) -> Result<Vec<Automation>, StoreError>;
    /// Every automation of every app (for the scheduler on start).
    fn all_automations(&self) -> Result<Vec<Automation>, StoreError>;
    /// The app's `running` trigger automations listening to `event`: an index
    /// lookup, not a scan.
    fn running_trigger_automations(
        &self,
        app: &AppId,
        event: &str,
    ) -> Result<Vec<Automation>, StoreError>;

    /// Stores new runs, all or none (an event fanning out to several
    /// automations). Refused if any run's automation no longer exists.
    fn insert_runs(&self, runs: &[Run]) -> Result<(), StoreError>;
    /// One run.
    fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Applies `change` to a run atomically (read, change, write, re-index).
    /// `change` may be called more than once if the transaction retries.
    fn update_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
    ) -> Result<Run, StoreError>;
    /// An automation's runs, newest first, optionally of one status, starting
    /// after (older than) `before`: a range scan.
    fn automation_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        status: Option<RunStatus>,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError>;
    /// An app's runs that match `filter` (runs of deleted automations
    /// included), newest first, starting after (older than) `before`: a
    /// reverse range scan of the most selective index (automation, status,
    /// trigger, or every run of the app), bounded by `since`/`until`.
    fn app_runs(
        &self,
        app: &AppId,
        filter: &RunFilter,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError>;
    /// How many runs of an automation are in `status`, as stored (a run
    /// started in memory only, [`ExecutionStore::claim_run`], counts as
    /// pending).
    fn count_automation_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        status: RunStatus,
    ) -> Result<usize, StoreError>;
    /// Runs of every app in `status`, oldest first, starting after `after`
    /// (queue order; recovery finds `pending` and `running` runs here).
    fn runs_with_status(
        &self,
        status: RunStatus,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError>;

    /// Writes everything buffered to disk.
    fn flush(&self) -> Result<(), StoreError>;

    /// Readiness probe: writes a small record outside the data (not waiting
    /// for the disk) and reads it back. Fails when that fails, or when the
    /// last flush to disk failed and none has succeeded since.
    fn probe_write(&self) -> Result<(), StoreError>;
}
