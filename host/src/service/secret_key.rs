//! The host's secret key: what seals app secrets at rest, where it comes
//! from, and the check that it opens what the store holds.
//!
//! - **Cipher**: AES-256-GCM-SIV (aws-lc-rs, already linked for TLS) with a
//!   random 96-bit nonce per write. GCM-SIV stays safe if a random nonce ever
//!   repeats (it then only reveals that the same value was written twice).
//!   The associated data is `automata secret v1`, the app id and the name,
//!   so a sealed value copied to another secret or app does not open.
//! - **Key**: 32 bytes, from `AUTOMATA_SECRET_KEY` (64 hex digits or base64,
//!   e.g. `openssl rand -hex 32`), else from `<data-dir>/secret-key`, which
//!   the first start generates (mode 0600). A key file readable by group or
//!   others is refused, as ssh refuses such a private key.
//! - **Key id**: the first 16 hex digits of SHA-256 over a fixed label and the
//!   key. Each sealed value records it, so a start with another key is refused
//!   with both ids named, before any run reads garbage (AEAD would refuse to
//!   open it anyway).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

use crate::domain::ids::AppId;
use crate::domain::secret::{Sealed, SecretName};
use crate::store::{SecretStore, StoreError};

/// The environment variable holding the key.
pub const SECRET_KEY_ENV: &str = "AUTOMATA_SECRET_KEY";
/// The key file in the data directory, used when the variable is not set.
pub const SECRET_KEY_FILE: &str = "secret-key";
/// Bytes of key.
pub const KEY_BYTES: usize = 32;
/// The algorithm name recorded with each sealed value.
const ALGORITHM: &str = "AES-256-GCM-SIV";
/// Prefix of every value's associated data.
const AAD_LABEL: &[u8] = b"automata secret v1";
/// Prefix hashed with the key to name it.
const KEY_ID_LABEL: &[u8] = b"automata secret key id\0";

/// Why the key could not be had or used.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The text is not 32 bytes in hex or base64 (never quoted: it may be
    /// a key).
    #[error(
        "{origin} is not a secret key: expected 32 bytes as 64 hex digits or as base64 \
         (make one with `openssl rand -hex 32`)"
    )]
    Malformed { origin: String },
    /// The key file can be read by others.
    #[error(
        "the secret key file {} can be read by other users (mode {mode:03o}); \
         run `chmod 600 {}`",
        path.display(), path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    /// Reading or writing the key file failed.
    #[error("cannot {action} the secret key file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key does not open the secrets the store holds.
    #[error(
        "{origin} (key id {key_id}) is not the key the stored secrets were sealed with \
         ({sealed}): start with that key — the `{SECRET_KEY_FILE}` file of this data directory \
         or the {SECRET_KEY_ENV} used before — or, if it is lost, start once with \
         --discard-unreadable-secrets to delete those secrets and set them again"
    )]
    Mismatch {
        origin: String,
        key_id: String,
        sealed: String,
    },
    /// The key file is gone but secrets sealed with it remain.
    #[error(
        "the data directory holds {count} secret(s) sealed with key {sealed_with}, but its key \
         file {} is missing and {SECRET_KEY_ENV} is not set: restore the key file (from where \
         the data directory was backed up) or set {SECRET_KEY_ENV}; if the key is lost, start \
         once with --discard-unreadable-secrets to delete those secrets and set them again",
        path.display()
    )]
    Missing {
        path: PathBuf,
        count: usize,
        sealed_with: String,
    },
    /// Making randomness or sealing failed (the system's random source).
    #[error("cannot seal the secret: {0}")]
    Crypto(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed with another key.
    #[error("it was sealed with another key ({0})")]
    OtherKey(String),
    /// Tampered with, moved from another secret, or damaged.
    #[error("it does not open with this key: damaged, or copied from another secret")]
    Damaged,
}

