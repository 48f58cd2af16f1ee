//! The domain core: the model, lifecycle rules, cron math and validation.
//!
//! Nothing in here does IO (no sockets, files, clocks or threads): callers pass
//! the current time in, so every rule is unit-tested in isolation.

pub mod access;
pub mod app;
pub mod automation;
pub mod capabilities;
pub mod catchup;
pub mod config;
pub(crate) mod cron_compat;
mod cron_describe;
pub mod digest;
pub mod dispatch;
pub mod event;
pub mod events;
pub mod host_call;
pub mod ids;
pub mod json;
pub mod limits;
pub mod outcome;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod secret;
pub mod text;
pub mod workflow;
