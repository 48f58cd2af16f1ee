//! `/apps/:app_id/secrets…`: set, list and delete app secrets. Values are
//! write-only: no answer ever holds one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, PathParams, app_id};
use crate::domain::secret::{Secret, SecretValue};
use crate::service::Service;

/// The secrets routes, to merge into [`super::app`].
pub fn routes(service: Arc<Service>) -> Router {
    Router::new()
        .route("/apps/{app_id}/secrets", get(list))
        .route("/apps/{app_id}/secrets/{name}", put(set).delete(delete))
        .layer(axum::extract::DefaultBodyLimit::max(
            super::MAX_JSON_BODY_BYTES,
        ))
        .with_state(service)
}

/// `{"data": [secret, …]}`, by name (never their values).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretList {
    pub data: Vec<Secret>,
}

/// Set a secret's value (write key).
///
/// The value is sealed (AES-256-GCM-SIV, bound to the app and the name)
/// before it is stored, and never shown again. Workflows of automations
/// whose `capabilities.secrets` name it read it with `secrets.get`; the host
/// masks it (`***`) in their runs' output, payload and error.
#[utoipa::path(
    put, path = "/apps/{app_id}/secrets/{name}", tag = "secrets",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("name" = String, Path, description = "Secret name: 1–64 characters of A–Z, 0–9 and `_`, not starting with a digit"),
    ),
    request_body = SecretValue,
    responses(
        (status = 201, body = Secret, description = "Created"),
        (status = 200, body = Secret, description = "Replaced"),
        (status = 400, body = ErrorBody, description = "Bad name, or a value under 8 bytes"),
        (status = 409, body = ErrorBody, description = "The app holds 1000 secrets already"),
        (status = 413, body = ErrorBody, description = "A value over 64 KiB"),
    )
)]
pub async fn set(
    State(service): State<Arc<Service>>,
    PathParams((app, name)): PathParams<(String, String)>,
    JsonBody(value): JsonBody<SecretValue>,
) -> Result<(StatusCode, Json<Secret>), ApiError> {
    let app = app_id(&app)?;
    let written = service.put_secret(&app, &name, value).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(written.secret)))
}

/// List the app's secrets: names and dates, never values.
#[utoipa::path(
    get, path = "/apps/{app_id}/secrets", tag = "secrets",
    params(("app_id" = String, Path, description = "App id")),
    responses((status = 200, body = SecretList), (status = 404, body = ErrorBody))
)]
pub async fn list(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
) -> Result<Json<SecretList>, ApiError> {
    let app = app_id(&app)?;
    Ok(Json(SecretList {
        data: service.secrets(&app).await?,
    }))
}

/// Delete a secret (write key); runs that start afterwards read it as absent.
#[utoipa::path(
    delete, path = "/apps/{app_id}/secrets/{name}", tag = "secrets",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("name" = String, Path, description = "Secret name"),
    ),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(service): State<Arc<Service>>,
    PathParams((app, name)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = app_id(&app)?;
    service.delete_secret(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
