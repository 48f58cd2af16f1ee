//! What one run may consume: host-wide defaults, per-automation overrides and
//! the ceilings overrides may not pass.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::json::{DEFAULT_GUEST_RESULT_BYTES, MAX_GUEST_RESULT_BYTES};

/// The limits a run executes under, every one resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// Instruction budget (wasmtime fuel units; roughly one per wasm
    /// instruction). Running out fails the run with `Fuel limit exceeded (N units)`.
    pub fuel: u64,
    /// Most bytes of linear memory, summed over the component's memories.
    pub memory_bytes: u64,
    /// Wall-clock budget from the moment the run starts executing (time spent
    /// waiting for a free slot does not count).
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Most output lines kept.
    pub output_lines: usize,
    /// Most output bytes kept, over all lines.
    pub output_bytes: usize,
    /// Largest payload the workflow may return, in bytes of its JSON text;
    /// a larger one fails the run (`invalid_payload`). Runs stored before
    /// this limit existed read back with the default.
    #[serde(default = "default_guest_result_bytes")]
    pub payload_bytes: usize,
    /// Longest error message the workflow may return, in bytes; a longer
    /// one fails the run (`invalid_payload`). Defaults like `payload_bytes`.
    #[serde(default = "default_guest_result_bytes")]
    pub error_bytes: usize,
    /// Most outbound HTTP requests the run may send; past it a request
    /// fails inside the workflow. Runs stored before the HTTP limits read
    /// back with the defaults.
    #[serde(default = "default_http_requests")]
    pub http_requests: u32,
    /// Longest one HTTP request may take, response body included; the
    /// run's own `timeout_ms` ends it first when it comes sooner (and the
    /// run fails as timed out).
    #[serde(
        rename = "http_timeout_ms",
        with = "millis",
        default = "default_http_timeout"
    )]
    pub http_timeout: Duration,
    /// Largest HTTP response body, in bytes; a larger one fails the request.
    #[serde(default = "default_http_response_bytes")]
    pub http_response_bytes: u64,
    /// Most bytes of HTTP bodies, sent and received, over the whole run.
    #[serde(default = "default_http_total_bytes")]
    pub http_total_bytes: u64,
}

fn default_guest_result_bytes() -> usize {
    DEFAULT_GUEST_RESULT_BYTES
}

fn default_http_requests() -> u32 {
    RunLimits::DEFAULT.http_requests
}

fn default_http_timeout() -> Duration {
    RunLimits::DEFAULT.http_timeout
}

fn default_http_response_bytes() -> u64 {
    RunLimits::DEFAULT.http_response_bytes
}

fn default_http_total_bytes() -> u64 {
    RunLimits::DEFAULT.http_total_bytes
}

impl RunLimits {
    /// The output caps as the transcript takes them.
    pub fn output(&self) -> OutputLimits {
        OutputLimits {
            max_lines: self.output_lines,
            max_bytes: self.output_bytes,
        }
    }

    /// The host-wide defaults: generous for a workflow that formats and sends a
    /// few messages, small enough that a runaway one is stopped quickly.
    pub const DEFAULT: RunLimits = RunLimits {
        fuel: 5_000_000_000,
        memory_bytes: 64 << 20,
        timeout: Duration::from_secs(30),
        output_lines: 1_000,
        output_bytes: 1 << 20,
        payload_bytes: DEFAULT_GUEST_RESULT_BYTES,
        error_bytes: DEFAULT_GUEST_RESULT_BYTES,
        http_requests: 50,
        http_timeout: Duration::from_secs(10),
        http_response_bytes: 4 << 20,
        http_total_bytes: 16 << 20,
    };

    /// The ceilings per-automation overrides are held under by default.
    pub const DEFAULT_CEILINGS: RunLimits = RunLimits {
        fuel: 500_000_000_000,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(15 * 60),
        output_lines: 100_000,
        output_bytes: 16 << 20,
        payload_bytes: MAX_GUEST_RESULT_BYTES,
        error_bytes: MAX_GUEST_RESULT_BYTES,
        http_requests: 1_000,
        http_timeout: Duration::from_secs(15 * 60),
        http_response_bytes: 64 << 20,
        http_total_bytes: 256 << 20,
    };

