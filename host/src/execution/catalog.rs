//! The automations and configs workers run with, in memory.
//!
//! A worker needs its run's automation (limits, capabilities, retry policy,
//! status) and config (the component's digest). Reading them from the store
//! for every run cost a trip to a blocking thread each; the catalog keeps
//! them instead. It is filled on first use from the store (a read on the
//! caller's thread: sled serves it from its page cache) and kept current by
//! the service's change broadcast ([`Service::subscribe`]): every lookup
//! first applies the changes waiting on its receiver, so a lookup that
//! follows a change's answer (an activation, a `PATCH` of limits, a delete)
//! sees it, with no task in between that could fall behind. A receiver that
//! lagged empties the catalog, which fills again from the store.
//!
//! Until [`Catalog::follow`] hands it a receiver the catalog keeps nothing
//! and every lookup reads the store.
//!
//! [`Service::subscribe`]: crate::service::Service::subscribe

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::domain::automation::Automation;
use crate::domain::config::Config;
use crate::domain::ids::{AppId, AutomationId, ConfigId};
use crate::service::AutomationChange;
use crate::store::{Store, StoreError};

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    changes: Option<broadcast::Receiver<AutomationChange>>,
    automations: HashMap<(AppId, AutomationId), Arc<Automation>>,
    configs: HashMap<(AppId, ConfigId), Arc<Config>>,
    /// Counts the changes applied, so a store read that a change overtook
    /// is not kept.
    generation: u64,
}

impl State {
    /// Applies every change waiting on the receiver.
    fn catch_up(&mut self) {
        let Some(changes) = &mut self.changes else {
            return;
        };
        loop {
            match changes.try_recv() {
                Ok(AutomationChange::Saved(automation)) => {
                    let key = (automation.app_id.clone(), automation.id.clone());
                    self.automations.insert(key, automation);
                }
                Ok(AutomationChange::Deleted { app_id, id }) => {
                    self.automations.remove(&(app_id, id));
                }
                Ok(AutomationChange::ConfigDeleted { app_id, id }) => {
                    self.configs.remove(&(app_id, id));
                }
                Err(TryRecvError::Lagged(_)) => {
                    self.automations.clear();
                    self.configs.clear();
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Closed) => {
                    // No more changes will come: keep nothing from now on.
                    self.changes = None;
                    self.automations.clear();
                    self.configs.clear();
                    return;
                }
            }
            self.generation += 1;
        }
    }
}

impl Catalog {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a map insert or removal: a panic
        // cannot leave it half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the catalog current with `changes` from now on (a receiver of
    /// the service's change broadcast).
    pub(super) fn follow(&self, changes: broadcast::Receiver<AutomationChange>) {
        let mut state = self.lock();
        state.changes = Some(changes);
        state.automations.clear();
        state.configs.clear();
        state.generation += 1;
    }

    /// Automation `id` of `app`, if it exists.
    pub(super) fn automation(
        &self,
        store: &dyn Store,
        app: &AppId,
        id: &AutomationId,
    ) -> Result<Option<Arc<Automation>>, StoreError> {
        let key = (app.clone(), id.clone());
        self.lookup(
            |state| state.automations.get(&key).cloned(),
            || store.automation(app, id).map(|found| found.map(Arc::new)),
            |state, found| {
                state.automations.insert(key.clone(), found);
            },
        )
    }

    /// Config `id` of `app`, if it exists.
    pub(super) fn config(
        &self,
        store: &dyn Store,
        app: &AppId,
        id: &ConfigId,
    ) -> Result<Option<Arc<Config>>, StoreError> {
        let key = (app.clone(), id.clone());
        self.lookup(
            |state| state.configs.get(&key).cloned(),
            || store.config(app, id).map(|found| found.map(Arc::new)),
            |state, found| {
                state.configs.insert(key.clone(), found);
            },
        )
    }

