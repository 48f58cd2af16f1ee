//! Apps and API keys: creating, listing and deleting them, and turning a
//! request's bearer token into a [`Principal`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::{AutomationChange, Service, ServiceError};
use crate::domain::access::{
    self, ApiKey, IssuedKey, KeyRecord, KeySpec, NewKey, Principal, Role, hashes_match, secret_hash,
};
use crate::domain::app::{App, NewApp};
use crate::domain::automation::AutomationStatus;
use crate::domain::ids::{AppId, KeyId};
use crate::store::{Cancellation, Store, StoreError};

tokio::task_local! {
    /// The key making the request being handled (`key_…`, or `env`), for
    /// the audit fields; set by the access middleware around each request.
    static ACTOR: Option<String>;
}

/// Runs `request` as made by `actor`: [`current_actor`] answers `actor`
/// inside it (on this task; code it spawns elsewhere must be handed it).
pub async fn acting_as<F: std::future::Future>(actor: Option<String>, request: F) -> F::Output {
    ACTOR.scope(actor, request).await
}

/// The key making the current request: what `created_by`, `updated_by` and
/// `requested_by` record. `None` outside a request (the scheduler, retries)
/// and without authentication.
pub fn current_actor() -> Option<String> {
    ACTOR.try_with(Clone::clone).ok().flatten()
}

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY: TimeDelta = TimeDelta::minutes(1);
/// The key id recorded for requests made with `AUTOMATA_ADMIN_TOKEN`.
pub const ENV_ADMIN_KEY_ID: &str = "env";
/// The shortest `AUTOMATA_ADMIN_TOKEN` accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Whether requests need a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but the public ones needs a key. `admin_token_sha256`:
    /// the SHA-256 of `AUTOMATA_ADMIN_TOKEN`, when set (the token itself is
    /// not kept).
    Required {
        admin_token_sha256: Option<[u8; 32]>,
    },
    /// `--no-auth`: every request may do everything (loopback only).
    Off,
}

impl AuthMode {
    /// Keys required, with `admin_token` (from the environment) as an extra
    /// admin key. Refused when the token is too short to be a secret.
    pub fn required(admin_token: Option<&str>) -> Result<AuthMode, String> {
        if let Some(token) = admin_token
            && token.trim().len() < MIN_ADMIN_TOKEN_LEN
        {
            return Err(format!(
                "AUTOMATA_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters \
                 (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(AuthMode::Required {
            admin_token_sha256: admin_token.map(|t| secret_hash(t.trim())),
        })
    }
}

/// Why a request could not be authenticated (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs an API key: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("the Authorization header must be `Bearer <key>`")]
    Malformed,
    #[error("the API key is not valid (unknown or revoked)")]
    Unknown,
    #[error("the API key {0} expired at {1}")]
    Expired(KeyId, DateTime<Utc>),
    #[error("{0}")]
    Store(ServiceError),
}

