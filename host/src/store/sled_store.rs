//! The sled implementation of [`Store`].
//!
//! Trees and keys (`/` separates parts; no id, app id, status or event name
//! contains it):
//!
//! | Tree | Key | Value |
//! | --- | --- | --- |
//! | `automations` | `{app}/{aut_id}` | automation JSON |
//! | `configs` | `{app}/{cfg_id}` | config JSON |
//! | `runs` | `{atr_id}` | run JSON |
//! | `blobs` | `sha256:{hex}` | component bytes, once per digest |
//! | `index` | `lk/{app}/{lookup_key}` | automation id |
//! | | `tr/{app}/{event}/{aut_id}` | (running trigger automations only) |
//! | | `ar/{app}/{aut_id}/{atr_id}` | (every run of an automation) |
//! | | `as/{app}/{aut_id}/{status}/{atr_id}` | (runs by status) |
//! | | `rs/{status}/{atr_id}` | (runs by status, every app) |
//! | | `ap/{app}/{atr_id}` | (every run of an app) |
//! | | `ps/{app}/{status}/{atr_id}` | (an app's runs by status) |
//! | | `pt/{app}/{trigger}/{atr_id}` | (an app's runs by trigger) |
//! | | `br/sha256:{hex}` | how many configs use the blob (u64 BE) |
//! | `quarantine` | `m/{id}`, `v/{id}` | unreadable records moved aside (`quarantine.rs`) |
//! | `apps`, `keys` | see `access.rs` | apps and API keys |
//! | `secrets` | `{app}/{name}` | secret JSON, its value sealed (`secrets.rs`) |
//!
//! Ids sort by creation time, so an automation's runs newest-first are a
//! reverse range scan of `ar/…` (or `as/…` for one status), and a cursor is the
//! last id returned: runs created later sort after it and cannot shift a page.
//! An app's runs across automations are the same over `ap/…`, `ps/…` or
//! `pt/…` (see `app_runs.rs`).
//! Every multi-key change is one transaction over all five trees.

mod access;
mod app_runs;
mod backup;
mod execution;
mod group_commit;
mod quarantine;
mod retention;
mod secrets;
#[cfg(test)]
mod test_fixture;
mod write_failure;
mod writer;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, IVec, Tree};

use super::writer::StoreWriter;
use super::{Cancellation, Durability, Store, StoreError, StoreOptions};
use crate::domain::automation::{Automation, AutomationStatus, AutomationType};
use crate::domain::config::Config;
use crate::domain::ids::{AppId, AutomationId, ConfigId, RunId};
use crate::domain::run::{Run, RunFilter, RunStatus, RunTransitionError};
use crate::metrics::StoreMetrics;
pub use group_commit::PROGRESS_FLUSH_DELAY;
use group_commit::{Commit, GroupCommit};
use quarantine::{Record, TxAbort, Unreadable};
use write_failure::WriteFailure;
pub use writer::HOLD_FILE_ENV;

/// The on-disk layout version this build reads and writes.
pub const FORMAT_VERSION: &str = "1";

/// Where readiness probes write (default tree, beside `format`).
const PROBE_KEY: &str = "probe";

/// A [`Store`] in a sled database directory.
pub struct SledStore {
    db: Db,
    /// With `--flush always`; otherwise sled flushes on its own interval.
    /// Shared with the writer thread's copy of the store.
    group_commit: Option<Arc<GroupCommit>>,
    automations: Tree,
    configs: Tree,
    runs: Tree,
    blobs: Tree,
    index: Tree,
    /// Records that could not be read back, moved aside.
    quarantine: Tree,
    /// Apps and API keys (`access.rs`), outside the five-tree transactions.
    apps: Tree,
    keys: Tree,
    /// Readiness probes so far: each writes a new value.
    probes: AtomicU64,
    /// Write latency and flush batches, for `/metrics`.
    metrics: StoreMetrics,
    /// App secrets, sealed (`secrets.rs`), outside the transactions too.
    secrets: Tree,
    /// Set by the first failed write or flush: no writes after it.
    failure: Arc<WriteFailure>,
    /// Sends run writes to the writer thread (`writer.rs`); `None` in the
    /// thread's own copy of the store.
    writer: Option<StoreWriter>,
    /// The writer thread, joined when the store is dropped.
    writer_thread: Option<JoinHandle<()>>,
    /// Runs executing now whose start is kept in memory only
    /// ([`ExecutionStore::claim_run`]): reads see them `running`, pending on
    /// disk. Shared with the writer thread's copy.
    executing: Arc<Mutex<BTreeMap<RunId, Run>>>,
}

