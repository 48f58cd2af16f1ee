//! Runs workflow components in a sandbox. Knows nothing of HTTP or storage: it
//! takes component bytes and a run's input, and gives back how the run ended,
//! what it printed and what it consumed.
//!
//! One [`wasmtime::Engine`] and [`Linker`] serve every run; a component is
//! compiled once (or loaded from the compile cache) into a [`Workflow`], ready
//! to instantiate, and every run gets a fresh [`wasmtime::Store`], dropped when
//! the run ends. Each run is bounded by [`RunLimits`] (fuel, memory,
//! wall-clock time, output), can be cancelled through a [`CancelToken`], and
//! waits for one of `max_concurrent_runs` slots. The host never panics because
//! of a guest: every ending is an [`Outcome`].
//!
//! Runs need a tokio runtime (with its timer); loads compile on tokio's
//! blocking pool.

mod bindings;
mod cache;
mod cancel;
mod egress;
mod engine;
pub mod host_calls;
mod loaded;
pub mod output;
mod sandbox;
mod secrets;

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::domain::capabilities::Capabilities;
use crate::domain::digest::ComponentDigest;
use crate::domain::limits::{LimitOverrides, LimitsError, RunLimits};
use crate::domain::outcome::{
    CANCELLED_MESSAGE, CapturedOutput, FailureKind, Outcome, RunAccounting, RunReport,
};
use crate::domain::workflow::{RunContext, StepNode, TriggerInput, WorkflowGraph};
use bindings::{WorkflowPre, types};
use cache::CompileCache;
use engine::EpochTicker;
use loaded::Loaded;
use sandbox::{Reach, RunState};

pub use cancel::CancelToken;
pub use egress::EgressGrant;
pub use engine::{Allocator, BoundsChecks, DEFAULT_LOADED_CODE_BYTES, RunnerConfig};
pub use output::{LiveLines, LiveOutput, Transcript};
pub use secrets::{MASK, Masker, Refusal, RunSecrets};

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component at all.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component, but not of the `automata:workflow/workflow` world.
    #[error("the component does not implement the automata:workflow/workflow world: {0}")]
    WrongWorld(String),
    /// It imports something the sandbox does not provide (a filesystem
    /// preopen, another world's interface, …).
    #[error(
        "the component imports what the host does not provide ({0}); workflows may import \
         only WASI 0.2 (clocks, random, stdio, wasi:http's outgoing-handler under the \
         automation's grant, and the filesystem and sockets, which are empty and denied), \
         automata:workflow/log and automata:workflow/secrets"
    )]
    UnsupportedImport(String),
    /// Its `graph` export failed, did not finish within its small budget, or
    /// declared a graph past [`MAX_GRAPH_BYTES`](crate::domain::json::MAX_GRAPH_BYTES).
    #[error("the component's `graph` export failed: {0}")]
    Graph(String),
}

/// Why the runner could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly engine: {0}")]
pub struct SetupError(String);

/// A compiled, validated component, ready to instantiate for a run. Cheap to
/// clone.
#[derive(Clone)]
pub struct Workflow {
    digest: ComponentDigest,
    graph: WorkflowGraph,
    from_cache: bool,
    imports_http: bool,
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

    /// Whether the component imports `wasi:http` (makes outbound HTTP
    /// requests, which its automation must grant).
    pub fn imports_http(&self) -> bool {
        self.imports_http
    }

    /// Whether the compiled code came from the compile cache rather than a
    /// fresh compilation.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Bytes of compiled code this workflow keeps mapped.
    pub fn code_size(&self) -> u64 {
        let range = self.pre.instance_pre().component().image_range();
        (range.end as usize).saturating_sub(range.start as usize) as u64
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("digest", &self.digest)
            .field("graph", &self.graph)
            .field("from_cache", &self.from_cache)
            .field("imports_http", &self.imports_http)
            .finish_non_exhaustive()
    }
}

/// Per-run options: limit overrides, the grant and a cancel token.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The automation's overrides of the host's default limits.
    pub limits: LimitOverrides,
    /// What the automation grants: the hosts its HTTP requests may reach
    /// (none by default).
    pub capabilities: Capabilities,
    /// Cancels the run when cancelled (from any task or thread).
    pub cancel: Option<CancelToken>,
    /// Receives each output line as it is captured, for followers.
    pub live: Option<LiveOutput>,
    /// The secrets the run is granted (`secrets.get`); their values are
    /// masked in its output, payload and error.
    pub secrets: RunSecrets,
}

