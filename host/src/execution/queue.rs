//! The in-memory view of the durable queue: which pending runs wait, which
//! execute, and which may start next.
//!
//! Pending runs live in the store; this holds their ids in queue (id, hence
//! creation) order so the dispatcher need not scan the store. Its size is
//! bounded: event intake and run-now reserve room first and are refused
//! (429) when the queue is full.
//!
//! Apps share the workers fairly: when runs of several apps wait, each free
//! worker goes to the app with the fewest runs executing (then the one whose
//! run waited longest), so one app's backlog never queues another app's runs
//! behind it. Within an app, runs start in queue order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::domain::ids::{AppId, AutomationId, RunId};
use crate::runner::CancelToken;

/// A pending run as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Its app, for sharing the workers between apps.
    pub app: AppId,
    /// Its automation, for per-automation concurrency.
    pub automation: AutomationId,
    /// A retry's backoff: not started before this time.
    pub not_before: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Executing {
    app: AppId,
    automation: AutomationId,
    cancel: CancelToken,
    cancel_reason: Option<&'static str>,
}

#[derive(Debug, Default)]
struct State {
    waiting: BTreeMap<RunId, Waiting>,
    executing: HashMap<RunId, Executing>,
    /// Runs of each automation executing now.
    executing_per_automation: HashMap<AutomationId, usize>,
    /// Runs of each app executing now.
    executing_per_app: HashMap<AppId, usize>,
    /// Runs of each automation waiting now.
    waiting_per_automation: HashMap<AutomationId, usize>,
    /// Runs of each app waiting now.
    waiting_per_app: HashMap<AppId, usize>,
    /// Room promised to each app's callers about to enqueue.
    reserved_per_app: HashMap<AppId, usize>,
    /// Most runs of an automation executing at once; absent is unlimited.
    limits: HashMap<AutomationId, usize>,
    /// Room promised to callers about to enqueue.
    reserved: usize,
}

/// The queue's room, or the app's share of it, is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
    #[error("the run queue is full ({capacity} runs waiting); retry later")]
    Total {
        /// Most runs that may wait.
        capacity: usize,
    },
    #[error("app `{app}` has {capacity} runs waiting, its most; retry later")]
    App {
        app: AppId,
        /// Most runs of one app that may wait.
        capacity: usize,
    },
}

/// What cancelling found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelFound {
    /// The run was waiting; it is out of the queue now.
    Waiting,
    /// The run was executing; its cancel token is fired.
    Executing,
    /// The queue does not hold the run.
    Absent,
}

/// Bounded queue state shared by intake, the scheduler, the dispatcher and
/// workers.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    changed: Notify,
    capacity: usize,
    app_capacity: usize,
    workers: usize,
}

/// Room in the queue for `slots` runs, held until dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    queue: &'a Queue,
    app: AppId,
    slots: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.reserved -= self.slots;
        for _ in 0..self.slots {
            decrement(&mut state.reserved_per_app, &self.app);
        }
    }
}

