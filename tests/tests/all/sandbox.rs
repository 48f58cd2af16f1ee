//! The runner against hostile components: every run ends with a classified
//! outcome, the host keeps working, and the same runner then runs a normal
//! example correctly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use automata::domain::limits::LimitOverrides;
use automata::domain::outcome::{FailureKind, Outcome, RunReport};
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::runner::{
    Allocator, BoundsChecks, CancelToken, LiveOutput, LoadError, RunOptions, Runner, RunnerConfig,
    Workflow,
};
use automata_e2e::guest;
use serde_json::{Value, json};

async fn load(runner: &Runner, name: &str) -> Workflow {
    runner
        .load(&guest(name))
        .await
        .unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn context(run_id: &str) -> RunContext {
    RunContext {
        app_id: "app_test".into(),
        automation_id: "aut_test".into(),
        run_id: run_id.into(),
        run_as_user_id: None,
        scheduled_at: None,
        attempt: 1,
    }
}

fn hostile_input(case: &str) -> TriggerInput {
    TriggerInput {
        trigger: "thread.created".into(),
        payload: json!({ "case": case }),
    }
}

fn welcome_input(member: &str, thread: &str) -> TriggerInput {
    TriggerInput {
        trigger: "thread.member_joined".into(),
        payload: json!({"member": {"name": member}, "thread": {"name": thread}}),
    }
}

async fn run_case(
    runner: &Runner,
    workflow: &Workflow,
    case: &str,
    limits: LimitOverrides,
) -> RunReport {
    let options = RunOptions {
        limits,
        ..RunOptions::default()
    };
    runner
        .run_with(
            workflow,
            &context("atr_hostile"),
            &hostile_input(case),
            &options,
        )
        .await
}

/// The failure kind and message of a report that must have failed.
fn failure(report: &RunReport) -> (FailureKind, &str) {
    match &report.outcome {
        Outcome::Failed(failure) => (failure.kind, failure.message.as_str()),
        other => panic!("expected a failed run, got {other:?} ({:?})", report.output),
    }
}

/// After a hostile case the same runner still runs the welcome example right.
async fn assert_runner_still_works(runner: &Runner) {
    let welcome = load(runner, "welcome-new-members").await;
    let report = runner
        .run(
            &welcome,
            &context("atr_after"),
            &welcome_input("Ada", "Ops"),
        )
        .await;
    assert_eq!(report.output.lines, ["Welcome to Ops, Ada!"]);
    assert!(
        matches!(&report.outcome, Outcome::Completed(p) if p["message"] == "Welcome to Ops, Ada!"),
        "{:?}",
        report.outcome
    );
}

fn runner() -> Runner {
    Runner::new(RunnerConfig::default()).unwrap()
}

#[tokio::test]
async fn an_endless_loop_runs_out_of_fuel() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        fuel: Some(2_000_000),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "loop", limits).await;
    assert_eq!(
        failure(&report),
        (
            FailureKind::FuelExhausted,
            "Fuel limit exceeded (2000000 units)"
        )
    );
    assert_eq!(report.accounting.fuel_consumed, 2_000_000);
    assert!(!report.outcome.failure().unwrap().is_retryable());
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn an_endless_loop_with_ample_fuel_times_out() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        fuel: Some(u64::MAX / 4),
        timeout_ms: Some(300),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "loop", limits).await;
    assert_eq!(
        failure(&report),
        (FailureKind::Timeout, "Script execution timed out")
    );
    assert!(report.outcome.failure().unwrap().is_retryable());
    assert!(report.accounting.wall_time >= Duration::from_millis(300));
    // What 300 ms of spinning burned, not what was written back before the
    // loop (a fixed 16,935 units once): even a slow, shared core spins
    // through millions of instructions in that time.
    let burned = report.accounting.fuel_consumed;
    assert!(burned > 10_000_000, "{burned} units in 300 ms");
    assert_eq!(
        report.result_json()["error"],
        json!("Script execution timed out")
    );
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_sleep_times_out() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        timeout_ms: Some(300),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "sleep", limits).await;
    assert_eq!(
        failure(&report),
        (FailureKind::Timeout, "Script execution timed out")
    );
    assert_eq!(report.output.lines, ["going to sleep"]);
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        memory_bytes: Some(16 << 20),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "memory_bomb", limits).await;
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(
        message.starts_with("Memory limit exceeded: the workflow asked for ")
            && message.ends_with("(limit 16777216 bytes)"),
        "{message}"
    );
    let peak = report.accounting.peak_memory_bytes;
    assert!(peak > 8 << 20 && peak <= 16 << 20, "peak {peak}");
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn one_large_allocation_hits_the_memory_limit_not_a_trap_or_fuel() {
    // Peers saw growth from one large allocation inside the guest's
    // allocator reported as a generic trap (the allocator's abort after a
    // refused `memory.grow`) or as spent fuel. It is the memory limit, and
    // says how much was asked for.
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    for (bytes, limit) in [(256u64 << 20, 16u64 << 20), (1 << 30, 64 << 20)] {
        let limits = LimitOverrides {
            memory_bytes: Some(limit),
            ..LimitOverrides::default()
        };
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({ "case": "large_allocation", "bytes": bytes }),
        };
        let report = runner
            .run_with(
                &hostile,
                &context("atr_large"),
                &input,
                &RunOptions {
                    limits,
                    ..RunOptions::default()
                },
            )
            .await;
        let (kind, message) = failure(&report);
        assert_eq!(kind, FailureKind::MemoryLimit, "{bytes}: {message}");
        let asked: u64 = message
            .strip_prefix("Memory limit exceeded: the workflow asked for ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("{message}"));
        assert!(asked > bytes, "asked for {asked}, allocated {bytes}");
        assert!(
            message.ends_with(&format!("(limit {limit} bytes)")),
            "{message}"
        );
        assert!(report.accounting.peak_memory_bytes <= limit);
    }
    // Within the limit the same allocation succeeds.
    let limits = LimitOverrides {
        memory_bytes: Some(64 << 20),
        ..LimitOverrides::default()
    };
    let input = TriggerInput {
        trigger: "thread.created".into(),
        payload: json!({ "case": "large_allocation", "bytes": 32 << 20 }),
    };
    let report = runner
        .run_with(
            &hostile,
            &context("atr_fits"),
            &input,
            &RunOptions {
                limits,
                ..RunOptions::default()
            },
        )
        .await;
    assert!(
        matches!(&report.outcome, Outcome::Completed(p) if p["allocated"] == 32 << 20),
        "{:?}",
        report.outcome
    );
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn growth_past_the_address_space_is_the_memory_limit() {
    // A guest's allocator asking for more than a 32-bit memory can address
    // reaches the limiter too (wasmtime 48 asks it before checking the
    // memory type), so the run fails naming the limit, not as the abort an
    // allocator makes of a failed `memory.grow`.
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        memory_bytes: Some(16 << 20),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "grow_past_the_address_space", limits).await;
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(
        message.starts_with("Memory limit exceeded: the workflow asked for ")
            && message.ends_with("(limit 16777216 bytes)"),
        "{message}"
    );
    assert!(report.accounting.peak_memory_bytes <= 16 << 20);
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "recurse", LimitOverrides::default()).await;
    assert_eq!(
        failure(&report),
        (
            FailureKind::StackOverflow,
            "Stack overflow: the workflow's calls nested too deeply"
        )
    );
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn an_output_flood_is_capped_and_the_run_completes() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let limits = LimitOverrides {
        output_lines: Some(50),
        ..LimitOverrides::default()
    };
    let report = run_case(&runner, &hostile, "flood", limits).await;
    assert_eq!(
        report.outcome,
        Outcome::Completed(json!({"printed": 100_000}))
    );
    assert_eq!(report.output.lines.len(), 50);
    assert_eq!(report.output.lines[49], "flood line 49");
    assert!(report.output.truncated);
    assert_eq!(report.result_json()["output_truncated"], json!(true));
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_panic_fails_the_run_with_its_message() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "panic", LimitOverrides::default()).await;
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::Panic);
    assert!(
        message.starts_with("Workflow panicked at ")
            && message.ends_with(": the member list is empty"),
        "{message}"
    );
    assert_eq!(report.output.lines[0], "about to panic");
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_trap_fails_the_run_in_plain_words() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "trap", LimitOverrides::default()).await;
    assert_eq!(
        failure(&report),
        (
            FailureKind::Trap,
            "Workflow trapped: it aborted (wasm `unreachable` executed)"
        )
    );
    assert!(report.outcome.failure().unwrap().is_retryable());
    assert_eq!(report.output.lines, ["about to trap"]);
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_payload_that_is_not_json_fails_the_run() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "invalid_json", LimitOverrides::default()).await;
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::InvalidPayload);
    assert!(
        message.starts_with("The workflow returned a payload that is not valid JSON: "),
        "{message}"
    );
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn the_guests_own_error_is_its_own_kind() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "error", LimitOverrides::default()).await;
    assert_eq!(
        failure(&report),
        (
            FailureKind::GuestError,
            "the workflow refused: no such member"
        )
    );
    assert!(!report.outcome.failure().unwrap().is_retryable());
}

