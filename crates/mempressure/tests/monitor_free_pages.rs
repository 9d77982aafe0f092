//! Pages that were freed are not pressure: a rise that only jemalloc's free
//! pages or a stale correction explain is read again on fresh figures.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mempressure::jemalloc::JemallocStats;
use mempressure::monitor::sample::{Sample, Sampler};
use mempressure::{Monitor, MonitorConfig, PressureLevel};

const LIMIT: u64 = 1000 * 1000;

/// A process whose resident figure includes pages jemalloc keeps free, and
/// whose purge gives them back.
#[derive(Clone, Default)]
struct Process {
    tracked: Arc<AtomicU64>,
    /// Resident and allocated as jemalloc would report them.
    resident: Arc<AtomicU64>,
    allocated: Arc<AtomicU64>,
    purges: Arc<AtomicUsize>,
}

impl Process {
    fn set(&self, tracked: u64, resident: u64) {
        self.tracked.store(tracked, Ordering::Relaxed);
        self.allocated.store(tracked, Ordering::Relaxed);
        self.resident.store(resident, Ordering::Relaxed);
    }
}

impl Sampler for Process {
    fn sample(&mut self) -> Sample {
        let resident = self.resident.load(Ordering::Relaxed);
        Sample {
            tracked_bytes: self.tracked.load(Ordering::Relaxed),
            process: Some(mempressure::os::ProcessMemory {
                resident_bytes: resident,
                anon_resident_bytes: Some(resident),
                ..Default::default()
            }),
            jemalloc: Some(JemallocStats {
                allocated_bytes: self.allocated.load(Ordering::Relaxed),
                active_bytes: self.allocated.load(Ordering::Relaxed),
                resident_bytes: resident,
                mapped_bytes: resident,
                retained_bytes: 0,
                metadata_bytes: 0,
            }),
            ..Sample::default()
        }
    }

    fn tracked_bytes(&mut self) -> u64 {
        self.tracked.load(Ordering::Relaxed)
    }

    fn purge(&mut self) -> bool {
        // The free pages go back: resident falls to what is allocated.
        self.purges.fetch_add(1, Ordering::Relaxed);
        let allocated = self.allocated.load(Ordering::Relaxed);
        self.resident.store(allocated, Ordering::Relaxed);
        true
    }
}

fn start(process: &Process) -> (Monitor, mempressure::Ticker) {
    let config = MonitorConfig::new()
        .limit_bytes(LIMIT)
        .min_dwell(Duration::from_secs(1))
        .metrics_prefix(None);
    Monitor::manual(config, Box::new(process.clone())).unwrap()
}

#[test]
fn a_rise_only_free_pages_explain_is_read_again_after_a_purge() {
    let process = Process::default();
    let (monitor, mut ticker) = start(&process);

    // Resident says critical, but 850 kB of it is jemalloc's free pages.
    process.set(100_000, 950_000);
    ticker.tick(Instant::now());

    assert_eq!(monitor.level(), PressureLevel::Normal);
    assert_eq!(process.purges.load(Ordering::Relaxed), 1);
    assert_eq!(monitor.usage_bytes(), 100_000);
}

#[test]
fn a_rise_the_live_bytes_explain_still_happens() {
    let process = Process::default();
    let (monitor, mut ticker) = start(&process);

    // Resident is high because the memory is live: a purge changes nothing.
    process.set(920_000, 950_000);
    ticker.tick(Instant::now());

    assert_eq!(monitor.level(), PressureLevel::Critical);
}

/// A monitor whose first tick saw pages resident that nothing tracked holds
/// (and no purge can return: jemalloc does not know them), so that its
/// correction is 60 % of the limit; with the time of that tick.
fn with_large_correction(process: &Process) -> (Monitor, mempressure::Ticker, Instant) {
    let (monitor, mut ticker) = start(process);
    let t0 = Instant::now();
    process.set(100_000, 700_000);
    process.allocated.store(700_000, Ordering::Relaxed);
    ticker.tick(t0);
    assert_eq!(monitor.level(), PressureLevel::Normal);
    assert_eq!(monitor.reading().correction_bytes, 600_000);
    (monitor, ticker, t0)
}

#[test]
fn a_rise_only_a_large_stale_correction_explains_is_read_afresh() {
    let process = Process::default();
    let (monitor, mut ticker, t0) = with_large_correction(&process);

    // Those pages are gone by the next crossing; tracked plus the old
    // correction would read critical, the fresh figures do not.
    process.set(300_000, 320_000);
    ticker.wake(t0 + Duration::from_millis(10));

    assert_eq!(monitor.level(), PressureLevel::Normal);
    assert_eq!(monitor.usage_bytes(), 320_000);
}

#[test]
fn a_stale_correction_cannot_lift_a_warning_to_critical_between_ticks() {
    let process = Process::default();
    let (monitor, mut ticker, t0) = with_large_correction(&process);

    // The shim's total alone reaches warning; with the stale correction it
    // would read critical. The fresh figures say warning.
    process.set(820_000, 840_000);
    ticker.wake(t0 + Duration::from_millis(10));

    assert_eq!(monitor.level(), PressureLevel::Warning);
    assert_eq!(monitor.usage_bytes(), 840_000);
}
