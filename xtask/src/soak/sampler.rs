//! Time series for the soak: the server's resident set from
//! `/proc/<pid>/status` and its pressure state from `INFO memory`, each
//! polled by its own thread at 20 Hz, so a slow `INFO` reply under load
//! never delays an RSS reading.

use std::fs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::demo::monitor::{level_rank, Info};
use crate::load::resp::{Connection, Reply};

/// Time between two samples of each kind (20 Hz).
const SAMPLE_PERIOD: Duration = Duration::from_millis(50);

/// Connect, read and write timeout of the `INFO` connection.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// One `INFO memory` sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LevelSample {
    /// Seconds since the run started.
    pub(crate) t_secs: f64,
    /// `mempressure_usage_bytes`.
    pub(crate) usage_bytes: u64,
    /// 0 normal, 1 warning, 2 critical.
    pub(crate) level: u8,
    /// `mempressure_transitions` of the server instance that answered.
    pub(crate) transitions: u64,
    /// `mempressure_rejected_connections` of that instance.
    pub(crate) rejected: u64,
}

/// Everything sampled so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    /// `(seconds since start, VmRSS bytes)`.
    pub(crate) rss: Vec<(f64, u64)>,
    /// The `INFO memory` samples.
    pub(crate) levels: Vec<LevelSample>,
    /// `INFO` requests that failed (connect, timeout, `-OOM`).
    pub(crate) info_failures: u64,
    /// `mempressure_limit_bytes`, `_warning_bytes`, `_critical_bytes`.
    pub(crate) thresholds: Option<(u64, u64, u64)>,
    /// The latest full `INFO memory` reply.
    pub(crate) latest: Info,
}

impl Series {
    /// Samples per second of `(first, last, count)`.
    fn rate(first: Option<f64>, last: Option<f64>, count: usize) -> f64 {
        match (first, last) {
            (Some(a), Some(b)) if b > a => (count.saturating_sub(1)) as f64 / (b - a),
            _ => 0.0,
        }
    }

    /// RSS samples per second achieved.
    pub(crate) fn rss_rate_hz(&self) -> f64 {
        let (first, last) = (self.rss.first(), self.rss.last());
        Self::rate(first.map(|s| s.0), last.map(|s| s.0), self.rss.len())
    }

    /// `INFO` samples per second achieved.
    pub(crate) fn level_rate_hz(&self) -> f64 {
        let (first, last) = (self.levels.first(), self.levels.last());
        Self::rate(
            first.map(|s| s.t_secs),
            last.map(|s| s.t_secs),
            self.levels.len(),
        )
    }

    /// The largest RSS sampled.
    pub(crate) fn max_rss_bytes(&self) -> u64 {
        self.rss.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// Seconds the sampled RSS spent above `bytes`: each sample above it
    /// counts until the next sample.
    pub(crate) fn secs_above(&self, bytes: u64) -> f64 {
        self.rss
            .windows(2)
            .filter(|pair| pair[0].1 > bytes)
            .map(|pair| pair[1].0 - pair[0].0)
            .sum()
    }

    /// Level changes seen between consecutive samples.
    pub(crate) fn level_changes(&self) -> u64 {
        self.levels
            .windows(2)
            .filter(|pair| pair[0].level != pair[1].level)
            .count() as u64
    }
}

/// What the sampler threads share with the soak.
#[derive(Debug, Default)]
struct State {
    series: Mutex<Series>,
    /// The server's PID; 0 while none runs.
    pid: AtomicU32,
    /// RSS above which the soak must kill the server; 0 for none.
    cap_bytes: AtomicU64,
    /// Set once a sample passed the cap.
    over_cap: AtomicBool,
    stop: AtomicBool,
}

/// The two sampler threads; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Sampler {
    state: Arc<State>,
    handles: Vec<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling the server on `addr`; `started` is time zero.
    pub(crate) fn start(addr: SocketAddr, started: Instant, cap_bytes: Option<u64>) -> Self {
        let state = Arc::new(State::default());
        state
            .cap_bytes
            .store(cap_bytes.unwrap_or(0), Ordering::Relaxed);
        let rss = {
            let state = Arc::clone(&state);
            thread::spawn(move || rss_loop(&state, started))
        };
        let info = {
            let state = Arc::clone(&state);
            thread::spawn(move || info_loop(addr, &state, started))
        };
        Sampler {
            state,
            handles: vec![rss, info],
        }
    }

