//! The demo's live status line: elapsed time, phase, level, usage against
//! the limit, the three largest components, acks per second and rejected
//! connections.

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use super::monitor::{mib, Sampled};
use super::{Phase, STATUS_PERIOD};
use crate::load::{Generator, Stats};

/// Formats `part` as a percentage of `whole`, or `?`.
pub(super) fn percent(part: Option<u64>, whole: Option<u64>) -> String {
    match (part, whole) {
        (Some(part), Some(whole)) if whole > 0 => {
            format!("{:.1}%", part as f64 * 100.0 / whole as f64)
        }
        _ => "?%".into(),
    }
}

/// The live status line: overwritten in place on a terminal, one plain
/// line per update otherwise.
pub(super) struct StatusLine {
    terminal: bool,
    open: bool,
    last: Option<(Instant, u64)>,
    acks_per_sec: f64,
}

impl StatusLine {
    pub(super) fn new() -> Self {
        StatusLine {
            terminal: io::stdout().is_terminal(),
            open: false,
            last: None,
            acks_per_sec: 0.0,
        }
    }

    /// Prints the status if the last one is at least `STATUS_PERIOD` old.
    pub(super) fn show(
        &mut self,
        started: Instant,
        phase: Phase,
        sampled: &Sampled,
        generator: &Generator,
    ) {
        let stats = generator.stats();
        let now = Instant::now();
        if let Some((at, acked)) = self.last {
            if now.duration_since(at) < STATUS_PERIOD {
                return;
            }
            let secs = now.duration_since(at).as_secs_f64();
            self.acks_per_sec = stats.acked.saturating_sub(acked) as f64 / secs;
        }
        self.last = Some((now, stats.acked));
        let line = status_text(
            started,
            phase,
            sampled,
            &stats,
            self.acks_per_sec,
            generator,
        );
        if self.terminal {
            print!("\r{line:<150}");
            self.open = true;
        } else {
            println!("{line}");
        }
        // A status line that cannot be flushed is not worth failing for.
        let _ = io::stdout().flush();
    }

    /// Ends an overwritten line so the next output starts on its own line.
    pub(super) fn finish(&mut self) {
        if self.open {
            println!();
            self.open = false;
        }
    }
}

fn status_text(
    started: Instant,
    phase: Phase,
    sampled: &Sampled,
    stats: &Stats,
    acks_per_sec: f64,
    generator: &Generator,
) -> String {
    let info = &sampled.latest;
    let usage = info.usage_bytes();
    let limit = info.limit_bytes();
    let top: Vec<String> = info
        .components()
        .into_iter()
        .take(3)
        .map(|(name, bytes)| format!("{name} {}", mib(bytes)))
        .collect();
    format!(
        "{:>5.1}s {:<8} {:<8} {}/{} MiB {:>6} | {} | {:>6.0} acks/s p{} | rejected {} (server {})",
        started.elapsed().as_secs_f64(),
        phase.name(),
        info.level(),
        usage.map_or_else(|| "?".into(), mib),
        limit.map_or_else(|| "?".into(), mib),
        percent(usage, limit),
        if top.is_empty() {
            "components ?".into()
        } else {
            top.join(", ")
        },
        acks_per_sec,
        generator.producers(),
        stats.flood_oom,
        info.show("mempressure_rejected_connections")
    )
}
