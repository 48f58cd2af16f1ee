//! What a first-time user of the console ran into: actions that answered at
//! their POST address, text from the URL on the sign-in page, JSON
//! refusals under `/console`, filters named unlike the API's, runs that
//! showed ids for names and linked to deleted automations, long names, no
//! icon, and sign-in into an app the key cannot open.

use reqwest::StatusCode;
use serde_json::json;

use super::super::TestServer;
use super::{Visitor, automation, html_escape, key};
use automata_e2e::ADMIN_TOKEN;

/// Whether a response is one of the console's HTML pages.
fn is_page(page: &super::Page) -> bool {
    page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
        && page.body.contains("<main")
        && page.headers.contains_key("content-security-policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_redirect_and_their_outcome_shows_once_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let automation = automation(&server).await;
    let page = format!("/console/apps/default/automations/{automation}");
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(ADMIN_TOKEN).await;
    let csrf = visitor.get(&page).await.csrf();

    // Activate, pause and reset answer 303 to the automation's page, which
    // says what happened once: a reload shows the page without it.
    for (action, said) in [
        ("activate", "Greeter is now running."),
        ("pause", "Greeter is now paused."),
        ("reset", "Greeter is now draft."),
    ] {
        let answer = visitor
            .post_form(&format!("{page}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{action}: {}",
            answer.body
        );
        assert_eq!(answer.location(), page);
        let shown = visitor.get(&page).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.body.contains(said), "{action}: {}", shown.body);
        let reloaded = visitor.get(&page).await;
        assert!(!reloaded.body.contains(said), "{action}: shown twice");
    }
    // A refusal carries the API's own status and message, kept on the
    // server (nothing of it is in the URL).
    let answer = visitor
        .post_form(&format!("{page}/pause"), &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), page);
    let (status, api) = server
        .post(
            &format!("/apps/default/automations/{automation}/pause"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = html_escape(api["error"]["message"].as_str().unwrap());
    let shown = visitor.get(&page).await;
    assert!(
        shown.body.contains(r#"data-status="409""#),
        "{}",
        shown.body
    );
    assert!(
        shown.body.contains(&message),
        "{message} not in {}",
        shown.body
    );
    // Another session of the same key does not see it.
    let mut other = Visitor::new(&server);
    other.sign_in(ADMIN_TOKEN).await;
    let answer = visitor
        .post_form(&format!("{page}/pause"), &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(!other.get(&page).await.body.contains(&message));
    assert!(visitor.get(&page).await.body.contains(&message));

    // The address of a button is not a page: a GET of it is a 405 page.
    let reload = visitor.get(&format!("{page}/activate")).await;
    assert_eq!(reload.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(is_page(&reload), "{}", reload.body);
    assert!(reload.body.contains("not a page"), "{}", reload.body);

    // Saving the edit form redirects too, and so does sending an event,
    // whose runs are linked on the events page.
    let (_, stored) = server
        .get(&format!("/apps/default/automations/{automation}"))
        .await;
    let config_id = stored["config_id"].as_str().unwrap();
    let saved = visitor
        .post_form(
            &page,
            &[
                ("csrf", &csrf),
                ("name", "Greeter"),
                ("type", "trigger"),
                ("trigger", "thread.member_joined"),
                ("timezone", "UTC"),
                ("description", "says hello"),
                ("config_id", config_id),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), page);
    assert!(visitor.get(&page).await.body.contains("Saved Greeter."));
    let activated = visitor
        .post_form(&format!("{page}/activate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(activated.status, StatusCode::SEE_OTHER);
    visitor.get(&page).await;
    let sent = visitor
        .post_form(
            "/console/apps/default/events",
            &[
                ("csrf", &csrf),
                ("trigger", "thread.member_joined"),
                (
                    "payload",
                    r#"{"member": {"id": "u1", "name": "Ada"}, "thread": {"id": "t1", "name": "Design"}}"#,
                ),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/console/apps/default/events");
    let events = visitor.get("/console/apps/default/events").await;
    assert!(
        events.body.contains("runs created:")
            && events
                .body
                .contains(r#"<a href="/console/apps/default/runs/atr_"#),
        "{}",
        events.body
    );
    // The form is as it was sent, to send again.
    assert!(
        events
            .body
            .contains(r#"<option value="thread.member_joined" selected>"#)
            && events
                .body
                .contains("{&quot;member&quot;: {&quot;id&quot;: &quot;u1&quot;"),
        "{}",
        events.body
    );
    // A refused event shows the form again as sent, with the refusal.
    let refused = visitor
        .post_form(
            "/console/apps/default/events",
            &[
                ("csrf", &csrf),
                ("trigger", "thread.member_joined"),
                ("payload", "[1]"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("expected a JSON object"),
        "{}",
        refused.body
    );

    // Deleting redirects to the list, which says so.
    let deleted = visitor
        .post_form(&format!("{page}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/console/apps/default/automations");
    let list = visitor.get(deleted.location()).await;
    assert!(list.body.contains("Deleted Greeter"), "{}", list.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_says_only_its_own_words_and_lands_in_the_keys_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut visitor = Visitor::new(&server);
    // Any text in `reason` shows nothing; our codes show our words.
    let phish = "Your account is locked: call 555-0100";
    let page = visitor
        .get(&format!(
            "/console/sign-in?reason={}",
            phish.replace(' ', "+")
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("555-0100"), "{}", page.body);
    assert!(!page.body.contains("banner"), "{}", page.body);
    let page = visitor.get("/console/sign-in?reason=ended").await;
    assert!(
        page.body.contains("Your session has ended"),
        "{}",
        page.body
    );
    // A page asked for without a session says why, in a code.
    let asked = visitor.get("/console/apps/default/runs").await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    assert!(
        asked.location().ends_with("&reason=required"),
        "{}",
        asked.location()
    );
    // Signing out says so.
    visitor.sign_in(ADMIN_TOKEN).await;
    let csrf = visitor.get("/console/apps/default").await.csrf();
    let out = visitor
        .post_form("/console/sign-out", &[("csrf", &csrf)])
        .await;
    assert!(
        out.location().ends_with("reason=signed-out"),
        "{}",
        out.location()
    );
    assert!(
        visitor
            .get(out.location())
            .await
            .body
            .contains("You have signed out.")
    );

    // A key of another app, sent to this app's page, lands on its own app
    // and is told why.
    let (status, _) = server.post("/apps", json!({"id": "other"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, other) = server
        .post("/apps/other/keys", json!({"name": "o", "role": "read"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut outsider = Visitor::new(&server);
    let landed = outsider
        .post_form(
            "/console/sign-in",
            &[
                ("key", other["key_secret"].as_str().unwrap()),
                ("next", "/console/apps/default/runs"),
            ],
        )
        .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER);
    assert_eq!(landed.location(), "/console/apps/other");
    let home = outsider.get(landed.location()).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("in another app than this key"),
        "{}",
        home.body
    );
    // Its own app's pages are followed.
    let mut insider = Visitor::new(&server);
    let landed = insider
        .post_form(
            "/console/sign-in",
            &[
                ("key", other["key_secret"].as_str().unwrap()),
                ("next", "/console/apps/other/runs?status=failed"),
            ],
        )
        .await;
    assert_eq!(landed.location(), "/console/apps/other/runs?status=failed");
    // A read key is told what it lacks in the console's words.
    let (_, reader) = key(&server, "read").await;
    let mut reading = Visitor::new(&server);
    reading.sign_in(&reader).await;
    let csrf = reading.get("/console/apps/default").await.csrf();
    let refused = reading
        .post_form("/console/apps/default/automations", &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("this key has role `read`; this console action needs role `write`"),
        "{}",
        refused.body
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_under_console_is_a_page_and_the_api_keeps_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(ADMIN_TOKEN).await;
    let http = reqwest::Client::new();

    // Unknown console addresses: a 404 page that does not echo the address.
    let missing = visitor.get("/console/call-555-0100-now").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(is_page(&missing), "{}", missing.body);
    assert!(!missing.body.contains("555"), "{}", missing.body);
    // A method a console address does not take: a 405 page keeping `Allow`.
    let wrong = visitor.post_form("/console/apps/default/runs", &[]).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(is_page(&wrong), "{}", wrong.body);
    // A form from another origin: the edge's 403, as a page.
    let cross = http
        .post(format!("{}/console/sign-in", server.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(
        cross.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(cross.headers().contains_key("content-security-policy"));
    let body = cross.text().await.unwrap();
    assert!(body.contains("cross-origin request refused"), "{body}");
    // A body type the console does not take: the edge's 415, as a page.
    let typed = http
        .post(format!("{}/console/sign-in", server.base))
        .header("content-type", "text/plain")
        .body("key=x")
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        typed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The upload script asks for JSON and gets the API's JSON refusals.
    let upload = http
        .post(format!("{}/console/apps/default/configs", server.base))
        .header("accept", "application/json")
        .header("origin", "https://evil.example")
        .header("content-type", "application/wasm")
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);
    let answer: serde_json::Value = upload.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "forbidden");
    // The JSON API answers JSON as before.
    for path in ["/apps/default/nothing", "/nothing"] {
        let response = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
    }

    // The icon, where pages link it and where browsers look by default.
    for path in ["/console/assets/favicon.svg", "/favicon.ico"] {
        let icon = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml", "{path}");
        assert!(icon.text().await.unwrap().starts_with("<svg"), "{path}");
    }
    let page = visitor.get("/console/apps/default").await;
    assert!(
        page.body.contains(
            r#"<link rel="icon" type="image/svg+xml" href="/console/assets/favicon.svg">"#
        ),
        "{}",
        page.body
    );
    // A message pointing to the API says it in the console's terms.
    let refused = visitor
        .post_form(
            "/console/apps/default/automations",
            &[
                ("csrf", &page.csrf()),
                ("name", "Typo"),
                ("type", "trigger"),
                ("trigger", "thread.craeted"),
                ("timezone", "UTC"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("the Events page lists them") && !refused.body.contains("GET /apps"),
        "{}",
        refused.body
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_name_their_automation_and_take_the_apis_filters() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let long_name = format!("Greeter {}", "x".repeat(192));
    let config = server.upload("welcome-new-members").await;
    let make = |name: String| {
        let server = &server;
        let config = config["id"].clone();
        async move {
            let created = server
                .create(json!({"name": name, "type": "trigger",
                               "trigger": "thread.member_joined", "config_id": config}))
                .await;
            let id = created["id"].as_str().unwrap().to_owned();
            let (status, _) = server
                .action(&format!("/apps/default/automations/{id}/activate"))
                .await;
            assert_eq!(status, StatusCode::OK);
            id
        }
    };
    let kept = make(long_name.clone()).await;
    let gone = make("Doomed".to_owned()).await;
    let (status, receipt) = server
        .post(
            "/apps/default/events",
            json!({"trigger": "thread.member_joined",
                   "payload": {"member": {"id": "u1", "name": "Ada"}, "thread": {"id": "t1", "name": "Design"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/apps/default/automations/{gone}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(ADMIN_TOKEN).await;

    // The runs table names each run's automation (a long name cut, whole in
    // its title with the id); a deleted one is said so, without a link.
    let runs = visitor.get("/console/apps/default/runs").await;
    assert_eq!(runs.status, StatusCode::OK, "{}", runs.body);
    let linked = format!(
        r#"<a class="name" href="/console/apps/default/automations/{kept}" title="{long_name} ({kept})">{long_name}</a>"#
    );
    assert!(runs.body.contains(&linked), "{}", runs.body);
    assert!(
        !runs.body.contains(&format!(
            r#"href="/console/apps/default/automations/{gone}""#
        )),
        "a link to a deleted automation"
    );
    assert!(
        runs.body.contains(&format!("deleted <code>{gone}</code>")),
        "{}",
        runs.body
    );
    for id in receipt["run_ids"].as_array().unwrap() {
        let page = visitor
            .get(&format!(
                "/console/apps/default/runs/{}",
                id.as_str().unwrap()
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let of_gone = page.body.contains(&format!("deleted <code>{gone}</code>"));
        let of_kept = page.body.contains(&linked);
        assert!(of_gone != of_kept, "{}", page.body);
    }
    // Every table keeps a long name to its width, whole in the title.
    for path in [
        "/console/apps/default/automations",
        "/console/apps/default/events",
        &format!(
            "/console/apps/default/configs/{}",
            config["id"].as_str().unwrap()
        ),
    ] {
        let page = visitor.get(path).await;
        assert!(page.body.contains(&linked), "{path}: {}", page.body);
    }

    // The API's filter names work, an API link included; old or unknown
    // names are a readable 400 naming the one meant.
    let filtered = visitor
        .get(&format!(
            "/console/apps/default/runs?automation_id={kept}&latest_attempt=true&status=completed&limit=10&since=2020-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.body);
    assert!(filtered.body.contains(&linked));
    assert!(
        !filtered
            .body
            .contains(&format!("deleted <code>{gone}</code>"))
    );
    assert!(filtered.body.contains(r#"value="2020-01-01T00:00:00""#));
    assert!(
        filtered
            .body
            .contains(r#"name="latest_attempt" value="true" checked"#)
    );
    for (query, says) in [
        ("automation=aut_x", "Did you mean `automation_id`?"),
        ("latest=on", "Did you mean `latest_attempt`?"),
        ("colour=red", "This page has no filter `colour`"),
        ("latest_attempt=on", "invalid `latest_attempt`: `on`"),
        ("limit=1000", "invalid `limit`"),
    ] {
        let bad = visitor
            .get(&format!("/console/apps/default/runs?{query}"))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            bad.body.contains(&html_escape(says)),
            "{query}: {}",
            bad.body
        );
        assert!(!bad.body.contains("unknown field"), "{query}: {}", bad.body);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automations_grant_and_retention_are_shown_and_edited_in_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let created = server
        .create(json!({
            "name": "Chat", "type": "trigger", "trigger": "thread.member_joined",
            "capabilities": {"http": {"allowed_hosts": ["hooks.example.com"]}, "secrets": ["CHAT_WEBHOOK_URL"]},
            "retention": {"days": 90},
        }))
        .await;
    let page = format!(
        "/console/apps/default/automations/{}",
        created["id"].as_str().unwrap()
    );
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(ADMIN_TOKEN).await;
    // What the workflow may reach is on its page...
    let shown = visitor.get(&page).await;
    for words in [
        "capabilities",
        "hooks.example.com",
        "CHAT_WEBHOOK_URL",
        "retention",
    ] {
        assert!(shown.body.contains(words), "{words}: {}", shown.body);
    }
    // ...and in the edit form's policies, named in its label, so a change to
    // it is a visible edit rather than a field the form keeps out of sight.
    let edit = visitor.get(&format!("{page}/edit")).await;
    assert!(
        edit.body
            .contains("retry, limits, capabilities, retention)"),
        "{}",
        edit.body
    );
    assert!(edit.body.contains("hooks.example.com"), "{}", edit.body);
    assert!(edit.body.contains("CHAT_WEBHOOK_URL"), "{}", edit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_that_is_not_a_plain_console_path_is_ignored_at_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    for next in ["/console/%7F", "/console/../..//evil.com"] {
        let mut visitor = Visitor::new(&server);
        let answer = visitor
            .post_form(
                "/console/sign-in",
                &[
                    ("key", ADMIN_TOKEN),
                    ("next", &next.replace("%7F", "\u{7f}")),
                ],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{next}: {}",
            answer.body
        );
        assert_eq!(answer.location(), "/console", "{next}");
    }
}
