//! `automata serve` as a process: prints its address, answers HTTP, stops
//! cleanly on SIGTERM and finds its data again on the next start.

use std::path::Path;
use std::process::{Child, Command};

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
