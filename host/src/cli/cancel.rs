//! `automata cancel automationrun`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Connection;
use super::describe::show;
use super::views;

/// Cancel a pending or running run.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata cancel automationrun atr_abc123")]
pub struct Cancel {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Cancel a run: a pending one never starts, a running one is interrupted.
    #[command(after_help = "Example:
  automata cancel automationrun atr_abc123")]
    Automationrun {
        /// The run's ID.
        #[arg(value_name = "RUN_ID", value_parser = super::args::run_id)]
        id: String,
    },
}

impl Cancel {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Automationrun { id } = self.what;
        let run = api
            .post(&["automations", "runs", &id, "cancel"], None)
            .await?;
        show(&out, &run, views::run_detail);
        Ok(ExitCode::SUCCESS)
    }
}
