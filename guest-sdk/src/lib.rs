//! Write an [Automata](https://example.invalid) workflow as a plain Rust function.
//!
//! A workflow is a WebAssembly component that the Automata host runs when a
//! platform event fires or a cron schedule ticks. This crate hides the component
//! plumbing: you write one function that takes the run's [`Context`] and the
//! trigger [`Input`] and returns a JSON payload (or an error message), and declare
//! it with [`workflow!`], naming the events it handles.
//!
//! ```no_run
//! use automata_guest::{json, workflow, Context, Input, Value};
//!
//! workflow! {
//!     name: "Welcome New Members",
//!     triggers: ["thread.member_joined"],
//!     steps: [("greet", "Print a welcome line for the member")],
//!     run: welcome,
//! }
//!
//! fn welcome(_ctx: &Context, input: Input) -> Result<Value, String> {
//!     let member = input.payload["member"]["name"].as_str().unwrap_or("there");
//!     println!("Welcome, {member}!");
//!     Ok(json!({ "greeted": member }))
//! }
//! ```
//!
//! * Everything the workflow prints with `println!` becomes a line of the run's
//!   `result.output`; [`log`] records leveled lines there too.
//! * `Ok(value)` becomes `result.payload`; `Err(e)` fails the run with
//!   `result.error` set to `e.to_string()`. Both are capped by the run's
//!   limits (`payload_bytes`, `error_bytes`: 1 MiB by default), and the payload
//!   may nest at most 64 levels of arrays and objects; past either the run
//!   fails with `failure_kind: invalid_payload`.
//! * Numbers keep their exact text both ways (the re-exported [`serde_json`]
//!   has `arbitrary_precision`): a 40-digit id in the payload is not rounded.
//! * A panic fails the run with the panic message.
//! * [`secrets::get`] reads an app secret the automation is granted; the host
//!   masks its value (`***`) in everything the run prints or returns.
//! * [`http`] sends requests to the hosts the automation grants
//!   (`capabilities.http.allowed_hosts`); each one is recorded on the run.
//!
//! Build for `wasm32-wasip2` (`cargo build --release --target wasm32-wasip2`) with
//! `crate-type = ["cdylib"]` and upload the resulting `.wasm` to the host. The
//! function is ordinary Rust, so it can be unit-tested natively too: there
//! [`log`] writes to stderr.
#![deny(missing_docs)]

use std::fmt::Display;

pub use serde_json::{self, Value, json};

pub mod http;

// Lets the generated bindings name this crate by its public path, which is how
// the `export!` macro they generate must reach it from the author's crate.
extern crate self as automata_guest;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "workflow",
        pub_export_macro: true,
        export_macro_name: "export_workflow",
        default_bindings_module: "automata_guest::bindings",
        runtime_path: "automata_guest::__private::wit_bindgen::rt",
    });
}

/// Who and what a run is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The app the automation belongs to.
    pub app_id: String,
    /// The automation being run (`aut_…`).
    pub automation_id: String,
    /// This run (`atr_…`).
    pub run_id: String,
    /// The user the automation executes as, if it names one.
    pub run_as_user_id: Option<String>,
    /// For scheduled runs: the cron occurrence being run, RFC 3339 in UTC.
    pub scheduled_at: Option<String>,
    /// 1 for a first run; 2, 3, … for retries.
    pub attempt: u32,
}

/// The trigger input: the spec's `{"trigger", "payload"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The event name (`thread.member_joined`, …), or `workflow.scheduled`.
    pub trigger: String,
    /// The event payload.
    pub payload: Value,
}

/// Leveled log lines, recorded in the run's output next to printed lines.
pub mod log {
    use crate::bindings::automata::workflow::log::Level;

    fn write(level: Level, message: &str) {
        #[cfg(target_family = "wasm")]
        crate::bindings::automata::workflow::log::log(level, message);
        #[cfg(not(target_family = "wasm"))]
        eprintln!("[{level:?}] {message}");
    }

    /// Record a trace-level line.
    pub fn trace(message: impl AsRef<str>) {
        write(Level::Trace, message.as_ref());
    }
    /// Record a debug-level line.
    pub fn debug(message: impl AsRef<str>) {
        write(Level::Debug, message.as_ref());
    }
    /// Record an info-level line.
    pub fn info(message: impl AsRef<str>) {
        write(Level::Info, message.as_ref());
    }
    /// Record a warning.
    pub fn warn(message: impl AsRef<str>) {
        write(Level::Warn, message.as_ref());
    }
    /// Record an error-level line (it does not fail the run; return `Err` for that).
    pub fn error(message: impl AsRef<str>) {
        write(Level::Error, message.as_ref());
    }
}

