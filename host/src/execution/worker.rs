//! Executing one run: resolve its component, mark it running, run it in the
//! sandbox, store how it ended and, when the retry policy says so, its next
//! attempt. Also recovery of what a crashed process left behind.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Recovery, Shared, blocking};
use crate::domain::automation::{Automation, AutomationStatus};
use crate::domain::config::Config;
use crate::domain::dispatch::{self, FailureClass, REASON_HOST_RESTARTED};
use crate::domain::ids::RunId;
use crate::domain::outcome::{FailureKind, Outcome, RunReport};
use crate::domain::run::{Run, RunResult, RunStatus, RunTransitionError};
use crate::domain::workflow::RunContext;
use crate::metrics::RunOrigin;
use crate::runner::{CancelToken, RunOptions, RunSecrets, Workflow};
use crate::store::StoreError;

/// Executes the run `id`, which the queue has marked executing, and frees its
/// worker whatever happens.
pub(super) async fn execute(shared: Arc<Shared>, id: RunId, cancel: CancelToken) {
    let _slot = Slot {
        shared: &shared,
        id: &id,
    };
    if let Err(error) = execute_run(&shared, &id, &cancel).await {
        tracing::error!(run = %id, "run could not be executed: {error}");
    }
}

/// Frees a worker when its run is done, even if the task unwinds.
struct Slot<'a> {
    shared: &'a Shared,
    id: &'a RunId,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        // After the ending is stored: a follower that finds no live output
        // reads the stored result.
        self.shared.live.finish(self.id);
        self.shared.queue.finished(self.id);
        self.shared.ended(self.id);
    }
}

async fn execute_run(
    shared: &Arc<Shared>,
    id: &RunId,
    cancel: &CancelToken,
) -> Result<(), StoreError> {
    // The run from sled's page cache, its automation and config from the
    // catalog: no trip to a blocking thread.
    let Some(run) = shared.store.run(id)? else {
        return Ok(());
    };
    // Cancelled (paused, deleted, by an operator) after it was queued.
    if run.status != RunStatus::Pending {
        return Ok(());
    }
    let store = shared.store.as_ref();
    let automation = shared
        .catalog
        .automation(store, &run.app_id, &run.automation_id)?;
    let config = match &run.config_id {
        Some(config_id) => shared.catalog.config(store, &run.app_id, config_id)?,
        None => None,
    };
    let secrets = match automation.clone() {
        // Opening secrets reads the store and decrypts: off the async workers.
        Some(automation) if !automation.capabilities.secrets.is_empty() => {
            let app = run.app_id.clone();
            blocking(shared, move |s| {
                super::secrets::granted(
                    s.store.as_ref(),
                    s.secret_key.get(),
                    &app,
                    Some(&automation),
                )
            })
            .await?
        }
        _ => RunSecrets::default(),
    };
    let workflow = match workflow_for(shared, &run, config.as_deref()).await? {
        Ok(workflow) => workflow,
        Err(problem) => {
            let ending = Ending::not_run(&problem, None, FailureKind::ConfigUnavailable);
            return record(shared, &run, automation.as_deref(), ending, None).await;
        }
    };

    // Followers find the output from before the run is marked running.
    let live = shared.live.start(id);
    if cancel.is_cancelled() {
        // Cancelled before it started: its one write is the cancellation.
        let reason = shared.queue.cancel_reason(id).map(str::to_owned);
        let cancelled = Box::new(move |run: &mut Run| {
            run.transition(RunStatus::Cancelled, Utc::now(), reason.clone())
        });
        return match shared
            .store
            .writer()
            .change_run(id.clone(), cancelled, None, false)
            .await
        {
            Ok(run) => {
                shared.run_ended(&run);
                Ok(())
            }
            // No longer pending: nothing to run.
            Err(StoreError::Transition(_)) => Ok(()),
            Err(error) => Err(error),
        };
    }
    // Running in memory only: the run's one write is its ending (a long
    // run's start is written too, after `START_WRITE_AFTER`).
    let start = Start {
        at: Utc::now(),
        digest: workflow.digest().to_string(),
    };
    let Some(run) = shared.store.claim_run(id, &mut |run| start.apply(run))? else {
        // Cancelled or gone since it was read: nothing to run.
        return Ok(());
    };
    let _claimed = Claimed { shared, id };

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
            .as_deref()
            .map(|automation| automation.limits)
            .unwrap_or_default(),
        capabilities: automation
            .as_deref()
            .map(|automation| automation.capabilities.clone())
            .unwrap_or_default(),
        cancel: Some(cancel.clone()),
        live: Some(live),
        secrets,
    };
    let execution = shared
        .runner
        .run_with(&workflow, &context, &run.input, &options);
    let report = writing_start_if_long(shared, id, &start, execution).await;
    let ending = Ending::Ran {
        report,
        cancel_reason: shared.queue.cancel_reason(id).map(str::to_owned),
    };
    record(shared, &run, automation.as_deref(), ending, Some(start)).await
}

