//! `automata send event`: fire a platform event at the app's trigger automations.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::args::json_object;
use super::client::{Api, Connection};
use super::output::outln;
use super::views;

/// Set by the server on the first answer replayed for a repeated idempotency key.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Send a platform event; every running trigger automation on it gets a run.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata send event thread.member_joined --payload '{\"member\":{\"name\":\"Ada\"}}'")]
pub struct Send {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Send a platform event and list the runs it created.
    #[command(after_help = "Examples:
  automata send event thread.created --payload '{\"thread\":{\"id\":\"thr_1\",\"name\":\"Design\"}}'
  automata send event email.received --payload '{}' --idempotency-key msg-4711")]
    Event(SendEvent),
}

#[derive(Debug, Args)]
struct SendEvent {
    /// The event name (see `automata list events`).
    #[arg(value_name = "EVENT")]
    trigger: String,
    /// The event's data, a JSON object; the workflow gets it as `payload`.
    #[arg(long, short = 'p', value_parser = json_object, value_name = "JSON", default_value = "{}")]
    payload: Value,
    /// Sending the same key again within 24 hours creates no new runs.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

impl Send {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Event(event) = self.what;
        super::catalogue::check_event(&api, &event.trigger).await?;
        let mut body = Map::new();
        body.insert("trigger".into(), json!(event.trigger));
        body.insert("payload".into(), event.payload);
        if let Some(key) = &event.idempotency_key {
            body.insert("idempotency_key".into(), json!(key));
        }
        let (receipt, headers) = api
            .post_with_headers(&["events"], Some(&Value::Object(body)))
            .await?;
        if out.is_json() {
            out.json(&receipt);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(warning) = receipt["warning"].as_str() {
            eprintln!("warning: {warning} (is --app / AUTOMATA_APP right?)");
        }
        let run_ids = run_ids(&receipt);
        let replayed = headers
            .get(REPLAYED_HEADER)
            .is_some_and(|v| v.as_bytes() == b"true");
        let noun = if run_ids.len() == 1 { "run" } else { "runs" };
        if replayed {
            outln!(
                "Event {} was already received with this idempotency key: no new runs; \
                 it created {} {noun}.",
                event.trigger,
                run_ids.len()
            );
        } else {
            outln!(
                "Event {} accepted: {} {noun} created.",
                event.trigger,
                run_ids.len()
            );
        }
        if !run_ids.is_empty() {
            let runs = fetch_runs(&api, &run_ids).await?;
            views::runs_table(&out, &runs, true, chrono::Utc::now());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The IDs of the runs an event created.
fn run_ids(receipt: &Value) -> Vec<String> {
    receipt["run_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect()
}

/// The runs themselves, so the table shows which automation each belongs to.
async fn fetch_runs(api: &Api, ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        runs.push(api.get(&["automations", "runs", id], &[]).await?);
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_come_from_the_receipt() {
        let receipt = json!({"trigger": "thread.created", "run_ids": ["atr_1", "atr_2"]});
        assert_eq!(run_ids(&receipt), ["atr_1", "atr_2"]);
        assert!(run_ids(&json!({"run_ids": []})).is_empty());
    }
}
