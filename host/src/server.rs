//! The server: opens the store, builds the service and serves the API until
//! asked to stop, then flushes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::admin_socket::AdminSocket;
use crate::api;
use crate::api::health::Readiness;
use crate::api::scrape::ScrapeState;
use crate::edge::{self, EdgeConfig};
use crate::execution::{Execution, ExecutionConfig};
use crate::metrics::{Metrics, MetricsOptions};
use crate::retention::{Retention, RetentionConfig};
use crate::runner::{Runner, RunnerConfig, SetupError};
use crate::service::secret_key::{self, SecretKeyError, SecretsConfig};
use crate::service::{AuthMode, Authenticator, Service, ServiceSettings};
use crate::store::{SledStore, Store, StoreError, StoreOptions};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The file in the data directory holding the admin key made on first start.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the embedded store lives (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Store durability and cache.
    pub store: StoreOptions,
    /// Service limits.
    pub service: ServiceSettings,
    /// Workers, queue size and shutdown grace of the execution plane.
    pub execution: ExecutionConfig,
    /// Whether requests need an API key.
    pub auth: AuthMode,
    /// Connections, timeouts, request limits, allowed hosts, TLS.
    pub edge: EdgeConfig,
    /// Where `/metrics` is served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How metrics are labelled.
    pub metrics: MetricsOptions,
    /// How long and how many runs are kept, and how often that is enforced.
    pub retention: RetentionConfig,
    /// The key sealing app secrets (default: the data directory's key file).
    pub secrets: SecretsConfig,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runner(#[from] SetupError),
    /// `listener` is `API` (`--listen`) or `metrics` (`--metrics-listen`).
    /// The IO error is part of the message, not a `source`, so a report
    /// that prints the chain does not repeat it.
    #[error("cannot listen on {addr} for the {listener}: {error}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error(
        "--no-auth is only allowed on a loopback address (127.0.0.1, ::1), not {0}: \
         anyone who can reach the port could do everything"
    )]
    NoAuthExposed(SocketAddr),
    #[error("cannot write the admin key to {path}: {source}")]
    AdminToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the first admin key: {0}")]
    Bootstrap(crate::service::ServiceError),
    #[error(transparent)]
    Tls(#[from] edge::tls::TlsError),
    #[error(transparent)]
    SecretKey(#[from] SecretKeyError),
}

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    service: Arc<Service>,
    execution: Arc<Execution>,
    authenticator: Arc<Authenticator>,
    edge: EdgeConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    data_dir: PathBuf,
    retention: RetentionConfig,
    admin: Option<AdminSocket>,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        if config.auth == AuthMode::Off && !config.listen.ip().is_loopback() {
            return Err(ServerError::NoAuthExposed(config.listen));
        }
        let tls = config
            .edge
            .tls
            .as_ref()
            .map(edge::tls::acceptor)
            .transpose()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let (path, options) = (config.data_dir.clone(), config.store.clone());
        let secrets = config.secrets.clone();
        let (store, secret_key) = tokio::task::spawn_blocking(move || {
            let store = SledStore::open(&path, &options)?;
            let key = secret_key::open_key(&path, &secrets, &store)?;
            Ok::<_, ServerError>((store, key))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        // Compiled components are cached beside the store, so a restart does
        // not recompile every config. One execution slot (and pooled instance)
        // per worker: a started run never waits for the runner.
        let runner = Arc::new(Runner::new(RunnerConfig {
            cache_dir: Some(config.data_dir.join("compiled")),
            pooling: true,
            max_concurrent_runs: config.execution.workers.max(1),
            allow_private_egress: config.execution.allow_private_egress,
            bounds_checks: config.execution.bounds_checks,
            ..RunnerConfig::default()
        })?);
        let mut metrics = Metrics::new(config.metrics);
        metrics.register_store(store.metrics());
        let metrics = Arc::new(metrics);
        let service = Arc::new(
            Service::new(
                Arc::new(store),
                runner,
                config.service,
                Arc::clone(&metrics),
            )
            .with_secret_key(secret_key.clone()),
        );
        bootstrap(&service, config).await?;
        let authenticator = Arc::new(Authenticator::new(
            Arc::clone(service.store()),
            config.auth.clone(),
        ));
        let execution = Arc::new(
            Execution::new(
                Arc::clone(service.store()),
                Arc::clone(service.runner()),
                config.execution.clone(),
                Arc::clone(&metrics),
            )
            .with_secret_key(secret_key),
        );
        let listener = bind("API (--listen)", config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind("metrics (--metrics-listen)", addr).await?),
            None => None,
        };
        let readiness = Arc::new(Readiness::new(
            Arc::clone(service.store()),
            Arc::clone(&execution),
        ));
        // Without the socket the server still serves; backups then need it
        // stopped.
        let admin = AdminSocket::bind(&config.data_dir)
            .inspect_err(|error| {
                tracing::warn!(
                    "no admin socket in {} ({error}); `automata backup` needs the server stopped",
                    config.data_dir.display()
                );
            })
            .ok();
        Ok(Server {
            admin,
            listener,
            metrics_listener,
            service,
            execution,
            authenticator,
            edge: config.edge.clone(),
            tls,
            readiness,
            metrics,
            data_dir: config.data_dir.clone(),
            retention: config.retention,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address `/metrics` is served on, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|listener| {
            listener
                .local_addr()
                .expect("a bound listener has an address")
        })
    }

    /// The service, for components that run alongside the API.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// The execution plane (queue, workers, scheduler).
    pub fn execution(&self) -> &Arc<Execution> {
        &self.execution
    }

    /// Recovers and starts the execution plane, serves until `shutdown`
    /// completes, lets in-flight requests finish, shuts the execution plane
    /// down (grace period for running runs), then flushes the store.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let store: Arc<dyn Store> = Arc::clone(self.service.store());
        self.execution.follow(self.service.subscribe());
        let recovery = self.execution.start().await?;
        if recovery != Default::default() {
            tracing::info!(
                interrupted = recovery.interrupted,
                retried = recovery.retried,
                resumed = recovery.resumed,
                "recovered runs from the previous process"
            );
        }
        let held = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || held.quarantine_count()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(count)) => tracing::warn!(
                count,
                "the quarantine holds records that could not be read (GET /admin/quarantine)"
            ),
            Ok(Err(error)) => tracing::error!("cannot count the quarantine: {error}"),
            Err(error) => tracing::error!("cannot count the quarantine: {error}"),
        }
        let (stop_retention, retention_stopped) = tokio::sync::watch::channel(false);
        let retention = Retention::new(
            Arc::clone(&store),
            Arc::clone(self.service.runner()),
            Arc::clone(&self.metrics),
            self.retention,
        )
        .spawn(retention_stopped);
        let guard = Arc::new(edge::guard::Guard::new(&self.edge, self.local_addr()));
        let limiter = Arc::new(edge::rate::RateLimiter::new(
            self.edge.event_rate,
            self.edge.event_burst,
        ));
        let console = api::Console {
            secure_cookies: self.tls.is_some(),
        };
        let app = api::app(
            self.service,
            Arc::clone(&self.execution),
            self.authenticator,
            limiter,
            Arc::clone(&self.readiness),
            Arc::clone(&self.metrics),
            console,
        )
        .layer(axum::middleware::from_fn_with_state(
            guard,
            edge::guard::guard,
        ))
        // Outside the guard: its refusals of console requests are pages too.
        .layer(axum::middleware::from_fn(
            crate::console::pages_for_refusals,
        ));
        let readiness = Arc::clone(&self.readiness);
        let execution = Arc::clone(&self.execution);
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            // Requests still answered while in-flight ones finish see 503.
            readiness.shutting_down();
            stopping.send_replace(true);
            // Output streams last as long as their runs: end them first, or
            // the graceful shutdown would wait for every followed run to finish.
            execution.close_streams();
        };
        let scrape = self.metrics_listener.map(|listener| {
            let routes = api::scrape::routes(ScrapeState {
                metrics: Arc::clone(&self.metrics),
                execution: Arc::clone(&self.execution),
                data_dir: self.data_dir.clone(),
            });
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                axum::serve(listener, routes)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await
            })
        });
        let admin = self
            .admin
            .map(|socket| socket.serve(Arc::clone(&store), stopped.clone()));
        edge::listener::serve(self.listener, app, &self.edge, self.tls, shutdown)
            .await
            .map_err(ServerError::Serve)?;
        if let Some(admin) = admin
            && let Err(error) = admin.await
        {
            tracing::error!("the admin socket failed: {error}");
        }
        if let Some(scrape) = scrape {
            match scrape.await {
                Ok(result) => result.map_err(ServerError::Serve)?,
                Err(error) => tracing::error!("the metrics listener failed: {error}"),
            }
        }
        stop_retention.send_replace(true);
        if let Err(error) = retention.await {
            tracing::error!("the retention task failed: {error}");
        }
        self.execution.shutdown().await;
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(())
    }
}

