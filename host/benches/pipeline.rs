//! The whole pipeline against the runner's floor, in one run: event intake →
//! stored pending run → queue → worker → `Runner::run_with` → stored result,
//! in process and through HTTP against `automata serve`; the scheduler idle
//! and under a burst of due automations; restart; disk per run. Not a test:
//! it prints figures (`BENCHMARKS.md` keeps them with the machine).
//!
//! ```text
//! scripts/build-guests && cargo bench -p automata --bench pipeline
//! ```
//!
//! (To reuse the dev build: `cargo bench -p automata --bench pipeline
//! --profile dev --config 'profile.dev.package.automata.opt-level=2'`.)
//! Under `cargo test` it takes a few samples only, to check every path works.
//!
//! For the welcome example, with two workers:
//! - floor: bare wasmtime instantiate + call (the runner bench's (a)), and
//!   `Runner::run`, medians and CPU per run;
//! - for `--flush always` and `--flush 200ms`, in process (store, service,
//!   execution plane; no HTTP) and through HTTP on loopback against the real
//!   binary: p50/p99 event → completed run at a fixed offered rate (1k/s),
//!   the runs/s sustained by 1, 16 and 64 senders (each sends an event and
//!   waits for its run to end before the next), and CPU per completed run
//!   (the process's, or the server's, over the runs) against the runner's;
//! - the scheduler: the process's CPU while 10,000 running scheduled
//!   automations wait for a time far off, and for 1,000 automations due in
//!   the same second the lag from due time to run stored and to run started;
//! - restart: `automata serve` start → ready, and → one run of each of 100
//!   stored configs completed, with the compile cache warm and cold;
//! - disk: bytes of the data directory per stored run after 100k runs.
//!
//! The last line is the headline: `durable runs/s (HTTP, 64 senders): N`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use automata::domain::app::NewApp;
use automata::domain::automation::{LifecycleAction, NewAutomation};
use automata::domain::event::IncomingEvent;
use automata::domain::ids::AppId;
use automata::domain::run::{Run, RunFilter, RunStatus};
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::execution::{Execution, ExecutionConfig};
use automata::metrics::Metrics;
use automata::runner::{Runner, RunnerConfig};
use automata::service::{Service, ServiceSettings};
use automata::store::{Durability, SledStore, StoreOptions};
use automata_e2e::{ADMIN_TOKEN, ServeProcess, spawn_serve};
use chrono::{DateTime, Timelike, Utc};
use common::bare::{bare_pre, bare_run, wit_inputs};
use common::{Throughput, guest, median, micros, percentile, runner_run, throughput};
use serde_json::{Value, json};

mod common;

const EVENT: &str = "thread.member_joined";

/// How long a sender over HTTP follows a run before counting it in
/// [`UNENDED`] and going on.
const FOLLOW_LIMIT: Duration = Duration::from_secs(60);

/// Runs accepted over HTTP whose end their sender did not see within
/// [`FOLLOW_LIMIT`] (printed with the figures: none is the expected count).
static UNENDED: AtomicUsize = AtomicUsize::new(0);
const WORKERS: usize = 2;

/// How many samples to take.
#[derive(Clone, Copy)]
struct Plan {
    /// Samples of the floor and of `Runner::run`.
    runner_runs: usize,
    warmup: usize,
    /// How long each throughput measure lasts.
    window: Duration,
    /// Events per second offered for the latency figures, and for how long.
    rate: f64,
    rate_window: Duration,
    senders: [usize; 3],
    idle_automations: usize,
    idle_window: Duration,
    due_automations: usize,
    restart_configs: usize,
    disk_runs: usize,
}

