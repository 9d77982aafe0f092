//! What a tick costs over the real process, and where the time goes.
//!
//! A hand-driven monitor over the real `SystemSampler` is ticked back to
//! back; then the sampler alone, and each of its readings, are timed in the
//! same loop so that every piece sees the same machine load.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mempressure::jemalloc::JemallocReader;
use mempressure::monitor::sample::{Sample, Sampler, SystemSampler};
use mempressure::os::{self, cgroup::CgroupLocator};
use mempressure::{Monitor, MonitorConfig};

use crate::stats::Summary;

/// Ticks run before timing starts, so caches and page tables are warm.
const WARM_UP: usize = 20;

/// The timings, in microseconds.
#[derive(Debug, Clone)]
pub struct TickReport {
    /// A full tick, metrics off.
    pub tick_us: Summary,
    /// A full tick with the default metric prefix (no recorder installed,
    /// so the facade calls are the only cost).
    pub tick_metrics_us: Summary,
    /// The crossing-signal look between ticks, no transition.
    pub wake_us: Summary,
    /// The same look when it changes the level and publishes, with one
    /// subscriber that never reads.
    pub wake_transition_us: Summary,
    /// `SystemSampler::sample` alone.
    pub sample_us: Summary,
    /// Each reading inside a sample, by name.
    pub pieces: Vec<(&'static str, Summary)>,
    /// Whether the process has a cgroup with a memory controller.
    pub has_cgroup: bool,
}

/// Times `ticks` of each kind.
pub fn run(ticks: usize) -> TickReport {
    let tick_us = time_ticks(None, ticks);
    let tick_metrics_us = time_ticks(Some("streamline"), ticks);
    let wake_us = time_wakes(ticks);
    let wake_transition_us = time_transitions(ticks);

    // The sampler alone.
    let mut sampler = SystemSampler::new();
    let mut samples = Vec::with_capacity(ticks);
    for i in 0..WARM_UP + ticks {
        let started = Instant::now();
        black_box(sampler.sample());
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
    }

    // Its pieces, interleaved.
    let jemalloc = JemallocReader::new().ok();
    let cgroup = CgroupLocator::detect().ok().flatten();
    let physical = os::physical_memory_bytes();
    let mut process = Vec::with_capacity(ticks);
    let mut stats = Vec::with_capacity(ticks);
    let mut shim = Vec::with_capacity(ticks);
    let mut cgroups = Vec::with_capacity(ticks);
    for i in 0..WARM_UP + ticks {
        let keep = i >= WARM_UP;
        let (p, j, s, c) = (
            time(|| black_box(os::read_process_memory().is_ok())),
            time(|| black_box(jemalloc.as_ref().map(|r| r.read().is_ok()))),
            time(|| black_box(mempressure::alloc::snapshot().total_bytes())),
            time(|| black_box(cgroup.as_ref().map(|l| l.read(physical).is_ok()))),
        );
        if keep {
            process.push(p);
            stats.push(j);
            shim.push(s);
            cgroups.push(c);
        }
    }
    let mut pieces = vec![
        (
            "os::read_process_memory (/proc/self/statm + status)",
            Summary::of_durations_us(&process),
        ),
        (
            "JemallocReader::read (epoch + 6 mallctl)",
            Summary::of_durations_us(&stats),
        ),
        (
            "alloc::snapshot (sum of slots)",
            Summary::of_durations_us(&shim),
        ),
    ];
    if cgroup.is_some() {
        pieces.push((
            "CgroupLocator::read (memory files)",
            Summary::of_durations_us(&cgroups),
        ));
    }
    TickReport {
        tick_us,
        tick_metrics_us,
        wake_us,
        wake_transition_us,
        sample_us: Summary::of_durations_us(&samples),
        pieces,
        has_cgroup: cgroup.is_some(),
    }
}

/// Times full ticks of a hand-driven monitor that stays at Normal.
fn time_ticks(metrics_prefix: Option<&str>, ticks: usize) -> Summary {
    let mut ticker = manual(metrics_prefix);
    let mut timings = Vec::with_capacity(ticks);
    for i in 0..WARM_UP + ticks {
        let now = Instant::now();
        ticker.tick(now);
        if i >= WARM_UP {
            timings.push(now.elapsed());
        }
    }
    Summary::of_durations_us(&timings)
}

/// Times the monitor's look on a crossing signal, without a transition.
fn time_wakes(wakes: usize) -> Summary {
    let mut ticker = manual(None);
    ticker.tick(Instant::now());
    let mut timings = Vec::with_capacity(wakes);
    for i in 0..WARM_UP + wakes {
        let now = Instant::now();
        ticker.wake(now);
        if i >= WARM_UP {
            timings.push(now.elapsed());
        }
    }
    Summary::of_durations_us(&timings)
}

/// Times wakes that each change the level: the shim's total alternates
/// between warning and normal on a 1000-byte budget.
fn time_transitions(wakes: usize) -> Summary {
    let config = MonitorConfig::new()
        .limit_bytes(1000)
        .min_dwell(Duration::ZERO)
        .metrics_prefix(None);
    let (monitor, mut ticker) = Monitor::manual(config, Box::new(Alternating { high: false }))
        .expect("manual monitor starts");
    let _subscription = monitor.subscribe();
    ticker.tick(Instant::now());
    let mut timings = Vec::with_capacity(wakes);
    for i in 0..WARM_UP + wakes {
        let now = Instant::now();
        ticker.wake(now);
        if i >= WARM_UP {
            timings.push(now.elapsed());
        }
    }
    Summary::of_durations_us(&timings)
}

/// A shim total that flips between 850 and 100 bytes at every look.
struct Alternating {
    high: bool,
}

impl Sampler for Alternating {
    fn sample(&mut self) -> Sample {
        Sample::default()
    }

    fn tracked_bytes(&mut self) -> u64 {
        self.high = !self.high;
        if self.high {
            850
        } else {
            100
        }
    }
}

/// A hand-driven monitor over the real process with a budget it never nears.
fn manual(metrics_prefix: Option<&str>) -> mempressure::Ticker {
    let config = MonitorConfig::new()
        .limit_bytes(1 << 40)
        .metrics_prefix(metrics_prefix.map(str::to_owned));
    let (_monitor, ticker) =
        Monitor::manual(config, Box::new(SystemSampler::new())).expect("manual monitor starts");
    ticker
}

fn time<R>(f: impl FnOnce() -> R) -> Duration {
    let started = Instant::now();
    black_box(f());
    started.elapsed()
}
