//! `GET /apps/:app_id/automations/runs/:run_id/output`: a run's output lines
//! while it runs, from an offset — as JSON, or followed until the run ends as
//! Server-Sent Events or chunked plain-text lines.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::{ApiError, ErrorBody};
use super::execution::{ExecutionState, run_id};
use super::extract::{PathParams, QueryParams, app_id};
use crate::domain::ids::RunId;
use crate::domain::run::RunStatus;
use crate::execution::OutputEvent;

/// The SSE media type; a follow request that accepts it gets events.
const EVENT_STREAM: &str = "text/event-stream";

/// Which lines, and whether to wait for more.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// The first line wanted, counting from 0 (default 0; with SSE, the
    /// `Last-Event-ID` header is used when this is absent).
    pub offset: Option<usize>,
    /// Keep the response open and send lines as they are printed, until the
    /// run ends: Server-Sent Events when the request accepts
    /// `text/event-stream`, else plain-text lines (`text/plain`, chunked).
    pub follow: Option<bool>,
}

/// `{"data": [line, …], "next_offset", "status", "complete"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputPage {
    /// The lines from `offset` on, as captured so far.
    pub data: Vec<String>,
    /// The offset to ask for next (the number of lines captured so far).
    pub next_offset: usize,
    /// The run's status now.
    pub status: RunStatus,
    /// True once the run has ended: no line will be added.
    pub complete: bool,
}

/// How a followed run ended: the `data` of the final SSE event `end`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputEnd {
    /// The run's id.
    pub id: RunId,
    /// `completed`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// Why it is in its status, when there is more to say.
    pub reason: Option<String>,
    /// For failed runs: the class of failure.
    #[schema(value_type = Option<String>)]
    pub failure_kind: Option<crate::domain::outcome::FailureKind>,
    /// The next attempt, when the run failed and is retried.
    pub retried_by: Option<RunId>,
    /// How many output lines the run has (the offset after its last line).
    pub next_offset: usize,
}

/// Read a run's output, or follow it live.
///
/// Without `follow`, the lines captured so far from `offset` (the live lines
/// of a running run, the stored `result.output` of an ended one). With
/// `follow=true` the answer stays open and sends each line as it is printed,
/// ending when the run ends (a pending run is waited for):
///
/// - Server-Sent Events (`Accept: text/event-stream`): one event per line,
///   its `id` the offset after the line (so `Last-Event-ID` resumes after
///   it), its `data` the line (an empty line has no `data` field); then an
///   event `end` whose data is [`OutputEnd`] JSON.
/// - Otherwise plain text, one line per output line, the body ending with
///   the run.
///
/// A stream closed without `end` (the server stopped) is resumed by asking
/// again with the next offset.
#[utoipa::path(
    get, path = "/apps/{app_id}/automations/runs/{run_id}/output", tag = "runs",
    params(
        ("app_id" = String, Path, description = "App id"),
        ("run_id" = String, Path, description = "Run id (`atr_…`)"),
        OutputQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "SSE resume: the offset to continue from"),
    ),
    responses(
        (status = 200, body = OutputPage, description = "Lines so far (JSON), or a stream with `follow=true` (`text/event-stream` or `text/plain`)"),
        (status = 400, body = ErrorBody, description = "Bad offset or follow"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn output(
    State(state): State<ExecutionState>,
    PathParams((app, run)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<OutputQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = app_id(&app)?;
    let run_id = run_id(&run, &app)?;
    if query.follow != Some(true) {
        let offset = query.offset.unwrap_or(0);
        let (run, lines) = state.execution.output(&app, &run_id).await?;
        return Ok(Json(OutputPage {
            next_offset: lines.len(),
            data: lines.get(offset..).unwrap_or_default().to_vec(),
            status: run.status,
            complete: run.status.is_terminal(),
        })
        .into_response());
    }
    let wants_events = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EVENT_STREAM));
    let offset = match query.offset {
        Some(offset) => offset,
        None if wants_events => last_event_id(&headers)?,
        None => 0,
    };
    let events = state.execution.follow_output(&app, &run_id, offset).await?;
    Ok(if wants_events {
        Sse::new(futures_util::stream::unfold(events, |mut events| async {
            let event = events.recv().await?;
            Some((Ok::<_, Infallible>(sse_event(event)), events))
        }))
        .keep_alive(KeepAlive::default())
        .into_response()
    } else {
        plain_lines(events)
    })
}

/// The offset a reconnecting SSE client asks for.
fn last_event_id(headers: &HeaderMap) -> Result<usize, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid Last-Event-ID header: expected an output offset (a number)",
                )
            }),
    }
}

pub(crate) fn sse_event(event: OutputEvent) -> Event {
    match event {
        OutputEvent::Line { offset, line } => {
            Event::default().id((offset + 1).to_string()).data(line)
        }
        OutputEvent::End(run) => {
            let end = OutputEnd {
                next_offset: run.output().len(),
                id: run.id,
                status: run.status,
                reason: run.reason,
                failure_kind: run.failure_kind,
                retried_by: run.retried_by,
            };
            Event::default()
                .event("end")
                .data(serde_json::to_string(&end).expect("the end event serializes"))
        }
    }
}

/// The lines as a chunked `text/plain` body, one per line, ending with the run.
fn plain_lines(events: mpsc::Receiver<OutputEvent>) -> Response {
    let body = futures_util::stream::unfold(events, |mut events| async {
        loop {
            match events.recv().await? {
                OutputEvent::Line { line, .. } => {
                    let chunk = Bytes::from(format!("{line}\n"));
                    return Some((Ok::<_, Infallible>(chunk), events));
                }
                OutputEvent::End(_) => continue,
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
