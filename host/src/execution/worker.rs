//! Executing one run: resolve its component, mark it running, run it in the
//! sandbox, store how it ended and, when the retry policy says so, its next
//! attempt. Also recovery of what a crashed process left behind.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Recovery, Shared, blocking};
use crate::domain::automation::{Automation, AutomationStatus, SandboxLimits};
use crate::domain::dispatch::{self, FailureClass, REASON_HOST_RESTARTED};
use crate::domain::ids::RunId;
use crate::domain::run::{Accounting, Run, RunResult, RunStatus, RunTransitionError};
use crate::domain::workflow::RunContext;
use crate::runner::{
    CANCELLED_MESSAGE, CancelToken, FailureKind, LimitOverrides, Outcome, RunOptions, RunReport,
    Workflow,
};
use crate::store::StoreError;

/// Executes the run `id`, which the queue has marked executing, and frees its
/// worker whatever happens.
pub(super) async fn execute(shared: Arc<Shared>, id: RunId, cancel: CancelToken) {
    if let Err(error) = execute_run(&shared, &id, &cancel).await {
        tracing::error!(run = %id, "run could not be executed: {error}");
    }
    shared.queue.finished(&id);
}

async fn execute_run(
    shared: &Arc<Shared>,
    id: &RunId,
    cancel: &CancelToken,
) -> Result<(), StoreError> {
    let lookup = id.clone();
    let Some(run) = blocking(shared, move |s| s.store.run(&lookup)).await? else {
        return Ok(());
    };
    // Cancelled (paused, deleted, by an operator) after it was queued.
    if run.status != RunStatus::Pending {
        return Ok(());
    }
    let (app, automation_id) = (run.app_id.clone(), run.automation_id.clone());
    let automation = blocking(shared, move |s| s.store.automation(&app, &automation_id)).await?;
    let workflow = match workflow_for(shared, &run).await? {
        Ok(workflow) => workflow,
        Err(problem) => {
            let ending = Ending::failed_without_running(&problem, None, FailureClass::Permanent);
            return record(shared, id, automation.as_ref(), ending).await;
        }
    };

    let digest = workflow.digest().to_string();
    let reason = shared.queue.cancel_reason(id).map(str::to_owned);
    let cancelled_before_start = cancel.is_cancelled();
    let start = id.clone();
    let started = blocking(shared, move |s| {
        s.store.update_run(&start, &mut |run| {
            let now = Utc::now();
            if cancelled_before_start {
                return run.transition(RunStatus::Cancelled, now, reason.clone());
            }
            run.config_digest = Some(digest.clone());
            run.transition(RunStatus::Running, now, None)
        })
    })
    .await;
    let run = match started {
        Ok(run) if run.status == RunStatus::Running => run,
        // Cancelled before it started, or no longer pending: nothing to run.
        Ok(_) | Err(StoreError::Transition(_)) => return Ok(()),
        Err(error) => return Err(error),
    };

    let context = RunContext {
        app_id: run.app_id.to_string(),
        automation_id: run.automation_id.to_string(),
        run_id: run.id.to_string(),
        run_as_user_id: run.run_as_user_id.clone(),
        scheduled_at: run
            .scheduled_at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        attempt: run.attempt,
    };
    let options = RunOptions {
        limits: automation
            .as_ref()
            .map(|automation| overrides(&automation.limits))
            .unwrap_or_default(),
        cancel: Some(cancel.clone()),
    };
    let report = shared
        .runner
        .run_with(&workflow, &context, &run.input, &options)
        .await;
    let cancel_reason = shared.queue.cancel_reason(id);
    record(
        shared,
        id,
        automation.as_ref(),
        Ending::from_report(report, cancel_reason),
    )
    .await
}

/// The compiled component of the run's config, from the cache or the store.
/// The inner error says why the run cannot execute.
async fn workflow_for(
    shared: &Arc<Shared>,
    run: &Run,
) -> Result<Result<Workflow, String>, StoreError> {
    let Some(config_id) = run.config_id.clone() else {
        return Ok(Err("the automation has no config_id to run".to_owned()));
    };
    let app = run.app_id.clone();
    let lookup = config_id.clone();
    let Some(config) = blocking(shared, move |s| s.store.config(&app, &lookup)).await? else {
        return Ok(Err(format!("config {config_id} no longer exists")));
    };
    let cached = shared
        .workflows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&config.digest)
        .cloned();
    if let Some(workflow) = cached {
        return Ok(Ok(workflow));
    }
    let digest = config.digest.clone();
    let Some(bytes) = blocking(shared, move |s| s.store.component(&digest)).await? else {
        return Ok(Err(format!(
            "the component of config {config_id} ({}) is missing from the store",
            config.digest
        )));
    };
    match shared.runner.load(&bytes).await {
        Ok(workflow) => {
            shared
                .workflows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(config.digest, workflow.clone());
            Ok(Ok(workflow))
        }
        Err(error) => Ok(Err(format!("config {config_id} cannot be loaded: {error}"))),
    }
}

