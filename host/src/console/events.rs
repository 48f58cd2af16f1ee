//! Events: the platform's event catalogue, which automations listen to each,
//! and a form that sends a test event (its JSON payload checked in the
//! browser before sending, and by the same intake as `POST /apps/{app_id}/events`
//! after) and lists the runs it created.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::layout::{self, Section, banner, csrf, name_link, status};
use super::session::Flash;
use super::{ConsoleState, CsrfForm, Ctx, Failure, app_id, app_url, redirect_with};
use crate::domain::access::Need;
use crate::domain::automation::{AutomationStatus, AutomationType};
use crate::domain::event::IncomingEvent;
use crate::domain::ids::AppId;

/// The send-test-event form.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventForm {
    #[serde(default)]
    trigger: String,
    /// A JSON object (empty: `{}`).
    #[serde(default)]
    payload: String,
    #[serde(default)]
    idempotency_key: String,
}

/// `GET /console/apps/{app_id}/events`.
pub async fn page(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    // After a send, the form as it was sent (to send it again, or change it).
    let sent = |name: &str| {
        ctx.flash
            .as_ref()
            .and_then(|f| f.fields.iter().find(|(n, _)| n == name))
            .map(|(_, value)| value.clone())
    };
    let form = EventForm {
        trigger: sent("trigger").unwrap_or_default(),
        payload: sent("payload").unwrap_or_else(|| "{}".into()),
        idempotency_key: sent("idempotency_key").unwrap_or_default(),
    };
    render(&state, &ctx, &app, &form, None).await
}

/// The page with the form (as sent, with its refusal).
async fn render(
    state: &ConsoleState,
    ctx: &Ctx,
    app: &AppId,
    form: &EventForm,
    problem: Option<Failure>,
) -> Result<Response, Failure> {
    let automations = state
        .service
        .automations(app, Some(AutomationType::Trigger))
        .await?;
    let code = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let body = html! {
        @if let Some(problem) = &problem { (banner("error", &problem.message)) }
        @if ctx.may(Need::Intake, app) {
            form method="post" action=(app_url(app, "/events")) class="card form" id="send-event" {
                h2 { "Send a test event" }
                (csrf(ctx))
                label for="trigger" { "Event" }
                select id="trigger" name="trigger" required {
                    @for event in state.service.events() {
                        option value=(event.name) selected[form.trigger == event.name] { (event.name) }
                    }
                }
                label for="payload" { "Payload " span class="muted" { "(a JSON object)" } }
                textarea id="payload" name="payload" rows="8" class="code" data-json="object" spellcheck="false" { (form.payload) }
                p class="json-problem" role="alert" hidden {}
                label for="idempotency_key" { "Idempotency key " span class="muted" { "(optional: a repeat within 24 h creates no runs)" } }
                input id="idempotency_key" name="idempotency_key" value=(form.idempotency_key) maxlength="255";
                div class="actions" { button type="submit" class="primary" { "Send event" } }
            }
        }
        section class="card" {
            h2 { "Catalogue" }
            div class="table-wrap" {
                table {
                    thead { tr { th { "Event" } th { "What happened" } th { "Automations listening" } } }
                    tbody {
                        @for event in state.service.events() {
                            tr {
                                td { code { (event.name) } }
                                td { (event.description) }
                                td {
                                    @for automation in automations.iter().filter(|a| a.trigger.as_deref() == Some(event.name)) {
                                        (name_link(&app_url(app, &format!("/automations/{}", automation.id)), &automation.name, Some(automation.id.as_str())))
                                        @if automation.status != AutomationStatus::Running { " " (status(automation.status.as_str())) }
                                        " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = layout::page(ctx, app, Section::Events, "Events", body).into_response();
    *response.status_mut() = code;
    Ok(response)
}

/// The payload field as the event's payload: a JSON object, `{}` when empty.
fn payload(text: &str) -> Result<Map<String, Value>, Failure> {
    let bad = |message: String| Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    crate::domain::json::check_depth(text.as_bytes())
        .map_err(|e| bad(format!("invalid `payload`: {e}")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(bad("invalid `payload`: expected a JSON object".into())),
        Err(error) => Err(bad(format!("invalid `payload`: {error}"))),
    }
}

/// `POST /console/apps/{app_id}/events`: sends the event through intake and
/// redirects to the events page, which shows the runs it created, each
/// linked (Post/Redirect/Get: a reload does not send it again). A refused
/// event shows the form again as sent, with the refusal.
pub async fn send(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    axum::extract::Path(app): axum::extract::Path<String>,
    CsrfForm(form): CsrfForm<EventForm>,
) -> Result<Response, Failure> {
    let app = app_id(&app)?;
    let sent = match payload(&form.payload) {
        Ok(payload) => {
            let event = IncomingEvent {
                trigger: form.trigger.trim().to_owned(),
                payload: Some(payload),
                idempotency_key: Some(form.idempotency_key.trim().to_owned())
                    .filter(|k| !k.is_empty()),
            };
            state
                .execution
                .receive_event(app.clone(), event)
                .await
                .map_err(Failure::from)
        }
        Err(failure) => Err(failure),
    };
    match sent {
        Ok(answer) => {
            let receipt = &answer.receipt;
            let replayed = if answer.replayed {
                "Already received with this idempotency key: nothing new was created. "
            } else {
                ""
            };
            let mut flash = Flash::ok(if receipt.run_ids.is_empty() {
                format!(
                    "{replayed}Sent {}. No running automation listens to it, so no run was created.",
                    receipt.trigger
                )
            } else {
                format!("{replayed}Sent {}; runs created:", receipt.trigger)
            });
            flash.runs = receipt.run_ids.iter().map(ToString::to_string).collect();
            flash.fields = vec![
                ("trigger".into(), form.trigger.trim().to_owned()),
                ("payload".into(), form.payload.clone()),
                (
                    "idempotency_key".into(),
                    form.idempotency_key.trim().to_owned(),
                ),
            ];
            Ok(redirect_with(
                &state,
                &ctx,
                &app_url(&app, "/events"),
                flash,
            ))
        }
        Err(failure) => render(&state, &ctx, &app, &form, Some(failure)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_objects() {
        assert!(payload("").unwrap().is_empty());
        assert_eq!(payload(r#"{"a": 1}"#).unwrap()["a"], 1);
        assert!(payload("[1]").unwrap_err().message.contains("object"));
        assert!(payload("{").unwrap_err().message.contains("`payload`"));
    }
}
