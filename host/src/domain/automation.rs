//! Automations: what they are, how they are validated, and their lifecycle.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::capabilities::{Capabilities, CapabilityError};
use super::config::Config;
use super::events;
use super::ids::{AppId, AutomationId, ConfigId};
use super::json::MAX_METADATA_BYTES;
use super::limits::LimitOverrides;
use super::retention::RetentionOverride;
use super::schedule::Schedule;
use super::text;
use super::workflow::SCHEDULED_TRIGGER;

/// What fires an automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutomationType {
    /// A platform event (`trigger`).
    Trigger,
    /// A cron schedule (`schedule`).
    Scheduled,
}

impl AutomationType {
    /// The name used in the API (`trigger`, `scheduled`).
    pub fn as_str(self) -> &'static str {
        match self {
            AutomationType::Trigger => "trigger",
            AutomationType::Scheduled => "scheduled",
        }
    }
}

/// Where an automation is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutomationStatus {
    /// Exists but does not run (the default).
    Draft,
    /// Fires on matching events or its schedule.
    Running,
    /// Suspended: events are ignored, scheduled jobs cancelled.
    Paused,
}

impl AutomationStatus {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AutomationStatus::Draft => "draft",
            AutomationStatus::Running => "running",
            AutomationStatus::Paused => "paused",
        }
    }

    /// The status after `action`, per the spec's state diagram.
    pub fn after(self, action: LifecycleAction) -> Result<Self, TransitionError> {
        use AutomationStatus::{Draft, Paused, Running};
        use LifecycleAction::{Activate, Pause, Reset};
        match (self, action) {
            (Draft | Paused, Activate) => Ok(Running),
            (Running, Pause) => Ok(Paused),
            (Paused, Reset) => Ok(Draft),
            _ => Err(TransitionError { action, from: self }),
        }
    }
}

impl fmt::Display for AutomationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// draft → running, paused → running.
    Activate,
    /// running → paused.
    Pause,
    /// paused → draft.
    Reset,
}

impl LifecycleAction {
    fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Activate => "activate",
            LifecycleAction::Pause => "pause",
            LifecycleAction::Reset => "reset",
        }
    }

    fn allowed_from(self) -> &'static str {
        match self {
            LifecycleAction::Activate => "draft or paused",
            LifecycleAction::Pause => "running",
            LifecycleAction::Reset => "paused",
        }
    }
}

/// A lifecycle action the state diagram does not allow from the current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot {} an automation whose status is {from} ({} is only allowed from {})",
    action.as_str(), action.as_str(), action.allowed_from()
)]
pub struct TransitionError {
    /// What was attempted.
    pub action: LifecycleAction,
    /// The status it was attempted from.
    pub from: AutomationStatus,
}

/// What happens to cron ticks that passed while the host was down or the
/// automation paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchupPolicy {
    /// Record one `cancelled` run with reason `missed`; run nothing.
    #[default]
    Skip,
    /// Run the latest missed tick.
    RunOnce,
    /// Run every missed tick within `catchup_window_seconds`.
    RunAll,
}

/// What happens to a tick while a run of the same automation is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Run concurrently.
    #[default]
    Allow,
    /// Record the tick as a `cancelled` run with reason `overlap`.
    Skip,
    /// Queue it behind the running one.
    Queue,
}

/// How failed runs are retried; each attempt is its own run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retries). 1–10.
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each further one (ms).
    pub backoff_base_ms: u64,
    /// Upper bound on the delay (ms).
    pub backoff_max_ms: u64,
    /// Whether a workflow's own `Err` is retried (timeouts and traps always are).
    pub retry_guest_errors: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            retry_guest_errors: false,
        }
    }
}

impl RetryPolicy {
    /// Most attempts a policy may ask for.
    pub const MAX_ATTEMPTS: u32 = 10;

