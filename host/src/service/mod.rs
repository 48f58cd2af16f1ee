//! The service layer: validation, lifecycle and consistency rules over the
//! store, for the HTTP API (and the execution plane) to call.
//!
//! Control-plane changes (configs and automations) are serialised by one async
//! lock so their read-check-write sequences (lookup-key uniqueness, "config in
//! use") cannot interleave; run writes do not take it. Store calls run on
//! blocking threads, so a flush to disk never stalls the async runtime.
//! Every automation change is broadcast ([`Service::subscribe`]) so a
//! scheduler can wake up.

mod access;
mod quarantine;
pub mod secret_key;
mod secrets;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::automation::{
    self, ActivationError, Automation, AutomationPatch, AutomationStatus, AutomationType,
    LifecycleAction, NewAutomation, ValidationError,
};
use crate::domain::config::{self, Config};
use crate::domain::digest::ComponentDigest;
use crate::domain::dispatch::{REASON_AUTOMATION_DELETED, REASON_AUTOMATION_PAUSED};
use crate::domain::events::{self, EventType};
use crate::domain::ids::{AppId, AutomationId, ConfigId, IdSequence, RunId};
use crate::domain::run::{Run, RunFilter, RunStatus};
use crate::domain::schedule::{DEFAULT_PREVIEW_COUNT, MAX_PREVIEW_COUNT, SchedulePreview};
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::store::{Cancellation, Store, StoreError};
pub use access::{
    AuthError, AuthMode, Authenticator, CreatedKey, ENV_ADMIN_KEY_ID, MIN_ADMIN_TOKEN_LEN,
    acting_as, app_missing, current_actor,
};
pub use quarantine::{DEFAULT_QUARANTINE_LIMIT, MAX_QUARANTINE_LIMIT, QuarantinePage};
pub use secrets::SecretWrite;

/// Default largest component upload: 20 MiB.
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 20 * 1024 * 1024;
/// Runs per page when `limit` is not given.
pub const DEFAULT_RUNS_LIMIT: usize = 50;
/// Largest `limit` for run pages.
pub const MAX_RUNS_LIMIT: usize = 100;
/// Default most uploads compiling at once. Compiling a component takes
/// every core for milliseconds to seconds and holds its code in memory.
pub const DEFAULT_MAX_CONCURRENT_COMPILES: usize = 2;
/// Default longest an upload waits for a compile slot before a 503.
pub const DEFAULT_UPLOAD_COMPILE_WAIT: Duration = Duration::from_secs(10);

/// Why a service call failed; each kind maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Malformed input (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown id (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Over a size limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Well-formed but fails validation (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The host failed (500).
    #[error("{0}")]
    Internal(String),
    /// The store takes no more writes until the host restarts (503
    /// `store_unavailable`); see [`StoreError::Unavailable`].
    #[error("{0}")]
    StoreUnavailable(String),
    /// Too busy right now; try again after `retry_after_secs` (503 with
    /// `Retry-After`).
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::LookupKeyTaken { .. } | StoreError::Transition(_) => {
                ServiceError::Conflict(message)
            }
            StoreError::AutomationNotFound(_) | StoreError::RunNotFound(_) => {
                ServiceError::NotFound(message)
            }
            // Logged once by the store when it failed; each request's own
            // log line carries the message.
            StoreError::Unavailable(_) => ServiceError::StoreUnavailable(message),
            StoreError::Locked(_) | StoreError::Corrupt(_) | StoreError::Backend(_) => {
                tracing::error!(%error, "store failure");
                ServiceError::Internal(message)
            }
        }
    }
}

impl From<ValidationError> for ServiceError {
    fn from(error: ValidationError) -> Self {
        ServiceError::InvalidRequest(error.to_string())
    }
}

impl From<ActivationError> for ServiceError {
    fn from(error: ActivationError) -> Self {
        ServiceError::Unprocessable(error.to_string())
    }
}

/// What changed about an automation, broadcast after it is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum AutomationChange {
    /// Created, updated, activated, paused or reset: its new state.
    Saved(Arc<Automation>),
    /// Deleted.
    Deleted { app_id: AppId, id: AutomationId },
    /// A config was deleted (configs change no other way), so the execution
    /// plane's catalog forgets it.
    ConfigDeleted { app_id: AppId, id: ConfigId },
}

