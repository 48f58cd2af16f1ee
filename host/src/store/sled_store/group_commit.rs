//! Group commit for `--flush always`: writers that must be on disk before
//! they answer share flushes instead of paying one each.
//!
//! A writer applies its transaction first, then takes the next write number
//! and, if it needs durability, waits until a flush that *started after* its
//! write completes. sled keeps one log for every tree and `Db::flush` makes
//! everything reserved in it before the call durable, so one flush covers
//! every write numbered before it started. One flusher thread runs flushes
//! back to back while anyone waits: writers arriving during a flush are
//! covered together by the next one.
//!
//! A failed flush sets the store's [`WriteFailure`] latch and is not retried
//! (sled keeps its first IO error until reopened): every writer waiting or
//! arriving later fails at once, and dropping the store does not wait for a
//! flush that cannot succeed.
//!
//! Writes nobody waits for (a run's progress) only set a deadline: they are
//! flushed with the next awaited write or after [`PROGRESS_FLUSH_DELAY`],
//! whichever comes first. (sled 0.34 stalls transactions while a flush is
//! writing, so flushing after every progress write would slow runs down.)

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::Db;

use super::write_failure::WriteFailure;
use crate::metrics::StoreMetrics;
use crate::store::StoreError;

/// The longest a write nobody waits for stays only in memory.
pub const PROGRESS_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// Whether the writer waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// On disk before the call returns.
    Durable,
    /// On disk within [`PROGRESS_FLUSH_DELAY`]; the call does not wait.
    Progress,
}

#[derive(Debug, Default)]
struct State {
    /// Writes applied so far; each writer takes the next number.
    applied: u64,
    /// The highest write number someone waits for.
    wanted: u64,
    /// Every write up to this number is on disk.
    flushed: u64,
    /// Flushes that succeeded.
    flushes: u64,
    /// When unwaited-for writes must be flushed by.
    due: Option<Instant>,
    /// Writes up to this number will never be flushed: a flush failed.
    failed: Option<u64>,
    /// Flush what is left, then end the flusher.
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher: someone waits, a deadline was set, or stop.
    work: Condvar,
    /// Wakes waiting writers: a flush ended.
    flushed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a plain assignment: a panic cannot
        // leave it half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The flusher thread and the state writers share with it.
#[derive(Debug)]
pub struct GroupCommit {
    shared: Arc<Shared>,
    failure: Arc<WriteFailure>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher of `db`, which records each flush's duration and
    /// batch size in `metrics` and sets `failure` when a flush fails.
    pub fn start(
        db: Db,
        metrics: StoreMetrics,
        failure: Arc<WriteFailure>,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared::default());
        let flusher = {
            let (shared, failure) = (Arc::clone(&shared), Arc::clone(&failure));
            std::thread::Builder::new()
                .name("automata-flush".into())
                .spawn(move || flush_loop(&shared, &db, &metrics, &failure))
                .map_err(|e| StoreError::Backend(format!("cannot start the flusher: {e}")))?
        };
        Ok(GroupCommit {
            shared,
            failure,
            flusher: Some(flusher),
        })
    }

    /// Records a write that has been applied; with [`Commit::Durable`],
    /// returns once it is on disk. [`StoreError::Unavailable`] once a flush
    /// failed.
    pub fn written(&self, commit: Commit) -> Result<(), StoreError> {
        self.written_many(commit, 1)
    }

    /// Records `writes` applied in one transaction (a batch of the store
    /// writer's), counted apart in the flush's batch size; otherwise as
    /// [`written`](Self::written).
    pub fn written_many(&self, commit: Commit, writes: u64) -> Result<(), StoreError> {
        self.failure.check()?;
        let mut state = self.shared.lock();
        state.applied += writes.max(1);
        let ticket = state.applied;
        match commit {
            Commit::Durable => self.wait_for(state, ticket),
            Commit::Progress => {
                if state.due.is_none() {
                    state.due = Some(Instant::now() + PROGRESS_FLUSH_DELAY);
                    self.shared.work.notify_one();
                }
                Ok(())
            }
        }
    }

