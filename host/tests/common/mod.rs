//! A server running in the test's own process on `127.0.0.1:0`, for the API
//! and execution tests (`mod common;`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use automata::execution::ExecutionConfig;
use automata::server::{Server, ServerConfig};
use automata::service::{Service, ServiceSettings};
use automata::store::StoreOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `Server::serve` on a task of the test's runtime, until [`Self::stop`].
pub struct InProcessServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's service, for what the API cannot do (inserting runs).
    pub service: Arc<Service>,
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
            data_dir: data_dir.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreOptions::default(),
            service,
            execution,
        };
        let server = Server::bind(&config).await.expect("server starts");
        let base = format!("http://{}", server.local_addr());
        let service = Arc::clone(server.service());
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
            service,
            stop,
            task,
        }
    }

    /// Stops the server and waits until it has released the data directory.
    pub async fn stop(self) {
        drop(self.service);
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }
}
