//! `/admin/…`: host-wide operator endpoints, outside every app. A route
//! group of its own ([`routes`]) so it can be guarded as a whole.
//!
//! - `GET /admin/quarantine`: records the store could not read back, moved
//!   aside instead of failing what read them.
//! - `GET /admin/quarantine/{id}`, `GET /admin/quarantine/{id}/bytes`,
//!   `DELETE /admin/quarantine/{id}`: one record, its stored bytes, discard it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{PathParams, QueryParams};
use crate::service::Service;
use crate::store::QuarantinedRecord;

/// The admin routes over `service`, to merge into the API.
pub fn routes(service: Arc<Service>) -> Router {
    Router::new()
        .route("/admin/quarantine", get(quarantine))
        .route("/admin/quarantine/{id}", get(quarantined).delete(discard))
        .route("/admin/quarantine/{id}/bytes", get(quarantined_bytes))
        .with_state(service)
}

/// `{"data": [record, …], "next_cursor": "…" | null, "total": n}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantineList {
    /// In the order they entered the quarantine.
    pub data: Vec<QuarantinedRecord>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// How many records the quarantine holds in all.
    pub total: usize,
}

/// Paging through the quarantine.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// Page size: default 50, at most 100.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// List the records the store could not read back.
///
/// A stored record that cannot be decoded (an automation, config, run,
/// schedule cursor, event receipt or index entry) is moved here, bytes
/// untouched, by whatever read it; the host goes on without it.
#[utoipa::path(
    get, path = "/admin/quarantine", tag = "admin",
    params(QuarantineQuery),
    responses(
        (status = 200, body = QuarantineList),
        (status = 400, body = ErrorBody, description = "Bad limit or cursor"),
    )
)]
pub async fn quarantine(
    State(service): State<Arc<Service>>,
    QueryParams(query): QueryParams<QuarantineQuery>,
) -> Result<Json<QuarantineList>, ApiError> {
    let page = service
        .quarantine(query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(QuarantineList {
        data: page.records,
        next_cursor: page.next_cursor,
        total: page.total,
    }))
}

/// Get a quarantined record: what it was, why and when it was set aside.
#[utoipa::path(
    get, path = "/admin/quarantine/{id}", tag = "admin",
    params(("id" = u64, Path, description = "Quarantine id")),
    responses((status = 200, body = QuarantinedRecord), (status = 404, body = ErrorBody))
)]
pub async fn quarantined(
    State(service): State<Arc<Service>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<QuarantinedRecord>, ApiError> {
    Ok(Json(service.quarantined(&id).await?))
}

/// Download a quarantined record's bytes, exactly as they were stored.
#[utoipa::path(
    get, path = "/admin/quarantine/{id}/bytes", tag = "admin",
    params(("id" = u64, Path, description = "Quarantine id")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn quarantined_bytes(
    State(service): State<Arc<Service>>,
    PathParams(id): PathParams<String>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = service.quarantined_bytes(&id).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes))
}

/// Discard a quarantined record for good.
#[utoipa::path(
    delete, path = "/admin/quarantine/{id}", tag = "admin",
    params(("id" = u64, Path, description = "Quarantine id")),
    responses((status = 204, description = "Discarded"), (status = 404, body = ErrorBody))
)]
pub async fn discard(
    State(service): State<Arc<Service>>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    service.discard_quarantined(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
