//! `automata run automation`: run an automation now, whatever its status.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::args::json_value;
use super::client::Connection;
use super::describe::{follow_run, show};
use super::output::text;
use super::views;

/// Run an automation now with a given input (drafts and paused ones too, for testing).
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata run automation aut_abc123 --wait")]
pub struct Run {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Run an automation now; with --wait, show the finished run (exit 1 unless it completed).
    #[command(after_help = "Examples:
  automata run automation aut_abc123
  automata run automation aut_abc123 --wait \\
    --input '{\"trigger\":\"thread.member_joined\",\"payload\":{\"member\":{\"name\":\"Ada\"}}}'")]
    Automation(RunAutomation),
}

#[derive(Debug, Args)]
struct RunAutomation {
    /// The automation's ID or lookup key.
    #[arg(value_name = "AUTOMATION_ID")]
    id: String,
    /// The workflow input, `{"trigger": …, "payload": {…}}` (default: the automation's own trigger with an empty payload).
    #[arg(long, short = 'i', value_parser = json_value, value_name = "JSON")]
    input: Option<Value>,
    /// Wait for the run to finish and show it.
    #[arg(long, short = 'w')]
    wait: bool,
}

impl Run {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Automation(request) = self.what;
        let body = request.input.map(|input| json!({"input": input}));
        let created = api
            .post(
                &["automations", &request.id, "run"],
                Some(&body.unwrap_or_else(|| json!({}))),
            )
            .await?;
        if !request.wait {
            show(&out, &created, views::run_detail);
            return Ok(ExitCode::SUCCESS);
        }
        let finished = follow_run(&api, &text(&created, "id")).await?;
        show(&out, &finished, views::run_detail);
        Ok(if text(&finished, "status") == "completed" {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
