//! A test fixture for the execution plane. Scheduled runs cannot carry a
//! custom payload, so the knobs come from the payload or, for scheduled runs,
//! from the automation's `run_as_user_id`:
//!
//! - `sleep_ms` (payload) or `run_as_user_id: "sleep-<ms>"`: sleep that long
//!   (in a host call, so only cancellation or the timeout ends it early);
//!   with `sleep_until_attempt: n` (payload) only on attempts before `n`;
//! - `trap_before_attempt: n` (payload): abort (a trap, retryable) on
//!   attempts before `n`;
//! - `error: "<message>"` (payload): return the workflow's own `Err`.
//!
//! It returns the input, the attempt and the run's `scheduled_at`.
use std::time::Duration;

use automata_guest::{Context, Input, Value, json, workflow};

workflow! {
    name: "Sleeper",
    triggers: ["workflow.scheduled", "thread.created"],
    steps: [("sleep", "Sleep, trap or fail as asked, then echo the input")],
    run: sleep,
}

fn sleep(ctx: &Context, input: Input) -> Result<Value, String> {
    println!("attempt {} of run {}", ctx.attempt, ctx.run_id);
    if let Some(before) = input.payload["trap_before_attempt"].as_u64()
        && u64::from(ctx.attempt) < before
    {
        println!("trapping on attempt {}", ctx.attempt);
        std::process::abort();
    }
    if let Some(message) = input.payload["error"].as_str() {
        return Err(message.to_owned());
    }
    let from_user = ctx
        .run_as_user_id
        .as_deref()
        .and_then(|user| user.strip_prefix("sleep-"))
        .and_then(|ms| ms.parse().ok());
    let awake_from = input.payload["sleep_until_attempt"].as_u64();
    let sleep_ms = input.payload["sleep_ms"]
        .as_u64()
        .or(from_user)
        .unwrap_or(0);
    let sleep_ms = if awake_from.is_some_and(|n| u64::from(ctx.attempt) >= n) {
        0
    } else {
        sleep_ms
    };
    if sleep_ms > 0 {
        println!("sleeping {sleep_ms} ms");
        std::thread::sleep(Duration::from_millis(sleep_ms));
    }
    println!("done");
    Ok(json!({
        "trigger": input.trigger,
        "payload": input.payload,
        "attempt": ctx.attempt,
        "scheduled_at": ctx.scheduled_at,
    }))
}
