//! The real monitor thread over the real process: an allocation that crosses
//! the warning threshold wakes it between ticks, and freeing brings the level
//! back.

use std::time::{Duration, Instant};

use mempressure::subscribe::{Event, RecvTimeoutError};
use mempressure::{Monitor, MonitorConfig, PressureLevel};

#[global_allocator]
static ALLOC: mempressure::Allocator = mempressure::Allocator::jemalloc();

/// Waits up to `limit` for an event that moves the level to `level`.
fn wait_for(sub: &mut mempressure::Subscription, level: PressureLevel, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match sub.recv_timeout(left) {
            Ok(Event::Transition(t)) if t.to == level => return true,
            Ok(Event::Current { level: now, .. }) if now == level => return true,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Closed) => return false,
        }
    }
    false
}

#[test]
fn a_crossing_allocation_is_seen_between_ticks_and_recovery_follows_the_free() {
    // Arrange: a budget whose warning level sits 64 MiB above what the
    // process uses now, and a tick far longer than the test waits.
    let probe = Monitor::manual(
        MonitorConfig::new()
            .limit_bytes(1 << 40)
            .metrics_prefix(None),
        Box::new(mempressure::monitor::sample::SystemSampler::new()),
    )
    .unwrap();
    let (probe_monitor, mut probe_ticker) = probe;
    probe_ticker.tick(Instant::now());
    let base = probe_monitor.reading().usage_bytes;
    let limit = (base + (64 << 20)) * 10 / 8;
    let monitor = Monitor::start(
        MonitorConfig::new()
            .limit_bytes(limit)
            .tick(Duration::from_secs(30))
            .min_dwell(Duration::ZERO)
            .metrics_prefix(None),
    )
    .unwrap();
    let mut sub = monitor.subscribe();
    assert!(wait_for(
        &mut sub,
        PressureLevel::Normal,
        Duration::from_secs(5)
    ));

    // Act: allocate past warning (not past critical).
    let big = vec![1u8; (64 << 20) + (limit as usize / 20)];

    // Assert: the level rose long before the next tick, then fell.
    assert!(wait_for(
        &mut sub,
        PressureLevel::Warning,
        Duration::from_secs(5)
    ));
    assert_eq!(monitor.level(), PressureLevel::Warning);
    drop(big);
    assert!(wait_for(
        &mut sub,
        PressureLevel::Normal,
        Duration::from_secs(5)
    ));
    monitor.stop();
}
