//! An app's runs across automations: three more index entries per run, the
//! scan that picks the most selective one, and the one-off backfill of the
//! entries for runs stored before they existed.
//!
//! | Key | Present |
//! | --- | --- |
//! | `ap/{app}/{atr_id}` | for every run of the app |
//! | `ps/{app}/{status}/{atr_id}` | while the run is in `status` |
//! | `pt/{app}/{trigger}/{atr_id}` | for every run of the app on `trigger` |
//!
//! Ids start with their creation time in milliseconds, so `since`/`until`
//! bound the key range itself; the rest of a filter is checked on the runs
//! read.

use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::{SledStore, backend, key, prefix_end, runs_prefix};
use crate::domain::ids::{AppId, RunId};
use crate::domain::run::{Run, RunFilter, RunStatus};
use crate::store::StoreError;

/// Set in the default tree once every run has its `ap`/`ps`/`pt` entries.
const INDEXED_MARKER: &str = "index.app_runs";

/// How far a run's id time may be from its `created_at` (both read from the
/// clock when the run is made): the key range is widened by this much and
/// `created_at` then checked exactly.
const ID_CLOCK_SLACK_MS: i64 = 1_000;

/// `ps/{app}/{status}/`.
pub(super) fn status_prefix(app: &AppId, status: RunStatus) -> Vec<u8> {
    key(&["ps", app.as_str(), status.as_str(), ""])
}

/// `ap/{app}/{atr_id}` and `pt/{app}/{trigger}/{atr_id}`.
pub(super) fn fixed_keys(run: &Run) -> [Vec<u8>; 2] {
    let (app, id) = (run.app_id.as_str(), run.id.as_str());
    [key(&["ap", app, id]), key(&["pt", app, &run.trigger, id])]
}

/// The index whose entries are the fewest runs still covering `filter`.
fn prefix_for(app: &AppId, filter: &RunFilter) -> Vec<u8> {
    if let Some(automation) = &filter.automation {
        return runs_prefix(app, automation, filter.status);
    }
    if let Some(status) = filter.status {
        return status_prefix(app, status);
    }
    match &filter.trigger {
        Some(trigger) => key(&["pt", app.as_str(), trigger, ""]),
        None => key(&["ap", app.as_str(), ""]),
    }
}

/// The smallest id minted at `at` plus `slack_ms` (0 before the epoch).
fn id_at(at: DateTime<Utc>, slack_ms: i64) -> RunId {
    let ms = at.timestamp_millis().saturating_add(slack_ms).max(0);
    RunId::from_value(u128::from(ms.unsigned_abs()) << 80)
}

impl SledStore {
    pub(super) fn scan_app_runs(
        &self,
        app: &AppId,
        filter: &RunFilter,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let prefix = prefix_for(app, filter);
        let with_id = |id: &RunId| [prefix.as_slice(), id.as_str().as_bytes()].concat();
        let start = match filter.since {
            Some(since) => Bound::Included(with_id(&id_at(since, -ID_CLOCK_SLACK_MS))),
            None => Bound::Included(prefix.clone()),
        };
        let mut end = prefix_end(&prefix);
        if let Some(until) = filter.until {
            end = end.min(with_id(&id_at(until, ID_CLOCK_SLACK_MS)));
        }
        if let Some(cursor) = before {
            end = end.min(with_id(cursor));
        }
        if let Bound::Included(start) = &start
            && *start >= end
        {
            return Ok(Vec::new());
        }
        let keys = self
            .index
            .range::<Vec<u8>, _>((start, Bound::Excluded(end)))
            .rev();
        let runs = self.load_runs(keys, &prefix, |run| filter.matches(run), limit)?;
        if filter.status != Some(RunStatus::Running) {
            return Ok(runs);
        }
        let mine = |run: &Run| {
            run.app_id == *app
                && filter.matches(run)
                && before.is_none_or(|cursor| run.id < *cursor)
        };
        Ok(self.with_executing(runs, mine, true, limit))
    }

