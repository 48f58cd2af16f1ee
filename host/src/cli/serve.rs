//! `automata serve`: the HTTP API over the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::logging::LogArgs;
use crate::domain::retention::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, RetentionPolicy};
use crate::edge::{EdgeConfig, TlsFiles};
use crate::execution::ExecutionConfig;
use crate::metrics::MetricsOptions;
use crate::retention::RetentionConfig;
use crate::runner::BoundsChecks;
use crate::server::{DEFAULT_LISTEN, Server, ServerConfig};
use crate::service::secret_key::{SECRET_KEY_ENV, SecretKey, SecretsConfig};
use crate::service::{AuthMode, DEFAULT_MAX_CONFIG_BYTES, ServiceSettings};
use crate::store::{Durability, StoreOptions};

/// Run the server: the REST API over an embedded store in the data directory
///
/// Every request needs an API key (`Authorization: Bearer <key>`). The first
/// start writes an admin key to <data-dir>/admin-token (unless
/// AUTOMATA_ADMIN_TOKEN gives one). Stops cleanly on Ctrl-C or SIGTERM
/// (in-flight requests finish, the store is flushed). Probes, no key needed:
/// GET /healthz (alive) and GET /readyz (ready for work). Logs go to stderr:
/// one line per request, run ending, lifecycle change, refused upload and
/// scheduler catch-up; AUTOMATA_LOG or --log filters them (default `info`).
///
/// The web console (sign in with an API key) is served on the same listener
/// at /console: http://127.0.0.1:7070/console with the default --listen.
///
/// Examples:
///   automata serve --data-dir /var/lib/automata --listen 127.0.0.1:7070
///   automata serve --listen 0.0.0.0:7443 --tls-cert cert.pem --tls-key key.pem \
///     --public-url https://automata.example.com:7443
///   automata serve --metrics-listen 127.0.0.1:9464 --log-format json
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
    /// Most runs of one app waiting; past it that app's event intake answers
    /// 429 while other apps still have room (default: --queue-capacity).
    #[arg(long, value_name = "RUNS")]
    app_queue_capacity: Option<usize>,
    /// Seconds running runs get to finish on shutdown before they are cancelled.
    #[arg(long, default_value_t = ExecutionConfig::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
    /// Turn authentication off, for local development: every request may do
    /// everything. Refused unless the listen address is loopback.
    #[arg(long)]
    no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// The URL clients reach this server at: its host is answered and its
    /// origin may send changes.
    #[arg(long, env = "AUTOMATA_PUBLIC_URL", value_name = "URL", value_parser = parse_public_url)]
    public_url: Option<reqwest::Url>,
    /// Another host name requests may name (`Host` header); repeatable.
    /// Loopback names and the listen address are always answered.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// Most connections open at once (the idlest is closed for a newcomer).
    #[arg(long, default_value_t = EdgeConfig::default().max_connections)]
    max_connections: usize,
    /// Most requests in progress at once, reads and changes each; past it 503.
    #[arg(long, default_value_t = EdgeConfig::default().max_in_flight)]
    max_in_flight: usize,
    /// Most component uploads in progress at once; past it 503.
    #[arg(long, default_value_t = EdgeConfig::default().max_uploads)]
    max_uploads: usize,
    /// Seconds a client has to send a request's headers (and the longest a
    /// connection stays idle), and between the bytes of a body.
    #[arg(long, default_value_t = EdgeConfig::default().header_timeout.as_secs())]
    request_timeout: u64,
    /// Events per second each key may send; past it 429.
    #[arg(long, default_value_t = EdgeConfig::default().event_rate)]
    event_rate: f64,
    /// Events a key may send at once above --event-rate.
    #[arg(long, default_value_t = EdgeConfig::default().event_burst)]
    event_burst: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its
    /// own (off unless given; keep it on loopback or a private interface).
    #[arg(long, env = "AUTOMATA_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// How many apps get their own `app` label in metrics; later apps are
    /// counted under `_other`.
    #[arg(long, default_value_t = MetricsOptions::default().max_app_labels)]
    metrics_max_apps: usize,
    /// Days to keep ended runs (0: whatever their age; at most 36500); an automation's
    /// `retention.days` overrides it. Old runs are removed in the background.
    #[arg(
        long,
        env = "AUTOMATA_RETENTION_DAYS",
        default_value_t = DEFAULT_RETENTION_DAYS,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETENTION_DAYS))
    )]
    retention_days: u32,
    /// Most runs to keep per automation, the oldest ended ones going first
    /// (0: no limit); an automation's `retention.max_runs` overrides it.
    #[arg(long, env = "AUTOMATA_RETENTION_MAX_RUNS", default_value_t = 0)]
    retention_max_runs: u64,
    #[command(flatten)]
    log: LogArgs,
    /// Delete the stored app secrets that the secret key cannot open (they
    /// were sealed with a key that is lost) instead of refusing to start.
    /// The key is AUTOMATA_SECRET_KEY (32 bytes, hex or base64), else
    /// <data-dir>/secret-key.
    #[arg(long)]
    discard_unreadable_secrets: bool,
    /// Let workflows' HTTP requests reach loopback, private and link-local
    /// addresses (127/8, 10/8, 172.16/12, 192.168/16, 169.254/16 with cloud
    /// metadata, ::1, fc00::/7, fe80::/10). Without it a request there is
    /// refused unless the automation's grant names the address itself.
    #[arg(long)]
    allow_private_egress: bool,
    /// How workflows' memory accesses are kept inside their memory.
    /// `guard-pages` (the default) is safe against hostile workflows;
    /// `explicit` checks every access in compiled code, which lets concurrent
    /// runs scale across cores but turns off wasmtime's Spectre mitigations
    /// for memory and tables: use it only when every workflow is trusted.
    /// Changing it recompiles each workflow once.
    #[arg(long, env = "AUTOMATA_BOUNDS_CHECKS", value_enum, default_value_t = BoundsChecks::GuardPages)]
    bounds_checks: BoundsChecks,
}

