//! The control plane over HTTP: a real server on a loopback port, the example
//! components uploaded, automations through their lifecycle, runs paged, and
//! everything still there after a restart.

use std::path::Path;
use std::sync::Arc;

use automata::domain::automation::Automation;
use automata::domain::ids::{AppId, RunId};
use automata::domain::retention::RetentionPolicy;
use automata::domain::run::{Run, RunResult, RunStatus};
use automata::domain::workflow::TriggerInput;
use automata::retention::RetentionConfig;
use automata::service::{DEFAULT_MAX_CONFIG_BYTES, Service, ServiceSettings};
use automata::store::{RecordKind, SledStore, StoreOptions};
use automata_e2e::{ADMIN_TOKEN, guest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod auth;
mod capabilities;
mod console;
mod edge;
mod secrets;

use crate::common::{self, InProcessServer};

/// A server running in this process on 127.0.0.1:0, with a client.
struct TestServer {
    base: String,
    client: reqwest::Client,
    service: Arc<Service>,
    server: InProcessServer,
}

impl TestServer {
    async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, DEFAULT_MAX_CONFIG_BYTES).await
    }

    async fn start_with(data_dir: &Path, max_config_bytes: usize) -> Self {
        let settings = ServiceSettings {
            max_config_bytes,
            ..ServiceSettings::default()
        };
        Self::start_settings(data_dir, settings).await
    }

    async fn start_settings(data_dir: &Path, settings: ServiceSettings) -> Self {
        let server = InProcessServer::start(data_dir, settings, Default::default()).await;
        Self::around(server)
    }

    /// A server as `config` says.
    async fn start_config(config: automata::server::ServerConfig) -> Self {
        Self::around(InProcessServer::start_config(config).await)
    }

    fn around(server: InProcessServer) -> Self {
        TestServer {
            base: server.base.clone(),
            client: common::admin_client(),
            service: Arc::clone(&server.service),
            server,
        }
    }

    /// Stops the server and waits until it has released the data directory.
    async fn stop(self) {
        drop(self.service);
        self.server.stop().await;
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn action(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path, None).await
    }

    async fn upload_raw(
        &self,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn upload(&self, name: &str) -> Value {
        let (status, config) = self
            .upload_raw("/apps/default/configs", "application/wasm", guest(name))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{config}");
        config
    }

    async fn create(&self, body: Value) -> Value {
        let (status, automation) = self.post("/apps/default/automations", body).await;
        assert_eq!(status, StatusCode::CREATED, "{automation}");
        automation
    }
}

