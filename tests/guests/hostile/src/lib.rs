//! A hostile workflow for the runner's sandbox tests: the trigger payload's
//! `case` field picks how it misbehaves.
//!
//! It implements the world's bindings directly rather than through
//! `automata_guest::workflow!`, so that it can also return a payload that is not
//! JSON.

use std::hint::black_box;
use std::time::Duration;

use automata_guest::bindings::automata::workflow::types::{
    RunContext, StepNode, TriggerInput, WorkflowGraph,
};
use automata_guest::bindings::{Guest, export_workflow};
use automata_guest::{Value, json, log};

struct Hostile;

impl Guest for Hostile {
    fn graph() -> WorkflowGraph {
        WorkflowGraph {
            name: "Hostile".into(),
            triggers: vec!["thread.created".into()],
            steps: vec![StepNode {
                name: "misbehave".into(),
                description: "Do what the payload's `case` says".into(),
            }],
        }
    }

    fn run(ctx: RunContext, input: TriggerInput) -> Result<String, String> {
        let payload: Value = automata_guest::serde_json::from_str(&input.payload)
            .map_err(|e| format!("payload is not JSON: {e}"))?;
        let case = payload["case"].as_str().unwrap_or("ok");
        match case {
            // Well-behaved: echoes the run id, so concurrent runs can be told apart.
            "ok" => {
                println!("run {}", ctx.run_id);
                log::info(format!("attempt {}", ctx.attempt));
                Ok(json!({ "run_id": ctx.run_id, "payload": payload }).to_string())
            }
            "error" => Err("the workflow refused: no such member".into()),
            "loop" => spin(),
            "recurse" => Ok(recurse(0).to_string()),
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    black_box(&hoard);
                }
            }
            // One large allocation: the guest's allocator asks for all of
            // it in one `memory.grow` (the bomb above grows 1 MiB at a time).
            "large_allocation" => {
                let bytes = payload["bytes"].as_u64().unwrap_or(256 << 20) as usize;
                let buffer = vec![0u8; bytes];
                Ok(json!({ "allocated": black_box(&buffer).len() }).to_string())
            }
            // What an allocator does for a request past the 32-bit address
            // space: one `memory.grow` of every page there is; if it fails,
            // it aborts.
            "grow_past_the_address_space" => {
                if !grow_every_page() {
                    std::process::abort();
                }
                Ok("\"grew\"".into())
            }
            "flood" => {
                let lines = payload["lines"].as_u64().unwrap_or(100_000);
                for i in 0..lines {
                    println!("flood line {i}");
                }
                eprintln!("flood done");
                Ok(json!({ "printed": lines }).to_string())
            }
            "panic" => {
                println!("about to panic");
                panic!("the member list is empty");
            }
            "trap" => {
                println!("about to trap");
                std::process::abort()
            }
            "probe" => Ok(probe().to_string()),
            "invalid_json" => Ok("{\"unterminated\": ".into()),
            // The payload's `value`, as parsed and written again.
            "echo" => Ok(payload["value"].to_string()),
            // `depth` nested arrays.
            "nest" => {
                let depth = payload["depth"].as_u64().unwrap_or(1) as usize;
                Ok(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
            }
            // A JSON string of `bytes` bytes, quotes included.
            "big_payload" => {
                let bytes = payload["bytes"].as_u64().unwrap_or(2) as usize;
                Ok(format!("\"{}\"", "x".repeat(bytes.saturating_sub(2))))
            }
            // An error message of `bytes` bytes.
            "big_error" => Err("e".repeat(payload["bytes"].as_u64().unwrap_or(1) as usize)),
            // Reads the secrets `names`, prints each value split across two
            // writes, to stderr and in a log line, then sleeps `sleep_ms`
            // and ends as `end` says: `error` or `panic` quoting the values,
            // else a payload holding them.
            "secret" => secret(&payload),
            "sleep" => {
                println!("going to sleep");
                std::thread::sleep(Duration::from_secs(3600));
                Ok("\"woke up\"".into())
            }
            other => Err(format!("unknown case `{other}`")),
        }
    }
}

fn secret(payload: &Value) -> Result<String, String> {
    use std::io::Write as _;
    let names: Vec<&str> = payload["names"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut read = automata_guest::serde_json::Map::new();
    let mut values = Vec::new();
    for name in names {
        let value = automata_guest::secrets::get(name);
        match &value {
            Some(value) => {
                let mid = (0..=value.len() / 2)
                    .rev()
                    .find(|&i| value.is_char_boundary(i))
                    .unwrap_or(0);
                print!("{name}={}", &value[..mid]);
                let _ = std::io::stdout().flush();
                println!("{}", &value[mid..]);
                eprintln!("stderr has {value}");
                log::warn(format!("log has {value}"));
                values.push(value.clone());
            }
            None => println!("{name} is not readable"),
        }
        read.insert(name.to_owned(), json!(value));
    }
    if let Some(ms) = payload["sleep_ms"].as_u64() {
        std::thread::sleep(Duration::from_millis(ms));
    }
    match payload["end"].as_str() {
        Some("error") => Err(format!("failed holding {}", values.join(", "))),
        Some("panic") => panic!("panicked holding {}", values.join(", ")),
        _ => Ok(json!({ "read": read, "values": values }).to_string()),
    }
}

/// One `memory.grow` by the most pages a 32-bit memory can ask for;
/// whether it succeeded. (The crate is also built for the host by
/// `cargo test --workspace`, where there is no wasm memory.)
#[cfg(target_arch = "wasm32")]
fn grow_every_page() -> bool {
    core::arch::wasm32::memory_grow::<0>(usize::MAX) != usize::MAX
}

#[cfg(not(target_arch = "wasm32"))]
fn grow_every_page() -> bool {
    false
}

/// Burns fuel forever; `black_box` keeps the loop from being optimised away.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Recurses until the stack gives out (the base case is never reached); the
/// arithmetic after the call keeps it from becoming a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    black_box(recurse(black_box(depth + 1))).wrapping_mul(3) ^ depth
}

/// `{"Ok": n}` or `{"Err": "<why>"}`.
fn attempt(result: std::io::Result<usize>) -> Value {
    match result {
        Ok(n) => json!({ "Ok": n }),
        Err(e) => json!({ "Err": e.to_string() }),
    }
}

/// What the sandbox lets a workflow see of the host.
fn probe() -> Value {
    let started = std::time::Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "env": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "read_file": attempt(std::fs::read("/etc/passwd").map(|b| b.len())),
        "list_root": attempt(std::fs::read_dir("/").map(|d| d.count())),
        "wall_clock_secs": now,
        "monotonic_ok": started.elapsed().as_secs() < 60,
    })
}

export_workflow!(Hostile with_types_in automata_guest::bindings);
