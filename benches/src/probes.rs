//! What only a binary with the tracking allocator installed can measure:
//! how close the tracked total is to jemalloc's own figure, and how often a
//! thread's counter delta is flushed to the shared total.

use core::fmt;
use core::hint::black_box;
use core::ptr;

use crate::args::{Args, Workload};
use crate::harness::Sizes;
use crate::workloads;
use crate::Variant;

/// Why a probe could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeError {
    /// The variant's global allocator is not mempressure's.
    NotTracked {
        /// What was asked for: the workload or the flag.
        probe: &'static str,
        /// The variant that cannot answer it.
        variant: &'static str,
    },
    /// jemalloc refused a statistics read.
    Jemalloc(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::NotTracked { probe, variant } => write!(
                f,
                "{probe} needs the tracking allocator; variant {variant} does not install it \
                 (use mempressure or mempressure_scoped)"
            ),
            ProbeError::Jemalloc(why) => write!(f, "could not read jemalloc statistics: {why}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Blocks of the `exact_capacity` shape per requested entry.
const EXACT_BLOCKS_PER_ENTRY: u64 = 8;

/// Compares the tracked total with jemalloc's `stats.allocated` on two live
/// shapes and formats one `accuracy` line for each.
///
/// `server_map` is the server workload's map of `entries` entries just
/// after it is built: values grown by pushes, so their capacities are
/// powers of two, which are jemalloc size classes. `exact_capacity` is
/// `entries x 8` vectors of exactly 16 to 512 bytes each, which mostly fall
/// between classes. The live blocks of each shape are also summed at their
/// requested size and at the size class jemalloc serves them from
/// (`nallocx`), which gives the part of the gap that rounding explains.
///
/// # Errors
///
/// [`ProbeError::NotTracked`] on an untracked variant, and
/// [`ProbeError::Jemalloc`] if a statistics read fails.
pub(crate) fn accuracy(variant: &Variant, entries: u64) -> Result<String, ProbeError> {
    if !variant.tracked {
        return Err(ProbeError::NotTracked {
            probe: "--workload accuracy",
            variant: variant.name,
        });
    }
    let _scope = variant
        .scoped
        .then(|| mempressure_alloc::scope!(crate::BenchComponent::Workload));

    let map = workloads::build_map(0, entries, &mut Sizes::new(1, 0));
    let capacities = map.iter().flat_map(|(k, v)| [k.capacity(), v.capacity()]);
    let server = compare(variant, "server_map", capacities.collect())?;
    drop(black_box(map));

    let mut sizes = Sizes::new(2, 0);
    let blocks: Vec<Vec<u8>> = (0..entries * EXACT_BLOCKS_PER_ENTRY)
        .map(|_| Vec::with_capacity(sizes.next_size()))
        .collect();
    let exact = compare(
        variant,
        "exact_capacity",
        blocks.iter().map(Vec::capacity).collect(),
    )?;
    drop(black_box(blocks));
    Ok(format!("{server}\n{exact}"))
}

/// Reads both totals while `capacities` (the shape's blocks) are live.
fn compare(variant: &Variant, shape: &str, capacities: Vec<usize>) -> Result<String, ProbeError> {
    // Read the tracked total and jemalloc's view with nothing in between,
    // then again once this thread's cached free blocks are returned.
    let tracked_bytes = mempressure_alloc::snapshot().total_bytes();
    let allocated_bytes = jemalloc_allocated_bytes()?;
    flush_thread_cache();
    let flushed_bytes = jemalloc_allocated_bytes()?;

    let requested_bytes: u64 = capacities.iter().map(|&c| c as u64).sum();
    let class_bytes: u64 = capacities.iter().map(|&c| size_class_bytes(c) as u64).sum();
    let ratio = |num: u64, den: u64| num as f64 / den.max(1) as f64;
    Ok(format!(
        "accuracy variant={} shape={shape} blocks={} tracked_bytes={tracked_bytes} \
         jemalloc_allocated_bytes={allocated_bytes} \
         jemalloc_allocated_after_tcache_flush_bytes={flushed_bytes} \
         jemalloc_to_tracked={:.4} jemalloc_to_tracked_after_tcache_flush={:.4} \
         blocks_requested_bytes={requested_bytes} blocks_size_class_bytes={class_bytes} \
         rounding_ratio={:.4}",
        variant.name,
        capacities.len(),
        ratio(allocated_bytes, tracked_bytes),
        ratio(flushed_bytes, tracked_bytes),
        ratio(class_bytes, requested_bytes),
    ))
}

/// Flushes counted per operation pair in an untimed, single-threaded pass
/// of the ring, or `None` for any other workload.
///
/// The shared total moves only when some thread flushes, and only this
/// thread runs, so each change seen after an allocation or a free is one
/// flush. Filling and emptying the ring are not counted: the figure is the
/// steady state. Each thread of a multi-threaded run flushes at this rate
/// on its own, since the delta is per thread.
pub(crate) fn flushes_per_op(args: &Args) -> Option<f64> {
    if args.workload != Workload::Ring {
        return None;
    }
    let mut last = mempressure_alloc::approximate_total_bytes();
    let mut flushes = 0u64;
    let mut counting = false;
    let mut sizes = Sizes::new(1, args.size_bytes);
    let observe = || {
        let now = mempressure_alloc::approximate_total_bytes();
        if counting && now != last {
            flushes += 1;
        }
        counting = true;
        last = now;
    };
    workloads::ring(args.ops, args.live, &mut sizes, observe);
    Some(flushes as f64 / args.ops as f64)
}

/// jemalloc's `stats.allocated`, refreshed by an epoch advance.
pub(crate) fn jemalloc_allocated_bytes() -> Result<u64, ProbeError> {
    let fail = |e: tikv_jemalloc_ctl::Error| ProbeError::Jemalloc(e.to_string());
    tikv_jemalloc_ctl::epoch::advance().map_err(fail)?;
    tikv_jemalloc_ctl::stats::allocated::read()
        .map(|b| b as u64)
        .map_err(fail)
}

/// Returns this thread's cached free blocks to their arenas, so
/// `stats.allocated` stops counting them.
fn flush_thread_cache() {
    // SAFETY: the name is NUL-terminated and `thread.tcache.flush` takes
    // and returns nothing, so every pointer may be null. A failure (a build
    // without thread caches) leaves the figures as they were.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.flush".as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
}

/// The size class jemalloc serves `size` bytes from; 0 for 0.
fn size_class_bytes(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    // SAFETY: `nallocx` only computes a size; flags 0 means no alignment or
    // arena constraint, and the size is non-zero as it requires.
    unsafe { tikv_jemalloc_sys::nallocx(size, 0) }
}