/// How long a run executes with its start in memory only before the start
/// is written as well. A crash before then finds the run pending and runs it
/// again; after, it fails the run `host restarted` (retried when its policy
/// allows), so a run that brings the host down is not run again forever.
/// Most runs end well before: their one write is their ending.
pub(super) const START_WRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// A run's start, kept in memory and applied to the stored run with its
/// ending (or on its own for a long run).
#[derive(Debug, Clone)]
struct Start {
    at: DateTime<Utc>,
    /// The digest of the component it runs.
    digest: String,
}

impl Start {
    /// Pending → running at the start's time, with the component's digest.
    fn apply(&self, run: &mut Run) -> Result<(), RunTransitionError> {
        run.config_digest = Some(self.digest.clone());
        run.transition(RunStatus::Running, self.at, None)
    }
}

/// Releases a run started in memory once its worker is done with it (its
/// ending stored, or not storable), even if the task unwinds.
struct Claimed<'a> {
    shared: &'a Shared,
    id: &'a RunId,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.shared.store.release_run(self.id);
    }
}

/// Awaits `execution`; once it has taken [`START_WRITE_AFTER`], stores the
/// run's start (run progress) while it goes on.
async fn writing_start_if_long(
    shared: &Shared,
    id: &RunId,
    start: &Start,
    execution: impl std::future::Future<Output = RunReport>,
) -> RunReport {
    let mut execution = std::pin::pin!(execution);
    tokio::select! {
        report = &mut execution => return report,
        () = tokio::time::sleep(START_WRITE_AFTER) => {}
    }
    let start = start.clone();
    let write = shared.store.writer().change_run(
        id.clone(),
        Box::new(move |run: &mut Run| start.apply(run)),
        None,
        false,
    );
    let (report, written) = tokio::join!(execution, write);
    if let Err(error) = written {
        // The ending is stored all the same; only the crash rule differs.
        tracing::warn!(run = %id, "the start of a long run was not stored: {error}");
    }
    report
}

/// The compiled component of the run's `config`, from the cache or the
/// store. The inner error says why the run cannot execute.
async fn workflow_for(
    shared: &Arc<Shared>,
    run: &Run,
    config: Option<&Config>,
) -> Result<Result<Workflow, String>, StoreError> {
    let Some(config_id) = run.config_id.clone() else {
        return Ok(Err("the automation has no config_id to run".to_owned()));
    };
    let Some(config) = config else {
        return Ok(Err(format!("config {config_id} no longer exists")));
    };
    let cached = config
        .digest
        .parse()
        .ok()
        .and_then(|digest| shared.runner.cached(&digest));
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
            shared.metrics.compile_cache(workflow.from_cache());
            Ok(Ok(workflow))
        }
        Err(error) => Ok(Err(format!("config {config_id} cannot be loaded: {error}"))),
    }
}

/// How a run ended, in the store's terms.
// One per run, built once and consumed: boxing the report would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    /// It executed: the runner's report, and the reason it was cancelled if
    /// it was.
    Ran {
        report: RunReport,
        cancel_reason: Option<String>,
    },
    /// It could not execute (or its host died): a failure of `kind` with no
    /// output.
    NotRun {
        error: String,
        reason: Option<String>,
        kind: FailureKind,
    },
}

