//! Event names checked against the server's catalogue before they are sent,
//! so a near miss gets "did you mean …?" in the CLI's terms.

use super::args::UsageError;
use super::client::Api;
use super::views;
use crate::domain::events::closest;

/// Refuses `name` (a usage error) when the server's event catalogue lacks
/// it, suggesting the event meant. If the catalogue cannot be read, the
/// server's own answer to the request will say what is wrong.
pub async fn check_event(api: &Api, name: &str) -> anyhow::Result<()> {
    let Ok(list) = api.get(&["automations", "events"], &[]).await else {
        return Ok(());
    };
    let names: Vec<&str> = views::items(&list)
        .iter()
        .filter_map(|event| event["name"].as_str())
        .collect();
    if names.is_empty() || names.contains(&name) {
        return Ok(());
    }
    let hint = match closest(name, names.iter().copied()) {
        Some(meant) => format!("; did you mean `{meant}`?"),
        None => String::new(),
    };
    Err(UsageError(format!(
        "`{name}` is not a platform event{hint} (`automata list events` lists them)"
    ))
    .into())
}
