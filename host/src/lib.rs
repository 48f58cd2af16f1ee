//! Automata: a self-hosted automation host that runs WebAssembly workflow
//! components on cron ticks and platform events.
//!
//! # Layout
//!
//! - [`cli`]: the `automata` command line, one file per command.
//! - [`domain`]: the domain model and rules; no IO.
//! - [`runner`]: compiles and runs workflow components in a sandbox; no HTTP,
//!   no storage.

pub mod cli;
pub mod domain;
pub mod runner;
