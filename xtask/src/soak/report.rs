//! The soak's verdict and `report.md`: both runs side by side.

use std::fmt::Write as _;

use super::{RunOutcome, SoakArgs};
use crate::load::Verification;

/// Most RSS a run with the responses on may reach, as a multiple of B.
pub(crate) const MAX_RSS_RATIO: f64 = 1.05;

/// Longest way back to normal after the load stops, in seconds.
pub(crate) const MAX_RECOVERY_SECS: f64 = 2.0;

/// Most transitions a run with the responses on may make per second of
/// load: the monitor's minimum dwell (1 s by default) allows at most one step
/// down per dwell, and each step down follows at most one step up.
pub(crate) const MAX_TRANSITIONS_PER_SEC: f64 = 2.0;

const MIB: f64 = 1024.0 * 1024.0;

/// Why `run` breaks the soak's claims; empty when it holds them. Only the
/// data claims apply to the run without responses.
pub(crate) fn failures(run: &RunOutcome) -> Vec<String> {
    let mut out = Vec::new();
    let name = run.name;
    if run.deaths > 0 {
        out.push(format!("[{name}] the server died {} times", run.deaths));
    }
    for (when, report) in [
        ("after the restart", &run.after_restart),
        ("after the run", &run.after_run),
    ] {
        if !report.as_ref().is_some_and(Verification::is_ok) {
            out.push(format!(
                "[{name}] acknowledged records not all read back {when}"
            ));
        }
    }
    if run.name != "on" {
        return out;
    }
    let ratio = rss_ratio(run);
    if ratio > MAX_RSS_RATIO {
        out.push(format!("[{name}] RSS reached {ratio:.3} x B"));
    }
    let resets = resets(run);
    if resets > 0 {
        out.push(format!("[{name}] {resets} connections reset"));
    }
    match run.recovery_secs {
        Some(secs) if secs <= MAX_RECOVERY_SECS => {}
        Some(secs) => out.push(format!("[{name}] back to normal only after {secs:.2}s")),
        None => out.push(format!("[{name}] never back to normal")),
    }
    let most = (run.load_stop_at_secs * MAX_TRANSITIONS_PER_SEC).ceil() as u64 + 2;
    if run.transitions > most {
        out.push(format!(
            "[{name}] {} transitions in {:.0} s of load: more than the dwell allows ({most})",
            run.transitions, run.load_stop_at_secs
        ));
    }
    out
}

fn rss_ratio(run: &RunOutcome) -> f64 {
    run.series.max_rss_bytes() as f64 / run.limit_bytes as f64
}

/// Resets and unexplained closes seen by the load before the kill and after
/// the restart (the kill's own are left out).
fn resets(run: &RunOutcome) -> u64 {
    run.halves.iter().map(|h| h.resets()).sum()
}

