//! What authentication and tenancy store: apps and API keys (their hashes,
//! never their secrets).

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::access::KeyRecord;
use crate::domain::app::App;
use crate::domain::ids::{AppId, KeyId};

/// The apps-and-keys part of the [`Store`](super::Store).
pub trait AccessStore {
    /// Stores a new app; `false` (and nothing stored) if the id is taken.
    fn insert_app(&self, app: &App) -> Result<bool, StoreError>;
    /// One app.
    fn app(&self, id: &AppId) -> Result<Option<App>, StoreError>;
    /// Every app, by id.
    fn apps(&self) -> Result<Vec<App>, StoreError>;
    /// Removes an app's record and its keys, so nothing new reaches it;
    /// whether it existed. Its data goes with [`purge_app`](Self::purge_app).
    fn remove_app(&self, id: &AppId) -> Result<bool, StoreError>;
    /// Removes a removed app's data: configs (and blobs no other config
    /// uses), automations with their index entries, runs, scheduler cursors,
    /// event receipts and secrets. Cancel what must be cancelled first.
    fn purge_app(&self, id: &AppId) -> Result<(), StoreError>;
    /// Makes apps explicit, once per data directory: every app id found in
    /// data written before apps were explicit (automations, configs, runs)
    /// becomes an app created `at`; a data directory with none gets the app
    /// `default`. Later calls do nothing. Returns the apps created.
    fn adopt_apps(&self, at: DateTime<Utc>) -> Result<Vec<AppId>, StoreError>;

    /// Stores a new key (its record and hash index).
    fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// The key whose secret has this SHA-256 (lowercase hex).
    fn key_by_hash(&self, sha256_hex: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// The keys of an app (`None`: the admin keys), oldest first.
    fn keys(&self, app: Option<&AppId>) -> Result<Vec<KeyRecord>, StoreError>;
    /// Deletes (revokes) a key; the deleted record, if it existed.
    fn delete_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// Records that a key authenticated a request at `at`. Progress: does
    /// not wait for the disk.
    fn touch_key(&self, id: &KeyId, at: DateTime<Utc>) -> Result<(), StoreError>;
}
