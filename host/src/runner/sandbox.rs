//! One execution in a fresh store: WASI locked down, fuel, memory and
//! wall-clock limits applied, interruption by deadline or cancel token, and the
//! ending classified in plain words.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{self, Level, WorkflowPre};
use super::cancel::CancelToken;
use super::egress::{Egress, EgressGrant};
use super::host_calls::{self, HostCalls};
use super::output::{GuestPanic, LiveOutput, Transcript};
use super::secrets::{Masker, RunSecrets};
use crate::domain::host_call::HostCall;
use crate::domain::limits::RunLimits;
use crate::domain::outcome::{CapturedOutput, Failure, FailureKind, Outcome, TIMEOUT_MESSAGE};

/// The state of one run's [`Store`].
pub(super) struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Outbound HTTP under the automation's grant (the `wasi:http` hooks).
    egress: Egress,
    table: ResourceTable,
    transcript: Transcript,
    memory: MemoryMeter,
    /// What `secrets.get` may give.
    secrets: RunSecrets,
    /// The run's host-call records (`host_calls`); host functions add to
    /// them with [`HostCalls::record`] or [`HostCalls::start`].
    pub(super) host_calls: HostCalls,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
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

impl bindings::automata::workflow::secrets::Host for RunState {
    fn get(&mut self, name: String) -> Option<String> {
        // The record names the secret, never its value; a read the host
        // refused says why.
        let read = self.secrets.get(&name);
        let refusal = read.as_ref().err().map(ToString::to_string);
        self.host_calls.record(HostCall::secret(
            &super::secrets::recorded_name(&name),
            refusal,
        ));
        read.ok().map(str::to_owned)
    }
}

/// Most tables, memories and instances one run may create, and the most
/// elements a table may grow to: far above what a workflow needs, far below
/// what would hurt the host.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;

/// Most live WASI resources (streams, pollables, …) a run may hold, and the
/// most random bytes one call may ask for: both allocate host memory.
const MAX_RESOURCES: usize = 16 * 1024;
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// Fuel handed to wasm at a time: its fuel count is written back (and it
/// yields) after each slice, so a run's reported `fuel_consumed` is exact to
/// within this many units — 0.02% of the default budget — and a busy loop
/// yields about once a millisecond.
pub(super) const FUEL_SLICE: u64 = 1_000_000;

/// Enforces the memory limit over all of a run's memories and remembers the
/// peak.
#[derive(Debug)]
struct MemoryMeter {
    limit: u64,
    held: u64,
    peak: u64,
    /// The growth last allowed, taken back if the grow then fails.
    last_growth: u64,
}

/// A run tried to hold more linear memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "Memory limit exceeded: the workflow asked for {requested} bytes of memory (limit {limit} bytes)"
)]
struct MemoryLimitExceeded {
    requested: u64,
    limit: u64,
}

impl ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let requested = self.held.saturating_add(growth);
        if requested > self.limit {
            // An error (rather than `Ok(false)`) traps at once, so the run
            // fails naming the limit instead of a guest's confused abort.
            return Err(MemoryLimitExceeded {
                requested,
                limit: self.limit,
            }
            .into());
        }
        self.held = requested;
        self.peak = self.peak.max(requested);
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.held = self
            .held
            .saturating_sub(std::mem::take(&mut self.last_growth));
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Why an execution stopped before its call returned.
#[derive(Debug, thiserror::Error)]
enum Interruption {
    #[error("{TIMEOUT_MESSAGE}")]
    Timeout,
    #[error("the run was cancelled")]
    Cancelled,
}

/// Why an execution ended without its call returning, before classification.
pub(super) enum Stop {
    /// Instantiating failed.
    Instantiate(wasmtime::Error),
    /// The call failed (trap, limit, interruption raised inside wasm).
    Call(wasmtime::Error),
    /// Interrupted while blocked in a host call or before wasm noticed.
    Interrupted(InterruptKind),
}

/// What interrupted an execution from outside wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InterruptKind {
    Timeout,
    Cancelled,
}

