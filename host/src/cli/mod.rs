//! The `automata` command line: one file per command.

mod args;
mod backup;
mod cancel;
mod catalogue;
mod client;
mod completions;
mod create;
mod delete;
mod describe;
mod doctor;
mod follow;
mod lifecycle;
mod list;
mod logging;
mod output;
mod preview;
mod run;
mod run_local;
mod secrets;
mod send;
mod serve;
mod set;
mod tenancy;
mod update;
mod views;

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status of a command line that parsed but makes no sense (clap's own is 2 too).
const USAGE_ERROR: u8 = 2;

/// Automata: run WebAssembly workflows on cron ticks and platform events.
#[derive(Debug, Parser)]
#[command(
    name = "automata",
    version,
    about,
    propagate_version = true,
    after_help = "Examples:
  automata create config --file target/guests/daily-digest.wasm
  automata create automation -n \"Nightly Report\" -t scheduled --schedule \"0 0 * * *\" \\
    --config-id cfg_abc123
  automata activate automation aut_abc123
  automata list automationruns --automation aut_abc123

Connection: --url / AUTOMATA_URL (default http://127.0.0.1:7070), --app / AUTOMATA_APP
(default `default`), --token / AUTOMATA_TOKEN, and -o json: before or after the command
(`automata --app team-a list automations`). Exit status: 0 ok, 1 error, 2 usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    RunLocal(run_local::RunLocal),
    Serve(serve::Serve),
    List(list::List),
    Describe(describe::Describe),
    Create(create::Create),
    Update(update::Update),
    Delete(delete::Delete),
    Set(set::Set),
    Preview(preview::Preview),
    /// Start an automation: draft or paused → running.
    #[command(
        after_help = "Example:\n  automata activate automation aut_abc123",
        mut_subcommand("automation", |c| c
            .about("Start an automation: draft or paused → running")
            .after_help("Example:\n  automata activate automation aut_abc123"))
    )]
    Activate(lifecycle::Lifecycle),
    /// Pause a running automation: events are ignored and scheduled runs cancelled.
    #[command(
        after_help = "Example:\n  automata pause automation aut_abc123",
        mut_subcommand("automation", |c| c
            .about("Pause a running automation: events are ignored and scheduled runs cancelled")
            .after_help("Example:\n  automata pause automation aut_abc123"))
    )]
    Pause(lifecycle::Lifecycle),
    /// Reset a paused automation back to draft.
    #[command(
        after_help = "Example:\n  automata reset automation aut_abc123",
        mut_subcommand("automation", |c| c
            .about("Reset a paused automation back to draft")
            .after_help("Example:\n  automata reset automation aut_abc123"))
    )]
    Reset(lifecycle::Lifecycle),
    Send(send::Send),
    Run(run::Run),
    Rerun(run::Rerun),
    Cancel(cancel::Cancel),
    Completions(completions::Completions),
    Doctor(doctor::Doctor),
    Backup(backup::Backup),
    Restore(backup::Restore),
}

/// The flags every client command takes, which may also come before the
/// command (`automata --app team-a list automations`): with a value, and
/// whether a value may be attached (`--app=x`, `-ojson`).
const GLOBAL_FLAGS: [&str; 5] = ["--url", "--app", "--token", "--output", "-o"];

/// `automata --app x list automations` as clap reads it: the global flags
/// given before the command are moved after it (before any `--`), where
/// every client command declares them. Other leading flags (`--help`,
/// `--version`) stay put; a global flag before `serve` or `run-local`, which
/// do not take it, is then refused by clap as for any unknown flag.
pub fn global_flags_after_subcommand(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut ordered: Vec<OsString> = args.next().into_iter().collect();
    let mut hoisted = Vec::new();
    let mut rest: Vec<OsString> = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let exact = GLOBAL_FLAGS.contains(&text.as_ref());
        let attached = GLOBAL_FLAGS.iter().any(|flag| {
            let long = flag.starts_with("--");
            text.strip_prefix(flag).is_some_and(|value| {
                if long {
                    value.starts_with('=')
                } else {
                    !value.is_empty()
                }
            })
        });
        if exact {
            hoisted.push(arg);
            hoisted.extend(args.next());
        } else if attached {
            hoisted.push(arg);
        } else {
            rest.push(arg);
            break;
        }
    }
    rest.extend(args);
    let end = rest
        .iter()
        .position(|arg| arg == "--")
        .unwrap_or(rest.len());
    let tail = rest.split_off(end);
    ordered.extend(rest);
    ordered.extend(hoisted);
    ordered.extend(tail);
    ordered
}

/// Runs the parsed command line; errors are printed here, once.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::RunLocal(cmd) => cmd.run(),
        Command::Serve(cmd) => cmd.run(),
        Command::List(cmd) => block_on(cmd.run()),
        Command::Describe(cmd) => block_on(cmd.run()),
        Command::Create(cmd) => block_on(cmd.run()),
        Command::Update(cmd) => block_on(cmd.run()),
        Command::Delete(cmd) => block_on(cmd.run()),
        Command::Set(cmd) => block_on(cmd.run()),
        Command::Preview(cmd) => block_on(cmd.run()),
        Command::Activate(cmd) => block_on(cmd.run(lifecycle::Transition::Activate)),
        Command::Pause(cmd) => block_on(cmd.run(lifecycle::Transition::Pause)),
        Command::Reset(cmd) => block_on(cmd.run(lifecycle::Transition::Reset)),
        Command::Send(cmd) => block_on(cmd.run()),
        Command::Run(cmd) => block_on(cmd.run()),
        Command::Rerun(cmd) => block_on(cmd.run()),
        Command::Cancel(cmd) => block_on(cmd.run()),
        Command::Completions(cmd) => cmd.run(),
        Command::Doctor(cmd) => cmd.run(),
        Command::Backup(cmd) => cmd.run(),
        Command::Restore(cmd) => cmd.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<args::UsageError>() {
                ExitCode::from(USAGE_ERROR)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs a client command on a single-threaded runtime: it waits on one
/// request at a time.
fn block_on(command: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reorder(line: &str) -> String {
        let args = line.split(' ').map(OsString::from);
        let ordered = global_flags_after_subcommand(args);
        let words: Vec<String> = ordered
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        words.join(" ")
    }

    #[test]
    fn global_flags_before_the_command_move_after_it() {
        assert_eq!(
            reorder("automata --app team-a -o json list automations --type trigger"),
            "automata list automations --type trigger --app team-a -o json"
        );
        assert_eq!(
            reorder("automata --url=http://h:1 -ojson --token t describe automation a"),
            "automata describe automation a --url=http://h:1 -ojson --token t"
        );
        assert_eq!(
            reorder("automata list automations --app x"),
            "automata list automations --app x"
        );
        assert_eq!(reorder("automata --help"), "automata --help");
        assert_eq!(
            reorder("automata --app x run-local w.wasm -- extra"),
            "automata run-local w.wasm --app x -- extra"
        );
        assert_eq!(reorder("automata --app"), "automata --app");
        assert_eq!(
            reorder("automata --apple list"),
            "automata --apple list",
            "only whole flags move"
        );
    }
}
