//! The liveness probe for supervisors and load balancers: `GET /healthz`
//! answers `{"status":"ok"}` while the process serves HTTP. It needs no key,
//! skips the Host check and load shedding ([`crate::edge::is_probe`]) and
//! touches nothing but the HTTP server, so it answers even while the store
//! is busy or a flood is being shed.

use axum::Json;
use serde::Serialize;

/// The answer of a probe that passed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok`.
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
