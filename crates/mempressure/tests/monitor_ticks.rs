//! The monitor's ticks through an injected sampler and clock: levels,
//! subscribers, reclaimers and the stuck-at-critical path, with no real
//! memory and no sleeps.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mempressure::level::UsageSource;
use mempressure::monitor::sample::{Sample, Sampler};
use mempressure::subscribe::Event;
use mempressure::{Monitor, MonitorConfig, PressureLevel, ReclaimRequest, Reclaimer, Urgency};

const LIMIT: u64 = 1000 * 1000;

/// Readings set by the test: the shim's total and the OS figure.
#[derive(Clone, Default)]
struct Fake {
    tracked: Arc<AtomicU64>,
    anon: Arc<AtomicU64>,
    purges: Arc<AtomicUsize>,
}

impl Sampler for Fake {
    fn sample(&mut self) -> Sample {
        let mut sample = Sample {
            tracked_bytes: self.tracked.load(Ordering::Relaxed),
            ..Sample::default()
        };
        sample.components[1] = sample.tracked_bytes;
        sample.process = Some(mempressure::os::ProcessMemory {
            resident_bytes: self.anon.load(Ordering::Relaxed) + 500,
            anon_resident_bytes: Some(self.anon.load(Ordering::Relaxed)),
            ..Default::default()
        });
        sample
    }

    fn tracked_bytes(&mut self) -> u64 {
        self.tracked.load(Ordering::Relaxed)
    }

    fn purge(&mut self) -> bool {
        self.purges.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// A cache that records what it was asked and frees a set amount.
struct Cache {
    asked: Mutex<Vec<Urgency>>,
    frees_bytes: u64,
}

impl Reclaimer for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }
    fn reclaim(&self, request: ReclaimRequest) -> u64 {
        self.asked.lock().unwrap().push(request.urgency);
        self.frees_bytes
    }
}

fn config() -> MonitorConfig {
    MonitorConfig::new()
        .limit_bytes(LIMIT)
        .min_dwell(Duration::from_secs(1))
        .stuck_after(Duration::from_secs(2))
        .metrics_prefix(None)
}

fn set(fake: &Fake, tracked: u64, anon: u64) {
    fake.tracked.store(tracked, Ordering::Relaxed);
    fake.anon.store(anon, Ordering::Relaxed);
}

#[test]
fn levels_follow_usage_and_subscribers_see_every_transition_in_order() {
    // Arrange
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let mut sub = monitor.subscribe();
    let t0 = Instant::now();

    // Act: rise through warning to critical, then fall back.
    set(&fake, 100_000, 200_000);
    ticker.tick(t0);
    set(&fake, 100_000, 850_000);
    ticker.tick(t0 + Duration::from_millis(100));
    set(&fake, 950_000, 900_000);
    ticker.tick(t0 + Duration::from_millis(200));
    assert_eq!(monitor.level(), PressureLevel::Critical);
    set(&fake, 100_000, 200_000);
    ticker.tick(t0 + Duration::from_millis(300));
    assert_eq!(
        monitor.level(),
        PressureLevel::Critical,
        "dwell holds the level"
    );
    ticker.tick(t0 + Duration::from_millis(1300));

    // Assert
    assert_eq!(monitor.level(), PressureLevel::Normal);
    let first = sub.try_recv().unwrap();
    assert!(matches!(
        first,
        Event::Current {
            level: PressureLevel::Normal,
            sequence: 0
        }
    ));
    let mut seen = Vec::new();
    while let Ok(Event::Transition(t)) = sub.try_recv() {
        seen.push((t.from, t.to, t.sequence, t.reason.decided_by, t.usage_bytes));
    }
    use PressureLevel::*;
    assert_eq!(
        seen,
        vec![
            (Normal, Warning, 1, UsageSource::AnonResident, 850_000),
            (Warning, Critical, 2, UsageSource::Tracked, 950_000),
            (Critical, Normal, 3, UsageSource::AnonResident, 200_000),
        ]
    );
    let reading = monitor.reading();
    assert_eq!(reading.correction_bytes, 100_000);
    assert_eq!(reading.limit_bytes, LIMIT);
}

