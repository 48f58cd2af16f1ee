//! Outbound HTTP end to end: the `fetcher` fixture sends requests, from runs
//! of a real server, to a small HTTP server this test starts on loopback.
//! Grants, the private-address refusal, timeouts, caps, cancellation, the
//! host-call records, activation's grant check, and a component built
//! against the first WIT (`automata:workflow@0.1.0`) still running.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automata::execution::ExecutionConfig;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{Api, TestServer, id, status};

/// What the loopback server saw.
#[derive(Default)]
struct Seen {
    bodies: Mutex<Vec<Value>>,
    /// Woken when a request reaches `/hold`.
    held: Notify,
}

/// An HTTP server on `127.0.0.1:0`: `POST /hook` keeps its JSON body,
/// `GET /slow` and `GET /hold` never answer, `GET /huge` streams 1 MiB.
async fn loopback_server() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/hook",
            post(|State(seen): State<Arc<Seen>>, body: String| async move {
                let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                seen.bodies.lock().unwrap().push(value);
                axum::Json(json!({"ok": true}))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                "too late"
            }),
        )
        .route(
            "/hold",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.held.notify_one();
                tokio::time::sleep(Duration::from_secs(120)).await;
                "too late"
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // Chunked, no content-length: the cap must count as it reads.
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 16 * 1024]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, seen)
}

/// A running `fetcher` automation granted `hosts`, with `limits`.
async fn fetcher(api: &Api, hosts: &[String], limits: Value) -> String {
    let config = api.upload("default", "fetcher").await;
    api.trigger(
        "thread.created",
        &config,
        json!({"capabilities": {"http": {"allowed_hosts": hosts}}, "limits": limits}),
    )
    .await
}

/// Sends `payload` to the fetcher and waits for the run to end.
async fn fetch(api: &Api, payload: Value) -> Value {
    let run = api
        .first_run(json!({"trigger": "thread.created", "payload": payload}))
        .await;
    api.wait_ended("default", &run).await
}

