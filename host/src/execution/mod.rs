//! The execution plane: cron ticks and platform events become runs, a
//! bounded worker pool executes them through the runner, and every ending is
//! stored on the run.
//!
//! - [`Execution::receive_event`]: event intake (fan-out, idempotency keys,
//!   back-pressure); runs are stored before the answer is sent.
//! - `scheduler`: sleeps until the earliest due time, woken by automation
//!   changes; catch-up and overlap policies decide what ticks become.
//! - `queue` + `dispatcher`: pending runs (durable in the store) start in
//!   queue order as workers free up, within each automation's concurrency.
//! - `worker`: executes one run and records its result, accounting and retry.
//! - Recovery on start and a clean shutdown with a grace period.

mod catalog;
mod live;
mod queue;
mod scheduler;
mod secrets;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::domain::automation::Automation;
use crate::domain::dispatch::{self, REASON_CANCELLED_BY_OPERATOR};
use crate::domain::event::{EventError, EventReceipt, IncomingEvent, RunNowRequest};
use crate::domain::ids::{AppId, AutomationId, IdSequence, RunId};
use crate::domain::run::{Run, RunStatus};
use crate::metrics::{EventResult, Metrics, RunOrigin, Snapshot};
use crate::runner::{BoundsChecks, Runner};
use crate::service::secret_key::SecretKey;
use crate::service::{AutomationChange, current_actor};
use crate::store::{EventRecord, Store, StoreError};
pub use live::OutputEvent;
pub use queue::QueueFull;
use queue::{CancelFound, Queue, Waiting};

/// How the execution plane is sized.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Runs executing at once.
    pub workers: usize,
    /// Most runs waiting before event intake and run-now answer 429.
    pub queue_capacity: usize,
    /// Most runs of one app waiting (at most `queue_capacity`), so one app
    /// cannot fill the queue for all; past it that app's intake gets 429.
    pub app_queue_capacity: usize,
    /// How long shutdown lets running runs finish before cancelling them.
    pub shutdown_grace: Duration,
    /// Whether workflows' HTTP requests may reach loopback, private and
    /// link-local addresses (`serve --allow-private-egress`).
    pub allow_private_egress: bool,
    /// How guests' memory accesses are bounded (`serve --bounds-checks`).
    pub bounds_checks: BoundsChecks,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 10_000,
            app_queue_capacity: 10_000,
            shutdown_grace: Duration::from_secs(10),
            allow_private_egress: false,
            bounds_checks: BoundsChecks::GuardPages,
        }
    }
}

/// Why an execution request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// The event is malformed or unknown (400).
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    /// The run-now input is unusable (400).
    #[error("{0}")]
    InvalidInput(String),
    /// The queue is full (429).
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
    /// No such run or automation in the app (404).
    #[error("{0}")]
    NotFound(String),
    /// The run has already ended (409).
    #[error("{0}")]
    Conflict(String),
    /// The automation cannot run (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The host is shutting down and takes no new work (503).
    #[error("the host is shutting down and accepts no new runs")]
    ShuttingDown,
    /// The store failed (500, or what the store error says).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Intake's answer to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAnswer {
    /// The receipt: the runs created.
    pub receipt: EventReceipt,
    /// Whether this is the stored answer to an earlier event with the same
    /// idempotency key.
    pub replayed: bool,
}

/// What intake looks up for an event.
#[derive(Debug, Clone)]
struct Lookup {
    app: AppId,
    trigger: String,
    idempotency_key: Option<String>,
    /// [`IncomingEvent::request_sha256`], stored on the receipt.
    request_sha256: String,
}

/// What intake's reads found.
enum Listeners {
    /// The event repeats a live idempotency key: the earlier answer (or the
    /// 422 for another request under the key).
    Replay(Result<EventAnswer, ExecutionError>),
    /// The running automations listening to it.
    Found(Vec<Automation>),
}

