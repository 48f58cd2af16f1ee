//! How a run ended, in words an operator reads and kinds a retry policy
//! matches on, and what it consumed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::digest::ComponentDigest;
use super::json;
use super::limits::RunLimits;

/// The error of a run that ran out of time; the spec's exact wording.
pub const TIMEOUT_MESSAGE: &str = "Script execution timed out";

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The workflow returned this JSON payload.
    Completed(Value),
    /// The run failed; see [`Failure::kind`] for why.
    Failed(Failure),
    /// The run was cancelled (the runner's cancel token, or a host shutting down).
    Cancelled,
}

impl Outcome {
    /// How a run whose `run` export returned ended: `Ok` is the payload's
    /// JSON text, `Err` the workflow's error message. The payload must fit
    /// `limits.payload_bytes`, nest at most [`json::MAX_DEPTH`] levels and be
    /// JSON; the error must fit `limits.error_bytes`. Otherwise the run fails
    /// with [`FailureKind::InvalidPayload`] and a message naming the limit.
    pub fn returned(returned: Result<String, String>, limits: &RunLimits) -> Outcome {
        let invalid =
            |message: String| Outcome::Failed(Failure::new(FailureKind::InvalidPayload, message));
        match returned {
            Ok(payload) if payload.len() > limits.payload_bytes => invalid(format!(
                "The workflow returned a payload of {} bytes, above the run's limit of {} bytes (payload_bytes)",
                payload.len(),
                limits.payload_bytes
            )),
            Ok(payload) => {
                if let Err(e) = json::check_depth(payload.as_bytes()) {
                    return invalid(format!(
                        "The workflow returned a payload the host refuses: {e}"
                    ));
                }
                match serde_json::from_str(&payload) {
                    Ok(payload) => Outcome::Completed(payload),
                    Err(e) => invalid(format!(
                        "The workflow returned a payload that is not valid JSON: {e}"
                    )),
                }
            }
            Err(message) if message.len() > limits.error_bytes => invalid(format!(
                "The workflow returned an error message of {} bytes, above the run's limit of {} bytes (error_bytes); it began: {}",
                message.len(),
                limits.error_bytes,
                prefix(&message, ERROR_PREFIX_BYTES)
            )),
            Err(message) => Outcome::Failed(Failure::new(FailureKind::GuestError, message)),
        }
    }

    /// The failure, when the run failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// How much of an over-long error message the failure quotes.
const ERROR_PREFIX_BYTES: usize = 200;

/// The first `max` bytes of `text` (fewer, to end on a character boundary).
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Why a run failed, and the message shown to operators as `result.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The class of failure, for retry policies and metrics.
    pub kind: FailureKind,
    /// Plain words, e.g. `Script execution timed out`.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// Whether running again could end differently; see
    /// [`FailureKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The classes of run failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The workflow returned `Err`; the message is the workflow's own.
    GuestError,
    /// The workflow panicked; the message quotes the panic.
    Panic,
    /// The workflow trapped (aborted, accessed memory out of bounds, …).
    Trap,
    /// The wall-clock budget ran out (`Script execution timed out`).
    Timeout,
    /// The fuel budget ran out (`Fuel limit exceeded (N units)`).
    FuelExhausted,
    /// The workflow tried to grow its memory past its limit.
    MemoryLimit,
    /// The workflow's calls nested deeper than the wasm stack allows.
    StackOverflow,
    /// The workflow returned a payload that is not JSON, or a payload or
    /// error past the run's limits (`payload_bytes`, `error_bytes`, the
    /// host's JSON depth).
    InvalidPayload,
    /// The component could not be instantiated (for instance the host was out
    /// of instance slots).
    Instantiate,
    /// The run never executed: its automation has no config, or the config
    /// (or its component) is gone or cannot be loaded.
    ConfigUnavailable,
    /// The host stopped (crashed or was killed) while the run executed.
    HostRestarted,
}

