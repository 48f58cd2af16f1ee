//! Automation runs: one execution of an automation's workflow, its status
//! history, result and accounting.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::automation::Automation;
use super::host_call::HostCall;
use super::ids::{AppId, AutomationId, ConfigId, RunId};
use super::limits::RunLimits;
use super::outcome::{CANCELLED_MESSAGE, FailureKind, Outcome, RunAccounting, RunReport};
use super::workflow::{SCHEDULED_TRIGGER, TriggerInput};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Queued, awaiting execution.
    Pending,
    /// The workflow is executing.
    Running,
    /// Finished successfully.
    Completed,
    /// Execution failed (see `result.error`).
    Failed,
    /// Cancelled (e.g. the automation was paused or deleted).
    Cancelled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Whether a run may move from `self` to `to`: pending → running, and
    /// pending or running → an end state; running → pending re-queues a run
    /// the host was interrupted in. Ended runs never change.
    pub fn can_become(self, to: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, to),
            (Pending, Running | Failed | Cancelled)
                | (Running, Pending | Completed | Failed | Cancelled)
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a run status (pending, running, completed, failed, cancelled)"
                )
            })
    }
}

/// A run's `result`: `{payload, output}` on success, `{error, output}` on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RunResult {
    /// The workflow returned a payload.
    Success {
        /// The workflow's returned JSON.
        #[schema(value_type = Object)]
        payload: Value,
        /// Printed and logged lines.
        output: Vec<String>,
        /// Present (true) when output was capped.
        #[serde(default, skip_serializing_if = "is_false")]
        output_truncated: bool,
    },
    /// The workflow failed, timed out or could not run.
    Failure {
        /// What went wrong, e.g. `Script execution timed out`.
        error: String,
        /// Printed and logged lines up to the failure.
        output: Vec<String>,
        /// Present (true) when output was capped.
        #[serde(default, skip_serializing_if = "is_false")]
        output_truncated: bool,
    },
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What a run cost. Filled from the runner's report when the run ends;
/// `pending_us` when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accounting {
    /// Fuel units the workflow burned.
    pub fuel_consumed: Option<u64>,
    /// The most linear memory the run held at once, in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// From creation to start: time spent pending in the queue (µs).
    pub pending_us: Option<u64>,
    /// Time spent waiting for a free execution slot once started (µs).
    pub queue_time_us: Option<u64>,
    /// Of `wall_time_us`, the part spent instantiating the component (µs).
    pub instantiate_time_us: Option<u64>,
    /// Execution time, instantiation included (µs).
    pub wall_time_us: Option<u64>,
    /// The limits the run executed under.
    #[schema(value_type = Option<Object>)]
    pub limits: Option<RunLimits>,
}

impl From<&RunAccounting> for Accounting {
    fn from(report: &RunAccounting) -> Self {
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).ok();
        Accounting {
            fuel_consumed: Some(report.fuel_consumed),
            peak_memory_bytes: Some(report.peak_memory_bytes),
            pending_us: None,
            queue_time_us: micros(report.queue_time),
            instantiate_time_us: micros(report.instantiate_time),
            wall_time_us: micros(report.wall_time),
            limits: Some(report.limits),
        }
    }
}

