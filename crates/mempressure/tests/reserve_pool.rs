//! The reservation pool: never past critical, bytes returned on drop,
//! impossible requests refused without effect, waits that end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use mempressure::machine::LevelConfig;
use mempressure::reserve::{MemoryTracker, ReserveError};

const COMPONENTS: &[&str] = &["other", "connections", "request_buffers"];
const REQUEST_BUFFERS: usize = 2;
/// Generous bound for waits that should succeed; never reached when the
/// code is right, so the tests assert no timing.
const PATIENCE: Duration = Duration::from_secs(10);

/// Limit 10,000 bytes, critical at 9,000.
fn tracker() -> MemoryTracker {
    MemoryTracker::new(&LevelConfig::with_limit(10_000).unwrap(), COMPONENTS)
}

#[test]
fn concurrent_reservations_never_pass_critical_in_sum() {
    // Eight threads each try 2,000 reservations of 1..=700 bytes, keeping
    // up to 30 at a time (more than the budget even for one thread alone);
    // a shared high-water mark records the most ever held.
    let tracker = tracker();
    tracker.set_usage_bytes(1_000);
    let held_bytes = Arc::new(AtomicU64::new(0));
    let high_water_bytes = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(8));

    let workers: Vec<_> = (0..8u64)
        .map(|worker| {
            let (tracker, held, high) = (
                tracker.clone(),
                held_bytes.clone(),
                high_water_bytes.clone(),
            );
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let mut kept = Vec::new();
                for i in 0..2_000u64 {
                    let bytes = 1 + (worker * 7919 + i * 104_729) % 700;
                    if let Ok(reservation) = tracker.try_reserve(1 + (i % 2) as usize, bytes) {
                        let now = held.fetch_add(bytes, Ordering::SeqCst) + bytes;
                        high.fetch_max(now, Ordering::SeqCst);
                        kept.push(reservation);
                    }
                    if kept.len() > 30 {
                        let released = kept.remove(0);
                        held.fetch_sub(released.bytes(), Ordering::SeqCst);
                    }
                }
                for released in kept {
                    held.fetch_sub(released.bytes(), Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    // usage (1,000) + everything held at once never passed 9,000.
    let high = high_water_bytes.load(Ordering::SeqCst);
    assert!(high > 0 && high <= 8_000, "held up to {high} bytes");
    assert_eq!(tracker.reserved_total_bytes(), 0);
    assert!(tracker.failed_reservations(1) + tracker.failed_reservations(2) > 0);
}

#[test]
fn dropping_a_reservation_returns_its_bytes() {
    let tracker = tracker();
    let first = tracker.try_reserve(1, 3_000).unwrap();
    let second = tracker.try_reserve(REQUEST_BUFFERS, 4_000).unwrap();
    assert_eq!(tracker.reserved_total_bytes(), 7_000);
    assert_eq!(
        tracker.reserved_by_component(),
        vec![
            ("other", 0),
            ("connections", 3_000),
            ("request_buffers", 4_000)
        ]
    );

    drop(first);
    assert_eq!(tracker.reserved_bytes(1), 0);
    assert_eq!(tracker.reserved_total_bytes(), 4_000);
    drop(second);
    assert_eq!(tracker.reserved_total_bytes(), 0);
}

#[test]
fn impossible_requests_are_refused_and_change_nothing() {
    let tracker = tracker();
    let _held = tracker.try_reserve(1, 500).unwrap();
    tracker.set_usage_bytes(u64::MAX - 10);
    let before = (
        tracker.reserved_by_component(),
        tracker.failed_reservations(1),
    );

    let too_large = tracker.try_reserve(1, 10_001).unwrap_err();
    let unknown = tracker.try_reserve(99, 1).unwrap_err();
    // Usage + reserved + bytes overflows u64: refused as pressure.
    let overflow = tracker.try_reserve(0, 10_000).unwrap_err();

    assert_eq!(
        too_large,
        ReserveError::TooLarge {
            bytes: 10_001,
            limit_bytes: 10_000
        }
    );
    assert_eq!(
        too_large.to_string(),
        "cannot reserve 10001 bytes: more than the whole memory limit of 10000 bytes"
    );
    assert!(matches!(
        unknown,
        ReserveError::UnknownComponent {
            component: 99,
            components: 3
        }
    ));
    assert!(matches!(overflow, ReserveError::WouldExceedCritical(_)));
    assert_eq!(
        (
            tracker.reserved_by_component(),
            tracker.failed_reservations(1)
        ),
        before
    );
    assert!(tracker.allocate(usize::MAX).is_err());
}

#[test]
fn usage_at_critical_refuses_even_small_reservations() {
    let tracker = tracker();
    tracker.set_usage_bytes(9_000);
    let err = tracker.try_reserve(REQUEST_BUFFERS, 1).unwrap_err();
    assert!(err.is_pressure());
    assert_eq!(tracker.failed_reservations(REQUEST_BUFFERS), 1);
}

#[test]
fn blocking_reserve_times_out_and_counts_one_failure() {
    let tracker = tracker();
    let _held = tracker.try_reserve(1, 9_000).unwrap();

    let err = tracker
        .reserve_timeout(REQUEST_BUFFERS, 1, Duration::from_millis(20))
        .unwrap_err();

    assert!(matches!(err, ReserveError::TimedOut { .. }));
    assert_eq!(tracker.failed_reservations(REQUEST_BUFFERS), 1);
}

#[test]
fn blocking_reserve_succeeds_when_another_thread_drops_its_reservation() {
    let tracker = tracker();
    let held = tracker.try_reserve(1, 9_000).unwrap();

    let waiter = {
        let tracker = tracker.clone();
        thread::spawn(move || tracker.reserve_timeout(REQUEST_BUFFERS, 5_000, PATIENCE))
    };
    drop(held);

    let granted = waiter.join().unwrap().unwrap();
    assert_eq!(granted.bytes(), 5_000);
    assert_eq!(tracker.reserved_bytes(REQUEST_BUFFERS), 5_000);
}

#[test]
fn blocking_reserve_succeeds_when_usage_falls() {
    let tracker = tracker();
    tracker.set_usage_bytes(9_000);

    let waiter = {
        let tracker = tracker.clone();
        thread::spawn(move || tracker.reserve_timeout(REQUEST_BUFFERS, 1_000, PATIENCE))
    };
    tracker.set_usage_bytes(2_000);

    assert!(waiter.join().unwrap().is_ok());
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_reserve_waits_then_succeeds_when_another_guard_drops() {
    let tracker = tracker();
    let held = tracker.try_reserve(1, 8_000).unwrap();

    let waiter = {
        let tracker = tracker.clone();
        tokio::spawn(async move { tracker.reserve(REQUEST_BUFFERS, 2_000, PATIENCE).await })
    };
    // Dropped from a plain thread, as a connection task on another runtime
    // might.
    thread::spawn(move || drop(held)).join().unwrap();

    let granted = waiter.await.unwrap().unwrap();
    assert_eq!(granted.bytes(), 2_000);
    assert_eq!(tracker.failed_reservations(REQUEST_BUFFERS), 0);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_reserve_times_out() {
    let tracker = tracker();
    let _held = tracker.try_reserve(1, 9_000).unwrap();

    let err = tracker
        .reserve(REQUEST_BUFFERS, 1, Duration::from_millis(20))
        .await
        .unwrap_err();

    assert!(matches!(err, ReserveError::TimedOut { .. }));
    assert_eq!(tracker.failed_reservations(REQUEST_BUFFERS), 1);
}

#[test]
fn shared_usage_handle_is_what_reservations_are_judged_against() {
    let usage = Arc::new(AtomicU64::new(0));
    let level = Arc::new(mempressure::level::AtomicLevel::default());
    let config = LevelConfig::with_limit(10_000).unwrap();
    let tracker = MemoryTracker::with_sources(&config, COMPONENTS, usage.clone(), level);

    usage.store(8_500, Ordering::SeqCst);

    assert_eq!(tracker.current_usage(), 8_500);
    assert!(tracker.try_reserve(1, 501).is_err());
    assert!(tracker.try_reserve(1, 500).is_ok());
}
