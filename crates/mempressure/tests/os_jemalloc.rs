//! jemalloc statistics when jemalloc is the global allocator.

#![cfg(feature = "jemalloc")]

use std::hint::black_box;

use mempressure::jemalloc::JemallocReader;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MIB: usize = 1 << 20;

// The figures are process-wide, so this binary holds one test: another test
// thread freeing memory meanwhile would lower them.

#[test]
fn allocated_bytes_grow_by_a_live_allocation() {
    // Holding 64 MiB raises stats.allocated by at least 64 MiB.
    let reader = JemallocReader::new().unwrap_or_else(|e| panic!("{e}"));
    let before = reader.read().unwrap_or_else(|e| panic!("{e}"));
    let buffer = black_box(vec![1_u8; 64 * MIB]);
    let during = reader.read().unwrap_or_else(|e| panic!("{e}"));
    drop(buffer);
    let grown = during
        .allocated_bytes
        .saturating_sub(before.allocated_bytes);
    assert!(
        grown >= (64 * MIB) as u64,
        "before {before:?}, during {during:?}"
    );
    assert!(during.active_bytes >= during.allocated_bytes, "{during:?}");
    assert!(during.resident_bytes >= during.active_bytes, "{during:?}");
    assert!(
        during.mapped_bytes > 0 && during.metadata_bytes > 0,
        "{during:?}"
    );
}