    /// The `ap`/`ps`/`pt` entries that may name run `id` of `app` (to remove
    /// with it): every status's, and its trigger's — when the trigger is not
    /// known, found by a scan of the app's `pt/` entries.
    pub(super) fn app_run_entries(
        &self,
        app: &str,
        id: &str,
        trigger: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut entries = vec![key(&["ap", app, id])];
        for status in RunStatus::ALL.map(RunStatus::as_str) {
            entries.push(key(&["ps", app, status, id]));
        }
        match trigger {
            Some(trigger) => entries.push(key(&["pt", app, trigger, id])),
            None => {
                let suffix = format!("/{id}");
                for entry in self.index.scan_prefix(key(&["pt", app, ""])) {
                    let (found, _) = entry.map_err(backend)?;
                    if found.ends_with(suffix.as_bytes()) {
                        entries.push(found.to_vec());
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Gives every stored run its `ap`/`ps`/`pt` entries, once per store:
    /// stores written before this index existed list their runs across
    /// automations too.
    pub(super) fn index_app_runs(&self) -> Result<(), StoreError> {
        if self.db.contains_key(INDEXED_MARKER).map_err(backend)? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut indexed = 0usize;
        for entry in self.runs.iter() {
            let (key, value) = entry.map_err(backend)?;
            // An unreadable run is quarantined, not indexed.
            let Some(run) = self.read::<Run>(&key, value)? else {
                continue;
            };
            for key in fixed_keys(&run) {
                batch.insert(key, &[]);
            }
            let mut by_status = status_prefix(&run.app_id, run.status);
            by_status.extend_from_slice(run.id.as_str().as_bytes());
            batch.insert(by_status, &[]);
            indexed += 1;
        }
        self.index.apply_batch(batch).map_err(backend)?;
        self.db.insert(INDEXED_MARKER, "1").map_err(backend)?;
        if indexed > 0 {
            tracing::info!("indexed {indexed} stored runs by app, status and trigger");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::automation::Automation;
    use crate::domain::ids::IdSequence;
    use crate::domain::workflow::TriggerInput;
    use crate::store::Store;

    /// A pending run of `automation` on `trigger`, created `seconds` after
    /// the fixture's epoch, its id minted then.
    fn run_at(ids: &mut IdSequence, automation: &Automation, trigger: &str, seconds: i64) -> Run {
        let created = at(seconds);
        let id = RunId::from_value(ids.next(created.timestamp_millis().unsigned_abs(), 0));
        let input = TriggerInput {
            trigger: trigger.into(),
            payload: json!({}),
        };
        Run::pending(id, automation, input, created)
    }

    fn ids(runs: &[Run]) -> Vec<&RunId> {
        runs.iter().map(|r| &r.id).collect()
    }

    #[test]
    fn runs_of_every_automation_newest_first_by_filter_and_time() {
        let mut fx = Fixture::new();
        let (a, b) = (fx.trigger_automation(), fx.trigger_automation());
        let mut seq = IdSequence::default();
        let runs = [
            run_at(&mut seq, &a, "thread.created", 0),
            run_at(&mut seq, &b, "email.received", 60),
            run_at(&mut seq, &a, "thread.created", 120),
            run_at(&mut seq, &b, "thread.created", 180),
        ];
        fx.store.insert_runs(&runs).unwrap();
        fx.store
            .update_run(&runs[1].id, &mut |run| {
                run.transition(RunStatus::Failed, at(61), None)
            })
            .unwrap();
        let list = |filter: RunFilter, before: Option<&RunId>| {
            fx.store.app_runs(&app(), &filter, before, 10).unwrap()
        };
        let all = list(RunFilter::default(), None);
        assert_eq!(
            ids(&all),
            [&runs[3].id, &runs[2].id, &runs[1].id, &runs[0].id]
        );
        let page = fx
            .store
            .app_runs(&app(), &RunFilter::default(), None, 2)
            .unwrap();
        assert_eq!(ids(&page), [&runs[3].id, &runs[2].id]);
        let next = list(RunFilter::default(), Some(&runs[2].id));
        assert_eq!(ids(&next), [&runs[1].id, &runs[0].id]);

        let failed = RunFilter {
            status: Some(RunStatus::Failed),
            ..RunFilter::default()
        };
        assert_eq!(ids(&list(failed, None)), [&runs[1].id]);
        let pending_of_a = RunFilter {
            automation: Some(a.id.clone()),
            status: Some(RunStatus::Pending),
            ..RunFilter::default()
        };
        assert_eq!(ids(&list(pending_of_a, None)), [&runs[2].id, &runs[0].id]);
        let threads_of_b = RunFilter {
            trigger: Some("thread.created".into()),
            automation: Some(b.id.clone()),
            ..RunFilter::default()
        };
        assert_eq!(ids(&list(threads_of_b, None)), [&runs[3].id]);
        let window = RunFilter {
            since: Some(at(60)),
            until: Some(at(180)),
            ..RunFilter::default()
        };
        assert_eq!(ids(&list(window, None)), [&runs[2].id, &runs[1].id]);
        let empty = RunFilter {
            since: Some(at(200)),
            until: Some(at(100)),
            ..RunFilter::default()
        };
        assert!(list(empty, None).is_empty());
        let before_all = RunFilter {
            until: Some(at(0) - TimeDelta::days(1)),
            ..RunFilter::default()
        };
        assert!(list(before_all, None).is_empty());
    }

    #[test]
    fn runs_stored_before_the_index_are_indexed_on_open() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let mut seq = IdSequence::default();
        let run = run_at(&mut seq, &automation, "thread.created", 0);
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        // As a store written by an older build: no app entries, no marker.
        for key in fixed_keys(&run) {
            fx.store.index.remove(key).unwrap();
        }
        let mut by_status = status_prefix(&app(), RunStatus::Pending);
        by_status.extend_from_slice(run.id.as_str().as_bytes());
        fx.store.index.remove(by_status).unwrap();
        fx.store.db.remove(INDEXED_MARKER).unwrap();
        assert!(
            fx.store
                .app_runs(&app(), &RunFilter::default(), None, 10)
                .unwrap()
                .is_empty()
        );
        let fx = fx.reopened();
        let pending = RunFilter {
            status: Some(RunStatus::Pending),
            trigger: Some("thread.created".into()),
            ..RunFilter::default()
        };
        for filter in [RunFilter::default(), pending] {
            let found = fx.store.app_runs(&app(), &filter, None, 10).unwrap();
            assert_eq!(ids(&found), [&run.id]);
        }
    }
}
