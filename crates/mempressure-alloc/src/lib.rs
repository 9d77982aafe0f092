//! A counting `#[global_allocator]` shim: every live byte, per thread and per
//! component, with a crossing signal raised from the allocation path itself.
//!
//! [`TrackingAllocator`] wraps any [`GlobalAlloc`] and forwards each call to
//! the inner allocator's own method (`alloc_zeroed` stays lazy, `realloc`
//! stays in place where the inner allocator can). It adds three things:
//!
//! - **Counters.** Each thread owns a padded slot of per-component byte
//!   counters that it alone writes and any thread reads; [`snapshot`] sums
//!   them. The total is exact once threads are quiet, and never drifts.
//! - **Components.** The host declares a small fixed set with
//!   [`components!`]; [`scope!`] names the current one on a thread and
//!   [`ScopeExt::in_scope`] does it for every poll of a future. An allocation
//!   of at least [`TAG_MIN_BYTES`] made inside a scope remembers its owner,
//!   and its free is charged back there whichever thread frees it and
//!   whatever scope is current then. Smaller allocations are charged to the
//!   catch-all `other`. [`transfer_vec`] moves a buffer's charge to a new
//!   owner without copying it.
//! - **Crossing signal.** An approximate total follows the exact one: each
//!   thread moves its net change there once it reaches
//!   [`FLUSH_THRESHOLD_BYTES`], checked every [`ACTIVITY_WINDOW_BYTES`] of
//!   bytes allocated plus freed, so no thread lags by [`FLUSH_BYTES`] or
//!   more. When the total crosses a watermark armed with
//!   [`set_watermarks`], the thread registered with [`register_waiter`] is
//!   unparked, without allocating or locking.
//!
//! The allocation path never allocates, locks, logs, formats or panics.
//! Its thread-locals are const-initialised and register no destructor; a
//! thread's slot is handed back by a POSIX key destructor that runs after
//! Rust's thread-local destructors, and frees after that are still counted.
//! An allocation the inner allocator refuses changes no counter.
//!
//! # Drop-in
//!
//! ```
//! #[global_allocator]
//! static ALLOC: mempressure_alloc::Allocator = mempressure_alloc::Allocator::jemalloc();
//!
//! mempressure_alloc::components! {
//!     /// Where this program's memory goes.
//!     pub enum Component {
//!         SegmentCache => "segment_cache",
//!     }
//! }
//!
//! let block = {
//!     let _scope = mempressure_alloc::scope!(Component::SegmentCache);
//!     vec![0u8; 64 * 1024]
//! };
//! let snapshot = mempressure_alloc::snapshot();
//! assert!(snapshot.component_bytes(Component::SegmentCache.into()) >= 64 * 1024);
//! drop(block);
//! ```
//!
//! # What is exact and what is not
//!
//! - Counted sizes are the sizes asked for (`Layout::size`), not the
//!   allocator's size classes; jemalloc's `stats.allocated` is larger by the
//!   rounding, about 10 % for mixed small sizes.
//! - A snapshot under load sums counters read at slightly different
//!   instants, so a component can momentarily read low; it reads 0 rather
//!   than below.
//! - The approximate total lags the exact one by less than
//!   `threads x FLUSH_BYTES`.
//! - If the owner table is full, a scoped allocation is charged to `other`
//!   ([`table_full_count`] says how often).
//!
//! # Crate features
//!
//! - `jemalloc` (default): [`Allocator`] wraps `tikv_jemallocator::Jemalloc`.
//!   Without it, [`Allocator`] wraps [`std::alloc::System`].

// Every public item is documented; the allocation path is all about its
// invariants.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod component;
mod counters;
mod exit;
mod signal;
mod tag_table;

use core::alloc::{GlobalAlloc, Layout};

pub use component::{
    current_component, ComponentId, ComponentSet, InScope, ScopeExt, ScopeGuard, MAX_COMPONENTS,
};
pub use counters::{is_installed, live_slots, snapshot, Snapshot, MAX_SLOTS};
pub use signal::{
    approximate_total_bytes, clear_watermarks, register_waiter, set_watermarks, wake_count,
    ACTIVITY_WINDOW_BYTES, FLUSH_BYTES, FLUSH_THRESHOLD_BYTES,
};
pub use tag_table::{table_full_count, TAG_MIN_BYTES};