/// One entry of a run's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    /// The status entered.
    pub status: RunStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, when there is more to say (e.g. `missed`, `overlap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Which runs a run list shows. Empty matches every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this automation.
    pub automation: Option<AutomationId>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this trigger (event name or `workflow.scheduled`).
    pub trigger: Option<String>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the last attempt of each retry chain (runs not retried).
    pub latest_attempt: bool,
}

impl RunFilter {
    /// Whether `run` is one of the runs wanted.
    pub fn matches(&self, run: &Run) -> bool {
        self.automation
            .as_ref()
            .is_none_or(|a| *a == run.automation_id)
            && self.status.is_none_or(|s| s == run.status)
            && self.trigger.as_ref().is_none_or(|t| *t == run.trigger)
            && self.since.is_none_or(|since| run.created_at >= since)
            && self.until.is_none_or(|until| run.created_at < until)
            && (!self.latest_attempt || run.retried_by.is_none())
    }
}

/// Why a status change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("run cannot go from {from} to {to}")]
pub struct RunTransitionError {
    pub from: RunStatus,
    pub to: RunStatus,
}

/// An automation run (`atr_…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: RunId,
    pub automation_id: AutomationId,
    pub app_id: AppId,
    pub status: RunStatus,
    /// The event name, or `workflow.scheduled`.
    pub trigger: String,
    /// The workflow's input: `{"trigger", "payload"}`.
    #[schema(value_type = Object)]
    pub input: TriggerInput,
    /// Set when the run ends with a result.
    pub result: Option<RunResult>,
    /// For failed runs (always set on them): the class of failure
    /// (`timeout`, `trap`, `guest_error`, `config_unavailable`,
    /// `host_restarted`, …), which retry policies match on.
    #[schema(value_type = Option<String>, example = "timeout")]
    pub failure_kind: Option<FailureKind>,
    /// Why the run is in its status, when not self-evident: `missed`,
    /// `overlap`, `automation paused`, `host restarted during run`, ….
    pub reason: Option<String>,
    /// 1 for a first run, then 2, 3, … for retries.
    pub attempt: u32,
    /// The run this one retries.
    pub retry_of: Option<RunId>,
    /// The next attempt, once this one failed and was retried: following
    /// `retried_by` from a first attempt reaches the last one.
    #[serde(default)]
    pub retried_by: Option<RunId>,
    /// The run this one re-runs (same input, started by an operator).
    pub rerun_of: Option<RunId>,
    /// For scheduled runs, the cron occurrence.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// A retry waiting out its backoff does not start before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// The user the workflow executes as.
    pub run_as_user_id: Option<String>,
    /// The config executed.
    pub config_id: Option<ConfigId>,
    /// Digest of the component executed (`sha256:…`).
    pub config_digest: Option<String>,
    /// What the run cost.
    pub accounting: Accounting,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Every status the run entered, oldest first.
    pub history: Vec<StatusChange>,
    /// The key whose request made the run: the event's sender, or who asked
    /// for a run now or a rerun (absent for scheduled runs, retries, and
    /// without authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The key that cancelled it (`POST …/cancel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    /// What the workflow asked of the host — HTTP requests, secret reads —
    /// in order, at most [`MAX_HOST_CALLS`](super::host_call::MAX_HOST_CALLS);
    /// empty until the run ends.
    #[serde(default)]
    pub host_calls: Vec<HostCall>,
    /// Present (true) when calls past the cap were left out of `host_calls`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_calls_truncated: bool,
}

impl Run {
    /// A new pending run of `automation` on `input`, attempt 1.
    pub fn pending(
        id: RunId,
        automation: &Automation,
        input: TriggerInput,
        now: DateTime<Utc>,
    ) -> Run {
        let scheduled_at = (input.trigger == SCHEDULED_TRIGGER)
            .then(|| input.payload["scheduled_at"].as_str()?.parse().ok())
            .flatten();
        Run {
            id,
            automation_id: automation.id.clone(),
            app_id: automation.app_id.clone(),
            status: RunStatus::Pending,
            trigger: input.trigger.clone(),
            input,
            result: None,
            failure_kind: None,
            reason: None,
            attempt: 1,
            retry_of: None,
            retried_by: None,
            rerun_of: None,
            scheduled_at,
            not_before: None,
            run_as_user_id: automation.run_as_user_id.clone(),
            config_id: automation.config_id.clone(),
            config_digest: None,
            accounting: Accounting::default(),
            created_at: now,
            started_at: None,
            finished_at: None,
            history: vec![StatusChange {
                status: RunStatus::Pending,
                at: now,
                reason: None,
            }],
            requested_by: None,
            cancelled_by: None,
            host_calls: Vec::new(),
            host_calls_truncated: false,
        }
    }

