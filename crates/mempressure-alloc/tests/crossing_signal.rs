//! Crossing an armed watermark wakes the registered waiter, upward and
//! downward.

mod common;

use std::thread;
use std::time::{Duration, Instant};

/// Parks until the wake count moves past `seen`, for at most ten seconds.
fn woken_since(seen: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if mempressure_alloc::wake_count() > seen {
            return true;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
    false
}

#[test]
fn crossing_a_watermark_wakes_the_waiter() {
    mempressure_alloc::register_waiter(thread::current());
    let base = mempressure_alloc::approximate_total_bytes();
    let step = 64 * mempressure_alloc::FLUSH_BYTES;

    // Upward: another thread allocates well past the high watermark.
    assert!(!mempressure_alloc::set_watermarks(i64::MIN, base + step));
    let seen = mempressure_alloc::wake_count();
    let (tx, rx) = std::sync::mpsc::channel();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let big: Vec<Vec<u8>> = (0..8).map(|_| vec![1u8; step as usize / 4]).collect();
        tx.send(()).unwrap();
        hold_rx.recv().unwrap();
        drop(big);
    });
    rx.recv().unwrap();
    assert!(woken_since(seen), "no wake on the way up");
    assert!(mempressure_alloc::approximate_total_bytes() >= base + step);

    // Downward: arm a low watermark and let the holder free.
    let seen = mempressure_alloc::wake_count();
    assert!(!mempressure_alloc::set_watermarks(base + step, i64::MAX));
    hold_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(woken_since(seen), "no wake on the way down");

    // Arming outside the current total reports it at once.
    let now = mempressure_alloc::approximate_total_bytes();
    assert!(mempressure_alloc::set_watermarks(i64::MIN, now));
    mempressure_alloc::clear_watermarks();
}
