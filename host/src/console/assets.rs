//! The console's stylesheet, script and icon, embedded in the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet: layout, light and dark colours (`prefers-color-scheme`).
const CSS: &str = include_str!("assets/console.css");
/// The script: confirmations, JSON fields checked before sending, the upload
/// with progress, and the output stream of a running run.
const JS: &str = include_str!("assets/console.js");
/// The icon (an "A" on the console's blue), for tabs and bookmarks.
const FAVICON: &str = include_str!("assets/favicon.svg");

/// `GET /console/assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => {
            return super::layout::error_page(
                StatusCode::NOT_FOUND,
                &format!("no console asset `{name}`"),
            );
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated each time: a new binary serves new assets at the same URL.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /favicon.ico`: the icon where browsers and bookmark tools look by
/// default (as SVG, which they take whatever the name says).
pub async fn favicon() -> Response {
    asset(Path("favicon.svg".to_owned())).await
}
