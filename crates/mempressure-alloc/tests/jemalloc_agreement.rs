//! The tracked total agrees with jemalloc's `stats.allocated`.
//!
//! The shim counts requested sizes; jemalloc counts size classes. So the
//! check compares jemalloc's growth with the sum of each request rounded by
//! jemalloc's own `nallocx`, and requires the raw tracked growth to sit below
//! it by no more than the rounding. The slack allows for blocks jemalloc's
//! thread caches move between "cached" and "allocated" meanwhile.

mod common;

use tikv_jemalloc_ctl::{epoch, stats};

fn jemalloc_allocated() -> u64 {
    epoch::advance().unwrap();
    stats::allocated::read().unwrap() as u64
}

fn size_class(size: usize) -> u64 {
    // SAFETY: `nallocx` only computes a size class; flags 0 is the default.
    unsafe { tikv_jemalloc_sys::nallocx(size, 0) as u64 }
}

#[test]
fn tracked_total_agrees_with_jemalloc_allocated() {
    // Arrange: a mix of small, medium and large sizes.
    let sizes: Vec<usize> = (0..60_000).map(|i| 16 + (i * 7919) % 3000).collect();
    let large: Vec<usize> = (1..=40).map(|i| i * 50_000).collect();
    // The first statistics read allocates once (name lookups); keep that
    // out of the measured window.
    let _ = jemalloc_allocated();
    let jemalloc_before = jemalloc_allocated();
    let tracked_before = mempressure_alloc::snapshot().total_bytes();

    // Act
    let mut live: Vec<Vec<u8>> = Vec::with_capacity(sizes.len() + large.len());
    for &size in sizes.iter().chain(&large) {
        live.push(Vec::with_capacity(size));
    }
    let tracked = mempressure_alloc::snapshot().total_bytes() - tracked_before;
    let jemalloc = jemalloc_allocated() as i64 - jemalloc_before as i64;

    // Assert
    let requested: u64 = sizes.iter().chain(&large).map(|&s| s as u64).sum::<u64>()
        + (live.capacity() * std::mem::size_of::<Vec<u8>>()) as u64;
    let classed: u64 = sizes
        .iter()
        .chain(&large)
        .map(|&s| size_class(s))
        .sum::<u64>()
        + size_class(live.capacity() * std::mem::size_of::<Vec<u8>>());
    assert_eq!(
        tracked, requested,
        "the shim counts requested bytes exactly"
    );
    let slack = 2 << 20;
    assert!(
        (jemalloc - classed as i64).unsigned_abs() < slack,
        "jemalloc grew {jemalloc}, size classes predict {classed}"
    );
    let rounding = classed - requested;
    assert!(
        rounding * 100 / requested < 25,
        "rounding {rounding} of {requested}"
    );
    drop(live);
}