async fn cancel_after(runner: &Runner, workflow: &Workflow, case: &str) -> (RunReport, Duration) {
    let token = CancelToken::new();
    let canceller = token.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        canceller.cancel();
    });
    let options = RunOptions {
        limits: LimitOverrides {
            fuel: Some(u64::MAX / 4),
            ..LimitOverrides::default()
        },
        cancel: Some(token),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = runner
        .run_with(
            workflow,
            &context("atr_cancel"),
            &hostile_input(case),
            &options,
        )
        .await;
    (report, started.elapsed())
}

#[tokio::test]
async fn cancelling_interrupts_an_endless_loop() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let (report, took) = cancel_after(&runner, &hostile, "loop").await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert_eq!(report.result_json()["error"], json!("Run cancelled"));
    let burned = report.accounting.fuel_consumed;
    assert!(burned > 3_000_000, "{burned} units in 100 ms of spinning");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn cancelling_interrupts_a_guest_blocked_in_a_host_call() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let (report, took) = cancel_after(&runner, &hostile, "sleep").await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert_eq!(report.output.lines, ["going to sleep"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_never_executes() {
    let runner = runner();
    let welcome = load(&runner, "welcome-new-members").await;
    let token = CancelToken::new();
    token.cancel();
    let options = RunOptions {
        cancel: Some(token),
        ..RunOptions::default()
    };
    let report = runner
        .run_with(
            &welcome,
            &context("atr_x"),
            &welcome_input("Ada", "Ops"),
            &options,
        )
        .await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(report.output.lines.is_empty());
    assert_eq!(report.accounting.fuel_consumed, 0);
}

#[tokio::test]
async fn every_report_carries_its_accounting() {
    let runner = runner();
    let welcome = load(&runner, "welcome-new-members").await;
    let report = runner
        .run(&welcome, &context("atr_acc"), &welcome_input("Ada", "Ops"))
        .await;
    let accounting = &report.accounting;
    assert_eq!(accounting.component_digest, welcome.digest());
    assert!(accounting.fuel_consumed > 0);
    assert!(accounting.fuel_consumed < accounting.limits.fuel);
    assert!(accounting.peak_memory_bytes >= 64 << 10);
    assert!(accounting.wall_time >= accounting.instantiate_time);
    assert!(accounting.instantiate_time > Duration::ZERO);
    assert_eq!(accounting.limits, runner.config().defaults);
    let json = serde_json::to_value(accounting).unwrap();
    for field in [
        "component_digest",
        "fuel_consumed",
        "peak_memory_bytes",
        "wall_time_us",
        "instantiate_time_us",
        "queue_time_us",
        "limits",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
}

#[tokio::test]
async fn the_sandbox_shows_the_guest_nothing_of_the_host() {
    let runner = runner();
    let hostile = load(&runner, "hostile").await;
    let report = run_case(&runner, &hostile, "probe", LimitOverrides::default()).await;
    let Outcome::Completed(seen) = &report.outcome else {
        panic!("{:?} {:?}", report.outcome, report.output);
    };
    assert_eq!(seen["env"], json!([]), "{seen}");
    assert_eq!(seen["args"], json!([]), "{seen}");
    for denied in ["read_file", "list_root"] {
        assert!(seen[denied].get("Err").is_some(), "{denied}: {seen}");
    }
    assert!(seen["wall_clock_secs"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(seen["monotonic_ok"], json!(true));
}

#[tokio::test]
async fn a_graph_export_that_never_returns_fails_the_load_quickly() {
    let runner = runner();
    let started = Instant::now();
    let error = runner.load(&guest("hostile-graph")).await.unwrap_err();
    assert!(matches!(error, LoadError::Graph(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the component's `graph` export failed: Fuel limit exceeded (100000000 units)"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_runner_still_works(&runner).await;
}

#[tokio::test]
async fn a_graph_larger_than_the_host_stores_fails_the_load() {
    let runner = runner();
    let error = runner.load(&guest("huge-graph")).await.unwrap_err();
    assert!(matches!(error, LoadError::Graph(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("the component's `graph` export failed: it describes a graph of ")
            && message.ends_with("bytes as JSON, above the limit of 65536 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn a_component_importing_what_the_host_lacks_is_refused() {
    let runner = runner();
    let component = wat::parse_str(
        r#"(component
            (import "acme:secrets/vault" (instance (export "get" (func))))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "graph" (func $f))
            (export "run" (func $f))
        )"#,
    )
    .unwrap();
    let error = runner.load(&component).await.unwrap_err();
    assert!(
        matches!(error, LoadError::UnsupportedImport(_)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("acme:secrets/vault"), "{message}");
    assert!(
        message.contains("workflows may import only WASI 0.2"),
        "{message}"
    );
}

/// 100 runs of the three examples at once, each with its own input: every
/// report holds exactly its own output and payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_runs_keep_their_outputs_apart() {
    let runner = Arc::new(runner());
    let welcome = load(&runner, "welcome-new-members").await;
    let alert = load(&runner, "ingestion-failure-alert").await;
    let digest = load(&runner, "daily-digest").await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let runner = runner.clone();
        let (workflow, input) = match i % 3 {
            0 => (
                welcome.clone(),
                welcome_input(&format!("member-{i}"), &format!("thread-{i}")),
            ),
            1 => (
                alert.clone(),
                TriggerInput {
                    trigger: "context.ingestion.failed".into(),
                    payload: json!({
                        "source_id": format!("src_{i}"),
                        "source_name": format!("Source {i}"),
                        "error": "401",
                        "consecutive_failures": 1,
                    }),
                },
            ),
            _ => (
                digest.clone(),
                TriggerInput {
                    trigger: "workflow.scheduled".into(),
                    payload: json!({"scheduled_at": format!("2026-02-{:02}T09:00:00Z", i % 28 + 1)}),
                },
            ),
        };
        tasks.push(tokio::spawn(async move {
            let report = runner
                .run(&workflow, &context(&format!("atr_{i}")), &input)
                .await;
            (i, report)
        }));
    }
    for task in tasks {
        let (i, report) = task.await.unwrap();
        let Outcome::Completed(payload) = &report.outcome else {
            panic!("run {i}: {:?}", report.outcome);
        };
        match i % 3 {
            0 => {
                let line = format!("Welcome to thread-{i}, member-{i}!");
                assert_eq!(report.output.lines, [line.as_str()], "run {i}");
                assert_eq!(payload["message"], json!(line), "run {i}");
            }
            1 => {
                assert_eq!(payload["source_id"], json!(format!("src_{i}")), "run {i}");
                assert!(
                    report
                        .output
                        .lines
                        .iter()
                        .all(|l| l.contains(&format!("Source {i} "))),
                    "run {i}: {:?}",
                    report.output.lines
                );
            }
            _ => {
                let day = format!("2026-02-{:02}T09:00:00Z", i % 28 + 1);
                assert_eq!(
                    payload["period"]["to"],
                    Value::String(day.clone()),
                    "run {i}"
                );
                assert!(report.output.lines[0].ends_with(&day), "run {i}");
            }
        }
    }
}

#[tokio::test]
async fn a_pooled_runner_runs_examples_and_survives_hostile_cases() {
    // With either way of bounding memory (`serve --bounds-checks`).
    for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
        let runner = Runner::new(RunnerConfig {
            pooling: true,
            max_concurrent_runs: 2,
            bounds_checks,
            ..RunnerConfig::default()
        })
        .unwrap();
        assert_eq!(runner.allocator(), Allocator::Pooling);
        let hostile = load(&runner, "hostile").await;
        for _ in 0..3 {
            assert_runner_still_works(&runner).await;
        }
        let limits = LimitOverrides {
            memory_bytes: Some(16 << 20),
            ..LimitOverrides::default()
        };
        let report = run_case(&runner, &hostile, "memory_bomb", limits).await;
        assert_eq!(
            failure(&report).0,
            FailureKind::MemoryLimit,
            "{bounds_checks:?}"
        );
        let report = run_case(&runner, &hostile, "trap", LimitOverrides::default()).await;
        assert_eq!(failure(&report).0, FailureKind::Trap, "{bounds_checks:?}");
        let report = run_case(&runner, &hostile, "recurse", LimitOverrides::default()).await;
        assert_eq!(
            failure(&report).0,
            FailureKind::StackOverflow,
            "{bounds_checks:?}"
        );
        assert_runner_still_works(&runner).await;
    }
}

#[tokio::test]
async fn the_compile_cache_survives_restarts_and_never_trusts_a_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cached_runner = || {
        Runner::new(RunnerConfig {
            cache_dir: Some(dir.path().join("compiled")),
            ..RunnerConfig::default()
        })
        .unwrap()
    };
    let bytes = guest("welcome-new-members");

    let first = cached_runner();
    assert!(!first.load(&bytes).await.unwrap().from_cache());
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0].clone();
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(".cwasm")
    );

    // A restart loads the compiled code instead of compiling again.
    let restarted = cached_runner();
    let workflow = restarted.load(&bytes).await.unwrap();
    assert!(workflow.from_cache());
    assert_runner_still_works(&restarted).await;
    let report = restarted
        .run(
            &workflow,
            &context("atr_cache"),
            &welcome_input("Lin", "Ops"),
        )
        .await;
    assert_eq!(report.output.lines, ["Welcome to Ops, Lin!"]);

    // A corrupted entry is recompiled and replaced.
    let mut corrupt = std::fs::read(&entry).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    std::fs::write(&entry, &corrupt).unwrap();
    let after_corruption = cached_runner();
    assert!(!after_corruption.load(&bytes).await.unwrap().from_cache());
    assert!(cached_runner().load(&bytes).await.unwrap().from_cache());

    // A truncated entry too.
    let whole = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &whole[..whole.len() / 3]).unwrap();
    assert!(!cached_runner().load(&bytes).await.unwrap().from_cache());
    assert!(cached_runner().load(&bytes).await.unwrap().from_cache());
}

/// Starts an endless loop on `runner` that runs until `token` is cancelled.
fn spawn_endless_loop(
    runner: &Arc<Runner>,
    hostile: &Workflow,
    token: &CancelToken,
) -> tokio::task::JoinHandle<RunReport> {
    let (runner, hostile) = (runner.clone(), hostile.clone());
    let options = RunOptions {
        limits: LimitOverrides {
            fuel: Some(u64::MAX / 4),
            timeout_ms: Some(60_000),
            ..LimitOverrides::default()
        },
        cancel: Some(token.clone()),
        ..RunOptions::default()
    };
    tokio::spawn(async move {
        runner
            .run_with(
                &hostile,
                &context("atr_long"),
                &hostile_input("loop"),
                &options,
            )
            .await
    })
}

/// Even on a single-threaded runtime a busy guest yields every epoch tick, so
/// a short run completes while a long one is still going.
#[tokio::test]
async fn a_long_run_does_not_block_others() {
    let runner = Arc::new(runner());
    let hostile = load(&runner, "hostile").await;
    let token = CancelToken::new();
    let long = spawn_endless_loop(&runner, &hostile, &token);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_runner_still_works(&runner).await;
    assert!(!long.is_finished());
    token.cancel();
    assert_eq!(long.await.unwrap().outcome, Outcome::Cancelled);
}

/// With every run slot taken, a run waits (its wait reported as queue time)
/// while a load still reads its graph at once.
#[tokio::test]
async fn full_run_slots_delay_runs_but_not_loads() {
    let runner = Arc::new(
        Runner::new(RunnerConfig {
            max_concurrent_runs: 1,
            pooling: true,
            ..RunnerConfig::default()
        })
        .unwrap(),
    );
    let hostile = load(&runner, "hostile").await;
    let token = CancelToken::new();
    let long = spawn_endless_loop(&runner, &hostile, &token);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let welcome = load(&runner, "welcome-new-members").await;
    assert!(!long.is_finished());
    let waiting = {
        let (runner, welcome) = (runner.clone(), welcome.clone());
        tokio::spawn(async move {
            runner
                .run(&welcome, &context("atr_wait"), &welcome_input("Ada", "Ops"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the run should wait for the slot");
    token.cancel();
    assert_eq!(long.await.unwrap().outcome, Outcome::Cancelled);
    let report = waiting.await.unwrap();
    assert_eq!(report.output.lines, ["Welcome to Ops, Ada!"]);
    assert!(report.accounting.queue_time >= Duration::from_millis(150));
}

#[tokio::test]
async fn loaded_workflows_stay_in_memory_within_their_budget_until_forgotten() {
    let runner = runner();
    let welcome = load(&runner, "welcome-new-members").await;
    let size = welcome.code_size();
    assert!(size > 0);
    assert_eq!(runner.loaded_usage(), (1, size));
    assert!(runner.cached(&welcome.digest()).is_some());
    assert!(runner.forget(&welcome.digest()));
    assert!(runner.cached(&welcome.digest()).is_none());
    assert_eq!(runner.loaded_usage(), (0, 0));

    // Room for either of two, not both: the least recently used leaves.
    let other = load(&runner, "sleeper").await.code_size();
    let small = Runner::new(RunnerConfig {
        loaded_code_bytes: size.max(other) + size.min(other) / 2,
        ..RunnerConfig::default()
    })
    .unwrap();
    let first = load(&small, "welcome-new-members").await;
    let second = load(&small, "sleeper").await;
    assert!(small.cached(&second.digest()).is_some());
    assert!(small.cached(&first.digest()).is_none(), "evicted");
    assert_eq!(small.loaded_usage().0, 1);
}

/// A distinctive secret value, and another.
const TOKEN: &str = "tok-SANDBOX-4f9a8b7c6d5e";
const HOOK: &str = "https://hooks.example.com/T0/sandbox-secret";

fn granted() -> automata::runner::RunSecrets {
    automata::runner::RunSecrets::new([
        ("API_TOKEN".to_owned(), Ok(TOKEN.to_owned())),
        ("HOOK_URL".to_owned(), Ok(HOOK.to_owned())),
        (
            "GONE".to_owned(),
            Err("not set in app `app_test`".to_owned()),
        ),
    ])
}

async fn run_secret_case(runner: &Runner, payload: Value, live: Option<LiveOutput>) -> RunReport {
    let workflow = load(runner, "hostile").await;
    let input = TriggerInput {
        trigger: "thread.created".into(),
        payload,
    };
    let options = RunOptions {
        secrets: granted(),
        live,
        ..RunOptions::default()
    };
    runner
        .run_with(&workflow, &context("atr_secret"), &input, &options)
        .await
}

/// Nothing the run left behind holds a value.
fn assert_no_value(report: &RunReport) {
    let left = format!("{:?} {:?}", report.output, report.outcome);
    for value in [TOKEN, HOOK] {
        assert!(!left.contains(value), "{value} leaked: {left}");
        assert!(
            !left.contains(&value[..12]),
            "part of {value} leaked: {left}"
        );
    }
}

#[tokio::test]
async fn granted_secrets_are_read_and_masked_in_output_and_payload() {
    let runner = runner();
    let live = LiveOutput::new();
    let report = run_secret_case(
        &runner,
        json!({"case": "secret", "names": ["API_TOKEN", "HOOK_URL", "GONE", "NOT_GRANTED"]}),
        Some(live.clone()),
    )
    .await;
    assert_no_value(&report);
    assert_eq!(
        report.output.lines,
        [
            "API_TOKEN=***",
            "[stderr] stderr has ***",
            "[warn] log has ***",
            "HOOK_URL=***",
            "[stderr] stderr has ***",
            "[warn] log has ***",
            "GONE is not readable",
            "NOT_GRANTED is not readable",
        ]
    );
    assert_eq!(live.subscribe().borrow().lines, report.output.lines);
    let Outcome::Completed(payload) = &report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert_eq!(
        payload,
        &json!({
            "read": {"API_TOKEN": "***", "HOOK_URL": "***", "GONE": null, "NOT_GRANTED": null},
            "values": ["***", "***"],
        })
    );
}

#[tokio::test]
async fn a_secret_in_an_error_or_a_panic_is_masked() {
    let runner = runner();
    let report = run_secret_case(
        &runner,
        json!({"case": "secret", "names": ["API_TOKEN"], "end": "error"}),
        None,
    )
    .await;
    assert_no_value(&report);
    assert_eq!(
        failure(&report),
        (FailureKind::GuestError, "failed holding ***")
    );
    let report = run_secret_case(
        &runner,
        json!({"case": "secret", "names": ["HOOK_URL", "API_TOKEN"], "end": "panic"}),
        None,
    )
    .await;
    assert_no_value(&report);
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::Panic);
    assert!(message.ends_with("panicked holding ***, ***"), "{message}");
}

#[tokio::test]
async fn without_grants_every_secret_reads_as_none() {
    let runner = runner();
    let workflow = load(&runner, "hostile").await;
    let input = TriggerInput {
        trigger: "thread.created".into(),
        payload: json!({"case": "secret", "names": ["API_TOKEN"]}),
    };
    let report = runner
        .run(&workflow, &context("atr_ungranted"), &input)
        .await;
    assert_eq!(report.output.lines, ["API_TOKEN is not readable"]);
}
