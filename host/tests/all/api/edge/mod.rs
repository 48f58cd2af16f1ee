//! The hardened edge on loopback, each attack a bounded burst: CSRF and DNS
//! rebinding, slow headers and stalled bodies, idle sockets past the
//! connection cap, floods past the in-flight and upload bounds, event intake
//! past a key's rate, and TLS. After each, the server still answers.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use automata::edge::{EdgeConfig, TlsFiles};
use automata_e2e::ADMIN_TOKEN;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{TestServer, assert_error};

fn edge_config(dir: &std::path::Path, edge: EdgeConfig) -> automata::server::ServerConfig {
    automata::server::ServerConfig {
        edge,
        ..crate::common::config(dir)
    }
}

fn address(server: &TestServer) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("an http://IP:PORT base")
}

/// The server still answers a fresh connection: the liveness probe without
/// a key, and an admin read.
async fn still_answers(server: &TestServer) {
    let probe = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("GET /healthz");
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(
        probe.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let (status, body) = server.get("/apps/default").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Sends raw bytes on a new connection (blocking; small writes).
fn raw(address: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads what the server sends until it closes, for at most `within`.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        if started.elapsed() > within {
            break;
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn stalled_post(address: SocketAddr, path: &str, content_type: &str) -> TcpStream {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: {content_type}\r\nContent-Length: 100\r\n\r\n1234567"
    );
    raw(address, head.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_and_foreign_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, automation) = server
        .post(
            "/apps/default/automations",
            json!({"name": "T", "type": "scheduled", "schedule": "0 0 * * *", "lookup_key": "t"}),
        )
        .await;
    // A form or text/plain body (what a web page can send without a preflight).
    assert_error(
        &pause_with(&server, Some("text/plain"), None, None).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["application/json", "text/plain"],
    );
    assert_error(
        &pause_with(&server, None, None, None).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["no Content-Type"],
    );
    assert_error(
        &pause_with(
            &server,
            Some("application/json"),
            Some("https://evil.example"),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        &["cross-origin", "evil.example"],
    );
    // DNS rebinding: a page of evil.example whose name now points here.
    assert_error(
        &pause_with(
            &server,
            Some("application/json"),
            None,
            Some("evil.example:7070"),
        )
        .await,
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_request",
        &["evil.example", "--allowed-host"],
    );
    let (status, _) = server.get("/apps/default/automations/t").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.get("/apps/default/automations/t").await.1["status"],
        automation["status"]
    );
    // The client's own origin and a body-less action pass.
    let (status, body) =
        pause_with(&server, Some("application/json"), Some(&server.base), None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "draft cannot be paused: allowed, refused by the lifecycle: {body}"
    );
    still_answers(&server).await;
    server.stop().await;
}

/// `POST …/automations/t/pause` with `{}` and these headers.
async fn pause_with(
    server: &TestServer,
    content_type: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(format!("{}/apps/default/automations/t/pause", server.base))
        .body("{}");
    for (name, value) in [
        ("content-type", content_type),
        ("origin", origin),
        ("host", host),
    ] {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_sockets_and_stalled_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..EdgeConfig::default()
    };
    let server = TestServer::start_config(edge_config(dir.path(), edge)).await;
    let address = address(&server);

    // Headers one byte at a time: closed once the header timeout passes.
    let mut slow = raw(address, b"G");
    let started = Instant::now();
    let mut closed = false;
    for byte in b"ET /apps/default HTTP/1.1\r\nHost: 127.0.0.1\r\n" {
        std::thread::sleep(Duration::from_millis(150));
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let (_, waited) = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(
        closed || started.elapsed() < Duration::from_secs(5),
        "slow headers kept open"
    );
    assert!(started.elapsed() + waited < Duration::from_secs(8));
    still_answers(&server).await;

    // An idle socket: closed after the header timeout.
    let mut idle = raw(address, b"");
    let (_, waited) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(
        waited < Duration::from_secs(3),
        "idle socket open for {waited:?}"
    );

    // A body announced as 100 bytes that stops after 7: 408.
    let mut stalled = stalled_post(address, "/apps/default/events", "application/json");
    let (answer, waited) = read_until_closed(&mut stalled, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    still_answers(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_past_the_connection_cap_do_not_lock_anyone_out() {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeConfig {
        max_connections: 16,
        ..EdgeConfig::default()
    };
    let server = TestServer::start_config(edge_config(dir.path(), edge)).await;
    let address = address(&server);
    // Four times the cap of sockets that never send a byte.
    let idle: Vec<TcpStream> = (0..64).map(|_| raw(address, b"")).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let response = client
            .get(format!("{}/apps/default", server.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("answered while idle sockets fill the cap");
        assert_eq!(response.status(), StatusCode::OK);
    }
    drop(idle);
    still_answers(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_changes_and_uploads_are_shed_while_reads_answer() {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeConfig {
        max_in_flight: 3,
        max_uploads: 1,
        body_timeout: Duration::from_secs(3),
        ..EdgeConfig::default()
    };
    let server = TestServer::start_config(edge_config(dir.path(), edge)).await;
    let address = address(&server);

    // One upload that stalls holds the only upload slot: the next is shed.
    let upload = stalled_post(address, "/apps/default/configs", "application/wasm");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = server
        .upload_raw("/apps/default/configs", "application/wasm", vec![0; 16])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uploads")
    );

    // Two stalled changes (three with the upload) fill the changes' bound.
    let changes: Vec<TcpStream> = (0..2)
        .map(|_| stalled_post(address, "/apps/default/events", "application/json"))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = server
        .client
        .post(format!("{}/apps/default/events", server.base))
        .json(&json!({"trigger": "thread.created"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // Reads have their own bound.
    still_answers(&server).await;
    drop((upload, changes));
    // Once the stalled ones are gone, changes are taken again.
    let started = Instant::now();
    loop {
        let (status, _) = server
            .post("/apps/default/events", json!({"trigger": "thread.created"}))
            .await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still shedding: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_intake_is_rate_limited_per_key_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let edge = EdgeConfig {
        event_rate: 1.0,
        event_burst: 3,
        ..EdgeConfig::default()
    };
    let server = TestServer::start_config(edge_config(dir.path(), edge)).await;
    let event = json!({"trigger": "thread.created"});
    for _ in 0..3 {
        assert_eq!(
            server.post("/apps/default/events", event.clone()).await.0,
            StatusCode::ACCEPTED
        );
    }
    let response = server
        .client
        .post(format!("{}/apps/default/events", server.base))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    // Another key has its own budget.
    let (_, key) = server
        .post(
            "/apps/default/keys",
            json!({"name": "producer", "role": "events"}),
        )
        .await;
    let producer = crate::common::client_with_key(key["key_secret"].as_str().unwrap());
    let response = producer
        .post(format!("{}/apps/default/events", server.base))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    still_answers(&server).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        server.post("/apps/default/events", event).await.0,
        StatusCode::ACCEPTED
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_tls_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let edge = EdgeConfig {
        tls: Some(TlsFiles {
            cert: fixtures.join("server.pem"),
            key: fixtures.join("server.key"),
        }),
        ..EdgeConfig::default()
    };
    let server = TestServer::start_config(edge_config(dir.path(), edge)).await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = server.base.replace("127.0.0.1", "localhost");
    let response = client
        .get(format!("{url}/apps/default"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("a TLS answer");
    assert_eq!(response.status(), StatusCode::OK);
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/apps/default")).await.is_err());
    server.stop().await;
}