    /// Returns once every write applied before the call is on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        // A write number of its own, so a flush starts after this call even
        // if writes outside this accounting (sled's own) are pending.
        self.written(Commit::Durable)
    }

    /// Flushes done so far, and the writes they made durable.
    #[cfg(test)]
    pub fn flushed(&self) -> (u64, u64) {
        let state = self.shared.lock();
        (state.flushes, state.flushed)
    }

    fn wait_for(&self, mut state: MutexGuard<'_, State>, ticket: u64) -> Result<(), StoreError> {
        if state.wanted < ticket {
            state.wanted = ticket;
            self.shared.work.notify_one();
        }
        loop {
            if state.flushed >= ticket {
                return Ok(());
            }
            if state.failed.is_some_and(|through| through >= ticket) {
                return Err(self
                    .failure
                    .check()
                    .err()
                    .unwrap_or_else(|| StoreError::Backend("flushing to disk failed".into())));
            }
            state = self
                .shared
                .flushed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for GroupCommit {
    /// Flushes what is left and ends the flusher, so the database (and its
    /// directory lock) is released when the store is.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            // A panicking flusher already reported itself.
            let _ = flusher.join();
        }
    }
}

fn flush_loop(shared: &Shared, db: &Db, metrics: &StoreMetrics, failure: &WriteFailure) {
    let mut state = shared.lock();
    loop {
        if failure.reason().is_some() {
            // Nothing reaches the disk any more: fail every write applied so
            // far (and any writer that slips in later), flush no more.
            state.failed = Some(state.applied);
            state.due = None;
            shared.flushed.notify_all();
            if state.stop {
                return;
            }
            state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let now = Instant::now();
        let flush_now = state.wanted > state.flushed
            || state.due.is_some_and(|due| due <= now)
            || (state.stop && state.applied > state.flushed);
        if !flush_now {
            if state.stop {
                return;
            }
            state = match state.due {
                Some(due) => {
                    shared
                        .work
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => shared.work.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
            continue;
        }
        // Every write numbered up to here was applied before this flush starts.
        let target = state.applied;
        let batch = target.saturating_sub(state.flushed);
        state.due = None;
        drop(state);
        let started = Instant::now();
        let result = failure
            .check()
            .and_then(|()| db.flush().map_err(|e| failure.record(e)));
        metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        state = shared.lock();
        match result {
            Ok(_) => {
                metrics.flush_batch_writes.observe(batch as f64);
                state.flushed = state.flushed.max(target);
                state.flushes += 1;
            }
            // Logged once by the latch; the loop's top fails the writers.
            Err(_) => state.failed = Some(target),
        }
        shared.flushed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, db)
    }

    fn start(db: Db) -> GroupCommit {
        GroupCommit::start(db, StoreMetrics::default(), Arc::default()).unwrap()
    }

    #[test]
    fn durable_writes_return_once_a_flush_covers_them() {
        let (_dir, db) = db();
        let group = Arc::new(start(db.clone()));
        let writers: Vec<_> = (0..8u8)
            .map(|n| {
                let (group, db) = (Arc::clone(&group), db.clone());
                std::thread::spawn(move || {
                    db.insert([n], &[n]).unwrap();
                    group.written(Commit::Durable).unwrap();
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let state = group.shared.lock();
        assert_eq!(state.flushed, 8, "every write is covered by a flush");
        assert!(state.failed.is_none());
    }

    #[test]
    fn progress_writes_are_flushed_within_the_delay() {
        let (_dir, db) = db();
        let group = start(db.clone());
        db.insert("k", "v").unwrap();
        group.written(Commit::Progress).unwrap();
        // Nobody waits: the flusher gets to it on its own.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group.shared.lock().flushed < 1 {
            assert!(Instant::now() < deadline, "never flushed");
            std::thread::sleep(PROGRESS_FLUSH_DELAY);
        }
        group.sync().unwrap();
        assert_eq!(group.shared.lock().flushed, 2);
    }

    #[test]
    fn after_a_failed_flush_writers_fail_at_once_and_nothing_is_retried() {
        let (_dir, db) = db();
        let failure = Arc::new(WriteFailure::default());
        let group =
            GroupCommit::start(db.clone(), StoreMetrics::default(), Arc::clone(&failure)).unwrap();
        db.insert("k", "v").unwrap();
        group.written(Commit::Durable).unwrap();
        failure.record("No space left on device (os error 28)");
        for commit in [Commit::Durable, Commit::Progress, Commit::Durable] {
            let refused = group.written(commit);
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
        let shared = Arc::clone(&group.shared);
        drop(group);
        assert_eq!(shared.lock().flushed, 1, "no flush after the failure");
    }

    #[test]
    fn dropping_flushes_what_is_left_and_releases_the_database() {
        let (dir, db) = db();
        let group = start(db.clone());
        db.insert("k", "v").unwrap();
        group.written(Commit::Progress).unwrap();
        let shared = Arc::clone(&group.shared);
        drop(group);
        assert_eq!(shared.lock().flushed, 1);
        drop(db);
        let reopened = sled::Config::new().path(dir.path()).open().unwrap();
        assert_eq!(reopened.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
