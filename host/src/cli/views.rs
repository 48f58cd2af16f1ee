//! How automations, runs, configs and events look in tables and detail views.
//! Every view reads the server's JSON leniently: a missing field shows as "-".

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::output::{
    Cell, Printer, ago, bytes, cell, count, duration_ms, indent, indented_json, out, outln, text,
    timestamp, when,
};

/// The items of a `{"data": [...]}` list.
pub fn items(list: &Value) -> &[Value] {
    list.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub fn automations_table(out: &Printer, automations: &[Value], now: DateTime<Utc>) {
    let rows = automations
        .iter()
        .map(|a| {
            vec![
                cell(a, "id"),
                cell(a, "name"),
                cell(a, "type"),
                out.status(&text(a, "status")),
                Cell::from(fires_on(a)),
                cell(a, "config_id"),
                ago(a, "next_run_at", now),
                ago(a, "updated_at", now),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "NAME",
            "TYPE",
            "STATUS",
            "TRIGGER/SCHEDULE",
            "CONFIG",
            "NEXT RUN",
            "UPDATED",
        ],
        rows,
    );
}

/// The event name, or the cron expression with its time zone when not UTC.
fn fires_on(automation: &Value) -> String {
    let trigger = text(automation, "trigger");
    if !trigger.is_empty() {
        return trigger;
    }
    let schedule = text(automation, "schedule");
    match text(automation, "timezone").as_str() {
        "" | "UTC" | "Etc/UTC" => schedule,
        zone => format!("{schedule} ({zone})"),
    }
    .trim()
    .to_owned()
}

pub fn automation_detail(out: &Printer, a: &Value, now: DateTime<Utc>) {
    let mut fields: Vec<(&str, Cell)> = vec![
        ("ID", cell(a, "id")),
        ("Name", cell(a, "name")),
        ("Type", cell(a, "type")),
        ("Status", out.status(&text(a, "status"))),
    ];
    let scheduled = text(a, "type") == "scheduled";
    for (label, key) in [
        ("Description", "description"),
        ("Trigger", "trigger"),
        ("Schedule", "schedule"),
        ("Time zone", if scheduled { "timezone" } else { "" }),
        ("Config", "config_id"),
        ("Run as user", "run_as_user_id"),
        ("Lookup key", "lookup_key"),
    ] {
        if !text(a, key).is_empty() {
            fields.push((label, cell(a, key)));
        }
    }
    if let Some(metadata) = a.get("metadata").filter(|m| !is_empty_json(m)) {
        fields.push(("Metadata", Cell::from(metadata.to_string())));
    }
    for (label, value) in policies(a) {
        fields.push((label, Cell::from(value)));
    }
    for (label, value) in grants(a) {
        fields.push((label, Cell::from(value)));
    }
    for (label, key) in [
        ("Next run", "next_run_at"),
        ("Created", "created_at"),
        ("Updated", "updated_at"),
    ] {
        if let Some(value) = when(a, key, now) {
            fields.push((label, value));
        }
    }
    for (label, key) in [("Created by", "created_by"), ("Updated by", "updated_by")] {
        if !text(a, key).is_empty() {
            fields.push((label, cell(a, key)));
        }
    }
    out.fields(&fields);
    print_other_fields(
        a,
        &[
            "id",
            "name",
            "type",
            "status",
            "description",
            "trigger",
            "schedule",
            "timezone",
            "config_id",
            "run_as_user_id",
            "lookup_key",
            "metadata",
            "catchup",
            "catchup_window_seconds",
            "overlap",
            "max_concurrency",
            "retry",
            "limits",
            "capabilities",
            "next_run_at",
            "next_run_at_if_running",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
            "app_id",
        ],
    );
}

/// An automation's `capabilities`, one line per grant ("none" when it
/// grants nothing: deny by default). Absent from a server without the field.
fn grants(a: &Value) -> Vec<(&'static str, String)> {
    let Some(capabilities) = a.get("capabilities") else {
        return Vec::new();
    };
    let list = |value: &Value| {
        let items: Vec<&str> = value
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    vec![
        (
            "Allowed hosts",
            list(&capabilities["http"]["allowed_hosts"]),
        ),
        ("Secrets", list(&capabilities["secrets"])),
    ]
}

/// A schedule preview (`GET …/automations/schedule`): how the expression
/// reads, then its fire times under `heading`.
pub fn schedule_preview(out: &Printer, preview: &Value, heading: &str) {
    out.fields(&[
        ("Expression", cell(preview, "expression")),
        ("Time zone", cell(preview, "timezone")),
        ("Description", cell(preview, "description")),
    ]);
    outln!();
    fire_times(out, preview, heading);
}

/// A preview's fire times, in its zone and in UTC.
pub fn fire_times(out: &Printer, preview: &Value, heading: &str) {
    let times: Vec<DateTime<Utc>> = preview["next"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
        .collect();
    if times.is_empty() {
        outln!("{heading}: none (the schedule has no fire times left)");
        return;
    }
    let zone = text(preview, "timezone").parse::<chrono_tz::Tz>().ok();
    let rows = times
        .iter()
        .map(|at| {
            let utc = Cell::from(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            match zone {
                Some(zone) => vec![
                    Cell::from(
                        at.with_timezone(&zone)
                            .format("%a %Y-%m-%d %H:%M:%S %Z")
                            .to_string(),
                    ),
                    utc,
                ],
                None => vec![utc],
            }
        })
        .collect();
    match zone {
        Some(zone) => {
            let local = format!("{} ({})", heading.to_uppercase(), zone.name());
            out.table(&[&local, "UTC"], rows);
        }
        None => out.table(&[&heading.to_uppercase()], rows),
    }
}

/// The execution policies, in words: catch-up and overlap (they are about
/// cron ticks, so scheduled automations only), concurrency, retries and
/// sandbox limit overrides.
fn policies(a: &Value) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    let catchup = text(a, "catchup");
    if text(a, "type") == "scheduled" && !catchup.is_empty() {
        let window = a["catchup_window_seconds"].as_u64();
        lines.push((
            "Catch-up",
            match window {
                Some(seconds) if catchup == "run_all" => {
                    format!(
                        "{catchup} (window {})",
                        duration_ms(seconds as f64 * 1000.0)
                    )
                }
                _ => catchup,
            },
        ));
    }
    if text(a, "type") == "scheduled" && !text(a, "overlap").is_empty() {
        lines.push(("Overlap", text(a, "overlap")));
    }
    if let Some(max) = a["max_concurrency"].as_u64() {
        lines.push(("Max concurrency", max.to_string()));
    }
    if let Some(retry) = a
        .get("retry")
        .filter(|r| r["max_attempts"].as_u64() > Some(1))
    {
        let mut words = format!(
            "up to {} attempts, backoff {}–{}",
            text(retry, "max_attempts"),
            duration_ms(retry["backoff_base_ms"].as_f64().unwrap_or_default()),
            duration_ms(retry["backoff_max_ms"].as_f64().unwrap_or_default()),
        );
        if retry["retry_guest_errors"] == Value::Bool(true) {
            words.push_str(", workflow errors retried");
        }
        lines.push(("Retry", words));
    }
    if let Some(limits) = a
        .get("limits")
        .map(limits_in_words)
        .filter(|l| !l.is_empty())
    {
        lines.push(("Limits", limits));
    }
    lines
}

/// Sandbox limits (an automation's overrides, or those a run ran under) as
/// "fuel 1,000,000, memory 64.0 MiB, timeout 5s"; unset ones are left out.
fn limits_in_words(limits: &Value) -> String {
    let words: Vec<String> = limits
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let number = value.as_u64()?;
            Some(match key.as_str() {
                "fuel" => format!("fuel {}", count(number)),
                "memory_bytes" => format!("memory {}", bytes(number)),
                "timeout_ms" => format!("timeout {}", duration_ms(number as f64)),
                "output_lines" => format!("output {} lines", count(number)),
                "output_bytes" => format!("output {}", bytes(number)),
                "payload_bytes" => format!("payload {}", bytes(number)),
                "error_bytes" => format!("error {}", bytes(number)),
                other => format!("{other} {number}"),
            })
        })
        .collect();
    words.join(", ")
}

/// Runs as a table; the automation column only where runs of several
/// automations can meet (an event's runs, the list across automations).
pub fn runs_table(out: &Printer, runs: &[Value], with_automation: bool, now: DateTime<Utc>) {
    let rows = runs
        .iter()
        .map(|r| {
            let mut row = vec![cell(r, "id")];
            if with_automation {
                row.push(cell(r, "automation_id"));
            }
            row.extend([
                out.status(&text(r, "status")),
                cell(r, "trigger"),
                cell(r, "attempt"),
                ago(r, "created_at", now),
                Cell::from(run_duration(r).map_or_else(|| "-".to_owned(), duration_ms)),
                Cell::from(one_line(&run_problem(r), 60)),
            ]);
            row
        })
        .collect();
    let mut headers = vec!["ID"];
    if with_automation {
        headers.push("AUTOMATION");
    }
    headers.extend([
        "STATUS", "TRIGGER", "ATTEMPT", "CREATED", "DURATION", "ERROR",
    ]);
    out.table(&headers, rows);
}

/// Wall time between start and finish, in milliseconds.
fn run_duration(run: &Value) -> Option<f64> {
    let started = timestamp(run, "started_at")?;
    let finished = timestamp(run, "finished_at")?;
    let micros = finished.signed_duration_since(started).num_microseconds()?;
    Some(micros as f64 / 1000.0)
}

/// What went wrong with a run: its result's error, or the reason it was
/// cancelled or failed without a result.
fn run_problem(run: &Value) -> String {
    let error = run
        .get("result")
        .map(|r| text(r, "error"))
        .unwrap_or_default();
    if error.is_empty() {
        text(run, "reason")
    } else {
        error
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "-".to_owned(),
        None => line.to_owned(),
    }
}

pub fn run_detail(out: &Printer, run: &Value, now: DateTime<Utc>) {
    run_detail_with(out, run, now, true);
}

/// A run's detail after its output lines were streamed: everything but them.
pub fn run_detail_after_stream(out: &Printer, run: &Value, now: DateTime<Utc>) {
    outln!();
    run_detail_with(out, run, now, false);
}

fn run_detail_with(out: &Printer, run: &Value, now: DateTime<Utc>, show_output: bool) {
    let mut fields: Vec<(&str, Cell)> = vec![
        ("ID", cell(run, "id")),
        ("Automation", cell(run, "automation_id")),
        ("Status", out.status(&text(run, "status"))),
        ("Trigger", cell(run, "trigger")),
    ];
    for (label, key) in [("Reason", "reason"), ("Run as user", "run_as_user_id")] {
        if !text(run, key).is_empty() {
            fields.push((label, cell(run, key)));
        }
    }
    let config = match text(run, "config_digest").as_str() {
        "" => text(run, "config_id"),
        digest => format!("{} ({digest})", text(run, "config_id")),
    };
    if !config.is_empty() {
        fields.push(("Config", Cell::from(config)));
    }
    for (label, key) in [
        ("Attempt", "attempt"),
        ("Retry of", "retry_of"),
        ("Retried by", "retried_by"),
        ("Rerun of", "rerun_of"),
        ("Requested by", "requested_by"),
        ("Cancelled by", "cancelled_by"),
        ("Failure kind", "failure_kind"),
    ] {
        if !text(run, key).is_empty() {
            fields.push((label, cell(run, key)));
        }
    }
    for (label, key) in [
        ("Scheduled at", "scheduled_at"),
        ("Created", "created_at"),
        ("Started", "started_at"),
        ("Finished", "finished_at"),
    ] {
        if let Some(value) = when(run, key, now) {
            fields.push((label, value));
        }
    }
    if let Some(ms) = run_duration(run) {
        fields.push(("Duration", Cell::from(duration_ms(ms))));
    }
    let mut accounting: Vec<(&String, &Value)> = run
        .get("accounting")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .collect();
    accounting.sort_by_key(|(key, _)| {
        ACCOUNTING_ORDER
            .iter()
            .position(|(k, _)| k == key)
            .unwrap_or(usize::MAX)
    });
    let accounting: Vec<(String, String)> = accounting
        .into_iter()
        .map(|(key, value)| (accounting_label(key), accounting_value(key, value)))
        .collect();
    for (label, value) in &accounting {
        fields.push((label, Cell::from(value.as_str())));
    }
    out.fields(&fields);

    let history = run.get("history").and_then(Value::as_array);
    if let Some(history) = history.filter(|h| !h.is_empty()) {
        outln!("History:");
        let rows: Vec<Vec<Cell>> = history
            .iter()
            .map(|change| {
                let at = when(change, "at", now).unwrap_or_else(|| Cell::from("-"));
                let reason = text(change, "reason");
                vec![out.status(&text(change, "status")), at, Cell::from(reason)]
            })
            .collect();
        out!("{}", indent(&out.render_table(None, &rows), 2));
    }
    host_calls(out, run);
    if let Some(input) = run.get("input").filter(|i| !i.is_null()) {
        outln!("Input:");
        out!("{}", indented_json(input, 2));
    }
    let result = run.get("result").filter(|r| !r.is_null());
    let lines = result
        .and_then(|r| r.get("output"))
        .and_then(Value::as_array)
        .filter(|_| show_output);
    if let Some(lines) = lines {
        outln!("Output:");
        if lines.is_empty() {
            outln!("  (no output)");
        }
        for line in lines {
            outln!(
                "  {}",
                line.as_str()
                    .map_or_else(|| line.to_string(), str::to_owned)
            );
        }
        if result.and_then(|r| r.get("output_truncated")) == Some(&Value::Bool(true)) {
            outln!("  … (output truncated)");
        }
    }
    if let Some(result) = result {
        if let Some(error) = result.get("error").filter(|e| !e.is_null()) {
            outln!("Error:");
            match error.as_str() {
                Some(message) => outln!("  {message}"),
                None => out!("{}", indented_json(error, 2)),
            }
        }
        if let Some(payload) = result.get("payload") {
            outln!("Payload:");
            out!("{}", indented_json(payload, 2));
        }
    }
}

/// A run's `host_calls` (HTTP requests, secret reads) as a table, when it
/// made any.
fn host_calls(out: &Printer, run: &Value) {
    let calls = run.get("host_calls").and_then(Value::as_array);
    let Some(calls) = calls.filter(|c| !c.is_empty()) else {
        return;
    };
    outln!("Host calls:");
    let rows: Vec<Vec<Cell>> = calls
        .iter()
        .map(|call| {
            let status = call.get("status").and_then(Value::as_u64);
            let number = |key: &str| call.get(key).and_then(Value::as_u64).unwrap_or(0);
            let took = number("duration_ms") as f64;
            vec![
                cell(call, "kind"),
                cell(call, "target"),
                Cell::from(status.map_or_else(|| "-".to_owned(), |s| s.to_string())),
                Cell::from(duration_ms(took)),
                Cell::from(format!(
                    "{} out, {} in",
                    bytes(number("bytes_out")),
                    bytes(number("bytes_in"))
                )),
                cell(call, "error"),
            ]
        })
        .collect();
    let header = ["KIND", "TARGET", "STATUS", "TIME", "BODY", "ERROR"];
    out!("{}", indent(&out.render_table(Some(&header), &rows), 2));
    if run.get("host_calls_truncated") == Some(&Value::Bool(true)) {
        outln!("  … (more calls, not recorded)");
    }
}

/// Accounting fields in the order a run spends them; fields newer than this
/// client follow.
const ACCOUNTING_ORDER: [(&str, &str); 7] = [
    ("pending_us", "Pending"),
    ("queue_time_us", "Slot wait"),
    ("instantiate_time_us", "Instantiation"),
    ("wall_time_us", "Wall time"),
    ("fuel_consumed", "Fuel"),
    ("peak_memory_bytes", "Peak memory"),
    ("limits", "Limits"),
];

/// A label for an accounting field: ours by name, newer ones spelled out
/// without their unit suffix.
fn accounting_label(key: &str) -> String {
    if let Some((_, label)) = ACCOUNTING_ORDER.iter().find(|(k, _)| *k == key) {
        return (*label).to_owned();
    }
    let stem = ["_us", "_ms", "_bytes"]
        .iter()
        .find_map(|unit| key.strip_suffix(unit))
        .unwrap_or(key);
    let words = stem.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// Humanises an accounting value by its unit suffix.
fn accounting_value(key: &str, value: &Value) -> String {
    if key == "limits" {
        return limits_in_words(value);
    }
    let Some(number) = value.as_f64() else {
        return value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
    };
    if key.ends_with("_ms") {
        duration_ms(number)
    } else if key.ends_with("_us") {
        duration_ms(number / 1000.0)
    } else if key.ends_with("bytes") {
        bytes(number as u64)
    } else if value.is_u64() {
        count(number as u64)
    } else {
        value.to_string()
    }
}

pub fn configs_table(out: &Printer, configs: &[Value], now: DateTime<Utc>) {
    let rows = configs
        .iter()
        .map(|c| {
            vec![
                cell(c, "id"),
                cell(c, "name"),
                Cell::from(triggers(c).join(", ")),
                Cell::from(
                    c.get("size")
                        .and_then(Value::as_u64)
                        .map_or_else(|| "-".into(), bytes),
                ),
                Cell::from(short_digest(&text(c, "digest"))),
                ago(c, "created_at", now),
            ]
        })
        .collect();
    out.table(
        &["ID", "NAME", "TRIGGERS", "SIZE", "DIGEST", "CREATED"],
        rows,
    );
}

fn triggers(config: &Value) -> Vec<String> {
    config
        .pointer("/graph/triggers")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// "sha256:0123456789abcdef…" → "sha256:0123456789ab".
fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(12).collect();
    match algorithm {
        "" if short.is_empty() => "-".into(),
        "" => short,
        _ => format!("{algorithm}:{short}"),
    }
}

pub fn config_detail(out: &Printer, config: &Value, now: DateTime<Utc>) {
    let mut fields: Vec<(&str, Cell)> = vec![
        ("ID", cell(config, "id")),
        ("Name", cell(config, "name")),
        ("Digest", cell(config, "digest")),
    ];
    if let Some(size) = config.get("size").and_then(Value::as_u64) {
        fields.push((
            "Size",
            Cell::from(format!("{} ({} bytes)", bytes(size), count(size))),
        ));
    }
    if let Some(graph_name) = config.pointer("/graph/name").and_then(Value::as_str) {
        fields.push(("Workflow", Cell::from(graph_name)));
    }
    fields.push(("Trigger nodes", Cell::from(triggers(config).join(", "))));
    if config["imports_http"] == Value::Bool(true) {
        fields.push((
            "Outbound HTTP",
            Cell::from("yes (automations running it need --allow-host)"),
        ));
    }
    if let Some(created) = when(config, "created_at", now) {
        fields.push(("Created", created));
    }
    if !text(config, "created_by").is_empty() {
        fields.push(("Created by", cell(config, "created_by")));
    }
    if let Some(users) = config.get("used_by").and_then(Value::as_array) {
        let users: Vec<String> = users
            .iter()
            .map(|a| {
                format!(
                    "{} ({}, {})",
                    text(a, "id"),
                    text(a, "name"),
                    text(a, "status")
                )
            })
            .collect();
        let used_by = if users.is_empty() {
            "no automation (it can be deleted)".to_owned()
        } else {
            users.join(", ")
        };
        fields.push(("Used by", Cell::from(used_by)));
    }
    out.fields(&fields);
    let steps = config.pointer("/graph/steps").and_then(Value::as_array);
    if let Some(steps) = steps.filter(|s| !s.is_empty()) {
        outln!("Steps:");
        let width = steps
            .iter()
            .map(|s| text(s, "name").chars().count())
            .max()
            .unwrap_or(0);
        for step in steps {
            outln!(
                "  {:<width$}  {}",
                text(step, "name"),
                text(step, "description")
            );
        }
    }
}

pub fn events_table(out: &Printer, events: &[Value]) {
    let rows = events
        .iter()
        .map(|e| vec![cell(e, "name"), cell(e, "description")])
        .collect();
    out.table(&["NAME", "DESCRIPTION"], rows);
}

fn is_empty_json(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Fields this client does not know yet still reach the reader.
fn print_other_fields(value: &Value, known: &[&str]) {
    let Some(object) = value.as_object() else {
        return;
    };
    let others: Vec<_> = object
        .iter()
        .filter(|(key, value)| !known.contains(&key.as_str()) && !is_empty_json(value))
        .collect();
    if others.is_empty() {
        return;
    }
    let width = others
        .iter()
        .map(|(key, _)| key.len() + 1)
        .max()
        .unwrap_or(0);
    for (key, value) in others {
        let key = format!("{key}:");
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        outln!("{key:<width$}  {value}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn automations_fire_on_their_trigger_or_schedule() {
        assert_eq!(
            fires_on(&json!({"trigger": "thread.created"})),
            "thread.created"
        );
        assert_eq!(
            fires_on(&json!({"schedule": "0 9 * * *", "timezone": "UTC"})),
            "0 9 * * *"
        );
        assert_eq!(
            fires_on(&json!({"schedule": "0 9 * * *", "timezone": "Europe/Berlin"})),
            "0 9 * * * (Europe/Berlin)"
        );
    }

    #[test]
    fn policies_are_spelled_out() {
        let a = json!({
            "type": "scheduled", "catchup": "run_all", "catchup_window_seconds": 3600,
            "overlap": "skip", "max_concurrency": 2,
            "retry": {"max_attempts": 3, "backoff_base_ms": 1000, "backoff_max_ms": 300000, "retry_guest_errors": true},
            "limits": {"fuel": 1000000, "memory_bytes": null, "timeout_ms": 5000}
        });
        assert_eq!(
            policies(&a),
            vec![
                ("Catch-up", "run_all (window 1h)".to_owned()),
                ("Overlap", "skip".to_owned()),
                ("Max concurrency", "2".to_owned()),
                (
                    "Retry",
                    "up to 3 attempts, backoff 1s–5m, workflow errors retried".to_owned()
                ),
                ("Limits", "fuel 1,000,000, timeout 5s".to_owned()),
            ]
        );
        let defaults = json!({"type": "trigger", "catchup": "skip", "overlap": "allow",
            "max_concurrency": null, "retry": {"max_attempts": 1}, "limits": {}});
        assert!(policies(&defaults).is_empty());
    }

    #[test]
    fn run_problems_prefer_the_result_error() {
        let failed = json!({"result": {"error": "Script execution timed out", "output": []}});
        assert_eq!(run_problem(&failed), "Script execution timed out");
        let missed = json!({"status": "cancelled", "reason": "missed", "result": null});
        assert_eq!(run_problem(&missed), "missed");
        assert_eq!(one_line("first\nsecond", 60), "first");
        assert_eq!(
            one_line(&"x".repeat(70), 60),
            format!("{}…", "x".repeat(60))
        );
        assert_eq!(one_line("", 60), "-");
    }

    #[test]
    fn durations_come_from_start_and_finish() {
        let run = json!({"started_at": "2026-11-28T12:00:00.100Z", "finished_at": "2026-11-28T12:00:00.112500Z"});
        assert_eq!(run_duration(&run), Some(12.5));
        assert_eq!(
            run_duration(&json!({"started_at": "2026-11-28T12:00:00Z"})),
            None
        );
    }

    #[test]
    fn accounting_values_are_humanised_by_unit() {
        assert_eq!(accounting_label("peak_memory_bytes"), "Peak memory");
        assert_eq!(accounting_label("wall_time_us"), "Wall time");
        assert_eq!(
            accounting_label("wasm_table_elements"),
            "Wasm table elements"
        );
        assert_eq!(accounting_label("gc_pause_us"), "Gc pause");
        assert_eq!(
            accounting_value(
                "limits",
                &json!({"fuel": 1000, "timeout_ms": 30000, "memory_bytes": null})
            ),
            "fuel 1,000, timeout 30s"
        );
        assert_eq!(
            accounting_value("peak_memory_bytes", &json!(2_097_152)),
            "2.0 MiB"
        );
        assert_eq!(
            accounting_value("fuel_consumed", &json!(1_234_567)),
            "1,234,567"
        );
        assert_eq!(accounting_value("run_ms", &json!(1.5)), "2ms");
        assert_eq!(accounting_value("run_us", &json!(850)), "850µs");
    }

    #[test]
    fn digests_are_shortened_for_tables() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_digest(""), "-");
    }

    #[test]
    fn lists_without_data_are_empty() {
        assert_eq!(items(&json!({"data": [1, 2]})).len(), 2);
        assert!(items(&json!({})).is_empty());
    }
}