fn overrides(limits: &SandboxLimits) -> LimitOverrides {
    LimitOverrides {
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        timeout_ms: limits.timeout_ms,
        ..LimitOverrides::default()
    }
}

/// How a run ended, in the store's terms.
#[derive(Debug, Clone, PartialEq)]
struct Ending {
    /// `completed`, `failed` or `cancelled`.
    status: RunStatus,
    /// Why, when there is more to say than the result.
    reason: Option<String>,
    result: RunResult,
    accounting: Accounting,
    /// For a failure: whether a retry may help.
    class: Option<FailureClass>,
}

impl Ending {
    /// A failure with no output or accounting: the run never executed.
    fn failed_without_running(error: &str, reason: Option<&str>, class: FailureClass) -> Self {
        Ending {
            status: RunStatus::Failed,
            reason: reason.map(str::to_owned),
            result: RunResult::Failure {
                error: error.to_owned(),
                output: Vec::new(),
                output_truncated: false,
            },
            accounting: Accounting::default(),
            class: Some(class),
        }
    }

    /// Maps the runner's report: payload and output, or error and output; a
    /// cancelled run keeps its output under the error `Run cancelled`.
    fn from_report(report: RunReport, cancel_reason: Option<&str>) -> Self {
        let accounting = Accounting {
            fuel_consumed: Some(report.accounting.fuel_consumed),
            peak_memory_bytes: Some(report.accounting.peak_memory_bytes),
            queued_us: None,
            execution_us: u64::try_from(report.accounting.wall_time.as_micros()).ok(),
        };
        let (output, output_truncated) = (report.output.lines, report.output.truncated);
        let (status, reason, result, class) = match report.outcome {
            Outcome::Completed(payload) => (
                RunStatus::Completed,
                None,
                RunResult::Success {
                    payload,
                    output,
                    output_truncated,
                },
                None,
            ),
            Outcome::Failed(failure) => (
                RunStatus::Failed,
                None,
                RunResult::Failure {
                    error: failure.message,
                    output,
                    output_truncated,
                },
                Some(classify(failure.kind)),
            ),
            Outcome::Cancelled => (
                RunStatus::Cancelled,
                Some(
                    cancel_reason
                        .unwrap_or(dispatch::REASON_CANCELLED_BY_OPERATOR)
                        .to_owned(),
                ),
                RunResult::Failure {
                    error: CANCELLED_MESSAGE.to_owned(),
                    output,
                    output_truncated,
                },
                None,
            ),
        };
        Ending {
            status,
            reason,
            result,
            accounting,
            class,
        }
    }

    /// Applies the ending to a pending or running run.
    fn apply(&self, run: &mut Run, at: DateTime<Utc>) -> Result<(), RunTransitionError> {
        run.transition(self.status, at, self.reason.clone())?;
        run.result = Some(self.result.clone());
        run.accounting = Accounting {
            queued_us: run.accounting.queued_us,
            ..self.accounting
        };
        Ok(())
    }
}

fn classify(kind: FailureKind) -> FailureClass {
    if kind == FailureKind::GuestError {
        FailureClass::GuestError
    } else if kind.is_retryable() {
        FailureClass::Transient
    } else {
        FailureClass::Permanent
    }
}

/// Stores the ending and, for a retryable failure, the next attempt, in one
/// write; queues the retry.
async fn record(
    shared: &Arc<Shared>,
    id: &RunId,
    automation: Option<&Automation>,
    ending: Ending,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let lookup = id.clone();
    let Some(run) = blocking(shared, move |s| s.store.run(&lookup)).await? else {
        return Ok(());
    };
    let retry = ending
        .class
        .and_then(|class| next_attempt(shared, &run, automation, class, now));
    let (finish, stored_retry) = (id.clone(), retry.clone());
    blocking(shared, move |s| {
        s.store.finish_run(
            &finish,
            &mut |run| ending.apply(run, now),
            stored_retry.as_ref(),
        )
    })
    .await?;
    if let Some(retry) = retry {
        shared.queue.enqueue([Shared::waiting(&retry)]);
    }
    Ok(())
}

/// The retry of a failed attempt, when its automation's policy allows one:
/// same input and config, `attempt + 1`, linked by `retry_of`, held back by
/// the backoff. A paused or deleted automation's runs are not retried.
fn next_attempt(
    shared: &Shared,
    run: &Run,
    automation: Option<&Automation>,
    class: FailureClass,
    now: DateTime<Utc>,
) -> Option<Run> {
    let automation = automation.filter(|a| a.status != AutomationStatus::Paused)?;
    let delay = dispatch::retry_delay(&automation.retry, run.attempt, class, rand::random())?;
    let mut retry = Run::pending(shared.mint_run_id(), automation, run.input.clone(), now);
    retry.attempt = run.attempt + 1;
    retry.retry_of = Some(run.id.clone());
    retry.config_id.clone_from(&run.config_id);
    retry.scheduled_at = run.scheduled_at;
    retry.not_before = Some(now + delay);
    Some(retry)
}

