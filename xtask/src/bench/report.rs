//! Medians, spreads and paired ratios, as markdown and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::accuracy;
use super::monitor::MonitorResults;
use super::{Instructions, Key, Plan, Series, REFERENCE, VARIANTS, WORKLOADS};

/// Everything one benchmark invocation measured.
pub(super) struct Report<'a> {
    pub(super) plan: &'a Plan,
    pub(super) series: &'a BTreeMap<Key, Series>,
    pub(super) instructions: &'a Instructions,
    /// The `accuracy` lines: two fixed shapes per tracking variant.
    pub(super) accuracy: Vec<BTreeMap<String, String>>,
    /// The `accuracy_sampled` lines: one per tracking variant and workload.
    pub(super) accuracy_by_workload: Vec<BTreeMap<String, String>>,
    /// The monitor benchmark's figures, when it ran.
    pub(super) monitor: Option<MonitorResults>,
}

/// One variant x workload x threads x size, summarised.
struct Row<'a> {
    key: Key,
    median: f64,
    min: f64,
    max: f64,
    ratio: Option<f64>,
    instructions: Option<f64>,
    extra: &'a BTreeMap<String, String>,
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = self
            .series
            .iter()
            .map(|(&key, series)| {
                let (workload, threads, size, variant) = key;
                let reference = self.series.get(&(workload, threads, size, REFERENCE));
                let ratio = reference.map(|r| {
                    let pairs = series.ns_per_op.iter().zip(&r.ns_per_op);
                    median(&pairs.map(|(v, r)| v / r).collect::<Vec<_>>())
                });
                let program = if workload == "flush" {
                    "ring"
                } else {
                    workload
                };
                let instructions = (threads == 1)
                    .then(|| self.instructions.get(&(program, size, variant)).copied())
                    .flatten();
                let ns = &series.ns_per_op;
                Row {
                    key,
                    median: median(ns),
                    min: ns.iter().copied().fold(f64::INFINITY, f64::min),
                    max: ns.iter().copied().fold(0.0, f64::max),
                    ratio,
                    instructions,
                    extra: &series.extra,
                }
            })
            .collect();
        let position = |list: &[&str], name: &str| list.iter().position(|n| *n == name);
        rows.sort_by_key(|r| {
            let (workload, threads, size, variant) = r.key;
            (
                position(&WORKLOADS, workload),
                size,
                threads,
                position(&VARIANTS, variant),
            )
        });
        rows
    }

    /// The markdown report.
    pub(super) fn markdown(&self, elapsed_secs: u64) -> String {
        let rows = self.rows();
        let mut out = String::new();
        let (nproc, cpu) = machine();
        let _ = writeln!(out, "## Allocator benchmark, {}\n", today());
        let _ = writeln!(out, "- machine: {nproc} CPUs, {cpu}");
        let _ = writeln!(out, "- command: `{}`", self.command());
        let _ = writeln!(
            out,
            "- {} interleaved rounds; ns per operation pair as one thread sees it \
             (median, min-max over rounds); x jemalloc is the median of per-round \
             ratios; instructions per operation from callgrind, 1 thread; {elapsed_secs} s\n",
            self.plan.rounds
        );

        let _ = writeln!(out, "### Time per operation pair\n");
        let _ = writeln!(
            out,
            "| workload | threads | variant | median ns | min-max ns | x jemalloc | instr/pair |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|");
        for row in rows.iter().filter(|r| r.key.0 != "flush") {
            let (workload, threads, _, variant) = row.key;
            let _ = writeln!(
                out,
                "| {workload} | {threads} | {variant} | {:.2} | {:.2}-{:.2} | {} | {} |",
                row.median,
                row.min,
                row.max,
                optional(row.ratio, 3),
                optional(row.instructions, 1),
            );
        }

        let calls: Vec<&Row<'_>> = rows
            .iter()
            .filter(|r| r.extra.contains_key("allocs_per_op"))
            .collect();
        if !calls.is_empty() {
            let _ = writeln!(
                out,
                "\n### Allocator calls per operation (counted by stats_alloc)\n"
            );
            let _ = writeln!(out, "| workload | threads | allocs | reallocs | frees |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|");
            for row in calls.iter().filter(|r| r.key.0 != "flush") {
                let field = |k: &str| row.extra.get(k).map_or("-", String::as_str);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    row.key.0,
                    row.key.1,
                    field("allocs_per_op"),
                    field("reallocs_per_op"),
                    field("frees_per_op"),
                );
            }
        }

        let sweep: Vec<&Row<'_>> = rows.iter().filter(|r| r.key.0 == "flush").collect();
        if !sweep.is_empty() {
            let _ = writeln!(out, "\n### Ring by allocation size (flush granularity)\n");
            let _ = writeln!(
                out,
                "| size bytes | threads | variant | median ns | min-max ns | x jemalloc \
                 | flushes/pair | instr/pair |"
            );
            let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|");
            for row in sweep {
                let (_, threads, size, variant) = row.key;
                let size = if size == 0 {
                    "16-512".to_owned()
                } else {
                    size.to_string()
                };
                let flushes = row.extra.get("flushes_per_op").map_or("-", String::as_str);
                let _ = writeln!(
                    out,
                    "| {size} | {threads} | {variant} | {:.2} | {:.2}-{:.2} | {} | {flushes} \
                     | {} |",
                    row.median,
                    row.min,
                    row.max,
                    optional(row.ratio, 3),
                    optional(row.instructions, 1),
                );
            }
        }

        accuracy::fixed_shapes_markdown(&self.accuracy, &mut out);
        accuracy::sampled_markdown(&self.accuracy_by_workload, &mut out);
        if let Some(monitor) = &self.monitor {
            monitor.markdown(&mut out);
        }
        out
    }

    /// The command line that reproduces this report.
    fn command(&self) -> String {
        let mut command = String::from("cargo xtask bench");
        if self.plan.quick {
            command.push_str(" --quick");
        }
        command
    }

    /// `target/bench/results.json`: one object per row, plus the accuracy
    /// lines, the sampled accuracy lines, the monitor benchmark's own JSON
    /// (`null` when it did not run) and the run's context.
    pub(super) fn json(&self) -> String {
        let mut out = json_preamble(&self.command());
        let _ = writeln!(out, "  \"rounds\": {},\n  \"results\": [", self.plan.rounds);
        let rows = self.rows();
        for (i, row) in rows.iter().enumerate() {
            let (workload, threads, size, variant) = row.key;
            let rounds: Vec<String> = self.series[&row.key]
                .ns_per_op
                .iter()
                .map(|n| format!("{n:.3}"))
                .collect();
            let mut object = format!(
                "    {{\"variant\": {}, \"workload\": {}, \"threads\": {threads}, \
                 \"size_bytes\": {size}, \"median_ns_per_op\": {:.3}, \"min_ns_per_op\": {:.3}, \
                 \"max_ns_per_op\": {:.3}, \"ratio_to_jemalloc\": {}, \
                 \"instructions_per_op\": {}, \"rounds_ns_per_op\": [{}]",
                quote(variant),
                quote(workload),
                row.median,
                row.min,
                row.max,
                json_number(row.ratio, 4),
                json_number(row.instructions, 1),
                rounds.join(", "),
            );
            for (key, value) in row.extra {
                let _ = write!(object, ", {}: {value}", quote(key));
            }
            object.push('}');
            let comma = if i + 1 < rows.len() { "," } else { "" };
            let _ = writeln!(out, "{object}{comma}");
        }
        out.push_str("  ],\n  \"accuracy\": [\n");
        push_lines(&mut out, &self.accuracy);
        out.push_str("  ],\n  \"accuracy_by_workload\": [\n");
        push_lines(&mut out, &self.accuracy_by_workload);
        let monitor = self.monitor.as_ref().map_or("null", |m| m.json.as_str());
        let _ = writeln!(out, "  ],\n  \"monitor\": {monitor}\n}}");
        out
    }
}

