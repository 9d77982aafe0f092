//! Thousands of short-lived threads that allocate, free and hand buffers to
//! other threads leave the counters exactly where they started, and their
//! slots go back to the pool.

mod common;

use std::sync::mpsc;
use std::thread;

use common::{bytes_of, Component};
use mempressure_alloc::scope;

const THREADS: usize = 2000;

fn churn_one(round: usize, tx: mpsc::Sender<Vec<u8>>) {
    let _scope = scope!(Component::Connections);
    let mut kept = Vec::new();
    for i in 0..20 {
        let size = 16 + (round * 31 + i * 997) % 8192;
        let buf = vec![round as u8; size];
        if i % 3 == 0 {
            tx.send(buf).unwrap();
        } else {
            kept.push(buf);
        }
    }
    kept.truncate(3);
}

#[test]
fn thread_churn_returns_to_exact_baseline() {
    // Arrange: warm up the runtime's one-time allocations, then take the
    // baseline.
    for _ in 0..4 {
        thread::spawn(|| vec![0u8; 4096]).join().unwrap();
    }
    let before = mempressure_alloc::snapshot();
    let slots_before = mempressure_alloc::live_slots();

    // Act: batches of threads whose buffers are freed on the collector.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let collector = thread::spawn(move || {
        let mut freed = 0usize;
        for buf in rx {
            freed += buf.len();
        }
        freed
    });
    for batch in 0..THREADS / 100 {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let tx = tx.clone();
                thread::spawn(move || churn_one(batch * 100 + i, tx))
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }
    drop(tx);
    let freed = collector.join().unwrap();

    // Assert: every byte is accounted for, and no slot leaked.
    let after = mempressure_alloc::snapshot();
    assert!(freed > 0);
    assert_eq!(after.total_bytes(), before.total_bytes());
    assert_eq!(bytes_of(Component::Connections), 0);
    assert!(
        mempressure_alloc::live_slots() <= slots_before + 1,
        "slots leaked: {} before, {} after",
        slots_before,
        mempressure_alloc::live_slots()
    );
}
