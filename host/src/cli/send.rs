//! `automata send event`: fire a platform event at the app's trigger automations.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::args::json_object;
use super::client::Connection;
use super::output::{cell, text};

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
        let mut body = Map::new();
        body.insert("trigger".into(), json!(event.trigger));
        body.insert("payload".into(), event.payload);
        if let Some(key) = event.idempotency_key {
            body.insert("idempotency_key".into(), json!(key));
        }
        let accepted = api.post(&["events"], Some(&Value::Object(body))).await?;
        if out.is_json() {
            out.json(&accepted);
            return Ok(ExitCode::SUCCESS);
        }
        let runs = created_runs(&accepted);
        let noun = if runs.len() == 1 { "run" } else { "runs" };
        println!(
            "Event {} accepted: {} {noun} created.",
            event.trigger,
            runs.len()
        );
        if !runs.is_empty() {
            let rows = runs
                .iter()
                .map(|r| {
                    vec![
                        cell(r, "id"),
                        cell(r, "automation_id"),
                        out.status(&text(r, "status")),
                    ]
                })
                .collect();
            out.table(&["RUN", "AUTOMATION", "STATUS"], rows);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The runs an event created, as objects (bare IDs become `{"id": …}`).
fn created_runs(accepted: &Value) -> Vec<Value> {
    let list = ["runs", "run_ids", "data"]
        .iter()
        .find_map(|key| accepted.get(*key).and_then(Value::as_array));
    list.into_iter()
        .flatten()
        .map(|run| match run {
            Value::String(id) => json!({"id": id}),
            other => other.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_runs_accept_objects_or_ids() {
        let objects =
            json!({"runs": [{"id": "atr_1", "automation_id": "aut_1", "status": "pending"}]});
        assert_eq!(created_runs(&objects)[0]["automation_id"], "aut_1");
        let ids = json!({"run_ids": ["atr_1", "atr_2"]});
        assert_eq!(
            created_runs(&ids),
            vec![json!({"id": "atr_1"}), json!({"id": "atr_2"})]
        );
        assert!(created_runs(&json!({})).is_empty());
    }
}
