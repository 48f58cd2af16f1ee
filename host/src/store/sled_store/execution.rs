//! The sled side of [`ExecutionStore`]. Its records live in the `index` tree
//! so they join the same transactions as runs:
//!
//! | Key | Value |
//! | --- | --- |
//! | `sc/{app}/{aut_id}` | the scheduler's cursor (JSON) |
//! | `ev/{app}/{idempotency_key}` | an event's receipt (JSON) |

use chrono::{DateTime, Utc};

use super::{Commit, SledStore, Tx, automation_key, backend, encode, key};
use crate::domain::automation::{Automation, AutomationStatus};
use crate::domain::catchup::ScheduleCursor;
use crate::domain::event::EventReceipt;
use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::domain::run::{Run, RunStatus, RunTransitionError};
use crate::store::{EventRecord, ExecutionStore, StoreError, StoreWriter};

const RECEIPTS: &str = "ev/";

pub(super) fn cursor_key(app: &AppId, automation: &AutomationId) -> Vec<u8> {
    key(&["sc", app.as_str(), automation.as_str()])
}

/// The key is the last part, so a `/` inside it cannot collide.
pub(super) fn receipt_key(app: &AppId, idempotency_key: &str) -> Vec<u8> {
    key(&["ev", app.as_str(), idempotency_key])
}

impl Tx<'_> {
    /// The automation, if it exists and is running.
    pub(super) fn running_automation(
        &self,
        app: &AppId,
        id: &AutomationId,
    ) -> Result<Option<Automation>, super::TxError> {
        let automation = Tx::get::<Automation>(self.automations, &automation_key(app, id))?;
        Ok(automation.filter(|a| a.status == AutomationStatus::Running))
    }
}

impl ExecutionStore for SledStore {
    fn writer(&self) -> &StoreWriter {
        self.writer
            .as_ref()
            .expect("only the writer thread's own copy of the store has no writer")
    }

