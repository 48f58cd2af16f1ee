//! The `automata` command line: one file per command.

mod run_local;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Automata: run WebAssembly workflows on cron ticks and platform events.
#[derive(Debug, Parser)]
#[command(name = "automata", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    RunLocal(run_local::RunLocal),
    Serve(serve::Serve),
}

/// Runs the parsed command line; errors are printed here, once.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::RunLocal(cmd) => cmd.run(),
        Command::Serve(cmd) => cmd.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