#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator::Jemalloc;

/// The inner allocator [`Allocator`] wraps.
#[cfg(feature = "jemalloc")]
pub type DefaultInner = tikv_jemallocator::Jemalloc;
/// The inner allocator [`Allocator`] wraps.
#[cfg(not(feature = "jemalloc"))]
pub type DefaultInner = std::alloc::System;

/// The tracking allocator over the default inner allocator.
pub type Allocator = TrackingAllocator<DefaultInner>;

/// A [`GlobalAlloc`] that counts every live byte of an inner allocator.
#[derive(Debug, Default)]
pub struct TrackingAllocator<A> {
    inner: A,
}

impl<A> TrackingAllocator<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        TrackingAllocator { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

#[cfg(feature = "jemalloc")]
impl TrackingAllocator<tikv_jemallocator::Jemalloc> {
    /// Tracks jemalloc: `static ALLOC: Allocator = Allocator::jemalloc();`.
    pub const fn jemalloc() -> Self {
        TrackingAllocator::new(tikv_jemallocator::Jemalloc)
    }
}

impl TrackingAllocator<std::alloc::System> {
    /// Tracks the system allocator.
    pub const fn system() -> Self {
        TrackingAllocator::new(std::alloc::System)
    }
}

/// Counts a block the inner allocator returned; a null one changes nothing.
#[inline(always)]
fn count_new_block(ptr: *mut u8, size: usize) {
    if ptr.is_null() {
        return;
    }
    if size < TAG_MIN_BYTES {
        if !counters::charge_fast::<false>(0, size) {
            counters::charge_cold(0, size as i64);
        }
    } else {
        count_large_alloc(ptr, size);
    }
}

/// Counts a new large block: its owner is the current component, if the
/// owner table has room.
#[inline(never)]
fn count_large_alloc(ptr: *mut u8, size: usize) {
    counters::charge(tag_new_block(ptr), size as i64);
}

/// Records the current component as the owner of a large block.
fn tag_new_block(ptr: *mut u8) -> u8 {
    let tag = counters::current_tag().tag();
    if tag != 0 && tag_table::insert(ptr as usize, tag) {
        tag
    } else {
        0
    }
}

/// Forgets the owner of a block about to go back; call before the inner free.
#[inline(always)]
fn untag_block(ptr: *mut u8, size: usize) -> u8 {
    if size >= TAG_MIN_BYTES {
        tag_table::remove(ptr as usize)
    } else {
        0
    }
}

impl<A: GlobalAlloc> TrackingAllocator<A> {
    /// Frees a small block whose count the fast path declined.
    ///
    /// # Safety
    ///
    /// Same as [`GlobalAlloc::dealloc`].
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_cold(&self, ptr: *mut u8, layout: Layout) {
        counters::charge_cold(0, -(layout.size() as i64));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    /// Frees a large block: its owner is looked up, then charged.
    ///
    /// # Safety
    ///
    /// Same as [`GlobalAlloc::dealloc`].
    #[inline(never)]
    unsafe fn dealloc_large(&self, ptr: *mut u8, layout: Layout) {
        let tag = tag_table::remove(ptr as usize);
        counters::charge(tag, -(layout.size() as i64));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}

// SAFETY: every method forwards to the inner allocator's same method with
// the caller's arguments unchanged, so the inner allocator's guarantees
// (alignment, size, validity) are what callers get. The counting around the
// calls never touches the blocks and cannot unwind.
unsafe impl<A: GlobalAlloc> GlobalAlloc for TrackingAllocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        count_new_block(ptr, layout.size());
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        count_new_block(ptr, layout.size());
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= TAG_MIN_BYTES {
            // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
            return unsafe { self.dealloc_large(ptr, layout) };
        }
        // Count first, so the inner free is the last call (a tail call).
        if !counters::charge_fast::<true>(0, layout.size()) {
            // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
            return unsafe { self.dealloc_cold(ptr, layout) };
        }
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        if old_size >= TAG_MIN_BYTES || new_size >= TAG_MIN_BYTES {
            // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
            return unsafe { self.realloc_large(ptr, layout, new_size) };
        }

        // Small to small: no owner on either side, one charge to `other`.
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new_ptr = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            counters::charge(0, new_size as i64 - old_size as i64);
        }
        new_ptr
    }
}

