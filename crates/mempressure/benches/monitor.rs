//! Monitor benchmarks: how soon a crossing reaches a subscriber, and what a
//! tick costs.
//!
//! Run with `cargo bench -p mempressure --bench monitor [-- --quick]`.
//! Prints a markdown report and writes `target/bench/monitor.json`. Nothing
//! here asserts a timing: the numbers are for reading.

#[path = "monitor/latency.rs"]
mod latency;
#[path = "monitor/stats.rs"]
mod stats;
#[path = "monitor/tick.rs"]
mod tick;

use std::path::PathBuf;
use std::time::Instant;

use latency::LatencyReport;
use stats::{array, kib, num, object, string, us, Summary};
use tick::TickReport;

#[global_allocator]
static A: mempressure::Allocator = mempressure::Allocator::jemalloc();

/// Rounds and ticks, full and `--quick`.
const ROUNDS: (usize, usize) = (200, 30);
const TICKS: (usize, usize) = (2000, 300);
/// The latency the design aims at, for comparison only.
const TARGET_P99_US: f64 = 1000.0;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, ticks) = if quick {
        (ROUNDS.1, TICKS.1)
    } else {
        (ROUNDS.0, TICKS.0)
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    let started = Instant::now();

    // 1. Detection latency, one and two allocating threads.
    let (monitor, subscription) = latency::start_monitor();
    let latencies: Vec<LatencyReport> = [1, 2]
        .into_iter()
        .map(|threads| latency::run(&monitor, subscription.clone(), threads, rounds))
        .collect();
    monitor.stop();

    // 2. Tick cost.
    let ticks = tick::run(ticks);
    let load_after = load_average();

    let report = markdown(&latencies, &ticks, cpus, &load_before, &load_after, quick);
    println!("{report}");
    let json = json(&latencies, &ticks, cpus, &load_before, &load_after, quick);
    let path = output_dir().join("monitor.json");
    match std::fs::create_dir_all(output_dir()).and_then(|()| std::fs::write(&path, json)) {
        Ok(()) => println!(
            "Wrote {} in {:.1} s.",
            path.display(),
            started.elapsed().as_secs_f64()
        ),
        Err(error) => eprintln!("could not write {}: {error}", path.display()),
    }
}

/// `$CARGO_TARGET_DIR/bench`, else the workspace's `target/bench`.
fn output_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("bench"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"),
    }
}

/// The 1, 5 and 15 minute load averages, as the kernel prints them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn markdown(
    latencies: &[LatencyReport],
    ticks: &TickReport,
    cpus: usize,
    load_before: &str,
    load_after: &str,
    quick: bool,
) -> String {
    let mut out = String::new();
    let mode = if quick { "quick" } else { "full" };
    out.push_str(&format!(
        "# Monitor benchmarks ({mode})\n\n{cpus} CPUs; load average {load_before} before, \
         {load_after} after. Step {} KiB; a thread settles every {} KiB of activity and \
         lags by less than {} KiB.\n\n",
        latency::STEP_BYTES / 1024,
        mempressure::alloc::ACTIVITY_WINDOW_BYTES / 1024,
        mempressure::alloc::FLUSH_BYTES / 1024,
    ));

    out.push_str("## Detection latency (crossing step start to Warning received)\n\n");
    if let Some(first) = latencies.first() {
        out.push_str(&format!(
            "Limit {} KiB, warning {} KiB, correction {} KiB, tick {} s (only the \
             crossing signal can explain a reaction).\n\n",
            first.limit_bytes / 1024,
            first.warning_bytes / 1024,
            first.correction_bytes / 1024,
            latency::TICK.as_secs(),
        ));
    }
    out.push_str(
        "| threads | rounds | detected | by wake | early | missed | p50 us | p90 us | p99 us \
         | max us | overshoot p50 | overshoot p99 | overshoot max |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for l in latencies {
        let (lat, over) = (l.latency_us, l.overshoot_bytes);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.threads,
            l.rounds,
            l.detected,
            l.by_wake,
            l.early,
            l.missed,
            us(lat.p50),
            us(lat.p90),
            us(lat.p99),
            us(lat.max),
            kib(over.p50),
            kib(over.p99),
            kib(over.max),
        ));
    }
    out.push_str(&format!(
        "\nTarget p99 <= {} us: {}.\n\n",
        TARGET_P99_US,
        latencies
            .iter()
            .map(|l| format!(
                "{} thread(s) {}",
                l.threads,
                if l.latency_us.p99 <= TARGET_P99_US {
                    "met"
                } else {
                    "missed"
                }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "Where it goes: signal lag = crossing step start to the start of the step whose \
         flush crossed the watermark; flushing step = that step's own time (allocation, \
         flush, unpark, fill; when the woken threads preempt the allocating one, also \
         their run); delivery = start of that step to Warning received. An overshoot at \
         the cap ({} KiB) means the threads stopped there before the Warning arrived.\n\n\
         | threads | series | p10 | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n",
        latency::CAP_BYTES / 1024,
    ));
    for l in latencies {
        for (name, s) in [
            ("signal lag us", l.signal_lag_us),
            ("flushing step us", l.flush_step_us),
            ("other steps us", l.other_step_us),
            ("delivery us", l.delivery_us),
            ("wakes up to Warning", l.wakes_up),
            ("wakes down to Normal", l.wakes_down),
        ] {
            out.push_str(&format!(
                "| {} | {name} | {} | {} | {} | {} | {} |\n",
                l.threads,
                us(s.p10),
                us(s.p50),
                us(s.p90),
                us(s.p99),
                us(s.max)
            ));
        }
    }

    out.push_str("\n## Tick cost (microseconds)\n\n");
    out.push_str(
        "| what | n | min | p10 | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut rows: Vec<(&str, Summary)> = vec![
        ("tick, metrics off", ticks.tick_us),
        ("tick, metrics prefix, no recorder", ticks.tick_metrics_us),
        ("wake look, no transition", ticks.wake_us),
        (
            "wake look with a transition, 1 subscriber",
            ticks.wake_transition_us,
        ),
        ("SystemSampler::sample", ticks.sample_us),
    ];
    rows.extend(ticks.pieces.iter().copied());
    for (name, s) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.n,
            us(s.min),
            us(s.p10),
            us(s.p50),
            us(s.p90),
            us(s.p99),
            us(s.max)
        ));
    }
    if !ticks.has_cgroup {
        out.push_str("\nNo cgroup memory controller found: no cgroup reading.\n");
    }
    out
}