#[test]
fn a_crossing_between_ticks_uses_the_tracked_total_and_last_correction() {
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let t0 = Instant::now();
    // A small correction (4 % of the limit) is trusted between ticks.
    set(&fake, 500_000, 540_000);
    ticker.tick(t0);
    assert_eq!(monitor.level(), PressureLevel::Normal);

    // Only the shim's total moves; the OS figure is stale until the tick.
    fake.tracked.store(770_000, Ordering::Relaxed);
    ticker.wake(t0 + Duration::from_millis(10));

    assert_eq!(monitor.level(), PressureLevel::Warning);
    assert_eq!(monitor.usage_bytes(), 810_000);
}

#[test]
fn reclaimers_are_asked_gently_at_warning_and_hard_at_critical() {
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let cache = Arc::new(Cache {
        asked: Mutex::new(Vec::new()),
        frees_bytes: 10,
    });
    let _handle = monitor.register_reclaimer(cache.clone());
    let t0 = Instant::now();

    set(&fake, 0, 500_000);
    ticker.tick(t0);
    set(&fake, 0, 820_000);
    ticker.tick(t0 + Duration::from_millis(100));
    set(&fake, 0, 920_000);
    ticker.tick(t0 + Duration::from_millis(200));

    assert_eq!(
        *cache.asked.lock().unwrap(),
        vec![Urgency::Gentle, Urgency::Hard]
    );
    assert_eq!(monitor.reclaimed_bytes(), 20);
}

#[test]
fn stuck_at_critical_purges_then_asks_for_everything() {
    // Arrange: a cache that frees nothing, usage pinned above critical.
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let cache = Arc::new(Cache {
        asked: Mutex::new(Vec::new()),
        frees_bytes: 0,
    });
    let _handle = monitor.register_reclaimer(cache.clone());
    set(&fake, 0, 950_000);
    let t0 = Instant::now();

    // Act: ticks over six seconds without relief.
    for i in 0..60 {
        ticker.tick(t0 + Duration::from_millis(100 * i));
    }

    // Assert: purged once the level held for two seconds, then every
    // reclaimer was asked for everything.
    assert_eq!(monitor.level(), PressureLevel::Critical);
    assert!(fake.purges.load(Ordering::Relaxed) >= 1);
    let asked = cache.asked.lock().unwrap();
    let first_desperate = asked.iter().position(|u| *u == Urgency::Desperate);
    assert!(
        first_desperate.is_some(),
        "never asked for everything: {asked:?}"
    );
    assert!(asked[..first_desperate.unwrap()]
        .iter()
        .all(|u| *u == Urgency::Hard));
}

#[test]
fn relief_resets_the_stuck_clock() {
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let cache = Arc::new(Cache {
        asked: Mutex::new(Vec::new()),
        frees_bytes: 0,
    });
    let _handle = monitor.register_reclaimer(cache.clone());
    let t0 = Instant::now();

    // Usage above critical but falling 3 % every tick.
    let mut usage = 999_000u64;
    for i in 0..30 {
        set(&fake, 0, usage.max(905_000));
        ticker.tick(t0 + Duration::from_millis(100 * i));
        usage = usage * 97 / 100;
        if usage < 905_000 {
            usage = 999_000;
        }
    }

    assert_eq!(monitor.level(), PressureLevel::Critical);
    assert!(!cache.asked.lock().unwrap().contains(&Urgency::Desperate));
}

#[test]
fn reserved_bytes_that_are_also_allocated_count_once_in_the_pool() {
    // Arrange: 500 KB live in component 1, all of it reserved.
    let fake = Fake::default();
    let (monitor, mut ticker) = Monitor::manual(config(), Box::new(fake.clone())).unwrap();
    let held = monitor.tracker().try_reserve(1, 500_000).unwrap();
    set(&fake, 500_000, 500_000);

    // Act
    ticker.tick(Instant::now());

    // Assert: the pool sees usage 0 plus 500 KB reserved, so 400 KB more
    // still fits under critical (900 KB); counted twice, it would not.
    assert_eq!(monitor.usage_bytes(), 500_000);
    let more = monitor.tracker().try_reserve(1, 400_000);
    assert!(more.is_ok(), "{:?}", more.err());
    drop((held, more));
}