    /// The delay before attempt `next_attempt` (2 for the first retry):
    /// exponential backoff, capped, with "equal jitter" — half fixed, half
    /// scaled by `unit_random` in `[0, 1)` — so retries of many runs spread out.
    pub fn delay_before(&self, next_attempt: u32, unit_random: f64) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(40);
        let full = self
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.backoff_max_ms);
        let half = full / 2;
        let jitter = (half as f64 * unit_random.clamp(0.0, 1.0)) as u64;
        Duration::from_millis(full - half + jitter)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(invalid(
                "retry.max_attempts",
                format!("must be between 1 and {}", Self::MAX_ATTEMPTS),
            ));
        }
        if !(1..=3_600_000).contains(&self.backoff_base_ms) {
            return Err(invalid(
                "retry.backoff_base_ms",
                "must be between 1 and 3600000 (one hour)",
            ));
        }
        if self.backoff_max_ms < self.backoff_base_ms || self.backoff_max_ms > 86_400_000 {
            return Err(invalid(
                "retry.backoff_max_ms",
                "must be at least retry.backoff_base_ms and at most 86400000 (one day)",
            ));
        }
        Ok(())
    }
}

/// A field that failed validation: a 400 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {message}")]
pub struct ValidationError {
    /// The JSON field (dotted for nested ones).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl From<CapabilityError> for ValidationError {
    fn from(error: CapabilityError) -> Self {
        invalid(error.field, error.message)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

/// Default and bounds of `catchup_window_seconds`.
pub const DEFAULT_CATCHUP_WINDOW_SECONDS: u64 = 86_400;
const MAX_CATCHUP_WINDOW_SECONDS: u64 = 7 * 86_400;

/// An automation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Automation {
    /// `aut_…`.
    pub id: AutomationId,
    /// The app it belongs to.
    pub app_id: AppId,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// `trigger` or `scheduled`.
    #[serde(rename = "type")]
    pub kind: AutomationType,
    /// `draft`, `running` or `paused`.
    pub status: AutomationStatus,
    /// The event name (trigger automations).
    #[schema(example = "thread.member_joined")]
    pub trigger: Option<String>,
    /// The cron expression (scheduled automations): 5 fields, or 6 with seconds first.
    #[schema(example = "0 9 * * 1-5")]
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in.
    #[schema(example = "UTC")]
    pub timezone: String,
    /// The WorkflowGraph config it runs.
    pub config_id: Option<ConfigId>,
    /// The user the workflow executes as.
    pub run_as_user_id: Option<String>,
    /// A slug unique within the app; `GET …/automations/:id` accepts it in place of the id.
    pub lookup_key: Option<String>,
    /// Arbitrary JSON object.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Missed-tick policy (scheduled automations).
    pub catchup: CatchupPolicy,
    /// How far back `run_all` catches up.
    pub catchup_window_seconds: u64,
    /// Policy for a tick while a run is still running.
    pub overlap: OverlapPolicy,
    /// Most runs of this automation executing at once (unset: unlimited).
    pub max_concurrency: Option<u32>,
    /// Retry policy for failed runs.
    pub retry: RetryPolicy,
    /// Sandbox limit overrides (fuel, memory, time, output); unset fields use
    /// the host's defaults. Checked against the host's ceilings by the service.
    pub limits: LimitOverrides,
    /// What the workflow may reach outside its sandbox (outbound HTTP hosts,
    /// app secrets); nothing by default. Records from before the field
    /// read back granting nothing.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// How long and how many of its ended runs are kept; unset parts use
    /// the host's `--retention-days` and `--retention-max-runs`.
    #[serde(default, skip_serializing_if = "RetentionOverride::is_empty")]
    pub retention: RetentionOverride,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (fields or status).
    pub updated_at: DateTime<Utc>,
    /// The key that created it (`key_…`, `env` for `AUTOMATA_ADMIN_TOKEN`);
    /// absent without authentication and for data from before keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The key that last changed it (fields or status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// The body of `POST /apps/:app_id/automations`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAutomation {
    /// Display name (required).
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `trigger` or `scheduled` (required).
    #[serde(rename = "type")]
    pub kind: AutomationType,
    /// Event name; required for trigger automations.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Cron expression; required for scheduled automations.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub config_id: Option<ConfigId>,
    #[serde(default)]
    pub run_as_user_id: Option<String>,
    #[serde(default)]
    pub lookup_key: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub catchup: Option<CatchupPolicy>,
    #[serde(default)]
    pub catchup_window_seconds: Option<u64>,
    #[serde(default)]
    pub overlap: Option<OverlapPolicy>,
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub limits: Option<LimitOverrides>,
    /// Outbound HTTP hosts and secrets the workflow may use (default: none).
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// `{days, max_runs}`: how long and how many ended runs to keep.
    #[serde(default)]
    pub retention: Option<RetentionOverride>,
}

/// The body of `PATCH /apps/:app_id/automations/:id`: absent fields stay as
/// they are; `null` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, rename = "type")]
    pub kind: Option<AutomationType>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub trigger: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub schedule: Option<Option<String>>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub config_id: Option<Option<ConfigId>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub run_as_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub lookup_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Map<String, Value>>>,
    #[serde(default)]
    pub catchup: Option<CatchupPolicy>,
    #[serde(default)]
    pub catchup_window_seconds: Option<u64>,
    #[serde(default)]
    pub overlap: Option<OverlapPolicy>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_concurrency: Option<Option<u32>>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub limits: Option<LimitOverrides>,
    /// Replaces the whole grant; `null` grants nothing.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Capabilities>)]
    pub capabilities: Option<Option<Capabilities>>,
    /// Replaces the whole override; `null` (like `{}`) clears it, so the
    /// host's defaults apply.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RetentionOverride>)]
    pub retention: Option<Option<RetentionOverride>>,
    /// Refused with a pointer to the lifecycle endpoints.
    #[serde(default)]
    #[schema(ignore)]
    pub status: Option<Value>,
}

