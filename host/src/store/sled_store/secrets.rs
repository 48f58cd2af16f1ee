//! The sled side of [`SecretStore`]: a tree of its own, `secrets`, keyed
//! `{app}/{name}`, holding each secret's record (value sealed). Single-key
//! writes; an app's purge removes its prefix.

use std::collections::BTreeMap;

use super::{Commit, SledStore, backend, decode, encode, key};
use crate::domain::ids::AppId;
use crate::domain::secret::{SecretName, SecretRecord};
use crate::store::{SecretStore, StoreError};

fn secret_key(app: &AppId, name: &SecretName) -> Vec<u8> {
    key(&[app.as_str(), name.as_str()])
}

/// The record, or `None` (logged) for one that does not decode: a damaged
/// secret is left out of lists and the start's key check rather than
/// failing them; reading it by name says it is damaged, and setting it
/// again replaces it.
fn readable(key: &[u8], value: &[u8]) -> Option<SecretRecord> {
    decode(value)
        .inspect_err(|error| {
            tracing::error!(key = %String::from_utf8_lossy(key), "a secret's record is damaged: {error}");
        })
        .ok()
}

impl SecretStore for SledStore {
    fn put_secret(&self, record: &SecretRecord) -> Result<bool, StoreError> {
        let previous = self
            .secrets
            .insert(secret_key(&record.app_id, &record.name), encode(record))
            .map_err(backend)?;
        self.written(Commit::Durable)?;
        Ok(previous.is_none())
    }

    fn secret(&self, app: &AppId, name: &SecretName) -> Result<Option<SecretRecord>, StoreError> {
        self.secrets
            .get(secret_key(app, name))
            .map_err(backend)?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    fn secrets(&self, app: &AppId) -> Result<Vec<SecretRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in self.secrets.scan_prefix(key(&[app.as_str(), ""])) {
            let (key, value) = entry.map_err(backend)?;
            records.extend(readable(&key, &value));
        }
        Ok(records)
    }

    fn delete_secret(&self, app: &AppId, name: &SecretName) -> Result<bool, StoreError> {
        let existed = self
            .secrets
            .remove(secret_key(app, name))
            .map_err(backend)?
            .is_some();
        if existed {
            self.written(Commit::Durable)?;
        }
        Ok(existed)
    }

    fn secret_key_ids(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut counts = BTreeMap::<String, usize>::new();
        for entry in self.secrets.iter() {
            let (key, value) = entry.map_err(backend)?;
            if let Some(record) = readable(&key, &value) {
                *counts.entry(record.sealed.key_id).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    fn discard_secrets(&self, keep: &str) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for entry in self.secrets.iter() {
            let (key, value) = entry.map_err(backend)?;
            let Some(record) = readable(&key, &value) else {
                continue;
            };
            if record.sealed.key_id != keep {
                batch.remove(key);
                count += 1;
            }
        }
        self.secrets.apply_batch(batch).map_err(backend)?;
        self.written(Commit::Durable)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::secret::Sealed;
    use crate::store::AccessStore;

    fn record(app: AppId, name: &str, key_id: &str, at_secs: i64) -> SecretRecord {
        SecretRecord {
            app_id: app,
            name: name.parse().unwrap(),
            created_at: at(at_secs),
            updated_at: at(at_secs),
            created_by: None,
            updated_by: None,
            sealed: Sealed {
                key_id: key_id.into(),
                algorithm: "AES-256-GCM".into(),
                nonce: "bm9uY2U=".into(),
                ciphertext: "Y2lwaGVy".into(),
            },
        }
    }

    #[test]
    fn secrets_are_put_listed_by_app_and_name_and_deleted() {
        let fx = Fixture::new();
        let other: AppId = "other".parse().unwrap();
        assert!(
            fx.store
                .put_secret(&record(app(), "B_TOKEN", "k1", 1))
                .unwrap()
        );
        assert!(
            fx.store
                .put_secret(&record(app(), "A_TOKEN", "k1", 2))
                .unwrap()
        );
        assert!(
            fx.store
                .put_secret(&record(other.clone(), "A_TOKEN", "k2", 3))
                .unwrap()
        );
        assert!(
            !fx.store
                .put_secret(&record(app(), "B_TOKEN", "k1", 4))
                .unwrap(),
            "replaced"
        );
        let names: Vec<String> = fx
            .store
            .secrets(&app())
            .unwrap()
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, ["A_TOKEN", "B_TOKEN"]);
        let b = "B_TOKEN".parse().unwrap();
        assert_eq!(
            fx.store.secret(&app(), &b).unwrap().unwrap().created_at,
            at(4)
        );
        assert_eq!(
            fx.store.secret_key_ids().unwrap(),
            [("k1".to_owned(), 2), ("k2".to_owned(), 1)]
        );
        assert!(fx.store.delete_secret(&app(), &b).unwrap());
        assert!(!fx.store.delete_secret(&app(), &b).unwrap());
        assert_eq!(fx.store.secret(&app(), &b).unwrap(), None);
        // Another app's secret of the same name is untouched.
        assert_eq!(fx.store.secrets(&other).unwrap().len(), 1);
        assert_eq!(fx.store.discard_secrets("k2").unwrap(), 1);
        assert_eq!(fx.store.secret_key_ids().unwrap(), [("k2".to_owned(), 1)]);
    }

    #[test]
    fn purging_an_app_removes_its_secrets_only() {
        let fx = Fixture::new();
        fx.store.adopt_apps(at(0)).unwrap();
        let other: AppId = "other".parse().unwrap();
        fx.store
            .put_secret(&record(app(), "TOKEN_1", "k1", 1))
            .unwrap();
        fx.store
            .put_secret(&record(other.clone(), "TOKEN_1", "k1", 1))
            .unwrap();
        fx.store.remove_app(&app()).unwrap();
        fx.store.purge_app(&app()).unwrap();
        assert!(fx.store.secrets(&app()).unwrap().is_empty());
        assert_eq!(fx.store.secrets(&other).unwrap().len(), 1);
    }
}
