//! The `stats_alloc` variant: `StatsAlloc` over jemalloc, which also reports
//! how many allocator calls each workload makes per operation.

use mempressure_benches::{variants, CallCounts, Variant};
use stats_alloc::StatsAlloc;

#[global_allocator]
static ALLOC: StatsAlloc<tikv_jemallocator::Jemalloc> =
    StatsAlloc::new(tikv_jemallocator::Jemalloc);

fn call_counts() -> CallCounts {
    let stats = ALLOC.stats();
    CallCounts {
        allocs: stats.allocations as u64,
        reallocs: stats.reallocations as u64,
        frees: stats.deallocations as u64,
    }
}

fn main() -> std::process::ExitCode {
    mempressure_benches::run(Variant {
        call_counts: Some(call_counts),
        ..variants::STATS_ALLOC
    })
}