/// Distinguishes `"field": null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Automation {
    /// A new draft automation from a create request.
    pub fn create(
        id: AutomationId,
        app_id: AppId,
        new: NewAutomation,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        // A `CRON_TZ=` prefix gives the zone when `timezone` does not.
        let timezone = new
            .timezone
            .or_else(|| zone_prefix_of(new.schedule.as_deref()))
            .unwrap_or_else(|| "UTC".to_owned());
        let automation = Automation {
            id,
            app_id,
            name: new.name,
            description: new.description,
            kind: new.kind,
            status: AutomationStatus::Draft,
            trigger: new.trigger,
            schedule: new.schedule,
            timezone,
            config_id: new.config_id,
            run_as_user_id: new.run_as_user_id,
            lookup_key: new.lookup_key,
            metadata: new.metadata.unwrap_or_default(),
            catchup: new.catchup.unwrap_or_default(),
            catchup_window_seconds: new
                .catchup_window_seconds
                .unwrap_or(DEFAULT_CATCHUP_WINDOW_SECONDS),
            overlap: new.overlap.unwrap_or_default(),
            max_concurrency: new.max_concurrency,
            retry: new.retry.unwrap_or_default(),
            limits: new.limits.unwrap_or_default(),
            capabilities: new.capabilities.unwrap_or_default().normalized()?,
            retention: new.retention.unwrap_or_default(),
            created_at: now,
            updated_at: now,
            created_by: None,
            updated_by: None,
        };
        automation.validate()?;
        Ok(automation)
    }

    /// This automation with `patch` applied, validated; `self` is unchanged.
    pub fn patched(
        &self,
        patch: AutomationPatch,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        if patch.status.is_some() {
            return Err(invalid(
                "status",
                "cannot be changed with PATCH; use POST …/activate, …/pause or …/reset",
            ));
        }
        let mut next = self.clone();
        let AutomationPatch {
            name,
            description,
            kind,
            trigger,
            schedule,
            timezone,
            config_id,
            run_as_user_id,
            lookup_key,
            metadata,
            catchup,
            catchup_window_seconds,
            overlap,
            max_concurrency,
            retry,
            limits,
            capabilities,
            retention,
            status: _,
        } = patch;
        set(&mut next.name, name);
        set(&mut next.description, description);
        set(&mut next.kind, kind);
        set(&mut next.trigger, trigger);
        // A new schedule's `CRON_TZ=` prefix gives the zone when the patch
        // does not.
        let timezone = timezone.or_else(|| zone_prefix_of(schedule.clone().flatten().as_deref()));
        set(&mut next.schedule, schedule);
        set(&mut next.timezone, timezone);
        set(&mut next.config_id, config_id);
        set(&mut next.run_as_user_id, run_as_user_id);
        set(&mut next.lookup_key, lookup_key);
        set(&mut next.metadata, metadata.map(Option::unwrap_or_default));
        set(&mut next.catchup, catchup);
        set(&mut next.catchup_window_seconds, catchup_window_seconds);
        set(&mut next.overlap, overlap);
        set(&mut next.max_concurrency, max_concurrency);
        set(&mut next.retry, retry);
        set(&mut next.limits, limits);
        if let Some(capabilities) = capabilities {
            next.capabilities = capabilities.unwrap_or_default().normalized()?;
        }
        set(
            &mut next.retention,
            retention.map(Option::unwrap_or_default),
        );
        next.validate()?;
        next.updated_at = now;
        Ok(next)
    }

    /// Every field rule: required fields per type, catalogue events, cron
    /// syntax, time zone, slugs, sizes and policy bounds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        name("name", &self.name, 1, 200)?;
        if let Some(description) = &self.description {
            text("description", description, 0, 2_000)?;
        }
        check_timezone(&self.timezone)?;
        match self.kind {
            AutomationType::Trigger => {
                let Some(trigger) = &self.trigger else {
                    return Err(invalid("trigger", "is required for trigger automations"));
                };
                if events::find(trigger).is_none() {
                    return Err(invalid("trigger", events::unknown_event_message(trigger)));
                }
                if self.schedule.is_some() {
                    return Err(invalid(
                        "schedule",
                        "is only for scheduled automations (set it to null)",
                    ));
                }
            }
            AutomationType::Scheduled => {
                if self.trigger.is_some() {
                    return Err(invalid(
                        "trigger",
                        "is only for trigger automations (set it to null)",
                    ));
                }
                let Some(schedule) = &self.schedule else {
                    return Err(invalid("schedule", "is required for scheduled automations"));
                };
                self.parse_schedule_of(schedule)?;
            }
        }
        if let Some(user) = &self.run_as_user_id {
            name("run_as_user_id", user, 1, 128)?;
            if user.chars().any(char::is_whitespace) {
                return Err(invalid("run_as_user_id", "must not contain whitespace"));
            }
        }
        if let Some(key) = &self.lookup_key {
            validate_lookup_key(key)?;
        }
        let metadata_size = serde_json::to_string(&self.metadata).map_or(0, |s| s.len());
        if metadata_size > MAX_METADATA_BYTES {
            return Err(invalid(
                "metadata",
                format!(
                    "is {metadata_size} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed"
                ),
            ));
        }
        if !(1..=MAX_CATCHUP_WINDOW_SECONDS).contains(&self.catchup_window_seconds) {
            return Err(invalid(
                "catchup_window_seconds",
                format!("must be between 1 and {MAX_CATCHUP_WINDOW_SECONDS} (seven days)"),
            ));
        }
        if self.max_concurrency == Some(0) {
            return Err(invalid(
                "max_concurrency",
                "must be at least 1 (omit it for unlimited)",
            ));
        }
        self.retry.validate()?;
        self.retention.validate()
    }

    fn parse_schedule_of(&self, expression: &str) -> Result<Schedule, ValidationError> {
        parse_schedule(expression, Some(&self.timezone))
    }

    /// The parsed schedule of a scheduled automation.
    pub fn parsed_schedule(&self) -> Option<Schedule> {
        let expression = self.schedule.as_deref()?;
        (self.kind == AutomationType::Scheduled)
            .then(|| self.parse_schedule_of(expression).ok())
            .flatten()
    }

    /// The event whose trigger node the config must have: the `trigger`, or
    /// `workflow.scheduled` for scheduled automations.
    pub fn event(&self) -> &str {
        match self.kind {
            AutomationType::Trigger => self.trigger.as_deref().unwrap_or_default(),
            AutomationType::Scheduled => SCHEDULED_TRIGGER,
        }
    }

    /// When a running scheduled automation next fires after `now`.
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.status != AutomationStatus::Running {
            return None;
        }
        self.parsed_schedule()?.next_after(now)
    }

    /// When a scheduled automation would next fire after `now` if it were
    /// running, whatever its status (a draft's or paused one's preview).
    pub fn next_run_at_if_running(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed_schedule()?.next_after(now)
    }

    /// A scheduled automation must have a fire time after `now` to run: a
    /// year field can end a schedule (`0 0 12 * * ? 2020`), and a running
    /// automation that never fires again would look alive while doing
    /// nothing.
    pub fn check_schedule_ahead(&self, now: DateTime<Utc>) -> Result<(), ActivationError> {
        match (&self.schedule, self.parsed_schedule()) {
            (Some(expression), Some(schedule)) if schedule.next_after(now).is_none() => {
                Err(ActivationError::ScheduleEnded(expression.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether `config` (the one `config_id` names, if found) lets this
    /// automation run: it must exist, have a trigger node for
    /// [`Self::event`], and a component that imports `wasi:http` needs an
    /// HTTP grant (`capabilities.http.allowed_hosts`).
    pub fn check_runnable(&self, config: Option<&Config>) -> Result<(), ActivationError> {
        let Some(config_id) = &self.config_id else {
            return Err(ActivationError::NoConfig);
        };
        let Some(config) = config else {
            return Err(ActivationError::ConfigMissing(config_id.clone()));
        };
        if !config.graph.handles(self.event()) {
            return Err(ActivationError::TriggerNotInGraph {
                config_id: config_id.clone(),
                event: self.event().to_owned(),
                handled: config.graph.triggers.clone(),
            });
        }
        if config.imports_http && !self.capabilities.grants_http() {
            return Err(ActivationError::HttpNotGranted(config_id.clone()));
        }
        Ok(())
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let length = value.chars().count();
    if min > 0 && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if length > max {
        return Err(invalid(
            field,
            format!("is {length} characters; at most {max} are allowed"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    if let Some(c) = text::bidi_control(value) {
        return Err(invalid(
            field,
            format!(
                "must not contain bidirectional control characters (found {}): they make text \
                 display as something other than what it says",
                text::code_point(c)
            ),
        ));
    }
    Ok(())
}

/// A name or id: [`text`] without line breaks, tabs or format characters
/// (see [`crate::domain::text`]).
fn name(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    text(field, value, min, max)?;
    match text::invisible_char(value) {
        Some(c) => Err(invalid(
            field,
            format!(
                "must not contain control or invisible format characters (found {})",
                text::code_point(c)
            ),
        )),
        None => Ok(()),
    }
}

/// Checks an IANA time zone name, as `timezone` is checked on create.
fn check_timezone(timezone: &str) -> Result<(), ValidationError> {
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(invalid(
            "timezone",
            format!("`{timezone}` is not an IANA time zone such as `Europe/Berlin`"),
        ));
    }
    Ok(())
}

/// Parses a cron `expression` in `timezone` (its `CRON_TZ=` prefix's, or
/// UTC, when `None`) with exactly the errors create and update give: a 400
/// naming `timezone` or `schedule`.
pub fn parse_schedule(
    expression: &str,
    timezone: Option<&str>,
) -> Result<Schedule, ValidationError> {
    if let Some(timezone) = timezone {
        check_timezone(timezone)?;
    }
    Schedule::parse(expression, timezone).map_err(|e| invalid("schedule", e.to_string()))
}

/// The zone a schedule's `CRON_TZ=` / `TZ=` prefix names.
fn zone_prefix_of(expression: Option<&str>) -> Option<String> {
    expression
        .and_then(Schedule::zone_prefix)
        .map(str::to_owned)
}

/// Path segments that sit where an automation id or lookup key goes
/// (`/automations/events`, `/automations/runs`, `/automations/schedule`): the
/// fixed route wins, so an automation with such a lookup key could never be
/// reached by it. Refused as lookup keys.
pub const RESERVED_LOOKUP_KEYS: [&str; 3] = ["events", "runs", "schedule"];

/// Lookup keys share the id position in URLs, so they must not look like an
/// automation id (in any case) or a fixed path segment.
fn validate_lookup_key(key: &str) -> Result<(), ValidationError> {
    let well_formed = (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(invalid(
            "lookup_key",
            "must be 1-64 characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    let reserved = RESERVED_LOOKUP_KEYS.contains(&key)
        || key.to_ascii_lowercase().starts_with(AutomationId::PREFIX);
    if reserved {
        return Err(invalid(
            "lookup_key",
            format!("`{key}` is reserved (it could be mistaken for an id or a path)"),
        ));
    }
    Ok(())
}

/// Why an automation cannot be activated: a 422 naming the missing piece.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// No `config_id`.
    #[error("the automation has no config_id; set one (PATCH) before activating")]
    NoConfig,
    /// `config_id` names no stored config.
    #[error("config {0} does not exist in this app")]
    ConfigMissing(ConfigId),
    /// The config's graph has no trigger node for the automation's event.
    #[error(
        "config {config_id} has no trigger node for `{event}` (its trigger nodes: {})",
        if handled.is_empty() { "none".to_owned() } else { handled.join(", ") }
    )]
    TriggerNotInGraph {
        config_id: ConfigId,
        event: String,
        handled: Vec<String>,
    },
    /// The config's component imports `wasi:http` and the automation grants
    /// no host.
    #[error(
        "config {0} makes outbound HTTP requests (its component imports wasi:http) but the \
         automation grants no host: add the hosts it calls to capabilities.http.allowed_hosts \
         (CLI: --allow-host HOST)"
    )]
    HttpNotGranted(ConfigId),
    /// A schedule whose every fire time is past (its year field has ended).
    #[error(
        "schedule `{0}` has no fire times after now (its last year is past); change `schedule` \
         first (GET /apps/:app_id/automations/schedule previews one)"
    )]
    ScheduleEnded(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::IdSequence;
    use crate::domain::workflow::WorkflowGraph;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn new_automation(value: Value) -> Result<Automation, ValidationError> {
        let new: NewAutomation = serde_json::from_value(value).unwrap();
        Automation::create(
            AutomationId::from_value(IdSequence::default().next(1, 1)),
            "default".parse().unwrap(),
            new,
            now(),
        )
    }

    fn scheduled() -> Automation {
        new_automation(json!({"name": "Digest", "type": "scheduled", "schedule": "0 9 * * *"}))
            .unwrap()
    }

    fn config(triggers: &[&str]) -> Config {
        Config {
            id: ConfigId::from_value(7),
            app_id: "default".parse().unwrap(),
            name: "wf".into(),
            digest: "sha256:00".into(),
            size: 10,
            graph: WorkflowGraph {
                name: "wf".into(),
                triggers: triggers.iter().map(|t| (*t).to_owned()).collect(),
                steps: vec![],
            },
            imports_http: false,
            created_at: now(),
            created_by: None,
        }
    }

    #[test]
    fn lifecycle_follows_the_state_diagram() {
        use AutomationStatus::*;
        use LifecycleAction::*;
        let table = [
            (Draft, Activate, Some(Running)),
            (Draft, Pause, None),
            (Draft, Reset, None),
            (Running, Activate, None),
            (Running, Pause, Some(Paused)),
            (Running, Reset, None),
            (Paused, Activate, Some(Running)),
            (Paused, Pause, None),
            (Paused, Reset, Some(Draft)),
        ];
        for (from, action, to) in table {
            assert_eq!(from.after(action).ok(), to, "{from} {action:?}");
        }
        let error = AutomationStatus::Draft.after(Pause).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot pause an automation whose status is draft (pause is only allowed from running)"
        );
    }

    #[test]
    fn create_fills_defaults() {
        let automation = scheduled();
        assert_eq!(automation.status, AutomationStatus::Draft);
        assert_eq!(automation.timezone, "UTC");
        assert_eq!(automation.catchup, CatchupPolicy::Skip);
        assert_eq!(automation.overlap, OverlapPolicy::Allow);
        assert_eq!(automation.retry, RetryPolicy::default());
        assert_eq!(automation.limits, LimitOverrides::default());
        assert_eq!(
            automation.catchup_window_seconds,
            DEFAULT_CATCHUP_WINDOW_SECONDS
        );
        assert_eq!(automation.created_at, now());
    }

    #[test]
    fn type_specific_fields_are_required_and_exclusive() {
        let cases = [
            (json!({"name": "a", "type": "trigger"}), "trigger"),
            (
                json!({"name": "a", "type": "trigger", "trigger": "thread.exploded"}),
                "trigger",
            ),
            (
                json!({"name": "a", "type": "trigger", "trigger": "workflow.scheduled"}),
                "trigger",
            ),
            (
                json!({"name": "a", "type": "trigger", "trigger": "thread.created", "schedule": "* * * * *"}),
                "schedule",
            ),
            (json!({"name": "a", "type": "scheduled"}), "schedule"),
            (
                json!({"name": "a", "type": "scheduled", "schedule": "not cron"}),
                "schedule",
            ),
            (
                json!({"name": "a", "type": "scheduled", "schedule": "0 9 * * *", "trigger": "thread.created"}),
                "trigger",
            ),
            (
                json!({"name": "a", "type": "scheduled", "schedule": "0 9 * * *", "timezone": "Mars/Olympus"}),
                "timezone",
            ),
            (
                json!({"name": " ", "type": "trigger", "trigger": "thread.created"}),
                "name",
            ),
            (
                json!({"name": "Welcome\u{202E}emocleW", "type": "trigger", "trigger": "thread.created"}),
                "name",
            ),
            (
                json!({"name": "a\nb", "type": "trigger", "trigger": "thread.created"}),
                "name",
            ),
            (
                json!({"name": "two\u{2029}paragraphs", "type": "trigger", "trigger": "thread.created"}),
                "name",
            ),
            (
                json!({"name": "a", "type": "trigger", "trigger": "thread.created", "description": "pay \u{202E}01$ of 001$"}),
                "description",
            ),
            (
                json!({"name": "a", "type": "scheduled", "schedule": format!("{} * * * *", vec!["5"; 300].join(","))}),
                "schedule",
            ),
            (
                json!({"name": "a", "type": "trigger", "trigger": "thread.created", "run_as_user_id": "usr_\u{200B}1"}),
                "run_as_user_id",
            ),
        ];
        for (body, field) in cases {
            let error = new_automation(body.clone()).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
        }
        let error = new_automation(
            json!({"name": "zero\u{200B}width", "type": "trigger", "trigger": "thread.created"}),
        )
        .unwrap_err();
        assert!(error.to_string().contains("U+200B"), "{error}");
        // Free text keeps what prose uses: line breaks, soft hyphens.
        new_automation(json!({
            "name": "a", "type": "trigger", "trigger": "thread.created",
            "description": "first line\nsecond, hy\u{00AD}phenated",
        }))
        .unwrap();
    }

    #[test]
    fn policies_are_bounded() {
        let base = json!({"name": "a", "type": "trigger", "trigger": "thread.created"});
        let with = |key: &str, value: Value| {
            let mut body = base.clone();
            body[key] = value;
            new_automation(body)
        };
        assert_eq!(
            with("max_concurrency", json!(0)).unwrap_err().field,
            "max_concurrency"
        );
        assert_eq!(
            with("retry", json!({"max_attempts": 11}))
                .unwrap_err()
                .field,
            "retry.max_attempts"
        );
        assert_eq!(
            with(
                "retry",
                json!({"backoff_base_ms": 5000, "backoff_max_ms": 10})
            )
            .unwrap_err()
            .field,
            "retry.backoff_max_ms"
        );
        assert_eq!(
            with("catchup_window_seconds", json!(0)).unwrap_err().field,
            "catchup_window_seconds"
        );
        let ok = with(
            "retry",
            json!({"max_attempts": 3, "retry_guest_errors": true}),
        )
        .unwrap();
        assert_eq!(ok.retry.max_attempts, 3);
        assert_eq!(
            ok.retry.backoff_base_ms, 1_000,
            "unset fields keep defaults"
        );
    }

    #[test]
    fn lookup_keys_must_not_shadow_ids_or_paths() {
        let base = json!({"name": "a", "type": "trigger", "trigger": "thread.created"});
        for bad in [
            "events",
            "runs",
            "schedule",
            "aut_x",
            "AUT_x",
            "has space",
            "",
        ] {
            let mut body = base.clone();
            body["lookup_key"] = json!(bad);
            assert_eq!(
                new_automation(body).unwrap_err().field,
                "lookup_key",
                "{bad}"
            );
        }
    }

    #[test]
    fn patch_applies_present_fields_and_clears_nulls() {
        let mut automation = new_automation(json!({
            "name": "a", "type": "trigger", "trigger": "thread.created",
            "description": "d", "lookup_key": "key",
        }))
        .unwrap();
        automation.status = AutomationStatus::Running;
        let patch: AutomationPatch =
            serde_json::from_value(json!({"name": "b", "description": null})).unwrap();
        let later = now() + chrono::Duration::seconds(5);
        let next = automation.patched(patch, later).unwrap();
        assert_eq!(next.name, "b");
        assert_eq!(next.description, None);
        assert_eq!(next.lookup_key.as_deref(), Some("key"));
        assert_eq!(next.status, AutomationStatus::Running);
        assert_eq!(next.updated_at, later);

        let switch: AutomationPatch = serde_json::from_value(
            json!({"type": "scheduled", "trigger": null, "schedule": "*/5 * * * *"}),
        )
        .unwrap();
        assert_eq!(
            automation.patched(switch, later).unwrap().kind,
            AutomationType::Scheduled
        );

        let kept: AutomationPatch =
            serde_json::from_value(json!({"retention": {"days": 7, "max_runs": 10}})).unwrap();
        let kept = automation.patched(kept, later).unwrap();
        assert_eq!(kept.retention.days, Some(7));
        for clear in [json!({"retention": null}), json!({"retention": {}})] {
            let patch: AutomationPatch = serde_json::from_value(clear.clone()).unwrap();
            let cleared = kept.patched(patch, later).unwrap();
            assert_eq!(cleared.retention, RetentionOverride::default(), "{clear}");
        }

        let status: AutomationPatch = serde_json::from_value(json!({"status": "running"})).unwrap();
        assert_eq!(
            automation.patched(status, later).unwrap_err().field,
            "status"
        );
    }

    #[test]
    fn runnable_needs_a_config_with_a_matching_trigger_node() {
        let mut automation = scheduled();
        assert_eq!(
            automation.check_runnable(None),
            Err(ActivationError::NoConfig)
        );
        automation.config_id = Some(ConfigId::from_value(7));
        assert!(matches!(
            automation.check_runnable(None),
            Err(ActivationError::ConfigMissing(_))
        ));
        let error = automation
            .check_runnable(Some(&config(&["thread.created"])))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no trigger node for `workflow.scheduled`"),
            "{error}"
        );
        assert!(error.to_string().contains("thread.created"), "{error}");
        assert_eq!(
            automation.check_runnable(Some(&config(&["workflow.scheduled"]))),
            Ok(())
        );
    }

    #[test]
    fn a_component_that_calls_out_needs_an_http_grant() {
        let mut automation = scheduled();
        automation.config_id = Some(ConfigId::from_value(7));
        let calling = Config {
            imports_http: true,
            ..config(&["workflow.scheduled"])
        };
        let error = automation.check_runnable(Some(&calling)).unwrap_err();
        assert_eq!(
            error,
            ActivationError::HttpNotGranted(ConfigId::from_value(7))
        );
        assert!(
            error
                .to_string()
                .contains("add the hosts it calls to capabilities.http.allowed_hosts"),
            "{error}"
        );
        // Secrets alone grant no host.
        let patch: AutomationPatch =
            serde_json::from_value(json!({"capabilities": {"secrets": ["TOKEN"]}})).unwrap();
        let with_secret = automation.patched(patch, now()).unwrap();
        assert!(with_secret.check_runnable(Some(&calling)).is_err());
        let patch: AutomationPatch = serde_json::from_value(
            json!({"capabilities": {"http": {"allowed_hosts": ["api.example.com"]}}}),
        )
        .unwrap();
        let granted = automation.patched(patch, now()).unwrap();
        assert_eq!(granted.check_runnable(Some(&calling)), Ok(()));
    }

    #[test]
    fn stored_automations_from_before_capabilities_grant_nothing() {
        let mut stored = serde_json::to_value(scheduled()).unwrap();
        stored.as_object_mut().unwrap().remove("capabilities");
        let automation: Automation = serde_json::from_value(stored).unwrap();
        assert_eq!(automation.capabilities, Capabilities::default());
    }

    #[test]
    fn an_ended_schedule_cannot_run() {
        let mut automation = scheduled();
        assert_eq!(automation.check_schedule_ahead(now()), Ok(()));
        automation.schedule = Some("0 0 12 * * ? 2025".into());
        let error = automation.check_schedule_ahead(now()).unwrap_err();
        assert_eq!(
            error,
            ActivationError::ScheduleEnded("0 0 12 * * ? 2025".into())
        );
        assert!(
            error.to_string().contains("no fire times after now"),
            "{error}"
        );
        // Its last tick is still ahead on New Year's Eve.
        let eve = "2025-12-31T11:00:00Z".parse().unwrap();
        assert_eq!(automation.check_schedule_ahead(eve), Ok(()));
        assert_eq!(automation.next_run_at_if_running(now()), None);
    }

    #[test]
    fn next_run_at_only_for_running_scheduled_automations() {
        let mut automation = scheduled();
        assert_eq!(automation.next_run_at(now()), None);
        automation.status = AutomationStatus::Running;
        assert_eq!(
            automation.next_run_at(now()),
            Some("2026-03-02T09:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn retry_delay_grows_exponentially_with_jitter_and_a_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_000,
            retry_guest_errors: false,
        };
        assert_eq!(policy.delay_before(2, 0.0), Duration::from_millis(500));
        assert_eq!(policy.delay_before(2, 1.0), Duration::from_millis(1_000));
        assert_eq!(policy.delay_before(3, 1.0), Duration::from_millis(2_000));
        assert_eq!(policy.delay_before(4, 1.0), Duration::from_millis(3_000));
        assert_eq!(policy.delay_before(9, 0.5), Duration::from_millis(2_250));
    }
}
