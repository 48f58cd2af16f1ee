//! `/apps…` and `/apps/:app_id/keys…`: explicit apps and their API keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete as delete_route, get};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::access::actor;
use super::error::{ApiError, ErrorBody};
use super::execution::ExecutionState;
use super::extract::{JsonBody, PathParams, QueryParams, app_id};
use crate::domain::access::{ApiKey, NewKey, Principal};
use crate::domain::app::{App, NewApp};
use crate::execution::Execution;
use crate::service::{CreatedKey, Service};

/// The apps and keys routes, to merge into [`super::app`].
pub fn routes(service: Arc<Service>, execution: Arc<Execution>) -> Router {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/{app_id}", get(show).delete(delete))
        .route("/apps/{app_id}/keys", get(list_keys).post(create_key))
        .route("/apps/{app_id}/keys/{key_id}", delete_route(delete_key))
        .layer(axum::extract::DefaultBodyLimit::max(
            super::MAX_JSON_BODY_BYTES,
        ))
        .with_state(ExecutionState { service, execution })
}

/// `{"data": [app, …]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppList {
    pub data: Vec<App>,
}

/// `{"data": [key, …]}` (never their secrets).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub data: Vec<ApiKey>,
}

/// `?force=true` on `DELETE /apps/:app_id`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteAppQuery {
    /// Pause the app's running automations first instead of refusing (409).
    #[serde(default)]
    pub force: bool,
}

/// Create an app (admin key).
#[utoipa::path(
    post, path = "/apps", tag = "apps",
    request_body = NewApp,
    responses(
        (status = 201, body = App),
        (status = 400, body = ErrorBody, description = "Malformed id or name"),
        (status = 409, body = ErrorBody, description = "The id is taken"),
    )
)]
pub async fn create(
    State(state): State<ExecutionState>,
    principal: Option<Extension<Principal>>,
    JsonBody(new): JsonBody<NewApp>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    let by = actor(principal.as_deref());
    let app = state.service.create_app(new, by).await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// List apps (admin key).
#[utoipa::path(
    get, path = "/apps", tag = "apps",
    responses((status = 200, body = AppList))
)]
pub async fn list(State(state): State<ExecutionState>) -> Result<Json<AppList>, ApiError> {
    Ok(Json(AppList {
        data: state.service.apps().await?,
    }))
}

/// Show an app.
#[utoipa::path(
    get, path = "/apps/{app_id}", tag = "apps",
    params(("app_id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 404, body = ErrorBody))
)]
pub async fn show(
    State(state): State<ExecutionState>,
    PathParams(app): PathParams<String>,
) -> Result<Json<App>, ApiError> {
    Ok(Json(state.service.app(&app_id(&app)?).await?))
}

/// Delete an app and everything in it (admin key).
///
/// Refused (409) while it has running automations, unless `?force=true`,
/// which pauses them first. Its keys stop working at once, its pending runs
/// are cancelled and executing ones interrupted, then its automations,
/// configs, runs and event receipts are removed.
#[utoipa::path(
    delete, path = "/apps/{app_id}", tag = "apps",
    params(("app_id" = String, Path, description = "App id"), DeleteAppQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Running automations, without force"),
    )
)]
pub async fn delete(
    State(state): State<ExecutionState>,
    PathParams(app): PathParams<String>,
    QueryParams(query): QueryParams<DeleteAppQuery>,
) -> Result<StatusCode, ApiError> {
    let app = app_id(&app)?;
    state.service.remove_app(&app, query.force).await?;
    for run in state.service.executing_runs(&app).await? {
        // Ended meanwhile (409) or gone: nothing left to stop.
        if let Err(error) = state.execution.cancel(&app, &run).await {
            tracing::debug!(%error, %run, "run of a deleted app not cancelled");
        }
    }
    state.service.purge_app(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key for the app (admin key).
///
/// The answer holds the key (`key_secret`) — the only time it is shown; the
/// server stores its SHA-256.
#[utoipa::path(
    post, path = "/apps/{app_id}/keys", tag = "apps",
    params(("app_id" = String, Path, description = "App id")),
    request_body = NewKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn create_key(
    State(state): State<ExecutionState>,
    principal: Option<Extension<Principal>>,
    PathParams(app): PathParams<String>,
    JsonBody(new): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let app = app_id(&app)?;
    let by = actor(principal.as_deref());
    let key = state.service.create_key(&app, new, by).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// List the app's API keys (admin key): id, name, role, prefix, created,
/// last used, expiry — never the keys themselves.
#[utoipa::path(
    get, path = "/apps/{app_id}/keys", tag = "apps",
    params(("app_id" = String, Path, description = "App id")),
    responses((status = 200, body = KeyList), (status = 404, body = ErrorBody))
)]
pub async fn list_keys(
    State(state): State<ExecutionState>,
    PathParams(app): PathParams<String>,
) -> Result<Json<KeyList>, ApiError> {
    let app = app_id(&app)?;
    Ok(Json(KeyList {
        data: state.service.keys(Some(&app)).await?,
    }))
}

/// Revoke an API key (admin key): the next request with it gets 401.
#[utoipa::path(
    delete, path = "/apps/{app_id}/keys/{key_id}", tag = "apps",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("key_id" = String, Path, description = "Key id (`key_…`)"),
    ),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody))
)]
pub async fn delete_key(
    State(state): State<ExecutionState>,
    PathParams((app, key)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = app_id(&app)?;
    state.service.delete_key(&app, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
