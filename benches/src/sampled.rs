//! The tracked total against jemalloc's `stats.allocated` while a timed
//! workload runs, read by a sampling thread of its own.
//!
//! The `accuracy` workload compares the two figures on two fixed shapes at
//! rest. This probe compares them in motion: the workload runs as it does
//! when timed (same threads, same scope), untimed and repeated until the
//! sampler has [`TARGET_SAMPLES`] or [`MAX_SAMPLING`] has passed, and every
//! [`SAMPLE_INTERVAL`] the sampler reads the shim's exact total and then,
//! after an epoch advance, jemalloc's figure. The two reads are a few
//! microseconds apart, so a sample can catch an allocation in one figure
//! and not yet in the other; the medians are the figures to read.

use core::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::harness;
use crate::probes::{jemalloc_allocated_bytes, ProbeError};
use crate::Variant;

/// Time between two samples: long enough that the epoch advance (a few
/// microseconds) costs the workload nothing measurable, short enough that
/// a pass of a few milliseconds is sampled more than once.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(2);
/// Samples a run aims for; the workload repeats until it has them.
const TARGET_SAMPLES: usize = 50;
/// How long the workload repeats at most when samples are still missing;
/// a pass under way is never cut short.
const MAX_SAMPLING: Duration = Duration::from_millis(2500);
/// Room reserved for samples up front, so that recording never allocates:
/// [`MAX_SAMPLING`] over [`SAMPLE_INTERVAL`] with a wide margin for a
/// single long pass. Samples past it are not kept.
const MAX_SAMPLES: usize = 4096;

/// Both figures, read one right after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// `mempressure_alloc::snapshot().total_bytes()`.
    pub(crate) tracked_bytes: u64,
    /// jemalloc's `stats.allocated` after an epoch advance.
    pub(crate) jemalloc_bytes: u64,
}

/// What a run's samples come to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SampledSummary {
    pub(crate) samples: usize,
    pub(crate) tracked_median_bytes: u64,
    pub(crate) jemalloc_median_bytes: u64,
    /// jemalloc over tracked, per sample.
    pub(crate) ratio_median: f64,
    pub(crate) ratio_min: f64,
    pub(crate) ratio_max: f64,
    /// The largest distance between the two figures in one sample, either
    /// way.
    pub(crate) gap_max_bytes: u64,
}

