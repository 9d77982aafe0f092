//! The four workloads, written once for every variant.
//!
//! Each works on raw blocks from the global allocator (or on standard
//! collections, for `server`) and passes every pointer through
//! [`black_box`], so the compiler can neither drop an allocation nor merge an
//! allocation with its free.

use core::alloc::Layout;
use core::hash::BuildHasherDefault;
use core::hint::black_box;
use core::ptr::NonNull;
use std::alloc::{alloc, dealloc, handle_alloc_error};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::mpsc;

use crate::args::{Args, Workload};
use crate::harness::Sizes;

/// One thread's share of a run.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Blocks a producer hands over at once: one channel operation per 256
/// pairs keeps the channel out of the figure.
const BATCH_BLOCKS: usize = 256;
/// Batches in flight per producer/consumer pair.
const CHANNEL_BATCHES: usize = 4;
/// Map entries built, reshaped and dropped per server round.
const SERVER_ROUND_ENTRIES: u64 = 256;
/// What a server value grows by per push: a small write into a buffer.
const SERVER_CHUNK: [u8; 64] = [0x5a; 64];

/// The server's map; a fixed hasher keeps the work identical run to run.
pub(crate) type ServerMap = HashMap<String, Vec<u8>, BuildHasherDefault<DefaultHasher>>;

/// Builds the jobs of a run: one per thread, two per pair for `prodcons`.
pub(crate) fn jobs(args: &Args) -> Vec<Job> {
    let (ops, size, live) = (args.ops, args.size_bytes, args.live);
    let mut jobs: Vec<Job> = Vec::new();
    for thread in 0..args.threads as u64 {
        let mut sizes = Sizes::new(thread + 1, size);
        match args.workload {
            Workload::Tight => jobs.push(Box::new(move || tight(ops, &mut sizes))),
            Workload::Ring => jobs.push(Box::new(move || ring(ops, live, &mut sizes, || {}))),
            Workload::Server | Workload::Accuracy => {
                jobs.push(Box::new(move || server(ops, &mut sizes)))
            }
            Workload::ProdCons => {
                let (tx, rx) = mpsc::sync_channel::<Batch>(CHANNEL_BATCHES);
                jobs.push(Box::new(move || produce(ops, &mut sizes, tx)));
                jobs.push(Box::new(move || rx.into_iter().for_each(drop)));
            }
        }
    }
    jobs
}

/// Allocates a block of `layout`, aborting as `Box` does if it cannot.
#[inline(always)]
fn alloc_block(layout: Layout) -> NonNull<u8> {
    // SAFETY: every layout here comes from `Sizes`, whose sizes are non-zero.
    let ptr = unsafe { alloc(layout) };
    match NonNull::new(black_box(ptr)) {
        Some(ptr) => ptr,
        None => handle_alloc_error(layout),
    }
}

/// Frees a block from [`alloc_block`].
///
/// # Safety
///
/// `ptr` came from [`alloc_block`] with this `layout` and is not used again.
#[inline(always)]
unsafe fn free_block(ptr: NonNull<u8>, layout: Layout) {
    // SAFETY: the caller passes a live block and its own layout.
    unsafe { dealloc(ptr.as_ptr(), layout) }
}

/// `tight`: allocate and at once free, `ops` times.
pub(crate) fn tight(ops: u64, sizes: &mut Sizes) {
    for _ in 0..ops {
        let layout = sizes.next_layout();
        let block = alloc_block(layout);
        // SAFETY: `block` was allocated just above with `layout`.
        unsafe { free_block(block, layout) };
    }
}

/// `ring`: keep `live` blocks, each new one replacing the oldest.
///
/// `observe` runs after every allocation and every free; the timed run
/// passes a closure that compiles to nothing, the flush probe one that
/// reads the shared total.
pub(crate) fn ring(ops: u64, live: usize, sizes: &mut Sizes, mut observe: impl FnMut()) {
    let mut blocks: Vec<(NonNull<u8>, Layout)> = (0..live.max(1))
        .map(|_| {
            let layout = sizes.next_layout();
            (alloc_block(layout), layout)
        })
        .collect();
    let mut oldest = 0;
    for _ in 0..ops {
        let layout = sizes.next_layout();
        let fresh = alloc_block(layout);
        observe();
        let (old, old_layout) = core::mem::replace(&mut blocks[oldest], (fresh, layout));
        // SAFETY: `old` was live in the ring and has just left it.
        unsafe { free_block(old, old_layout) };
        observe();
        oldest += 1;
        if oldest == blocks.len() {
            oldest = 0;
        }
    }
    for (block, layout) in blocks {
        // SAFETY: every block left in the ring is live and freed once here.
        unsafe { free_block(block, layout) };
    }
}