    /// Points the RSS sampler at `pid` (0: no server now).
    pub(crate) fn set_pid(&self, pid: u32) {
        self.state.pid.store(pid, Ordering::Relaxed);
    }

    /// Whether an RSS sample passed the cap; clears the flag.
    pub(crate) fn take_over_cap(&self) -> bool {
        self.state.over_cap.swap(false, Ordering::Relaxed)
    }

    /// A copy of the series so far.
    pub(crate) fn snapshot(&self) -> Series {
        self.state
            .series
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            // A sampler that panicked has nothing left to hand back.
            let _ = handle.join();
        }
    }
}

/// `VmRSS` of `pid` in bytes; `None` when the process is gone.
pub(crate) fn vm_rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn rss_loop(state: &State, started: Instant) {
    while !state.stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let pid = state.pid.load(Ordering::Relaxed);
        if let Some(rss) = (pid != 0).then(|| vm_rss_bytes(pid)).flatten() {
            let cap = state.cap_bytes.load(Ordering::Relaxed);
            if cap > 0 && rss > cap {
                state.over_cap.store(true, Ordering::Relaxed);
            }
            if let Ok(mut series) = state.series.lock() {
                series.rss.push((started.elapsed().as_secs_f64(), rss));
            }
        }
        thread::sleep(SAMPLE_PERIOD.saturating_sub(tick.elapsed()));
    }
}

fn info_loop(addr: SocketAddr, state: &State, started: Instant) {
    let mut conn: Option<Connection> = None;
    while !state.stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        if state.pid.load(Ordering::Relaxed) == 0 {
            conn = None;
            thread::sleep(SAMPLE_PERIOD);
            continue;
        }
        if conn.is_none() {
            conn = Connection::connect(addr, INFO_TIMEOUT).ok();
        }
        let info = conn
            .as_mut()
            .and_then(|c| match c.call(&[b"INFO", b"memory"]) {
                Ok(Reply::Bulk(bytes)) => Some(Info::parse(&String::from_utf8_lossy(&bytes))),
                _ => None,
            });
        let t_secs = started.elapsed().as_secs_f64();
        if let Ok(mut series) = state.series.lock() {
            match info {
                Some(info) => record(&mut series, info, t_secs),
                None => {
                    series.info_failures += 1;
                    conn = None;
                }
            }
        }
        thread::sleep(SAMPLE_PERIOD.saturating_sub(tick.elapsed()));
    }
}

fn record(series: &mut Series, info: Info, t_secs: f64) {
    let number = |key: &str| info.number(key);
    if let (Some(limit), Some(warning), Some(critical)) = (
        number("mempressure_limit_bytes"),
        number("mempressure_warning_bytes"),
        number("mempressure_critical_bytes"),
    ) {
        series.thresholds = Some((limit, warning, critical));
    }
    if let (Some(usage_bytes), Some(level)) = (info.usage_bytes(), level_rank(&info.level())) {
        series.levels.push(LevelSample {
            t_secs,
            usage_bytes,
            level,
            transitions: number("mempressure_transitions").unwrap_or(0),
            rejected: number("mempressure_rejected_connections").unwrap_or(0),
        });
    }
    series.latest = info;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_above_counts_each_sample_until_the_next() {
        let series = Series {
            rss: vec![(0.0, 10), (1.0, 30), (1.5, 30), (3.0, 5), (4.0, 40)],
            ..Series::default()
        };
        assert!((series.secs_above(20) - 2.0).abs() < 1e-9);
        assert_eq!(series.max_rss_bytes(), 40);
        assert!((series.rss_rate_hz() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn record_keeps_thresholds_and_levels() {
        let mut series = Series::default();
        for (t, level) in [(0.0, "normal"), (0.1, "critical"), (0.2, "critical")] {
            let text = format!(
                "mempressure_level:{level}\r\nmempressure_usage_bytes:7\r\n\
                 mempressure_limit_bytes:100\r\nmempressure_warning_bytes:80\r\n\
                 mempressure_critical_bytes:95\r\nmempressure_transitions:1\r\n"
            );
            record(&mut series, Info::parse(&text), t);
        }
        assert_eq!(series.thresholds, Some((100, 80, 95)));
        assert_eq!(series.levels.len(), 3);
        assert_eq!(series.level_changes(), 1);
    }
}
