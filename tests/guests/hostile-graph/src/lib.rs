//! A workflow whose `graph` export spins forever: loading it must fail within
//! the load budget instead of hanging the upload.

use std::hint::black_box;

use automata_guest::bindings::automata::workflow::types::{
    RunContext, TriggerInput, WorkflowGraph,
};
use automata_guest::bindings::{Guest, export_workflow};

struct EndlessGraph;

impl Guest for EndlessGraph {
    fn graph() -> WorkflowGraph {
        let mut counter = 0u64;
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }

    fn run(_ctx: RunContext, _input: TriggerInput) -> Result<String, String> {
        Ok("null".into())
    }
}

export_workflow!(EndlessGraph with_types_in automata_guest::bindings);
