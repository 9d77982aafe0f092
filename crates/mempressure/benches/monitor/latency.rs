//! Detection latency and overshoot: how long after an allocation takes usage
//! past the warning threshold a subscriber hears of it, and how many bytes
//! were allocated past the threshold by then.
//!
//! The monitor ticks every ten minutes, so within a round only the shim's
//! crossing signal can explain a reaction. Allocating threads take usage up
//! in [`STEP_BYTES`] chunks, noting the time before and after each and the
//! shim's exact and approximate totals after it; a subscriber thread blocked
//! in `recv_timeout` notes when the Warning transition arrives. Then every
//! chunk is freed and the round waits for Normal before the next.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mempressure::alloc::{approximate_total_bytes, snapshot, wake_count, FLUSH_BYTES};
use mempressure::level::UsageSource;
use mempressure::monitor::sample::SystemSampler;
use mempressure::subscribe::{Event, RecvTimeoutError};
use mempressure::{Monitor, MonitorConfig, PressureLevel, Subscription};

use crate::stats::Summary;

/// Bytes one allocation step adds.
pub const STEP_BYTES: usize = 64 * 1024;
/// How far above the usage at start the warning threshold is placed.
pub const HEADROOM_BYTES: u64 = 16 << 20;
/// How far past the threshold threads allocate before they wait idle.
pub const CAP_BYTES: u64 = 8 << 20;
/// Warning and critical fractions: a wide gap, so the cap never reaches
/// critical even on a small budget.
pub const WARNING_FRACTION: f64 = 0.5;
const CRITICAL_FRACTION: f64 = 0.9;
/// Far longer than the whole run: no tick can decide a round.
pub const TICK: Duration = Duration::from_secs(600);
/// How long a round waits for Warning, and then for Normal.
const SEEN_TIMEOUT: Duration = Duration::from_secs(2);
const NORMAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for every step a thread can take in a round, so recording never
/// allocates.
const STEPS_PER_THREAD: usize = ((HEADROOM_BYTES + CAP_BYTES) as usize / STEP_BYTES) + 16;

/// One allocation step as its thread saw it.
#[derive(Debug, Clone, Copy)]
struct Step {
    before: Instant,
    after: Instant,
    /// The shim's exact total just after the step.
    tracked_bytes: u64,
    /// The shim's approximate (flushed) total just after the step.
    approx_bytes: i64,
}

/// What the subscriber thread saw, for the round in progress.
struct Seen {
    origin: Instant,
    /// Set when a Warning transition arrives; cleared by the round.
    warning: AtomicBool,
    warning_at_ns: AtomicU64,
    warning_by_wake: AtomicBool,
    normals: AtomicU64,
    criticals: AtomicU64,
    /// The shim's wake count when the last Warning and Normal arrived.
    wakes_at_warning: AtomicU64,
    wakes_at_normal: AtomicU64,
    stop: AtomicBool,
}

/// The outcome of every round with one number of allocating threads.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    pub threads: usize,
    pub rounds: usize,
    pub limit_bytes: u64,
    pub warning_bytes: u64,
    /// The warning threshold in the shim's terms: warning less the
    /// correction from the one tick.
    pub threshold_tracked_bytes: i64,
    pub correction_bytes: i64,
    /// Rounds whose Warning arrived after the crossing step began.
    pub detected: usize,
    /// Rounds whose Warning arrived before any step reached the threshold.
    pub early: usize,
    /// Rounds where no Warning arrived within the timeout.
    pub missed: usize,
    /// Rounds whose Warning was decided on the shim's total (the wake path).
    pub by_wake: usize,
    /// Crossing signals per round on the way up (until Warning arrived)
    /// and on the way down (until Normal arrived).
    pub wakes_up: Summary,
    pub wakes_down: Summary,
    pub criticals: u64,
    /// Warning received less the start of the crossing step, microseconds.
    pub latency_us: Summary,
    /// Start of the step whose flush crossed the watermark less the start of
    /// the crossing step: the lag the flush granularity adds.
    pub signal_lag_us: Summary,
    /// How long the flushing step took: the allocation, the flush and the
    /// unpark, and filling the chunk.
    pub flush_step_us: Summary,
    /// Every other step, for comparison.
    pub other_step_us: Summary,
    /// Warning received less the start of the flushing step (the flush is
    /// in the step's allocation, before the fill): unpark, the monitor's
    /// look, publishing, the subscriber's wake-up.
    pub delivery_us: Summary,
    /// Exact bytes past the threshold at the last step done before the
    /// Warning arrived.
    pub overshoot_bytes: Summary,
}

