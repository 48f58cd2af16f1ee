//! The scheduler: turns cron ticks of running scheduled automations into
//! runs.
//!
//! It keeps each running scheduled automation's next due time in a timeline
//! and sleeps until the earliest, or until an automation changes (the
//! control plane calls [`Execution::automation_changed`](super::Execution::automation_changed)).
//! No loop polls every automation. Per automation the store keeps a cursor,
//! the last tick handled; ticks after it are planned by the catch-up policy
//! (on time, after downtime, after a pause) and admitted by the overlap
//! policy, and their runs are stored together with the new cursor, so a tick
//! is handled exactly once across restarts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::{Shared, blocking};
use crate::domain::automation::{AutomationStatus, AutomationType};
use crate::domain::catchup::{self, ScheduleCursor};
use crate::domain::dispatch::{self, REASON_MISSED, REASON_QUEUE_FULL, TickAdmission};
use crate::domain::event::scheduled_input;
use crate::domain::ids::{AppId, AutomationId};
use crate::domain::run::{Run, RunResult, RunStatus, RunTransitionError};
use crate::metrics::RunOrigin;
use crate::store::StoreError;

type Key = (AppId, AutomationId);

/// When a visit fails (the store erred), try that automation again after this.
const RETRY_AFTER_ERROR: TimeDelta = TimeDelta::seconds(5);

/// Automations changed since the scheduler last looked, and its wake-up.
#[derive(Debug, Default)]
pub(super) struct Signals {
    touched: Mutex<HashSet<Key>>,
    wake: Notify,
}

