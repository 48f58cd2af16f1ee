//! `automata describe automation|automationrun|config`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Api, ApiError, Connection};
use super::output::{Printer, cell, outln, text};
use super::preview;
use super::views;

/// Show one automation, run or config in detail.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata describe automation aut_abc123
  automata describe automationrun atr_abc123
  automata describe automationrun atr_abc123 --follow
  automata describe config cfg_abc123 -o json")]
pub struct Describe {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Show an automation: its fields, status and next scheduled run.
    #[command(after_help = "Examples:
  automata describe automation aut_abc123
  automata describe automation nightly-report   # by lookup key")]
    Automation {
        /// The automation's ID or lookup key.
        #[arg(value_name = "AUTOMATION_ID")]
        id: String,
    },
    /// Show a run: status, timings, accounting, output lines and payload or error.
    #[command(after_help = "Examples:
  automata describe automationrun atr_abc123
  automata describe automationrun atr_abc123 --follow")]
    Automationrun {
        /// The run's ID.
        #[arg(value_name = "RUN_ID")]
        id: String,
        /// Wait until the run has finished (completed, failed or cancelled), then show it.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Show an uploaded config: digest, size, trigger nodes and steps.
    #[command(after_help = "Example:
  automata describe config cfg_abc123")]
    Config {
        /// The config's ID.
        #[arg(value_name = "CONFIG_ID")]
        id: String,
    },
}

impl Describe {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        match self.what {
            What::Automation { id } => {
                let automation = api.get(&["automations", &id], &[]).await?;
                show(&out, &automation, views::automation_detail);
                if !out.is_json() {
                    show_next_runs(&api, &out, &automation).await;
                }
            }
            What::Automationrun { id, follow } => {
                let run = if follow {
                    follow_run(&api, &id).await?
                } else {
                    api.get(&["automations", "runs", &id], &[]).await?
                };
                show(&out, &run, views::run_detail);
            }
            What::Config { id } => {
                let config = api.get(&["configs", &id], &[]).await?;
                show(&out, &config, views::config_detail);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The next 5 fire times of a scheduled automation, whatever its status (a
/// draft's too), in its zone and UTC. A server that cannot preview is noted,
/// not fatal: the automation was shown.
async fn show_next_runs(api: &Api, out: &Printer, automation: &Value) {
    let schedule = text(automation, "schedule");
    if text(automation, "type") != "scheduled" || schedule.is_empty() {
        return;
    }
    let timezone = text(automation, "timezone");
    let heading = if text(automation, "status") == "running" {
        "Next runs"
    } else {
        "Next runs if running"
    };
    outln!();
    match preview::fetch(api, &schedule, Some(&timezone), None, 5).await {
        Ok(preview) => {
            out.fields(&[("Reads as", cell(&preview, "description"))]);
            views::fire_times(out, &preview, heading);
        }
        Err(error) => outln!("{heading}: cannot preview the schedule ({error})"),
    }
}

/// Prints one object as JSON or through its detail view.
pub(super) fn show(
    out: &Printer,
    value: &Value,
    detail: impl FnOnce(&Printer, &Value, chrono::DateTime<chrono::Utc>),
) {
    if out.is_json() {
        out.json(value);
    } else {
        detail(out, value, chrono::Utc::now());
    }
}

/// Polls a run until it has finished and returns it. Status changes are
/// reported on stderr when it is a terminal.
pub(super) async fn follow_run(api: &Api, id: &str) -> Result<Value, ApiError> {
    const FIRST_POLL: Duration = Duration::from_millis(100);
    const SLOWEST_POLL: Duration = Duration::from_secs(1);
    let report = std::io::stderr().is_terminal();
    let mut interval = FIRST_POLL;
    let mut last_status = String::new();
    loop {
        let run = api.get(&["automations", "runs", id], &[]).await?;
        if views::is_finished(&run) {
            return Ok(run);
        }
        let status = text(&run, "status");
        if report && status != last_status {
            eprintln!("Waiting for {id} to finish (status: {status})…");
        }
        last_status = status;
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(SLOWEST_POLL);
    }
}
