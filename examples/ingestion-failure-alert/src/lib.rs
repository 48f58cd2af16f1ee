//! Turns a failed context ingestion (trigger `context.ingestion.failed`) into an
//! alert for the team. A payload without the fields an alert needs fails the run.
//!
//! The alert is printed, and, when the automation is granted the app secret
//! `ALERT_WEBHOOK_URL` (and the webhook's host), also posted there as
//! `{"text", "source_id", "severity"}`; the payload's `delivered` says
//! whether the webhook took it (`delivery_error` why not).
use automata_guest::{Context, Input, Value, http, json, log, secrets, workflow};

workflow! {
    name: "Ingestion Failure Alert",
    triggers: ["context.ingestion.failed"],
    steps: [
        ("validate", "Check the payload names the source and the error"),
        ("classify", "Rate the failure by how often the source has failed"),
        ("alert", "Format the alert for the team"),
        ("deliver", "Post it to the webhook in secret ALERT_WEBHOOK_URL, when granted"),
    ],
    run: alert,
}

/// Consecutive failures from which an alert is critical rather than a warning.
const CRITICAL_AFTER: u64 = 3;

fn alert(_ctx: &Context, input: Input) -> Result<Value, String> {
    let source_id = required(&input.payload, "source_id")?;
    let error = required(&input.payload, "error")?;
    let source = input.payload["source_name"].as_str().unwrap_or(source_id);
    let failures = input.payload["consecutive_failures"].as_u64().unwrap_or(1);

    let severity = if failures >= CRITICAL_AFTER {
        "critical"
    } else {
        "warning"
    };
    if severity == "critical" {
        log::warn(format!("{source} has failed {failures} times in a row"));
    }
    let summary = format!("[{severity}] Ingestion of {source} failed: {error}");
    println!("{summary}");
    let mut result = json!({
        "severity": severity,
        "source_id": source_id,
        "summary": summary,
        "consecutive_failures": failures,
        "delivered": false,
    });
    if let Some(webhook) = secrets::get("ALERT_WEBHOOK_URL") {
        let alert = json!({"text": summary, "source_id": source_id, "severity": severity});
        match deliver(&webhook, &alert) {
            Ok(()) => result["delivered"] = json!(true),
            Err(why) => {
                log::warn(format!("the alert was not delivered: {why}"));
                result["delivery_error"] = json!(why);
            }
        }
    }
    Ok(result)
}

/// Posts the alert; an error says why the webhook did not take it.
fn deliver(webhook: &str, alert: &Value) -> Result<(), String> {
    let response = http::post(webhook)
        .json(alert)
        .send()
        .map_err(|e| e.to_string())?;
    if response.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", response.status))
    }
}

fn required<'a>(payload: &'a Value, field: &str) -> Result<&'a str, String> {
    payload[field]
        .as_str()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("payload is missing required field `{field}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(payload: Value) -> Input {
        Input {
            trigger: "context.ingestion.failed".into(),
            payload,
        }
    }

    #[test]
    fn repeated_failures_are_critical() {
        let payload = json!({"source_id": "src_1", "error": "401", "consecutive_failures": 4});
        let alert = alert(&Context::default(), input(payload)).unwrap();
        assert_eq!(alert["severity"], "critical");
        // Natively, secrets come from the environment: no ALERT_WEBHOOK_URL
        // here, so the alert is printed only.
        assert!(std::env::var_os("ALERT_WEBHOOK_URL").is_none());
        assert_eq!(alert["delivered"], false);
        assert_eq!(
            alert["summary"],
            "[critical] Ingestion of src_1 failed: 401"
        );
    }

    #[test]
    fn missing_error_fails() {
        let err = alert(&Context::default(), input(json!({"source_id": "src_1"}))).unwrap_err();
        assert_eq!(err, "payload is missing required field `error`");
    }
}