    /// The budget a component's `graph` export runs under when it is loaded: a
    /// hostile `graph` must not hold up an upload. (It returns a graph, not a
    /// payload or error, so those caps do not apply.)
    pub const GRAPH: RunLimits = RunLimits {
        fuel: 100_000_000,
        memory_bytes: 64 << 20,
        timeout: Duration::from_secs(2),
        output_lines: 0,
        output_bytes: 0,
        payload_bytes: 0,
        error_bytes: 0,
        http_requests: 0,
        http_timeout: Duration::ZERO,
        http_response_bytes: 0,
        http_total_bytes: 0,
    };

    /// Each limit lowered to `ceilings` where it is above.
    pub fn clamped_to(self, ceilings: &RunLimits) -> RunLimits {
        RunLimits {
            fuel: self.fuel.min(ceilings.fuel),
            memory_bytes: self.memory_bytes.min(ceilings.memory_bytes),
            timeout: self.timeout.min(ceilings.timeout),
            output_lines: self.output_lines.min(ceilings.output_lines),
            output_bytes: self.output_bytes.min(ceilings.output_bytes),
            payload_bytes: self.payload_bytes.min(ceilings.payload_bytes),
            error_bytes: self.error_bytes.min(ceilings.error_bytes),
            http_requests: self.http_requests.min(ceilings.http_requests),
            http_timeout: self.http_timeout.min(ceilings.http_timeout),
            http_response_bytes: self.http_response_bytes.min(ceilings.http_response_bytes),
            http_total_bytes: self.http_total_bytes.min(ceilings.http_total_bytes),
        }
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits::DEFAULT
    }
}

/// Per-automation overrides of the host's default limits; a `None` field keeps
/// the default. Stored by the control plane as JSON, e.g.
/// `{"fuel": 1000000, "timeout_ms": 500}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Instruction budget (fuel units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Most bytes of linear memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Wall-clock budget in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most output lines kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_lines: Option<usize>,
    /// Most output bytes kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<usize>,
    /// Largest returned payload, in bytes of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// Longest returned error message, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_bytes: Option<usize>,
    /// Most outbound HTTP requests per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests: Option<u32>,
    /// Longest one HTTP request may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_timeout_ms: Option<u64>,
    /// Largest HTTP response body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_bytes: Option<u64>,
    /// Most bytes of HTTP bodies sent and received per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_total_bytes: Option<u64>,
}

/// The least `memory_bytes` an automation may ask for: 1 MiB. Below it a run
/// cannot even instantiate (Rust's default guest stack is 1 MiB of linear
/// memory), so such a limit is refused when stored instead of failing every
/// run with `memory_limit`.
pub const MIN_MEMORY_BYTES: u64 = 1 << 20;

/// An override the host will not honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// Zero fuel, memory or time can run nothing.
    #[error("`{field}` must be greater than zero")]
    Zero {
        /// The offending field.
        field: &'static str,
    },
    /// Less memory than any component can start in.
    #[error(
        "`memory_bytes` is {0}, below the minimum of {MIN_MEMORY_BYTES} (1 MiB): a Rust \
         component's stack alone takes 1 MiB of its linear memory, so no run could start"
    )]
    MemoryBelowMinimum(u64),
    /// Above what the host allows any automation.
    #[error("`{field}` is {value}, above the host's maximum of {maximum}")]
    AboveCeiling {
        /// The offending field.
        field: &'static str,
        /// The value asked for.
        value: u64,
        /// The host's ceiling.
        maximum: u64,
    },
}

