//! The index cache: loaded sparse indexes of sealed segments.

use std::sync::Arc;

use super::sized::{CacheStats, SizedCache};
use super::Reclaimable;
use crate::storage::{SegmentIndex, StreamId};

/// Names one segment's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexKey {
    /// The process-wide number of the open stream (not persisted).
    pub stream_no: u64,
    /// The base ID of the segment.
    pub segment_base: StreamId,
}

/// An LRU cache of segment indexes, bounded in bytes.
///
/// An evicted index is read back from its `.idx` file on the next lookup
/// (and rebuilt from the segment if that file is missing or corrupt).
#[derive(Debug)]
pub struct IndexCache {
    inner: SizedCache<IndexKey, Arc<SegmentIndex>>,
}

impl IndexCache {
    /// A cache that holds at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        IndexCache {
            inner: SizedCache::new(capacity_bytes),
        }
    }

    /// The index, if cached; marks it most recently used.
    pub fn get(&self, key: &IndexKey) -> Option<Arc<SegmentIndex>> {
        self.inner.get(key)
    }

    /// Caches an index, evicting others to stay within capacity.
    pub fn insert(&self, key: IndexKey, index: Arc<SegmentIndex>) {
        let data_bytes = index.size_bytes();
        self.inner.insert(key, index, data_bytes);
    }

    /// Bytes held now.
    pub fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    /// The capacity in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.inner.capacity_bytes()
    }

    /// Changes the capacity, evicting down to it; returns the bytes freed.
    pub fn set_capacity_bytes(&self, capacity_bytes: u64) -> u64 {
        self.inner.set_capacity_bytes(capacity_bytes)
    }

    /// Evicts least-recently-used indexes down to `target_bytes`; returns the
    /// bytes freed. The capacity is unchanged.
    pub fn shrink_to(&self, target_bytes: u64) -> u64 {
        self.inner.shrink_to(target_bytes)
    }

    /// Evicts every index; returns the bytes freed.
    pub fn clear(&self) -> u64 {
        self.inner.shrink_to(0)
    }

    /// Entries, sizes and hit counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }
}

impl Reclaimable for IndexCache {
    fn name(&self) -> &'static str {
        "index_cache"
    }

    fn size_bytes(&self) -> u64 {
        IndexCache::size_bytes(self)
    }

    fn shrink_to(&self, target_bytes: u64) -> u64 {
        IndexCache::shrink_to(self, target_bytes)
    }

    fn clear(&self) -> u64 {
        IndexCache::clear(self)
    }

    fn capacity_bytes(&self) -> u64 {
        IndexCache::capacity_bytes(self)
    }

    fn set_capacity_bytes(&self, capacity_bytes: u64) -> u64 {
        IndexCache::set_capacity_bytes(self, capacity_bytes)
    }
}
