//! The host's integration tests, one binary with a module per feature (as
//! wasmtime's `tests/all` does): each test binary links wasmtime again, which is
//! slow on a small machine. Run one feature with
//! `cargo test -p automata --test all api::` (or any test name's part).

mod api;
mod cli;
mod common;
mod execution;
mod run_local;
mod serve;
