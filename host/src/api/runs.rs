//! `/apps/:app_id/automations/:id/runs` and `/apps/:app_id/automations/runs/:run_id`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{PathParams, QueryParams, app_id};
use crate::domain::run::{Run, RunStatus};
use crate::service::{RunQuery, Service};

/// `{"data": [run, …], "next_cursor": "…" | null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunList {
    /// Newest first.
    pub data: Vec<Run>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging for listing runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRunsQuery {
    /// Only runs in this status.
    #[param(inline)]
    pub status: Option<RunStatus>,
    /// Page size: default 50, at most 100.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// List an automation's runs, newest first.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/{id}/runs", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
        ListRunsQuery,
    ),
    responses(
        (status = 200, body = RunList),
        (status = 400, body = ErrorBody, description = "Bad status, limit or cursor"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<ListRunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let query = RunQuery {
        status: query.status,
        limit: query.limit,
        cursor: query.cursor,
    };
    let page = service.runs(&app_id(&app)?, &id, query).await?;
    Ok(Json(RunList {
        data: page.runs,
        next_cursor: page.next_cursor,
    }))
}

/// Get a run.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/runs/{run_id}", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("run_id" = String, Path, description = "Run id (`atr_…`)"),
    ),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody))
)]
pub async fn show(
    State(service): State<Arc<Service>>,
    PathParams((app, run_id)): PathParams<(String, String)>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(service.run(&app_id(&app)?, &run_id).await?))
}