/// Service limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Largest component upload in bytes; larger ones are refused (413).
    pub max_config_bytes: usize,
    /// Most uploads compiling at once (at least 1); the others wait.
    pub max_concurrent_compiles: usize,
    /// How long an upload waits for a compile slot before it is refused
    /// with 503 and `Retry-After` (zero: refused at once when all are busy).
    pub upload_compile_wait: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            max_config_bytes: DEFAULT_MAX_CONFIG_BYTES,
            max_concurrent_compiles: DEFAULT_MAX_CONCURRENT_COMPILES,
            upload_compile_wait: DEFAULT_UPLOAD_COMPILE_WAIT,
        }
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs of this automation (id or lookup key; the id of a deleted
    /// automation still lists its runs).
    pub automation: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this trigger.
    pub trigger: Option<String>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the last attempt of each retry chain.
    pub latest_attempt: bool,
    /// Page size (default 50, at most 100).
    pub limit: Option<usize>,
    /// Continue after this cursor (a page's `next_cursor`).
    pub cursor: Option<String>,
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// How a config upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub config: Config,
    /// False when the same bytes were already stored under the same name in
    /// this app: the existing config is returned and nothing is stored.
    pub created: bool,
}

/// The control plane's operations.
pub struct Service {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    settings: ServiceSettings,
    ids: Mutex<IdSequence>,
    control: tokio::sync::Mutex<()>,
    changes: broadcast::Sender<AutomationChange>,
    /// One permit per upload compiling.
    compiles: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
    /// Seals app secrets ([`Service::with_secret_key`]).
    secret_key: Option<secret_key::SecretKey>,
}

