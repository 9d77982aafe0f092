//! The allocators written here: the one-atomic baseline and the tracker the
//! tracking-allocator crate needs before it counts anything.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicIsize, Ordering};

use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker};

/// Live bytes as counted by [`GlobalAtomic`].
static GLOBAL_LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// The plain baseline of a counting allocator: jemalloc plus one relaxed
/// `fetch_add` on a single process-wide counter for every allocation, free
/// and reallocation.
///
/// Exact at every instant, and every thread writes the same cache line.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlobalAtomic;

impl GlobalAtomic {
    /// Live bytes counted so far.
    pub fn live_bytes() -> isize {
        GLOBAL_LIVE_BYTES.load(Ordering::Relaxed)
    }
}

// SAFETY: every method forwards to jemalloc's same method with the caller's
// arguments unchanged; the counter update never touches the block.
unsafe impl GlobalAlloc for GlobalAtomic {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { tikv_jemallocator::Jemalloc.alloc(layout) };
        if !ptr.is_null() {
            GLOBAL_LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            GLOBAL_LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) };
        GLOBAL_LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new_ptr = unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            let delta = new_size as isize - layout.size() as isize;
            GLOBAL_LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
        }
        new_ptr
    }
}

thread_local! {
    /// This thread's net bytes as seen by [`LiveBytesTracker`].
    static TRACKED_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// The cheapest useful tracker for the tracking-allocator crate: each
/// thread adds the object sizes it sees to a thread-local counter.
///
/// That crate calls no tracker until one is set and tracking is enabled, so
/// without this its figure would be that of a header and a branch. With it,
/// the figure is the crate's own cost (header, group-stack borrow, dynamic
/// call) and nothing of a shared counter's.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveBytesTracker;

impl AllocationTracker for LiveBytesTracker {
    fn allocated(&self, _addr: usize, object_size: usize, _wrapped: usize, _: AllocationGroupId) {
        let _ = TRACKED_BYTES.try_with(|b| b.set(b.get() + object_size as isize));
    }

    fn deallocated(
        &self,
        _addr: usize,
        object_size: usize,
        _wrapped_size: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
        let _ = TRACKED_BYTES.try_with(|b| b.set(b.get() - object_size as isize));
    }
}

/// Installs [`LiveBytesTracker`] and turns tracking on; the setup of the
/// `tracking_allocator` variant.
///
/// A second call finds the tracker already set and only re-enables.
pub fn enable_tracking_allocator() {
    let _ = AllocationRegistry::set_global_tracker(LiveBytesTracker);
    AllocationRegistry::enable_tracking();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_atomic_counts_an_allocation_until_it_is_freed() {
        let layout = Layout::from_size_align(4096, 8).unwrap();
        let before = GlobalAtomic::live_bytes();
        // SAFETY: a non-zero layout; the block is freed with it below.
        let ptr = unsafe { GlobalAtomic.alloc(layout) };
        assert!(!ptr.is_null());
        // Other tests run in parallel but never through `GlobalAtomic`.
        assert_eq!(GlobalAtomic::live_bytes() - before, 4096);
        // SAFETY: `ptr` came from `GlobalAtomic.alloc(layout)`.
        let ptr = unsafe { GlobalAtomic.realloc(ptr, layout, 100) };
        assert_eq!(GlobalAtomic::live_bytes() - before, 100);
        // SAFETY: `ptr` is the live block of 100 bytes from `realloc`.
        unsafe { GlobalAtomic.dealloc(ptr, Layout::from_size_align(100, 8).unwrap()) };
        assert_eq!(GlobalAtomic::live_bytes(), before);
    }

    #[test]
    fn the_tracker_nets_allocations_against_frees_per_thread() {
        let root = || AllocationGroupId::ROOT;
        LiveBytesTracker.allocated(0, 300, 308, root());
        LiveBytesTracker.deallocated(0, 100, 108, root(), root());
        assert_eq!(TRACKED_BYTES.with(Cell::get), 200);
    }
}
