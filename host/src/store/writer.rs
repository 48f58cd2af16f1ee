//! The store writer's handle: the execution plane's run writes (event
//! intake, run-now and rerun runs, scheduler ticks, a run's start, its end
//! with its retry, cancellations) go to one writer thread as jobs over a
//! bounded channel. The thread takes every job waiting (up to
//! [`MAX_BATCH`]), applies them as one transaction, flushes once if any of
//! them must be durable, and answers each sender (see
//! `sled_store/writer.rs`).
//!
//! Callers await their answer without a blocking thread of their own. (The
//! [`Store`](super::Store) trait's blocking methods for the same writes —
//! used on start, by recovery, and by tests — apply the same per-job
//! transaction code directly.) The channel holds at most
//! [`QUEUE_CAPACITY`] jobs: when the disk is slow, senders wait for room
//! instead of growing memory, so intake slows down with the disk.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{EventRecord, StoreError};
use crate::domain::catchup::ScheduleCursor;
use crate::domain::event::EventReceipt;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunTransitionError};

/// Most jobs applied in one transaction. A transaction of 256 runs with
/// their index entries writes a few hundred KiB; larger ones would hold
/// sled's transaction lock for long enough to delay reads.
pub const MAX_BATCH: usize = 256;

/// Most jobs waiting for the writer (four batches).
pub const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// A change to a stored run; called again if the transaction retries.
pub type RunChange = Box<dyn FnMut(&mut Run) -> Result<(), RunTransitionError> + Send>;

/// One write for the writer thread, with where its answer goes.
// Moved once through the channel (at most `QUEUE_CAPACITY` at a time):
// boxing the runs inside would only add an allocation per job.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    /// An event's runs and receipt ([`ExecutionStore::insert_event`]).
    ///
    /// [`ExecutionStore::insert_event`]: super::ExecutionStore::insert_event
    Event {
        receipt: EventReceipt,
        runs: Vec<Run>,
        replay_since: DateTime<Utc>,
        answer: oneshot::Sender<Result<EventRecord, StoreError>>,
    },
    /// New runs, all or none ([`Store::insert_runs`](super::Store::insert_runs)).
    Runs {
        runs: Vec<Run>,
        answer: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A tick's runs and the scheduler's cursor
    /// ([`ExecutionStore::insert_tick_runs`](super::ExecutionStore::insert_tick_runs)).
    Ticks {
        app: AppId,
        automation: AutomationId,
        runs: Vec<Run>,
        cursor: ScheduleCursor,
        answer: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// A change to one run and, with `retry`, its next attempt.
    Change {
        id: RunId,
        change: RunChange,
        retry: Option<Run>,
        /// On disk before the answer (a cancellation), or run progress.
        durable: bool,
        answer: oneshot::Sender<Result<Run, StoreError>>,
    },
}

impl Job {
    /// Whether the answer waits for the disk (with `--flush always`).
    pub(crate) fn durable(&self) -> bool {
        match self {
            Job::Event { .. } | Job::Runs { .. } | Job::Ticks { .. } => true,
            Job::Change { durable, .. } => *durable,
        }
    }

    /// Answers with `error` (the whole batch failed).
    pub(crate) fn fail(self, error: StoreError) {
        // A sender that stopped waiting has dropped its receiver: the
        // answer has nowhere to go, which is fine.
        match self {
            Job::Event { answer, .. } => drop(answer.send(Err(error))),
            Job::Runs { answer, .. } => drop(answer.send(Err(error))),
            Job::Ticks { answer, .. } => drop(answer.send(Err(error))),
            Job::Change { answer, .. } => drop(answer.send(Err(error))),
        }
    }
}

/// Sends jobs to the store's writer thread. Owned by the store: the thread
/// ends when the store (and so this handle) is dropped.
#[derive(Debug)]
pub struct StoreWriter {
    pub(super) jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, runs) = match self {
            Job::Event { runs, .. } => ("event", runs.len()),
            Job::Runs { runs, .. } => ("runs", runs.len()),
            Job::Ticks { runs, .. } => ("ticks", runs.len()),
            Job::Change { retry, .. } => ("change", usize::from(retry.is_some())),
        };
        write!(f, "Job::{kind}({runs} new runs)")
    }
}

impl StoreWriter {
    /// A handle and the receiving end for the writer thread.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, receiver) = mpsc::channel(QUEUE_CAPACITY);
        (StoreWriter { jobs }, receiver)
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        // Waits for room: a slow disk slows the senders down.
        self.jobs.send(job(answer)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Stores an event's runs and receipt, as
    /// [`ExecutionStore::insert_event`](super::ExecutionStore::insert_event);
    /// on disk before this returns (`--flush always`).
    pub async fn insert_event(
        &self,
        receipt: EventReceipt,
        runs: Vec<Run>,
        replay_since: DateTime<Utc>,
    ) -> Result<EventRecord, StoreError> {
        self.submit(|answer| Job::Event {
            receipt,
            runs,
            replay_since,
            answer,
        })
        .await
    }

    /// Stores new runs, all or none, as
    /// [`Store::insert_runs`](super::Store::insert_runs); on disk before this
    /// returns (`--flush always`).
    pub async fn insert_runs(&self, runs: Vec<Run>) -> Result<(), StoreError> {
        self.submit(|answer| Job::Runs { runs, answer }).await
    }

    /// Stores a tick's runs with the scheduler's cursor, as
    /// [`ExecutionStore::insert_tick_runs`](super::ExecutionStore::insert_tick_runs).
    pub async fn insert_tick_runs(
        &self,
        app: AppId,
        automation: AutomationId,
        runs: Vec<Run>,
        cursor: ScheduleCursor,
    ) -> Result<bool, StoreError> {
        self.submit(|answer| Job::Ticks {
            app,
            automation,
            runs,
            cursor,
            answer,
        })
        .await
    }

    /// Applies `change` to run `id` and stores `retry` with it. `durable`:
    /// on disk before this returns (`--flush always`); otherwise run
    /// progress, applied and visible at once and on disk within
    /// [`PROGRESS_FLUSH_DELAY`](super::PROGRESS_FLUSH_DELAY).
    pub async fn change_run(
        &self,
        id: RunId,
        change: RunChange,
        retry: Option<Run>,
        durable: bool,
    ) -> Result<Run, StoreError> {
        self.submit(|answer| Job::Change {
            id,
            change,
            retry,
            durable,
            answer,
        })
        .await
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer thread has stopped".into())
}