/// `cargo bench` passes `--bench`; without it (`cargo test --all-targets`)
/// the benchmark only checks that every path works, with a few samples.
const FULL: Plan = Plan {
    runner_runs: 2_000,
    warmup: 100,
    window: Duration::from_secs(3),
    rate: 1_000.0,
    rate_window: Duration::from_secs(3),
    senders: [1, 16, 64],
    idle_automations: 10_000,
    idle_window: Duration::from_secs(5),
    due_automations: 1_000,
    restart_configs: 100,
    disk_runs: 100_000,
};
const SMOKE: Plan = Plan {
    runner_runs: 3,
    warmup: 1,
    window: Duration::from_millis(50),
    rate: 200.0,
    rate_window: Duration::from_millis(50),
    senders: [1, 2, 4],
    idle_automations: 10,
    idle_window: Duration::from_millis(50),
    due_automations: 5,
    restart_configs: 2,
    disk_runs: 20,
};

fn payload() -> Value {
    json!({"member": {"id": "usr_1", "name": "Ada"}, "thread": {"id": "thr_1", "name": "Ops"}})
}

fn event() -> IncomingEvent {
    IncomingEvent {
        trigger: EVENT.into(),
        payload: payload().as_object().cloned(),
        idempotency_key: None,
    }
}

