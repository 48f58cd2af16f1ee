//! Helpers for the end-to-end tests in `tests/` and the host's integration
//! tests: the built guest components and `automata serve` as a process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where `scripts/build-guests` puts the components: `AUTOMATA_GUESTS_DIR`, or
/// `target/guests` at the workspace root.
pub fn guests_dir() -> PathBuf {
    std::env::var_os("AUTOMATA_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests"))
}

/// The path of the built guest component `name` (a crate under `examples/` or
/// `tests/guests/`).
///
/// # Panics
/// When the component has not been built, with a message saying how to build it.
pub fn guest_path(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{}", missing(&path));
    path
}

fn missing(path: &Path) -> String {
    format!(
        "{} is missing: build the guests first with scripts/build-guests \
         (scripts/test does it for you)",
        path.display()
    )
}

/// The bytes of the guest component `name` (a crate under `examples/` or
/// `tests/guests/`).
///
/// # Panics
/// When the component has not been built, with a message saying how to build it.
pub fn guest(name: &str) -> Vec<u8> {
    let path = guests_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} ({e})", missing(&path)))
}

/// The admin key every test server is started with (`AUTOMATA_ADMIN_TOKEN`
/// for [`spawn_serve`]; the in-process servers use it too).
pub const ADMIN_TOKEN: &str = "test-admin-token-not-secret-0123456789abcdef";

/// `automata serve` running as a child process on a free loopback port.
pub struct ServeProcess {
    /// The process: the caller stops it (SIGTERM, SIGKILL) and waits for it.
    pub child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
}

/// Starts `<binary> serve --listen 127.0.0.1:0 --data-dir <data_dir> <extra…>`
/// (pass `env!("CARGO_BIN_EXE_automata")`) with [`ADMIN_TOKEN`] as its admin
/// key, and waits for the line announcing its address. Its stdout keeps being read, so the server never blocks on a
/// full pipe; its logs (stderr) are discarded.
///
/// # Panics
/// When the server does not announce an address within 60 seconds.
pub fn spawn_serve(binary: &str, data_dir: &Path, extra: &[&str]) -> ServeProcess {
    spawn_serve_with_env(binary, data_dir, extra, &[])
}

/// [`spawn_serve`] with these environment variables set too (e.g. a test
/// hook's file).
///
/// # Panics
/// As [`spawn_serve`].
pub fn spawn_serve_with_env(
    binary: &str,
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> ServeProcess {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("AUTOMATA_ADMIN_TOKEN", ADMIN_TOKEN)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("automata serve starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (found, address) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = loopback_url(&line) {
                let _ = found.send(url);
            }
        }
    });
    let url = address
        .recv_timeout(Duration::from_secs(60))
        .expect("automata serve did not print its http://127.0.0.1:PORT address");
    ServeProcess { child, url }
}

/// The first `http://127.0.0.1:PORT` (or `https://…`) in `line`.
fn loopback_url(line: &str) -> Option<String> {
    const HOST: &str = "://127.0.0.1:";
    let at = line.find(HOST)?;
    let start = if line[..at].ends_with("https") {
        at - 5
    } else if line[..at].ends_with("http") {
        at - 4
    } else {
        return None;
    };
    let rest = &line[start..];
    let prefix = at - start + HOST.len();
    let digits = rest[prefix..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    (digits > 0).then(|| rest[..prefix + digits].to_owned())
}

#[cfg(test)]
mod tests {
    use super::loopback_url;

    #[test]
    fn finds_the_announced_address() {
        assert_eq!(
            loopback_url("automata listening on http://127.0.0.1:40087 (data in d)").as_deref(),
            Some("http://127.0.0.1:40087")
        );
        assert_eq!(loopback_url("listening on http://127.0.0.1:"), None);
        assert_eq!(
            loopback_url("automata listening on https://127.0.0.1:7443 (data in d)").as_deref(),
            Some("https://127.0.0.1:7443")
        );
        assert_eq!(loopback_url("no address"), None);
    }
}
