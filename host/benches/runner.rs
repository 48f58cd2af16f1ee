//! The runner's overhead over bare wasmtime, its throughput, and what the
//! compile cache saves. Not a test: it prints figures.
//!
//! ```text
//! scripts/build-guests && cargo bench -p automata --bench runner
//! ```
//!
//! (`cargo bench` builds everything in release first. To reuse the dev build,
//! whose dependencies are already at opt-level 2: `cargo bench -p automata
//! --bench runner --profile dev --config 'profile.dev.package.automata.opt-level=2'`.)
//! Under `cargo test` it takes a few samples only, to check every path works.
//!
//! Measures, for the welcome example, in one process:
//! - (a) the floor: bare wasmtime, `InstancePre::instantiate_async` + `call_run`
//!   with a fresh WASI context, on the runner's own engine (pooling allocator,
//!   fuel and epochs on, so the engine's instrumentation is in both figures);
//! - (a0) the same on an engine without fuel or epoch instrumentation, for
//!   reference;
//! - (b) the runner's full path, `Runner::run` (slot, fresh store with limits,
//!   output capture, classification, accounting);
//! - (c) the same on an engine with explicit bounds checks (`serve
//!   --bounds-checks explicit`: no guard pages, no `mprotect` between runs);
//! - runs/s of (a), (b) and (c) with one and two concurrent tasks on two threads;
//! - a cold `Runner::load` (compile) against a cache load.
//!
//! Samples of (a), (a0), (b) and (c) are taken in interleaved blocks so that noise
//! from other processes spreads over all three.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automata::domain::workflow::{RunContext, TriggerInput};
use automata::runner::{BoundsChecks, Runner, RunnerConfig};
use common::bare::{bare_pre, bare_run, wit_inputs};
use common::{guest, median, micros, runner_run, throughput};
use serde_json::json;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

mod common;

/// How many samples to take.
#[derive(Clone, Copy)]
struct Plan {
    blocks: usize,
    runs_per_block: usize,
    warmup: usize,
    throughput_window: Duration,
    cold_loads: usize,
    cached_loads: usize,
}

/// `cargo bench` passes `--bench`; without it (`cargo test --all-targets`)
/// the benchmark only checks that every path works, with a few samples.
const FULL: Plan = Plan {
    blocks: 30,
    runs_per_block: 100,
    warmup: 200,
    throughput_window: Duration::from_secs(3),
    cold_loads: 5,
    cached_loads: 20,
};
const SMOKE: Plan = Plan {
    blocks: 1,
    runs_per_block: 3,
    warmup: 1,
    throughput_window: Duration::from_millis(50),
    cold_loads: 1,
    cached_loads: 1,
};

fn uninstrumented_engine() -> Engine {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling({
            let mut pool = PoolingAllocationConfig::new();
            // As the runner's pool resets slots (see runner/engine.rs).
            pool.total_component_instances(4)
                .total_core_instances(64)
                .total_memories(16)
                .total_tables(64)
                .total_stacks(4)
                .pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(1 << 20)
                .table_keep_resident(1 << 20);
            pool
        }));
    Engine::new(&config).unwrap()
}

fn inputs() -> (RunContext, TriggerInput) {
    (
        RunContext {
            app_id: "bench".into(),
            automation_id: "aut_bench".into(),
            run_id: "atr_bench".into(),
            run_as_user_id: None,
            scheduled_at: None,
            attempt: 1,
        },
        TriggerInput {
            trigger: "thread.member_joined".into(),
            payload: json!({"member": {"id": "usr_1", "name": "Ada"}, "thread": {"id": "thr_1", "name": "Ops"}}),
        },
    )
}

