//! Compiled workflows kept in memory by digest, so a run does not compile
//! (or read the compile cache) again. Bounded by the size of their compiled
//! code: past the budget, the least recently used go first.

use std::collections::HashMap;

use crate::domain::digest::ComponentDigest;

/// A byte-budgeted LRU map from component digest to `V`.
#[derive(Debug)]
pub(super) struct Loaded<V> {
    budget: u64,
    used: u64,
    /// Counts lookups and inserts: an entry's last use.
    clock: u64,
    entries: HashMap<ComponentDigest, Entry<V>>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    size: u64,
    used_at: u64,
}

impl<V: Clone> Loaded<V> {
    /// An empty map holding at most `budget` bytes.
    pub(super) fn new(budget: u64) -> Self {
        Loaded {
            budget,
            used: 0,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    /// The value for `digest`, now the most recently used.
    pub(super) fn get(&mut self, digest: &ComponentDigest) -> Option<V> {
        self.clock += 1;
        let entry = self.entries.get_mut(digest)?;
        entry.used_at = self.clock;
        Some(entry.value.clone())
    }

    /// Keeps `value` (of `size` bytes) for `digest`, evicting the least
    /// recently used entries until it fits. A value larger than the whole
    /// budget is not kept.
    pub(super) fn insert(&mut self, digest: ComponentDigest, value: V, size: u64) {
        self.remove(&digest);
        if size > self.budget {
            return;
        }
        while self.used + size > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used_at)
                .map(|(digest, _)| *digest)
            else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.used += size;
        self.entries.insert(
            digest,
            Entry {
                value,
                size,
                used_at: self.clock,
            },
        );
    }

    /// Drops `digest`'s entry. Whether there was one.
    pub(super) fn remove(&mut self, digest: &ComponentDigest) -> bool {
        match self.entries.remove(digest) {
            Some(entry) => {
                self.used -= entry.size;
                true
            }
            None => false,
        }
    }

    /// Entries held, and their bytes.
    pub(super) fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> ComponentDigest {
        ComponentDigest::of(&[n])
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_budget() {
        let mut loaded = Loaded::new(100);
        loaded.insert(digest(1), "one", 40);
        loaded.insert(digest(2), "two", 40);
        assert_eq!(loaded.get(&digest(1)), Some("one"));
        // 2 is now the least recently used: it makes room for 3.
        loaded.insert(digest(3), "three", 40);
        assert_eq!(loaded.get(&digest(2)), None);
        assert_eq!(loaded.get(&digest(1)), Some("one"));
        assert_eq!(loaded.usage(), (2, 80));
        // A big one evicts as many as it needs.
        loaded.insert(digest(4), "four", 90);
        assert_eq!(loaded.usage(), (1, 90));
        assert_eq!(loaded.get(&digest(4)), Some("four"));
    }

    #[test]
    fn replacing_removing_and_oversized_values_keep_the_count_right() {
        let mut loaded = Loaded::new(100);
        loaded.insert(digest(1), 1, 30);
        loaded.insert(digest(1), 2, 50);
        assert_eq!(loaded.usage(), (1, 50));
        assert_eq!(loaded.get(&digest(1)), Some(2));
        loaded.insert(digest(2), 3, 101);
        assert_eq!(loaded.get(&digest(2)), None, "larger than the budget");
        assert_eq!(loaded.usage(), (1, 50));
        assert!(loaded.remove(&digest(1)));
        assert!(!loaded.remove(&digest(1)));
        assert_eq!(loaded.usage(), (0, 0));
    }
}