impl Drop for SledStore {
    /// After a failed write, leaves sled's handles undropped: sled 0.34
    /// flushes when its last tree handle drops, and after an IO error that
    /// flush waits forever (seen with ENOSPC), so the process could not
    /// stop. Nothing is lost by skipping it: acknowledged writes were
    /// flushed before they were acknowledged, and later ones cannot reach
    /// the disk. The directory lock goes with the process.
    fn drop(&mut self) {
        // Closing the channel ends the writer thread once it has answered
        // what it holds; its copy of the store goes with it.
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            // A panicking writer already reported itself.
            let _ = thread.join();
        }
        if self.failure.reason().is_some() {
            std::mem::forget(self.db.clone());
        }
    }
}

type TxError = ConflictableTransactionError<TxAbort>;

/// The five trees inside one transaction.
struct Tx<'a> {
    automations: &'a TransactionalTree,
    configs: &'a TransactionalTree,
    runs: &'a TransactionalTree,
    blobs: &'a TransactionalTree,
    index: &'a TransactionalTree,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn abort(error: StoreError) -> TxError {
    ConflictableTransactionError::Abort(TxAbort::Store(error))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain types serialize to JSON")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("/").into_bytes()
}

/// The smallest key greater than every key starting with `prefix`
/// (which ends in `/`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("prefixes are not empty") += 1;
    end
}

fn automation_key(app: &AppId, id: &AutomationId) -> Vec<u8> {
    key(&[app.as_str(), id.as_str()])
}

fn lookup_key(app: &AppId, lookup: &str) -> Vec<u8> {
    key(&["lk", app.as_str(), lookup])
}

/// The trigger index entry an automation should have, if any.
fn trigger_key(automation: &Automation) -> Option<Vec<u8>> {
    let listening = automation.kind == AutomationType::Trigger
        && automation.status == AutomationStatus::Running;
    let event = automation.trigger.as_deref().filter(|_| listening)?;
    Some(key(&[
        "tr",
        automation.app_id.as_str(),
        event,
        automation.id.as_str(),
    ]))
}

fn runs_prefix(app: &AppId, automation: &AutomationId, status: Option<RunStatus>) -> Vec<u8> {
    let mut parts = match status {
        Some(status) => vec!["as", app.as_str(), automation.as_str(), status.as_str()],
        None => vec!["ar", app.as_str(), automation.as_str()],
    };
    parts.push("");
    key(&parts)
}

fn status_prefix(status: RunStatus) -> Vec<u8> {
    key(&["rs", status.as_str(), ""])
}

/// The index entries that depend on a run's status.
fn run_status_keys(run: &Run) -> [Vec<u8>; 3] {
    let mut by_automation = runs_prefix(&run.app_id, &run.automation_id, Some(run.status));
    by_automation.extend_from_slice(run.id.as_str().as_bytes());
    let mut by_status = status_prefix(run.status);
    by_status.extend_from_slice(run.id.as_str().as_bytes());
    let mut by_app_status = app_runs::status_prefix(&run.app_id, run.status);
    by_app_status.extend_from_slice(run.id.as_str().as_bytes());
    [by_automation, by_status, by_app_status]
}

/// The index entries a run has whatever its status.
fn run_fixed_keys(run: &Run) -> [Vec<u8>; 3] {
    let mut by_automation = runs_prefix(&run.app_id, &run.automation_id, None);
    by_automation.extend_from_slice(run.id.as_str().as_bytes());
    let [by_app, by_trigger] = app_runs::fixed_keys(run);
    [by_automation, by_app, by_trigger]
}