fn error(run: &Value) -> &str {
    run["result"]["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_request_reaches_the_server_and_is_recorded() {
    let (address, seen) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    fetcher(api, &[address.to_string()], json!({"http_requests": 2})).await;

    let url = format!("http://{address}/hook?token=not-for-the-record");
    let run = fetch(
        api,
        json!({"url": url, "method": "POST", "json": {"text": "hello"}}),
    )
    .await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(run["result"]["payload"]["status"], 200);
    assert_eq!(run["result"]["payload"]["body"], r#"{"ok":true}"#);
    assert_eq!(*seen.bodies.lock().unwrap(), [json!({"text": "hello"})]);
    let calls = run["host_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{run:#}");
    let call = &calls[0];
    assert_eq!(call["kind"], "http");
    assert_eq!(call["target"], format!("POST http://{address}/hook"));
    assert_eq!(call["status"], 200);
    assert_eq!(call["bytes_out"], r#"{"text":"hello"}"#.len());
    assert_eq!(call["bytes_in"], r#"{"ok":true}"#.len());
    assert_eq!(call["error"], Value::Null);

    // Past `http_requests` a request fails inside the workflow.
    let run = fetch(api, json!({"url": url, "method": "POST", "times": 3})).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert!(
        error(&run).contains("at most 2 HTTP requests (limits.http_requests)"),
        "{run:#}"
    );
    assert_eq!(run["host_calls"].as_array().unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_granted_fails_naming_the_grant_that_would_allow_it() {
    let (address, seen) = loopback_server().await;
    let (other, _) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    fetcher(api, &[address.to_string()], json!({})).await;

    let url = format!("http://{other}/hook");
    let run = fetch(api, json!({"url": url, "method": "POST"})).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    let wanted = format!("add \"{other}\" to capabilities.http.allowed_hosts");
    assert!(error(&run).contains(&wanted), "{run:#}");
    assert_eq!(run["failure_kind"], "guest_error");
    let call = &run["host_calls"][0];
    assert!(call["error"].as_str().unwrap().contains(&wanted), "{call}");
    assert_eq!(call["status"], Value::Null);

    // The workflow can handle the refusal instead of failing, and reads
    // the same reason whether or not its request has a body.
    for request in [
        json!({"url": url, "handle": true}),
        json!({"url": url, "method": "POST", "json": {"a": 1}, "handle": true}),
    ] {
        let run = fetch(api, request).await;
        assert_eq!(status(&run), "completed", "{run:#}");
        assert!(
            run["result"]["payload"]["error"]
                .as_str()
                .unwrap()
                .contains(&wanted),
            "{run:#}"
        );
    }
    // Credentials in the URL are refused, not sent in the Host header.
    let run = fetch(
        api,
        json!({"url": format!("http://bot:pw@{address}/hook"), "handle": true}),
    )
    .await;
    assert!(
        run["result"]["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("put them in an `authorization` header"),
        "{run:#}"
    );
    assert!(!run["host_calls"].to_string().contains("bot:pw"), "{run:#}");
    assert!(seen.bodies.lock().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_unless_the_operator_allows_it() {
    let (address, seen) = loopback_server().await;
    let by_name = format!("localhost:{}", address.port());
    let url = format!("http://{by_name}/hook");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    fetcher(&server.api, std::slice::from_ref(&by_name), json!({})).await;
    let run = fetch(&server.api, json!({"url": url, "method": "POST"})).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert!(
        error(&run).contains("a loopback, private or link-local address"),
        "{run:#}"
    );
    assert!(error(&run).contains("--allow-private-egress"), "{run:#}");
    assert!(seen.bodies.lock().unwrap().is_empty());
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let allowing = ExecutionConfig {
        allow_private_egress: true,
        ..ExecutionConfig::default()
    };
    let server = TestServer::start(dir.path(), allowing).await;
    fetcher(&server.api, &[by_name], json!({})).await;
    let run = fetch(
        &server.api,
        json!({"url": url, "method": "POST", "json": {"n": 1}}),
    )
    .await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(*seen.bodies.lock().unwrap(), [json!({"n": 1})]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_is_cut_at_the_timeout() {
    let (address, _) = loopback_server().await;
    let url = format!("http://{address}/slow");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;

    // The run's own deadline comes first: the run times out.
    let first = fetcher(api, &[address.to_string()], json!({"timeout_ms": 1500})).await;
    let run = fetch(api, json!({"url": url})).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert_eq!(error(&run), "Script execution timed out");
    assert_eq!(run["failure_kind"], "timeout");
    assert_eq!(
        run["host_calls"][0]["error"],
        "the run timed out while in flight"
    );
    api.pause(&first).await;

    // The request's own timeout comes first: the workflow hears of it.
    fetcher(api, &[address.to_string()], json!({"http_timeout_ms": 300})).await;
    let run = fetch(api, json!({"url": url, "handle": true})).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    let wanted = "no complete response from 127.0.0.1 within 300 ms (limits.http_timeout_ms)";
    assert_eq!(run["result"]["payload"]["error"], wanted);
    assert_eq!(run["host_calls"][0]["error"], wanted);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_is_capped() {
    let (address, _) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    fetcher(
        api,
        &[address.to_string()],
        json!({"http_response_bytes": 65536}),
    )
    .await;
    let run = fetch(api, json!({"url": format!("http://{address}/huge")})).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert!(
        error(&run).contains("larger than the limit of 65536 bytes (limits.http_response_bytes"),
        "{run:#}"
    );
    let call = &run["host_calls"][0];
    assert_eq!(call["status"], 200);
    let bytes_in = call["bytes_in"].as_u64().unwrap();
    assert!(bytes_in > 65536 && bytes_in <= 65536 + 16 * 1024, "{call}");
    assert!(call["error"].as_str().unwrap().contains("65536"), "{call}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_a_request_in_flight() {
    let (address, seen) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    fetcher(api, &[address.to_string()], json!({"timeout_ms": 600_000})).await;
    let run = api
        .first_run(json!({
            "trigger": "thread.created",
            "payload": {"url": format!("http://{address}/hold")},
        }))
        .await;
    seen.held.notified().await;
    let (code, cancelled) = api
        .post(
            &format!("/apps/default/automations/runs/{run}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    let ended = api.wait_ended("default", &run).await;
    assert_eq!(status(&ended), "cancelled", "{ended:#}");
    let call = &ended["host_calls"][0];
    assert_eq!(call["target"], format!("GET http://{address}/hold"));
    assert_eq!(call["error"], "cancelled while in flight");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_calls_out_needs_a_grant_to_be_activated() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    let config = api.upload("default", "fetcher").await;
    let shown = api.get(&format!("/apps/default/configs/{config}")).await;
    assert_eq!(shown["imports_http"], true);
    let welcome = api.upload("default", "welcome-new-members").await;
    let shown = api.get(&format!("/apps/default/configs/{welcome}")).await;
    assert_eq!(shown["imports_http"], false);

    let automation = api
        .automation(
            "default",
            json!({"type": "trigger", "trigger": "thread.created", "config_id": config}),
            false,
        )
        .await;
    let path = format!("/apps/default/automations/{automation}");
    let (code, refused) = api.post(&format!("{path}/activate"), json!(null)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("capabilities.http.allowed_hosts") && message.contains(&config),
        "{message}"
    );
    let (code, _) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"capabilities": {"http": {"allowed_hosts": ["api.example.com"]}}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, active) = api.post(&format!("{path}/activate"), json!(null)).await;
    assert_eq!(code, StatusCode::OK, "{active}");
    // A running automation keeps its grant: PATCH cannot take it away.
    let (code, refused) = api
        .call(Method::PATCH, &path, Some(json!({"capabilities": null})))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_the_first_wit_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    // welcome-new-members as built before outbound HTTP and secrets existed
    // (automata:workflow@0.1.0).
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/welcome-new-members-wit-0.1.0.wasm"
    );
    let response = api
        .client
        .post(format!("{}/apps/default/configs", api.base))
        .header("content-type", "application/wasm")
        .body(std::fs::read(fixture).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let config: Value = response.json().await.unwrap();
    assert_eq!(config["imports_http"], false);
    api.trigger("thread.member_joined", &id(&config), json!({}))
        .await;
    let run = api
        .first_run(json!({
            "trigger": "thread.member_joined",
            "payload": {"member": {"id": "usr_ada", "name": "Ada"}, "thread": {"id": "thr_1", "name": "General"}},
        }))
        .await;
    let run = api.wait_ended("default", &run).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(run["result"]["output"], json!(["Welcome to General, Ada!"]));
    assert_eq!(run["host_calls"], json!([]));
    server.stop().await;
}

/// Sets the app secret `name` to `value`.
async fn set_secret(api: &Api, name: &str, value: &str) {
    let (code, answer) = api
        .call(
            Method::PUT,
            &format!("/apps/default/secrets/{name}"),
            Some(json!({"value": value})),
        )
        .await;
    assert!(code.is_success(), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingestion_alert_is_delivered_to_the_webhook_in_its_secret() {
    let (address, seen) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    let webhook = format!("http://{address}/hook");
    set_secret(api, "ALERT_WEBHOOK_URL", &webhook).await;
    let config = api.upload("default", "ingestion-failure-alert").await;
    let event = json!({
        "trigger": "context.ingestion.failed",
        "payload": {"source_id": "src_1", "error": "401 from the source", "consecutive_failures": 3},
    });

    // The alert can call out, so it needs a host granted to be activated;
    // without the secret granted too, it prints the alert only.
    let (code, refused) = api
        .call(
            Method::POST,
            "/apps/default/automations",
            Some(json!({
                "name": "Alert", "type": "trigger", "trigger": "context.ingestion.failed",
                "config_id": config,
            })),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{refused}");
    let (code, refused) = api
        .call(
            Method::POST,
            &format!("/apps/default/automations/{}/activate", id(&refused)),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let printing = api
        .trigger(
            "context.ingestion.failed",
            &config,
            json!({"capabilities": {"http": {"allowed_hosts": [address.to_string()]}}}),
        )
        .await;
    let run = api.first_run(event.clone()).await;
    let run = api.wait_ended("default", &run).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(run["result"]["payload"]["delivered"], false);
    assert_eq!(
        run["result"]["output"],
        json!([
            "[warn] src_1 has failed 3 times in a row",
            "[critical] Ingestion of src_1 failed: 401 from the source",
        ]),
        "{run:#}"
    );
    // The read of a secret the automation is not granted is on the record.
    let calls = run["host_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{run:#}");
    assert_eq!(calls[0]["kind"], "secret");
    assert_eq!(calls[0]["target"], "ALERT_WEBHOOK_URL");
    assert!(seen.bodies.lock().unwrap().is_empty());
    api.pause(&printing).await;

    // Granted the secret and the webhook's host: posted.
    api.trigger(
        "context.ingestion.failed",
        &config,
        json!({"capabilities": {
            "http": {"allowed_hosts": [address.to_string()]},
            "secrets": ["ALERT_WEBHOOK_URL"],
        }}),
    )
    .await;
    let run = api.first_run(event).await;
    let run = api.wait_ended("default", &run).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(run["result"]["payload"]["delivered"], true, "{run:#}");
    assert_eq!(
        *seen.bodies.lock().unwrap(),
        [json!({
            "text": "[critical] Ingestion of src_1 failed: 401 from the source",
            "source_id": "src_1",
            "severity": "critical",
        })]
    );
    // The secret read names the secret; the request's URL is the secret's
    // value, so its record shows it masked.
    let calls = run["host_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{run:#}");
    assert_eq!(calls[0]["kind"], "secret");
    assert_eq!(calls[0]["target"], "ALERT_WEBHOOK_URL");
    assert_eq!(calls[1]["kind"], "http");
    assert_eq!(calls[1]["target"], "POST ***");
    assert_eq!(calls[1]["status"], 200);
    assert!(!run.to_string().contains(&webhook), "{run:#}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_to_chat_posts_the_welcome_and_says_what_a_missing_grant_needs() {
    let (address, seen) = loopback_server().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), ExecutionConfig::default()).await;
    let api = &server.api;
    let config = api.upload("default", "welcome-to-chat").await;
    let event = json!({
        "trigger": "thread.member_joined",
        "payload": {"thread": {"name": "Design"}, "member": {"id": "usr_7", "name": "Ada"}},
    });

    // The host is granted, the secret is not: the run fails saying so.
    let ungranted = api
        .trigger(
            "thread.member_joined",
            &config,
            json!({"capabilities": {"http": {"allowed_hosts": [address.to_string()]}}}),
        )
        .await;
    let run = api.first_run(event.clone()).await;
    let run = api.wait_ended("default", &run).await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert!(error(&run).contains("--secret CHAT_WEBHOOK_URL"), "{run:#}");
    api.pause(&ungranted).await;

    set_secret(api, "CHAT_WEBHOOK_URL", &format!("http://{address}/hook")).await;
    api.trigger(
        "thread.member_joined",
        &config,
        json!({"capabilities": {
            "http": {"allowed_hosts": [address.to_string()]},
            "secrets": ["CHAT_WEBHOOK_URL"],
        }}),
    )
    .await;
    let run = api.first_run(event).await;
    let run = api.wait_ended("default", &run).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(
        run["result"]["payload"],
        json!({"message": "Welcome to Design, Ada!", "posted": true, "member_id": "usr_7"})
    );
    assert_eq!(
        run["result"]["output"],
        json!(["posted: Welcome to Design, Ada!"])
    );
    assert_eq!(
        *seen.bodies.lock().unwrap(),
        [json!({"text": "Welcome to Design, Ada!"})]
    );
    server.stop().await;
}
