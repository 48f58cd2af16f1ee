//! `GET /metrics`: the Prometheus text of the server's [`Metrics`], served
//! on its own listener (`serve --metrics-listen`), apart from the API.
//!
//! A separate address keeps the scrape independent of API keys: operators
//! expose it to the Prometheus server only (loopback by default, or a
//! private interface), and the API's port never answers `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::execution::Execution;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// What the scrape reads.
#[derive(Clone)]
pub struct ScrapeState {
    /// The registry to encode.
    pub metrics: Arc<Metrics>,
    /// Queue depth and busy workers.
    pub execution: Arc<Execution>,
    /// Measured for `automata_data_dir_bytes`.
    pub data_dir: PathBuf,
}

/// The metrics listener's routes: `/metrics`, JSON 404/405 for the rest.
pub fn routes(state: ScrapeState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
        .with_state(state)
}

async fn scrape(State(state): State<ScrapeState>) -> impl IntoResponse {
    let mut snapshot = state.execution.snapshot();
    let dir = state.data_dir.clone();
    snapshot.data_dir_bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(snapshot),
    )
}

/// Bytes of every regular file under `dir`, recursively; what cannot be
/// read counts as 0.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