/// Appends one JSON object per line of `key=value` fields, numbers bare.
fn push_lines(out: &mut String, lines: &[BTreeMap<String, String>]) {
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<String> = line
            .iter()
            .map(|(k, v)| {
                let value = if v.parse::<f64>().is_ok_and(f64::is_finite) {
                    v.clone()
                } else {
                    quote(v)
                };
                format!("{}: {value}", quote(k))
            })
            .collect();
        let comma = if i + 1 < lines.len() { "," } else { "" };
        let _ = writeln!(out, "    {{{}}}{comma}", fields.join(", "));
    }
}

/// Opens a report's JSON object with the run's context: date, machine and
/// `command`; the caller adds its fields and closes it.
pub(in crate::bench) fn json_preamble(command: &str) -> String {
    let (nproc, cpu) = machine();
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"date\": {},", quote(&today()));
    let _ = writeln!(out, "  \"nproc\": {nproc},\n  \"cpu\": {},", quote(&cpu));
    let _ = writeln!(out, "  \"command\": {},", quote(command));
    out
}

/// The median of `values`; the mean of the middle two for an even count.
pub(super) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

fn json_number(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or_else(|| "null".into(), |v| format!("{v:.decimals$}"))
}

/// A JSON string literal.
pub(super) fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Logical CPUs and the CPU model from `/proc/cpuinfo`.
pub(super) fn machine() -> (usize, String) {
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    (nproc, cpu)
}

