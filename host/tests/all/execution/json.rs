//! JSON at the edge: one depth and size rule for everything taken in, strict
//! bodies, exact numbers, guest results held to run limits, and a property
//! test of generated JSON through intake, run-now and a guest's echo.

use super::*;

/// Sends `body` as is (it may not be valid JSON) and returns the answer's
/// status and text.
async fn send_raw(api: &Api, method: Method, path: &str, body: String) -> (StatusCode, String) {
    let response = api
        .client
        .request(method, format!("{}{path}", api.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request is answered");
    (response.status(), response.text().await.unwrap())
}

/// `depth` nested one-key objects around `1`, as JSON text.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

fn error_message(text: &str) -> String {
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    body["error"]["message"]
        .as_str()
        .expect("an error message")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_deeper_than_the_limit_is_refused_at_intake_and_run_now_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let config = api.upload("default", "welcome-new-members").await;
    let welcome = api
        .trigger(
            "thread.member_joined",
            &config,
            json!({"lookup_key": "welcome"}),
        )
        .await;
    let draft = api
        .automation(
            "default",
            json!({"type": "trigger", "trigger": "thread.member_joined", "config_id": config}),
            false,
        )
        .await;

    // The issue's reproduction: 126 levels inside the event, 127 in the body.
    let deep = format!(
        r#"{{"trigger":"thread.member_joined","payload":{}}}"#,
        nested_objects(126)
    );
    let (code, text) = send_raw(api, Method::POST, "/apps/default/events", deep).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(
        error_message(&text),
        "invalid JSON body: it nests arrays and objects deeper than the limit of 64 levels"
    );
    let run_now = format!(r#"{{"payload":{}}}"#, nested_objects(126));
    let path = format!("/apps/default/automations/{draft}/run");
    let (code, text) = send_raw(api, Method::POST, &path, run_now).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(error_message(&text).contains("64 levels"), "{text}");
    // Metadata is held to the same rule.
    let automation = format!(
        r#"{{"name":"m","type":"trigger","trigger":"thread.created","metadata":{}}}"#,
        nested_objects(64)
    );
    let (code, text) = send_raw(api, Method::POST, "/apps/default/automations", automation).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");

    // At the limit: accepted, run, and read back, also after a restart.
    let at_limit = format!(
        r#"{{"trigger":"thread.member_joined","payload":{}}}"#,
        nested_objects(63)
    );
    let (code, text) = send_raw(api, Method::POST, "/apps/default/events", at_limit).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{text}");
    let receipt: Value = serde_json::from_str(&text).unwrap();
    let run = receipt["run_ids"][0].as_str().unwrap().to_owned();
    let ended = api.wait_ended("default", &run).await;
    assert_eq!(status(&ended), "completed", "{ended:#}");
    let run_now = format!(r#"{{"payload":{}}}"#, nested_objects(63));
    let (code, text) = send_raw(api, Method::POST, &path, run_now).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{text}");
    assert_eq!(api.runs("default", &welcome).await.len(), 1);
    server.stop().await;

    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let runs = api.runs("default", &welcome).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["input"]["payload"], ended["input"]["payload"]);
    let (code, _) = api
        .call(Method::DELETE, "/apps/default/automations/welcome", None)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_result_past_its_limits_fails_the_run_and_everything_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let hostile = api.upload("default", "hostile").await;
    let automation = api.trigger("thread.created", &hostile, json!({})).await;
    let roomy = api
        .automation(
            "default",
            json!({"type": "trigger", "trigger": "thread.created", "config_id": hostile,
                   "limits": {"payload_bytes": 3_000_000, "error_bytes": 10}}),
            false,
        )
        .await;
    let ends = |case: Value| async move {
        let run = api
            .first_run(json!({"trigger": "thread.created", "payload": case}))
            .await;
        api.wait_ended("default", &run).await
    };

    let too_deep = ends(json!({"case": "nest", "depth": 125})).await;
    assert_eq!(status(&too_deep), "failed");
    assert_eq!(too_deep["failure_kind"], "invalid_payload");
    assert_eq!(
        too_deep["result"]["error"],
        "The workflow returned a payload the host refuses: it nests arrays and objects deeper than the limit of 64 levels"
    );
    let at_limit = ends(json!({"case": "nest", "depth": 64})).await;
    assert_eq!(status(&at_limit), "completed", "{at_limit:#}");

    let big = ends(json!({"case": "big_payload", "bytes": 2_000_000})).await;
    assert_eq!(big["failure_kind"], "invalid_payload");
    assert_eq!(
        big["result"]["error"],
        "The workflow returned a payload of 2000000 bytes, above the run's limit of 1048576 bytes (payload_bytes)"
    );
    assert_eq!(big["accounting"]["limits"]["payload_bytes"], 1_048_576);
    let long_error = ends(json!({"case": "big_error", "bytes": 2_000_000})).await;
    assert_eq!(long_error["failure_kind"], "invalid_payload");
    let message = long_error["result"]["error"].as_str().unwrap();
    assert!(
        message.starts_with(
            "The workflow returned an error message of 2000000 bytes, above the run's limit of 1048576 bytes (error_bytes)"
        ),
        "{}",
        &message[..200]
    );
    assert!(message.len() < 1000);

    // Per-automation overrides, like the other run limits.
    let path = format!("/apps/default/automations/{roomy}/run");
    let (code, run) = api
        .post(
            &path,
            json!({"payload": {"case": "big_payload", "bytes": 2_000_000}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{run}");
    let run = api.wait_ended("default", &id(&run)).await;
    assert_eq!(status(&run), "completed");
    assert_eq!(run["result"]["payload"].as_str().unwrap().len(), 1_999_998);
    let (code, run) = api
        .post(
            &path,
            json!({"payload": {"case": "big_error", "bytes": 11}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{run}");
    let run = api.wait_ended("default", &id(&run)).await;
    assert_eq!(run["failure_kind"], "invalid_payload", "{run:#}");
    let (code, error) = api
        .post(
            "/apps/default/automations",
            json!({"name": "x", "type": "trigger", "trigger": "thread.created",
                   "limits": {"payload_bytes": 32_000_000}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload_bytes"),
        "{error}"
    );

    // Every run still reads back, in lists and after a restart.
    assert_eq!(api.runs("default", &automation).await.len(), 4);
    server.stop().await;
    let server = TestServer::start(dir.path(), workers(2)).await;
    assert_eq!(server.api.runs("default", &automation).await.len(), 4);
    assert_eq!(server.api.runs("default", &roomy).await.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_one_json_object_and_numbers_keep_their_exact_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), workers(2)).await;
    let api = &server.api;
    let hostile = api.upload("default", "hostile").await;
    let automation = api.trigger("thread.created", &hostile, json!({})).await;

    // Two concatenated events are not one event.
    let event = r#"{"trigger":"thread.created","payload":{"case":"ok"}}"#;
    let (code, text) = send_raw(
        api,
        Method::POST,
        "/apps/default/events",
        format!("{event}{event}"),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        error_message(&text).contains("trailing characters"),
        "{text}"
    );
    // An array of an event's fields is not an event.
    let (code, text) = send_raw(
        api,
        Method::POST,
        "/apps/default/events",
        r#"["thread.created", {"case": "ok"}, null]"#.to_owned(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        error_message(&text).contains("expected struct IncomingEvent"),
        "{text}"
    );
    // Nor is an array of limits a limits object.
    let (code, text) = send_raw(
        api,
        Method::POST,
        "/apps/default/automations",
        r#"{"name":"x","type":"trigger","limits":[1000]}"#.to_owned(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
    assert!(error_message(&text).contains("`limits`"), "{text}");
    assert!(api.runs("default", &automation).await.is_empty());

    // Numbers as sent, through intake, the store and the workflow.
    // (Keys in the order the host writes them. Digits are kept; an exponent
    // is written in one way, `e` and its sign.)
    let sent = r#"{"big":1234567890123456789012345678901234567890,"cents":2.50,"huge":1E400,"tiny":1e-400,"zero":-0}"#;
    let numbers = sent.replace("1E400", "1e+400");
    let event =
        format!(r#"{{"trigger":"thread.created","payload":{{"case":"echo","value":{sent}}}}}"#);
    let (code, text) = send_raw(api, Method::POST, "/apps/default/events", event).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{text}");
    let receipt: Value = serde_json::from_str(&text).unwrap();
    let run = receipt["run_ids"][0].as_str().unwrap().to_owned();
    api.wait_ended("default", &run).await;
    let path = format!("/apps/default/automations/runs/{run}");
    let response = api
        .client
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let input = format!(r#""payload":{{"case":"echo","value":{numbers}}}"#);
    assert!(text.contains(&input), "input not as sent: {text}");
    let result = format!(r#""result":{{"payload":{numbers}"#);
    assert!(text.contains(&result), "result not as sent: {text}");
    server.stop().await;
}

/// Generated JSON for the property test: deep, wide, long strings, Unicode
/// edge cases and extreme numbers.
mod generated {
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::{Number, Value};

    /// Numbers a float would change or refuse, written as clients write them.
    const EXTREME_NUMBERS: &[&str] = &[
        "1e-400",
        "-1e-400",
        "1E+400",
        "-0",
        "0.0",
        "2.50",
        "5e-324",
        "1.7976931348623157e308",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890.123456789e-5",
    ];

    /// Characters JSON and Unicode make awkward: controls, quotes, line and
    /// paragraph separators, BOM, bidi override, zero-width space, a
    /// combining mark, the last code point, an emoji.
    const AWKWARD_CHARS: &[char] = &[
        '\0',
        '\u{1f}',
        '"',
        '\\',
        '/',
        '\u{7f}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{202e}',
        '\u{200b}',
        '\u{301}',
        '\u{10ffff}',
        '😀',
        'é',
    ];

    fn text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        let char = prop_oneof![any::<char>(), prop::sample::select(AWKWARD_CHARS)];
        vec(char, len).prop_map(String::from_iter)
    }

    fn number() -> impl Strategy<Value = Value> {
        let parse = |text: &str| serde_json::from_str::<Value>(text).expect("a JSON number");
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            prop::sample::select(EXTREME_NUMBERS).prop_map(parse),
            (vec(1..10u8, 20..60), any::<bool>()).prop_map(move |(digits, negative)| {
                let digits: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                parse(&format!("{}{digits}", if negative { "-" } else { "" }))
            }),
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            text(0..24).prop_map(Value::String),
        ]
    }

    /// `leaf` inside `depth` arrays or one-key objects.
    fn deep() -> impl Strategy<Value = Value> {
        let depth = prop_oneof![1..100usize, Just(62usize), Just(63usize)];
        (leaf(), depth.prop_flat_map(|d| vec(any::<bool>(), d))).prop_map(|(leaf, levels)| {
            levels.into_iter().fold(leaf, |inner, array| {
                if array {
                    Value::Array(vec![inner])
                } else {
                    Value::Object([("k".to_owned(), inner)].into_iter().collect())
                }
            })
        })
    }

    /// Any value the property test sends.
    pub fn json() -> impl Strategy<Value = Value> {
        let nested = leaf().prop_recursive(6, 200, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                btree_map(text(0..8), inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        });
        prop_oneof![
            4 => nested,
            3 => deep(),
            1 => vec(leaf(), 500..3000).prop_map(Value::Array),
            1 => text(10_000..60_000).prop_map(Value::String),
            // Just over the body limit once the event is wrapped around it.
            1 => Just(Value::String("x".repeat(1 << 20))),
        ]
    }

    /// Levels of arrays and objects in `value`.
    pub fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Sends `body` (an event or run-now input whose payload asks the hostile
/// guest to echo `value`) and checks the answer: refused with a 4xx exactly
/// when the body is past the host's depth or size limit, otherwise a run
/// whose stored input and echoed result read back equal. Returns whether it
/// was accepted.
async fn sent_reads_back_or_is_refused(
    api: &Api,
    path: &str,
    body: Value,
    value: &Value,
) -> Result<bool, proptest::test_runner::TestCaseError> {
    use automata::domain::json::{MAX_BODY_BYTES, MAX_DEPTH};
    use proptest::prelude::*;

    let text = body.to_string();
    let beyond = text.len() > MAX_BODY_BYTES || generated::depth(&body) > MAX_DEPTH;
    let (code, answer) = send_raw(api, Method::POST, path, text).await;
    if beyond {
        prop_assert!(code.is_client_error(), "{code} for a body past the limits");
        return Ok(false);
    }
    prop_assert_eq!(code, StatusCode::ACCEPTED, "{}", answer);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let run = answer["run_ids"][0]
        .as_str()
        .or(answer["id"].as_str())
        .expect("a run id")
        .to_owned();
    let run = api.wait_ended("default", &run).await;
    prop_assert_eq!(&run["input"]["payload"], &body["payload"]);
    prop_assert_eq!(status(&run), "completed", "{:#}", run["result"]);
    prop_assert_eq!(&run["result"]["payload"], value);
    Ok(true)
}

/// Generated JSON through intake, run-now and a guest's echo reads back
/// exactly, or is refused with a 4xx when it is past the limits.
#[test]
fn generated_json_reads_back_exactly_or_is_refused() {
    use std::cell::Cell;

    use proptest::prelude::prop_assert_eq;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = runtime.block_on(TestServer::start(dir.path(), workers(2)));
    let api = &server.api;
    let automation = runtime.block_on(async {
        let hostile = api.upload("default", "hostile").await;
        api.trigger("thread.created", &hostile, json!({})).await
    });
    let run_now = format!("/apps/default/automations/{automation}/run");
    let mut runner = TestRunner::new(Config {
        cases: 40,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..Config::default()
    });
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    let outcome = runner.run(&generated::json(), |value| {
        runtime.block_on(async {
            let payload = json!({"case": "echo", "value": value.clone()});
            let event = json!({"trigger": "thread.created", "payload": payload});
            let intake =
                sent_reads_back_or_is_refused(api, "/apps/default/events", event, &value).await?;
            let input = json!({"payload": payload});
            let run_now = sent_reads_back_or_is_refused(api, &run_now, input, &value).await?;
            // The two bodies wrap the value alike.
            prop_assert_eq!(intake, run_now);
            let count = if intake { &accepted } else { &refused };
            count.set(count.get() + 1);
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Both sides of the property were exercised.
    assert!(
        accepted.get() > 0 && refused.get() > 0,
        "{} accepted, {} refused",
        accepted.get(),
        refused.get()
    );
    // Every accepted run still lists.
    let page = runtime.block_on(api.get(&format!(
        "/apps/default/automations/{automation}/runs?limit=100"
    )));
    assert!(!page["data"].as_array().unwrap().is_empty());
    runtime.block_on(server.stop());
}
