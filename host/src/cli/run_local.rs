//! `automata run-local`: load a component from disk and run it once, without a
//! server or a store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::domain::outcome::{CANCELLED_MESSAGE, Outcome};
use crate::domain::secret::{self, SecretName};
use crate::domain::workflow::{RunContext, SCHEDULED_TRIGGER, TriggerInput};
use crate::runner::{RunOptions, RunSecrets, Runner, RunnerConfig};

/// Run a workflow component once and print its output and payload
///
/// Examples:
///   automata run-local target/guests/welcome-new-members.wasm \
///     --input '{"trigger":"thread.member_joined","payload":{"member":{"name":"Ada"}}}'
///   ALERT_WEBHOOK_URL=https://hooks.example.com/x automata run-local alert.wasm \
///     --secret ALERT_WEBHOOK_URL --input '{"trigger":"context.ingestion.failed","payload":{}}'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunLocal {
    /// The component (.wasm) to run.
    component: PathBuf,
    /// The workflow input, the spec's `{"trigger": ..., "payload": {...}}`.
    #[arg(long, short)]
    input: String,
    /// The user the run executes as.
    #[arg(long)]
    run_as_user_id: Option<String>,
    /// Grant the secret NAME, with the value of the environment variable of
    /// the same name (never a command-line value); repeatable. Its value is
    /// masked (***) in what is printed, as on a server.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
    /// How to print the result.
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// The graph, output lines and payload for a person.
    Text,
    /// The run's `result` object as JSON.
    Json,
}

impl RunLocal {
    /// `--secret NAME`s, each with its environment variable's value.
    fn granted_secrets(&self) -> anyhow::Result<RunSecrets> {
        let mut grants = Vec::new();
        for name in &self.secrets {
            name.parse::<SecretName>()
                .map_err(|e| super::args::UsageError(format!("--secret: {e}")))?;
            let value = match std::env::var(name) {
                Ok(value) => {
                    secret::check_value(&value).map_err(|e| {
                        super::args::UsageError(format!(
                            "--secret {name} (from the environment): {e}"
                        ))
                    })?;
                    Ok(value)
                }
                Err(_) => Err(format!("the environment variable {name} is not set")),
            };
            grants.push((name.clone(), value));
        }
        Ok(RunSecrets::new(grants))
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        let input = parse_input(&self.input)?;
        let secrets = self.granted_secrets()?;
        let bytes = std::fs::read(&self.component)
            .with_context(|| format!("cannot read {}", self.component.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let runner = Runner::new(RunnerConfig::default())?;
        let (workflow, report) = runtime.block_on(async {
            let workflow = runner
                .load(&bytes)
                .await
                .with_context(|| format!("cannot load {}", self.component.display()))?;
            let ctx = RunContext {
                app_id: "local".into(),
                automation_id: "aut_local".into(),
                run_id: "atr_local".into(),
                run_as_user_id: self.run_as_user_id.clone(),
                scheduled_at: scheduled_at(&input),
                attempt: 1,
            };
            let options = RunOptions {
                secrets,
                ..RunOptions::default()
            };
            let report = runner.run_with(&workflow, &ctx, &input, &options).await;
            anyhow::Ok((workflow, report))
        })?;

        match self.output {
            Format::Json => println!("{:#}", report.result_json()),
            Format::Text => {
                let graph = workflow.graph();
                println!("workflow: {} ({})", graph.name, workflow.digest());
                println!("triggers: {}", graph.triggers.join(", "));
                println!("output:");
                for line in &report.output.lines {
                    println!("  {line}");
                }
                if report.output.truncated {
                    println!("  … (output truncated)");
                }
                match &report.outcome {
                    Outcome::Completed(payload) => println!("payload:\n{payload:#}"),
                    Outcome::Failed(failure) => println!("error: {failure}"),
                    Outcome::Cancelled => println!("error: {CANCELLED_MESSAGE}"),
                }
            }
        }
        Ok(match report.outcome {
            Outcome::Completed(_) => ExitCode::SUCCESS,
            Outcome::Failed(_) | Outcome::Cancelled => ExitCode::FAILURE,
        })
    }
}

fn parse_input(text: &str) -> anyhow::Result<TriggerInput> {
    let value: Value = serde_json::from_str(text).context("--input is not valid JSON")?;
    let Some(trigger) = value.get("trigger").and_then(Value::as_str) else {
        bail!(
            "--input needs a string \"trigger\" field, e.g. {{\"trigger\":\"thread.created\",\"payload\":{{}}}}"
        );
    };
    Ok(TriggerInput {
        trigger: trigger.to_owned(),
        payload: value.get("payload").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A scheduled input carries its occurrence in the payload; the context gets it too.
fn scheduled_at(input: &TriggerInput) -> Option<String> {
    (input.trigger == SCHEDULED_TRIGGER)
        .then(|| input.payload["scheduled_at"].as_str().map(str::to_owned))
        .flatten()
}
