//! What every integration test binary shares: the tracking allocator as the
//! global allocator and a set of components.

#![allow(dead_code)]

use mempressure_alloc::{ComponentId, Snapshot};

#[global_allocator]
static ALLOC: mempressure_alloc::Allocator = mempressure_alloc::Allocator::jemalloc();

mempressure_alloc::components! {
    /// Components the tests charge.
    pub enum Component {
        Connections => "connections",
        RequestBuffers => "request_buffers",
        SegmentCache => "segment_cache",
        IndexCache => "index_cache",
    }
}

/// Live bytes of one component right now.
pub fn bytes_of(component: Component) -> u64 {
    mempressure_alloc::snapshot().component_bytes(ComponentId::from(component))
}

/// A snapshot after giving other threads' exit hooks a moment to finish.
pub fn settled_snapshot() -> Snapshot {
    mempressure_alloc::snapshot()
}