    fn claim_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
    ) -> Result<Option<Run>, StoreError> {
        // Under the lock an automation change's cancellation holds: the run
        // is claimed before it looks, or cancelled before this reads it.
        let mut executing = self.executing();
        if executing.contains_key(id) {
            return Ok(None);
        }
        let Some(mut run) = self.get::<Run>(&self.runs, id.as_str().as_bytes())? else {
            return Ok(None);
        };
        if run.status != RunStatus::Pending {
            return Ok(None);
        }
        change(&mut run)?;
        executing.insert(id.clone(), run.clone());
        Ok(Some(run))
    }

    fn release_run(&self, id: &RunId) {
        self.executing().remove(id);
    }

    fn finish_run(
        &self,
        id: &RunId,
        change: &mut dyn FnMut(&mut Run) -> Result<(), RunTransitionError>,
        retry: Option<&Run>,
    ) -> Result<Run, StoreError> {
        self.change_run(Commit::Progress, id, change, retry)
    }

    fn schedule_cursor(
        &self,
        app: &AppId,
        automation: &AutomationId,
    ) -> Result<Option<ScheduleCursor>, StoreError> {
        self.get(&self.index, &cursor_key(app, automation))
    }

    fn set_schedule_cursor(
        &self,
        app: &AppId,
        automation: &AutomationId,
        cursor: Option<&ScheduleCursor>,
    ) -> Result<(), StoreError> {
        let key = cursor_key(app, automation);
        self.transact(|tx| {
            match cursor {
                Some(cursor) => tx.index.insert(key.as_slice(), encode(cursor))?,
                None => tx.index.remove(key.as_slice())?,
            };
            Ok(())
        })
    }

    fn insert_tick_runs(
        &self,
        app: &AppId,
        automation: &AutomationId,
        runs: &[Run],
        cursor: &ScheduleCursor,
    ) -> Result<bool, StoreError> {
        self.transact(|tx| tx.ticks(app, automation, runs, cursor))
    }

    fn event_receipt(&self, app: &AppId, key: &str) -> Result<Option<EventReceipt>, StoreError> {
        self.get(&self.index, &receipt_key(app, key))
    }

    fn insert_event(
        &self,
        receipt: &EventReceipt,
        runs: &[Run],
        replay_since: DateTime<Utc>,
    ) -> Result<EventRecord, StoreError> {
        self.transact(|tx| tx.event(receipt, runs, replay_since))
    }

    fn purge_event_receipts(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut expired = sled::Batch::default();
        let mut count = 0;
        for entry in self.index.scan_prefix(RECEIPTS) {
            let (key, value) = entry.map_err(backend)?;
            let Some(receipt) = self.read::<EventReceipt>(&key, value)? else {
                continue;
            };
            if receipt.received_at < before {
                expired.remove(key);
                count += 1;
            }
        }
        self.index.apply_batch(expired).map_err(backend)?;
        // Housekeeping: a purge lost in a crash is simply done again.
        self.written(Commit::Progress)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::event::scheduled_input;
    use crate::domain::run::{RunFilter, RunStatus};
    use crate::domain::schedule::Schedule;
    use crate::domain::workflow::TriggerInput;
    use crate::store::Cancellation;
    use crate::store::Store;

    impl Fixture {
        /// A stored scheduled (or, with `trigger`, trigger) automation in `status`.
        fn automation_with(
            &mut self,
            trigger: Option<&str>,
            status: AutomationStatus,
        ) -> Automation {
            let body = match trigger {
                Some(event) => json!({"name": "t", "type": "trigger", "trigger": event}),
                None => json!({"name": "s", "type": "scheduled", "schedule": "* * * * *"}),
            };
            self.automation_in(body, status)
        }
    }

    #[test]
    fn ticks_and_cursor_are_stored_together() {
        let mut fx = Fixture::new();
        let automation = fx.automation_with(None, AutomationStatus::Running);
        let schedule = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            fx.store.schedule_cursor(&app(), &automation.id).unwrap(),
            None
        );
        let run = fx.pending_run(&automation, scheduled_input(at(60)));
        let cursor = ScheduleCursor::at(&schedule, at(60));
        assert!(
            fx.store
                .insert_tick_runs(&app(), &automation.id, std::slice::from_ref(&run), &cursor)
                .unwrap()
        );
        assert_eq!(
            fx.store.schedule_cursor(&app(), &automation.id).unwrap(),
            Some(cursor.clone())
        );
        assert_eq!(fx.store.run(&run.id).unwrap(), Some(run));
        fx.store
            .set_schedule_cursor(&app(), &automation.id, None)
            .unwrap();
        assert_eq!(
            fx.store.schedule_cursor(&app(), &automation.id).unwrap(),
            None
        );
        // A paused or deleted automation takes no ticks, not even its cursor.
        let paused = fx.automation_with(None, AutomationStatus::Paused);
        let late = fx.pending_run(&paused, scheduled_input(at(60)));
        let gone = AutomationId::from_value(7);
        for id in [&paused.id, &gone] {
            let stored = fx
                .store
                .insert_tick_runs(&app(), id, std::slice::from_ref(&late), &cursor)
                .unwrap();
            assert!(!stored);
            assert_eq!(fx.store.schedule_cursor(&app(), id).unwrap(), None);
        }
        assert_eq!(fx.store.run(&late.id).unwrap(), None);
    }

    #[test]
    fn a_finished_run_and_its_retry_are_stored_together() {
        let mut fx = Fixture::new();
        let automation = fx.automation_with(None, AutomationStatus::Running);
        let run = fx.pending_run(&automation, scheduled_input(at(60)));
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        let mut retry = fx.pending_run(&automation, scheduled_input(at(60)));
        retry.attempt = 2;
        retry.retry_of = Some(run.id.clone());
        let failed = fx
            .store
            .finish_run(
                &run.id,
                &mut |run| run.transition(RunStatus::Failed, at(2), Some("boom".into())),
                Some(&retry),
            )
            .unwrap();
        assert_eq!(failed.status, RunStatus::Failed);
        let pending = fx
            .store
            .runs_with_status(RunStatus::Pending, None, 10)
            .unwrap();
        assert_eq!(pending, [retry]);
        // An impossible change stores nothing, not even the retry.
        let orphan = fx.pending_run(&automation, scheduled_input(at(60)));
        let error = fx
            .store
            .finish_run(
                &run.id,
                &mut |run| run.transition(RunStatus::Running, at(3), None),
                Some(&orphan),
            )
            .unwrap_err();
        assert!(matches!(error, StoreError::Transition(_)));
        assert_eq!(fx.store.run(&orphan.id).unwrap(), None);
    }

    #[test]
    fn run_progress_does_not_wait_but_is_on_disk_after_a_close() {
        let mut fx = Fixture::new();
        let automation = fx.automation_with(None, AutomationStatus::Running);
        let run = fx.pending_run(&automation, scheduled_input(at(60)));
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        let started = fx
            .store
            .finish_run(
                &run.id,
                &mut |run| run.transition(RunStatus::Running, at(2), None),
                None,
            )
            .unwrap();
        assert_eq!(fx.store.run(&run.id).unwrap(), Some(started));
        fx.store
            .finish_run(
                &run.id,
                &mut |run| run.transition(RunStatus::Completed, at(3), None),
                None,
            )
            .unwrap();
        let fx = fx.reopened();
        let stored = fx.store.run(&run.id).unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Completed);
        assert_eq!(stored.history.len(), 3, "{:?}", stored.history);
    }

    #[test]
    fn a_run_started_in_memory_reads_running_everywhere_and_stays_pending_on_disk() {
        let mut fx = Fixture::new();
        let automation = fx.automation_with(Some("thread.created"), AutomationStatus::Running);
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let (run, other) = (
            fx.pending_run(&automation, input.clone()),
            fx.pending_run(&automation, input),
        );
        fx.store.insert_runs(&[run.clone(), other.clone()]).unwrap();
        let start = |run: &mut Run| run.transition(RunStatus::Running, at(2), None);
        let claimed = fx
            .store
            .claim_run(&run.id, &mut { start })
            .unwrap()
            .unwrap();
        assert_eq!(claimed.status, RunStatus::Running);
        // Claimed once only.
        assert_eq!(fx.store.claim_run(&run.id, &mut { start }).unwrap(), None);
        assert_eq!(fx.store.run(&run.id).unwrap(), Some(claimed.clone()));
        let ids = |runs: Vec<Run>| runs.into_iter().map(|run| run.id).collect::<Vec<_>>();
        let by_status = |status| {
            ids(fx
                .store
                .automation_runs(&app(), &automation.id, Some(status), None, 10)
                .unwrap())
        };
        assert_eq!(by_status(RunStatus::Running), std::slice::from_ref(&run.id));
        assert_eq!(
            by_status(RunStatus::Pending),
            std::slice::from_ref(&other.id)
        );
        let filter = RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        };
        let across = fx.store.app_runs(&app(), &filter, None, 10).unwrap();
        assert_eq!(ids(across), std::slice::from_ref(&run.id));
        let running = fx
            .store
            .runs_with_status(RunStatus::Running, None, 10)
            .unwrap();
        assert_eq!(running, [claimed]);
        // Pausing cancels the pending run, not the one executing.
        let mut paused = automation.clone();
        paused.status = AutomationStatus::Paused;
        let cancel = Cancellation {
            reason: "automation paused".into(),
            at: at(3),
        };
        let cancelled = fx.store.update_automation(&paused, Some(&cancel)).unwrap();
        assert_eq!(cancelled, std::slice::from_ref(&other.id));
        // Its ending brings the start along, in one write.
        let ended = fx
            .store
            .finish_run(
                &run.id,
                &mut |stored| {
                    assert_eq!(stored.status, RunStatus::Pending, "pending on disk");
                    start(stored)?;
                    stored.transition(RunStatus::Completed, at(4), None)
                },
                None,
            )
            .unwrap();
        fx.store.release_run(&run.id);
        assert_eq!(fx.store.run(&run.id).unwrap(), Some(ended.clone()));
        assert_eq!(ended.history.len(), 3);
        assert!(by_status(RunStatus::Running).is_empty());
        // Claimed and never ended (a crash): pending after a restart.
        let third = fx.pending_run(&automation, scheduled_input(at(60)));
        fx.store.insert_runs(std::slice::from_ref(&third)).unwrap();
        fx.store
            .claim_run(&third.id, &mut { start })
            .unwrap()
            .unwrap();
        let fx = fx.reopened();
        assert_eq!(
            fx.store.run(&third.id).unwrap().unwrap().status,
            RunStatus::Pending
        );
    }

    #[test]
    fn receipts_dedupe_within_the_window_and_expire() {
        let mut fx = Fixture::new();
        let automation = fx.automation_with(Some("thread.created"), AutomationStatus::Running);
        let paused = fx.automation_with(Some("thread.created"), AutomationStatus::Paused);
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let first = fx.pending_run(&automation, input.clone());
        // Paused between the lookup and the write: left out.
        let too_late = fx.pending_run(&paused, input.clone());
        let sent = EventReceipt {
            app_id: app(),
            trigger: "thread.created".into(),
            idempotency_key: Some("key/with/slashes".into()),
            run_ids: vec![first.id.clone(), too_late.id.clone()],
            received_at: at(10),
            requested_by: None,
            request_sha256: Some("ab".repeat(32)),
        };
        let since = at(10) - TimeDelta::hours(24);
        let receipt = EventReceipt {
            run_ids: vec![first.id.clone()],
            ..sent.clone()
        };
        assert_eq!(
            fx.store
                .insert_event(&sent, &[first.clone(), too_late.clone()], since)
                .unwrap(),
            EventRecord::Stored(receipt.clone())
        );
        assert_eq!(fx.store.run(&too_late.id).unwrap(), None);
        // The repeat stores nothing and gets the first receipt.
        let second = fx.pending_run(&automation, input);
        let repeat = EventReceipt {
            run_ids: vec![second.id.clone()],
            received_at: at(20),
            ..receipt.clone()
        };
        assert_eq!(
            fx.store
                .insert_event(&repeat, std::slice::from_ref(&second), since)
                .unwrap(),
            EventRecord::Replayed(receipt.clone())
        );
        assert_eq!(fx.store.run(&second.id).unwrap(), None);
        assert_eq!(
            fx.store.event_receipt(&app(), "key/with/slashes").unwrap(),
            Some(receipt)
        );
        // Past the window the key is free again; purging removes old receipts.
        assert_eq!(fx.store.purge_event_receipts(at(11)).unwrap(), 1);
        assert_eq!(
            fx.store.event_receipt(&app(), "key/with/slashes").unwrap(),
            None
        );
        assert_eq!(fx.store.purge_event_receipts(at(11)).unwrap(), 0);
    }
}
