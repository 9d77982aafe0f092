//! More live threads than slots: the extra ones count in the shared overflow
//! slot, and the total is still exact once they are gone.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{bytes_of, Component};
use mempressure_alloc::{scope, MAX_SLOTS};

#[test]
fn threads_beyond_the_slot_pool_still_count_exactly() {
    // Arrange: more threads than slots, all alive at once.
    let threads = MAX_SLOTS + 64;
    let alive = Arc::new(Barrier::new(threads + 1));
    let release = Arc::new(Barrier::new(threads + 1));
    // The test harness's own thread records this test as running just as
    // it starts; let that and the first spawn's one-time set-up settle, or
    // their bytes land between the two totals compared below.
    thread::spawn(|| vec![0u8; 64]).join().unwrap();
    thread::sleep(Duration::from_millis(200));
    let before = mempressure_alloc::snapshot().total_bytes();

    // Act: each allocates, waits until all are alive and counted, then
    // frees part of what it made and hands the rest back.
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (alive, release) = (alive.clone(), release.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _scope = scope!(Component::IndexCache);
                    let kept = vec![i as u8; 2048];
                    let dropped = vec![0u8; 100 + i % 50];
                    alive.wait();
                    release.wait();
                    drop(dropped);
                    kept
                })
                .unwrap()
        })
        .collect();
    alive.wait();
    let peak_slots = mempressure_alloc::live_slots();
    release.wait();
    let kept: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    // Assert: every slot was taken, and the kept buffers are counted exactly.
    assert_eq!(peak_slots, MAX_SLOTS);
    assert_eq!(bytes_of(Component::IndexCache), 2048 * threads as u64);
    drop(kept);
    assert_eq!(bytes_of(Component::IndexCache), 0);
    assert_eq!(mempressure_alloc::snapshot().total_bytes(), before);
}
