//! Argument parsers and errors shared by the commands.

use clap::ValueEnum;
use serde_json::Value;

/// The spec's automation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutomationType {
    /// Fires when a platform event occurs.
    Trigger,
    /// Fires on a cron schedule.
    Scheduled,
}

/// The spec's run statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// A command line that parsed but makes no sense; exits with status 2 like
/// clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A value's name on the command line, which is also its name in the API.
pub fn api_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Any JSON value (`--input`, `--payload`).
pub fn json_value(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
}

/// A JSON object (`--metadata`, `--payload`).
pub fn json_object(text: &str) -> Result<Value, String> {
    match json_value(text)? {
        object @ Value::Object(_) => Ok(object),
        other => Err(format!(
            "expected a JSON object like '{{\"key\": \"value\"}}', got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn enum_values_use_the_api_names() {
        assert_eq!(api_name(AutomationType::Scheduled), "scheduled");
        assert_eq!(api_name(RunStatus::Cancelled), "cancelled");
    }

    #[test]
    fn json_arguments_are_checked_before_anything_is_sent() {
        assert_eq!(json_value("[1, 2]").unwrap(), json!([1, 2]));
        assert!(
            json_value("{oops}")
                .unwrap_err()
                .starts_with("not valid JSON")
        );
        assert_eq!(
            json_object(r#"{"team": "ops"}"#).unwrap(),
            json!({"team": "ops"})
        );
        assert!(
            json_object("[1]")
                .unwrap_err()
                .contains("expected a JSON object")
        );
    }
}
