//! `automata serve` as a process: prints its address, answers HTTP, stops
//! cleanly on SIGTERM and finds its data again on the next start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use automata_e2e::{ADMIN_TOKEN, spawn_serve};
use serde_json::{Value, json};

fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

struct Serve {
    child: Child,
    base: String,
}

fn start(data_dir: &Path) -> Serve {
    let serve = spawn_serve(env!("CARGO_BIN_EXE_automata"), data_dir, &[]);
    Serve {
        child: serve.child,
        base: serve.url,
    }
}

impl Serve {
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_sigterm_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let client = admin_client();
    let server = start(dir.path());
    let created: Value = client
        .post(format!("{}/apps/default/automations", server.base))
        .json(&json!({"name": "Nightly Report", "type": "scheduled", "schedule": "0 0 * * *"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("created").to_owned();
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    let server = start(dir.path());
    let shown: Value = client
        .get(format!("{}/apps/default/automations/{id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown, created);
    assert!(server.terminate().success());
}

/// `automata serve` with `args`, stderr (its logs) into `log`; the server
/// and its base URL.
fn start_logging(data_dir: &Path, log: &Path, args: &[&str]) -> Serve {
    start_logging_with(data_dir, log, args, &[])
}

/// [`start_logging`] with extra environment variables.
fn start_logging_with(data_dir: &Path, log: &Path, args: &[&str], env: &[(&str, &Path)]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .env("AUTOMATA_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("automata serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a first line").unwrap();
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_owned();
    // Keep reading, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Serve { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_requests_refusals_lifecycle_and_run_endings_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = start_logging(
        &dir.path().join("data"),
        &log,
        &["--log-format", "json", "--log", "debug"],
    );
    let client = admin_client();
    let api = format!("{}/apps/default", server.base);
    // Events come with a key of their own: its id is logged, never the key.
    let key: Value = client
        .post(format!("{api}/keys"))
        .json(&json!({"name": "producer", "role": "events"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key_id, key_secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["key_secret"].as_str().unwrap().to_owned(),
    );
    let refused = client
        .post(format!("{api}/configs"))
        .header("content-type", "application/wasm")
        .body(&b"not a component"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let config: Value = client
        .post(format!("{api}/configs"))
        .header("content-type", "application/wasm")
        .body(automata_e2e::guest("welcome-new-members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let automation: Value = client
        .post(format!("{api}/automations"))
        .json(&json!({"name": "Welcome", "type": "trigger", "trigger": "thread.member_joined", "config_id": config["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let automation = automation["id"].as_str().unwrap().to_owned();
    let activated = client
        .post(format!("{api}/automations/{automation}/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), 200);
    let receipt: Value = reqwest::Client::new()
        .post(format!("{api}/events"))
        .bearer_auth(&key_secret)
        .json(&json!({"trigger": "thread.member_joined", "payload": {"member": {"name": "Ada"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = receipt["run_ids"][0].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let shown: Value = client
            .get(format!("{api}/automations/runs/{run}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if shown["status"] == "completed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(server.terminate().success());

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let find = |what: &str, wanted: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|line| line["fields"]["message"] == what && wanted(&line["fields"]))
            .unwrap_or_else(|| panic!("no `{what}` line as wanted in:\n{text}"))
            .clone()
    };
    let request = find("request", &|f| {
        f["route"] == "/apps/{app_id}/configs" && f["status"] == 422
    });
    assert_eq!(request["fields"]["method"], "POST");
    assert_eq!(request["fields"]["app"], "default");
    assert!(request["fields"]["duration_ms"].is_number());
    assert!(request["fields"]["error"].is_string(), "{request}");
    assert_eq!(request["fields"]["key"], "env", "AUTOMATA_ADMIN_TOKEN's id");
    find("request", &|f| {
        f["route"] == "/apps/{app_id}/events" && f["status"] == 202 && f["key"] == key_id.as_str()
    });
    assert!(
        !text.contains(&key_secret) && !text.contains(ADMIN_TOKEN),
        "a key in the log:\n{text}"
    );
    find("config upload refused", &|f| {
        f["app"] == "default" && f["status"] == 422
    });
    find("automation activated", &|f| {
        f["automation"] == automation.as_str()
    });
    let ended = find("run completed", &|f| f["run"] == run.as_str());
    assert_eq!(ended["fields"]["trigger"], "thread.member_joined");
    assert!(ended["fields"]["duration_ms"].is_number(), "{ended}");
    assert!(ended["fields"]["fuel"].is_number(), "{ended}");
    assert_eq!(ended["level"], "INFO");
    // Debug logging does not drown the story in storage-engine noise.
    assert!(
        lines.iter().all(|line| !line["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sled")),
        "{text}"
    );
}

/// A disk that fills up: the store's test hook makes its writes and
/// flushes fail (as ENOSPC would) while the fault file exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_write_answers_503_at_once_logs_once_and_still_stops() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (data, log, fault) = (
        dir.path().join("data"),
        dir.path().join("serve.log"),
        dir.path().join("disk-full"),
    );
    let server = start_logging_with(
        &data,
        &log,
        &["--shutdown-grace", "5"],
        &[("AUTOMATA_TEST_STORE_FAULT_FILE", &fault)],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let api = format!("{}/apps/default", server.base);
    let create = |name: &str| {
        client
            .post(format!("{api}/automations"))
            .json(&json!({"name": name, "type": "scheduled", "schedule": "0 0 * * *"}))
            .send()
    };
    let kept = create("Before").await.unwrap();
    assert_eq!(kept.status(), 201);
    let kept: Value = kept.json().await.unwrap();

    std::fs::write(&fault, "").unwrap();
    let started = Instant::now();
    let refused = create("During").await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("No space left on device") && message.contains("restart"),
        "{message}"
    );
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store"),
        "{ready}"
    );
    // Freeing the space does not bring writes back (sled keeps its first
    // IO error until reopened): every later write fails at once too,
    // component bytes included.
    std::fs::remove_file(&fault).unwrap();
    for n in 0..20 {
        let refused = create(&format!("After {n}")).await.unwrap();
        assert_eq!(refused.status(), 503);
    }
    let upload = client
        .post(format!("{api}/configs"))
        .header("content-type", "application/wasm")
        .body(automata_e2e::guest("welcome-new-members"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "writes after the failure took {:?}",
        started.elapsed()
    );
    // Reads still work.
    let shown = client
        .get(format!(
            "{api}/automations/{}",
            kept["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);

    let Serve { mut child, .. } = server;
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if stopping.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("writing to the store failed").count(),
        1,
        "the failure is logged once:\n{text}"
    );
    assert!(text.lines().count() < 100, "{text}");

    // What was acknowledged before the failure is still there.
    let server = start(&data);
    let shown = admin_client()
        .get(format!(
            "{}/apps/default/automations/{}",
            server.base,
            kept["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    assert!(server.terminate().success());
}

#[test]
fn serve_help_documents_logging_metrics_and_retention() {
    let output = Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for words in [
        "--log <FILTER>",
        "AUTOMATA_LOG",
        "--log-format",
        "--metrics-listen",
        "--retention-days",
        "--retention-max-runs",
        "/healthz",
        "/readyz",
        "--bounds-checks",
        "AUTOMATA_BOUNDS_CHECKS",
    ] {
        assert!(help.contains(words), "`{words}` missing from:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_bounds_checks_run_workflows_and_a_bad_choice_is_a_usage_error() {
    let refused = Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(["serve", "--bounds-checks", "none"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid value 'none' for '--bounds-checks")
            && stderr.contains("guard-pages")
            && stderr.contains("explicit"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let serve = spawn_serve(
        env!("CARGO_BIN_EXE_automata"),
        dir.path(),
        &["--bounds-checks", "explicit"],
    );
    let server = Serve {
        child: serve.child,
        base: serve.url,
    };
    let client = admin_client();
    let config: Value = client
        .post(format!("{}/apps/default/configs", server.base))
        .header("content-type", "application/wasm")
        .body(automata_e2e::guest("welcome-new-members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let automation: Value = client
        .post(format!("{}/apps/default/automations", server.base))
        .json(
            &json!({"name": "Welcome", "type": "trigger", "trigger": "thread.member_joined",
                      "config_id": config["id"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run: Value = client
        .post(format!(
            "{}/apps/default/automations/{}/run",
            server.base,
            automation["id"].as_str().expect("created")
        ))
        .json(&json!({"payload": {"member": {"name": "Ada"}, "thread": {"name": "Ops"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["id"].as_str().expect("a run").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ended = loop {
        let current: Value = client
            .get(format!(
                "{}/apps/default/automations/runs/{run_id}",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if current["status"] != "pending" && current["status"] != "running" {
            break current;
        }
        assert!(std::time::Instant::now() < deadline, "{current}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["result"]["output"], json!(["Welcome to Ops, Ada!"]));
    assert!(server.terminate().success());
}
