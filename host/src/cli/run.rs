//! `automata run automation` and `automata rerun automationrun`: start a run
//! now, optionally waiting for it to finish.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::args::json_object;
use super::client::{Api, Connection};
use super::describe::{exit_for, interrupted, show};
use super::follow::{Followed, follow_chain};
use super::output::{Printer, text};
use super::views;

/// Run an automation now with a given input (drafts and paused ones too, for testing).
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata run automation aut_abc123 --wait")]
pub struct Run {
    #[command(subcommand)]
    what: RunWhat,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum RunWhat {
    /// Run an automation now; with --wait, show the finished run (exit 1 unless it completed).
    #[command(after_help = "Examples:
  automata run automation aut_abc123
  automata run automation aut_abc123 --wait \\
    --input '{\"trigger\":\"thread.member_joined\",\"payload\":{\"member\":{\"name\":\"Ada\"}}}'")]
    Automation {
        /// The automation's ID or lookup key.
        #[arg(value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
        id: String,
        /// The workflow input, `{"trigger": …, "payload": {…}}`; each part defaults to the
        /// automation's own event and `{}` (`{"scheduled_at": now}` when scheduled).
        #[arg(long, short = 'i', value_parser = json_object, value_name = "JSON")]
        input: Option<Value>,
        #[command(flatten)]
        wait: Wait,
    },
}

/// Run a finished run's input again as a new run.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata rerun automationrun atr_abc123 --wait")]
pub struct Rerun {
    #[command(subcommand)]
    what: RerunWhat,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum RerunWhat {
    /// Start a new run of the same automation on the same input, linked by `rerun_of`.
    #[command(after_help = "Example:
  automata rerun automationrun atr_abc123 --wait")]
    Automationrun {
        /// The run to repeat.
        #[arg(value_name = "RUN_ID", value_parser = super::args::run_id)]
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, Args)]
struct Wait {
    /// Wait for the run to finish (through its retries) and show the last attempt; exit 1
    /// unless it completed.
    #[arg(long, short = 'w')]
    wait: bool,
}

impl Run {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let RunWhat::Automation { id, input, wait } = self.what;
        let created = api
            .post(&["automations", &id, "run"], input.as_ref())
            .await?;
        finish(&api, &out, created, wait).await
    }
}

impl Rerun {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let RerunWhat::Automationrun { id, wait } = self.what;
        let created = api
            .post(&["automations", "runs", &id, "rerun"], None)
            .await?;
        finish(&api, &out, created, wait).await
    }
}

/// Shows the new run, or with `--wait` the last attempt of its retry chain
/// once it has ended.
async fn finish(api: &Api, out: &Printer, created: Value, wait: Wait) -> anyhow::Result<ExitCode> {
    if !wait.wait {
        show(out, &created, views::run_detail);
        return Ok(ExitCode::SUCCESS);
    }
    let Followed::Ended(finished) = follow_chain(api, &text(&created, "id"), false).await? else {
        return Ok(interrupted());
    };
    show(out, &finished, views::run_detail);
    Ok(exit_for(&finished))
}