/// Today's UTC date as `YYYY-MM-DD`.
pub(super) fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift to an era starting on 0000-03-01, so leap days end each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_map_to_their_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    fn plan() -> Plan {
        Plan {
            quick: true,
            rounds: 2,
            callgrind: false,
            variants: vec!["jemalloc", "mempressure"],
            workloads: vec!["accuracy", "monitor"],
            threads: vec![1],
        }
    }

    #[test]
    fn results_json_embeds_the_sampled_lines_and_the_monitor_report() {
        // Arrange: a run with one sampled line and a monitor report.
        let (plan, series, instructions) = (plan(), BTreeMap::new(), Instructions::new());
        let line = "accuracy_sampled variant=mempressure workload=ring threads=1 samples=51 \
                    tracked_median_bytes=361325 jemalloc_median_bytes=638968 \
                    ratio_median=1.7648 ratio_min=1.7081 ratio_max=9.3302 gap_max_bytes=553756";
        let monitor = MonitorResults {
            quick: true,
            load_average_before: "1.0".into(),
            load_average_after: "1.0".into(),
            latency: Vec::new(),
            ticks: Vec::new(),
            has_cgroup: true,
            json: r#"{"benchmark":"monitor","latency":[]}"#.into(),
        };
        let report = Report {
            plan: &plan,
            series: &series,
            instructions: &instructions,
            accuracy: Vec::new(),
            accuracy_by_workload: vec![accuracy::parse_sampled_line(line).unwrap()],
            monitor: Some(monitor),
        };

        // Act
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();

        // Assert: the old keys stay, the new ones carry the figures.
        assert!(json["results"].is_array() && json["accuracy"].is_array());
        assert_eq!(json["rounds"], 2);
        let sampled = &json["accuracy_by_workload"][0];
        assert_eq!(sampled["workload"], "ring");
        assert_eq!(sampled["ratio_median"].as_f64(), Some(1.7648));
        assert_eq!(json["monitor"]["benchmark"], "monitor");
    }

    #[test]
    fn results_json_says_null_for_a_monitor_that_did_not_run() {
        let (plan, series, instructions) = (plan(), BTreeMap::new(), Instructions::new());
        let report = Report {
            plan: &plan,
            series: &series,
            instructions: &instructions,
            accuracy: Vec::new(),
            accuracy_by_workload: Vec::new(),
            monitor: None,
        };
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert!(json["monitor"].is_null());
        assert_eq!(json["accuracy_by_workload"], serde_json::json!([]));
    }

    #[test]
    fn quotes_and_control_characters_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
