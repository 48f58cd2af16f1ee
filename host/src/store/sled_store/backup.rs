//! The sled side of [`BackupStore`]. Records are the `apps`, `keys`,
//! `secrets` (sealed), `automations`, `configs`, `blobs`, `runs` and `quarantine` trees plus the
//! index's `sc/` (scheduler cursors) and `ev/` (receipts) entries; every other index entry (`lk/`,
//! `tr/`, `ar/`, `as/`, `rs/`, `ap/`, `ps/`, `pt/`, `br/`) is derived from
//! records and rebuilt.

use std::collections::BTreeMap;

use super::{
    SledStore, backend, decode, key, lookup_key, run_fixed_keys, run_status_keys, trigger_key,
};
use crate::domain::automation::Automation;
use crate::domain::config::Config;
use crate::domain::run::Run;
use crate::store::{BackupKind, BackupRecord, BackupStore, IndexReport, StoreError};

/// Index entries that are records, not derived.
const STATE_PREFIXES: [&str; 2] = ["sc/", "ev/"];
/// Index entries derived from records.
const DERIVED_PREFIXES: [&str; 9] = [
    "lk/", "tr/", "ar/", "as/", "rs/", "ap/", "ps/", "pt/", "br/",
];

/// The derived index entries the records imply (key → value).
type ImpliedIndex = BTreeMap<Vec<u8>, Vec<u8>>;

impl SledStore {
    fn backup_tree(&self, kind: BackupKind) -> &sled::Tree {
        match kind {
            BackupKind::Automation => &self.automations,
            BackupKind::Config => &self.configs,
            BackupKind::Blob => &self.blobs,
            BackupKind::Run => &self.runs,
            BackupKind::State => &self.index,
            BackupKind::App => &self.apps,
            BackupKind::Key => &self.keys,
            BackupKind::Quarantine => &self.quarantine,
            BackupKind::Secret => &self.secrets,
        }
    }

    /// The derived index entries the records imply, and how many records
    /// were read and could not be decoded.
    fn implied_index(&self) -> Result<(ImpliedIndex, u64, u64), StoreError> {
        let mut implied = BTreeMap::new();
        let (mut records, mut undecodable) = (0, 0);
        for entry in self.automations.iter() {
            let (_, value) = entry.map_err(backend)?;
            records += 1;
            let Ok(automation) = decode::<Automation>(&value) else {
                undecodable += 1;
                continue;
            };
            if let Some(lookup) = &automation.lookup_key {
                implied.insert(
                    lookup_key(&automation.app_id, lookup),
                    automation.id.as_str().as_bytes().to_vec(),
                );
            }
            if let Some(trigger) = trigger_key(&automation) {
                implied.insert(trigger, Vec::new());
            }
        }
        for entry in self.runs.iter() {
            let (_, value) = entry.map_err(backend)?;
            records += 1;
            let Ok(run) = decode::<Run>(&value) else {
                undecodable += 1;
                continue;
            };
            for key in run_fixed_keys(&run)
                .into_iter()
                .chain(run_status_keys(&run))
            {
                implied.insert(key, Vec::new());
            }
        }
        let mut users: BTreeMap<String, u64> = BTreeMap::new();
        for entry in self.configs.iter() {
            let (_, value) = entry.map_err(backend)?;
            records += 1;
            let Ok(config) = decode::<Config>(&value) else {
                undecodable += 1;
                continue;
            };
            *users.entry(config.digest).or_default() += 1;
        }
        for (digest, count) in users {
            implied.insert(key(&["br", &digest]), count.to_be_bytes().to_vec());
        }
        records += self.blobs.len() as u64;
        for prefix in STATE_PREFIXES {
            records += self.index.scan_prefix(prefix).count() as u64;
        }
        Ok((implied, records, undecodable))
    }
}

