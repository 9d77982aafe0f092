//! Medians, spreads and paired ratios of the streamlet comparison, as
//! markdown and as JSON.

use std::fmt::Write as _;

use super::{Plan, Rates, BINARIES, CLIENTS, CPU_WORKLOADS, PIPELINE, WORKLOADS};
use crate::bench::report::{json_preamble, machine, median, quote, today};

/// Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom;
/// above 30 the normal 1.96 is close enough for a planning figure.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The resolution the original target asks for: 1 % of throughput.
const TARGET_FRACTION: f64 = 0.01;

/// Everything one comparison measured.
pub(in crate::bench) struct StreamletReport<'a> {
    pub(in crate::bench) plan: &'a Plan,
    pub(in crate::bench) rates: &'a Rates,
    /// Server CPU nanoseconds per request, by [`CPU_WORKLOADS`].
    pub(in crate::bench) cpu: &'a Rates,
    pub(in crate::bench) redis_benchmark: &'a str,
}

/// The per-round ratios tracking/bare of one workload, summarised.
struct Ratios {
    rounds: Vec<f64>,
    median: f64,
    /// Mean of the ratios and the half-width of its 95 % interval.
    mean: f64,
    half_width: f64,
    /// Rounds a mean would need for a 95 % half-width of 1 %, at this
    /// spread.
    rounds_for_target: f64,
}

impl Ratios {
    /// The table cells: median, min-max, mean with its interval, rounds
    /// for +-1 %.
    fn cells(&self) -> String {
        format!(
            "{:.3} | {:.3}-{:.3} | {:.3} +- {:.3} | {:.0}",
            self.median,
            self.rounds.iter().copied().fold(f64::INFINITY, f64::min),
            self.rounds.iter().copied().fold(0.0, f64::max),
            self.mean,
            self.half_width,
            self.rounds_for_target,
        )
    }
}

impl Ratios {
    fn of(tracking: &[f64], bare: &[f64]) -> Ratios {
        let rounds: Vec<f64> = tracking.iter().zip(bare).map(|(t, b)| t / b).collect();
        let n = rounds.len() as f64;
        let mean = rounds.iter().sum::<f64>() / n;
        let sd = if rounds.len() > 1 {
            (rounds.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            f64::NAN
        };
        let t = T95
            .get(rounds.len().saturating_sub(2))
            .copied()
            .unwrap_or(1.96);
        Ratios {
            median: median(&rounds),
            mean,
            half_width: t * sd / n.sqrt(),
            rounds_for_target: (1.96 * sd / TARGET_FRACTION).powi(2).ceil(),
            rounds,
        }
    }
}

impl StreamletReport<'_> {
    fn series(&self, workload: &str, binary: &str) -> &[f64] {
        lookup(self.rates, workload, binary)
    }

    fn ratios(&self, workload: &str) -> Ratios {
        Ratios::of(
            self.series(workload, BINARIES[0]),
            self.series(workload, BINARIES[1]),
        )
    }

    /// Per-round ratios of server CPU per request, tracking/bare.
    fn cpu_ratios(&self, workload: &str) -> Ratios {
        Ratios::of(
            lookup(self.cpu, workload, BINARIES[0]),
            lookup(self.cpu, workload, BINARIES[1]),
        )
    }

    /// The command line that reproduces this report.
    fn command(&self) -> String {
        let mut command = String::from("cargo xtask bench --streamlet");
        for arg in &self.plan.args {
            command.push(' ');
            command.push_str(arg);
        }
        command
    }

