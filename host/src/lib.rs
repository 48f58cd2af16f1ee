//! Automata: a self-hosted automation host that runs WebAssembly workflow
//! components on cron ticks and platform events.
//!
//! # Layout
//!
//! - [`admin_socket`]: the admin socket a server hands backups out on.
//! - [`api`]: the HTTP API (axum) and its OpenAPI document.
//! - [`backup`]: the backup file format.
//! - [`cli`]: the `automata` command line, one file per command.
//! - [`doctor`]: `automata doctor`'s checks of a store opened offline.
//! - [`domain`]: the domain model and rules; no IO.
//! - [`edge`]: the HTTP edge: connections, TLS, timeouts, limits, Host and
//!   Origin checks.
//! - [`metrics`]: the Prometheus metrics a server records and serves.
//! - [`retention`]: removes old runs and unused components in the
//!   background.
//! - [`runner`]: compiles and runs workflow components in a sandbox; no HTTP,
//!   no storage.
//! - [`server`]: wires store, service and API together; `automata serve`.
//! - [`service`]: validation and lifecycle rules over the store; what the
//!   API and the execution plane call.
//! - [`store`]: persistence behind the [`store::Store`] trait (sled).

pub mod admin_socket;
pub mod api;
pub mod backup;
pub mod cli;
pub mod console;
pub mod doctor;
pub mod domain;
pub mod edge;
pub mod execution;
pub mod metrics;
pub mod retention;
pub mod runner;
pub mod server;
pub mod service;
pub mod store;
