//! `automata update automation`.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::args::{AutomationType, UsageError, api_name};
use super::client::Connection;
use super::create::AutomationFields;
use super::describe::show;
use super::views;

/// Change an automation's fields; only the flags given are changed.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  automata update automation aut_abc123 -n \"Updated Name\" --config-id cfg_def456")]
pub struct Update {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Change an automation's fields; only the flags given are changed.
    #[command(after_help = "Examples:
  automata update automation aut_abc123 -n \"Updated Name\" --config-id cfg_def456
  automata update automation aut_abc123 --schedule \"30 8 * * 1-5\" --timezone America/New_York
  automata update automation aut_abc123 --clear lookup_key,run_as_user_id
  automata update automation aut_abc123 --allow-host api.example.com --allow-host hooks.example.com:8443
  automata update automation aut_abc123 -t scheduled --schedule \"0 9 * * 1-5\" --clear trigger")]
    Automation(UpdateAutomation),
}

#[derive(Debug, Args)]
struct UpdateAutomation {
    /// The automation's ID or lookup key.
    #[arg(value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
    id: String,
    /// New display name.
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Change the type (give the new type's --trigger or --schedule too, and
    /// clear the old one).
    #[arg(long = "type", short = 't', value_enum, value_name = "TYPE")]
    kind: Option<AutomationType>,
    /// New event for a trigger automation.
    #[arg(long, value_name = "EVENT")]
    trigger: Option<String>,
    /// New cron expression for a scheduled automation.
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
    #[command(flatten)]
    fields: AutomationFields,
    /// Clear optional fields (repeat or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FIELD")]
    clear: Vec<Clearable>,
}

/// The optional fields a PATCH can clear with `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Clearable {
    #[value(name = "description")]
    Description,
    #[value(name = "trigger")]
    Trigger,
    #[value(name = "schedule")]
    Schedule,
    #[value(name = "config_id")]
    ConfigId,
    #[value(name = "run_as_user_id")]
    RunAsUserId,
    #[value(name = "lookup_key")]
    LookupKey,
    #[value(name = "metadata")]
    Metadata,
    #[value(name = "max_concurrency")]
    MaxConcurrency,
    /// Every grant: no hosts, no secrets.
    #[value(name = "capabilities")]
    Capabilities,
}

impl Update {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (api, out) = self.connection.open()?;
        let What::Automation(update) = self.what;
        if let Some(trigger) = &update.trigger {
            super::catalogue::check_event(&api, trigger).await?;
        }
        let mut body = Map::new();
        let named = [
            ("name", update.name),
            ("type", update.kind.map(api_name)),
            ("trigger", update.trigger),
            ("schedule", update.schedule),
        ];
        for (key, value) in named {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
        // `--allow-host` and `--secret` replace their part of the grant and
        // keep the other, which is read first (PATCH replaces `capabilities`
        // whole).
        let current = if update.fields.sets_capabilities() {
            let automation = api.get(&["automations", &update.id], &[]).await?;
            Some(automation["capabilities"].clone())
        } else {
            None
        };
        update.fields.insert_into(&mut body, current.as_ref());
        for field in update.clear {
            let name = api_name(field);
            if body.insert(name.clone(), Value::Null).is_some() {
                return Err(UsageError(format!("`{name}` is both set and cleared")).into());
            }
        }
        if body.is_empty() {
            return Err(UsageError(
                "nothing to update: give at least one field, e.g. -n \"New name\" or --config-id cfg_…"
                    .into(),
            )
            .into());
        }
        let updated = api
            .patch(&["automations", &update.id], &Value::Object(body))
            .await
            .map_err(super::client::ApiError::in_flag_terms)?;
        show(&out, &updated, views::automation_detail);
        Ok(ExitCode::SUCCESS)
    }
}
