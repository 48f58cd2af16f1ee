//! Who may do what: API keys, their roles, and the decision for one request.
//!
//! A key is `ak_` followed by 64 hex digits (256 random bits), sent as
//! `Authorization: Bearer <key>`. Only its SHA-256 is stored: for a secret
//! with 256 bits of entropy a plain SHA-256 cannot be searched back (a slow
//! password hash only helps guessable secrets, and would cost milliseconds on
//! every request), and the store can look a key up by its hash. Hashes are
//! compared in constant time.
//!
//! Roles: `admin` keys act on every app and manage apps and keys; an app key
//! has one role in its own app — `events` (only event intake), `read` (every
//! read) or `write` (read, every change, and event intake).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::ids::{AppId, KeyId};

/// What every key starts with.
pub const KEY_PREFIX: &str = "ak_";
/// How many characters of a key are kept and shown to tell keys apart.
pub const SHOWN_PREFIX_LEN: usize = 11;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, on every app, including managing apps and keys.
    Admin,
    /// Read and change everything of its app, and send its events.
    Write,
    /// Every read of its app.
    Read,
    /// Only `POST /apps/{app_id}/events`: the key an event producer holds.
    Events,
}

impl Role {
    /// The role's name as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Write => "write",
            Role::Read => "read",
            Role::Events => "events",
        }
    }

    /// Whether this role covers `need` (scope aside).
    pub fn allows(self, need: Need) -> bool {
        match need {
            Need::Public => true,
            Need::Admin => self == Role::Admin,
            Need::Write => matches!(self, Role::Admin | Role::Write),
            Need::Read => matches!(self, Role::Admin | Role::Write | Role::Read),
            Need::Intake => matches!(self, Role::Admin | Role::Write | Role::Events),
        }
    }
}

/// What a route requires, decided once per route (method + path template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: probes and the OpenAPI document.
    Public,
    /// An admin key: managing apps and keys, host-wide views.
    Admin,
    /// A key of the path's app that may read.
    Read,
    /// A key of the path's app that may change things.
    Write,
    /// A key of the path's app that may send events (`events` or `write`).
    Intake,
}

impl Need {
    /// The smallest role that meets this need, for messages.
    pub fn least_role(self) -> &'static str {
        match self {
            Need::Public => "none",
            Need::Admin => "admin",
            Need::Write => "write",
            Need::Read => "read",
            Need::Intake => "events",
        }
    }
}

/// An API key as stored (with its hash) — never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
}

/// An API key as shown (`GET …/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// `key_…`.
    pub id: KeyId,
    /// The app it acts on; absent for admin keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
    /// What it is for, e.g. `billing producer`.
    pub name: String,
    pub role: Role,
    /// The first characters of the secret, to tell keys apart (`ak_1f2e3d4c`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// The key that created it; absent for the bootstrap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it last authenticated a request (to within a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// After this instant the key is refused (401).
    pub expires_at: Option<DateTime<Utc>>,
}

/// The body of `POST /apps/{app_id}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What it is for, 1–200 characters.
    pub name: String,
    /// `events`, `read` or `write` (admin keys are not per app).
    pub role: Role,
    /// Optional expiry, RFC 3339, in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a new key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid `name`: {0}")]
    Name(&'static str),
    #[error(
        "invalid `role`: an app key is `events`, `read` or `write`; admin keys are not per app"
    )]
    AdminPerApp,
    #[error("invalid `expires_at`: {0} is not in the future")]
    Expired(DateTime<Utc>),
}

impl NewKey {
    /// Checks the request against `now`.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), KeyError> {
        if self.name.trim().is_empty() {
            return Err(KeyError::Name("must not be empty"));
        }
        if self.name.chars().count() > 200 {
            return Err(KeyError::Name("longer than 200 characters"));
        }
        if self.name.chars().any(char::is_control) {
            return Err(KeyError::Name("must not contain control characters"));
        }
        if self.role == Role::Admin {
            return Err(KeyError::AdminPerApp);
        }
        match self.expires_at {
            Some(at) if at <= now => Err(KeyError::Expired(at)),
            _ => Ok(()),
        }
    }
}

/// A freshly made key: the secret (shown once) and its record.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub secret: String,
    pub record: KeyRecord,
}

