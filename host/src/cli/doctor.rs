//! `automata doctor`: opens a stopped server's store and checks it. Next to
//! `serve` and `run-local`, the one command that does not talk to a server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::doctor;
use crate::store::{SledStore, StoreError, StoreOptions};

/// Check a stopped server's store: read every record back, verify the indexes, list the quarantine
///
/// Reads every record of the data directory; one that cannot be read is
/// moved to the quarantine, as the server does when it meets one. Then
/// recomputes the index entries from the records and reports any mismatch
/// (--repair rebuilds them). Refuses
/// while a server holds the directory (ask it instead:
/// GET /admin/quarantine). Exit status: 0 all is well, 1 problems found or
/// the store cannot be opened.
///
/// Example:
///   automata doctor --data-dir /var/lib/automata
///   automata doctor --data-dir /var/lib/automata --repair
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct Doctor {
    /// Directory of the embedded store, as given to `automata serve`.
    #[arg(long, env = "AUTOMATA_DATA_DIR", default_value = "automata-data")]
    data_dir: PathBuf,
    /// Rebuild index entries that do not match the records.
    #[arg(long)]
    repair: bool,
    /// How to print the report.
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One line per check, its problems indented below.
    Text,
    /// `{"healthy", "checks": [{"name", "summary", "problems"}]}`.
    Json,
}

impl Doctor {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let dir = &self.data_dir;
        // sled keeps its log in `db`: without it there is no store to check,
        // and opening would create an empty one.
        if !dir.join("db").is_file() {
            bail!("{} holds no automata store", dir.display());
        }
        let store = match SledStore::open(dir, &StoreOptions::default()) {
            Ok(store) => store,
            Err(StoreError::Locked(_)) => bail!(
                "{} is in use by a running automata server; stop it first, \
                 or ask it: GET /admin/quarantine",
                dir.display()
            ),
            Err(error) => bail!("cannot open the store in {}: {error}", dir.display()),
        };
        let options = doctor::DoctorOptions {
            repair: self.repair,
        };
        let reports = doctor::examine(&store, options)?;
        let healthy = reports.iter().all(|(_, report)| report.problems.is_empty());
        match self.output {
            Format::Text => {
                let width = reports.iter().map(|(name, _)| name.len()).max();
                let width = width.unwrap_or(0);
                for (name, report) in &reports {
                    println!("{name:width$}  {}", report.summary);
                    for problem in &report.problems {
                        println!("{:width$}    {problem}", "");
                    }
                }
            }
            Format::Json => {
                let checks: Vec<_> = reports
                    .iter()
                    .map(|(name, report)| {
                        json!({"name": name, "summary": report.summary, "problems": report.problems})
                    })
                    .collect();
                println!("{:#}", json!({"healthy": healthy, "checks": checks}));
            }
        }
        Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
