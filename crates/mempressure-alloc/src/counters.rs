//! Live bytes per thread and per component, and the thread lifecycle.
//!
//! Each thread owns one slot of [`MAX_SLOTS`] for as long as it lives: a
//! padded line of one signed counter per component, written by that thread
//! alone with a relaxed load and store (no read-modify-write, no shared line
//! written per operation) and read by any thread. A free adds a negative
//! amount to the freeing thread's slot, so one slot's entry may be negative;
//! the sum over slots is what is exact.
//!
//! When a thread exits, its slot goes back to the pool with its counts left
//! in it: they still describe live memory, and the next owner keeps adding to
//! them. Allocations a thread makes while it has no slot (while it claims one,
//! after its exit hook ran, or when every slot is taken) go to a shared
//! overflow slot with atomic adds.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::component::{ComponentId, MAX_COMPONENTS};
use crate::exit::Hook;
use crate::signal;

/// How many threads can own a slot at once; later ones share the overflow.
///
/// 1024 slots of 128 bytes are 128 KiB of static memory; a server with more
/// live threads than that still counts exactly, only more slowly.
pub const MAX_SLOTS: usize = 1024;

/// One thread's counters, one per component, in bytes.
struct Slot {
    bytes: [AtomicI64; MAX_COMPONENTS],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            bytes: [const { AtomicI64::new(0) }; MAX_COMPONENTS],
        }
    }

    /// Adds `delta` as the slot's only writer: a relaxed load and store.
    ///
    /// Only the owning thread calls this, so no update can be lost between
    /// the load and the store. Readers may see either value; both are sums
    /// of completed operations.
    #[inline(always)]
    fn add_owned(&self, tag: u8, delta: i64) {
        let counter = &self.bytes[(tag as usize) & (MAX_COMPONENTS - 1)];
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(delta),
            Ordering::Relaxed,
        );
    }

    /// Adds `delta` from any thread, as the overflow slot needs.
    fn add_shared(&self, tag: u8, delta: i64) {
        self.bytes[(tag as usize) & (MAX_COMPONENTS - 1)].fetch_add(delta, Ordering::Relaxed);
    }
}

static SLOTS: [CachePadded<Slot>; MAX_SLOTS] = [const { CachePadded::new(Slot::new()) }; MAX_SLOTS];
static OWNED: [AtomicBool; MAX_SLOTS] = [const { AtomicBool::new(false) }; MAX_SLOTS];
static OVERFLOW: CachePadded<Slot> = CachePadded::new(Slot::new());

/// One past the highest slot index ever claimed, so snapshots skip the rest.
static SLOTS_USED: AtomicUsize = AtomicUsize::new(0);
/// Where the next claim starts looking, so claims spread over free slots.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Set once any thread has counted through the tracking allocator.
static INSTALLED: AtomicBool = AtomicBool::new(false);

const STATE_UNCLAIMED: u8 = 0;
const STATE_CLAIMING: u8 = 1;
const STATE_ACTIVE: u8 = 2;
const STATE_NO_SLOT: u8 = 3;
const STATE_EXITED: u8 = 4;

/// The unflushed delta of a thread without a slot of its own.
///
/// Far outside the flush window, so the one range check of the fast path
/// sends every operation of such a thread to [`charge_slow`]: the fast path
/// needs no separate test of the slot pointer. No allocation size can bring
/// the sum back into the window (sizes are far below 2^62).
const NO_SLOT_DELTA: i64 = i64::MIN / 2;

/// The per-thread state on the allocation path.
///
/// Const-initialised and free of `Drop`, so the thread-local registers no
/// destructor and stays readable through the whole of thread teardown.
/// `slot` is non-null exactly when `unflushed_bytes` is inside the flush
/// window.
struct Local {
    state: Cell<u8>,
    slot: Cell<*const Slot>,
    tag: Cell<u8>,
    unflushed_bytes: Cell<i64>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            state: Cell::new(STATE_UNCLAIMED),
            slot: Cell::new(ptr::null()),
            tag: Cell::new(0),
            unflushed_bytes: Cell::new(NO_SLOT_DELTA),
        }
    };
}

