//! `automata preview schedule`: a cron expression's next fire times, checked
//! before an automation uses it.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::client::{Api, ApiError, Connection};
use super::views;

/// Check a cron expression before using it: its reading and next fire times.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata preview schedule \"0 9 * * 1-5\" --timezone Europe/Berlin
  automata preview schedule \"CRON_TZ=America/New_York 30 2 * * *\" --after 2026-03-07T00:00:00Z
  automata preview schedule \"0 0 12 * * ? 2027\" --count 10 -o json")]
pub struct Preview {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Show how the server reads a cron expression and when it would fire next.
    #[command(after_help = "Examples:
  automata preview schedule \"0 9 * * 1-5\" --timezone Europe/Berlin
  automata preview schedule \"*/15 * * * *\" --count 3")]
    Schedule(PreviewSchedule),
}

#[derive(Debug, Args)]
struct PreviewSchedule {
    /// The cron expression, as an automation's --schedule takes it (quote it).
    #[arg(value_name = "CRON")]
    expression: String,
    /// IANA time zone to read it in (default: its CRON_TZ= prefix, or UTC).
    #[arg(long, short = 'z', value_name = "ZONE")]
    timezone: Option<String>,
    /// Show fire times strictly after this RFC 3339 time (default: now).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    after: Option<DateTime<Utc>>,
    /// How many fire times, 1-100.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
}

impl Preview {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Schedule(args) = self.what;
        let preview = fetch(
            &api,
            &args.expression,
            args.timezone.as_deref(),
            args.after,
            args.count,
        )
        .await?;
        if out.is_json() {
            out.json(&preview);
        } else {
            views::schedule_preview(&out, &preview, "Next");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `GET …/automations/schedule` for `expression`.
pub(super) async fn fetch(
    api: &Api,
    expression: &str,
    timezone: Option<&str>,
    after: Option<DateTime<Utc>>,
    count: u32,
) -> Result<serde_json::Value, ApiError> {
    let mut query = vec![
        ("expression", expression.to_owned()),
        ("count", count.to_string()),
    ];
    if let Some(zone) = timezone {
        query.push(("timezone", zone.to_owned()));
    }
    if let Some(after) = after {
        query.push((
            "after",
            after.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ));
    }
    api.get(&["automations", "schedule"], &query).await
}

fn rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| format!("`{text}` is not an RFC 3339 time such as 2026-03-01T09:00:00Z"))
}
