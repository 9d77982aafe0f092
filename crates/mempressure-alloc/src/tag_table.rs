//! The owner tag of each large allocation made inside a scope.
//!
//! A free must be charged to the component that made the allocation, even on
//! another thread or outside that scope. `dealloc` is told only the pointer
//! and layout, so the owner has to be stored somewhere. A header in the block
//! would push sizes that sit exactly on a jemalloc size class (every power of
//! two a growing `Vec` reaches) into the next class, a quarter to all of the
//! block again. This table costs nothing per allocation instead: a fixed,
//! lock-free open-addressing set of `pointer | tag << 56` words in static
//! memory, touched only for allocations of at least [`TAG_MIN_BYTES`].
//!
//! Entries are claimed with a compare-and-swap from empty or deleted, and
//! deleted by the allocation's owner with a store, before the block goes back
//! to the inner allocator (so a reused address can never meet a stale entry).
//! Slots never return to empty, so a lookup that meets an empty slot knows
//! the key is absent. In a long-running process deleted slots come to fill
//! the table, and a lookup of a block that was never tagged (a large block
//! made outside any scope) would then walk all [`MAX_PROBE`] slots; so each
//! home slot also keeps the farthest step an insert from it ever took, and a
//! lookup stops there. An insert claims the first free slot from its home,
//! so that step stays as small as the live entries around the home allow.
//! If no slot is free within [`MAX_PROBE`] steps the
//! allocation stays untagged and is charged to `other`, at allocation and at
//! free alike, so counts stay consistent; [`table_full_count`] reports it.

use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Allocations at least this large carry their owner; smaller ones are
/// charged to `other`.
///
/// Below 1 KiB lie most allocations by count but few live bytes in a server
/// (buffers, cache blocks and indexes are larger); keeping them off the table
/// keeps their path as short as an untracked one.
pub const TAG_MIN_BYTES: usize = 1024;

const TABLE_BITS: u32 = 16;
const TABLE_LEN: usize = 1 << TABLE_BITS;
/// Slots a lookup or insert visits before giving up: eight cache lines.
const MAX_PROBE: usize = 64;
const EMPTY: usize = 0;
const DELETED: usize = usize::MAX;
const TAG_SHIFT: u32 = 56;

// Tags live in the top byte of a 64-bit address word.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("mempressure-alloc needs 64-bit pointers");
const ADDRESS_MASK: usize = (1 << TAG_SHIFT) - 1;

/// 64 Ki entries of 8 bytes: 512 KiB of zeroed static memory, resident only
/// where touched.
static TABLE: [AtomicUsize; TABLE_LEN] = [const { AtomicUsize::new(EMPTY) }; TABLE_LEN];
static TABLE_FULL: AtomicU64 = AtomicU64::new(0);
/// Per home slot, the farthest step an insert from it took: 64 KiB more.
///
/// It only grows, and it is raised before the allocation that inserted
/// returns, so whoever frees that block (after receiving the pointer) sees
/// a value at least that far.
static FARTHEST_STEP: [AtomicU8; TABLE_LEN] = [const { AtomicU8::new(0) }; TABLE_LEN];

// Steps must fit the per-home byte.
const _: () = assert!(MAX_PROBE <= u8::MAX as usize + 1);

