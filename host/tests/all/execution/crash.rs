//! The crash test: `automata serve` as a process takes events from
//! concurrent senders and is killed with SIGKILL at a seeded random moment,
//! round after round, then restarted on the same data directory. Every
//! acknowledged event's runs must exist, none may stay `pending` or
//! `running` after recovery, a repeated idempotency key must replay the
//! acknowledged answer, and `automata doctor` must find every record
//! readable. Set `AUTOMATA_CRASH_SEED` to replay a failing seed.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const ROUNDS: usize = 6;
const SENDERS: usize = 4;
/// SIGKILL comes this long (uniformly drawn, in ms) after the senders start.
const KILL_AFTER_MS: std::ops::Range<u64> = 50..700;

/// An acknowledged event: its idempotency key and the runs intake named.
#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    run_ids: Vec<String>,
}

/// The event sent with idempotency key `key` (a key stands for one request).
fn keyed_event(key: &str) -> Value {
    json!({
        "trigger": "thread.member_joined",
        "payload": {"member": {"name": key}, "thread": {"name": "crash"}},
        "idempotency_key": key,
    })
}

/// Sends events (each with a fresh idempotency key) until the server dies;
/// records those answered 202.
async fn send_until_killed(
    api: Api,
    round: usize,
    sender: usize,
    acked: Arc<Mutex<Vec<Acknowledged>>>,
) {
    for n in 0.. {
        let key = format!("r{round}-s{sender}-{n}");
        let event = keyed_event(&key);
        let request = api
            .client
            .post(format!("{}/apps/default/events", api.base))
            .json(&event)
            .send();
        let Ok(response) = request.await else { return };
        if response.status() != StatusCode::ACCEPTED {
            return;
        }
        let Ok(receipt) = response.json::<Value>().await else {
            return;
        };
        let run_ids = receipt["run_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        acked.lock().unwrap().push(Acknowledged { key, run_ids });
    }
}

/// Every run of an automation by id, with its status, following the pages.
async fn all_runs(api: &Api, automation: &str) -> HashMap<String, String> {
    let mut runs = HashMap::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!(
                "/apps/default/automations/{automation}/runs?limit=100{cursor}"
            ))
            .await;
        for run in page["data"].as_array().unwrap() {
            runs.insert(id(run), status(run).to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return runs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill_at_random_moments() {
    let seed = std::env::var("AUTOMATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0009);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn_serve(dir.path());
    let welcome = process.api.upload("default", "welcome-new-members").await;
    // Two listeners: every event fans out to two runs in one write.
    let automations = [
        process
            .api
            .trigger("thread.member_joined", &welcome, json!({}))
            .await,
        process
            .api
            .trigger("thread.member_joined", &welcome, json!({}))
            .await,
    ];
    let acked = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    for round in 0..ROUNDS {
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                tokio::spawn(send_until_killed(
                    process.api.clone(),
                    round,
                    sender,
                    Arc::clone(&acked),
                ))
            })
            .collect();
        let kill_after = rng.random_range(KILL_AFTER_MS);
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        process.child.kill().unwrap();
        process.child.wait().unwrap();
        for sender in senders {
            sender.await.unwrap();
        }

        process = spawn_serve(dir.path());
        let api = &process.api;
        let acked = acked.lock().unwrap().clone();
        let context = format!("seed {seed:#x}, round {round} (killed after {kill_after} ms)");
        // Shown when the test fails (or with --nocapture).
        println!("{context}: {} events acknowledged so far", acked.len());
        assert!(!acked.is_empty(), "{context}: no event was acknowledged");
        // Recovery leaves nothing pending or running for long: wait until
        // every run has ended.
        let deadline = Instant::now() + Duration::from_secs(30);
        let runs = loop {
            let mut runs = HashMap::new();
            for automation in &automations {
                runs.extend(all_runs(api, automation).await);
            }
            let open = runs
                .values()
                .filter(|s| *s == "pending" || *s == "running")
                .count();
            if open == 0 {
                break runs;
            }
            assert!(
                Instant::now() < deadline,
                "{context}: {open} runs still pending or running"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for event in &acked {
            assert_eq!(event.run_ids.len(), 2, "{context}: {event:?}");
            for run in &event.run_ids {
                let status = runs
                    .get(run)
                    .unwrap_or_else(|| panic!("{context}: acknowledged run {run} is lost"));
                assert!(
                    ["completed", "failed"].contains(&status.as_str()),
                    "{context}: run {run} ended {status}"
                );
            }
        }
        // The receipts are durable too: a repeat replays the first answer.
        let last = acked.last().unwrap();
        let (status, replay) = api
            .post("/apps/default/events", keyed_event(&last.key))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{context}: {replay}");
        assert_eq!(replay["run_ids"], json!(last.run_ids), "{context}");
        let quarantine = api.get("/admin/quarantine").await;
        assert_eq!(quarantine["total"], 0, "{context}: {quarantine}");
        let unique: HashSet<_> = acked.iter().flat_map(|e| &e.run_ids).collect();
        assert_eq!(unique.len(), acked.len() * 2, "{context}: a run id repeats");
    }
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    // Every record of the store reads back.
    let doctor = Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(["doctor", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        doctor.status.success(),
        "seed {seed:#x}: automata doctor found problems: {}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
}
