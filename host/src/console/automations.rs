//! Automations: the list (type and status filters, schedule or trigger, next
//! run, last run), the detail page (every field, lifecycle buttons, the next
//! fire times, recent runs), and the create and edit forms.
//!
//! Forms are turned into the API's own request bodies (`NewAutomation`,
//! `AutomationPatch`) and go through the same service calls, so a refusal
//! reads exactly as the API's message, shown with the API's status.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use chrono_tz::Tz;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::layout::{
    self, Section, banner, button_form, csrf, json_block, maybe_time, name_link, row, status,
    text_or_dash, time,
};
use super::session::Flash;
use super::{ConsoleState, CsrfForm, Ctx, Failure, app_id, app_url, page_query, redirect_with};
use crate::domain::access::Need;
use crate::domain::automation::{
    Automation, AutomationPatch, AutomationStatus, AutomationType, LifecycleAction, NewAutomation,
};
use crate::domain::ids::AppId;
use crate::domain::run::Run;
use crate::service::RunQuery;

/// How many fire times the detail page previews.
const PREVIEW_COUNT: usize = 5;
/// How many recent runs the detail page lists.
const RECENT_RUNS: usize = 10;

/// `?type=&status=` on the list (the API's names).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

fn parse_kind(text: &str) -> Result<Option<AutomationType>, Failure> {
    match text {
        "" => Ok(None),
        "trigger" => Ok(Some(AutomationType::Trigger)),
        "scheduled" => Ok(Some(AutomationType::Scheduled)),
        other => Err(bad(format!(
            "invalid `type`: `{other}` (use `trigger` or `scheduled`)"
        ))),
    }
}

fn parse_status(text: &str) -> Result<Option<AutomationStatus>, Failure> {
    match text {
        "" => Ok(None),
        "draft" => Ok(Some(AutomationStatus::Draft)),
        "running" => Ok(Some(AutomationStatus::Running)),
        "paused" => Ok(Some(AutomationStatus::Paused)),
        other => Err(bad(format!(
            "invalid `status`: `{other}` (use `draft`, `running` or `paused`)"
        ))),
    }
}

fn bad(message: String) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}

/// The last run of an automation, if it has one.
async fn last_run(state: &ConsoleState, app: &AppId, automation: &Automation) -> Option<Run> {
    let page = state
        .service
        .runs(
            app,
            RunQuery {
                automation: Some(automation.id.to_string()),
                limit: Some(1),
                ..RunQuery::default()
            },
        )
        .await
        .ok()?;
    page.runs.into_iter().next()
}

/// What an automation listens to: its event, or its schedule.
fn fires_on(automation: &Automation) -> Markup {
    match automation.kind {
        AutomationType::Trigger => {
            html! { "on " code { (automation.trigger.as_deref().unwrap_or("—")) } }
        }
        AutomationType::Scheduled => html! {
            code { (automation.schedule.as_deref().unwrap_or("—")) }
            " " span class="muted" { (automation.timezone) }
        },
    }
}

