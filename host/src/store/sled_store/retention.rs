//! The sled side of [`RetentionStore`]: removing a run removes its record
//! and every index entry naming it (`ar/`, `as/`, `rs/`, `ap/`, `ps/`,
//! `pt/`) in one transaction; a retry chain goes whole, with its last
//! attempt.

use std::ops::Bound;

use super::{
    Commit, SledStore, Tx, TxError, backend, key, prefix_end, run_fixed_keys, run_status_keys,
    runs_prefix, status_prefix,
};
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunStatus};
use crate::store::{RetentionStore, StoreError};

impl SledStore {
    /// Run ids under `prefix` in key order, strictly after `after`, below
    /// `end`, at most `limit`.
    fn run_ids_in(
        &self,
        prefix: &[u8],
        after: Option<&RunId>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded([prefix, after.as_str().as_bytes()].concat()),
            None => Bound::Included(prefix.to_vec()),
        };
        let mut ids = Vec::new();
        for entry in self
            .index
            .range::<Vec<u8>, _>((start, Bound::Excluded(end)))
            .take(limit)
        {
            let (key, value) = entry.map_err(backend)?;
            // An entry that does not parse is quarantined and skipped.
            ids.extend(self.indexed_run_id(&key, value, prefix)?);
        }
        Ok(ids)
    }
}

/// Removes `run`'s record and every index entry naming it.
fn remove_run(tx: &Tx<'_>, run: &Run) -> Result<(), TxError> {
    for key in run_fixed_keys(run).into_iter().chain(run_status_keys(run)) {
        tx.index.remove(key)?;
    }
    tx.runs.remove(run.id.as_str().as_bytes())?;
    Ok(())
}

impl RetentionStore for SledStore {
    fn count_runs(&self, app: &AppId, automation: &AutomationId) -> Result<u64, StoreError> {
        let mut count = 0;
        for entry in self.index.scan_prefix(runs_prefix(app, automation, None)) {
            entry.map_err(backend)?;
            count += 1;
        }
        Ok(count)
    }

    fn run_ids_oldest_first(
        &self,
        app: &AppId,
        automation: &AutomationId,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let prefix = runs_prefix(app, automation, None);
        let end = prefix_end(&prefix);
        self.run_ids_in(&prefix, after, end, limit)
    }

    fn ended_run_ids_before(
        &self,
        status: RunStatus,
        before: &RunId,
        after: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        if !status.is_terminal() {
            return Ok(Vec::new());
        }
        let prefix = status_prefix(status);
        let end = [prefix.as_slice(), before.as_str().as_bytes()].concat();
        self.run_ids_in(&prefix, after, end, limit)
    }

    fn delete_ended_runs(&self, ids: &[RunId]) -> Result<Vec<Run>, StoreError> {
        // Housekeeping: a removal lost in a crash is simply done again.
        self.transact_as(Commit::Progress, |tx| {
            let mut removed = Vec::new();
            for id in ids {
                let Some(run) = Tx::get::<Run>(tx.runs, id.as_str().as_bytes())? else {
                    continue;
                };
                if !run.status.is_terminal() {
                    continue;
                }
                // An attempt that was retried goes with its chain's last one.
                if let Some(next) = &run.retried_by
                    && tx.runs.get(next.as_str().as_bytes())?.is_some()
                {
                    continue;
                }
                let mut attempt = Some(run);
                while let Some(run) = attempt.take() {
                    remove_run(tx, &run)?;
                    // Earlier attempts ended before their retry was made.
                    if let Some(previous) = &run.retry_of {
                        attempt = Tx::get::<Run>(tx.runs, previous.as_str().as_bytes())?
                            .filter(|previous| previous.status.is_terminal());
                    }
                    removed.push(run);
                }
            }
            Ok(removed)
        })
    }

    fn delete_unreferenced_blobs(&self) -> Result<Vec<String>, StoreError> {
        let unreferenced = self
            .blob_digests()?
            .into_iter()
            .map(|digest| {
                let referenced = self
                    .index
                    .contains_key(key(&["br", &digest]))
                    .map_err(backend)?;
                Ok((!referenced).then_some(digest))
            })
            .filter_map(Result::transpose)
            .collect::<Result<Vec<String>, StoreError>>()?;
        if unreferenced.is_empty() {
            return Ok(unreferenced);
        }
        self.transact_as(Commit::Progress, |tx| {
            let mut removed = Vec::new();
            for digest in &unreferenced {
                // A config may have taken it since the scan.
                if tx.index.get(key(&["br", digest]))?.is_none() {
                    tx.blobs.remove(digest.as_bytes())?;
                    removed.push(digest.clone());
                }
            }
            Ok(removed)
        })
    }

