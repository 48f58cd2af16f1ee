//! The sled side of [`QuarantineStore`]: records that do not decode are moved
//! from their tree into the `quarantine` tree, bytes untouched.
//!
//! | Key | Value |
//! | --- | --- |
//! | `m/{id}` (id: u64, big-endian) | the [`QuarantinedRecord`] (encoded like every record) |
//! | `v/{id}` | the record's bytes as they were stored |
//!
//! A read outside a transaction that meets an unreadable record moves it at
//! once and goes on as if it were absent. A transaction that meets one aborts
//! with [`TxAbort::Unreadable`]; [`SledStore::transact_as`] moves the record
//! and runs the transaction again, so the move is never rolled back with
//! the transaction that found it. The index entries naming a moved run or
//! automation go with it.

use std::ops::Bound;

use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sled::IVec;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Commit, SledStore, backend, decode, encode, key, prefix_end};
use crate::domain::automation::Automation;
use crate::domain::catchup::ScheduleCursor;
use crate::domain::config::Config;
use crate::domain::event::EventReceipt;
use crate::domain::ids::{AutomationId, RunId};
use crate::domain::run::{Run, RunStatus};
use crate::store::{QuarantineStore, QuarantinedRecord, RecordKind, RecordScan, StoreError};

const META: &[u8] = b"m/";
const BYTES: &[u8] = b"v/";

fn meta_key(id: u64) -> Vec<u8> {
    [META, &id.to_be_bytes()].concat()
}

fn bytes_key(id: u64) -> Vec<u8> {
    [BYTES, &id.to_be_bytes()].concat()
}

/// A stored value of a known kind.
pub(super) trait Record: DeserializeOwned {
    const KIND: RecordKind;
}

impl Record for Run {
    const KIND: RecordKind = RecordKind::Run;
}
impl Record for Automation {
    const KIND: RecordKind = RecordKind::Automation;
}
impl Record for Config {
    const KIND: RecordKind = RecordKind::Config;
}
impl Record for ScheduleCursor {
    const KIND: RecordKind = RecordKind::ScheduleCursor;
}
impl Record for EventReceipt {
    const KIND: RecordKind = RecordKind::EventReceipt;
}

/// A record (or index entry) that could not be read: where it is, its bytes
/// and why.
#[derive(Debug)]
pub(super) struct Unreadable {
    pub(super) kind: RecordKind,
    pub(super) key: Vec<u8>,
    pub(super) bytes: IVec,
    pub(super) error: String,
}

impl Unreadable {
    pub(super) fn new(kind: RecordKind, key: &[u8], bytes: IVec, error: StoreError) -> Self {
        let error = match error {
            StoreError::Corrupt(message) => message,
            other => other.to_string(),
        };
        Unreadable {
            kind,
            key: key.to_vec(),
            bytes,
            error,
        }
    }

    /// An index entry whose key or value does not parse.
    pub(super) fn index_entry(key: &[u8], value: IVec, error: impl Into<String>) -> Self {
        Unreadable {
            kind: RecordKind::IndexEntry,
            key: key.to_vec(),
            bytes: value,
            error: error.into(),
        }
    }
}

/// Why a transaction aborted.
#[derive(Debug)]
pub(super) enum TxAbort {
    /// The operation failed; the caller gets this error.
    Store(StoreError),
    /// It met an unreadable record: move it aside and try again.
    Unreadable(Unreadable),
}

/// The part of a run its index entries are named by; read leniently (the
/// rest of the record is skipped), so it often survives what broke the run.
/// Not its status: that may be what is broken, so every status's entry goes.
#[derive(Deserialize)]
struct RunHeader {
    app_id: String,
    automation_id: String,
    #[serde(default)]
    trigger: Option<String>,
}

/// An index entry to remove with a quarantined record, and the value it
/// must still hold (a lookup key must still name the record).
type Naming = (Vec<u8>, Option<Vec<u8>>);

