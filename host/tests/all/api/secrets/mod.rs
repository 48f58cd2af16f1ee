//! App secrets over HTTP: write-only values, names and sizes checked, sealed
//! on disk (no file of the data directory holds a value), and a start with
//! the wrong key — or without the key file — refused with a clear error.

use std::path::Path;

use automata::server::{Server, ServerError};
use automata::service::secret_key::{SECRET_KEY_FILE, SecretKey, SecretsConfig};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{TestServer, assert_error};

/// A value no file would hold by chance.
const VALUE: &str = "s3cr3t-VALUE-7b1e5d0c9a8f-for-the-disk-test";

async fn put(server: &TestServer, app: &str, name: &str, body: Value) -> (StatusCode, Value) {
    server
        .call(
            Method::PUT,
            &format!("/apps/{app}/secrets/{name}"),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_write_only_listed_by_name_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;

    let (status, created) = put(&server, "default", "SLACK_WEBHOOK", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "SLACK_WEBHOOK");
    assert_eq!(created["created_by"], "env");
    assert_eq!(created["created_at"], created["updated_at"]);
    let (status, replaced) = put(
        &server,
        "default",
        "SLACK_WEBHOOK",
        json!({"value": format!("{VALUE}-2")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_ne!(replaced["updated_at"], created["updated_at"]);
    let (status, _) = put(
        &server,
        "default",
        "API_TOKEN",
        json!({"value": "12345678"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, list) = server.get("/apps/default/secrets").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_TOKEN", "SLACK_WEBHOOK"]);
    for answer in [&created, &replaced, &list] {
        let text = answer.to_string();
        assert!(!text.contains("s3cr3t"), "a value shown: {text}");
        assert!(!text.contains("12345678"), "a value shown: {text}");
        assert!(
            !text.contains("sealed") && !text.contains("ciphertext"),
            "{text}"
        );
    }
    // Another app has its own secrets.
    let (status, _) = server.post("/apps", json!({"id": "other"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        server.get("/apps/other/secrets").await.1,
        json!({"data": []})
    );

    let (status, _) = server
        .call(Method::DELETE, "/apps/default/secrets/API_TOKEN", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &server
            .call(Method::DELETE, "/apps/default/secrets/API_TOKEN", None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        &["no secret `API_TOKEN` in app `default`"],
    );
    assert_eq!(
        server.get("/apps/default/secrets").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_values_are_refused_without_echoing_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    assert_error(
        &put(&server, "default", "slack-webhook", json!({"value": VALUE})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &[
            "invalid secret name `slack-webhook`",
            "did you mean `SLACK_WEBHOOK`?",
        ],
    );
    assert_error(
        &put(&server, "default", "9LIVES", json!({"value": VALUE})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["not starting with a digit"],
    );
    let short = put(&server, "default", "PIN", json!({"value": "1234"})).await;
    assert_error(
        &short,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["at least 8 bytes", "this one has 4"],
    );
    assert_error(
        &put(
            &server,
            "default",
            "HUGE",
            json!({"value": "x".repeat(64 * 1024 + 1)}),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["at most 65536 bytes"],
    );
    let number = put(
        &server,
        "default",
        "NUMBER",
        json!({"value": 1234567890123u64}),
    )
    .await;
    assert_error(
        &number,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["`value` must be the secret as a JSON string"],
    );
    assert!(
        !number.1.to_string().contains("1234567890123"),
        "{}",
        number.1
    );
    assert_error(
        &put(&server, "default", "TYPO", json!({"valeu": VALUE})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["valeu"],
    );
    assert_error(
        &put(&server, "nope", "TOKEN_1", json!({"value": VALUE})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        &["app `nope` does not exist"],
    );
    // Nothing was stored by any of them.
    assert_eq!(
        server.get("/apps/default/secrets").await.1,
        json!({"data": []})
    );
    server.stop().await;
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_of_the_data_directory_holds_a_value_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, _) = put(&server, "default", "DISK_TEST", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED);
    server.stop().await;

    let encodings = [
        VALUE.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD
            .encode(VALUE)
            .into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(VALUE)
            .into_bytes(),
        VALUE
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
        // A fragment, in case a value were stored split.
        VALUE.as_bytes()[..12].to_vec(),
    ];
    let all = files(dir.path());
    assert!(all.iter().any(|f| f.ends_with(SECRET_KEY_FILE)), "{all:?}");
    for file in &all {
        let bytes = std::fs::read(file).unwrap();
        for needle in &encodings {
            assert!(
                !contains(&bytes, needle),
                "{} holds {}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    // The same data directory starts again with its key file, secret intact.
    let server = TestServer::start(dir.path()).await;
    let (_, list) = server.get("/apps/default/secrets").await;
    assert_eq!(list["data"][0]["name"], "DISK_TEST");
    server.stop().await;
}

async fn start_with(dir: &Path, secrets: SecretsConfig) -> Result<Server, ServerError> {
    Server::bind(&automata::server::ServerConfig {
        secrets,
        ..crate::common::config(dir)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_the_wrong_key_or_no_key_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, _) = put(&server, "default", "KEPT", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED);
    server.stop().await;
    let key_file = dir.path().join(SECRET_KEY_FILE);
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let key = SecretKey::parse(&key_text, "test").unwrap();

    // Another key in AUTOMATA_SECRET_KEY.
    let (other, _) = SecretKey::generate().unwrap();
    let error = start_with(
        dir.path(),
        SecretsConfig {
            key: Some(other.clone()),
            discard_unreadable: false,
        },
    )
    .await
    .err()
    .expect("refused");
    let message = error.to_string();
    for words in [
        "AUTOMATA_SECRET_KEY",
        other.id(),
        &format!("1 with key {}", key.id()),
        "--discard-unreadable-secrets",
    ] {
        assert!(message.contains(words), "`{message}` should say `{words}`");
    }
    assert!(!message.contains(key_text.trim()), "{message}");

    // The right key in AUTOMATA_SECRET_KEY works, even without the file.
    std::fs::rename(&key_file, dir.path().join("moved-key")).unwrap();
    let server = start_with(
        dir.path(),
        SecretsConfig {
            key: Some(key.clone()),
            discard_unreadable: false,
        },
    )
    .await
    .expect("starts with the key it needs");
    drop(server);

    // The key file lost, no key given: refused, not a new key.
    let error = start_with(dir.path(), SecretsConfig::default())
        .await
        .err()
        .expect("refused");
    let message = error.to_string();
    for words in [
        "holds 1 secret(s)",
        key.id(),
        "is missing",
        "--discard-unreadable-secrets",
    ] {
        assert!(message.contains(words), "`{message}` should say `{words}`");
    }
    assert!(!key_file.exists(), "no key was made up");

    // A key file others can read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::rename(dir.path().join("moved-key"), &key_file).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = start_with(dir.path(), SecretsConfig::default())
            .await
            .err()
            .expect("refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::remove_file(&key_file).unwrap();
    }
    #[cfg(not(unix))]
    std::fs::remove_file(dir.path().join("moved-key")).unwrap();

    // The key is lost for good: discard what it sealed, and start afresh.
    let server = TestServer::start_config(automata::server::ServerConfig {
        secrets: SecretsConfig {
            key: None,
            discard_unreadable: true,
        },
        ..crate::common::config(dir.path())
    })
    .await;
    assert_eq!(
        server.get("/apps/default/secrets").await.1,
        json!({"data": []})
    );
    let (status, _) = put(&server, "default", "KEPT", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED);
    server.stop().await;
    let fresh = SecretKey::parse(&std::fs::read_to_string(&key_file).unwrap(), "t").unwrap();
    assert_ne!(fresh.id(), key.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secrets_routes_are_documented_and_take_no_query_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, doc) = server.get("/openapi.json").await;
    let paths = &doc["paths"];
    assert!(
        paths["/apps/{app_id}/secrets"]["get"].is_object(),
        "{paths}"
    );
    for method in ["put", "delete"] {
        assert!(
            paths["/apps/{app_id}/secrets/{name}"][method].is_object(),
            "{method}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Secret"].is_object() && schemas["SecretValue"].is_object());
    for (method, path) in [
        (Method::GET, "/apps/default/secrets"),
        (Method::PUT, "/apps/default/secrets/TOKEN_1"),
        (Method::DELETE, "/apps/default/secrets/TOKEN_1"),
    ] {
        let body = (method == Method::PUT).then(|| json!({"value": VALUE}));
        assert_error(
            &server.call(method, &format!("{path}?verbose"), body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &["verbose"],
        );
    }
    assert_eq!(
        server.get("/apps/default/secrets").await.1,
        json!({"data": []})
    );
    server.stop().await;
}

/// The values the run tests set: one granted, one not.
const GRANTED: &str = "granted-VALUE-3c2b1a0f9e8d";
const UNGRANTED: &str = "ungranted-VALUE-5e4d3c2b1a0f";

/// Sends `thread.created` with `payload` and returns the run's id.
async fn send(server: &TestServer, payload: Value) -> String {
    let (status, receipt) = server
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.created", "payload": payload}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    receipt["run_ids"][0].as_str().expect("one run").to_owned()
}

/// Polls the run until it has ended.
async fn ended(server: &TestServer, run: &str) -> Value {
    for _ in 0..600 {
        let (_, found) = server
            .get(&format!("/apps/default/automations/runs/{run}"))
            .await;
        if ["completed", "failed", "cancelled"].contains(&found["status"].as_str().unwrap_or("")) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {run} did not end");
}

fn assert_masked(what: &str, text: &str) {
    for value in [GRANTED, UNGRANTED, &GRANTED[..14]] {
        assert!(!text.contains(value), "{what} holds {value}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_only_granted_secrets_and_never_shows_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    for (name, value) in [("API_TOKEN", GRANTED), ("OTHER_TOKEN", UNGRANTED)] {
        let (status, _) = put(&server, "default", name, json!({"value": value})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let config = server.upload("hostile").await;
    let automation = server
        .create(json!({
            "name": "Reads secrets", "type": "trigger", "trigger": "thread.created",
            "config_id": config["id"],
            "capabilities": {"secrets": ["API_TOKEN", "NOT_SET"]},
        }))
        .await;
    let id = automation["id"].as_str().unwrap();
    let (status, _) = server
        .action(&format!("/apps/default/automations/{id}/activate"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = server.get("/apps/default/secrets").await;
    assert_eq!(
        list["data"][0]["granted_to"],
        json!([{"id": id, "name": "Reads secrets"}])
    );
    assert_eq!(list["data"][1]["granted_to"], json!([]));

    // Printed (in two writes), logged, on stderr, and returned; the run
    // sleeps so its live output can be read while it runs.
    let run = send(
        &server,
        json!({"case": "secret", "names": ["API_TOKEN", "OTHER_TOKEN", "NOT_SET"],
               "sleep_ms": 1500}),
    )
    .await;
    let output = format!("/apps/default/automations/runs/{run}/output");
    let mut live = Value::Null;
    for _ in 0..200 {
        let (_, found) = server.get(&output).await;
        if found["status"] == "running" && found["data"].as_array().is_some_and(|l| l.len() >= 5) {
            live = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(live["data"][0], "API_TOKEN=***", "{live}");
    assert_masked("live output", &live.to_string());
    let followed = server
        .client
        .get(format!("{}{output}?follow=true", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(followed.contains("API_TOKEN=***"), "{followed}");
    assert_masked("followed output", &followed);

    let done = ended(&server, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_masked("the run", &done.to_string());
    assert_eq!(
        done["result"]["output"],
        json!([
            "API_TOKEN=***",
            "[stderr] stderr has ***",
            "[warn] log has ***",
            "OTHER_TOKEN is not readable",
            "NOT_SET is not readable",
        ])
    );
    assert_eq!(
        done["result"]["payload"],
        json!({"read": {"API_TOKEN": "***", "OTHER_TOKEN": null, "NOT_SET": null},
               "values": ["***"]})
    );
    // Each read is a host call naming the secret, never its value, and
    // saying why a refused one was refused.
    let calls: Vec<Value> = done["host_calls"]
        .as_array()
        .expect("host_calls")
        .iter()
        .map(|call| json!([call["kind"], call["target"], call["error"]]))
        .collect();
    assert_eq!(
        calls,
        [
            json!(["secret", "API_TOKEN", null]),
            json!([
                "secret",
                "OTHER_TOKEN",
                "not granted to this automation (add the name to its capabilities.secrets)"
            ]),
            json!([
                "secret",
                "NOT_SET",
                "not set in app `default` (`automata set secret NOT_SET`)"
            ]),
        ]
    );

    // In the error of a failed run too.
    let run = send(
        &server,
        json!({"case": "secret", "names": ["API_TOKEN"], "end": "error"}),
    )
    .await;
    let failed = ended(&server, &run).await;
    assert_eq!(failed["result"]["error"], "failed holding ***", "{failed}");
    assert_masked("the failed run", &failed.to_string());
    server.stop().await;

    // Nothing the runs left on disk holds a value either.
    for file in files(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for value in [GRANTED, UNGRANTED] {
            assert!(
                !contains(&bytes, value.as_bytes()),
                "{} holds {value}",
                file.display()
            );
        }
    }
}

/// `automata <args>`: exit code and stdout + stderr.
fn automata(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(args)
        .env_remove("AUTOMATA_SECRET_KEY")
        .output()
        .expect("automata runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_carry_secrets_sealed_and_a_restore_needs_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data).await;
    let (status, _) = put(&server, "default", "BACKED_UP", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED);
    server.stop().await;

    let file = dir.path().join("automata.backup");
    let (code, out) = automata(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(code, 0, "{out}");
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !contains(&bytes, VALUE.as_bytes()),
        "the backup holds the value"
    );
    let key_text = std::fs::read_to_string(data.join(SECRET_KEY_FILE)).unwrap();
    assert!(
        !contains(&bytes, key_text.trim().as_bytes()),
        "the backup holds the key"
    );

    let restored = dir.path().join("restored");
    let (code, out) = automata(&[
        "restore".as_ref(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
        "--from".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 secrets."), "{out}");
    assert!(
        out.contains("copy the old data directory's `secret-key`"),
        "{out}"
    );

    // Without the key the copy does not start; with it, the secret is there.
    let error = start_with(&restored, SecretsConfig::default())
        .await
        .err()
        .expect("refused without the key");
    assert!(error.to_string().contains("is missing"), "{error}");
    std::fs::copy(data.join(SECRET_KEY_FILE), restored.join(SECRET_KEY_FILE)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key_file = restored.join(SECRET_KEY_FILE);
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = TestServer::start(&restored).await;
    let (_, list) = server.get("/apps/default/secrets").await;
    assert_eq!(list["data"][0]["name"], "BACKED_UP");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_secret_record_breaks_only_that_secret() {
    use automata::store::{BackupKind, BackupRecord, BackupStore as _, SledStore, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, _) = put(&server, "default", "API_TOKEN", json!({"value": GRANTED})).await;
    assert_eq!(status, StatusCode::CREATED);
    let config = server.upload("hostile").await;
    let automation = server
        .create(json!({
            "name": "Reads secrets", "type": "trigger", "trigger": "thread.created",
            "config_id": config["id"],
            "capabilities": {"secrets": ["API_TOKEN", "DAMAGED"]},
        }))
        .await;
    let id = automation["id"].as_str().unwrap();
    let (status, _) = server
        .action(&format!("/apps/default/automations/{id}/activate"))
        .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    {
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .import(&BackupRecord {
                kind: BackupKind::Secret,
                key: b"default/DAMAGED".to_vec(),
                value: b"{not json".to_vec(),
            })
            .unwrap();
    }

    // The server starts, lists the readable secret and runs with it.
    let server = TestServer::start(dir.path()).await;
    let (status, list) = server.get("/apps/default/secrets").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let run = send(
        &server,
        json!({"case": "secret", "names": ["API_TOKEN", "DAMAGED"]}),
    )
    .await;
    let done = ended(&server, &run).await;
    assert_eq!(
        done["result"]["payload"]["read"],
        json!({"API_TOKEN": "***", "DAMAGED": null}),
        "{done}"
    );
    // Setting it again replaces the damaged record.
    let (status, _) = put(&server, "default", "DAMAGED", json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.get("/apps/default/secrets").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    server.stop().await;
}
