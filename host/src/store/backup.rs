//! What backup, restore and index checks need from the store: its records
//! (everything but the index entries derived from them), writing records
//! into an empty store, and recomputing the derived index entries.

use super::StoreError;

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupKind {
    /// An app (JSON), key `{app}`.
    App,
    /// An API key's record or index entry (the `keys` tree as stored: hashes,
    /// never secrets).
    Key,
    /// An automation (JSON), key `{app}/{aut_id}`.
    Automation,
    /// A config (JSON), key `{app}/{cfg_id}`.
    Config,
    /// Component bytes, key `sha256:{hex}`.
    Blob,
    /// A run (JSON), key `{atr_id}`.
    Run,
    /// Execution state that is not derived from records: the scheduler's
    /// cursors and idempotency receipts, keyed as in the index.
    State,
    /// The quarantine as stored (`m/{id}` metadata, `v/{id}` bytes): records
    /// the host could not read, kept for an operator.
    Quarantine,
    /// An app secret (JSON, its value sealed; never the key), key
    /// `{app}/{name}`.
    Secret,
}

impl BackupKind {
    /// Every kind, in the order a backup lists them: apps, keys and secrets first,
    /// configs before the blobs they point at, automations before their runs.
    pub const ALL: [BackupKind; 9] = [
        BackupKind::App,
        BackupKind::Key,
        BackupKind::Secret,
        BackupKind::Config,
        BackupKind::Blob,
        BackupKind::Automation,
        BackupKind::Run,
        BackupKind::State,
        BackupKind::Quarantine,
    ];

    /// The kind's byte in a backup file.
    pub fn code(self) -> u8 {
        match self {
            BackupKind::Automation => 1,
            BackupKind::Config => 2,
            BackupKind::Blob => 3,
            BackupKind::Run => 4,
            BackupKind::State => 5,
            BackupKind::Quarantine => 8,
            BackupKind::App => 6,
            BackupKind::Key => 7,
            BackupKind::Secret => 9,
        }
    }

    /// The kind with this byte.
    pub fn from_code(code: u8) -> Option<Self> {
        BackupKind::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// One stored record, key and value exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    pub kind: BackupKind,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What an index check found (and, when repairing, fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Records read.
    pub records: u64,
    /// Records that could not be decoded (they imply no index entry).
    pub undecodable: u64,
    /// Index entries the records imply that were absent or held the wrong
    /// value.
    pub missing: u64,
    /// Index entries no record implies.
    pub stray: u64,
    /// Some of the keys concerned (at most [`IndexReport::EXAMPLES`]),
    /// each with what is wrong.
    pub examples: Vec<String>,
    /// Whether the mismatches were fixed.
    pub repaired: bool,
}

impl IndexReport {
    /// How many example keys a report keeps.
    pub const EXAMPLES: usize = 10;

    /// Whether records and indexes agree.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.stray == 0
    }
}

/// The [`Store`](super::Store)'s part for backup, restore and `doctor`.
pub trait BackupStore {
    /// Passes every record to `sink`, kind by kind in [`BackupKind::ALL`]
    /// order, each kind in key order. Records are read as they are when
    /// reached: a record stored before the export began is in it.
    fn export(
        &self,
        sink: &mut dyn FnMut(BackupRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Whether the store holds no record at all.
    fn is_empty(&self) -> Result<bool, StoreError>;

    /// Writes `record` as it is (restore; indexes are rebuilt afterwards
    /// with [`check_indexes`](Self::check_indexes)).
    fn import(&self, record: &BackupRecord) -> Result<(), StoreError>;

    /// Recomputes the index entries the records imply (lookup keys, trigger
    /// listeners, runs by automation and status, blob reference counts) and
    /// compares them with the index; with `repair`, adds what is missing and
    /// removes what is stray. Meant for a store no server is using.
    fn check_indexes(&self, repair: bool) -> Result<IndexReport, StoreError>;
}
