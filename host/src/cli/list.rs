//! `automata list automations|automationruns|configs|events|apps|keys|secrets`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::args::{AutomationType, RunStatus, api_name};
use super::client::{Api, Connection};
use super::output::Printer;
use super::views;

/// List automations, their runs, uploaded configs or the event catalogue.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata list automations
  automata list automations --type trigger
  automata list automationruns --automation aut_abc123 --status failed
  automata list automationruns --status failed --since 1h
  automata list configs -o json")]
pub struct List {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// List the app's automations.
    #[command(
        alias = "automation",
        after_help = "Examples:
  automata list automations
  automata list automations --type trigger
  automata list automations --app team-a -o json"
    )]
    Automations {
        /// Only automations of this type.
        #[arg(long = "type", short = 't', value_enum, value_name = "TYPE")]
        kind: Option<AutomationType>,
    },
    /// List runs, newest first: of every automation, or of one (--automation).
    #[command(
        alias = "automationrun",
        after_help = "Examples:
  automata list automationruns --status failed --since 1h     # what failed in the last hour
  automata list automationruns --trigger thread.member_joined --since 2026-11-28T09:00:00Z
  automata list automationruns --automation aut_abc123
  automata list automationruns --automation aut_abc123 --status failed
  automata list automationruns --automation aut_abc123 --all -o json

A retried run shows as its last attempt (ATTEMPT 2, 3, …); --all-attempts lists every attempt."
    )]
    Automationruns(ListRuns),
    /// List uploaded workflow configs.
    #[command(
        alias = "config",
        after_help = "Example:
  automata list configs"
    )]
    Configs,
    /// List the platform events trigger automations can fire on.
    #[command(
        alias = "event",
        after_help = "Example:
  automata list events"
    )]
    Events,
    /// List apps (admin key).
    #[command(alias = "app", after_help = "Example:\n  automata list apps")]
    Apps,
    /// List the app's API keys (admin key): never the keys themselves.
    #[command(
        alias = "key",
        after_help = "Example:\n  automata list keys --app acme"
    )]
    Keys,
    /// List the app's secrets: names and dates, never values.
    #[command(alias = "secret", after_help = "Example:\n  automata list secrets")]
    Secrets,
}

#[derive(Debug, Args)]
struct ListRuns {
    /// Only the runs of this automation (ID or lookup key; the ID of a deleted automation
    /// still lists its runs). Without it, runs of every automation.
    #[arg(long, value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
    automation: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_enum)]
    status: Option<RunStatus>,
    /// Only runs of this trigger: an event name or workflow.scheduled.
    #[arg(long, value_name = "EVENT")]
    trigger: Option<String>,
    /// Only runs created since then: a duration back from now (30m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, value_parser = super::args::time_or_ago, value_name = "WHEN")]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only runs created before then: a duration back from now or an RFC 3339 time.
    #[arg(long, value_parser = super::args::time_or_ago, value_name = "WHEN")]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Every attempt of a retried run, not only the last one.
    #[arg(long)]
    all_attempts: bool,
    /// Runs per page (the server's default is 50, at most 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: Option<u32>,
    /// Continue from the `next_cursor` of an earlier page.
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Follow `next_cursor` until every run is listed.
    #[arg(long)]
    all: bool,
}

impl List {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let now = chrono::Utc::now();
        match self.what {
            What::Apps => return super::tenancy::list_apps(&self.connection).await,
            What::Keys => return super::tenancy::list_keys(&self.connection).await,
            What::Secrets => return super::secrets::list_secrets(&self.connection).await,
            What::Automations { kind } => {
                let query: Vec<_> = kind.map(|k| ("type", api_name(k))).into_iter().collect();
                let list = api.get(&["automations"], &query).await?;
                show(&out, &list, "automations", |rows| {
                    views::automations_table(&out, rows, now)
                });
            }
            What::Automationruns(runs) => {
                let list = runs.fetch(&api).await?;
                let across = runs.automation.is_none();
                show(&out, &list, "runs", |rows| {
                    views::runs_table(&out, rows, across, now)
                });
                if let Some(cursor) = list["next_cursor"].as_str().filter(|_| !out.is_json()) {
                    eprintln!("More runs: add --all, or --cursor {cursor} for the next page.");
                }
            }
            What::Configs => {
                let list = api.get(&["configs"], &[]).await?;
                show(&out, &list, "configs", |rows| {
                    views::configs_table(&out, rows, now)
                });
            }
            What::Events => {
                let list = api.get(&["automations", "events"], &[]).await?;
                show(&out, &list, "events", |rows| {
                    views::events_table(&out, rows)
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl ListRuns {
    /// One page, or with `--all` every page merged into one list.
    async fn fetch(&self, api: &Api) -> anyhow::Result<Value> {
        let path: Vec<&str> = match &self.automation {
            Some(automation) => vec!["automations", automation, "runs"],
            None => vec!["automations", "runs"],
        };
        let mut query = Vec::new();
        if let Some(status) = self.status {
            query.push(("status", api_name(status)));
        }
        if let Some(trigger) = &self.trigger {
            query.push(("trigger", trigger.clone()));
        }
        let rfc3339 = |at: &chrono::DateTime<chrono::Utc>| {
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        if let Some(since) = &self.since {
            query.push(("since", rfc3339(since)));
        }
        if let Some(until) = &self.until {
            query.push(("until", rfc3339(until)));
        }
        if !self.all_attempts {
            query.push(("latest_attempt", "true".to_owned()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        let first = api.get(&path, &query).await?;
        if !self.all {
            return Ok(first);
        }
        let mut runs = views::items(&first).to_vec();
        let mut next = first["next_cursor"].as_str().map(str::to_owned);
        while let Some(cursor) = next.take() {
            let mut page_query = query.clone();
            page_query.push(("cursor", cursor.clone()));
            let page = api.get(&path, &page_query).await?;
            runs.extend_from_slice(views::items(&page));
            next = page["next_cursor"]
                .as_str()
                .filter(|following| *following != cursor)
                .map(str::to_owned);
        }
        Ok(json!({"data": runs, "next_cursor": null}))
    }
}

/// Prints a `{"data": [...]}` list as JSON or through `table`; an empty list
/// says so on stderr so pipes stay clean.
fn show(out: &Printer, list: &Value, noun: &str, table: impl FnOnce(&[Value])) {
    if out.is_json() {
        out.json(list);
        return;
    }
    let rows = views::items(list);
    if rows.is_empty() {
        eprintln!("No {noun} found.");
    } else {
        table(rows);
    }
}
