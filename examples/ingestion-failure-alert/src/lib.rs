//! Turns a failed context ingestion (trigger `context.ingestion.failed`) into an
//! alert for the team. A payload without the fields an alert needs fails the run.
use automata_guest::{Context, Input, Value, json, log, workflow};

workflow! {
    name: "Ingestion Failure Alert",
    triggers: ["context.ingestion.failed"],
    steps: [
        ("validate", "Check the payload names the source and the error"),
        ("classify", "Rate the failure by how often the source has failed"),
        ("alert", "Format the alert for the team"),
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
    Ok(json!({
        "severity": severity,
        "source_id": source_id,
        "summary": summary,
        "consecutive_failures": failures,
    }))
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