/// Starts a real monitor whose warning threshold sits [`HEADROOM_BYTES`]
/// above what the process uses now; returns it with its subscriber.
pub fn start_monitor() -> (Monitor, Subscription) {
    // Read one tick's usage to place the threshold.
    let (probe, mut probe_ticker) = Monitor::manual(
        MonitorConfig::new()
            .limit_bytes(1 << 40)
            .metrics_prefix(None),
        Box::new(SystemSampler::new()),
    )
    .expect("probe monitor starts");
    probe_ticker.tick(Instant::now());
    let base_bytes = probe.reading().usage_bytes;
    let limit_bytes = ((base_bytes + HEADROOM_BYTES) as f64 / WARNING_FRACTION) as u64;

    // The real monitor, with a tick too long to matter.
    let monitor = Monitor::start(
        MonitorConfig::new()
            .limit_bytes(limit_bytes)
            .thresholds(WARNING_FRACTION, CRITICAL_FRACTION)
            .tick(TICK)
            .min_dwell(Duration::ZERO)
            .metrics_prefix(None),
    )
    .expect("monitor starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.reading().ticks == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let subscription = monitor.subscribe();
    (monitor, subscription)
}

/// Runs `rounds` rounds with `threads` allocating threads.
pub fn run(
    monitor: &Monitor,
    subscription: Subscription,
    threads: usize,
    rounds: usize,
) -> LatencyReport {
    let reading = monitor.reading();
    let correction_bytes = reading.correction_bytes;
    let threshold = reading.warning_bytes as i64 - correction_bytes.max(0);
    let seen = Arc::new(Seen {
        origin: Instant::now(),
        warning: AtomicBool::new(false),
        warning_at_ns: AtomicU64::new(0),
        warning_by_wake: AtomicBool::new(false),
        normals: AtomicU64::new(0),
        criticals: AtomicU64::new(0),
        wakes_at_warning: AtomicU64::new(0),
        wakes_at_normal: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let listener = spawn_listener(subscription, seen.clone());
    let pool = Pool::spawn(threads, threshold, seen.clone());

    let mut steps: Vec<Step> = Vec::with_capacity(threads * STEPS_PER_THREAD);
    let (mut latency, mut lag, mut delivery) = (Vec::new(), Vec::new(), Vec::new());
    let (mut flush_step, mut overshoot) = (Vec::new(), Vec::new());
    let (mut wakes_up, mut wakes_down) = (Vec::new(), Vec::new());
    let mut other_step = Vec::new();
    let mut report = LatencyReport {
        threads,
        rounds: 0,
        limit_bytes: reading.limit_bytes,
        warning_bytes: reading.warning_bytes,
        threshold_tracked_bytes: threshold,
        correction_bytes,
        detected: 0,
        early: 0,
        missed: 0,
        by_wake: 0,
        wakes_up: Summary::default(),
        wakes_down: Summary::default(),
        flush_step_us: Summary::default(),
        other_step_us: Summary::default(),
        criticals: 0,
        latency_us: Summary::default(),
        signal_lag_us: Summary::default(),
        delivery_us: Summary::default(),
        overshoot_bytes: Summary::default(),
    };
    for _ in 0..rounds {
        if snapshot().total_bytes() as i64 >= threshold || monitor.level() != PressureLevel::Normal
        {
            eprintln!(
                "round {}: level {} with tracked {} and approximate {} bytes against a \
                 warning of {threshold} tracked bytes at the start: stopping early",
                report.rounds,
                monitor.level(),
                snapshot().total_bytes(),
                approximate_total_bytes(),
            );
            break;
        }

        // One round: allocate until the subscriber hears, then free.
        seen.warning.store(false, Ordering::Release);
        let normals_before = seen.normals.load(Ordering::Acquire);
        let wakes_before = wake_count();
        pool.round(&mut steps, report.rounds as u64);
        report.rounds += 1;

        // Where the threshold was crossed, and when the signal fired.
        steps.sort_by_key(|s| s.after);
        let received = seen.warning.load(Ordering::Acquire).then(|| {
            seen.origin + Duration::from_nanos(seen.warning_at_ns.load(Ordering::Relaxed))
        });
        let crossing = steps.iter().find(|s| s.tracked_bytes as i64 >= threshold);
        let flushing = steps.iter().find(|s| s.approx_bytes >= threshold);
        let flushing_before = flushing.map(|f| f.before);
        other_step.extend(
            steps
                .iter()
                .filter(|s| Some(s.before) != flushing_before)
                .map(|s| (s.after - s.before).as_secs_f64() * 1e6),
        );
        match (received, crossing) {
            (None, _) => report.missed += 1,
            (Some(at), Some(c)) if at >= c.before => {
                report.detected += 1;
                latency.push((at - c.before).as_secs_f64() * 1e6);
                if let Some(f) = flushing.filter(|f| f.before <= at) {
                    lag.push(f.before.saturating_duration_since(c.before).as_secs_f64() * 1e6);
                    flush_step.push((f.after - f.before).as_secs_f64() * 1e6);
                    delivery.push((at - f.before).as_secs_f64() * 1e6);
                }
                let last_done = steps.iter().rev().find(|s| s.after <= at).unwrap_or(c);
                overshoot.push((last_done.tracked_bytes as i64 - threshold) as f64);
            }
            (Some(_), _) => report.early += 1,
        }
        if received.is_some() && seen.warning_by_wake.load(Ordering::Relaxed) {
            report.by_wake += 1;
        }

        // Freed already: wait for the level to come back.
        let deadline = Instant::now() + NORMAL_TIMEOUT;
        while seen.normals.load(Ordering::Acquire) == normals_before
            && monitor.level() != PressureLevel::Normal
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(200));
        }
        // Let the monitor re-arm before the next round.
        thread::sleep(Duration::from_millis(1));
        if received.is_some() {
            let at_warning = seen.wakes_at_warning.load(Ordering::Relaxed);
            let at_normal = seen.wakes_at_normal.load(Ordering::Relaxed);
            wakes_up.push(at_warning.saturating_sub(wakes_before) as f64);
            wakes_down.push(at_normal.saturating_sub(at_warning) as f64);
        }
    }
    pool.stop();
    seen.stop.store(true, Ordering::Relaxed);
    let _ = listener.join();

    report.criticals = seen.criticals.load(Ordering::Relaxed);
    report.wakes_up = Summary::of(&wakes_up);
    report.wakes_down = Summary::of(&wakes_down);
    report.flush_step_us = Summary::of(&flush_step);
    report.other_step_us = Summary::of(&other_step);
    report.latency_us = Summary::of(&latency);
    report.signal_lag_us = Summary::of(&lag);
    report.delivery_us = Summary::of(&delivery);
    report.overshoot_bytes = Summary::of(&overshoot);
    report
}

/// The subscriber: blocks in `recv_timeout` and notes what arrives.
fn spawn_listener(mut subscription: Subscription, seen: Arc<Seen>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !seen.stop.load(Ordering::Relaxed) {
            match subscription.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Transition(t)) => {
                    let at = Instant::now();
                    let wakes = wake_count();
                    match t.to {
                        PressureLevel::Warning if t.is_escalation() => {
                            let ns = at.duration_since(seen.origin).as_nanos() as u64;
                            seen.warning_at_ns.store(ns, Ordering::Relaxed);
                            let by_wake = t.reason.decided_by == UsageSource::Tracked;
                            seen.warning_by_wake.store(by_wake, Ordering::Relaxed);
                            seen.wakes_at_warning.store(wakes, Ordering::Relaxed);
                            seen.warning.store(true, Ordering::Release);
                        }
                        PressureLevel::Critical => {
                            seen.criticals.fetch_add(1, Ordering::Relaxed);
                        }
                        PressureLevel::Normal => {
                            seen.wakes_at_normal.store(wakes, Ordering::Relaxed);
                            seen.normals.fetch_add(1, Ordering::Release);
                        }
                        PressureLevel::Warning => {}
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Closed) => return,
            }
        }
    })
}

