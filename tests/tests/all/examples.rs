//! Each example workflow, built to a component, run through the host's runner.

use automata::domain::outcome::{Failure, FailureKind, Outcome};
use automata::domain::workflow::{RunContext, TriggerInput};
use automata::runner::{LoadError, Runner, RunnerConfig, Workflow};
use automata_e2e::guest;
use serde_json::{Value, json};

async fn load(runner: &Runner, name: &str) -> Workflow {
    runner
        .load(&guest(name))
        .await
        .unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn context() -> RunContext {
    RunContext {
        app_id: "app_test".into(),
        automation_id: "aut_test".into(),
        run_id: "atr_test".into(),
        run_as_user_id: None,
        scheduled_at: None,
        attempt: 1,
    }
}

fn input(trigger: &str, payload: Value) -> TriggerInput {
    TriggerInput {
        trigger: trigger.into(),
        payload,
    }
}

#[tokio::test]
async fn each_example_reports_its_trigger_nodes() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    for (name, display, triggers, steps) in [
        (
            "welcome-new-members",
            "Welcome New Members",
            "thread.member_joined",
            1,
        ),
        ("daily-digest", "Daily Digest", "workflow.scheduled", 3),
        (
            "ingestion-failure-alert",
            "Ingestion Failure Alert",
            "context.ingestion.failed",
            4,
        ),
        (
            "welcome-to-chat",
            "Welcome To Chat",
            "thread.member_joined",
            2,
        ),
    ] {
        let workflow = load(&runner, name).await;
        let graph = workflow.graph();
        assert_eq!(graph.name, display);
        assert_eq!(graph.triggers, [triggers]);
        assert_eq!(graph.steps.len(), steps, "{name} steps");
        assert!(workflow.digest().to_string().starts_with("sha256:"));
    }
}

#[tokio::test]
async fn welcome_greets_the_member_by_name() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let workflow = load(&runner, "welcome-new-members").await;
    let payload = json!({
        "thread": {"id": "thr_42", "name": "Design Reviews"},
        "member": {"id": "usr_7", "name": "Ada"},
    });
    let report = runner
        .run(
            &workflow,
            &context(),
            &input("thread.member_joined", payload),
        )
        .await;
    assert_eq!(report.output.lines, ["Welcome to Design Reviews, Ada!"]);
    assert!(!report.output.truncated);
    assert_eq!(
        report.outcome,
        Outcome::Completed(json!({
            "message": "Welcome to Design Reviews, Ada!",
            "thread_id": "thr_42",
            "member_id": "usr_7",
        }))
    );
}

#[tokio::test]
async fn daily_digest_covers_the_day_before_the_schedule() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let workflow = load(&runner, "daily-digest").await;
    let ctx = RunContext {
        run_as_user_id: Some("usr_abc123".into()),
        scheduled_at: Some("2026-02-28T09:00:00Z".into()),
        ..context()
    };
    let payload = json!({"scheduled_at": "2026-02-28T09:00:00Z"});
    let report = runner
        .run(&workflow, &ctx, &input("workflow.scheduled", payload))
        .await;
    assert_eq!(
        report.output.lines,
        [
            "Building digest for 2026-02-27T09:00:00Z to 2026-02-28T09:00:00Z",
            "Collected 0 activity items across 0 threads",
            "Digest ready for usr_abc123: No activity in the last 24 hours",
        ]
    );
    assert_eq!(
        report.outcome,
        Outcome::Completed(json!({
            "title": "Daily digest for Saturday 28 February 2026",
            "recipient": "usr_abc123",
            "period": {"from": "2026-02-27T09:00:00Z", "to": "2026-02-28T09:00:00Z"},
            "total": 0,
            "threads": {},
            "summary": "No activity in the last 24 hours",
        }))
    );
}

#[tokio::test]
async fn ingestion_alert_is_critical_after_repeated_failures() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let workflow = load(&runner, "ingestion-failure-alert").await;
    let payload = json!({
        "source_id": "src_9",
        "source_name": "Team Drive",
        "error": "401 Unauthorized",
        "consecutive_failures": 3,
    });
    let report = runner
        .run(
            &workflow,
            &context(),
            &input("context.ingestion.failed", payload),
        )
        .await;
    assert_eq!(
        report.output.lines,
        [
            "[warn] Team Drive has failed 3 times in a row",
            "[critical] Ingestion of Team Drive failed: 401 Unauthorized",
        ]
    );
    assert_eq!(
        report.outcome,
        Outcome::Completed(json!({
            "severity": "critical",
            "source_id": "src_9",
            "summary": "[critical] Ingestion of Team Drive failed: 401 Unauthorized",
            "consecutive_failures": 3,
            // No ALERT_WEBHOOK_URL granted to this run: printed only.
            "delivered": false,
        }))
    );
}

#[tokio::test]
async fn ingestion_alert_without_required_fields_fails_the_run() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let workflow = load(&runner, "ingestion-failure-alert").await;
    let report = runner
        .run(
            &workflow,
            &context(),
            &input("context.ingestion.failed", json!({"error": "timeout"})),
        )
        .await;
    assert!(report.output.lines.is_empty());
    assert_eq!(
        report.outcome,
        Outcome::Failed(Failure::new(
            FailureKind::GuestError,
            "payload is missing required field `source_id`"
        ))
    );
}

#[tokio::test]
async fn a_plain_wasi_command_is_refused_naming_the_missing_exports() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let error = runner.load(&plain_wasi_command()).await.unwrap_err();
    assert!(matches!(error, LoadError::WrongWorld(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("missing exports `graph` and `run`"),
        "{message}"
    );
    assert!(message.contains("wasi:cli/run"), "{message}");
}

#[tokio::test]
async fn bytes_that_are_not_wasm_are_refused() {
    let runner = Runner::new(RunnerConfig::default()).unwrap();
    let error = runner.load(b"#!/bin/sh\necho hi\n").await.unwrap_err();
    assert!(matches!(error, LoadError::NotAComponent(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("not a WebAssembly component: "),
        "{error}"
    );
}

/// A component exporting only `wasi:cli/run`, as a plain WASI command does.
fn plain_wasi_command() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m (func (export "run") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $cli))
        )"#,
    )
    .expect("valid component text")
}
