//! Headless Chromium for the console's browser test: Debian's
//! `chromedriver` started on a free loopback port, one session driven with
//! `fantoccini` (plain HTTP to the driver: no TLS stack), and the few waits
//! the test reads better with. The driver process is stopped by its PID,
//! and the session ended, when the [`Browser`] is dropped.

use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Debian's packages (`chromium`, `chromium-driver`); `scripts/test` installs them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait waits.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// A chromedriver process and one browser session in it; derefs to the
/// session's [`Client`].
pub struct Browser {
    client: Client,
    driver: Child,
    /// The driver's URL and the session's id, to end it on drop.
    session: Option<(String, String)>,
    _profile: tempfile::TempDir,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and headless Chromium
    /// with a fresh profile, its window `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (scripts/test does: apt-get install chromium chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        // The driver takes a moment to listen: connect until it answers.
        let deadline = Instant::now() + WAIT;
        let client = loop {
            let connected = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&base)
                .await;
            match connected {
                Ok(client) => break client,
                Err(error) => {
                    if Instant::now() >= deadline {
                        let _ = driver.kill();
                        let _ = driver.wait();
                        panic!("no Chromium session from chromedriver on {base}: {error}");
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        };
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .map(|id| (base, id));
        let browser = Browser {
            client,
            driver,
            session,
            _profile: profile,
        };
        browser.resize(width, height).await;
        browser
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.set_window_size(width, height)
            .await
            .expect("the window resizes");
    }

    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.goto(url).await.expect("the page opens");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.find_all(Locator::Css(css))
            .await
            .map_or(0, |found| found.len())
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.find(Locator::Css(css)).await {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` on {}:\n{}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click_on(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Types `text` into an element (a file path, for a file input).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.element(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Empties a text field.
    pub async fn clear(&self, css: &str) {
        self.element(css)
            .await
            .clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear `{css}`: {e}"));
    }

    /// The visible text of the first element matching `css`; empty when
    /// there is none, or when the page it was on has gone (a reload between
    /// finding and reading it: the run page reloads itself when its run
    /// ends), so waits look again.
    pub async fn text(&self, css: &str) -> String {
        match self.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// A property of the first element matching `css` (`disabled`, …).
    pub async fn property(&self, css: &str, name: &str) -> Option<String> {
        self.element(css)
            .await
            .prop(name)
            .await
            .unwrap_or_else(|e| panic!("cannot read `{name}` of `{css}`: {e}"))
    }

    /// Waits until `check` holds for the text of `css` (reloading nothing:
    /// the page updates itself), returning the text.
    pub async fn wait_for_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never read as expected on {}; it reads {text:?}",
                self.url().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the URL satisfies `check`, returning it.
    pub async fn wait_for_url(&self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if check(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the page stayed at {url}:\n{}",
                self.text("body").await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Accepts the open `confirm()` dialog (waiting for it to open).
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + WAIT;
        while self.accept_alert().await.is_err() {
            assert!(Instant::now() < deadline, "no dialog opened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs an async script (its last argument is the callback) and returns
    /// what it passes to the callback.
    pub async fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("the script failed: {e}"))
    }

    /// Saves a PNG of the viewport as `<dir>/<name>.png`.
    pub async fn screenshot_to(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (closing the browser) and stops the driver.
    pub async fn close(mut self) {
        if self.client.clone().close().await.is_ok() {
            self.session = None;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A session still open (a test that panicked) is ended over plain
        // HTTP from a thread of its own — the test's runtime may be gone —
        // so the driver stops the browser; then the driver process we
        // started is stopped, by its PID.
        if let Some((base, id)) = self.session.take() {
            let url = format!("{base}/session/{id}");
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    reqwest::Client::new()
                        .delete(url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                        .ok()
                })
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
