//! `automata describe automation|automationrun|config`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Api, Connection};
use super::follow::{Followed, follow_chain};
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
        #[arg(value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
        id: String,
    },
    /// Show a run: status, timings, accounting, output lines and payload or error.
    #[command(after_help = "Examples:
  automata describe automationrun atr_abc123
  automata describe automationrun atr_abc123 --follow

--follow prints the run's output lines as they come, follows a failed run's retries to
the last attempt, then shows it; it exits 0 if that attempt completed, 1 otherwise. It
reconnects if the server restarts meanwhile. Ctrl-C stops following (the run goes on).")]
    Automationrun {
        /// The run's ID.
        #[arg(value_name = "RUN_ID", value_parser = super::args::run_id)]
        id: String,
        /// Stream its output until it ends (through its retries), then show the last attempt.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Show an uploaded config: digest, size, trigger nodes and steps.
    #[command(after_help = "Example:
  automata describe config cfg_abc123")]
    Config {
        /// The config's ID.
        #[arg(value_name = "CONFIG_ID", value_parser = super::args::config_id)]
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
            What::Automationrun { id, follow: false } => {
                let run = api.get(&["automations", "runs", &id], &[]).await?;
                show(&out, &run, views::run_detail);
            }
            What::Automationrun { id, follow: true } => {
                let streamed = !out.is_json();
                let Followed::Ended(run) = follow_chain(&api, &id, streamed).await? else {
                    return Ok(interrupted());
                };
                if streamed {
                    views::run_detail_after_stream(&out, &run, chrono::Utc::now());
                } else {
                    out.json(&run);
                }
                return Ok(exit_for(&run));
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

/// Exit status after following a run was interrupted (Ctrl-C): the shell's
/// 128 + SIGINT.
pub(super) fn interrupted() -> ExitCode {
    ExitCode::from(130)
}

/// 0 when the run completed, 1 when it failed or was cancelled.
pub(super) fn exit_for(run: &Value) -> ExitCode {
    if text(run, "status") == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
