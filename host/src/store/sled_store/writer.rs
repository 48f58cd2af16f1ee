//! The store writer thread: the execution plane's run writes, batched.
//!
//! In sled 0.34 every multi-key transaction seals and writes the current log
//! buffer under sled's global transaction lock (70–120 µs here) whatever it
//! holds, so a run's three writes (intake, start, end) cost more than the
//! run itself. The writer takes every job waiting on its channel (up to
//! [`MAX_BATCH`]), applies them as **one** transaction over the five trees,
//! then — if any of them must be durable — waits once for the group commit
//! to flush it, and answers every sender. Jobs arriving meanwhile wait on
//! the channel and form the next batch, so the busier the host, the more
//! runs share a transaction and a flush.
//!
//! Each job is checked before it writes (a run that cannot make its
//! transition, runs of a deleted automation): a refused job writes nothing
//! and gets its own error while the rest of the batch goes ahead. What
//! fails the transaction itself (an IO error, the write latch) answers
//! every sender of the batch with it, and the latch refuses every later
//! write. An unreadable record met by any job is moved to the quarantine
//! and the batch runs again, as for any transaction.
//!
//! Test hook: when [`HOLD_FILE_ENV`] names a path and a file exists there,
//! the writer stops after applying a batch that holds a durable write —
//! before its flush and before answering anyone — and creates the path
//! with `.held` appended, so a test can kill the process with a batch in
//! flight.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::execution::receipt_key;
use super::{Commit, SledStore, Tx, TxError, automation_key, encode};
use crate::domain::automation::AutomationType;
use crate::domain::catchup::ScheduleCursor;
use crate::domain::event::EventReceipt;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunTransitionError};
use crate::store::writer::{Job, MAX_BATCH};
use crate::store::{EventRecord, StoreError};

/// Names a file whose existence makes the writer stop with a batch in
/// flight (a test hook; see the module docs).
pub const HOLD_FILE_ENV: &str = "AUTOMATA_TEST_WRITER_HOLD_FILE";

/// What one job did inside the batch's transaction.
// One per job, moved once into its answer: boxing the run would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Done {
    Event(EventRecord),
    Runs(Result<(), StoreError>),
    Ticks(bool),
    Change(Result<Run, StoreError>),
}

impl Tx<'_> {
    /// An event's runs (those whose automation still runs) and its receipt,
    /// unless a receipt for its key received at or after `replay_since`
    /// exists: then that receipt, and nothing is written.
    pub(super) fn event(
        &self,
        receipt: &EventReceipt,
        runs: &[Run],
        replay_since: DateTime<Utc>,
    ) -> Result<EventRecord, TxError> {
        let key = receipt
            .idempotency_key
            .as_deref()
            .map(|idempotency_key| receipt_key(&receipt.app_id, idempotency_key));
        if let Some(key) = &key
            && let Some(earlier) = Tx::get::<EventReceipt>(self.index, key)?
            && earlier.received_at >= replay_since
        {
            return Ok(EventRecord::Replayed(earlier));
        }
        let mut stored = EventReceipt {
            run_ids: Vec::with_capacity(runs.len()),
            ..receipt.clone()
        };
        for run in runs {
            if self
                .running_automation(&run.app_id, &run.automation_id)?
                .is_some()
            {
                self.put_run(run, None)?;
                stored.run_ids.push(run.id.clone());
            }
        }
        if let Some(key) = &key {
            self.index.insert(key.as_slice(), encode(&stored))?;
        }
        Ok(EventRecord::Stored(stored))
    }

    /// New runs, all or none: refused (writing nothing) if any run's
    /// automation no longer exists.
    pub(super) fn new_runs(&self, runs: &[Run]) -> Result<Result<(), StoreError>, TxError> {
        for run in runs {
            let owner = automation_key(&run.app_id, &run.automation_id);
            if self.automations.get(owner)?.is_none() {
                return Ok(Err(StoreError::AutomationNotFound(
                    run.automation_id.clone(),
                )));
            }
        }
        for run in runs {
            self.put_run(run, None)?;
        }
        Ok(Ok(()))
    }

    /// A tick's runs and the scheduler's cursor, if the automation is still
    /// a running scheduled one; whether it was.
    pub(super) fn ticks(
        &self,
        app: &AppId,
        automation: &AutomationId,
        runs: &[Run],
        cursor: &ScheduleCursor,
    ) -> Result<bool, TxError> {
        let scheduled = self
            .running_automation(app, automation)?
            .is_some_and(|a| a.kind == AutomationType::Scheduled);
        if !scheduled {
            return Ok(false);
        }
        for run in runs {
            self.put_run(run, None)?;
        }
        let key = super::execution::cursor_key(app, automation);
        self.index.insert(key.as_slice(), encode(cursor))?;
        Ok(true)
    }

    /// Applies `change` to run `id` (read, change, write, re-index) and
    /// stores `also` (its retry) with it; a missing run or an impossible
    /// change is refused, writing nothing.
    pub(super) fn change(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
        also: Option<&Run>,
    ) -> Result<Result<Run, StoreError>, TxError> {
        let Some(previous) = Tx::get::<Run>(self.runs, id.as_str().as_bytes())? else {
            return Ok(Err(StoreError::RunNotFound(id.clone())));
        };
        let mut run = previous.clone();
        if let Err(error) = change(&mut run) {
            return Ok(Err(error.into()));
        }
        self.put_run(&run, Some(&previous))?;
        if let Some(new) = also {
            self.put_run(new, None)?;
        }
        Ok(Ok(run))
    }

    fn job(&self, job: &mut Job) -> Result<Done, TxError> {
        Ok(match job {
            Job::Event {
                receipt,
                runs,
                replay_since,
                ..
            } => Done::Event(self.event(receipt, runs, *replay_since)?),
            Job::Runs { runs, .. } => Done::Runs(self.new_runs(runs)?),
            Job::Ticks {
                app,
                automation,
                runs,
                cursor,
                ..
            } => Done::Ticks(self.ticks(app, automation, runs, cursor)?),
            Job::Change {
                id, change, retry, ..
            } => Done::Change(self.change(id, change.as_mut(), retry.as_ref())?),
        })
    }
}

