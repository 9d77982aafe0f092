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

    /// The sum of every component, as read by the slot's owner.
    fn sum_owned(&self) -> i64 {
        self.bytes
            .iter()
            .fold(0i64, |sum, b| sum.wrapping_add(b.load(Ordering::Relaxed)))
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

/// Where the slot pointer of a thread without a slot points.
///
/// No thread owns it and no snapshot reads it. The fast path never writes it
/// either (a thread without a slot has no budget), but a pointer that is
/// never null keeps every path free of a dereference that could fault.
static UNOWNED: Slot = Slot::new();

/// The per-thread state on the allocation path.
///
/// Const-initialised and free of `Drop`, so the thread-local registers no
/// destructor and stays readable through the whole of thread teardown.
/// `budget_bytes` is zero whenever the thread has no slot of its own, which
/// sends each of its operations to [`charge_slow`]: the fast path needs no
/// separate test of the slot or the state.
struct Local {
    state: Cell<u8>,
    slot: Cell<*const Slot>,
    tag: Cell<u8>,
    /// Bytes (allocated plus freed) the fast path may still count before the
    /// slow path settles the thread's net change.
    budget_bytes: Cell<u64>,
    /// The slot's sum when its net change last went to the shared total.
    flushed_sum: Cell<i64>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            state: Cell::new(STATE_UNCLAIMED),
            slot: Cell::new(&raw const UNOWNED),
            tag: Cell::new(0),
            budget_bytes: Cell::new(0),
            flushed_sum: Cell::new(0),
        }
    };
}

/// Counts `delta` bytes for component `tag` on the calling thread.
#[inline(always)]
pub(crate) fn charge(tag: u8, delta: i64) {
    let counted = if delta < 0 {
        charge_fast::<true>(tag, delta.unsigned_abs() as usize)
    } else {
        charge_fast::<false>(tag, delta as usize)
    };
    if !counted {
        charge_cold(tag, delta);
    }
}

/// The fast path alone: `size` bytes allocated, or freed when `FREED`, for
/// component `tag`. `false` means nothing was counted and [`charge_cold`]
/// must be called (the budget ran out, the thread has no slot, or its
/// thread-local is out of reach).
///
/// One subtraction from the budget whose borrow is the only test, then one
/// owned counter update. Keeping the slow path out lets a caller make its
/// last call a tail call.
#[inline(always)]
pub(crate) fn charge_fast<const FREED: bool>(tag: u8, size: usize) -> bool {
    LOCAL
        .try_with(|local| {
            // Stored before the test so the update is one instruction; the
            // slow path resets what a borrow left.
            let (left, short) = local.budget_bytes.get().overflowing_sub(size as u64);
            local.budget_bytes.set(left);
            if short {
                return false;
            }
            let delta = if FREED {
                (size as i64).wrapping_neg()
            } else {
                size as i64
            };
            // SAFETY: the slot pointer always points into the static `SLOTS`
            // or to `UNOWNED`; with a budget left it is this thread's own
            // slot, which it owns until its exit hook takes the budget away.
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

/// Counts what the fast path could not: a spent budget, a first
/// allocation, or a thread without a slot.
fn charge_slow(local: &Local, tag: u8, delta: i64) {
    // Whatever follows, including re-entry while claiming, starts slow.
    local.budget_bytes.set(0);

    // A thread with a slot: count, then settle its net change.
    if let Some(slot) = owned_slot(local) {
        slot.add_owned(tag, delta);
        settle(local, slot);
        return;
    }

    // A first allocation: claim a slot, then count as its owner.
    if local.state.get() == STATE_UNCLAIMED {
        claim_slot(local);
        if let Some(slot) = owned_slot(local) {
            slot.add_owned(tag, delta);
            settle(local, slot);
            return;
        }
    }

    // No slot (claiming, none free, or exited): the shared overflow slot,
    // and the shared total at once.
    OVERFLOW.add_shared(tag, delta);
    signal::flush(delta);
}

/// Moves the thread's net change to the shared total once it is large
/// enough, and gives the fast path a new budget.
///
/// After this the unflushed net change is below [`signal::FLUSH_THRESHOLD_BYTES`],
/// and the budget lets it grow by at most [`signal::ACTIVITY_WINDOW_BYTES`]
/// before the next settlement: together below [`signal::FLUSH_BYTES`].
fn settle(local: &Local, slot: &Slot) {
    let sum = slot.sum_owned();
    let unflushed = sum.wrapping_sub(local.flushed_sum.get());
    if unflushed.unsigned_abs() >= signal::FLUSH_THRESHOLD_BYTES {
        local.flushed_sum.set(sum);
        signal::flush(unflushed);
    }
    local.budget_bytes.set(signal::ACTIVITY_WINDOW_BYTES);
}

/// Counts when the thread-local itself cannot be reached.
#[cold]
fn charge_orphan(tag: u8, delta: i64) {
    OVERFLOW.add_shared(tag, delta);
    signal::flush(delta);
}

fn owned_slot(local: &Local) -> Option<&'static Slot> {
    if local.state.get() != STATE_ACTIVE {
        return None;
    }
    // SAFETY: an active thread's slot pointer points into the static `SLOTS`.
    Some(unsafe { &*local.slot.get() })
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

    // The previous owner flushed what it left, so only changes from here on
    // are this thread's to flush.
    let slot = &*SLOTS[index];
    SLOTS_USED.fetch_max(index + 1, Ordering::Relaxed);
    local.flushed_sum.set(slot.sum_owned());
    local.slot.set(slot as *const Slot);
    local.state.set(STATE_ACTIVE);
}

/// Returns this thread's slot to the pool; run by the thread-exit hook.
///
/// The thread's unflushed net change moves to the approximate total first,
/// and every later allocation of the thread goes to the overflow slot.
pub(crate) fn release_slot(index: usize) {
    let _ = LOCAL.try_with(|local| {
        local.budget_bytes.set(0);
        if let Some(slot) = owned_slot(local) {
            let unflushed = slot.sum_owned().wrapping_sub(local.flushed_sum.get());
            if unflushed != 0 {
                signal::flush(unflushed);
            }
        }
        local.state.set(STATE_EXITED);
        local.slot.set(&raw const UNOWNED);
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
