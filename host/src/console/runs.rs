//! Runs: the app's runs across automations (status, trigger, automation and
//! time filters, cursor paging), and a run's page — input, output lines
//! (streamed while it runs, over Server-Sent Events from the live output),
//! payload or error, accounting, host calls when the run has them, the
//! retry chain, status history, and cancel / re-run.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::layout::{
    self, Section, button_form, json_block, maybe_time, micros, row, status, text_or_dash, time,
};
use super::session::Flash;
use super::{ConsoleState, CsrfForm, Ctx, Failure, app_id, app_url, page_query, redirect_with};
use crate::domain::access::Need;
use crate::domain::ids::{AppId, RunId};
use crate::domain::run::{Run, RunResult, RunStatus};
use crate::service::{RunQuery, ServiceError};

/// Runs per page.
const PAGE_SIZE: usize = 50;
/// Most runs per page (the API's cap).
const MAX_PAGE_SIZE: usize = 100;
/// How far the retry chain is followed each way.
const MAX_CHAIN: usize = 25;

/// The filters of the runs page: the parameters of the API's
/// `GET /apps/{app_id}/automations/runs`, so a link works for both.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    trigger: Option<String>,
    /// An automation's id or lookup key.
    automation_id: Option<String>,
    /// UTC, `2026-11-29T18:00` (a `datetime-local` field) or RFC 3339.
    since: Option<String>,
    until: Option<String>,
    /// `true`: only the last attempt of each retry chain.
    latest_attempt: Option<String>,
    /// Runs per page, 1 to 100 (default 50).
    limit: Option<String>,
    cursor: Option<String>,
}

/// The names [`ListQuery`] takes.
const FILTERS: [&str; 8] = [
    "status",
    "trigger",
    "automation_id",
    "since",
    "until",
    "latest_attempt",
    "limit",
    "cursor",
];

impl ListQuery {
    /// The query string of these filters with another cursor.
    fn with_cursor(&self, cursor: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (name, value) in [
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("automation_id", &self.automation_id),
            ("since", &self.since),
            ("until", &self.until),
            ("latest_attempt", &self.latest_attempt),
            ("limit", &self.limit),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                pairs.push((name, value));
            }
        }
        if !cursor.is_empty() {
            pairs.push(("cursor", cursor));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// `latest_attempt`: `true` or `false` (empty: false).
fn parse_latest(text: Option<&str>) -> Result<bool, Failure> {
    match text.map(str::trim).unwrap_or_default() {
        "" | "false" => Ok(false),
        "true" => Ok(true),
        other => Err(bad(format!(
            "invalid `latest_attempt`: `{other}` (use `true` or `false`)"
        ))),
    }
}

/// `limit`: runs per page, 1 to [`MAX_PAGE_SIZE`].
fn parse_limit(text: Option<&str>) -> Result<usize, Failure> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(PAGE_SIZE),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "invalid `limit`: `{text}` (runs per page, 1 to {MAX_PAGE_SIZE})"
                ))
            }),
    }
}

fn bad(message: String) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}

/// A time filter: RFC 3339, or a `datetime-local` value read as UTC.
fn parse_time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, Failure> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| Some(naive.and_utc()))
        .ok_or_else(|| {
            bad(format!(
                "invalid `{field}`: `{text}` is not a time (2026-11-29T18:00 in UTC, or RFC 3339)"
            ))
        })
}

fn parse_status(text: Option<&str>) -> Result<Option<RunStatus>, Failure> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .map(Some)
            .ok_or_else(|| {
                bad(format!(
                    "invalid `status`: `{text}` (pending, running, completed, failed or cancelled)"
                ))
            }),
    }
}

/// The names of an app's automations by id, to name the automation of each
/// run; a run whose automation is not there was left by a deleted one.
pub async fn automation_names(state: &ConsoleState, app: &AppId) -> HashMap<String, String> {
    state
        .service
        .automations(app, None)
        .await
        .map(|all| {
            all.into_iter()
                .map(|a| (a.id.to_string(), a.name))
                .collect()
        })
        .unwrap_or_default()
}

