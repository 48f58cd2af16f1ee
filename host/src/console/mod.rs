//! The developer portal: a web console served by `automata serve`, rendered
//! on the server (maud) with its stylesheet and one small script embedded in
//! the binary — no CDN, no build step, works offline.
//!
//! Every page lives under `/console/…` (`/` redirects there), so a URL is
//! either the JSON API's or the console's and the API answers exactly as
//! before. Pages have stable, shareable URLs: `/console/apps/{app_id}/runs/{run_id}`,
//! `/console/apps/{app_id}/automations/{id}`, ….
//!
//! **Access**: each console route has its decision in
//! [`crate::api::access::DECISIONS`] like every API route, enforced by the
//! same middleware, which takes the principal from the session cookie
//! ([`session`]) instead of the `Authorization` header for routes under
//! `/console` ([`is_console_route`]). A refused page is HTML: a GET without
//! a session goes to the sign-in page, anything else gets an error page with
//! the API's status and message. Handlers call the service and the execution
//! plane directly, as the API's do. State-changing requests carry the
//! session's CSRF token ([`CsrfForm`], or the `X-CSRF-Token` header for the
//! upload script); buttons and forms a key's role cannot use are not shown.
//!
//! Every console response carries a Content-Security-Policy without inline
//! script or style (`default-src 'none'`; scripts, styles, images and fetches
//! from this origin only; `frame-ancestors 'none'`), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`, and
//! pages are `Cache-Control: no-store`.

mod assets;
mod automations;
mod configs;
mod events;
mod layout;
mod overview;
mod refusals;
mod runs;
pub mod session;
mod sign_in;

pub use refusals::pages_for_refusals;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::handler::Handler as _;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;
use crate::domain::access::{Need, Principal, decide};
use crate::domain::ids::AppId;
use crate::execution::{Execution, ExecutionError};
use crate::service::{Authenticator, Service, ServiceError};
use session::{SessionInfo, Sessions};

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// Largest form body (the send-test-event form carries a JSON payload of up
/// to the API's 1 MiB, URL-encoded).
const MAX_FORM_BYTES: usize = 4 * crate::api::MAX_JSON_BODY_BYTES;

/// What console handlers use.
#[derive(Clone)]
pub struct ConsoleState {
    pub service: Arc<Service>,
    pub execution: Arc<Execution>,
    pub authenticator: Arc<Authenticator>,
    pub sessions: Arc<Sessions>,
    /// Whether cookies get `Secure` (the server serves TLS).
    pub secure_cookies: bool,
}

/// Whether the route `template` is one of the console's (its principal comes
/// from the session cookie, and its refusals are pages).
pub fn is_console_route(template: &str) -> bool {
    template == "/" || template == PREFIX || template.starts_with("/console/")
}