impl SledStore {
    /// Decodes a record read outside a transaction. An unreadable one is
    /// moved to the quarantine and read as absent.
    pub(super) fn read<T: Record>(&self, key: &[u8], bytes: IVec) -> Result<Option<T>, StoreError> {
        match decode(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                self.set_aside(Unreadable::new(T::KIND, key, bytes, error))?;
                Ok(None)
            }
        }
    }

    /// The index entries that name `found`, a run or an automation about to
    /// be quarantined. A run's are found from its app and automation, read
    /// from its bytes or, when those do not tell, from its `ar/` entry.
    fn naming_entries(&self, found: &Unreadable) -> Result<Vec<Naming>, StoreError> {
        let own_key = String::from_utf8_lossy(&found.key);
        let mut entries = Vec::new();
        match found.kind {
            RecordKind::Run => {
                let id = &*own_key;
                let (owner, trigger) = match decode::<RunHeader>(&found.bytes) {
                    Ok(run) => (Some((run.app_id, run.automation_id)), run.trigger),
                    Err(_) => (self.run_owner(id)?, None),
                };
                for status in RunStatus::ALL.map(RunStatus::as_str) {
                    entries.push((key(&["rs", status, id]), None));
                    if let Some((app, automation)) = &owner {
                        entries.push((key(&["as", app, automation, status, id]), None));
                    }
                }
                if let Some((app, automation)) = &owner {
                    entries.push((key(&["ar", app, automation, id]), None));
                    let across = self.app_run_entries(app, id, trigger.as_deref())?;
                    entries.extend(across.into_iter().map(|entry| (entry, None)));
                }
            }
            RecordKind::Automation => {
                let Some((app, id)) = own_key.split_once('/') else {
                    return Ok(entries);
                };
                for entry in self.index.scan_prefix(key(&["lk", app, ""])) {
                    let (lookup, holder) = entry.map_err(backend)?;
                    if holder.as_ref() == id.as_bytes() {
                        entries.push((lookup.to_vec(), Some(holder.to_vec())));
                    }
                }
                let suffix = format!("/{id}");
                for entry in self.index.scan_prefix(key(&["tr", app, ""])) {
                    let (trigger, _) = entry.map_err(backend)?;
                    if trigger.ends_with(suffix.as_bytes()) {
                        entries.push((trigger.to_vec(), None));
                    }
                }
            }
            _ => {}
        }
        Ok(entries)
    }

    /// The app and automation of run `id`, from its `ar/{app}/{aut}/{id}`
    /// entry: a scan of every run's entry, for a run too broken to say.
    fn run_owner(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let suffix = format!("/{id}");
        for entry in self.index.scan_prefix(b"ar/") {
            let (key, _) = entry.map_err(backend)?;
            if !key.ends_with(suffix.as_bytes()) {
                continue;
            }
            let text = String::from_utf8_lossy(&key);
            let mut parts = text.splitn(4, '/').skip(1);
            if let (Some(app), Some(automation)) = (parts.next(), parts.next()) {
                return Ok(Some((app.to_owned(), automation.to_owned())));
            }
        }
        Ok(None)
    }

    /// The tree a record of `kind` lives in.
    fn tree_of(&self, kind: RecordKind) -> &sled::Tree {
        match kind {
            RecordKind::Automation => &self.automations,
            RecordKind::Config => &self.configs,
            RecordKind::Run => &self.runs,
            RecordKind::ScheduleCursor | RecordKind::EventReceipt | RecordKind::IndexEntry => {
                &self.index
            }
        }
    }

    /// Moves an unreadable record (and the index entries naming it) to the
    /// quarantine in one durable transaction — unless it was rewritten since
    /// it was read, then the caller's next read sees the new bytes. Logged.
    pub(super) fn set_aside(&self, found: Unreadable) -> Result<(), StoreError> {
        let id = self.next_quarantine_id()?;
        let naming = self.naming_entries(&found)?;
        let record = QuarantinedRecord {
            id,
            kind: found.kind,
            key: String::from_utf8_lossy(&found.key).into_owned(),
            error: found.error.clone(),
            quarantined_at: Utc::now(),
            size_bytes: found.bytes.len() as u64,
        };
        let trees = (
            &self.automations,
            &self.configs,
            &self.runs,
            &self.index,
            &self.quarantine,
        );
        let moved = trees
            .transaction(|(automations, configs, runs, index, quarantine)| {
                let live = match found.kind {
                    RecordKind::Automation => automations,
                    RecordKind::Config => configs,
                    RecordKind::Run => runs,
                    _ => index,
                };
                if live.get(&found.key)?.as_ref() != Some(&found.bytes) {
                    return Ok(false);
                }
                live.remove(found.key.as_slice())?;
                for (entry, holds) in &naming {
                    if holds.is_none() || index.get(entry)?.as_deref() == holds.as_deref() {
                        index.remove(entry.as_slice())?;
                    }
                }
                quarantine.insert(meta_key(id), encode(&record))?;
                quarantine.insert(bytes_key(id), found.bytes.clone())?;
                Ok::<_, ConflictableTransactionError<()>>(true)
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => backend("quarantine transaction aborted"),
                TransactionError::Storage(error) => backend(error),
            })?;
        if moved {
            self.written(Commit::Durable)?;
            tracing::error!(
                quarantine_id = id,
                kind = %record.kind,
                key = %record.key,
                error = %record.error,
                "a stored record cannot be read: moved to the quarantine (GET /admin/quarantine, automata doctor)"
            );
        }
        Ok(())
    }

    /// A quarantine id no entry has: sled's id generator, past the largest
    /// id present (a restored quarantine brings ids the generator of a new
    /// store has not handed out).
    fn next_quarantine_id(&self) -> Result<u64, StoreError> {
        let generated = self.db.generate_id().map_err(backend)?;
        let last = self.last_quarantine_id()?;
        Ok(last.map_or(generated, |last| generated.max(last + 1)))
    }

    /// The largest id in the quarantine, if any.
    fn last_quarantine_id(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .quarantine
            .scan_prefix(META)
            .keys()
            .next_back()
            .transpose()
            .map_err(backend)?
            .map(|key| u64::from_be_bytes(key[META.len()..].try_into().unwrap_or_default())))
    }

    /// The run id ending an index key under `prefix`; an entry that does
    /// not parse is moved to the quarantine and read as absent.
    pub(super) fn indexed_run_id(
        &self,
        key: &[u8],
        value: IVec,
        prefix: &[u8],
    ) -> Result<Option<RunId>, StoreError> {
        self.indexed_id(key, value, prefix, "run")
    }

    /// The id ending an index key under `prefix` (`what`: `run`,
    /// `automation`); an entry that does not parse is moved to the
    /// quarantine and read as absent.
    pub(super) fn indexed_id<T: std::str::FromStr>(
        &self,
        key: &[u8],
        value: IVec,
        prefix: &[u8],
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match std::str::from_utf8(&key[prefix.len()..])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(id) => Ok(Some(id)),
            None => {
                let error = format!("the index key does not end in a {what} id");
                self.set_aside(Unreadable::index_entry(key, value, error))?;
                Ok(None)
            }
        }
    }

    /// An automation id stored as an index value (`lk/…`); one that does
    /// not parse is moved to the quarantine and read as absent.
    pub(super) fn indexed_automation(
        &self,
        key: &[u8],
        value: IVec,
    ) -> Result<Option<AutomationId>, StoreError> {
        match std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(id) => Ok(Some(id)),
            None => {
                let error = "the lookup-key entry does not hold an automation id";
                self.set_aside(Unreadable::index_entry(key, value, error))?;
                Ok(None)
            }
        }
    }

    /// Checks one index entry by its prefix; a malformed one is moved to the
    /// quarantine. Whether it was readable.
    fn check_index_entry(&self, key: &[u8], value: IVec) -> Result<bool, StoreError> {
        let text = String::from_utf8_lossy(key);
        let kind = text.split('/').next().unwrap_or_default();
        // The id is the key's last part, except under `ev/` (an
        // idempotency key may hold `/`) and `br/` (a digest).
        let last = text.rfind('/').map_or(0, |at| at + 1);
        Ok(match kind {
            "ar" | "as" | "rs" | "ap" | "ps" | "pt" => {
                self.indexed_run_id(key, value, &key[..last])?.is_some()
            }
            "tr" => self
                .indexed_id::<AutomationId>(key, value, &key[..last], "automation")?
                .is_some(),
            "lk" => self.indexed_automation(key, value)?.is_some(),
            "sc" => self.read::<ScheduleCursor>(key, value)?.is_some(),
            "ev" => self.read::<EventReceipt>(key, value)?.is_some(),
            "br" if value.len() == 8 => true,
            _ => {
                let error = format!("unknown or malformed index entry `{text}`");
                self.set_aside(Unreadable::index_entry(key, value, error))?;
                false
            }
        })
    }

    /// Test hook: stores `bytes` as the record of `kind` under `key` as they
    /// are, bypassing the encoding — so a test can put a record the host
    /// cannot read into a real store. Keys: `atr_…` for a run,
    /// `{app}/{aut_id}` for an automation, `{app}/{cfg_id}` for a config,
    /// the full index key otherwise.
    #[doc(hidden)]
    pub fn write_raw_record(
        &self,
        kind: RecordKind,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.tree_of(kind).insert(key, bytes).map_err(backend)?;
        self.written(Commit::Durable)
    }
}

