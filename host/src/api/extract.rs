//! Extractors whose rejections are our JSON errors, with messages that name
//! the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::MAX_JSON_BODY_BYTES;
use super::error::ApiError;
use super::strict::Strict;
use crate::domain::ids::AppId;
use crate::domain::json;

/// A JSON request body (the edge has checked its Content-Type, see
/// [`crate::edge::guard`]); unknown fields are refused by the target types.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match optional_json(request, state).await? {
            Some(value) => Ok(JsonBody(value)),
            None => Err(ApiError::invalid(
                "the request body is empty: send a JSON object",
            )),
        }
    }
}

/// A JSON request body that may be absent: `None` for an empty (or
/// whitespace-only) body, else what [`JsonBody`] would parse.
pub async fn optional_json<T: DeserializeOwned, S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let bytes = body_bytes(request, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the JSON body is larger than the limit of {MAX_JSON_BODY_BYTES} bytes"
            ))
        } else {
            e
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_body(&bytes).map(Some)
}

/// Parses a JSON body under the host's JSON rule ([`crate::domain::json`]):
/// at most [`MAX_DEPTH`](json::MAX_DEPTH) levels deep, one value with nothing
/// after it, structs from objects only ([`Strict`]), unknown fields refused by
/// the target types, numbers kept exactly as sent. Each refusal is a 400
/// naming the offending field where there is one.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    json::check_depth(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(Strict(&mut deserializer)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::invalid(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::invalid(format!("invalid JSON body at `{path}`: {}", e.inner()))
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::invalid(format!(
            "invalid JSON body: {e} (send exactly one JSON value)"
        ))
    })?;
    Ok(value)
}

/// The raw body, with the body limit turned into a 413.
pub async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is larger than this endpoint accepts")
            } else {
                ApiError::invalid(format!(
                    "cannot read the request body: {}",
                    rejection.body_text()
                ))
            }
        })
}

/// Query parameters; unknown ones are refused by the target types.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::invalid(format!("invalid query string: {detail}"))
            })
    }
}

/// Parses an app id from the path: 400 if malformed.
pub fn app_id(raw: &str) -> Result<AppId, ApiError> {
    raw.parse()
        .map_err(|e: crate::domain::ids::IdError| ApiError::invalid(e.to_string()))
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|rejection| {
                ApiError::invalid(format!("invalid path: {}", rejection.body_text()))
            })
    }
}
