//! The approximate process total and the watermark crossing signal.
//!
//! Every thread settles its net change (what it counted since its last
//! flush) once per [`ACTIVITY_WINDOW_BYTES`] of bytes allocated plus freed;
//! a net change of [`FLUSH_THRESHOLD_BYTES`] or more either way is then added
//! to one shared total with a single atomic add. The total therefore lags
//! the exact sum by less than `live threads x FLUSH_BYTES` (plus the
//! overflow slot, which is flushed at once), and the shared line is written
//! at most once per settlement, never per allocation.
//!
//! The control plane arms two watermarks. A flush that takes the total to or
//! above the high one, or below the low one, disarms that watermark and wakes
//! the registered waiter with `Thread::unpark`, which neither allocates nor
//! locks. Only the flush that wins the disarming wakes, so a crossing costs
//! one wake however many threads see it.

use core::ptr;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::thread::Thread;

use crossbeam_utils::CachePadded;

/// The bound on one thread's unflushed net change, in bytes.
///
/// 256 KiB keeps the shared line out of small-allocation loops (a thread
/// allocating and freeing 16-512 byte objects settles every 128 KiB of
/// activity but flushes only when its live bytes moved by 128 KiB) while
/// bounding the lag: 64 threads lag less than 16 MiB, under 2 % of a 1 GiB
/// budget and well inside the gap between the warning and critical
/// thresholds.
pub const FLUSH_BYTES: i64 = 256 * 1024;

/// Bytes allocated plus freed between two settlements of a thread's net
/// change.
///
/// The fast path's only test is the subtraction of each size from what is
/// left of this window, which is cheaper than tracking the net change itself.
pub const ACTIVITY_WINDOW_BYTES: u64 = FLUSH_BYTES as u64 / 2;

/// The net change, either way, at which a settlement flushes to the shared
/// total; below it the change waits for a later settlement.
pub const FLUSH_THRESHOLD_BYTES: u64 = FLUSH_BYTES as u64 - ACTIVITY_WINDOW_BYTES;

static APPROX_TOTAL: CachePadded<AtomicI64> = CachePadded::new(AtomicI64::new(0));
static HIGH_WATERMARK: AtomicI64 = AtomicI64::new(i64::MAX);
static LOW_WATERMARK: AtomicI64 = AtomicI64::new(i64::MIN);
static WAITER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());
static WAKES: AtomicU64 = AtomicU64::new(0);

/// Adds a thread's delta to the shared total and signals a crossing.
#[cold]
#[inline(never)]
pub(crate) fn flush(delta: i64) {
    let total = APPROX_TOTAL
        .fetch_add(delta, Ordering::Relaxed)
        .wrapping_add(delta);

    // Upward crossing: only the flush that disarms the watermark wakes.
    let high = HIGH_WATERMARK.load(Ordering::Relaxed);
    if total >= high
        && HIGH_WATERMARK
            .compare_exchange(high, i64::MAX, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        wake();
    }

    // Downward crossing, for prompt recovery.
    let low = LOW_WATERMARK.load(Ordering::Relaxed);
    if total < low
        && LOW_WATERMARK
            .compare_exchange(low, i64::MIN, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        wake();
    }
}

fn wake() {
    WAKES.fetch_add(1, Ordering::Relaxed);
    let waiter = WAITER.load(Ordering::Acquire);
    if !waiter.is_null() {
        // SAFETY: a waiter, once published, is leaked and never freed (see
        // `register_waiter`), so the pointer stays valid for the process.
        unsafe { &*waiter }.unpark();
    }
}

/// The shared total: exact bytes minus what threads have not flushed yet.
pub fn approximate_total_bytes() -> i64 {
    APPROX_TOTAL.load(Ordering::Relaxed)
}

/// Arms the watermarks: wake the waiter when the approximate total reaches
/// `high_bytes` or falls below `low_bytes`.
///
/// Each watermark disarms itself when it fires; arm again after handling the
/// wake. Returns `true` if the total is already outside `[low, high)`, in
/// which case no flush may come to report it and the caller should act now.
pub fn set_watermarks(low_bytes: i64, high_bytes: i64) -> bool {
    HIGH_WATERMARK.store(high_bytes, Ordering::Relaxed);
    LOW_WATERMARK.store(low_bytes, Ordering::Relaxed);
    let total = approximate_total_bytes();
    total >= high_bytes || total < low_bytes
}

/// Disarms both watermarks.
pub fn clear_watermarks() {
    HIGH_WATERMARK.store(i64::MAX, Ordering::Relaxed);
    LOW_WATERMARK.store(i64::MIN, Ordering::Relaxed);
}

/// Makes `thread` the one waiter a crossing unparks, replacing any earlier.
///
/// The handle is leaked on purpose: an allocating thread may be unparking
/// the previous waiter at this very moment, and a handle is a few dozen
/// bytes, registered once per monitor start.
pub fn register_waiter(thread: Thread) {
    let leaked = Box::into_raw(Box::new(thread));
    WAITER.store(leaked, Ordering::Release);
}

/// How many wakes crossings have caused since the process started.
pub fn wake_count() -> u64 {
    WAKES.load(Ordering::Relaxed)
}
