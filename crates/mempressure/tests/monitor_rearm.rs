//! A crossing that no allocation signals (the total was already past the
//! watermark when the monitor armed it) is still seen long before the next
//! tick.
//!
//! Found by the monitor benchmark: threads freed everything while a Warning
//! transition was being published, before the monitor re-armed its
//! watermarks, and the monitor stayed at Warning until its next tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mempressure::monitor::sample::{Sample, Sampler};
use mempressure::subscribe::{Event, RecvTimeoutError};
use mempressure::{Monitor, MonitorConfig, PressureLevel};

#[global_allocator]
static ALLOC: mempressure::Allocator = mempressure::Allocator::jemalloc();

/// The shim's total as the test sets it, with no other reading.
struct Scripted(Arc<AtomicU64>);

impl Sampler for Scripted {
    fn sample(&mut self) -> Sample {
        Sample {
            tracked_bytes: self.0.load(Ordering::Relaxed),
            ..Sample::default()
        }
    }

    fn tracked_bytes(&mut self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

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
fn usage_past_an_already_crossed_watermark_is_seen_without_a_signal() {
    // Arrange: a 1000-byte budget, so the process's real total is past the
    // warning watermark from the first arming on, and a tick far longer
    // than the test waits. The ballast makes sure the real total has been
    // flushed past that watermark before it is armed.
    let ballast = vec![1u8; 4 << 20];
    assert!(mempressure::alloc::approximate_total_bytes() > 1000);
    let tracked = Arc::new(AtomicU64::new(0));
    let monitor = Monitor::start_with_sampler(
        MonitorConfig::new()
            .limit_bytes(1000)
            .tick(Duration::from_secs(600))
            .min_dwell(Duration::ZERO)
            .metrics_prefix(None),
        Box::new(Scripted(tracked.clone())),
    )
    .unwrap();
    let mut sub = monitor.subscribe();
    assert!(wait_for(
        &mut sub,
        PressureLevel::Normal,
        Duration::from_secs(5)
    ));

    // Act: usage rises past warning with no allocation to signal it.
    tracked.store(850, Ordering::Relaxed);

    // Assert: the monitor looks again by itself, then eases the same way.
    assert!(wait_for(
        &mut sub,
        PressureLevel::Warning,
        Duration::from_secs(5)
    ));
    tracked.store(100, Ordering::Relaxed);
    assert!(wait_for(
        &mut sub,
        PressureLevel::Normal,
        Duration::from_secs(5)
    ));
    monitor.stop();
    drop(ballast);
}