impl Signals {
    /// Marks an automation changed and wakes the scheduler.
    pub(super) fn touch(&self, app: &AppId, automation: &AutomationId) {
        self.touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((app.clone(), automation.clone()));
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<Key> {
        std::mem::take(&mut *self.touched.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Next due times, earliest first.
#[derive(Debug, Default)]
struct Timeline {
    order: BTreeSet<(DateTime<Utc>, Key)>,
    due: HashMap<Key, DateTime<Utc>>,
}

impl Timeline {
    fn set(&mut self, key: Key, due: Option<DateTime<Utc>>) {
        if let Some(previous) = self.due.remove(&key) {
            self.order.remove(&(previous, key.clone()));
        }
        if let Some(due) = due {
            self.due.insert(key.clone(), due);
            self.order.insert((due, key));
        }
    }

    fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<Key> {
        let mut keys = Vec::new();
        while let Some((due, _)) = self.order.first()
            && *due <= now
        {
            if let Some((_, key)) = self.order.pop_first() {
                self.due.remove(&key);
                keys.push(key);
            }
        }
        keys
    }

    fn earliest(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|(due, _)| *due)
    }
}

/// The scheduler task: catches up every scheduled automation on start, then
/// sleeps until the earliest due time or a change.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut timeline = Timeline::default();
    match blocking(&shared, |s| s.store.all_automations()).await {
        Ok(automations) => {
            for automation in automations {
                if automation.kind == AutomationType::Scheduled {
                    shared.scheduler.touch(&automation.app_id, &automation.id);
                }
            }
        }
        Err(error) => tracing::error!("the scheduler cannot list automations: {error}"),
    }
    loop {
        let touched = shared.scheduler.take();
        let now = Utc::now();
        let mut visits: Vec<(Key, bool)> = touched.into_iter().map(|key| (key, true)).collect();
        visits.extend(
            timeline
                .pop_due(now)
                .into_iter()
                .filter(|key| !visits.iter().any(|(touched, _)| touched == key))
                .map(|key| (key, false))
                .collect::<Vec<_>>(),
        );
        if !visits.is_empty() {
            let outcomes = blocking(&shared, move |s| {
                visits
                    .into_iter()
                    .map(|(key, changed)| {
                        let next = visit(s, &key, changed, Utc::now());
                        (key, next)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            for (key, next) in outcomes {
                let next = next.unwrap_or_else(|error| {
                    tracing::error!(automation = %key.1, "scheduling failed, retrying: {error}");
                    Some(Utc::now() + RETRY_AFTER_ERROR)
                });
                timeline.set(key, next);
            }
        }
        let sleep = timeline
            .earliest()
            .map(|due| (due - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        tokio::select! {
            () = shared.scheduler.wake.notified() => {}
            () = super::sleep_for(sleep) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Looks at one automation at `now`: handles its due ticks and returns its
/// next due time (`None`: not scheduled now). `changed`: the control plane
/// touched it, so its queue limit and waiting runs are refreshed too.
fn visit(
    shared: &Shared,
    (app, id): &Key,
    changed: bool,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let automation = shared.store.automation(app, id)?;
    if changed {
        if let Some(automation) = &automation {
            shared.set_limit_of(automation);
        }
        forget_cancelled(shared, id)?;
    }
    let Some(automation) = automation
        .filter(|a| a.kind == AutomationType::Scheduled && a.status != AutomationStatus::Draft)
    else {
        // Deleted, a draft again, or no longer scheduled: a later activation
        // starts afresh.
        if shared.store.schedule_cursor(app, id)?.is_some() {
            shared.store.set_schedule_cursor(app, id, None)?;
        }
        return Ok(None);
    };
    // Paused: nothing runs, the cursor stays, so resuming catches up.
    if automation.status == AutomationStatus::Paused {
        return Ok(None);
    }
    let Some(schedule) = automation.parsed_schedule() else {
        tracing::error!(automation = %id, "stored schedule does not parse; not scheduling it");
        return Ok(None);
    };
    let cursor = match shared.store.schedule_cursor(app, id)? {
        Some(cursor) if cursor.follows(&schedule) => cursor,
        // First activation, or a new expression or zone: start from now.
        _ => {
            let cursor = ScheduleCursor::at(&schedule, now);
            shared.store.set_schedule_cursor(app, id, Some(&cursor))?;
            return Ok(schedule.next_after(now));
        }
    };
    let plan = catchup::plan(
        &schedule,
        cursor.last_tick,
        now,
        dispatch::catch_up(&automation),
    );
    if plan.run.is_empty() && plan.missed.is_none() {
        return Ok(schedule.next_after(cursor.last_tick));
    }

    let mut runs = Vec::with_capacity(plan.run.len() + 1);
    if let Some(missed) = plan.missed {
        let mut run = Run::pending(
            shared.mint_run_id(),
            &automation,
            scheduled_input(missed.last),
            now,
        );
        cancel(&mut run, REASON_MISSED, now)?;
        run.result = Some(RunResult::Failure {
            error: missed.describe(),
            output: Vec::new(),
            output_truncated: false,
        });
        runs.push(run);
    }
    let mut active = shared.queue.active_runs(&automation.id);
    let mut queued = 0;
    for tick in plan.run {
        let mut run = Run::pending(
            shared.mint_run_id(),
            &automation,
            scheduled_input(tick),
            now,
        );
        match dispatch::admit_tick(automation.overlap, active) {
            TickAdmission::Cancel(reason) => cancel(&mut run, reason, now)?,
            TickAdmission::Enqueue if !shared.queue.has_room(&automation.app_id, queued + 1) => {
                cancel(&mut run, REASON_QUEUE_FULL, now)?;
            }
            TickAdmission::Enqueue => {
                active += 1;
                queued += 1;
            }
        }
        runs.push(run);
    }
    let cursor = ScheduleCursor::at(&schedule, plan.cursor);
    // Paused or deleted since it was read: its change notification follows.
    if !shared.store.insert_tick_runs(app, id, &runs, &cursor)? {
        return Ok(None);
    }
    observe_ticks(
        shared,
        &runs,
        plan.missed.map_or(0, |missed| missed.count),
        now,
    );
    shared.queue.enqueue(
        runs.iter()
            .filter(|run| run.status == RunStatus::Pending)
            .map(Shared::waiting),
    );
    Ok(schedule.next_after(plan.cursor))
}

/// Counts a visit's stored tick runs and logs a catch-up decision (missed
/// ticks, or more than one tick run at once).
fn observe_ticks(shared: &Shared, runs: &[Run], missed: u64, now: DateTime<Utc>) {
    for run in runs {
        shared.metrics.run_created(run, RunOrigin::Schedule);
        match (run.status, run.reason.as_deref()) {
            (RunStatus::Cancelled, Some(REASON_MISSED)) => {
                shared.metrics.ticks_missed(missed);
                shared.run_ended(run);
            }
            (RunStatus::Cancelled, reason) => {
                shared.metrics.tick_skipped(reason.unwrap_or_default());
                shared.run_ended(run);
            }
            _ => {
                let due = run.scheduled_at.unwrap_or(now);
                shared
                    .metrics
                    .tick_fired((now - due).to_std().unwrap_or(Duration::ZERO));
            }
        }
    }
    let started = runs.iter().filter(|run| run.status == RunStatus::Pending);
    if missed > 0 || started.clone().count() > 1 {
        let first = runs.first().expect("a decision has runs");
        tracing::info!(
            app = %first.app_id,
            automation = %first.automation_id,
            missed,
            running = started.count(),
            first_due = runs.iter().filter_map(|run| run.scheduled_at).min().map(|at| at.to_rfc3339()),
            last_due = runs.iter().filter_map(|run| run.scheduled_at).max().map(|at| at.to_rfc3339()),
            "scheduler caught up"
        );
    }
}

fn cancel(run: &mut Run, reason: &str, at: DateTime<Utc>) -> Result<(), RunTransitionError> {
    run.transition(RunStatus::Cancelled, at, Some(reason.to_owned()))
}

/// Drops from the queue the automation's waiting runs the store no longer
/// has pending (a pause or delete cancelled them).
fn forget_cancelled(shared: &Shared, automation: &AutomationId) -> Result<(), StoreError> {
    let mut gone = Vec::new();
    for id in shared.queue.waiting_of(automation) {
        let still_pending = shared
            .store
            .run(&id)?
            .is_some_and(|run| run.status == RunStatus::Pending);
        if !still_pending {
            gone.push(id);
        }
    }
    shared.queue.forget(&gone);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> Key {
        ("default".parse().unwrap(), AutomationId::from_value(n))
    }

    fn at(second: u32) -> DateTime<Utc> {
        format!("2026-02-28T09:00:{second:02}Z").parse().unwrap()
    }

    #[test]
    fn timeline_pops_due_keys_in_order_and_reschedules() {
        let mut timeline = Timeline::default();
        timeline.set(key(1), Some(at(5)));
        timeline.set(key(2), Some(at(3)));
        timeline.set(key(3), Some(at(9)));
        assert_eq!(timeline.earliest(), Some(at(3)));
        // Moving a key replaces its old due time.
        timeline.set(key(3), Some(at(4)));
        timeline.set(key(1), None);
        assert_eq!(timeline.pop_due(at(4)), [key(2), key(3)]);
        assert_eq!(timeline.earliest(), None);
        assert!(timeline.pop_due(at(59)).is_empty());
    }

    #[test]
    fn touches_are_collected_once() {
        let signals = Signals::default();
        signals.touch(&key(1).0, &key(1).1);
        signals.touch(&key(1).0, &key(1).1);
        signals.touch(&key(2).0, &key(2).1);
        assert_eq!(signals.take().len(), 2);
        assert!(signals.take().is_empty());
    }
}