/// A run's automation: its name linked to its page (the id in the
/// `title`), or, deleted, its id without a link.
pub fn automation_cell(app: &AppId, id: &str, name: Option<&str>) -> Markup {
    match name {
        Some(name) => {
            layout::name_link(&app_url(app, &format!("/automations/{id}")), name, Some(id))
        }
        None => html! {
            span class="muted" title="this automation was deleted; its runs stay as history" {
                "deleted " code { (id) }
            }
        },
    }
}

/// A table of runs (newest first); with `names` (see [`automation_names`])
/// it has a column naming each run's automation.
pub fn table(app: &AppId, runs: &[Run], names: Option<&HashMap<String, String>>) -> Markup {
    html! {
        @if runs.is_empty() {
            p class="empty" { "No runs." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th { "Run" } th { "Status" } th { "Trigger" }
                        @if names.is_some() { th { "Automation" } }
                        th { "Created" } th { "Duration" } th { "Attempt" }
                    } }
                    tbody {
                        @for run in runs {
                            tr {
                                td { a href=(app_url(app, &format!("/runs/{}", run.id))) { code { (run.id) } } }
                                td { (status(run.status.as_str()))
                                    @if let Some(reason) = &run.reason { " " span class="muted small" { (reason) } }
                                }
                                td { code { (run.trigger) } }
                                @if let Some(names) = names {
                                    @let id = run.automation_id.to_string();
                                    td { (automation_cell(app, &id, names.get(&id).map(String::as_str))) }
                                }
                                td { (time(run.created_at)) }
                                td { (micros(run.accounting.wall_time_us)) }
                                td { (run.attempt) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/apps/{app_id}/runs`.
pub async fn list(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
    uri: Uri,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let filter: ListQuery = page_query(uri.query(), &FILTERS)?;
    let since = parse_time("since", filter.since.as_deref())?;
    let until = parse_time("until", filter.until.as_deref())?;
    let latest = parse_latest(filter.latest_attempt.as_deref())?;
    let run_query = RunQuery {
        automation: filter.automation_id.clone().filter(|a| !a.is_empty()),
        status: parse_status(filter.status.as_deref())?,
        trigger: filter.trigger.clone().filter(|t| !t.is_empty()),
        since,
        until,
        latest_attempt: latest,
        limit: Some(parse_limit(filter.limit.as_deref())?),
        cursor: filter.cursor.clone().filter(|c| !c.is_empty()),
    };
    let page = state.service.runs(&app, run_query).await?;
    let names = automation_names(&state, &app).await;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    // A `datetime-local` field shows only its own format.
    let local = |at: Option<DateTime<Utc>>| {
        at.map(|at| at.format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let events = state.service.events();
    let body = html! {
        form method="get" class="filters card" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[filter.status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Trigger "
                input name="trigger" value=(value(&filter.trigger)) list="triggers" placeholder="any" size="22";
                datalist id="triggers" {
                    option value=(crate::domain::workflow::SCHEDULED_TRIGGER) {}
                    @for event in events { option value=(event.name) {} }
                }
            }
            label { "Automation "
                input name="automation_id" value=(value(&filter.automation_id)) list="automations" placeholder="aut_… or lookup key" size="22";
                datalist id="automations" {
                    @for (id, name) in &names { option value=(id) { (name) } }
                }
            }
            label { "Since (UTC) " input type="datetime-local" step="1" name="since" value=(local(since)); }
            label { "Until (UTC) " input type="datetime-local" step="1" name="until" value=(local(until)); }
            label class="choice" { input type="checkbox" name="latest_attempt" value="true" checked[latest]; " last attempts only" }
            @if let Some(limit) = filter.limit.as_deref().filter(|l| !l.is_empty()) {
                input type="hidden" name="limit" value=(limit);
            }
            button type="submit" { "Filter" }
            a class="button" href=(app_url(&app, "/runs")) { "Clear" }
        }
        (table(&app, &page.runs, Some(&names)))
        nav class="pager" aria-label="Pages" {
            @if filter.cursor.as_deref().is_some_and(|c| !c.is_empty()) {
                a href=(format!("?{}", filter.with_cursor(""))) { "⇤ Newest" }
            }
            @if let Some(next) = &page.next_cursor {
                a rel="next" href=(format!("?{}", filter.with_cursor(next))) { "Older runs →" }
            }
        }
    };
    Ok(layout::page(&ctx, &app, Section::Runs, "Runs", body).into_response())
}

/// The runs of the chain `run` is in, first attempt first.
async fn retry_chain(state: &ConsoleState, app: &AppId, run: &Run) -> Vec<Run> {
    let mut before = Vec::new();
    let mut at = run.retry_of.clone();
    while let Some(id) = at.take().filter(|_| before.len() < MAX_CHAIN) {
        let Ok(previous) = state.service.run(app, id.as_str()).await else {
            break;
        };
        at = previous.retry_of.clone();
        before.push(previous);
    }
    before.reverse();
    before.push(run.clone());
    let mut at = run.retried_by.clone();
    let mut after = 0;
    while let Some(id) = at.take().filter(|_| after < MAX_CHAIN) {
        let Ok(next) = state.service.run(app, id.as_str()).await else {
            break;
        };
        at = next.retried_by.clone();
        before.push(next);
        after += 1;
    }
    before
}

/// The run's host calls (outbound requests), when its record has them: a
/// table of their fields.
fn host_calls(run: &Run) -> Option<Markup> {
    let value = serde_json::to_value(run).ok()?;
    let calls = value.get("host_calls")?.as_array()?.clone();
    if calls.is_empty() {
        return None;
    }
    let mut columns: Vec<String> = Vec::new();
    for call in &calls {
        for name in call.as_object().into_iter().flat_map(Map::keys) {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let cell = |value: Option<&Value>| match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(html! {
        div class="table-wrap" {
            table class="compact" {
                thead { tr { @for column in &columns { th { (column) } } } }
                tbody {
                    @for call in &calls {
                        tr { @for column in &columns { td { (cell(call.get(column))) } } }
                    }
                }
            }
        }
    })
}

/// `GET /console/apps/{app_id}/runs/{run_id}`.
pub async fn detail(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, run_id)): axum::extract::Path<(String, String)>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    run_page(&state, &ctx, &app, &run_id).await
}

async fn run_page(
    state: &ConsoleState,
    ctx: &Ctx,
    app: &AppId,
    run_id: &str,
) -> Result<Response, Failure> {
    let id = parse_run_id(app, run_id)?;
    let (run, lines) = state.execution.output(app, &id).await?;
    let chain = retry_chain(state, app, &run).await;
    // Not found: deleted (its runs stay as history).
    let automation = match state
        .service
        .automation(app, run.automation_id.as_str())
        .await
    {
        Ok(automation) => Some(automation),
        Err(ServiceError::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let base = app_url(app, &format!("/runs/{}", run.id));
    let running = !run.status.is_terminal();
    let accounting = &run.accounting;
    let body = html! {
        div class="actions" {
            span class="big" { (status(run.status.as_str())) }
            @if ctx.may(Need::Write, app) {
                @if running {
                    (button_form(ctx, &format!("{base}/cancel"), "Cancel run", Some("Cancel this run?"), "danger"))
                } @else {
                    (button_form(ctx, &format!("{base}/rerun"), "Re-run", Some("Run it again on the same input?"), ""))
                }
            }
        }
        div class="grid" {
            section class="card" {
                h2 { "Run" }
                dl {
                    (row("id", html! { code { (run.id) } }))
                    (row("automation", automation_cell(app, &run.automation_id.to_string(), automation.as_ref().map(|a| a.name.as_str()))))
                    (row("trigger", html! { code { (run.trigger) } }))
                    (row("reason", text_or_dash(run.reason.as_deref())))
                    (row("failure_kind", text_or_dash(run.failure_kind.map(kind_name).as_deref())))
                    (row("attempt", html! { (run.attempt) }))
                    @if let Some(of) = &run.rerun_of {
                        (row("rerun of", html! { a href=(app_url(app, &format!("/runs/{of}"))) { code { (of) } } }))
                    }
                    (row("scheduled at", maybe_time(run.scheduled_at)))
                    (row("created", time(run.created_at)))
                    (row("started", maybe_time(run.started_at)))
                    (row("finished", maybe_time(run.finished_at)))
                    (row("run as user", text_or_dash(run.run_as_user_id.as_deref())))
                    (row("requested by", text_or_dash(run.requested_by.as_deref())))
                    @if let Some(by) = &run.cancelled_by { (row("cancelled by", html! { (by) })) }
                }
            }
            section class="card" {
                h2 { "Accounting" }
                dl {
                    (row("duration", html! { (micros(accounting.wall_time_us)) }))
                    (row("instantiation", html! { (micros(accounting.instantiate_time_us)) }))
                    (row("pending", html! { (micros(accounting.pending_us)) }))
                    (row("queue time", html! { (micros(accounting.queue_time_us)) }))
                    (row("fuel", html! { (accounting.fuel_consumed.map_or("—".to_owned(), |f| f.to_string())) }))
                    (row("peak memory", html! { (accounting.peak_memory_bytes.map_or("—".to_owned(), layout::bytes)) }))
                    (row("config", match &run.config_id {
                        Some(config) => html! { a href=(app_url(app, &format!("/configs/{config}"))) { code { (config) } } },
                        None => text_or_dash(None),
                    }))
                    (row("config digest", html! { code class="wrap" { (run.config_digest.as_deref().unwrap_or("—")) } }))
                }
            }
        }
        section class="card" {
            h2 { "Output" }
            @if running {
                p class="muted small" id="output-state" role="status" { "Streaming while the run executes…" }
            }
            pre id="output" class="output" tabindex="0"
                data-follow=[running.then(|| format!("{base}/output?offset={}", lines.len()))] {
                @for line in &lines { span class="line" { (line) } "\n" }
            }
            @if lines.is_empty() && !running { p class="muted" { "No output." } }
        }
        @match &run.result {
            Some(RunResult::Success { payload, .. }) => {
                section class="card" { h2 { "Payload" } (json_block(payload)) }
            }
            Some(RunResult::Failure { error, .. }) => {
                section class="card" { h2 { "Error" } pre class="error-text" { (error) } }
            }
            None => {}
        }
        @if let Some(calls) = host_calls(&run) {
            section class="card" { h2 { "Host calls" } (calls) }
        }
        section class="card" {
            h2 { "Input" }
            (json_block(&run.input))
        }
        @if chain.len() > 1 {
            section class="card" {
                h2 { "Retry chain" }
                ol class="chain" {
                    @for attempt in &chain {
                        li {
                            @if attempt.id == run.id {
                                strong { "attempt " (attempt.attempt) } " (this run) "
                            } @else {
                                a href=(app_url(app, &format!("/runs/{}", attempt.id))) { "attempt " (attempt.attempt) }
                                " "
                            }
                            (status(attempt.status.as_str()))
                            @if let Some(kind) = attempt.failure_kind { " " span class="muted" { (kind_name(kind)) } }
                        }
                    }
                }
            }
        }
        section class="card" {
            h2 { "History" }
            table class="compact" {
                thead { tr { th { "Status" } th { "At" } th { "Why" } } }
                tbody {
                    @for change in &run.history {
                        tr { td { (status(change.status.as_str())) } td { (time(change.at)) } td { (text_or_dash(change.reason.as_deref())) } }
                    }
                }
            }
        }
    };
    let title = format!("Run {}", run.id);
    Ok(layout::page(ctx, app, Section::Runs, &title, body).into_response())
}

/// A failure kind as the API names it (`timeout`, `guest_error`, …).
fn kind_name(kind: crate::domain::outcome::FailureKind) -> String {
    match serde_json::to_value(kind) {
        Ok(Value::String(name)) => name,
        _ => format!("{kind:?}"),
    }
}

fn parse_run_id(app: &AppId, raw: &str) -> Result<RunId, Failure> {
    raw.parse().map_err(|_| Failure {
        status: StatusCode::NOT_FOUND,
        message: format!("no run `{raw}` in app `{app}`"),
    })
}

/// `?offset=` of the output stream.
#[derive(Debug, Default, Deserialize)]
pub struct OutputQuery {
    offset: Option<usize>,
}

/// `GET /console/apps/{app_id}/runs/{run_id}/output`: the run's output from
/// `offset` as Server-Sent Events until it ends — the API's follow stream
/// (one event per line, `id` the next offset; then `end`). A reconnecting
/// `EventSource` resumes from its `Last-Event-ID`.
pub async fn output(
    State(state): State<ConsoleState>,
    axum::extract::Path((app, run_id)): axum::extract::Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let id = parse_run_id(&app, &run_id)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
    let query: OutputQuery = page_query(uri.query(), &["offset"])?;
    let offset = resume.or(query.offset).unwrap_or(0);
    let events = state.execution.follow_output(&app, &id, offset).await?;
    Ok(
        Sse::new(futures_util::stream::unfold(events, |mut events| async {
            let event = events.recv().await?;
            Some((
                Ok::<_, Infallible>(crate::api::output::sse_event(event)),
                events,
            ))
        }))
        .keep_alive(KeepAlive::default())
        .into_response(),
    )
}

/// `POST /console/apps/{app_id}/runs/{run_id}/{action}`: `cancel` or `rerun`.
pub async fn action(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, run_id, action)): axum::extract::Path<(String, String, String)>,
    CsrfForm(_): CsrfForm<Map<String, Value>>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let id = parse_run_id(&app, &run_id)?;
    let done = match action.as_str() {
        "cancel" => state.execution.cancel(&app, &id).await,
        "rerun" => state.execution.rerun(&app, &id).await,
        other => {
            return Err(Failure {
                status: StatusCode::NOT_FOUND,
                message: format!("no such action `{other}` (cancel or rerun)"),
            });
        }
    };
    let (url, flash) = match done {
        Ok(run) if action == "cancel" => (
            app_url(&app, &format!("/runs/{}", run.id)),
            Flash::ok(if run.status.is_terminal() {
                format!("This run is now {}.", run.status.as_str())
            } else {
                "Cancelling: the run stops at its next check.".to_owned()
            }),
        ),
        Ok(run) => (
            app_url(&app, &format!("/runs/{}", run.id)),
            Flash::ok(format!("Re-ran run {id}: this is the new run.")),
        ),
        Err(error) => (
            app_url(&app, &format!("/runs/{id}")),
            Failure::from(error).flash(),
        ),
    };
    Ok(redirect_with(&state, &ctx, &url, flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_read_browser_fields_as_utc() {
        let at = parse_time("since", Some("2026-11-29T18:00"))
            .unwrap()
            .unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-29T18:00:00+00:00");
        let at = parse_time("since", Some("2026-11-29T19:00:00+01:00"))
            .unwrap()
            .unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-29T18:00:00+00:00");
        assert_eq!(parse_time("since", Some(" ")).unwrap(), None);
        let error = parse_time("until", Some("yesterday")).unwrap_err();
        assert!(error.message.contains("`until`"), "{}", error.message);
    }

    #[test]
    fn paging_keeps_the_filters() {
        let filter = ListQuery {
            status: Some("failed".into()),
            trigger: Some(String::new()),
            ..ListQuery::default()
        };
        assert_eq!(filter.with_cursor("atr_1"), "status=failed&cursor=atr_1");
        assert!(parse_status(Some("exploded")).is_err());
    }
}
