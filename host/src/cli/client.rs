//! The CLI's HTTP client: connection settings, requests to one app's API and
//! the server's errors turned into messages a person can act on.
//!
//! Responses are kept as `serde_json::Value` so the CLI shows whatever the
//! server sends, including fields newer than this client.

use std::time::Duration;

use clap::Args;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use super::output::{Format, Printer};
use crate::domain::ids::AppId;

/// Where `automata serve` listens unless told otherwise.
const DEFAULT_URL: &str = "http://127.0.0.1:7070";
/// A PEM file of extra CA certificates to trust for https:// servers.
const CA_CERT_ENV: &str = "AUTOMATA_CA_CERT";

/// Where the server is, which app to act on, how to authenticate and how to
/// print. Flags win over the environment.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The Automata server's base URL.
    #[arg(
        long,
        env = "AUTOMATA_URL",
        default_value = DEFAULT_URL,
        value_parser = parse_base_url,
        global = true,
        help_heading = "Global options",
        value_name = "URL"
    )]
    pub url: Url,
    /// The app (namespace) to act on: 1–64 characters of `A-Z a-z 0-9 _ -`.
    #[arg(
        long,
        env = "AUTOMATA_APP",
        default_value = "default",
        value_parser = parse_app_id,
        global = true,
        help_heading = "Global options",
        value_name = "APP_ID"
    )]
    pub app: String,
    /// Bearer token sent with every request, if the server wants one.
    #[arg(
        long,
        env = "AUTOMATA_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Global options",
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// How to print results: aligned text for people or the server's JSON.
    #[arg(
        long,
        short = 'o',
        value_enum,
        default_value_t = Format::Table,
        global = true,
        help_heading = "Global options"
    )]
    pub output: Format,
}

impl Connection {
    /// A client for this connection's app and a printer in its format.
    pub fn open(&self) -> anyhow::Result<(Api, Printer)> {
        Ok((Api::new(self)?, Printer::new(self.output)))
    }
}

fn parse_base_url(text: &str) -> Result<Url, String> {
    let url =
        Url::parse(text).map_err(|e| format!("not a URL ({e}), e.g. http://127.0.0.1:7070"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err("expected an http:// or https:// URL, e.g. http://127.0.0.1:7070".into()),
    }
}

/// The server's own rule ([`AppId`]), checked before anything is sent.
fn parse_app_id(text: &str) -> Result<String, String> {
    text.parse::<AppId>()
        .map(|app| app.to_string())
        .map_err(|e| e.to_string())
}

/// Why a request did not give the answer the command wanted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answered at the configured URL.
    #[error(
        "cannot reach the Automata server at {url}: {reason} \
         (is `automata serve` running? set --url or AUTOMATA_URL)"
    )]
    Unreachable { url: String, reason: String },
    /// The server answered with its JSON error.
    #[error("{message}")]
    Server {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The server answered with something that is not our API's JSON.
    #[error("unexpected response from {url} (HTTP {status}): {body}")]
    Unexpected {
        url: String,
        status: StatusCode,
        body: String,
    },
    /// The connection broke or timed out after it was made.
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
}

impl ApiError {
    /// A 400 about a body field, reworded for the command whose flags set
    /// the fields ([`in_flag_terms`](super::args::in_flag_terms)).
    pub fn in_flag_terms(self) -> ApiError {
        match self {
            ApiError::Server {
                status,
                code,
                message,
            } if status == StatusCode::BAD_REQUEST => ApiError::Server {
                status,
                code,
                message: super::args::in_flag_terms(&message),
            },
            other => other,
        }
    }
}

/// The HTTP API of one app on one server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    app: String,
    token: Option<String>,
}

impl Api {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        // No request is a long poll, so a server silent for a minute is stuck:
        // say so instead of hanging the terminal.
        // rustls (no OpenSSL) with the system's roots, plus
        // AUTOMATA_CA_CERT's for a server with its own CA.
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("automata-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = std::env::var_os(CA_CERT_ENV) {
            let pem = std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!("cannot read {CA_CERT_ENV} ({}): {e}", path.display())
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build()?;
        Ok(Self {
            http,
            base: connection.url.clone(),
            app: connection.app.clone(),
            token: connection.token.clone(),
        })
    }

