//! Argument parsers and errors shared by the commands.

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde_json::Value;

use crate::domain::ids::{AutomationId, ConfigId, RunId};

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

/// A server's complaint about a request body field, in the command line's
/// terms: the field becomes its flag (`invalid \`schedule\`: …` →
/// `--schedule: …`, `invalid JSON body at \`retry.max_attempts\`: …` →
/// `--retry: \`max_attempts\` …`) and a JSON position (`at line 1 column
/// 31`) is dropped. Other messages are returned as they are.
pub fn in_flag_terms(message: &str) -> String {
    let Some((field, detail)) = ["invalid JSON body at `", "invalid `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once("`: "))
    else {
        return message.to_owned();
    };
    let detail = strip_json_position(detail);
    // Grant lists have flags of their own (one entry per flag).
    let own_flag = [
        ("capabilities.http.allowed_hosts", "--allow-host"),
        ("capabilities.secrets", "--secret"),
    ]
    .into_iter()
    .find(|(name, _)| *name == field);
    if let Some((_, flag)) = own_flag {
        return format!("{flag}: {detail}");
    }
    let (top, nested) = field.split_once('.').unwrap_or((field, ""));
    let flag = format!("--{}", top.replace('_', "-"));
    if nested.is_empty() {
        format!("{flag}: {detail}")
    } else {
        format!("{flag}: `{nested}` {detail}")
    }
}

/// serde_json's " at line 1 column 31" suffix, which means nothing on a
/// command line.
fn strip_json_position(detail: &str) -> &str {
    let Some((head, position)) = detail.rsplit_once(" at line ") else {
        return detail;
    };
    let numbers = position
        .split_once(" column ")
        .is_some_and(|(line, column)| {
            !line.is_empty()
                && !column.is_empty()
                && line
                    .bytes()
                    .chain(column.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if numbers { head } else { detail }
}

/// What an id given in the wrong place is, and where it belongs.
fn misplaced(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with(RunId::PREFIX) {
        Some(format!(
            "`{text}` is a run id, not an automation id (show it with `automata describe automationrun {text}`)"
        ))
    } else if lower.starts_with(ConfigId::PREFIX) {
        Some(format!(
            "`{text}` is a config id, not an automation id (show it with `automata describe config {text}`)"
        ))
    } else {
        None
    }
}

/// An automation id (`aut_…`, any letter case) or lookup key; a run or
/// config id is refused saying what it is.
pub fn automation_ref(text: &str) -> Result<String, String> {
    if let Some(problem) = misplaced(text) {
        return Err(problem);
    }
    if text.to_ascii_lowercase().starts_with(AutomationId::PREFIX) {
        return text
            .parse::<AutomationId>()
            .map(|id| id.to_string())
            .map_err(|_| "not an automation id (aut_ followed by 26 characters)".to_owned());
    }
    Ok(text.to_owned())
}

/// A run id (`atr_…`, any letter case); an automation id is refused saying
/// how to list its runs.
pub fn run_id(text: &str) -> Result<String, String> {
    if text.to_ascii_lowercase().starts_with(AutomationId::PREFIX) {
        return Err(format!(
            "`{text}` is an automation id, not a run id (list its runs with \
             `automata list automationruns --automation {text}`)"
        ));
    }
    text.parse::<RunId>()
        .map(|id| id.to_string())
        .map_err(|_| "not a run id (atr_ followed by 26 characters)".to_owned())
}

/// A config id (`cfg_…`, any letter case).
pub fn config_id(text: &str) -> Result<String, String> {
    text.parse::<ConfigId>()
        .map(|id| id.to_string())
        .map_err(|_| "not a config id (cfg_ followed by 26 characters)".to_owned())
}

/// A point in time: an RFC 3339 time, or a duration back from now —
/// `90s`, `15m`, `1h`, `2d`, `1w`.
pub fn time_or_ago(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time_or_ago(text, Utc::now())
}

fn parse_time_or_ago(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let usage = || {
        format!(
            "`{text}` is neither a duration (like 30m, 1h, 2d) nor an RFC 3339 time \
             (like 2026-11-28T09:00:00Z)"
        )
    };
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (amount, unit) = text.split_at(unit_at);
    let amount: i64 = amount.parse().map_err(|_| usage())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(usage()),
    };
    let ago = amount
        .checked_mul(seconds)
        .and_then(chrono::TimeDelta::try_seconds)
        .ok_or_else(usage)?;
    now.checked_sub_signed(ago).ok_or_else(usage)
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
    fn ids_are_checked_and_lowercased_and_misplaced_ones_named() {
        let id = "AUT_01JDQM3K5V8X2N7W4C9B6E1F0A";
        assert_eq!(
            automation_ref(id).unwrap(),
            "aut_01jdqm3k5v8x2n7w4c9b6e1f0a"
        );
        assert_eq!(automation_ref("nightly-report").unwrap(), "nightly-report");
        assert!(
            automation_ref("atr_01jdqm3k5v8x2n7w4c9b6e1f0a")
                .unwrap_err()
                .contains("is a run id, not an automation id")
        );
        assert!(
            automation_ref("aut_short")
                .unwrap_err()
                .contains("aut_ followed by 26 characters")
        );
        assert!(
            run_id("aut_01jdqm3k5v8x2n7w4c9b6e1f0a")
                .unwrap_err()
                .contains("list automationruns --automation")
        );
        assert_eq!(
            run_id("ATR_01JDQM3K5V8X2N7W4C9B6E1F0A").unwrap(),
            "atr_01jdqm3k5v8x2n7w4c9b6e1f0a"
        );
        assert_eq!(
            config_id("cfg_doesnotexist").unwrap_err(),
            "not a config id (cfg_ followed by 26 characters)"
        );
    }

    #[test]
    fn body_fields_are_named_as_flags() {
        assert_eq!(
            in_flag_terms("invalid `schedule`: `61 * * * *` is not a cron expression"),
            "--schedule: `61 * * * *` is not a cron expression"
        );
        assert_eq!(
            in_flag_terms(
                "invalid JSON body at `retry.max_attempts`: invalid type: string \"x\", expected u32 at line 1 column 31"
            ),
            "--retry: `max_attempts` invalid type: string \"x\", expected u32"
        );
        assert_eq!(
            in_flag_terms("invalid `run_as_user_id`: too long"),
            "--run-as-user-id: too long"
        );
        assert_eq!(
            in_flag_terms("no automation `x` in app `default`"),
            "no automation `x` in app `default`"
        );
        assert_eq!(strip_json_position("ends at line two"), "ends at line two");
    }

    #[test]
    fn times_are_durations_back_or_rfc3339() {
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let at = |text| parse_time_or_ago(text, now).map(|t| t.to_rfc3339());
        assert_eq!(at("1h").unwrap(), "2026-11-28T11:00:00+00:00");
        assert_eq!(at("90s").unwrap(), "2026-11-28T11:58:30+00:00");
        assert_eq!(at("2d").unwrap(), "2026-11-26T12:00:00+00:00");
        assert_eq!(
            at("2026-11-28T09:00:00+01:00").unwrap(),
            "2026-11-28T08:00:00+00:00"
        );
        for bad in ["1y", "h", "", "-1h", "99999999999999w"] {
            assert!(at(bad).unwrap_err().contains("neither a duration"), "{bad}");
        }
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
