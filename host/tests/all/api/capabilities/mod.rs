//! The `capabilities` grant over HTTP: deny by default, set on create,
//! replaced by PATCH, cleared with `null`, entries checked and put in
//! canonical form, refusals naming the field and the entry.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{TestServer, assert_error, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_deny_by_default_and_are_set_replaced_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;

    let plain = server
        .create(json!({"name": "Plain", "type": "trigger", "trigger": "thread.created"}))
        .await;
    assert_eq!(
        plain["capabilities"],
        json!({"http": {"allowed_hosts": []}, "secrets": []})
    );

    let granted = server
        .create(json!({
            "name": "Granted", "type": "trigger", "trigger": "thread.created",
            "capabilities": {
                "http": {"allowed_hosts": ["HTTPS://Hooks.Example.com", "api.example.com:8443",
                                           "127.0.0.1:9000", "hooks.example.com"]},
                "secrets": ["SLACK_WEBHOOK"],
            },
        }))
        .await;
    let expected = json!({
        "http": {"allowed_hosts": ["https://hooks.example.com", "api.example.com:8443",
                                   "127.0.0.1:9000", "hooks.example.com"]},
        "secrets": ["SLACK_WEBHOOK"],
    });
    assert_eq!(granted["capabilities"], expected);
    let path = format!("/apps/default/automations/{}", id(&granted));
    let (status, shown) = server.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["capabilities"], expected);

    // PATCH replaces the grant whole; an absent part grants nothing.
    let (status, patched) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"capabilities": {"secrets": ["OTHER"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["capabilities"],
        json!({"http": {"allowed_hosts": []}, "secrets": ["OTHER"]})
    );
    // A PATCH without the field keeps it.
    let (_, renamed) = server
        .call(Method::PATCH, &path, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(renamed["capabilities"]["secrets"], json!(["OTHER"]));
    let (status, cleared) = server
        .call(Method::PATCH, &path, Some(json!({"capabilities": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["capabilities"], plain["capabilities"]);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grants_are_refused_naming_the_field_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let create = |capabilities: Value| {
        json!({
            "name": "x", "type": "trigger", "trigger": "thread.created",
            "capabilities": capabilities,
        })
    };
    let cases: [(Value, &[&str]); 7] = [
        (
            json!({"http": {"allowed_hosts": ["https://hooks.example.com/services/T0"]}}),
            &[
                "capabilities.http.allowed_hosts",
                "not a URL",
                "`https://hooks.example.com`",
            ],
        ),
        (
            json!({"http": {"allowed_hosts": ["ftp://files.example.com"]}}),
            &["capabilities.http.allowed_hosts", "`http` or `https`"],
        ),
        (
            json!({"http": {"allowed_hosts": ["example.com:99999"]}}),
            &["not a port"],
        ),
        (
            json!({"http": {"allowed_hosts": ["*.example.com"]}}),
            &["wildcards"],
        ),
        (
            json!({"secrets": ["slack-webhook"]}),
            &[
                "capabilities.secrets",
                "`slack-webhook` is not a secret name",
            ],
        ),
        (json!({"http": {"hosts": ["example.com"]}}), &["hosts"]),
        (json!({"network": true}), &["network"]),
    ];
    for (capabilities, words) in cases {
        let response = server
            .post("/apps/default/automations", create(capabilities.clone()))
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "invalid_request", words);
    }
    let plain = server
        .create(json!({"name": "Plain", "type": "trigger", "trigger": "thread.created"}))
        .await;
    let response = server
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{}", id(&plain)),
            Some(json!({"capabilities": {"secrets": ["1PASSWORD"]}})),
        )
        .await;
    assert_error(
        &response,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["capabilities.secrets", "1PASSWORD"],
    );
    server.stop().await;
}