impl FailureKind {
    /// The kind's name in the API (`guest_error`, `timeout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::GuestError => "guest_error",
            FailureKind::Panic => "panic",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::FuelExhausted => "fuel_exhausted",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::StackOverflow => "stack_overflow",
            FailureKind::InvalidPayload => "invalid_payload",
            FailureKind::Instantiate => "instantiate",
            FailureKind::ConfigUnavailable => "config_unavailable",
            FailureKind::HostRestarted => "host_restarted",
        }
    }

    /// Whether running again could end differently. Timeouts, traps, panics,
    /// instantiation failures and a host dying mid-run may be transient;
    /// exhausting a fixed budget (fuel, memory, stack), returning a bad
    /// payload or a config that is gone repeats identically. A guest's own
    /// `Err` is not retryable here: retry policy decides that.
    pub fn is_retryable(self) -> bool {
        match self {
            FailureKind::Timeout
            | FailureKind::Trap
            | FailureKind::Panic
            | FailureKind::Instantiate
            | FailureKind::HostRestarted => true,
            FailureKind::GuestError
            | FailureKind::ConfigUnavailable
            | FailureKind::FuelExhausted
            | FailureKind::MemoryLimit
            | FailureKind::StackOverflow
            | FailureKind::InvalidPayload => false,
        }
    }
}

/// What a run consumed. Returned with every report, whatever the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAccounting {
    /// The digest of the component that ran.
    pub component_digest: ComponentDigest,
    /// Fuel units the run burned.
    pub fuel_consumed: u64,
    /// The most linear memory the run held at once, in bytes.
    pub peak_memory_bytes: u64,
    /// From the start of execution (after any wait for a slot) to its end.
    #[serde(rename = "wall_time_us", with = "micros")]
    pub wall_time: Duration,
    /// Of `wall_time`, the part spent instantiating the component.
    #[serde(rename = "instantiate_time_us", with = "micros")]
    pub instantiate_time: Duration,
    /// Time spent waiting for a free execution slot before starting.
    #[serde(rename = "queue_time_us", with = "micros")]
    pub queue_time: Duration,
    /// The limits the run executed under.
    pub limits: RunLimits,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// How it ended.
    pub outcome: Outcome,
    /// What it printed and logged.
    pub output: CapturedOutput,
    /// What it consumed.
    pub accounting: RunAccounting,
    /// What it asked of the host (HTTP requests, secret reads), at most
    /// [`MAX_HOST_CALLS`](crate::domain::host_call::MAX_HOST_CALLS).
    pub host_calls: Vec<crate::domain::host_call::HostCall>,
    /// Whether calls past the cap were left out of `host_calls`.
    pub host_calls_truncated: bool,
}

impl RunReport {
    /// The run's `result` object as the API shows it: `{"payload", "output"}` on
    /// success, `{"error", "output"}` otherwise, plus `"output_truncated": true`
    /// when output was capped.
    pub fn result_json(&self) -> Value {
        let mut result = match &self.outcome {
            Outcome::Completed(payload) => json!({ "payload": payload }),
            Outcome::Failed(failure) => json!({ "error": failure.message }),
            Outcome::Cancelled => json!({ "error": CANCELLED_MESSAGE }),
        };
        result["output"] = json!(self.output.lines);
        if self.output.truncated {
            result["output_truncated"] = json!(true);
        }
        result
    }
}

/// The lines a run produced, in order, and whether any were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// Output lines, without their line endings.
    pub lines: Vec<String>,
    /// True when a cap was reached and later output was dropped.
    pub truncated: bool,
}

/// The error shown for a cancelled run.
pub const CANCELLED_MESSAGE: &str = "Run cancelled";