/// Authenticates requests: the keys in the store plus the environment's
/// admin token.
pub struct Authenticator {
    store: Arc<dyn Store>,
    mode: AuthMode,
    /// When each key's `last_used_at` was last written.
    touched: Mutex<HashMap<KeyId, DateTime<Utc>>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, mode: AuthMode) -> Self {
        Authenticator {
            store,
            mode,
            touched: Mutex::default(),
        }
    }

    /// Whether keys are required.
    pub fn enabled(&self) -> bool {
        self.mode != AuthMode::Off
    }

    /// Who sent `authorization` (the header's value, if any) at `now`.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        if self.mode == AuthMode::Off {
            return Ok(Principal::Anyone);
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        self.authenticate_sha256(&secret_hash(token), now).await
    }

    /// Who holds the key whose SHA-256 is `hash`, at `now`: what
    /// [`Self::authenticate`] decides once it has hashed the bearer key (the
    /// console's sessions keep only the hash).
    pub async fn authenticate_sha256(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let AuthMode::Required { admin_token_sha256 } = &self.mode else {
            return Ok(Principal::Anyone);
        };
        let hash = *hash;
        if let Some(admin) = admin_token_sha256
            && hashes_match(admin, &hash)
        {
            return Ok(Principal::Key {
                id: ENV_ADMIN_KEY_ID.into(),
                app: None,
                role: Role::Admin,
            });
        }
        let hex = access::hex(&hash);
        let store = Arc::clone(&self.store);
        let record = tokio::task::spawn_blocking(move || store.key_by_hash(&hex))
            .await
            .map_err(|e| AuthError::Store(ServiceError::Internal(e.to_string())))?
            .map_err(|e| AuthError::Store(e.into()))?
            .ok_or(AuthError::Unknown)?;
        let stored = access::hex_decode(&record.secret_sha256).unwrap_or_default();
        if !hashes_match(&stored, &hash) {
            return Err(AuthError::Unknown);
        }
        let key = record.key;
        if let Some(expired) = key.expires_at.filter(|at| *at <= now) {
            return Err(AuthError::Expired(key.id, expired));
        }
        self.touch(&key.id, now);
        Ok(Principal::Key {
            id: key.id.to_string(),
            app: key.app_id,
            role: key.role,
        })
    }

    /// Writes `last_used_at` in the background, at most once a minute per key.
    fn touch(&self, id: &KeyId, now: DateTime<Utc>) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            match touched.get(id) {
                Some(last) if now - *last < TOUCH_EVERY => return,
                _ => touched.insert(id.clone(), now),
            };
        }
        let (store, id) = (Arc::clone(&self.store), id.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(error) = store.touch_key(&id, now) {
                tracing::warn!(%error, key = %id, "cannot record when a key was used");
            }
        });
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        AuthError::Store(error.into())
    }
}

/// A key just created: its secret (shown once) and what is listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key to send as `Authorization: Bearer <key>`. Shown only now:
    /// the server keeps its hash.
    pub key_secret: String,
}

impl Service {
    /// Creates an app; 409 if the id is taken.
    pub async fn create_app(&self, new: NewApp, by: Option<String>) -> Result<App, ServiceError> {
        let app = App::create(new, self.now(), by)
            .map_err(|e| ServiceError::InvalidRequest(e.to_string()))?;
        let stored = app.clone();
        if self
            .blocking(move |store| store.insert_app(&stored))
            .await?
        {
            Ok(app)
        } else {
            Err(ServiceError::Conflict(format!(
                "app `{}` already exists",
                app.id
            )))
        }
    }

    /// Every app, by id.
    pub async fn apps(&self) -> Result<Vec<App>, ServiceError> {
        self.blocking(|store| store.apps()).await
    }

    /// One app: 404 `app `x` does not exist`.
    pub async fn app(&self, id: &AppId) -> Result<App, ServiceError> {
        let wanted = id.clone();
        self.blocking(move |store| store.app(&wanted))
            .await?
            .ok_or_else(|| app_missing(id))
    }

    /// Starts deleting an app: refused (409) while it has running
    /// automations unless `force`, which pauses them (cancelling their
    /// pending runs). Removes the app and its keys, so no request reaches it
    /// any more. The caller then cancels what still executes and calls
    /// [`Service::purge_app`].
    pub async fn remove_app(&self, id: &AppId, force: bool) -> Result<(), ServiceError> {
        let _guard = self.control.lock().await;
        self.app(id).await?;
        let automations = self.automations(id, None).await?;
        let running: Vec<_> = automations
            .iter()
            .filter(|a| a.status == AutomationStatus::Running)
            .collect();
        if !running.is_empty() && !force {
            let ids: Vec<String> = running.iter().map(|a| a.id.to_string()).collect();
            return Err(ServiceError::Conflict(format!(
                "app `{id}` has running automation(s) {}; pause them first or delete with ?force=true",
                ids.join(", ")
            )));
        }
        let wanted = id.clone();
        self.blocking(move |store| store.remove_app(&wanted))
            .await?;
        for automation in automations {
            let mut paused = automation.clone();
            let cancel = Cancellation {
                reason: "app deleted".into(),
                at: self.now(),
            };
            if paused.status == AutomationStatus::Running {
                paused.status = AutomationStatus::Paused;
            }
            let stored = paused.clone();
            self.blocking(move |store| store.update_automation(&stored, Some(&cancel)))
                .await?;
            self.notify(AutomationChange::Deleted {
                app_id: automation.app_id,
                id: automation.id,
            });
        }
        Ok(())
    }

