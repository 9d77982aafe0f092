//! The `monitor` workload: the monitor's own benchmark (`cargo bench -p
//! mempressure --bench monitor`) run as a step of `cargo xtask bench`, and
//! read back from the `monitor.json` it writes.
//!
//! That benchmark prints a long markdown report of its own; here its
//! standard output goes to standard error, and the report shows the
//! headline figures: detection latency and overshoot per number of
//! allocating threads, and what a tick and each of its readings cost. The
//! JSON is embedded whole in `results.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The step as error messages name it.
const STEP: &str = "monitor benchmark (cargo bench -p mempressure --bench monitor)";

/// One number of allocating threads, as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LatencyRow {
    pub(super) threads: u64,
    pub(super) rounds: u64,
    pub(super) detected: u64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) max_us: f64,
    pub(super) overshoot_p50_bytes: f64,
    pub(super) overshoot_p99_bytes: f64,
}

/// One timed piece of a tick.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TickRow {
    pub(super) name: String,
    pub(super) n: u64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
}

/// What the monitor benchmark measured.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MonitorResults {
    pub(super) quick: bool,
    pub(super) load_average_before: String,
    pub(super) load_average_after: String,
    pub(super) latency: Vec<LatencyRow>,
    pub(super) ticks: Vec<TickRow>,
    pub(super) has_cgroup: bool,
    /// `monitor.json` as the benchmark wrote it.
    pub(super) json: String,
}

/// Compiles the benchmark without running it, so a build failure shows
/// before the timed rounds rather than after.
///
/// # Errors
///
/// When the build fails; the message names the step.
pub(super) fn build() -> Result<()> {
    crate::cargo(
        &[
            "bench",
            "--package",
            "mempressure",
            "--bench",
            "monitor",
            "--no-run",
        ],
        &[],
    )
    .with_context(|| format!("could not build the {STEP}"))
}

/// Runs the benchmark (`--quick` when `quick`) and reads what it wrote to
/// `target/bench/monitor.json` under `target`.
///
/// A report left by an earlier run is removed first, so a run that fails to
/// write one cannot pass off the old figures as its own.
///
/// # Errors
///
/// When the benchmark fails or leaves no readable report; the message names
/// the step and the file.
pub(super) fn run(quick: bool, target: &Path) -> Result<MonitorResults> {
    let path = target.join("bench").join("monitor.json");
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| {
                format!(
                    "before the {STEP}: could not remove the old {}",
                    path.display()
                )
            });
        }
        _ => {}
    }
    let mut args = vec!["bench", "--package", "mempressure", "--bench", "monitor"];
    if quick {
        args.extend(["--", "--quick"]);
    }
    crate::cargo_to_stderr(&args, &[]).with_context(|| format!("the {STEP} failed"))?;
    read(&path).with_context(|| format!("the {STEP} left no usable report"))
}

/// Reads and parses a `monitor.json`.
///
/// # Errors
///
/// When the file cannot be read or is not the benchmark's report; the
/// message names the file, and the field for a missing one.
pub(super) fn read(path: &Path) -> Result<MonitorResults> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a monitor benchmark report", path.display()))
}