impl LimitOverrides {
    /// These overrides laid over `defaults`, each held under `ceilings`.
    pub fn resolve(&self, defaults: &RunLimits, ceilings: &RunLimits) -> RunLimits {
        RunLimits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self.memory_bytes.unwrap_or(defaults.memory_bytes),
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            output_lines: self.output_lines.unwrap_or(defaults.output_lines),
            output_bytes: self.output_bytes.unwrap_or(defaults.output_bytes),
            payload_bytes: self.payload_bytes.unwrap_or(defaults.payload_bytes),
            error_bytes: self.error_bytes.unwrap_or(defaults.error_bytes),
            http_requests: self.http_requests.unwrap_or(defaults.http_requests),
            http_timeout: self
                .http_timeout_ms
                .map_or(defaults.http_timeout, Duration::from_millis),
            http_response_bytes: self
                .http_response_bytes
                .unwrap_or(defaults.http_response_bytes),
            http_total_bytes: self.http_total_bytes.unwrap_or(defaults.http_total_bytes),
        }
        .clamped_to(ceilings)
    }

    /// Checks the overrides against `ceilings`, so a bad one is refused when it
    /// is stored rather than silently clamped when it runs.
    pub fn validate(&self, ceilings: &RunLimits) -> Result<(), LimitsError> {
        let checks: [(&'static str, Option<u64>, u64, bool); 11] = [
            ("fuel", self.fuel, ceilings.fuel, true),
            (
                "memory_bytes",
                self.memory_bytes,
                ceilings.memory_bytes,
                true,
            ),
            (
                "timeout_ms",
                self.timeout_ms,
                duration_millis(ceilings.timeout),
                true,
            ),
            (
                "output_lines",
                self.output_lines.map(as_u64),
                as_u64(ceilings.output_lines),
                false,
            ),
            (
                "output_bytes",
                self.output_bytes.map(as_u64),
                as_u64(ceilings.output_bytes),
                false,
            ),
            (
                "payload_bytes",
                self.payload_bytes.map(as_u64),
                as_u64(ceilings.payload_bytes),
                true,
            ),
            (
                "error_bytes",
                self.error_bytes.map(as_u64),
                as_u64(ceilings.error_bytes),
                true,
            ),
            (
                "http_requests",
                self.http_requests.map(u64::from),
                u64::from(ceilings.http_requests),
                false,
            ),
            (
                "http_timeout_ms",
                self.http_timeout_ms,
                duration_millis(ceilings.http_timeout),
                true,
            ),
            (
                "http_response_bytes",
                self.http_response_bytes,
                ceilings.http_response_bytes,
                true,
            ),
            (
                "http_total_bytes",
                self.http_total_bytes,
                ceilings.http_total_bytes,
                true,
            ),
        ];
        for (field, value, maximum, must_be_positive) in checks {
            match value {
                Some(0) if must_be_positive => return Err(LimitsError::Zero { field }),
                Some(value) if value > maximum => {
                    return Err(LimitsError::AboveCeiling {
                        field,
                        value,
                        maximum,
                    });
                }
                _ => {}
            }
        }
        match self.memory_bytes {
            Some(bytes) if bytes < MIN_MEMORY_BYTES => Err(LimitsError::MemoryBelowMinimum(bytes)),
            _ => Ok(()),
        }
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Serde for a [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::duration_millis(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Caps on what one run may record. Past a cap the run goes on; further output
/// is dropped and the transcript says it was truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Most lines kept.
    pub max_lines: usize,
    /// Most bytes kept, over all lines.
    pub max_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            max_lines: 1_000,
            max_bytes: 1 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let overrides = LimitOverrides {
            fuel: Some(1_000),
            timeout_ms: Some(250),
            ..LimitOverrides::default()
        };
        let limits = overrides.resolve(&RunLimits::DEFAULT, &RunLimits::DEFAULT_CEILINGS);
        assert_eq!(limits.fuel, 1_000);
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.memory_bytes, RunLimits::DEFAULT.memory_bytes);
        assert_eq!(limits.output(), RunLimits::DEFAULT.output());
    }

    #[test]
    fn resolved_limits_never_pass_the_ceilings() {
        let overrides = LimitOverrides {
            memory_bytes: Some(u64::MAX),
            timeout_ms: Some(u64::MAX),
            ..LimitOverrides::default()
        };
        let limits = overrides.resolve(&RunLimits::DEFAULT, &RunLimits::DEFAULT_CEILINGS);
        assert_eq!(
            limits.memory_bytes,
            RunLimits::DEFAULT_CEILINGS.memory_bytes
        );
        assert_eq!(limits.timeout, RunLimits::DEFAULT_CEILINGS.timeout);
    }

    #[test]
    fn validation_names_the_offending_field() {
        let ceilings = RunLimits::DEFAULT_CEILINGS;
        assert_eq!(LimitOverrides::default().validate(&ceilings), Ok(()));
        let zero = LimitOverrides {
            timeout_ms: Some(0),
            ..LimitOverrides::default()
        };
        assert_eq!(
            zero.validate(&ceilings).unwrap_err().to_string(),
            "`timeout_ms` must be greater than zero"
        );
        let huge = LimitOverrides {
            memory_bytes: Some(1 << 40),
            ..LimitOverrides::default()
        };
        assert_eq!(
            huge.validate(&ceilings).unwrap_err().to_string(),
            "`memory_bytes` is 1099511627776, above the host's maximum of 1073741824"
        );
        let no_output = LimitOverrides {
            output_lines: Some(0),
            ..LimitOverrides::default()
        };
        assert_eq!(no_output.validate(&ceilings), Ok(()));
        let tiny = LimitOverrides {
            memory_bytes: Some(1),
            ..LimitOverrides::default()
        };
        assert_eq!(
            tiny.validate(&ceilings),
            Err(LimitsError::MemoryBelowMinimum(1))
        );
        let least = LimitOverrides {
            memory_bytes: Some(MIN_MEMORY_BYTES),
            ..LimitOverrides::default()
        };
        assert_eq!(least.validate(&ceilings), Ok(()));
    }

    #[test]
    fn overrides_round_trip_as_sparse_json_and_refuse_unknown_fields() {
        let overrides = LimitOverrides {
            fuel: Some(42),
            ..LimitOverrides::default()
        };
        let value = serde_json::to_value(overrides).unwrap();
        assert_eq!(value, json!({"fuel": 42}));
        assert_eq!(
            serde_json::from_value::<LimitOverrides>(value).unwrap(),
            overrides
        );
        assert!(serde_json::from_value::<LimitOverrides>(json!({"fuels": 1})).is_err());
    }

    #[test]
    fn result_caps_are_overridable_within_the_ceiling() {
        let ceilings = RunLimits::DEFAULT_CEILINGS;
        let bigger = LimitOverrides {
            payload_bytes: Some(4 << 20),
            ..LimitOverrides::default()
        };
        assert_eq!(bigger.validate(&ceilings), Ok(()));
        let limits = bigger.resolve(&RunLimits::DEFAULT, &ceilings);
        assert_eq!(
            (limits.payload_bytes, limits.error_bytes),
            (4 << 20, 1 << 20)
        );
        let huge = LimitOverrides {
            error_bytes: Some(32 << 20),
            ..LimitOverrides::default()
        };
        assert_eq!(
            huge.validate(&ceilings).unwrap_err().to_string(),
            "`error_bytes` is 33554432, above the host's maximum of 16777216"
        );
        let zero = LimitOverrides {
            payload_bytes: Some(0),
            ..LimitOverrides::default()
        };
        assert_eq!(
            zero.validate(&ceilings).unwrap_err().to_string(),
            "`payload_bytes` must be greater than zero"
        );
    }

    #[test]
    fn limits_stored_before_the_result_caps_read_back_with_the_defaults() {
        let mut value = serde_json::to_value(RunLimits::DEFAULT).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("payload_bytes");
        object.remove("error_bytes");
        assert_eq!(
            serde_json::from_value::<RunLimits>(value).unwrap(),
            RunLimits::DEFAULT
        );
    }

    #[test]
    fn http_limits_are_overridable_and_read_back_when_absent() {
        let ceilings = RunLimits::DEFAULT_CEILINGS;
        let overrides: LimitOverrides = serde_json::from_value(json!({
            "http_requests": 3, "http_timeout_ms": 250, "http_response_bytes": 1024
        }))
        .unwrap();
        assert_eq!(overrides.validate(&ceilings), Ok(()));
        let limits = overrides.resolve(&RunLimits::DEFAULT, &ceilings);
        assert_eq!(limits.http_requests, 3);
        assert_eq!(limits.http_timeout, Duration::from_millis(250));
        assert_eq!(limits.http_response_bytes, 1024);
        assert_eq!(limits.http_total_bytes, RunLimits::DEFAULT.http_total_bytes);
        let too_many = LimitOverrides {
            http_requests: Some(5_000),
            ..LimitOverrides::default()
        };
        assert_eq!(
            too_many.validate(&ceilings).unwrap_err().to_string(),
            "`http_requests` is 5000, above the host's maximum of 1000"
        );
        let none = LimitOverrides {
            http_requests: Some(0),
            ..LimitOverrides::default()
        };
        assert_eq!(none.validate(&ceilings), Ok(()));

        let mut value = serde_json::to_value(RunLimits::DEFAULT).unwrap();
        assert_eq!(value["http_timeout_ms"], 10_000);
        for field in [
            "http_requests",
            "http_timeout_ms",
            "http_response_bytes",
            "http_total_bytes",
        ] {
            value.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(
            serde_json::from_value::<RunLimits>(value).unwrap(),
            RunLimits::DEFAULT
        );
    }

    #[test]
    fn limits_serialize_the_timeout_in_milliseconds() {
        let value = serde_json::to_value(RunLimits::DEFAULT).unwrap();
        assert_eq!(value["timeout_ms"], 30_000);
        assert_eq!(
            serde_json::from_value::<RunLimits>(value).unwrap(),
            RunLimits::DEFAULT
        );
    }
}