/// Page size when walking runs by status on start.
const RECOVERY_PAGE: usize = 256;

/// Runs left `running` by a previous process fail with `host restarted during
/// run` (retried when the policy allows); `pending` runs are queued again.
pub(super) fn recover(shared: &Shared) -> Result<Recovery, StoreError> {
    let mut recovery = Recovery::default();
    let now = Utc::now();
    let mut after: Option<RunId> = None;
    loop {
        let page =
            shared
                .store
                .runs_with_status(RunStatus::Running, after.as_ref(), RECOVERY_PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for run in page {
            let automation = shared.store.automation(&run.app_id, &run.automation_id)?;
            let retry = next_attempt(
                shared,
                &run,
                automation.as_ref(),
                FailureClass::Transient,
                now,
            );
            let ending = Ending::failed_without_running(
                REASON_HOST_RESTARTED,
                Some(REASON_HOST_RESTARTED),
                FailureClass::Transient,
            );
            shared.store.finish_run(
                &run.id,
                &mut |stored| ending.apply(stored, now),
                retry.as_ref(),
            )?;
            recovery.interrupted += 1;
            if let Some(retry) = retry {
                recovery.retried += 1;
                shared.queue.enqueue([Shared::waiting(&retry)]);
            }
        }
    }
    let mut after: Option<RunId> = None;
    loop {
        let page =
            shared
                .store
                .runs_with_status(RunStatus::Pending, after.as_ref(), RECOVERY_PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for run in &page {
            if let Some(automation) = shared.store.automation(&run.app_id, &run.automation_id)? {
                shared.set_limit_of(&automation);
            }
        }
        recovery.resumed += page.len();
        shared.queue.enqueue(page.iter().map(Shared::waiting));
    }
    Ok(recovery)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::runner::{CapturedOutput, ComponentDigest, Failure, RunAccounting, RunLimits};

    fn report(outcome: Outcome) -> RunReport {
        RunReport {
            outcome,
            output: CapturedOutput {
                lines: vec!["hello".into()],
                truncated: true,
            },
            accounting: RunAccounting {
                component_digest: ComponentDigest::of(b"c"),
                fuel_consumed: 7,
                peak_memory_bytes: 65_536,
                wall_time: Duration::from_micros(120),
                instantiate_time: Duration::from_micros(40),
                queue_time: Duration::ZERO,
                limits: RunLimits::DEFAULT,
            },
        }
    }

    #[test]
    fn completed_reports_become_payload_and_output() {
        let ending = Ending::from_report(report(Outcome::Completed(json!({"ok": 1}))), None);
        assert_eq!(
            serde_json::to_value(&ending.result).unwrap(),
            json!({"payload": {"ok": 1}, "output": ["hello"], "output_truncated": true})
        );
        assert_eq!(ending.accounting.fuel_consumed, Some(7));
        assert_eq!(ending.accounting.execution_us, Some(120));
        assert_eq!(ending.status, RunStatus::Completed);
        assert_eq!((ending.reason, ending.class), (None, None));
    }

    #[test]
    fn failures_keep_the_runner_message_and_class() {
        let timeout = Failure::new(FailureKind::Timeout, crate::runner::TIMEOUT_MESSAGE);
        let ending = Ending::from_report(report(Outcome::Failed(timeout)), None);
        assert_eq!(
            serde_json::to_value(&ending.result).unwrap()["error"],
            "Script execution timed out"
        );
        assert_eq!(ending.class, Some(FailureClass::Transient));
        let own = Failure::new(FailureKind::GuestError, "no such user");
        assert_eq!(
            Ending::from_report(report(Outcome::Failed(own)), None).class,
            Some(FailureClass::GuestError)
        );
        let fuel = Failure::new(FailureKind::FuelExhausted, "Fuel limit exceeded (5 units)");
        assert_eq!(
            Ending::from_report(report(Outcome::Failed(fuel)), None).class,
            Some(FailureClass::Permanent)
        );
    }

    #[test]
    fn cancelled_reports_keep_output_and_reason() {
        let ending = Ending::from_report(report(Outcome::Cancelled), Some("host shut down"));
        assert_eq!(ending.status, RunStatus::Cancelled);
        assert_eq!(ending.reason.as_deref(), Some("host shut down"));
        assert_eq!(
            serde_json::to_value(&ending.result).unwrap(),
            json!({"error": "Run cancelled", "output": ["hello"], "output_truncated": true})
        );
    }
}
