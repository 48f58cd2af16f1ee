//! The server: opens the store, builds the service and serves the API until
//! asked to stop, then flushes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api;
use crate::execution::{Execution, ExecutionConfig};
use crate::runner::{Runner, RunnerConfig, SetupError};
use crate::service::{Service, ServiceSettings};
use crate::store::{SledStore, Store, StoreError, StoreOptions};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    service: Arc<Service>,
    execution: Arc<Execution>,
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let (path, options) = (config.data_dir.clone(), config.store.clone());
        let store = tokio::task::spawn_blocking(move || SledStore::open(&path, &options))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        // Compiled components are cached beside the store, so a restart does
        // not recompile every config. One execution slot (and pooled instance)
        // per worker: a started run never waits for the runner.
        let runner = Arc::new(Runner::new(RunnerConfig {
            cache_dir: Some(config.data_dir.join("compiled")),
            pooling: true,
            max_concurrent_runs: config.execution.workers.max(1),
            ..RunnerConfig::default()
        })?);
        let service = Arc::new(Service::new(Arc::new(store), runner, config.service));
        let execution = Arc::new(Execution::new(
            Arc::clone(service.store()),
            Arc::clone(service.runner()),
            config.execution.clone(),
        ));
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Server {
            listener,
            service,
            execution,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
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
        let app = api::app(self.service, Arc::clone(&self.execution));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve)?;
        self.execution.shutdown().await;
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(())
    }
}
