//! What a workflow component declares and what a run hands it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::MAX_GRAPH_BYTES;

/// The event name of cron-driven runs.
pub const SCHEDULED_TRIGGER: &str = "workflow.scheduled";

/// The WorkflowGraph a component implements, read from its `graph` export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowGraph {
    /// Display name.
    pub name: String,
    /// Event names the workflow handles (its trigger nodes).
    pub triggers: Vec<String>,
    /// Its step nodes, for display.
    pub steps: Vec<StepNode>,
}

impl WorkflowGraph {
    /// Whether the workflow has a trigger node for `event`.
    pub fn handles(&self, event: &str) -> bool {
        self.triggers.iter().any(|t| t == event)
    }

    /// Checks that the graph is at most [`MAX_GRAPH_BYTES`] as JSON: it is
    /// stored with its config and shown in every config list, and only the
    /// `graph` export's memory limit would bound it otherwise. The error
    /// says how large it is.
    pub fn check_size(&self) -> Result<(), String> {
        let size = serde_json::to_vec(self).map_or(usize::MAX, |json| json.len());
        if size > MAX_GRAPH_BYTES {
            return Err(format!(
                "it describes a graph of {size} bytes as JSON, above the limit of {MAX_GRAPH_BYTES} bytes"
            ));
        }
        Ok(())
    }
}

/// One step of a workflow, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepNode {
    /// Short name.
    pub name: String,
    /// What the step does.
    pub description: String,
}

/// The spec's workflow input: `{"trigger", "payload"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInput {
    /// The event name, or [`SCHEDULED_TRIGGER`].
    pub trigger: String,
    /// Event-specific data.
    pub payload: Value,
}

/// Who and what a run is for; handed to the workflow with its input.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunContext {
    /// The app the automation belongs to.
    pub app_id: String,
    /// The automation (`aut_…`).
    pub automation_id: String,
    /// The run (`atr_…`).
    pub run_id: String,
    /// The user the automation executes as, if any.
    pub run_as_user_id: Option<String>,
    /// For scheduled runs, the occurrence being run (RFC 3339, UTC).
    pub scheduled_at: Option<String>,
    /// 1 for a first run, then 2, 3, … for retries.
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(steps: usize, description: &str) -> WorkflowGraph {
        WorkflowGraph {
            name: "Digest".into(),
            triggers: vec!["workflow.scheduled".into()],
            steps: (0..steps)
                .map(|i| StepNode {
                    name: format!("step {i}"),
                    description: description.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_graph_is_bounded_as_json() {
        // A generous real graph: 100 steps with paragraph-long descriptions.
        assert_eq!(graph(100, &"d".repeat(500)).check_size(), Ok(()));
        let huge = graph(1, &"d".repeat(MAX_GRAPH_BYTES));
        let error = huge.check_size().unwrap_err();
        assert!(
            error.starts_with("it describes a graph of ")
                && error.ends_with("above the limit of 65536 bytes"),
            "{error}"
        );
    }
}