/// What a key to issue is: everything but its secret and times.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub id: KeyId,
    /// `None` for an admin key.
    pub app_id: Option<AppId>,
    pub name: String,
    pub role: Role,
    pub created_by: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Makes a key from 32 random bytes (the caller's randomness) at `at`.
pub fn issue(spec: KeySpec, random: [u8; 32], at: DateTime<Utc>) -> IssuedKey {
    let secret = format!("{KEY_PREFIX}{}", hex(&random));
    let record = KeyRecord {
        key: ApiKey {
            id: spec.id,
            app_id: spec.app_id,
            name: spec.name,
            role: spec.role,
            prefix: secret[..SHOWN_PREFIX_LEN].to_owned(),
            created_at: at,
            created_by: spec.created_by,
            last_used_at: None,
            expires_at: spec.expires_at,
        },
        secret_sha256: hex(&secret_hash(&secret)),
    };
    IssuedKey { secret, record }
}

/// SHA-256 of a presented secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase hex (`None` if it is not hex).
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether two hashes are equal, in time independent of where they differ.
pub fn hashes_match(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (`--no-auth`): everything is allowed.
    Anyone,
    /// A key: its id (`key_…`, or `env` for `AUTOMATA_ADMIN_TOKEN`), app and role.
    Key {
        id: String,
        app: Option<AppId>,
        role: Role,
    },
}

impl Principal {
    /// The key id recorded as `created_by` & co (`None` without authentication).
    pub fn key_id(&self) -> Option<String> {
        match self {
            Principal::Anyone => None,
            Principal::Key { id, .. } => Some(id.clone()),
        }
    }
}

/// A request refused for who made it (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// Decides whether `principal` may do something that needs `need` on the app
/// in the path (`None` for a path outside any app). `action` names the
/// request (`POST /apps/{app_id}/automations`) in messages.
pub fn decide(
    principal: &Principal,
    need: Need,
    path_app: Option<&AppId>,
    action: &str,
) -> Result<(), Forbidden> {
    let (app, role) = match principal {
        Principal::Anyone => return Ok(()),
        _ if need == Need::Public => return Ok(()),
        Principal::Key {
            role: Role::Admin, ..
        } => return Ok(()),
        Principal::Key { app, role, .. } => (app.as_ref(), *role),
    };
    let Some(key_app) = app else {
        return Err(Forbidden(format!(
            "this key has role `{}` but no app; {action} needs role `{}`",
            role.as_str(),
            need.least_role()
        )));
    };
    if need == Need::Admin || path_app.is_none() {
        return Err(Forbidden(format!(
            "{action} needs an admin key; this key belongs to app `{key_app}`"
        )));
    }
    if let Some(path_app) = path_app
        && path_app != key_app
    {
        return Err(Forbidden(format!(
            "this key belongs to app `{key_app}` and cannot act on app `{path_app}`"
        )));
    }
    if !role.allows(need) {
        return Err(Forbidden(format!(
            "this key has role `{}`; {action} needs role `{}`",
            role.as_str(),
            need.least_role()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(app: &str, role: Role) -> Principal {
        Principal::Key {
            id: "key_x".into(),
            app: Some(app.parse().unwrap()),
            role,
        }
    }

    fn app(id: &str) -> AppId {
        id.parse().unwrap()
    }

    #[test]
    fn roles_cover_what_the_issue_says() {
        use Need::*;
        let table = [
            (Role::Events, [false, false, false, true]),
            (Role::Read, [false, true, false, false]),
            (Role::Write, [false, true, true, true]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (need, expected) in [Admin, Read, Write, Intake].into_iter().zip(allowed) {
                assert_eq!(role.allows(need), expected, "{role:?} {need:?}");
            }
        }
    }

    #[test]
    fn an_app_key_stays_in_its_app() {
        let a = app("a");
        let b = app("b");
        assert!(decide(&key("a", Role::Write), Need::Write, Some(&a), "x").is_ok());
        let refused = decide(&key("a", Role::Write), Need::Read, Some(&b), "x").unwrap_err();
        assert!(refused.0.contains("belongs to app `a`"), "{refused}");
        let refused = decide(&key("a", Role::Write), Need::Admin, Some(&a), "POST /x").unwrap_err();
        assert!(refused.0.contains("needs an admin key"), "{refused}");
        let refused = decide(&key("a", Role::Read), Need::Write, Some(&a), "POST /y").unwrap_err();
        assert_eq!(
            refused.0,
            "this key has role `read`; POST /y needs role `write`"
        );
        let refused = decide(&key("a", Role::Events), Need::Read, Some(&a), "GET /z").unwrap_err();
        assert!(refused.0.contains("needs role `read`"), "{refused}");
    }

    #[test]
    fn admin_public_and_no_auth_pass() {
        let admin = Principal::Key {
            id: "env".into(),
            app: None,
            role: Role::Admin,
        };
        assert!(decide(&admin, Need::Admin, None, "x").is_ok());
        assert!(decide(&admin, Need::Write, Some(&app("b")), "x").is_ok());
        assert!(decide(&Principal::Anyone, Need::Admin, None, "x").is_ok());
        assert!(decide(&key("a", Role::Events), Need::Public, None, "x").is_ok());
    }

    #[test]
    fn a_key_is_shown_once_and_stored_as_its_hash() {
        let at = DateTime::from_timestamp(1_772_000_000, 0).unwrap();
        let spec = KeySpec {
            id: KeyId::from_value(1),
            app_id: Some(app("a")),
            name: "producer".into(),
            role: Role::Events,
            created_by: None,
            expires_at: None,
        };
        let issued = issue(spec, [0xab; 32], at);
        assert_eq!(issued.secret.len(), 3 + 64);
        assert!(issued.secret.starts_with("ak_abab"));
        assert_eq!(issued.record.key.prefix, "ak_abababab");
        let stored = serde_json::to_string(&issued.record).unwrap();
        assert!(!stored.contains(&issued.secret), "{stored}");
        let hash = secret_hash(&issued.secret);
        assert_eq!(issued.record.secret_sha256, hex(&hash));
        assert!(hashes_match(&hash, &secret_hash(&issued.secret)));
        assert!(!hashes_match(&hash, &secret_hash("ak_other")));
        assert_eq!(hex_decode(&issued.record.secret_sha256).unwrap(), hash);
        assert_eq!(hex_decode("0g"), None);
    }

    #[test]
    fn new_keys_are_checked() {
        let now = DateTime::from_timestamp(1_772_000_000, 0).unwrap();
        let new = |role, expires_at| NewKey {
            name: "n".into(),
            role,
            expires_at,
        };
        assert!(new(Role::Read, None).validate(now).is_ok());
        assert_eq!(
            new(Role::Admin, None).validate(now),
            Err(KeyError::AdminPerApp)
        );
        assert_eq!(
            new(Role::Read, Some(now)).validate(now),
            Err(KeyError::Expired(now))
        );
    }
}
