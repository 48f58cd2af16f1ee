//! The catalogue of platform events a trigger automation can listen to.
//!
//! Names and descriptions are the spec's. The spec lists the three
//! "Conversation session" events without machine names; ours follow the
//! `<noun>.<past-tense verb>` pattern of the others: `conversation.session_started`,
//! `conversation.session_completed` and `conversation.session_ended`.

use serde::Serialize;

/// One platform event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventType {
    /// The machine name automations use as their `trigger`.
    #[schema(example = "thread.created")]
    pub name: &'static str,
    /// What happened.
    #[schema(example = "A new thread was created")]
    pub description: &'static str,
}

const fn event(name: &'static str, description: &'static str) -> EventType {
    EventType { name, description }
}

/// Every event, in the spec's order.
pub const CATALOGUE: &[EventType] = &[
    event("thread.created", "A new thread was created"),
    event("thread.deleted", "A thread was deleted"),
    event("thread.message_added", "A message was added to a thread"),
    event("thread.member_joined", "A member joined a thread"),
    event("thread.member_left", "A member left a thread"),
    event(
        "conversation.session_started",
        "An active conversation session started",
    ),
    event(
        "conversation.session_completed",
        "An active conversation session completed",
    ),
    event("conversation.session_ended", "A conversation session ended"),
    event("connector.connected", "An OAuth connector was connected"),
    event(
        "context.ingestion.started",
        "A context ingestion job started",
    ),
    event(
        "context.ingestion.running",
        "A context ingestion job is running",
    ),
    event(
        "context.ingestion.succeeded",
        "A context ingestion job completed",
    ),
    event("context.ingestion.failed", "A context ingestion job failed"),
    event(
        "context.source.paused",
        "A context source was auto-paused after consecutive failures",
    ),
    event(
        "context.installation.suspended",
        "A context installation was suspended due to auth errors",
    ),
    event("credential.created", "A new credential was created"),
    event("credential.updated", "A credential was updated"),
    event("email.received", "An inbound email was received"),
    event("email.processed", "An email was processed"),
    event(
        "agent_session.started",
        "An agent session started in a thread",
    ),
    event("agent_session.stopped", "An agent session stopped"),
    event(
        "agent_session.event_received",
        "An agent session received a chat event",
    ),
];

/// The catalogue entry for `name`, if it is a platform event.
pub fn find(name: &str) -> Option<&'static EventType> {
    CATALOGUE.iter().find(|e| e.name == name)
}

/// Why `name` is not an event, in the API's words: a near miss suggests the
/// event meant, and the catalogue's endpoint is named.
pub fn unknown_event_message(name: &str) -> String {
    let names = CATALOGUE.iter().map(|e| e.name);
    match closest(name, names) {
        Some(meant) => format!(
            "`{name}` is not a platform event; did you mean `{meant}`? \
             (GET /apps/:app_id/automations/events lists them)"
        ),
        None => format!(
            "`{name}` is not a platform event (GET /apps/:app_id/automations/events lists them)"
        ),
    }
}

/// The candidate closest to `name` when it is a near miss: a typo, a letter
/// case slip or a word left off (edit distance at most a third of the
/// name's length, and at most 4), else `None`. Case-insensitive.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let allowed = (name.chars().count() / 3).clamp(1, 4);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&name, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_event_is_listed_once() {
        // The spec's tables list 22 events: thread 5, conversation session 3,
        // connector 1, context 6, credential 2, email 2, agent session 3.
        assert_eq!(CATALOGUE.len(), 22);
        let mut names: Vec<_> = CATALOGUE.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn names_are_lowercase_dotted() {
        for event in CATALOGUE {
            assert!(event.name.contains('.'), "{}", event.name);
            assert!(
                event
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{}",
                event.name
            );
            assert!(!event.description.is_empty());
        }
    }

    #[test]
    fn find_knows_spec_events_and_nothing_else() {
        assert_eq!(
            find("thread.member_joined").unwrap().description,
            "A member joined a thread"
        );
        assert!(find("conversation.session_started").is_some());
        assert!(find("workflow.scheduled").is_none());
        assert!(find("thread.exploded").is_none());
    }

    #[test]
    fn near_misses_suggest_the_event_meant() {
        let names = || CATALOGUE.iter().map(|e| e.name);
        assert_eq!(
            closest("thread.member_join", names()),
            Some("thread.member_joined")
        );
        assert_eq!(closest("Thread.Created", names()), Some("thread.created"));
        assert_eq!(closest("email.recieved", names()), Some("email.received"));
        assert_eq!(closest("billing.invoice_paid", names()), None);
        assert_eq!(closest("x", names()), None);
        assert!(
            unknown_event_message("thread.member_join")
                .contains("did you mean `thread.member_joined`?")
        );
        assert!(!unknown_event_message("nothing.like.it").contains("did you mean"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
