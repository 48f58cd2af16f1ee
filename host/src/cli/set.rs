//! `automata set secret`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Connection;

/// Set a value on the server: an app secret.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  printf '%s' \"$SLACK_WEBHOOK\" | automata set secret SLACK_WEBHOOK
  automata set secret TLS_KEY --from-file key.pem
  automata set secret API_TOKEN        # at a terminal: type it, it is not shown")]
pub struct Set {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Set an app secret (created or replaced): the value comes from stdin or
    /// --from-file, never the command line, and is never shown again.
    #[command(after_help = "Examples:
  printf '%s' \"$SLACK_WEBHOOK\" | automata set secret SLACK_WEBHOOK
  automata set secret TLS_KEY --from-file key.pem
  automata set secret API_TOKEN        # at a terminal: type it, it is not shown

The value is 8 bytes to 64 KiB of text; one trailing newline is dropped. Grant it to an
automation with capabilities.secrets; its workflow reads it with secrets::get(\"NAME\"), and
the host masks the value (***) in the run's output, payload and error.")]
    Secret(super::secrets::SetSecret),
}

impl Set {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.what {
            What::Secret(secret) => super::secrets::set_secret(secret, &self.connection).await,
        }
    }
}
