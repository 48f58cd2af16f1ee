//! Execution-plane rules: whether a tick becomes a run, how many runs of an
//! automation execute at once, whether and when a failed attempt is retried,
//! and the reasons recorded on runs that did not run.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::automation::{Automation, CatchupPolicy, OverlapPolicy, RetryPolicy};
use super::catchup::CatchUp;

/// Reason of the cancelled run that records missed cron ticks.
pub const REASON_MISSED: &str = "missed";
/// Reason of a tick skipped because a run of its automation was active.
pub const REASON_OVERLAP: &str = "overlap";
/// Reason of a run that was executing when the host died.
pub const REASON_HOST_RESTARTED: &str = "host restarted during run";
/// Reason of a run cancelled through the API.
pub const REASON_CANCELLED_BY_OPERATOR: &str = "cancelled by operator";
/// Reason of a tick that found the run queue full.
pub const REASON_QUEUE_FULL: &str = "queue full";
/// Reason of a run still executing when the shutdown grace period ended.
pub const REASON_HOST_SHUT_DOWN: &str = "host shut down";
/// Reason of a pending or executing run whose automation was deleted.
pub const REASON_AUTOMATION_DELETED: &str = "automation deleted";
/// Reason of a pending run whose automation was paused.
pub const REASON_AUTOMATION_PAUSED: &str = "automation paused";

/// How long an event's idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);

/// Whether an idempotency key recorded at `recorded_at` still dedupes at `now`.
pub fn idempotency_key_live(recorded_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - recorded_at < IDEMPOTENCY_WINDOW
}

/// The catch-up rule of a scheduled automation.
pub fn catch_up(automation: &Automation) -> CatchUp {
    match automation.catchup {
        CatchupPolicy::Skip => CatchUp::Skip,
        CatchupPolicy::RunOnce => CatchUp::RunOnce,
        CatchupPolicy::RunAll => CatchUp::RunAll {
            window: TimeDelta::seconds(
                i64::try_from(automation.catchup_window_seconds).unwrap_or(i64::MAX),
            ),
        },
    }
}

/// What becomes of a cron tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAdmission {
    /// A pending run (a `queue` automation's runs then execute one at a time).
    Enqueue,
    /// A run recorded as cancelled with this reason.
    Cancel(&'static str),
}

/// Admits a tick of an automation that has `active_runs` runs pending or
/// running.
pub fn admit_tick(overlap: OverlapPolicy, active_runs: usize) -> TickAdmission {
    match overlap {
        OverlapPolicy::Skip if active_runs > 0 => TickAdmission::Cancel(REASON_OVERLAP),
        OverlapPolicy::Allow | OverlapPolicy::Skip | OverlapPolicy::Queue => TickAdmission::Enqueue,
    }
}

/// How many runs of `automation` may execute at once; `None` is unlimited.
/// `overlap: queue` lines runs up one behind the other.
pub fn concurrency_limit(automation: &Automation) -> Option<usize> {
    let configured = automation
        .max_concurrency
        .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
    match automation.overlap {
        OverlapPolicy::Queue => Some(configured.map_or(1, |limit| limit.min(1))),
        OverlapPolicy::Allow | OverlapPolicy::Skip => configured,
    }
}

/// How an attempt failed, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Could end differently next time: a timeout, a trap, a panic, a failed
    /// instantiation, the host dying mid-run.
    Transient,
    /// The workflow returned its own `Err`: retried only when the policy says so.
    GuestError,
    /// Repeats identically: a spent fuel, memory or stack budget, a bad payload.
    Permanent,
}

