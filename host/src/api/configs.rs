//! `/apps/:app_id/configs…`: upload, list, show and delete WorkflowGraph configs.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use super::error::{ApiError, ErrorBody};
use super::extract::{PathParams, QueryParams, app_id, body_bytes};
use crate::domain::config::Config;
use crate::service::Service;

/// The header that can carry an upload's name (instead of `?name=`).
pub const CONFIG_NAME_HEADER: &str = "x-config-name";
/// The media type of an upload.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";

/// `{"data": [config, …]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigList {
    pub data: Vec<Config>,
}

/// An upload's answer: the config, and for bytes already stored a
/// `message` saying so.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResponse {
    #[serde(flatten)]
    pub config: Config,
    /// Only on a 200: `already uploaded as cfg_… (name); nothing was stored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An automation that uses a config.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigUser {
    pub id: crate::domain::ids::AutomationId,
    pub name: String,
    #[schema(value_type = String, example = "running")]
    pub status: crate::domain::automation::AutomationStatus,
}

/// A config as shown alone: with the automations using it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigDetail {
    #[serde(flatten)]
    pub config: Config,
    /// Every automation (any status) whose `config_id` is this config; while
    /// there is one, the config cannot be deleted.
    pub used_by: Vec<ConfigUser>,
}

/// The schema of an upload's body: the component's bytes. Handlers read the
/// raw body; this only describes it.
pub struct ComponentBytes;

impl utoipa::PartialSchema for ComponentBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("A compiled workflow component (.wasm)"))
            .into()
    }
}

impl utoipa::ToSchema for ComponentBytes {}

/// Upload options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Display name (or send the `X-Config-Name` header); defaults to the
    /// workflow's own name.
    pub name: Option<String>,
}

type Response<T> = Result<T, ApiError>;

/// Upload a compiled workflow component.
///
/// The component is compiled and must implement the `automata:workflow/workflow`
/// world; its graph (trigger nodes and steps) is read and stored with it. Bytes
/// are stored once per sha256 digest; uploading the same bytes again (under
/// the same name, or with none) returns the existing config with 200 and a
/// `message` saying so.
#[utoipa::path(
    post, path = "/apps/{app_id}/configs", tag = "configs",
    params(
        ("app_id" = String, Path, description = "App id"),
        UploadQuery,
        ("X-Config-Name" = Option<String>, Header, description = "Display name (alternative to ?name=)"),
    ),
    request_body(content = ComponentBytes, content_type = "application/wasm", description = "The component's bytes"),
    responses(
        (status = 201, body = UploadResponse, description = "Stored"),
        (status = 200, body = UploadResponse, description = "The same bytes were already stored (under this name): the existing config, with `message`"),
        (status = 400, body = ErrorBody, description = "Wrong Content-Type, empty body or bad name"),
        (status = 413, body = ErrorBody, description = "Larger than the configured limit (default 20 MiB)"),
        (status = 422, body = ErrorBody, description = "Not a component, or not of the workflow world"),
        (status = 503, body = ErrorBody, description = "Too many uploads compiling at once; try again after `Retry-After` seconds"),
    )
)]
pub async fn upload(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    request: Request,
) -> Response<(StatusCode, Json<UploadResponse>)> {
    let app = app_id(&app)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(WASM_MEDIA_TYPE) {
        return Err(ApiError::invalid(format!(
            "send the component's bytes with Content-Type: {WASM_MEDIA_TYPE} (got {})",
            content_type.as_deref().unwrap_or("no Content-Type")
        )));
    }
    let name = upload_name(query.name, &headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(size) = declared.filter(|&size| size > service.settings().max_config_bytes) {
        return Err(service.too_large(Some(size)).into());
    }
    let bytes = body_bytes(request, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            service.too_large(None).into()
        } else {
            e
        }
    })?;
    let upload = service.upload_config(&app, name, bytes).await?;
    let (status, message) = if upload.created {
        (StatusCode::CREATED, None)
    } else {
        let config = &upload.config;
        let message = format!(
            "already uploaded as {} ({}); nothing was stored",
            config.id, config.name
        );
        (StatusCode::OK, Some(message))
    };
    Ok((
        status,
        Json(UploadResponse {
            config: upload.config,
            message,
        }),
    ))
}

fn upload_name(query: Option<String>, headers: &HeaderMap) -> Response<Option<String>> {
    let header = headers
        .get(CONFIG_NAME_HEADER)
        .map(|v| {
            String::from_utf8(v.as_bytes().to_vec())
                .map_err(|_| ApiError::invalid("the X-Config-Name header is not UTF-8"))
        })
        .transpose()?;
    match (query, header) {
        (Some(q), Some(h)) if q != h => Err(ApiError::invalid(
            "the name is given twice (?name= and X-Config-Name) with different values",
        )),
        (q, h) => Ok(q.or(h)),
    }
}

/// List configs.
#[utoipa::path(
    get, path = "/apps/{app_id}/configs", tag = "configs",
    params(("app_id" = String, Path, description = "App id")),
    responses((status = 200, body = ConfigList), (status = 400, body = ErrorBody))
)]
pub async fn list(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
) -> Response<Json<ConfigList>> {
    let data = service.configs(&app_id(&app)?).await?;
    Ok(Json(ConfigList { data }))
}

/// Get a config.
#[utoipa::path(
    get, path = "/apps/{app_id}/configs/{id}", tag = "configs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Config id (`cfg_…`)"),
    ),
    responses((status = 200, body = ConfigDetail), (status = 404, body = ErrorBody))
)]
pub async fn show(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<Json<ConfigDetail>> {
    let app = app_id(&app)?;
    let config = service.config(&app, &id).await?;
    let used_by = service
        .config_users(&app, &config.id)
        .await?
        .into_iter()
        .map(|a| ConfigUser {
            id: a.id,
            name: a.name,
            status: a.status,
        })
        .collect();
    Ok(Json(ConfigDetail { config, used_by }))
}

/// Delete a config (refused while any automation uses it, whatever its status).
#[utoipa::path(
    delete, path = "/apps/{app_id}/configs/{id}", tag = "configs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Config id (`cfg_…`)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Automations use it (named in the message)"),
    )
)]
pub async fn delete(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<StatusCode> {
    service.delete_config(&app_id(&app)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
