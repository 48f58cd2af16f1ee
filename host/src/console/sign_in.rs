//! Signing in with an API key, signing out, and the console's home.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, banner};
use super::session::{self, SessionError};
use super::{ConsoleState, Ctx, PREFIX, app_url};
use crate::domain::access::{Principal, Role, secret_hash};
use crate::service::AuthError;

/// `?next=` (where to go after signing in) and `?reason=` (why we are here).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    next: Option<String>,
    reason: Option<String>,
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInForm {
    key: String,
    #[serde(default)]
    next: Option<String>,
}

/// A redirect to the sign-in page that comes back to `next`.
pub fn redirect_to_sign_in(next: &str, reason: Option<&str>) -> Redirect {
    let mut query = vec![("next", next)];
    if let Some(reason) = reason {
        query.push(("reason", reason));
    }
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    Redirect::to(&format!("{PREFIX}/sign-in?{query}"))
}

/// Only paths of the console are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        n.starts_with("/console/")
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.contains("://")
    })
}

/// `GET /console/sign-in`: the form.
pub async fn page(
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = query.unwrap_or_default();
    form(
        StatusCode::OK,
        query.reason.as_deref(),
        safe_next(query.next.as_deref()),
    )
}

fn form(status: StatusCode, problem: Option<&str>, next: Option<&str>) -> Response {
    let body = html! {
        @if let Some(problem) = problem { (banner("error", problem)) }
        form method="post" action=(format!("{PREFIX}/sign-in")) class="card narrow" {
            label for="key" { "API key" }
            input id="key" name="key" type="password" autocomplete="off" required autofocus
                placeholder="ak_…" spellcheck="false";
            @if let Some(next) = next { input type="hidden" name="next" value=(next); }
            p class="hint" {
                "An admin key or an app's " code { "read" } " or " code { "write" } " key. "
                "A new server wrote its first admin key to " code { "<data-dir>/admin-token" } ". "
                "The key is checked and forgotten: the session keeps only its hash, and ends when "
                "the key is revoked, after 12 hours, or when the server restarts."
            }
            button type="submit" class="primary" { "Sign in" }
        }
    };
    (status, layout::shell(None, None, "Sign in", html! {}, body)).into_response()
}

/// `POST /console/sign-in`: checks the key like a bearer key and starts a
/// session. Keys that may only send events are refused: they can read nothing.
pub async fn sign_in(
    State(state): State<ConsoleState>,
    axum::Form(form_data): axum::Form<SignInForm>,
) -> Response {
    let next = safe_next(form_data.next.as_deref());
    let now = state.service.now();
    let hash = secret_hash(form_data.key.trim());
    let principal = match state.authenticator.authenticate_sha256(&hash, now).await {
        Ok(principal) => principal,
        Err(AuthError::Store(error)) => {
            return layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        }
        Err(error) => return form(StatusCode::UNAUTHORIZED, Some(&error.to_string()), next),
    };
    if let Principal::Key {
        role: Role::Events, ..
    } = principal
    {
        return form(
            StatusCode::FORBIDDEN,
            Some("this key may only send events; sign in with a read, write or admin key"),
            next,
        );
    }
    let (cookie, _) = state.sessions.start(hash, rand::random(), now);
    let target = next.map_or_else(|| home_of(&principal), str::to_owned);
    let mut response = Redirect::to(&target).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&cookie, state.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Where a principal lands: its app's overview, or the list of apps.
fn home_of(principal: &Principal) -> String {
    match principal {
        Principal::Key { app: Some(app), .. } => app_url(app, ""),
        _ => PREFIX.to_owned(),
    }
}

/// `POST /console/sign-out`: ends the session (the form must carry its CSRF
/// token) and clears the cookie. A session that has already ended just has
/// its cookie cleared.
pub async fn sign_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    axum::Form(fields): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let now = state.service.now();
    if let Ok((_, session)) = state
        .sessions
        .principal(&headers, &state.authenticator, now)
        .await
    {
        let token = fields.get("csrf").map_or("", String::as_str);
        if !session::csrf_matches(&session, token) {
            return layout::error_page(
                StatusCode::FORBIDDEN,
                "this sign-out form was not sent from your session (CSRF token mismatch)",
            );
        }
        state.sessions.end(&session.id);
    }
    let mut response = redirect_to_sign_in(PREFIX, None).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(state.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /console`: an app key goes to its app; an admin (or anyone, without
/// authentication) picks an app; no session goes to sign-in.
pub async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let now = state.service.now();
    let (principal, session) = match state
        .sessions
        .principal(&headers, &state.authenticator, now)
        .await
    {
        Ok(found) => found,
        Err(SessionError::Missing) => return redirect_to_sign_in(PREFIX, None).into_response(),
        Err(error) => return redirect_to_sign_in(PREFIX, Some(&error.to_string())).into_response(),
    };
    if let Principal::Key { app: Some(app), .. } = &principal {
        return Redirect::to(&app_url(app, "")).into_response();
    }
    let apps = match state.service.apps().await {
        Ok(apps) => apps,
        Err(error) => return super::Failure::from(error).into_response(),
    };
    let ctx = Ctx { principal, session };
    let body = html! {
        @if apps.is_empty() {
            p { "No apps yet: create one with " code { "automata create app <id>" } "." }
        } @else {
            ul class="apps" {
                @for app in &apps {
                    li { a href=(app_url(&app.id, "")) { code { (app.id) } } }
                }
            }
        }
    };
    layout::shell(Some(&ctx), None, "Apps", html! {}, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/console/apps/a")), Some("/console/apps/a"));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/apps/a",
            "/console/\\x",
            "/console/x?u=http://e",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }
}
