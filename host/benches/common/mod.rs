//! What the benchmarks share: guest bytes, a checked `Runner::run`, medians,
//! throughput.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automata::domain::outcome::Outcome;
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::runner::{Runner, Workflow};

/// `cargo bench` passes `--bench`; without it (`cargo test --all-targets`)
/// a benchmark only checks that every path works, with a few samples.
pub fn full() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The runtime benchmarks run on: two worker threads, like this machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A guest built by `scripts/build-guests` (or in `AUTOMATA_GUESTS_DIR`).
pub fn guest(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("AUTOMATA_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/build-guests first",
            path.display()
        )
    })
}

/// One `Runner::run`, which must complete.
pub async fn runner_run(
    runner: &Runner,
    workflow: &Workflow,
    ctx: &RunContext,
    input: &TriggerInput,
) {
    let report = runner.run(workflow, ctx, input).await;
    assert!(
        matches!(report.outcome, Outcome::Completed(_)),
        "{:?}",
        report.outcome
    );
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs/s of `tasks` tasks each calling `run_once` in a loop for
/// `window`.
pub async fn throughput<F, Fut>(tasks: usize, window: Duration, run_once: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let run_once = run_once.clone();
        handles.push(tokio::spawn(async move {
            let mut runs = 0u64;
            while started.elapsed() < window {
                run_once().await;
                runs += 1;
            }
            runs
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}
