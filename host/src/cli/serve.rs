//! `automata serve`: the HTTP API over the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::execution::ExecutionConfig;
use crate::server::{DEFAULT_LISTEN, Server, ServerConfig};
use crate::service::{DEFAULT_MAX_CONFIG_BYTES, ServiceSettings};
use crate::store::{Durability, StoreOptions};

/// Run the server: the REST API over an embedded store in the data directory
///
/// Stops cleanly on Ctrl-C or SIGTERM (in-flight requests finish, the store is
/// flushed).
///
/// Example:
///   automata serve --data-dir /var/lib/automata --listen 0.0.0.0:7070
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct Serve {
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "AUTOMATA_DATA_DIR", default_value = "automata-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AUTOMATA_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// When writes reach the disk: `always` (each write is flushed before it is
    /// acknowledged) or an interval such as `200ms` (a crash may lose the last
    /// interval; a clean shutdown loses nothing).
    #[arg(long, default_value = "always", value_parser = parse_flush)]
    flush: Durability,
    /// Largest component upload, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_CONFIG_BYTES)]
    max_config_bytes: usize,
    /// Runs executing at once (default: the number of cores).
    #[arg(long, env = "AUTOMATA_WORKERS")]
    workers: Option<usize>,
    /// Most runs waiting to execute; past it event intake answers 429.
    #[arg(long, default_value_t = ExecutionConfig::default().queue_capacity)]
    queue_capacity: usize,
    /// Seconds running runs get to finish on shutdown before they are cancelled.
    #[arg(long, default_value_t = ExecutionConfig::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
}

fn parse_flush(text: &str) -> Result<Durability, String> {
    if text == "always" {
        return Ok(Durability::Immediate);
    }
    text.strip_suffix("ms")
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(|ms| Durability::Interval(Duration::from_millis(ms)))
        .ok_or_else(|| format!("`{text}` is neither `always` nor an interval like `200ms`"))
}

impl Serve {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("AUTOMATA_LOG")
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(self.serve())?;
        Ok(ExitCode::SUCCESS)
    }

    async fn serve(self) -> anyhow::Result<()> {
        let config = ServerConfig {
            data_dir: self.data_dir,
            listen: self.listen,
            store: StoreOptions {
                durability: self.flush,
                ..StoreOptions::default()
            },
            service: ServiceSettings {
                max_config_bytes: self.max_config_bytes,
                ..ServiceSettings::default()
            },
            execution: ExecutionConfig {
                workers: self
                    .workers
                    .unwrap_or(ExecutionConfig::default().workers)
                    .max(1),
                queue_capacity: self.queue_capacity,
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
            },
        };
        let server = Server::bind(&config).await?;
        // Scripts and tests read the address from this line.
        println!(
            "automata listening on http://{} (data in {})",
            server.local_addr(),
            config.data_dir.display()
        );
        server.serve(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