/// The key that seals app secrets. Cheap to clone; `Debug` shows its id only.
#[derive(Clone)]
pub struct SecretKey {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    cipher: RandomizedNonceKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; KEY_BYTES]) -> Result<Self, SecretKeyError> {
        let cipher = RandomizedNonceKey::new(&AES_256_GCM_SIV, bytes)
            .map_err(|_| SecretKeyError::Crypto("the cipher refused the key"))?;
        let digest = Sha256::new()
            .chain_update(KEY_ID_LABEL)
            .chain_update(bytes)
            .finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(SecretKey {
            inner: Arc::new(Inner { id, cipher }),
        })
    }

    /// A new random key, and its text (64 hex digits) for the key file.
    pub fn generate() -> Result<(Self, String), SecretKeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| SecretKeyError::Crypto("no randomness for a new key"))?;
        let text = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok((Self::from_bytes(&bytes)?, text))
    }

    /// The key in `text`: 64 hex digits, or base64 of 32 bytes (surrounding
    /// whitespace ignored). `origin` names where it came from, for the error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SecretKeyError> {
        let text = text.trim();
        let malformed = || SecretKeyError::Malformed {
            origin: origin.to_owned(),
        };
        let bytes: Vec<u8> = if text.len() == 2 * KEY_BYTES && text.is_ascii() {
            (0..KEY_BYTES)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<_, _>>()
                .map_err(|_| malformed())?
        } else {
            BASE64
                .decode(text)
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(text.trim_end_matches('='))
                })
                .map_err(|_| malformed())?
        };
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| malformed())?;
        Self::from_bytes(&bytes)
    }

    /// The key's id: 16 hex digits naming it without revealing it.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    fn aad(app: &AppId, name: &SecretName) -> Vec<u8> {
        [
            AAD_LABEL,
            b"\0",
            app.as_str().as_bytes(),
            b"\0",
            name.as_str().as_bytes(),
        ]
        .concat()
    }

    /// Seals `value` as the secret `name` of `app`, under a fresh nonce.
    pub fn seal(
        &self,
        app: &AppId,
        name: &SecretName,
        value: &str,
    ) -> Result<Sealed, SecretKeyError> {
        let mut in_out = value.as_bytes().to_vec();
        let nonce = self
            .inner
            .cipher
            .seal_in_place_append_tag(Aad::from(Self::aad(app, name)), &mut in_out)
            .map_err(|_| SecretKeyError::Crypto("sealing failed"))?;
        Ok(Sealed {
            key_id: self.inner.id.clone(),
            algorithm: ALGORITHM.to_owned(),
            nonce: BASE64.encode(nonce.as_ref()),
            ciphertext: BASE64.encode(&in_out),
        })
    }

    /// Opens the secret `name` of `app` sealed as `sealed`.
    pub fn open(
        &self,
        app: &AppId,
        name: &SecretName,
        sealed: &Sealed,
    ) -> Result<String, OpenError> {
        if sealed.key_id != self.inner.id {
            return Err(OpenError::OtherKey(sealed.key_id.clone()));
        }
        if sealed.algorithm != ALGORITHM {
            return Err(OpenError::Damaged);
        }
        let nonce: [u8; NONCE_LEN] = BASE64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Damaged)?;
        let mut in_out = BASE64
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Damaged)?;
        let plain = self
            .inner
            .cipher
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(app, name)),
                &mut in_out,
            )
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| OpenError::Damaged)
    }
}

/// Where the server takes its key from.
#[derive(Debug, Clone, Default)]
pub struct SecretsConfig {
    /// The key given in [`SECRET_KEY_ENV`]; without it, the data
    /// directory's key file (generated on first start).
    pub key: Option<SecretKey>,
    /// Delete stored secrets sealed with another key instead of refusing to
    /// start (`serve --discard-unreadable-secrets`): for a lost key.
    pub discard_unreadable: bool,
}

/// The key for a server on `data_dir` (blocking: reads or writes the key
/// file, reads the store), checked against the secrets `store` holds:
/// refused when they were sealed with another key, unless `config` says to
/// discard them. See the module docs.
pub fn open_key(
    data_dir: &Path,
    config: &SecretsConfig,
    store: &dyn SecretStore,
) -> Result<SecretKey, SecretKeyError> {
    let path = data_dir.join(SECRET_KEY_FILE);
    let sealed_by = store.secret_key_ids()?;
    let (key, origin) = match &config.key {
        Some(key) => (key.clone(), SECRET_KEY_ENV.to_owned()),
        None => match read_key_file(&path)? {
            Some(key) => (key, format!("the key file {}", path.display())),
            None => {
                if let (Some((sealed_with, _)), false) =
                    (sealed_by.first(), config.discard_unreadable)
                {
                    return Err(SecretKeyError::Missing {
                        path,
                        count: sealed_by.iter().map(|(_, n)| n).sum(),
                        sealed_with: sealed_with.clone(),
                    });
                }
                let key = create_key_file(&path)?;
                tracing::info!(
                    path = %path.display(),
                    key_id = key.id(),
                    "generated the key that seals app secrets; back it up apart from the data"
                );
                (key, format!("the new key file {}", path.display()))
            }
        },
    };
    let others: Vec<&(String, usize)> = sealed_by.iter().filter(|(id, _)| id != key.id()).collect();
    if others.is_empty() {
        return Ok(key);
    }
    if config.discard_unreadable {
        let discarded = store.discard_secrets(key.id())?;
        tracing::warn!(
            discarded,
            key_id = key.id(),
            "deleted the secrets sealed with another key (--discard-unreadable-secrets); set them again"
        );
        return Ok(key);
    }
    let sealed = others
        .iter()
        .map(|(id, n)| format!("{n} with key {id}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(SecretKeyError::Mismatch {
        origin,
        key_id: key.id().to_owned(),
        sealed,
    })
}

