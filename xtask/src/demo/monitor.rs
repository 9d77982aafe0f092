//! Watching the server from the demo: `INFO memory` parsing and a sampler
//! thread that polls it at 25 Hz and keeps peaks and the levels seen.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::load::resp::{Connection, Reply};

/// Time between two `INFO memory` samples (25 Hz), leaving headroom for
/// slow replies under load above the 10 Hz the summary needs.
const SAMPLE_PERIOD: Duration = Duration::from_millis(40);

/// Connect, read and write timeout of the sampler's connection.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

const MIB: f64 = 1024.0 * 1024.0;

/// The `key:value` lines of one `INFO` reply; unknown lines are kept but
/// never required, and a missing key reads as `?`.
#[derive(Debug, Clone, Default)]
pub struct Info {
    fields: HashMap<String, String>,
}

impl Info {
    /// Parses `INFO` text: `key:value` lines, `#` section headers and blank
    /// lines ignored, anything without a colon skipped.
    pub fn parse(text: &str) -> Self {
        let fields = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect();
        Info { fields }
    }

    /// The value of `key`, if the server sent it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The value of `key` as a whole number, if present and numeric.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    /// The value of `key`, or `?`.
    pub fn show(&self, key: &str) -> String {
        self.get(key).unwrap_or("?").to_string()
    }

    /// The usage figure levels are decided on, or `used_memory` from a
    /// server without mempressure.
    pub fn usage_bytes(&self) -> Option<u64> {
        self.number("mempressure_usage_bytes")
            .or_else(|| self.number("used_memory"))
    }

    /// The memory limit, or a non-zero `maxmemory` from a server without
    /// mempressure.
    pub fn limit_bytes(&self) -> Option<u64> {
        self.number("mempressure_limit_bytes")
            .or_else(|| self.number("maxmemory").filter(|&bytes| bytes > 0))
    }

    /// The pressure level, or `?`.
    pub fn level(&self) -> String {
        self.show("mempressure_level")
    }

    /// Every `mempressure_component_<name>_bytes`, largest first.
    pub fn components(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .fields
            .iter()
            .filter_map(|(key, value)| {
                let name = key
                    .strip_prefix("mempressure_component_")?
                    .strip_suffix("_bytes")?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

/// The order of levels, for "at least warning" checks; `None` if unknown.
pub fn level_rank(level: &str) -> Option<u8> {
    match level {
        "normal" => Some(0),
        "warning" => Some(1),
        "critical" => Some(2),
        _ => None,
    }
}

/// What the sampler has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// The latest sample.
    pub latest: Info,
    /// Samples taken.
    pub samples: u64,
    /// Samples that failed (connect or INFO error).
    pub failures: u64,
    /// Seconds between the first and the latest sample.
    pub span_secs: f64,
    /// Largest [`Info::usage_bytes`] seen, if any was.
    pub peak_usage_bytes: Option<u64>,
    /// Largest `used_memory_rss` seen.
    pub peak_rss_bytes: u64,
    /// Largest `used_memory` seen.
    pub peak_used_bytes: u64,
    /// The levels seen, consecutive repeats folded.
    pub levels: Vec<String>,
}

impl Sampled {
    /// Samples per second achieved.
    pub fn rate_hz(&self) -> f64 {
        if self.span_secs > 0.0 {
            (self.samples.saturating_sub(1)) as f64 / self.span_secs
        } else {
            0.0
        }
    }

    fn record(&mut self, info: Info, first_at: Instant) {
        let peak = |peak: &mut u64, value: Option<u64>| *peak = (*peak).max(value.unwrap_or(0));
        if let Some(usage) = info.usage_bytes() {
            self.peak_usage_bytes = Some(self.peak_usage_bytes.unwrap_or(0).max(usage));
        }
        peak(&mut self.peak_rss_bytes, info.number("used_memory_rss"));
        peak(&mut self.peak_used_bytes, info.number("used_memory"));
        let level = info.level();
        if self.levels.last() != Some(&level) {
            self.levels.push(level);
        }
        self.samples += 1;
        self.span_secs = first_at.elapsed().as_secs_f64();
        self.latest = info;
    }
}

/// A thread polling `INFO memory`; stops when dropped.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<Sampled>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `addr`.
    pub fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(Sampled::default()));
        let handle = {
            let (stop, state) = (Arc::clone(&stop), Arc::clone(&state));
            thread::spawn(move || sample_loop(addr, &stop, &state))
        };
        Sampler {
            stop,
            state,
            handle: Some(handle),
        }
    }

    /// A copy of what was seen so far.
    pub fn snapshot(&self) -> Sampled {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            // A sampler that panicked has nothing left to hand back.
            let _ = handle.join();
        }
    }
}

fn sample_loop(addr: SocketAddr, stop: &AtomicBool, state: &Mutex<Sampled>) {
    let first_at = Instant::now();
    let mut conn: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        if conn.is_none() {
            conn = Connection::connect(addr, SAMPLE_TIMEOUT).ok();
        }
        let info = conn
            .as_mut()
            .and_then(|c| match c.call(&[b"INFO", b"memory"]) {
                Ok(Reply::Bulk(bytes)) => Some(Info::parse(&String::from_utf8_lossy(&bytes))),
                _ => None,
            });
        if let Ok(mut sampled) = state.lock() {
            match info {
                Some(info) => sampled.record(info, first_at),
                None => {
                    sampled.failures += 1;
                    conn = None;
                }
            }
        }
        thread::sleep(SAMPLE_PERIOD.saturating_sub(tick.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing_ignores_headers_and_unknown_lines() {
        let info = Info::parse(
            "# Memory\r\nused_memory:1048576\r\nmempressure_level:warning\r\nnoise\r\n\r\n\
             mempressure_component_segment_cache_bytes:300\r\n\
             mempressure_component_connections_bytes:20\r\n",
        );
        assert_eq!(info.number("used_memory"), Some(1_048_576));
        assert_eq!(info.usage_bytes().map(mib).as_deref(), Some("1.0"));
        assert_eq!(info.level(), "warning");
        assert_eq!(info.show("mempressure_limit_bytes"), "?");
        assert_eq!(
            info.components(),
            vec![
                ("segment_cache".to_string(), 300),
                ("connections".to_string(), 20)
            ]
        );
    }

    #[test]
    fn sampled_levels_fold_repeats() {
        let mut sampled = Sampled::default();
        for level in [
            "normal", "normal", "warning", "critical", "critical", "normal",
        ] {
            sampled.record(
                Info::parse(&format!("mempressure_level:{level}")),
                Instant::now(),
            );
        }
        assert_eq!(sampled.levels, ["normal", "warning", "critical", "normal"]);
        assert_eq!(level_rank("critical"), Some(2));
        assert_eq!(level_rank("?"), None);
    }
}
