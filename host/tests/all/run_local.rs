//! `automata run-local` end to end: the built binary on a built example.

use std::process::Command;

use automata_e2e::guest_path as guest;
use serde_json::{Value, json};

fn automata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_automata"))
}

#[test]
fn prints_the_result_as_json() {
    let out = automata()
        .arg("run-local")
        .arg(guest("welcome-new-members"))
        .args(["-o", "json", "--input"])
        .arg(r#"{"trigger":"thread.member_joined","payload":{"member":{"name":"Lin"},"thread":{"name":"Ops"}}}"#)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result,
        json!({
            "payload": {"message": "Welcome to Ops, Lin!", "thread_id": null, "member_id": null},
            "output": ["Welcome to Ops, Lin!"],
        })
    );
}

#[test]
fn a_failed_run_prints_its_error_and_exits_non_zero() {
    let out = automata()
        .arg("run-local")
        .arg(guest("ingestion-failure-alert"))
        .args([
            "--input",
            r#"{"trigger":"context.ingestion.failed","payload":{}}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("triggers: context.ingestion.failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: payload is missing required field `source_id`"),
        "{stdout}"
    );
}

#[test]
fn refuses_a_file_that_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "not wasm").unwrap();
    let out = automata()
        .arg("run-local")
        .arg(&path)
        .args(["--input", r#"{"trigger":"thread.created"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot load"), "{stderr}");
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
}

#[test]
fn input_without_a_trigger_is_a_usage_error() {
    let out = automata()
        .arg("run-local")
        .arg(guest("welcome-new-members"))
        .args(["--input", r#"{"payload":{}}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a string \"trigger\" field"));
}
