//! The web console: its sessions, CSRF tokens and access rules over plain
//! HTTP, and the whole flow in headless Chromium ([`browser`]).

mod browser;
mod chromium;
mod pages;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use super::{TestServer, id};
use automata_e2e::{ADMIN_TOKEN, guest};

/// A browser-like client without a browser: keeps the session cookie, does
/// not follow redirects, sends forms.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// A response's status, headers and body.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Visitor {
    fn new(server: &TestServer) -> Self {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.base.clone(),
            cookie: None,
        }
    }

    async fn answer(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.expect("answered");
        let (status, headers) = (response.status(), response.headers().clone());
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.answer(request).await
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        self.answer(request).await
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.post_form("/console/sign-in", &[("key", key)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page
    }
}

/// An app key with `role` in `default`, as (id, secret).
async fn key(server: &TestServer, role: &str) -> (String, String) {
    let (status, key) = server
        .post(
            "/apps/default/keys",
            json!({"name": format!("console {role}"), "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (id(&key), key["key_secret"].as_str().unwrap().to_owned())
}

/// A draft trigger automation running the welcome example, as its id.
async fn automation(server: &TestServer) -> String {
    let (status, config) = server
        .upload_raw(
            "/apps/default/configs",
            "application/wasm",
            guest("welcome-new-members"),
        )
        .await;
    assert!(status.is_success(), "{config}");
    let (status, automation) = server
        .post(
            "/apps/default/automations",
            json!({"name": "Greeter", "type": "trigger",
                   "trigger": "thread.member_joined", "config_id": id(&config)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{automation}");
    id(&automation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_a_signed_http_only_cookie_that_never_holds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut visitor = Visitor::new(&server);

    // `/` leads to the console, and the console to sign-in.
    let root = visitor.get("/").await;
    assert!(root.status.is_redirection());
    assert_eq!(root.location(), "/console");
    let home = visitor.get("/console").await;
    assert!(
        home.location().starts_with("/console/sign-in"),
        "{}",
        home.location()
    );
    let page = visitor
        .get("/console/apps/default/runs?status=failed")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location()
            .contains("next=%2Fconsole%2Fapps%2Fdefault%2Fruns%3Fstatus%3Dfailed"),
        "{}",
        page.location()
    );
    let form = visitor.get("/console/sign-in").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"type="password""#));

    // A wrong key is refused on the form; the right one starts a session.
    let wrong = visitor
        .post_form("/console/sign-in", &[("key", "ak_nope")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not valid"), "{}", wrong.body);
    assert!(visitor.cookie.is_none());
    let signed_in = visitor
        .post_form(
            "/console/sign-in",
            &[("key", ADMIN_TOKEN), ("next", "/console/apps/default/runs")],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.location(), "/console/apps/default/runs");
    let set = signed_in.headers[SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains(ADMIN_TOKEN), "the key is not in the cookie");
    assert!(!set.contains("Secure"), "plain HTTP here");

    // Signed in: pages answer, with the security headers.
    let runs = visitor.get("/console/apps/default/runs").await;
    assert_eq!(runs.status, StatusCode::OK, "{}", runs.body);
    let csp = runs.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(runs.headers["x-frame-options"], "DENY");
    assert_eq!(runs.headers["x-content-type-options"], "nosniff");
    assert_eq!(runs.headers["cache-control"], "no-store");
    assert!(
        runs.body
            .contains(r#"<script src="/console/assets/console.js" defer>"#)
    );
    assert!(!runs.body.contains("<script>"), "no inline script");

    // A tampered cookie is no session.
    let good = visitor.cookie.clone().unwrap();
    let flipped = if good.ends_with('0') { '1' } else { '0' };
    visitor.cookie = Some(format!("{}{flipped}", &good[..good.len() - 1]));
    let refused = visitor.get("/console/apps/default").await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    visitor.cookie = Some(good.clone());

    // Signing out needs the session's CSRF token, then ends the session.
    let csrf = visitor.get("/console/apps/default").await.csrf();
    let forged = visitor
        .post_form("/console/sign-out", &[("csrf", "0000")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let out = visitor
        .post_form("/console/sign-out", &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    visitor.cookie = Some(good);
    let after = visitor.get("/console/apps/default").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "the old cookie is dead"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_ends_its_sessions_and_events_keys_cannot_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (key_id, secret) = key(&server, "write").await;
    let mut visitor = Visitor::new(&server);
    let landed = visitor.sign_in(&secret).await;
    assert_eq!(landed.location(), "/console/apps/default");
    assert_eq!(
        visitor.get("/console/apps/default").await.status,
        StatusCode::OK
    );
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/apps/default/keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = visitor.get("/console/apps/default").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(
        after.location().ends_with("&reason=key"),
        "{}",
        after.location()
    );

    let (_, events_key) = key(&server, "events").await;
    let refused = Visitor::new(&server)
        .post_form("/console/sign-in", &[("key", &events_key)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("may only send events"),
        "{}",
        refused.body
    );

    // Another app's key cannot see this app's pages.
    let (status, _) = server.post("/apps", json!({"id": "other"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, other) = server
        .post("/apps/other/keys", json!({"name": "o", "role": "write"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut outsider = Visitor::new(&server);
    outsider
        .sign_in(other["key_secret"].as_str().unwrap())
        .await;
    let page = outsider.get("/console/apps/default/automations").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("cannot act on app `default`"),
        "{}",
        page.body
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_csrf_token_and_a_role_that_may_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let automation = automation(&server).await;
    let activate = format!("/console/apps/default/automations/{automation}/activate");

    // A write key: no token, a wrong token or another session's token is refused.
    let (_, writer) = key(&server, "write").await;
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(&writer).await;
    let mut other = Visitor::new(&server);
    other.sign_in(&writer).await;
    let other_csrf = other.get("/console/apps/default").await.csrf();
    for fields in [
        vec![],
        vec![("csrf", "x")],
        vec![("csrf", other_csrf.as_str())],
    ] {
        let page = visitor.post_form(&activate, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("CSRF"), "{}", page.body);
    }
    let (_, stored) = server
        .get(&format!("/apps/default/automations/{automation}"))
        .await;
    assert_eq!(stored["status"], "draft");
    // With it, the change is made and recorded as the key's.
    let detail = visitor
        .get(&format!("/console/apps/default/automations/{automation}"))
        .await;
    assert!(detail.body.contains("Activate"), "{}", detail.body);
    let done = visitor
        .post_form(&activate, &[("csrf", &detail.csrf())])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let page = format!("/console/apps/default/automations/{automation}");
    assert_eq!(done.location(), page);
    let done = visitor.get(&page).await;
    assert!(
        done.body.contains("Greeter is now running."),
        "{}",
        done.body
    );
    // A refused transition shows the API's 409 and its message.
    let again = visitor
        .post_form(&activate, &[("csrf", &detail.csrf())])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    let again = visitor.get(again.location()).await;
    assert!(
        again.body.contains(r#"data-status="409""#),
        "{}",
        again.body
    );
    let (status, api) = server
        .post(
            &format!("/apps/default/automations/{automation}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = api["error"]["message"].as_str().unwrap();
    assert!(
        again.body.contains(&html_escape(message)),
        "{message} not in {}",
        again.body
    );

    // A read key sees no buttons, and a forged change is refused by the
    // access decision even with its own valid token.
    let (_, reader) = key(&server, "read").await;
    let mut reading = Visitor::new(&server);
    reading.sign_in(&reader).await;
    let page = reading
        .get(&format!("/console/apps/default/automations/{automation}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    for button in ["Pause", "Delete", "Edit", "Run now"] {
        assert!(
            !page.body.contains(&format!(">{button}<")),
            "{button} shown to a read key"
        );
    }
    let csrf = page.csrf();
    for path in [
        format!("/console/apps/default/automations/{automation}/pause"),
        format!("/console/apps/default/automations/{automation}"),
        "/console/apps/default/automations".to_owned(),
        "/console/apps/default/events".to_owned(),
    ] {
        let forged = reading.post_form(&path, &[("csrf", &csrf)]).await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            forged.body
        );
        assert!(forged.body.contains("needs role `"), "{}", forged.body);
    }
    for path in [
        "/console/apps/default/automations/new",
        "/console/apps/default/automations",
    ] {
        let page = reading.get(path).await;
        assert!(!page.body.contains("New automation</a>"), "{path}");
    }
    let (_, stored) = server
        .get(&format!("/apps/default/automations/{automation}"))
        .await;
    assert_eq!(stored["status"], "running");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_is_unchanged_and_forms_reach_only_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // A form body to the JSON API is still a 415.
    let response = reqwest::Client::new()
        .post(format!("{}/apps/default/automations", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The API keeps answering JSON, and a cookie does not authenticate it.
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(ADMIN_TOKEN).await;
    let api = visitor.get("/apps/default/automations").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(
        api.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // A form from another origin is refused at the edge.
    let cross = reqwest::Client::new()
        .post(format!("{}/console/sign-in", server.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // Unknown console pages and filters are pages, not JSON; no route is
    // without its decision (that would be a 500).
    let automation = automation(&server).await;
    for path in [
        "/console/apps/default".to_owned(),
        "/console/apps/default/automations?type=trigger&status=draft".to_owned(),
        "/console/apps/default/automations/new".to_owned(),
        format!("/console/apps/default/automations/{automation}"),
        format!("/console/apps/default/automations/{automation}/edit"),
        "/console/apps/default/runs".to_owned(),
        "/console/apps/default/configs".to_owned(),
        "/console/apps/default/events".to_owned(),
        "/console/assets/console.css".to_owned(),
        "/console/assets/console.js".to_owned(),
    ] {
        let page = visitor.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    let bad = visitor.get("/console/apps/default/runs?colour=red").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("colour"), "{}", bad.body);
    let bad = visitor
        .get("/console/apps/default/runs?since=yesterday")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = visitor
        .get("/console/apps/default/runs/atr_01jdqm3k5v8x2n7w4c9b6e1f0a")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let no_app = visitor.get("/console/apps/nowhere/runs").await;
    assert_eq!(no_app.status, StatusCode::NOT_FOUND, "{}", no_app.body);
    server.stop().await;
}

/// Text as maud writes it inside an element.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