/// Compiles and runs workflow components. Share one per host (e.g. in an
/// `Arc`); every method takes `&self`.
pub struct Runner {
    engine: Engine,
    linker: Linker<RunState>,
    config: RunnerConfig,
    allocator: engine::Allocator,
    cache: Option<CompileCache>,
    /// Workflows loaded lately, by digest.
    loaded: Mutex<Loaded<Workflow>>,
    slots: Semaphore,
    /// Graph reads have their own slot, so an upload never waits behind long
    /// runs.
    graph_slot: Semaphore,
    _ticker: EpochTicker,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .field("allocator", &self.allocator)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner with its own engine, configured by `config`.
    pub fn new(config: RunnerConfig) -> Result<Self, SetupError> {
        let (engine, allocator) = engine::build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .and_then(|()| {
                bindings::Workflow::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            })
            .map_err(|e| SetupError(format!("{e:#}")))?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(CompileCache::open)
            .transpose()?;
        let ticker = EpochTicker::start(engine.weak(), config.epoch_tick)?;
        Ok(Runner {
            slots: Semaphore::new(config.max_concurrent_runs.max(1)),
            graph_slot: Semaphore::new(1),
            loaded: Mutex::new(Loaded::new(config.loaded_code_bytes)),
            engine,
            linker,
            config,
            allocator,
            cache,
            _ticker: ticker,
        })
    }