/// The console's routes, each with its decision in
/// [`crate::api::access::DECISIONS`].
pub fn routes(state: ConsoleState) -> Router {
    let max_config_bytes = state.service.settings().max_config_bytes;
    Router::new()
        .route("/", get(|| async { Redirect::to(PREFIX) }))
        .route("/console", get(sign_in::home))
        .route(
            "/console/sign-in",
            get(sign_in::page).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{name}", get(assets::asset))
        .route("/favicon.ico", get(assets::favicon))
        .route("/console/apps/{app_id}", get(overview::page))
        .route(
            "/console/apps/{app_id}/automations",
            get(automations::list).post(automations::create),
        )
        .route(
            "/console/apps/{app_id}/automations/new",
            get(automations::new_form),
        )
        .route(
            "/console/apps/{app_id}/automations/{id}",
            get(automations::detail).post(automations::update),
        )
        .route(
            "/console/apps/{app_id}/automations/{id}/edit",
            get(automations::edit_form),
        )
        .route(
            "/console/apps/{app_id}/automations/{id}/{action}",
            post(automations::lifecycle),
        )
        .route("/console/apps/{app_id}/runs", get(runs::list))
        .route("/console/apps/{app_id}/runs/{run_id}", get(runs::detail))
        .route(
            "/console/apps/{app_id}/runs/{run_id}/output",
            get(runs::output),
        )
        .route(
            "/console/apps/{app_id}/runs/{run_id}/{action}",
            post(runs::action),
        )
        .route(
            "/console/apps/{app_id}/configs",
            get(configs::list).post(configs::upload.layer(DefaultBodyLimit::max(max_config_bytes))),
        )
        .route("/console/apps/{app_id}/configs/{id}", get(configs::detail))
        .route(
            "/console/apps/{app_id}/configs/{id}/delete",
            post(configs::delete),
        )
        .route(
            "/console/apps/{app_id}/events",
            get(events::page).post(events::send),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// Adds the console's security headers (see the module docs).
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The answer to a console request the access middleware refused: a GET
/// without a (valid) session goes to the sign-in page (coming back here
/// after); anything else is an error page with the API's status and message.
pub async fn refused(method: &Method, uri: &Uri, error: ApiError) -> Response {
    let response = if error.status() == StatusCode::UNAUTHORIZED && method == Method::GET {
        let next = uri
            .path_and_query()
            .map_or(PREFIX, |p| p.as_str())
            .to_owned();
        let reason = sign_in::Reason::of_refusal(error.message());
        sign_in::redirect_to_sign_in(&next, Some(reason)).into_response()
    } else {
        layout::error_page(error.status(), &console_terms(error.message()))
    };
    secure_headers(response).await
}

/// What a refused console request was, for the access decision's message
/// (`this key has role `read`; this console action needs role `write``):
/// the console's words, not a route template.
pub fn described_action(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "this console page"
    } else {
        "this console action"
    }
}

/// References to the JSON API in the service's messages, and what the
/// console says instead.
const CONSOLE_TERMS: [(&str, &str); 2] = [
    (
        "GET /apps/:app_id/automations/events lists them",
        "the Events page lists them",
    ),
    (
        "GET /apps/:app_id/automations/schedule previews one",
        "`automata preview schedule` previews one",
    ),
];

/// A service or API message in the console's terms: the API endpoints it
/// points to become the console's pages (or the CLI).
pub fn console_terms(message: &str) -> String {
    CONSOLE_TERMS
        .iter()
        .fold(message.to_owned(), |text, (api, console)| {
            text.replace(api, console)
        })
}

/// Who is asking, their session, and the outcome of the action that led
/// here (a GET page takes the session's flash; see [`session::Flash`]).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub session: SessionInfo,
    pub flash: Option<session::Flash>,
}

impl Ctx {
    /// Whether the principal may do what `need` stands for in `app` (to show
    /// or hide buttons; the access middleware decides the request itself).
    pub fn may(&self, need: Need, app: &AppId) -> bool {
        decide(&self.principal, need, Some(app), "").is_ok()
    }

    /// What the header shows: `key_… (write)`, or nothing without keys.
    pub fn who(&self) -> Option<String> {
        match &self.principal {
            Principal::Anyone => None,
            Principal::Key { id, role, .. } => Some(format!("{id} ({})", role.as_str())),
        }
    }
}

impl FromRequestParts<ConsoleState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Response> {
        let principal = parts.extensions.get::<Principal>().cloned();
        let session = parts.extensions.get::<SessionInfo>().cloned();
        match (principal, session) {
            (Some(principal), Some(session)) => {
                let flash = (parts.method == Method::GET)
                    .then(|| state.sessions.take_flash(&session.id))
                    .flatten();
                Ok(Ctx {
                    principal,
                    session,
                    flash,
                })
            }
            _ => Err(layout::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this console page was reached without its access check",
            )),
        }
    }
}

/// A form whose `csrf` field must be the session's token (403 otherwise);
/// the other fields deserialize into `T`.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let session = request.extensions().get::<SessionInfo>().cloned();
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            layout::error_page(
                e.status(),
                &format!("cannot read the form: {}", e.body_text()),
            )
        })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| page_error(StatusCode::BAD_REQUEST, format!("invalid form: {e}")))?;
        let token = pairs
            .iter()
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.as_str());
        match (session, token) {
            (Some(session), Some(token)) if session::csrf_matches(&session, token) => {}
            _ => {
                return Err(page_error(
                    StatusCode::FORBIDDEN,
                    "this form is out of date or was not sent from the console \
                     (its CSRF token does not match your session); reload the page and try again",
                ));
            }
        }
        let fields: Vec<(String, String)> =
            pairs.into_iter().filter(|(n, _)| n != "csrf").collect();
        let encoded = serde_urlencoded::to_string(&fields)
            .map_err(|e| page_error(StatusCode::BAD_REQUEST, format!("invalid form: {e}")))?;
        serde_urlencoded::from_str(&encoded)
            .map(CsrfForm)
            .map_err(|e| page_error(StatusCode::BAD_REQUEST, format!("invalid form: {e}")))
    }
}