    /// Removes everything left of an app [`Service::remove_app`] removed.
    pub async fn purge_app(&self, id: &AppId) -> Result<(), ServiceError> {
        let _guard = self.control.lock().await;
        let wanted = id.clone();
        self.blocking(move |store| store.purge_app(&wanted)).await
    }

    /// Creates a key for `app` (admin keys are made at bootstrap). The
    /// secret is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        app: &AppId,
        new: NewKey,
        by: Option<String>,
    ) -> Result<CreatedKey, ServiceError> {
        new.validate(self.now())
            .map_err(|e| ServiceError::InvalidRequest(e.to_string()))?;
        let spec = KeySpec {
            id: KeyId::from_value(self.next_id_value()),
            app_id: Some(app.clone()),
            name: new.name,
            role: new.role,
            created_by: by,
            expires_at: new.expires_at,
        };
        let issued = access::issue(spec, rand::random(), self.now());
        let record = issued.record.clone();
        self.blocking(move |store| store.insert_key(&record))
            .await?;
        Ok(CreatedKey {
            key: issued.record.key,
            key_secret: issued.secret,
        })
    }

    /// Issues an admin key named `name` (bootstrap).
    pub async fn create_admin_key(&self, name: &str) -> Result<IssuedKey, ServiceError> {
        let spec = KeySpec {
            id: KeyId::from_value(self.next_id_value()),
            app_id: None,
            name: name.to_owned(),
            role: Role::Admin,
            created_by: None,
            expires_at: None,
        };
        let issued = access::issue(spec, rand::random(), self.now());
        let record = issued.record.clone();
        self.blocking(move |store| store.insert_key(&record))
            .await?;
        Ok(issued)
    }

    /// The keys of `app` (`None`: the admin keys), oldest first.
    pub async fn keys(&self, app: Option<&AppId>) -> Result<Vec<ApiKey>, ServiceError> {
        let app = app.cloned();
        let records: Vec<KeyRecord> = self.blocking(move |store| store.keys(app.as_ref())).await?;
        Ok(records.into_iter().map(|r| r.key).collect())
    }

    /// Revokes a key of `app`: the next request with it gets 401.
    pub async fn delete_key(&self, app: &AppId, id: &str) -> Result<(), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no key `{id}` in app `{app}`"));
        let key_id: KeyId = id.parse().map_err(|_| not_found())?;
        let owned = self.keys(Some(app)).await?.iter().any(|k| k.id == key_id);
        if !owned {
            return Err(not_found());
        }
        self.blocking(move |store| store.delete_key(&key_id))
            .await?
            .map(drop)
            .ok_or_else(not_found)
    }
}

/// The 404 for a path under an app that does not exist.
pub fn app_missing(id: &AppId) -> ServiceError {
    ServiceError::NotFound(format!("app `{id}` does not exist"))
}

impl Service {
    /// The ids of an app's runs that are executing now.
    pub async fn executing_runs(
        &self,
        app: &AppId,
    ) -> Result<Vec<crate::domain::ids::RunId>, ServiceError> {
        let app = app.clone();
        self.blocking(move |store| {
            let mut found = Vec::new();
            let mut after = None;
            loop {
                let page = store.runs_with_status(
                    crate::domain::run::RunStatus::Running,
                    after.as_ref(),
                    256,
                )?;
                let Some(last) = page.last() else {
                    return Ok(found);
                };
                after = Some(last.id.clone());
                found.extend(page.into_iter().filter(|r| r.app_id == app).map(|r| r.id));
            }
        })
        .await
    }
}