    /// The server's base URL as people write it (no trailing slash).
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    /// `base/apps/<app>/<segments…>`, each segment percent-encoded.
    pub fn app_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("apps")
                .push(&self.app)
                .extend(segments);
        }
        url
    }

    /// `base/<segments…>` (outside any app: `/apps`, `/apps/<id>`), each
    /// segment percent-encoded.
    pub fn root_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends `method` to `url` with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.send(with_json(self.request(method, url), body)).await
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        let mut url = self.app_url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(self.request(Method::GET, url)).await
    }

    /// Opens a Server-Sent Events stream: the response, once its status is
    /// a success (an error status is read and reported as usual). The read
    /// timeout still applies between chunks; the server's keep-alive
    /// comments arrive well within it.
    pub async fn events(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, ApiError> {
        let mut url = self.app_url(segments);
        url.query_pairs_mut().extend_pairs(query);
        let request = self.request_accepting(Method::GET, url, "text/event-stream");
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Err(decode(status, &url, &body)
            .err()
            .unwrap_or_else(|| unexpected(status, &url, &body)))
    }

    /// Whether `error` means the server could not be reached or the
    /// connection broke (worth reconnecting), not that it refused.
    pub fn is_connection_error(error: &ApiError) -> bool {
        matches!(
            error,
            ApiError::Unreachable { .. } | ApiError::Transport { .. }
        )
    }

    pub async fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Value, ApiError> {
        Ok(self.post_with_headers(segments, body).await?.0)
    }

    /// Posts and also returns the response headers (e.g. `idempotent-replayed`).
    pub async fn post_with_headers(
        &self,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<(Value, HeaderMap), ApiError> {
        let request = self.request(Method::POST, self.app_url(segments));
        self.send_with_headers(with_json(request, body)).await
    }

    pub async fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        let request = self.request(Method::PATCH, self.app_url(segments));
        self.send(with_json(request, Some(body))).await
    }

    /// Deletes; the server answers 204 with no body, which becomes `null`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.send(self.request(Method::DELETE, self.app_url(segments)))
            .await
    }

    /// Posts raw bytes with a content type (component uploads).
    pub async fn post_body(
        &self,
        url: Url,
        content_type: &str,
        length: u64,
        body: reqwest::Body,
    ) -> Result<Value, ApiError> {
        let request = self
            .request(Method::POST, url)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, length)
            .body(body);
        self.send(request).await
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.request_accepting(method, url, "application/json")
    }

    fn request_accepting(&self, method: Method, url: Url, accept: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header(header::ACCEPT, accept);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, ApiError> {
        Ok(self.send_with_headers(request).await?.0)
    }

    async fn send_with_headers(
        &self,
        request: RequestBuilder,
    ) -> Result<(Value, HeaderMap), ApiError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let url = response.url().to_string();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok((decode(status, &url, &body)?, headers))
    }

    pub fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        let reason = root_cause(error);
        if error.is_connect() {
            ApiError::Unreachable {
                url: self.base_url(),
                reason,
            }
        } else {
            let url = error.url().map_or_else(|| self.base_url(), Url::to_string);
            ApiError::Transport { url, reason }
        }
    }
}

fn with_json(request: RequestBuilder, body: Option<&Value>) -> RequestBuilder {
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

/// The innermost cause, e.g. "Connection refused (os error 111)", not
/// reqwest's layered "error sending request for url (…)".
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    if error.is_timeout() {
        format!("timed out ({cause})")
    } else {
        cause.to_string()
    }
}

/// Turns a response into the JSON it carries or the error it reports.
fn decode(status: StatusCode, url: &str, body: &[u8]) -> Result<Value, ApiError> {
    let json: Option<Value> = if body.is_empty() {
        Some(Value::Null)
    } else {
        serde_json::from_slice(body).ok()
    };
    if status.is_success() {
        return json.ok_or_else(|| unexpected(status, url, body));
    }
    let error = json.as_ref().and_then(|v| v.get("error"));
    match (
        error.and_then(|e| e.get("message")).and_then(Value::as_str),
        error.and_then(|e| e.get("code")).and_then(Value::as_str),
    ) {
        (Some(message), code) => Err(ApiError::Server {
            status,
            code: code.unwrap_or_default().to_owned(),
            message: if status == StatusCode::UNAUTHORIZED {
                // The server speaks in HTTP headers; say what to do in CLI terms.
                format!("{message} ({MISSING_KEY_HINT})")
            } else {
                message.to_owned()
            },
        }),
        (None, _) => Err(unexpected(status, url, body)),
    }
}

/// What a 401 means for a CLI user: which flag or variable carries the key,
/// and where a new server put its first one.
const MISSING_KEY_HINT: &str = "give an API key with --token or AUTOMATA_TOKEN; a new server \
     writes its first admin key to <data-dir>/admin-token";

