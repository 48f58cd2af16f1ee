//! `GET /apps/:app_id/automations/schedule`: a cron expression's next due
//! times, before any automation uses it.
//!
//! The path sits next to `/apps/:app_id/automations/{id}`; axum's static
//! segment wins, and `schedule` is a reserved lookup key, so it never names
//! an automation.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{PathParams, QueryParams, app_id};
use crate::domain::schedule::{MAX_PREVIEW_COUNT, SchedulePreview};
use crate::service::Service;

/// The preview's query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// The cron expression, as `schedule` takes it (URL-encoded).
    #[param(example = "0 9 * * 1-5")]
    pub expression: String,
    /// IANA time zone; default: the expression's `CRON_TZ=` prefix, or UTC.
    #[param(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// RFC 3339 instant the due times come strictly after; default: now.
    #[param(value_type = Option<String>, example = "2026-03-01T00:00:00Z")]
    pub after: Option<String>,
    /// How many due times, 1–100; default 5.
    #[param(value_type = Option<u32>, example = 5)]
    pub count: Option<String>,
}

/// Preview a schedule's next due times.
///
/// Answers `{"expression", "timezone", "description", "next"}`: `next` holds
/// up to `count` due times strictly after `after`, RFC 3339 in UTC, with the
/// DST rules applied. An invalid expression or zone is a 400 with the
/// messages creating an automation gives.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/schedule", tag = "automations",
    params(("app_id" = String, Path, description = "App id"), PreviewQuery),
    responses(
        (status = 200, body = SchedulePreview),
        (status = 400, body = ErrorBody, description = "Invalid expression, zone, `after` or `count`"),
    )
)]
pub async fn preview(
    State(service): State<Arc<Service>>,
    PathParams(app): PathParams<String>,
    QueryParams(query): QueryParams<PreviewQuery>,
) -> Result<Json<SchedulePreview>, ApiError> {
    app_id(&app)?;
    let after = query
        .after
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "invalid `after`: `{text}` is not an RFC 3339 time such as \
                         `2026-03-01T09:00:00Z`"
                    ))
                })
        })
        .transpose()?;
    let count = query
        .count
        .as_deref()
        .map(|text| {
            text.parse::<usize>().map_err(|_| {
                ApiError::invalid(format!(
                    "invalid `count`: `{text}` is not a whole number between 1 and \
                     {MAX_PREVIEW_COUNT}"
                ))
            })
        })
        .transpose()?;
    let preview =
        service.preview_schedule(&query.expression, query.timezone.as_deref(), after, count)?;
    Ok(Json(preview))
}