/// The whole report.
pub(crate) fn markdown(
    args: &SoakArgs,
    runs: &[&RunOutcome],
    with_text: bool,
    failures: &[String],
) -> String {
    let mut md = String::new();
    let b = args.limit_bytes as f64 / MIB;
    let in_flight = args.in_flight_bytes() as f64 / MIB;
    let _ = writeln!(
        md,
        "# Soak: streamlet under {} of memory\n",
        args.memory_limit
    );
    let _ = writeln!(
        md,
        "Load per run: {} s ({:.0} s, SIGKILL, restart on the same data, {:.0} s), \
         {} producers x pipeline {} x {} B values = {:.0} MiB in flight = {:.1} x B, \
         {} records per producer per half; \
         {} slow consumers (XRANGE COUNT {}, reading 64 KiB per 10 ms), \
         2 plain consumers (COUNT 16), {} connection flooders (one connection per 10 ms \
         each, keeping up to {} open). VmRSS and INFO memory sampled at 20 Hz each.\n",
        args.duration.as_secs(),
        args.duration.as_secs_f64() * 2.0 / 3.0,
        args.duration.as_secs_f64() / 3.0,
        args.producers,
        args.pipeline,
        args.value_bytes,
        in_flight,
        in_flight / b,
        args.records,
        args.slow_consumers,
        args.slow_count,
        args.flooders,
        args.flood_hold
    );
    let header: Vec<String> = runs
        .iter()
        .map(|r| format!("--pressure-responses {}", r.name))
        .collect();
    let _ = writeln!(md, "| | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(runs.len()));
    let mut row = |label: &str, cell: &dyn Fn(&RunOutcome) -> String| {
        let cells: Vec<String> = runs.iter().map(|r| cell(r)).collect();
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    };
    row("max RSS / B", &|r| {
        format!(
            "{:.3} ({:.1} MiB)",
            rss_ratio(r),
            r.series.max_rss_bytes() as f64 / MIB
        )
    });
    row("time RSS above B", &|r| {
        format!("{:.1} s", r.series.secs_above(r.limit_bytes).max(0.0))
    });
    row("time RSS above 1.05 x B", &|r| {
        format!(
            "{:.1} s",
            r.series
                .secs_above((r.limit_bytes as f64 * 1.05) as u64)
                .max(0.0)
        )
    });
    row("RSS cap kills", &|r| match r.cap_bytes {
        Some(cap) => format!("{} (cap {:.0} MiB)", r.cap_kills, cap as f64 / MIB),
        None => "no cap".into(),
    });
    row("peak usage / B", &|r| {
        let peak = r
            .series
            .levels
            .iter()
            .map(|s| s.usage_bytes)
            .max()
            .unwrap_or(0);
        format!("{:.3}", peak as f64 / r.limit_bytes as f64)
    });
    row("transitions (server)", &|r| {
        format!(
            "{} ({} level changes sampled)",
            r.transitions,
            r.series.level_changes()
        )
    });
    row("time at critical", &|r| format!("{:.1} s", secs_at(r, 2)));
    row("flood connections: -OOM / all", &|r| {
        let (oom, all) = r
            .halves
            .iter()
            .fold((0, 0), |(o, a), h| (o + h.flood_oom, a + h.flood_attempts));
        format!("{oom} / {all} (server counted {})", r.rejected)
    });
    row("resets (kill's own left out)", &|r| resets(r).to_string());
    row("unexpected server deaths", &|r| r.deaths.to_string());
    row("XADDs acked (before kill + after)", &|r| {
        format!(
            "{} + {} ({:.0} MiB)",
            r.halves[0].acked,
            r.halves[1].acked,
            (r.halves[0].acked_bytes + r.halves[1].acked_bytes) as f64 / MIB
        )
    });
    row("XADDs refused -OOM / unanswered", &|r| {
        let refused: u64 = r.halves.iter().map(|h| h.refused_oom).sum();
        let unknown: u64 = r.halves.iter().map(|h| h.unknown).sum();
        format!("{refused} / {unknown}")
    });
    row("read back after restart", &|r| {
        verification(&r.after_restart)
    });
    row("read back after run", &|r| verification(&r.after_run));
    row("slow consumers: entries / -OOM / errors", &|r| {
        format!("{} / {} / {}", r.slow.0, r.slow.1, r.slow.2)
    });
    row(
        "back to normal after load stop",
        &|r| match r.recovery_secs {
            Some(secs) => format!("{secs:.2} s"),
            None => "not within 20 s".into(),
        },
    );
    row("samples: RSS / INFO (failed)", &|r| {
        format!(
            "{:.1} Hz / {:.1} Hz ({})",
            r.series.rss_rate_hz(),
            r.series.level_rate_hz(),
            r.series.info_failures
        )
    });

    let _ = writeln!(md, "\n![memory over time](memory.png)\n");
    if !with_text {
        let _ = writeln!(md, "The font was missing: the plot has no text.\n");
    }
    if failures.is_empty() {
        let _ = writeln!(md, "Verdict: every claim held.");
    } else {
        let _ = writeln!(md, "Verdict: FAILED\n");
        for failure in failures {
            let _ = writeln!(md, "- {failure}");
        }
    }
    md
}

/// Seconds the sampled level stayed at `level`.
fn secs_at(run: &RunOutcome, level: u8) -> f64 {
    run.series
        .levels
        .windows(2)
        .filter(|pair| pair[0].level == level)
        .map(|pair| pair[1].t_secs - pair[0].t_secs)
        .sum()
}

fn verification(report: &Option<Verification>) -> String {
    match report {
        Some(v) => format!(
            "{} of {} acked{}",
            v.read_back,
            v.acknowledged,
            if v.is_ok() { "" } else { " (LOST OR CHANGED)" }
        ),
        None => "not read".into(),
    }
}
