//! Host calls: what a run asked of the host outside its sandbox (an outbound
//! HTTP request, a secret read), one record each, kept on the run as
//! `host_calls`.

use serde::{Deserialize, Serialize};

/// Most host calls recorded per run; later ones still happen, and the run
/// says `host_calls_truncated: true`.
pub const MAX_HOST_CALLS: usize = 100;

/// Most of those records that are secret reads, so that reads (in a loop,
/// or of made-up names) never crowd out the record of HTTP requests: at
/// least `MAX_HOST_CALLS - MAX_SECRET_READ_RECORDS` requests are always
/// recorded. A read of the same name with the same outcome as one already
/// recorded is not recorded again.
pub const MAX_SECRET_READ_RECORDS: usize = 32;

/// What kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostCallKind {
    /// An outbound HTTP request (`wasi:http`).
    Http,
    /// A secret read (`secrets.get`).
    Secret,
}

/// One host call of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostCall {
    /// `http` or `secret`.
    pub kind: HostCallKind,
    /// HTTP: the method and the URL without its query string or fragment
    /// (`POST https://hooks.example.com/services/T0`); secret: its name.
    /// Never a secret's value.
    #[schema(example = "POST https://hooks.example.com/services/T0")]
    pub target: String,
    /// HTTP: the response's status code, when one arrived.
    pub status: Option<u16>,
    /// From the call to its answer; for HTTP, to the end of the response
    /// body when the workflow read it to the end (milliseconds).
    pub duration_ms: u64,
    /// Bytes of request body sent.
    pub bytes_out: u64,
    /// Bytes of response body received.
    pub bytes_in: u64,
    /// Why the call failed or was refused (e.g. a host not allowed, a
    /// private address, a limit).
    pub error: Option<String>,
}

impl HostCall {
    /// A call of `kind` to `target`, not answered yet.
    pub fn new(kind: HostCallKind, target: impl Into<String>) -> Self {
        HostCall {
            kind,
            target: target.into(),
            status: None,
            duration_ms: 0,
            bytes_out: 0,
            bytes_in: 0,
            error: None,
        }
    }

    /// A secret read of `name`: `error` says why it was refused, if it was.
    pub fn secret(name: &str, error: Option<String>) -> Self {
        HostCall {
            error,
            ..HostCall::new(HostCallKind::Secret, name)
        }
    }
}

/// `METHOD scheme://authority/path` for a record: the query string and
/// fragment are dropped (they often carry tokens), and so is any user
/// information.
pub fn http_target(method: &str, scheme: &str, authority: &str, path: &str) -> String {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    format!("{method} {scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets_drop_query_fragment_and_user_information() {
        assert_eq!(
            http_target(
                "POST",
                "https",
                "hooks.example.com",
                "/services/T0?token=abc#x"
            ),
            "POST https://hooks.example.com/services/T0"
        );
        assert_eq!(
            http_target("GET", "http", "user:pw@127.0.0.1:9000", ""),
            "GET http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn records_serialize_with_every_field() {
        let call = HostCall::secret("SLACK_WEBHOOK", None);
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            serde_json::json!({
                "kind": "secret", "target": "SLACK_WEBHOOK", "status": null, "duration_ms": 0,
                "bytes_out": 0, "bytes_in": 0, "error": null,
            })
        );
    }
}
