//! Greets a member who joined a thread (trigger `thread.member_joined`).
use automata_guest::{Context, Input, Value, json, workflow};

workflow! {
    name: "Welcome New Members",
    triggers: ["thread.member_joined"],
    steps: [("greet", "Print a welcome line naming the member and the thread")],
    run: welcome,
}

fn welcome(_ctx: &Context, input: Input) -> Result<Value, String> {
    let member = input.payload["member"]["name"]
        .as_str()
        .unwrap_or("new member");
    let thread = input.payload["thread"]["name"]
        .as_str()
        .unwrap_or("the thread");
    let message = format!("Welcome to {thread}, {member}!");
    println!("{message}");
    Ok(json!({
        "message": message,
        "thread_id": input.payload["thread"]["id"],
        "member_id": input.payload["member"]["id"],
    }))
}