/// `GET /console/apps/{app_id}/automations`.
pub async fn list(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let filter: ListQuery = page_query(uri.query(), &["type", "status"])?;
    let kind = parse_kind(filter.kind.as_deref().unwrap_or(""))?;
    let wanted_status = parse_status(filter.status.as_deref().unwrap_or(""))?;
    let mut automations = state.service.automations(&app, kind).await?;
    automations.retain(|a| wanted_status.is_none_or(|s| a.status == s));
    let mut rows = Vec::with_capacity(automations.len());
    for automation in automations {
        let last = last_run(&state, &app, &automation).await;
        let next = state.service.next_run_at(&automation);
        rows.push((automation, next, last));
    }
    let selected = |current: Option<&str>, value: &str| current.unwrap_or("") == value;
    let body = html! {
        div class="toolbar" {
            form method="get" class="filters" {
                label { "Type "
                    select name="type" {
                        @for (value, label) in [("", "any"), ("trigger", "trigger"), ("scheduled", "scheduled")] {
                            option value=(value) selected[selected(filter.kind.as_deref(), value)] { (label) }
                        }
                    }
                }
                label { "Status "
                    select name="status" {
                        @for (value, label) in [("", "any"), ("draft", "draft"), ("running", "running"), ("paused", "paused")] {
                            option value=(value) selected[selected(filter.status.as_deref(), value)] { (label) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if ctx.may(Need::Write, &app) {
                a class="button primary" href=(app_url(&app, "/automations/new")) { "New automation" }
            }
        }
        @if rows.is_empty() {
            p class="empty" { "No automations match." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th { "Name" } th { "Type" } th { "Status" } th { "Schedule or trigger" }
                        th { "Next run" } th { "Last run" }
                    } }
                    tbody {
                        @for (automation, next, last) in &rows {
                            tr {
                                td {
                                    (name_link(&app_url(&app, &format!("/automations/{}", automation.id)), &automation.name, Some(automation.id.as_str())))
                                    br; code class="muted small" { (automation.id) }
                                }
                                td { (automation.kind.as_str()) }
                                td { (status(automation.status.as_str())) }
                                td { (fires_on(automation)) }
                                td { (maybe_time(*next)) }
                                td {
                                    @if let Some(run) = last {
                                        a href=(app_url(&app, &format!("/runs/{}", run.id))) { (status(run.status.as_str())) }
                                        " " (time(run.created_at))
                                    } @else {
                                        span class="muted" { "never" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, &app, Section::Automations, "Automations", body).into_response())
}

/// `GET /console/apps/{app_id}/automations/{id}`.
pub async fn detail(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id)): axum::extract::Path<(String, String)>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let automation = state.service.automation(&app, &id).await?;
    Ok(detail_page(&state, &ctx, &app, &automation).await)
}

/// The detail page (an action's outcome is the session's flash, shown by
/// the layout).
async fn detail_page(
    state: &ConsoleState,
    ctx: &Ctx,
    app: &AppId,
    automation: &Automation,
) -> Response {
    let recent = state
        .service
        .runs(
            app,
            RunQuery {
                automation: Some(automation.id.to_string()),
                limit: Some(RECENT_RUNS),
                ..RunQuery::default()
            },
        )
        .await
        .map(|page| page.runs)
        .unwrap_or_default();
    let preview = automation.schedule.as_deref().map(|expression| {
        state.service.preview_schedule(
            expression,
            Some(&automation.timezone),
            None,
            Some(PREVIEW_COUNT),
        )
    });
    let base = app_url(app, &format!("/automations/{}", automation.id));
    let may_write = ctx.may(Need::Write, app);
    let body = html! {
        @if may_write {
            div class="actions" {
                @if matches!(automation.status, AutomationStatus::Draft | AutomationStatus::Paused) {
                    (button_form(ctx, &format!("{base}/activate"), "Activate",
                        Some(&format!("Activate {}? It will start running.", automation.name)), "primary"))
                }
                @if automation.status == AutomationStatus::Running {
                    (button_form(ctx, &format!("{base}/pause"), "Pause",
                        Some(&format!("Pause {}? Its pending runs are cancelled.", automation.name)), ""))
                }
                @if automation.status == AutomationStatus::Paused {
                    (button_form(ctx, &format!("{base}/reset"), "Reset to draft",
                        Some(&format!("Reset {} to draft?", automation.name)), ""))
                }
                (button_form(ctx, &format!("{base}/run"), "Run now",
                    Some(&format!("Run {} now, whatever its status?", automation.name)), ""))
                a class="button" href=(format!("{base}/edit")) { "Edit" }
                (button_form(ctx, &format!("{base}/delete"), "Delete",
                    Some(&format!("Delete {}? Its pending runs are cancelled; its runs stay as history.", automation.name)), "danger"))
            }
        }
        div class="grid" {
            section class="card" {
                h2 { "Fields" }
                dl {
                    (row("id", html! { code { (automation.id) } }))
                    (row("status", status(automation.status.as_str())))
                    (row("type", html! { (automation.kind.as_str()) }))
                    (row("name", html! { (automation.name) }))
                    (row("description", text_or_dash(automation.description.as_deref())))
                    @match automation.kind {
                        AutomationType::Trigger => (row("trigger", html! { code { (automation.trigger.as_deref().unwrap_or("—")) } })),
                        AutomationType::Scheduled => (row("schedule", html! { code { (automation.schedule.as_deref().unwrap_or("—")) } })),
                    }
                    (row("timezone", html! { (automation.timezone) }))
                    (row("config_id", match &automation.config_id {
                        Some(config) => html! { a href=(app_url(app, &format!("/configs/{config}"))) { code { (config) } } },
                        None => text_or_dash(None),
                    }))
                    (row("run_as_user_id", text_or_dash(automation.run_as_user_id.as_deref())))
                    (row("lookup_key", text_or_dash(automation.lookup_key.as_deref())))
                    (row("next run", maybe_time(state.service.next_run_at(automation))))
                    (row("created", html! { (time(automation.created_at)) " " span class="muted" { (automation.created_by.as_deref().unwrap_or("")) } }))
                    (row("updated", html! { (time(automation.updated_at)) " " span class="muted" { (automation.updated_by.as_deref().unwrap_or("")) } }))
                }
            }
            section class="card" {
                h2 { "Policies" }
                dl {
                    (row("catchup", html! { (json_text(&automation.catchup)) }))
                    (row("catchup_window_seconds", html! { (automation.catchup_window_seconds) }))
                    (row("overlap", html! { (json_text(&automation.overlap)) }))
                    (row("max_concurrency", html! { (automation.max_concurrency.map_or("unlimited".to_owned(), |n| n.to_string())) }))
                }
                h3 { "retry" } (json_block(&automation.retry))
                h3 { "limits" } (json_block(&automation.limits))
                h3 { "capabilities" } (json_block(&automation.capabilities))
                h3 { "retention" } (json_block(&automation.retention))
                h3 { "metadata" } (json_block(&automation.metadata))
            }
        }
        @if let Some(preview) = &preview {
            section class="card" {
                h2 { "Next fire times" }
                @match preview {
                    Ok(preview) => {
                        p { (preview.description) }
                        @if preview.next.is_empty() {
                            p class="muted" { "The schedule has no fire times left." }
                        } @else {
                            table class="compact" {
                                thead { tr { th { "In " (preview.timezone) } th { "UTC" } } }
                                tbody {
                                    @for at in &preview.next {
                                        tr {
                                            td { (zoned(*at, &preview.timezone)) }
                                            td { (time(*at)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    Err(error) => { p class="banner error" { (super::console_terms(&error.to_string())) } }
                }
            }
        }
        section class="card" {
            h2 { "Recent runs" }
            (super::runs::table(app, &recent, None))
            p { a href=(app_url(app, &format!("/runs?automation_id={}", automation.id))) { "All runs of this automation" } }
        }
    };
    layout::page(ctx, app, Section::Automations, &automation.name, body).into_response()
}

/// A serializable value as its JSON text without quotes (`skip`, `queue`).
fn json_text(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(error) => error.to_string(),
    }
}

/// A UTC instant on the wall clock of `zone` (`2026-03-29 03:00:00 CEST`).
fn zoned(at: chrono::DateTime<Utc>, zone: &str) -> String {
    match zone.parse::<Tz>() {
        Ok(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// `POST /console/apps/{app_id}/automations/{id}/{action}`: activate, pause,
/// reset, delete or run now, answered with a redirect (Post/Redirect/Get) and
/// the outcome in the session's flash: the automation's page says what
/// happened, or shows the API's status and message for a refusal (409 for a
/// transition the lifecycle lacks, 422 for an automation that cannot run).
/// A deleted automation leads to the list, a run to its page.
pub async fn lifecycle(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id, action)): axum::extract::Path<(String, String, String)>,
    CsrfForm(_): CsrfForm<Map<String, Value>>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let transition = match action.as_str() {
        "activate" => Some(LifecycleAction::Activate),
        "pause" => Some(LifecycleAction::Pause),
        "reset" => Some(LifecycleAction::Reset),
        "delete" | "run" => None,
        other => {
            return Err(Failure {
                status: StatusCode::NOT_FOUND,
                message: format!(
                    "no such action `{other}` (activate, pause, reset, delete or run)"
                ),
            });
        }
    };
    let automation = state.service.automation(&app, &id).await?;
    let page = app_url(&app, &format!("/automations/{}", automation.id));
    let (url, flash) = match (transition, action.as_str()) {
        (Some(transition), _) => match state.service.transition(&app, &id, transition).await {
            Ok(a) => (
                page,
                Flash::ok(format!("{} is now {}.", a.name, a.status.as_str())),
            ),
            Err(error) => (page, Failure::from(error).flash()),
        },
        (None, "delete") => match state.service.delete_automation(&app, &id).await {
            Ok(()) => (
                app_url(&app, "/automations"),
                Flash::ok(format!(
                    "Deleted {}; its runs stay as history.",
                    automation.name
                )),
            ),
            Err(error) => (page, Failure::from(error).flash()),
        },
        _ => match state
            .execution
            .run_now(&automation, Default::default())
            .await
        {
            Ok(run) => (
                app_url(&app, &format!("/runs/{}", run.id)),
                Flash::ok(format!("Started a run of {} now.", automation.name)),
            ),
            Err(error) => (page, Failure::from(error).flash()),
        },
    };
    Ok(redirect_with(&state, &ctx, &url, flash))
}

/// The fields of the create and edit forms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    config_id: String,
    #[serde(default)]
    run_as_user_id: String,
    #[serde(default)]
    lookup_key: String,
    /// A JSON object (empty: none).
    #[serde(default)]
    metadata: String,
    /// A JSON object of the policy fields (`catchup`, `overlap`, `retry`, `limits`, …).
    #[serde(default)]
    policies: String,
}

impl AutomationForm {
    fn of(automation: &Automation) -> Self {
        let policies = serde_json::json!({
            "catchup": automation.catchup,
            "catchup_window_seconds": automation.catchup_window_seconds,
            "overlap": automation.overlap,
            "max_concurrency": automation.max_concurrency,
            "retry": automation.retry,
            "limits": automation.limits,
            "capabilities": automation.capabilities,
            "retention": automation.retention,
        });
        AutomationForm {
            name: automation.name.clone(),
            description: automation.description.clone().unwrap_or_default(),
            kind: automation.kind.as_str().to_owned(),
            trigger: automation.trigger.clone().unwrap_or_default(),
            schedule: automation.schedule.clone().unwrap_or_default(),
            timezone: automation.timezone.clone(),
            config_id: automation
                .config_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            run_as_user_id: automation.run_as_user_id.clone().unwrap_or_default(),
            lookup_key: automation.lookup_key.clone().unwrap_or_default(),
            metadata: serde_json::to_string_pretty(&automation.metadata).unwrap_or_default(),
            policies: serde_json::to_string_pretty(&policies).unwrap_or_default(),
        }
    }

    /// The API request body the form stands for. Empty optional fields are
    /// left out (create) or cleared with `null` (edit).
    fn body(&self, edit: bool) -> Result<Map<String, Value>, Failure> {
        let mut body = Map::new();
        let text = |body: &mut Map<String, Value>, name: &str, value: &str, clearable: bool| {
            let value = value.trim();
            if !value.is_empty() {
                body.insert(name.into(), Value::String(value.into()));
            } else if edit && clearable {
                body.insert(name.into(), Value::Null);
            }
        };
        text(&mut body, "name", &self.name, false);
        text(&mut body, "description", &self.description, true);
        text(&mut body, "type", &self.kind, false);
        text(&mut body, "trigger", &self.trigger, true);
        text(&mut body, "schedule", &self.schedule, true);
        text(&mut body, "timezone", &self.timezone, false);
        text(&mut body, "config_id", &self.config_id, true);
        text(&mut body, "run_as_user_id", &self.run_as_user_id, true);
        text(&mut body, "lookup_key", &self.lookup_key, true);
        if let Some(metadata) = json_object("metadata", &self.metadata)? {
            body.insert("metadata".into(), Value::Object(metadata));
        } else if edit {
            body.insert("metadata".into(), Value::Null);
        }
        if let Some(policies) = json_object("policies", &self.policies)? {
            for (name, value) in policies {
                body.insert(name, value);
            }
        }
        Ok(body)
    }
}

/// A form field holding a JSON object; `None` when empty.
fn json_object(field: &str, text: &str) -> Result<Option<Map<String, Value>>, Failure> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    crate::domain::json::check_depth(text.as_bytes())
        .map_err(|e| bad(format!("invalid `{field}`: {e}")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(bad(format!("invalid `{field}`: expected a JSON object"))),
        Err(error) => Err(bad(format!("invalid `{field}`: {error}"))),
    }
}

/// A body as one of the API's request types, with the API's message for a
/// field it refuses.
fn request<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(body)).map_err(|e| Failure {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid automation: {e}"),
    })
}

/// `GET /console/apps/{app_id}/automations/new`.
pub async fn new_form(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let form = AutomationForm {
        kind: "trigger".into(),
        timezone: "UTC".into(),
        ..AutomationForm::default()
    };
    form_page(&state, &ctx, &app, None, &form, None).await
}

/// `GET /console/apps/{app_id}/automations/{id}/edit`.
pub async fn edit_form(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id)): axum::extract::Path<(String, String)>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let automation = state.service.automation(&app, &id).await?;
    form_page(
        &state,
        &ctx,
        &app,
        Some(&automation),
        &AutomationForm::of(&automation),
        None,
    )
    .await
}

/// The create (no `automation`) or edit form, with a refusal to show.
async fn form_page(
    state: &ConsoleState,
    ctx: &Ctx,
    app: &AppId,
    automation: Option<&Automation>,
    form: &AutomationForm,
    problem: Option<Failure>,
) -> Result<Response, Failure> {
    let configs = state.service.configs(app).await?;
    let events = state.service.events();
    let (title, action) = match automation {
        Some(a) => (
            format!("Edit {}", a.name),
            app_url(app, &format!("/automations/{}", a.id)),
        ),
        None => ("New automation".to_owned(), app_url(app, "/automations")),
    };
    let code = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let body = html! {
        @if let Some(problem) = &problem { (banner("error", &problem.message)) }
        form method="post" action=(action) class="card form" {
            (csrf(ctx))
            label for="name" { "Name" }
            input id="name" name="name" value=(form.name) required maxlength="200";
            label for="description" { "Description" }
            textarea id="description" name="description" rows="2" { (form.description) }
            fieldset {
                legend { "Type" }
                label class="choice" { input type="radio" name="type" value="trigger" checked[form.kind == "trigger"]; " trigger (on an event)" }
                label class="choice" { input type="radio" name="type" value="scheduled" checked[form.kind == "scheduled"]; " scheduled (cron)" }
            }
            label for="trigger" { "Trigger event " span class="muted" { "(trigger automations)" } }
            input id="trigger" name="trigger" value=(form.trigger) list="event-names" placeholder="thread.member_joined";
            datalist id="event-names" {
                @for event in events { option value=(event.name) { (event.description) } }
            }
            label for="schedule" { "Schedule " span class="muted" { "(scheduled automations: cron, 5 fields or 6 with seconds)" } }
            input id="schedule" name="schedule" value=(form.schedule) placeholder="0 9 * * 1-5";
            label for="timezone" { "Time zone" }
            input id="timezone" name="timezone" value=(form.timezone) placeholder="UTC";
            label for="config_id" { "Config" }
            select id="config_id" name="config_id" {
                option value="" { "(none)" }
                @for config in &configs {
                    option value=(config.id) selected[form.config_id == config.id.to_string()] {
                        (config.name) " — " (config.id)
                    }
                }
            }
            label for="run_as_user_id" { "Run as user" }
            input id="run_as_user_id" name="run_as_user_id" value=(form.run_as_user_id);
            label for="lookup_key" { "Lookup key" }
            input id="lookup_key" name="lookup_key" value=(form.lookup_key);
            label for="metadata" { "Metadata " span class="muted" { "(JSON object)" } }
            textarea id="metadata" name="metadata" rows="3" class="code" data-json="object" { (form.metadata) }
            label for="policies" { "Policies " span class="muted" { "(JSON object: catchup, catchup_window_seconds, overlap, max_concurrency, retry, limits, capabilities, retention)" } }
            textarea id="policies" name="policies" rows="6" class="code" data-json="object" { (form.policies) }
            p class="json-problem" role="alert" hidden {}
            div class="actions" {
                button type="submit" class="primary" { @if automation.is_some() { "Save" } @else { "Create" } }
                a class="button" href=(automation.map_or_else(|| app_url(app, "/automations"), |a| app_url(app, &format!("/automations/{}", a.id)))) { "Cancel" }
            }
        }
    };
    let mut response = layout::page(ctx, app, Section::Automations, &title, body).into_response();
    *response.status_mut() = code;
    Ok(response)
}

/// `POST /console/apps/{app_id}/automations`: creates a draft.
pub async fn create(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
    CsrfForm(form): CsrfForm<AutomationForm>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let created = match form.body(false).and_then(request::<NewAutomation>) {
        Ok(new) => state
            .service
            .create_automation(&app, new)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match created {
        Ok(automation) => Ok(redirect_with(
            &state,
            &ctx,
            &app_url(&app, &format!("/automations/{}", automation.id)),
            Flash::ok(format!(
                "Created {} as a draft; activate it to start it.",
                automation.name
            )),
        )),
        Err(failure) => form_page(&state, &ctx, &app, None, &form, Some(failure)).await,
    }
}

/// `POST /console/apps/{app_id}/automations/{id}`: saves the edit form.
pub async fn update(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id)): axum::extract::Path<(String, String)>,
    CsrfForm(form): CsrfForm<AutomationForm>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let automation = state.service.automation(&app, &id).await?;
    let updated = match form.body(true).and_then(request::<AutomationPatch>) {
        Ok(patch) => state
            .service
            .update_automation(&app, &id, patch)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match updated {
        Ok(updated) => Ok(redirect_with(
            &state,
            &ctx,
            &app_url(&app, &format!("/automations/{}", updated.id)),
            Flash::ok(format!("Saved {}.", updated.name)),
        )),
        Err(failure) => {
            form_page(&state, &ctx, &app, Some(&automation), &form, Some(failure)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_form_leaves_empty_fields_out_and_an_edit_clears_them() {
        let form = AutomationForm {
            name: " Greeter ".into(),
            kind: "trigger".into(),
            trigger: "thread.member_joined".into(),
            timezone: "UTC".into(),
            policies: r#"{"overlap": "queue"}"#.into(),
            ..AutomationForm::default()
        };
        let created = form.body(false).unwrap();
        assert_eq!(created["name"], "Greeter");
        assert_eq!(created["overlap"], "queue");
        assert!(!created.contains_key("schedule"));
        let new: NewAutomation = request(created).unwrap();
        assert_eq!(new.trigger.as_deref(), Some("thread.member_joined"));
        let edited = form.body(true).unwrap();
        assert_eq!(edited["schedule"], Value::Null);
        assert_eq!(edited["metadata"], Value::Null);
        request::<AutomationPatch>(edited).unwrap();
    }

    #[test]
    fn bad_json_fields_and_unknown_policies_are_named() {
        let form = AutomationForm {
            name: "x".into(),
            kind: "trigger".into(),
            metadata: "[1]".into(),
            ..AutomationForm::default()
        };
        assert!(form.body(false).unwrap_err().message.contains("`metadata`"));
        let form = AutomationForm {
            policies: r#"{"colour": 1}"#.into(),
            ..form
        };
        let form = AutomationForm {
            metadata: String::new(),
            ..form
        };
        let error = request::<NewAutomation>(form.body(false).unwrap()).unwrap_err();
        assert!(error.message.contains("colour"), "{}", error.message);
    }

    #[test]
    fn fire_times_show_on_the_zone_clock() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 7, 1, 7, 0, 0).unwrap();
        assert_eq!(zoned(at, "Europe/Berlin"), "2026-07-01 09:00:00 CEST");
        assert_eq!(zoned(at, "UTC"), "2026-07-01 07:00:00 UTC");
    }
}