async fn load_time(bytes: &[u8], cache_dir: PathBuf) -> (Duration, bool) {
    let runner = Runner::new(RunnerConfig {
        cache_dir: Some(cache_dir),
        pooling: true,
        ..RunnerConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let workflow = runner.load(bytes).await.unwrap();
    (started.elapsed(), workflow.from_cache())
}

fn main() {
    let runtime = common::runtime();
    let plan = if common::full() { FULL } else { SMOKE };
    runtime.block_on(bench(plan));
}

async fn bench(plan: Plan) {
    let bytes = guest("welcome-new-members");
    let runner = Arc::new(
        Runner::new(RunnerConfig {
            pooling: true,
            max_concurrent_runs: 2,
            ..RunnerConfig::default()
        })
        .unwrap(),
    );
    println!("allocator: {:?}", runner.allocator());
    let workflow = runner.load(&bytes).await.unwrap();
    let explicit = Arc::new(
        Runner::new(RunnerConfig {
            pooling: true,
            max_concurrent_runs: 2,
            bounds_checks: BoundsChecks::Explicit,
            ..RunnerConfig::default()
        })
        .unwrap(),
    );
    let explicit_workflow = explicit.load(&bytes).await.unwrap();
    let floor_pre = bare_pre(runner.engine(), &bytes);
    let plain_engine = uninstrumented_engine();
    let plain = bare_pre(&plain_engine, &bytes);
    let (ctx, input) = inputs();
    let (wit_ctx, wit_input) = wit_inputs(&ctx, &input);

    for _ in 0..plan.warmup {
        bare_run(runner.engine(), true, &floor_pre, &wit_ctx, &wit_input).await;
        bare_run(&plain_engine, false, &plain, &wit_ctx, &wit_input).await;
        runner_run(&runner, &workflow, &ctx, &input).await;
        runner_run(&explicit, &explicit_workflow, &ctx, &input).await;
    }
    let mut floor_samples = Vec::new();
    let mut explicit_samples = Vec::new();
    let mut plain_samples = Vec::new();
    let mut runner_samples = Vec::new();
    for _ in 0..plan.blocks {
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            bare_run(runner.engine(), true, &floor_pre, &wit_ctx, &wit_input).await;
            floor_samples.push(t.elapsed());
        }
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            bare_run(&plain_engine, false, &plain, &wit_ctx, &wit_input).await;
            plain_samples.push(t.elapsed());
        }
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            runner_run(&runner, &workflow, &ctx, &input).await;
            runner_samples.push(t.elapsed());
        }
        for _ in 0..plan.runs_per_block {
            let t = Instant::now();
            runner_run(&explicit, &explicit_workflow, &ctx, &input).await;
            explicit_samples.push(t.elapsed());
        }
    }
    let floor = median(&mut floor_samples);
    let plain = median(&mut plain_samples);
    let full = median(&mut runner_samples);
    let checked = median(&mut explicit_samples);
    let n = plan.blocks * plan.runs_per_block;
    println!("per-run median over {n} runs each (welcome-new-members):");
    println!(
        "  (a)  bare wasmtime, runner's engine:     {:>8.1} µs",
        micros(floor)
    );
    println!(
        "  (a0) bare wasmtime, no fuel/epochs:      {:>8.1} µs",
        micros(plain)
    );
    println!(
        "  (b)  Runner::run, full path:             {:>8.1} µs",
        micros(full)
    );
    println!(
        "  (c)  Runner::run, explicit bounds checks:{:>8.1} µs",
        micros(checked)
    );
    println!(
        "  ratio (b)/(a):                           {:>8.2}",
        full.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  ratio (b)/(a0):                          {:>8.2}",
        full.as_secs_f64() / plain.as_secs_f64()
    );

    let runs_of = |runner: &Arc<Runner>, workflow: &automata::runner::Workflow| {
        let (runner, workflow) = (runner.clone(), workflow.clone());
        let (ctx, input) = (Arc::new(ctx.clone()), Arc::new(input.clone()));
        move || {
            let (runner, workflow) = (runner.clone(), workflow.clone());
            let (ctx, input) = (ctx.clone(), input.clone());
            async move { runner_run(&runner, &workflow, &ctx, &input).await }
        }
    };
    let full_run = runs_of(&runner, &workflow);
    let checked_run = runs_of(&explicit, &explicit_workflow);
    let floor_run = {
        let (engine, pre) = (runner.engine().clone(), floor_pre.clone());
        let (ctx, input) = (Arc::new(wit_ctx.clone()), Arc::new(wit_input.clone()));
        move || {
            let (engine, pre) = (engine.clone(), pre.clone());
            let (ctx, input) = (ctx.clone(), input.clone());
            async move { bare_run(&engine, true, &pre, &ctx, &input).await }
        }
    };
    let floor_one = throughput(1, plan.throughput_window, floor_run.clone()).await;
    let floor_two = throughput(2, plan.throughput_window, floor_run).await;
    let one = throughput(1, plan.throughput_window, full_run.clone()).await;
    let two = throughput(2, plan.throughput_window, full_run).await;
    let checked_one = throughput(1, plan.throughput_window, checked_run.clone()).await;
    let checked_two = throughput(2, plan.throughput_window, checked_run).await;
    println!(
        "throughput over {:?} each (2 worker threads); CPU per run is the process's \
         user + system time over the runs (flat from 1 to 2 tasks = nothing serialises)",
        plan.throughput_window
    );
    for (label, figures) in [
        ("(a) bare wasmtime, 1 task: ", floor_one),
        ("(a) bare wasmtime, 2 tasks:", floor_two),
        ("(b) Runner::run, 1 task:   ", one),
        ("(b) Runner::run, 2 tasks:  ", two),
        ("(c) explicit checks, 1 task:", checked_one),
        ("(c) explicit checks, 2 tasks:", checked_two),
    ] {
        println!(
            "  {label:<32}{:>8.0} runs/s   {:>6.1} µs CPU/run",
            figures.per_second(),
            micros(figures.cpu_per_run())
        );
    }
    println!(
        "  scaling 1 -> 2 tasks: (a) {:.2}x, (b) {:.2}x, (c) {:.2}x",
        floor_two.per_second() / floor_one.per_second(),
        two.per_second() / one.per_second(),
        checked_two.per_second() / checked_one.per_second()
    );

    let dir = tempfile::tempdir().unwrap();
    let mut cold = Vec::new();
    for i in 0..plan.cold_loads {
        let (took, from_cache) = load_time(&bytes, dir.path().join(format!("cold-{i}"))).await;
        assert!(!from_cache);
        cold.push(took);
    }
    let warm_dir = dir.path().join("cold-0");
    let mut cached = Vec::new();
    for _ in 0..plan.cached_loads {
        let (took, from_cache) = load_time(&bytes, warm_dir.clone()).await;
        assert!(from_cache);
        cached.push(took);
    }
    let cold = median(&mut cold);
    let cached = median(&mut cached);
    println!("Runner::load median (includes reading the graph):");
    println!(
        "  cold compile ({} loads):                 {:>8.2} ms",
        plan.cold_loads,
        cold.as_secs_f64() * 1e3
    );
    println!(
        "  cache load ({} loads):                  {:>8.2} ms",
        plan.cached_loads,
        cached.as_secs_f64() * 1e3
    );
    println!(
        "  ratio compile/cache:                     {:>8.1}",
        cold.as_secs_f64() / cached.as_secs_f64()
    );
}
