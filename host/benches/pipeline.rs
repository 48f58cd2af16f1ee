//! The whole pipeline's overhead per run: event intake → stored pending run →
//! queue → worker → `Runner::run_with` → stored result, against the runner's
//! own floor. Not a test: it prints figures.
//!
//! ```text
//! scripts/build-guests && cargo bench -p automata --bench pipeline
//! ```
//!
//! (To reuse the dev build: `cargo bench -p automata --bench pipeline
//! --profile dev --config 'profile.dev.package.automata.opt-level=2'`.)
//! Under `cargo test` it takes a few samples only, to check every path works.
//!
//! For each flush policy (`--flush always`, `--flush 200ms`), in one process,
//! on a fresh data directory, with the real store, service and execution
//! plane (two workers, no HTTP), for the welcome example:
//! - the median time from `Execution::receive_event` to the run's stored
//!   `completed`, one event at a time, and of that until intake answers;
//! - runs/s completed with 16 concurrent senders, each sending an event and
//!   waiting for its run before the next;
//! - `Runner::run`'s median on the same runner, sampled in blocks interleaved
//!   with the pipeline's, and the ratio pipeline/runner.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automata::domain::app::NewApp;
use automata::domain::automation::{LifecycleAction, NewAutomation};
use automata::domain::event::IncomingEvent;
use automata::domain::ids::AppId;
use automata::domain::run::RunStatus;
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::execution::{Execution, ExecutionConfig};
use automata::metrics::Metrics;
use automata::runner::{Runner, RunnerConfig};
use automata::service::{Service, ServiceSettings};
use automata::store::{Durability, SledStore, StoreOptions};
use common::{guest, median, micros, runner_run, throughput};
use serde_json::{Value, json};

mod common;

const EVENT: &str = "thread.member_joined";
const WORKERS: usize = 2;
const SENDERS: usize = 16;

/// How many samples to take.
#[derive(Clone, Copy)]
struct Plan {
    blocks: usize,
    runs_per_block: usize,
    warmup: usize,
    throughput_window: Duration,
}

/// `cargo bench` passes `--bench`; without it (`cargo test --all-targets`)
/// the benchmark only checks that every path works, with a few samples.
const FULL: Plan = Plan {
    blocks: 10,
    runs_per_block: 50,
    warmup: 50,
    throughput_window: Duration::from_secs(3),
};
const SMOKE: Plan = Plan {
    blocks: 1,
    runs_per_block: 3,
    warmup: 1,
    throughput_window: Duration::from_millis(50),
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

/// The service and a started execution plane over a store in `dir`, with
/// one running trigger automation of the welcome example.
struct Pipeline {
    service: Arc<Service>,
    execution: Arc<Execution>,
    app: AppId,
}

impl Pipeline {
    async fn start(dir: &Path, durability: Durability, bytes: &[u8]) -> Pipeline {
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
        let upload = service
            .upload_config(&app, None, bytes.to_vec().into())
            .await
            .unwrap();
        let new: NewAutomation = serde_json::from_value(json!({
            "name": "welcome", "type": "trigger", "trigger": EVENT,
            "config_id": upload.config.id,
        }))
        .unwrap();
        let automation = service.create_automation(&app, new).await.unwrap();
        service
            .transition(&app, automation.id.as_str(), LifecycleAction::Activate)
            .await
            .unwrap();
        Pipeline {
            service,
            execution,
            app,
        }
    }

    /// Sends one event and waits for its run to complete; returns how long
    /// intake took to answer.
    async fn event_to_completed(&self) -> Duration {
        let sent = Instant::now();
        let answer = self
            .execution
            .receive_event(self.app.clone(), event())
            .await
            .unwrap();
        let answered = sent.elapsed();
        let [run_id] = answer.receipt.run_ids.as_slice() else {
            panic!("one run per event, got {:?}", answer.receipt.run_ids);
        };
        let run = self
            .execution
            .wait_ended(&self.app, run_id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        answered
    }

    async fn stop(self) {
        self.execution.shutdown().await;
        self.service.store().flush().unwrap();
    }
}

/// What one flush policy measured.
struct Figures {
    policy: &'static str,
    intake: Duration,
    pipeline: Duration,
    runner: Duration,
    runs_per_second: f64,
}

async fn measure(
    plan: Plan,
    policy: &'static str,
    durability: Durability,
    bytes: &[u8],
) -> Figures {
    // On the same disk as the build, not a tmpfs: flushes cost what they cost.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pipeline = Arc::new(Pipeline::start(dir.path(), durability, bytes).await);
    let runner = Arc::clone(pipeline.service.runner());
    let workflow = runner.load(bytes).await.unwrap();
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
    for _ in 0..plan.warmup {
        pipeline.event_to_completed().await;
        runner_run(&runner, &workflow, &ctx, &input).await;
    }
    let mut intake_samples = Vec::new();
    let mut pipeline_samples = Vec::new();
    let mut runner_samples = Vec::new();
    for _ in 0..plan.blocks {
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            intake_samples.push(pipeline.event_to_completed().await);
            pipeline_samples.push(t.elapsed());
        }
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            runner_run(&runner, &workflow, &ctx, &input).await;
            runner_samples.push(t.elapsed());
        }
    }
    // Each sender sends an event and waits for its run before the next.
    let send_and_wait = {
        let pipeline = Arc::clone(&pipeline);
        move || {
            let pipeline = Arc::clone(&pipeline);
            async move {
                pipeline.event_to_completed().await;
            }
        }
    };
    let runs_per_second = throughput(SENDERS, plan.throughput_window, send_and_wait).await;
    Arc::into_inner(pipeline)
        .expect("the senders are done")
        .stop()
        .await;
    Figures {
        policy,
        intake: median(&mut intake_samples),
        pipeline: median(&mut pipeline_samples),
        runner: median(&mut runner_samples),
        runs_per_second,
    }
}

fn main() {
    let runtime = common::runtime();
    let plan = if common::full() { FULL } else { SMOKE };
    runtime.block_on(async {
        let bytes = guest("welcome-new-members");
        let policies = [
            ("always", Durability::Immediate),
            ("200ms", Durability::Interval(Duration::from_millis(200))),
        ];
        let mut all = Vec::new();
        for (policy, durability) in policies {
            all.push(measure(plan, policy, durability, &bytes).await);
        }
        let n = plan.blocks * plan.runs_per_block;
        println!(
            "welcome-new-members, {WORKERS} workers; medians over {n} runs each, \
             pipeline and runner samples interleaved"
        );
        println!(
            "  --flush   intake answer   event→completed   Runner::run   ratio   runs/s ({SENDERS} senders, {:?})",
            plan.throughput_window
        );
        for f in all {
            println!(
                "  {:<7} {:>10.1} µs {:>14.1} µs {:>10.1} µs {:>7.1} {:>8.0}",
                f.policy,
                micros(f.intake),
                micros(f.pipeline),
                micros(f.runner),
                f.pipeline.as_secs_f64() / f.runner.as_secs_f64(),
                f.runs_per_second
            );
        }
    });
}
