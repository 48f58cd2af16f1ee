//! Automata: a self-hosted automation host that runs WebAssembly workflow
//! components on cron ticks and platform events.
//!
//! # Layout
//!
//! - [`api`]: the HTTP API (axum) and its OpenAPI document.
//! - [`cli`]: the `automata` command line, one file per command.
//! - [`doctor`]: `automata doctor`'s checks of a store opened offline.
//! - [`domain`]: the domain model and rules; no IO.
//! - [`edge`]: the HTTP edge: connections, TLS, timeouts, limits, Host and
//!   Origin checks.
//! - [`runner`]: compiles and runs workflow components in a sandbox; no HTTP,
//!   no storage.
//! - [`server`]: wires store, service and API together; `automata serve`.
//! - [`service`]: validation and lifecycle rules over the store; what the
//!   API and the execution plane call.
//! - [`store`]: persistence behind the [`store::Store`] trait (sled).

pub mod api;
pub mod cli;
pub mod doctor;
pub mod domain;
pub mod edge;
pub mod execution;
pub mod runner;
pub mod server;
pub mod service;
pub mod store;