    /// The markdown report.
    pub(in crate::bench) fn markdown(&self, elapsed_secs: u64) -> String {
        let mut out = String::new();
        let (nproc, cpu) = machine();
        let _ = writeln!(
            out,
            "## streamlet throughput, tracking against bare jemalloc, {}\n",
            today()
        );
        let _ = writeln!(
            out,
            "- machine: {nproc} CPUs, {cpu}; {}",
            self.load_average()
        );
        let _ = writeln!(out, "- command: `{}`", self.command());
        let _ = writeln!(
            out,
            "- {} rounds, each binary once per round, first one alternating; {} XADDs and \
             {} requests per PING test per server, `redis-benchmark -c {CLIENTS} -P \
             {PIPELINE}` ({}) on the same CPUs; {elapsed_secs} s\n",
            self.plan.rounds,
            self.plan.xadd_requests,
            self.plan.ping_requests,
            self.redis_benchmark
        );

        let _ = writeln!(
            out,
            "| workload | binary | median rps | min rps | max rps |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|");
        for workload in WORKLOADS {
            for binary in BINARIES {
                let rates = self.series(workload, binary);
                let _ = writeln!(
                    out,
                    "| {workload} | {binary} | {:.0} | {:.0} | {:.0} |",
                    median(rates),
                    rates.iter().copied().fold(f64::INFINITY, f64::min),
                    rates.iter().copied().fold(0.0, f64::max),
                );
            }
        }

        let _ = writeln!(
            out,
            "\n| workload | tracking/bare, median of rounds | min-max of rounds | mean, 95 % \
             interval | rounds for +-1 % |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for workload in WORKLOADS {
            let r = self.ratios(workload);
            let _ = writeln!(out, "| {workload} | {} |", r.cells());
        }

        if self.cpu.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "\nServer CPU time per request (all streamlet threads, from \
             `/proc/PID/task/*/schedstat`; `ping` is both PING tests):\n"
        );
        let _ = writeln!(
            out,
            "| workload | binary | median ns | min-max ns | tracking/bare, median | min-max \
             | mean, 95 % interval | rounds for +-1 % |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for workload in CPU_WORKLOADS {
            let r = self.cpu_ratios(workload);
            for binary in BINARIES {
                let ns = lookup(self.cpu, workload, binary);
                let ratio = if binary == BINARIES[0] {
                    r.cells()
                } else {
                    "| | |".into()
                };
                let _ = writeln!(
                    out,
                    "| {workload} | {binary} | {:.0} | {:.0}-{:.0} | {ratio} |",
                    median(ns),
                    ns.iter().copied().fold(f64::INFINITY, f64::min),
                    ns.iter().copied().fold(0.0, f64::max),
                );
            }
        }
        out
    }

    /// `target/bench/streamlet.json`: one object per workload x binary and
    /// one per workload's ratios, plus the run's context.
    pub(in crate::bench) fn json(&self) -> String {
        let mut out = json_preamble(&self.command());
        let _ = writeln!(
            out,
            "  \"redis_benchmark\": {},",
            quote(self.redis_benchmark)
        );
        let _ = writeln!(
            out,
            "  \"rounds\": {}, \"xadd_requests\": {}, \"ping_requests\": {},",
            self.plan.rounds, self.plan.xadd_requests, self.plan.ping_requests
        );
        let _ = writeln!(
            out,
            "  \"clients\": {CLIENTS}, \"pipeline\": {PIPELINE},\n  \"results\": ["
        );
        let mut objects = Vec::new();
        for workload in WORKLOADS {
            for binary in BINARIES {
                let rates = self.series(workload, binary);
                objects.push(format!(
                    "    {{\"binary\": {}, \"workload\": {}, \"median_rps\": {:.1}, \
                     \"min_rps\": {:.1}, \"max_rps\": {:.1}, \"rounds_rps\": [{}]}}",
                    quote(binary),
                    quote(workload),
                    median(rates),
                    rates.iter().copied().fold(f64::INFINITY, f64::min),
                    rates.iter().copied().fold(0.0, f64::max),
                    list(rates, 1),
                ));
            }
            let r = self.ratios(workload);
            objects.push(format!(
                "    {{\"workload\": {}, \"ratio\": \"tracking/bare\", \"median_ratio\": {:.4}, \
                 \"mean_ratio\": {:.4}, \"ci95_half_width\": {}, \"rounds_for_1_percent\": {}, \
                 \"rounds_ratio\": [{}]}}",
                quote(workload),
                r.median,
                r.mean,
                finite(r.half_width, 4),
                finite(r.rounds_for_target, 0),
                list(&r.rounds, 4),
            ));
        }
        for workload in CPU_WORKLOADS {
            for binary in BINARIES {
                let ns = lookup(self.cpu, workload, binary);
                if ns.is_empty() {
                    continue;
                }
                objects.push(format!(
                    "    {{\"binary\": {}, \"workload\": {}, \"median_cpu_ns_per_request\": \
                     {:.1}, \"rounds_cpu_ns_per_request\": [{}]}}",
                    quote(binary),
                    quote(workload),
                    median(ns),
                    list(ns, 1),
                ));
            }
            let r = self.cpu_ratios(workload);
            if r.rounds.is_empty() {
                continue;
            }
            objects.push(format!(
                "    {{\"workload\": {}, \"ratio\": \"cpu tracking/bare\", \"median_ratio\": \
                 {:.4}, \"mean_ratio\": {:.4}, \"ci95_half_width\": {}, \
                 \"rounds_for_1_percent\": {}, \"rounds_ratio\": [{}]}}",
                quote(workload),
                r.median,
                r.mean,
                finite(r.half_width, 4),
                finite(r.rounds_for_target, 0),
                list(&r.rounds, 4),
            ));
        }
        out.push_str(&objects.join(",\n"));
        out.push_str("\n  ]\n}\n");
        out
    }

    /// The one-minute load average at the end of the run, from
    /// `/proc/loadavg`.
    fn load_average(&self) -> String {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next().map(str::to_owned))
            .map_or_else(
                || "load average unknown".into(),
                |one| format!("load average {one} at the end"),
            )
    }
}

/// The rounds of `workload` on `binary` in `figures`, or none.
fn lookup<'a>(figures: &'a Rates, workload: &str, binary: &str) -> &'a [f64] {
    figures
        .iter()
        .find(|((w, b), _)| *w == workload && *b == binary)
        .map_or(&[], |(_, values)| values.as_slice())
}

fn list(values: &[f64], decimals: usize) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.decimals$}")).collect();
    items.join(", ")
}

fn finite(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "null".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_rounds_and_size_the_interval_by_their_spread() {
        // Three rounds at 0.98, 1.00, 1.02: sd 0.02, t(2) 4.303.
        let r = Ratios::of(&[98.0, 100.0, 102.0], &[100.0, 100.0, 100.0]);
        assert_eq!(r.median, 1.0);
        assert!((r.mean - 1.0).abs() < 1e-12);
        assert!((r.half_width - 4.303 * 0.02 / 3f64.sqrt()).abs() < 1e-9);
        // (1.96 * 0.02 / 0.01)^2 = 15.37 -> 16 rounds.
        assert_eq!(r.rounds_for_target, 16.0);
    }
}