/// One execution's ending and what it consumed.
pub(super) struct Execution<R> {
    /// The call's return value, or why there is none.
    pub result: Result<R, Stop>,
    pub output: CapturedOutput,
    pub panic: Option<GuestPanic>,
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    pub wall_time: Duration,
    pub instantiate_time: Duration,
    /// The run's host calls, and whether some were left out past the cap.
    pub host_calls: (Vec<crate::domain::host_call::HostCall>, bool),
}

/// What one execution may use besides its limits: its cancel token, where
/// its output goes live, what it may reach over HTTP and the secrets it may
/// read.
#[derive(Default)]
pub(super) struct Reach<'a> {
    pub cancel: Option<&'a CancelToken>,
    pub live: Option<LiveOutput>,
    pub egress: EgressGrant,
    pub secrets: RunSecrets,
    /// Masks `secrets`' values in the transcript (built once per run: the
    /// runner masks the outcome with the same one).
    pub masker: Masker,
}

/// Instantiates `pre` in a fresh store under `limits` and calls `call` on the
/// instance. Ends when the call returns, traps, exceeds a limit, times out or
/// `cancel` fires — whichever comes first, even if the guest is blocked in a
/// host call (an HTTP request in flight is dropped with the store).
pub(super) async fn execute<R>(
    engine: &Engine,
    pre: &WorkflowPre<RunState>,
    limits: &RunLimits,
    reach: Reach<'_>,
    call: impl AsyncFnOnce(&bindings::Workflow, &mut Store<RunState>) -> wasmtime::Result<R>,
) -> Execution<R> {
    let started = Instant::now();
    let deadline = started + limits.timeout;
    let cancel = reach.cancel;
    let mut store = new_store(engine, limits, deadline, reach);
    let mut instantiate_time = Duration::ZERO;

    let work = async {
        let instantiating = Instant::now();
        let instance = pre.instantiate_async(&mut store).await;
        instantiate_time = instantiating.elapsed();
        match instance {
            Ok(instance) => call(&instance, &mut store).await.map_err(Stop::Call),
            Err(error) => Err(Stop::Instantiate(error)),
        }
    };
    // Wasm notices the deadline and the token at its next epoch tick; a guest
    // blocked in a host call never reaches one, so the same two conditions
    // also race the call here (dropping the call's future unwinds the guest).
    let result = tokio::select! {
        biased;
        result = work => result,
        () = wait_for_cancel(cancel) => Err(Stop::Interrupted(InterruptKind::Cancelled)),
        () = tokio::time::sleep_until(deadline.into()) => Err(Stop::Interrupted(InterruptKind::Timeout)),
    };
    let wall_time = started.elapsed();

    let fuel_left = store.get_fuel().unwrap_or(0);
    let state = store.data();
    let output = state.transcript.finish();
    let unanswered = match &result {
        Err(Stop::Interrupted(InterruptKind::Cancelled)) => host_calls::CANCELLED_IN_FLIGHT,
        Err(Stop::Interrupted(InterruptKind::Timeout)) => host_calls::TIMED_OUT_IN_FLIGHT,
        _ => host_calls::UNANSWERED,
    };
    let host_calls = state.host_calls.snapshot(unanswered);
    Execution {
        result,
        panic: state.transcript.panic(),
        output,
        fuel_consumed: limits.fuel.saturating_sub(fuel_left),
        peak_memory_bytes: state.memory.peak,
        wall_time,
        instantiate_time,
        host_calls,
    }
}

