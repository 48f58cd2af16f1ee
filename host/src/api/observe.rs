//! One log line and the HTTP metrics per request: method, route template
//! (never the raw path, so label values stay few), status, duration, the
//! app the path names and the id of the key that was used (never the key);
//! refused requests also say why.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::access::ActingKey;
use super::error::ErrorMessage;
use crate::metrics::Metrics;

/// The route label of a request no route matched (a 404).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Routes a supervisor polls; answered ones are logged at `debug`.
const PROBE_ROUTES: [&str; 2] = ["/healthz", "/readyz"];

/// The upload route, whose refusals get a log line of their own.
const CONFIGS_ROUTE: &str = "/apps/{app_id}/configs";

/// Answers `request` and records it: `automata_http_requests_total`, the
/// latency histogram and an `info` line (`warn` for a 5xx, `debug` for a
/// passing probe). A refused component upload gets a line of its own.
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let app = app_in(request.uri().path()).map(str::to_owned);
    let size = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics.http_request(method.as_str(), &route, status.as_u16(), elapsed);
    let error = response
        .extensions()
        .get::<ErrorMessage>()
        .map(|ErrorMessage(message)| message.as_str());
    let key = response
        .extensions()
        .get::<ActingKey>()
        .map(|ActingKey(id)| id.as_str());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let (route, app, status) = (route.as_str(), app.as_deref(), status.as_u16());
    if status >= 500 {
        tracing::warn!(%method, route, status, duration_ms, app, key, error, "request");
    } else if PROBE_ROUTES.contains(&route) && status < 400 {
        // A supervisor asks every few seconds: not part of the story.
        tracing::debug!(%method, route, status, duration_ms, "request");
    } else {
        tracing::info!(%method, route, status, duration_ms, app, key, error, "request");
    }
    if method == Method::POST && route == CONFIGS_ROUTE && (400..500).contains(&status) {
        tracing::info!(app, size, status, reason = error, "config upload refused");
    }
    response
}

/// The app id of a path under `/apps/{app_id}/`, as sent.
fn app_in(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/apps/")?;
    let app = rest.split('/').next()?;
    (!app.is_empty()).then_some(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_the_segment_after_apps() {
        assert_eq!(app_in("/apps/default/events"), Some("default"));
        assert_eq!(app_in("/apps/a-1"), Some("a-1"));
        assert_eq!(app_in("/apps/"), None);
        assert_eq!(app_in("/healthz"), None);
    }
}
