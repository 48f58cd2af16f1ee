//! Host bindings for the `automata:workflow/workflow` world (`wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "workflow",
    exports: { default: async },
});

pub use automata::workflow::log::Level;
pub use automata::workflow::types;