/// The delay before retrying attempt `attempt` (1 for a first run) that
/// failed as `class`, or `None` when it is not retried. `unit_random` in
/// `[0, 1)` drives the jitter.
pub fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    class: FailureClass,
    unit_random: f64,
) -> Option<Duration> {
    let retryable = match class {
        FailureClass::Transient => true,
        FailureClass::GuestError => policy.retry_guest_errors,
        FailureClass::Permanent => false,
    };
    (retryable && attempt < policy.max_attempts)
        .then(|| policy.delay_before(attempt + 1, unit_random))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::automation::NewAutomation;
    use crate::domain::ids::AutomationId;

    fn automation(extra: serde_json::Value) -> Automation {
        let mut fields = json!({"name": "Digest", "type": "scheduled", "schedule": "* * * * *"});
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let new: NewAutomation = serde_json::from_value(fields).unwrap();
        let now = "2026-02-28T09:00:00Z".parse().unwrap();
        Automation::create(
            AutomationId::from_value(1),
            "default".parse().unwrap(),
            new,
            now,
        )
        .unwrap()
    }

    #[test]
    fn overlap_skip_cancels_only_while_a_run_is_active() {
        assert_eq!(admit_tick(OverlapPolicy::Skip, 0), TickAdmission::Enqueue);
        assert_eq!(
            admit_tick(OverlapPolicy::Skip, 1),
            TickAdmission::Cancel(REASON_OVERLAP)
        );
        assert_eq!(admit_tick(OverlapPolicy::Allow, 3), TickAdmission::Enqueue);
        assert_eq!(admit_tick(OverlapPolicy::Queue, 3), TickAdmission::Enqueue);
    }

    #[test]
    fn concurrency_follows_max_concurrency_and_queue() {
        assert_eq!(concurrency_limit(&automation(json!({}))), None);
        assert_eq!(
            concurrency_limit(&automation(json!({"max_concurrency": 3}))),
            Some(3)
        );
        assert_eq!(
            concurrency_limit(&automation(json!({"overlap": "queue"}))),
            Some(1)
        );
        assert_eq!(
            concurrency_limit(&automation(
                json!({"overlap": "queue", "max_concurrency": 4})
            )),
            Some(1)
        );
    }

    #[test]
    fn catch_up_maps_the_policy_and_window() {
        assert_eq!(catch_up(&automation(json!({}))), CatchUp::Skip);
        assert_eq!(
            catch_up(&automation(json!({"catchup": "run_once"}))),
            CatchUp::RunOnce
        );
        assert_eq!(
            catch_up(&automation(
                json!({"catchup": "run_all", "catchup_window_seconds": 600})
            )),
            CatchUp::RunAll {
                window: TimeDelta::minutes(10)
            }
        );
    }

    #[test]
    fn retries_follow_the_policy() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            retry_guest_errors: false,
        };
        // Equal jitter: half of the exponential delay is fixed, half random.
        assert_eq!(
            retry_delay(&policy, 1, FailureClass::Transient, 0.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_delay(&policy, 1, FailureClass::Transient, 0.5),
            Some(Duration::from_millis(750))
        );
        assert_eq!(
            retry_delay(&policy, 2, FailureClass::Transient, 0.0),
            Some(Duration::from_millis(1_000))
        );
        // The third attempt was the last.
        assert_eq!(retry_delay(&policy, 3, FailureClass::Transient, 0.0), None);
        assert_eq!(retry_delay(&policy, 1, FailureClass::GuestError, 0.0), None);
        assert_eq!(retry_delay(&policy, 1, FailureClass::Permanent, 0.0), None);
        let lenient = RetryPolicy {
            retry_guest_errors: true,
            ..policy
        };
        assert!(retry_delay(&lenient, 1, FailureClass::GuestError, 0.0).is_some());
        assert_eq!(retry_delay(&lenient, 1, FailureClass::Permanent, 0.0), None);
        // The default policy never retries.
        assert_eq!(
            retry_delay(&RetryPolicy::default(), 1, FailureClass::Transient, 0.0),
            None
        );
    }

    #[test]
    fn idempotency_keys_live_for_a_day() {
        let at: DateTime<Utc> = "2026-02-28T09:00:00Z".parse().unwrap();
        assert!(idempotency_key_live(at, at + TimeDelta::hours(23)));
        assert!(!idempotency_key_live(at, at + TimeDelta::hours(24)));
    }
}
