//! Authentication and tenancy over HTTP: every route's access decision
//! against every kind of key, explicit apps, keys, bootstrap and the
//! migration of data written before apps were explicit.

use std::net::SocketAddr;
use std::path::Path;

use automata::domain::ids::AppId;
use automata::server::{ADMIN_TOKEN_FILE, Server, ServerConfig, ServerError};
use automata::service::AuthMode;
use automata_e2e::guest;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{TestServer, assert_error, id};

/// Ids that exist nowhere: routes answer 404 (or 400) to an allowed key
/// without changing anything.
const NO_AUTOMATION: &str = "aut_01jdqm3k5v8x2n7w4c9b6e1f0a";
const NO_RUN: &str = "atr_01jdqm3k5v8x2n7w4c9b6e1f0a";
const NO_KEY: &str = "key_01jdqm3k5v8x2n7w4c9b6e1f0a";
const NO_SECRET: &str = "NO_SUCH_SECRET";
/// Routes anyone may call.
const PUBLIC: &[&str] = &["/openapi.json", "/healthz", "/readyz"];

/// Sends a request with `key` (or none) and returns status, headers and body.
async fn send_as(
    server: &TestServer,
    key: Option<&str>,
    method: Method,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request =
        reqwest::Client::new().request(method.clone(), format!("{}{path}", server.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if method != Method::GET && method != Method::DELETE {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("answered");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn create_app(server: &TestServer, app: &str) {
    let (status, body) = server.post("/apps", json!({"id": app})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create_key(server: &TestServer, app: &str, role: &str) -> (String, String) {
    let (status, key) = server
        .post(
            &format!("/apps/{app}/keys"),
            json!({"name": format!("{role} key"), "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["key_secret"].as_str().unwrap().to_owned();
    (id(&key), secret)
}

/// Whether `method path` needs an admin key whatever the app.
fn admin_only(method: &Method, path: &str) -> bool {
    !path.starts_with("/apps/{app_id}")
        || path.starts_with("/apps/{app_id}/keys")
        || (method == Method::DELETE && path == "/apps/{app_id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_openapi_document_has_an_access_decision_that_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    create_app(&server, "tenant-a").await;
    create_app(&server, "tenant-b").await;
    // Tenant B's data, which no key of A may see.
    let (status, config) = server
        .upload_raw(
            "/apps/tenant-b/configs?name=secret-config-b",
            "application/wasm",
            guest("welcome-new-members"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{config}");
    let (status, automation) = server
        .post(
            "/apps/tenant-b/automations",
            json!({"name": "Secret automation of B", "type": "trigger",
                   "trigger": "thread.member_joined", "config_id": id(&config)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{automation}");
    // Running, so that deleting the app without force is refused (409)
    // rather than done by the admin pass below.
    let (status, _) = server
        .action(&format!(
            "/apps/tenant-b/automations/{}/activate",
            id(&automation)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let secrets_of_b = [
        "Secret automation of B".to_owned(),
        "secret-config-b".to_owned(),
        id(&config),
        id(&automation),
    ];

    let (_, events) = create_key(&server, "tenant-b", "events").await;
    let (_, read) = create_key(&server, "tenant-b", "read").await;
    let (_, write) = create_key(&server, "tenant-b", "write").await;
    let (_, other_app) = create_key(&server, "tenant-a", "write").await;
    let (revoked_id, revoked) = create_key(&server, "tenant-b", "write").await;
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/apps/tenant-b/keys/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, doc) = server.get("/openapi.json").await;
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let path = template
                .replace("{app_id}", "tenant-b")
                .replace("{id}", NO_AUTOMATION)
                .replace("{run_id}", NO_RUN)
                .replace("{key_id}", NO_KEY)
                .replace("{name}", NO_SECRET);
            assert!(
                !path.contains('{'),
                "{template}: a path parameter this test does not know"
            );
            let route = format!("{method} {template}");
            let allowed = |status: StatusCode, who: &str| {
                assert!(
                    ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::INTERNAL_SERVER_ERROR
                    ]
                    .contains(&status),
                    "{route} with {who}: {status}"
                );
            };
            if PUBLIC.contains(&template.as_str()) {
                allowed(
                    send_as(&server, None, method.clone(), &path).await.0,
                    "no key",
                );
                continue;
            }
            checked += 1;

            let (status, headers, body) = send_as(&server, None, method.clone(), &path).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{route} without a key: {body}"
            );
            assert_eq!(headers["www-authenticate"], "Bearer", "{route}");
            assert!(body.contains("\"unauthorized\""), "{route}: {body}");
            let (status, _, body) = send_as(&server, Some(&revoked), method.clone(), &path).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{route} with a revoked key: {body}"
            );

            let (status, _, body) = send_as(&server, Some(&other_app), method.clone(), &path).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{route} with app A's key: {body}"
            );
            for secret in &secrets_of_b {
                assert!(
                    !body.contains(secret.as_str()),
                    "{route} leaks {secret}: {body}"
                );
            }

            let intake = method == Method::POST && template == "/apps/{app_id}/events";
            let admin_only = admin_only(&method, template);
            let (status, _, body) = send_as(&server, Some(&events), method.clone(), &path).await;
            if intake {
                allowed(status, "an events key");
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{route} with an events key: {body}"
                );
            }
            let (status, _, body) = send_as(&server, Some(&read), method.clone(), &path).await;
            if method == Method::GET && !admin_only {
                allowed(status, "a read key");
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{route} with a read key: {body}"
                );
                assert!(body.contains("needs"), "{route}: {body}");
            }
            let (status, _, body) = send_as(&server, Some(&write), method.clone(), &path).await;
            if admin_only {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{route} with a write key: {body}"
                );
                assert!(body.contains("admin"), "{route}: {body}");
            } else {
                allowed(status, "a write key");
            }
            let (status, _, _) =
                send_as(&server, Some(automata_e2e::ADMIN_TOKEN), method, &path).await;
            allowed(status, "the admin key");
        }
    }
    assert!(checked >= 25, "only {checked} routes checked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_explicit_and_deleting_one_removes_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // A fresh data directory has the CLI's default app.
    let (_, apps) = server.get("/apps").await;
    assert_eq!(apps["data"][0]["id"], "default", "{apps}");

    let (status, app) = server
        .post("/apps", json!({"id": "acme", "name": "Acme Inc"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["name"], "Acme Inc");
    assert_eq!(app["created_by"], "env");
    assert_error(
        &server.post("/apps", json!({"id": "acme"})).await,
        StatusCode::CONFLICT,
        "conflict",
        &["acme", "already exists"],
    );
    assert_error(
        &server.post("/apps", json!({"id": "no spaces"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["no spaces"],
    );
    assert_eq!(server.get("/apps/acme").await.1["name"], "Acme Inc");

    // A typo is a 404, event intake included.
    for (method, path) in [
        (Method::GET, "/apps/acmee/automations"),
        (Method::GET, "/apps/acmee"),
        (Method::POST, "/apps/acmee/events"),
    ] {
        let body = (method == Method::POST).then(|| json!({"trigger": "thread.created"}));
        assert_error(
            &server.call(method, path, body).await,
            StatusCode::NOT_FOUND,
            "not_found",
            &["app `acmee` does not exist"],
        );
    }

    // An app with a running automation and a pending run.
    let (_, config) = server
        .upload_raw(
            "/apps/acme/configs",
            "application/wasm",
            guest("welcome-new-members"),
        )
        .await;
    let (_, automation) = server
        .post(
            "/apps/acme/automations",
            json!({"name": "W", "type": "trigger", "trigger": "thread.member_joined",
                   "config_id": id(&config), "lookup_key": "w"}),
        )
        .await;
    server.action("/apps/acme/automations/w/activate").await;
    let (_, key) = create_key(&server, "acme", "write").await;
    let (status, _) = server
        .post(
            "/apps/acme/events",
            json!({"trigger": "thread.member_joined", "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    assert_error(
        &server.call(Method::DELETE, "/apps/acme", None).await,
        StatusCode::CONFLICT,
        "conflict",
        &[&id(&automation), "force=true"],
    );
    let (status, _) = server
        .call(Method::DELETE, "/apps/acme?force=true", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &server.get("/apps/acme/automations").await,
        StatusCode::NOT_FOUND,
        "not_found",
        &["app `acme` does not exist"],
    );
    let (status, _, _) = send_as(&server, Some(&key), Method::GET, "/apps/acme").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the app's keys went with it"
    );
    // The same id starts empty: nothing of the old app is left.
    create_app(&server, "acme").await;
    assert_eq!(
        server.get("/apps/acme/automations").await.1["data"],
        json!([])
    );
    assert_eq!(server.get("/apps/acme/configs").await.1["data"], json!([]));
    let (status, receipt) = server
        .post(
            "/apps/acme/events",
            json!({"trigger": "thread.member_joined", "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        receipt["run_ids"],
        json!([]),
        "the old receipt is gone: {receipt}"
    );
    let (status, _) = server.call(Method::DELETE, "/apps/acme", None).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "nothing running: no force needed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, created) = server
        .post(
            "/apps/default/keys",
            json!({"name": "billing producer", "role": "events"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ak_") && secret.len() == 67, "{secret}");
    assert!(id(&created).starts_with("key_"));
    assert_eq!(created["role"], "events");
    assert_eq!(created["created_by"], "env");

    // The producer can send events and nothing else.
    let (status, _, body) =
        send_as(&server, Some(&secret), Method::POST, "/apps/default/events").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "allowed, and the empty event refused: {body}"
    );
    let (status, _, body) = send_as(
        &server,
        Some(&secret),
        Method::GET,
        "/apps/default/automations",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("role `events`") && body.contains("needs role `read`"),
        "{body}"
    );

    let (_, list) = server.get("/apps/default/keys").await;
    let listed = &list["data"][0];
    assert_eq!(listed["prefix"], &secret[..11]);
    assert_eq!(listed["name"], "billing producer");
    assert!(listed["last_used_at"].as_str().is_some(), "{listed}");
    assert!(!list.to_string().contains(&secret), "{list}");
    assert!(listed.get("key_secret").is_none());

    assert_error(
        &server
            .post("/apps/default/keys", json!({"name": "x", "role": "admin"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["admin keys are not per app"],
    );
    assert_error(
        &server
            .post(
                "/apps/default/keys",
                json!({"name": "x", "role": "read", "expires_at": "2020-01-01T00:00:00Z"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["expires_at"],
    );

    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/apps/default/keys/{}", id(&created)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) =
        send_as(&server, Some(&secret), Method::POST, "/apps/default/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("unknown or revoked"), "{body}");
    let (status, _, _) = send_as(&server, Some("Basic"), Method::GET, "/apps/default").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(
        &server
            .call(
                Method::DELETE,
                &format!("/apps/default/keys/{}", id(&created)),
                None,
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&id(&created)],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(600)).to_rfc3339();
    let (status, created) = server
        .post(
            "/apps/default/keys",
            json!({"name": "short-lived", "role": "read", "expires_at": soon}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key_secret"].as_str().unwrap();
    let (status, _, _) = send_as(&server, Some(secret), Method::GET, "/apps/default").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (status, _, body) = send_as(&server, Some(secret), Method::GET, "/apps/default").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("expired"), "{body}");
    server.stop().await;
}

fn config(data_dir: &Path, listen: SocketAddr, auth: AuthMode) -> ServerConfig {
    ServerConfig {
        listen,
        auth,
        ..crate::common::config(data_dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_writes_an_admin_key_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::bind(&config(
        dir.path(),
        loopback,
        AuthMode::required(None).unwrap(),
    ))
    .await
    .unwrap();
    let file = dir.path().join(ADMIN_TOKEN_FILE);
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(key.starts_with("ak_"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admins = server.service().keys(None).await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].role, automata::domain::access::Role::Admin);
    drop(server);
    // The next start keeps that key.
    let server = Server::bind(&config(
        dir.path(),
        loopback,
        AuthMode::required(None).unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(server.service().keys(None).await.unwrap(), admins);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    drop(server);

    // --no-auth only on loopback; a short admin token is refused.
    let exposed = SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = Server::bind(&config(dir.path(), exposed, AuthMode::Off)).await;
    assert!(matches!(refused, Err(ServerError::NoAuthExposed(_))));
    assert!(
        AuthMode::required(Some("short"))
            .unwrap_err()
            .contains("at least 32")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_apps_were_explicit_keeps_everything_and_lists_its_apps() {
    use automata::domain::automation::{Automation, NewAutomation};
    use automata::domain::config::Config;
    use automata::domain::ids::{AutomationId, ConfigId, IdSequence, RunId};
    use automata::domain::run::Run;
    use automata::domain::workflow::{TriggerInput, WorkflowGraph};
    use automata::store::{SledStore, Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let mut ids = IdSequence::default();
    let mut next = || ids.next(now.timestamp_millis() as u64, rand::random());
    let mut written = Vec::new();
    // The old way: straight into the store, no app records.
    {
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        for app in ["legacy", "team-b"] {
            let app: AppId = app.parse().unwrap();
            let config = Config {
                id: ConfigId::from_value(next()),
                app_id: app.clone(),
                name: "wf".into(),
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: 3,
                graph: WorkflowGraph {
                    name: "wf".into(),
                    triggers: vec!["thread.created".into()],
                    steps: vec![],
                },
                imports_http: false,
                created_at: now,
                created_by: None,
            };
            store.insert_config(&config, b"abc").unwrap();
            let new: NewAutomation = serde_json::from_value(json!({
                "name": "t", "type": "trigger", "trigger": "thread.created",
                "config_id": config.id,
            }))
            .unwrap();
            let automation =
                Automation::create(AutomationId::from_value(next()), app.clone(), new, now)
                    .unwrap();
            store.insert_automation(&automation).unwrap();
            let input = TriggerInput {
                trigger: "thread.created".into(),
                payload: json!({"n": 1}),
            };
            let mut run = Run::pending(RunId::from_value(next()), &automation, input, now);
            run.transition(automata::domain::run::RunStatus::Running, now, None)
                .unwrap();
            run.finish(
                automata::domain::run::RunResult::Failure {
                    error: "boom".into(),
                    output: vec![],
                    output_truncated: false,
                },
                Default::default(),
                now,
            )
            .unwrap();
            store.insert_runs(std::slice::from_ref(&run)).unwrap();
            written.push((app, config, automation, run));
        }
    }
    let server = TestServer::start(dir.path()).await;
    let (_, apps) = server.get("/apps").await;
    let listed: Vec<&str> = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["legacy", "team-b"],
        "no `default` is made up for old data"
    );
    for (app, config, automation, run) in &written {
        let (_, shown) = server
            .get(&format!("/apps/{app}/configs/{}", config.id))
            .await;
        assert_eq!(serde_json::from_value::<Config>(shown).unwrap(), *config);
        let (_, shown) = server
            .get(&format!("/apps/{app}/automations/{}", automation.id))
            .await;
        assert_eq!(shown["id"], automation.id.to_string());
        assert_eq!(shown["name"], automation.name);
        let (_, shown) = server
            .get(&format!("/apps/{app}/automations/runs/{}", run.id))
            .await;
        assert_eq!(serde_json::from_value::<Run>(shown).unwrap(), *run);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_records_the_key_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (writer_id, writer) = create_key(&server, "default", "write").await;
    let (producer_id, producer) = create_key(&server, "default", "events").await;
    let as_writer = crate::common::client_with_key(&writer);
    let send =
        |client: &reqwest::Client, method: Method, path: &str, body: Option<serde_json::Value>| {
            let mut request = client.request(method, format!("{}{path}", server.base));
            if let Some(body) = body {
                request = request.json(&body);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };

    let response = as_writer
        .post(format!("{}/apps/default/configs", server.base))
        .header("content-type", "application/wasm")
        .body(guest("welcome-new-members"))
        .send()
        .await
        .unwrap();
    let config: serde_json::Value = response.json().await.unwrap();
    assert_eq!(config["created_by"], writer_id.as_str(), "{config}");

    let (status, automation) = send(
        &as_writer,
        Method::POST,
        "/apps/default/automations",
        Some(
            json!({"name": "W", "type": "trigger", "trigger": "thread.member_joined",
                    "config_id": id(&config), "lookup_key": "w"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{automation}");
    assert_eq!(automation["created_by"], writer_id.as_str());
    assert_eq!(automation["updated_by"], writer_id.as_str());
    // The admin (AUTOMATA_ADMIN_TOKEN, id `env`) changes it: updated_by follows.
    let (_, patched) = server
        .call(
            Method::PATCH,
            "/apps/default/automations/w",
            Some(json!({"name": "Welcome"})),
        )
        .await;
    assert_eq!(patched["created_by"], writer_id.as_str());
    assert_eq!(patched["updated_by"], "env");
    let (_, activated) = send(
        &as_writer,
        Method::POST,
        "/apps/default/automations/w/activate",
        None,
    )
    .await;
    assert_eq!(activated["updated_by"], writer_id.as_str());

    // An event's receipt and runs name the producer's key.
    let as_producer = crate::common::client_with_key(&producer);
    let (status, receipt) = send(
        &as_producer,
        Method::POST,
        "/apps/default/events",
        Some(json!({"trigger": "thread.member_joined"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(receipt["requested_by"], producer_id.as_str());
    let run_id = receipt["run_ids"][0].as_str().unwrap().to_owned();
    let (_, run) = server
        .get(&format!("/apps/default/automations/runs/{run_id}"))
        .await;
    assert_eq!(run["requested_by"], producer_id.as_str(), "{run}");
    // Run now and rerun name who asked.
    let (_, now) = send(
        &as_writer,
        Method::POST,
        "/apps/default/automations/w/run",
        None,
    )
    .await;
    assert_eq!(now["requested_by"], writer_id.as_str(), "{now}");
    let (_, again) = server
        .action(&format!("/apps/default/automations/runs/{run_id}/rerun"))
        .await;
    assert_eq!(again["requested_by"], "env", "{again}");
    server.stop().await;
}