    fn blob_digests(&self) -> Result<Vec<String>, StoreError> {
        self.blobs
            .iter()
            .keys()
            .map(|key| {
                let key = key.map_err(backend)?;
                String::from_utf8(key.to_vec())
                    .map_err(|_| StoreError::Corrupt(format!("bad blob key {key:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::config::Config;
    use crate::domain::ids::ConfigId;
    use crate::domain::run::RunFilter;
    use crate::domain::workflow::{TriggerInput, WorkflowGraph};
    use crate::store::{BackupStore, QuarantineStore, Store};

    fn ended_runs(fx: &mut Fixture, count: usize) -> (AutomationId, Vec<Run>) {
        let automation = fx.trigger_automation();
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let runs: Vec<Run> = (0..count)
            .map(|_| fx.pending_run(&automation, input.clone()))
            .collect();
        fx.store.insert_runs(&runs).unwrap();
        for run in &runs[..count - 1] {
            fx.store
                .update_run(&run.id, &mut |run| {
                    run.transition(RunStatus::Cancelled, at(1), Some("test".into()))
                })
                .unwrap();
        }
        (automation.id, runs)
    }

    #[test]
    fn removing_runs_leaves_no_index_entry_and_spares_unended_ones() {
        let mut fx = Fixture::new();
        let (automation, runs) = ended_runs(&mut fx, 4);
        assert_eq!(fx.store.count_runs(&app(), &automation).unwrap(), 4);
        let oldest = fx
            .store
            .run_ids_oldest_first(&app(), &automation, None, 2)
            .unwrap();
        assert_eq!(oldest, [runs[0].id.clone(), runs[1].id.clone()]);
        let next = fx
            .store
            .run_ids_oldest_first(&app(), &automation, Some(&runs[1].id), 10)
            .unwrap();
        assert_eq!(next, [runs[2].id.clone(), runs[3].id.clone()]);

        let all: Vec<RunId> = runs.iter().map(|run| run.id.clone()).collect();
        let removed = fx.store.delete_ended_runs(&all).unwrap();
        assert_eq!(removed.len(), 3, "the pending run stays");
        assert_eq!(fx.store.count_runs(&app(), &automation).unwrap(), 1);
        assert_eq!(fx.store.run(&runs[0].id).unwrap(), None);
        let cancelled = fx
            .store
            .automation_runs(&app(), &automation, Some(RunStatus::Cancelled), None, 10)
            .unwrap();
        assert!(cancelled.is_empty());
        assert!(
            fx.store
                .ended_run_ids_before(
                    RunStatus::Cancelled,
                    &RunId::from_value(u128::MAX >> 3),
                    None,
                    10
                )
                .unwrap()
                .is_empty()
        );
        let pending = fx
            .store
            .runs_with_status(RunStatus::Pending, None, 10)
            .unwrap();
        assert_eq!(pending.len(), 1);
        // Runs across automations: gone from every list and filter.
        let across = |filter: RunFilter| fx.store.app_runs(&app(), &filter, None, 10).unwrap();
        let only_pending = [runs[3].id.clone()];
        for filter in [
            RunFilter::default(),
            RunFilter {
                trigger: Some("thread.created".into()),
                ..RunFilter::default()
            },
            RunFilter {
                automation: Some(automation.clone()),
                ..RunFilter::default()
            },
        ] {
            let found: Vec<RunId> = across(filter).into_iter().map(|run| run.id).collect();
            assert_eq!(found, only_pending);
        }
        let cancelled = RunFilter {
            status: Some(RunStatus::Cancelled),
            ..RunFilter::default()
        };
        assert!(across(cancelled).is_empty());
        // Only the pending run's six index entries are left (`ar`, `as`,
        // `rs`, `ap`, `ps`, `pt`), and they agree with the records.
        assert_eq!(fx.store.index.len(), 6);
        assert!(fx.store.check_indexes(false).unwrap().is_clean());
    }

    /// Attempts 1 and 2 failed, each retried by the next; attempt 3 is in
    /// `last`'s state.
    fn retry_chain(fx: &mut Fixture, last: RunStatus) -> Vec<Run> {
        let automation = fx.trigger_automation();
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let mut chain: Vec<Run> = (0..3)
            .map(|_| fx.pending_run(&automation, input.clone()))
            .collect();
        for n in 1..3 {
            chain[n].attempt = n as u32 + 1;
            chain[n].retry_of = Some(chain[n - 1].id.clone());
        }
        fx.store.insert_runs(&chain).unwrap();
        for n in 0..2 {
            let next = chain[n + 1].id.clone();
            fx.store
                .update_run(&chain[n].id, &mut |run| {
                    run.retried_by = Some(next.clone());
                    run.transition(RunStatus::Failed, at(1), None)
                })
                .unwrap();
        }
        if last.is_terminal() {
            fx.store
                .update_run(&chain[2].id, &mut |run| {
                    run.transition(RunStatus::Running, at(2), None)?;
                    run.transition(last, at(3), None)
                })
                .unwrap();
        }
        chain
    }

    #[test]
    fn a_retry_chain_goes_whole_with_its_last_attempt() {
        let mut fx = Fixture::new();
        let chain = retry_chain(&mut fx, RunStatus::Completed);
        let ids: Vec<RunId> = chain.iter().map(|run| run.id.clone()).collect();
        // The first attempts alone are due: they stay, linked to the last.
        assert!(fx.store.delete_ended_runs(&ids[..2]).unwrap().is_empty());
        assert!(fx.store.run(&ids[0]).unwrap().is_some());
        // The last attempt takes the earlier ones with it.
        let removed = fx.store.delete_ended_runs(&ids[2..]).unwrap();
        let removed: Vec<RunId> = removed.into_iter().map(|run| run.id).collect();
        assert_eq!(removed, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
        assert_eq!(fx.store.index.len(), 0);
        // In one batch, in any order, each run is removed once.
        let mut fx = Fixture::new();
        let chain = retry_chain(&mut fx, RunStatus::Completed);
        let ids: Vec<RunId> = chain.iter().rev().map(|run| run.id.clone()).collect();
        assert_eq!(fx.store.delete_ended_runs(&ids).unwrap().len(), 3);
    }

    #[test]
    fn a_chain_whose_last_attempt_has_not_ended_stays() {
        let mut fx = Fixture::new();
        let chain = retry_chain(&mut fx, RunStatus::Pending);
        let ids: Vec<RunId> = chain.iter().map(|run| run.id.clone()).collect();
        assert!(fx.store.delete_ended_runs(&ids).unwrap().is_empty());
        for id in &ids {
            assert!(fx.store.run(id).unwrap().is_some());
        }
    }

    #[test]
    fn an_unreadable_run_is_quarantined_and_the_rest_removed() {
        let mut fx = Fixture::new();
        let (_, runs) = ended_runs(&mut fx, 3);
        fx.store
            .write_raw_record(
                crate::store::RecordKind::Run,
                runs[0].id.as_str().as_bytes(),
                b"{\"id\": 7",
            )
            .unwrap();
        let ids: Vec<RunId> = runs.iter().map(|run| run.id.clone()).collect();
        let removed = fx.store.delete_ended_runs(&ids).unwrap();
        assert_eq!(removed.len(), 1, "the second run; the third is pending");
        assert_eq!(fx.store.quarantine_count().unwrap(), 1);
        assert!(fx.store.check_indexes(false).unwrap().is_clean());
    }

    #[test]
    fn ended_runs_are_found_by_creation_time_across_automations() {
        let mut fx = Fixture::new();
        let (_, runs) = ended_runs(&mut fx, 3);
        let found = fx
            .store
            .ended_run_ids_before(RunStatus::Cancelled, &runs[1].id, None, 10)
            .unwrap();
        assert_eq!(found, [runs[0].id.clone()]);
        assert!(
            fx.store
                .ended_run_ids_before(RunStatus::Pending, &runs[2].id, None, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn only_unreferenced_blobs_are_removed() {
        let fx = Fixture::new();
        let config = Config {
            id: ConfigId::from_value(1),
            app_id: app(),
            name: "wf".into(),
            digest: "sha256:aa".into(),
            size: 3,
            graph: WorkflowGraph {
                name: "wf".into(),
                triggers: vec!["thread.created".into()],
                steps: Vec::new(),
            },
            imports_http: false,
            created_at: at(0),
            created_by: None,
        };
        fx.store.insert_config(&config, b"abc").unwrap();
        fx.store.blobs.insert("sha256:bb", &b"stray"[..]).unwrap();
        assert_eq!(
            fx.store.delete_unreferenced_blobs().unwrap(),
            ["sha256:bb".to_owned()]
        );
        assert_eq!(fx.store.blob_digests().unwrap(), ["sha256:aa".to_owned()]);
        assert!(fx.store.delete_unreferenced_blobs().unwrap().is_empty());
    }
}
