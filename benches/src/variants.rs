//! The variants, one per binary under `src/bin/`.
//!
//! Each binary declares its `#[global_allocator]` and passes the matching
//! constant here to [`run`](crate::run). Apart from `system`, every variant
//! sits on the same jemalloc, so its difference from [`JEMALLOC`] is the
//! cost of its counting alone.

use crate::{enable_tracking_allocator, Variant};

fn no_setup() {}

const fn plain(name: &'static str) -> Variant {
    Variant {
        name,
        setup: no_setup,
        scoped: false,
        tracked: false,
        call_counts: None,
    }
}

/// `std::alloc::System`: the platform's malloc.
pub const SYSTEM: Variant = plain("system");

/// Bare `tikv_jemallocator::Jemalloc`: the floor every wrapper adds to.
pub const JEMALLOC: Variant = plain("jemalloc");

/// `mempressure_alloc::Allocator::jemalloc()`, no scope entered: every byte
/// is charged to `other`.
pub const MEMPRESSURE: Variant = Variant {
    tracked: true,
    ..plain("mempressure")
};

/// The same allocator with every workload thread inside `scope!` of a
/// declared component, so attribution (and the owner table, for blocks of
/// at least `TAG_MIN_BYTES`) is on.
pub const MEMPRESSURE_SCOPED: Variant = Variant {
    tracked: true,
    scoped: true,
    ..plain("mempressure_scoped")
};

/// `stats_alloc::StatsAlloc` over jemalloc: six SeqCst counters, two
/// `fetch_add`s per call. Its binary adds its call counts.
pub const STATS_ALLOC: Variant = plain("stats_alloc");

/// `cap::Cap` over jemalloc with no limit: one `fetch_sub`/`fetch_add` per
/// call on the remaining budget.
pub const CAP: Variant = plain("cap");

/// `tracking_allocator::Allocator` over jemalloc with
/// [`LiveBytesTracker`](crate::LiveBytesTracker) installed and tracking on.
pub const TRACKING_ALLOCATOR: Variant = Variant {
    setup: enable_tracking_allocator,
    ..plain("tracking_allocator")
};

/// [`GlobalAtomic`](crate::GlobalAtomic): jemalloc plus one shared atomic.
pub const GLOBAL_ATOMIC: Variant = plain("global_atomic");

/// Every variant in the order the benchmark runs them.
pub const ALL: [Variant; 8] = [
    SYSTEM,
    JEMALLOC,
    MEMPRESSURE,
    MEMPRESSURE_SCOPED,
    STATS_ALLOC,
    CAP,
    TRACKING_ALLOCATOR,
    GLOBAL_ATOMIC,
];