impl Queue {
    /// A queue of at most `capacity` waiting runs, at most `app_capacity`
    /// of one app, feeding `workers` workers.
    pub fn new(capacity: usize, app_capacity: usize, workers: usize) -> Self {
        Queue {
            state: Mutex::default(),
            changed: Notify::new(),
            capacity,
            app_capacity: app_capacity.min(capacity),
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps behind (every
        // change is a single insert or remove), so poisoning is not fatal.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves room for `slots` runs of `app`, or says the queue (or the
    /// app's share of it) is full.
    pub fn reserve(&self, app: &AppId, slots: usize) -> Result<Reservation<'_>, QueueFull> {
        let mut state = self.lock();
        self.room(&state, app, slots)?;
        state.reserved += slots;
        *state.reserved_per_app.entry(app.clone()).or_default() += slots;
        Ok(Reservation {
            queue: self,
            app: app.clone(),
            slots,
        })
    }

    /// Whether `slots` more runs of `app` fit (for ticks, which are recorded
    /// rather than refused when they do not).
    pub fn has_room(&self, app: &AppId, slots: usize) -> bool {
        self.room(&self.lock(), app, slots).is_ok()
    }

    fn room(&self, state: &State, app: &AppId, slots: usize) -> Result<(), QueueFull> {
        if state.waiting.len() + state.reserved + slots > self.capacity {
            return Err(QueueFull::Total {
                capacity: self.capacity,
            });
        }
        let of_app = state.waiting_per_app.get(app).copied().unwrap_or(0)
            + state.reserved_per_app.get(app).copied().unwrap_or(0);
        if of_app + slots > self.app_capacity {
            return Err(QueueFull::App {
                app: app.clone(),
                capacity: self.app_capacity,
            });
        }
        Ok(())
    }

    /// Adds pending runs and wakes the dispatcher.
    pub fn enqueue(&self, runs: impl IntoIterator<Item = (RunId, Waiting)>) {
        let mut state = self.lock();
        for (id, waiting) in runs {
            *state
                .waiting_per_automation
                .entry(waiting.automation.clone())
                .or_default() += 1;
            *state
                .waiting_per_app
                .entry(waiting.app.clone())
                .or_default() += 1;
            if let Some(replaced) = state.waiting.insert(id, waiting) {
                decrement(&mut state.waiting_per_automation, &replaced.automation);
                decrement(&mut state.waiting_per_app, &replaced.app);
            }
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Sets how many runs of `automation` may execute at once.
    pub fn set_limit(&self, automation: &AutomationId, limit: Option<usize>) {
        let mut state = self.lock();
        match limit {
            Some(limit) => state.limits.insert(automation.clone(), limit),
            None => state.limits.remove(automation),
        };
        drop(state);
        self.changed.notify_one();
    }

    /// Runs of `automation` waiting or executing.
    pub fn active_runs(&self, automation: &AutomationId) -> usize {
        let state = self.lock();
        state
            .waiting_per_automation
            .get(automation)
            .copied()
            .unwrap_or(0)
            + state
                .executing_per_automation
                .get(automation)
                .copied()
                .unwrap_or(0)
    }

    /// The waiting runs of `automation`.
    pub fn waiting_of(&self, automation: &AutomationId) -> Vec<RunId> {
        let state = self.lock();
        state
            .waiting
            .iter()
            .filter(|(_, waiting)| &waiting.automation == automation)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Drops waiting runs (ones the store no longer has pending).
    pub fn forget(&self, ids: &[RunId]) {
        let mut state = self.lock();
        for id in ids {
            if let Some(waiting) = state.waiting.remove(id) {
                decrement(&mut state.waiting_per_automation, &waiting.automation);
                decrement(&mut state.waiting_per_app, &waiting.app);
            }
        }
    }

    /// Takes every run that may start at `now` — workers free, its
    /// automation under its limit, its backoff over — marking them executing.
    /// Free workers go to apps fewest-executing first (see the module docs).
    /// Also returns the earliest backoff still to wait for.
    pub fn take_startable(
        &self,
        now: DateTime<Utc>,
    ) -> (Vec<(RunId, CancelToken)>, Option<DateTime<Utc>>) {
        let mut state = self.lock();
        let mut next_wake: Option<DateTime<Utc>> = None;
        let free = self.workers.saturating_sub(state.executing.len());
        // Each app's runs that may start, in queue order; apps in the order
        // of their oldest such run.
        let mut apps: Vec<(AppId, VecDeque<(RunId, AutomationId)>)> = Vec::new();
        if free > 0 {
            for (id, waiting) in &state.waiting {
                if let Some(not_before) = waiting.not_before
                    && not_before > now
                {
                    next_wake = Some(next_wake.map_or(not_before, |wake| wake.min(not_before)));
                    continue;
                }
                let candidate = (id.clone(), waiting.automation.clone());
                match apps.iter_mut().find(|(app, _)| *app == waiting.app) {
                    Some((_, runs)) => runs.push_back(candidate),
                    None => apps.push((waiting.app.clone(), VecDeque::from([candidate]))),
                }
            }
        }
        let mut planned_per_app: HashMap<AppId, usize> = HashMap::new();
        let mut planned_per_automation: HashMap<AutomationId, usize> = HashMap::new();
        let mut startable = Vec::new();
        while startable.len() < free {
            let busy = |app: &AppId| {
                state.executing_per_app.get(app).copied().unwrap_or(0)
                    + planned_per_app.get(app).copied().unwrap_or(0)
            };
            // Fewest executing first; `min_by_key` keeps the first (oldest) of equals.
            let Some((app, runs)) = apps
                .iter_mut()
                .filter(|(_, runs)| !runs.is_empty())
                .min_by_key(|(app, _)| busy(app))
            else {
                break;
            };
            let Some((id, automation)) = runs.pop_front() else {
                break;
            };
            let executing = state
                .executing_per_automation
                .get(&automation)
                .copied()
                .unwrap_or(0)
                + planned_per_automation
                    .get(&automation)
                    .copied()
                    .unwrap_or(0);
            let limit = state.limits.get(&automation).copied();
            if limit.is_some_and(|limit| executing >= limit) {
                continue;
            }
            *planned_per_app.entry(app.clone()).or_default() += 1;
            *planned_per_automation
                .entry(automation.clone())
                .or_default() += 1;
            startable.push((id, app.clone(), automation));
        }
        let mut started = Vec::new();
        for (id, app, automation) in startable {
            state.waiting.remove(&id);
            decrement(&mut state.waiting_per_automation, &automation);
            decrement(&mut state.waiting_per_app, &app);
            *state
                .executing_per_automation
                .entry(automation.clone())
                .or_default() += 1;
            *state.executing_per_app.entry(app.clone()).or_default() += 1;
            let cancel = CancelToken::new();
            state.executing.insert(
                id.clone(),
                Executing {
                    app,
                    automation,
                    cancel: cancel.clone(),
                    cancel_reason: None,
                },
            );
            started.push((id, cancel));
        }
        (started, next_wake)
    }

    /// Marks an executing run ended and wakes the dispatcher.
    pub fn finished(&self, id: &RunId) {
        let mut state = self.lock();
        if let Some(executing) = state.executing.remove(id) {
            decrement(&mut state.executing_per_automation, &executing.automation);
            decrement(&mut state.executing_per_app, &executing.app);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Cancels a run the queue holds: a waiting one leaves the queue, an
    /// executing one has its token fired with `reason` kept for the worker.
    pub fn cancel(&self, id: &RunId, reason: &'static str) -> CancelFound {
        let mut state = self.lock();
        if let Some(waiting) = state.waiting.remove(id) {
            decrement(&mut state.waiting_per_automation, &waiting.automation);
            decrement(&mut state.waiting_per_app, &waiting.app);
            return CancelFound::Waiting;
        }
        match state.executing.get_mut(id) {
            Some(executing) => {
                executing.cancel_reason.get_or_insert(reason);
                executing.cancel.cancel();
                CancelFound::Executing
            }
            None => CancelFound::Absent,
        }
    }

    /// Fires every executing run's token with `reason`; how many.
    pub fn cancel_executing(&self, reason: &'static str) -> usize {
        let mut state = self.lock();
        for executing in state.executing.values_mut() {
            executing.cancel_reason.get_or_insert(reason);
            executing.cancel.cancel();
        }
        state.executing.len()
    }

    /// Cancels every run of `automation` the queue holds: waiting ones leave
    /// it, executing ones have their token fired with `reason`. How many
    /// were executing.
    pub fn cancel_automation(&self, automation: &AutomationId, reason: &'static str) -> usize {
        let mut state = self.lock();
        let waiting: Vec<RunId> = state
            .waiting
            .iter()
            .filter(|(_, waiting)| &waiting.automation == automation)
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            if let Some(waiting) = state.waiting.remove(&id) {
                decrement(&mut state.waiting_per_automation, automation);
                decrement(&mut state.waiting_per_app, &waiting.app);
            }
        }
        let mut executing = 0;
        for run in state
            .executing
            .values_mut()
            .filter(|run| &run.automation == automation)
        {
            run.cancel_reason.get_or_insert(reason);
            run.cancel.cancel();
            executing += 1;
        }
        executing
    }

    /// Why an executing run was cancelled, if it was.
    pub fn cancel_reason(&self, id: &RunId) -> Option<&'static str> {
        self.lock()
            .executing
            .get(id)
            .and_then(|executing| executing.cancel_reason)
    }

    /// How many runs execute now.
    pub fn executing(&self) -> usize {
        self.lock().executing.len()
    }

    /// How many runs wait now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Completes when something changed that may let a run start.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn run(n: u128) -> RunId {
        RunId::from_value(n)
    }

    fn automation(n: u128) -> AutomationId {
        AutomationId::from_value(n)
    }

    fn waiting(n: u128) -> Waiting {
        in_app("default", n)
    }

    fn in_app(app: &str, n: u128) -> Waiting {
        Waiting {
            app: app.parse().unwrap(),
            automation: automation(n),
            not_before: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-02-28T09:00:00Z".parse().unwrap()
    }

    fn ids(started: &[(RunId, CancelToken)]) -> Vec<RunId> {
        started.iter().map(|(id, _)| id.clone()).collect()
    }

    #[test]
    fn starts_in_queue_order_up_to_the_worker_count() {
        let queue = Queue::new(10, 10, 2);
        queue.enqueue([
            (run(3), waiting(1)),
            (run(1), waiting(1)),
            (run(2), waiting(2)),
        ]);
        let (started, wake) = queue.take_startable(now());
        assert_eq!(ids(&started), [run(1), run(2)]);
        assert_eq!(wake, None);
        assert_eq!(queue.take_startable(now()).0.len(), 0);
        queue.finished(&run(1));
        assert_eq!(ids(&queue.take_startable(now()).0), [run(3)]);
        assert_eq!((queue.executing(), queue.waiting()), (2, 0));
    }

    #[test]
    fn a_backlog_in_one_app_does_not_hold_another_apps_runs_back() {
        let queue = Queue::new(20, 20, 4);
        // App a queued ten runs before app b's one.
        queue.enqueue((1..=10).map(|n| (run(n), in_app("a", n))));
        queue.enqueue([(run(11), in_app("b", 11))]);
        let (started, _) = queue.take_startable(now());
        assert_eq!(ids(&started), [run(1), run(11), run(2), run(3)]);
        // A worker freed by a goes to the app with the fewest runs executing.
        queue.enqueue([(run(12), in_app("b", 12)), (run(13), in_app("c", 13))]);
        queue.finished(&run(1));
        assert_eq!(ids(&queue.take_startable(now()).0), [run(13)]);
        // Equal shares: the run that waited longest.
        queue.finished(&run(2));
        assert_eq!(ids(&queue.take_startable(now()).0), [run(4)]);
        queue.finished(&run(11));
        assert_eq!(ids(&queue.take_startable(now()).0), [run(12)]);
    }

    #[test]
    fn per_automation_limits_let_others_pass() {
        let queue = Queue::new(10, 10, 4);
        queue.set_limit(&automation(1), Some(1));
        queue.enqueue([
            (run(1), waiting(1)),
            (run(2), waiting(1)),
            (run(3), waiting(2)),
        ]);
        assert_eq!(ids(&queue.take_startable(now()).0), [run(1), run(3)]);
        assert_eq!(queue.active_runs(&automation(1)), 2);
        queue.finished(&run(1));
        assert_eq!(ids(&queue.take_startable(now()).0), [run(2)]);
        queue.set_limit(&automation(1), None);
        queue.enqueue([(run(4), waiting(1)), (run(5), waiting(1))]);
        assert_eq!(queue.take_startable(now()).0.len(), 2);
    }

    #[test]
    fn backoff_holds_a_retry_and_reports_when_to_wake() {
        let queue = Queue::new(10, 10, 2);
        let later = now() + TimeDelta::seconds(3);
        queue.enqueue([(
            run(1),
            Waiting {
                not_before: Some(later),
                ..waiting(1)
            },
        )]);
        let (started, wake) = queue.take_startable(now());
        assert!(started.is_empty());
        assert_eq!(wake, Some(later));
        assert_eq!(ids(&queue.take_startable(later).0), [run(1)]);
    }

    #[test]
    fn reservations_bound_the_queue() {
        let queue = Queue::new(3, 3, 1);
        let app: AppId = "default".parse().unwrap();
        let held = queue.reserve(&app, 2).unwrap();
        assert_eq!(
            queue.reserve(&app, 2).unwrap_err(),
            QueueFull::Total { capacity: 3 }
        );
        assert!(queue.has_room(&app, 1));
        queue.enqueue([(run(1), waiting(1)), (run(2), waiting(1))]);
        drop(held);
        assert!(queue.reserve(&app, 1).is_ok());
        assert!(queue.reserve(&app, 2).is_err());
    }

    #[test]
    fn one_app_cannot_take_the_whole_queue() {
        let queue = Queue::new(10, 3, 1);
        let (a, b): (AppId, AppId) = ("a".parse().unwrap(), "b".parse().unwrap());
        queue.enqueue((1..=2).map(|n| (run(n), in_app("a", n))));
        let held = queue.reserve(&a, 1).unwrap();
        assert_eq!(
            queue.reserve(&a, 1).unwrap_err(),
            QueueFull::App {
                app: a.clone(),
                capacity: 3
            }
        );
        assert!(!queue.has_room(&a, 1));
        assert!(
            queue.reserve(&b, 3).is_ok(),
            "another app has its own share"
        );
        drop(held);
        // A run of a that starts makes room for another.
        queue.take_startable(now());
        assert!(queue.has_room(&a, 2));
        assert!(!queue.has_room(&a, 3));
    }

    #[test]
    fn cancelling_waiting_and_executing_runs() {
        let queue = Queue::new(10, 10, 1);
        queue.enqueue([(run(1), waiting(1)), (run(2), waiting(1))]);
        let (started, _) = queue.take_startable(now());
        assert_eq!(queue.cancel(&run(2), "stop"), CancelFound::Waiting);
        assert_eq!(queue.cancel(&run(1), "stop"), CancelFound::Executing);
        assert!(started[0].1.is_cancelled());
        assert_eq!(queue.cancel_reason(&run(1)), Some("stop"));
        assert_eq!(queue.cancel(&run(9), "stop"), CancelFound::Absent);
        queue.finished(&run(1));
        assert_eq!(queue.active_runs(&automation(1)), 0);
    }

    #[test]
    fn cancelling_an_automation_reaches_its_waiting_and_executing_runs() {
        let queue = Queue::new(10, 10, 2);
        queue.enqueue([
            (run(1), waiting(1)),
            (run(2), waiting(2)),
            (run(3), waiting(1)),
        ]);
        let (started, _) = queue.take_startable(now());
        assert_eq!(ids(&started), [run(1), run(2)]);
        assert_eq!(queue.cancel_automation(&automation(1), "gone"), 1);
        assert!(started[0].1.is_cancelled());
        assert!(!started[1].1.is_cancelled());
        assert_eq!(queue.cancel_reason(&run(1)), Some("gone"));
        assert_eq!(queue.waiting(), 0, "run 3 left the queue");
        assert_eq!(queue.active_runs(&automation(1)), 1);
    }

    #[test]
    fn forgetting_and_listing_waiting_runs() {
        let queue = Queue::new(10, 10, 1);
        queue.enqueue([
            (run(1), waiting(1)),
            (run(2), waiting(2)),
            (run(3), waiting(1)),
        ]);
        assert_eq!(queue.waiting_of(&automation(1)), [run(1), run(3)]);
        queue.forget(&[run(1), run(3)]);
        assert_eq!(queue.active_runs(&automation(1)), 0);
        assert_eq!(queue.waiting(), 1);
        assert_eq!(queue.cancel_executing("bye"), 0);
    }
}
