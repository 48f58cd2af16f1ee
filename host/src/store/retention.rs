//! What retention needs from the store: runs in creation order, removing
//! ended runs with every index entry that names them, and component bytes
//! no config uses any more.

use super::StoreError;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunStatus};

/// The [`Store`](super::Store)'s part for retention.
pub trait RetentionStore {
    /// How many runs an automation has (every status).
    fn count_runs(&self, app: &AppId, automation: &AutomationId) -> Result<u64, StoreError>;

    /// An automation's run ids, oldest first, after `after`, at most `limit`.
    fn run_ids_oldest_first(
        &self,
        app: &AppId,
        automation: &AutomationId,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError>;

    /// Ids of runs of every app in the ended `status` created before
    /// `before` (an id; ids sort by creation time), oldest first, after
    /// `after`, at most `limit`.
    fn ended_run_ids_before(
        &self,
        status: RunStatus,
        before: &RunId,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError>;

    /// Removes those of `ids` that exist and have ended, with their index
    /// entries, in one transaction; returns the runs removed. Pending and
    /// running runs are left alone. A retry chain goes whole, with its last
    /// attempt: a run whose `retried_by` still exists is left, and removing
    /// a run removes the ended attempts before it (`retry_of`), so neither
    /// link ever names a removed run.
    fn delete_ended_runs(&self, ids: &[RunId]) -> Result<Vec<Run>, StoreError>;

    /// Removes component bytes that no config references (a reference
    /// count lost or never written); returns their digests.
    fn delete_unreferenced_blobs(&self) -> Result<Vec<String>, StoreError>;

    /// The digests of every stored component.
    fn blob_digests(&self) -> Result<Vec<String>, StoreError>;
}
