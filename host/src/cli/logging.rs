//! `serve`'s logs: a tracing subscriber on stderr, filtered by `--log` /
//! `AUTOMATA_LOG`, as text or JSON lines (`--log-format`).

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use super::args::UsageError;

/// Libraries whose debug output is noise to an operator: kept at `warn`
/// unless the filter names them (`--log debug,sled=debug`).
const QUIET_TARGETS: [&str; 7] = [
    "sled",
    "cranelift",
    "wasmtime",
    "hyper",
    "h2",
    "tower",
    "reqwest",
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// The logging flags of `serve`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Which log lines to write, as tracing filter directives: a level
    /// (`error`, `warn`, `info`, `debug`, `trace`) and per-module overrides,
    /// e.g. `info,automata::execution=debug`. Storage-engine, compiler and
    /// HTTP-library lines stay at `warn` unless named (`sled=debug`).
    #[arg(
        long = "log",
        env = "AUTOMATA_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    filter: String,
    /// `text` (human-readable lines) or `json` (one object per line).
    #[arg(long, env = "AUTOMATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl LogArgs {
    /// Installs the subscriber for the process (stderr).
    pub fn init(&self) -> Result<(), UsageError> {
        let filter = EnvFilter::try_new(effective_filter(&self.filter))
            .map_err(|e| UsageError(format!("invalid --log filter `{}`: {e}", self.filter)))?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
            LogFormat::Json => builder.json().with_ansi(false).init(),
        }
        Ok(())
    }
}

/// `filter` with `{target}=warn` added for each quiet target it does not name.
fn effective_filter(filter: &str) -> String {
    let mut directives = vec![filter.trim().to_owned()];
    directives.extend(
        QUIET_TARGETS
            .iter()
            .filter(|target| !filter.contains(*target))
            .map(|target| format!("{target}=warn")),
    );
    directives.retain(|d| !d.is_empty());
    directives.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_noise_is_quiet_unless_named() {
        let filter = effective_filter("debug");
        assert!(
            filter.starts_with("debug,sled=warn,cranelift=warn,"),
            "{filter}"
        );
        let named = effective_filter("debug,sled=debug");
        assert!(!named.contains("sled=warn"), "{named}");
        assert!(named.contains("wasmtime=warn"), "{named}");
        assert!(EnvFilter::try_new(effective_filter("info")).is_ok());
        assert!(EnvFilter::try_new(effective_filter("info,=nope=")).is_err());
    }
}
