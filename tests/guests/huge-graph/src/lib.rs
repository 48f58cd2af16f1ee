//! A workflow whose `graph` export declares about 1 MiB of steps: loading it
//! must be refused, not stored with its config and shown in every list.

use automata_guest::bindings::automata::workflow::types::{
    RunContext, StepNode, TriggerInput, WorkflowGraph,
};
use automata_guest::bindings::{Guest, export_workflow};

struct HugeGraph;

impl Guest for HugeGraph {
    fn graph() -> WorkflowGraph {
        WorkflowGraph {
            name: "Huge graph".into(),
            triggers: vec!["thread.created".into()],
            steps: (0..1024)
                .map(|i| StepNode {
                    name: format!("step {i}"),
                    description: "d".repeat(1024),
                })
                .collect(),
        }
    }

    fn run(_ctx: RunContext, _input: TriggerInput) -> Result<String, String> {
        Ok("null".into())
    }
}

export_workflow!(HugeGraph with_types_in automata_guest::bindings);
