//! The crash test: `automata serve` as a process takes events from
//! concurrent senders and is killed with SIGKILL at a seeded random moment,
//! round after round, then restarted on the same data directory. Every
//! acknowledged event's runs must exist, none may stay `pending` or
//! `running` after recovery, a repeated idempotency key must replay the
//! acknowledged answer, and `automata doctor` must find every record
//! readable. Set `AUTOMATA_CRASH_SEED` to replay a failing seed.
//!
//! A second test kills the process while the store writer holds a batch in
//! flight (applied, not yet flushed or answered; the writer's test hook
//! `AUTOMATA_TEST_WRITER_HOLD_FILE`): the events of that batch were never
//! acknowledged, and after the restart each is either wholly there (runs,
//! index entries and receipt) or not at all.

use std::collections::{HashMap, HashSet};
use std::path::Path;
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
/// records every key sent in `sent` and those answered 202 in `acked`.
async fn send_until_killed(
    api: Api,
    (round, sender): (usize, usize),
    sent: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<Vec<Acknowledged>>>,
) {
    for n in 0.. {
        let key = format!("r{round}-s{sender}-{n}");
        sent.lock().unwrap().push(key.clone());
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

/// The seed (`AUTOMATA_CRASH_SEED`, else `default`) and its generator.
fn seeded(default: u64) -> (u64, StdRng) {
    let seed = std::env::var("AUTOMATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (seed, StdRng::seed_from_u64(seed))
}

/// [`SENDERS`] tasks sending events to `api` until it dies.
fn spawn_senders(
    api: &Api,
    round: usize,
    sent: &Arc<Mutex<Vec<String>>>,
    acked: &Arc<Mutex<Vec<Acknowledged>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..SENDERS)
        .map(|sender| {
            tokio::spawn(send_until_killed(
                api.clone(),
                (round, sender),
                Arc::clone(sent),
                Arc::clone(acked),
            ))
        })
        .collect()
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
    let (seed, mut rng) = seeded(0x5EED_0009);
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn_serve(dir.path());
    let welcome = process.api.upload("default", "welcome-new-members").await;
    // Two listeners: every event fans out to two runs in one write.
    let automations = process.api.two_listeners(&welcome).await;
    let acked = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let senders = spawn_senders(&process.api, round, &sent, &acked);
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
        let runs = all_ended(api, &automations, &context).await;
        assert_acknowledged_ended(&acked, &runs, &context);
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
    assert_doctor_finds_nothing(dir.path(), &format!("seed {seed:#x}"));
}

/// `automata doctor` on the stopped server's data: every record reads back
/// and every index entry matches the records.
fn assert_doctor_finds_nothing(data_dir: &Path, context: &str) {
    let doctor = Command::new(env!("CARGO_BIN_EXE_automata"))
        .args(["doctor", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        doctor.status.success(),
        "{context}: automata doctor found problems: {}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
}

/// Waits (30 s at most) until no run of `automations` is pending or
/// running; returns every run's status by id.
async fn all_ended(api: &Api, automations: &[String], context: &str) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut runs = HashMap::new();
        for automation in automations {
            runs.extend(all_runs(api, automation).await);
        }
        let open = runs
            .values()
            .filter(|s| *s == "pending" || *s == "running")
            .count();
        if open == 0 {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: {open} runs still pending or running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged event named two runs, and each is in `runs`, ended.
fn assert_acknowledged_ended(
    acked: &[Acknowledged],
    runs: &HashMap<String, String>,
    context: &str,
) {
    for event in acked {
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
}

const HELD_ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_flight_at_sigkill_is_wholly_there_or_absent_after_restart() {
    let (seed, mut rng) = seeded(0x5EED_0012);
    let dir = tempfile::tempdir().unwrap();
    let (data, hold) = (dir.path().join("data"), dir.path().join("hold"));
    let held = dir.path().join("hold.held");
    let serve = |hold: &Path| {
        let serve = automata_e2e::spawn_serve_with_env(
            env!("CARGO_BIN_EXE_automata"),
            &data,
            &["--workers", "1"],
            &[("AUTOMATA_TEST_WRITER_HOLD_FILE", hold)],
        );
        (serve.child, Api::new(serve.url))
    };
    let (mut child, mut api) = serve(&hold);
    let welcome = api.upload("default", "welcome-new-members").await;
    let automations = api.two_listeners(&welcome).await;
    let acked = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    for round in 0..HELD_ROUNDS {
        let senders = spawn_senders(&api, round, &sent, &acked);
        let hold_after = rng.random_range(KILL_AFTER_MS);
        tokio::time::sleep(Duration::from_millis(hold_after)).await;
        // The next batch holding an event is applied, then held.
        std::fs::write(&hold, "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !held.exists() {
            assert!(Instant::now() < deadline, "the writer never held a batch");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        for sender in senders {
            sender.await.unwrap();
        }
        std::fs::remove_file(&hold).unwrap();
        std::fs::remove_file(&held).unwrap();
        let context = format!("seed {seed:#x}, round {round} (held after {hold_after} ms)");
        // The store as the crash left it, before recovery touches it.
        assert_doctor_finds_nothing(&data, &context);

        (child, api) = serve(&hold);
        let acked = acked.lock().unwrap().clone();
        println!("{context}: {} events acknowledged so far", acked.len());
        assert!(!acked.is_empty(), "{context}: no event was acknowledged");
        let answered: HashSet<&str> = acked.iter().map(|e| e.key.as_str()).collect();
        // Sent but never answered: the held batch's events (and any still
        // on their way to the writer). Repeating each key gives its runs:
        // the held batch's if it reached the disk whole, else new ones.
        let mut named: HashSet<String> = acked.iter().flat_map(|e| e.run_ids.clone()).collect();
        let unanswered: Vec<String> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|key| !answered.contains(key.as_str()))
            .cloned()
            .collect();
        for key in &unanswered {
            let (status, receipt) = api.post("/apps/default/events", keyed_event(key)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{context}: {key}: {receipt}");
            let runs = receipt["run_ids"].as_array().unwrap();
            assert_eq!(runs.len(), 2, "{context}: {key}: {receipt}");
            named.extend(runs.iter().map(|id| id.as_str().unwrap().to_owned()));
        }
        let runs = all_ended(&api, &automations, &context).await;
        assert_acknowledged_ended(&acked, &runs, &context);
        // No run without its receipt: every stored run is one an answer
        // named (half of a held batch would show up here).
        let orphans: Vec<_> = runs.keys().filter(|run| !named.contains(*run)).collect();
        assert!(
            orphans.is_empty(),
            "{context}: runs no receipt names: {orphans:?}"
        );
        let quarantine = api.get("/admin/quarantine").await;
        assert_eq!(quarantine["total"], 0, "{context}: {quarantine}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_doctor_finds_nothing(&data, &format!("seed {seed:#x}"));
}
