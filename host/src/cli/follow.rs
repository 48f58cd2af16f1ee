//! Following a run until it ends: its output lines as they are printed
//! (Server-Sent Events from `GET …/runs/:run_id/output?follow=true`), then
//! along `retried_by` to the last attempt of its retry chain. A follow
//! survives a server restart by reconnecting from the last line seen, a
//! bounded number of times; Ctrl-C stops following and says how to cancel.

use std::io::IsTerminal as _;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;

use super::client::{Api, ApiError};
use super::output::{outln, text};

/// Reconnects in a row before giving up on a server that went away.
const MAX_RECONNECTS: u32 = 10;
/// The wait before the first reconnect; doubled each time, up to the max.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How following ended.
#[derive(Debug)]
pub enum Followed {
    /// The last attempt of the chain ended: the run as the server shows it.
    Ended(Value),
    /// Ctrl-C: following stopped (the run goes on); what to say was said.
    Interrupted,
}

/// Follows run `id`, and its retries, until the last attempt has ended.
/// With `print_lines`, each output line goes to stdout as it is printed.
pub async fn follow_chain(api: &Api, id: &str, print_lines: bool) -> anyhow::Result<Followed> {
    let mut current = id.to_owned();
    if std::io::stderr().is_terminal() {
        eprintln!("Following {current} (Ctrl-C stops following; the run goes on).");
    }
    loop {
        let ended = tokio::select! {
            ended = follow_one(api, &current, print_lines) => ended?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "\nStopped following {current}; it goes on. \
                     To cancel it: automata cancel automationrun {current}"
                );
                return Ok(Followed::Interrupted);
            }
        };
        let Some(next) = ended["retried_by"].as_str().filter(|next| !next.is_empty()) else {
            return Ok(Followed::Ended(ended));
        };
        let attempt = ended["attempt"].as_u64().unwrap_or(1);
        eprintln!(
            "Attempt {attempt} {} ({}); following its retry {next} (attempt {}).",
            text(&ended, "status"),
            problem(&ended),
            attempt + 1
        );
        current = next.to_owned();
    }
}

/// Why a run did not complete, in a few words.
fn problem(run: &Value) -> String {
    let error = run
        .get("result")
        .map(|result| text(result, "error"))
        .unwrap_or_default();
    let kind = text(run, "failure_kind");
    match (error.lines().next().unwrap_or_default(), kind.as_str()) {
        ("", "") => text(run, "reason"),
        ("", kind) => kind.to_owned(),
        (error, "") => error.to_owned(),
        (error, kind) => format!("{kind}: {error}"),
    }
}

/// Follows one run to its end, reconnecting when the connection is lost;
/// returns the ended run.
async fn follow_one(api: &Api, id: &str, print_lines: bool) -> anyhow::Result<Value> {
    let mut offset = 0usize;
    let mut failures = 0u32;
    loop {
        let lost = match stream(api, id, &mut offset, print_lines, &mut failures).await {
            Ok(Stream::Ended) => break,
            Ok(Stream::Closed) => "the server closed the stream".to_owned(),
            Err(error) if Api::is_connection_error(&error) => error.to_string(),
            Err(error) => return Err(error.into()),
        };
        failures += 1;
        if failures > MAX_RECONNECTS {
            anyhow::bail!(
                "lost the server at {} while following {id} ({lost}); gave up after \
                 {MAX_RECONNECTS} reconnects. The run may still be going: \
                 automata describe automationrun {id} --follow",
                api.base_url()
            );
        }
        eprintln!("Lost the stream of {id} ({lost}); reconnecting ({failures}/{MAX_RECONNECTS})…");
        tokio::time::sleep(backoff(failures)).await;
    }
    Ok(api.get(&["automations", "runs", id], &[]).await?)
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_BACKOFF)
}

/// How one connection's stream ended.
enum Stream {
    /// With the `end` event: the run is over.
    Ended,
    /// Without it (the server stopped): reconnect from `offset`.
    Closed,
}

/// Reads one connection's events: prints lines, moves `offset` past each,
/// and clears `failures` once connected.
async fn stream(
    api: &Api,
    id: &str,
    offset: &mut usize,
    print_lines: bool,
    failures: &mut u32,
) -> Result<Stream, ApiError> {
    let query = [
        ("follow", "true".to_owned()),
        ("offset", offset.to_string()),
    ];
    let response = api
        .events(&["automations", "runs", id, "output"], &query)
        .await?;
    if *failures > 0 {
        eprintln!("Reconnected; following {id} from line {}.", *offset + 1);
        *failures = 0;
    }
    let mut body = response.bytes_stream();
    let mut parser = EventParser::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| api.transport_error(&e))?;
        for event in parser.feed(&chunk) {
            if event.name == "end" {
                return Ok(Stream::Ended);
            }
            let Some(next) = event.id.and_then(|id| id.parse::<usize>().ok()) else {
                continue;
            };
            if print_lines {
                outln!("{}", event.data);
            }
            *offset = next;
        }
    }
    Ok(Stream::Closed)
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq, Eq)]
struct Event {
    /// `message` unless named.
    name: String,
    id: Option<String>,
    /// The data lines joined with `\n` ("" when there were none).
    data: String,
}

/// Splits a byte stream into events (<https://html.spec.whatwg.org/multipage/server-sent-events.html>):
/// `field: value` lines, a blank line ending each event, `:` comments.
#[derive(Debug, Default)]
struct EventParser {
    buffer: Vec<u8>,
    current: Event,
    data_lines: Vec<String>,
}

impl EventParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(newline) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                let mut event = std::mem::take(&mut self.current);
                event.data = std::mem::take(&mut self.data_lines).join("\n");
                if event.name.is_empty() {
                    "message".clone_into(&mut event.name);
                }
                events.push(event);
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => self.current.name = value,
                "id" => self.current.id = Some(value),
                "data" => self.data_lines.push(value),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_are_parsed_across_chunks_with_comments_and_empty_data() {
        let mut parser = EventParser::default();
        assert!(parser.feed(b": keep-alive\n\nid: 1\nda").len() == 1);
        let events = parser
            .feed(b"ta: hello\r\n\nid: 2\n\nid: 3\ndata: a\ndata: b\n\nevent: end\ndata: {}\n\n");
        assert_eq!(
            events,
            [
                Event {
                    name: "message".into(),
                    id: Some("1".into()),
                    data: "hello".into()
                },
                Event {
                    name: "message".into(),
                    id: Some("2".into()),
                    data: String::new()
                },
                Event {
                    name: "message".into(),
                    id: Some("3".into()),
                    data: "a\nb".into()
                },
                Event {
                    name: "end".into(),
                    id: None,
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn reconnects_back_off_up_to_a_bound() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(5), Duration::from_secs(4));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn problems_name_the_kind_and_error() {
        let failed =
            json!({"failure_kind": "trap", "result": {"error": "Workflow trapped: abort\nmore"}});
        assert_eq!(problem(&failed), "trap: Workflow trapped: abort");
        assert_eq!(
            problem(&json!({"reason": "host restarted during run"})),
            "host restarted during run"
        );
    }
}
