//! The shared wasmtime engine: its configuration, the instance allocator and
//! the epoch ticker that drives timeouts and cancellation.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::SetupError;
use crate::domain::limits::RunLimits;

/// How the host runs workflows. [`RunnerConfig::default`] is cheap (on-demand
/// allocation, no cache directory) and suits tests; a server sets `pooling`
/// and `cache_dir`.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Limits of a run whose automation overrides none.
    pub defaults: RunLimits,
    /// The most any override may ask for; overrides above are clamped at run
    /// time and refused by [`Runner::validate_overrides`](super::Runner::validate_overrides).
    pub ceilings: RunLimits,
    /// Where compiled components are kept across restarts, one file per
    /// component digest. `None` compiles every component on load.
    pub cache_dir: Option<PathBuf>,
    /// Preallocate instance slots for `max_concurrent_runs` runs (much cheaper
    /// instantiation). When the address space cannot be reserved the runner
    /// logs a warning and allocates on demand instead.
    pub pooling: bool,
    /// Runs executing at once; more wait for a slot. Defaults to the number of
    /// cores.
    pub max_concurrent_runs: usize,
    /// Most bytes of native stack wasm may use; deeper recursion fails the run
    /// with a stack overflow. Engine-wide (wasmtime sets it per engine).
    pub max_wasm_stack: usize,
    /// How often the epoch ticker checks timeouts and cancellation: the
    /// precision of both.
    pub epoch_tick: Duration,
    /// Most bytes of compiled code kept in memory for loaded workflows
    /// ([`Runner::cached`](super::Runner::cached)); past it the least recently
    /// used are dropped (and loaded again from the compile cache when needed).
    pub loaded_code_bytes: u64,
    /// Whether workflows' HTTP requests may reach loopback, private and
    /// link-local addresses (`serve --allow-private-egress`). Off: only when
    /// the automation's grant names the address itself.
    pub allow_private_egress: bool,
    /// How guests' memory accesses are kept inside their linear memory
    /// (`serve --bounds-checks`).
    pub bounds_checks: BoundsChecks,
}

/// How a guest's loads and stores are kept inside its linear memory.
///
/// wasmtime 48 offers two ways; the choice is the operator's, since it trades
/// a side-channel defence for throughput (measured in `BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BoundsChecks {
    /// Guard pages: each memory slot reserves its whole 32-bit address range,
    /// so compiled code needs no bounds checks, and an access past the end
    /// faults. Safe against Spectre-style speculation past a bounds check
    /// (there is none to speculate past). Costs three `mprotect` calls per run
    /// of a workflow that grows its memory (the pooling allocator shrinks the
    /// slot back before the next run), each a TLB shootdown on every core
    /// running the process: concurrent runs slow each other down.
    #[default]
    GuardPages,
    /// Compiled code checks every access explicitly (wasmtime's
    /// `signals_based_traps(false)`, no guard region): a slot stays accessible
    /// between runs, so runs make no `mprotect` calls and scale across cores.
    /// wasmtime then turns off Cranelift's heap and table Spectre mitigations
    /// (`Config::signals_based_traps`: they rely on faulting loads), so a
    /// hostile workflow could try to read host memory through speculative
    /// execution. Only for hosts whose workflows are all trusted, e.g. one
    /// team's own.
    Explicit,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            defaults: RunLimits::DEFAULT,
            ceilings: RunLimits::DEFAULT_CEILINGS,
            cache_dir: None,
            pooling: false,
            max_concurrent_runs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(5),
            loaded_code_bytes: DEFAULT_LOADED_CODE_BYTES,
            allow_private_egress: false,
            bounds_checks: BoundsChecks::GuardPages,
        }
    }
}

/// Default budget of compiled code kept in memory: 256 MiB, a few hundred
/// typical workflows (a Rust workflow compiles to 1–2 MiB of code).
pub const DEFAULT_LOADED_CODE_BYTES: u64 = 256 << 20;

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Preallocated instance slots.
    Pooling,
    /// Memory mapped per instance.
    OnDemand,
}

/// Upper bounds of one workflow component, for sizing pool slots. A Rust
/// workflow built for wasm32-wasip2 uses a few core instances, one memory and a
/// handful of tables; these leave room for other toolchains.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 16;

/// Bytes of each memory and table slot kept mapped between runs: a small
/// workflow's whole working set.
const KEEP_RESIDENT: usize = 1 << 20;

/// Builds the engine, with the pooling allocator when asked and possible.
pub(super) fn build_engine(config: &RunnerConfig) -> Result<(Engine, Allocator), SetupError> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Host calls run on the fiber stack too: keep 1 MiB above wasm's share.
        .async_stack_size(config.max_wasm_stack + (1 << 20));
    if config.bounds_checks == BoundsChecks::Explicit {
        // Linear memory then stays readable and writable up to its size and
        // is never re-protected between runs (see `BoundsChecks::Explicit`).
        wasm.signals_based_traps(false).memory_guard_size(0);
    }
    if config.pooling {
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(config)));
        match Engine::new(&wasm) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(error) => tracing::warn!(
                "cannot reserve the pooling allocator ({error:#}); allocating instances on demand"
            ),
        }
        wasm.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
    let engine = Engine::new(&wasm).map_err(|e| SetupError(format!("{e:#}")))?;
    Ok((engine, Allocator::OnDemand))
}