    /// The output lines of its result; none before it ends.
    pub fn output(&self) -> &[String] {
        match &self.result {
            Some(RunResult::Success { output, .. } | RunResult::Failure { output, .. }) => output,
            None => &[],
        }
    }

    /// Moves the run to `to` at `at`, recording it in the history; starting
    /// sets `started_at` (and the queued time), ending sets `finished_at`.
    pub fn transition(
        &mut self,
        to: RunStatus,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<(), RunTransitionError> {
        if !self.status.can_become(to) {
            return Err(RunTransitionError {
                from: self.status,
                to,
            });
        }
        match to {
            RunStatus::Running => {
                self.started_at = Some(at);
                self.accounting.pending_us = micros_between(self.created_at, at);
            }
            RunStatus::Pending => self.started_at = None,
            _ => self.finished_at = Some(at),
        }
        self.status = to;
        if reason.is_some() {
            self.reason.clone_from(&reason);
        }
        self.history.push(StatusChange {
            status: to,
            at,
            reason,
        });
        Ok(())
    }

    /// Ends a running run with its result: `completed` for a payload,
    /// `failed` for an error.
    pub fn finish(
        &mut self,
        result: RunResult,
        accounting: Accounting,
        at: DateTime<Utc>,
    ) -> Result<(), RunTransitionError> {
        let to = match result {
            RunResult::Success { .. } => RunStatus::Completed,
            RunResult::Failure { .. } => RunStatus::Failed,
        };
        self.transition(to, at, None)?;
        self.result = Some(result);
        self.accounting = Accounting {
            pending_us: self.accounting.pending_us,
            ..accounting
        };
        Ok(())
    }

    /// Ends a running run with the runner's report: `completed` with the
    /// payload, `failed` with the error and its kind, or `cancelled`.
    pub fn finish_with_report(
        &mut self,
        report: &RunReport,
        at: DateTime<Utc>,
    ) -> Result<(), RunTransitionError> {
        let output = report.output.lines.clone();
        let output_truncated = report.output.truncated;
        let accounting = Accounting::from(&report.accounting);
        self.host_calls.clone_from(&report.host_calls);
        self.host_calls_truncated = report.host_calls_truncated;
        match &report.outcome {
            Outcome::Completed(payload) => {
                let result = RunResult::Success {
                    payload: payload.clone(),
                    output,
                    output_truncated,
                };
                self.finish(result, accounting, at)
            }
            Outcome::Failed(failure) => {
                let result = RunResult::Failure {
                    error: failure.message.clone(),
                    output,
                    output_truncated,
                };
                self.finish(result, accounting, at)?;
                self.failure_kind = Some(failure.kind);
                Ok(())
            }
            Outcome::Cancelled => {
                self.transition(RunStatus::Cancelled, at, None)?;
                self.result = Some(RunResult::Failure {
                    error: CANCELLED_MESSAGE.to_owned(),
                    output,
                    output_truncated,
                });
                self.accounting = Accounting {
                    pending_us: self.accounting.pending_us,
                    ..accounting
                };
                Ok(())
            }
        }
    }
}

fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<u64> {
    (to - from)
        .num_microseconds()
        .and_then(|us| u64::try_from(us).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::automation::NewAutomation;
    use crate::domain::ids::IdSequence;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn automation() -> Automation {
        let new: NewAutomation = serde_json::from_value(json!({
            "name": "Digest", "type": "scheduled", "schedule": "0 9 * * *",
            "run_as_user_id": "usr_1",
        }))
        .unwrap();
        Automation::create(
            AutomationId::from_value(1),
            "default".parse().unwrap(),
            new,
            at("2026-01-01T00:00:00Z"),
        )
        .unwrap()
    }

    fn run() -> Run {
        let input = TriggerInput {
            trigger: SCHEDULED_TRIGGER.into(),
            payload: json!({"scheduled_at": "2026-02-28T09:00:00Z"}),
        };
        let id = RunId::from_value(IdSequence::default().next(5, 5));
        Run::pending(id, &automation(), input, at("2026-02-28T09:00:00Z"))
    }

    #[test]
    fn a_pending_run_carries_the_automation_context() {
        let run = run();
        assert_eq!(run.status, RunStatus::Pending);
        assert_eq!(run.scheduled_at, Some(at("2026-02-28T09:00:00Z")));
        assert_eq!(run.run_as_user_id.as_deref(), Some("usr_1"));
        assert_eq!(run.attempt, 1);
        assert_eq!(run.history.len(), 1);
    }

    #[test]
    fn transitions_record_history_and_times() {
        let mut run = run();
        run.transition(RunStatus::Running, at("2026-02-28T09:00:01Z"), None)
            .unwrap();
        assert_eq!(run.accounting.pending_us, Some(1_000_000));
        run.finish(
            RunResult::Success {
                payload: json!({"ok": true}),
                output: vec!["hi".into()],
                output_truncated: false,
            },
            Accounting {
                fuel_consumed: Some(42),
                wall_time_us: Some(80),
                ..Accounting::default()
            },
            at("2026-02-28T09:00:02Z"),
        )
        .unwrap();
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.finished_at, Some(at("2026-02-28T09:00:02Z")));
        assert_eq!(run.accounting.pending_us, Some(1_000_000));
        assert_eq!(run.accounting.fuel_consumed, Some(42));
        let statuses: Vec<_> = run.history.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [RunStatus::Pending, RunStatus::Running, RunStatus::Completed]
        );
        let error = run
            .transition(RunStatus::Cancelled, at("2026-02-28T09:00:03Z"), None)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "run cannot go from completed to cancelled"
        );
    }

    #[test]
    fn cancelling_keeps_the_reason() {
        let mut run = run();
        run.transition(
            RunStatus::Cancelled,
            at("2026-02-28T09:00:00Z"),
            Some("missed".into()),
        )
        .unwrap();
        assert_eq!(run.reason.as_deref(), Some("missed"));
        assert_eq!(run.history[1].reason.as_deref(), Some("missed"));
        assert!(run.status.is_terminal());
    }

    #[test]
    fn results_serialize_as_the_spec_shows() {
        let success = RunResult::Success {
            payload: json!({"n": 1}),
            output: vec!["line".into()],
            output_truncated: false,
        };
        assert_eq!(
            serde_json::to_value(&success).unwrap(),
            json!({"payload": {"n": 1}, "output": ["line"]})
        );
        let failure = RunResult::Failure {
            error: "Script execution timed out".into(),
            output: vec![],
            output_truncated: true,
        };
        assert_eq!(
            serde_json::to_value(&failure).unwrap(),
            json!({"error": "Script execution timed out", "output": [], "output_truncated": true})
        );
        let back: RunResult =
            serde_json::from_value(json!({"error": "x", "output": ["a"]})).unwrap();
        assert!(matches!(back, RunResult::Failure { .. }));
    }

    #[test]
    fn a_runner_report_ends_the_run() {
        use crate::domain::digest::ComponentDigest;
        use crate::domain::outcome::{CapturedOutput, Failure, TIMEOUT_MESSAGE};
        let report = |outcome| RunReport {
            outcome,
            output: CapturedOutput {
                lines: vec!["started".into()],
                truncated: true,
            },
            accounting: RunAccounting {
                component_digest: ComponentDigest::of(b"c"),
                fuel_consumed: 7,
                peak_memory_bytes: 65_536,
                wall_time: std::time::Duration::from_micros(900),
                instantiate_time: std::time::Duration::from_micros(40),
                queue_time: std::time::Duration::ZERO,
                limits: RunLimits::DEFAULT,
            },
            host_calls: vec![crate::domain::host_call::HostCall::secret("TOKEN", None)],
            host_calls_truncated: true,
        };
        let started = || {
            let mut run = run();
            run.transition(RunStatus::Running, at("2026-02-28T09:00:00Z"), None)
                .unwrap();
            run
        };
        let end = at("2026-02-28T09:00:01Z");

        let mut timed_out = started();
        let failure = Failure::new(FailureKind::Timeout, TIMEOUT_MESSAGE);
        timed_out
            .finish_with_report(&report(Outcome::Failed(failure)), end)
            .unwrap();
        assert_eq!(timed_out.status, RunStatus::Failed);
        assert_eq!(timed_out.failure_kind, Some(FailureKind::Timeout));
        assert_eq!(
            serde_json::to_value(&timed_out.result).unwrap(),
            json!({"error": "Script execution timed out", "output": ["started"], "output_truncated": true})
        );
        assert_eq!(timed_out.accounting.fuel_consumed, Some(7));
        assert_eq!(timed_out.accounting.wall_time_us, Some(900));
        assert_eq!(timed_out.accounting.pending_us, Some(0));

        let mut completed = started();
        completed
            .finish_with_report(&report(Outcome::Completed(json!({"ok": 1}))), end)
            .unwrap();
        assert_eq!(completed.status, RunStatus::Completed);
        assert_eq!(completed.failure_kind, None);

        let mut cancelled = started();
        cancelled
            .finish_with_report(&report(Outcome::Cancelled), end)
            .unwrap();
        assert_eq!(cancelled.status, RunStatus::Cancelled);
        assert_eq!(cancelled.finished_at, Some(end));
        // Host calls are kept whatever the ending.
        assert_eq!(cancelled.host_calls[0].target, "TOKEN");
        assert!(cancelled.host_calls_truncated);
        assert_eq!(timed_out.host_calls.len(), 1);
    }

    #[test]
    fn a_run_holding_the_deepest_accepted_json_reads_back() {
        use crate::domain::json::{MAX_DEPTH, check_depth};
        let nested = |depth: usize| -> Value {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            serde_json::from_str(&text).unwrap()
        };
        let mut run = run();
        // The deepest payload a request body can carry (the body is one level
        // above it), and the deepest a guest may return.
        run.input.payload = json!({ "a": nested(MAX_DEPTH - 2) });
        run.transition(RunStatus::Running, at("2026-02-28T09:00:01Z"), None)
            .unwrap();
        let payload = nested(MAX_DEPTH);
        assert_eq!(check_depth(payload.to_string().as_bytes()), Ok(()));
        let result = RunResult::Success {
            payload,
            output: vec![],
            output_truncated: false,
        };
        run.finish(result, Accounting::default(), at("2026-02-28T09:00:02Z"))
            .unwrap();
        // What the store writes and reads.
        let record = serde_json::to_vec(&run).unwrap();
        assert_eq!(serde_json::from_slice::<Run>(&record).unwrap(), run);
        // And a page of runs as the API and the CLI read it.
        let page = serde_json::to_vec(&json!({ "data": [run] })).unwrap();
        assert!(serde_json::from_slice::<Value>(&page).is_ok());
    }

    #[test]
    fn filters_match_every_given_condition() {
        let mut run = run();
        assert!(RunFilter::default().matches(&run));
        let failed_after = RunFilter {
            status: Some(RunStatus::Failed),
            since: Some(at("2026-02-28T08:00:00Z")),
            ..RunFilter::default()
        };
        assert!(!failed_after.matches(&run));
        run.status = RunStatus::Failed;
        assert!(failed_after.matches(&run));
        let until = RunFilter {
            until: Some(at("2026-02-28T09:00:00Z")),
            ..RunFilter::default()
        };
        assert!(!until.matches(&run), "until is exclusive");
        let latest = RunFilter {
            latest_attempt: true,
            trigger: Some(SCHEDULED_TRIGGER.into()),
            ..RunFilter::default()
        };
        assert!(latest.matches(&run));
        run.retried_by = Some(RunId::from_value(9));
        assert!(!latest.matches(&run));
        let other = RunFilter {
            automation: Some(AutomationId::from_value(2)),
            ..RunFilter::default()
        };
        assert!(!other.matches(&run));
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
        }
        assert!(
            "done"
                .parse::<RunStatus>()
                .unwrap_err()
                .contains("not a run status")
        );
    }
}
