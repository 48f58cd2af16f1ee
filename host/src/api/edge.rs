//! Protocol-level limits answered in JSON. hyper refuses what it cannot
//! parse before any of our code runs, with an empty body we cannot shape: a
//! malformed request line (400), an unsupported version (505), a URI past
//! 64 KiB (414), more than 100 headers or a head past about 400 KiB (431).
//! Tighter limits checked here, on the parsed request, answer the common
//! cases — a long URI, oversized headers — with the JSON error shape.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest request target (path and query) in bytes; longer is a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most bytes of request headers (names, values and `: `/CRLF framing); more
/// is a 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Middleware: 414 for a URI longer than [`MAX_URI_BYTES`], 431 for headers
/// larger than [`MAX_HEADER_BYTES`], both with the JSON error body.
pub async fn protocol_limits(request: Request, next: Next) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "invalid_request",
            format!("the request URI is {uri} bytes; the limit is {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            format!(
                "the request headers are {headers} bytes; the limit is {MAX_HEADER_BYTES} bytes"
            ),
        )
        .into_response();
    }
    next.run(request).await
}
