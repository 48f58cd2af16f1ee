//! `/apps/:app_id/automations…`: CRUD, lifecycle and the event catalogue.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, PathParams, QueryParams, app_id};
use crate::domain::automation::{
    Automation, AutomationPatch, AutomationType, LifecycleAction, NewAutomation,
};
use crate::domain::events::EventType;
use crate::service::Service;

/// An automation as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AutomationResponse {
    #[serde(flatten)]
    pub automation: Automation,
    /// Scheduled automations only: the next cron occurrence while running,
    /// `null` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub next_run_at: Option<Option<DateTime<Utc>>>,
    /// Scheduled automations only: when it would next fire if it were
    /// running, whatever its status — a draft's or paused one's preview
    /// (`GET …/automations/schedule` shows more).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub next_run_at_if_running: Option<Option<DateTime<Utc>>>,
}

impl AutomationResponse {
    fn new(service: &Service, automation: Automation) -> Self {
        let scheduled = automation.kind == AutomationType::Scheduled;
        AutomationResponse {
            next_run_at: scheduled.then(|| service.next_run_at(&automation)),
            next_run_at_if_running: scheduled.then(|| service.next_run_at_if_running(&automation)),
            automation,
        }
    }
}

/// `{"data": [automation, …]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AutomationList {
    pub data: Vec<AutomationResponse>,
}

/// `{"data": [{name, description}, …]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub data: Vec<EventType>,
}

/// Filters for listing automations.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAutomationsQuery {
    /// Only automations of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub kind: Option<AutomationType>,
}

type Response<T> = Result<T, ApiError>;

/// List automations.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations", tag = "automations",
    params(("app_id" = String, Path, description = "App id"), ListAutomationsQuery),
    responses(
        (status = 200, body = AutomationList),
        (status = 400, body = ErrorBody),
    )
)]
pub async fn list(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
    QueryParams(query): QueryParams<ListAutomationsQuery>,
) -> Response<Json<AutomationList>> {
    let automations = service.automations(&app_id(&app)?, query.kind).await?;
    let data = automations
        .into_iter()
        .map(|a| AutomationResponse::new(&service, a))
        .collect();
    Ok(Json(AutomationList { data }))
}

/// Create an automation (status `draft`).
#[utoipa::path(
    post, path = "/apps/{app_id}/automations", tag = "automations",
    params(("app_id" = String, Path, description = "App id")),
    request_body = NewAutomation,
    responses(
        (status = 201, body = AutomationResponse),
        (status = 400, body = ErrorBody, description = "Invalid field or unknown field"),
        (status = 409, body = ErrorBody, description = "lookup_key already used"),
        (status = 422, body = ErrorBody, description = "config_id names no config"),
    )
)]
pub async fn create(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
    JsonBody(new): JsonBody<NewAutomation>,
) -> Response<(StatusCode, Json<AutomationResponse>)> {
    let automation = service.create_automation(&app_id(&app)?, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(AutomationResponse::new(&service, automation)),
    ))
}

/// Get an automation by id or lookup key.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/{id}", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id (`aut_…`) or lookup key"),
    ),
    responses((status = 200, body = AutomationResponse), (status = 404, body = ErrorBody))
)]
pub async fn show(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<Json<AutomationResponse>> {
    let automation = service.automation(&app_id(&app)?, &id).await?;
    Ok(Json(AutomationResponse::new(&service, automation)))
}

/// Update an automation: absent fields stay, `null` clears.
#[utoipa::path(
    patch, path = "/apps/{app_id}/automations/{id}", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    request_body = AutomationPatch,
    responses(
        (status = 200, body = AutomationResponse),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "lookup_key already used"),
        (status = 422, body = ErrorBody, description = "A running automation would no longer be runnable (config, trigger, or a schedule with no fire times left)"),
    )
)]
pub async fn update(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<AutomationPatch>,
) -> Response<Json<AutomationResponse>> {
    let automation = service
        .update_automation(&app_id(&app)?, &id, patch)
        .await?;
    Ok(Json(AutomationResponse::new(&service, automation)))
}

/// Delete an automation; its pending runs are cancelled.
#[utoipa::path(
    delete, path = "/apps/{app_id}/automations/{id}", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<StatusCode> {
    service.delete_automation(&app_id(&app)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn transition(
    service: &Service,
    app: &str,
    id: &str,
    action: LifecycleAction,
) -> Response<Json<AutomationResponse>> {
    let automation = service.transition(&app_id(app)?, id, action).await?;
    Ok(Json(AutomationResponse::new(service, automation)))
}

/// Activate: draft or paused → running. Needs a config with a matching trigger node.
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/{id}/activate", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    responses(
        (status = 200, body = AutomationResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not allowed from the current status"),
        (status = 422, body = ErrorBody, description = "No config, its graph lacks the trigger, or the schedule has no fire times left"),
    )
)]
pub async fn activate(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<Json<AutomationResponse>> {
    transition(&service, &app, &id, LifecycleAction::Activate).await
}

/// Pause: running → paused; pending runs are cancelled.
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/{id}/pause", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    responses(
        (status = 200, body = AutomationResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not allowed from the current status"),
    )
)]
pub async fn pause(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<Json<AutomationResponse>> {
    transition(&service, &app, &id, LifecycleAction::Pause).await
}

/// Reset: paused → draft.
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/{id}/reset", tag = "automations",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    responses(
        (status = 200, body = AutomationResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not allowed from the current status"),
    )
)]
pub async fn reset(
    State(service): State<Arc<Service>>,
    PathParams((app, id)): PathParams<(String, String)>,
) -> Response<Json<AutomationResponse>> {
    transition(&service, &app, &id, LifecycleAction::Reset).await
}

/// The platform events trigger automations can listen to.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/events", tag = "automations",
    params(("app_id" = String, Path, description = "App id")),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody))
)]
pub async fn events(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
) -> Response<Json<EventList>> {
    app_id(&app)?;
    Ok(Json(EventList {
        data: service.events().to_vec(),
    }))
}
