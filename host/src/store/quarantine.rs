//! Records the store cannot read back. Whatever reads one — recovery, the
//! scheduler, a list, a pause's cancellations, a worker — does not fail: the
//! record is moved, bytes untouched, into the quarantine with the error and
//! the time, logged, and the read goes on as if it were absent. Operators see
//! the quarantine through `GET /admin/quarantine` and `automata doctor`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// What a quarantined record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// An automation (`automations` tree).
    Automation,
    /// A config's metadata (`configs` tree).
    Config,
    /// A run with its history (`runs` tree).
    Run,
    /// The scheduler's cursor of a scheduled automation.
    ScheduleCursor,
    /// The receipt of an event sent with an idempotency key.
    EventReceipt,
    /// An index entry whose key or value does not parse.
    IndexEntry,
}

impl RecordKind {
    /// The name used in the API and by `automata doctor`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Automation => "automation",
            RecordKind::Config => "config",
            RecordKind::Run => "run",
            RecordKind::ScheduleCursor => "schedule_cursor",
            RecordKind::EventReceipt => "event_receipt",
            RecordKind::IndexEntry => "index_entry",
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record moved aside because it could not be read. Its bytes are kept
/// unchanged ([`QuarantineStore::quarantined_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantinedRecord {
    /// Numbers the quarantine in the order records entered it.
    pub id: u64,
    /// What the record was.
    pub kind: RecordKind,
    /// Its key in the store (e.g. `atr_…` for a run, `{app}/{aut_id}` for an
    /// automation); bytes that are not UTF-8 are shown as U+FFFD.
    #[schema(example = "atr_01m8hayrrdhcwg7jsb2ynkhyev")]
    pub key: String,
    /// Why it could not be read.
    #[schema(example = "expected value at line 1 column 1")]
    pub error: String,
    /// When it was moved to the quarantine.
    pub quarantined_at: DateTime<Utc>,
    /// The size of its bytes.
    pub size_bytes: u64,
}

/// What a full read of the store found ([`QuarantineStore::scan_records`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordScan {
    /// Records read back whole.
    pub readable: usize,
    /// Records that could not be read, moved to the quarantine by this scan.
    pub quarantined: Vec<QuarantinedRecord>,
}

/// The store's quarantine of unreadable records.
pub trait QuarantineStore {
    /// Quarantined records in the order they entered, starting after `after`
    /// (an [`id`](QuarantinedRecord::id)), at most `limit`.
    fn quarantined(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QuarantinedRecord>, StoreError>;

    /// One quarantined record.
    fn quarantined_record(&self, id: u64) -> Result<Option<QuarantinedRecord>, StoreError>;

    /// The bytes of a quarantined record, as they were stored.
    fn quarantined_bytes(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes a quarantined record for good (after an operator has looked at
    /// it). Whether it existed.
    fn discard_quarantined(&self, id: u64) -> Result<bool, StoreError>;

    /// How many records are in the quarantine.
    fn quarantine_count(&self) -> Result<usize, StoreError>;

    /// Reads every automation, config, run, schedule cursor, event receipt
    /// and index entry, moving those that cannot be read to the quarantine.
    /// A full scan: for `automata doctor`, not for a serving host.
    fn scan_records(&self) -> Result<RecordScan, StoreError>;
}