fn unexpected(status: StatusCode, url: &str, body: &[u8]) -> ApiError {
    const SHOWN: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let body = match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    };
    ApiError::Unexpected {
        url: url.to_owned(),
        status,
        body,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(url: &str, app: &str) -> Api {
        Api::new(&Connection {
            url: parse_base_url(url).unwrap(),
            app: app.into(),
            token: None,
            output: Format::Table,
        })
        .unwrap()
    }

    #[test]
    fn app_urls_join_the_base_path_and_encode_segments() {
        let api = api("http://127.0.0.1:7070", "default");
        assert_eq!(
            api.app_url(&["automations", "aut_1", "runs"]).as_str(),
            "http://127.0.0.1:7070/apps/default/automations/aut_1/runs"
        );
        assert_eq!(
            api.app_url(&["automations", "a key/with?odd#chars"])
                .as_str(),
            "http://127.0.0.1:7070/apps/default/automations/a%20key%2Fwith%3Fodd%23chars"
        );
        let behind_prefix = super::tests::api("http://ops.example/automata/", "team-a");
        assert_eq!(
            behind_prefix.app_url(&["configs"]).as_str(),
            "http://ops.example/automata/apps/team-a/configs"
        );
        assert_eq!(behind_prefix.base_url(), "http://ops.example/automata");
    }

    #[test]
    fn base_urls_must_be_http_or_https() {
        assert!(parse_base_url("http://localhost:7070").is_ok());
        assert!(parse_base_url("https://automata.example.com/").is_ok());
        assert!(parse_base_url("localhost:7070").is_err());
        assert!(parse_base_url("ftp://host/").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn the_default_url_is_where_serve_listens() {
        assert_eq!(
            DEFAULT_URL,
            format!("http://{}", crate::server::DEFAULT_LISTEN)
        );
    }

    #[test]
    fn app_ids_follow_the_server_rule() {
        assert!(parse_app_id("default").is_ok());
        assert!(parse_app_id("Team_1-a").is_ok());
        assert!(parse_app_id(&"a".repeat(64)).is_ok());
        assert!(parse_app_id(&"a".repeat(65)).is_err());
        assert!(parse_app_id("").is_err());
        assert!(parse_app_id("team a").is_err());
        assert!(parse_app_id("tëam").is_err());
    }

    #[test]
    fn server_errors_carry_the_servers_message() {
        let body = json!({"error": {"code": "not_found", "message": "automation aut_x not found"}});
        let error = decode(StatusCode::NOT_FOUND, "u", body.to_string().as_bytes()).unwrap_err();
        assert_eq!(error.to_string(), "automation aut_x not found");
        assert!(matches!(error, ApiError::Server { code, .. } if code == "not_found"));
    }

    #[test]
    fn a_missing_key_is_explained_in_cli_terms() {
        let body = json!({"error": {"code": "unauthorized", "message": "this endpoint needs an API key: send `Authorization: Bearer <key>`"}});
        let error = decode(StatusCode::UNAUTHORIZED, "u", body.to_string().as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("this endpoint needs an API key"),
            "{message}"
        );
        assert!(message.contains("--token or AUTOMATA_TOKEN"), "{message}");
        assert!(message.contains("<data-dir>/admin-token"), "{message}");
    }

    #[test]
    fn non_api_answers_are_reported_with_status_and_body() {
        let error = decode(StatusCode::METHOD_NOT_ALLOWED, "http://h/x", b"nope").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected response from http://h/x (HTTP 405 Method Not Allowed): nope"
        );
        let error = decode(StatusCode::OK, "http://h/x", b"<html>").unwrap_err();
        assert!(error.to_string().contains("<html>"));
    }

    #[test]
    fn empty_success_bodies_are_null() {
        assert_eq!(
            decode(StatusCode::NO_CONTENT, "u", b"").unwrap(),
            Value::Null
        );
        assert_eq!(
            decode(StatusCode::OK, "u", br#"{"data":[]}"#).unwrap(),
            json!({"data": []})
        );
    }

    /// Answers one request with `{"data": []}` and hands back what was sent.
    fn one_shot_server() -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).unwrap();
                request.extend_from_slice(&buffer[..n]);
            }
            let body = r#"{"data":[]}"#;
            write!(
                socket,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            String::from_utf8(request).unwrap()
        });
        (url, handle)
    }

    #[tokio::test]
    async fn tokens_are_sent_as_bearer_credentials() {
        let (url, server) = one_shot_server();
        let mut with_token = api(&url, "team-a");
        with_token.token = Some("s3cret".into());
        let query = [("status", "failed".to_owned())];
        let list = with_token
            .get(&["automations", "aut_1", "runs"], &query)
            .await
            .unwrap();
        assert_eq!(list, json!({"data": []}));
        let request = server.join().unwrap().to_lowercase();
        assert!(
            request.starts_with("get /apps/team-a/automations/aut_1/runs?status=failed http/1.1"),
            "{request}"
        );
        assert!(
            request.contains("authorization: bearer s3cret"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn no_token_means_no_authorization_header() {
        let (url, server) = one_shot_server();
        api(&url, "default").get(&["configs"], &[]).await.unwrap();
        assert!(
            !server
                .join()
                .unwrap()
                .to_lowercase()
                .contains("authorization")
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_unreachable_naming_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = api(&url, "default")
            .get(&["automations"], &[])
            .await
            .unwrap_err();
        assert!(matches!(error, ApiError::Unreachable { .. }), "{error:?}");
        assert!(error.to_string().contains(&url), "{error}");
    }
}
