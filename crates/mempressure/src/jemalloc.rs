//! jemalloc's own statistics.

/// One reading of jemalloc's statistics, taken after advancing its epoch.
///
/// Every field is in bytes and names its mallctl key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JemallocStats {
    /// `stats.allocated`: bytes in live allocations, rounded to size classes.
    pub allocated_bytes: u64,
    /// `stats.active`: bytes in active pages (at least `allocated`).
    pub active_bytes: u64,
    /// `stats.resident`: bytes in physically resident data pages.
    pub resident_bytes: u64,
    /// `stats.mapped`: bytes in active extents mapped by the allocator.
    pub mapped_bytes: u64,
    /// `stats.retained`: bytes of virtual memory kept but not mapped.
    pub retained_bytes: u64,
    /// `stats.metadata`: bytes of allocator metadata.
    pub metadata_bytes: u64,
}
