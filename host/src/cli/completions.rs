//! `automata completions`: shell completion scripts.

use std::process::ExitCode;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  automata completions bash > ~/.local/share/bash-completion/completions/automata
  automata completions zsh > ~/.zfunc/_automata
  automata completions fish > ~/.config/fish/completions/automata.fish")]
pub struct Completions {
    /// The shell to complete for.
    shell: Shell,
}

impl Completions {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut command = Cli::command();
        // Generated whole, then written once: a reader that closes early
        // (`automata completions bash | head`) ends the output quietly.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "automata", &mut script);
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
        Ok(ExitCode::SUCCESS)
    }
}