/// The allocating threads, kept for every round.
struct Pool {
    start: Arc<Barrier>,
    done: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    steps: Arc<Mutex<Vec<Step>>>,
    round: Arc<AtomicU64>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn spawn(threads: usize, threshold: i64, seen: Arc<Seen>) -> Pool {
        let start = Arc::new(Barrier::new(threads + 1));
        let done = Arc::new(Barrier::new(threads + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(Mutex::new(Vec::with_capacity(threads * STEPS_PER_THREAD)));
        let round = Arc::new(AtomicU64::new(0));
        let workers = (0..threads as u64)
            .map(|index| {
                let (start, done, stop) = (start.clone(), done.clone(), stop.clone());
                let round = round.clone();
                let (steps, seen) = (steps.clone(), seen.clone());
                thread::spawn(move || {
                    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(STEPS_PER_THREAD);
                    let mut mine: Vec<Step> = Vec::with_capacity(STEPS_PER_THREAD);
                    loop {
                        start.wait();
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        // A different flush phase every round: without it the
                        // thread's unflushed delta is the same at every
                        // crossing, and one lag is measured over and over.
                        let phase_bytes = phase_bytes(round.load(Ordering::Relaxed), index);
                        let phase = std::hint::black_box(vec![1u8; phase_bytes]);
                        allocate_until_seen(&mut chunks, &mut mine, threshold, &seen);
                        drop(phase);
                        if let Ok(mut all) = steps.lock() {
                            all.append(&mut mine);
                        }
                        chunks.clear();
                        done.wait();
                    }
                })
            })
            .collect();
        Pool {
            start,
            done,
            stop,
            steps,
            round,
            workers,
        }
    }

    /// Runs one round and moves every thread's steps into `out`.
    fn round(&self, out: &mut Vec<Step>, round: u64) {
        self.round.store(round, Ordering::Relaxed);
        self.start.wait();
        self.done.wait();
        out.clear();
        if let Ok(mut all) = self.steps.lock() {
            out.append(&mut all);
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.start.wait();
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// A pseudo-random size below the flush granularity, in 4 KiB units, for
/// `round` and thread `index`.
fn phase_bytes(round: u64, index: u64) -> usize {
    // splitmix64: enough to spread phases, with no dependency.
    let mut z = round
        .wrapping_mul(2)
        .wrapping_add(index)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let units = FLUSH_BYTES as u64 / 4096;
    ((z % units) * 4096) as usize
}

/// Allocates steps until the subscriber saw Warning; past the cap, waits.
fn allocate_until_seen(
    chunks: &mut Vec<Vec<u8>>,
    steps: &mut Vec<Step>,
    threshold: i64,
    seen: &Seen,
) {
    let deadline = Instant::now() + SEEN_TIMEOUT;
    let cap = threshold + CAP_BYTES as i64;
    let mut tracked_bytes = snapshot().total_bytes() as i64;
    while !seen.warning.load(Ordering::Acquire) {
        if tracked_bytes >= cap || steps.len() == steps.capacity() {
            if Instant::now() >= deadline {
                return;
            }
            thread::yield_now();
            tracked_bytes = snapshot().total_bytes() as i64;
            continue;
        }
        let before = Instant::now();
        chunks.push(std::hint::black_box(vec![1u8; STEP_BYTES]));
        let after = Instant::now();
        let snapshot_bytes = snapshot().total_bytes();
        tracked_bytes = snapshot_bytes as i64;
        steps.push(Step {
            before,
            after,
            tracked_bytes: snapshot_bytes,
            approx_bytes: approximate_total_bytes(),
        });
    }
}