pub(super) async fn wait_for_cancel(cancel: Option<&CancelToken>) {
    match cancel {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// A fresh store for one execution. The guest sees no preopened directories,
/// no sockets, no environment variables or arguments, and an empty stdin; it
/// gets wall and monotonic clocks, randomness, stdout/stderr captured into
/// its transcript (secret values masked), the secrets it is granted, and
/// `wasi:http` requests to the hosts its grant allows.
fn new_store(
    engine: &Engine,
    limits: &RunLimits,
    deadline: Instant,
    reach: Reach<'_>,
) -> Store<RunState> {
    let cancel = reach.cancel.cloned();
    let secrets = reach.secrets;
    let transcript = Transcript::masked(limits.output(), reach.live, reach.masker);
    let host_calls = HostCalls::default();
    let egress = Egress::new(
        reach.egress,
        limits,
        deadline,
        cancel.clone(),
        host_calls.clone(),
    );
    // Explicit rather than relying on the builder's defaults: no sockets of
    // any kind and no name lookup (its address check already denies all).
    let wasi = WasiCtx::builder()
        .stdout(transcript.stdout())
        .stderr(transcript.stderr())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .max_random_size(MAX_RANDOM_BYTES)
        .build();
    // Host-side memory a guest can make the host hold is bounded too.
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let mut store = Store::new(
        engine,
        RunState {
            wasi,
            http: WasiHttpCtx::new(),
            egress,
            table,
            transcript,
            host_calls,
            memory: MemoryMeter {
                limit: limits.memory_bytes,
                held: 0,
                peak: 0,
                last_growth: 0,
            },
            secrets,
        },
    );
    store.limiter(|state| &mut state.memory);
    // `set_fuel` only fails on an engine without fuel metering, which the
    // runner never builds.
    let _ = store.set_fuel(limits.fuel);
    // Compiled wasm keeps its fuel count in a register between calls, and
    // the epoch check that ends a timed-out or cancelled run does not write
    // it back: a busy loop's fuel would go unreported. Handing fuel out in
    // slices makes wasm write its count back (and yield) at every slice, so
    // `fuel_consumed` is exact to within one slice whatever ends the run.
    // Fails only without fuel metering or async support, which the runner
    // always enables.
    let _ = store.fuel_async_yield_interval(Some(FUEL_SLICE));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(Interruption::Cancelled.into());
        }
        if Instant::now() >= deadline {
            return Err(Interruption::Timeout.into());
        }
        // Yielding every tick lets other runs and the host's tasks share the
        // thread with a busy guest.
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// The outcome of an execution that did not return, in plain words.
pub(super) fn classify(stop: Stop, limits: &RunLimits, panic: Option<GuestPanic>) -> Outcome {
    let (error, instantiating) = match stop {
        Stop::Interrupted(InterruptKind::Timeout) => return timed_out(),
        Stop::Interrupted(InterruptKind::Cancelled) => return Outcome::Cancelled,
        Stop::Instantiate(error) => (error, true),
        Stop::Call(error) => (error, false),
    };
    match error.downcast_ref::<Interruption>() {
        Some(Interruption::Timeout) => return timed_out(),
        Some(Interruption::Cancelled) => return Outcome::Cancelled,
        None => {}
    }
    if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
        return failed(FailureKind::MemoryLimit, exceeded.to_string());
    }
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::OutOfFuel) => {
            return failed(
                FailureKind::FuelExhausted,
                format!("Fuel limit exceeded ({} units)", limits.fuel),
            );
        }
        Some(Trap::StackOverflow) => {
            return failed(
                FailureKind::StackOverflow,
                "Stack overflow: the workflow's calls nested too deeply",
            );
        }
        _ => {}
    }
    if let Some(panic) = panic {
        return failed(
            FailureKind::Panic,
            format!("Workflow panicked at {}: {}", panic.location, panic.message),
        );
    }
    if instantiating {
        return failed(
            FailureKind::Instantiate,
            format!("Could not instantiate the workflow: {error:#}"),
        );
    }
    let reason = match trap {
        Some(trap) => trap_in_words(trap),
        // A host function failed on the guest's behalf (e.g. its resource
        // table is full): the run cannot go on, like a trap.
        None => format!("{:#}", error),
    };
    failed(FailureKind::Trap, format!("Workflow trapped: {reason}"))
}

fn timed_out() -> Outcome {
    failed(FailureKind::Timeout, TIMEOUT_MESSAGE)
}

fn failed(kind: FailureKind, message: impl Into<String>) -> Outcome {
    Outcome::Failed(Failure::new(kind, message))
}

