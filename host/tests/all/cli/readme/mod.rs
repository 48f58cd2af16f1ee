//! The README is executable documentation: its `sh` blocks run, in order, in
//! one bash session (so variables carry from block to block) against a real
//! server, as a newcomer would paste them — from a directory laid out like
//! a checkout (`target/guests`, `target/debug` with the built binary).
//!
//! A block is skipped only when the line before its fence is a comment
//! `<!-- readme-test: skip (why) -->`. Blocks run under `set -e`; a command
//! that fails, or an HTTP error body (`{"error":…`) in the output, fails the
//! test. The key ([`Reader::token`]) is in `AUTOMATA_TOKEN`, where the README
//! takes it from (for curl and the CLI alike), and the server's data
//! directory in `AUTOMATA_DATA_DIR` (for `automata backup`).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The marker that skips the block after it.
const SKIP_MARKER: &str = "<!-- readme-test: skip";
/// The whole README must run within this.
const TIMEOUT: Duration = Duration::from_secs(180);

/// One fenced `sh` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The line of its opening fence (1-based).
    pub line: usize,
    pub code: String,
}

/// The `sh` blocks of `markdown`, in order, without the skipped ones.
pub fn shell_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    let mut previous = "";
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                previous = line;
            }
            continue;
        };
        let language = info.split_whitespace().next().unwrap_or_default();
        let mut code = String::new();
        for (_, body) in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            code.push_str(body);
            code.push('\n');
        }
        if language == "sh" && !previous.trim_start().starts_with(SKIP_MARKER) {
            blocks.push(Block {
                line: index + 1,
                code,
            });
        }
        previous = "";
    }
    blocks
}

/// Who runs the README, against which server.
pub struct Reader<'a> {
    /// The server's base URL (`AUTOMATA_URL`).
    pub url: &'a str,
    /// The API key (`AUTOMATA_TOKEN`), if the server wants one.
    pub token: Option<&'a str>,
    /// The `automata` binary under test.
    pub binary: &'a str,
    /// The server's data directory (`AUTOMATA_DATA_DIR`, for `backup`).
    pub data_dir: &'a Path,
}

/// What running the README printed.
#[derive(Debug)]
pub struct Transcript {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The workspace root (where README.md and scripts/ are).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Reader<'_> {
    /// Runs `setup` (shell, from the workspace root), then every README block.
    pub fn run(&self, setup: &str) -> Transcript {
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        let blocks = shell_blocks(&readme);
        assert!(blocks.len() >= 3, "the README's shell blocks: {blocks:#?}");
        let checkout = tempfile::tempdir().unwrap();
        let target = checkout.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(automata_e2e::guests_dir(), target.join("guests")).unwrap();
        let bin_dir = Path::new(self.binary).parent().unwrap();
        std::os::unix::fs::symlink(bin_dir, target.join("debug")).unwrap();
        // An empty home: no ~/.curlrc or CLI settings of the machine's.
        let home = tempfile::tempdir().unwrap();

        let mut script = format!(
            "set -e\ncd {root:?}\n{setup}\ncd {checkout:?}\n",
            root = root(),
            checkout = checkout.path()
        );
        for block in &blocks {
            script.push_str(&format!(
                "echo '### README.md line {}' >&2\n{}",
                block.line, block.code
            ));
        }
        script.push_str("echo '### README done' >&2\n");
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(&script)
            .env("AUTOMATA_URL", self.url)
            .env("AUTOMATA_DATA_DIR", self.data_dir)
            .env("HOME", home.path())
            .env_remove("AUTOMATA_APP")
            .env_remove("COLUMNS")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match self.token {
            Some(token) => command.env("AUTOMATA_TOKEN", token),
            None => command.env_remove("AUTOMATA_TOKEN"),
        };
        let mut child = command.spawn().expect("bash runs");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).map(|_| text)
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).map(|_| text)
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Transcript {
            success: status.is_some_and(|s| s.success()),
            stdout: out.join().unwrap().unwrap_or_default(),
            stderr: err.join().unwrap().unwrap_or_default(),
        }
    }
}

impl Transcript {
    /// Every block ran, nothing failed, and the newcomer got a completed run
    /// with its output.
    pub fn assert_clean(&self) {
        assert!(
            self.success && self.stderr.contains("### README done"),
            "the README did not run to its end:\n{self}"
        );
        assert!(
            !self.stdout.contains(r#"{"error":"#),
            "an HTTP error in the README's output:\n{self}"
        );
        assert!(
            self.stdout.contains(r#""status":"completed""#),
            "no completed run:\n{self}"
        );
        assert!(
            self.stdout.contains("Welcome to Design, Ada!"),
            "no run output:\n{self}"
        );
    }
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

#[test]
fn shell_blocks_are_found_in_order_and_skips_honoured() {
    let markdown = "Intro\n\n<!-- readme-test: skip (slow) -->\n```sh\nscripts/demo\n```\n\n\
                    ```sh\necho one\n```\ntext\n```console\n$ echo no\n```\n```sh title\necho two\necho three\n```\n";
    let blocks = shell_blocks(markdown);
    assert_eq!(
        blocks,
        [
            Block {
                line: 8,
                code: "echo one\n".into()
            },
            Block {
                line: 15,
                code: "echo two\necho three\n".into()
            },
        ]
    );
}
