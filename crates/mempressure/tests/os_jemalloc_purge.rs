//! Purging jemalloc's unused pages when jemalloc is the global allocator.

#![cfg(feature = "jemalloc")]

use std::hint::black_box;

use mempressure::jemalloc::JemallocReader;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MIB: usize = 1 << 20;

// The figures are process-wide, so this binary holds one test.

#[test]
fn purge_returns_freed_pages_to_the_system() {
    // Freed 1 MiB extents stay resident as dirty pages until purged; some
    // may decay on their own first, hence a margin below the 64 MiB freed.
    let reader = JemallocReader::new().unwrap_or_else(|e| panic!("{e}"));
    let buffers: Vec<Vec<u8>> = (0..64).map(|_| black_box(vec![1_u8; MIB])).collect();
    drop(black_box(buffers));
    let before = reader.read().unwrap_or_else(|e| panic!("{e}"));
    reader.purge_all().unwrap_or_else(|e| panic!("{e}"));
    let after = reader.read().unwrap_or_else(|e| panic!("{e}"));
    let released = before.resident_bytes.saturating_sub(after.resident_bytes);
    assert!(
        released >= (16 * MIB) as u64,
        "before {before:?}, after {after:?}"
    );
}
