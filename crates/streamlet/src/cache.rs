//! The caches reads go through, sized in bytes and reclaimable on demand.
//!
//! - [`BlockCache`] holds fixed-size blocks of segment files
//!   ([`BLOCK_BYTES`] each), keyed by stream, segment and block number.
//! - [`IndexCache`] holds the sparse offset indexes of sealed segments,
//!   loaded from their `.idx` files.
//!
//! Both evict least-recently-used entries to stay under a capacity in bytes,
//! and both implement [`Reclaimable`]: `size_bytes`, `shrink_to(target)` and
//! `clear`, each returning what it freed, so a memory monitor can shrink them
//! at a warning level and empty them at a critical one. Shrinking does not
//! lower the capacity; call `set_capacity_bytes` for a lasting cut.
//!
//! Sizes count the cached bytes plus a fixed estimate per entry
//! ([`ENTRY_OVERHEAD_BYTES`]) for the key, the map slot and the LRU order.
//! Each cache is one `Mutex` over its map; the lock is held only to look up,
//! insert or unlink, and evicted values are dropped after it is released.

mod block;
mod index;
mod lru;
mod sized;

pub use block::{BlockCache, BlockKey, BLOCK_BYTES};
pub use index::{IndexCache, IndexKey};
pub use sized::{CacheStats, ENTRY_OVERHEAD_BYTES};

/// A cache that can give memory back on demand.
pub trait Reclaimable: Send + Sync {
    /// A short name for logs and metrics, e.g. `"segment_cache"`.
    fn name(&self) -> &'static str;
    /// Bytes held now (data plus per-entry overhead).
    fn size_bytes(&self) -> u64;
    /// Evicts least-recently-used entries until at most `target_bytes` are
    /// held; returns the bytes freed.
    fn shrink_to(&self, target_bytes: u64) -> u64;
    /// Evicts everything; returns the bytes freed.
    fn clear(&self) -> u64;
    /// The capacity in bytes.
    fn capacity_bytes(&self) -> u64;
    /// Sets the capacity, evicting down to it; returns the bytes freed.
    fn set_capacity_bytes(&self, capacity_bytes: u64) -> u64;
}
