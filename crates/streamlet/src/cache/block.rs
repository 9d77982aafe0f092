//! The block cache: fixed-size pieces of segment files.

use std::sync::Arc;

use super::sized::{CacheStats, SizedCache};
use super::Reclaimable;
use crate::storage::StreamId;

/// The size of one cached block of a segment file: 64 KiB, enough for many
/// small entries per read and few enough blocks to keep the map small.
pub const BLOCK_BYTES: usize = 64 << 10;

/// Names one block: which stream, which segment, which block of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The process-wide number of the open stream (not persisted).
    pub stream_no: u64,
    /// The base ID of the segment, which names its file.
    pub segment_base: StreamId,
    /// The block number: the block starts at `block_no * BLOCK_BYTES`.
    pub block_no: u64,
}

/// An LRU cache of segment blocks, bounded in bytes.
///
/// A block may be shorter than [`BLOCK_BYTES`] when it is the tail of a
/// segment; readers that need bytes past its end load it again.
#[derive(Debug)]
pub struct BlockCache {
    inner: SizedCache<BlockKey, Arc<[u8]>>,
}

impl BlockCache {
    /// A cache that holds at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        BlockCache {
            inner: SizedCache::new(capacity_bytes),
        }
    }

    /// The block, if cached; marks it most recently used.
    pub fn get(&self, key: &BlockKey) -> Option<Arc<[u8]>> {
        self.inner.get(key)
    }

    /// Caches a block, evicting others to stay within capacity.
    pub fn insert(&self, key: BlockKey, block: Arc<[u8]>) {
        let data_bytes = block.len() as u64;
        self.inner.insert(key, block, data_bytes);
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

    /// Evicts least-recently-used blocks down to `target_bytes`; returns the
    /// bytes freed. The capacity is unchanged.
    pub fn shrink_to(&self, target_bytes: u64) -> u64 {
        self.inner.shrink_to(target_bytes)
    }

    /// Evicts every block; returns the bytes freed.
    pub fn clear(&self) -> u64 {
        self.inner.shrink_to(0)
    }

    /// Evicts every block of one stream; returns the bytes freed.
    pub fn remove_stream(&self, stream_no: u64) -> u64 {
        self.inner.remove_matching(|key| key.stream_no == stream_no)
    }

    /// Entries, sizes and hit counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }
}

impl Reclaimable for BlockCache {
    fn name(&self) -> &'static str {
        "segment_cache"
    }

    fn size_bytes(&self) -> u64 {
        BlockCache::size_bytes(self)
    }

    fn shrink_to(&self, target_bytes: u64) -> u64 {
        BlockCache::shrink_to(self, target_bytes)
    }

    fn clear(&self) -> u64 {
        BlockCache::clear(self)
    }

    fn capacity_bytes(&self) -> u64 {
        BlockCache::capacity_bytes(self)
    }

    fn set_capacity_bytes(&self, capacity_bytes: u64) -> u64 {
        BlockCache::set_capacity_bytes(self, capacity_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ENTRY_OVERHEAD_BYTES;

    fn key(block_no: u64) -> BlockKey {
        BlockKey {
            stream_no: 1,
            segment_base: StreamId::new(1, 0),
            block_no,
        }
    }

    #[test]
    fn inserts_past_capacity_evict_the_oldest_blocks() {
        let charge = 1000 + ENTRY_OVERHEAD_BYTES;
        let cache = BlockCache::new(charge * 2);
        for block_no in 0..3 {
            cache.insert(key(block_no), Arc::from(vec![0u8; 1000]));
        }
        assert!(cache.get(&key(0)).is_none());
        assert!(cache.get(&key(2)).is_some());
        assert_eq!(cache.size_bytes(), charge * 2);
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn shrink_and_clear_report_what_they_freed() {
        let charge = 1000 + ENTRY_OVERHEAD_BYTES;
        let cache = BlockCache::new(1 << 20);
        for block_no in 0..4 {
            cache.insert(key(block_no), Arc::from(vec![0u8; 1000]));
        }
        assert_eq!(cache.shrink_to(charge * 3), charge);
        assert_eq!(cache.clear(), charge * 3);
        assert_eq!(cache.size_bytes(), 0);
        assert_eq!(cache.capacity_bytes(), 1 << 20);
    }

    #[test]
    fn cache_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BlockCache>();
    }
}