impl QuarantineStore for SledStore {
    fn quarantined(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QuarantinedRecord>, StoreError> {
        let start = match after {
            Some(id) => Bound::Excluded(meta_key(id)),
            None => Bound::Included(META.to_vec()),
        };
        let mut records = Vec::new();
        for entry in self
            .quarantine
            .range::<Vec<u8>, _>((start, Bound::Excluded(prefix_end(META))))
        {
            let (_, value) = entry.map_err(backend)?;
            records.push(decode(&value)?);
            if records.len() == limit {
                break;
            }
        }
        Ok(records)
    }

    fn quarantined_record(&self, id: u64) -> Result<Option<QuarantinedRecord>, StoreError> {
        self.quarantine
            .get(meta_key(id))
            .map_err(backend)?
            .map(|value| decode(&value))
            .transpose()
    }

    fn quarantined_bytes(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .quarantine
            .get(bytes_key(id))
            .map_err(backend)?
            .map(|bytes| bytes.to_vec()))
    }

    fn discard_quarantined(&self, id: u64) -> Result<bool, StoreError> {
        let existed = self
            .quarantine
            .transaction(|quarantine| {
                quarantine.remove(bytes_key(id))?;
                Ok::<_, ConflictableTransactionError<()>>(
                    quarantine.remove(meta_key(id))?.is_some(),
                )
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => backend("discard transaction aborted"),
                TransactionError::Storage(error) => backend(error),
            })?;
        self.written(Commit::Durable)?;
        Ok(existed)
    }

