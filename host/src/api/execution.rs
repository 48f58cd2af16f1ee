//! Execution endpoints: event intake (`POST /apps/:app_id/events`) and run
//! actions (run now, cancel, rerun).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::MAX_JSON_BODY_BYTES;
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, PathParams, app_id, optional_json};
use crate::domain::event::{EventReceipt, IncomingEvent, RunNowRequest};
use crate::domain::ids::{AppId, RunId};
use crate::domain::run::Run;
use crate::execution::{Execution, ExecutionError};
use crate::service::{Service, ServiceError};

/// Set (to `true`) on the answer to a repeated idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What the execution handlers need.
#[derive(Clone)]
pub struct ExecutionState {
    /// Resolves automations by id or lookup key.
    pub service: Arc<Service>,
    /// Takes events and run actions.
    pub execution: Arc<Execution>,
}

/// The execution routes, to merge into [`super::router`].
pub fn routes(service: Arc<Service>, execution: Arc<Execution>) -> Router {
    Router::new()
        .route("/apps/{app_id}/events", post(receive_event))
        .route("/apps/{app_id}/automations/{id}/run", post(run_now))
        .route(
            "/apps/{app_id}/automations/runs/{run_id}/cancel",
            post(cancel),
        )
        .route(
            "/apps/{app_id}/automations/runs/{run_id}/rerun",
            post(rerun),
        )
        .route(
            "/apps/{app_id}/automations/runs/{run_id}/output",
            get(super::output::output),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .with_state(ExecutionState { service, execution })
}

impl From<ExecutionError> for ApiError {
    fn from(error: ExecutionError) -> Self {
        let message = error.to_string();
        match error {
            ExecutionError::InvalidEvent(_) | ExecutionError::InvalidInput(_) => {
                ApiError::invalid(message)
            }
            ExecutionError::QueueFull(_) => ApiError::too_many_requests(message)
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            ExecutionError::NotFound(_) => ApiError::not_found(message),
            ExecutionError::Conflict(_) => ServiceError::Conflict(message).into(),
            ExecutionError::Unprocessable(_) => ServiceError::Unprocessable(message).into(),
            ExecutionError::ShuttingDown => ApiError::unavailable(message),
            ExecutionError::Store(error) => ServiceError::from(error).into(),
        }
    }
}

/// A run id from the path: 404 (naming the app) when it is not one.
pub(super) fn run_id(raw: &str, app: &AppId) -> Result<RunId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no run `{raw}` in app `{app}`")))
}

/// Send a platform event.
///
/// Every `running` trigger automation of the app listening to `trigger` gets
/// a run with input `{"trigger", "payload"}`. The runs are stored before the
/// answer. A repeat of an `idempotency_key` (1–255 characters) within 24
/// hours creates nothing and gets the first answer, with the header
/// `idempotent-replayed: true`; the key with a different `trigger` or
/// `payload` is a 422 naming the key.
#[utoipa::path(
    post, path = "/apps/{app_id}/events", tag = "events",
    params(("app_id" = String, Path, description = "App id")),
    request_body = IncomingEvent,
    responses(
        (status = 202, body = EventAnswerBody, description = "Accepted: the runs created"),
        (status = 400, body = ErrorBody, description = "Unknown event or malformed body"),
        (status = 422, body = ErrorBody, description = "The idempotency_key was used for a different request"),
        (status = 429, body = ErrorBody, description = "The run queue is full; retry later"),
        (status = 503, body = ErrorBody, description = "The host is shutting down"),
    )
)]
pub async fn receive_event(
    State(state): State<ExecutionState>,
    PathParams(app): PathParams<String>,
    JsonBody(event): JsonBody<IncomingEvent>,
) -> Result<Response, ApiError> {
    let app = app_id(&app)?;
    let answer = state.execution.receive_event(app.clone(), event).await?;
    let warning = no_automations_warning(&state.service, &app, &answer.receipt).await?;
    let body = EventAnswerBody {
        receipt: answer.receipt.into_answer(),
        warning,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if answer.replayed {
        response.headers_mut().insert(
            HeaderName::from_static(REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The answer to an event: its receipt, and a warning when the app has no
/// automations at all (most likely a misspelt app id).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventAnswerBody {
    #[serde(flatten)]
    pub receipt: EventReceipt,
    /// `app acmee has no automations`: the event reached no automation and
    /// none exists in the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Until apps are explicit, an event for an app without a single automation
/// is accepted like any other; the answer says so.
async fn no_automations_warning(
    service: &Service,
    app: &AppId,
    receipt: &EventReceipt,
) -> Result<Option<String>, ApiError> {
    if !receipt.run_ids.is_empty() || !service.automations(app, None).await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("app {app} has no automations")))
}

/// Run an automation now.
///
/// Works whatever the automation's status (draft and paused included), for
/// testing. The body is optional: `trigger` defaults to the automation's
/// event, `payload` to `{}` (`{"scheduled_at": now}` for scheduled ones).
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/{id}/run", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("id" = String, Path, description = "Automation id or lookup key"),
    ),
    request_body(content = Option<RunNowRequest>, description = "Optional input"),
    responses(
        (status = 202, body = Run, description = "The pending run"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The automation has no config"),
        (status = 429, body = ErrorBody, description = "The run queue is full"),
        (status = 503, body = ErrorBody, description = "The host is shutting down"),
    )
)]
pub async fn run_now(
    State(state): State<ExecutionState>,
    PathParams((app, id)): PathParams<(String, String)>,
    request: Request,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let app = app_id(&app)?;
    let input = optional_json(request, &()).await?.unwrap_or_default();
    let automation = state.service.automation(&app, &id).await?;
    let run = state.execution.run_now(&automation, input).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Cancel a run.
///
/// A pending run ends `cancelled` at once; a running one is interrupted (its
/// sandbox stops at the next epoch tick) and the answer shows it ended.
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/runs/{run_id}/cancel", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("run_id" = String, Path, description = "Run id (`atr_…`)"),
    ),
    responses(
        (status = 200, body = Run, description = "The cancelled run"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The run has already ended"),
    )
)]
pub async fn cancel(
    State(state): State<ExecutionState>,
    PathParams((app, run)): PathParams<(String, String)>,
) -> Result<Json<Run>, ApiError> {
    let app = app_id(&app)?;
    let run_id = run_id(&run, &app)?;
    Ok(Json(state.execution.cancel(&app, &run_id).await?))
}

/// Run a run's input again.
///
/// A new run of the same automation on the same input, linked by `rerun_of`.
#[utoipa::path(
    post, path = "/apps/{app_id}/automations/runs/{run_id}/rerun", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("run_id" = String, Path, description = "Run id (`atr_…`)"),
    ),
    responses(
        (status = 202, body = Run, description = "The new pending run"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The run's automation was deleted"),
        (status = 422, body = ErrorBody, description = "The automation has no config"),
        (status = 429, body = ErrorBody, description = "The run queue is full"),
        (status = 503, body = ErrorBody, description = "The host is shutting down"),
    )
)]
pub async fn rerun(
    State(state): State<ExecutionState>,
    PathParams((app, run)): PathParams<(String, String)>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let app = app_id(&app)?;
    let run_id = run_id(&run, &app)?;
    let run = state.execution.rerun(&app, &run_id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}