fn trap_in_words(trap: Trap) -> String {
    let words = match trap {
        Trap::UnreachableCodeReached => "it aborted (wasm `unreachable` executed)",
        Trap::MemoryOutOfBounds => "it accessed memory out of bounds",
        Trap::TableOutOfBounds | Trap::IndirectCallToNull | Trap::BadSignature => {
            "it made an invalid indirect call"
        }
        Trap::IntegerDivisionByZero => "it divided an integer by zero",
        Trap::IntegerOverflow => "integer overflow",
        Trap::BadConversionToInteger => "it converted an invalid float to an integer",
        Trap::HeapMisaligned => "it made a misaligned atomic memory access",
        other => {
            let text = other.to_string();
            return text
                .strip_prefix("wasm trap: ")
                .map_or(text.clone(), str::to_owned);
        }
    };
    words.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(limit: u64) -> MemoryMeter {
        MemoryMeter {
            limit,
            held: 0,
            peak: 0,
            last_growth: 0,
        }
    }

    #[test]
    fn memory_meter_sums_memories_and_refuses_past_the_limit() {
        let mut meter = meter(100);
        assert!(meter.memory_growing(0, 60, None).unwrap());
        assert!(meter.memory_growing(0, 30, None).unwrap());
        let error = meter.memory_growing(60, 80, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Memory limit exceeded: the workflow asked for 110 bytes of memory (limit 100 bytes)"
        );
        assert_eq!(meter.peak, 90);
    }

    #[test]
    fn memory_meter_takes_back_a_failed_growth() {
        let mut meter = meter(100);
        assert!(meter.memory_growing(0, 50, None).unwrap());
        assert!(meter.memory_growing(50, 90, None).unwrap());
        meter
            .memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert_eq!(meter.held, 50);
        assert_eq!(meter.peak, 90);
    }

    fn classify_error(error: wasmtime::Error) -> Outcome {
        classify(Stop::Call(error), &RunLimits::DEFAULT, None)
    }

    #[test]
    fn classifies_limits_and_interruptions() {
        assert_eq!(
            classify_error(Trap::OutOfFuel.into()),
            failed(
                FailureKind::FuelExhausted,
                "Fuel limit exceeded (5000000000 units)"
            )
        );
        assert_eq!(
            classify_error(wasmtime::Error::from(Interruption::Timeout).context("in run")),
            failed(FailureKind::Timeout, "Script execution timed out")
        );
        assert_eq!(
            classify_error(Interruption::Cancelled.into()),
            Outcome::Cancelled
        );
        assert_eq!(
            classify(
                Stop::Interrupted(InterruptKind::Timeout),
                &RunLimits::DEFAULT,
                None
            ),
            failed(FailureKind::Timeout, "Script execution timed out")
        );
        assert_eq!(
            classify_error(Trap::StackOverflow.into())
                .failure()
                .unwrap()
                .kind,
            FailureKind::StackOverflow
        );
    }

    #[test]
    fn a_reported_panic_names_its_message() {
        let panic = GuestPanic {
            location: "src/lib.rs:3:9".into(),
            message: "no members".into(),
        };
        assert_eq!(
            classify(
                Stop::Call(Trap::UnreachableCodeReached.into()),
                &RunLimits::DEFAULT,
                Some(panic)
            ),
            failed(
                FailureKind::Panic,
                "Workflow panicked at src/lib.rs:3:9: no members"
            )
        );
    }

    #[test]
    fn traps_are_put_in_plain_words() {
        assert_eq!(
            classify_error(Trap::IntegerDivisionByZero.into()),
            failed(
                FailureKind::Trap,
                "Workflow trapped: it divided an integer by zero"
            )
        );
        assert_eq!(
            classify_error(Trap::NullReference.into()),
            failed(FailureKind::Trap, "Workflow trapped: null reference")
        );
        assert_eq!(
            classify(
                Stop::Instantiate(wasmtime::Error::msg("no free slot")),
                &RunLimits::DEFAULT,
                None
            ),
            failed(
                FailureKind::Instantiate,
                "Could not instantiate the workflow: no free slot"
            )
        );
    }
}
