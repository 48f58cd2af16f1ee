//! Signing in with an API key, signing out, and the console's home.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, banner};
use super::session::{self, Flash, SessionError};
use super::{ConsoleState, Ctx, PREFIX, app_url};
use crate::domain::access::{Need, Principal, Role, decide, secret_hash};
use crate::service::AuthError;

/// `?next=` (where to go after signing in) and `?reason=` (why we are here:
/// a [`Reason`] code).
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

/// Why the sign-in page is shown: a short code in `?reason=` that the page
/// turns into the console's own words. An unknown code shows nothing, so a
/// link can never put its own text on the sign-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A page was asked for without a session.
    Required,
    /// The session expired or was ended (sign-out elsewhere, restart).
    Ended,
    /// The session's key no longer signs in (revoked, deleted, expired).
    KeyRefused,
    /// The server could not check the session.
    Unavailable,
    /// The user signed out.
    SignedOut,
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::Required,
        Reason::Ended,
        Reason::KeyRefused,
        Reason::Unavailable,
        Reason::SignedOut,
    ];

    /// The code in the URL.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Required => "required",
            Reason::Ended => "ended",
            Reason::KeyRefused => "key",
            Reason::Unavailable => "unavailable",
            Reason::SignedOut => "signed-out",
        }
    }

    /// The reason a code stands for; `None` for any other text.
    pub fn parse(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What the page says.
    fn message(self) -> &'static str {
        match self {
            Reason::Required => "Sign in with an API key to open this page.",
            Reason::Ended => {
                "Your session has ended (sessions last 12 hours and end when the server \
                 restarts); sign in again."
            }
            Reason::KeyRefused => {
                "The key of your session no longer signs in (it was revoked, deleted or has \
                 expired); sign in with a valid key."
            }
            Reason::Unavailable => "The server could not check your session just now; try again.",
            Reason::SignedOut => "You have signed out.",
        }
    }

    /// Whether it is a problem (an error banner) or news (a status).
    fn is_problem(self) -> bool {
        !matches!(self, Reason::Required | Reason::SignedOut)
    }

    /// The reason of a console request's 401 (the access middleware's
    /// message for a [`SessionError`]).
    pub fn of_refusal(message: &str) -> Reason {
        [
            SessionError::Missing,
            SessionError::Ended,
            SessionError::Unavailable,
        ]
        .iter()
        .find(|error| error.to_string() == message)
        .map_or(Reason::KeyRefused, Reason::of)
    }

    /// Why a session was not found, as a reason.
    pub fn of(error: &SessionError) -> Reason {
        match error {
            SessionError::Missing => Reason::Required,
            SessionError::Ended => Reason::Ended,
            SessionError::Key(_) => Reason::KeyRefused,
            SessionError::Unavailable => Reason::Unavailable,
        }
    }
}

/// A redirect to the sign-in page that comes back to `next`.
pub fn redirect_to_sign_in(next: &str, reason: Option<Reason>) -> Redirect {
    let mut query = vec![("next", next)];
    if let Some(reason) = reason {
        query.push(("reason", reason.code()));
    }
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    Redirect::to(&format!("{PREFIX}/sign-in?{query}"))
}

/// Only paths of the console are followed after sign-in (no open redirect):
/// printable ASCII (a `Location` header takes nothing else; the console's
/// own links are percent-encoded), no `.`/`..` segment that would climb out
/// of `/console/`.
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        let path = n.split(['?', '#']).next().unwrap_or_default();
        n.starts_with("/console/")
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.contains("://")
            && n.bytes().all(|b| b.is_ascii_graphic())
            && !path
                .split('/')
                .any(|segment| segment == "." || segment == "..")
    })
}

/// `GET /console/sign-in`: the form.
pub async fn page(
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = query.unwrap_or_default();
    let notice = query
        .reason
        .as_deref()
        .and_then(Reason::parse)
        .map(|reason| {
            let kind = if reason.is_problem() { "error" } else { "ok" };
            (kind, reason.message())
        });
    form(StatusCode::OK, notice, safe_next(query.next.as_deref()))
}

