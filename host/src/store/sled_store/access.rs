//! The sled side of [`AccessStore`]: two trees of their own, each changed in
//! single-tree transactions.
//!
//! | Tree | Key | Value |
//! | --- | --- | --- |
//! | `apps` | `{app}` | app JSON |
//! | `keys` | `k/{key_id}` | key JSON (hash, never the secret) |
//! | | `h/{sha256 hex}` | key id |
//! | | `app/{app}/{key_id}`, `adm/{key_id}` | (an app's keys, admin keys) |
//!
//! The default tree's `apps_adopted` marks a data directory whose apps are
//! explicit.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Commit, SledStore, backend, decode, encode, key};
use crate::domain::access::KeyRecord;
use crate::domain::app::{App, DEFAULT_APP};
use crate::domain::ids::{AppId, KeyId, RunId};
use crate::domain::run::Run;
use crate::store::{AccessStore, StoreError};

const ADOPTED: &str = "apps_adopted";
/// Runs removed per transaction when an app is purged.
const PURGE_BATCH: usize = 256;

fn record_key(id: &KeyId) -> Vec<u8> {
    key(&["k", id.as_str()])
}

fn hash_key(sha256_hex: &str) -> Vec<u8> {
    key(&["h", sha256_hex])
}

fn scope_prefix(app: Option<&AppId>) -> Vec<u8> {
    match app {
        Some(app) => key(&["app", app.as_str(), ""]),
        None => key(&["adm", ""]),
    }
}

fn scope_key(record: &KeyRecord) -> Vec<u8> {
    let mut key = scope_prefix(record.key.app_id.as_ref());
    key.extend_from_slice(record.key.id.as_str().as_bytes());
    key
}

/// A record of the `apps` or `keys` tree. These are small and written only
/// by this host; one that does not decode is an error, not quarantined.
fn plain_get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    tree.get(key)
        .map_err(backend)?
        .map(|bytes| decode(&bytes))
        .transpose()
}

/// The app id a store key starts with (`{app}/…`).
fn leading_app(key: &[u8]) -> Option<AppId> {
    let end = key.iter().position(|&b| b == b'/')?;
    std::str::from_utf8(&key[..end]).ok()?.parse().ok()
}

impl SledStore {
    fn tree_transaction<T>(
        tree: &sled::Tree,
        f: impl Fn(
            &sled::transaction::TransactionalTree,
        ) -> Result<T, ConflictableTransactionError<StoreError>>,
    ) -> Result<T, StoreError> {
        tree.transaction(f).map_err(|e| match e {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => backend(error),
        })
    }

    fn remove_prefix(&self, tree: &sled::Tree, prefix: &[u8]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in tree.scan_prefix(prefix).keys() {
            batch.remove(entry.map_err(backend)?);
        }
        tree.apply_batch(batch).map_err(backend)
    }
}

impl AccessStore for SledStore {
    fn insert_app(&self, app: &App) -> Result<bool, StoreError> {
        let inserted = self
            .apps
            .compare_and_swap(app.id.as_str(), None as Option<&[u8]>, Some(encode(app)))
            .map_err(backend)?
            .is_ok();
        if inserted {
            self.written(Commit::Durable)?;
        }
        Ok(inserted)
    }

    fn app(&self, id: &AppId) -> Result<Option<App>, StoreError> {
        plain_get(&self.apps, id.as_str().as_bytes())
    }

    fn apps(&self) -> Result<Vec<App>, StoreError> {
        self.apps
            .iter()
            .values()
            .map(|value| decode(&value.map_err(backend)?))
            .collect()
    }

    fn remove_app(&self, id: &AppId) -> Result<bool, StoreError> {
        let keys: Vec<KeyRecord> = self.keys(Some(id))?;
        let existed = Self::tree_transaction(&self.keys, |tx| {
            for record in &keys {
                tx.remove(record_key(&record.key.id))?;
                tx.remove(hash_key(&record.secret_sha256))?;
                tx.remove(scope_key(record))?;
            }
            Ok(())
        })
        .and_then(|()| self.apps.remove(id.as_str()).map_err(backend))?
        .is_some();
        self.written(Commit::Durable)?;
        Ok(existed)
    }

