//! The shared machinery of both caches: an LRU behind a mutex, a capacity
//! and hit counters.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::lru::Lru;

/// Estimated bytes one entry costs beyond its data: the key, the hash map
/// slot, the LRU order node and the shared-pointer header. An estimate, not a
/// measurement; the allocator's own counters give the exact figure.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

/// A snapshot of a cache's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Entries held.
    pub entries: u64,
    /// Bytes held (data plus per-entry overhead).
    pub size_bytes: u64,
    /// The capacity the cache evicts down to on insert.
    pub capacity_bytes: u64,
    /// Lookups that found their entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries evicted, for capacity or on demand.
    pub evictions: u64,
}

/// An LRU of values charged by size, safe to share between threads.
///
/// Counters are relaxed atomics: they are statistics, read without ordering
/// against the map.
#[derive(Debug)]
pub(crate) struct SizedCache<K, V> {
    lru: Mutex<Lru<K, V>>,
    capacity_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> SizedCache<K, V> {
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        SizedCache {
            lru: Mutex::new(Lru::new()),
            capacity_bytes: AtomicU64::new(capacity_bytes),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Locks the map. A panic while it was held cannot leave it inconsistent
    /// in a way that matters to a cache, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Lru<K, V>> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let found = self.lock().get(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Inserts a value charged `data_bytes` plus the entry overhead, then
    /// evicts down to the capacity. A value larger than the whole capacity is
    /// not cached.
    pub(crate) fn insert(&self, key: K, value: V, data_bytes: u64) {
        let charge_bytes = data_bytes + ENTRY_OVERHEAD_BYTES;
        let capacity_bytes = self.capacity_bytes();
        if charge_bytes > capacity_bytes {
            return;
        }
        let mut dropped = Vec::new();
        {
            let mut lru = self.lock();
            dropped.extend(lru.insert(key, value, charge_bytes));
            lru.evict_to(capacity_bytes, &mut dropped);
        }
        self.count_evictions(dropped.len());
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }

    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes.load(Ordering::Relaxed)
    }

    /// Sets the capacity and evicts down to it; returns the bytes freed.
    pub(crate) fn set_capacity_bytes(&self, capacity_bytes: u64) -> u64 {
        self.capacity_bytes.store(capacity_bytes, Ordering::Relaxed);
        self.shrink_to(capacity_bytes)
    }

    pub(crate) fn shrink_to(&self, target_bytes: u64) -> u64 {
        let mut evicted = Vec::new();
        let freed = self.lock().evict_to(target_bytes, &mut evicted);
        self.count_evictions(evicted.len());
        freed
    }

    pub(crate) fn remove_matching(&self, matches: impl Fn(&K) -> bool) -> u64 {
        let mut evicted = Vec::new();
        let freed = self.lock().remove_matching(matches, &mut evicted);
        self.count_evictions(evicted.len());
        freed
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let (entries, size_bytes) = {
            let lru = self.lock();
            (lru.len() as u64, lru.size_bytes())
        };
        CacheStats {
            entries,
            size_bytes,
            capacity_bytes: self.capacity_bytes(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    fn count_evictions(&self, count: usize) {
        if count > 0 {
            self.evictions.fetch_add(count as u64, Ordering::Relaxed);
        }
    }
}
