//! JSON errors: `{"error": {"code", "message"}}` with the matching status.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::ServiceError;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request` (400, and 405 for a method a path does not have),
    /// `unauthorized` (401: no key, or an unknown, revoked or expired one),
    /// `forbidden` (403: the key's app or role does not allow it, or a
    /// cross-origin change), `not_found` (404), `request_timeout` (408),
    /// `conflict` (409), `payload_too_large` (413), `unsupported_media_type`
    /// (415), `misdirected_request` (421: a `Host` not served here),
    /// `unprocessable` (422), `too_many_requests` (429, with `Retry-After`),
    /// `internal` (500) or `unavailable` (503: shutting down, or busy, with
    /// `Retry-After`; or `/readyz` finds the host not ready).
    #[schema(example = "invalid_request")]
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

/// The message of an error response, kept in the response's extensions so
/// the request log can say why a request was refused.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 401 `unauthorized`, with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            headers: vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        }
    }

    /// A 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 408 `request_timeout`: the request did not arrive in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    /// A 415 `unsupported_media_type`: the body is not of the type the route takes.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// A 421 `misdirected_request`: a `Host` this server does not answer for.
    pub fn misdirected(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            message,
        )
    }

    /// An error with this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with a header added to its answer.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 429 `too_many_requests`.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_requests",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 503 `unavailable` (the host is shutting down, or not ready).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The sentence for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A 405 for a path that exists without this method.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "invalid_request",
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let (status, code) = match &error {
            ServiceError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ServiceError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ServiceError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ServiceError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServiceError::StoreUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        let headers = match &error {
            ServiceError::Busy {
                retry_after_secs, ..
            } => vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))],
            _ => Vec::new(),
        };
        ApiError {
            status,
            code,
            message: error.to_string(),
            headers,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = ErrorMessage(self.message.clone());
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response.extensions_mut().insert(message);
        response
    }
}