impl Service {
    /// A service over `store`, validating uploads with `runner`, counting
    /// into `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        settings: ServiceSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Service {
            store,
            runner,
            settings,
            metrics,
            ids: Mutex::new(IdSequence::default()),
            control: tokio::sync::Mutex::new(()),
            changes: broadcast::channel(1024).0,
            compiles: tokio::sync::Semaphore::new(settings.max_concurrent_compiles.max(1)),
            secret_key: None,
        }
    }

    /// The store, for the execution plane's run writes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The runner shared with the execution plane.
    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// The limits this service enforces.
    pub fn settings(&self) -> ServiceSettings {
        self.settings
    }

    /// Automation changes from now on. A receiver that lags gets
    /// `RecvError::Lagged` and should reload from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<AutomationChange> {
        self.changes.subscribe()
    }

    /// The current time (the one clock the control plane reads).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn next_id_value(&self) -> u128 {
        let now_ms = u64::try_from(self.now().timestamp_millis()).unwrap_or_default();
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ids.next(now_ms, rand::random())
    }

    /// A fresh run id, later than every id this service minted before.
    pub fn new_run_id(&self) -> RunId {
        RunId::from_value(self.next_id_value())
    }

    /// When a running scheduled automation next fires.
    pub fn next_run_at(&self, automation: &Automation) -> Option<DateTime<Utc>> {
        automation.next_run_at(self.now())
    }

    /// When a scheduled automation would next fire if it were running.
    pub fn next_run_at_if_running(&self, automation: &Automation) -> Option<DateTime<Utc>> {
        automation.next_run_at_if_running(self.now())
    }

    /// The next `count` (1–100, default 5) due times of `expression` in
    /// `timezone` strictly after `after` (default now): 400 for a bad
    /// expression or zone with the messages create gives, or a bad count.
    pub fn preview_schedule(
        &self,
        expression: &str,
        timezone: Option<&str>,
        after: Option<DateTime<Utc>>,
        count: Option<usize>,
    ) -> Result<SchedulePreview, ServiceError> {
        let count = count.unwrap_or(DEFAULT_PREVIEW_COUNT);
        if !(1..=MAX_PREVIEW_COUNT).contains(&count) {
            return Err(ServiceError::InvalidRequest(format!(
                "invalid `count`: {count} is not between 1 and {MAX_PREVIEW_COUNT}"
            )));
        }
        let schedule = automation::parse_schedule(expression, timezone)
            .map_err(|error| ServiceError::InvalidRequest(error.to_string()))?;
        Ok(schedule.preview(after.unwrap_or_else(|| self.now()), count))
    }

    /// Runs `f` against the store on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| ServiceError::Internal(format!("store task failed: {e}")))?
            .map_err(ServiceError::from)
    }

    fn notify(&self, change: AutomationChange) {
        // No subscribers is fine: nothing is waiting for changes.
        let _ = self.changes.send(change);
    }

    // ---- events ----

    /// The platform events trigger automations can use.
    pub fn events(&self) -> &'static [EventType] {
        events::CATALOGUE
    }

    // ---- configs ----

    /// Validates and stores an uploaded component. `name` defaults to the
    /// workflow's own name. The same bytes under the same name in the same app
    /// return the existing config; bytes are stored once per digest in any case.
    pub async fn upload_config(
        &self,
        app: &AppId,
        name: Option<String>,
        component: Bytes,
    ) -> Result<Upload, ServiceError> {
        if component.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "the request body is empty: send the component's bytes with Content-Type: application/wasm"
                    .into(),
            ));
        }
        if component.len() > self.settings.max_config_bytes {
            return Err(self.too_large(Some(component.len())));
        }
        if let Some(name) = &name {
            config::validate_name(name).map_err(ServiceError::InvalidRequest)?;
        }
        let digest = ComponentDigest::of(&component).to_string();
        if let Some(config) = self.same_upload(app, &digest, name.as_deref()).await? {
            return Ok(Upload {
                config,
                created: false,
            });
        }

        let compiling = self.compile_slot().await?;
        let workflow = self
            .runner
            .load(&component)
            .await
            .map_err(|e| ServiceError::Unprocessable(one_line(&e.to_string())))?;
        drop(compiling);
        self.metrics.compile_cache(workflow.from_cache());
        let graph = workflow.graph().clone();
        let imports_http = workflow.imports_http();
        let name = name.unwrap_or_else(|| graph.name.clone());
        config::validate_name(&name).map_err(ServiceError::InvalidRequest)?;

        let _guard = self.control.lock().await;
        // Under the lock: an app being deleted takes it too.
        self.app(app).await?;
        if let Some(config) = self.same_upload(app, &digest, Some(&name)).await? {
            return Ok(Upload {
                config,
                created: false,
            });
        }
        let config = Config {
            id: ConfigId::from_value(self.next_id_value()),
            app_id: app.clone(),
            name,
            digest,
            size: component.len() as u64,
            graph,
            imports_http,
            created_at: self.now(),
            created_by: current_actor(),
        };
        let stored = config.clone();
        self.blocking(move |store| store.insert_config(&stored, &component))
            .await?;
        tracing::info!(app = %app, config = %config.id, name = %config.name, digest = %config.digest, size = config.size, "config uploaded");
        Ok(Upload {
            config,
            created: true,
        })
    }

    /// A compile slot for an upload: waits up to `upload_compile_wait`,
    /// then refuses with [`ServiceError::Busy`].
    async fn compile_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ServiceError> {
        let wait = self.settings.upload_compile_wait;
        let permit = if wait.is_zero() {
            self.compiles.try_acquire().ok()
        } else {
            tokio::time::timeout(wait, self.compiles.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        permit.ok_or_else(|| ServiceError::Busy {
            message: format!(
                "{} uploads are compiling already, the most at once; try again shortly",
                self.settings.max_concurrent_compiles.max(1)
            ),
            retry_after_secs: wait.as_secs().clamp(1, 10),
        })
    }

    /// The 413 for an upload of `size` bytes (`None`: a body that passed the
    /// limit while it was read, its full size unknown).
    pub fn too_large(&self, size: Option<usize>) -> ServiceError {
        let limit = self.settings.max_config_bytes;
        ServiceError::PayloadTooLarge(match size {
            Some(size) => format!("the component is {size} bytes; the limit is {limit} bytes"),
            None => format!("the component is larger than the limit of {limit} bytes"),
        })
    }

    async fn same_upload(
        &self,
        app: &AppId,
        digest: &str,
        name: Option<&str>,
    ) -> Result<Option<Config>, ServiceError> {
        let configs = self.configs(app).await?;
        Ok(configs
            .into_iter()
            .find(|c| c.digest == digest && name.is_none_or(|n| n == c.name)))
    }

    /// An app's configs, oldest first.
    pub async fn configs(&self, app: &AppId) -> Result<Vec<Config>, ServiceError> {
        let app = app.clone();
        self.blocking(move |store| store.configs(&app)).await
    }

    /// One config.
    pub async fn config(&self, app: &AppId, id: &str) -> Result<Config, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no config `{id}` in app `{app}`"));
        let config_id: ConfigId = id.parse().map_err(|_| not_found())?;
        let app_id = app.clone();
        self.blocking(move |store| store.config(&app_id, &config_id))
            .await?
            .ok_or_else(not_found)
    }

    /// The component bytes of a config.
    pub async fn component(&self, config: &Config) -> Result<Vec<u8>, ServiceError> {
        let digest = config.digest.clone();
        self.blocking(move |store| store.component(&digest))
            .await?
            .ok_or_else(|| {
                ServiceError::Internal(format!("the component of config {} is missing", config.id))
            })
    }

    /// The automations (any status) whose `config_id` is `config`, oldest
    /// first.
    pub async fn config_users(
        &self,
        app: &AppId,
        config: &ConfigId,
    ) -> Result<Vec<Automation>, ServiceError> {
        let mut automations = self.automations(app, None).await?;
        automations.retain(|a| a.config_id.as_ref() == Some(config));
        Ok(automations)
    }

    /// Deletes a config unless an automation uses it — running, paused or
    /// draft (409 naming them): a paused or draft automation would fail to
    /// activate or run later.
    pub async fn delete_config(&self, app: &AppId, id: &str) -> Result<(), ServiceError> {
        let config = self.config(app, id).await?;
        let _guard = self.control.lock().await;
        let users: Vec<String> = self
            .config_users(app, &config.id)
            .await?
            .into_iter()
            .map(|a| format!("{} ({}, {})", a.id, a.name, a.status.as_str()))
            .collect();
        if !users.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "config {} ({}) is used by automation(s) {}; point them at another config_id or delete them first",
                config.id,
                config.name,
                users.join(", ")
            )));
        }
        let (app_id, config_id) = (app.clone(), config.id.clone());
        let deleted = self
            .blocking(move |store| store.delete_config(&app_id, &config_id))
            .await?;
        if deleted {
            // Its compiled code leaves memory too (another config with the
            // same bytes loads it again from the compile cache).
            if let Ok(digest) = config.digest.parse::<ComponentDigest>() {
                self.runner.forget(&digest);
            }
            self.notify(AutomationChange::ConfigDeleted {
                app_id: app.clone(),
                id: config.id.clone(),
            });
            tracing::info!(app = %app, config = %config.id, "config deleted");
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no config `{id}` in app `{app}`"
            )))
        }
    }

    // ---- automations ----

    /// Creates a draft automation.
    pub async fn create_automation(
        &self,
        app: &AppId,
        new: NewAutomation,
    ) -> Result<Automation, ServiceError> {
        let id = AutomationId::from_value(self.next_id_value());
        let mut automation = Automation::create(id, app.clone(), new, self.now())?;
        automation.created_by = current_actor();
        automation.updated_by = automation.created_by.clone();
        self.check_limits(&automation)?;
        let _guard = self.control.lock().await;
        self.app(app).await?;
        self.config_of(&automation).await?;
        let stored = automation.clone();
        self.blocking(move |store| store.insert_automation(&stored))
            .await?;
        lifecycle_logged(&automation, "created", 0);
        self.notify(AutomationChange::Saved(Arc::new(automation.clone())));
        Ok(automation)
    }

    /// An app's automations, oldest first, optionally of one type.
    pub async fn automations(
        &self,
        app: &AppId,
        kind: Option<AutomationType>,
    ) -> Result<Vec<Automation>, ServiceError> {
        let app = app.clone();
        let mut automations = self.blocking(move |store| store.automations(&app)).await?;
        automations.retain(|a| kind.is_none_or(|k| a.kind == k));
        Ok(automations)
    }

    /// One automation, by id or lookup key.
    pub async fn automation(
        &self,
        app: &AppId,
        id_or_key: &str,
    ) -> Result<Automation, ServiceError> {
        let app_id = app.clone();
        let wanted = id_or_key.to_owned();
        self.blocking(move |store| match wanted.parse::<AutomationId>() {
            Ok(id) => store.automation(&app_id, &id),
            Err(_) => store.automation_by_lookup_key(&app_id, &wanted),
        })
        .await?
        .ok_or_else(|| no_automation(app, id_or_key))
    }

    /// Applies a patch. A running automation must stay runnable, its
    /// schedule with fire times ahead (422).
    pub async fn update_automation(
        &self,
        app: &AppId,
        id_or_key: &str,
        patch: AutomationPatch,
    ) -> Result<Automation, ServiceError> {
        let _guard = self.control.lock().await;
        let current = self.automation(app, id_or_key).await?;
        let mut updated = current.patched(patch, self.now())?;
        updated.updated_by = current_actor();
        self.check_limits(&updated)?;
        // A paused or draft automation whose config was deleted stays editable;
        // a new config_id must exist, and a running automation must stay runnable.
        if updated.config_id != current.config_id || updated.status == AutomationStatus::Running {
            let config = self.config_of(&updated).await?;
            if updated.status == AutomationStatus::Running {
                updated.check_runnable(config.as_ref())?;
                updated.check_schedule_ahead(self.now())?;
            }
        }
        let (saved, _) = self.save(updated, None).await?;
        lifecycle_logged(&saved, "updated", 0);
        Ok(saved)
    }

    /// Deletes an automation and cancels its pending runs (its executing
    /// ones are interrupted by the execution plane on the change broadcast).
    /// Its runs stay, listable by its id.
    pub async fn delete_automation(
        &self,
        app: &AppId,
        id_or_key: &str,
    ) -> Result<(), ServiceError> {
        let _guard = self.control.lock().await;
        let automation = self.automation(app, id_or_key).await?;
        let cancel = Cancellation {
            reason: REASON_AUTOMATION_DELETED.into(),
            at: self.now(),
        };
        let (app_id, id) = (automation.app_id.clone(), automation.id.clone());
        let (_, cancelled) = self
            .blocking(move |store| store.delete_automation(&app_id, &id, &cancel))
            .await?;
        self.cancelled(&automation, REASON_AUTOMATION_DELETED, cancelled.len());
        lifecycle_logged(&automation, "deleted", cancelled.len());
        self.notify(AutomationChange::Deleted {
            app_id: automation.app_id,
            id: automation.id,
        });
        Ok(())
    }

    /// Moves an automation through its lifecycle: 409 for a transition the
    /// state diagram lacks, 422 when activation finds no runnable config.
    /// Pausing cancels its pending runs.
    pub async fn transition(
        &self,
        app: &AppId,
        id_or_key: &str,
        action: LifecycleAction,
    ) -> Result<Automation, ServiceError> {
        let _guard = self.control.lock().await;
        let mut automation = self.automation(app, id_or_key).await?;
        automation.status = automation
            .status
            .after(action)
            .map_err(|e| ServiceError::Conflict(e.to_string()))?;
        if action == LifecycleAction::Activate {
            automation.check_schedule_ahead(self.now())?;
            let config = self.config_of(&automation).await?;
            automation.check_runnable(config.as_ref())?;
        }
        automation.updated_at = self.now();
        automation.updated_by = current_actor();
        let cancel = (action == LifecycleAction::Pause).then(|| Cancellation {
            reason: REASON_AUTOMATION_PAUSED.into(),
            at: automation.updated_at,
        });
        let (automation, cancelled) = self.save(automation, cancel).await?;
        self.cancelled(&automation, REASON_AUTOMATION_PAUSED, cancelled);
        let change = match action {
            LifecycleAction::Activate => "activated",
            LifecycleAction::Pause => "paused",
            LifecycleAction::Reset => "reset",
        };
        lifecycle_logged(&automation, change, cancelled);
        Ok(automation)
    }

    /// Counts `count` pending runs of `automation` cancelled for `reason`.
    fn cancelled(&self, automation: &Automation, reason: &str, count: usize) {
        let scheduled = automation.kind == AutomationType::Scheduled;
        self.metrics
            .runs_cancelled(&automation.app_id, scheduled, reason, count as u64);
    }

    /// Limit overrides within the host's ceilings.
    fn check_limits(&self, automation: &Automation) -> Result<(), ServiceError> {
        self.runner
            .validate_overrides(&automation.limits)
            .map_err(|e| ServiceError::InvalidRequest(format!("invalid `limits`: {e}")))
    }

    /// The config an automation names: `None` without `config_id`, 422 when it
    /// names a config that does not exist.
    async fn config_of(&self, automation: &Automation) -> Result<Option<Config>, ServiceError> {
        let Some(config_id) = automation.config_id.clone() else {
            return Ok(None);
        };
        let (app, wanted) = (automation.app_id.clone(), config_id.clone());
        match self
            .blocking(move |store| store.config(&app, &wanted))
            .await?
        {
            Some(config) => Ok(Some(config)),
            None => Err(ActivationError::ConfigMissing(config_id).into()),
        }
    }

    /// Stores `automation` (cancelling its pending runs with `cancel`) and
    /// broadcasts the change; returns it and how many runs were cancelled.
    async fn save(
        &self,
        automation: Automation,
        cancel: Option<Cancellation>,
    ) -> Result<(Automation, usize), ServiceError> {
        let stored = automation.clone();
        let cancelled = self
            .blocking(move |store| store.update_automation(&stored, cancel.as_ref()))
            .await?;
        self.notify(AutomationChange::Saved(Arc::new(automation.clone())));
        Ok((automation, cancelled.len()))
    }

    // ---- runs ----

    /// One run of the app.
    pub async fn run(&self, app: &AppId, id: &str) -> Result<Run, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no run `{id}` in app `{app}`"));
        let run_id: RunId = id.parse().map_err(|_| not_found())?;
        self.blocking(move |store| store.run(&run_id))
            .await?
            .filter(|run| run.app_id == *app)
            .ok_or_else(not_found)
    }

    /// A page of an app's runs, newest first: of every automation, or of
    /// `query.automation` (whose runs stay listable by id after it is
    /// deleted).
    pub async fn runs(&self, app: &AppId, query: RunQuery) -> Result<RunPage, ServiceError> {
        let limit = query.limit.unwrap_or(DEFAULT_RUNS_LIMIT);
        if !(1..=MAX_RUNS_LIMIT).contains(&limit) {
            return Err(ServiceError::InvalidRequest(format!(
                "invalid `limit`: must be between 1 and {MAX_RUNS_LIMIT}"
            )));
        }
        let cursor = query
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<RunId>().map_err(|_| {
                    ServiceError::InvalidRequest(format!(
                        "invalid `cursor`: `{c}` is not a cursor from a previous page"
                    ))
                })
            })
            .transpose()?;
        let (automation, deleted) = match &query.automation {
            Some(key) => {
                let (id, deleted) = self.automation_or_deleted(app, key).await?;
                (Some(id), deleted)
            }
            None => (None, false),
        };
        let unfiltered = query.status.is_none()
            && query.trigger.is_none()
            && query.since.is_none()
            && query.until.is_none()
            && !query.latest_attempt;
        let filter = RunFilter {
            automation,
            status: query.status,
            trigger: query.trigger,
            since: query.since,
            until: query.until,
            latest_attempt: query.latest_attempt,
        };
        let app_id = app.clone();
        let mut runs = self
            .blocking(move |store| store.app_runs(&app_id, &filter, cursor.as_ref(), limit + 1))
            .await?;
        if deleted && unfiltered && runs.is_empty() && query.cursor.is_none() {
            // Nothing left of it at all: as unknown as any other id.
            return Err(no_automation(
                app,
                query.automation.as_deref().unwrap_or(""),
            ));
        }
        let next_cursor = (runs.len() > limit).then(|| {
            runs.truncate(limit);
            runs.last().map(|r| r.id.to_string())
        });
        Ok(RunPage {
            runs,
            next_cursor: next_cursor.flatten(),
        })
    }

    /// The automation `key` names, or — for the id of one that was deleted —
    /// that id and `true`.
    async fn automation_or_deleted(
        &self,
        app: &AppId,
        key: &str,
    ) -> Result<(AutomationId, bool), ServiceError> {
        match self.automation(app, key).await {
            Ok(automation) => Ok((automation.id, false)),
            Err(ServiceError::NotFound(message)) => match key.parse::<AutomationId>() {
                Ok(id) => Ok((id, true)),
                Err(_) => Err(ServiceError::NotFound(message)),
            },
            Err(error) => Err(error),
        }
    }
}

fn no_automation(app: &AppId, key: &str) -> ServiceError {
    ServiceError::NotFound(format!("no automation `{key}` in app `{app}`"))
}

/// Multi-line engine diagnostics as one line, for a JSON error message.
/// One log line per lifecycle change: what happened to which automation,
/// its status now and how many pending runs it cancelled.
fn lifecycle_logged(automation: &Automation, change: &str, cancelled_runs: usize) {
    tracing::info!(
        app = %automation.app_id,
        automation = %automation.id,
        name = %automation.name,
        kind = automation.kind.as_str(),
        status = automation.status.as_str(),
        cancelled_runs,
        "automation {change}"
    );
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
