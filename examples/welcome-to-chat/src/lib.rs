//! Welcomes a member who joined a thread (trigger `thread.member_joined`) in
//! the team's chat: the welcome is posted as `{"text": …}` to the webhook
//! URL in the app secret `CHAT_WEBHOOK_URL`. Its automation grants the
//! secret and the webhook's host:
//! `--secret CHAT_WEBHOOK_URL --allow-host hooks.example.com`.
use automata_guest::{Context, Input, Value, http, json, secrets, workflow};

workflow! {
    name: "Welcome To Chat",
    triggers: ["thread.member_joined"],
    steps: [
        ("compose", "Write a welcome naming the member and the thread"),
        ("post", "Post it to the chat webhook in secret CHAT_WEBHOOK_URL"),
    ],
    run: welcome,
}

fn welcome(_ctx: &Context, input: Input) -> Result<Value, String> {
    let member = input.payload["member"]["name"]
        .as_str()
        .unwrap_or("new member");
    let thread = input.payload["thread"]["name"]
        .as_str()
        .unwrap_or("the thread");
    let text = format!("Welcome to {thread}, {member}!");
    let webhook = secrets::get("CHAT_WEBHOOK_URL").ok_or(
        "no chat webhook: set the app secret CHAT_WEBHOOK_URL and grant it (--secret CHAT_WEBHOOK_URL)",
    )?;
    let response = http::post(&webhook)
        .json(&json!({ "text": text }))
        .send()
        .map_err(|e| format!("posting the welcome failed: {e}"))?;
    if !response.is_success() {
        return Err(format!("the chat webhook answered {}", response.status));
    }
    println!("posted: {text}");
    Ok(json!({
        "message": text,
        "posted": true,
        "member_id": input.payload["member"]["id"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_granted_webhook_the_run_fails_saying_what_to_grant() {
        // Natively, secrets come from the environment; this one is not set.
        assert!(std::env::var_os("CHAT_WEBHOOK_URL").is_none());
        let input = Input {
            trigger: "thread.member_joined".into(),
            payload: json!({"thread": {"name": "Design"}, "member": {"name": "Ada"}}),
        };
        let err = welcome(&Context::default(), input).unwrap_err();
        assert!(err.contains("--secret CHAT_WEBHOOK_URL"), "{err}");
    }
}
