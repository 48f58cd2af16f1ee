//! Helpers for the end-to-end tests in `tests/`.

use std::path::PathBuf;

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

fn missing(path: &std::path::Path) -> String {
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
