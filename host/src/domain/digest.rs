//! A component's identity: the sha256 digest of its bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The sha256 digest of a component's bytes, shown as `sha256:<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentDigest([u8; 32]);

const PREFIX: &str = "sha256:";

impl ComponentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ComponentDigest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix (used to name
    /// files).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

/// Text that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a component digest (expected sha256: and 64 hex digits)")]
pub struct ParseDigestError(String);

impl FromStr for ComponentDigest {
    type Err = ParseDigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseDigestError(text.to_owned());
        let hex = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(ComponentDigest(bytes))
    }
}

impl Serialize for ComponentDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ComponentDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_and_parses_back() {
        let digest = ComponentDigest::of(b"abc");
        let text = digest.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<ComponentDigest>(), Ok(digest));
        assert_eq!(
            serde_json::from_value::<ComponentDigest>(serde_json::to_value(digest).unwrap())
                .unwrap(),
            digest
        );
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "ba7816bf",
            "sha256:xyz",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aé",
        ] {
            assert!(bad.parse::<ComponentDigest>().is_err(), "{bad}");
        }
    }
}