/// Whether an unflushed delta has left the window `[-FLUSH_BYTES,
/// FLUSH_BYTES]`: one add and one unsigned comparison for both signs.
#[inline(always)]
fn outside_window(unflushed: i64) -> bool {
    unflushed.wrapping_add(signal::FLUSH_BYTES) as u64 > 2 * signal::FLUSH_BYTES as u64
}

/// Counts `delta` bytes for component `tag` on the calling thread.
#[inline(always)]
pub(crate) fn charge(tag: u8, delta: i64) {
    if !charge_fast(tag, delta) {
        charge_cold(tag, delta);
    }
}

/// The fast path alone: the unflushed delta's update and range check, then
/// one owned counter update. `false` means nothing was counted and
/// [`charge_cold`] must be called (a flush is due, the thread has no slot,
/// or its thread-local is out of reach).
///
/// Keeping the slow path out lets a caller make its last call a tail call.
#[inline(always)]
pub(crate) fn charge_fast(tag: u8, delta: i64) -> bool {
    LOCAL
        .try_with(|local| {
            let unflushed = local.unflushed_bytes.get().wrapping_add(delta);
            if outside_window(unflushed) {
                return false;
            }
            local.unflushed_bytes.set(unflushed);
            // SAFETY: inside the window the slot pointer is non-null (see
            // `Local`); it points into the static `SLOTS`, and this thread
            // owns that slot until its exit hook clears the pointer.
            unsafe { &*local.slot.get() }.add_owned(tag, delta);
            true
        })
        .unwrap_or(false)
}

/// Counts what [`charge_fast`] declined.
#[cold]
#[inline(never)]
pub(crate) fn charge_cold(tag: u8, delta: i64) {
    if LOCAL
        .try_with(|local| charge_slow(local, tag, delta))
        .is_err()
    {
        charge_orphan(tag, delta);
    }
}

/// Counts what the fast path could not: a flush, a first allocation, or a
/// thread without a slot.
fn charge_slow(local: &Local, tag: u8, delta: i64) {
    // A thread with a slot: flush the delta to the shared total.
    if let Some(slot) = owned_slot(local) {
        slot.add_owned(tag, delta);
        let unflushed = local.unflushed_bytes.replace(0).wrapping_add(delta);
        signal::flush(unflushed);
        return;
    }

    // A first allocation: claim a slot, then count as its owner.
    if local.state.get() == STATE_UNCLAIMED {
        claim_slot(local);
        if let Some(slot) = owned_slot(local) {
            slot.add_owned(tag, delta);
            if outside_window(delta) {
                local.unflushed_bytes.set(0);
                signal::flush(delta);
            } else {
                local.unflushed_bytes.set(delta);
            }
            return;
        }
    }

    // No slot (claiming, none free, or exited): the shared overflow slot,
    // and the shared total at once.
    OVERFLOW.add_shared(tag, delta);
    signal::flush(delta);
}

/// Counts when the thread-local itself cannot be reached.
#[cold]
fn charge_orphan(tag: u8, delta: i64) {
    OVERFLOW.add_shared(tag, delta);
    signal::flush(delta);
}

fn owned_slot(local: &Local) -> Option<&'static Slot> {
    let slot = local.slot.get();
    // SAFETY: a non-null `slot` always points into the static `SLOTS`.
    (!slot.is_null()).then(|| unsafe { &*slot })
}