    /// The configuration the runner was built with.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// The instance allocator in use (pooling may have fallen back).
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The shared engine (for tools and benchmarks that compare against bare
    /// wasmtime).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Removes compiled components from the on-disk cache unless their
    /// digest is in `keep` (the components still stored); returns how many.
    /// Blocking file IO: call it from a blocking thread.
    pub fn retain_compiled(&self, keep: &[ComponentDigest]) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.retain(keep))
    }

    /// Checks an automation's limit overrides before they are stored.
    pub fn validate_overrides(&self, overrides: &LimitOverrides) -> Result<(), LimitsError> {
        overrides.validate(&self.config.ceilings)
    }

    /// The limits a run with `overrides` executes under.
    pub fn limits_for(&self, overrides: &LimitOverrides) -> RunLimits {
        overrides.resolve(&self.config.defaults, &self.config.ceilings)
    }

    /// The workflow with this digest if it was loaded lately (and not
    /// [forgotten](Self::forget)): no compile, no disk.
    pub fn cached(&self, digest: &ComponentDigest) -> Option<Workflow> {
        self.loaded().get(digest)
    }

    /// Drops the workflow with this digest from memory (its config was
    /// deleted). Whether it was there.
    pub fn forget(&self, digest: &ComponentDigest) -> bool {
        self.loaded().remove(digest)
    }

    /// Workflows held in memory, and the bytes of their compiled code
    /// (at most [`RunnerConfig::loaded_code_bytes`]).
    pub fn loaded_usage(&self) -> (usize, u64) {
        self.loaded().usage()
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Loaded<Workflow>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compiles `bytes` (or takes them from the compile cache), checks that they
    /// implement the workflow world and reads the component's graph under a
    /// small fuel and time budget. The workflow is kept in memory for
    /// [`cached`](Self::cached).
    pub async fn load(&self, bytes: &[u8]) -> Result<Workflow, LoadError> {
        let digest = ComponentDigest::of(bytes);
        let (component, from_cache) = self.compile(digest, bytes).await?;
        check_exports(&self.engine, &component)?;
        let imports_http = imports_http(&self.engine, &component);
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnsupportedImport(root_cause(&e)))?;
        let pre =
            WorkflowPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(root_cause(&e)))?;
        let graph = self.read_graph(&pre).await?;
        if let (Some(cache), false) = (&self.cache, from_cache) {
            let cache = cache.clone();
            // Best-effort: a failed write is logged inside `put`.
            let _ = tokio::task::spawn_blocking(move || cache.put(&digest, &component)).await;
        }
        let workflow = Workflow {
            digest,
            graph,
            from_cache,
            imports_http,
            pre,
        };
        self.loaded()
            .insert(digest, workflow.clone(), workflow.code_size());
        Ok(workflow)
    }

    async fn compile(
        &self,
        digest: ComponentDigest,
        bytes: &[u8],
    ) -> Result<(Component, bool), LoadError> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let bytes = bytes.to_vec();
        // Compiling takes milliseconds to seconds of CPU: keep it off the
        // async workers.
        tokio::task::spawn_blocking(move || {
            if let Some(component) = cache.and_then(|cache| cache.get(&engine, &digest)) {
                return Ok((component, true));
            }
            Component::new(&engine, &bytes)
                .map(|component| (component, false))
                .map_err(|e| LoadError::NotAComponent(root_cause(&e)))
        })
        .await
        .map_err(|e| LoadError::NotAComponent(format!("compilation stopped: {e}")))?
    }

    async fn read_graph(&self, pre: &WorkflowPre<RunState>) -> Result<WorkflowGraph, LoadError> {
        let limits = RunLimits::GRAPH.clamped_to(&self.config.ceilings);
        // Never closed, so acquiring cannot fail in practice.
        let _slot = self.graph_slot.acquire().await.ok();
        // No grant: a `graph` export cannot send requests or read secrets.
        let execution = sandbox::execute(
            &self.engine,
            pre,
            &limits,
            Reach::default(),
            async |wf, store| wf.call_graph(store).await,
        )
        .await;
        let graph = execution.result.map_err(|stop| {
            let outcome = sandbox::classify(stop, &limits, execution.panic);
            LoadError::Graph(match outcome.failure() {
                Some(failure) if failure.kind == FailureKind::Timeout => {
                    format!("it did not return within {} ms", limits.timeout.as_millis())
                }
                Some(failure) => failure.message.clone(),
                None => CANCELLED_MESSAGE.to_owned(),
            })
        })?;
        let graph = WorkflowGraph {
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
        };
        graph.check_size().map_err(LoadError::Graph)?;
        Ok(graph)
    }

    /// Runs `workflow` once on `input` with the host's default limits.
    pub async fn run(
        &self,
        workflow: &Workflow,
        ctx: &RunContext,
        input: &TriggerInput,
    ) -> RunReport {
        self.run_with(workflow, ctx, input, &RunOptions::default())
            .await
    }

    /// Runs `workflow` once on `input` in a fresh store, under the host's
    /// limits with `options.limits` laid over them, until it returns, fails,
    /// exceeds a limit or `options.cancel` is cancelled. Waits for a free slot
    /// first (the wait is reported as `queue_time` and is not part of the
    /// timeout).
    pub async fn run_with(
        &self,
        workflow: &Workflow,
        ctx: &RunContext,
        input: &TriggerInput,
        options: &RunOptions,
    ) -> RunReport {
        let limits = self.limits_for(&options.limits);
        let cancel = options.cancel.as_ref();
        let mut accounting = RunAccounting {
            component_digest: workflow.digest,
            fuel_consumed: 0,
            peak_memory_bytes: 0,
            wall_time: Duration::ZERO,
            instantiate_time: Duration::ZERO,
            queue_time: Duration::ZERO,
            limits,
        };
        let queued = Instant::now();
        let slot = tokio::select! {
            biased;
            () = sandbox::wait_for_cancel(cancel) => None,
            slot = self.slot() => Some(slot),
        };
        accounting.queue_time = queued.elapsed();
        let Some(_slot) = slot else {
            return RunReport {
                outcome: Outcome::Cancelled,
                output: CapturedOutput::default(),
                accounting,
                host_calls: Vec::new(),
                host_calls_truncated: false,
            };
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
        let masker = options.secrets.masker();
        let reach = Reach {
            cancel,
            live: options.live.clone(),
            egress: EgressGrant {
                allow_list: options.capabilities.allow_list(),
                allow_private: self.config.allow_private_egress,
            },
            secrets: options.secrets.clone(),
            masker: masker.clone(),
        };
        let execution = sandbox::execute(
            &self.engine,
            &workflow.pre,
            &limits,
            reach,
            async |wf, store| wf.call_run(store, &ctx, &input).await,
        )
        .await;
        accounting.fuel_consumed = execution.fuel_consumed;
        accounting.peak_memory_bytes = execution.peak_memory_bytes;
        accounting.wall_time = execution.wall_time;
        accounting.instantiate_time = execution.instantiate_time;
        // Secret values leave no trace: the error is masked before it is
        // measured or quoted, the payload and failure messages after.
        let outcome = match execution.result {
            Ok(returned) => Outcome::returned(
                returned.map_err(|error| masker.mask(&error).into_owned()),
                &limits,
            ),
            Err(stop) => sandbox::classify(stop, &limits, execution.panic),
        };
        let outcome = masker.mask_outcome(outcome);
        // A URL from a secret is masked in its record too (as far as the
        // record shows it: without its query).
        let calls_masker = options.secrets.url_masker();
        let (mut host_calls, host_calls_truncated) = execution.host_calls;
        for call in &mut host_calls {
            call.target = calls_masker.mask(&call.target).into_owned();
            if let Some(error) = &call.error {
                call.error = Some(calls_masker.mask(error).into_owned());
            }
        }
        RunReport {
            outcome,
            output: execution.output,
            accounting,
            host_calls,
            host_calls_truncated,
        }
    }

    /// One of the `max_concurrent_runs` run slots (with the graph slot, they
    /// bound the pooling allocator's instance slots in use).
    async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so acquiring only fails in theory;
        // running without a slot then beats failing the run.
        self.slots.acquire().await.ok()
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

/// Whether the component imports any `wasi:http` interface.
fn imports_http(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with(WASI_HTTP_PREFIX))
}

/// The package prefix of the `wasi:http` interfaces' import names.
const WASI_HTTP_PREFIX: &str = "wasi:http/";

/// A wasmtime error's chain in one line, outermost first.
fn root_cause(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}
