//! App secrets: names, the rules for values, and the record the store keeps
//! (the value sealed, never in plain text).
//!
//! A secret belongs to an app and is read by the workflows of the automations
//! granted it (`capabilities.secrets`). Its value is write-only over the API:
//! `PUT` sets it, `GET` lists names and dates, nothing shows it again.
//!
//! Rules (checked at `PUT`, so a run never meets a value it cannot mask):
//! - a **name** is 1–64 characters of `A-Z`, `0-9` and `_`, not starting with
//!   a digit — the shape of an environment variable;
//! - a **value** is 8 bytes to 64 KiB of UTF-8. The lower bound is for
//!   masking: the host replaces every occurrence of a value in a run's output,
//!   payload and error by `***`, and a value of a few bytes ("1234", "true")
//!   would both mangle unrelated text and tell where it occurs.
//! - at most [`MAX_SECRETS_PER_APP`] secrets per app.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::automation::Automation;
use super::capabilities;
use super::ids::{AppId, AutomationId};

/// Shortest secret value, in bytes (see the module docs: masking).
pub const MIN_VALUE_BYTES: usize = 8;
/// Longest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most secrets one app holds.
pub const MAX_SECRETS_PER_APP: usize = 1_000;

/// A secret's name: `[A-Z_][A-Z0-9_]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

/// Why a secret name or value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The name breaks the rule; `suggestion` is the name in upper case when
    /// that would be valid.
    #[error(
        "invalid secret name `{name}`: use 1–64 characters of A–Z, 0–9 and `_`, not starting \
         with a digit (like an environment variable){}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
    )]
    InvalidName {
        name: String,
        suggestion: Option<String>,
    },
    /// The value is shorter than [`MIN_VALUE_BYTES`].
    #[error(
        "a secret value must be at least {MIN_VALUE_BYTES} bytes (this one has {0}): shorter \
         values cannot be masked in run output without mangling unrelated text"
    )]
    TooShort(usize),
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("a secret value may be at most {MAX_VALUE_BYTES} bytes (64 KiB); this one has {0}")]
    TooLong(usize),
}

impl SecretName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one naming rule, shared with the grants that name secrets
/// ([`capabilities::check_secret_name`]), so every secret can be granted.
fn valid_name(name: &str) -> bool {
    capabilities::check_secret_name(name).is_ok()
}

impl FromStr for SecretName {
    type Err = SecretError;

    fn from_str(name: &str) -> Result<Self, SecretError> {
        if valid_name(name) {
            return Ok(SecretName(name.to_owned()));
        }
        let upper = name.to_ascii_uppercase().replace('-', "_");
        let shown = name
            .chars()
            .take(capabilities::MAX_SECRET_NAME_LEN + 16)
            .collect::<String>()
            .escape_debug()
            .to_string();
        Err(SecretError::InvalidName {
            name: shown,
            suggestion: valid_name(&upper).then_some(upper),
        })
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a value against the size rules (any UTF-8 text, newlines included).
pub fn check_value(value: &str) -> Result<(), SecretError> {
    match value.len() {
        n if n < MIN_VALUE_BYTES => Err(SecretError::TooShort(n)),
        n if n > MAX_VALUE_BYTES => Err(SecretError::TooLong(n)),
        _ => Ok(()),
    }
}

/// The body of `PUT /apps/{app_id}/secrets/{name}`. Its `Debug` never shows
/// the value.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The secret, 8 bytes to 64 KiB of text. Stored encrypted; never shown
    /// again.
    #[schema(example = "https://hooks.example.com/T000/B000/XXXX")]
    #[serde(deserialize_with = "text_only")]
    pub value: String,
}

/// A JSON string, refused otherwise without quoting what was sent (serde's
/// own message would echo a number or a boolean).
fn text_only<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    const EXPECTED: &str = "the secret as a JSON string";
    fn refuse<E: serde::de::Error>() -> Result<String, E> {
        Err(E::custom(format!("`value` must be {EXPECTED}")))
    }
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
            refuse()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
            refuse()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
            refuse()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
            refuse()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            refuse()
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
            refuse()
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
            refuse()
        }
    }
    // `any`: serde_json answers `deserialize_string` on a non-string itself,
    // quoting it.
    deserializer.deserialize_any(Text)
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

