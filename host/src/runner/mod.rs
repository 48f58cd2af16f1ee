//! Runs workflow components. Knows nothing of HTTP or storage: it takes
//! component bytes and a run's input, and gives back a result and its output.
//!
//! One [`wasmtime::Engine`] and [`Linker`] serve every run; a component is
//! compiled once into a [`Workflow`] (ready to instantiate), and every run gets
//! a fresh [`Store`], dropped when the run ends.

mod bindings;
pub mod output;

use std::fmt;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::domain::workflow::{RunContext, StepNode, TriggerInput, WorkflowGraph};
use bindings::{Level, WorkflowPre, types};
pub use output::{CapturedOutput, OutputLimits, Transcript};

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component at all.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component, but not of the `automata:workflow/workflow` world.
    #[error("the component does not implement the automata:workflow/workflow world: {0}")]
    WrongWorld(String),
    /// Its `graph` export failed.
    #[error("the component's `graph` export failed: {0}")]
    Graph(String),
}

/// Why the runner could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly engine: {0}")]
pub struct SetupError(String);

/// The sha256 digest of a component's bytes: its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentDigest([u8; 32]);

impl ComponentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ComponentDigest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A compiled, validated component, ready to instantiate for a run.
#[derive(Clone)]
pub struct Workflow {
    digest: ComponentDigest,
    graph: WorkflowGraph,
    pre: WorkflowPre<RunState>,
}

impl Workflow {
    /// The digest of the component's bytes.
    pub fn digest(&self) -> ComponentDigest {
        self.digest
    }

    /// The graph the component declared when it was loaded.
    pub fn graph(&self) -> &WorkflowGraph {
        &self.graph
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("digest", &self.digest)
            .field("graph", &self.graph)
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The workflow returned this JSON payload.
    Completed(Value),
    /// The workflow returned an error, trapped, or could not be run.
    Failed(String),
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// How it ended.
    pub outcome: Outcome,
    /// What it printed and logged.
    pub output: CapturedOutput,
}

/// The state of one run's [`Store`].
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    transcript: Transcript,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::automata::workflow::log::Host for RunState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.transcript.record(format!("[{level}] {message}"));
    }
}

impl bindings::automata::workflow::types::Host for RunState {}

/// Compiles and runs workflow components.
pub struct Runner {
    engine: Engine,
    linker: Linker<RunState>,
    output_limits: OutputLimits,
}

impl Runner {
    /// A runner with its own engine.
    pub fn new() -> Result<Self, SetupError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| SetupError(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| {
                bindings::Workflow::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            })
            .map_err(|e| SetupError(format!("{e:#}")))?;
        Ok(Runner {
            engine,
            linker,
            output_limits: OutputLimits::default(),
        })
    }

    /// Compiles `bytes`, checks that they implement the workflow world and reads
    /// the component's graph.
    pub async fn load(&self, bytes: &[u8]) -> Result<Workflow, LoadError> {
        let digest = ComponentDigest::of(bytes);
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(root_cause(&e)))?;
        check_exports(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(root_cause(&e)))?;
        let pre =
            WorkflowPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(root_cause(&e)))?;

        let mut store = self.store();
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Graph(root_cause(&e)))?;
        let graph = instance
            .call_graph(&mut store)
            .await
            .map_err(|e| LoadError::Graph(root_cause(&e)))?;
        Ok(Workflow {
            digest,
            graph: WorkflowGraph {
                name: graph.name,
                triggers: graph.triggers,
                steps: graph
                    .steps
                    .into_iter()
                    .map(|s| StepNode {
                        name: s.name,
                        description: s.description,
                    })
                    .collect(),
            },
            pre,
        })
    }

    /// Runs `workflow` once on `input` in a fresh store.
    pub async fn run(
        &self,
        workflow: &Workflow,
        ctx: &RunContext,
        input: &TriggerInput,
    ) -> RunReport {
        let mut store = self.store();
        let outcome = call_run(&mut store, workflow, ctx, input).await;
        RunReport {
            outcome,
            output: store.data().transcript.finish(),
        }
    }

    fn store(&self) -> Store<RunState> {
        let transcript = Transcript::new(self.output_limits);
        // No preopened directories, network, environment or arguments: a
        // workflow sees only clocks, randomness and its captured stdio.
        let wasi = WasiCtx::builder()
            .stdout(transcript.stdout())
            .stderr(transcript.stderr())
            .build();
        Store::new(
            &self.engine,
            RunState {
                wasi,
                table: ResourceTable::new(),
                transcript,
            },
        )
    }
}

async fn call_run(
    store: &mut Store<RunState>,
    workflow: &Workflow,
    ctx: &RunContext,
    input: &TriggerInput,
) -> Outcome {
    let instance = match workflow.pre.instantiate_async(&mut *store).await {
        Ok(instance) => instance,
        Err(e) => return Outcome::Failed(format!("could not instantiate: {}", root_cause(&e))),
    };
    let ctx = types::RunContext {
        app_id: ctx.app_id.clone(),
        automation_id: ctx.automation_id.clone(),
        run_id: ctx.run_id.clone(),
        run_as_user_id: ctx.run_as_user_id.clone(),
        scheduled_at: ctx.scheduled_at.clone(),
        attempt: ctx.attempt,
    };
    let input = types::TriggerInput {
        trigger: input.trigger.clone(),
        payload: input.payload.to_string(),
    };
    match instance.call_run(&mut *store, &ctx, &input).await {
        Ok(Ok(payload)) => match serde_json::from_str(&payload) {
            Ok(payload) => Outcome::Completed(payload),
            Err(e) => Outcome::Failed(format!(
                "the workflow returned a payload that is not JSON: {e}"
            )),
        },
        Ok(Err(message)) => Outcome::Failed(message),
        Err(e) => Outcome::Failed(root_cause(&e)),
    }
}

/// The names the workflow world exports; checked up front so a refusal names
/// what is missing rather than the first thing that failed to link.
const REQUIRED_EXPORTS: [&str; 2] = ["graph", "run"];

fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exported: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let missing: Vec<&str> = REQUIRED_EXPORTS
        .into_iter()
        .filter(|name| !exported.iter().any(|e| e == name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let exported = if exported.is_empty() {
        "nothing".to_owned()
    } else {
        exported.join(", ")
    };
    Err(LoadError::WrongWorld(format!(
        "missing export{} {} (it exports {exported})",
        if missing.len() > 1 { "s" } else { "" },
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(" and "),
    )))
}

/// A wasmtime error's chain in one line, outermost first.
fn root_cause(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}
