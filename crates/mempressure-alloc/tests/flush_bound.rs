//! The approximate total follows the exact one within `FLUSH_BYTES` per
//! thread, on the way up and on a thread that only frees, and a thread that
//! churns small blocks without growing never writes it.

mod common;

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

use mempressure_alloc::{approximate_total_bytes, snapshot, FLUSH_BYTES};

/// Blocks per growth phase and their size: 4 MB, many flushes' worth.
const BLOCKS: usize = 20_000;
const BLOCK_BYTES: usize = 200;
/// How often the bound is checked, in blocks.
const CHECK_EVERY: usize = 50;

/// Exact minus approximate: what threads have not flushed yet.
fn unflushed_bytes() -> i64 {
    snapshot().total_bytes() as i64 - approximate_total_bytes()
}

/// Asserts that only the calling thread moved the lag, by less than the
/// per-thread bound.
fn assert_within_bound(start_lag: i64, what: &str, done: usize) {
    let moved = unflushed_bytes() - start_lag;
    assert!(
        moved.abs() < FLUSH_BYTES,
        "{what}: after {done} blocks this thread's unflushed change is {moved} bytes, \
         the bound is {FLUSH_BYTES}"
    );
}

#[test]
fn approximate_total_stays_within_the_bound() {
    // Every check runs on a worker while the test's own thread waits, so
    // only the worker moves the lag.
    let (blocks_tx, blocks_rx) = mpsc::channel::<Vec<Vec<u8>>>();

    // Growth: one thread allocates 4 MB in small blocks.
    let grower = thread::spawn(move || {
        let mut blocks = Vec::with_capacity(BLOCKS);
        let start_lag = unflushed_bytes();
        let start_total = approximate_total_bytes();
        for done in 0..BLOCKS {
            blocks.push(vec![1u8; BLOCK_BYTES]);
            if done % CHECK_EVERY == 0 {
                assert_within_bound(start_lag, "growing", done);
            }
        }
        let moved = approximate_total_bytes() - start_total;
        let grown = (BLOCKS * BLOCK_BYTES) as i64;
        assert!(
            moved > grown - FLUSH_BYTES,
            "the approximate total moved {moved} bytes for {grown} allocated"
        );
        blocks_tx.send(blocks).unwrap();
    });
    grower.join().unwrap();

    // Frees only: another thread drops every block the grower made.
    let blocks = blocks_rx.recv().unwrap();
    let freer = thread::spawn(move || {
        let mut blocks = black_box(blocks);
        let start_lag = unflushed_bytes();
        let start_total = approximate_total_bytes();
        let mut done = 0;
        while let Some(block) = blocks.pop() {
            drop(block);
            done += 1;
            if done % CHECK_EVERY == 0 {
                assert_within_bound(start_lag, "freeing", done);
            }
        }
        let moved = approximate_total_bytes() - start_total;
        let freed = (BLOCKS * BLOCK_BYTES) as i64;
        assert!(
            moved < -(freed - FLUSH_BYTES),
            "the approximate total moved {moved} bytes for {freed} freed"
        );
    });
    freer.join().unwrap();

    // Churn: a million bytes allocated and freed at a steady live size
    // leaves the shared total alone.
    let churner = thread::spawn(|| {
        let mut ring: Vec<Vec<u8>> = (0..64).map(|i| vec![0u8; 16 + i * 7]).collect();
        let before = approximate_total_bytes();
        for round in 0..20_000usize {
            let at = round % ring.len();
            let size = 16 + (round * 37) % 497;
            ring[at] = black_box(vec![round as u8; size]);
        }
        let after = approximate_total_bytes();
        assert_eq!(
            after, before,
            "a thread whose live bytes moved by less than the threshold flushed"
        );
        drop(ring);
    });
    churner.join().unwrap();
}