fn bench_dir() -> tempfile::TempDir {
    // On the same disk as the build, not a tmpfs: flushes cost what they cost.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// The service and a started execution plane over a store in `dir`.
struct Pipeline {
    service: Arc<Service>,
    execution: Arc<Execution>,
    app: AppId,
}

impl Pipeline {
    async fn start(dir: &Path, durability: Durability) -> Pipeline {
        let options = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        let store = SledStore::open(dir, &options).unwrap();
        let runner = Arc::new(
            Runner::new(RunnerConfig {
                cache_dir: Some(dir.join("compiled")),
                pooling: true,
                max_concurrent_runs: WORKERS,
                ..RunnerConfig::default()
            })
            .unwrap(),
        );
        let service = Arc::new(Service::new(
            Arc::new(store),
            runner,
            ServiceSettings::default(),
            Arc::new(Metrics::default()),
        ));
        let execution = Arc::new(Execution::new(
            Arc::clone(service.store()),
            Arc::clone(service.runner()),
            ExecutionConfig {
                workers: WORKERS,
                ..ExecutionConfig::default()
            },
            Arc::new(Metrics::default()),
        ));
        execution.follow(service.subscribe());
        execution.start().await.unwrap();
        let app: AppId = "bench".parse().unwrap();
        let new_app = NewApp {
            id: app.clone(),
            name: None,
        };
        service.create_app(new_app, None).await.unwrap();
        Pipeline {
            service,
            execution,
            app,
        }
    }

    /// Uploads `bytes` and creates a running automation of it from `body`
    /// (`config_id` added).
    async fn running(&self, bytes: &[u8], mut body: Value) {
        let upload = self
            .service
            .upload_config(&self.app, None, bytes.to_vec().into())
            .await
            .unwrap();
        body["config_id"] = json!(upload.config.id);
        let new: NewAutomation = serde_json::from_value(body).unwrap();
        let automation = self
            .service
            .create_automation(&self.app, new)
            .await
            .unwrap();
        self.service
            .transition(&self.app, automation.id.as_str(), LifecycleAction::Activate)
            .await
            .unwrap();
    }

    /// Sends one event and waits for its run to complete.
    async fn event_to_completed(&self) {
        let answer = self
            .execution
            .receive_event(self.app.clone(), event())
            .await
            .unwrap();
        let [run_id] = answer.receipt.run_ids.as_slice() else {
            panic!("one run per event, got {:?}", answer.receipt.run_ids);
        };
        let run = self
            .execution
            .wait_ended(&self.app, run_id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    }

    async fn stop(self) {
        self.execution.shutdown().await;
        self.service.store().flush().unwrap();
    }
}

/// Latency at an offered rate, and throughput per sender count: for one
/// flush policy, in process or through HTTP.
struct PathFigures {
    p50: Duration,
    p99: Duration,
    /// Events refused (503 busy, 429 queue full) at the offered rate.
    refused: usize,
    /// Per sender count.
    sustained: Vec<(usize, Throughput)>,
}

/// Starts one `send` every `1/rate` s for `window` (open loop: a slow answer
/// does not hold the next send back). Returns each accepted one's time to its
/// completed run, and how many the server refused (`send` gave `false`).
async fn at_offered_rate<F, Fut>(rate: f64, window: Duration, send: F) -> (Vec<Duration>, usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    while started.elapsed() < window {
        tick.tick().await;
        let sent = send();
        sends.spawn(async move {
            let t = Instant::now();
            sent.await.then(|| t.elapsed())
        });
    }
    let outcomes = sends.join_all().await;
    let refused = outcomes.iter().filter(|o| o.is_none()).count();
    (outcomes.into_iter().flatten().collect(), refused)
}

async fn in_process(plan: Plan, durability: Durability, bytes: &[u8]) -> PathFigures {
    let dir = bench_dir();
    let pipeline = Arc::new(Pipeline::start(dir.path(), durability).await);
    pipeline
        .running(
            bytes,
            json!({"name": "welcome", "type": "trigger", "trigger": EVENT}),
        )
        .await;
    for _ in 0..plan.warmup {
        pipeline.event_to_completed().await;
    }
    let (mut latencies, refused) = at_offered_rate(plan.rate, plan.rate_window, || {
        let pipeline = Arc::clone(&pipeline);
        async move {
            pipeline.event_to_completed().await;
            true
        }
    })
    .await;
    let mut sustained = Vec::new();
    for senders in plan.senders {
        let send_and_wait = {
            let pipeline = Arc::clone(&pipeline);
            move || {
                let pipeline = Arc::clone(&pipeline);
                async move { pipeline.event_to_completed().await }
            }
        };
        sustained.push((
            senders,
            throughput(senders, plan.window, send_and_wait).await,
        ));
    }
    Arc::into_inner(pipeline)
        .expect("the senders are done")
        .stop()
        .await;
    PathFigures {
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
        refused,
        sustained,
    }
}

/// `automata serve` as a process, with an HTTP client holding the admin key.
struct Served {
    process: ServeProcess,
    client: reqwest::Client,
    api: String,
}

impl Served {
    fn start(dir: &Path, flush: &str) -> Served {
        let process = spawn_serve(
            env!("CARGO_BIN_EXE_automata"),
            dir,
            &[
                "--flush",
                flush,
                "--workers",
                &WORKERS.to_string(),
                // The benchmark is the only client: no intake rate limit.
                "--event-rate",
                "1000000",
                "--event-burst",
                "1000000",
            ],
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(256)
            // A request the loaded server never answers fails (a refused
            // event, a follow reconnected) instead of holding its sender.
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let api = format!("{}/apps/default", process.url);
        Served {
            process,
            client,
            api,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let answer = self
            .client
            .post(format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    async fn upload(&self, bytes: Vec<u8>) -> String {
        let answer = self
            .client
            .post(format!("{}/configs", self.api))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let body: Value = answer.json().await.unwrap();
        body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned()
    }

    /// Uploads `bytes` and creates a running automation of it from `body`.
    async fn running(&self, bytes: Vec<u8>, mut body: Value) {
        body["config_id"] = json!(self.upload(bytes).await);
        let automation = self.post("/automations", body).await;
        let id = automation["id"].as_str().unwrap();
        self.post(&format!("/automations/{id}/activate"), json!({}))
            .await;
    }

    /// Sends one event and follows its runs until they end; every one must
    /// complete. `false` when the server refused the event as busy (503) or
    /// its queue full (429), or closed the connection before answering (a
    /// loaded edge closes its idlest connections for newcomers).
    async fn try_event_to_completed(&self) -> bool {
        let Ok(answer) = self
            .client
            .post(format!("{}/events", self.api))
            .json(&json!({"trigger": EVENT, "payload": payload()}))
            .send()
            .await
        else {
            return false;
        };
        let status = answer.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            return false;
        }
        let receipt: Value = answer.json().await.unwrap();
        assert!(status.is_success(), "POST /events: {status} {receipt}");
        for run in receipt["run_ids"].as_array().unwrap() {
            match self.follow_to_end(run.as_str().unwrap()).await {
                Some(ended) => assert!(ended.contains("\"completed\""), "run {run}: {ended}"),
                None => {
                    UNENDED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        true
    }

    /// Follows run `run`'s output (Server-Sent Events) until its `end`
    /// event, reconnecting when the server cuts the stream (a loaded edge
    /// closes its idlest connections first); returns the last stream, or
    /// `None` when the run has not ended within [`FOLLOW_LIMIT`].
    async fn follow_to_end(&self, run: &str) -> Option<String> {
        let url = format!("{}/automations/runs/{run}/output?follow=true", self.api);
        let give_up = Instant::now() + FOLLOW_LIMIT;
        loop {
            if Instant::now() >= give_up {
                return None;
            }
            let answer = self
                .client
                .get(&url)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .send()
                .await;
            if let Ok(answer) = answer
                && answer.status().is_success()
                && let Ok(text) = answer.text().await
                && text.contains("event: end")
            {
                return Some(text);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`try_event_to_completed`](Self::try_event_to_completed) until the
    /// server takes the event (a sender of a closed loop backs off 5 ms).
    async fn event_to_completed(&self) {
        while !self.try_event_to_completed().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The server process's CPU time so far (user + system).
    fn cpu(&self) -> Duration {
        process_cpu_of(self.process.child.id())
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    fn stop(self) {
        drop(self);
    }
}

impl Drop for Served {
    /// Also when the benchmark panics: no server outlives it.
    fn drop(&mut self) {
        // SAFETY: signalling our own child, which has not been waited for.
        unsafe { libc::kill(self.process.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.process.child.wait();
    }
}

/// CPU time (user + system) of process `pid`, from `/proc/<pid>/stat`.
fn process_cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces) end with `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

async fn over_http(plan: Plan, flush: &str, bytes: &[u8]) -> PathFigures {
    let dir = bench_dir();
    let served = Arc::new(Served::start(dir.path(), flush));
    served
        .running(
            bytes.to_vec(),
            json!({"name": "welcome", "type": "trigger", "trigger": EVENT}),
        )
        .await;
    for _ in 0..plan.warmup {
        served.event_to_completed().await;
    }
    let (mut latencies, refused) = at_offered_rate(plan.rate, plan.rate_window, || {
        let served = Arc::clone(&served);
        async move { served.try_event_to_completed().await }
    })
    .await;
    let mut sustained = Vec::new();
    for senders in plan.senders {
        let send_and_wait = {
            let served = Arc::clone(&served);
            move || {
                let served = Arc::clone(&served);
                async move { served.event_to_completed().await }
            }
        };
        let cpu = served.cpu();
        let mut figures = throughput(senders, plan.window, send_and_wait).await;
        // The server's CPU, not the client's.
        figures.cpu = served.cpu() - cpu;
        sustained.push((senders, figures));
    }
    Arc::into_inner(served)
        .expect("the senders are done")
        .stop();
    PathFigures {
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
        refused,
        sustained,
    }
}

/// The floor and the runner: medians and CPU per run (two tasks, like the
/// two workers).
struct RunnerFigures {
    floor: Duration,
    runner: Duration,
    runner_cpu: Duration,
}

async fn runner_figures(plan: Plan, bytes: &[u8]) -> RunnerFigures {
    let runner = Arc::new(
        Runner::new(RunnerConfig {
            pooling: true,
            max_concurrent_runs: WORKERS,
            ..RunnerConfig::default()
        })
        .unwrap(),
    );
    let workflow = runner.load(bytes).await.unwrap();
    let pre = bare_pre(runner.engine(), bytes);
    let ctx = RunContext {
        app_id: "bench".into(),
        automation_id: "aut_bench".into(),
        run_id: "atr_bench".into(),
        run_as_user_id: None,
        scheduled_at: None,
        attempt: 1,
    };
    let input = TriggerInput {
        trigger: EVENT.into(),
        payload: payload(),
    };
    let (wit_ctx, wit_input) = wit_inputs(&ctx, &input);
    for _ in 0..plan.warmup {
        bare_run(runner.engine(), true, &pre, &wit_ctx, &wit_input).await;
        runner_run(&runner, &workflow, &ctx, &input).await;
    }
    let (mut floor, mut full) = (Vec::new(), Vec::new());
    for _ in 0..plan.runner_runs {
        let t = Instant::now();
        bare_run(runner.engine(), true, &pre, &wit_ctx, &wit_input).await;
        floor.push(t.elapsed());
        let t = Instant::now();
        runner_run(&runner, &workflow, &ctx, &input).await;
        full.push(t.elapsed());
    }
    let run = {
        let (runner, workflow) = (Arc::clone(&runner), workflow.clone());
        let (ctx, input) = (Arc::new(ctx), Arc::new(input));
        move || {
            let (runner, workflow) = (Arc::clone(&runner), workflow.clone());
            let (ctx, input) = (Arc::clone(&ctx), Arc::clone(&input));
            async move { runner_run(&runner, &workflow, &ctx, &input).await }
        }
    };
    let cpu = throughput(WORKERS, plan.window, run).await.cpu_per_run();
    RunnerFigures {
        floor: median(&mut floor),
        runner: median(&mut full),
        runner_cpu: cpu,
    }
}

/// The scheduler's figures.
struct SchedulerFigures {
    idle_cpu_share: f64,
    /// Due time → run stored, and → run started, p50 and p99.
    stored: (Duration, Duration),
    started: (Duration, Duration),
}

async fn scheduler(plan: Plan, digest_bytes: &[u8]) -> SchedulerFigures {
    let dir = bench_dir();
    // Setting up thousands of automations is not what is measured.
    let durability = Durability::Interval(Duration::from_millis(200));
    let pipeline = Pipeline::start(dir.path(), durability).await;
    let upload = pipeline
        .service
        .upload_config(&pipeline.app, None, digest_bytes.to_vec().into())
        .await
        .unwrap();
    let create = |schedule: String| {
        let (service, app) = (Arc::clone(&pipeline.service), pipeline.app.clone());
        let config = upload.config.id.clone();
        async move {
            let new: NewAutomation = serde_json::from_value(json!({
                "name": "digest", "type": "scheduled", "schedule": schedule,
                "timezone": "UTC", "config_id": config,
            }))
            .unwrap();
            let automation = service.create_automation(&app, new).await.unwrap();
            service
                .transition(&app, automation.id.as_str(), LifecycleAction::Activate)
                .await
                .unwrap();
        }
    };
    // Far off: at midnight on the first of January.
    for _ in 0..plan.idle_automations {
        create("0 0 1 1 *".to_owned()).await;
    }
    // Let the scheduler settle on the new timeline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = common::process_cpu();
    let idle = Instant::now();
    tokio::time::sleep(plan.idle_window).await;
    let idle_cpu_share = (common::process_cpu() - cpu).as_secs_f64() / idle.elapsed().as_secs_f64();

    // All due in the same second, far enough ahead for their creation.
    let setup = Duration::from_millis(20 * plan.due_automations as u64).max(Duration::from_secs(3));
    let due: DateTime<Utc> = (Utc::now() + setup).with_nanosecond(0).unwrap();
    let schedule = format!("{} {} {} * * *", due.second(), due.minute(), due.hour());
    for _ in 0..plan.due_automations {
        create(schedule.clone()).await;
    }
    assert!(
        Utc::now() < due,
        "creating the due automations took too long"
    );
    let runs = wait_for_runs(&pipeline, due, plan.due_automations).await;
    pipeline.stop().await;
    let lag = |at: DateTime<Utc>| (at - due).to_std().unwrap_or_default();
    let mut stored: Vec<Duration> = runs.iter().map(|run| lag(run.created_at)).collect();
    let mut started: Vec<Duration> = runs
        .iter()
        .map(|run| lag(run.started_at.expect("every run started")))
        .collect();
    SchedulerFigures {
        idle_cpu_share,
        stored: (percentile(&mut stored, 50.0), percentile(&mut stored, 99.0)),
        started: (
            percentile(&mut started, 50.0),
            percentile(&mut started, 99.0),
        ),
    }
}

/// Waits until `count` runs scheduled at `due` have ended; returns them.
async fn wait_for_runs(pipeline: &Pipeline, due: DateTime<Utc>, count: usize) -> Vec<Run> {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let mut runs = Vec::new();
        let mut after = None;
        loop {
            let filter = RunFilter {
                since: Some(due),
                ..RunFilter::default()
            };
            let page = pipeline
                .service
                .store()
                .app_runs(&pipeline.app, &filter, after.as_ref(), 500)
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            runs.extend(page.into_iter().filter(|run| run.scheduled_at == Some(due)));
        }
        if runs.len() >= count && runs.iter().all(|run| run.status.is_terminal()) {
            return runs;
        }
        assert!(Instant::now() < give_up, "{} of {count} runs", runs.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The component with a custom section appended: the same workflow under
/// another digest, so each of many configs compiles on its own.
fn variant(bytes: &[u8], i: usize) -> Vec<u8> {
    let name = b"automata-bench";
    let payload = (i as u64).to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push(u8::try_from(size).unwrap()); // LEB128, below 128
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// Restart: start → ready, and start → one run of every config completed.
struct RestartFigures {
    ready: Duration,
    all_ran: Duration,
}

async fn restart(plan: Plan, bytes: &[u8]) -> (RestartFigures, RestartFigures) {
    let dir = bench_dir();
    let served = Served::start(dir.path(), "always");
    for i in 0..plan.restart_configs {
        served
            .running(
                variant(bytes, i),
                json!({"name": format!("welcome {i}"), "type": "trigger", "trigger": EVENT}),
            )
            .await;
    }
    served.stop();
    let mut figures = Vec::new();
    for cold in [false, true] {
        if cold {
            std::fs::remove_dir_all(dir.path().join("compiled")).unwrap();
        }
        let started = Instant::now();
        let served = Served::start(dir.path(), "always");
        let health = format!("{}/healthz", served.process.url);
        while !served
            .client
            .get(&health)
            .send()
            .await
            .is_ok_and(|answer| answer.status().is_success())
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready = started.elapsed();
        // One event: a run per config, all followed to their end.
        served.event_to_completed().await;
        figures.push(RestartFigures {
            ready,
            all_ran: started.elapsed(),
        });
        served.stop();
    }
    let cold = figures.pop().unwrap();
    (figures.pop().unwrap(), cold)
}

/// Bytes of the data directory per run after `runs` runs (flushed, closed).
async fn disk(plan: Plan, bytes: &[u8]) -> f64 {
    let dir = bench_dir();
    let pipeline = Arc::new(
        Pipeline::start(dir.path(), Durability::Interval(Duration::from_millis(200))).await,
    );
    pipeline
        .running(
            bytes,
            json!({"name": "welcome", "type": "trigger", "trigger": EVENT}),
        )
        .await;
    let senders = 64.min(plan.disk_runs);
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let pipeline = Arc::clone(&pipeline);
        let share = plan.disk_runs / senders + usize::from(sender < plan.disk_runs % senders);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                pipeline.event_to_completed().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::into_inner(pipeline).unwrap().stop().await;
    let size = dir_size(dir.path(), &dir.path().join("compiled"));
    size as f64 / plan.disk_runs as f64
}

fn dir_size(path: &Path, except: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path() != except)
        .map(|entry| {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&entry.path(), except)
            } else {
                meta.len()
            }
        })
        .sum()
}

fn print_path(name: &str, policy: &str, f: &PathFigures, runner_cpu: Duration, rate: f64) {
    println!(
        "  {name:<10} --flush {policy:<6} p50 {:>8.0} µs  p99 {:>8.0} µs at {rate:.0}/s offered ({} refused)",
        micros(f.p50),
        micros(f.p99),
        f.refused
    );
    for (senders, t) in &f.sustained {
        println!(
            "  {:<10} --flush {policy:<6} {senders:>3} senders: {:>7.0} runs/s  {:>7.1} µs CPU/run  ({:.1}x the runner's)",
            "",
            t.per_second(),
            micros(t.cpu_per_run()),
            t.cpu_per_run().as_secs_f64() / runner_cpu.as_secs_f64()
        );
    }
}

fn main() {
    let runtime = common::runtime();
    let plan = if common::full() { FULL } else { SMOKE };
    // Each section prints as soon as it is measured.
    runtime.block_on(async {
        let bytes = guest("welcome-new-members");
        let started = Instant::now();
        println!("welcome-new-members, {WORKERS} workers");
        let runner = runner_figures(plan, &bytes).await;
        println!("runner ({} runs each, medians):", plan.runner_runs);
        println!("  floor: bare wasmtime instantiate + call  {:>8.1} µs", micros(runner.floor));
        println!("  Runner::run                              {:>8.1} µs", micros(runner.runner));
        println!(
            "  Runner::run CPU per run ({WORKERS} tasks)         {:>8.1} µs",
            micros(runner.runner_cpu)
        );
        println!(
            "event -> completed run (latency at a fixed offered rate; then each sender sends \
             and waits for its run, {:?} per figure; CPU is the process's, the server's over HTTP):",
            plan.window
        );
        let policies = [
            ("always", Durability::Immediate),
            ("200ms", Durability::Interval(Duration::from_millis(200))),
        ];
        let mut headline = None;
        for (policy, durability) in policies {
            let local = in_process(plan, durability, &bytes).await;
            print_path("in-process", policy, &local, runner.runner_cpu, plan.rate);
            let http = over_http(plan, policy, &bytes).await;
            print_path("HTTP", policy, &http, runner.runner_cpu, plan.rate);
            if durability == Durability::Immediate {
                headline = http.sustained.last().copied();
            }
        }
        println!(
            "  runs accepted over HTTP whose end was not seen within {FOLLOW_LIMIT:?}: {}",
            UNENDED.load(Ordering::Relaxed)
        );
        let scheduler = scheduler(plan, &guest("daily-digest")).await;
        println!("scheduler:");
        println!(
            "  idle, {} running scheduled automations none due: {:.2}% of one core",
            plan.idle_automations,
            scheduler.idle_cpu_share * 100.0
        );
        println!(
            "  {} automations due in the same second: due -> stored p50 {:.1} ms p99 {:.1} ms; \
             due -> started p50 {:.1} ms p99 {:.1} ms",
            plan.due_automations,
            scheduler.stored.0.as_secs_f64() * 1e3,
            scheduler.stored.1.as_secs_f64() * 1e3,
            scheduler.started.0.as_secs_f64() * 1e3,
            scheduler.started.1.as_secs_f64() * 1e3
        );
        let (warm, cold) = restart(plan, &bytes).await;
        println!("restart with {} stored configs:", plan.restart_configs);
        for (cache, f) in [("warm", &warm), ("cold", &cold)] {
            println!(
                "  compile cache {cache}: start -> ready {:.0} ms; -> one run of each config completed {:.0} ms",
                f.ready.as_secs_f64() * 1e3,
                f.all_ran.as_secs_f64() * 1e3
            );
        }
        let per_run = disk(plan, &bytes).await;
        println!(
            "disk: {per_run:.0} bytes per stored run after {} runs",
            plan.disk_runs
        );
        println!("measured in {:.0?}", started.elapsed());
        let (senders, figures) = headline.expect("HTTP with --flush always was measured");
        println!(
            "durable runs/s (HTTP, {senders} senders): {:.0}",
            figures.per_second()
        );
    });
}