impl Tx<'_> {
    /// The record at `key`; one that cannot be read aborts the transaction
    /// to be moved to the quarantine, and the transaction runs again.
    fn get<T: Record>(tree: &TransactionalTree, key: &[u8]) -> Result<Option<T>, TxError> {
        match tree.get(key)? {
            Some(bytes) => decode(&bytes).map(Some).map_err(|error| {
                ConflictableTransactionError::Abort(TxAbort::Unreadable(Unreadable::new(
                    T::KIND,
                    key,
                    bytes,
                    error,
                )))
            }),
            None => Ok(None),
        }
    }

    fn put_run(&self, run: &Run, previous: Option<&Run>) -> Result<(), TxError> {
        if let Some(previous) = previous
            && previous.status != run.status
        {
            for key in run_status_keys(previous) {
                self.index.remove(key)?;
            }
        }
        if previous.is_none() {
            for key in run_fixed_keys(run) {
                self.index.insert(key, &[])?;
            }
        }
        for key in run_status_keys(run) {
            self.index.insert(key, &[])?;
        }
        self.runs.insert(run.id.as_str(), encode(run))?;
        Ok(())
    }

    /// Cancels those of `ids` that are still pending.
    fn cancel_pending(&self, ids: &[RunId], cancel: &Cancellation) -> Result<Vec<RunId>, TxError> {
        let mut cancelled = Vec::new();
        for id in ids {
            let Some(previous) = Self::get::<Run>(self.runs, id.as_str().as_bytes())? else {
                continue;
            };
            if previous.status != RunStatus::Pending {
                continue;
            }
            let mut run = previous.clone();
            run.transition(RunStatus::Cancelled, cancel.at, Some(cancel.reason.clone()))
                .map_err(|e| abort(e.into()))?;
            self.put_run(&run, Some(&previous))?;
            cancelled.push(id.clone());
        }
        Ok(cancelled)
    }

    /// Writes `automation` over `previous`, keeping the lookup-key and trigger
    /// index in step.
    fn put_automation(
        &self,
        automation: &Automation,
        previous: Option<&Automation>,
    ) -> Result<(), TxError> {
        let app = &automation.app_id;
        let old_lookup = previous.and_then(|p| p.lookup_key.as_deref());
        if automation.lookup_key.as_deref() != old_lookup {
            if let Some(old) = old_lookup {
                self.index.remove(lookup_key(app, old))?;
            }
            if let Some(new) = &automation.lookup_key {
                let key = lookup_key(app, new);
                if let Some(holder) = self.index.get(&key)? {
                    let Some(by) = std::str::from_utf8(&holder)
                        .ok()
                        .and_then(|id| id.parse::<AutomationId>().ok())
                    else {
                        let error = "the lookup-key entry does not hold an automation id";
                        return Err(ConflictableTransactionError::Abort(TxAbort::Unreadable(
                            Unreadable::index_entry(&key, holder, error),
                        )));
                    };
                    return Err(abort(StoreError::LookupKeyTaken {
                        key: new.clone(),
                        by,
                    }));
                }
                self.index.insert(key, automation.id.as_str())?;
            }
        }
        if let Some(old) = previous.and_then(trigger_key) {
            self.index.remove(old)?;
        }
        if let Some(new) = trigger_key(automation) {
            self.index.insert(new, &[])?;
        }
        self.automations
            .insert(automation_key(app, &automation.id), encode(automation))?;
        Ok(())
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let flush_every_ms = match options.durability {
            Durability::Immediate => None,
            Durability::Interval(every) => Some(every.as_millis().max(1) as u64),
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(flush_every_ms)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked(path.display().to_string())
                }
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(path.display().to_string())
                }
                other => backend(other),
            })?;
        match db.get("format").map_err(backend)? {
            Some(found) if found.as_ref() != FORMAT_VERSION.as_bytes() => {
                return Err(StoreError::Corrupt(format!(
                    "{} holds data format {}, this build reads format {FORMAT_VERSION}",
                    path.display(),
                    String::from_utf8_lossy(&found)
                )));
            }
            Some(_) => {}
            None => {
                db.insert("format", FORMAT_VERSION).map_err(backend)?;
            }
        }
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let metrics = StoreMetrics::default();
        let failure = Arc::new(WriteFailure::from_env());
        let store = SledStore {
            automations: tree("automations")?,
            configs: tree("configs")?,
            runs: tree("runs")?,
            blobs: tree("blobs")?,
            index: tree("index")?,
            quarantine: tree("quarantine")?,
            apps: tree("apps")?,
            keys: tree("keys")?,
            probes: AtomicU64::new(0),
            secrets: tree("secrets")?,
            group_commit: match options.durability {
                Durability::Immediate => Some(Arc::new(GroupCommit::start(
                    db.clone(),
                    metrics.clone(),
                    Arc::clone(&failure),
                )?)),
                Durability::Interval(_) => None,
            },
            metrics,
            failure,
            db,
            writer: None,
            writer_thread: None,
            executing: Arc::default(),
        };
        store.index_app_runs()?;
        store.flush()?;
        let mut store = store;
        let (writer, jobs) = StoreWriter::channel();
        let thread_store = store.writer_copy();
        let thread = std::thread::Builder::new()
            .name("automata-writer".into())
            .spawn(move || writer::write_loop(&thread_store, jobs))
            .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))?;
        store.writer = Some(writer);
        store.writer_thread = Some(thread);
        Ok(store)
    }

    /// The store as the writer thread holds it: the same database, trees,
    /// group commit, latch and metrics, without the writer's handle (so
    /// dropping the store ends the thread).
    fn writer_copy(&self) -> SledStore {
        SledStore {
            db: self.db.clone(),
            group_commit: self.group_commit.clone(),
            automations: self.automations.clone(),
            configs: self.configs.clone(),
            runs: self.runs.clone(),
            blobs: self.blobs.clone(),
            index: self.index.clone(),
            quarantine: self.quarantine.clone(),
            apps: self.apps.clone(),
            keys: self.keys.clone(),
            probes: AtomicU64::new(0),
            metrics: self.metrics.clone(),
            secrets: self.secrets.clone(),
            failure: Arc::clone(&self.failure),
            writer: None,
            writer_thread: None,
            executing: Arc::clone(&self.executing),
        }
    }

    /// The runs started in memory only. Each change under the lock is one
    /// map insert or removal: a panic cannot leave it half done.
    fn executing(&self) -> MutexGuard<'_, BTreeMap<RunId, Run>> {
        self.executing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `runs` (ordered by id, `newest_first` or oldest first) with the runs
    /// started in memory that `keep` accepts merged in, at most `limit`: a
    /// scan by the `running` status finds no index entry for those.
    fn with_executing(
        &self,
        mut runs: Vec<Run>,
        keep: impl Fn(&Run) -> bool,
        newest_first: bool,
        limit: usize,
    ) -> Vec<Run> {
        let executing: Vec<Run> = self
            .executing()
            .values()
            .filter(|run| keep(run))
            .cloned()
            .collect();
        if executing.is_empty() {
            return runs;
        }
        // A long run's start is on disk too: keep one copy.
        runs.retain(|run| !executing.iter().any(|other| other.id == run.id));
        runs.extend(executing);
        if newest_first {
            runs.sort_by(|a, b| b.id.cmp(&a.id));
        } else {
            runs.sort_by(|a, b| a.id.cmp(&b.id));
        }
        runs.truncate(limit);
        runs
    }

    /// What the store measures about its writes.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Runs `f` as one transaction over all trees; with `--flush always`,
    /// returns once it is on disk.
    fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> Result<T, TxError>) -> Result<T, StoreError> {
        self.transact_as(Commit::Durable, f)
    }

    /// Runs `f` as one transaction over all trees, then applies the
    /// durability policy: with `--flush always`, a [`Commit::Durable`] write
    /// waits for the group commit covering it.
    fn transact_as<T>(
        &self,
        commit: Commit,
        f: impl Fn(&Tx<'_>) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        self.failure.check()?;
        let started = std::time::Instant::now();
        let value = self.apply(f)?;
        self.written(commit)?;
        self.metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(value)
    }

    /// Runs `f` as one transaction over all trees, moving aside each
    /// unreadable record it meets and running it again; applied, not yet
    /// waited for.
    fn apply<T>(&self, f: impl Fn(&Tx<'_>) -> Result<T, TxError>) -> Result<T, StoreError> {
        let trees = (
            &self.automations,
            &self.configs,
            &self.runs,
            &self.blobs,
            &self.index,
        );
        loop {
            let result = trees.transaction(|(automations, configs, runs, blobs, index)| {
                f(&Tx {
                    automations,
                    configs,
                    runs,
                    blobs,
                    index,
                })
            });
            match result {
                Ok(value) => return Ok(value),
                // Each round moves one more unreadable record aside.
                Err(TransactionError::Abort(TxAbort::Unreadable(found))) => {
                    self.set_aside(found)?;
                }
                Err(TransactionError::Abort(TxAbort::Store(error))) => return Err(error),
                Err(TransactionError::Storage(error)) => return Err(self.failure.record(error)),
            }
        }
    }

    /// Applies the durability policy to a write that has been applied.
    fn written(&self, commit: Commit) -> Result<(), StoreError> {
        self.written_many(commit, 1)
    }

    /// Applies the durability policy to `writes` applied in one transaction
    /// (the writer's batch).
    fn written_many(&self, commit: Commit, writes: u64) -> Result<(), StoreError> {
        match &self.group_commit {
            Some(group) => group.written_many(commit, writes),
            None => Ok(()),
        }
    }

    /// Applies `change` to run `id` (read, change, write, re-index) in one
    /// transaction.
    fn change_run(
        &self,
        commit: Commit,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
        also: Option<&Run>,
    ) -> Result<Run, StoreError> {
        let change = RefCell::new(change);
        self.transact_as(commit, |tx| {
            tx.change(id, &mut **change.borrow_mut(), also)?
                .map_err(abort)
        })
    }

    fn scan_run_ids(&self, prefix: &[u8]) -> Result<Vec<RunId>, StoreError> {
        let mut ids = Vec::new();
        for entry in self.index.scan_prefix(prefix) {
            let (key, value) = entry.map_err(backend)?;
            ids.extend(self.indexed_run_id(&key, value, prefix)?);
        }
        Ok(ids)
    }

    /// Loads the runs of index `keys` (under `prefix`) that `keep` accepts,
    /// up to `limit`.
    fn load_runs(
        &self,
        keys: impl Iterator<Item = sled::Result<(IVec, IVec)>>,
        prefix: &[u8],
        keep: impl Fn(&Run) -> bool,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let mut runs = Vec::with_capacity(limit.min(128));
        for entry in keys {
            let (key, value) = entry.map_err(backend)?;
            let Some(id) = self.indexed_run_id(&key, value, prefix)? else {
                continue;
            };
            // A run can change status between reading the index and the run,
            // or be missing (quarantined).
            if let Some(run) = self.run(&id)?
                && keep(&run)
            {
                runs.push(run);
                if runs.len() == limit {
                    break;
                }
            }
        }
        Ok(runs)
    }

    /// The record at `key`; an unreadable one is quarantined and absent.
    fn get<T: Record>(&self, tree: &Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        match tree.get(key).map_err(backend)? {
            Some(bytes) => self.read(key, bytes),
            None => Ok(None),
        }
    }

    /// The records of `entries`, skipping (and quarantining) unreadable ones.
    fn values<T: Record>(
        &self,
        entries: impl Iterator<Item = sled::Result<(IVec, IVec)>>,
    ) -> Result<Vec<T>, StoreError> {
        let mut values = Vec::new();
        for entry in entries {
            let (key, bytes) = entry.map_err(backend)?;
            values.extend(self.read(&key, bytes)?);
        }
        Ok(values)
    }
}

impl Store for SledStore {
    fn insert_config(&self, config: &Config, component: &[u8]) -> Result<(), StoreError> {
        let refs_key = key(&["br", &config.digest]);
        self.transact(|tx| {
            let users = tx.index.get(&refs_key)?.map_or(0, |count| {
                u64::from_be_bytes(count.as_ref().try_into().unwrap_or_default())
            });
            if users == 0 {
                tx.blobs.insert(config.digest.as_str(), component)?;
            }
            tx.index
                .insert(refs_key.as_slice(), &(users + 1).to_be_bytes())?;
            tx.configs.insert(
                key(&[config.app_id.as_str(), config.id.as_str()]),
                encode(config),
            )?;
            Ok(())
        })
    }

    fn config(&self, app: &AppId, id: &ConfigId) -> Result<Option<Config>, StoreError> {
        self.get(&self.configs, &key(&[app.as_str(), id.as_str()]))
    }

    fn configs(&self, app: &AppId) -> Result<Vec<Config>, StoreError> {
        self.values(self.configs.scan_prefix(key(&[app.as_str(), ""])))
    }

    fn delete_config(&self, app: &AppId, id: &ConfigId) -> Result<bool, StoreError> {
        let config_key = key(&[app.as_str(), id.as_str()]);
        self.transact(|tx| {
            let Some(config) = Tx::get::<Config>(tx.configs, &config_key)? else {
                return Ok(false);
            };
            tx.configs.remove(config_key.as_slice())?;
            let refs_key = key(&["br", &config.digest]);
            let users = tx.index.get(&refs_key)?.map_or(0, |count| {
                u64::from_be_bytes(count.as_ref().try_into().unwrap_or_default())
            });
            if users <= 1 {
                tx.index.remove(refs_key)?;
                tx.blobs.remove(config.digest.as_str())?;
            } else {
                tx.index.insert(refs_key, &(users - 1).to_be_bytes())?;
            }
            Ok(true)
        })
    }

    fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(digest).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn insert_automation(&self, automation: &Automation) -> Result<(), StoreError> {
        self.transact(|tx| tx.put_automation(automation, None))
    }

    fn update_automation(
        &self,
        automation: &Automation,
        cancel: Option<&Cancellation>,
    ) -> Result<Vec<RunId>, StoreError> {
        // Held until the cancellations are stored: a run started in memory
        // meanwhile would be cancelled while it executes.
        let executing = cancel.map(|_| self.executing());
        let pending = match &executing {
            Some(executing) => self
                .scan_run_ids(&runs_prefix(
                    &automation.app_id,
                    &automation.id,
                    Some(RunStatus::Pending),
                ))?
                .into_iter()
                .filter(|id| !executing.contains_key(id))
                .collect(),
            None => Vec::new(),
        };
        let automation_key = automation_key(&automation.app_id, &automation.id);
        self.transact(|tx| {
            let Some(previous) = Tx::get::<Automation>(tx.automations, &automation_key)? else {
                return Err(abort(StoreError::AutomationNotFound(automation.id.clone())));
            };
            tx.put_automation(automation, Some(&previous))?;
            match cancel {
                Some(cancel) => tx.cancel_pending(&pending, cancel),
                None => Ok(Vec::new()),
            }
        })
    }

    fn delete_automation(
        &self,
        app: &AppId,
        id: &AutomationId,
        cancel: &Cancellation,
    ) -> Result<(Automation, Vec<RunId>), StoreError> {
        let pending_prefix = runs_prefix(app, id, Some(RunStatus::Pending));
        let automation_key = automation_key(app, id);
        // Held until the cancellations are stored (see `update_automation`);
        // the execution plane interrupts the executing runs on the change.
        let executing = self.executing();
        let not_executing = |ids: Vec<RunId>| -> Vec<RunId> {
            ids.into_iter()
                .filter(|id| !executing.contains_key(id))
                .collect()
        };
        let pending = not_executing(self.scan_run_ids(&pending_prefix)?);
        let (automation, mut cancelled) = self.transact(|tx| {
            let Some(automation) = Tx::get::<Automation>(tx.automations, &automation_key)? else {
                return Err(abort(StoreError::AutomationNotFound(id.clone())));
            };
            tx.automations.remove(automation_key.as_slice())?;
            if let Some(lookup) = &automation.lookup_key {
                tx.index.remove(lookup_key(app, lookup))?;
            }
            if let Some(trigger) = trigger_key(&automation) {
                tx.index.remove(trigger)?;
            }
            let cancelled = tx.cancel_pending(&pending, cancel)?;
            Ok((automation, cancelled))
        })?;
        // A run inserted between the scan and the transaction is still
        // pending; none can be inserted now that the automation is gone.
        let stragglers = not_executing(self.scan_run_ids(&pending_prefix)?);
        if !stragglers.is_empty() {
            cancelled.extend(self.transact(|tx| tx.cancel_pending(&stragglers, cancel))?);
        }
        Ok((automation, cancelled))
    }

    fn automation(&self, app: &AppId, id: &AutomationId) -> Result<Option<Automation>, StoreError> {
        self.get(&self.automations, &automation_key(app, id))
    }

    fn automation_by_lookup_key(
        &self,
        app: &AppId,
        key: &str,
    ) -> Result<Option<Automation>, StoreError> {
        let key = lookup_key(app, key);
        let Some(value) = self.index.get(&key).map_err(backend)? else {
            return Ok(None);
        };
        match self.indexed_automation(&key, value)? {
            Some(id) => self.automation(app, &id),
            None => Ok(None),
        }
    }

    fn automations(&self, app: &AppId) -> Result<Vec<Automation>, StoreError> {
        self.values(self.automations.scan_prefix(key(&[app.as_str(), ""])))
    }

    fn all_automations(&self) -> Result<Vec<Automation>, StoreError> {
        self.values(self.automations.iter())
    }

    fn running_trigger_automations(
        &self,
        app: &AppId,
        event: &str,
    ) -> Result<Vec<Automation>, StoreError> {
        let prefix = key(&["tr", app.as_str(), event, ""]);
        let mut automations = Vec::new();
        for entry in self.index.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(backend)?;
            if let Some(id) = self.indexed_id(&key, value, &prefix, "automation")? {
                automations.extend(self.automation(app, &id)?);
            }
        }
        Ok(automations)
    }

    fn insert_runs(&self, runs: &[Run]) -> Result<(), StoreError> {
        self.transact(|tx| tx.new_runs(runs)?.map_err(abort))
    }

    fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        if let Some(run) = self.executing().get(id) {
            return Ok(Some(run.clone()));
        }
        self.get(&self.runs, id.as_str().as_bytes())
    }

    fn update_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
    ) -> Result<Run, StoreError> {
        self.change_run(Commit::Durable, id, change, None)
    }

    fn automation_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        status: Option<RunStatus>,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let prefix = runs_prefix(app, automation, status);
        let end = match before {
            Some(cursor) => [prefix.as_slice(), cursor.as_str().as_bytes()].concat(),
            None => prefix_end(&prefix),
        };
        let keys = self.index.range(prefix.clone()..end).rev();
        // A run can change status between reading the index and the run.
        let runs = self.load_runs(
            keys,
            &prefix,
            |run| status.is_none_or(|s| s == run.status),
            limit,
        )?;
        if status != Some(RunStatus::Running) {
            return Ok(runs);
        }
        let mine = |run: &Run| {
            run.app_id == *app
                && run.automation_id == *automation
                && before.is_none_or(|cursor| run.id < *cursor)
        };
        Ok(self.with_executing(runs, mine, true, limit))
    }

    fn app_runs(
        &self,
        app: &AppId,
        filter: &RunFilter,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        self.scan_app_runs(app, filter, before, limit)
    }

    fn count_automation_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        status: RunStatus,
    ) -> Result<usize, StoreError> {
        let mut count = 0;
        for entry in self
            .index
            .scan_prefix(runs_prefix(app, automation, Some(status)))
        {
            entry.map_err(backend)?;
            count += 1;
        }
        Ok(count)
    }

    fn runs_with_status(
        &self,
        status: RunStatus,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let prefix = status_prefix(status);
        let start = match after {
            Some(cursor) => {
                Bound::Excluded([prefix.as_slice(), cursor.as_str().as_bytes()].concat())
            }
            None => Bound::Included(prefix.clone()),
        };
        let keys = self
            .index
            .range::<Vec<u8>, _>((start, Bound::Excluded(prefix_end(&prefix))));
        let runs = self.load_runs(keys, &prefix, |run| run.status == status, limit)?;
        if status != RunStatus::Running {
            return Ok(runs);
        }
        let later = |run: &Run| after.is_none_or(|cursor| run.id > *cursor);
        Ok(self.with_executing(runs, later, false, limit))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.failure.check()?;
        match &self.group_commit {
            Some(group) => group.sync(),
            None => self
                .db
                .flush()
                .map(drop)
                .map_err(|error| self.failure.record(error)),
        }
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        self.failure.check()?;
        let value = self.probes.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        self.db
            .insert(PROBE_KEY, &value)
            .map_err(|error| self.failure.record(error))?;
        if self.db.get(PROBE_KEY).map_err(backend)?.as_deref() != Some(&value[..]) {
            return Err(StoreError::Backend(
                "a probe write did not read back".into(),
            ));
        }
        // A failed flush sets the latch.
        self.failure.check()
    }
}

