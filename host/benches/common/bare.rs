//! Bare wasmtime: `InstancePre::instantiate_async` + `call_run` of a
//! workflow with a fresh WASI context and the world's own bindings,
//! independent of the runner's (the floor both benchmarks compare against).

use automata::domain::workflow::{RunContext, TriggerInput};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bare wasmtime's own bindings of the world, independent of the runner's.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "workflow",
        exports: { default: async },
    });
}

pub use bindings::automata::workflow::types as wit;
use bindings::automata::workflow::{log, secrets};
use bindings::{Workflow as BareWorkflow, WorkflowPre};

/// A workflow ready to instantiate with bare wasmtime.
pub type BarePre = WorkflowPre<Bare>;

/// Bare wasmtime's store state: WASI, a log that drops its lines and no
/// secrets.
pub struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for Bare {
    fn log(&mut self, _level: log::Level, _message: String) {}
}

impl wit::Host for Bare {}

impl secrets::Host for Bare {
    fn get(&mut self, _name: String) -> Option<String> {
        None
    }
}

pub fn bare_pre(engine: &Engine, bytes: &[u8]) -> BarePre {
    let component = Component::new(engine, bytes).expect("the welcome example compiles");
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    BareWorkflow::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).unwrap();
    WorkflowPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

/// One bare run; `metered` engines (the runner's) need fuel and an epoch
/// deadline set on every store.
pub async fn bare_run(
    engine: &Engine,
    metered: bool,
    pre: &BarePre,
    ctx: &wit::RunContext,
    input: &wit::TriggerInput,
) {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    if metered {
        store.set_fuel(u64::MAX).unwrap();
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    let result = instance.call_run(&mut store, ctx, input).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

pub fn wit_inputs(ctx: &RunContext, input: &TriggerInput) -> (wit::RunContext, wit::TriggerInput) {
    (
        wit::RunContext {
            app_id: ctx.app_id.clone(),
            automation_id: ctx.automation_id.clone(),
            run_id: ctx.run_id.clone(),
            run_as_user_id: ctx.run_as_user_id.clone(),
            scheduled_at: ctx.scheduled_at.clone(),
            attempt: ctx.attempt,
        },
        wit::TriggerInput {
            trigger: input.trigger.clone(),
            payload: input.payload.to_string(),
        },
    )
}
