//! WorkflowGraph configs: uploaded components, stored once per digest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{AppId, ConfigId};
use super::text;
use super::workflow::WorkflowGraph;

/// An uploaded component and what it declared, as stored and shown.
/// The component's bytes are stored separately, keyed by `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Config {
    /// `cfg_…`.
    pub id: ConfigId,
    /// The app it belongs to.
    pub app_id: AppId,
    /// Display name: the upload's `name`, or the workflow's own name.
    pub name: String,
    /// `sha256:<hex>` of the component's bytes.
    #[schema(example = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The WorkflowGraph the component declared: its trigger nodes and steps.
    pub graph: WorkflowGraph,
    /// Whether the component imports `wasi:http` (outbound HTTP): an
    /// automation running it must grant hosts in
    /// `capabilities.http.allowed_hosts` to be activated. Read from the
    /// component's imports at upload; configs from before it read back
    /// `false` (the host refused such components then).
    #[serde(default)]
    pub imports_http: bool,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// The key that uploaded it (`key_…`, `env` for `AUTOMATA_ADMIN_TOKEN`);
    /// absent without authentication and for data from before keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Checks an upload's display name: 1–200 characters, no control or format
/// characters ([`crate::domain::text`]).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the config name must not be empty".to_owned());
    }
    if name.chars().count() > 200 {
        return Err("the config name is longer than 200 characters".to_owned());
    }
    if let Some(c) = text::invisible_char(name) {
        return Err(format!(
            "the config name must not contain control or invisible format characters (found {})",
            text::code_point(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_printable_text() {
        assert!(validate_name("Daily Digest v2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("invoice\u{202E}fdp.exe").is_err());
        assert!(validate_name("zero\u{200B}width").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }
}
