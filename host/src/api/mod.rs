//! The HTTP API (axum): the spec's Automations REST endpoints plus configs,
//! JSON errors, body limits and the OpenAPI document at `/openapi.json`.
//!
//! Handlers parse and shape; every rule lives in the [`Service`].

pub mod access;
pub mod admin;
pub mod apps;
pub mod automations;
pub mod configs;
pub mod drain;
pub mod edge;
pub mod error;
pub mod execution;
pub mod extract;
pub mod health;
pub mod observe;
pub mod output;
pub mod query;
pub mod runs;
pub mod schedule;
pub mod scrape;
pub mod secrets;
pub mod strict;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler as _;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::edge::rate::RateLimiter;
use crate::execution::Execution;
use crate::metrics::Metrics;
use crate::service::{Authenticator, Service};
use error::ApiError;

/// Largest JSON request body ([`crate::domain::json::MAX_BODY_BYTES`]).
pub const MAX_JSON_BODY_BYTES: usize = crate::domain::json::MAX_BODY_BYTES;

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Automata",
        description = "Run WebAssembly workflows on cron schedules or platform events. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        apps::create,
        apps::list,
        apps::show,
        apps::delete,
        apps::create_key,
        apps::list_keys,
        apps::delete_key,
        automations::list,
        automations::create,
        automations::show,
        automations::update,
        automations::delete,
        automations::activate,
        automations::pause,
        automations::reset,
        automations::events,
        schedule::preview,
        runs::list,
        runs::list_all,
        runs::show,
        configs::upload,
        configs::list,
        configs::show,
        configs::delete,
        execution::receive_event,
        execution::run_now,
        execution::cancel,
        execution::rerun,
        admin::quarantine,
        admin::quarantined,
        admin::quarantined_bytes,
        admin::discard,
        health::healthz,
        health::readyz,
        output::output,
        secrets::set,
        secrets::list,
        secrets::delete,
    ),
    tags(
        (name = "apps", description = "Apps (namespaces) and their API keys"),
        (name = "automations", description = "Automations and their lifecycle"),
        (name = "runs", description = "Automation runs"),
        (name = "configs", description = "WorkflowGraph configs (uploaded components)"),
        (name = "events", description = "Platform events that trigger automations"),
        (name = "secrets", description = "App secrets: write-only values workflows read when granted"),
        (name = "admin", description = "Host-wide operator endpoints: the quarantine of unreadable records"),
        (name = "operations", description = "Probes for supervisors and load balancers"),
    )
)]
pub struct ApiDoc;

/// The whole API: the control plane's routes, the execution plane's, the
/// admin routes, the probes and the web console's pages, each behind its access decision
/// ([`access::authorize`]; the probes' is public), JSON 404s and 405s
/// for the rest, query parameters a route does not take refused
/// ([`query::refuse_unknown_query`]), JSON 414s and 431s
/// ([`edge::protocol_limits`]), every request's unread body drained before
/// its answer ([`drain::drain_unread_body`]), and every request logged and
/// counted ([`observe::observe`]).
pub fn app(
    service: Arc<Service>,
    execution: Arc<Execution>,
    authenticator: Arc<Authenticator>,
    intake_limiter: Arc<RateLimiter>,
    readiness: Arc<health::Readiness>,
    metrics: Arc<Metrics>,
    console: Console,
) -> Router {
    let query_parameters = Arc::new(query::QueryParameters::from_openapi(&ApiDoc::openapi()));
    let sessions = Arc::new(crate::console::session::Sessions::new(rand::random()));
    let access = access::AccessState {
        authenticator: Arc::clone(&authenticator),
        service: Arc::clone(&service),
        intake_limiter,
        sessions: Arc::clone(&sessions),
    };
    let console = crate::console::routes(crate::console::ConsoleState {
        service: Arc::clone(&service),
        execution: Arc::clone(&execution),
        authenticator,
        sessions,
        secure_cookies: console.secure_cookies,
    });
    router(Arc::clone(&service))
        .merge(console)
        .merge(apps::routes(Arc::clone(&service), Arc::clone(&execution)))
        .merge(execution::routes(Arc::clone(&service), execution))
        .merge(secrets::routes(Arc::clone(&service)))
        .merge(admin::routes(service))
        .merge(health::routes(readiness))
        // After every merge: a route layer covers the routes present.
        .route_layer(axum::middleware::from_fn_with_state(
            access,
            access::authorize,
        ))
        // After the merge: the 405 fallback is set on the routes present.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            query_parameters,
            query::refuse_unknown_query,
        ))
        // Inside the drain, so a body sent with a refused request is read.
        .layer(axum::middleware::from_fn(edge::protocol_limits))
        .layer(axum::middleware::from_fn(drain::drain_unread_body))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::observe,
        ))
}

/// How the web console is served ([`crate::console`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Console {
    /// Mark its session cookie `Secure` (the server serves TLS).
    pub secure_cookies: bool,
}

/// The control plane's routes over `service`.
pub fn router(service: Arc<Service>) -> Router {
    let max_config_bytes = service.settings().max_config_bytes;
    Router::new()
        .route("/openapi.json", get(openapi))
        .route(
            "/apps/{app_id}/automations",
            get(automations::list).post(automations::create),
        )
        .route(
            "/apps/{app_id}/automations/events",
            get(automations::events),
        )
        .route(
            "/apps/{app_id}/automations/schedule",
            get(schedule::preview),
        )
        .route(
            "/apps/{app_id}/automations/{id}",
            get(automations::show)
                .patch(automations::update)
                .delete(automations::delete),
        )
        .route(
            "/apps/{app_id}/automations/{id}/activate",
            post(automations::activate),
        )
        .route(
            "/apps/{app_id}/automations/{id}/pause",
            post(automations::pause),
        )
        .route(
            "/apps/{app_id}/automations/{id}/reset",
            post(automations::reset),
        )
        .route("/apps/{app_id}/automations/{id}/runs", get(runs::list))
        .route("/apps/{app_id}/automations/runs", get(runs::list_all))
        .route("/apps/{app_id}/automations/runs/{run_id}", get(runs::show))
        .route(
            "/apps/{app_id}/configs",
            get(configs::list).post(configs::upload.layer(DefaultBodyLimit::max(max_config_bytes))),
        )
        .route(
            "/apps/{app_id}/configs/{id}",
            get(configs::show).delete(configs::delete),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .with_state(service)
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{method} is not allowed on {}", uri.path()))
}