/// Makes apps explicit in data written before they were (once), and makes
/// sure an admin can get in: with authentication on and no
/// `AUTOMATA_ADMIN_TOKEN`, a data directory without an admin key gets one,
/// written to `<data-dir>/admin-token` (mode 0600) — the key is never logged.
async fn bootstrap(service: &Service, config: &ServerConfig) -> Result<(), ServerError> {
    let store = Arc::clone(service.store());
    let now = service.now();
    let adopted = tokio::task::spawn_blocking(move || store.adopt_apps(now))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    if !adopted.is_empty() {
        let ids: Vec<String> = adopted.iter().map(ToString::to_string).collect();
        tracing::info!(apps = %ids.join(", "), "created the apps found in the data directory");
    }
    match &config.auth {
        AuthMode::Off => {
            tracing::warn!(
                listen = %config.listen,
                "authentication is OFF (--no-auth): every request may do everything"
            );
            return Ok(());
        }
        AuthMode::Required {
            admin_token_sha256: Some(_),
        } => return Ok(()),
        AuthMode::Required { .. } => {}
    }
    if !service
        .keys(None)
        .await
        .map_err(ServerError::Bootstrap)?
        .is_empty()
    {
        return Ok(());
    }
    let issued = service
        .create_admin_key("bootstrap")
        .await
        .map_err(ServerError::Bootstrap)?;
    let path = config.data_dir.join(ADMIN_TOKEN_FILE);
    write_secret(&path, &issued.secret).map_err(|source| ServerError::AdminToken {
        path: path.clone(),
        source,
    })?;
    tracing::info!(
        path = %path.display(),
        key = %issued.record.key.id,
        "created the first admin key; it is in this file (readable by this user only)"
    );
    Ok(())
}

/// Writes `secret` to a file only its owner can read.
fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{secret}")?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        writeln!(file, "{secret}")?;
        file.sync_all()
    }
}

/// Binds the `listener` (named in errors) on `addr`.
async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind {
            listener,
            addr,
            error,
        })
}
