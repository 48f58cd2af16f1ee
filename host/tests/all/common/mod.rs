//! A server running in the test's own process on `127.0.0.1:0`, for the API
//! and execution tests (`crate::common`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use automata::execution::{Execution, ExecutionConfig};
use automata::server::{Server, ServerConfig};
use automata::service::{AuthMode, Service, ServiceSettings};
use automata::store::StoreOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The test servers' configuration: loopback port 0 (and metrics on another), [`automata_e2e::ADMIN_TOKEN`]
/// as admin key, defaults for the rest.
pub fn config(data_dir: &Path) -> ServerConfig {
    ServerConfig {
        data_dir: data_dir.to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        store: StoreOptions::default(),
        service: ServiceSettings::default(),
        execution: ExecutionConfig::default(),
        auth: AuthMode::required(Some(automata_e2e::ADMIN_TOKEN)).unwrap(),
        edge: Default::default(),
        metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        metrics: Default::default(),
        retention: Default::default(),
        secrets: Default::default(),
    }
}

/// `Server::serve` on a task of the test's runtime, until [`Self::stop`].
pub struct InProcessServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT/metrics` (the metrics listener).
    pub metrics_url: String,
    /// The server's service, for what the API cannot do (inserting runs).
    pub service: Arc<Service>,
    /// The server's execution plane, for tests that stop it early.
    pub execution: Arc<Execution>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl InProcessServer {
    pub async fn start(
        data_dir: &Path,
        service: ServiceSettings,
        execution: ExecutionConfig,
    ) -> Self {
        let config = ServerConfig {
            service,
            execution,
            ..config(data_dir)
        };
        Self::start_config(config).await
    }

    /// A server as `config` says, on `config.listen`.
    pub async fn start_config(config: ServerConfig) -> Self {
        let server = Server::bind(&config).await.expect("server starts");
        let scheme = if config.edge.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", server.local_addr());
        let metrics_url = format!(
            "http://{}/metrics",
            server.metrics_addr().expect("a metrics listener")
        );
        let service = Arc::clone(server.service());
        let execution = Arc::clone(server.execution());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        InProcessServer {
            base,
            metrics_url,
            service,
            execution,
            stop,
            task,
        }
    }

    /// Stops the server and waits until it has released the data directory.
    pub async fn stop(self) {
        drop(self.service);
        drop(self.execution);
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}

/// A client that sends the test servers' admin key with every request.
pub fn admin_client() -> reqwest::Client {
    client_with_key(automata_e2e::ADMIN_TOKEN)
}

/// A client that sends `key` as its bearer token with every request.
#[allow(dead_code)] // Not every test binary sends app keys.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}")
        .parse()
        .expect("a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}