fn pool_config(config: &RunnerConfig) -> PoolingAllocationConfig {
    // One instance slot per run slot, plus the one graph reads use.
    let slots = u32::try_from(config.max_concurrent_runs.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
        .max_memory_size(usize::try_from(config.ceilings.memory_bytes).unwrap_or(usize::MAX))
        // Reset a used slot by zeroing only its dirty pages (Linux 6.7+,
        // PAGEMAP_SCAN) within the resident part, instead of madvise: halves
        // the per-run cost of a small workflow and spares other threads the
        // TLB shootdowns. Elsewhere wasmtime falls back to madvise.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    pool
}

/// One thread per engine advancing its epoch every tick, so that every running
/// store checks its deadline and cancel token. Stops when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: EngineWeak, tick: Duration) -> Result<Self, SetupError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("automata-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                }
            })
            .map_err(|e| SetupError(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread exits within one tick; nothing it does can fail.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_is_used_when_it_fits() {
        let config = RunnerConfig {
            pooling: true,
            max_concurrent_runs: 2,
            ..RunnerConfig::default()
        };
        assert_eq!(build_engine(&config).unwrap().1, Allocator::Pooling);
    }

    #[test]
    fn a_pool_that_cannot_be_reserved_falls_back_to_on_demand() {
        // Four memories of 4 GiB+ reservations per slot for a million slots
        // is far beyond any address space.
        let config = RunnerConfig {
            pooling: true,
            max_concurrent_runs: 1 << 20,
            ..RunnerConfig::default()
        };
        assert_eq!(build_engine(&config).unwrap().1, Allocator::OnDemand);
    }

    /// A module with one page of memory: `poke` grows it by a page and
    /// stores `value` at `address`; `peek` grows it and loads from `address`.
    const MEMORY: &str = r#"(module
        (memory 1)
        (func (export "poke") (param $address i32) (param $value i32)
            (drop (memory.grow (i32.const 1)))
            (i32.store (local.get $address) (local.get $value)))
        (func (export "peek") (param $address i32) (result i32)
            (drop (memory.grow (i32.const 1)))
            (i32.load (local.get $address))))"#;

    /// Calls `name` with `params` in a fresh store (a fresh pool slot use),
    /// as a run does.
    async fn call(
        engine: &Engine,
        module: &wasmtime::Module,
        name: &str,
        params: &[i32],
    ) -> Result<i32, wasmtime::Trap> {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_fuel(1_000_000).unwrap();
        store.set_epoch_deadline(1_000);
        let instance = wasmtime::Instance::new_async(&mut store, module, &[])
            .await
            .unwrap();
        let func = instance.get_func(&mut store, name).unwrap();
        let params: Vec<wasmtime::Val> = params.iter().map(|&p| wasmtime::Val::I32(p)).collect();
        let mut results = vec![wasmtime::Val::I32(0); func.ty(&store).results().len()];
        match func.call_async(&mut store, &params, &mut results).await {
            Ok(()) => Ok(results.first().map_or(0, |r| r.unwrap_i32())),
            Err(error) => Err(*error.downcast_ref::<wasmtime::Trap>().expect("a trap")),
        }
    }

    /// Both ways of bounding memory trap an access past the memory's end,
    /// and a run never sees what an earlier run in the same slot wrote into
    /// pages it grew (the explicit way keeps the slot accessible between
    /// runs, so this is what stands between two tenants).
    #[tokio::test]
    async fn memory_stays_bounded_and_fresh_with_either_bounds_checks() {
        for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
            let config = RunnerConfig {
                pooling: true,
                max_concurrent_runs: 1,
                bounds_checks,
                ..RunnerConfig::default()
            };
            let (engine, allocator) = build_engine(&config).unwrap();
            assert_eq!(allocator, Allocator::Pooling);
            let module = wasmtime::Module::new(&engine, wat::parse_str(MEMORY).unwrap()).unwrap();
            let second_page = 65_536 + 8;
            for _ in 0..3 {
                assert_eq!(
                    call(&engine, &module, "poke", &[second_page, 0x5ec2e7]).await,
                    Ok(0)
                );
                assert_eq!(
                    call(&engine, &module, "peek", &[second_page]).await,
                    Ok(0),
                    "{bounds_checks:?}: a grown page holds an earlier run's data"
                );
            }
            for past_the_end in [2 * 65_536, 2 * 65_536 - 3, i32::MAX, -4] {
                assert_eq!(
                    call(&engine, &module, "peek", &[past_the_end]).await,
                    Err(wasmtime::Trap::MemoryOutOfBounds),
                    "{bounds_checks:?}: load at {past_the_end}"
                );
            }
        }
    }
}