    /// What `cached` finds after catching up; else what `read` finds in
    /// the store, kept (`keep`) unless a change arrived during the read.
    fn lookup<T: Clone>(
        &self,
        cached: impl Fn(&State) -> Option<T>,
        read: impl FnOnce() -> Result<Option<T>, StoreError>,
        keep: impl FnOnce(&mut State, T),
    ) -> Result<Option<T>, StoreError> {
        let generation = {
            let mut state = self.lock();
            state.catch_up();
            if let Some(found) = cached(&state) {
                return Ok(Some(found));
            }
            state.generation
        };
        // Not under the lock: other lookups go on meanwhile.
        let found = read()?;
        let mut state = self.lock();
        state.catch_up();
        if let Some(found) = &found
            && state.changes.is_some()
            && state.generation == generation
        {
            keep(&mut state, found.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::automation::{AutomationStatus, NewAutomation};
    use crate::store::{SledStore, StoreOptions};

    fn automation(id: u128, status: AutomationStatus) -> Automation {
        let new: NewAutomation = serde_json::from_value(
            json!({"name": "t", "type": "trigger", "trigger": "thread.created"}),
        )
        .unwrap();
        let now = "2026-02-28T09:00:00Z".parse().unwrap();
        let mut automation = Automation::create(
            AutomationId::from_value(id),
            "default".parse().unwrap(),
            new,
            now,
        )
        .unwrap();
        automation.status = status;
        automation
    }

    #[test]
    fn lookups_see_every_change_sent_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let draft = automation(1, AutomationStatus::Draft);
        store.insert_automation(&draft).unwrap();
        let (changes, receiver) = broadcast::channel(4);
        let catalog = Catalog::default();
        catalog.follow(receiver);
        let (app, id) = (draft.app_id.clone(), draft.id.clone());
        let found = catalog.automation(&store, &app, &id).unwrap().unwrap();
        assert_eq!(found.status, AutomationStatus::Draft);
        // Kept: the store is not read again (a change there alone is not seen).
        let running = automation(1, AutomationStatus::Running);
        store.update_automation(&running, None).unwrap();
        let cached = catalog.automation(&store, &app, &id).unwrap().unwrap();
        assert_eq!(cached.status, AutomationStatus::Draft);
        // The broadcast of the change is.
        changes
            .send(AutomationChange::Saved(Arc::new(running)))
            .unwrap();
        let current = catalog.automation(&store, &app, &id).unwrap().unwrap();
        assert_eq!(current.status, AutomationStatus::Running);
        changes
            .send(AutomationChange::Deleted {
                app_id: app.clone(),
                id: id.clone(),
            })
            .unwrap();
        store
            .delete_automation(
                &app,
                &id,
                &crate::store::Cancellation {
                    reason: "automation deleted".into(),
                    at: "2026-02-28T09:00:00Z".parse().unwrap(),
                },
            )
            .unwrap();
        assert_eq!(catalog.automation(&store, &app, &id).unwrap(), None);
    }

    #[test]
    fn a_lagging_receiver_empties_the_catalog_and_without_one_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let stored = automation(1, AutomationStatus::Draft);
        store.insert_automation(&stored).unwrap();
        let (app, id) = (stored.app_id.clone(), stored.id.clone());
        let catalog = Catalog::default();
        catalog.automation(&store, &app, &id).unwrap();
        assert!(catalog.lock().automations.is_empty(), "no receiver yet");

        let (changes, receiver) = broadcast::channel(1);
        catalog.follow(receiver);
        catalog.automation(&store, &app, &id).unwrap();
        assert_eq!(catalog.lock().automations.len(), 1);
        for n in 2..5 {
            let other = automation(n, AutomationStatus::Draft);
            changes
                .send(AutomationChange::Saved(Arc::new(other)))
                .unwrap();
        }
        let running = automation(1, AutomationStatus::Running);
        store.update_automation(&running, None).unwrap();
        // Lagged: emptied, then read from the store again.
        let found = catalog.automation(&store, &app, &id).unwrap().unwrap();
        assert_eq!(found.status, AutomationStatus::Running);
    }
}
