//! Platform events sent to the host: what intake accepts and what it answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::events;
use super::ids::{AppId, RunId};
use super::text;
use super::workflow::{SCHEDULED_TRIGGER, TriggerInput};

/// Longest idempotency key accepted, in characters (Unicode scalar values,
/// not bytes: 255 `é` are as welcome as 255 `e`).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The body of `POST /apps/:app_id/events`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingEvent {
    /// A platform event name from the catalogue.
    #[schema(example = "thread.member_joined")]
    pub trigger: String,
    /// Event-specific data (a JSON object; `{}` when absent).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    /// 1–255 characters. A repeat of the same request with the same key
    /// within 24 hours creates no runs and gets the first answer back; the
    /// same key with a different `trigger` or `payload` is a 422.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Why an event was refused: a 400 saying which part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not in the catalogue.
    #[error("{}", events::unknown_event_message(.0))]
    UnknownEvent(String),
    /// Empty, too long or with control or format characters.
    #[error(
        "invalid `idempotency_key`: must be 1-{MAX_IDEMPOTENCY_KEY_LEN} characters, not only whitespace, without control or invisible format characters"
    )]
    InvalidIdempotencyKey,
}

impl IncomingEvent {
    /// Checks the event name and key.
    pub fn validate(&self) -> Result<(), EventError> {
        if events::find(&self.trigger).is_none() {
            return Err(EventError::UnknownEvent(self.trigger.clone()));
        }
        if let Some(key) = &self.idempotency_key {
            let well_formed = !key.trim().is_empty()
                && key.chars().count() <= MAX_IDEMPOTENCY_KEY_LEN
                && text::invisible_char(key).is_none();
            if !well_formed {
                return Err(EventError::InvalidIdempotencyKey);
            }
        }
        Ok(())
    }

    /// A SHA-256 (hex) of what the event asks for — its `trigger` and
    /// `payload` (absent is `{}`), object keys in sorted order — so a repeat
    /// of an idempotency key can be told from a different request under it.
    pub fn request_sha256(&self) -> String {
        let mut canonical = Vec::new();
        write_canonical(
            &json!({"trigger": self.trigger, "payload": self.payload.clone().unwrap_or_default()}),
            &mut canonical,
        );
        Sha256::digest(&canonical)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The workflow input every matching automation's run gets: exactly the
    /// spec's `{"trigger", "payload"}`.
    pub fn input(&self) -> TriggerInput {
        TriggerInput {
            trigger: self.trigger.clone(),
            payload: Value::Object(self.payload.clone().unwrap_or_default()),
        }
    }
}

/// Writes `value` as JSON with every object's keys in sorted order, so equal
/// values give equal bytes whatever order they were sent in.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| key.as_str());
            out.push(b'{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(key.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// The input of a cron tick's run: `{"trigger": "workflow.scheduled",
/// "payload": {"scheduled_at": "<RFC 3339 UTC>"}}`.
pub fn scheduled_input(at: DateTime<Utc>) -> TriggerInput {
    TriggerInput {
        trigger: SCHEDULED_TRIGGER.to_owned(),
        payload: json!({ "scheduled_at": at.to_rfc3339_opts(SecondsFormat::Secs, true) }),
    }
}

/// The body of `POST /apps/:app_id/automations/:id/run`; both fields optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunNowRequest {
    /// A platform event or `workflow.scheduled`; default: the automation's own.
    #[serde(default)]
    pub trigger: Option<String>,
    /// The payload; default `{}`, or `{"scheduled_at": now}` for a scheduled trigger.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
}

impl RunNowRequest {
    /// The workflow input, with `event` (the automation's) as the default
    /// trigger and `now` as the default scheduled time.
    pub fn into_input(self, event: &str, now: DateTime<Utc>) -> Result<TriggerInput, String> {
        let trigger = self.trigger.unwrap_or_else(|| event.to_owned());
        if trigger != SCHEDULED_TRIGGER && events::find(&trigger).is_none() {
            return Err(format!(
                "invalid `trigger`: `{trigger}` is neither a platform event nor {SCHEDULED_TRIGGER}"
            ));
        }
        Ok(match self.payload {
            Some(payload) => TriggerInput {
                trigger,
                payload: Value::Object(payload),
            },
            None if trigger == SCHEDULED_TRIGGER => scheduled_input(now),
            None => TriggerInput {
                trigger,
                payload: json!({}),
            },
        })
    }
}

/// Intake's answer to an event, stored (when it has an idempotency key) with
/// its runs and replayed for a repeat of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventReceipt {
    /// The app the event was sent to.
    pub app_id: AppId,
    /// The event name.
    pub trigger: String,
    /// The key it was sent with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The runs created, one per matching running trigger automation.
    pub run_ids: Vec<RunId>,
    /// When the host accepted the event.
    pub received_at: DateTime<Utc>,
    /// The key that sent it (`key_…`, `env`); absent without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// [`IncomingEvent::request_sha256`] of the event it answered (stored;
    /// not part of the answer; absent in receipts from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub request_sha256: Option<String>,
}

impl EventReceipt {
    /// Whether this receipt answered a different request than one with
    /// `request_sha256` (a receipt without a digest matches any).
    pub fn answered_another_request(&self, request_sha256: &str) -> bool {
        self.request_sha256
            .as_deref()
            .is_some_and(|stored| stored != request_sha256)
    }

