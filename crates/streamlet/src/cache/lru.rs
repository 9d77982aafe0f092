//! A least-recently-used map with a byte charge per entry.
//!
//! Recency is a counter stamped on each access; a `BTreeMap` from stamp to
//! key gives the oldest entry in `O(log n)`. Simpler than an intrusive list
//! and fast enough for caches of thousands of entries.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// One cached value with its charge and last-use stamp.
#[derive(Debug)]
struct Slot<V> {
    value: V,
    charge_bytes: u64,
    stamp: u64,
}

/// An LRU map whose size is the sum of the charges of its entries.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    slots: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
    next_stamp: u64,
    size_bytes: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Lru {
            slots: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            size_bytes: 0,
        }
    }

    /// The sum of the charges of all entries.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Returns a copy of the value and marks it most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let stamp = self.next_stamp;
        let slot = self.slots.get_mut(key)?;
        self.order.remove(&slot.stamp);
        slot.stamp = stamp;
        self.order.insert(stamp, key.clone());
        self.next_stamp += 1;
        Some(slot.value.clone())
    }

    /// Inserts or replaces a value as most recently used; returns the value
    /// it replaced, so that the caller can drop it outside any lock.
    pub(crate) fn insert(&mut self, key: K, value: V, charge_bytes: u64) -> Option<V> {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.insert(stamp, key.clone());
        self.size_bytes += charge_bytes;
        let old = self.slots.insert(
            key,
            Slot {
                value,
                charge_bytes,
                stamp,
            },
        )?;
        self.order.remove(&old.stamp);
        self.size_bytes -= old.charge_bytes;
        Some(old.value)
    }

    /// Removes least-recently-used entries until the size is at most
    /// `target_bytes`, moving them into `evicted`; returns the bytes freed.
    pub(crate) fn evict_to(&mut self, target_bytes: u64, evicted: &mut Vec<V>) -> u64 {
        let before = self.size_bytes;
        while self.size_bytes > target_bytes {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&key) {
                self.size_bytes -= slot.charge_bytes;
                evicted.push(slot.value);
            }
        }
        before - self.size_bytes
    }

    /// Removes every entry whose key matches, moving the values into
    /// `evicted`; returns the bytes freed.
    pub(crate) fn remove_matching(
        &mut self,
        matches: impl Fn(&K) -> bool,
        evicted: &mut Vec<V>,
    ) -> u64 {
        let before = self.size_bytes;
        let keys: Vec<K> = self
            .slots
            .keys()
            .filter(|key| matches(key))
            .cloned()
            .collect();
        for key in keys {
            if let Some(slot) = self.slots.remove(&key) {
                self.order.remove(&slot.stamp);
                self.size_bytes -= slot.charge_bytes;
                evicted.push(slot.value);
            }
        }
        before - self.size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_takes_the_least_recently_used_first() {
        let mut lru = Lru::new();
        lru.insert("a", 1, 10);
        lru.insert("b", 2, 10);
        lru.insert("c", 3, 10);
        assert_eq!(lru.get(&"a"), Some(1));

        let mut evicted = Vec::new();
        let freed = lru.evict_to(15, &mut evicted);

        assert_eq!(freed, 20);
        assert_eq!(evicted, [2, 3]);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.size_bytes(), 10);
    }

    #[test]
    fn replacing_a_key_recharges_it() {
        let mut lru = Lru::new();
        lru.insert("a", 1, 10);
        assert_eq!(lru.insert("a", 2, 30), Some(1));
        assert_eq!(lru.size_bytes(), 30);
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn remove_matching_frees_only_matching_keys() {
        let mut lru = Lru::new();
        lru.insert((1, 0), 'x', 5);
        lru.insert((1, 1), 'y', 5);
        lru.insert((2, 0), 'z', 5);
        let mut evicted = Vec::new();
        assert_eq!(lru.remove_matching(|key| key.0 == 1, &mut evicted), 10);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get(&(2, 0)), Some('z'));
    }
}
