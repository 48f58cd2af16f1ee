//! What the benchmarks share: guest bytes, a checked `Runner::run`, bare
//! wasmtime, percentiles, throughput and the CPU time it took.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automata::domain::outcome::Outcome;
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::runner::{Runner, Workflow};

pub mod bare;

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
    percentile(samples, 50.0)
}

/// The `p`th percentile (nearest rank) of `samples`, which it sorts; zero
/// when there are none.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// CPU time this process has used so far (user + system, every thread).
pub fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What a throughput window did: runs completed, wall-clock time, and the
/// CPU time the measuring process (or the server measured) used meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub runs: u64,
    pub elapsed: Duration,
    pub cpu: Duration,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.runs as f64 / self.elapsed.as_secs_f64()
    }

    pub fn cpu_per_run(&self) -> Duration {
        self.cpu / u32::try_from(self.runs.max(1)).unwrap_or(u32::MAX)
    }
}

/// Runs/s of `tasks` tasks each calling `run_once` in a loop for `window`,
/// and this process's CPU time per run meanwhile.
pub async fn throughput<F, Fut>(tasks: usize, window: Duration, run_once: F) -> Throughput
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let cpu = process_cpu();
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
    let mut runs = 0;
    for handle in handles {
        runs += handle.await.unwrap();
    }
    Throughput {
        runs,
        elapsed: started.elapsed(),
        cpu: process_cpu() - cpu,
    }
}