    /// The receipt as the API answers it, without the stored digest.
    pub fn into_answer(self) -> Self {
        EventReceipt {
            request_sha256: None,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(body: Value) -> Result<IncomingEvent, serde_json::Error> {
        serde_json::from_value(body)
    }

    #[test]
    fn input_is_exactly_trigger_and_payload() {
        let incoming =
            event(json!({"trigger": "thread.member_joined", "payload": {"user": "u1"}})).unwrap();
        assert_eq!(incoming.validate(), Ok(()));
        assert_eq!(
            serde_json::to_value(incoming.input()).unwrap(),
            json!({"trigger": "thread.member_joined", "payload": {"user": "u1"}})
        );
        let bare = event(json!({"trigger": "thread.created"})).unwrap();
        assert_eq!(bare.input().payload, json!({}));
    }

    #[test]
    fn unknown_events_and_bad_keys_are_refused() {
        let unknown = event(json!({"trigger": "thread.exploded"})).unwrap();
        assert_eq!(
            unknown.validate(),
            Err(EventError::UnknownEvent("thread.exploded".into()))
        );
        // The scheduler raises workflow.scheduled; it is not a platform event.
        let scheduled = event(json!({"trigger": "workflow.scheduled"})).unwrap();
        assert!(scheduled.validate().is_err());
        // The limit counts characters: 255 two-byte characters are fine.
        let accented = "é".repeat(MAX_IDEMPOTENCY_KEY_LEN);
        let keyed =
            event(json!({"trigger": "thread.created", "idempotency_key": accented})).unwrap();
        assert_eq!(keyed.validate(), Ok(()));
        for key in [
            "",
            " ",
            "\t \u{3000}",
            "a\nb",
            "join\u{200B}1",
            "\u{FEFF}key",
            &"k".repeat(256),
            &"é".repeat(256),
        ] {
            let keyed =
                event(json!({"trigger": "thread.created", "idempotency_key": key})).unwrap();
            assert_eq!(
                keyed.validate(),
                Err(EventError::InvalidIdempotencyKey),
                "{key:?}"
            );
        }
    }

    #[test]
    fn request_digests_compare_meaning_not_bytes() {
        let digest = |body: Value| event(body).unwrap().request_sha256();
        let first = digest(
            json!({"trigger": "thread.created", "payload": {"a": 1, "b": [true, {"y": null, "x": "é"}]}}),
        );
        assert_eq!(first.len(), 64);
        // Key order and the idempotency key itself do not matter.
        assert_eq!(
            first,
            digest(
                json!({"idempotency_key": "k", "payload": {"b": [true, {"x": "é", "y": null}], "a": 1}, "trigger": "thread.created"})
            )
        );
        // An absent payload is the empty one.
        assert_eq!(
            digest(json!({"trigger": "thread.created"})),
            digest(json!({"trigger": "thread.created", "payload": {}}))
        );
        for other in [
            json!({"trigger": "thread.created", "payload": {"a": 2, "b": [true, {"y": null, "x": "é"}]}}),
            json!({"trigger": "thread.deleted", "payload": {"a": 1, "b": [true, {"y": null, "x": "é"}]}}),
            json!({"trigger": "thread.created", "payload": {"a": 1, "b": [{"y": null, "x": "é"}, true]}}),
            json!({"trigger": "thread.created", "payload": {"a": "1", "b": [true, {"y": null, "x": "é"}]}}),
        ] {
            assert_ne!(first, digest(other.clone()), "{other}");
        }
    }

    #[test]
    fn scheduled_input_stamps_whole_seconds_in_utc() {
        let at = "2026-02-28T09:00:00.250Z".parse().unwrap();
        assert_eq!(
            serde_json::to_value(scheduled_input(at)).unwrap(),
            json!({"trigger": "workflow.scheduled", "payload": {"scheduled_at": "2026-02-28T09:00:00Z"}})
        );
    }

    #[test]
    fn run_now_defaults_to_the_automation_event() {
        let now = "2026-02-28T09:00:00Z".parse().unwrap();
        let input = RunNowRequest::default()
            .into_input("thread.created", now)
            .unwrap();
        assert_eq!(
            (input.trigger.as_str(), input.payload),
            ("thread.created", json!({}))
        );
        let input = RunNowRequest::default()
            .into_input(SCHEDULED_TRIGGER, now)
            .unwrap();
        assert_eq!(input, scheduled_input(now));
        let given: RunNowRequest =
            serde_json::from_value(json!({"trigger": "email.received", "payload": {"n": 1}}))
                .unwrap();
        let input = given.into_input("thread.created", now).unwrap();
        assert_eq!(
            (input.trigger.as_str(), input.payload),
            ("email.received", json!({"n": 1}))
        );
        let unknown: RunNowRequest = serde_json::from_value(json!({"trigger": "nope"})).unwrap();
        assert!(
            unknown
                .into_input("thread.created", now)
                .unwrap_err()
                .contains("`nope`")
        );
    }

    #[test]
    fn bodies_are_strict() {
        let error = event(json!({"trigger": "thread.created", "extra": 1})).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `extra`"),
            "{error}"
        );
        assert!(event(json!({"trigger": "thread.created", "payload": [1]})).is_err());
        assert!(event(json!({"payload": {}})).is_err());
    }
}
