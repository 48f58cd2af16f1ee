//! The console in headless Chromium against a real server: sign in, upload
//! an example, create and activate an automation, send a test event, watch
//! its run complete and read its output line, open the run by its URL,
//! pause, meet a 409, sign out; then a `read` key finds nothing to change.
//! Uploads go through the file picker and through a drop on the drop zone;
//! actions land on their page's own URL (Post/Redirect/Get). Every page is
//! saved as a PNG under `target/console-screenshots/`, at 1280×800 and, for
//! some, at phone width.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use super::super::TestServer;
use super::chromium::Browser;
use super::key;
use automata_e2e::{ADMIN_TOKEN, guest_path};
use base64::Engine as _;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, reader) = key(&server, "read").await;
    let shots = screenshots();
    let base = server.base.clone();
    let app = format!("{base}/console/apps/default");
    let browser = Browser::start(1280, 800).await;

    // Sign in.
    browser.open(&format!("{base}/")).await;
    browser
        .wait_for_url(|u| u.contains("/console/sign-in"))
        .await;
    browser.screenshot_to(&shots, "sign-in").await;
    browser.type_into("#key", ADMIN_TOKEN).await;
    browser.click_on("form button[type=submit]").await;
    browser.wait_for_url(|u| u.ends_with("/console")).await;
    browser.screenshot_to(&shots, "apps").await;
    browser.click_on("ul.apps a").await;
    browser
        .wait_for_url(|u| u.ends_with("/console/apps/default"))
        .await;

    // Upload an example with the file picker.
    browser.open(&format!("{app}/configs")).await;
    // Chromium takes only canonical paths for file inputs.
    let wasm = guest_path("welcome-new-members").canonicalize().unwrap();
    browser
        .type_into("#component", &wasm.display().to_string())
        .await;
    // Any Unicode name (a header would take Latin-1 only).
    browser.type_into("#config-name", "Bienvenue ✓ 日本").await;
    browser.click_on("#upload-button").await;
    let config_url = browser.wait_for_url(|u| u.contains("/configs/cfg_")).await;
    let config_id = config_url.rsplit('/').next().unwrap().to_owned();
    browser
        .wait_for_text("main", |t| t.contains("thread.member_joined"))
        .await;
    browser.screenshot_to(&shots, "config").await;
    browser.open(&format!("{app}/configs")).await;
    browser
        .wait_for_text("main table", |t| t.contains("Bienvenue ✓ 日本"))
        .await;
    browser.screenshot_to(&shots, "configs").await;

    // Create an automation with the form, then activate it.
    browser.open(&format!("{app}/automations/new")).await;
    browser.type_into("#name", "Greeter").await;
    browser.type_into("#trigger", "thread.member_joined").await;
    browser
        .click_on(&format!("#config_id option[value=\"{config_id}\"]"))
        .await;
    browser.screenshot_to(&shots, "automation-new").await;
    browser.click_on("main form button[type=submit]").await;
    let automation_url = browser
        .wait_for_url(|u| u.contains("/automations/aut_"))
        .await;
    browser.click_on("form[action$=\"/activate\"] button").await;
    browser.accept_dialog().await;
    browser
        .wait_for_text(".banner", |t| t == "Greeter is now running.")
        .await;
    // Post/Redirect/Get: the address bar holds the automation's page, and a
    // reload shows it again without repeating the action or its message.
    assert_eq!(browser.url().await, automation_url);
    browser.screenshot_to(&shots, "automation").await;
    browser.refresh().await.unwrap();
    browser.element("main h1").await;
    assert_eq!(browser.count(".banner").await, 0);
    browser.open(&format!("{automation_url}/edit")).await;
    browser.element("#policies").await;
    browser.screenshot_to(&shots, "automation-edit").await;
    // A 200-character name stays in its column.
    let long_name = format!("Quarterly {}", "report ".repeat(27));
    let long_name = long_name.trim_end();
    server
        .create(json!({"name": long_name, "type": "scheduled", "schedule": "0 9 * * 1"}))
        .await;
    browser.open(&format!("{app}/automations")).await;
    browser
        .wait_for_text("main table", |t| t.contains("Greeter"))
        .await;
    let table_width = browser
        .run_async(
            "arguments[0](document.querySelector('main table').getBoundingClientRect().right \
             <= document.documentElement.clientWidth);",
            vec![],
        )
        .await;
    assert_eq!(table_width, true, "the automations table fits the window");
    browser.screenshot_to(&shots, "automations").await;
    browser.resize(390, 844).await;
    let page_width = browser
        .run_async(
            "arguments[0](document.documentElement.scrollWidth \
             <= document.documentElement.clientWidth);",
            vec![],
        )
        .await;
    assert_eq!(
        page_width, true,
        "the page does not scroll sideways on a phone"
    );
    browser.screenshot_to(&shots, "automations-phone").await;
    browser.resize(1280, 800).await;

    // Send a test event: invalid JSON is caught before sending.
    browser.open(&format!("{app}/events")).await;
    browser
        .click_on("#trigger option[value=\"thread.member_joined\"]")
        .await;
    browser.clear("#payload").await;
    browser.type_into("#payload", "{\"member\": ").await;
    browser
        .wait_for_text(".json-problem", |t| t.starts_with("Payload"))
        .await;
    assert_eq!(
        browser
            .property("#send-event button[type=submit]", "disabled")
            .await
            .as_deref(),
        Some("true")
    );
    browser.clear("#payload").await;
    browser
        .type_into(
            "#payload",
            r#"{"member": {"id": "u1", "name": "Ada"}, "thread": {"id": "t1", "name": "Design"}}"#,
        )
        .await;
    assert_eq!(
        browser
            .property("#send-event button[type=submit]", "disabled")
            .await
            .as_deref(),
        Some("false")
    );
    browser.click_on("#send-event button[type=submit]").await;
    // Post/Redirect/Get: the events page, with the runs the event created.
    browser.wait_for_url(|u| u.ends_with("/events")).await;
    browser
        .wait_for_text("#flash", |t| t.contains("runs created"))
        .await;
    browser.screenshot_to(&shots, "events").await;

    // Watch the run complete and read its output line.
    browser.click_on("#flash ul.created-runs a").await;
    let run_url = browser.wait_for_url(|u| u.contains("/runs/atr_")).await;
    browser
        .wait_for_text(".big .badge", |t| t == "completed")
        .await;
    let output = browser.text("#output").await;
    assert_eq!(output.trim(), "Welcome to Design, Ada!");
    browser
        .wait_for_text("main", |t| t.contains("Payload"))
        .await;
    browser.screenshot_to(&shots, "run").await;
    // Open the run by its URL, as a shared link would.
    browser.open(&run_url).await;
    assert_eq!(
        browser.text("#output").await.trim(),
        "Welcome to Design, Ada!"
    );
    assert!(browser.text("main").await.contains(&config_id));
    browser.resize(390, 844).await;
    browser.screenshot_to(&shots, "run-phone").await;
    browser.resize(1280, 800).await;
    browser.open(&format!("{app}/runs")).await;
    browser
        .wait_for_text("main table", |t| t.contains("completed"))
        .await;
    assert_eq!(browser.text("main table td a.name").await, "Greeter");
    browser.screenshot_to(&shots, "runs").await;
    browser.open(&app).await;
    browser.element("svg.chart").await;
    browser.screenshot_to(&shots, "overview").await;

    // A running run streams its output into the open page, and can be cancelled.
    // Upload the sleeper by dropping it on the drop zone: a `drop` event
    // carrying a `DataTransfer` with the component as a file, as a
    // drag from the desktop would (WebDriver cannot drag files in).
    browser.open(&format!("{app}/configs")).await;
    let component = std::fs::read(guest_path("sleeper")).unwrap();
    let dropped = browser
        .run_async(
            "const [encoded, done] = arguments;
             const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
             const file = new File([bytes], 'sleeper.wasm', {type: 'application/wasm'});
             const transfer = new DataTransfer();
             transfer.items.add(file);
             const zone = document.getElementById('dropzone');
             for (const type of ['dragenter', 'dragover', 'drop']) {
               zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
             }
             done(document.getElementById('upload-status').textContent);",
            vec![json!(base64::engine::general_purpose::STANDARD.encode(&component))],
        )
        .await;
    assert_eq!(
        dropped,
        format!("sleeper.wasm: {} bytes, ready to upload.", component.len()).as_str()
    );
    browser.click_on("#upload-button").await;
    let sleeper_url = browser
        .wait_for_url(|u| u.contains("/configs/cfg_") && !u.ends_with(&config_id))
        .await;
    let sleeper_id = sleeper_url.rsplit('/').next().unwrap().to_owned();
    browser
        .wait_for_text("main", |t| t.contains("thread.created"))
        .await;
    let slow = server
        .create(
            json!({"name": "Slow", "type": "trigger", "trigger": "thread.created",
                       "config_id": sleeper_id}),
        )
        .await;
    let (status, _) = server
        .action(&format!(
            "/apps/default/automations/{}/activate",
            slow["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let send = |sleep_ms: u64| {
        let server = &server;
        async move {
            let (status, receipt) = server
                .post(
                    "/apps/default/events",
                    json!({"trigger": "thread.created", "payload": {"sleep_ms": sleep_ms}}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
            receipt["run_ids"][0].as_str().unwrap().to_owned()
        }
    };
    let streamed = send(2_500).await;
    browser.open(&format!("{app}/runs/{streamed}")).await;
    browser.element("#output[data-follow]").await;
    browser
        .run_async("window.stillThisPage = true; arguments[0]();", vec![])
        .await;
    browser
        .wait_for_text("#output", |t| t.contains("sleeping 2500 ms"))
        .await;
    browser.screenshot_to(&shots, "run-streaming").await;
    let same_page = browser
        .run_async("arguments[0](window.stillThisPage === true);", vec![])
        .await;
    assert_eq!(same_page, true, "the line arrived without a reload");
    browser
        .wait_for_text(".big .badge", |t| t == "completed")
        .await;
    assert!(browser.text("#output").await.ends_with("done"));
    let cancelled = send(60_000).await;
    browser.open(&format!("{app}/runs/{cancelled}")).await;
    browser.click_on("form[action$=\"/cancel\"] button").await;
    browser.accept_dialog().await;
    browser
        .wait_for_text(".big .badge", |t| t == "cancelled")
        .await;
    assert!(browser.text("main").await.contains("cancelled by operator"));

    // Pause, then a transition refused with the API's 409: the page still
    // offers "Reset to draft" after someone else reset it.
    browser.open(&automation_url).await;
    browser.click_on("form[action$=\"/pause\"] button").await;
    browser.accept_dialog().await;
    browser
        .wait_for_text(".banner", |t| t == "Greeter is now paused.")
        .await;
    let automation_id = automation_url.rsplit('/').next().unwrap();
    let reset = format!("/apps/default/automations/{automation_id}/reset");
    let (status, _) = server.action(&reset).await;
    assert_eq!(status, StatusCode::OK);
    browser.click_on("form[action$=\"/reset\"] button").await;
    browser.accept_dialog().await;
    let (status, refused) = server.action(&reset).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = refused["error"]["message"].as_str().unwrap();
    browser
        .wait_for_text(".banner.error", |t| t == message)
        .await;
    browser.screenshot_to(&shots, "automation-409").await;

    // Sign out: the pages ask to sign in again.
    browser.click_on("header .who button").await;
    browser
        .wait_for_url(|u| u.contains("/console/sign-in"))
        .await;
    browser.open(&automation_url).await;
    browser
        .wait_for_url(|u| u.contains("/console/sign-in?next="))
        .await;

    // A read key: no buttons, and a forged change is refused.
    browser.type_into("#key", &reader).await;
    browser.click_on("form button[type=submit]").await;
    browser.wait_for_url(|u| *u == automation_url).await;
    browser.wait_for_text("main h1", |t| t == "Greeter").await;
    assert!(browser.count("main form[method=post]").await == 0);
    assert!(browser.count("main a.button").await == 0);
    browser.screenshot_to(&shots, "automation-read-key").await;
    browser.open(&format!("{app}/events")).await;
    browser.element("main table").await;
    assert!(browser.count("#send-event").await == 0);
    browser.open(&format!("{app}/automations")).await;
    assert!(!browser.text("main").await.contains("New automation"));
    browser.open(&run_url).await;
    assert!(browser.count("main form[method=post]").await == 0);
    let forged = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             const token = document.querySelector('header input[name=csrf]').value;
             fetch(arguments[0], {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + encodeURIComponent(token)})
               .then((r) => done(r.status), (e) => done(String(e)));",
            vec![json!(format!("{automation_url}/activate"))],
        )
        .await;
    assert_eq!(forged, 403);
    let (_, stored) = server
        .get(&format!("/apps/default/automations/{automation_id}"))
        .await;
    assert_eq!(stored["status"], "draft");
    browser.close().await;
    server.stop().await;
}
