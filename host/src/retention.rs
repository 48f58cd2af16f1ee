//! Retention in the background: every interval, each automation's ended
//! runs past its age or count limit are removed with their index entries,
//! then the ended runs of deleted automations past the host's age limit,
//! component bytes no config uses, compiled components of removed bytes,
//! and idempotency receipts past their 24 hours.
//!
//! Work goes in small batches (one short store transaction each, on a
//! blocking thread, with a pause between), so event intake, workers and the
//! API interleave with it instead of waiting behind it. Pending and running
//! runs are never removed. What a crash interrupts is done by the next pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::digest::ComponentDigest;
use crate::domain::dispatch::IDEMPOTENCY_WINDOW;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::retention::{RetentionPolicy, is_due};
use crate::domain::run::RunStatus;
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::store::{Store, StoreError};

/// Runs removed per store transaction.
pub const DEFAULT_BATCH: usize = 256;
/// Time between passes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The pause between two batches, so other writers get the store.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// How retention runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// The host's policy; automations may override it.
    pub policy: RetentionPolicy,
    /// Time between passes.
    pub interval: Duration,
    /// Runs removed per store transaction.
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            policy: RetentionPolicy::default(),
            interval: DEFAULT_INTERVAL,
            batch: DEFAULT_BATCH,
        }
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ended runs.
    pub runs: u64,
    /// Component bytes no config used.
    pub blobs: u64,
    /// Compiled components whose bytes are gone.
    pub compiled: u64,
    /// Idempotency receipts older than 24 hours.
    pub receipts: u64,
}

/// The retention task's parts.
pub struct Retention {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    metrics: Arc<Metrics>,
    config: RetentionConfig,
    /// Turns true when the server stops: a pass ends at its next batch.
    stop: Option<watch::Receiver<bool>>,
}

impl Retention {
    /// Retention over `store` (and `runner`'s compile cache), counting into
    /// `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        metrics: Arc<Metrics>,
        config: RetentionConfig,
    ) -> Self {
        Retention {
            store,
            runner,
            metrics,
            config,
            stop: None,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
    }

    /// Runs a pass now and then every interval until `stop` turns true.
    pub fn spawn(mut self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        self.stop = Some(stop.clone());
        tokio::spawn(async move {
            loop {
                match self.pass(Utc::now()).await {
                    Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                        runs = pruned.runs,
                        blobs = pruned.blobs,
                        compiled = pruned.compiled,
                        receipts = pruned.receipts,
                        "retention removed old data"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::error!("retention pass failed: {error}"),
                }
                tokio::select! {
                    () = tokio::time::sleep(self.config.interval) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        })
    }

    /// One pass at `now`.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let automations = self.blocking(|store| store.all_automations()).await?;
        let mut existing = HashSet::new();
        for automation in automations {
            if self.stopping() {
                return Ok(pruned);
            }
            let policy = self.config.policy.with_override(&automation.retention);
            pruned.runs += self
                .prune_automation(&automation.app_id, &automation.id, policy, now)
                .await?;
            existing.insert((automation.app_id, automation.id));
        }
        if let Some(cutoff) = self.config.policy.cutoff(now) {
            pruned.runs += self.prune_orphans(&cutoff, &existing).await?;
        }
        let blobs = self
            .blocking(|store| store.delete_unreferenced_blobs())
            .await?;
        pruned.blobs = blobs.len() as u64;
        self.metrics.pruned(0, pruned.blobs);
        let (store, runner) = (Arc::clone(&self.store), Arc::clone(&self.runner));
        pruned.compiled = tokio::task::spawn_blocking(move || {
            let kept: Vec<ComponentDigest> = store
                .blob_digests()?
                .iter()
                .filter_map(|digest| digest.parse().ok())
                .collect();
            Ok::<_, StoreError>(runner.retain_compiled(&kept) as u64)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        let before = now - IDEMPOTENCY_WINDOW;
        pruned.receipts = self
            .blocking(move |store| store.purge_event_receipts(before))
            .await? as u64;
        Ok(pruned)
    }

    /// Removes an automation's ended runs that `policy` no longer keeps,
    /// oldest first, a batch at a time.
    async fn prune_automation(
        &self,
        app: &AppId,
        automation: &AutomationId,
        policy: RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let cutoff = policy.cutoff(now);
        let excess = match policy.max_runs {
            Some(_) => {
                let (app, automation) = (app.clone(), automation.clone());
                let total = self
                    .blocking(move |store| store.count_runs(&app, &automation))
                    .await?;
                policy.excess(total)
            }
            None => 0,
        };
        if excess == 0 && cutoff.is_none() {
            return Ok(0);
        }
        let batch = self.config.batch.max(1);
        let (mut removed, mut position, mut after) = (0, 0u64, None::<RunId>);
        loop {
            let (app, automation, from) = (app.clone(), automation.clone(), after.clone());
            let ids = self
                .blocking(move |store| {
                    store.run_ids_oldest_first(&app, &automation, from.as_ref(), batch)
                })
                .await?;
            let fetched = ids.len();
            let due: Vec<RunId> = ids
                .into_iter()
                .take_while(|id| {
                    let due = is_due(position, id, excess, cutoff.as_ref());
                    position += 1;
                    due
                })
                .collect();
            let Some(last) = due.last().cloned() else {
                return Ok(removed);
            };
            let walked_all_due = due.len() < fetched || fetched < batch;
            removed += self.delete(due).await?;
            if walked_all_due || self.stopping() {
                return Ok(removed);
            }
            after = Some(last);
            tokio::time::sleep(BATCH_PAUSE).await;
        }
    }

    /// Removes ended runs created before `cutoff` whose automation no longer
    /// exists (their automation's override went with it).
    async fn prune_orphans(
        &self,
        cutoff: &RunId,
        existing: &HashSet<(AppId, AutomationId)>,
    ) -> Result<u64, StoreError> {
        let batch = self.config.batch.max(1);
        let mut removed = 0;
        for status in [
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            let mut after = None::<RunId>;
            loop {
                let (before, from) = (cutoff.clone(), after.clone());
                let ids = self
                    .blocking(move |store| {
                        store.ended_run_ids_before(status, &before, from.as_ref(), batch)
                    })
                    .await?;
                let Some(last) = ids.last().cloned() else {
                    break;
                };
                let candidates = ids.clone();
                let runs = self
                    .blocking(move |store| {
                        candidates
                            .iter()
                            .map(|id| store.run(id))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .await?;
                let orphans: Vec<RunId> = runs
                    .into_iter()
                    .flatten()
                    .filter(|run| {
                        !existing.contains(&(run.app_id.clone(), run.automation_id.clone()))
                    })
                    .map(|run| run.id)
                    .collect();
                if !orphans.is_empty() {
                    removed += self.delete(orphans).await?;
                }
                if ids.len() < batch || self.stopping() {
                    break;
                }
                after = Some(last);
                tokio::time::sleep(BATCH_PAUSE).await;
            }
        }
        Ok(removed)
    }

    async fn delete(&self, ids: Vec<RunId>) -> Result<u64, StoreError> {
        let removed = self
            .blocking(move |store| store.delete_ended_runs(&ids))
            .await?
            .len() as u64;
        self.metrics.pruned(removed, 0);
        Ok(removed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}