impl Ending {
    fn not_run(error: &str, reason: Option<&str>, kind: FailureKind) -> Self {
        Ending::NotRun {
            error: error.to_owned(),
            reason: reason.map(str::to_owned),
            kind,
        }
    }

    /// For a failure: whether a retry may help.
    fn class(&self) -> Option<FailureClass> {
        match self {
            Ending::Ran { report, .. } => report.outcome.failure().map(|f| classify(f.kind)),
            Ending::NotRun { kind, .. } => Some(classify(*kind)),
        }
    }

    /// [`apply`](Self::apply), then links the run to its retry, if any.
    fn apply_linked(
        &self,
        run: &mut Run,
        at: DateTime<Utc>,
        retry: Option<&RunId>,
    ) -> Result<(), RunTransitionError> {
        self.apply(run, at)?;
        run.retried_by = retry.cloned();
        Ok(())
    }

    /// Applies the ending to a pending or running run: `{payload, output}` or
    /// `{error, output}`; a cancelled run keeps its output under the error
    /// `Run cancelled` and says why.
    fn apply(&self, run: &mut Run, at: DateTime<Utc>) -> Result<(), RunTransitionError> {
        match self {
            Ending::Ran {
                report,
                cancel_reason,
            } => {
                run.finish_with_report(report, at)?;
                if report.outcome == Outcome::Cancelled {
                    let reason = cancel_reason
                        .clone()
                        .unwrap_or_else(|| dispatch::REASON_CANCELLED_BY_OPERATOR.to_owned());
                    if let Some(change) = run.history.last_mut() {
                        change.reason = Some(reason.clone());
                    }
                    run.reason = Some(reason);
                }
                Ok(())
            }
            Ending::NotRun {
                error,
                reason,
                kind,
            } => {
                run.transition(RunStatus::Failed, at, reason.clone())?;
                run.result = Some(RunResult::Failure {
                    error: error.clone(),
                    output: Vec::new(),
                    output_truncated: false,
                });
                run.failure_kind = Some(*kind);
                Ok(())
            }
        }
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

/// Stores the ending of `run` and, for a retryable failure, its next
/// attempt (linked both ways: `retry_of`, `retried_by`), in one write —
/// with the run's `start` when it is still pending on disk (started in
/// memory); queues the retry.
async fn record(
    shared: &Arc<Shared>,
    run: &Run,
    automation: Option<&Automation>,
    ending: Ending,
    start: Option<Start>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let retry = ending
        .class()
        .and_then(|class| next_attempt(shared, run, automation, class, now));
    let retry_id = retry.as_ref().map(|r| r.id.clone());
    let finish = Box::new(move |run: &mut Run| {
        if let Some(start) = &start
            && run.status == RunStatus::Pending
        {
            start.apply(run)?;
        }
        ending.apply_linked(run, now, retry_id.as_ref())
    });
    // Run progress, like the start.
    let ended = shared
        .store
        .writer()
        .change_run(run.id.clone(), finish, retry.clone(), false)
        .await?;
    shared.run_ended(&ended);
    if let Some(retry) = retry {
        shared.metrics.run_created(&retry, RunOrigin::Retry);
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
            let ending = Ending::not_run(
                REASON_HOST_RESTARTED,
                Some(REASON_HOST_RESTARTED),
                FailureKind::HostRestarted,
            );
            let retry_id = retry.as_ref().map(|r| &r.id);
            let ended = shared.store.finish_run(
                &run.id,
                &mut |stored| ending.apply_linked(stored, now, retry_id),
                retry.as_ref(),
            )?;
            shared.run_ended(&ended);
            recovery.interrupted += 1;
            if let Some(retry) = retry {
                recovery.retried += 1;
                shared.metrics.run_created(&retry, RunOrigin::Retry);
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
    // Interrupted runs ended as run progress: on disk before serving.
    shared.store.flush()?;
    Ok(recovery)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::domain::digest::ComponentDigest;
    use crate::domain::limits::RunLimits;
    use crate::domain::outcome::{CapturedOutput, Failure, RunAccounting};

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
            host_calls: Vec::new(),
            host_calls_truncated: false,
        }
    }

    fn pending_run() -> Run {
        let new: crate::domain::automation::NewAutomation = serde_json::from_value(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
        )
        .unwrap();
        let now = "2026-02-28T09:00:00Z".parse().unwrap();
        let automation = Automation::create(
            crate::domain::ids::AutomationId::from_value(1),
            "default".parse().unwrap(),
            new,
            now,
        )
        .unwrap();
        let input = crate::domain::workflow::TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let mut run = Run::pending(RunId::from_value(2), &automation, input, now);
        run.transition(RunStatus::Running, now, None).unwrap();
        run
    }

    fn ended(ending: &Ending) -> Run {
        let mut run = pending_run();
        ending
            .apply(&mut run, "2026-02-28T09:00:01Z".parse().unwrap())
            .unwrap();
        run
    }

    #[test]
    fn completed_reports_become_payload_and_output() {
        let ending = Ending::Ran {
            report: report(Outcome::Completed(json!({"ok": 1}))),
            cancel_reason: None,
        };
        let run = ended(&ending);
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(
            serde_json::to_value(&run.result).unwrap(),
            json!({"payload": {"ok": 1}, "output": ["hello"], "output_truncated": true})
        );
        assert_eq!(run.accounting.fuel_consumed, Some(7));
        assert_eq!(ending.class(), None);
    }

    #[test]
    fn failures_keep_the_runner_message_and_class() {
        let class_of = |failure: Failure| {
            Ending::Ran {
                report: report(Outcome::Failed(failure)),
                cancel_reason: None,
            }
            .class()
        };
        let timeout = Failure::new(
            FailureKind::Timeout,
            crate::domain::outcome::TIMEOUT_MESSAGE,
        );
        let ending = Ending::Ran {
            report: report(Outcome::Failed(timeout.clone())),
            cancel_reason: None,
        };
        assert_eq!(
            serde_json::to_value(&ended(&ending).result).unwrap()["error"],
            "Script execution timed out"
        );
        assert_eq!(class_of(timeout), Some(FailureClass::Transient));
        let own = Failure::new(FailureKind::GuestError, "no such user");
        assert_eq!(class_of(own), Some(FailureClass::GuestError));
        let fuel = Failure::new(FailureKind::FuelExhausted, "Fuel limit exceeded (5 units)");
        assert_eq!(class_of(fuel), Some(FailureClass::Permanent));
    }

    #[test]
    fn cancelled_reports_keep_output_and_reason() {
        let ending = Ending::Ran {
            report: report(Outcome::Cancelled),
            cancel_reason: Some("host shut down".into()),
        };
        let run = ended(&ending);
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.reason.as_deref(), Some("host shut down"));
        assert_eq!(
            run.history.last().unwrap().reason.as_deref(),
            Some("host shut down")
        );
        assert_eq!(
            serde_json::to_value(&run.result).unwrap(),
            json!({"error": "Run cancelled", "output": ["hello"], "output_truncated": true})
        );
    }

    #[test]
    fn runs_that_never_executed_fail_with_the_reason() {
        let ending = Ending::not_run(
            REASON_HOST_RESTARTED,
            Some(REASON_HOST_RESTARTED),
            FailureKind::HostRestarted,
        );
        let run = ended(&ending);
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.reason.as_deref(), Some(REASON_HOST_RESTARTED));
        assert_eq!(run.failure_kind, Some(FailureKind::HostRestarted));
        assert_eq!(
            serde_json::to_value(&run.result).unwrap(),
            json!({"error": "host restarted during run", "output": []})
        );
        assert_eq!(ending.class(), Some(FailureClass::Transient));
        let gone = Ending::not_run(
            "config cfg_x no longer exists",
            None,
            FailureKind::ConfigUnavailable,
        );
        let mut run = pending_run();
        let retry = RunId::from_value(3);
        gone.apply_linked(
            &mut run,
            "2026-02-28T09:00:01Z".parse().unwrap(),
            Some(&retry),
        )
        .unwrap();
        assert_eq!(run.failure_kind, Some(FailureKind::ConfigUnavailable));
        assert_eq!(run.retried_by, Some(retry));
        assert_eq!(gone.class(), Some(FailureClass::Permanent));
    }
}