/// Parses the text of a `monitor.json`.
fn parse(text: &str) -> Result<MonitorResults> {
    let root: Value = serde_json::from_str(text).context("malformed JSON")?;
    if root.get("benchmark").and_then(Value::as_str) != Some("monitor") {
        bail!("no \"benchmark\": \"monitor\" field");
    }
    let latency = root
        .get("latency")
        .and_then(Value::as_array)
        .context("no \"latency\" array")?
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let at = |pointer: &str| number(row, pointer).with_context(|| format!("latency[{i}]"));
            Ok(LatencyRow {
                threads: at("/threads")? as u64,
                rounds: at("/rounds")? as u64,
                detected: at("/detected")? as u64,
                p50_us: at("/latency_us/p50")?,
                p99_us: at("/latency_us/p99")?,
                max_us: at("/latency_us/max")?,
                overshoot_p50_bytes: at("/overshoot_bytes/p50")?,
                overshoot_p99_bytes: at("/overshoot_bytes/p99")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    // The full tick twice, then each reading inside a sample.
    let tick = root.get("tick").context("no \"tick\" object")?;
    let mut ticks = vec![
        tick_row(tick, "/tick_us", "full tick, metrics off")?,
        tick_row(
            tick,
            "/tick_metrics_us",
            "full tick, metrics on, no recorder",
        )?,
    ];
    let pieces = tick
        .get("pieces")
        .and_then(Value::as_array)
        .context("no \"tick.pieces\" array")?;
    for (i, piece) in pieces.iter().enumerate() {
        let name = piece
            .get("name")
            .and_then(Value::as_str)
            .with_context(|| format!("no name in tick.pieces[{i}]"))?;
        ticks.push(tick_row(piece, "/us", name).with_context(|| format!("tick.pieces[{i}]"))?);
    }

    let text_at = |key: &str| {
        root.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no \"{key}\" string"))
    };
    Ok(MonitorResults {
        quick: root.get("quick").and_then(Value::as_bool).unwrap_or(false),
        load_average_before: text_at("load_average_before")?,
        load_average_after: text_at("load_average_after")?,
        latency,
        ticks,
        has_cgroup: tick
            .get("has_cgroup")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        json: text.trim().to_owned(),
    })
}

/// The n, p50 and p99 of the summary at `pointer` under `value`.
fn tick_row(value: &Value, pointer: &str, name: &str) -> Result<TickRow> {
    Ok(TickRow {
        name: name.to_owned(),
        n: number(value, &format!("{pointer}/n"))? as u64,
        p50_us: number(value, &format!("{pointer}/p50"))?,
        p99_us: number(value, &format!("{pointer}/p99"))?,
    })
}

/// The number at a JSON pointer; `null` (the benchmark's word for a figure
/// it could not compute) reads as NaN.
fn number(value: &Value, pointer: &str) -> Result<f64> {
    match value.pointer(pointer) {
        Some(Value::Null) => Ok(f64::NAN),
        Some(v) => v
            .as_f64()
            .with_context(|| format!("{} at {pointer} is not a number", v)),
        None => bail!("no {pointer} field"),
    }
}

impl MonitorResults {
    /// The report's two monitor sections.
    pub(super) fn markdown(&self, out: &mut String) {
        let command = if self.quick {
            "cargo bench -p mempressure --bench monitor -- --quick"
        } else {
            "cargo bench -p mempressure --bench monitor"
        };
        let _ = writeln!(out, "\n### Monitor: detection latency\n");
        let _ = writeln!(
            out,
            "From the start of the allocation that takes usage past the warning threshold \
             to the subscriber woken with the Warning transition; the monitor's tick is too \
             long to matter, so only the shim's crossing signal can explain a reaction. \
             Overshoot: bytes allocated past the threshold by then. `{command}`, load average \
             {} before and {} after. Its own report, printed to standard error during \
             the run, and docs/monitor-benchmarks.md break the latency down.\n",
            self.load_average_before, self.load_average_after,
        );
        let _ = writeln!(
            out,
            "| threads | rounds | detected | p50 us | p99 us | max us | overshoot p50 KiB \
             | overshoot p99 KiB |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.latency {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.threads,
                row.rounds,
                row.detected,
                us(row.p50_us),
                us(row.p99_us),
                us(row.max_us),
                kib(row.overshoot_p50_bytes),
                kib(row.overshoot_p99_bytes),
            );
        }

        let _ = writeln!(out, "\n### Monitor: cost of one tick\n");
        let _ = writeln!(out, "| what | ticks | p50 us | p99 us |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for row in &self.ticks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                row.name,
                row.n,
                us(row.p50_us),
                us(row.p99_us)
            );
        }
        if !self.has_cgroup {
            let _ = writeln!(
                out,
                "\nNo cgroup memory controller found: a tick reads no cgroup files here."
            );
        }
    }
}