    fn quarantine_count(&self) -> Result<usize, StoreError> {
        let mut count = 0;
        for entry in self.quarantine.scan_prefix(META) {
            entry.map_err(backend)?;
            count += 1;
        }
        Ok(count)
    }

    fn scan_records(&self) -> Result<RecordScan, StoreError> {
        let before = self.last_quarantine_id()?;
        let mut readable = 0;
        let mut count = |found: bool| readable += usize::from(found);
        for entry in self.automations.iter() {
            let (key, value) = entry.map_err(backend)?;
            count(self.read::<Automation>(&key, value)?.is_some());
        }
        for entry in self.configs.iter() {
            let (key, value) = entry.map_err(backend)?;
            count(self.read::<Config>(&key, value)?.is_some());
        }
        for entry in self.runs.iter() {
            let (key, value) = entry.map_err(backend)?;
            count(self.read::<Run>(&key, value)?.is_some());
        }
        for entry in self.index.iter() {
            let (key, value) = entry.map_err(backend)?;
            count(self.check_index_entry(&key, value)?);
        }
        Ok(RecordScan {
            readable,
            quarantined: self.quarantined(before, usize::MAX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_fixture::{Fixture, app, at};
    use super::*;
    use crate::domain::automation::AutomationStatus;
    use crate::domain::workflow::TriggerInput;
    use crate::store::{Cancellation, Store};

    fn input() -> TriggerInput {
        TriggerInput {
            trigger: "thread.created".into(),
            payload: json!({"n": 1}),
        }
    }

    /// A record cut short, as a torn write would leave it.
    fn truncated<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let bytes = encode(value);
        bytes[..bytes.len() / 2].to_vec()
    }

    /// A running trigger automation with three stored pending runs.
    fn three_pending_runs() -> (Fixture, Automation, Vec<Run>) {
        let mut fx = Fixture::new();
        let automation = fx.automation_in(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
            AutomationStatus::Running,
        );
        let runs: Vec<Run> = (0..3)
            .map(|_| fx.pending_run(&automation, input()))
            .collect();
        fx.store.insert_runs(&runs).unwrap();
        (fx, automation, runs)
    }

    #[test]
    fn an_unreadable_run_is_quarantined_and_everything_else_goes_on() {
        let (fx, automation, runs) = three_pending_runs();
        let broken = truncated(&runs[1]);
        fx.store
            .write_raw_record(RecordKind::Run, runs[1].id.as_str().as_bytes(), &broken)
            .unwrap();

        // Recovery's walk and the automation's list skip it.
        let pending = fx
            .store
            .runs_with_status(RunStatus::Pending, None, 10)
            .unwrap();
        assert_eq!(pending, [runs[0].clone(), runs[2].clone()]);
        let listed = fx
            .store
            .automation_runs(&app(), &automation.id, None, None, 10)
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(fx.store.run(&runs[1].id).unwrap(), None);

        let quarantined = fx.store.quarantined(None, 10).unwrap();
        assert_eq!(quarantined.len(), 1, "moved once, not once per read");
        let record = &quarantined[0];
        assert_eq!(record.kind, RecordKind::Run);
        assert_eq!(record.key, runs[1].id.as_str());
        assert_eq!(record.size_bytes, broken.len() as u64);
        assert!(record.error.contains("EOF"), "{}", record.error);
        assert_eq!(
            fx.store.quarantined_bytes(record.id).unwrap(),
            Some(broken),
            "kept byte for byte"
        );
        // No index entry names it any more.
        assert_eq!(
            fx.store
                .count_automation_runs(&app(), &automation.id, RunStatus::Pending)
                .unwrap(),
            2
        );
        let naming: Vec<_> = fx
            .store
            .index
            .iter()
            .keys()
            .map(Result::unwrap)
            .filter(|key| key.ends_with(runs[1].id.as_str().as_bytes()))
            .collect();
        assert!(naming.is_empty(), "entries left: {naming:?}");

        // It survives a restart; discarding removes it for good.
        let fx = fx.reopened();
        assert_eq!(fx.store.quarantine_count().unwrap(), 1);
        assert_eq!(
            fx.store.quarantined_record(record.id).unwrap().as_ref(),
            Some(record)
        );
        assert!(fx.store.discard_quarantined(record.id).unwrap());
        assert!(!fx.store.discard_quarantined(record.id).unwrap());
        assert_eq!(fx.store.quarantine_count().unwrap(), 0);
        assert_eq!(fx.store.quarantined_bytes(record.id).unwrap(), None);
    }

    #[test]
    fn a_pause_cancels_the_readable_pending_runs_past_an_unreadable_one() {
        let (fx, mut automation, runs) = three_pending_runs();
        fx.store
            .write_raw_record(
                RecordKind::Run,
                runs[0].id.as_str().as_bytes(),
                b"\x00\xffgarbage",
            )
            .unwrap();
        automation.status = AutomationStatus::Paused;
        let cancel = Cancellation {
            reason: "automation paused".into(),
            at: at(5),
        };
        let cancelled = fx
            .store
            .update_automation(&automation, Some(&cancel))
            .unwrap();
        assert_eq!(cancelled, [runs[1].id.clone(), runs[2].id.clone()]);
        assert_eq!(
            fx.store.automation(&app(), &automation.id).unwrap(),
            Some(automation),
            "the pause itself is stored"
        );
        assert_eq!(fx.store.quarantine_count().unwrap(), 1);
        // Nothing of the garbage run is left to trip a later read.
        assert!(
            fx.store
                .runs_with_status(RunStatus::Pending, None, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unreadable_automation_leaves_its_lookup_key_and_trigger_free() {
        let mut fx = Fixture::new();
        let body = json!({
            "name": "a", "type": "trigger", "trigger": "thread.created", "lookup_key": "k",
        });
        let broken = fx.automation_in(body.clone(), AutomationStatus::Running);
        let kept = fx.automation_in(
            json!({"name": "b", "type": "trigger", "trigger": "thread.created"}),
            AutomationStatus::Running,
        );
        let key = [app().as_str(), "/", broken.id.as_str()].concat();
        // JSON, but not an automation any more.
        let mut damaged = serde_json::to_value(&broken).unwrap();
        damaged["status"] = json!("exploded");
        fx.store
            .write_raw_record(RecordKind::Automation, key.as_bytes(), &encode(&damaged))
            .unwrap();

        let listeners = fx
            .store
            .running_trigger_automations(&app(), "thread.created")
            .unwrap();
        assert_eq!(listeners, std::slice::from_ref(&kept));
        assert_eq!(fx.store.automations(&app()).unwrap(), [kept]);
        assert_eq!(
            fx.store.automation_by_lookup_key(&app(), "k").unwrap(),
            None
        );
        // Its lookup key can be taken again.
        fx.automation_in(body, AutomationStatus::Draft);
        let record = &fx.store.quarantined(None, 10).unwrap()[0];
        assert_eq!(
            (record.kind, record.key.as_str()),
            (RecordKind::Automation, key.as_str())
        );
        assert!(record.error.contains("exploded"), "{}", record.error);
    }

    #[test]
    fn garbage_where_an_automation_was_leaves_its_lookup_key_free() {
        let mut fx = Fixture::new();
        let body = json!({
            "name": "a", "type": "trigger", "trigger": "thread.created", "lookup_key": "k",
        });
        let first = fx.automation_in(body.clone(), AutomationStatus::Draft);
        let key = [app().as_str(), "/", first.id.as_str()].concat();
        fx.store
            .write_raw_record(RecordKind::Automation, key.as_bytes(), b"garbage")
            .unwrap();
        // Its bytes name nothing: its entries are found by their value.
        assert_eq!(fx.store.automation(&app(), &first.id).unwrap(), None);
        let second = fx.automation_in(body, AutomationStatus::Draft);
        assert_eq!(
            fx.store
                .automation_by_lookup_key(&app(), "k")
                .unwrap()
                .map(|a| a.id),
            Some(second.id)
        );
    }

    #[test]
    fn a_scan_reads_every_record_and_quarantines_the_unreadable_ones() {
        let mut fx = Fixture::new();
        let automation = fx.trigger_automation();
        let run = fx.pending_run(&automation, input());
        fx.store.insert_runs(std::slice::from_ref(&run)).unwrap();
        let clean = fx.store.scan_records().unwrap();
        // The automation, the run and its six index entries.
        assert_eq!(clean.readable, 8);
        assert!(clean.quarantined.is_empty());

        let mut damaged = serde_json::to_value(&run).unwrap();
        damaged["status"] = json!("exploded");
        fx.store
            .write_raw_record(
                RecordKind::Run,
                run.id.as_str().as_bytes(),
                &encode(&damaged),
            )
            .unwrap();
        fx.store
            .write_raw_record(RecordKind::ScheduleCursor, b"sc/default/aut_x", b"[1,")
            .unwrap();
        fx.store
            .write_raw_record(RecordKind::IndexEntry, b"ar/default/aut_x/not-an-id", b"")
            .unwrap();
        let scan = fx.store.scan_records().unwrap();
        let kinds: Vec<_> = scan.quarantined.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordKind::Run,
                RecordKind::IndexEntry,
                RecordKind::ScheduleCursor
            ]
        );
        assert_eq!(
            scan.readable, 1,
            "the automation; the run's entries went with it"
        );
        let again = fx.store.scan_records().unwrap();
        assert!(again.quarantined.is_empty());
        assert_eq!(fx.store.quarantine_count().unwrap(), 3);
    }
}
