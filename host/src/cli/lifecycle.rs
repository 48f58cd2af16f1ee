//! `automata activate|pause|reset automation`: the spec's lifecycle moves.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Connection;
use super::describe::show;
use super::views;

/// A lifecycle move: the endpoint it posts to.
#[derive(Debug, Clone, Copy)]
pub enum Transition {
    /// draft or paused → running.
    Activate,
    /// running → paused.
    Pause,
    /// paused → draft.
    Reset,
}

impl Transition {
    fn endpoint(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Pause => "pause",
            Transition::Reset => "reset",
        }
    }
}

/// `automata activate automation aut_…` and its siblings.
#[derive(Debug, Args)]
pub struct Lifecycle {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The automation to move.
    Automation {
        /// The automation's ID or lookup key.
        #[arg(value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
        id: String,
    },
}

impl Lifecycle {
    pub async fn run(self, transition: Transition) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Automation { id } = self.what;
        let automation = api
            .post(&["automations", &id, transition.endpoint()], None)
            .await?;
        show(&out, &automation, views::automation_detail);
        Ok(ExitCode::SUCCESS)
    }
}
