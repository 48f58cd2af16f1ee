//! Outbound HTTP from a workflow: a small blocking client over `wasi:http`
//! (through the [`wasip2`] bindings).
//!
//! ```no_run
//! use automata_guest::{http, json};
//!
//! # fn run() -> Result<(), http::Error> {
//! let status = http::get("https://api.example.com/status")?.json()?;
//! let response = http::post("https://hooks.example.com/services/T0")
//!     .header("x-team", "ops")
//!     .json(&json!({ "text": "Deploy finished" }))
//!     .send()?;
//! if !response.is_success() {
//!     println!("the hook answered {}", response.status);
//! }
//! # let _ = status;
//! # Ok(())
//! # }
//! ```
//!
//! The host sends a request only to a host the automation grants in
//! `capabilities.http.allowed_hosts` (`automata create automation
//! --allow-host hooks.example.com …`); otherwise [`Request::send`] fails
//! with an [`Error`] naming the host and the entry that would allow it, and
//! the workflow can handle it or fail. Loopback and private addresses are
//! refused unless the operator allows them. Each request is bounded by the
//! run's limits (`http_requests`, `http_timeout_ms`, `http_response_bytes`,
//! `http_total_bytes`) and recorded on the run (`host_calls`).
//!
//! Response bodies are read whole into memory; a body past
//! `http_response_bytes` fails the request.

use std::fmt;

use serde_json::Value;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// Why a request failed: refused by the host, a network or protocol error,
/// or a response that is not what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    fn code(code: &ErrorCode) -> Self {
        match code {
            ErrorCode::InternalError(Some(message)) => Error::new(message.clone()),
            other => Error::new(format!("{other:?}")),
        }
    }

    /// The message, e.g. `https://api.example.com: host not allowed; add
    /// "api.example.com" to capabilities.http.allowed_hosts`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A `GET` of `url`, sent.
pub fn get(url: &str) -> Result<Response, Error> {
    request("GET", url).send()
}

/// A `POST` to `url`, to give a body and send.
pub fn post(url: &str) -> Request {
    request("POST", url)
}

/// A `PUT` to `url`, to give a body and send.
pub fn put(url: &str) -> Request {
    request("PUT", url)
}

/// A `DELETE` of `url`, to send.
pub fn delete(url: &str) -> Request {
    request("DELETE", url)
}

/// A request with any `method` (e.g. `PATCH`) to `url`.
pub fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// A request being built; [`send`](Self::send) sends it and waits for the
/// whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// Adds a header (repeat a name for several values).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `value` as the JSON body, with `content-type:
    /// application/json`.
    pub fn json(mut self, value: &Value) -> Self {
        self.body = value.to_string().into_bytes();
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        self.header("content-type", "application/json")
    }

    /// Sends `bytes` as the body (set a `content-type` with
    /// [`header`](Self::header)).
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = bytes.into();
        self
    }

    /// Sends the request and reads the whole response. An HTTP error status
    /// (4xx, 5xx) is a [`Response`] too: check
    /// [`is_success`](Response::is_success).
    pub fn send(self) -> Result<Response, Error> {
        let url = Url::parse(&self.url)?;
        let headers = Fields::new();
        let has = |wanted: &str| {
            self.headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
        };
        // A length rather than a chunked body (some servers refuse those),
        // and a user agent (some APIs refuse requests without one).
        let mut defaults = vec![("user-agent", USER_AGENT.to_owned())];
        if !self.body.is_empty() {
            defaults.push(("content-length", self.body.len().to_string()));
        }
        for (name, value) in defaults.iter().filter(|(name, _)| !has(name)) {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| Error::new(format!("header `{name}` is not allowed: {e:?}")))?;
        }
        for (name, value) in &self.headers {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| Error::new(format!("header `{name}` is not allowed: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| Error::new(format!("invalid {what} in `{}`", self.url));
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&url.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| invalid("path"))?;
        let body = request
            .body()
            .map_err(|()| Error::new("the request body was already taken"))?;
        let pending = outgoing_handler::handle(request, None).map_err(|e| Error::code(&e))?;
        let sent = write_body(&body, &self.body)
            .and_then(|()| OutgoingBody::finish(body, None).map_err(|e| Error::code(&e)));

        let response = loop {
            match pending.get() {
                Some(result) => break result,
                None => pending.subscribe().block(),
            }
        };
        let response = response.map_err(|()| Error::new("the response was already taken"));
        if let Err(error) = sent {
            // The host refuses a request (a host not granted, a limit) by
            // failing its response; the body stream then only says it
            // closed. The response's error says why.
            return Err(match response {
                Ok(Err(code)) => Error::code(&code),
                _ => error,
            });
        }
        let response = response?.map_err(|e| Error::code(&e))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::new("the response body was already taken"))?;
        let body = read_body(&incoming)?;
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// The `user-agent` of a workflow's requests unless it sets its own.
const USER_AGENT: &str = concat!("automata-workflow/", env!("CARGO_PKG_VERSION"));

/// Writes `bytes` to an outgoing body, at most 4096 bytes a call (the most
/// `blocking-write-and-flush` takes).
fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    let stream = body
        .write()
        .map_err(|()| Error::new("the request body stream was already taken"))?;
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(stream_error)?;
    }
    Ok(())
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::new("the response body stream was already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(error) => return Err(stream_error(error)),
        }
    }
}

fn stream_error(error: StreamError) -> Error {
    match error {
        StreamError::Closed => Error::new("the connection closed"),
        StreamError::LastOperationFailed(error) => {
            match wasip2::http::types::http_error_code(&error) {
                Some(code) => Error::code(&code),
                None => Error::new(error.to_debug_string()),
            }
        }
    }
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body's bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::new(format!("the response body is not UTF-8 text: {e}")))
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::new(format!("the response body is not JSON: {e}")))
    }
}

/// The parts of an `http(s)://authority/path?query` URL a request needs.
struct Url {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::new(format!("`{url}` is not an http or https URL")))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(Error::new(format!("`{url}`: only http and https URLs"))),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(Error::new(format!("`{url}` names no host")));
        }
        let path_with_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Url {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_a_request_needs() {
        let url = Url::parse("https://hooks.example.com/services/T0?x=1#frag").unwrap();
        assert!(matches!(url.scheme, Scheme::Https));
        assert_eq!(url.authority, "hooks.example.com");
        assert_eq!(url.path_with_query, "/services/T0?x=1");
        let bare = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(bare.authority, "127.0.0.1:9000");
        assert_eq!(bare.path_with_query, "/");
        assert_eq!(Url::parse("http://h?q=1").unwrap().path_with_query, "/?q=1");
        assert!(Url::parse("ftp://example.com").is_err());
        assert!(Url::parse("example.com/x").is_err());
        assert!(Url::parse("https:///x").is_err());
    }

    #[test]
    fn json_bodies_set_the_content_type_once() {
        let request = post("http://h/")
            .header("Content-Type", "text/plain")
            .json(&serde_json::json!({"a": 1}));
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(
            request.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
    }
}