/// Blocks in transit from a producer to its consumer, freed on drop.
pub(crate) struct Batch(Vec<(NonNull<u8>, Layout)>);

// SAFETY: a batch owns its blocks exclusively (the producer keeps no
// pointer to them), and the global allocator lets any thread free a block.
unsafe impl Send for Batch {}

impl Drop for Batch {
    fn drop(&mut self) {
        for (block, layout) in self.0.drain(..) {
            // SAFETY: the batch owned each block, and draining forgets it.
            unsafe { free_block(block, layout) };
        }
    }
}

/// The producer half of `prodcons`: `ops` blocks sent in batches; every
/// free happens on the consumer thread.
fn produce(ops: u64, sizes: &mut Sizes, tx: mpsc::SyncSender<Batch>) {
    let mut left = ops;
    while left > 0 {
        let count = left.min(BATCH_BLOCKS as u64) as usize;
        let mut batch = Batch(Vec::with_capacity(count));
        for _ in 0..count {
            let layout = sizes.next_layout();
            batch.0.push((alloc_block(layout), layout));
        }
        if tx.send(batch).is_err() {
            return;
        }
        left -= count as u64;
    }
}

/// `server`: `entries` map entries, built, reshaped and dropped in rounds
/// of [`SERVER_ROUND_ENTRIES`].
pub(crate) fn server(entries: u64, sizes: &mut Sizes) {
    let mut first_key = 0;
    while first_key < entries {
        let count = SERVER_ROUND_ENTRIES.min(entries - first_key);
        let mut map = build_map(first_key, count, sizes);
        reshape(&mut map);
        drop(black_box(map));
        first_key += count;
    }
}

/// Inserts `count` entries: a formatted key and a value of 128 to 4096
/// bytes grown by 64-byte pushes, so it reallocates on every doubling.
pub(crate) fn build_map(first_key: u64, count: u64, sizes: &mut Sizes) -> ServerMap {
    let mut map = ServerMap::default();
    for key_number in first_key..first_key + count {
        let mut key = String::new();
        // Writing into a String cannot fail.
        let _ = write!(key, "session:{key_number:016x}");
        let target_len = sizes.next_size() * 8;
        let mut value = Vec::new();
        while value.len() < target_len {
            value.extend_from_slice(&SERVER_CHUNK);
        }
        map.insert(key, black_box(value));
    }
    map
}

/// Moves every other entry to a longer key with its value halved and shrunk
/// in place, then grows every third value by 1 KiB.
fn reshape(map: &mut ServerMap) {
    let moved: Vec<String> = map.keys().step_by(2).cloned().collect();
    for key in moved {
        if let Some(mut value) = map.remove(&key) {
            value.truncate(value.len() / 2);
            value.shrink_to_fit();
            let mut key = key;
            key.push_str(":moved");
            map.insert(key, value);
        }
    }
    for value in map.values_mut().step_by(3) {
        value.extend_from_slice(&[0xa5; 1024]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_counts_one_observation_per_allocation_and_per_free() {
        let mut observed = 0u64;
        ring(100, 8, &mut Sizes::new(1, 0), || observed += 1);
        assert_eq!(observed, 200);
    }

    #[test]
    fn the_server_map_holds_every_entry_with_its_value() {
        let map = build_map(0, 50, &mut Sizes::new(2, 0));
        assert_eq!(map.len(), 50);
        assert!(map.values().all(|v| (128..=4096 + 64).contains(&v.len())));
        assert!(map.contains_key("session:0000000000000031"));
    }

    #[test]
    fn reshaping_keeps_the_entry_count_and_moves_half_the_keys() {
        let mut map = build_map(0, 40, &mut Sizes::new(3, 0));
        reshape(&mut map);
        assert_eq!(map.len(), 40);
        assert_eq!(map.keys().filter(|k| k.ends_with(":moved")).count(), 20);
    }

    #[test]
    fn every_produced_block_reaches_the_consumer() {
        let (tx, rx) = mpsc::sync_channel::<Batch>(CHANNEL_BATCHES);
        let producer = std::thread::spawn(move || produce(1000, &mut Sizes::new(4, 0), tx));
        let received: usize = rx.into_iter().map(|batch| batch.0.len()).sum();
        producer.join().unwrap();
        assert_eq!(received, 1000);
    }

    #[test]
    fn prodcons_runs_two_jobs_per_pair() {
        let args =
            Args::parse(["--workload", "prodcons", "--threads", "3"].map(String::from)).unwrap();
        assert_eq!(jobs(&args).len(), 6);
    }
}