#[cfg(test)]
mod tests {
    use super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::automation::NewAutomation;
    use crate::domain::ids::IdSequence;
    use crate::domain::workflow::{StepNode, TriggerInput, WorkflowGraph};
    use serde_json::json;

    impl Fixture {
        fn run(&mut self, automation: &Automation) -> Run {
            let input = TriggerInput {
                trigger: "thread.created".into(),
                payload: json!({}),
            };
            self.pending_run(automation, input)
        }
    }

    fn config(id: u128, digest: &str) -> Config {
        Config {
            id: ConfigId::from_value(id),
            app_id: app(),
            name: "wf".into(),
            digest: digest.into(),
            size: 3,
            graph: WorkflowGraph {
                name: "wf".into(),
                triggers: vec!["thread.created".into()],
                steps: vec![StepNode {
                    name: "s".into(),
                    description: "d".into(),
                }],
            },
            imports_http: false,
            created_at: at(0),
            created_by: None,
        }
    }

    #[test]
    fn component_bytes_are_stored_once_and_kept_while_used() {
        let fx = Fixture::new();
        let (a, b) = (config(1, "sha256:aa"), config(2, "sha256:aa"));
        fx.store.insert_config(&a, b"abc").unwrap();
        fx.store.insert_config(&b, b"abc").unwrap();
        assert_eq!(fx.store.blobs.len(), 1);
        assert_eq!(fx.store.configs(&app()).unwrap(), [a.clone(), b.clone()]);
        assert!(fx.store.delete_config(&app(), &a.id).unwrap());
        assert_eq!(
            fx.store.component("sha256:aa").unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert!(fx.store.delete_config(&app(), &b.id).unwrap());
        assert_eq!(fx.store.component("sha256:aa").unwrap(), None);
        assert!(!fx.store.delete_config(&app(), &b.id).unwrap());
    }

    #[test]
    fn lookup_keys_are_unique_per_app_and_follow_updates() {
        let mut fx = Fixture::new();
        let first = fx.automation(json!({
            "name": "a", "type": "trigger", "trigger": "thread.created", "lookup_key": "k",
        }));
        let new: NewAutomation = serde_json::from_value(json!({
            "name": "b", "type": "trigger", "trigger": "thread.created", "lookup_key": "k",
        }))
        .unwrap();
        let second =
            Automation::create(AutomationId::from_value(fx.next()), app(), new, at(0)).unwrap();
        let error = fx.store.insert_automation(&second).unwrap_err();
        assert!(matches!(error, StoreError::LookupKeyTaken { ref by, .. } if *by == first.id));

        let mut renamed = first.clone();
        renamed.lookup_key = Some("k2".into());
        fx.store.update_automation(&renamed, None).unwrap();
        fx.store.insert_automation(&second).unwrap();
        assert_eq!(
            fx.store
                .automation_by_lookup_key(&app(), "k2")
                .unwrap()
                .unwrap()
                .id,
            first.id
        );
        assert_eq!(
            fx.store
                .automation_by_lookup_key(&app(), "k")
                .unwrap()
                .unwrap()
                .id,
            second.id
        );
    }

    #[test]
    fn trigger_index_holds_only_running_trigger_automations() {
        let mut fx = Fixture::new();
        let mut automation = fx.trigger_automation();
        let listeners = |fx: &Fixture| {
            fx.store
                .running_trigger_automations(&app(), "thread.created")
                .unwrap()
                .len()
        };
        assert_eq!(listeners(&fx), 0);
        automation.status = AutomationStatus::Running;
        fx.store.update_automation(&automation, None).unwrap();
        assert_eq!(listeners(&fx), 1);
        automation.trigger = Some("thread.deleted".into());
        fx.store.update_automation(&automation, None).unwrap();
        assert_eq!(listeners(&fx), 0);
        assert_eq!(
            fx.store
                .running_trigger_automations(&app(), "thread.deleted")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn runs_page_newest_first_with_a_stable_cursor() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let runs: Vec<Run> = (0..7).map(|_| fx.run(&automation)).collect();
        fx.store.insert_runs(&runs).unwrap();
        let page = fx
            .store
            .automation_runs(&app(), &automation.id, None, None, 3)
            .unwrap();
        let ids: Vec<_> = page.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            ids,
            [runs[6].id.clone(), runs[5].id.clone(), runs[4].id.clone()]
        );
        // A newer run does not shift the next page.
        let newer = fx.run(&automation);
        fx.store.insert_runs(std::slice::from_ref(&newer)).unwrap();
        let next = fx
            .store
            .automation_runs(&app(), &automation.id, None, Some(&runs[4].id), 3)
            .unwrap();
        let ids: Vec<_> = next.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            ids,
            [runs[3].id.clone(), runs[2].id.clone(), runs[1].id.clone()]
        );
    }