/// What recovery found on start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Runs left `running` by a crash, now failed.
    pub interrupted: usize,
    /// Of those, how many got a retry.
    pub retried: usize,
    /// Pending runs queued again.
    pub resumed: usize,
}

/// The execution plane. Create with [`Execution::new`], then
/// [`start`](Execution::start) it; [`shutdown`](Execution::shutdown) ends it.
pub struct Execution {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set once [`start`](Execution::start) has started the dispatcher and
    /// the scheduler.
    started: AtomicBool,
}

/// State shared by intake, scheduler, dispatcher and workers.
struct Shared {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    config: ExecutionConfig,
    queue: Queue,
    scheduler: scheduler::Signals,
    ids: Mutex<IdSequence>,
    accepting: AtomicBool,
    stop: watch::Sender<bool>,
    /// Who waits for which run's worker to be done with it.
    endings: Mutex<HashMap<RunId, Vec<oneshot::Sender<()>>>>,
    /// The output of the runs executing now, for followers.
    live: live::LiveRuns,
    /// Turns true when the server stops: output followers end their streams.
    streams_closed: watch::Sender<bool>,
    /// Counts runs, events and ticks.
    metrics: Arc<Metrics>,
    /// Opens the secrets runs are granted ([`Execution::with_secret_key`]).
    secret_key: OnceLock<SecretKey>,
    /// The automations and configs workers run with.
    catalog: catalog::Catalog,
}

impl Shared {
    fn mint_run_id(&self) -> RunId {
        let now = Utc::now().timestamp_millis().max(0).unsigned_abs();
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        RunId::from_value(ids.next(now, rand::random()))
    }

    /// A run reached an end state: counted, and one log line says how it
    /// ended.
    fn run_ended(&self, run: &Run) {
        self.metrics.run_ended(run);
        let millis = |micros: Option<u64>| micros.map(|us| us / 1000);
        tracing::info!(
            run = %run.id,
            app = %run.app_id,
            automation = %run.automation_id,
            trigger = %run.trigger,
            attempt = run.attempt,
            status = %run.status,
            failure_kind = run.failure_kind.map(|kind| kind.as_str()),
            reason = run.reason.as_deref(),
            duration_ms = millis(run.accounting.wall_time_us),
            queue_wait_ms = millis(run.accounting.pending_us),
            fuel = run.accounting.fuel_consumed,
            "run {}",
            run.status
        );
    }

