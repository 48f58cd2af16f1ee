//! What the execution plane stores besides runs: the scheduler's cursor per
//! scheduled automation and the receipts of events sent with an idempotency
//! key. Every method that writes several keys does so atomically, so a crash
//! never leaves a tick or an event half recorded.

use chrono::{DateTime, Utc};

use super::{StoreError, StoreWriter};
use crate::domain::catchup::ScheduleCursor;
use crate::domain::event::EventReceipt;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunTransitionError};

/// What [`ExecutionStore::insert_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecord {
    /// Stored, with the runs that were.
    Stored(EventReceipt),
    /// An earlier event had the key: its receipt, nothing stored.
    Replayed(EventReceipt),
}

/// The execution plane's part of the [`Store`](super::Store).
pub trait ExecutionStore {
    /// The writer thread's handle: the async, batched way to make the run
    /// writes below (intake, start, end, ticks, cancellations); see
    /// [`StoreWriter`].
    fn writer(&self) -> &StoreWriter;

    /// Starts pending run `id` in memory only: `change` (which makes it
    /// `running`) is applied to the stored run and the result kept in
    /// memory, where every read of the store sees it — the run itself, lists
    /// and scans by status — until [`release_run`](Self::release_run).
    /// Nothing is written: on disk the run stays `pending` until its ending
    /// is stored (a crash meanwhile leaves it pending, to run again).
    /// Pending runs cancelled with an automation change (pause, delete) skip
    /// runs started this way. `None` when the run is gone or no longer
    /// pending.
    fn claim_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
    ) -> Result<Option<Run>, StoreError>;

    /// Forgets the in-memory start of run `id` ([`claim_run`](Self::claim_run)),
    /// once its ending is stored (or could not be).
    fn release_run(&self, id: &RunId);

    /// Ends a run with `change` and stores `retry` (its next attempt), in one
    /// transaction. Run progress: this returns once the change is applied
    /// and visible to reads, without waiting for the disk (see
    /// [`Durability`](super::Durability)). `change` may be called more than
    /// once if the transaction retries.
    fn finish_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
        retry: Option<&Run>,
    ) -> Result<Run, StoreError>;

    /// The scheduler's cursor of a scheduled automation.
    fn schedule_cursor(
        &self,
        app: &AppId,
        automation: &AutomationId,
    ) -> Result<Option<ScheduleCursor>, StoreError>;

    /// Sets the scheduler's cursor, or removes it (`None`).
    fn set_schedule_cursor(
        &self,
        app: &AppId,
        automation: &AutomationId,
        cursor: Option<&ScheduleCursor>,
    ) -> Result<(), StoreError>;

    /// Stores the runs of handled ticks and moves the cursor, in one
    /// transaction — if the automation is still a running scheduled one.
    /// Whether it was (and so whether anything was stored).
    fn insert_tick_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        runs: &[Run],
        cursor: &ScheduleCursor,
    ) -> Result<bool, StoreError>;

    /// The receipt of the app's event with this idempotency key.
    fn event_receipt(&self, app: &AppId, key: &str) -> Result<Option<EventReceipt>, StoreError>;

    /// Stores an event's runs and, when it has an idempotency key, its
    /// receipt, in one transaction — unless a receipt for that key received at
    /// or after `replay_since` exists: then nothing is stored and that receipt
    /// is replayed. Runs of automations no longer running (paused or deleted
    /// since they were looked up) are left out of both.
    fn insert_event(
        &self,
        receipt: &EventReceipt,
        runs: &[Run],
        replay_since: DateTime<Utc>,
    ) -> Result<EventRecord, StoreError>;

    /// Removes receipts received before `before`; returns how many.
    fn purge_event_receipts(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
}