    fn purge_app(&self, id: &AppId) -> Result<(), StoreError> {
        for config in crate::store::Store::configs(self, id)? {
            crate::store::Store::delete_config(self, id, &config.id)?;
        }
        let prefix = key(&["ar", id.as_str(), ""]);
        let ids: Vec<RunId> = self
            .index
            .scan_prefix(&prefix)
            .keys()
            .map(|entry| {
                let key = entry.map_err(backend)?;
                let run = key.rsplit(|&b| b == b'/').next().unwrap_or_default();
                std::str::from_utf8(run)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("bad run index key {key:?}")))
            })
            .collect::<Result<_, _>>()?;
        for chunk in ids.chunks(PURGE_BATCH) {
            self.transact(|tx| {
                for run_id in chunk {
                    if let Some(run) = super::Tx::get::<Run>(tx.runs, run_id.as_str().as_bytes())? {
                        for key in super::run_status_keys(&run) {
                            tx.index.remove(key)?;
                        }
                    }
                    tx.runs.remove(run_id.as_str())?;
                }
                Ok(())
            })?;
        }
        for part in ["ar", "as", "sc", "ev", "lk", "tr"] {
            self.remove_prefix(&self.index, &key(&[part, id.as_str(), ""]))?;
        }
        self.remove_prefix(&self.automations, &key(&[id.as_str(), ""]))?;
        self.remove_prefix(&self.secrets, &key(&[id.as_str(), ""]))?;
        self.written(Commit::Durable)
    }

    fn adopt_apps(&self, at: DateTime<Utc>) -> Result<Vec<AppId>, StoreError> {
        if self.db.get(ADOPTED).map_err(backend)?.is_some() {
            return Ok(Vec::new());
        }
        let mut found = BTreeSet::new();
        for tree in [&self.automations, &self.configs] {
            for entry in tree.iter().keys() {
                found.extend(leading_app(&entry.map_err(backend)?));
            }
        }
        for entry in self.index.scan_prefix(b"ar/").keys() {
            found.extend(leading_app(&entry.map_err(backend)?[3..]));
        }
        if found.is_empty() && self.apps.is_empty() {
            found.insert(DEFAULT_APP.parse().expect("a valid app id"));
        }
        let mut adopted = Vec::new();
        for id in found {
            if self.insert_app(&App::implicit(id.clone(), at))? {
                adopted.push(id);
            }
        }
        self.db.insert(ADOPTED, "1").map_err(backend)?;
        self.written(Commit::Durable)?;
        Ok(adopted)
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        Self::tree_transaction(&self.keys, |tx| {
            tx.insert(record_key(&record.key.id), encode(record))?;
            tx.insert(hash_key(&record.secret_sha256), record.key.id.as_str())?;
            tx.insert(scope_key(record), &[])?;
            Ok(())
        })?;
        self.written(Commit::Durable)
    }

    fn key_by_hash(&self, sha256_hex: &str) -> Result<Option<KeyRecord>, StoreError> {
        let Some(id) = self.keys.get(hash_key(sha256_hex)).map_err(backend)? else {
            return Ok(None);
        };
        let id = [b"k/".as_slice(), &id].concat();
        plain_get(&self.keys, &id)
    }

    fn keys(&self, app: Option<&AppId>) -> Result<Vec<KeyRecord>, StoreError> {
        let prefix = scope_prefix(app);
        let mut records = Vec::new();
        for entry in self.keys.scan_prefix(&prefix).keys() {
            let entry = entry.map_err(backend)?;
            let id = [b"k/".as_slice(), &entry[prefix.len()..]].concat();
            records.extend(plain_get::<KeyRecord>(&self.keys, &id)?);
        }
        Ok(records)
    }

    fn delete_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let deleted = Self::tree_transaction(&self.keys, |tx| {
            let Some(bytes) = tx.remove(record_key(id))? else {
                return Ok(None);
            };
            let record: KeyRecord = decode(&bytes).map_err(ConflictableTransactionError::Abort)?;
            tx.remove(hash_key(&record.secret_sha256))?;
            tx.remove(scope_key(&record))?;
            Ok(Some(record))
        })?;
        self.written(Commit::Durable)?;
        Ok(deleted)
    }

    fn touch_key(&self, id: &KeyId, at: DateTime<Utc>) -> Result<(), StoreError> {
        Self::tree_transaction(&self.keys, |tx| {
            let Some(bytes) = tx.get(record_key(id))? else {
                return Ok(());
            };
            let mut record: KeyRecord =
                decode(&bytes).map_err(ConflictableTransactionError::Abort)?;
            record.key.last_used_at = Some(at);
            tx.insert(record_key(id), encode(&record))?;
            Ok(())
        })?;
        self.written(Commit::Progress)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::access::{KeySpec, Role, issue};
    use crate::domain::run::RunStatus;
    use crate::store::Store;

    fn key_for(fx: &mut Fixture, app: Option<AppId>, role: Role) -> KeyRecord {
        let spec = KeySpec {
            id: KeyId::from_value(fx.next()),
            app_id: app,
            name: "k".into(),
            role,
            created_by: None,
            expires_at: None,
        };
        issue(spec, rand::random(), at(0)).record
    }

    #[test]
    fn apps_are_adopted_from_existing_data_once() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let run = fx.pending_run(
            &automation,
            crate::domain::workflow::TriggerInput {
                trigger: "thread.created".into(),
                payload: serde_json::json!({}),
            },
        );
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        assert_eq!(fx.store.adopt_apps(at(5)).unwrap(), [app()]);
        let fx = fx.reopened();
        assert!(fx.store.adopt_apps(at(6)).unwrap().is_empty(), "once");
        assert_eq!(fx.store.apps().unwrap(), [App::implicit(app(), at(5))]);
        assert_eq!(fx.store.run(&run.id).unwrap().unwrap(), run);
    }

    #[test]
    fn a_fresh_store_gets_the_default_app() {
        let fx = Fixture::new();
        assert_eq!(fx.store.adopt_apps(at(0)).unwrap(), [app()]);
        let other: AppId = "other".parse().unwrap();
        assert!(
            fx.store
                .insert_app(&App::implicit(other.clone(), at(1)))
                .unwrap()
        );
        assert!(!fx.store.insert_app(&App::implicit(other, at(2))).unwrap());
        assert_eq!(fx.store.apps().unwrap().len(), 2);
    }

    #[test]
    fn keys_are_found_by_hash_listed_by_scope_and_revoked() {
        let mut fx = Fixture::new();
        let admin = key_for(&mut fx, None, Role::Admin);
        let reader = key_for(&mut fx, Some(app()), Role::Read);
        fx.store.insert_key(&admin).unwrap();
        fx.store.insert_key(&reader).unwrap();
        assert_eq!(
            fx.store.key_by_hash(&reader.secret_sha256).unwrap(),
            Some(reader.clone())
        );
        assert_eq!(fx.store.keys(None).unwrap(), std::slice::from_ref(&admin));
        assert_eq!(
            fx.store.keys(Some(&app())).unwrap(),
            std::slice::from_ref(&reader)
        );
        fx.store.touch_key(&reader.key.id, at(9)).unwrap();
        let touched = fx
            .store
            .key_by_hash(&reader.secret_sha256)
            .unwrap()
            .unwrap();
        assert_eq!(touched.key.last_used_at, Some(at(9)));
        assert!(fx.store.delete_key(&reader.key.id).unwrap().is_some());
        assert_eq!(fx.store.key_by_hash(&reader.secret_sha256).unwrap(), None);
        assert!(fx.store.keys(Some(&app())).unwrap().is_empty());
        assert!(fx.store.delete_key(&reader.key.id).unwrap().is_none());
    }

    #[test]
    fn removing_an_app_takes_its_keys_and_purging_its_runs() {
        let mut fx = Fixture::new();
        fx.store.adopt_apps(at(0)).unwrap();
        let writer = key_for(&mut fx, Some(app()), Role::Write);
        fx.store.insert_key(&writer).unwrap();
        let automation = fx.trigger_automation();
        let run = fx.pending_run(
            &automation,
            crate::domain::workflow::TriggerInput {
                trigger: "thread.created".into(),
                payload: serde_json::json!({}),
            },
        );
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        assert!(fx.store.remove_app(&app()).unwrap());
        assert_eq!(fx.store.key_by_hash(&writer.secret_sha256).unwrap(), None);
        fx.store.purge_app(&app()).unwrap();
        assert_eq!(fx.store.run(&run.id).unwrap(), None);
        assert!(fx.store.automations(&app()).unwrap().is_empty());
        assert!(
            fx.store
                .runs_with_status(RunStatus::Pending, None, 10)
                .unwrap()
                .is_empty()
        );
        assert!(!fx.store.remove_app(&app()).unwrap());
    }
}
