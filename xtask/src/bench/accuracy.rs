//! The `accuracy` workload: the tracked total against jemalloc's
//! `stats.allocated`, on two fixed shapes at rest (`--workload accuracy`)
//! and sampled while each timed workload runs (`--sample-accuracy`, one run
//! per tracking variant and workload, one thread).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{output_line, parse_fields, Plan};

/// The workloads sampled, in report order: every timed one.
const WORKLOADS: [&str; 4] = ["tight", "ring", "prodcons", "server"];
/// The variants that can answer: those with the tracking allocator.
const TRACKED: [&str; 2] = ["mempressure", "mempressure_scoped"];
/// The tag every sampled line starts with.
const TAG: &str = "accuracy_sampled";
/// The numeric fields of a line with at least one sample.
const FIGURES: [&str; 6] = [
    "tracked_median_bytes",
    "jemalloc_median_bytes",
    "ratio_median",
    "ratio_min",
    "ratio_max",
    "gap_max_bytes",
];

/// The `accuracy` lines of the tracking variants: two fixed shapes each.
///
/// # Errors
///
/// When a run fails or prints a line of another kind.
pub(super) fn fixed_shapes(plan: &Plan, bins: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let entries = if plan.quick { 5_000 } else { 20_000 };
    let mut lines = Vec::new();
    for variant in TRACKED.iter().filter(|v| plan.variants.contains(v)) {
        let mut command = Command::new(bins.join(variant));
        command.args(["--workload", "accuracy", "--ops", &entries.to_string()]);
        for line in output_lines(&mut command)? {
            lines.push(parse_fields(&line, "accuracy")?);
        }
    }
    Ok(lines)
}

fn output_lines(command: &mut Command) -> Result<Vec<String>> {
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Runs every tracking variant in the plan on every timed workload with
/// `--sample-accuracy` and returns the parsed lines, in report order.
///
/// # Errors
///
/// When a run fails or prints a line that [`parse_sampled_line`] refuses.
pub(super) fn sampled(plan: &Plan, bins: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let mut lines = Vec::new();
    for variant in TRACKED.iter().filter(|v| plan.variants.contains(v)) {
        for workload in WORKLOADS {
            eprintln!("xtask: sampling accuracy of {variant} under {workload}");
            let mut command = Command::new(bins.join(variant));
            command.args(["--workload", workload, "--threads", "1"]);
            command.args([
                "--ops",
                &plan.ops(workload).to_string(),
                "--sample-accuracy",
            ]);
            let line = output_line(&mut command)?;
            lines.push(parse_sampled_line(&line)?);
        }
    }
    Ok(lines)
}

/// The fields of one `accuracy_sampled` line, checked: a variant, a
/// workload, a sample count, and with any samples every figure a number.
///
/// # Errors
///
/// When the line is of another kind, or a field is missing or not a number;
/// the message quotes the line.
pub(super) fn parse_sampled_line(line: &str) -> Result<BTreeMap<String, String>> {
    let fields = parse_fields(line, TAG)?;
    let check = || -> Result<()> {
        for key in ["variant", "workload"] {
            fields.get(key).with_context(|| format!("no {key} field"))?;
        }
        let samples = fields.get("samples").context("no samples field")?;
        let samples: u64 = samples
            .parse()
            .with_context(|| format!("samples={samples:?} is not a count"))?;
        if samples > 0 {
            for key in FIGURES {
                super::number(&fields, key)?;
            }
        }
        Ok(())
    };
    check().with_context(|| format!("{TAG} line {line:?}"))?;
    Ok(fields)
}

/// The report's section on the fixed shapes, one row per line.
pub(super) fn fixed_shapes_markdown(lines: &[BTreeMap<String, String>], out: &mut String) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Accuracy: tracked total against jemalloc stats.allocated\n"
    );
    let _ = writeln!(
        out,
        "| variant | shape | tracked bytes | jemalloc allocated | jemalloc/tracked \
         | after tcache flush | size-class rounding of the shape's blocks |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for line in lines {
        let field = |k: &str| line.get(k).map_or("-", String::as_str);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            field("variant"),
            field("shape"),
            field("tracked_bytes"),
            field("jemalloc_allocated_bytes"),
            field("jemalloc_to_tracked"),
            field("jemalloc_to_tracked_after_tcache_flush"),
            field("rounding_ratio"),
        );
    }
}

