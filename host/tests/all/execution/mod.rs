//! The execution plane over HTTP: a real server on a loopback port runs the
//! example components (and the `hostile` and `sleeper` fixtures) on events,
//! cron ticks and run actions; retries, policies, shutdown and recovery after
//! SIGKILL included.

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automata::api::scrape::dir_bytes;
use automata::domain::ids::{AppId, AutomationId};
use automata::domain::retention::RetentionPolicy;
use automata::domain::run::RunStatus;
use automata::execution::ExecutionConfig;
use automata::metrics::{Metrics, MetricsOptions};
use automata::retention::{Retention, RetentionConfig};
use automata::service::ServiceSettings;
use automata_e2e::guest;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, InProcessServer};

/// An HTTP client for one server's base URL.
#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        Api {
            base,
            client: common::admin_client(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn upload(&self, app: &str, name: &str) -> String {
        let response = self
            .client
            .post(format!("{}/apps/{app}/configs", self.base))
            .header("content-type", "application/wasm")
            .body(guest(name))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "upload {name}");
        let config: Value = response.json().await.unwrap();
        id(&config)
    }

    /// Creates an automation in `app`, activated unless it says `"draft"`.
    async fn automation(&self, app: &str, mut body: Value, activate: bool) -> String {
        body["name"] = body.get("name").cloned().unwrap_or(json!("test"));
        let (status, created) = self.post(&format!("/apps/{app}/automations"), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let automation = id(&created);
        if activate {
            let (status, active) = self
                .post(
                    &format!("/apps/{app}/automations/{automation}/activate"),
                    json!(null),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{active}");
        }
        automation
    }

    /// A running trigger automation of the default app on `event`.
    async fn trigger(&self, event: &str, config: &str, extra: Value) -> String {
        let mut body = json!({"type": "trigger", "trigger": event, "config_id": config});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.automation("default", body, true).await
    }

    /// Two running trigger automations of `config` on
    /// `thread.member_joined`: every such event fans out to both.
    async fn two_listeners(&self, config: &str) -> [String; 2] {
        [
            self.trigger("thread.member_joined", config, json!({}))
                .await,
            self.trigger("thread.member_joined", config, json!({}))
                .await,
        ]
    }

    async fn pause(&self, automation: &str) {
        let (status, paused) = self
            .post(
                &format!("/apps/default/automations/{automation}/pause"),
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{paused}");
    }

    /// Sends an event to the default app; the first run it created.
    async fn first_run(&self, event: Value) -> String {
        let receipt = self.send_event("default", event).await;
        receipt["run_ids"][0].as_str().expect("a run").to_owned()
    }

    async fn wait_running(&self, run: &str) {
        self.wait_run("default", run, Duration::from_secs(10), |run| {
            status(run) == "running"
        })
        .await;
    }

    async fn send_event(&self, app: &str, event: Value) -> Value {
        let (status, receipt) = self.post(&format!("/apps/{app}/events"), event).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
        receipt
    }

    async fn run(&self, app: &str, run: &str) -> Value {
        self.get(&format!("/apps/{app}/automations/runs/{run}"))
            .await
    }

    /// Every run of an automation, oldest first.
    async fn runs(&self, app: &str, automation: &str) -> Vec<Value> {
        let page = self
            .get(&format!(
                "/apps/{app}/automations/{automation}/runs?limit=100"
            ))
            .await;
        let mut runs = page["data"].as_array().unwrap().clone();
        runs.reverse();
        runs
    }

    /// Polls a run until `done` holds, for at most `within`.
    async fn wait_run(
        &self,
        app: &str,
        run: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let current = self.run(app, run).await;
            if done(&current) {
                return current;
            }
            assert!(
                Instant::now() < deadline,
                "run never got there: {current:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_ended(&self, app: &str, run: &str) -> Value {
        self.wait_run(app, run, Duration::from_secs(20), |run| {
            ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap())
        })
        .await
    }

    /// Polls an automation's runs until `done` holds, for at most `within`.
    async fn wait_runs(
        &self,
        app: &str,
        automation: &str,
        within: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let runs = self.runs(app, automation).await;
            if done(&runs) {
                return runs;
            }
            assert!(Instant::now() < deadline, "runs never got there: {runs:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

fn status(run: &Value) -> &str {
    run["status"].as_str().unwrap()
}

fn count(runs: &[Value], wanted: &str) -> usize {
    runs.iter().filter(|run| status(run) == wanted).count()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// A server running in this process on 127.0.0.1:0, with a client.
struct TestServer {
    api: Api,
    server: InProcessServer,
}

impl TestServer {
    async fn start(data_dir: &Path, execution: ExecutionConfig) -> Self {
        let server = InProcessServer::start(data_dir, ServiceSettings::default(), execution).await;
        TestServer {
            api: Api::new(server.base.clone()),
            server,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

fn workers(workers: usize) -> ExecutionConfig {
    ExecutionConfig {
        workers,
        ..ExecutionConfig::default()
    }
}

fn welcome_payload() -> Value {
    json!({"member": {"id": "usr_ada", "name": "Ada"}, "thread": {"id": "thr_1", "name": "General"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_fans_out_to_exactly_the_matching_running_automations() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let welcome = api.upload("default", "welcome-new-members").await;
    let sleeper = api.upload("default", "sleeper").await;
    let (code, _) = api.post("/apps", json!({"id": "other"})).await;
    assert_eq!(code, StatusCode::CREATED);
    let other_welcome = api.upload("other", "welcome-new-members").await;
    let joined = |config: &str| json!({"type": "trigger", "trigger": "thread.member_joined", "config_id": config});
    let running = api.automation("default", joined(&welcome), true).await;
    let also_running = api.automation("default", joined(&welcome), true).await;
    let draft = api.automation("default", joined(&welcome), false).await;
    let paused = api.automation("default", joined(&welcome), true).await;
    api.pause(&paused).await;
    let other_event = api.trigger("thread.created", &sleeper, json!({})).await;
    let other_app = api.automation("other", joined(&other_welcome), true).await;

    let receipt = api
        .send_event(
            "default",
            json!({"trigger": "thread.member_joined", "payload": welcome_payload()}),
        )
        .await;
    assert_eq!(receipt["trigger"], "thread.member_joined");
    let run_ids: Vec<String> = receipt["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(run_ids.len(), 2, "{receipt}");
    let mut owners = Vec::new();
    for run_id in &run_ids {
        assert!(run_id.starts_with("atr_"));
        let run = api.wait_ended("default", run_id).await;
        assert_eq!(status(&run), "completed", "{run:#}");
        assert_eq!(
            run["input"],
            json!({"trigger": "thread.member_joined", "payload": welcome_payload()})
        );
        assert_eq!(run["result"]["output"], json!(["Welcome to General, Ada!"]));
        assert_eq!(run["result"]["payload"]["member_id"], "usr_ada");
        assert!(run["accounting"]["fuel_consumed"].as_u64().unwrap() > 0);
        assert!(
            run["config_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let history: Vec<&str> = run["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| change["status"].as_str().unwrap())
            .collect();
        assert_eq!(history, ["pending", "running", "completed"]);
        owners.push(run["automation_id"].as_str().unwrap().to_owned());
    }
    owners.sort();
    let mut expected = vec![running.clone(), also_running];
    expected.sort();
    assert_eq!(owners, expected);
    for idle in [&draft, &paused, &other_event] {
        assert!(api.runs("default", idle).await.is_empty());
    }
    assert!(api.runs("other", &other_app).await.is_empty());

    // The other app's event reaches only its own automation.
    let receipt = api
        .send_event("other", json!({"trigger": "thread.member_joined"}))
        .await;
    assert_eq!(receipt["run_ids"].as_array().unwrap().len(), 1);
    assert_eq!(api.runs("default", &running).await.len(), 1);

    // Unknown events and malformed bodies are refused.
    let (code, error) = api
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.exploded"}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("thread.exploded")
    );
    let (code, _) = api
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.created", "x": 1}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = api
        .post("/apps/bad.app/events", json!({"trigger": "thread.created"}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_dedupe_and_replay_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let welcome = api.upload("default", "welcome-new-members").await;
    let automation = api
        .trigger("thread.member_joined", &welcome, json!({}))
        .await;
    let event = json!({"trigger": "thread.member_joined", "payload": welcome_payload(), "idempotency_key": "join-42"});
    let first = api
        .client
        .post(format!("{}/apps/default/events", api.base))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = api
        .client
        .post(format!("{}/apps/default/events", api.base))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(api.runs("default", &automation).await.len(), 1);

    // Another key, or the same key in another app, is a new event.
    let mut other = event.clone();
    other["idempotency_key"] = json!("join-43");
    let second = api.send_event("default", other).await;
    assert_ne!(second["run_ids"], first["run_ids"]);
    assert_eq!(api.runs("default", &automation).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_stands_for_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let welcome = api.upload("default", "welcome-new-members").await;
    let automation = api
        .trigger("thread.member_joined", &welcome, json!({}))
        .await;
    let event = json!({"trigger": "thread.member_joined", "payload": welcome_payload(), "idempotency_key": "join-7"});
    let first = api.send_event("default", event.clone()).await;
    // The same key with another payload is a 422 naming the key, not a
    // silent replay of the first answer (Stripe's rule).
    let mut changed = event.clone();
    changed["payload"]["member"]["name"] = json!("Grace");
    let (status, body) = api.post("/apps/default/events", changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unprocessable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`join-7`") && message.contains("different request"),
        "{message}"
    );
    // Another trigger under the key too.
    let mut other_trigger = event.clone();
    other_trigger["trigger"] = json!("thread.created");
    let (status, _) = api.post("/apps/default/events", other_trigger).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The same request, keys in another order, still replays.
    let reordered = json!({"idempotency_key": "join-7", "payload": {"thread": welcome_payload()["thread"], "member": welcome_payload()["member"]}, "trigger": "thread.member_joined"});
    let (status, again) = api.post("/apps/default/events", reordered).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, first);
    assert!(again.get("request_sha256").is_none(), "{again}");
    assert_eq!(api.runs("default", &automation).await.len(), 1);

    // The length limit counts characters: 255 `é` (510 bytes) are accepted,
    // 256 are not.
    let mut long = event.clone();
    long["idempotency_key"] = json!("é".repeat(255));
    let (status, body) = api.post("/apps/default/events", long.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    long["idempotency_key"] = json!("é".repeat(256));
    let (status, body) = api.post("/apps/default/events", long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1-255 characters")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_new_key_create_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let welcome = api.upload("default", "welcome-new-members").await;
    let automations = api.two_listeners(&welcome).await;
    for round in 0..5 {
        let event = json!({"trigger": "thread.member_joined", "payload": welcome_payload(), "idempotency_key": format!("burst-{round}")});
        let answers = futures_util::future::join_all((0..16).map(|_| {
            api.client
                .post(format!("{}/apps/default/events", api.base))
                .json(&event)
                .send()
        }))
        .await;
        let mut receipts = Vec::new();
        let mut fresh = 0;
        for answer in answers {
            let answer = answer.unwrap();
            assert_eq!(answer.status(), StatusCode::ACCEPTED);
            if answer.headers().get("idempotent-replayed").is_none() {
                fresh += 1;
            }
            receipts.push(answer.json::<Value>().await.unwrap());
        }
        assert_eq!(
            fresh, 1,
            "round {round}: one answer creates, the rest replay"
        );
        assert!(receipts.iter().all(|r| r == &receipts[0]), "{receipts:?}");
        assert_eq!(receipts[0]["run_ids"].as_array().unwrap().len(), 2);
    }
    for automation in &automations {
        assert_eq!(api.runs("default", automation).await.len(), 5);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seconds_cron_runs_with_correct_scheduled_at_and_pause_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let digest = api.upload("default", "daily-digest").await;
    let activated_at = Utc::now();
    let automation = api
        .automation(
            "default",
            json!({"type": "scheduled", "schedule": "*/1 * * * * *", "config_id": digest, "run_as_user_id": "usr_abc123"}),
            true,
        )
        .await;
    let runs = api
        .wait_runs("default", &automation, Duration::from_secs(10), |runs| {
            count(runs, "completed") >= 3
        })
        .await;
    let completed: Vec<&Value> = runs.iter().filter(|r| status(r) == "completed").collect();
    let mut previous: Option<DateTime<Utc>> = None;
    for run in &completed {
        let scheduled_at = time(&run["scheduled_at"]);
        assert_eq!(scheduled_at.timestamp_subsec_nanos(), 0, "whole seconds");
        assert!(scheduled_at > activated_at - chrono::TimeDelta::seconds(1));
        assert_eq!(
            run["input"],
            json!({"trigger": "workflow.scheduled", "payload": {"scheduled_at": run["scheduled_at"]}})
        );
        // Created at its due time (not early, not much later).
        let lateness = time(&run["created_at"]) - scheduled_at;
        assert!(
            lateness >= chrono::TimeDelta::zero() && lateness < chrono::TimeDelta::seconds(2),
            "{lateness}"
        );
        assert_eq!(run["run_as_user_id"], "usr_abc123");
        assert_eq!(run["result"]["payload"]["recipient"], "usr_abc123");
        assert_eq!(
            run["result"]["payload"]["period"]["to"],
            run["scheduled_at"]
        );
        if let Some(previous) = previous {
            assert_eq!(scheduled_at - previous, chrono::TimeDelta::seconds(1));
        }
        previous = Some(scheduled_at);
    }
    let shown = api
        .get(&format!("/apps/default/automations/{automation}"))
        .await;
    assert!(time(&shown["next_run_at"]) > previous.unwrap());

    api.pause(&automation).await;
    let after_pause = api.runs("default", &automation).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = api.runs("default", &automation).await;
    assert_eq!(runs.len(), after_pause, "no ticks while paused");
    assert_eq!(count(&runs, "pending") + count(&runs, "running"), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_cancels_pending_runs_and_the_queue_pushes_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExecutionConfig {
        workers: 1,
        queue_capacity: 3,
        ..ExecutionConfig::default()
    };
    let server = TestServer::start(dir.path(), config).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api.trigger("thread.created", &sleeper, json!({})).await;
    // The first run holds the only worker; the next three wait.
    let first = api
        .send_event(
            "default",
            json!({"trigger": "thread.created", "payload": {"sleep_ms": 1500}}),
        )
        .await;
    let first = first["run_ids"][0].as_str().unwrap().to_owned();
    api.wait_running(&first).await;
    for _ in 0..3 {
        api.send_event("default", json!({"trigger": "thread.created"}))
            .await;
    }
    let (code, error) = api
        .post("/apps/default/events", json!({"trigger": "thread.created"}))
        .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{error}");
    assert_eq!(error["error"]["code"], "too_many_requests");

    api.pause(&automation).await;
    let runs = api.runs("default", &automation).await;
    let cancelled: Vec<&Value> = runs.iter().filter(|r| status(r) == "cancelled").collect();
    assert_eq!(cancelled.len(), 3, "{runs:#?}");
    for run in cancelled {
        assert_eq!(run["reason"], "automation paused");
    }
    // The running run was not pending: it finishes normally.
    let first = api.wait_ended("default", &first).await;
    assert_eq!(status(&first), "completed");
    // Room again: the queue took back the cancelled runs.
    api.send_event("default", json!({"trigger": "thread.created"}))
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fail_with_the_spec_message_and_cancel_interrupts_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let hostile = api.upload("default", "hostile").await;
    let quick = api
        .trigger(
            "thread.created",
            &hostile,
            json!({"limits": {"timeout_ms": 300, "fuel": 500_000_000_000u64}}),
        )
        .await;
    let receipt = api
        .send_event(
            "default",
            json!({"trigger": "thread.created", "payload": {"case": "loop"}}),
        )
        .await;
    let run = api
        .wait_ended("default", receipt["run_ids"][0].as_str().unwrap())
        .await;
    assert_eq!(status(&run), "failed", "{run:#}");
    assert_eq!(run["result"]["error"], "Script execution timed out");

    // A long budget: only cancelling ends the loop.
    api.pause(&quick).await;
    let patient = api
        .trigger(
            "thread.created",
            &hostile,
            json!({"limits": {"timeout_ms": 600_000, "fuel": 500_000_000_000u64}}),
        )
        .await;
    let looping = api
        .first_run(json!({"trigger": "thread.created", "payload": {"case": "loop"}}))
        .await;
    api.wait_running(&looping).await;
    let asked = Instant::now();
    let (code, cancelled) = api
        .post(
            &format!("/apps/default/automations/runs/{looping}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(status(&cancelled), "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["reason"], "cancelled by operator");
    assert_eq!(
        cancelled["cancelled_by"], "env",
        "the admin key of the tests"
    );
    assert_eq!(cancelled["result"]["error"], "Run cancelled");
    assert!(asked.elapsed() < Duration::from_secs(3));
    let (code, error) = api
        .post(
            &format!("/apps/default/automations/runs/{looping}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{error}");
    let (code, _) = api
        .post(
            "/apps/default/automations/runs/atr_nope/cancel",
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(api.runs("default", &patient).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_create_linked_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api
        .trigger(
            "thread.created",
            &sleeper,
            json!({"retry": {"max_attempts": 3, "backoff_base_ms": 50, "backoff_max_ms": 200}}),
        )
        .await;
    // Traps on attempts 1 and 2; attempt 3 succeeds.
    api.send_event(
        "default",
        json!({"trigger": "thread.created", "payload": {"trap_before_attempt": 3}}),
    )
    .await;
    let runs = api
        .wait_runs("default", &automation, Duration::from_secs(15), |runs| {
            count(runs, "completed") == 1
        })
        .await;
    assert_eq!(runs.len(), 3, "{runs:#?}");
    for (index, run) in runs.iter().enumerate() {
        assert_eq!(run["attempt"], index + 1);
        assert_eq!(run["input"], runs[0]["input"]);
        match index {
            0 => assert!(run.get("retry_of").is_none_or(Value::is_null)),
            _ => assert_eq!(run["retry_of"], runs[index - 1]["id"]),
        }
    }
    assert_eq!(status(&runs[0]), "failed");
    assert_eq!(status(&runs[1]), "failed");
    assert_eq!(runs[2]["result"]["payload"]["attempt"], 3);
    // The backoff held each retry back.
    assert!(time(&runs[1]["not_before"]) > time(&runs[0]["finished_at"]));

    // A workflow's own error is not retried by default.
    api.send_event(
        "default",
        json!({"trigger": "thread.created", "payload": {"error": "no such thread"}}),
    )
    .await;
    let runs = api
        .wait_runs("default", &automation, Duration::from_secs(10), |runs| {
            runs.len() == 4 && status(&runs[3]) == "failed"
        })
        .await;
    assert_eq!(runs[3]["result"]["error"], "no such thread");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.runs("default", &automation).await.len(), 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_works_for_drafts_and_rerun_links_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let digest = api.upload("default", "daily-digest").await;
    let draft = api
        .automation(
            "default",
            json!({"type": "scheduled", "schedule": "0 9 * * *", "config_id": digest, "lookup_key": "digest"}),
            false,
        )
        .await;
    let (code, run) = api
        .post(
            "/apps/default/automations/digest/run",
            json!({"payload": {"scheduled_at": "2026-02-28T09:00:00Z", "activity": [{"thread": "ops"}]}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{run}");
    assert_eq!(status(&run), "pending");
    assert_eq!(run["automation_id"], draft.as_str());
    let run = api.wait_ended("default", &id(&run)).await;
    assert_eq!(status(&run), "completed", "{run:#}");
    assert_eq!(
        run["result"]["payload"]["title"],
        "Daily digest for Saturday 28 February 2026"
    );

    // Without a body: a scheduled tick at now.
    let response = api
        .client
        .post(format!("{}/apps/default/automations/{draft}/run", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let bare: Value = response.json().await.unwrap();
    assert_eq!(bare["input"]["trigger"], "workflow.scheduled");
    assert!(bare["input"]["payload"]["scheduled_at"].is_string());

    let (code, rerun) = api
        .post(
            &format!("/apps/default/automations/runs/{}/rerun", id(&run)),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{rerun}");
    assert_eq!(rerun["rerun_of"], run["id"]);
    assert_eq!(rerun["input"], run["input"]);
    let rerun = api.wait_ended("default", &id(&rerun)).await;
    assert_eq!(rerun["result"], run["result"]);

    // Refusals: no config (422), an unknown trigger (400), unknown ids (404).
    let bare_automation = api
        .automation(
            "default",
            json!({"type": "trigger", "trigger": "thread.created"}),
            false,
        )
        .await;
    let (code, _) = api
        .post(
            &format!("/apps/default/automations/{bare_automation}/run"),
            json!({}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = api
        .post(
            &format!("/apps/default/automations/{draft}/run"),
            json!({"trigger": "nope"}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, error) = api
        .post(
            &format!("/apps/default/automations/{draft}/run"),
            json!({"paylod": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("paylod"),
        "{error}"
    );
    let (code, _) = api
        .post("/apps/default/automations/nothing-here/run", json!({}))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = api
        .post(
            &format!("/apps/other/automations/runs/{}/rerun", id(&run)),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_policies_skip_or_queue_ticks_while_a_run_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(4)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    // Each run sleeps 2.5 s; ticks come every second.
    let slow = |overlap: &str| {
        json!({"type": "scheduled", "schedule": "*/1 * * * * *", "config_id": sleeper,
               "run_as_user_id": "sleep-2500", "overlap": overlap})
    };
    let skip = api.automation("default", slow("skip"), true).await;
    let queue = api.automation("default", slow("queue"), true).await;
    let skipped = api
        .wait_runs("default", &skip, Duration::from_secs(10), |runs| {
            count(runs, "cancelled") >= 2
        })
        .await;
    for run in skipped.iter().filter(|r| status(r) == "cancelled") {
        assert_eq!(run["reason"], "overlap");
        assert!(run["scheduled_at"].is_string());
    }
    assert_eq!(count(&skipped, "running") + count(&skipped, "pending"), 1);
    let queued = api.runs("default", &queue).await;
    assert_eq!(count(&queued, "cancelled"), 0, "{queued:#?}");
    assert_eq!(count(&queued, "running"), 1, "one at a time: {queued:#?}");
    assert!(count(&queued, "pending") >= 1, "{queued:#?}");
    for automation in [&skip, &queue] {
        api.pause(automation).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_policies_record_the_runs_they_promise_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(4)).await;
    let api = server.api.clone();
    let digest = api.upload("default", "daily-digest").await;
    let every_second = |catchup: &str| {
        json!({"type": "scheduled", "schedule": "*/1 * * * * *", "config_id": digest,
               "catchup": catchup, "catchup_window_seconds": 60})
    };
    let skip = api.automation("default", every_second("skip"), true).await;
    let run_once = api
        .automation("default", every_second("run_once"), true)
        .await;
    let run_all = api
        .automation("default", every_second("run_all"), true)
        .await;
    for automation in [&skip, &run_once, &run_all] {
        api.wait_runs("default", automation, Duration::from_secs(10), |runs| {
            count(runs, "completed") >= 1
        })
        .await;
    }
    server.stop().await;
    let stopped_at = Utc::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server = TestServer::start(dir.path(), workers(4)).await;
    let restarted_at = Utc::now();
    let api = server.api.clone();
    let late = |runs: &[Value]| -> Vec<Value> {
        runs.iter()
            .filter(|run| {
                let at = time(&run["scheduled_at"]);
                at > stopped_at && at < restarted_at - chrono::TimeDelta::seconds(2)
            })
            .cloned()
            .collect()
    };
    let missed_record = |runs: &[Value]| -> Vec<Value> {
        runs.iter()
            .filter(|run| run["reason"] == "missed")
            .cloned()
            .collect()
    };

    // skip: the missed ticks leave one cancelled record, and none runs.
    let runs = api
        .wait_runs("default", &skip, Duration::from_secs(10), |runs| {
            !missed_record(runs).is_empty()
        })
        .await;
    let missed = missed_record(&runs);
    assert_eq!(missed.len(), 1, "{runs:#?}");
    assert_eq!(status(&missed[0]), "cancelled");
    assert!(
        missed[0]["result"]["error"]
            .as_str()
            .unwrap()
            .starts_with("missed ")
    );
    assert!(late(&runs).iter().all(|run| run["reason"] == "missed"));

    // run_once: the latest missed tick runs; the earlier ones are one record.
    let runs = api
        .wait_runs("default", &run_once, Duration::from_secs(10), |runs| {
            late(runs).iter().any(|run| status(run) == "completed")
        })
        .await;
    let ran: Vec<Value> = late(&runs)
        .into_iter()
        .filter(|r| r["reason"] != "missed")
        .collect();
    assert_eq!(ran.len(), 1, "{runs:#?}");
    assert_eq!(missed_record(&runs).len(), 1);
    assert!(time(&missed_record(&runs)[0]["scheduled_at"]) < time(&ran[0]["scheduled_at"]));

    // run_all: every missed tick in the window runs; nothing is recorded missed.
    let runs = api
        .wait_runs("default", &run_all, Duration::from_secs(10), |runs| {
            let late = late(runs);
            late.len() >= 2 && late.iter().all(|run| status(run) == "completed")
        })
        .await;
    assert!(missed_record(&runs).is_empty(), "{runs:#?}");
    let mut ticks: Vec<DateTime<Utc>> = runs.iter().map(|run| time(&run["scheduled_at"])).collect();
    ticks.sort();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::TimeDelta::seconds(1),
            "no tick lost: {ticks:?}"
        );
    }
    for automation in [&skip, &run_once, &run_all] {
        api.pause(automation).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_runs_still_executing_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExecutionConfig {
        workers: 2,
        shutdown_grace: Duration::from_millis(200),
        ..ExecutionConfig::default()
    };
    let server = TestServer::start(dir.path(), config.clone()).await;
    let api = server.api.clone();
    let sleeper = api.upload("default", "sleeper").await;
    api.trigger("thread.created", &sleeper, json!({})).await;
    let run = api
        .first_run(json!({"trigger": "thread.created", "payload": {"sleep_ms": 60_000}}))
        .await;
    api.wait_running(&run).await;
    let stopping = Instant::now();
    server.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let server = TestServer::start(dir.path(), config).await;
    let stopped = server.api.run("default", &run).await;
    assert_eq!(status(&stopped), "cancelled", "{stopped:#}");
    assert_eq!(stopped["reason"], "host shut down");
    assert_eq!(stopped["result"]["output"][1], "sleeping 60000 ms");
    server.stop().await;
}

/// `automata serve` as a child process.
struct Process {
    child: Child,
    api: Api,
}

fn spawn_serve(data_dir: &Path) -> Process {
    let serve = automata_e2e::spawn_serve(
        env!("CARGO_BIN_EXE_automata"),
        data_dir,
        &["--workers", "1"],
    );
    Process {
        child: serve.child,
        api: Api::new(serve.url),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_sigkill_fails_and_no_accepted_event_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn_serve(dir.path());
    let api = process.api.clone();
    let sleeper = api.upload("default", "sleeper").await;
    let retried = api
        .trigger(
            "thread.created",
            &sleeper,
            json!({"retry": {"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 10}}),
        )
        .await;
    let welcome = api.upload("default", "welcome-new-members").await;
    let plain = api
        .trigger("thread.member_joined", &welcome, json!({}))
        .await;
    // Sleeps on its first attempt only; it is running when the host dies.
    let interrupted = api.first_run(json!({"trigger": "thread.created", "payload": {"sleep_ms": 60_000, "sleep_until_attempt": 2}})).await;
    api.wait_running(&interrupted).await;
    // Running in memory, or on disk too: every read says running.
    let running = api
        .get("/apps/default/automations/runs?status=running")
        .await;
    assert_eq!(running["data"][0]["id"], interrupted.as_str(), "{running}");
    let pending = api
        .get(&format!(
            "/apps/default/automations/{retried}/runs?status=pending"
        ))
        .await;
    assert_eq!(pending["data"], json!([]), "{pending}");
    // Its start reaches the disk once it has run for 50 ms (before, it is
    // running in memory only, and a crash would leave it pending to run
    // again): give that, and the flush within 10 ms after, ample time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Accepted while the only worker is busy: pending when the host dies.
    let mut accepted = Vec::new();
    for n in 0..3 {
        let receipt = api
            .send_event(
                "default",
                json!({"trigger": "thread.member_joined", "payload": {"n": n}}),
            )
            .await;
        accepted.push(receipt["run_ids"][0].as_str().unwrap().to_owned());
    }
    process.child.kill().unwrap();
    process.child.wait().unwrap();

    let mut process = spawn_serve(dir.path());
    let api = process.api.clone();
    let failed = api.run("default", &interrupted).await;
    assert_eq!(status(&failed), "failed", "{failed:#}");
    assert_eq!(failed["reason"], "host restarted during run");
    assert_eq!(failed["result"]["error"], "host restarted during run");
    for run in &accepted {
        let run = api.wait_ended("default", run).await;
        assert_eq!(status(&run), "completed", "{run:#}");
    }
    assert_eq!(api.runs("default", &plain).await.len(), 3);
    // The retry policy re-queues the interrupted run as its next attempt.
    let runs = api
        .wait_runs("default", &retried, Duration::from_secs(10), |runs| {
            runs.len() == 2 && status(&runs[1]) == "completed"
        })
        .await;
    assert_eq!(runs[1]["attempt"], 2);
    assert_eq!(runs[1]["retry_of"], interrupted.as_str());
    process.child.kill().unwrap();
    process.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_an_automations_runs_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(4)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api
        .trigger("thread.created", &sleeper, json!({"max_concurrency": 1}))
        .await;
    let slow = json!({"trigger": "thread.created", "payload": {"sleep_ms": 400}});
    let first = api.first_run(slow.clone()).await;
    let second = api.first_run(slow).await;
    let first = api.wait_ended("default", &first).await;
    let second = api.wait_ended("default", &second).await;
    assert_eq!(
        (status(&first), status(&second)),
        ("completed", "completed")
    );
    // One at a time, although workers were free.
    assert!(
        time(&second["started_at"]) >= time(&first["finished_at"]),
        "{second:#}"
    );

    // Lifting the limit lets them overlap.
    let (code, _) = api
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{automation}"),
            Some(json!({"max_concurrency": null})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let slow = json!({"trigger": "thread.created", "payload": {"sleep_ms": 400}});
    let third = api.first_run(slow.clone()).await;
    let fourth = api.first_run(slow).await;
    let third = api.wait_ended("default", &third).await;
    let fourth = api.wait_ended("default", &fourth).await;
    assert!(
        time(&fourth["started_at"]) < time(&third["finished_at"]),
        "{fourth:#}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_in_one_app_does_not_delay_another_apps_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let (code, _) = api.post("/apps", json!({"id": "busy"})).await;
    assert_eq!(code, StatusCode::CREATED);
    for app in ["busy", "default"] {
        let sleeper = api.upload(app, "sleeper").await;
        let body = json!({"type": "trigger", "trigger": "thread.created", "config_id": sleeper});
        api.automation(app, body, true).await;
    }
    // Six long runs in one app: two execute, four wait.
    let slow = json!({"trigger": "thread.created", "payload": {"sleep_ms": 700}});
    let mut backlog = Vec::new();
    for _ in 0..6 {
        let receipt = api.send_event("busy", slow.clone()).await;
        backlog.push(receipt["run_ids"][0].as_str().unwrap().to_owned());
    }
    let other = api
        .send_event("default", json!({"trigger": "thread.created"}))
        .await;
    let other = other["run_ids"][0].as_str().unwrap().to_owned();
    let other = api.wait_ended("default", &other).await;
    assert_eq!(status(&other), "completed", "{other:#}");
    // It took the first worker the busy app freed, ahead of that app's
    // four waiting runs: at most one more of them started before it.
    let mut started_before = 0;
    for run in &backlog[2..] {
        let run = api.wait_ended("busy", run).await;
        if time(&run["started_at"]) < time(&other["started_at"]) {
            started_before += 1;
        }
    }
    assert!(
        started_before <= 1,
        "{started_before} of the backlog went first"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_execution_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(1)).await;
    let doc = server.api.get("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/apps/{app_id}/events",
        "/apps/{app_id}/automations/{id}/run",
        "/apps/{app_id}/automations/runs/{run_id}/cancel",
        "/apps/{app_id}/automations/runs/{run_id}/rerun",
    ] {
        assert!(paths[path].get("post").is_some(), "POST {path} missing");
    }
    let responses = &paths["/apps/{app_id}/events"]["post"]["responses"];
    for status in ["202", "400", "429"] {
        assert!(
            responses.get(status).is_some(),
            "{status} missing: {responses}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in ["IncomingEvent", "EventReceipt", "RunNowRequest"] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    server.stop().await;
}

/// The value of the sample `series` (name and labels, exactly as exposed)
/// in a `/metrics` text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        ExecutionConfig {
            workers: 1,
            queue_capacity: 1,
            ..ExecutionConfig::default()
        },
    )
    .await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let quick = api
        .trigger(
            "thread.created",
            &sleeper,
            json!({"limits": {"timeout_ms": 300}}),
        )
        .await;
    let event = |payload: Value| json!({"trigger": "thread.created", "payload": payload});
    // Completed, failed by the workflow's error, failed by the timeout.
    for payload in [
        json!({}),
        json!({"error": "boom"}),
        json!({"sleep_ms": 5000}),
    ] {
        let run = api.first_run(event(payload)).await;
        api.wait_ended("default", &run).await;
    }
    // The same idempotency key twice: one run, one replay.
    let keyed = json!({"trigger": "thread.created", "payload": {}, "idempotency_key": "k1"});
    let run = api.first_run(keyed.clone()).await;
    api.first_run(keyed).await;
    api.wait_ended("default", &run).await;

    // A draft's run-now occupies the only worker; one event waits, the
    // next finds the queue full (429); the long run is cancelled.
    let patient = api
        .automation(
            "default",
            json!({"type": "trigger", "trigger": "thread.created", "config_id": sleeper,
                   "limits": {"timeout_ms": 60_000}}),
            false,
        )
        .await;
    let (code, long) = api
        .post(
            &format!("/apps/default/automations/{patient}/run"),
            json!({"payload": {"sleep_ms": 30_000}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{long}");
    api.wait_running(&id(&long)).await;
    let waiting = api.first_run(event(json!({}))).await;
    let (code, refused) = api.post("/apps/default/events", event(json!({}))).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    let (code, cancelled) = api
        .post(
            &format!("/apps/default/automations/runs/{}/cancel", id(&long)),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    api.wait_ended("default", &waiting).await;
    assert_eq!(api.runs("default", &quick).await.len(), 5);

    let response = reqwest::get(&server.server.metrics_url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    let ended = |status: &str, failure: &str, reason: &str| {
        sample(
            &text,
            &format!(
                "automata_runs_ended_total{{app=\"default\",trigger_kind=\"event\",status=\"{status}\",failure_kind=\"{failure}\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(ended("completed", "", ""), 3.0);
    assert_eq!(ended("failed", "guest_error", ""), 1.0);
    assert_eq!(ended("failed", "timeout", ""), 1.0);
    assert_eq!(ended("cancelled", "", "cancelled by operator"), 1.0);
    let created = |origin: &str| {
        sample(
            &text,
            &format!(
                "automata_runs_created_total{{app=\"default\",trigger_kind=\"event\",origin=\"{origin}\"}}"
            ),
        )
    };
    assert_eq!(created("event"), 5.0);
    assert_eq!(created("run_now"), 1.0);
    for (series, value) in [
        ("automata_events_received_total{app=\"default\"}", 7.0),
        ("automata_events_replayed_total{app=\"default\"}", 1.0),
        ("automata_events_refused_total{app=\"default\"}", 1.0),
        ("automata_run_duration_seconds_count", 6.0),
        ("automata_run_queue_wait_seconds_count", 6.0),
        ("automata_run_fuel_consumed_count", 6.0),
        (
            "automata_http_requests_total{method=\"POST\",route=\"/apps/{app_id}/events\",status=\"202\"}",
            6.0,
        ),
        (
            "automata_http_requests_total{method=\"POST\",route=\"/apps/{app_id}/events\",status=\"429\"}",
            1.0,
        ),
        (
            "automata_http_requests_total{method=\"POST\",route=\"/apps/{app_id}/automations/runs/{run_id}/cancel\",status=\"200\"}",
            1.0,
        ),
        ("automata_compile_cache_lookups_total{result=\"miss\"}", 1.0),
        ("automata_queue_depth", 0.0),
        ("automata_workers_busy", 0.0),
        ("automata_workers", 1.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series}");
    }
    assert!(sample(&text, "automata_data_dir_bytes") > 0.0);
    assert!(sample(&text, "automata_store_write_seconds_count") > 0.0);
    assert!(sample(&text, "automata_store_flush_batch_writes_count") > 0.0);
    // Compiled once at upload; runs found the workflow in memory.
    assert!(!text.contains("result=\"hit\""), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The API's own port does not serve metrics.
    let (code, _) = api.call(Method::GET, "/metrics", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_levels_off_under_a_steady_stream_with_a_short_retention() {
    let dir = tempfile::tempdir().unwrap();
    let inner = InProcessServer::start_config(automata::server::ServerConfig {
        execution: workers(2),
        retention: RetentionConfig {
            policy: RetentionPolicy {
                max_age: Some(chrono::TimeDelta::seconds(1)),
                max_runs: None,
            },
            interval: Duration::from_millis(200),
            batch: 64,
        },
        ..common::config(dir.path())
    })
    .await;
    let server = TestServer {
        api: Api::new(inner.base.clone()),
        server: inner,
    };
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api.trigger("thread.created", &sleeper, json!({})).await;
    let app: AppId = "default".parse().unwrap();
    let automation_id: AutomationId = automation.parse().unwrap();
    let filler = "x".repeat(4096);

    // 16 rounds of 25 runs, half a second each: about 400 runs and 3 MB of
    // inputs and results, of which retention keeps about one second.
    let mut sizes = Vec::new();
    let mut stored = Vec::new();
    let mut first_run = None;
    for round in 0..16 {
        let started = Instant::now();
        for n in 0..25 {
            let receipt = api
                .send_event(
                    "default",
                    json!({"trigger": "thread.created", "payload": {"round": round, "n": n, "filler": filler}}),
                )
                .await;
            first_run.get_or_insert_with(|| receipt["run_ids"][0].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(started.elapsed())).await;
        let store = Arc::clone(server.server.service.store());
        let (app, id) = (app.clone(), automation_id.clone());
        stored.push(
            tokio::task::spawn_blocking(move || store.count_runs(&app, &id).unwrap())
                .await
                .unwrap(),
        );
        sizes.push(dir_bytes(dir.path()));
    }
    eprintln!("runs stored per round: {stored:?}");
    eprintln!("data directory bytes per round: {sizes:?}");
    assert!(
        stored.iter().all(|&count| count <= 150),
        "retention let runs pile up: {stored:?}"
    );
    let early = *sizes[4..8].iter().max().unwrap();
    let late = *sizes[12..].iter().max().unwrap();
    assert!(
        late <= early + early / 2,
        "disk use kept growing: {sizes:?}"
    );

    // Once the stream stops, every ended run goes, from every list.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = api.runs("default", &automation).await;
        if runs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} runs never pruned",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = Arc::clone(server.server.service.store());
    let left = tokio::task::spawn_blocking(move || {
        RunStatus::ALL
            .iter()
            .map(|status| store.runs_with_status(*status, None, 10).unwrap().len())
            .sum::<usize>()
    })
    .await
    .unwrap();
    assert_eq!(left, 0);
    // Runs across automations, by every filter, and the run itself.
    for query in [
        "",
        "?status=completed",
        "?trigger=thread.created",
        &format!("?automation_id={automation}"),
        "?latest_attempt=true",
    ] {
        let page = api
            .get(&format!("/apps/default/automations/runs{query}"))
            .await;
        assert_eq!(page["data"], json!([]), "{query}: {page}");
    }
    let first_run = first_run.unwrap();
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/apps/default/automations/runs/{first_run}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let store = Arc::clone(server.server.service.store());
    let report = tokio::task::spawn_blocking(move || store.check_indexes(false).unwrap())
        .await
        .unwrap();
    assert!(
        report.is_clean(),
        "no index entry outlives its run: {report:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_a_retry_chain_whole_with_its_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(1)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api
        .trigger(
            "thread.created",
            &sleeper,
            json!({"retry": {"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 10},
                   "retention": {"max_runs": 1}}),
        )
        .await;
    let ended = |runs: &[Value]| {
        runs.iter()
            .all(|run| ["completed", "failed", "cancelled"].contains(&status(run)))
    };
    // Attempt 1 traps, attempt 2 completes: one chain of two runs.
    api.first_run(json!({"trigger": "thread.created", "payload": {"trap_before_attempt": 2}}))
        .await;
    let chain = api
        .wait_runs("default", &automation, Duration::from_secs(20), |runs| {
            runs.len() == 2 && ended(runs)
        })
        .await;
    assert_eq!(chain[1]["retry_of"], chain[0]["id"]);
    let store = Arc::clone(server.server.service.store());
    let runner = Arc::clone(server.server.service.runner());
    let metrics = Arc::new(Metrics::new(MetricsOptions::default()));
    let retention = Retention::new(store, runner, metrics, RetentionConfig::default());

    // Two runs, one kept: attempt 1 is past the count but waits for its
    // chain's last attempt, which is the run kept.
    assert_eq!(retention.pass(Utc::now()).await.unwrap().runs, 0);
    let kept = api.runs("default", &automation).await;
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["retried_by"], chain[1]["id"]);

    // A newer run makes the last attempt due: the chain goes whole.
    let newer = api
        .first_run(json!({"trigger": "thread.created", "payload": {}}))
        .await;
    api.wait_ended("default", &newer).await;
    assert_eq!(retention.pass(Utc::now()).await.unwrap().runs, 2);
    let left: Vec<Value> = api.runs("default", &automation).await;
    assert_eq!(left.len(), 1);
    assert_eq!(id(&left[0]), newer);
    for run in &chain {
        let (code, _) = api
            .call(
                Method::GET,
                &format!("/apps/default/automations/runs/{}", id(run)),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
    let across = api
        .get("/apps/default/automations/runs?latest_attempt=false")
        .await;
    assert_eq!(across["data"].as_array().unwrap().len(), 1, "{across}");
    server.stop().await;
}

/// Runs the `automata` binary with `args`; its exit code, stdout and stderr.
fn automata(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(args)
        .output()
        .expect("automata runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `backup --out` never replaces what is not a regular file (it writes
/// beside the target and renames over it), and the file it writes is its
/// owner's only.
#[test]
fn backup_refuses_devices_and_stdout_and_writes_an_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let backup = |out: &Path| {
        automata(&[
            "backup".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
    };
    for (out, says) in [
        (Path::new("/dev/null"), "is not a regular file"),
        (dir.path(), "is not a regular file"),
        (Path::new("-"), "(stdout) is not supported"),
    ] {
        let (code, stdout, stderr) = backup(out);
        assert_eq!(code, 2, "{out:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{out:?}: {stderr}");
    }
    let null = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(!null.file_type().is_file(), "/dev/null is still a device");
    assert!(!dir.path().join("-").exists());

    let file = dir.path().join("automata.backup");
    let (code, stdout, stderr) = backup(&file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data, workers(2)).await;
    let api = server.api.clone();
    let welcome = api.upload("default", "welcome-new-members").await;
    let automation = api
        .trigger("thread.member_joined", &welcome, json!({}))
        .await;

    // Events keep arriving while the backup is taken.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (api, acknowledged, stop) = (api.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                let receipt = api
                    .send_event(
                        "default",
                        json!({"trigger": "thread.member_joined", "payload": welcome_payload(), "idempotency_key": format!("load-{n}")}),
                    )
                    .await;
                let run = receipt["run_ids"][0].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push(run);
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(!before.is_empty());
    let file = dir.path().join("automata.backup");
    let args: Vec<std::ffi::OsString> = vec![
        "backup".into(),
        "--data-dir".into(),
        data.clone().into(),
        "--out".into(),
        file.clone().into(),
    ];
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        automata(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Backed up"), "{stdout}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    server.stop().await;

    let restored = dir.path().join("restored");
    let restore = |target: &Path, from: &Path| {
        automata(&[
            "restore".as_ref(),
            "--data-dir".as_ref(),
            target.as_os_str(),
            "--from".as_ref(),
            from.as_os_str(),
        ])
    };
    let (code, stdout, stderr) = restore(&restored, &file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 automations"), "{stdout}");
    // Only into an empty directory, and only from a whole backup.
    let (code, _, stderr) = restore(&restored, &file);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, stderr) = restore(&dir.path().join("other"), &truncated);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not a usable backup"), "{stderr}");

    let server = TestServer::start(&restored, workers(2)).await;
    let api = &server.api;
    for run in &before {
        let (code, found) = api
            .call(
                Method::GET,
                &format!("/apps/default/automations/runs/{run}"),
                None,
            )
            .await;
        assert_eq!(
            code,
            StatusCode::OK,
            "acknowledged run {run} is missing: {found}"
        );
    }
    let listed: Vec<String> = {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => {
                    format!("/apps/default/automations/{automation}/runs?limit=100&cursor={c}")
                }
                None => format!("/apps/default/automations/{automation}/runs?limit=100"),
            };
            let page = api.get(&path).await;
            ids.extend(page["data"].as_array().unwrap().iter().map(id));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break ids,
            }
        }
    };
    assert!(before.iter().all(|run| listed.contains(run)));
    // The receipts came along: a repeated key is still answered from them.
    let (code, replayed) = api
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.member_joined", "payload": welcome_payload(), "idempotency_key": "load-0"}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(replayed["run_ids"][0], before[0].as_str());
    server.stop().await;
}

mod crash;
mod egress;
mod json;

// ---- Operator experience: runs across automations, retry chains, live
// output, lifecycle gaps ----

/// The ids of a run list page, in order.
fn ids_of(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_across_automations_list_newest_first_by_filter_and_retry_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let welcome = api.upload("default", "welcome-new-members").await;
    let retried = api
        .trigger(
            "thread.created",
            &sleeper,
            json!({"retry": {"max_attempts": 2, "backoff_base_ms": 10, "backoff_max_ms": 10}}),
        )
        .await;
    let greeter = api
        .trigger("thread.member_joined", &welcome, json!({}))
        .await;
    let first = api
        .first_run(json!({"trigger": "thread.created", "payload": {"trap_before_attempt": 2}}))
        .await;
    let chain = api
        .wait_runs("default", &retried, Duration::from_secs(15), |runs| {
            count(runs, "completed") == 1
        })
        .await;
    let greeted = api
        .first_run(json!({"trigger": "thread.member_joined", "payload": welcome_payload()}))
        .await;
    api.wait_ended("default", &greeted).await;
    let (attempt_1, attempt_2) = (id(&chain[0]), id(&chain[1]));
    assert_eq!(attempt_1, first);
    assert_eq!(chain[0]["retried_by"], attempt_2.as_str(), "{chain:#?}");
    assert_eq!(chain[0]["failure_kind"], "trap");
    assert!(chain[1]["retried_by"].is_null());

    let list = |query: &str| {
        let path = format!("/apps/default/automations/runs{query}");
        async move { api.get(&path).await }
    };
    assert_eq!(
        ids_of(&list("").await),
        [greeted.clone(), attempt_2.clone(), attempt_1.clone()],
        "every automation's runs, newest first"
    );
    assert_eq!(
        ids_of(&list("?latest_attempt=true").await),
        [greeted.clone(), attempt_2.clone()]
    );
    assert_eq!(
        ids_of(&list("?status=failed").await),
        std::slice::from_ref(&attempt_1)
    );
    assert_eq!(
        ids_of(&list("?trigger=thread.member_joined").await),
        std::slice::from_ref(&greeted)
    );
    assert_eq!(
        ids_of(&list(&format!("?automation_id={retried}&latest_attempt=true")).await),
        std::slice::from_ref(&attempt_2)
    );
    let hour_ago = (Utc::now() - chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let soon = (Utc::now() + chrono::TimeDelta::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        ids_of(&list(&format!("?status=failed&since={hour_ago}")).await),
        std::slice::from_ref(&attempt_1),
        "what failed in the last hour"
    );
    assert!(ids_of(&list(&format!("?since={soon}")).await).is_empty());
    assert_eq!(
        ids_of(&list(&format!("?until={hour_ago}")).await),
        Vec::<String>::new()
    );
    let page = list("?limit=2").await;
    assert_eq!(ids_of(&page), [greeted.clone(), attempt_2.clone()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = list(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids_of(&next), std::slice::from_ref(&attempt_1));
    assert!(next["next_cursor"].is_null());
    // The per-automation list takes the same filters.
    let own = api
        .get(&format!(
            "/apps/default/automations/{greeter}/runs?latest_attempt=true&trigger=thread.member_joined"
        ))
        .await;
    assert_eq!(ids_of(&own), std::slice::from_ref(&greeted));

    let (code, error) = api
        .call(
            Method::GET,
            &format!("/apps/default/automations/{greeter}/runs?automation_id={retried}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{error}");
    let (code, error) = api
        .call(
            Method::GET,
            "/apps/default/automations/runs?since=yesterday",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("since"),
        "{error}"
    );
    // `runs` is the list, never a lookup key.
    let (code, error) = api
        .post(
            "/apps/default/automations",
            json!({"name": "x", "type": "trigger", "trigger": "thread.created", "lookup_key": "runs"}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{error}");
    let (code, _) = api
        .call(Method::DELETE, "/apps/default/automations/runs", None)
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_automation_interrupts_its_run_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    let automation = api
        .trigger("thread.created", &sleeper, json!({"lookup_key": "doomed"}))
        .await;
    let run = api
        .first_run(json!({"trigger": "thread.created", "payload": {"sleep_ms": 30_000}}))
        .await;
    api.wait_running(&run).await;
    let started = Instant::now();
    let (code, _) = api
        .call(Method::DELETE, "/apps/default/automations/doomed", None)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let ended = api.wait_ended("default", &run).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "interrupted, not waited for"
    );
    assert_eq!(status(&ended), "cancelled", "{ended:#}");
    assert_eq!(ended["reason"], "automation deleted");
    assert!(ended["retried_by"].is_null());

    // Its history stays: by its id, and across automations.
    let own = api
        .get(&format!("/apps/default/automations/{automation}/runs"))
        .await;
    assert_eq!(ids_of(&own), std::slice::from_ref(&run));
    let across = api
        .get(&format!(
            "/apps/default/automations/runs?automation_id={automation}"
        ))
        .await;
    assert_eq!(ids_of(&across), std::slice::from_ref(&run));
    let (code, error) = api
        .post(
            &format!("/apps/default/automations/runs/{run}/rerun"),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was deleted") && message.contains(&automation),
        "{message}"
    );
    // Its lookup key is gone, and an id that never had runs is unknown.
    let (code, _) = api
        .call(Method::GET, "/apps/default/automations/doomed/runs", None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = api
        .call(
            Method::GET,
            "/apps/default/automations/aut_01jdqm3k5v8x2n7w4c9b6e1f0a/runs",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_in_use_stay_and_every_failed_run_has_a_failure_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let old = api.upload("default", "welcome-new-members").await;
    let automation = api
        .automation(
            "default",
            json!({"name": "Greeter", "type": "trigger", "trigger": "thread.member_joined", "config_id": old}),
            false,
        )
        .await;
    // A draft uses it: it cannot go (409 naming the automation), and it says who uses it.
    let (code, error) = api
        .call(
            Method::DELETE,
            &format!("/apps/default/configs/{old}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&automation) && message.contains("Greeter") && message.contains("draft"),
        "{message}"
    );
    let shown = api.get(&format!("/apps/default/configs/{old}")).await;
    assert_eq!(
        shown["used_by"],
        json!([{"id": automation, "name": "Greeter", "status": "draft"}])
    );

    // The same bytes again: 200, the stored config, and a message saying so.
    let response = api
        .client
        .post(format!("{}/apps/default/configs", api.base))
        .header("content-type", "application/wasm")
        .body(guest("welcome-new-members"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["id"], old.as_str());
    let message = again["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("already uploaded as {old} (")),
        "{message}"
    );

    // A run whose config is gone by the time it runs fails with a kind.
    let (code, run) = api
        .post(
            &format!("/apps/default/automations/{automation}/run"),
            json!({"payload": welcome_payload()}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{run}");
    let run = api.wait_ended("default", &id(&run)).await;
    assert_eq!(status(&run), "completed");
    let new = api.upload("default", "sleeper").await;
    let (code, _) = api
        .call(
            Method::PATCH,
            &format!("/apps/default/automations/{automation}"),
            Some(json!({"config_id": new, "trigger": "thread.created"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api
        .call(
            Method::DELETE,
            &format!("/apps/default/configs/{old}"),
            None,
        )
        .await;
    assert_eq!(
        code,
        StatusCode::NO_CONTENT,
        "no automation uses it any more"
    );
    let (code, rerun) = api
        .post(
            &format!("/apps/default/automations/runs/{}/rerun", id(&run)),
            json!(null),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{rerun}");
    let rerun = api.wait_ended("default", &id(&rerun)).await;
    assert_eq!(status(&rerun), "failed", "{rerun:#}");
    assert_eq!(rerun["failure_kind"], "config_unavailable");
    assert!(
        rerun["result"]["error"]
            .as_str()
            .unwrap()
            .contains("no longer exists")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_an_app_without_automations_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(1)).await;
    let api = &server.api;
    let (code, created) = api.post("/apps", json!({"id": "acmee"})).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let receipt = api
        .send_event("acmee", json!({"trigger": "thread.created", "payload": {}}))
        .await;
    assert_eq!(receipt["warning"], "app acmee has no automations");
    assert_eq!(receipt["run_ids"], json!([]));
    // An app with automations, none listening: no warning.
    let sleeper = api.upload("default", "sleeper").await;
    api.trigger("thread.created", &sleeper, json!({})).await;
    let receipt = api
        .send_event(
            "default",
            json!({"trigger": "thread.deleted", "payload": {}}),
        )
        .await;
    assert!(receipt.get("warning").is_none(), "{receipt}");
    let (code, error) = api
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.member_join", "payload": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `thread.member_joined`?"),
        "{error}"
    );
    server.stop().await;
}

/// Reads a `text/event-stream` body to its end: `(event, id, data)` per event.
async fn read_events(response: reqwest::Response) -> Vec<(String, Option<String>, String)> {
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let mut event = ("message".to_owned(), None, Vec::new());
            for line in block.lines() {
                let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                match field {
                    "event" => event.0 = value.to_owned(),
                    "id" => event.1 = Some(value.to_owned()),
                    "data" => event.2.push(value.to_owned()),
                    _ => {}
                }
            }
            (event.0, event.1, event.2.join("\n"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_output_is_followed_live_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    api.trigger("thread.created", &sleeper, json!({})).await;
    let run = api
        .first_run(json!({"trigger": "thread.created", "payload": {"sleep_ms": 1500}}))
        .await;
    let output = format!("{}/apps/default/automations/runs/{run}/output", api.base);
    let response = api
        .client
        .get(format!("{output}?follow=true"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The first lines arrive while the run still runs.
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("sleeping 1500 ms") {
        use futures_util::StreamExt as _;
        let chunk = body.next().await.expect("more events").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(status(&api.run("default", &run).await), "running", "{seen}");
    assert!(
        seen.contains(&format!("id: 1\ndata: attempt 1 of run {run}\n\n")),
        "{seen}"
    );
    while !seen.contains("event: end") {
        use futures_util::StreamExt as _;
        let chunk = body.next().await.expect("the end event").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("id: 3\ndata: done\n\n"), "{seen}");
    let end = seen
        .split("event: end\ndata: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let end: Value = serde_json::from_str(end).unwrap();
    assert_eq!(end["status"], "completed");
    assert_eq!(end["next_offset"], 3);

    // After the end: from an offset as JSON, as plain lines, and resumed by Last-Event-ID.
    let page = api
        .get(&format!(
            "/apps/default/automations/runs/{run}/output?offset=2"
        ))
        .await;
    assert_eq!(
        page,
        json!({"data": ["done"], "next_offset": 3, "status": "completed", "complete": true})
    );
    let plain = api
        .client
        .get(format!("{output}?follow=true&offset=1"))
        .send()
        .await
        .unwrap();
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(plain.text().await.unwrap(), "sleeping 1500 ms\ndone\n");
    let resumed = api
        .client
        .get(format!("{output}?follow=true"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    let events = read_events(resumed).await;
    assert_eq!(
        events[0],
        ("message".into(), Some("3".into()), "done".into())
    );
    assert_eq!(events[1].0, "end");
    assert_eq!(events.len(), 2);

    // A pending run is waited for: a run-now on a busy worker pool of one.
    let (code, _) = api
        .call(
            Method::GET,
            "/apps/default/automations/runs/atr_01jdqm3k5v8x2n7w4c9b6e1f0a/output",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = api
        .call(
            Method::GET,
            &format!("/apps/default/automations/runs/{run}/output?offset=-1"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_pending_run_gets_its_lines_once_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(1)).await;
    let api = &server.api;
    let sleeper = api.upload("default", "sleeper").await;
    api.trigger("thread.created", &sleeper, json!({})).await;
    let busy = api
        .first_run(json!({"trigger": "thread.created", "payload": {"sleep_ms": 700}}))
        .await;
    api.wait_running(&busy).await;
    let waiting = api
        .first_run(json!({"trigger": "thread.created", "payload": {}}))
        .await;
    assert_eq!(status(&api.run("default", &waiting).await), "pending");
    let response = api
        .client
        .get(format!(
            "{}/apps/default/automations/runs/{waiting}/output?follow=true",
            api.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        format!("attempt 1 of run {waiting}\ndone\n")
    );
    assert_eq!(status(&api.run("default", &waiting).await), "completed");
    server.stop().await;
}
