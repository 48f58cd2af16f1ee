//! Probes for supervisors and load balancers: `GET /healthz` (the process
//! answers) and `GET /readyz` (it can take work). Neither needs a key (both
//! are `Public` in [`super::access::DECISIONS`]), both skip the Host check
//! and load shedding ([`crate::edge::is_probe`]), and `/healthz` touches
//! nothing but the HTTP server, so it answers even while the store is stuck
//! or a flood is being shed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use crate::execution::Execution;
use crate::store::Store;

/// How long `/readyz` waits for the store's write probe before it calls the
/// store unresponsive.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness looks at: the store, the execution plane and whether the
/// server is shutting down.
pub struct Readiness {
    store: Arc<dyn Store>,
    execution: Arc<Execution>,
    shutting_down: AtomicBool,
}

/// Why the host is not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The server was asked to stop.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The queue, workers or scheduler are not running.
    #[error("the execution plane is not running")]
    ExecutionStopped,
    /// The probe write failed, or the last flush to disk did.
    #[error("the store is not writable: {0}")]
    StoreUnwritable(String),
    /// The probe write did not finish within [`STORE_PROBE_TIMEOUT`].
    #[error("the store did not answer a probe write within {} s", STORE_PROBE_TIMEOUT.as_secs())]
    StoreUnresponsive,
}

impl Readiness {
    /// Readiness of a server over `store` and `execution`, not shutting down.
    pub fn new(store: Arc<dyn Store>, execution: Arc<Execution>) -> Self {
        Readiness {
            store,
            execution,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// From now on `/readyz` answers 503: the server is stopping.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Ready when not shutting down, the execution plane runs and the store
    /// takes a probe write (within [`STORE_PROBE_TIMEOUT`]); otherwise the
    /// first reason found, in that order.
    pub async fn check(&self) -> Result<(), NotReady> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(NotReady::ShuttingDown);
        }
        if !self.execution.is_running() {
            return Err(NotReady::ExecutionStopped);
        }
        let store = Arc::clone(&self.store);
        let probe = tokio::task::spawn_blocking(move || store.probe_write());
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(NotReady::StoreUnwritable(error.to_string())),
            Ok(Err(join)) => Err(NotReady::StoreUnwritable(join.to_string())),
            Err(_) => Err(NotReady::StoreUnresponsive),
        }
    }
}

/// The probes' routes.
pub fn routes(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// The answer of a probe that passed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and serving HTTP. No key, no store access.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, body = ProbeStatus, description = "`{\"status\":\"ok\"}`"))
)]
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "ok" })
}

/// Readiness: the store is open and writable, the execution plane runs and
/// the host is not shutting down. 503 `unavailable` names what is not.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = ProbeStatus, description = "`{\"status\":\"ready\"}`"),
        (status = 503, body = ErrorBody, description = "Not ready; the message says why"),
    )
)]
pub async fn readyz(
    State(readiness): State<Arc<Readiness>>,
) -> Result<Json<ProbeStatus>, ApiError> {
    match readiness.check().await {
        Ok(()) => Ok(Json(ProbeStatus { status: "ready" })),
        Err(reason) => Err(ApiError::unavailable(format!("not ready: {reason}"))),
    }
}
