//! `automata delete automation|config|app|key|secret`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::Connection;
use super::output::outln;

/// Delete an automation (its pending runs are cancelled), an unused config,
/// an app (with everything in it), an API key or an app secret.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata delete automation aut_abc123
  automata delete config cfg_abc123")]
pub struct Delete {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Delete an automation; its scheduled and pending runs are cancelled.
    #[command(after_help = "Example:
  automata delete automation aut_abc123")]
    Automation {
        /// The automation's ID or lookup key.
        #[arg(value_name = "AUTOMATION_ID", value_parser = super::args::automation_ref)]
        id: String,
    },
    /// Delete a config no running automation uses.
    #[command(after_help = "Example:
  automata delete config cfg_abc123")]
    Config {
        /// The config's ID.
        #[arg(value_name = "CONFIG_ID", value_parser = super::args::config_id)]
        id: String,
    },
    /// Delete an app and everything in it (admin key).
    #[command(after_help = "Examples:
  automata delete app acme
  automata delete app acme --force")]
    App(super::tenancy::DeleteApp),
    /// Revoke an API key of the app (admin key): it stops working at once.
    #[command(after_help = "Example:
  automata delete key key_abc123 --app acme")]
    Key(super::tenancy::DeleteKey),
    /// Delete an app secret: runs that start afterwards read it as absent.
    #[command(after_help = "Example:
  automata delete secret SLACK_WEBHOOK")]
    Secret(super::secrets::DeleteSecret),
}

impl Delete {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (noun, collection, id) = match self.what {
            What::Automation { id } => ("automation", "automations", id),
            What::Config { id } => ("config", "configs", id),
            What::App(app) => return super::tenancy::delete_app(app, &self.connection).await,
            What::Key(key) => return super::tenancy::delete_key(key, &self.connection).await,
            What::Secret(secret) => {
                return super::secrets::delete_secret(secret, &self.connection).await;
            }
        };
        let (api, out) = self.connection.open()?;
        api.delete(&[collection, &id]).await?;
        if out.is_json() {
            out.json(&json!({"id": id, "deleted": true}));
        } else {
            outln!("Deleted {noun} {id}.");
        }
        Ok(ExitCode::SUCCESS)
    }
}
