//! Builds the daily digest on a cron schedule (trigger `workflow.scheduled`).
//!
//! The digest covers the 24 hours before the scheduled time and is addressed to
//! the automation's run-as user. A run started by hand may pass the day's
//! `activity` (`[{"thread": "...", "kind": "..."}]`) in its payload; each
//! thread's activity is counted into the digest.
use std::collections::BTreeMap;

use automata_guest::{Context, Input, Value, json, workflow};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

workflow! {
    name: "Daily Digest",
    triggers: ["workflow.scheduled"],
    steps: [
        ("window", "Work out the 24 hours the digest covers"),
        ("collect", "Count the activity per thread"),
        ("summarize", "Write the digest for the recipient"),
    ],
    run: digest,
}

fn digest(ctx: &Context, input: Input) -> Result<Value, String> {
    let scheduled_at = input.payload["scheduled_at"]
        .as_str()
        .or(ctx.scheduled_at.as_deref())
        .ok_or("no scheduled_at in the payload or the run context")?;
    let until: DateTime<Utc> = DateTime::parse_from_rfc3339(scheduled_at)
        .map_err(|e| format!("scheduled_at `{scheduled_at}` is not RFC 3339: {e}"))?
        .with_timezone(&Utc);
    let since = until - Duration::hours(24);
    println!(
        "Building digest for {} to {}",
        rfc3339(since),
        rfc3339(until)
    );

    let mut per_thread: BTreeMap<&str, u64> = BTreeMap::new();
    for item in input.payload["activity"].as_array().into_iter().flatten() {
        let thread = item["thread"].as_str().unwrap_or("(unnamed thread)");
        *per_thread.entry(thread).or_default() += 1;
    }
    let total: u64 = per_thread.values().sum();
    println!(
        "Collected {total} activity items across {} threads",
        per_thread.len()
    );

    let recipient = ctx.run_as_user_id.as_deref().unwrap_or("everyone");
    let title = format!("Daily digest for {}", until.format("%A %-d %B %Y"));
    let summary = match per_thread.iter().max_by_key(|(_, count)| **count) {
        Some((busiest, count)) => format!("{total} updates; busiest thread: {busiest} ({count})"),
        None => "No activity in the last 24 hours".to_owned(),
    };
    println!("Digest ready for {recipient}: {summary}");
    Ok(json!({
        "title": title,
        "recipient": recipient,
        "period": { "from": rfc3339(since), "to": rfc3339(until) },
        "total": total,
        "threads": per_thread,
        "summary": summary,
    }))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_activity_per_thread() {
        let ctx = Context {
            run_as_user_id: Some("usr_abc123".into()),
            ..Context::default()
        };
        let payload = json!({
            "scheduled_at": "2026-02-28T09:00:00Z",
            "activity": [{"thread": "design"}, {"thread": "ops"}, {"thread": "design"}],
        });
        let input = Input {
            trigger: "workflow.scheduled".into(),
            payload,
        };
        let digest = digest(&ctx, input).unwrap();
        assert_eq!(
            digest["title"],
            "Daily digest for Saturday 28 February 2026"
        );
        assert_eq!(digest["period"]["from"], "2026-02-27T09:00:00Z");
        assert_eq!(digest["threads"], json!({"design": 2, "ops": 1}));
        assert_eq!(digest["summary"], "3 updates; busiest thread: design (2)");
    }
}