    #[test]
    fn status_indexes_follow_run_updates() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let runs: Vec<Run> = (0..3).map(|_| fx.run(&automation)).collect();
        fx.store.insert_runs(&runs).unwrap();
        let started = fx
            .store
            .update_run(&runs[1].id, &mut |run| {
                run.transition(RunStatus::Running, at(2), None)
            })
            .unwrap();
        assert_eq!(started.status, RunStatus::Running);
        let count = |status| {
            fx.store
                .count_automation_runs(&app(), &automation.id, status)
                .unwrap()
        };
        assert_eq!(
            (count(RunStatus::Pending), count(RunStatus::Running)),
            (2, 1)
        );
        let pending = fx
            .store
            .runs_with_status(RunStatus::Pending, None, 10)
            .unwrap();
        assert_eq!(
            pending.iter().map(|r| &r.id).collect::<Vec<_>>(),
            [&runs[0].id, &runs[2].id],
            "oldest first"
        );
        let after = fx
            .store
            .runs_with_status(RunStatus::Pending, Some(&runs[0].id), 10)
            .unwrap();
        assert_eq!(after.len(), 1);
        let running = fx
            .store
            .automation_runs(&app(), &automation.id, Some(RunStatus::Running), None, 10)
            .unwrap();
        assert_eq!(running.len(), 1);