/// Claims a free slot for this thread and arranges its return at exit.
///
/// Allocations made meanwhile (the exit hook's registration may allocate)
/// see `STATE_CLAIMING` and go to the overflow slot: no re-entry recursion.
fn claim_slot(local: &Local) {
    local.state.set(STATE_CLAIMING);
    INSTALLED.store(true, Ordering::Relaxed);

    // Find a free slot, starting where the last claim left off.
    let start = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let found = (0..MAX_SLOTS).map(|i| (start + i) % MAX_SLOTS).find(|&i| {
        // Acquire pairs with the Release in `release_slot`: the new owner
        // sees the counts the previous owner left.
        OWNED[i]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    let Some(index) = found else {
        local.state.set(STATE_NO_SLOT);
        return;
    };

    // Register the exit hook; without it the slot could never be reused.
    match crate::exit::register(index) {
        Hook::Registered => {}
        Hook::Busy => {
            OWNED[index].store(false, Ordering::Release);
            local.state.set(STATE_UNCLAIMED);
            return;
        }
        Hook::Unavailable => {
            OWNED[index].store(false, Ordering::Release);
            local.state.set(STATE_NO_SLOT);
            return;
        }
    }
    SLOTS_USED.fetch_max(index + 1, Ordering::Relaxed);
    local.slot.set(&*SLOTS[index] as *const Slot);
    local.state.set(STATE_ACTIVE);
}

/// Returns this thread's slot to the pool; run by the thread-exit hook.
///
/// The thread's unflushed delta moves to the approximate total first, and
/// every later allocation of the thread goes to the overflow slot.
pub(crate) fn release_slot(index: usize) {
    let _ = LOCAL.try_with(|local| {
        local.state.set(STATE_EXITED);
        local.slot.set(ptr::null());
        let unflushed = local.unflushed_bytes.replace(NO_SLOT_DELTA);
        if unflushed != 0 && !outside_window(unflushed) {
            signal::flush(unflushed);
        }
    });
    if let Some(owned) = OWNED.get(index) {
        owned.store(false, Ordering::Release);
    }
}

/// Sets this thread's component and returns the previous one.
pub(crate) fn swap_tag(component: ComponentId) -> ComponentId {
    LOCAL
        .try_with(|local| ComponentId::from_tag(local.tag.replace(component.tag())))
        .unwrap_or(ComponentId::OTHER)
}

/// This thread's component.
#[inline(always)]
pub(crate) fn current_tag() -> ComponentId {
    LOCAL
        .try_with(|local| ComponentId::from_tag(local.tag.get()))
        .unwrap_or(ComponentId::OTHER)
}

/// Whether any allocation has been counted by a tracking allocator.
///
/// `false` means the shim is not the global allocator (or nothing allocated
/// yet), and every count reads zero.
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The live bytes of every component at one moment.
///
/// Each counter is read with a relaxed load while other threads keep
/// counting, so a snapshot taken under load is a sum of slightly different
/// instants; taken while threads are quiet it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    bytes: [i64; MAX_COMPONENTS],
}

impl Snapshot {
    /// Live bytes of every component together.
    pub fn total_bytes(&self) -> u64 {
        let total = self.bytes.iter().fold(0i64, |sum, b| sum.wrapping_add(*b));
        total.max(0) as u64
    }

    /// Live bytes owned by one component.
    ///
    /// A moment where a free was counted on one thread before the matching
    /// allocation on another became visible reads as zero, never below.
    pub fn component_bytes(&self, component: ComponentId) -> u64 {
        self.bytes[component.index()].max(0) as u64
    }

    /// Every component's live bytes, by index.
    pub fn by_component(&self) -> [u64; MAX_COMPONENTS] {
        self.bytes.map(|b| b.max(0) as u64)
    }
}

/// Sums every slot into a [`Snapshot`].
pub fn snapshot() -> Snapshot {
    let mut bytes = [0i64; MAX_COMPONENTS];
    let used = SLOTS_USED.load(Ordering::Relaxed).min(MAX_SLOTS);
    for slot in SLOTS[..used].iter().map(|s| &**s).chain([&*OVERFLOW]) {
        for (sum, counter) in bytes.iter_mut().zip(&slot.bytes) {
            *sum = sum.wrapping_add(counter.load(Ordering::Relaxed));
        }
    }
    Snapshot { bytes }
}

/// How many slots threads own right now.
pub fn live_slots() -> usize {
    let used = SLOTS_USED.load(Ordering::Relaxed).min(MAX_SLOTS);
    OWNED[..used]
        .iter()
        .filter(|o| o.load(Ordering::Relaxed))
        .count()
}