impl<A: GlobalAlloc> TrackingAllocator<A> {
    /// Reallocates a block that is or becomes large: its owner moves with
    /// it.
    ///
    /// # Safety
    ///
    /// Same as [`GlobalAlloc::realloc`].
    #[inline(never)]
    unsafe fn realloc_large(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        let old_tag = untag_block(ptr, old_size);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new_ptr = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if new_ptr.is_null() {
            // The old block is still live: give it its owner back.
            if old_tag != 0 && !tag_table::insert(ptr as usize, old_tag) {
                counters::charge(old_tag, -(old_size as i64));
                counters::charge(0, old_size as i64);
            }
            return new_ptr;
        }
        let new_tag = if new_size < TAG_MIN_BYTES {
            0
        } else if old_tag != 0 && tag_table::insert(new_ptr as usize, old_tag) {
            old_tag
        } else if old_tag != 0 {
            0
        } else {
            tag_new_block(new_ptr)
        };
        if new_tag == old_tag {
            counters::charge(new_tag, new_size as i64 - old_size as i64);
        } else {
            counters::charge(old_tag, -(old_size as i64));
            counters::charge(new_tag, new_size as i64);
        }
        new_ptr
    }
}

/// Why a charge could not be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferError {
    /// The buffer is below [`TAG_MIN_BYTES`]: it is charged to `other` and
    /// carries no owner to move.
    TooSmall {
        /// The buffer's allocated size.
        size_bytes: usize,
    },
    /// No tracking allocator is the global allocator.
    NotInstalled,
}

impl core::fmt::Display for TransferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransferError::TooSmall { size_bytes } => write!(
                f,
                "a {size_bytes}-byte buffer carries no owner (owners are kept from \
                 {TAG_MIN_BYTES} bytes)"
            ),
            TransferError::NotInstalled => {
                f.write_str("the tracking allocator is not the global allocator")
            }
        }
    }
}

impl std::error::Error for TransferError {}

/// Moves the charge for a live block from its owner to `to`; returns the
/// previous owner.
///
/// # Errors
///
/// [`TransferError::TooSmall`] below [`TAG_MIN_BYTES`], and
/// [`TransferError::NotInstalled`] when no tracking allocator counts.
///
/// # Safety
///
/// - `ptr` and `size_bytes` must be the address and `Layout::size` of a block
///   currently allocated by the global allocator, which must be a
///   [`TrackingAllocator`].
/// - No other thread may free, reallocate or transfer that block meanwhile.
pub unsafe fn transfer_raw(
    ptr: *const u8,
    size_bytes: usize,
    to: ComponentId,
) -> Result<ComponentId, TransferError> {
    if size_bytes < TAG_MIN_BYTES {
        return Err(TransferError::TooSmall { size_bytes });
    }
    if !is_installed() {
        return Err(TransferError::NotInstalled);
    }
    let from = tag_table::remove(ptr as usize);
    let to = if tag_table::insert(ptr as usize, to.tag()) {
        to.tag()
    } else {
        0
    };
    if from != to {
        counters::charge(from, -(size_bytes as i64));
        counters::charge(to, size_bytes as i64);
    }
    Ok(ComponentId::from_tag(from))
}

/// Moves the charge for a vector's buffer to `to`, without copying it;
/// returns the previous owner.
///
/// For a request buffer kept as a cache entry, say. A vector that has not
/// allocated is left alone and reported as owned by `other`.
///
/// # Errors
///
/// As [`transfer_raw`].
pub fn transfer_vec<T>(vec: &Vec<T>, to: ComponentId) -> Result<ComponentId, TransferError> {
    let size_bytes = vec.capacity().saturating_mul(core::mem::size_of::<T>());
    if size_bytes == 0 {
        return Ok(ComponentId::OTHER);
    }
    // SAFETY: a vector with a non-zero allocated size owns a block from the
    // global allocator of exactly `capacity * size_of::<T>()` bytes, and the
    // shared borrow keeps it from being freed or grown meanwhile. If the
    // global allocator is not a tracking allocator, `is_installed` is false
    // and `transfer_raw` returns before touching the owner table.
    unsafe { transfer_raw(vec.as_ptr().cast(), size_bytes, to) }
}