    fn check_accepting(&self) -> Result<(), ExecutionError> {
        if self.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ExecutionError::ShuttingDown)
        }
    }

    /// Fires when a worker is done with run `id`.
    fn watch_end(&self, id: &RunId) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut endings = self.endings.lock().unwrap_or_else(|p| p.into_inner());
        let watchers = endings.entry(id.clone()).or_default();
        watchers.retain(|watcher| !watcher.is_closed());
        watchers.push(sender);
        receiver
    }

    /// A worker is done with run `id` (it ended, or was no longer pending).
    fn ended(&self, id: &RunId) {
        let watchers = self
            .endings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        for watcher in watchers.into_iter().flatten() {
            // A watcher that gave up has dropped its receiver.
            let _ = watcher.send(());
        }
    }

    /// A pending run's place in the queue.
    fn waiting(run: &Run) -> (RunId, Waiting) {
        (
            run.id.clone(),
            Waiting {
                app: run.app_id.clone(),
                automation: run.automation_id.clone(),
                not_before: run.not_before,
            },
        )
    }

    /// Intake's reads: the answer to a live idempotency key's repeat, or
    /// the running automations of `app` listening to the event.
    fn listeners(&self, lookup: &Lookup, now: DateTime<Utc>) -> Result<Listeners, ExecutionError> {
        let app = &lookup.app;
        if let Some(key) = &lookup.idempotency_key
            && let Some(receipt) = self.store.event_receipt(app, key)?
            && receipt.received_at >= now - dispatch::IDEMPOTENCY_WINDOW
        {
            let answer = replay(receipt, key, &lookup.request_sha256);
            return Ok(Listeners::Replay(self.replayed(app, answer)));
        }
        let automations = self
            .store
            .running_trigger_automations(app, &lookup.trigger)?;
        Ok(Listeners::Found(automations))
    }

    /// Intake's write: a run per automation of `automations` (those still
    /// running when the writer stores them), with the receipt, through the
    /// store writer; then queues them.
    async fn store_event(
        &self,
        lookup: Lookup,
        event: IncomingEvent,
        automations: Vec<Automation>,
        now: DateTime<Utc>,
        sender: Option<String>,
    ) -> Result<EventAnswer, ExecutionError> {
        let app = lookup.app;
        let replay_since = now - dispatch::IDEMPOTENCY_WINDOW;
        let _room = match self.queue.reserve(&app, automations.len()) {
            Ok(room) => room,
            Err(full) => {
                self.metrics.event(&app, EventResult::Refused);
                return Err(full.into());
            }
        };
        let input = event.input();
        let runs: Vec<Run> = automations
            .iter()
            .map(|automation| {
                self.set_limit_of(automation);
                let mut run = Run::pending(self.mint_run_id(), automation, input.clone(), now);
                run.requested_by = sender.clone();
                run
            })
            .collect();
        let receipt = EventReceipt {
            app_id: app,
            trigger: event.trigger,
            idempotency_key: event.idempotency_key,
            run_ids: runs.iter().map(|run| run.id.clone()).collect(),
            received_at: now,
            requested_by: sender,
            request_sha256: Some(lookup.request_sha256),
        };
        let (app, key) = (
            receipt.app_id.clone(),
            receipt.idempotency_key.clone().unwrap_or_default(),
        );
        let request_sha256 = receipt.request_sha256.clone().unwrap_or_default();
        let record = self
            .store
            .writer()
            .insert_event(receipt, runs.clone(), replay_since)
            .await?;
        Ok(match record {
            // Another request with the key was stored first.
            EventRecord::Replayed(earlier) => {
                return self.replayed(&app, replay(earlier, &key, &request_sha256));
            }
            EventRecord::Stored(receipt) => {
                self.metrics.event(&receipt.app_id, EventResult::Accepted);
                let stored = runs.iter().filter(|run| receipt.run_ids.contains(&run.id));
                for run in stored.clone() {
                    self.metrics.run_created(run, RunOrigin::Event);
                }
                self.queue.enqueue(stored.map(Shared::waiting));
                EventAnswer {
                    receipt,
                    replayed: false,
                }
            }
        })
    }

    /// Counts an event answered from an earlier receipt: replayed, or
    /// refused (422) for reusing the key on another request.
    fn replayed(
        &self,
        app: &AppId,
        answer: Result<EventAnswer, ExecutionError>,
    ) -> Result<EventAnswer, ExecutionError> {
        let result = match answer {
            Ok(_) => EventResult::Replayed,
            Err(_) => EventResult::KeyReused,
        };
        self.metrics.event(app, result);
        answer
    }

    fn set_limit_of(&self, automation: &Automation) {
        self.queue
            .set_limit(&automation.id, dispatch::concurrency_limit(automation));
    }
}

