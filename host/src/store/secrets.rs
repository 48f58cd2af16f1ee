//! What app secrets store: one record per secret, its value sealed (never
//! plain text; sealing is the service's business).

use super::StoreError;
use crate::domain::ids::AppId;
use crate::domain::secret::{SecretName, SecretRecord};

/// The secrets part of the [`Store`](super::Store).
pub trait SecretStore {
    /// Stores `record`, replacing the secret of the same app and name; whether
    /// it was new.
    fn put_secret(&self, record: &SecretRecord) -> Result<bool, StoreError>;
    /// One secret of an app.
    fn secret(&self, app: &AppId, name: &SecretName) -> Result<Option<SecretRecord>, StoreError>;
    /// An app's secrets, by name.
    fn secrets(&self, app: &AppId) -> Result<Vec<SecretRecord>, StoreError>;
    /// Deletes a secret; whether it existed.
    fn delete_secret(&self, app: &AppId, name: &SecretName) -> Result<bool, StoreError>;
    /// How many secrets each key (by [`Sealed::key_id`](crate::domain::secret::Sealed))
    /// sealed, over every app: what a start checks its key against.
    fn secret_key_ids(&self) -> Result<Vec<(String, usize)>, StoreError>;
    /// Deletes every secret of every app not sealed with the key `keep`
    /// (the operator lost the key they were sealed with); how many.
    fn discard_secrets(&self, keep: &str) -> Result<usize, StoreError>;
}