fn parse_public_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(_)) => Ok(url),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

/// An admin key given to the server (never stored, never logged).
const ADMIN_TOKEN_ENV: &str = "AUTOMATA_ADMIN_TOKEN";

/// The secret key from the environment, if set (never a flag: it would show
/// in `ps`).
fn secret_key_from_env() -> anyhow::Result<Option<SecretKey>> {
    match std::env::var(SECRET_KEY_ENV) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(SecretKey::parse(&text, SECRET_KEY_ENV)?)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{SECRET_KEY_ENV} is not valid UTF-8: give 64 hex digits or base64")
        }
    }
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
    fn edge(&self) -> EdgeConfig {
        let mut allowed_hosts = self.allowed_hosts.clone();
        let mut allowed_origins = Vec::new();
        if let Some(url) = &self.public_url {
            allowed_hosts.extend(url.host_str().map(str::to_owned));
            allowed_origins.push(url.origin().ascii_serialization());
        }
        let timeout = Duration::from_secs(self.request_timeout.max(1));
        EdgeConfig {
            allowed_hosts,
            allowed_origins,
            header_timeout: timeout,
            body_timeout: timeout,
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            max_uploads: self.max_uploads,
            event_rate: self.event_rate,
            event_burst: self.event_burst,
            tls: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
        }
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        self.log.init()?;
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(self.serve())?;
        Ok(ExitCode::SUCCESS)
    }

    async fn serve(self) -> anyhow::Result<()> {
        let edge = self.edge();
        let auth = if self.no_auth {
            AuthMode::Off
        } else {
            // From the environment only: a flag would show in `ps`.
            let token = std::env::var(ADMIN_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty());
            AuthMode::required(token.as_deref()).map_err(anyhow::Error::msg)?
        };
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
                app_queue_capacity: self.app_queue_capacity.unwrap_or(self.queue_capacity),
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
                allow_private_egress: self.allow_private_egress,
                bounds_checks: self.bounds_checks,
            },
            auth,
            edge,
            metrics_listen: self.metrics_listen,
            metrics: MetricsOptions {
                max_app_labels: self.metrics_max_apps,
            },
            retention: RetentionConfig {
                policy: RetentionPolicy::from_days(self.retention_days, self.retention_max_runs),
                ..RetentionConfig::default()
            },
            secrets: SecretsConfig {
                key: secret_key_from_env()?,
                discard_unreadable: self.discard_unreadable_secrets,
            },
        };
        raise_open_files_limit();
        // Before "listening" is printed: see `shutdown_signal`.
        let shutdown = shutdown_signal();
        let server = Server::bind(&config).await?;
        let scheme = if config.edge.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // Scripts and tests read the address from this line.
        println!(
            "automata listening on {scheme}://{} (data in {})",
            server.local_addr(),
            config.data_dir.display()
        );
        if let Some(addr) = server.metrics_addr() {
            println!("metrics at http://{addr}/metrics");
        }
        server.serve(shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: called before "listening" is printed, a SIGTERM sent as
/// soon as a script or test reads that line stops the server cleanly instead
/// of killing it (the default action while no handler is installed). Must be
/// called inside the runtime.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let stopped = {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        let interrupt = received(signal(SignalKind::interrupt()).ok());
        let terminate = received(signal(SignalKind::terminate()).ok());
        async move {
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
    };
    #[cfg(not(unix))]
    let stopped = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    async move {
        stopped.await;
        tracing::info!("shutting down");
    }
}

/// Raises the soft limit on open files to the hard limit, so the connection
/// cap, not the descriptor limit, decides when connections are refused.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write `limit`, a valid
        // rlimit owned by this frame.
        let raised = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return;
            }
            let before = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            (libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0).then_some(before)
        };
        match raised {
            Some(before) => tracing::debug!(
                from = before,
                to = limit.rlim_max,
                "raised the open files limit"
            ),
            None => tracing::warn!("cannot raise the open files limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_help_says_where_the_console_is() {
        let mut cli = <super::super::Cli as clap::CommandFactory>::command();
        let serve = cli.find_subcommand_mut("serve").expect("a serve command");
        let help = serve.render_long_help().to_string();
        assert!(
            help.contains("web console") && help.contains("http://127.0.0.1:7070/console"),
            "{help}"
        );
    }
}
