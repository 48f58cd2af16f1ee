//! Identifiers: app ids (chosen by operators) and the `aut_`, `atr_`, `cfg_`,
//! `key_` ids the host mints.
//!
//! A minted id is a prefix plus 26 lowercase Crockford base32 characters
//! encoding 128 bits: 48 bits of milliseconds since the Unix epoch, then 80
//! bits that [`IdSequence`] keeps strictly increasing. So ids sort by creation
//! time, byte-wise, which the store relies on to list runs newest-first.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Lowercase Crockford base32 (no i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters after the prefix.
pub const SUFFIX_LEN: usize = 26;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not of the form `<prefix><26 base32 characters>`.
    #[error(
        "`{value}` is not a valid {what} id (expected `{prefix}` followed by 26 base32 characters)"
    )]
    Malformed {
        what: &'static str,
        prefix: &'static str,
        value: String,
    },
    /// An app id outside 1–64 characters of `[A-Za-z0-9_-]`.
    #[error("`{0}` is not a valid app id (1-64 characters of A-Z, a-z, 0-9, `_` and `-`)")]
    App(String),
}

/// Mints strictly increasing 128-bit id values from a clock reading and
/// randomness, both passed in.
///
/// Within one millisecond (or if the clock steps back) the next value is the
/// previous one plus one, so ids never repeat or go backwards in one process.
#[derive(Debug, Default)]
pub struct IdSequence {
    last: u128,
}

impl IdSequence {
    /// The next value: `unix_ms` in the top 48 bits, `random` (80 bits used)
    /// below, or `previous + 1` when that would not be larger.
    pub fn next(&mut self, unix_ms: u64, random: u128) -> u128 {
        let candidate = (u128::from(unix_ms & 0xffff_ffff_ffff) << 80) | (random & ((1 << 80) - 1));
        self.last = if candidate > self.last {
            candidate
        } else {
            self.last + 1
        };
        self.last
    }
}

fn encode(value: u128) -> String {
    (0..SUFFIX_LEN)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

fn is_suffix(s: &str) -> bool {
    // 26 characters carry 130 bits: the first one must be 0-7.
    s.len() == SUFFIX_LEN
        && s.bytes().all(|b| ALPHABET.contains(&b))
        && matches!(s.as_bytes()[0], b'0'..=b'7')
}

macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, example = json!(concat!($prefix, "01jdqm3k5v8x2n7w4c9b6e1f0a")))]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// The id for a value from [`IdSequence::next`].
            pub fn from_value(value: u128) -> Self {
                $name(format!("{}{}", $prefix, encode(value)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Case-insensitive (`AUT_01…` is `aut_01…`): ids are minted
            /// in lowercase, but people copy them through tools that shout.
            fn from_str(s: &str) -> Result<Self, IdError> {
                let id = s.to_ascii_lowercase();
                match id.strip_prefix($prefix) {
                    Some(suffix) if is_suffix(suffix) => Ok($name(id)),
                    _ => Err(IdError::Malformed {
                        what: $what,
                        prefix: $prefix,
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

minted_id!(
    /// An automation (`aut_…`).
    AutomationId,
    "aut_",
    "automation"
);
minted_id!(
    /// An automation run (`atr_…`).
    RunId,
    "atr_",
    "run"
);
minted_id!(
    /// A WorkflowGraph config, i.e. an uploaded component (`cfg_…`).
    ConfigId,
    "cfg_",
    "config"
);
minted_id!(
    /// An API key's public id (`key_…`); the secret itself is never stored.
    KeyId,
    "key_",
    "API key"
);

/// An app: the namespace every automation, config and run lives in.
/// 1–64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "default")]
pub struct AppId(String);

impl AppId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(AppId(s.to_owned()))
        } else {
            Err(IdError::App(s.to_owned()))
        }
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_have_prefix_and_26_lowercase_characters() {
        let id = RunId::from_value(IdSequence::default().next(1_764_000_000_000, 12345));
        let suffix = id.as_str().strip_prefix("atr_").unwrap();
        assert_eq!(suffix.len(), 26);
        assert!(suffix.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(id.as_str().parse::<RunId>().unwrap(), id);
    }

    #[test]
    fn ids_increase_within_a_millisecond_and_when_the_clock_steps_back() {
        let mut sequence = IdSequence::default();
        let first = AutomationId::from_value(sequence.next(1_000, u128::MAX));
        let same_ms = AutomationId::from_value(sequence.next(1_000, 0));
        let clock_back = AutomationId::from_value(sequence.next(999, 5));
        let later = AutomationId::from_value(sequence.next(2_000, 0));
        assert!(first < same_ms && same_ms < clock_back && clock_back < later);
    }

    #[test]
    fn ids_sort_by_time() {
        let mut a = IdSequence::default();
        let mut b = IdSequence::default();
        let early = ConfigId::from_value(a.next(1_000, u128::MAX));
        let late = ConfigId::from_value(b.next(1_001, 0));
        assert!(early < late);
    }

    #[test]
    fn malformed_ids_are_refused_with_the_kind_named() {
        for bad in [
            "aut_",
            "atr_01jdqm3k5v8x2n7w4c9b6e1f0a",
            "aut_01jdqm3k5v8x2n7w4c9b6e1f0",
            "aut_91jdqm3k5v8x2n7w4c9b6e1f0a",
            "aut_01jdqm3k5v8x2n7w4c9b6e1f0u",
        ] {
            let error = bad.parse::<AutomationId>().unwrap_err();
            assert!(error.to_string().contains("automation id"), "{error}");
        }
        assert!(
            "aut_01jdqm3k5v8x2n7w4c9b6e1f0a"
                .parse::<AutomationId>()
                .is_ok()
        );
    }

    #[test]
    fn ids_parse_case_insensitively_to_their_lowercase_form() {
        let id: AutomationId = "AUT_01JDQM3K5V8X2N7W4C9B6E1F0A".parse().unwrap();
        assert_eq!(id.as_str(), "aut_01jdqm3k5v8x2n7w4c9b6e1f0a");
        let run: RunId = "Atr_01jdqm3k5v8x2n7w4c9B6E1F0A".parse().unwrap();
        assert_eq!(run.as_str(), "atr_01jdqm3k5v8x2n7w4c9b6e1f0a");
    }

    #[test]
    fn app_ids_are_1_to_64_safe_characters() {
        for good in ["default", "a", "My_App-2", &"x".repeat(64)] {
            assert!(good.parse::<AppId>().is_ok(), "{good}");
        }
        for bad in ["", "has space", "dot.ted", "slash/", "é", &"x".repeat(65)] {
            assert!(bad.parse::<AppId>().is_err(), "{bad:?}");
        }
    }
}