/// The answer to a repeat of idempotency key `key`: the first answer when
/// the request is the same, a 422 naming the key when it is not (Stripe's
/// rule: a key stands for one request, and a changed one is a client bug,
/// not a repeat to replay silently).
fn replay(
    receipt: EventReceipt,
    key: &str,
    request_sha256: &str,
) -> Result<EventAnswer, ExecutionError> {
    if receipt.answered_another_request(request_sha256) {
        return Err(ExecutionError::Unprocessable(format!(
            "idempotency_key `{key}` was used at {} for a different request (another trigger \
             or payload); a key stands for one request for 24 hours: send the same request \
             to repeat it, or a new key for a new event",
            receipt
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(EventAnswer {
        receipt,
        replayed: true,
    })
}

/// Runs store calls (which may wait for the disk) off the async workers.
async fn blocking<T, F>(shared: &Arc<Shared>, call: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> T + Send + 'static,
{
    let shared = shared.clone();
    joined(tokio::task::spawn_blocking(move || call(&shared)).await).await
}

/// A finished task's value; its panic goes on in the caller.
async fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down and drops this task with it,
        // so there is nothing to return to.
        Err(_) => std::future::pending().await,
    }
}

/// Runs `work` to its end on a task of its own, even if the caller stops
/// waiting: a request whose client went away must not leave runs stored
/// but never queued (or ended but never counted).
async fn to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    joined(tokio::spawn(work).await).await
}

impl Execution {
    /// An execution plane over `store`, executing through `runner`,
    /// counting into `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        config: ExecutionConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        Execution {
            shared: Arc::new(Shared {
                store,
                runner,
                queue: Queue::new(
                    config.queue_capacity,
                    config.app_queue_capacity,
                    config.workers,
                ),
                config,
                scheduler: scheduler::Signals::default(),
                ids: Mutex::default(),
                accepting: AtomicBool::new(true),
                stop,
                endings: Mutex::default(),
                live: live::LiveRuns::default(),
                streams_closed: watch::Sender::new(false),
                metrics,
                secret_key: OnceLock::new(),
                catalog: catalog::Catalog::default(),
            }),
            tasks: Mutex::default(),
            started: AtomicBool::new(false),
        }
    }

    /// This execution plane with `key` opening the secrets runs are granted
    /// (without one, a granted secret reads as none, the run's host calls
    /// saying why).
    pub fn with_secret_key(self, key: SecretKey) -> Self {
        // Set once, before anything runs.
        let _ = self.shared.secret_key.set(key);
        self
    }

    /// Recovers what a previous process left (running runs fail or retry,
    /// pending runs are queued again), then starts the dispatcher and the
    /// scheduler, which catches up on missed ticks.
    pub async fn start(&self) -> Result<Recovery, StoreError> {
        let recovery = blocking(&self.shared, worker::recover).await?;
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(dispatch_loop(self.shared.clone())));
        tasks.push(tokio::spawn(scheduler::run(self.shared.clone())));
        self.started.store(true, Ordering::Release);
        Ok(recovery)
    }

    /// The queue's state for `/metrics`: waiting runs, busy and all workers
    /// (the data directory size is the server's to add).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            queue_depth: self.shared.queue.waiting() as u64,
            workers_busy: self.shared.queue.executing() as u64,
            workers: self.shared.config.workers as u64,
            data_dir_bytes: 0,
        }
    }

    /// Whether the plane takes and executes work: started, not shutting
    /// down, and none of its tasks (dispatcher, scheduler, change follower)
    /// has ended.
    pub fn is_running(&self) -> bool {
        self.started.load(Ordering::Acquire)
            && self.shared.accepting.load(Ordering::Acquire)
            && self
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .all(|task| !task.is_finished())
    }

    /// Tells the scheduler and the queue that an automation was created,
    /// changed, activated, paused, reset or deleted.
    pub fn automation_changed(&self, app: &AppId, automation: &AutomationId) {
        self.shared.scheduler.touch(app, automation);
    }

    /// Follows the control plane's automation changes until shutdown (the
    /// scheduler, deleted automations' executing runs, and the catalog of
    /// automations and configs workers run with). A receiver that fell
    /// behind re-examines every automation.
    pub fn follow(&self, mut changes: broadcast::Receiver<AutomationChange>) {
        self.shared.catalog.follow(changes.resubscribe());
        let shared = self.shared.clone();
        let mut stop = shared.stop.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    _ = stop.wait_for(|stop| *stop) => return,
                };
                match change {
                    Ok(AutomationChange::Saved(automation)) => {
                        shared.scheduler.touch(&automation.app_id, &automation.id);
                    }
                    Ok(AutomationChange::Deleted { app_id, id }) => {
                        // The spec: runs are cancelled when their automation
                        // is deleted — the executing ones too.
                        let interrupted = shared
                            .queue
                            .cancel_automation(&id, dispatch::REASON_AUTOMATION_DELETED);
                        if interrupted > 0 {
                            tracing::info!(automation = %id, "interrupting {interrupted} run(s) of a deleted automation");
                        }
                        shared.scheduler.touch(&app_id, &id);
                    }
                    Ok(AutomationChange::ConfigDeleted { .. }) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!("missed {missed} automation changes; re-examining all");
                        match blocking(&shared, |s| s.store.all_automations()).await {
                            Ok(all) => {
                                for automation in all {
                                    shared.scheduler.touch(&automation.app_id, &automation.id);
                                }
                            }
                            Err(error) => tracing::error!("cannot list automations: {error}"),
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Event intake: a run for every running trigger automation of `app`
    /// listening to the event, stored (with the receipt, for an idempotency
    /// key) before this returns.
    pub async fn receive_event(
        &self,
        app: AppId,
        event: IncomingEvent,
    ) -> Result<EventAnswer, ExecutionError> {
        event.validate()?;
        self.shared.check_accepting()?;
        let sender = current_actor();
        let now = Utc::now();
        let lookup = Lookup {
            app,
            trigger: event.trigger.clone(),
            idempotency_key: event.idempotency_key.clone(),
            request_sha256: event.request_sha256(),
        };
        // Index reads, served from sled's page cache: on this thread.
        match self.shared.listeners(&lookup, now)? {
            Listeners::Replay(answer) => answer,
            Listeners::Found(automations) => {
                let shared = Arc::clone(&self.shared);
                to_completion(async move {
                    shared
                        .store_event(lookup, event, automations, now, sender)
                        .await
                })
                .await
            }
        }
    }

    /// Runs `automation` now on the given input (default: its own event with
    /// an empty payload, or a scheduled tick at now), whatever its status.
    pub async fn run_now(
        &self,
        automation: &Automation,
        request: RunNowRequest,
    ) -> Result<Run, ExecutionError> {
        self.shared.check_accepting()?;
        if automation.config_id.is_none() {
            return Err(ExecutionError::Unprocessable(format!(
                "automation {} has no config_id; set one (PATCH) before running it",
                automation.id
            )));
        }
        let now = Utc::now();
        let input = request
            .into_input(automation.event(), now)
            .map_err(ExecutionError::InvalidInput)?;
        let mut run = Run::pending(self.shared.mint_run_id(), automation, input, now);
        run.requested_by = current_actor();
        self.shared.set_limit_of(automation);
        self.enqueue_new(run, RunOrigin::RunNow).await
    }

    /// A new run of `run_id`'s automation on the same input, linked to it;
    /// a conflict when the automation was deleted.
    pub async fn rerun(&self, app: &AppId, run_id: &RunId) -> Result<Run, ExecutionError> {
        self.shared.check_accepting()?;
        let original = self.run_of(app, run_id).await?;
        let (automation_app, automation_id) =
            (original.app_id.clone(), original.automation_id.clone());
        let automation = blocking(&self.shared, move |s| {
            s.store.automation(&automation_app, &automation_id)
        })
        .await?
        .ok_or_else(|| {
            ExecutionError::Conflict(format!(
                "cannot rerun {run_id}: its automation {} was deleted \
                 (its runs are kept as history only)",
                original.automation_id
            ))
        })?;
        let mut run = Run::pending(
            self.shared.mint_run_id(),
            &automation,
            original.input.clone(),
            Utc::now(),
        );
        run.rerun_of = Some(original.id.clone());
        run.requested_by = current_actor();
        run.config_id = original.config_id.clone().or(run.config_id);
        if run.config_id.is_none() {
            return Err(ExecutionError::Unprocessable(format!(
                "automation {} has no config_id to run",
                automation.id
            )));
        }
        self.shared.set_limit_of(&automation);
        self.enqueue_new(run, RunOrigin::Rerun).await
    }

    async fn enqueue_new(&self, run: Run, origin: RunOrigin) -> Result<Run, ExecutionError> {
        let shared = Arc::clone(&self.shared);
        to_completion(async move {
            let reservation = shared.queue.reserve(&run.app_id, 1)?;
            shared.store.writer().insert_runs(vec![run.clone()]).await?;
            shared.metrics.run_created(&run, origin);
            shared.queue.enqueue([Shared::waiting(&run)]);
            drop(reservation);
            Ok(run)
        })
        .await
    }

    /// Cancels a pending or running run; a running one is interrupted and
    /// this waits (briefly) until it has stopped. Returns the run as stored.
    /// The run records who cancelled it (`cancelled_by`).
    pub async fn cancel(&self, app: &AppId, run_id: &RunId) -> Result<Run, ExecutionError> {
        let actor = current_actor();
        let run = self.stop(app, run_id).await?;
        match actor {
            Some(actor) if run.status == RunStatus::Cancelled => {
                let record = Box::new(move |run: &mut Run| {
                    run.cancelled_by = Some(actor.clone());
                    Ok(())
                });
                let writer = self.shared.store.writer();
                Ok(writer
                    .change_run(run_id.clone(), record, None, true)
                    .await?)
            }
            _ => Ok(run),
        }
    }

    async fn stop(&self, app: &AppId, run_id: &RunId) -> Result<Run, ExecutionError> {
        let run = self.run_of(app, run_id).await?;
        if run.status.is_terminal() {
            return Err(ExecutionError::Conflict(format!(
                "run {run_id} has already ended (status {})",
                run.status
            )));
        }
        match self
            .shared
            .queue
            .cancel(run_id, REASON_CANCELLED_BY_OPERATOR)
        {
            CancelFound::Executing => self.wait_until_ended(app, run_id).await,
            CancelFound::Waiting | CancelFound::Absent => {
                let cancel = Box::new(|run: &mut Run| {
                    run.transition(
                        RunStatus::Cancelled,
                        Utc::now(),
                        Some(REASON_CANCELLED_BY_OPERATOR.to_owned()),
                    )
                });
                let (shared, id) = (Arc::clone(&self.shared), run_id.clone());
                let cancelled = to_completion(async move {
                    let cancelled = shared.store.writer().change_run(id, cancel, None, true);
                    let cancelled = cancelled.await;
                    if let Ok(run) = &cancelled {
                        shared.run_ended(run);
                    }
                    cancelled
                })
                .await;
                match cancelled {
                    Ok(run) => Ok(run),
                    // It started or ended meanwhile: cancel what executes.
                    Err(StoreError::Transition(_)) => {
                        self.shared
                            .queue
                            .cancel(run_id, REASON_CANCELLED_BY_OPERATOR);
                        self.wait_until_ended(app, run_id).await
                    }
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    async fn wait_until_ended(&self, app: &AppId, run_id: &RunId) -> Result<Run, ExecutionError> {
        // A cancelled run stops within an epoch tick; storing its end takes
        // a disk write. Give up waiting (not cancelling) after a few seconds.
        let run = self.wait_ended(app, run_id, Duration::from_secs(5)).await?;
        // The answer says how the run ended: make that durable first.
        blocking(&self.shared, |s| s.store.flush()).await?;
        Ok(run)
    }

    /// Waits until run `run_id` of `app` has ended (woken by its worker, not
    /// polling), or `within` has passed; returns the run as stored then.
    pub async fn wait_ended(
        &self,
        app: &AppId,
        run_id: &RunId,
        within: Duration,
    ) -> Result<Run, ExecutionError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Watch before reading, so an ending in between still wakes us.
            let ended = self.shared.watch_end(run_id);
            let run = self.run_of(app, run_id).await?;
            if run.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            // Woken by the worker, or out of time: read again either way.
            let _ = tokio::time::timeout_at(deadline, ended).await;
        }
    }

    /// Run `run_id`'s output lines from `offset` (0-based) as they are
    /// printed, then [`OutputEvent::End`] with the run as stored once it has
    /// ended. The stream also ends, without `End`, when the server stops
    /// ([`close_streams`](Self::close_streams)); a follower reconnects with
    /// the next offset. Errs at once if the app has no such run.
    pub async fn follow_output(
        &self,
        app: &AppId,
        run_id: &RunId,
        offset: usize,
    ) -> Result<mpsc::Receiver<OutputEvent>, ExecutionError> {
        self.run_of(app, run_id).await?;
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(live::follow(
            self.shared.clone(),
            run_id.clone(),
            offset,
            sender,
            self.shared.streams_closed.subscribe(),
        ));
        Ok(receiver)
    }

    /// Run `run_id` and its output lines so far: the live lines while it
    /// executes, else its stored `result.output`.
    pub async fn output(
        &self,
        app: &AppId,
        run_id: &RunId,
    ) -> Result<(Run, Vec<String>), ExecutionError> {
        let live = self.shared.live.lines_of(run_id);
        let run = self.run_of(app, run_id).await?;
        let lines = match live {
            Some(lines) if !run.status.is_terminal() => lines.borrow().lines.clone(),
            _ => run.output().to_vec(),
        };
        Ok((run, lines))
    }

    /// Ends every output stream (followers reconnect to the next server):
    /// called when the server starts shutting down, so open streams do not
    /// hold up its graceful shutdown.
    pub fn close_streams(&self) {
        self.shared.streams_closed.send_replace(true);
    }

    async fn run_of(&self, app: &AppId, run_id: &RunId) -> Result<Run, ExecutionError> {
        let id = run_id.clone();
        blocking(&self.shared, move |s| s.store.run(&id))
            .await?
            .filter(|run| &run.app_id == app)
            .ok_or_else(|| {
                ExecutionError::NotFound(format!("run {run_id} does not exist in app {app}"))
            })
    }

    /// Stops taking work, lets executing runs finish within the grace
    /// period, cancels the rest (reason `host shut down`) and flushes the
    /// store. Pending runs stay pending for the next start.
    pub async fn shutdown(&self) {
        self.shared.accepting.store(false, Ordering::Release);
        self.shared.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            // The loops end when told to stop; a panic was already reported.
            let _ = task.await;
        }
        let grace = tokio::time::Instant::now() + self.shared.config.shutdown_grace;
        while self.shared.queue.executing() > 0 && tokio::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cancelled = self
            .shared
            .queue
            .cancel_executing(dispatch::REASON_HOST_SHUT_DOWN);
        if cancelled > 0 {
            tracing::warn!("cancelling {cancelled} run(s) still executing after the grace period");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.shared.queue.executing() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let waiting = self.shared.queue.waiting();
        if waiting > 0 {
            tracing::info!("{waiting} pending run(s) stay queued for the next start");
        }
        if let Err(error) = blocking(&self.shared, |s| s.store.flush()).await {
            tracing::error!("flushing the store on shutdown failed: {error}");
        }
    }
}

/// Starts queued runs as workers free up; sleeps until a run is queued or
/// ends, or a retry's backoff is over.
async fn dispatch_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        let (startable, wake_at) = shared.queue.take_startable(Utc::now());
        for (id, cancel) in startable {
            tokio::spawn(worker::execute(shared.clone(), id, cancel));
        }
        let backoff = wake_at.map(|at| {
            (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_millis(1))
        });
        tokio::select! {
            () = shared.queue.changed() => {}
            () = sleep_for(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Sleeps for `duration`, or forever when there is none.
async fn sleep_for(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}