/// Asserts an error response: status, code, and words in the message.
fn assert_error(response: &(StatusCode, Value), status: StatusCode, code: &str, words: &[&str]) {
    let (actual, body) = response;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    for word in words {
        assert!(
            message.contains(word),
            "`{message}` should mention `{word}`"
        );
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_each_example_and_stores_the_same_bytes_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    for (name, display, trigger) in [
        (
            "welcome-new-members",
            "Welcome New Members",
            "thread.member_joined",
        ),
        ("daily-digest", "Daily Digest", "workflow.scheduled"),
        (
            "ingestion-failure-alert",
            "Ingestion Failure Alert",
            "context.ingestion.failed",
        ),
    ] {
        let config = server.upload(name).await;
        assert!(id(&config).starts_with("cfg_"), "{config}");
        assert_eq!(id(&config).len(), 30);
        assert_eq!(config["name"], display, "the name defaults to the graph's");
        assert_eq!(config["graph"]["triggers"], json!([trigger]));
        assert!(!config["graph"]["steps"].as_array().unwrap().is_empty());
        assert_eq!(config["size"], guest(name).len());
        assert!(config["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(config["created_at"].as_str().unwrap().ends_with('Z'));
        let (_, mut shown) = server
            .get(&format!("/apps/default/configs/{}", id(&config)))
            .await;
        assert_eq!(shown["used_by"], json!([]), "no automation uses it yet");
        shown.as_object_mut().unwrap().remove("used_by");
        assert_eq!(shown, config);
    }

    // The same bytes again under the same name: the existing config, 200.
    let (status, again) = server
        .upload_raw(
            "/apps/default/configs",
            "application/wasm",
            guest("daily-digest"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut again = again;
    let message = again.as_object_mut().unwrap().remove("message").unwrap();
    assert_eq!(
        message,
        format!(
            "already uploaded as {} (Daily Digest); nothing was stored",
            id(&again)
        )
    );
    let (_, list) = server.get("/apps/default/configs").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert!(list["data"].as_array().unwrap().contains(&again));

    // Under another name (query or header): a new config sharing the digest.
    let (status, renamed) = server
        .upload_raw(
            "/apps/default/configs?name=digest-v2",
            "application/wasm",
            guest("daily-digest"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(renamed["name"], "digest-v2");
    assert_eq!(renamed["digest"], again["digest"]);
    assert_ne!(id(&renamed), id(&again));
    let response = server
        .client
        .post(format!("{}/apps/default/configs", server.base))
        .header("content-type", "application/wasm")
        .header("x-config-name", "from header")
        .body(guest("daily-digest"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["name"],
        "from header"
    );

    // Configs are per app.
    let (status, _) = server.post("/apps", json!({"id": "other-app"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, other) = server.get("/apps/other-app/configs").await;
    assert_eq!(other, json!({"data": []}));
    assert_error(
        &server
            .get(&format!("/apps/other-app/configs/{}", id(&again)))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&id(&again)],
    );

    // Deleting one user of the digest keeps the others working.
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/apps/default/configs/{}", id(&renamed)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &server
            .get(&format!("/apps/default/configs/{}", id(&renamed)))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    let config = server
        .service
        .config(&"default".parse().unwrap(), &id(&again))
        .await
        .unwrap();
    assert_eq!(
        server.service.component(&config).await.unwrap(),
        guest("daily-digest")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_is_not_a_workflow_component() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), 64 * 1024).await;
    let path = "/apps/default/configs";
    assert_error(
        &server
            .upload_raw(path, "application/wasm", b"definitely not wasm".to_vec())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["not a WebAssembly component"],
    );
    let core_module = wat::parse_str("(module)").unwrap();
    assert_error(
        &server
            .upload_raw(path, "application/wasm", core_module)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["component"],
    );
    let empty_component = wat::parse_str("(component)").unwrap();
    assert_error(
        &server
            .upload_raw(path, "application/wasm", empty_component)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["automata:workflow/workflow", "graph", "run"],
    );
    assert_error(
        &server
            .upload_raw(path, "application/wasm", guest("welcome-new-members"))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["65536"],
    );
    assert_error(
        &server
            .upload_raw(path, "application/octet-stream", b"\0asm".to_vec())
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["application/wasm"],
    );
    assert_error(
        &server
            .upload_raw(path, "application/wasm", Vec::new())
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["empty"],
    );
    assert_error(
        &server
            .upload_raw(
                "/apps/bad app/configs",
                "application/wasm",
                b"\0asm".to_vec(),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["app id"],
    );
    let (_, list) = server.get(path).await;
    assert_eq!(list, json!({"data": []}), "nothing was stored");
    server.stop().await;
}

/// Sends `head` (request line and headers) and then `body` on a fresh
/// connection, and returns the first line of the answer.
async fn raw_request(base: &str, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .await
        .unwrap();
    status_line.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_a_client_still_sending_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), 64 * 1024).await;
    // Far more than the socket buffers hold, refused before (wrong
    // Content-Type, bad app id) or while (over the limit) the body is read:
    // the client gets the answer, not a reset connection.
    let big = vec![b' '; 8 * 1024 * 1024];
    let (bad_request, too_large) = (StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE);
    let cases = [
        (
            "/apps/default/configs",
            "text/plain",
            bad_request,
            "application/wasm",
        ),
        (
            "/apps/bad app/configs",
            "application/wasm",
            bad_request,
            "app id",
        ),
        (
            "/apps/default/configs",
            "application/wasm",
            too_large,
            "65536",
        ),
        (
            "/apps/default/events",
            "application/json",
            too_large,
            "1048576",
        ),
    ];
    for _ in 0..3 {
        for (path, content_type, status, word) in cases {
            let code = if status == too_large {
                "payload_too_large"
            } else {
                "invalid_request"
            };
            let response = server.upload_raw(path, content_type, big.clone()).await;
            assert_error(&response, status, code, &[word]);
        }
    }
    // A body announced larger than the server would ever drain is not waited
    // for: the answer comes at once.
    let head = &format!(
        "POST /apps/default/configs HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Authorization: Bearer {ADMIN_TOKEN}\r\n\
                Content-Type: application/wasm\r\nContent-Length: 1073741824\r\n\r\n"
    );
    assert_eq!(
        raw_request(&server.base, head, b"\0asm").await,
        "HTTP/1.1 413 Payload Too Large"
    );
    // A client waiting for `100 Continue` before sending an oversized body is
    // answered without being asked for it.
    let head = &format!(
        "POST /apps/default/configs HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Authorization: Bearer {ADMIN_TOKEN}\r\n\
                Content-Type: application/wasm\r\nContent-Length: 163840\r\n\
                Expect: 100-continue\r\n\r\n"
    );
    assert_eq!(
        raw_request(&server.base, head, b"").await,
        "HTTP/1.1 413 Payload Too Large"
    );
    let (_, list) = server.get("/apps/default/configs").await;
    assert_eq!(list, json!({"data": []}), "nothing was stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_go_through_the_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let config = server.upload("welcome-new-members").await;
    let automation = server
        .create(json!({
            "name": "Welcome New Members",
            "type": "trigger",
            "trigger": "thread.member_joined",
            "config_id": id(&config),
            "metadata": {"team": "community"},
        }))
        .await;
    let aut = id(&automation);
    assert!(aut.starts_with("aut_"));
    assert_eq!(automation["status"], "draft");
    assert_eq!(automation["metadata"], json!({"team": "community"}));
    assert!(
        automation.get("next_run_at").is_none(),
        "trigger automations have no next_run_at"
    );
    let base = format!("/apps/default/automations/{aut}");

    let refused = |action: &'static str, status: &'static str| {
        let path = format!("{base}/{action}");
        let server = &server;
        async move {
            assert_error(
                &server.action(&path).await,
                StatusCode::CONFLICT,
                "conflict",
                &[action, &format!("status is {status}")],
            );
        }
    };
    refused("pause", "draft").await;
    refused("reset", "draft").await;

    let (status, running) = server.action(&format!("{base}/activate")).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!(running["status"], "running");
    refused("activate", "running").await;
    refused("reset", "running").await;

    let (_, paused) = server.action(&format!("{base}/pause")).await;
    assert_eq!(paused["status"], "paused");
    refused("pause", "paused").await;

    let (_, running) = server.action(&format!("{base}/activate")).await;
    assert_eq!(running["status"], "running");
    let (_, paused) = server.action(&format!("{base}/pause")).await;
    assert_eq!(paused["status"], "paused");
    let (status, draft) = server.action(&format!("{base}/reset")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(draft["status"], "draft");

    // PATCH: present fields change, null clears, status is not patchable.
    let (status, patched) = server
        .call(
            Method::PATCH,
            &base,
            Some(json!({"name": "Updated Name", "description": "hi", "metadata": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Updated Name");
    assert_eq!(patched["description"], "hi");
    assert_eq!(patched["metadata"], json!({}));
    assert_eq!(patched["created_at"], automation["created_at"]);
    assert_ne!(patched["updated_at"], automation["updated_at"]);
    assert_error(
        &server
            .call(Method::PATCH, &base, Some(json!({"status": "running"})))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["status", "activate"],
    );
    assert_eq!(server.get(&base).await.1, patched);

    let (status, body) = server.call(Method::DELETE, &base, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_error(
        &server.get(&base).await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&aut],
    );
    assert_error(
        &server.call(Method::DELETE, &base, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    assert_error(
        &server.action(&format!("{base}/activate")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_needs_a_config_with_a_matching_trigger_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let welcome = server.upload("welcome-new-members").await;
    let digest = server.upload("daily-digest").await;

    let bare = server
        .create(json!({"name": "No config", "type": "trigger", "trigger": "thread.created"}))
        .await;
    assert_error(
        &server
            .action(&format!("/apps/default/automations/{}/activate", id(&bare)))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["config_id"],
    );

    let mismatched = server
        .create(json!({
            "name": "Wrong workflow", "type": "trigger", "trigger": "thread.created",
            "config_id": id(&welcome),
        }))
        .await;
    assert_error(
        &server
            .action(&format!(
                "/apps/default/automations/{}/activate",
                id(&mismatched)
            ))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["thread.created", "thread.member_joined", &id(&welcome)],
    );

    let scheduled = server
        .create(json!({
            "name": "Digest", "type": "scheduled", "schedule": "0 9 * * 1-5",
            "timezone": "Europe/Berlin", "config_id": id(&welcome), "run_as_user_id": "usr_abc123",
        }))
        .await;
    assert_eq!(
        scheduled["next_run_at"],
        Value::Null,
        "a draft has no next run"
    );
    let activate = format!("/apps/default/automations/{}/activate", id(&scheduled));
    assert_error(
        &server.action(&activate).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["workflow.scheduled"],
    );
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{}", id(&scheduled)),
            Some(json!({"config_id": id(&digest)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, running) = server.action(&activate).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let next: chrono::DateTime<chrono::FixedOffset> = running["next_run_at"]
        .as_str()
        .expect("next_run_at")
        .parse()
        .unwrap();
    assert!(next > chrono::Utc::now());
    let berlin = next.with_timezone(&"Europe/Berlin".parse::<chrono_tz::Tz>().unwrap());
    assert_eq!(berlin.format("%H:%M:%S").to_string(), "09:00:00");

    // A running automation must stay runnable through PATCH.
    assert_error(
        &server
            .call(
                Method::PATCH,
                &format!("/apps/default/automations/{}", id(&scheduled)),
                Some(json!({"config_id": id(&welcome)})),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["workflow.scheduled"],
    );
    // …and its config cannot be deleted while it runs.
    let config_path = format!("/apps/default/configs/{}", id(&digest));
    assert_error(
        &server.call(Method::DELETE, &config_path, None).await,
        StatusCode::CONFLICT,
        "conflict",
        &[&id(&scheduled)],
    );
    // …nor while it is paused (it could be activated again).
    server
        .action(&format!(
            "/apps/default/automations/{}/pause",
            id(&scheduled)
        ))
        .await;
    assert_error(
        &server.call(Method::DELETE, &config_path, None).await,
        StatusCode::CONFLICT,
        "conflict",
        &[&id(&scheduled), "paused"],
    );

    assert_error(
        &server
            .post(
                "/apps/default/automations",
                json!({"name": "x", "type": "trigger", "trigger": "thread.created",
                       "config_id": "cfg_01jdqm3k5v8x2n7w4c9b6e1f0a"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["cfg_01jdqm3k5v8x2n7w4c9b6e1f0a"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_keys_are_unique_and_lists_filter_by_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let trigger = server
        .create(json!({"name": "T", "type": "trigger", "trigger": "thread.created", "lookup_key": "onboarding"}))
        .await;
    let scheduled = server
        .create(json!({"name": "S", "type": "scheduled", "schedule": "0 0 * * *"}))
        .await;
    assert_error(
        &server
            .post(
                "/apps/default/automations",
                json!({"name": "T2", "type": "trigger", "trigger": "thread.deleted", "lookup_key": "onboarding"}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
        &["onboarding", &id(&trigger)],
    );
    assert_error(
        &server
            .call(
                Method::PATCH,
                &format!("/apps/default/automations/{}", id(&scheduled)),
                Some(json!({"lookup_key": "onboarding"})),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
        &["onboarding"],
    );
    // The same key in another app is fine.
    let (status, _) = server.post("/apps", json!({"id": "other"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server
        .post(
            "/apps/other/automations",
            json!({"name": "T", "type": "trigger", "trigger": "thread.created", "lookup_key": "onboarding"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, by_key) = server.get("/apps/default/automations/onboarding").await;
    assert_eq!(id(&by_key), id(&trigger));

    // Releasing a key lets another automation take it.
    server
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{}", id(&trigger)),
            Some(json!({"lookup_key": null})),
        )
        .await;
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{}", id(&scheduled)),
            Some(json!({"lookup_key": "onboarding"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let ids =
        |list: &Value| -> Vec<String> { list["data"].as_array().unwrap().iter().map(id).collect() };
    let (_, all) = server.get("/apps/default/automations").await;
    assert_eq!(ids(&all), [id(&trigger), id(&scheduled)]);
    let (_, triggers) = server.get("/apps/default/automations?type=trigger").await;
    assert_eq!(ids(&triggers), [id(&trigger)]);
    let (_, schedules) = server.get("/apps/default/automations?type=scheduled").await;
    assert_eq!(ids(&schedules), [id(&scheduled)]);
    assert_error(
        &server.get("/apps/default/automations?type=cron").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["cron"],
    );
    assert_error(
        &server.get("/apps/default/automations?kind=trigger").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["kind"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let create = |body: Value| server.post("/apps/default/automations", body);
    assert_error(
        &create(
            json!({"name": "x", "type": "trigger", "trigger": "thread.created", "color": "red"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["unknown field `color`"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "scheduled", "schedule": "0 25 * * *"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["schedule", "hour"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "scheduled", "schedule": "0 9 * * *", "timezone": "Mars/Base"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["timezone", "Mars/Base"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "trigger", "trigger": "thread.exploded"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["trigger", "thread.exploded"],
    );
    assert_error(
        &create(json!({"type": "trigger", "trigger": "thread.created"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["name"],
    );
    assert_error(
        &create(
            json!({"name": "x", "type": "trigger", "trigger": "thread.created", "metadata": [1]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["metadata"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "trigger", "trigger": "thread.created", "retry": {"max_attempts": 0}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["retry.max_attempts"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "trigger", "trigger": "thread.created", "limits": {"fuel": 1, "cpu": 2}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["unknown field `cpu`"],
    );
    assert_error(
        &create(json!({"name": "x", "type": "trigger", "trigger": "thread.created", "limits": {"fuel": 0}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["limits", "fuel"],
    );
    assert_error(
        &create(
            json!({"name": "x", "type": "trigger", "trigger": "thread.created",
                       "limits": {"timeout_ms": 86_400_000u64}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["timeout_ms", "maximum"],
    );
    let response = server
        .client
        .post(format!("{}/apps/default/automations", server.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let too_big = json!({"name": "x", "type": "trigger", "trigger": "thread.created",
                         "description": "d".repeat(2 * 1024 * 1024)});
    assert_error(
        &create(too_big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["JSON body", "1048576"],
    );
    let long_app = "a".repeat(65);
    assert_error(
        &server.get(&format!("/apps/{long_app}/automations")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["app id"],
    );
    assert_error(
        &server.get("/apps/d%2Eot/automations").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["app id"],
    );
    assert_error(
        &server.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
        &["/nowhere"],
    );
    assert_error(
        &server
            .call(Method::PUT, "/apps/default/automations", None)
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &["PUT"],
    );
    // The execution plane's routes answer a wrong method in JSON too.
    assert_error(
        &server.get("/apps/default/events").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &["GET", "/apps/default/events"],
    );
    // The app id is checked first on every endpoint, the run actions included.
    for action in ["cancel", "rerun"] {
        assert_error(
            &server
                .action(&format!("/apps/bad app/automations/runs/nope/{action}"))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &["app id"],
        );
    }
    let (_, list) = server.get("/apps/default/automations").await;
    assert_eq!(list, json!({"data": []}), "nothing was stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_catalogue_lists_every_spec_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, events) = server.get("/apps/default/automations/events").await;
    assert_eq!(status, StatusCode::OK);
    let events = events["data"].as_array().unwrap();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "thread.created",
            "thread.deleted",
            "thread.message_added",
            "thread.member_joined",
            "thread.member_left",
            "conversation.session_started",
            "conversation.session_completed",
            "conversation.session_ended",
            "connector.connected",
            "context.ingestion.started",
            "context.ingestion.running",
            "context.ingestion.succeeded",
            "context.ingestion.failed",
            "context.source.paused",
            "context.installation.suspended",
            "credential.created",
            "credential.updated",
            "email.received",
            "email.processed",
            "agent_session.started",
            "agent_session.stopped",
            "agent_session.event_received",
        ]
    );
    assert_eq!(
        events[0],
        json!({"name": "thread.created", "description": "A new thread was created"})
    );
    // Every catalogue event is a valid trigger.
    for name in names {
        let (status, body) = server
            .post(
                "/apps/default/automations",
                json!({"name": name, "type": "trigger", "trigger": name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.stop().await;
}

/// Stores `count` runs of `automation` through the store, as the execution
/// plane would; every third one completed, every fifth failed.
async fn insert_runs(service: &Service, app: &AppId, automation: &str, count: usize) -> Vec<Run> {
    let automation: Automation = service.automation(app, automation).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..count {
        let input = TriggerInput {
            trigger: "thread.member_joined".into(),
            payload: json!({"member": {"name": format!("member {i}")}}),
        };
        let mut run = Run::pending(service.new_run_id(), &automation, input, service.now());
        if i % 3 == 0 || i % 5 == 0 {
            run.transition(RunStatus::Running, service.now(), None)
                .unwrap();
            let result = if i % 3 == 0 {
                RunResult::Success {
                    payload: json!({"n": i}),
                    output: vec![format!("hello {i}")],
                    output_truncated: false,
                }
            } else {
                RunResult::Failure {
                    error: "Script execution timed out".into(),
                    output: vec![],
                    output_truncated: false,
                }
            };
            run.finish(result, Default::default(), service.now())
                .unwrap();
        }
        runs.push(run);
    }
    let store = Arc::clone(service.store());
    let stored = runs.clone();
    tokio::task::spawn_blocking(move || store.insert_runs(&stored))
        .await
        .unwrap()
        .unwrap();
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_newest_first_over_more_than_a_hundred_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let app: AppId = "default".parse().unwrap();
    let automation = server
        .create(json!({"name": "W", "type": "trigger", "trigger": "thread.member_joined"}))
        .await;
    let aut = id(&automation);
    let runs = insert_runs(&server.service, &app, &aut, 130).await;
    let newest_first: Vec<String> = runs.iter().rev().map(|r| r.id.to_string()).collect();
    let runs_path = format!("/apps/default/automations/{aut}/runs");

    // Default page size 50, then follow the cursor; a run inserted while
    // paging appears on no later page and shifts nothing.
    let (status, first) = server.get(&runs_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"].as_array().unwrap().len(), 50);
    let newer = insert_runs(&server.service, &app, &aut, 1).await;
    let mut seen: Vec<String> = first["data"].as_array().unwrap().iter().map(id).collect();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        let (status, page) = server.get(&format!("{runs_path}?cursor={c}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["data"].as_array().unwrap().iter().map(id));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    let (_, hundred) = server.get(&format!("{runs_path}?limit=100")).await;
    assert_eq!(hundred["data"].as_array().unwrap().len(), 100);
    assert_eq!(id(&hundred["data"][0]), newer[0].id.to_string());
    let (_, rest) = server
        .get(&format!(
            "{runs_path}?limit=100&cursor={}",
            hundred["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 31);
    assert_eq!(rest["next_cursor"], Value::Null);

    // Status filter, paged too.
    let failed: Vec<String> = runs
        .iter()
        .rev()
        .filter(|r| r.status == RunStatus::Failed)
        .map(|r| r.id.to_string())
        .collect();
    let (_, page) = server
        .get(&format!("{runs_path}?status=failed&limit=10"))
        .await;
    let mut got: Vec<String> = page["data"].as_array().unwrap().iter().map(id).collect();
    let (_, page2) = server
        .get(&format!(
            "{runs_path}?status=failed&limit=10&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    got.extend(page2["data"].as_array().unwrap().iter().map(id));
    assert_eq!(got, failed);
    assert_eq!(page2["next_cursor"], Value::Null);
    for run in page["data"].as_array().unwrap() {
        assert_eq!(run["status"], "failed");
        assert_eq!(run["result"]["error"], "Script execution timed out");
    }

    for (query, words) in [
        ("limit=101", &["limit"][..]),
        ("limit=0", &["limit"]),
        ("limit=ten", &["limit"]),
        ("status=done", &["done"]),
        ("cursor=nonsense", &["cursor"]),
        ("page=2", &["page"]),
    ] {
        assert_error(
            &server.get(&format!("{runs_path}?{query}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            words,
        );
    }

    // One run, with everything the spec and the execution plane need.
    let completed = runs
        .iter()
        .find(|r| r.status == RunStatus::Completed)
        .unwrap();
    let (status, run) = server
        .get(&format!("/apps/default/automations/runs/{}", completed.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["automation_id"], aut);
    assert_eq!(run["app_id"], "default");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["trigger"], "thread.member_joined");
    assert_eq!(run["input"]["trigger"], "thread.member_joined");
    assert_eq!(run["result"]["output"], json!(["hello 0"]));
    assert_eq!(run["result"]["payload"], json!({"n": 0}));
    assert_eq!(run["attempt"], 1);
    let history: Vec<&str> = run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "running", "completed"]);
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(run[field].as_str().unwrap().ends_with('Z'), "{field}");
    }
    assert_error(
        &server
            .get(&format!("/apps/other/automations/runs/{}", completed.id))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    assert_error(
        &server
            .get("/apps/default/automations/runs/atr_01jdqm3k5v8x2n7w4c9b6e1f0a")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    assert_error(
        &server
            .get("/apps/default/automations/aut_01jdqm3k5v8x2n7w4c9b6e1f0a/runs")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_delete_cancel_pending_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let app: AppId = "default".parse().unwrap();
    let config = server.upload("welcome-new-members").await;
    let automation = server
        .create(json!({"name": "W", "type": "trigger", "trigger": "thread.member_joined", "config_id": id(&config)}))
        .await;
    let aut = id(&automation);
    server
        .action(&format!("/apps/default/automations/{aut}/activate"))
        .await;
    let mut changes = server.service.subscribe();

    let runs = insert_runs(&server.service, &app, &aut, 2).await;
    let pending = &runs[1];
    assert_eq!(pending.status, RunStatus::Pending);
    server
        .action(&format!("/apps/default/automations/{aut}/pause"))
        .await;
    let change = changes.recv().await.unwrap();
    assert!(
        matches!(change, automata::service::AutomationChange::Saved(a) if a.status.as_str() == "paused")
    );
    let (_, run) = server
        .get(&format!("/apps/default/automations/runs/{}", pending.id))
        .await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["reason"], "automation paused");
    let (_, completed) = server
        .get(&format!("/apps/default/automations/runs/{}", runs[0].id))
        .await;
    assert_eq!(
        completed["status"], "completed",
        "finished runs are left alone"
    );

    let more = insert_runs(&server.service, &app, &aut, 2).await;
    server
        .call(
            Method::DELETE,
            &format!("/apps/default/automations/{aut}"),
            None,
        )
        .await;
    assert!(matches!(
        changes.recv().await.unwrap(),
        automata::service::AutomationChange::Deleted { .. }
    ));
    let (_, run) = server
        .get(&format!("/apps/default/automations/runs/{}", more[1].id))
        .await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["reason"], "automation deleted");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_is_still_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app: AppId = "default".parse().unwrap();
    let server = TestServer::start(dir.path()).await;
    let config = server.upload("daily-digest").await;
    let running = server
        .create(json!({
            "name": "Digest", "type": "scheduled", "schedule": "*/10 * * * * *",
            "config_id": id(&config), "lookup_key": "digest", "timezone": "America/New_York",
            "catchup": "run_all", "overlap": "queue", "max_concurrency": 2,
            "retry": {"max_attempts": 3, "retry_guest_errors": true}, "limits": {"timeout_ms": 500},
        }))
        .await;
    let (_, running) = server
        .action(&format!(
            "/apps/default/automations/{}/activate",
            id(&running)
        ))
        .await;
    let draft = server
        .create(json!({"name": "T", "type": "trigger", "trigger": "email.received"}))
        .await;
    insert_runs(&server.service, &app, &id(&draft), 120).await;
    let before = [
        server.get("/apps/default/configs").await.1,
        server.get("/apps/default/automations").await.1,
        server
            .get(&format!(
                "/apps/default/automations/{}/runs?limit=100",
                id(&draft)
            ))
            .await
            .1,
    ];
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    let after = [
        server.get("/apps/default/configs").await.1,
        server.get("/apps/default/automations").await.1,
        server
            .get(&format!(
                "/apps/default/automations/{}/runs?limit=100",
                id(&draft)
            ))
            .await
            .1,
    ];
    assert_eq!(before[0], after[0]);
    // Finished runs are unchanged; pending ones are all there too, though
    // recovery may already have queued and ended them (the draft has no
    // config, so they fail) — their history goes on from where it was.
    let (runs_before, runs_after) = (
        before[2]["data"].as_array().unwrap(),
        after[2]["data"].as_array().unwrap(),
    );
    assert_eq!(runs_before.len(), 100);
    assert_eq!(runs_before.len(), runs_after.len());
    assert_eq!(before[2]["next_cursor"], after[2]["next_cursor"]);
    for (was, is) in runs_before.iter().zip(runs_after) {
        if was["status"] == "pending" {
            assert_eq!((&was["id"], &was["input"]), (&is["id"], &is["input"]));
            let history = is["history"].as_array().unwrap();
            assert_eq!(history[0], was["history"][0], "{is}");
        } else {
            assert_eq!(was, is);
        }
    }
    let mut automations_after = after[1].clone();
    let mut automations_before = before[1].clone();
    // The two next fire times move on with the clock; everything else is
    // identical.
    for list in [&mut automations_before, &mut automations_after] {
        let running = list["data"][0].as_object_mut().unwrap();
        running.remove("next_run_at");
        running.remove("next_run_at_if_running");
    }
    assert_eq!(automations_before, automations_after);
    assert_eq!(after[1]["data"][0]["status"], "running");
    assert_eq!(after[1]["data"][0]["retry"]["max_attempts"], 3);
    assert_eq!(running["limits"]["timeout_ms"], 500);
    let (_, by_key) = server.get("/apps/default/automations/digest").await;
    assert_eq!(id(&by_key), id(&running));
    let config = server.service.config(&app, &id(&config)).await.unwrap();
    assert_eq!(
        server.service.component(&config).await.unwrap(),
        guest("daily-digest")
    );
    // New ids keep sorting after the old ones.
    let newer = insert_runs(&server.service, &app, &id(&draft), 1).await;
    let (_, page) = server
        .get(&format!(
            "/apps/default/automations/{}/runs?limit=1",
            id(&draft)
        ))
        .await;
    assert_eq!(id(&page["data"][0]), newer[0].id.to_string());
    server.stop().await;
}

/// `GET /apps/default/automations/schedule` with `query` (already encoded).
async fn preview(server: &TestServer, query: &str) -> (StatusCode, Value) {
    server
        .get(&format!("/apps/default/automations/schedule?{query}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_preview_their_next_fire_times() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // Exactly the four fields. 2026-03-27 is a Friday; Berlin is on CEST
    // from the 29th, so Monday 09:00 is 07:00Z (Python's zoneinfo agrees).
    let (status, body) = preview(
        &server,
        "expression=0%209%20*%20*%201-5&timezone=Europe/Berlin&after=2026-03-27T09:00:00Z&count=3",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "expression": "0 9 * * 1-5",
            "timezone": "Europe/Berlin",
            "description": "At 09:00, Monday through Friday, in Europe/Berlin",
            "next": ["2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z", "2026-04-01T07:00:00Z"]
        })
    );
    // Defaults: UTC, 5 times, after now; strictly after `after`.
    let (_, body) = preview(&server, "expression=*/10%20*%20*%20*%20*").await;
    assert_eq!(body["timezone"], "UTC");
    let next = body["next"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    let first: chrono::DateTime<chrono::Utc> = next[0].as_str().unwrap().parse().unwrap();
    assert!(first > chrono::Utc::now() - chrono::TimeDelta::seconds(1));
    let (_, body) = preview(
        &server,
        "expression=0%209%20*%20*%20*&after=2026-03-01T09:00:00Z&count=1",
    )
    .await;
    assert_eq!(body["next"], json!(["2026-03-02T09:00:00Z"]));
    // The zone can come from the expression; the DST gap shows as it runs.
    let (_, body) = preview(
        &server,
        "expression=CRON_TZ%3DAmerica/New_York%2030%202%20*%20*%20*&after=2026-03-07T12:00:00Z&count=2",
    )
    .await;
    assert_eq!(body["timezone"], "America/New_York");
    assert_eq!(
        body["next"],
        json!(["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
    );
    // A schedule that ends shows what is left.
    let (_, body) = preview(
        &server,
        "expression=0%200%2012%201%201%20%3F%202027-2028&after=2026-01-01T00:00:00Z&count=5",
    )
    .await;
    assert_eq!(
        body["next"],
        json!(["2027-01-01T12:00:00Z", "2028-01-01T12:00:00Z"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_previews_refuse_what_create_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // The same messages as create, for the expression and the zone.
    for (expression, timezone) in [
        ("0 25 * * *", None),
        ("0 9 * * 1-5 2027", None),
        ("0 9 * * *", Some("Mars/Olympus")),
        ("TZ=Europe/Berlin 0 9 * * *", Some("UTC")),
    ] {
        let mut body = json!({"name": "S", "type": "scheduled", "schedule": expression});
        let mut query = vec![("expression", expression)];
        if let Some(zone) = timezone {
            body["timezone"] = json!(zone);
            query.push(("timezone", zone));
        }
        let created = server.post("/apps/default/automations", body).await;
        assert_eq!(created.0, StatusCode::BAD_REQUEST, "{}", created.1);
        let url = reqwest::Url::parse_with_params(
            &format!("{}/apps/default/automations/schedule", server.base),
            &query,
        )
        .unwrap();
        let response = server.client.get(url).send().await.unwrap();
        let previewed = (response.status(), response.json::<Value>().await.unwrap());
        assert_eq!(previewed, created, "{expression}");
    }
    for (query, words) in [
        (
            "expression=*%20*%20*%20*%20*&count=0",
            &["`count`", "1 and 100"][..],
        ),
        (
            "expression=*%20*%20*%20*%20*&count=101",
            &["`count`", "101"],
        ),
        (
            "expression=*%20*%20*%20*%20*&count=many",
            &["`count`", "many"],
        ),
        (
            "expression=*%20*%20*%20*%20*&after=tomorrow",
            &["`after`", "RFC 3339"],
        ),
        ("timezone=UTC", &["expression"]),
        ("expression=*%20*%20*%20*%20*&every=5m", &["every"]),
    ] {
        assert_error(
            &preview(&server, query).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            words,
        );
    }
    // `schedule` is the preview, never an automation: not a lookup key.
    assert_error(
        &server
            .post(
                "/apps/default/automations",
                json!({"name": "S", "type": "trigger", "trigger": "thread.created", "lookup_key": "schedule"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["`schedule` is reserved"],
    );
    assert_error(
        &server
            .get("/apps/bad%20app/automations/schedule?expression=*")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["app"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_and_paused_automations_show_when_they_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let draft = server
        .create(json!({"name": "S", "type": "scheduled", "schedule": "CRON_TZ=Europe/Berlin 0 9 * * *"}))
        .await;
    // The zone came from the expression.
    assert_eq!(draft["timezone"], "Europe/Berlin");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["next_run_at"], Value::Null);
    let would: chrono::DateTime<chrono::Utc> = draft["next_run_at_if_running"]
        .as_str()
        .expect("a would-be next run")
        .parse()
        .unwrap();
    let expected = automata::domain::schedule::Schedule::parse("0 9 * * *", Some("Europe/Berlin"))
        .unwrap()
        .next_after(chrono::Utc::now())
        .unwrap();
    assert!(would <= expected && would > chrono::Utc::now(), "{would}");
    // Changing only the zone against the prefix is refused.
    assert_error(
        &server
            .call(
                Method::PATCH,
                &format!("/apps/default/automations/{}", id(&draft)),
                Some(json!({"timezone": "Asia/Tokyo"})),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["Europe/Berlin", "Asia/Tokyo"],
    );
    // A new prefixed schedule brings its zone.
    let (status, patched) = server
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{}", id(&draft)),
            Some(json!({"schedule": "TZ=Asia/Tokyo 0 9 * * *"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["timezone"], "Asia/Tokyo");
    // A schedule whose years are over shows no next run and cannot start.
    let ended = server
        .create(json!({"name": "Old", "type": "scheduled", "schedule": "0 0 12 * * ? 2020"}))
        .await;
    assert_eq!(ended["next_run_at_if_running"], Value::Null);
    assert_error(
        &server
            .action(&format!(
                "/apps/default/automations/{}/activate",
                id(&ended)
            ))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        &["0 0 12 * * ? 2020", "no fire times after now"],
    );
    // Trigger automations have neither field.
    let trigger = server
        .create(json!({"name": "T", "type": "trigger", "trigger": "thread.created"}))
        .await;
    assert!(trigger.get("next_run_at_if_running").is_none(), "{trigger}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/apps/{app_id}/automations", &["get", "post"][..]),
        (
            "/apps/{app_id}/automations/{id}",
            &["get", "patch", "delete"],
        ),
        ("/apps/{app_id}/automations/{id}/activate", &["post"]),
        ("/apps/{app_id}/automations/{id}/pause", &["post"]),
        ("/apps/{app_id}/automations/{id}/reset", &["post"]),
        ("/apps/{app_id}/automations/events", &["get"]),
        ("/apps/{app_id}/automations/schedule", &["get"]),
        ("/apps/{app_id}/automations/{id}/runs", &["get"]),
        ("/apps/{app_id}/automations/runs/{run_id}", &["get"]),
        ("/apps/{app_id}/configs", &["get", "post"]),
        ("/apps/{app_id}/configs/{id}", &["get", "delete"]),
        ("/admin/quarantine", &["get"]),
        ("/admin/quarantine/{id}", &["get", "delete"]),
        ("/admin/quarantine/{id}/bytes", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} missing"
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Automation",
        "NewAutomation",
        "AutomationPatch",
        "Run",
        "Config",
        "ErrorBody",
        "SchedulePreview",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    let upload = &paths["/apps/{app_id}/configs"]["post"]["requestBody"]["content"];
    assert!(upload.get("application/wasm").is_some(), "{upload}");
    server.stop().await;
}

/// Writes `bytes` as the stored record of `kind` at `key`, with the server
/// stopped: the store's test hook, as a torn write or a bug would leave it.
fn write_unreadable(dir: &Path, records: &[(RecordKind, String, Vec<u8>)]) {
    let store = SledStore::open(dir, &StoreOptions::default()).unwrap();
    for (kind, key, bytes) in records {
        store
            .write_raw_record(*kind, key.as_bytes(), bytes)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_unreadable_records_starts_serves_lists_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let app: AppId = "default".parse().unwrap();
    let server = TestServer::start(dir.path()).await;
    let config = server.upload("welcome-new-members").await;
    let body = |name: &str, key: &str| {
        json!({"name": name, "type": "trigger", "trigger": "thread.member_joined",
               "config_id": id(&config), "lookup_key": key})
    };
    let kept = id(&server.create(body("Kept", "kept")).await);
    let broken = id(&server.create(body("Broken", "broken")).await);
    server
        .action(&format!("/apps/default/automations/{kept}/activate"))
        .await;
    // Runs 1, 2 and 4 stay pending; 0 and 3 completed, 5 failed.
    let runs = insert_runs(&server.service, &app, &kept, 6).await;
    server.stop().await;

    let torn = |run: &Run| {
        let bytes = serde_json::to_vec(run).unwrap();
        bytes[..bytes.len() / 2].to_vec()
    };
    let garbage = b"\x00\x01 not a record".to_vec();
    write_unreadable(
        dir.path(),
        &[
            // Pending: recovery meets it on start.
            (RecordKind::Run, runs[1].id.to_string(), torn(&runs[1])),
            // Completed: only a list or a look meets it.
            (RecordKind::Run, runs[3].id.to_string(), torn(&runs[3])),
            (
                RecordKind::Automation,
                format!("default/{broken}"),
                garbage.clone(),
            ),
        ],
    );

    let server = TestServer::start(dir.path()).await;
    let (status, list) = server.get("/apps/default/automations").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("Kept")]);
    let (status, page) = server
        .get(&format!("/apps/default/automations/{kept}/runs"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<_> = [5, 4, 2, 0].map(|i| runs[i].id.to_string()).into();
    assert_eq!(listed, expected);
    let gone = server
        .get(&format!("/apps/default/automations/runs/{}", runs[3].id))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found", &["no run"]);
    let (status, paused) = server
        .action(&format!("/apps/default/automations/{kept}/pause"))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    // Recovery queued it again: the pause cancels it while pending; one that
    // already started (a loaded machine may be slow to finish it) runs to
    // its end, which is waited for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let (_, run) = server
            .get(&format!("/apps/default/automations/runs/{}", runs[4].id))
            .await;
        if run["status"] != "running" || std::time::Instant::now() > deadline {
            break run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        ["cancelled", "completed"].contains(&run["status"].as_str().unwrap()),
        "resumed by recovery, then cancelled by the pause or done: {run}"
    );
    // The broken automation's lookup key is free again.
    server.create(body("Again", "broken")).await;

    let (status, quarantine) = server.get("/admin/quarantine").await;
    assert_eq!(status, StatusCode::OK, "{quarantine}");
    assert_eq!(quarantine["total"], 3, "{quarantine}");
    let records = quarantine["data"].as_array().unwrap();
    let mut found: Vec<_> = records
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["key"].as_str().unwrap()))
        .collect();
    found.sort();
    let mut wanted = [
        ("automation", format!("default/{broken}")),
        ("run", runs[1].id.to_string()),
        ("run", runs[3].id.to_string()),
    ];
    wanted.sort();
    let wanted: Vec<_> = wanted.iter().map(|(k, key)| (*k, key.as_str())).collect();
    assert_eq!(found, wanted);
    for record in records {
        assert!(!record["error"].as_str().unwrap().is_empty(), "{record}");
        assert!(record["quarantined_at"].is_string(), "{record}");
    }
    let automation = records.iter().find(|r| r["kind"] == "automation").unwrap();
    let path = format!("/admin/quarantine/{}", automation["id"]);
    let bytes = server
        .client
        .get(format!("{}{path}/bytes", server.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), garbage.as_slice(), "kept byte for byte");
    assert_eq!(server.get(&path).await.1["size_bytes"], garbage.len());
    let (status, _) = server.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &server.get(&path).await,
        StatusCode::NOT_FOUND,
        "not_found",
        &["no quarantined record"],
    );
    assert_eq!(server.get("/admin/quarantine").await.1["total"], 2);
    assert_error(
        &server.get("/admin/quarantine?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["limit"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_compile_bound_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let settings = ServiceSettings {
        max_concurrent_compiles: 1,
        upload_compile_wait: std::time::Duration::ZERO,
        ..ServiceSettings::default()
    };
    // More uploads in progress than compiles: the compile bound answers.
    let config = automata::server::ServerConfig {
        service: settings,
        edge: automata::edge::EdgeConfig {
            max_uploads: 16,
            ..Default::default()
        },
        ..common::config(dir.path())
    };
    let server = TestServer::start_config(config).await;
    let bytes = guest("welcome-new-members");
    // The same bytes under new names: each upload compiles.
    let mut uploads = tokio::task::JoinSet::new();
    for n in 0..6 {
        let request = server
            .client
            .post(format!(
                "{}/apps/default/configs?name=copy-{n}",
                server.base
            ))
            .header("content-type", "application/wasm")
            .body(bytes.clone());
        uploads.spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status();
            (status, retry_after, response.json::<Value>().await.unwrap())
        });
    }
    let (mut created, mut busy) = (0, 0);
    while let Some(answer) = uploads.join_next().await {
        let (status, retry_after, body) = answer.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("compiling"),
                    "{body}"
                );
                assert_eq!(retry_after.unwrap(), "1");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        created >= 1 && busy >= 1,
        "{created} created, {busy} refused"
    );
    // A slot frees up when a compile ends.
    let (status, body) = server
        .upload_raw(
            "/apps/default/configs?name=later",
            "application/wasm",
            bytes,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_refusals_are_json_where_the_http_stack_lets_them_be() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let long = format!("/apps/default/automations?type={}", "t".repeat(9 * 1024));
    assert_error(
        &server.get(&long).await,
        StatusCode::URI_TOO_LONG,
        "invalid_request",
        &["URI", "8192 bytes"],
    );
    let response = server
        .client
        .get(format!("{}/apps/default/automations", server.base))
        .header("x-filler", "f".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_error(
        &(status, body),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "invalid_request",
        &["headers", "32768 bytes"],
    );
    // A request line hyper cannot parse never reaches our code: hyper
    // answers 400 itself, with no body to shape.
    let answer = raw_request(&server.base, "NOT HTTP AT ALL\r\n\r\n", b"").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (status, _) = server.get("/apps/default/automations").await;
    assert_eq!(status, StatusCode::OK, "the server is unaffected");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_are_refused_on_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let config = server.upload("welcome-new-members").await;
    let config = config["id"].as_str().unwrap().to_owned();
    server
        .create(
            json!({"name": "w", "type": "trigger", "trigger": "thread.member_joined",
                       "config_id": config, "lookup_key": "w"}),
        )
        .await;
    let run = "atr_00000000000000000000000000";
    let endpoints = [
        (Method::GET, "/openapi.json".to_owned()),
        (Method::GET, "/admin/quarantine".to_owned()),
        (Method::GET, "/apps/default/automations".to_owned()),
        (Method::POST, "/apps/default/automations".to_owned()),
        (Method::GET, "/apps/default/automations/events".to_owned()),
        (Method::GET, "/apps/default/automations/schedule".to_owned()),
        (Method::GET, "/apps/default/automations/w".to_owned()),
        (Method::PATCH, "/apps/default/automations/w".to_owned()),
        (
            Method::POST,
            "/apps/default/automations/w/activate".to_owned(),
        ),
        (Method::POST, "/apps/default/automations/w/pause".to_owned()),
        (Method::POST, "/apps/default/automations/w/reset".to_owned()),
        (Method::POST, "/apps/default/automations/w/run".to_owned()),
        (Method::GET, "/apps/default/automations/w/runs".to_owned()),
        (Method::GET, format!("/apps/default/automations/runs/{run}")),
        (
            Method::POST,
            format!("/apps/default/automations/runs/{run}/cancel"),
        ),
        (
            Method::POST,
            format!("/apps/default/automations/runs/{run}/rerun"),
        ),
        (Method::POST, "/apps/default/events".to_owned()),
        (Method::GET, "/apps/default/configs".to_owned()),
        (Method::POST, "/apps/default/configs".to_owned()),
        (Method::GET, format!("/apps/default/configs/{config}")),
        (Method::DELETE, format!("/apps/default/configs/{config}")),
        (Method::DELETE, "/apps/default/automations/w".to_owned()),
    ];
    for (method, path) in endpoints {
        let response = server
            .call(method.clone(), &format!("{path}?verbose&limit=5"), None)
            .await;
        assert_error(
            &response,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &["unknown query parameter `verbose`", method.as_str()],
        );
    }
    // Nothing was done by the refused requests, and known parameters work.
    let (status, list) = server.get("/apps/default/automations?type=trigger").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .get("/apps/default/automations/w/runs?status=failed&limit=5")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &server.get("/apps/default/configs?limit=5").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["`limit`", "takes no query parameters"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_config_drops_its_compiled_code_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let runner = Arc::clone(server.service.runner());
    assert_eq!(runner.loaded_usage(), (0, 0));
    let config = server.upload("welcome-new-members").await;
    let (held, bytes) = runner.loaded_usage();
    assert_eq!(held, 1, "the upload's compile is kept for the first run");
    assert!(bytes > 0);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/apps/default/configs/{}", id(&config)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(runner.loaded_usage(), (0, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_and_readyz_names_what_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        server.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        server.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    assert_error(
        &server.action("/readyz").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &["POST", "/readyz"],
    );

    // The execution plane stops (as it does at shutdown): the host is alive
    // but takes no work, and readiness says which part is missing.
    server.server.execution.shutdown().await;
    assert_error(
        &server.get("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["not ready", "execution plane is not running"],
    );
    assert_eq!(
        server.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    server.stop().await;
}

/// Stores `count` runs of `automation` created `age` ago (ids and
/// `created_at` both), cancelled.
async fn insert_old_runs(
    service: &Service,
    app: &AppId,
    automation: &str,
    count: usize,
    age: chrono::TimeDelta,
) -> Vec<Run> {
    let automation: Automation = service.automation(app, automation).await.unwrap();
    let created = service.now() - age;
    let millis = created.timestamp_millis() as u128;
    let runs: Vec<Run> = (0..count)
        .map(|i| {
            let id = RunId::from_value((millis << 80) | i as u128);
            let input = TriggerInput {
                trigger: "thread.member_joined".into(),
                payload: json!({}),
            };
            let mut run = Run::pending(id, &automation, input, created);
            run.transition(RunStatus::Cancelled, created, Some("test".into()))
                .unwrap();
            run
        })
        .collect();
    let store = Arc::clone(service.store());
    let stored = runs.clone();
    tokio::task::spawn_blocking(move || store.insert_runs(&stored))
        .await
        .unwrap()
        .unwrap();
    runs
}

/// The ids an automation's run list shows, newest first (one page of 100).
async fn listed(server: &TestServer, automation: &str, status: Option<&str>) -> Vec<String> {
    let filter = status.map(|s| format!("&status={s}")).unwrap_or_default();
    let (code, page) = server
        .get(&format!(
            "/apps/default/automations/{automation}/runs?limit=100{filter}"
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().iter().map(id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_and_surplus_runs_from_every_list_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_config(automata::server::ServerConfig {
        retention: RetentionConfig {
            policy: RetentionPolicy {
                max_age: Some(chrono::TimeDelta::hours(1)),
                max_runs: None,
            },
            interval: std::time::Duration::from_millis(100),
            batch: 4,
        },
        ..common::config(dir.path())
    })
    .await;
    let app: AppId = "default".parse().unwrap();
    let joined = |extra: Value| {
        let mut body = json!({"name": "W", "type": "trigger", "trigger": "thread.member_joined"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    assert_error(
        &server
            .post(
                "/apps/default/automations",
                joined(json!({"retention": {"max_runs": 0}})),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["retention.max_runs"],
    );
    let capped = id(&server
        .create(joined(json!({"retention": {"max_runs": 3}})))
        .await);
    let uncapped = id(&server.create(joined(json!({}))).await);
    let forever = server
        .create(joined(json!({"retention": {"days": 0}})))
        .await;
    assert_eq!(forever["retention"], json!({"days": 0}));
    let forever = id(&forever);

    let runs = insert_runs(&server.service, &app, &capped, 20).await;
    insert_runs(&server.service, &app, &uncapped, 20).await;
    let old = insert_old_runs(
        &server.service,
        &app,
        &forever,
        6,
        chrono::TimeDelta::hours(2),
    )
    .await;
    // Kept: the 3 newest, and older runs that have not ended.
    let ended = |i: usize| i.is_multiple_of(3) || i.is_multiple_of(5);
    let kept: Vec<String> = (0..20)
        .rev()
        .filter(|&i| i >= 17 || !ended(i))
        .map(|i| runs[i].id.to_string())
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while listed(&server, &capped, None).await != kept {
        assert!(
            std::time::Instant::now() < deadline,
            "retention never pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let removed: Vec<&Run> = (0..17).filter(|&i| ended(i)).map(|i| &runs[i]).collect();
    assert_eq!(removed.len(), 8);
    for run in &removed {
        let (code, _) = server
            .get(&format!("/apps/default/automations/runs/{}", run.id))
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
    for status in ["completed", "failed"] {
        let listed = listed(&server, &capped, Some(status)).await;
        assert!(listed.iter().all(|id| kept.contains(id)), "{listed:?}");
    }
    // Runs across automations, by each filter, name only the runs kept.
    for filter in [
        "",
        "&status=completed",
        "&status=failed",
        "&trigger=thread.member_joined",
        "&latest_attempt=true",
    ] {
        let (code, page) = server
            .get(&format!(
                "/apps/default/automations/runs?automation_id={capped}&limit=100{filter}"
            ))
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let across: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap())
            .collect();
        assert!(
            across.iter().all(|id| kept.iter().any(|k| k == id)),
            "{filter}: {across:?}"
        );
    }
    let (_, everything) = server.get("/apps/default/automations/runs?limit=100").await;
    assert_eq!(
        everything["next_cursor"],
        Value::Null,
        "one page holds them all"
    );
    for run in &removed {
        assert!(
            !everything.to_string().contains(run.id.as_str()),
            "{} is still listed across automations",
            run.id
        );
    }
    let store = Arc::clone(server.service.store());
    let removed_ids: Vec<RunId> = removed.iter().map(|run| run.id.clone()).collect();
    let indexes = tokio::task::spawn_blocking(move || {
        let mut everywhere = Vec::new();
        for status in RunStatus::ALL {
            everywhere.extend(store.runs_with_status(status, None, 1000).unwrap());
        }
        everywhere
    })
    .await
    .unwrap();
    assert!(
        indexes.iter().all(|run| !removed_ids.contains(&run.id)),
        "a removed run is still in a status index"
    );
    assert_eq!(listed(&server, &uncapped, None).await.len(), 20);
    // Kept whatever their age while the automation says so; once it is
    // deleted, the host's age limit applies.
    assert_eq!(listed(&server, &forever, None).await.len(), 6);
    let (code, _) = server
        .call(
            Method::DELETE,
            &format!("/apps/default/automations/{forever}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let old_ids: Vec<RunId> = old.iter().map(|run| run.id.clone()).collect();
    loop {
        let store = Arc::clone(server.service.store());
        let ids = old_ids.clone();
        let left = tokio::task::spawn_blocking(move || {
            ids.iter()
                .filter(|id| store.run(id).unwrap().is_some())
                .count()
        })
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "orphans never pruned");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(&server.server.metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nautomata_retention_runs_pruned_total 14\n"),
        "{metrics}"
    );
    server.stop().await;
}
