//! App secrets: setting (sealed with the host's [`SecretKey`]), listing and
//! deleting them. Values go in and never come out over the API; the
//! execution plane opens the ones a run is granted.

use super::{Service, ServiceError, current_actor};
use crate::domain::ids::AppId;
use crate::domain::secret::{
    self, MAX_SECRETS_PER_APP, Secret, SecretError, SecretName, SecretRecord, SecretValue,
};
use crate::service::secret_key::{SecretKey, SecretKeyError};
use crate::store::StoreError;

impl From<SecretError> for ServiceError {
    fn from(error: SecretError) -> Self {
        match error {
            SecretError::TooLong(_) => ServiceError::PayloadTooLarge(error.to_string()),
            SecretError::InvalidName { .. } | SecretError::TooShort(_) => {
                ServiceError::InvalidRequest(error.to_string())
            }
        }
    }
}

impl From<SecretKeyError> for ServiceError {
    fn from(error: SecretKeyError) -> Self {
        tracing::error!(%error, "secret key failure");
        ServiceError::Internal(error.to_string())
    }
}

/// How `PUT` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWrite {
    /// The secret as shown (no value).
    pub secret: Secret,
    /// Whether it was new (201) rather than replaced (200).
    pub created: bool,
}

impl Service {
    /// This service with `key` sealing the secrets it stores.
    pub fn with_secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    fn secret_key(&self) -> Result<&SecretKey, ServiceError> {
        self.secret_key.as_ref().ok_or_else(|| {
            ServiceError::Internal("this host was started without a secret key".into())
        })
    }

    /// Sets the secret `name` of `app` to `value`: 400 for a bad name or a
    /// value under 8 bytes, 413 past 64 KiB, 409 past
    /// [`MAX_SECRETS_PER_APP`]. A replaced secret keeps its `created_at`.
    pub async fn put_secret(
        &self,
        app: &AppId,
        name: &str,
        value: SecretValue,
    ) -> Result<SecretWrite, ServiceError> {
        let name: SecretName = name.parse()?;
        secret::check_value(&value.value)?;
        let sealed = self.secret_key()?.seal(app, &name, &value.value)?;
        drop(value);
        let now = self.now();
        let by = current_actor();
        let _guard = self.control.lock().await;
        let (app_id, wanted) = (app.clone(), name.clone());
        let (previous, count, automations) = self
            .blocking(move |store| {
                // A damaged record is replaced like an absent one.
                let previous = match store.secret(&app_id, &wanted) {
                    Err(StoreError::Corrupt(_)) => None,
                    other => other?,
                };
                let count = if previous.is_none() {
                    store.secrets(&app_id)?.len()
                } else {
                    0
                };
                Ok((previous, count, store.automations(&app_id)?))
            })
            .await?;
        if previous.is_none() && count >= MAX_SECRETS_PER_APP {
            return Err(ServiceError::Conflict(format!(
                "app `{app}` already holds {count} secrets, the most an app may hold; \
                 delete one first"
            )));
        }
        let record = SecretRecord {
            app_id: app.clone(),
            name,
            created_at: previous.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
            created_by: previous
                .as_ref()
                .map_or_else(|| by.clone(), |p| p.created_by.clone()),
            updated_by: by,
            sealed,
        };
        let stored = record.clone();
        let created = self
            .blocking(move |store| store.put_secret(&stored))
            .await?;
        Ok(SecretWrite {
            secret: Secret::view(&record, &automations),
            created,
        })
    }

    /// The secrets of `app`, by name, each with the automations granted it
    /// (never their values).
    pub async fn secrets(&self, app: &AppId) -> Result<Vec<Secret>, ServiceError> {
        let app = app.clone();
        let (records, automations) = self
            .blocking(move |store| Ok((store.secrets(&app)?, store.automations(&app)?)))
            .await?;
        Ok(records
            .iter()
            .map(|record| Secret::view(record, &automations))
            .collect())
    }

    /// Deletes the secret `name` of `app` (404 if there is none). Runs that
    /// start afterwards read it as absent.
    pub async fn delete_secret(&self, app: &AppId, name: &str) -> Result<(), ServiceError> {
        let name: SecretName = name.parse()?;
        let _guard = self.control.lock().await;
        let (app_id, wanted) = (app.clone(), name.clone());
        let deleted = self
            .blocking(move |store| store.delete_secret(&app_id, &wanted))
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no secret `{name}` in app `{app}`"
            )))
        }
    }
}
