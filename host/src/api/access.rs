//! Authentication and authorization: one decision per route, enforced by one
//! middleware ([`authorize`]) around every route.
//!
//! [`DECISIONS`] maps each route (method and path template) to what it needs.
//! A route without a decision is refused for everyone (500 naming the route),
//! so adding a route forces a decision; `host/tests/all/api/` checks every
//! route of the OpenAPI document against every kind of key.
//!
//! For a request the middleware: finds the route's decision; authenticates
//! the bearer key (401 with `WWW-Authenticate: Bearer`); checks the path's
//! app id (400); checks the key's app and role (403, naming the key's app or
//! the role needed — never anything of another app); checks that the path's
//! app exists (404 `app `x` does not exist`); and hands the [`Principal`] to
//! the handler as a request extension, and its key id as the request's
//! actor ([`crate::service::current_actor`]) for the audit fields. Event intake is rate limited per key
//! (429 with `Retry-After`). The console's routes (`/`, `/console/…`,
//! [`crate::console`]) have their decisions here too; their principal comes
//! from the session cookie instead of the header, and their refusals are
//! pages (a sign-in redirect for a GET without a session).

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::app_id;
use crate::domain::access::{Need, Principal, decide};
use crate::edge::rate::RateLimiter;
use crate::service::{AuthError, Authenticator, Service, acting_as};

/// What each route needs. `HEAD` follows `GET`.
pub const DECISIONS: &[(&str, &str, Need)] = &[
    ("GET", "/openapi.json", Need::Public),
    ("GET", "/healthz", Need::Public),
    ("GET", "/readyz", Need::Public),
    // Apps and keys.
    ("GET", "/apps", Need::Admin),
    ("POST", "/apps", Need::Admin),
    ("GET", "/apps/{app_id}", Need::Read),
    ("DELETE", "/apps/{app_id}", Need::Admin),
    ("GET", "/apps/{app_id}/keys", Need::Admin),
    ("POST", "/apps/{app_id}/keys", Need::Admin),
    ("DELETE", "/apps/{app_id}/keys/{key_id}", Need::Admin),
    // Automations.
    ("GET", "/apps/{app_id}/automations", Need::Read),
    ("POST", "/apps/{app_id}/automations", Need::Write),
    ("GET", "/apps/{app_id}/automations/events", Need::Read),
    ("GET", "/apps/{app_id}/automations/schedule", Need::Read),
    ("GET", "/apps/{app_id}/automations/{id}", Need::Read),
    ("PATCH", "/apps/{app_id}/automations/{id}", Need::Write),
    ("DELETE", "/apps/{app_id}/automations/{id}", Need::Write),
    (
        "POST",
        "/apps/{app_id}/automations/{id}/activate",
        Need::Write,
    ),
    ("POST", "/apps/{app_id}/automations/{id}/pause", Need::Write),
    ("POST", "/apps/{app_id}/automations/{id}/reset", Need::Write),
    // Runs.
    ("GET", "/apps/{app_id}/automations/{id}/runs", Need::Read),
    ("GET", "/apps/{app_id}/automations/runs", Need::Read),
    (
        "GET",
        "/apps/{app_id}/automations/runs/{run_id}/output",
        Need::Read,
    ),
    (
        "GET",
        "/apps/{app_id}/automations/runs/{run_id}",
        Need::Read,
    ),
    ("POST", "/apps/{app_id}/automations/{id}/run", Need::Write),
    (
        "POST",
        "/apps/{app_id}/automations/runs/{run_id}/cancel",
        Need::Write,
    ),
    (
        "POST",
        "/apps/{app_id}/automations/runs/{run_id}/rerun",
        Need::Write,
    ),
    // Configs.
    ("GET", "/apps/{app_id}/configs", Need::Read),
    ("POST", "/apps/{app_id}/configs", Need::Write),
    ("GET", "/apps/{app_id}/configs/{id}", Need::Read),
    ("DELETE", "/apps/{app_id}/configs/{id}", Need::Write),
    // Event intake.
    ("POST", "/apps/{app_id}/events", Need::Intake),
    // Secrets: write keys set and delete them; read keys list names (never
    // values, which no route shows).
    ("GET", "/apps/{app_id}/secrets", Need::Read),
    ("PUT", "/apps/{app_id}/secrets/{name}", Need::Write),
    ("DELETE", "/apps/{app_id}/secrets/{name}", Need::Write),
    // Host-wide operator views.
    ("GET", "/admin/quarantine", Need::Admin),
    ("GET", "/admin/quarantine/{id}", Need::Admin),
    ("DELETE", "/admin/quarantine/{id}", Need::Admin),
    ("GET", "/admin/quarantine/{id}/bytes", Need::Admin),
    // The web console (`crate::console`): signed in by its session cookie.
    // The home page and sign-in/out resolve the session themselves.
    ("GET", "/", Need::Public),
    ("GET", "/console", Need::Public),
    ("GET", "/console/sign-in", Need::Public),
    ("POST", "/console/sign-in", Need::Public),
    ("POST", "/console/sign-out", Need::Public),
    ("GET", "/console/assets/{name}", Need::Public),
    ("GET", "/favicon.ico", Need::Public),
    ("GET", "/console/apps/{app_id}", Need::Read),
    ("GET", "/console/apps/{app_id}/automations", Need::Read),
    ("POST", "/console/apps/{app_id}/automations", Need::Write),
    ("GET", "/console/apps/{app_id}/automations/new", Need::Write),
    ("GET", "/console/apps/{app_id}/automations/{id}", Need::Read),
    (
        "POST",
        "/console/apps/{app_id}/automations/{id}",
        Need::Write,
    ),
    (
        "GET",
        "/console/apps/{app_id}/automations/{id}/edit",
        Need::Write,
    ),
    (
        "POST",
        "/console/apps/{app_id}/automations/{id}/{action}",
        Need::Write,
    ),
    ("GET", "/console/apps/{app_id}/runs", Need::Read),
    ("GET", "/console/apps/{app_id}/runs/{run_id}", Need::Read),
    (
        "GET",
        "/console/apps/{app_id}/runs/{run_id}/output",
        Need::Read,
    ),
    (
        "POST",
        "/console/apps/{app_id}/runs/{run_id}/{action}",
        Need::Write,
    ),
    ("GET", "/console/apps/{app_id}/configs", Need::Read),
    ("POST", "/console/apps/{app_id}/configs", Need::Write),
    ("GET", "/console/apps/{app_id}/configs/{id}", Need::Read),
    (
        "POST",
        "/console/apps/{app_id}/configs/{id}/delete",
        Need::Write,
    ),
    ("GET", "/console/apps/{app_id}/events", Need::Read),
    ("POST", "/console/apps/{app_id}/events", Need::Intake),
];

