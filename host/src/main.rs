//! The `automata` binary: the server and the operator CLI.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = automata::cli::Cli::parse();
    automata::cli::main(cli)
}