/// The report's section on the sampled runs: one row per line, then why
/// the ratio exceeds 1.
pub(super) fn sampled_markdown(lines: &[BTreeMap<String, String>], out: &mut String) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Accuracy under each workload\n");
    let _ = writeln!(
        out,
        "Each timed workload run untimed on 1 thread, repeated until 50 samples or 2.5 s; \
         every 2 ms a sampler thread reads the tracked total \
         (`mempressure_alloc::snapshot().total_bytes()`) and then jemalloc's \
         `stats.allocated` (after an epoch advance). The ratio is jemalloc over tracked, \
         per sample.\n"
    );
    let _ = writeln!(
        out,
        "| variant | workload | samples | tracked median bytes | jemalloc median bytes \
         | jemalloc/tracked median | min-max | widest gap bytes |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for line in lines {
        let field = |k: &str| line.get(k).map_or("-", String::as_str);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {}-{} | {} |",
            field("variant"),
            field("workload"),
            field("samples"),
            field("tracked_median_bytes"),
            field("jemalloc_median_bytes"),
            field("ratio_median"),
            field("ratio_min"),
            field("ratio_max"),
            field("gap_max_bytes"),
        );
    }
    let _ = writeln!(
        out,
        "\nWhy jemalloc's figure is the larger one: the tracked total adds up the sizes the \
         program asked for, while `stats.allocated` adds up what jemalloc handed out. That \
         is each block rounded up to its size class (a 100-byte request fills a 112-byte \
         slot), plus the blocks a thread has freed but keeps in its thread cache for reuse, \
         which the arena still counts as out. Both differences are bytes, not a fraction: \
         some hundreds of KiB of cached blocks per thread, and a few percent of the blocks \
         whose sizes fall between classes. So the ratio is large where little is live \
         (`tight` frees every block at once) and near 1 on a large live set (the two shapes \
         above); the widest gap is the figure to hold against a threshold's margin. The \
         two reads of a sample are microseconds apart, so one may see an allocation or a \
         cache flush that the other does not: a minimum below 1 comes from that."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "accuracy_sampled variant=mempressure workload=ring threads=1 ops=500000 \
                        passes=22 samples=51 tracked_median_bytes=361325 \
                        jemalloc_median_bytes=638968 ratio_median=1.7648 ratio_min=1.7081 \
                        ratio_max=9.3302 gap_max_bytes=553756";

    #[test]
    fn a_sampled_line_gives_every_field() {
        let fields = parse_sampled_line(LINE).unwrap();
        assert_eq!(fields["workload"], "ring");
        assert_eq!(fields["samples"], "51");
        assert_eq!(fields["ratio_median"], "1.7648");
        assert_eq!(fields["gap_max_bytes"], "553756");
    }

    #[test]
    fn a_line_without_samples_needs_no_figures() {
        let fields =
            parse_sampled_line("accuracy_sampled variant=mempressure workload=tight samples=0")
                .unwrap();
        assert_eq!(fields["samples"], "0");
    }

    #[test]
    fn a_missing_figure_names_the_field_and_quotes_the_line() {
        let line = LINE.replace(" ratio_max=9.3302", "");
        let err = format!("{:#}", parse_sampled_line(&line).unwrap_err());
        assert!(
            err.starts_with("accuracy_sampled line \"accuracy_sampled"),
            "{err}"
        );
        assert!(err.ends_with("no ratio_max field"), "{err}");
    }

    #[test]
    fn a_figure_that_is_not_a_number_is_refused() {
        let line = LINE.replace("ratio_min=1.7081", "ratio_min=low");
        let err = format!("{:#}", parse_sampled_line(&line).unwrap_err());
        assert!(err.contains("ratio_min=\"low\" is not a number"), "{err}");
    }

    #[test]
    fn a_line_of_another_kind_is_refused() {
        let err = parse_sampled_line("result variant=jemalloc ns_per_op=4.2").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a \"accuracy_sampled\" line"),
            "{err}"
        );
    }

    #[test]
    fn the_section_has_a_row_per_line_and_the_explanation() {
        let mut out = String::new();
        sampled_markdown(&[parse_sampled_line(LINE).unwrap()], &mut out);
        assert!(out.contains(
            "| mempressure | ring | 51 | 361325 | 638968 | 1.7648 | 1.7081-9.3302 | 553756 |"
        ));
        assert!(out.contains("size class"), "{out}");
    }

    #[test]
    fn no_lines_add_no_section() {
        let mut out = String::new();
        sampled_markdown(&[], &mut out);
        assert!(out.is_empty());
    }
}