        let refused = fx.store.update_run(&runs[1].id, &mut |run| {
            run.transition(RunStatus::Running, at(3), None)
        });
        assert!(matches!(refused, Err(StoreError::Transition(_))));
    }

    #[test]
    fn runs_of_a_missing_automation_are_refused_all_or_nothing() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let ghost = {
            let mut ghost = automation.clone();
            ghost.id = AutomationId::from_value(fx.next());
            ghost
        };
        let batch = [fx.run(&automation), fx.run(&ghost)];
        assert!(matches!(
            fx.store.insert_runs(&batch),
            Err(StoreError::AutomationNotFound(_))
        ));
        assert_eq!(fx.store.run(&batch[0].id).unwrap(), None);
    }

    #[test]
    fn deleting_an_automation_cancels_its_pending_runs() {
        let mut fx = Fixture::new();
        let automation = fx.automation(json!({
            "name": "a", "type": "trigger", "trigger": "thread.created", "lookup_key": "gone",
        }));
        let runs: Vec<Run> = (0..3).map(|_| fx.run(&automation)).collect();
        fx.store.insert_runs(&runs).unwrap();
        fx.store
            .update_run(&runs[0].id, &mut |run| {
                run.transition(RunStatus::Running, at(2), None)
            })
            .unwrap();
        let cancel = Cancellation {
            reason: "automation deleted".into(),
            at: at(3),
        };
        let (deleted, cancelled) = fx
            .store
            .delete_automation(&app(), &automation.id, &cancel)
            .unwrap();
        assert_eq!(deleted.id, automation.id);
        assert_eq!(cancelled, [runs[1].id.clone(), runs[2].id.clone()]);
        let run = fx.store.run(&runs[2].id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.reason.as_deref(), Some("automation deleted"));
        assert_eq!(
            fx.store.run(&runs[0].id).unwrap().unwrap().status,
            RunStatus::Running
        );
        assert_eq!(fx.store.automation(&app(), &automation.id).unwrap(), None);
        assert_eq!(
            fx.store.automation_by_lookup_key(&app(), "gone").unwrap(),
            None
        );
        assert!(
            fx.store
                .runs_with_status(RunStatus::Pending, None, 10)
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            fx.store.delete_automation(&app(), &automation.id, &cancel),
            Err(StoreError::AutomationNotFound(_))
        ));
    }

    #[test]
    fn probe_writes_read_back_and_touch_no_data() {
        let fx = Fixture::new();
        fx.store.probe_write().unwrap();
        fx.store.probe_write().unwrap();
        assert_eq!(fx.store.probes.load(Ordering::Relaxed), 2);
        assert!(fx.store.all_automations().unwrap().is_empty());
        assert_eq!(fx.store.runs.len(), 0);
    }

    #[test]
    fn everything_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = IdSequence::default();
        let new: NewAutomation = serde_json::from_value(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
        )
        .unwrap();
        let automation =
            Automation::create(AutomationId::from_value(ids.next(1, 1)), app(), new, at(0))
                .unwrap();
        {
            let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
            store.insert_automation(&automation).unwrap();
            store
                .insert_config(&config(9, "sha256:bb"), b"xyz")
                .unwrap();
            assert!(matches!(
                SledStore::open(dir.path(), &StoreOptions::default()),
                Err(StoreError::Locked(_))
            ));
        }
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(store.automations(&app()).unwrap(), [automation]);
        assert_eq!(
            store.component("sha256:bb").unwrap().as_deref(),
            Some(&b"xyz"[..])
        );
    }
}