/// An error page.
fn page_error(status: StatusCode, message: impl Into<String>) -> Response {
    layout::error_page(status, &message.into())
}

/// A service or execution error as the API would answer it: its status and
/// message, for a page or a banner.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure {
            status: error.status(),
            message: console_terms(error.message()),
        }
    }
}

impl Failure {
    /// The refusal as a flash for the page redirected to.
    pub fn flash(self) -> session::Flash {
        session::Flash::refused(self.status.as_u16(), self.message)
    }
}

/// Post/Redirect/Get: keeps `flash` for the session's next page and sends
/// the browser to `url` (303), so a reload shows the page again instead of
/// repeating the action.
pub fn redirect_with(
    state: &ConsoleState,
    ctx: &Ctx,
    url: &str,
    flash: session::Flash,
) -> Response {
    state.sessions.set_flash(&ctx.session.id, flash);
    Redirect::to(url).into_response()
}

impl From<ServiceError> for Failure {
    fn from(error: ServiceError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ExecutionError> for Failure {
    fn from(error: ExecutionError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        layout::error_page(self.status, &self.message)
    }
}

/// The query string of a console page as `T`, taking only the parameters
/// `names` (the JSON API's names where the API has the same filter). A
/// parameter the page does not take is a 400 page naming it and the ones
/// it takes, with the one probably meant; a value that does not read is a
/// 400 naming the parameter.
pub fn page_query<T: DeserializeOwned>(raw: Option<&str>, names: &[&str]) -> Result<T, Failure> {
    let raw = raw.unwrap_or_default();
    let bad = |message: String| Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| bad(format!("this page's address does not read: {e}")))?;
    for (name, _) in &pairs {
        if names.contains(&name.as_str()) {
            continue;
        }
        let takes = match names {
            [] => "no filters".to_owned(),
            names => format!(
                "only {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let meant = names
            .iter()
            .find(|n| n.starts_with(name.as_str()) && !name.is_empty())
            .copied()
            .or_else(|| crate::domain::events::closest(name, names.iter().copied()));
        let hint = meant.map_or_else(String::new, |m| format!(" Did you mean `{m}`?"));
        return Err(bad(format!(
            "This page has no filter `{name}`; it takes {takes}.{hint}"
        )));
    }
    serde_urlencoded::from_str(raw).map_err(|e| bad(format!("invalid filter: {e}")))
}

/// The app id in a console path (the access middleware has checked it).
fn app_id(raw: &str) -> Result<AppId, Failure> {
    crate::api::extract::app_id(raw).map_err(Failure::from)
}

/// The URL of an app's console page `rest` (`""`, `/runs`, …).
pub fn app_url(app: &AppId, rest: &str) -> String {
    format!("{PREFIX}/apps/{app}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    struct Filters {
        automation_id: Option<String>,
        latest_attempt: Option<String>,
    }

    #[test]
    fn a_page_query_names_what_it_does_not_take() {
        let names = ["automation_id", "latest_attempt"];
        let read: Filters =
            page_query(Some("automation_id=aut_1&latest_attempt=true"), &names).unwrap();
        assert_eq!(read.automation_id.as_deref(), Some("aut_1"));
        assert_eq!(read.latest_attempt.as_deref(), Some("true"));
        let error = page_query::<Filters>(Some("automation=aut_1"), &names).unwrap_err();
        assert_eq!(
            error.message,
            "This page has no filter `automation`; it takes only `automation_id`, \
             `latest_attempt`. Did you mean `automation_id`?"
        );
        assert!(
            page_query::<Filters>(Some("latest=on"), &names)
                .unwrap_err()
                .message
                .ends_with("Did you mean `latest_attempt`?")
        );
        assert!(
            page_query::<Filters>(Some("colour=red"), &[])
                .unwrap_err()
                .message
                .contains("it takes no filters")
        );
    }

    #[test]
    fn api_references_become_console_terms() {
        let message = crate::domain::events::unknown_event_message("thread.craeted");
        let console = console_terms(&message);
        assert!(console.contains("the Events page lists them"), "{console}");
        assert!(!console.contains("GET /apps"), "{console}");
    }
}
