//! The `automata` binary: the server and the operator CLI.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = automata::cli::global_flags_after_subcommand(std::env::args_os());
    let cli = automata::cli::Cli::parse_from(args);
    automata::cli::main(cli)
}