/// App secrets the automation is granted: API tokens, webhook URLs, keys.
///
/// An operator sets a secret in the app (`automata set secret NAME`, value
/// from stdin) and grants it to an automation (`capabilities.secrets`, or
/// `--secret NAME` on `automata create automation`). The workflow reads it
/// here; whatever it then prints or returns has the value masked (`***`) by
/// the host, so a secret does not end up in run output by accident.
///
/// ```no_run
/// # use automata_guest::{secrets, Context, Input, Value, json};
/// fn alert(_ctx: &Context, _input: Input) -> Result<Value, String> {
///     let Some(webhook) = secrets::get("ALERT_WEBHOOK_URL") else {
///         return Ok(json!({"delivered": false, "why": "ALERT_WEBHOOK_URL is not granted"}));
///     };
///     // … post to `webhook` …
/// #   let _ = webhook;
///     Ok(json!({"delivered": true}))
/// }
/// ```
pub mod secrets {
    /// The value of the app secret `name`, or `None` when the automation is
    /// not granted it or it is not set (the run's host calls say which).
    ///
    /// Built natively (unit tests), it reads the environment variable
    /// `name` instead.
    pub fn get(name: &str) -> Option<String> {
        #[cfg(target_family = "wasm")]
        return crate::bindings::automata::workflow::secrets::get(name);
        #[cfg(not(target_family = "wasm"))]
        return std::env::var(name).ok();
    }
}

/// Declares the workflow this crate builds: its name, the events it handles, its
/// steps (for display) and the function that runs it.
///
/// The function has the shape
/// `fn(&Context, Input) -> Result<Value, E>` for any `E: Display`.
/// Use `"workflow.scheduled"` as the trigger of a workflow run on a schedule.
///
/// ```no_run
/// # use automata_guest::{json, workflow, Context, Input, Value};
/// workflow! {
///     name: "Nightly Report",
///     triggers: ["workflow.scheduled"],
///     run: report,
/// }
///
/// fn report(ctx: &Context, _input: Input) -> Result<Value, std::fmt::Error> {
///     Ok(json!({ "at": ctx.scheduled_at }))
/// }
/// ```
#[macro_export]
macro_rules! workflow {
    (
        name: $name:expr,
        triggers: [$($trigger:expr),+ $(,)?],
        $(steps: [$(($step:expr, $description:expr)),* $(,)?],)?
        run: $run:path $(,)?
    ) => {
        #[doc(hidden)]
        struct __AutomataWorkflow;

        impl $crate::bindings::Guest for __AutomataWorkflow {
            fn graph() -> $crate::bindings::automata::workflow::types::WorkflowGraph {
                $crate::__private::graph(
                    $name,
                    &[$($trigger),+],
                    &[$($(($step, $description)),*)?],
                )
            }

            fn run(
                ctx: $crate::bindings::automata::workflow::types::RunContext,
                input: $crate::bindings::automata::workflow::types::TriggerInput,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::__private::run(ctx, input, $run)
            }
        }

        $crate::bindings::export_workflow!(__AutomataWorkflow with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::bindings::automata::workflow::types::{
        RunContext, StepNode, TriggerInput, WorkflowGraph,
    };

    pub use wit_bindgen;

    pub fn graph(name: &str, triggers: &[&str], steps: &[(&str, &str)]) -> WorkflowGraph {
        WorkflowGraph {
            name: name.to_owned(),
            triggers: triggers.iter().map(|t| (*t).to_owned()).collect(),
            steps: steps
                .iter()
                .map(|(name, description)| StepNode {
                    name: (*name).to_owned(),
                    description: (*description).to_owned(),
                })
                .collect(),
        }
    }

    pub fn run<E: Display>(
        ctx: RunContext,
        input: TriggerInput,
        workflow: impl FnOnce(&Context, Input) -> Result<Value, E>,
    ) -> Result<String, String> {
        let payload = serde_json::from_str(&input.payload)
            .map_err(|e| format!("the trigger payload is not valid JSON: {e}"))?;
        let ctx = Context {
            app_id: ctx.app_id,
            automation_id: ctx.automation_id,
            run_id: ctx.run_id,
            run_as_user_id: ctx.run_as_user_id,
            scheduled_at: ctx.scheduled_at,
            attempt: ctx.attempt,
        };
        let input = Input {
            trigger: input.trigger,
            payload,
        };
        let value = workflow(&ctx, input).map_err(|e| e.to_string())?;
        Ok(value.to_string())
    }
}