fn json(
    latencies: &[LatencyReport],
    ticks: &TickReport,
    cpus: usize,
    load_before: &str,
    load_after: &str,
    quick: bool,
) -> String {
    let latency_items: Vec<String> = latencies
        .iter()
        .map(|l| {
            object(&[
                ("threads", l.threads.to_string()),
                ("rounds", l.rounds.to_string()),
                ("limit_bytes", l.limit_bytes.to_string()),
                ("warning_bytes", l.warning_bytes.to_string()),
                (
                    "threshold_tracked_bytes",
                    l.threshold_tracked_bytes.to_string(),
                ),
                ("correction_bytes", l.correction_bytes.to_string()),
                ("detected", l.detected.to_string()),
                ("by_wake", l.by_wake.to_string()),
                ("early", l.early.to_string()),
                ("missed", l.missed.to_string()),
                ("criticals", l.criticals.to_string()),
                ("latency_us", l.latency_us.to_json()),
                ("signal_lag_us", l.signal_lag_us.to_json()),
                ("delivery_us", l.delivery_us.to_json()),
                ("overshoot_bytes", l.overshoot_bytes.to_json()),
                ("flush_step_us", l.flush_step_us.to_json()),
                ("other_step_us", l.other_step_us.to_json()),
                ("wakes_up", l.wakes_up.to_json()),
                ("wakes_down", l.wakes_down.to_json()),
            ])
        })
        .collect();
    let pieces: Vec<String> = ticks
        .pieces
        .iter()
        .map(|(name, s)| object(&[("name", string(name)), ("us", s.to_json())]))
        .collect();
    object(&[
        ("benchmark", string("monitor")),
        ("quick", quick.to_string()),
        ("cpus", cpus.to_string()),
        ("load_average_before", string(load_before)),
        ("load_average_after", string(load_after)),
        ("step_bytes", latency::STEP_BYTES.to_string()),
        ("flush_bytes", mempressure::alloc::FLUSH_BYTES.to_string()),
        ("headroom_bytes", latency::HEADROOM_BYTES.to_string()),
        ("cap_bytes", latency::CAP_BYTES.to_string()),
        ("warning_fraction", num(latency::WARNING_FRACTION)),
        ("tick_secs", latency::TICK.as_secs().to_string()),
        ("target_p99_us", num(TARGET_P99_US)),
        ("latency", array(&latency_items)),
        (
            "tick",
            object(&[
                ("tick_us", ticks.tick_us.to_json()),
                ("tick_metrics_us", ticks.tick_metrics_us.to_json()),
                ("wake_us", ticks.wake_us.to_json()),
                ("wake_transition_us", ticks.wake_transition_us.to_json()),
                ("sample_us", ticks.sample_us.to_json()),
                ("pieces", array(&pieces)),
                ("has_cgroup", ticks.has_cgroup.to_string()),
            ]),
        ),
    ]) + "\n"
}