/// A value sealed with the host's secret key: AEAD ciphertext (with its
/// tag) and the nonce it was sealed with, both base64; the associated data
/// is the app and the name, so a sealed value moved to another secret does
/// not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which key sealed it: a fingerprint of the key, not the key
    /// (`SecretKey::id` in the service).
    pub key_id: String,
    /// The AEAD algorithm, e.g. `AES-256-GCM`.
    pub algorithm: String,
    /// The 96-bit nonce, random per write (base64).
    pub nonce: String,
    /// Ciphertext followed by the 128-bit tag (base64).
    pub ciphertext: String,
}

/// A secret as stored: its name, dates and audit fields, and its value
/// sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub app_id: AppId,
    pub name: SecretName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    pub sealed: Sealed,
}

/// An automation granted a secret, as shown next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Grantee {
    /// The automation's id (`aut_…`).
    pub id: AutomationId,
    /// The automation's name.
    pub name: String,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Secret {
    /// `[A-Z_][A-Z0-9_]{0,63}`.
    #[schema(value_type = String, example = "SLACK_WEBHOOK")]
    pub name: SecretName,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When its value was last set.
    pub updated_at: DateTime<Utc>,
    /// The key that first set it (`key_…`; `env` for `AUTOMATA_ADMIN_TOKEN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The key that last set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// The automations whose `capabilities.secrets` name it: their
    /// workflows may read it.
    pub granted_to: Vec<Grantee>,
}

impl Secret {
    /// The view of a stored secret, with the automations of `automations`
    /// granted it.
    pub fn view(record: &SecretRecord, automations: &[Automation]) -> Secret {
        Secret {
            name: record.name.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            created_by: record.created_by.clone(),
            updated_by: record.updated_by.clone(),
            granted_to: automations
                .iter()
                .filter(|a| a.capabilities.grants_secret(record.name.as_str()))
                .map(|a| Grantee {
                    id: a.id.clone(),
                    name: a.name.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shaped_like_environment_variables() {
        for good in ["SLACK_WEBHOOK", "_", "A", "API_KEY_2", &"X".repeat(64)] {
            assert_eq!(good.parse::<SecretName>().unwrap().as_str(), good);
        }
        for bad in ["", "2FA", "A-B", "A B", "É", &"X".repeat(65), "a\u{0}"] {
            assert!(bad.parse::<SecretName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_refused_name_suggests_its_upper_case_form() {
        let error = "slack-webhook".parse::<SecretName>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid secret name `slack-webhook`: use 1–64 characters of A–Z, 0–9 and `_`, \
             not starting with a digit (like an environment variable); did you mean \
             `SLACK_WEBHOOK`?"
        );
        let error = "9LIVES".parse::<SecretName>().unwrap_err();
        assert!(!error.to_string().contains("did you mean"), "{error}");
    }

    #[test]
    fn values_have_a_floor_for_masking_and_a_ceiling() {
        assert_eq!(check_value("1234"), Err(SecretError::TooShort(4)));
        assert!(check_value("12345678").is_ok());
        assert!(check_value(&"x".repeat(MAX_VALUE_BYTES)).is_ok());
        assert_eq!(
            check_value(&"x".repeat(MAX_VALUE_BYTES + 1)),
            Err(SecretError::TooLong(MAX_VALUE_BYTES + 1))
        );
        assert!(check_value("line one\nline two\n").is_ok());
    }

    #[test]
    fn a_value_that_is_not_text_is_refused_without_being_quoted() {
        for body in [
            r#"{"value": 12345678901}"#,
            r#"{"value": true}"#,
            r#"{"value": ["x"]}"#,
        ] {
            let error = serde_json::from_str::<SecretValue>(body)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("`value` must be the secret as a JSON string"),
                "{error}"
            );
            assert!(!error.contains("12345678901"), "{error}");
        }
        let body: SecretValue = serde_json::from_str(r#"{"value": "a\nb c d e f"}"#).unwrap();
        assert_eq!(body.value, "a\nb c d e f");
    }

    #[test]
    fn the_request_body_never_prints_its_value() {
        let body = SecretValue {
            value: "hunter2hunter2".into(),
        };
        let shown = format!("{body:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("14 bytes"), "{shown}");
    }
}