/// Microseconds for a cell: one decimal below 100, none above; `-` for NaN.
fn us(value: f64) -> String {
    match value {
        v if !v.is_finite() => "-".to_owned(),
        v if v < 100.0 => format!("{v:.1}"),
        v => format!("{v:.0}"),
    }
}

/// Bytes as whole KiB for a cell; `-` for NaN.
fn kib(bytes: f64) -> String {
    if bytes.is_finite() {
        format!("{:.0}", bytes / 1024.0)
    } else {
        "-".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report with every field the parser reads, in the benchmark's own
    /// compact form, trimmed to one latency row and one piece.
    const REPORT: &str = concat!(
        r#"{"benchmark":"monitor","quick":true,"cpus":2,"load_average_before":"1.8 1.1 1.0","#,
        r#""load_average_after":"1.7 1.1 1.0","latency":[{"threads":2,"rounds":30,"#,
        r#""detected":29,"latency_us":{"n":29,"p50":51.3,"p99":2218,"max":2218.4},"#,
        r#""overshoot_bytes":{"n":29,"p50":542720,"p99":8425472}}],"tick":{"#,
        r#""tick_us":{"n":300,"p50":128.2,"p99":216},"tick_metrics_us":{"n":300,"p50":128,"#,
        r#""p99":null},"pieces":[{"name":"alloc::snapshot (sum of slots)","#,
        r#""us":{"n":300,"p50":0.1,"p99":0.2}}],"has_cgroup":false}}"#,
        "\n"
    );

    #[test]
    fn a_report_gives_its_latency_and_tick_rows() {
        let results = parse(REPORT).unwrap();
        assert!(results.quick && !results.has_cgroup);
        assert_eq!(
            results.latency,
            vec![LatencyRow {
                threads: 2,
                rounds: 30,
                detected: 29,
                p50_us: 51.3,
                p99_us: 2218.0,
                max_us: 2218.4,
                overshoot_p50_bytes: 542_720.0,
                overshoot_p99_bytes: 8_425_472.0,
            }]
        );
        let names: Vec<&str> = results.ticks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "full tick, metrics off",
                "full tick, metrics on, no recorder",
                "alloc::snapshot (sum of slots)"
            ]
        );
        assert_eq!((results.ticks[0].n, results.ticks[0].p50_us), (300, 128.2));
        assert!(results.ticks[1].p99_us.is_nan());
        assert_eq!(results.json, REPORT.trim());
    }

    #[test]
    fn the_sections_show_the_figures_in_their_units() {
        let mut out = String::new();
        parse(REPORT).unwrap().markdown(&mut out);
        assert!(
            out.contains("| 2 | 30 | 29 | 51.3 | 2218 | 2218 | 530 | 8228 |"),
            "{out}"
        );
        assert!(out.contains("| full tick, metrics on, no recorder | 300 | 128 | - |"));
        assert!(out.contains("-- --quick"), "{out}");
        assert!(out.contains("No cgroup memory controller"), "{out}");
    }

    #[test]
    fn a_missing_figure_is_named_with_its_row() {
        let text = REPORT.replace(r#""p99":2218,"#, "");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert_eq!(err, "latency[0]: no /latency_us/p99 field");
    }

    #[test]
    fn a_text_field_where_a_number_belongs_is_refused() {
        let text = REPORT.replace(r#""rounds":30"#, r#""rounds":"thirty""#);
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("/rounds is not a number"), "{err}");
    }

    #[test]
    fn another_benchmarks_json_is_refused() {
        let err = parse(r#"{"benchmark":"streamlet"}"#).unwrap_err();
        assert!(
            err.to_string().contains("\"benchmark\": \"monitor\""),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_names_the_file() {
        let dir = std::env::temp_dir().join(format!("xtask-monitor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("monitor.json");
        std::fs::write(&path, &REPORT[..40]).unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("malformed JSON"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let path = std::env::temp_dir()
            .join("xtask-no-such-dir")
            .join("monitor.json");
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(
            err.starts_with(&format!("could not read {}", path.display())),
            "{err}"
        );
    }
}
