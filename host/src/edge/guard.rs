//! The per-request checks of the edge, as one middleware around the whole
//! API ([`guard`]); see the module docs of [`super`].

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::{EdgeConfig, is_probe};
use crate::api::error::ApiError;

/// What the guard checks against, and its counters.
#[derive(Debug)]
pub struct Guard {
    hosts: Vec<String>,
    listen_ip: Option<IpAddr>,
    origins: Vec<String>,
    reads: Arc<Semaphore>,
    changes: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
    body_timeout: Duration,
}

impl Guard {
    /// The guard for a server listening on `listen`.
    pub fn new(config: &EdgeConfig, listen: SocketAddr) -> Self {
        Guard {
            hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            listen_ip: Some(listen.ip()).filter(|ip| !ip.is_unspecified()),
            origins: config
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            reads: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            changes: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
            body_timeout: config.body_timeout,
        }
    }

    /// Whether requests may name `host` (no port) in their `Host` header.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" || self.hosts.contains(&host) {
            return true;
        }
        bare.parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || Some(ip) == self.listen_ip)
    }
}

/// The host part of a `Host` header (`name`, `1.2.3.4`, `[::1]`), without port.
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether a Content-Type is JSON (`application/json`, `…+json`, any parameters).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether the request says it has a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// `POST /apps/{app_id}/configs` (and the console's
/// `POST /console/apps/{app_id}/configs`): the uploads, whose body is a component.
fn is_upload(method: &Method, path: &str) -> bool {
    let path = path.strip_prefix(crate::console::PREFIX).unwrap_or(path);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    method == Method::POST && parts.len() == 3 && parts[0] == "apps" && parts[2] == "configs"
}

/// Whether a Content-Type is an HTML form's (`application/x-www-form-urlencoded`).
fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// Whether a request body of `content_type` may go to `path`: JSON to the
/// API, and HTML forms to the console's pages only (`/console/…`).
fn body_type_allowed(path: &str, content_type: &str) -> bool {
    is_json(content_type) || (path.starts_with("/console/") && is_form(content_type))
}