/// Serde for a [`Duration`] as whole microseconds.
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome, lines: &[&str], truncated: bool) -> RunReport {
        RunReport {
            outcome,
            output: CapturedOutput {
                lines: lines.iter().map(|l| (*l).to_owned()).collect(),
                truncated,
            },
            accounting: RunAccounting {
                component_digest: ComponentDigest::of(b"component"),
                fuel_consumed: 10,
                peak_memory_bytes: 65_536,
                wall_time: Duration::from_micros(1_500),
                instantiate_time: Duration::from_micros(40),
                queue_time: Duration::ZERO,
                limits: RunLimits::DEFAULT,
            },
            host_calls: Vec::new(),
            host_calls_truncated: false,
        }
    }

    #[test]
    fn result_json_follows_the_spec_shapes() {
        let ok = report(Outcome::Completed(json!({"n": 1})), &["hi"], false);
        assert_eq!(
            ok.result_json(),
            json!({"payload": {"n": 1}, "output": ["hi"]})
        );
        let timed_out = report(
            Outcome::Failed(Failure::new(FailureKind::Timeout, TIMEOUT_MESSAGE)),
            &["a"],
            true,
        );
        assert_eq!(
            timed_out.result_json(),
            json!({"error": "Script execution timed out", "output": ["a"], "output_truncated": true})
        );
        let cancelled = report(Outcome::Cancelled, &[], false);
        assert_eq!(
            cancelled.result_json(),
            json!({"error": "Run cancelled", "output": []})
        );
    }

    #[test]
    fn a_returned_payload_or_error_is_held_to_the_run_limits() {
        let limits = RunLimits {
            payload_bytes: 20,
            error_bytes: 10,
            ..RunLimits::DEFAULT
        };
        let returned = |r: Result<&str, &str>| {
            Outcome::returned(r.map(str::to_owned).map_err(str::to_owned), &limits)
        };
        let failure = |outcome: Outcome| {
            let failure = outcome.failure().cloned().expect("a failure");
            (failure.kind, failure.message)
        };
        assert_eq!(
            returned(Ok(r#"{"n": 1}"#)),
            Outcome::Completed(json!({"n": 1}))
        );
        assert_eq!(
            failure(returned(Ok(&format!("\"{}\"", "x".repeat(19))))),
            (
                FailureKind::InvalidPayload,
                "The workflow returned a payload of 21 bytes, above the run's limit of 20 bytes (payload_bytes)".to_owned()
            )
        );
        assert_eq!(
            failure(returned(Err("0123456789"))),
            (FailureKind::GuestError, "0123456789".to_owned())
        );
        assert_eq!(
            failure(returned(Err("éééééé"))),
            (
                FailureKind::InvalidPayload,
                "The workflow returned an error message of 12 bytes, above the run's limit of 10 bytes (error_bytes); it began: éééééé".to_owned()
            )
        );
        assert_eq!(prefix("aé", 2), "a");
        let (kind, message) = failure(returned(Ok("{")));
        assert_eq!(kind, FailureKind::InvalidPayload);
        assert!(message.contains("not valid JSON"), "{message}");
    }

    #[test]
    fn a_returned_payload_nests_at_most_the_host_depth() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let limits = RunLimits::DEFAULT;
        assert!(matches!(
            Outcome::returned(Ok(nested(json::MAX_DEPTH)), &limits),
            Outcome::Completed(_)
        ));
        // About as deep as the reader's limit: refused by the host's rule,
        // never stored as a record that cannot be read back.
        let outcome = Outcome::returned(Ok(nested(125)), &limits);
        let failure = outcome.failure().expect("a failure");
        assert_eq!(failure.kind, FailureKind::InvalidPayload);
        assert_eq!(
            failure.message,
            "The workflow returned a payload the host refuses: it nests arrays and objects deeper than the limit of 64 levels"
        );
    }

    #[test]
    fn only_possibly_transient_failures_are_retryable() {
        assert!(FailureKind::Timeout.is_retryable());
        assert!(FailureKind::Trap.is_retryable());
        assert!(!FailureKind::GuestError.is_retryable());
        assert!(!FailureKind::FuelExhausted.is_retryable());
        assert!(FailureKind::HostRestarted.is_retryable());
        assert!(!FailureKind::ConfigUnavailable.is_retryable());
        assert!(Failure::new(FailureKind::Panic, "boom").is_retryable());
    }

    #[test]
    fn accounting_serializes_durations_in_microseconds() {
        let value =
            serde_json::to_value(&report(Outcome::Cancelled, &[], false).accounting).unwrap();
        assert_eq!(value["wall_time_us"], 1_500);
        assert_eq!(value["instantiate_time_us"], 40);
        assert_eq!(value["limits"]["timeout_ms"], 30_000);
        assert!(
            value["component_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let back: RunAccounting = serde_json::from_value(value).unwrap();
        assert_eq!(back, report(Outcome::Cancelled, &[], false).accounting);
        assert_eq!(
            serde_json::to_value(FailureKind::FuelExhausted).unwrap(),
            "fuel_exhausted"
        );
    }
}
