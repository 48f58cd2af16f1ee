//! Every refusal under `/console` is a page: the JSON errors of the layers
//! in front of the console's handlers — the edge's (a foreign Origin's 403,
//! 415, 421, 408, 503), the router's 404 and 405, the 414 and 431 of the
//! protocol limits — become the console's error page with the same status
//! ([`pages_for_refusals`]). The JSON API keeps answering JSON.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::{PREFIX, console_terms, layout, secure_headers};

/// Largest JSON error body read to make a page of it (the API's are small).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Whether `path` is the console's: `/`, `/console` or under `/console/`.
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path == PREFIX || path.starts_with("/console/")
}

/// Whether the request asks for JSON rather than a page: the console's
/// upload script does (`Accept: application/json`), and reads the API's
/// JSON answer.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Middleware around the whole server (outside the edge's guard): a JSON
/// error answering a console request (one not asking for JSON) becomes the
/// console's error page with the same status, message and `Retry-After`,
/// `Allow` and `Connection` headers; the router's 404 and 405 get the
/// console's own words (they never echo the address).
pub async fn pages_for_refusals(request: Request, next: Next) -> Response {
    if !is_console_path(request.uri().path()) || wants_json(request.headers()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = match status {
        StatusCode::NOT_FOUND => "There is no console page at this address.".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => not_allowed(&method).to_owned(),
        _ => to_bytes(body, MAX_ERROR_BYTES)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|v| v["error"]["message"].as_str().map(console_terms))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned()),
    };
    let mut page = layout::error_page(status, &message);
    for name in [header::RETRY_AFTER, header::ALLOW, header::CONNECTION] {
        if let Some(value) = parts.headers.get(&name) {
            page.headers_mut().insert(name, value.clone());
        }
    }
    secure_headers(page).await
}

/// The 405's words: a GET of a button's address (a reload after an action,
/// a bookmarked form target), or a method no console page takes.
fn not_allowed(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "This address is where one of the console's buttons or forms sends its request; \
         it is not a page. Go back to the page and use the button."
    } else {
        "This console page does not take that kind of request."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths_and_json_askers() {
        for path in ["/", "/console", "/console/x/y"] {
            assert!(is_console_path(path), "{path}");
        }
        for path in ["/consolex", "/apps/a", "/favicon.ico"] {
            assert!(!is_console_path(path), "{path}");
        }
        let mut headers = HeaderMap::new();
        assert!(!wants_json(&headers));
        headers.insert(
            header::ACCEPT,
            "text/html, application/json;q=0.9".parse().unwrap(),
        );
        assert!(wants_json(&headers));
        headers.insert(header::ACCEPT, "text/html,*/*;q=0.8".parse().unwrap());
        assert!(!wants_json(&headers));
    }
}