fn busy(what: &str) -> ApiError {
    ApiError::unavailable(format!(
        "the server is busy with other {what}; retry in a second"
    ))
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// The middleware: Host, Origin, Content-Type, load shedding, upload cap and
/// stalled bodies, in that order.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let probe = is_probe(&path);
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
    if !probe {
        let Some(authority) = authority.as_deref() else {
            return ApiError::invalid("the request has no Host header").into_response();
        };
        let host = host_name(authority);
        if !guard.host_allowed(host) {
            return ApiError::misdirected(format!(
                "this server does not answer for host `{host}`; start it with \
                 --allowed-host {host} (or --public-url) to allow it"
            ))
            .into_response();
        }
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Some(refused) = cross_origin(&guard, &parts.headers, authority.as_deref()) {
            return refused.into_response();
        }
        let upload = is_upload(&parts.method, &path);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let json_ok = match &content_type {
            Some(content_type) => body_type_allowed(&path, content_type),
            None => !has_body(&parts.headers),
        };
        if !upload && !json_ok {
            return ApiError::unsupported_media_type(format!(
                "send the body as JSON with `Content-Type: application/json` (got {})",
                content_type
                    .as_deref()
                    .map_or("no Content-Type".into(), |c| format!("`{c}`"))
            ))
            .into_response();
        }
    }
    let _in_flight = if probe {
        None
    } else {
        let (pool, what) = if safe {
            (&guard.reads, "reads")
        } else {
            (&guard.changes, "changes")
        };
        match Arc::clone(pool).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return busy(what).into_response(),
        }
    };
    let _upload = if is_upload(&parts.method, &path) {
        match Arc::clone(&guard.uploads).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return busy("uploads").into_response(),
        }
    } else {
        None
    };
    let stalled = Arc::new(AtomicBool::new(false));
    let body = Body::new(StallBody {
        inner: body,
        timeout: guard.body_timeout,
        sleep: None,
        stalled: Arc::clone(&stalled),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if stalled.load(Ordering::Relaxed) {
        let secs = guard.body_timeout.as_secs_f64();
        let mut response = ApiError::request_timeout(format!(
            "the request body stopped arriving ({secs} s without a byte)"
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    response
}

/// The 403 for a state-changing request from another origin, if it is one:
/// its `Origin` is neither this server's (as the client named it) nor an
/// allowed one, or the browser says the request is cross-site.
fn cross_origin(guard: &Guard, headers: &HeaderMap, authority: Option<&str>) -> Option<ApiError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let origin = headers.get(header::ORIGIN).map(|o| {
        o.to_str()
            .unwrap_or("invalid")
            .trim_end_matches('/')
            .to_ascii_lowercase()
    });
    let foreign = origin.as_ref().is_some_and(|origin| {
        let own = authority.is_some_and(|a| {
            let a = a.to_ascii_lowercase();
            *origin == format!("http://{a}") || *origin == format!("https://{a}")
        });
        !own && !guard.origins.contains(origin)
    });
    (cross_site || foreign).then(|| {
        ApiError::forbidden(format!(
            "cross-origin request refused (Origin: {})",
            origin
                .as_deref()
                .unwrap_or("none, Sec-Fetch-Site: cross-site")
        ))
    })
}

/// A request body that fails when no bytes arrive for `timeout`.
struct StallBody {
    inner: Body,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl HttpBody for StallBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        this.stalled.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(format!(
            "no body bytes for {} s",
            timeout.as_secs_f64()
        )))))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        let config = EdgeConfig {
            allowed_hosts: vec!["automata.example.com".into()],
            allowed_origins: vec!["https://automata.example.com".into()],
            ..EdgeConfig::default()
        };
        Guard::new(&config, "10.0.0.5:7070".parse().unwrap())
    }

    #[test]
    fn hosts_are_loopback_the_listen_address_or_configured() {
        let guard = guard();
        for host in [
            "localhost",
            "127.0.0.1",
            "[::1]",
            "10.0.0.5",
            "Automata.Example.com",
        ] {
            assert!(guard.host_allowed(host), "{host}");
        }
        for host in ["evil.example", "10.0.0.6", "localhost.evil.example"] {
            assert!(!guard.host_allowed(host), "{host}");
        }
        assert_eq!(host_name("a.example:7070"), "a.example");
        assert_eq!(host_name("[::1]:7070"), "[::1]");
        assert_eq!(host_name("a.example"), "a.example");
    }

    #[test]
    fn only_json_bodies_and_own_origins_pass() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        let guard = guard();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_origin(&guard, &headers, Some("127.0.0.1:7070")).is_some());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7070"),
        );
        assert!(cross_origin(&guard, &headers, Some("127.0.0.1:7070")).is_none());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://automata.example.com"),
        );
        assert!(cross_origin(&guard, &headers, Some("10.0.0.5")).is_none());
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_origin(&guard, &headers, Some("10.0.0.5")).is_some());
        assert!(cross_origin(&guard, &HeaderMap::new(), None).is_none());
        assert!(is_upload(&Method::POST, "/apps/a/configs"));
        assert!(is_upload(&Method::POST, "/console/apps/a/configs"));
        assert!(!is_upload(&Method::POST, "/apps/a/automations"));
        assert!(!is_upload(&Method::POST, "/console/apps/a/automations"));
    }

    #[test]
    fn forms_go_to_the_console_only() {
        let form = "application/x-www-form-urlencoded; charset=UTF-8";
        assert!(body_type_allowed("/console/apps/a/automations", form));
        assert!(body_type_allowed("/console/sign-in", form));
        assert!(!body_type_allowed("/apps/a/automations", form));
        assert!(!body_type_allowed("/consolex/a", form));
        assert!(body_type_allowed("/apps/a/automations", "application/json"));
        assert!(!body_type_allowed("/console/sign-in", "text/plain"));
        assert!(!body_type_allowed(
            "/console/sign-in",
            "multipart/form-data; boundary=x"
        ));
    }
}
