//! A sled store in a temporary directory, shared by the store's unit tests.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::SledStore;
use crate::domain::automation::{Automation, AutomationStatus, NewAutomation};
use crate::domain::ids::{AppId, AutomationId, IdSequence, RunId};
use crate::domain::run::Run;
use crate::domain::workflow::TriggerInput;
use crate::store::{Store, StoreOptions};

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) store: SledStore,
    ids: IdSequence,
}

/// A fixed instant plus `seconds`, so tests never read the clock.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_000_000 + seconds, 0).unwrap()
}

pub(super) fn app() -> AppId {
    "default".parse().unwrap()
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        Fixture {
            _dir: dir,
            store,
            ids: IdSequence::default(),
        }
    }

    /// The same store closed and opened again, as after a restart.
    pub(super) fn reopened(self) -> Self {
        let Fixture { _dir, store, ids } = self;
        drop(store);
        let store = SledStore::open(_dir.path(), &StoreOptions::default()).unwrap();
        Fixture { _dir, store, ids }
    }

    /// A fresh id value, later than every one before it.
    pub(super) fn next(&mut self) -> u128 {
        self.ids.next(1_772_000_000_000, 0)
    }

    /// Stores the automation an API create `body` describes, in `status`.
    pub(super) fn automation_in(&mut self, body: Value, status: AutomationStatus) -> Automation {
        let new: NewAutomation = serde_json::from_value(body).unwrap();
        let id = AutomationId::from_value(self.next());
        let mut automation = Automation::create(id, app(), new, at(0)).unwrap();
        automation.status = status;
        self.store.insert_automation(&automation).unwrap();
        automation
    }

    /// Stores a draft automation created from `body`.
    pub(super) fn automation(&mut self, body: Value) -> Automation {
        self.automation_in(body, AutomationStatus::Draft)
    }

    /// Stores a draft trigger automation on `thread.created`.
    pub(super) fn trigger_automation(&mut self) -> Automation {
        self.automation(json!({"name": "t", "type": "trigger", "trigger": "thread.created"}))
    }

    /// A pending run of `automation` (not stored).
    pub(super) fn pending_run(&mut self, automation: &Automation, input: TriggerInput) -> Run {
        Run::pending(RunId::from_value(self.next()), automation, input, at(1))
    }
}