fn read_key_file(path: &Path) -> Result<Option<SecretKey>, SecretKeyError> {
    let io = |action| {
        move |source| SecretKeyError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read")(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(io("read"))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretKeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    SecretKey::parse(&text, &format!("the key file {}", path.display())).map(Some)
}

fn create_key_file(path: &Path) -> Result<SecretKey, SecretKeyError> {
    use std::io::Write as _;
    let (key, text) = SecretKey::generate()?;
    let io = |source| SecretKeyError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    // `create_new`: two servers racing on one directory never overwrite a key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{text}").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str) -> AppId {
        id.parse().unwrap()
    }

    fn name(text: &str) -> SecretName {
        text.parse().unwrap()
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_are_named_not_shown() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let from_hex = SecretKey::parse(hex, "test").unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let from_base64 = SecretKey::parse(&format!(" {}\n", BASE64.encode(&bytes)), "t").unwrap();
        assert_eq!(from_hex.id(), from_base64.id());
        assert_eq!(from_hex.id().len(), 16);
        assert!(!format!("{from_hex:?}").contains("0011"), "{from_hex:?}");
        for bad in ["", "short", &hex[..62], &BASE64.encode([1u8; 31])] {
            let error = SecretKey::parse(bad, "AUTOMATA_SECRET_KEY").unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("AUTOMATA_SECRET_KEY is not a secret key"),
                "{error}"
            );
        }
    }

    #[test]
    fn sealed_values_open_only_as_the_same_secret_with_the_same_key() {
        let (key, _) = SecretKey::generate().unwrap();
        let value = "https://hooks.example.com/T0/B0/secret";
        let sealed = key.seal(&app("a"), &name("HOOK"), value).unwrap();
        assert!(!sealed.ciphertext.contains("hooks"));
        assert_eq!(key.open(&app("a"), &name("HOOK"), &sealed).unwrap(), value);
        // A fresh nonce each time: the same value seals differently.
        let again = key.seal(&app("a"), &name("HOOK"), value).unwrap();
        assert_ne!(again.nonce, sealed.nonce);
        assert_ne!(again.ciphertext, sealed.ciphertext);
        // Moved to another name or app: does not open.
        assert_eq!(
            key.open(&app("a"), &name("OTHER"), &sealed),
            Err(OpenError::Damaged)
        );
        assert_eq!(
            key.open(&app("b"), &name("HOOK"), &sealed),
            Err(OpenError::Damaged)
        );
        // Another key: named, not garbage.
        let (other, _) = SecretKey::generate().unwrap();
        assert_eq!(
            other.open(&app("a"), &name("HOOK"), &sealed),
            Err(OpenError::OtherKey(key.id().to_owned()))
        );
        let forged = Sealed {
            key_id: other.id().to_owned(),
            ..sealed.clone()
        };
        assert_eq!(
            other.open(&app("a"), &name("HOOK"), &forged),
            Err(OpenError::Damaged)
        );
        // A flipped bit is caught by the tag.
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let tampered = Sealed {
            ciphertext: BASE64.encode(bytes),
            ..sealed
        };
        assert_eq!(
            key.open(&app("a"), &name("HOOK"), &tampered),
            Err(OpenError::Damaged)
        );
    }

    #[test]
    fn the_key_file_is_generated_private_and_refused_when_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_KEY_FILE);
        let key = create_key_file(&path).unwrap();
        assert_eq!(read_key_file(&path).unwrap().unwrap().id(), key.id());
        assert!(create_key_file(&path).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = read_key_file(&path).unwrap_err();
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        assert!(read_key_file(&dir.path().join("absent")).unwrap().is_none());
    }
}