/// Sends each job its answer.
fn answer(job: Job, done: Done) {
    // A sender that stopped waiting has dropped its receiver: the answer has
    // nowhere to go, which is fine.
    match (job, done) {
        (Job::Event { answer, .. }, Done::Event(record)) => drop(answer.send(Ok(record))),
        (Job::Runs { answer, .. }, Done::Runs(result)) => drop(answer.send(result)),
        (Job::Ticks { answer, .. }, Done::Ticks(stored)) => drop(answer.send(Ok(stored))),
        (Job::Change { answer, .. }, Done::Change(result)) => drop(answer.send(result)),
        // `Tx::job` answers each job with its own kind.
        (job, _) => job.fail(StoreError::Backend(
            "a store job got another's answer".into(),
        )),
    }
}

/// The error a failed batch answers each of its senders with.
fn for_each_sender(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(first) => StoreError::Unavailable(first.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// The writer thread's loop: until the store drops its handle, take a
/// batch, apply it, answer it.
pub(super) fn write_loop(store: &SledStore, mut jobs: mpsc::Receiver<Job>) {
    let hold = std::env::var_os(HOLD_FILE_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    while let Some(first) = jobs.blocking_recv() {
        let batch = next_batch(first, &mut jobs);
        store.write_batch(batch, hold.as_deref());
    }
}

impl SledStore {
    /// Applies `jobs` as one transaction, waits for the disk once if any is
    /// durable, and answers each.
    fn write_batch(&self, jobs: Vec<Job>, hold: Option<&Path>) {
        let durable = jobs.iter().any(Job::durable);
        let count = jobs.len() as u64;
        let jobs = RefCell::new(jobs);
        let written = (|| {
            self.failure.check()?;
            let started = Instant::now();
            let done = self.apply(|tx| {
                let mut jobs = jobs.borrow_mut();
                jobs.iter_mut().map(|job| tx.job(job)).collect()
            })?;
            if durable && let Some(hold) = hold {
                hold_if_asked(hold);
            }
            let commit = if durable {
                Commit::Durable
            } else {
                Commit::Progress
            };
            self.written_many(commit, count)?;
            self.metrics
                .write_seconds
                .observe(started.elapsed().as_secs_f64());
            Ok::<Vec<Done>, StoreError>(done)
        })();
        let jobs = jobs.into_inner();
        match written {
            Ok(done) => {
                for (job, done) in jobs.into_iter().zip(done) {
                    answer(job, done);
                }
            }
            Err(error) => {
                for job in jobs {
                    job.fail(for_each_sender(&error));
                }
            }
        }
    }
}

/// The test hook: with the hold file present, announce the held batch and
/// stop here for good (the test kills the process).
fn hold_if_asked(hold: &Path) {
    if !hold.exists() {
        return;
    }
    let mut held = hold.as_os_str().to_owned();
    held.push(".held");
    tracing::warn!("test hook {HOLD_FILE_ENV}: holding a batch in flight");
    if let Err(error) = std::fs::write(&held, b"") {
        tracing::error!("test hook {HOLD_FILE_ENV}: cannot create the marker file: {error}");
    }
    loop {
        std::thread::park();
    }
}

/// The next batch: `first` and every job already waiting, up to
/// [`MAX_BATCH`].
fn next_batch(first: Job, jobs: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;
    use tokio::sync::oneshot;

    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::automation::{Automation, AutomationStatus};
    use crate::domain::run::RunStatus;
    use crate::domain::workflow::TriggerInput;
    use crate::store::writer::StoreWriter;
    use crate::store::{ExecutionStore, Store};

    fn input() -> TriggerInput {
        TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        }
    }

    fn listening(fx: &mut Fixture) -> Automation {
        fx.automation_in(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
            AutomationStatus::Running,
        )
    }

    fn receipt(runs: &[Run], key: Option<&str>) -> EventReceipt {
        EventReceipt {
            app_id: app(),
            trigger: "thread.created".into(),
            idempotency_key: key.map(str::to_owned),
            run_ids: runs.iter().map(|run| run.id.clone()).collect(),
            received_at: at(10),
            requested_by: None,
            request_sha256: Some("ab".repeat(32)),
        }
    }

    /// An event job for `runs` and where its answer arrives.
    fn event_job(
        runs: Vec<Run>,
        key: Option<&str>,
    ) -> (Job, oneshot::Receiver<Result<EventRecord, StoreError>>) {
        let (answer, answered) = oneshot::channel();
        let job = Job::Event {
            receipt: receipt(&runs, key),
            runs,
            replay_since: at(10) - TimeDelta::hours(24),
            answer,
        };
        (job, answered)
    }

    fn change_job(
        id: &RunId,
        to: RunStatus,
        durable: bool,
    ) -> (Job, oneshot::Receiver<Result<Run, StoreError>>) {
        let (answer, answered) = oneshot::channel();
        let job = Job::Change {
            id: id.clone(),
            change: Box::new(move |run: &mut Run| run.transition(to, at(20), None)),
            retry: None,
            durable,
            answer,
        };
        (job, answered)
    }

    #[test]
    fn a_batch_is_flushed_once_and_every_job_is_answered() {
        let mut fx = Fixture::new();
        let automation = listening(&mut fx);
        let events: Vec<_> = (0..5)
            .map(|n| {
                let run = fx.pending_run(&automation, input());
                let key = format!("key-{n}");
                event_job(vec![run], Some(&key))
            })
            .collect();
        let stored = fx.pending_run(&automation, input());
        fx.store.insert_runs(std::slice::from_ref(&stored)).unwrap();
        let (start, started) = change_job(&stored.id, RunStatus::Running, false);
        // Refused on its own: a pending run cannot complete.
        let other = fx.pending_run(&automation, input());
        fx.store.insert_runs(std::slice::from_ref(&other)).unwrap();
        let (complete, refused) = change_job(&other.id, RunStatus::Completed, false);
        let group = fx.store.group_commit.clone().expect("--flush always");
        let (flushes, flushed_writes) = group.flushed();
        let (mut jobs, mut answers) = (Vec::new(), Vec::new());
        for (job, answer) in events {
            jobs.push(job);
            answers.push(answer);
        }
        jobs.extend([start, complete]);
        fx.store.write_batch(jobs, None);

        for mut answer in answers {
            let record = answer
                .try_recv()
                .expect("answered before the batch returns");
            let EventRecord::Stored(receipt) = record.unwrap() else {
                panic!("a new key is stored");
            };
            assert_eq!(receipt.run_ids.len(), 1);
            assert!(fx.store.run(&receipt.run_ids[0]).unwrap().is_some());
        }
        let started = started.blocking_recv().unwrap().unwrap();
        assert_eq!(started.status, RunStatus::Running);
        assert!(matches!(
            refused.blocking_recv().unwrap(),
            Err(StoreError::Transition(_))
        ));
        assert_eq!(
            fx.store.run(&other.id).unwrap().unwrap().status,
            RunStatus::Pending,
            "a refused job writes nothing"
        );
        // Durable writes among them: one flush covered all seven jobs.
        assert_eq!(group.flushed(), (flushes + 1, flushed_writes + 7));
    }

    #[test]
    fn within_a_batch_later_jobs_see_earlier_ones() {
        let mut fx = Fixture::new();
        let automation = listening(&mut fx);
        let run = fx.pending_run(&automation, input());
        let (event, stored) = event_job(vec![run.clone()], None);
        let (start, started) = change_job(&run.id, RunStatus::Running, false);
        let (end, ended) = change_job(&run.id, RunStatus::Completed, false);
        // The same key again in the same batch replays the first.
        let (first, first_answer) =
            event_job(vec![fx.pending_run(&automation, input())], Some("k"));
        let (again, replayed) = event_job(vec![fx.pending_run(&automation, input())], Some("k"));
        fx.store
            .write_batch(vec![event, start, end, first, again], None);
        assert!(matches!(
            stored.blocking_recv().unwrap(),
            Ok(EventRecord::Stored(_))
        ));
        assert_eq!(
            started.blocking_recv().unwrap().unwrap().status,
            RunStatus::Running
        );
        assert_eq!(
            ended.blocking_recv().unwrap().unwrap().status,
            RunStatus::Completed
        );
        let Ok(EventRecord::Stored(first)) = first_answer.blocking_recv().unwrap() else {
            panic!("the first use of a key is stored");
        };
        assert_eq!(
            replayed.blocking_recv().unwrap().unwrap(),
            EventRecord::Replayed(first)
        );
        let stored = fx.store.run(&run.id).unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Completed);
        assert_eq!(stored.history.len(), 3);
    }

    #[test]
    fn a_failed_batch_answers_every_sender_and_the_latch_refuses_later_ones() {
        let mut fx = Fixture::new();
        let automation = listening(&mut fx);
        let run = fx.pending_run(&automation, input());
        let (event, stored) = event_job(vec![run.clone()], None);
        let (start, started) = change_job(&run.id, RunStatus::Running, false);
        fx.store
            .failure
            .record("No space left on device (os error 28)");
        fx.store.write_batch(vec![event, start], None);
        assert!(matches!(
            stored.blocking_recv().unwrap(),
            Err(StoreError::Unavailable(ref first)) if first.contains("os error 28")
        ));
        assert!(matches!(
            started.blocking_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(fx.store.run(&run.id).unwrap(), None);
        let (later, refused) = event_job(vec![run], None);
        fx.store.write_batch(vec![later], None);
        assert!(matches!(
            refused.blocking_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn a_batch_takes_what_waits_up_to_the_bound() {
        let (writer, mut jobs) = StoreWriter::channel();
        let mut answers = Vec::new();
        for _ in 0..MAX_BATCH + 10 {
            let (answer, answered) = oneshot::channel();
            answers.push(answered);
            let job = Job::Runs {
                runs: Vec::new(),
                answer,
            };
            writer
                .jobs
                .try_send(job)
                .expect("room for more than a batch");
        }
        let first = jobs.try_recv().unwrap();
        assert_eq!(next_batch(first, &mut jobs).len(), MAX_BATCH);
        let first = jobs.try_recv().unwrap();
        assert_eq!(next_batch(first, &mut jobs).len(), 10, "what was left");
        assert!(jobs.try_recv().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_through_the_thread_are_all_answered() {
        let mut fx = Fixture::new();
        let automation = listening(&mut fx);
        let runs: Vec<Run> = (0..300)
            .map(|_| fx.pending_run(&automation, input()))
            .collect();
        let store = std::sync::Arc::new(fx.store);
        let mut senders = Vec::new();
        for run in runs {
            let store = std::sync::Arc::clone(&store);
            senders.push(tokio::spawn(async move {
                let record = store
                    .writer()
                    .insert_event(
                        receipt(std::slice::from_ref(&run), None),
                        vec![run.clone()],
                        at(0),
                    )
                    .await
                    .unwrap();
                let started = store
                    .writer()
                    .change_run(
                        run.id.clone(),
                        Box::new(|run: &mut Run| run.transition(RunStatus::Running, at(2), None)),
                        None,
                        false,
                    )
                    .await
                    .unwrap();
                (record, started)
            }));
        }
        for sender in senders {
            let (record, started) = sender.await.unwrap();
            assert!(matches!(record, EventRecord::Stored(_)));
            assert_eq!(started.status, RunStatus::Running);
        }
        let running = store
            .runs_with_status(RunStatus::Running, None, 1000)
            .unwrap();
        assert_eq!(running.len(), 300);
    }
}