impl BackupStore for SledStore {
    fn export(
        &self,
        sink: &mut dyn FnMut(BackupRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for kind in BackupKind::ALL {
            let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
                match kind {
                    BackupKind::State => Box::new(
                        STATE_PREFIXES
                            .into_iter()
                            .flat_map(|prefix| self.index.scan_prefix(prefix)),
                    ),
                    _ => Box::new(self.backup_tree(kind).iter()),
                };
            for entry in entries {
                let (key, value) = entry.map_err(backend)?;
                sink(BackupRecord {
                    kind,
                    key: key.to_vec(),
                    value: value.to_vec(),
                })?;
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(BackupKind::ALL
            .into_iter()
            .all(|kind| self.backup_tree(kind).is_empty()))
    }

    fn import(&self, record: &BackupRecord) -> Result<(), StoreError> {
        if record.kind == BackupKind::State
            && !STATE_PREFIXES
                .iter()
                .any(|prefix| record.key.starts_with(prefix.as_bytes()))
        {
            return Err(StoreError::Corrupt(format!(
                "a state record has the key {:?}, which is not a cursor or a receipt",
                String::from_utf8_lossy(&record.key)
            )));
        }
        self.backup_tree(record.kind)
            .insert(record.key.as_slice(), record.value.as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn check_indexes(&self, repair: bool) -> Result<IndexReport, StoreError> {
        let (implied, records, undecodable) = self.implied_index()?;
        let mut report = IndexReport {
            records,
            undecodable,
            ..IndexReport::default()
        };
        let mut fix = sled::Batch::default();
        let note = |report: &mut IndexReport, what: &str, key: &[u8]| {
            if report.examples.len() < IndexReport::EXAMPLES {
                report
                    .examples
                    .push(format!("{what}: {}", String::from_utf8_lossy(key)));
            }
        };
        for prefix in DERIVED_PREFIXES {
            for entry in self.index.scan_prefix(prefix) {
                let (key, value) = entry.map_err(backend)?;
                match implied.get(key.as_ref()) {
                    Some(wanted) if wanted.as_slice() == value.as_ref() => {}
                    Some(wanted) => {
                        report.missing += 1;
                        note(&mut report, "wrong value", &key);
                        fix.insert(key.as_ref(), wanted.as_slice());
                    }
                    None => {
                        report.stray += 1;
                        note(&mut report, "stray", &key);
                        fix.remove(key.as_ref());
                    }
                }
            }
        }
        for (key, value) in &implied {
            if !self.index.contains_key(key).map_err(backend)? {
                report.missing += 1;
                note(&mut report, "missing", key);
                fix.insert(key.as_slice(), value.as_slice());
            }
        }
        if repair && !report.is_clean() {
            self.index.apply_batch(fix).map_err(backend)?;
            use crate::store::Store as _;
            self.flush()?;
            report.repaired = true;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_fixture::{Fixture, app};
    use super::*;
    use crate::domain::workflow::TriggerInput;
    use crate::store::{QuarantineStore, RecordKind, Store, StoreOptions};

    fn populated() -> Fixture {
        let mut fx = Fixture::new();
        let automation = fx.automation(json!({
            "name": "a", "type": "trigger", "trigger": "thread.created", "lookup_key": "k",
        }));
        let input = TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({}),
        };
        let runs: Vec<Run> = (0..3)
            .map(|_| fx.pending_run(&automation, input.clone()))
            .collect();
        fx.store.insert_runs(&runs).unwrap();
        fx
    }

    /// Every record `store` exports, in order.
    fn exported(store: &SledStore) -> Vec<BackupRecord> {
        let mut records = Vec::new();
        store
            .export(&mut |record| {
                records.push(record);
                Ok(())
            })
            .unwrap();
        records
    }

    #[test]
    fn a_consistent_store_checks_clean() {
        let fx = populated();
        let report = fx.store.check_indexes(false).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records, 4);
    }

    #[test]
    fn missing_and_stray_entries_are_found_and_repaired() {
        let fx = populated();
        // One missing entry of each run index, automations' and the app's.
        let missing: Vec<_> = ["ar/", "as/", "rs/", "ap/", "ps/", "pt/"]
            .into_iter()
            .map(|prefix| {
                fx.store
                    .index
                    .scan_prefix(prefix)
                    .next()
                    .unwrap()
                    .unwrap()
                    .0
            })
            .collect();
        for key in &missing {
            fx.store.index.remove(key).unwrap();
        }
        let stray = [
            "rs/completed/atr_ghost",
            "ap/default/atr_ghost",
            "ps/default/failed/atr_ghost",
            "pt/default/thread.created/atr_ghost",
        ];
        for key in stray {
            fx.store.index.insert(key, &[]).unwrap();
        }
        let report = fx.store.check_indexes(false).unwrap();
        assert_eq!((report.missing, report.stray), (6, 4), "{report:?}");
        assert!(!report.repaired);
        assert!(fx.store.check_indexes(true).unwrap().repaired);
        assert!(fx.store.check_indexes(false).unwrap().is_clean());
        for key in &missing {
            assert!(fx.store.index.contains_key(key).unwrap());
        }
        for key in stray {
            assert!(!fx.store.index.contains_key(key).unwrap());
        }
        let across = fx
            .store
            .app_runs(&app(), &crate::domain::run::RunFilter::default(), None, 10)
            .unwrap();
        assert_eq!(
            across.len(),
            3,
            "every run is listed across automations again"
        );
    }

    #[test]
    fn an_export_imported_into_an_empty_store_rebuilds_the_same_indexes() {
        let fx = populated();
        let records = exported(&fx.store);
        assert_eq!(records.len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let copy = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(copy.is_empty().unwrap());
        for record in &records {
            copy.import(record).unwrap();
        }
        assert!(!copy.check_indexes(true).unwrap().is_clean());
        assert!(copy.check_indexes(false).unwrap().is_clean());
        let original: Vec<_> = fx.store.index.iter().map(|e| e.unwrap()).collect();
        let rebuilt: Vec<_> = copy.index.iter().map(|e| e.unwrap()).collect();
        assert_eq!(original, rebuilt);
        assert_eq!(
            copy.automation_by_lookup_key(&app(), "k")
                .unwrap()
                .map(|a| a.id),
            fx.store
                .automation_by_lookup_key(&app(), "k")
                .unwrap()
                .map(|a| a.id)
        );
    }

    #[test]
    fn the_quarantine_is_backed_up_and_a_restored_one_is_never_overwritten() {
        let fx = populated();
        let broken = fx.store.index.scan_prefix("ar/").next().unwrap().unwrap().0;
        let run_id = String::from_utf8_lossy(&broken)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        fx.store
            .write_raw_record(RecordKind::Run, run_id.as_bytes(), b"not json")
            .unwrap();
        assert!(fx.store.run(&run_id.parse().unwrap()).unwrap().is_none());
        let before = fx.store.quarantined(None, 10).unwrap();
        assert_eq!(before.len(), 1);

        let records = exported(&fx.store);
        let quarantined = records
            .iter()
            .filter(|record| record.kind == BackupKind::Quarantine)
            .count();
        assert_eq!(quarantined, 2, "its metadata and its bytes");
        let dir = tempfile::tempdir().unwrap();
        let copy = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        for record in &records {
            copy.import(record).unwrap();
        }
        assert!(copy.check_indexes(true).unwrap().records > 0);
        assert_eq!(copy.quarantined(None, 10).unwrap(), before);
        assert_eq!(
            copy.quarantined_bytes(before[0].id).unwrap().as_deref(),
            Some(&b"not json"[..])
        );

        // The copy's id generator is new; its next quarantine takes a new id.
        let other = copy.index.scan_prefix("ar/").next().unwrap().unwrap().0;
        let other_id = String::from_utf8_lossy(&other)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        copy.write_raw_record(RecordKind::Run, other_id.as_bytes(), b"also not json")
            .unwrap();
        assert!(copy.run(&other_id.parse().unwrap()).unwrap().is_none());
        let after = copy.quarantined(None, 10).unwrap();
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(after.contains(&before[0]));
    }
}
