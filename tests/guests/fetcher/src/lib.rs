//! A test fixture for outbound HTTP. The payload says what to send:
//!
//! - `url` (required), `method` (default `GET`), `json` (a JSON body), and
//!   `times` (send it that many times, default 1);
//! - `handle: true`: a failed request is printed and reported in the payload
//!   (`{"error": …}`) instead of failing the run.
//!
//! It returns the last response's `status`, its body's length (`bytes`) and
//! its text (`body`, when it is short).
use automata_guest::{Context, Input, Value, http, json, workflow};

workflow! {
    name: "Fetcher",
    triggers: ["thread.created"],
    steps: [("fetch", "Send the requests the payload describes")],
    run: fetch,
}

fn fetch(_ctx: &Context, input: Input) -> Result<Value, String> {
    let payload = &input.payload;
    let url = payload["url"].as_str().ok_or("payload needs a `url`")?;
    let method = payload["method"].as_str().unwrap_or("GET");
    let times = payload["times"].as_u64().unwrap_or(1);
    let mut last = Value::Null;
    for _ in 0..times {
        let mut request = http::request(method, url);
        if let Some(body) = payload.get("json") {
            request = request.json(body);
        }
        match request.send() {
            Ok(response) => {
                println!("{method} {url}: {}", response.status);
                let text = response.text().unwrap_or_default();
                last = json!({
                    "status": response.status,
                    "bytes": response.body.len(),
                    "body": if text.len() <= 1024 { text } else { "" },
                });
            }
            Err(error) if payload["handle"] == true => {
                println!("request failed: {error}");
                return Ok(json!({ "error": error.to_string() }));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(last)
}