/// The decision for `method` on the route `template`, if there is one.
pub fn decision(method: &Method, template: &str) -> Option<Need> {
    let method = if method == Method::HEAD {
        Method::GET.as_str()
    } else {
        method.as_str()
    };
    DECISIONS
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .map(|(_, _, need)| *need)
}

/// The id (`key_…`, or `env`) of the key a request was authorized with, as
/// an extension of its response, for the request log
/// ([`super::observe::observe`]). Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingKey(pub String);

/// What the middleware needs.
#[derive(Clone)]
pub struct AccessState {
    pub authenticator: Arc<Authenticator>,
    pub service: Arc<Service>,
    /// Event intake per key (429 + `Retry-After` past it).
    pub intake_limiter: Arc<RateLimiter>,
    /// The console's sessions: its routes authenticate by cookie.
    pub sessions: Arc<crate::console::session::Sessions>,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Store(error) => error.into(),
            other => ApiError::unauthorized(other.to_string()),
        }
    }
}

/// Middleware (a route layer, so the route is known): authenticates and
/// authorizes the request per [`DECISIONS`]; see the module docs.
pub async fn authorize(State(state): State<AccessState>, request: Request, next: Next) -> Response {
    let console = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| crate::console::is_console_route(route.as_str()))
        .then(|| (request.method().clone(), request.uri().clone()));
    match check(&state, request).await {
        Ok(request) => {
            let actor = request
                .extensions()
                .get::<Principal>()
                .and_then(Principal::key_id);
            let mut response = acting_as(actor.clone(), next.run(request)).await;
            if let Some(key_id) = actor {
                response.extensions_mut().insert(ActingKey(key_id));
            }
            response
        }
        Err(error) => match console {
            Some((method, uri)) => crate::console::refused(&method, &uri, error).await,
            None => error.into_response(),
        },
    }
}

async fn check(state: &AccessState, request: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Some(template) = parts.extensions.get::<MatchedPath>().cloned() else {
        return Ok(Request::from_parts(parts, body));
    };
    let template = template.as_str();
    let action = format!("{} {template}", parts.method);
    let need = decision(&parts.method, template).ok_or_else(|| {
        tracing::error!(route = %action, "a route without an access decision was refused");
        ApiError::internal(format!(
            "{action} has no access decision (api::access::DECISIONS); it is refused"
        ))
    })?;
    if need == Need::Public {
        return Ok(Request::from_parts(parts, body));
    }
    let principal = if crate::console::is_console_route(template) {
        // The console's pages: the session cookie, not the header.
        let (principal, session) = state
            .sessions
            .principal(&parts.headers, &state.authenticator, state.service.now())
            .await
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        parts.extensions.insert(session);
        principal
    } else {
        let authorization = parts.headers.get(axum::http::header::AUTHORIZATION);
        state
            .authenticator
            .authenticate(authorization.map(|v| v.as_bytes()), state.service.now())
            .await?
    };
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))?;
    let path_app = params
        .iter()
        .find(|(name, _)| *name == "app_id")
        .map(|(_, raw)| app_id(raw))
        .transpose()?;
    let action = if crate::console::is_console_route(template) {
        crate::console::described_action(&parts.method).to_owned()
    } else {
        action
    };
    decide(&principal, need, path_app.as_ref(), &action)
        .map_err(|refused| ApiError::forbidden(refused.0))?;
    if let Some(app) = &path_app {
        state.service.app(app).await?;
    }
    if need == Need::Intake {
        let bucket = principal.key_id().unwrap_or_else(|| "anyone".to_owned());
        if let Err(wait) = state
            .intake_limiter
            .take(&bucket, std::time::Instant::now())
        {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::too_many_requests(format!(
                "this key sends events faster than it may; retry in {secs} s"
            ))
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs)));
        }
    }
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, body))
}

/// The key id to record as `created_by` & co.
pub fn actor(principal: Option<&Principal>) -> Option<String> {
    principal.and_then(Principal::key_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_is_for_one_route_and_changes_need_more_than_read() {
        for (i, (method, template, need)) in DECISIONS.iter().enumerate() {
            assert!(
                DECISIONS[i + 1..]
                    .iter()
                    .all(|(m, t, _)| (m, t) != (method, template)),
                "{method} {template} is decided twice"
            );
            if *method != "GET" {
                assert_ne!(*need, Need::Read, "{method} {template} changes something");
            }
        }
        assert_eq!(decision(&Method::HEAD, "/apps/{app_id}"), Some(Need::Read));
        assert_eq!(decision(&Method::PUT, "/apps/{app_id}"), None);
    }
}
