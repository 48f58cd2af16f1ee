//! `/apps/:app_id/automations/runs` (every automation's runs),
//! `/apps/:app_id/automations/:id/runs` and
//! `/apps/:app_id/automations/runs/:run_id`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
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
    /// Only runs of this automation (id or lookup key; the id of a deleted
    /// automation still finds its runs). Only on `/automations/runs`: the
    /// per-automation list has it in its path.
    pub automation_id: Option<String>,
    /// Only runs in this status.
    #[param(inline)]
    pub status: Option<RunStatus>,
    /// Only runs of this trigger: an event name or `workflow.scheduled`.
    pub trigger: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
    /// Only the last attempt of each retry chain (runs without `retried_by`).
    pub latest_attempt: Option<bool>,
    /// Page size: default 50, at most 100.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl ListRunsQuery {
    fn into_query(self) -> RunQuery {
        RunQuery {
            automation: self.automation_id,
            status: self.status,
            trigger: self.trigger,
            since: self.since,
            until: self.until,
            latest_attempt: self.latest_attempt.unwrap_or(false),
            limit: self.limit,
            cursor: self.cursor,
        }
    }
}

/// List an automation's runs, newest first.
///
/// The runs of a deleted automation stay listable by its id until retention
/// removes them.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/{id}/runs", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
        ListRunsQuery,
    ),
    responses(
        (status = 200, body = RunList),
        (status = 400, body = ErrorBody, description = "Bad filter, limit or cursor"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<ListRunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let app = app_id(&app)?;
    if query.automation_id.is_some() {
        return Err(ApiError::invalid(
            "invalid query string: `automation_id` is given by the path here; \
             use it on /apps/{app_id}/automations/runs",
        ));
    }
    let query = RunQuery {
        automation: Some(id),
        ..query.into_query()
    };
    page(&service, &app, query).await
}

/// List the app's runs across automations, newest first.
///
/// Runs of every automation, deleted ones' included, filtered by any of
/// `automation_id`, `status`, `trigger`, `since`/`until` and
/// `latest_attempt`: "what failed in the last hour" is
/// `?status=failed&since=…`. Read from an index, with cursor paging that new
/// runs never shift.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/runs", tag = "runs",
    params(("app_id" = String, Path, description = "App id"), ListRunsQuery),
    responses(
        (status = 200, body = RunList),
        (status = 400, body = ErrorBody, description = "Bad filter, limit or cursor"),
        (status = 404, body = ErrorBody, description = "automation_id names no automation"),
    )
)]
pub async fn list_all(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
    QueryParams(query): QueryParams<ListRunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    page(&service, &app_id(&app)?, query.into_query()).await
}

async fn page(
    service: &Service,
    app: &crate::domain::ids::AppId,
    query: RunQuery,
) -> Result<Json<RunList>, ApiError> {
    let page = service.runs(app, query).await?;
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
