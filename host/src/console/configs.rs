//! Configs: the list, the upload (file picker or drag-and-drop, sent by the
//! console script with a progress bar), and a config's page — its graph's
//! trigger nodes and steps, digest, size, and the automations using it.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Map, Value};

use super::layout::{self, Section, button_form, bytes, name_link, status, time};
use super::session::Flash;
use super::session::{CSRF_HEADER, csrf_matches};
use super::{ConsoleState, CsrfForm, Ctx, Failure, app_id, app_url, redirect_with};
use crate::api::extract::{PathParams, QueryParams};
use crate::domain::access::Need;
use crate::domain::ids::AppId;

/// `GET /console/apps/{app_id}/configs`.
pub async fn list(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let mut configs = state.service.configs(&app).await?;
    configs.reverse();
    let max = state.service.settings().max_config_bytes;
    let body = html! {
        @if ctx.may(Need::Write, &app) {
            section class="card" id="upload" data-upload=(app_url(&app, "/configs")) data-csrf=(ctx.session.csrf) data-max-bytes=(max) {
                h2 { "Upload a component" }
                div class="dropzone" id="dropzone" {
                    p { "Drop a " code { ".wasm" } " component here, or choose one." }
                    label for="component" { "Component file" }
                    input id="component" type="file" accept=".wasm,application/wasm";
                    label for="config-name" { "Name " span class="muted" { "(optional; defaults to the workflow's own)" } }
                    input id="config-name" type="text" maxlength="200";
                    button type="button" id="upload-button" class="primary" { "Upload" }
                }
                progress id="upload-progress" max="100" value="0" hidden {}
                p id="upload-status" role="status" {}
                p class="muted small" { "Up to " (bytes(max as u64)) "." }
            }
        }
        @if configs.is_empty() {
            p class="empty" { "No configs yet." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr { th { "Name" } th { "Id" } th { "Triggers" } th { "Size" } th { "Uploaded" } } }
                    tbody {
                        @for config in &configs {
                            tr {
                                td { (name_link(&app_url(&app, &format!("/configs/{}", config.id)), &config.name, None)) }
                                td { code { (config.id) } }
                                td { @for trigger in &config.graph.triggers { code { (trigger) } " " } }
                                td { (bytes(config.size)) }
                                td { (time(config.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, &app, Section::Configs, "Configs", body).into_response())
}

/// `GET /console/apps/{app_id}/configs/{id}`.
pub async fn detail(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id)): axum::extract::Path<(String, String)>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    config_page(&state, &ctx, &app, &id).await
}

async fn config_page(
    state: &ConsoleState,
    ctx: &Ctx,
    app: &AppId,
    id: &str,
) -> Result<Response, Failure> {
    let config = state.service.config(app, id).await?;
    let users = state.service.config_users(app, &config.id).await?;
    let body = html! {
        @if ctx.may(Need::Write, app) {
            div class="actions" {
                (button_form(ctx, &app_url(app, &format!("/configs/{}/delete", config.id)), "Delete config",
                    Some(&format!("Delete config {}?", config.name)), "danger"))
            }
        }
        div class="grid" {
            section class="card" {
                h2 { "Component" }
                dl {
                    (layout::row("id", html! { code { (config.id) } }))
                    (layout::row("workflow", html! { (config.graph.name) }))
                    (layout::row("digest", html! { code class="wrap" { (config.digest) } }))
                    (layout::row("size", html! { (bytes(config.size)) " (" (config.size) " bytes)" }))
                    (layout::row("uploaded", html! { (time(config.created_at)) " " span class="muted" { (config.created_by.as_deref().unwrap_or("")) } }))
                }
            }
            section class="card" {
                h2 { "Graph" }
                h3 { "Trigger nodes" }
                @if config.graph.triggers.is_empty() {
                    p class="muted" { "None (scheduled only)." }
                } @else {
                    ul { @for trigger in &config.graph.triggers { li { code { (trigger) } } } }
                }
                h3 { "Steps" }
                @if config.graph.steps.is_empty() {
                    p class="muted" { "None declared." }
                } @else {
                    ol { @for step in &config.graph.steps { li { (layout::json_block(step)) } } }
                }
            }
        }
        section class="card" {
            h2 { "Used by" }
            @if users.is_empty() {
                p class="muted" { "No automation uses this config." }
            } @else {
                ul {
                    @for automation in &users {
                        li {
                            (name_link(&app_url(app, &format!("/automations/{}", automation.id)), &automation.name, Some(automation.id.as_str())))
                            " " (status(automation.status.as_str()))
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(ctx, app, Section::Configs, &config.name, body).into_response())
}

/// `POST /console/apps/{app_id}/configs`: the console script's upload. The
/// `X-CSRF-Token` header must be the session's; the request is then the
/// API's upload (`Content-Type: application/wasm`, the name in
/// `X-Config-Name`) and so is its JSON answer, which the script shows.
pub async fn upload(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    path: PathParams<String>,
    query: QueryParams<crate::api::configs::UploadQuery>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !csrf_matches(&ctx.session, token) {
        return crate::api::error::ApiError::forbidden(
            "the upload did not come from your console session (CSRF token mismatch); reload the page",
        )
        .into_response();
    }
    crate::api::configs::upload(State(state.service), path, query, headers, request)
        .await
        .into_response()
}

/// `POST /console/apps/{app_id}/configs/{id}/delete`, answered with a
/// redirect: to the list, or back to the config with the API's 409 naming
/// the automations that still use it.
pub async fn delete(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path((app, id)): axum::extract::Path<(String, String)>,
    CsrfForm(_): CsrfForm<Map<String, Value>>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let config = state.service.config(&app, &id).await?;
    let (url, flash) = match state.service.delete_config(&app, &id).await {
        Ok(()) => (
            app_url(&app, "/configs"),
            Flash::ok(format!("Deleted config {}.", config.name)),
        ),
        Err(error) => (
            app_url(&app, &format!("/configs/{}", config.id)),
            Failure::from(error).flash(),
        ),
    };
    Ok(redirect_with(&state, &ctx, &url, flash))
}
