//! Threads, timing and the deterministic allocation-size sequence.

use core::alloc::Layout;
use core::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use crate::args::{Args, Workload};
use crate::workloads::{self, Job};
use crate::BenchComponent;

/// Every block is 8-byte aligned, as most Rust heap objects are.
const ALIGN_BYTES: usize = 8;

/// A cheap, deterministic sequence of allocation sizes.
///
/// With no fixed size it yields 16 to 512 bytes from a 64-bit linear
/// congruential generator: a multiply, an add and a shift per size, all in
/// registers, so the loop around the allocator stays a few instructions.
#[derive(Debug, Clone)]
pub struct Sizes {
    state: u64,
    fixed_bytes: usize,
}

impl Sizes {
    /// A sequence seeded with `seed`; `fixed_bytes` other than 0 makes every
    /// size that.
    pub fn new(seed: u64, fixed_bytes: usize) -> Sizes {
        Sizes {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            fixed_bytes,
        }
    }

    /// The next size in bytes, 16 to 512 unless fixed.
    #[inline(always)]
    pub fn next_size(&mut self) -> usize {
        if self.fixed_bytes != 0 {
            return self.fixed_bytes;
        }
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The top 9 bits scaled to 0..=496.
        16 + (((self.state >> 55) as usize * 497) >> 9)
    }

    /// The next size as an 8-byte aligned layout.
    #[inline(always)]
    pub fn next_layout(&mut self) -> Layout {
        let size = self.next_size();
        // SAFETY: sizes are at most 16 MiB (the argument parser's bound) and
        // 8 is a power of two, so the rounded size cannot overflow `isize`.
        unsafe { Layout::from_size_align_unchecked(size.max(1), ALIGN_BYTES) }
    }
}

/// Operation pairs a run performs over all its threads.
pub(crate) fn total_pairs(args: &Args) -> u64 {
    args.ops.saturating_mul(args.threads as u64).max(1)
}

/// Runs the workload on its threads and returns nanoseconds per operation
/// pair as one thread sees it: wall time over the pairs each thread does.
///
/// Threads are spawned, warmed up (first allocation, scope entered) and
/// held at a barrier; the wall time runs from the first thread leaving the
/// barrier to the last one finishing, each stamped by the thread itself so
/// a descheduled main thread cannot shorten it.
pub(crate) fn time_workload(args: &Args, scoped: bool) -> f64 {
    debug_assert!(args.workload != Workload::Accuracy);
    let jobs = workloads::jobs(args);
    let barrier = Barrier::new(jobs.len());
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let barrier = &barrier;
                s.spawn(move || run_job(job, barrier, scoped))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let start = spans.iter().map(|s| s.0).min();
    let end = spans.iter().map(|s| s.1).max();
    let elapsed_ns = match (start, end) {
        (Some(start), Some(end)) => end.duration_since(start).as_nanos() as f64,
        _ => f64::NAN,
    };
    elapsed_ns / args.ops as f64
}

/// Runs one job and returns when it started and ended.
fn run_job(job: Job, barrier: &Barrier, scoped: bool) -> (Instant, Instant) {
    let _scope = scoped.then(|| mempressure_alloc::scope!(BenchComponent::Workload));
    // The thread's first allocation claims its counter slot and its jemalloc
    // thread cache; neither belongs in the timed part.
    drop(black_box(Box::new([0u8; 64])));
    barrier.wait();
    let start = Instant::now();
    job();
    (start, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_sizes_stay_between_16_and_512_bytes() {
        let mut sizes = Sizes::new(7, 0);
        let drawn: Vec<usize> = (0..100_000).map(|_| sizes.next_size()).collect();
        assert!(drawn.iter().all(|s| (16..=512).contains(s)));
        assert!(drawn.contains(&16) && drawn.iter().any(|&s| s >= 500));
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = Sizes::new(3, 0);
        let mut b = Sizes::new(3, 0);
        assert!((0..1000).all(|_| a.next_size() == b.next_size()));
    }

    #[test]
    fn a_fixed_size_is_always_returned() {
        let mut sizes = Sizes::new(1, 4096);
        assert!((0..10).all(|_| sizes.next_layout().size() == 4096));
    }
}