/// Runs the workload of `args` untimed, repeatedly, while a sampler thread
/// compares the two totals, and formats one `accuracy_sampled` line.
///
/// # Errors
///
/// [`ProbeError::NotTracked`] on an untracked variant (checked before any
/// work), and [`ProbeError::Jemalloc`] if a statistics read fails.
pub(crate) fn sampled_accuracy(variant: &Variant, args: &Args) -> Result<String, ProbeError> {
    if !variant.tracked {
        return Err(ProbeError::NotTracked {
            probe: "--sample-accuracy",
            variant: variant.name,
        });
    }
    let running = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let taken = AtomicUsize::new(0);
    let (passes, samples) = thread::scope(|s| {
        let sampler = s.spawn(|| sample_while(&running, &stop, &taken));

        // Repeat the workload until the sampler has enough, has failed, or
        // time is up.
        let started = Instant::now();
        let mut passes = 0u64;
        loop {
            running.store(true, Ordering::Relaxed);
            harness::time_workload(args, variant.scoped);
            running.store(false, Ordering::Relaxed);
            passes += 1;
            if taken.load(Ordering::Relaxed) >= TARGET_SAMPLES
                || started.elapsed() >= MAX_SAMPLING
                || sampler.is_finished()
            {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let samples = sampler
            .join()
            .unwrap_or_else(|_| Err(ProbeError::Jemalloc("the sampler thread panicked".into())));
        (passes, samples)
    });
    let samples = samples?;
    let mut line = format!(
        "accuracy_sampled variant={} workload={} threads={} ops={} passes={passes}",
        variant.name,
        args.workload.name(),
        args.threads,
        args.ops,
    );
    push_summary(&mut line, summarize(&samples));
    Ok(line)
}

/// The sampler: every [`SAMPLE_INTERVAL`] while `running`, until `stop`.
fn sample_while(
    running: &AtomicBool,
    stop: &AtomicBool,
    taken: &AtomicUsize,
) -> Result<Vec<Sample>, ProbeError> {
    let mut samples = Vec::with_capacity(MAX_SAMPLES);
    while !stop.load(Ordering::Relaxed) {
        if running.load(Ordering::Relaxed) && samples.len() < MAX_SAMPLES {
            let tracked_bytes = mempressure_alloc::snapshot().total_bytes();
            let jemalloc_bytes = jemalloc_allocated_bytes()?;
            samples.push(Sample {
                tracked_bytes,
                jemalloc_bytes,
            });
            taken.store(samples.len(), Ordering::Relaxed);
        }
        thread::sleep(SAMPLE_INTERVAL);
    }
    Ok(samples)
}

/// Medians, extremes and the widest gap of `samples`; `None` for none.
pub(crate) fn summarize(samples: &[Sample]) -> Option<SampledSummary> {
    if samples.is_empty() {
        return None;
    }
    let mut ratios: Vec<f64> = samples
        .iter()
        .map(|s| s.jemalloc_bytes as f64 / s.tracked_bytes.max(1) as f64)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let gap_max_bytes = samples
        .iter()
        .map(|s| s.jemalloc_bytes.abs_diff(s.tracked_bytes))
        .max()
        .unwrap_or(0);
    Some(SampledSummary {
        samples: samples.len(),
        tracked_median_bytes: median_bytes(samples.iter().map(|s| s.tracked_bytes).collect()),
        jemalloc_median_bytes: median_bytes(samples.iter().map(|s| s.jemalloc_bytes).collect()),
        ratio_median: median_sorted(&ratios),
        ratio_min: ratios[0],
        ratio_max: ratios[ratios.len() - 1],
        gap_max_bytes,
    })
}

/// Appends the summary's fields, or `samples=0` alone when there is none.
fn push_summary(line: &mut String, summary: Option<SampledSummary>) {
    let Some(s) = summary else {
        line.push_str(" samples=0");
        return;
    };
    let _ = write!(
        line,
        " samples={} tracked_median_bytes={} jemalloc_median_bytes={} ratio_median={:.4} \
         ratio_min={:.4} ratio_max={:.4} gap_max_bytes={}",
        s.samples,
        s.tracked_median_bytes,
        s.jemalloc_median_bytes,
        s.ratio_median,
        s.ratio_min,
        s.ratio_max,
        s.gap_max_bytes,
    );
}

/// The median of byte counts; the mean of the middle two for an even count.
fn median_bytes(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    match values.len() {
        0 => 0,
        n if n % 2 == 1 => values[n / 2],
        n => ((u128::from(values[n / 2 - 1]) + u128::from(values[n / 2])) / 2) as u64,
    }
}

/// The median of sorted, non-empty `values`.
fn median_sorted(values: &[f64]) -> f64 {
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variants;

    fn sample(tracked_bytes: u64, jemalloc_bytes: u64) -> Sample {
        Sample {
            tracked_bytes,
            jemalloc_bytes,
        }
    }

    #[test]
    fn an_untracked_variant_is_refused_before_any_work() {
        // The test binary's allocator is not the shim, so a run would read
        // nonsense; the check must come first and name flag and variant.
        let args =
            Args::parse(["--workload", "tight", "--sample-accuracy"].map(String::from)).unwrap();
        let err = sampled_accuracy(&variants::JEMALLOC, &args).unwrap_err();
        assert_eq!(
            err,
            ProbeError::NotTracked {
                probe: "--sample-accuracy",
                variant: "jemalloc"
            }
        );
        assert!(err
            .to_string()
            .starts_with("--sample-accuracy needs the tracking allocator"));
        assert!(err.to_string().contains("variant jemalloc"), "{err}");
    }

    #[test]
    fn the_summary_takes_medians_extremes_and_the_widest_gap() {
        let samples = [
            sample(1000, 1100),
            sample(2000, 2040),
            sample(4000, 3990),
            sample(100, 300),
        ];
        let s = summarize(&samples).unwrap();
        assert_eq!(s.samples, 4);
        assert_eq!(s.tracked_median_bytes, 1500);
        assert_eq!(s.jemalloc_median_bytes, 1570);
        assert_eq!((s.ratio_min, s.ratio_max), (0.9975, 3.0));
        assert!((s.ratio_median - (1.02 + 1.1) / 2.0).abs() < 1e-12);
        assert_eq!(s.gap_max_bytes, 200);
    }

    #[test]
    fn a_zero_tracked_total_gives_a_finite_ratio() {
        let s = summarize(&[sample(0, 4096)]).unwrap();
        assert_eq!(s.ratio_median, 4096.0);
    }

    #[test]
    fn the_line_carries_every_field_xtask_reads() {
        let mut line = String::from("accuracy_sampled variant=mempressure");
        push_summary(&mut line, summarize(&[sample(1000, 1010)]));
        assert_eq!(
            line,
            "accuracy_sampled variant=mempressure samples=1 tracked_median_bytes=1000 \
             jemalloc_median_bytes=1010 ratio_median=1.0100 ratio_min=1.0100 \
             ratio_max=1.0100 gap_max_bytes=10"
        );
    }

    #[test]
    fn no_samples_is_said_plainly() {
        let mut line = String::new();
        push_summary(&mut line, summarize(&[]));
        assert_eq!(line, " samples=0");
    }

    #[test]
    fn byte_medians_of_huge_values_do_not_overflow() {
        assert_eq!(median_bytes(vec![u64::MAX, u64::MAX]), u64::MAX);
        assert_eq!(median_bytes(vec![3, 1, 2]), 2);
        assert_eq!(median_bytes(vec![1, 2]), 1);
    }
}
