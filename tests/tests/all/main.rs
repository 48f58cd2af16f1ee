//! The end-to-end tests, one binary with a module per feature (as wasmtime's
//! `tests/all` does): each test binary links wasmtime again, which is slow on a
//! small machine. Run one feature with `cargo test -p automata-e2e --test all sandbox::`.

mod examples;
mod sandbox;