fn home(address: usize) -> usize {
    // Fibonacci hashing of the address without its always-zero low bits.
    (((address as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (u64::BITS - TABLE_BITS))
        as usize
}

/// Records `tag` as the owner of the block at `address`; `false` if the
/// block must stay untagged.
pub(crate) fn insert(address: usize, tag: u8) -> bool {
    if tag == 0 || address & !ADDRESS_MASK != 0 || address == EMPTY {
        return false;
    }
    let entry = address | (tag as usize) << TAG_SHIFT;
    let start = home(address);
    for step in 0..MAX_PROBE {
        let slot = &TABLE[(start + step) & (TABLE_LEN - 1)];
        let current = slot.load(Ordering::Relaxed);
        if (current == EMPTY || current == DELETED)
            && slot
                .compare_exchange(current, entry, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            // Most inserts land at their home; only a farther one writes.
            let farthest = &FARTHEST_STEP[start];
            if step as u8 > farthest.load(Ordering::Relaxed) {
                farthest.fetch_max(step as u8, Ordering::Relaxed);
            }
            return true;
        }
    }
    TABLE_FULL.fetch_add(1, Ordering::Relaxed);
    false
}

/// Removes the entry for `address` and returns its tag, or 0 if it has none.
pub(crate) fn remove(address: usize) -> u8 {
    if address & !ADDRESS_MASK != 0 || address == EMPTY {
        return 0;
    }
    let start = home(address);

    // The home slot decides most lookups; the bound is read only past it.
    match take(start, address) {
        Probe::Taken(tag) => return tag,
        Probe::Absent => return 0,
        Probe::Next => {}
    }
    let farthest = (FARTHEST_STEP[start].load(Ordering::Relaxed) as usize).min(MAX_PROBE - 1);
    for step in 1..=farthest {
        match take(start + step, address) {
            Probe::Taken(tag) => return tag,
            Probe::Absent => return 0,
            Probe::Next => {}
        }
    }
    0
}

/// What one slot says about a lookup.
enum Probe {
    /// The entry was there and is now deleted; its tag.
    Taken(u8),
    /// An empty slot: the address has no entry.
    Absent,
    /// Another entry or a deleted one: look at the next slot.
    Next,
}

/// Deletes `address`'s entry if slot `index` (wrapped) holds it.
#[inline(always)]
fn take(index: usize, address: usize) -> Probe {
    let slot = &TABLE[index & (TABLE_LEN - 1)];
    let current = slot.load(Ordering::Acquire);
    if current == EMPTY {
        return Probe::Absent;
    }
    if current != DELETED && current & ADDRESS_MASK == address {
        // Only the block's owner removes its entry, and no insert can claim
        // a slot that holds a live entry, so a store is enough.
        slot.store(DELETED, Ordering::Relaxed);
        return Probe::Taken((current >> TAG_SHIFT) as u8);
    }
    Probe::Next
}

/// How many large allocations in a scope found the table full and were
/// charged to `other` instead.
pub fn table_full_count() -> u64 {
    TABLE_FULL.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block-like addresses (16-byte aligned) whose home is `home`.
    fn addresses_at_home(home_slot: usize, count: usize) -> Vec<usize> {
        (1usize..)
            .map(|i| 0x7f00_0000_0000 + i * 16)
            .filter(|&a| home(a) == home_slot)
            .take(count)
            .collect()
    }

    #[test]
    fn entries_past_their_home_are_found_and_absent_ones_are_not() {
        // Eight blocks that share a home take eight consecutive slots.
        let start = home(0x7f00_0000_0010);
        let crowded = addresses_at_home(start, 9);
        let (present, absent) = crowded.split_at(8);
        for (i, &address) in present.iter().enumerate() {
            assert!(insert(address, 1 + i as u8), "insert {i}");
        }
        assert!(FARTHEST_STEP[start].load(Ordering::Relaxed) >= 7);

        // Every one is found with its own tag, in any order, once.
        for (i, &address) in present.iter().enumerate().rev() {
            assert_eq!(remove(address), 1 + i as u8, "remove {i}");
            assert_eq!(remove(address), 0, "removed twice {i}");
        }

        // Deleted slots are reused from the home on, and an address never
        // inserted is not found among them.
        assert!(insert(present[0], 9));
        assert_eq!(remove(absent[0]), 0);
        assert_eq!(remove(present[0]), 9);
    }

    #[test]
    fn the_farthest_step_only_grows() {
        let start = home(0x7e00_0000_0010) ^ 1;
        let addresses = addresses_at_home(start, 3);
        for &address in &addresses {
            assert!(insert(address, 2));
        }
        let farthest = FARTHEST_STEP[start].load(Ordering::Relaxed);
        assert!(farthest >= 2);
        for &address in &addresses {
            assert_eq!(remove(address), 2);
        }
        assert_eq!(FARTHEST_STEP[start].load(Ordering::Relaxed), farthest);
    }
}