/// The sign-in form, with a banner (`(kind, message)`) above it.
fn form(status: StatusCode, notice: Option<(&str, &str)>, next: Option<&str>) -> Response {
    let body = html! {
        @if let Some((kind, message)) = notice { (banner(kind, message)) }
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
        Err(error) => {
            return form(
                StatusCode::UNAUTHORIZED,
                Some(("error", &error.to_string())),
                next,
            );
        }
    };
    if let Principal::Key {
        role: Role::Events, ..
    } = principal
    {
        return form(
            StatusCode::FORBIDDEN,
            Some((
                "error",
                "this key may only send events; sign in with a read, write or admin key",
            )),
            next,
        );
    }
    let (cookie, session) = state.sessions.start(hash, rand::random(), now);
    let target = match next {
        Some(next) if may_open(&principal, next) => next.to_owned(),
        Some(_) => {
            state.sessions.set_flash(
                &session.id,
                Flash::refused(
                    StatusCode::FORBIDDEN.as_u16(),
                    "The page you asked for is in another app than this key's, which it \
                     cannot open; here is the key's own app instead.",
                ),
            );
            home_of(&principal)
        }
        None => home_of(&principal),
    };
    let mut response = Redirect::to(&target).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&cookie, state.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether `principal` may read the app a console path `next` is in (paths
/// outside `/console/apps/{app_id}` are anyone's).
fn may_open(principal: &Principal, next: &str) -> bool {
    let Some(rest) = next.strip_prefix(&format!("{PREFIX}/apps/")) else {
        return true;
    };
    let raw = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match crate::api::extract::app_id(raw) {
        Ok(app) => decide(principal, Need::Read, Some(&app), "").is_ok(),
        Err(_) => true,
    }
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
    let mut response = redirect_to_sign_in(PREFIX, Some(Reason::SignedOut)).into_response();
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
        Err(error) => {
            return redirect_to_sign_in(PREFIX, Some(Reason::of(&error))).into_response();
        }
    };
    if let Principal::Key { app: Some(app), .. } = &principal {
        return Redirect::to(&app_url(app, "")).into_response();
    }
    let apps = match state.service.apps().await {
        Ok(apps) => apps,
        Err(error) => return super::Failure::from(error).into_response(),
    };
    let flash = state.sessions.take_flash(&session.id);
    let ctx = Ctx {
        principal,
        session,
        flash,
    };
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
        let encoded = "/console/apps/a/runs?status=failed&since=2026-01-01T00%3A00%3A00Z";
        assert_eq!(safe_next(Some(encoded)), Some(encoded));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/apps/a",
            "/console/\\x",
            "/console/x?u=http://e",
            // Not a header value: a 500 at sign-in, once.
            "/console/\u{7f}",
            "/console/\r\nSet-Cookie: x",
            "/console/caf\u{e9}",
            // Climbing out of the console.
            "/console/../..//evil.com",
            "/console/./x",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn reasons_are_codes_and_any_other_text_says_nothing() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.code()), Some(reason));
        }
        assert_eq!(Reason::parse("Your account is locked: call 555-0100"), None);
        assert_eq!(Reason::of(&SessionError::Missing), Reason::Required);
        assert_eq!(
            Reason::of_refusal(&SessionError::Ended.to_string()),
            Reason::Ended
        );
        assert_eq!(
            Reason::of_refusal("the API key is not valid (unknown or revoked)"),
            Reason::KeyRefused
        );
        assert_eq!(
            Reason::of(&SessionError::Key("revoked".into())),
            Reason::KeyRefused
        );
    }

    #[test]
    fn an_app_key_may_open_only_its_own_app() {
        let key = Principal::Key {
            id: "key_x".into(),
            app: Some("a".parse().unwrap()),
            role: Role::Read,
        };
        assert!(may_open(&key, "/console/apps/a/runs?status=failed"));
        assert!(may_open(&key, "/console/apps/a"));
        assert!(!may_open(&key, "/console/apps/b/runs"));
        assert!(!may_open(&key, "/console/apps/ab"));
        assert!(may_open(&key, "/console"));
        assert!(may_open(&Principal::Anyone, "/console/apps/b"));
    }
}
