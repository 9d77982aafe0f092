//! `cargo xtask bench`: every allocator variant side by side, interleaved.
//!
//! The binaries of `benches/` are built once with `--release`. Each round
//! then runs every variant once per workload and thread count (A B C ...,
//! then A B C ... again), so drift of a shared machine lands on all
//! variants alike; a variant's ratio to bare jemalloc is taken round by
//! round and its median reported. Where `valgrind` is installed, callgrind
//! counts instructions per operation on the single-threaded tight, ring
//! and server runs, two op counts apart so start-up cancels:
//! `(Ir(K2) - Ir(K1)) / (K2 - K1)`.
//!
//! After the timed rounds, `accuracy` compares the tracked total with
//! jemalloc's on two fixed shapes and, sampled, while each timed workload
//! runs (see [`accuracy`]); `monitor` runs the monitor's own benchmark for
//! its detection latency and tick cost (see [`monitor`]).
//!
//! Results go to standard output as markdown and to
//! `target/bench/results.json`.
//!
//! `--streamlet` runs a different comparison instead, of the whole server:
//! see [`streamlet`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use report::Report;

mod accuracy;
mod monitor;
mod report;
mod streamlet;

/// Every variant, in run order; each is a binary of `mempressure-benches`.
const VARIANTS: [&str; 8] = [
    "system",
    "jemalloc",
    "mempressure",
    "mempressure_scoped",
    "stats_alloc",
    "cap",
    "tracking_allocator",
    "global_atomic",
];
/// The variant every ratio is taken against; it always runs.
const REFERENCE: &str = "jemalloc";
/// Timed workloads, the two reports of the tracking binaries, then the
/// monitor's benchmark.
const WORKLOADS: [&str; 7] = [
    "tight", "ring", "prodcons", "server", "accuracy", "flush", "monitor",
];
/// Variants the flush sweep compares.
const FLUSH_VARIANTS: [&str; 3] = ["jemalloc", "mempressure", "mempressure_scoped"];
/// Allocation sizes of the flush sweep (0: mixed 16-512 B); the tag table
/// starts at 1 KiB and every allocation and free flushes above 256 KiB.
const FLUSH_SIZES: [usize; 6] = [0, 1024, 4096, 65_536, 262_144, 524_288];
/// Bytes a sweep ring keeps live at most, so large sizes stay affordable.
const FLUSH_LIVE_BYTES: usize = 32 << 20;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--rounds N] [--no-callgrind]
                         [--variants a,b] [--workloads x,y]

  --quick          fewer rounds and ops: a smoke run of under two minutes
  --rounds N       interleaved rounds (default 7, quick 2)
  --no-callgrind   skip the instruction counts even where valgrind exists
  --variants       any of system, jemalloc, mempressure, mempressure_scoped,
                   stats_alloc, cap, tracking_allocator, global_atomic
                   (jemalloc always runs: it is the reference)
  --workloads      any of tight, ring, prodcons, server, accuracy, flush,
                   monitor (default: all). accuracy compares the tracked
                   total with jemalloc's on two fixed shapes and while each
                   of tight, ring, prodcons and server runs; monitor runs
                   cargo bench -p mempressure --bench monitor (-- --quick
                   with --quick) for detection latency and tick cost

       cargo xtask bench --streamlet [--help | options]

  --streamlet      streamlet's XADD and PING throughput with the tracking
                   allocator against bare jemalloc (needs redis-benchmark)";

/// What one invocation measures.
struct Plan {
    quick: bool,
    rounds: usize,
    callgrind: bool,
    variants: Vec<&'static str>,
    workloads: Vec<&'static str>,
    threads: Vec<usize>,
}

impl Plan {
    fn parse(rest: &[String]) -> Result<Plan> {
        let mut plan = Plan {
            quick: false,
            rounds: 0,
            callgrind: true,
            variants: VARIANTS.to_vec(),
            workloads: WORKLOADS.to_vec(),
            threads: Vec::new(),
        };
        let mut args = rest.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match flag.as_str() {
                "--quick" => plan.quick = true,
                "--no-callgrind" => plan.callgrind = false,
                "--rounds" => {
                    let text = value()?;
                    plan.rounds = match text.parse::<usize>() {
                        Ok(n @ 1..=100) => n,
                        _ => bail!("--rounds {text:?}: expected an integer in 1..=100"),
                    };
                }
                "--variants" => plan.variants = pick("--variants", value()?, &VARIANTS)?,
                "--workloads" => plan.workloads = pick("--workloads", value()?, &WORKLOADS)?,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        if !plan.variants.contains(&REFERENCE) {
            plan.variants.insert(0, REFERENCE);
        }
        if plan.rounds == 0 {
            plan.rounds = if plan.quick { 2 } else { 7 };
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        plan.threads = vec![1, 2, cores];
        plan.threads.sort_unstable();
        plan.threads.dedup();
        Ok(plan)
    }

    /// Operation pairs per thread for a timed workload.
    fn ops(&self, workload: &str) -> u64 {
        let full = match workload {
            "tight" | "ring" => 5_000_000,
            "prodcons" => 1_000_000,
            _ => 50_000,
        };
        if self.quick {
            full / 10
        } else {
            full
        }
    }

    /// Operation pairs per thread for one size of the flush sweep.
    fn flush_ops(&self, size_bytes: usize) -> u64 {
        let full = if size_bytes <= 4096 {
            2_000_000
        } else {
            100_000
        };
        if self.quick {
            full / 10
        } else {
            full
        }
    }

    /// The two op counts callgrind runs at.
    fn callgrind_ops(&self) -> (u64, u64) {
        if self.quick {
            (10_000, 60_000)
        } else {
            (20_000, 220_000)
        }
    }

    /// The server workload's counts: whole maps of 256 entries, each entry
    /// about 10 000 instructions.
    fn callgrind_server_entries(&self) -> (u64, u64) {
        if self.quick {
            (256, 1_280)
        } else {
            (512, 4_608)
        }
    }

    fn wants(&self, workload: &str) -> bool {
        self.workloads.contains(&workload)
    }
}

/// Splits a comma list and checks every name against `known`.
fn pick(flag: &str, list: &str, known: &[&'static str]) -> Result<Vec<&'static str>> {
    let mut picked = Vec::new();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        match known.iter().find(|k| **k == name) {
            Some(k) => picked.push(*k),
            None => bail!(
                "{flag}: unknown name {name:?}; expected any of {}",
                known.join(", ")
            ),
        }
    }
    if picked.is_empty() {
        bail!("{flag} needs at least one of {}", known.join(", "));
    }
    Ok(picked)
}

/// One configuration: a variant's timings over rounds.
#[derive(Default)]
struct Series {
    ns_per_op: Vec<f64>,
    extra: BTreeMap<String, String>,
}

/// (workload, threads, size_bytes, variant)
type Key = (&'static str, usize, usize, &'static str);

/// Runs the benchmark as planned by `rest`.
pub(crate) fn run(rest: &[String]) -> Result<()> {
    if let Some(at) = rest.iter().position(|arg| arg == "--streamlet") {
        let mut rest = rest.to_vec();
        rest.remove(at);
        return streamlet::run(&rest);
    }
    let plan = Plan::parse(rest)?;
    let started = Instant::now();
    crate::cargo(
        &[
            "build",
            "--release",
            "--package",
            "mempressure-benches",
            "--bins",
        ],
        &[],
    )?;
    if plan.wants("monitor") {
        monitor::build()?;
    }
    let target = target_dir();
    let bins = target.join("release");

    let timed = timed_configs(&plan);
    let mut series: BTreeMap<Key, Series> = BTreeMap::new();
    for round in 0..plan.rounds {
        eprintln!("xtask: bench round {}/{}", round + 1, plan.rounds);
        for &(workload, threads, size_bytes, live, ops) in &timed {
            let variants: Vec<&'static str> = if workload == "flush" {
                FLUSH_VARIANTS
                    .iter()
                    .copied()
                    .filter(|v| plan.variants.contains(v))
                    .collect()
            } else {
                plan.variants.clone()
            };
            for variant in variants {
                let name = if workload == "flush" {
                    "ring"
                } else {
                    workload
                };
                let line =
                    run_variant(&bins, variant, name, threads, ops, size_bytes, live, false)?;
                let fields = parse_fields(&line, "result")?;
                let entry = series
                    .entry((workload, threads, size_bytes, variant))
                    .or_default();
                entry.ns_per_op.push(number(&fields, "ns_per_op")?);
                for key in ["allocs_per_op", "reallocs_per_op", "frees_per_op"] {
                    if let Some(value) = fields.get(key) {
                        entry.extra.insert(key.into(), value.clone());
                    }
                }
            }
        }
    }
    if plan.wants("flush") {
        count_flushes(&plan, &bins, &mut series)?;
    }
    let instructions = if plan.callgrind && valgrind_available() {
        callgrind(&plan, &bins)?
    } else {
        eprintln!("xtask: no valgrind (or --no-callgrind): skipping instruction counts");
        BTreeMap::new()
    };
    let (accuracy, accuracy_by_workload) = if plan.wants("accuracy") {
        (
            accuracy::fixed_shapes(&plan, &bins)?,
            accuracy::sampled(&plan, &bins)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let monitor = if plan.wants("monitor") {
        Some(monitor::run(plan.quick, &target)?)
    } else {
        None
    };

    let report = Report {
        plan: &plan,
        series: &series,
        instructions: &instructions,
        accuracy,
        accuracy_by_workload,
        monitor,
    };
    print!("{}", report.markdown(started.elapsed().as_secs()));
    let json_path = target.join("bench").join("results.json");
    std::fs::create_dir_all(json_path.parent().unwrap_or(&target))?;
    std::fs::write(&json_path, report.json())
        .with_context(|| format!("could not write {}", json_path.display()))?;
    eprintln!("xtask: wrote {}", json_path.display());
    Ok(())
}

/// (workload, threads, size_bytes, live, ops) of every timed run in a round.
fn timed_configs(plan: &Plan) -> Vec<(&'static str, usize, usize, usize, u64)> {
    let mut configs = Vec::new();
    for workload in ["tight", "ring", "prodcons", "server"] {
        if plan.wants(workload) {
            for &threads in &plan.threads {
                configs.push((workload, threads, 0, 1024, plan.ops(workload)));
            }
        }
    }
    if plan.wants("flush") {
        let sizes: &[usize] = if plan.quick {
            &[0, 4096, 524_288]
        } else {
            &FLUSH_SIZES
        };
        for &size in sizes {
            let live = (FLUSH_LIVE_BYTES / size.max(512)).clamp(16, 1024);
            for threads in [1, 2] {
                configs.push(("flush", threads, size, live, plan.flush_ops(size)));
            }
        }
    }
    configs
}

/// Counts flushes per op once per sweep size, in a run of its own so the
/// counting pass never shares a process with a timed run.
fn count_flushes(plan: &Plan, bins: &Path, series: &mut BTreeMap<Key, Series>) -> Result<()> {
    for (workload, threads, size, live, ops) in timed_configs(plan) {
        if workload != "flush" || threads != 1 {
            continue;
        }
        for variant in ["mempressure", "mempressure_scoped"] {
            if !plan.variants.contains(&variant) {
                continue;
            }
            let line = run_variant(bins, variant, "ring", 1, ops, size, live, true)?;
            let flushes = parse_fields(&line, "result")?
                .get("flushes_per_op")
                .cloned()
                .context("no flushes_per_op in a counting run")?;
            for t in [1, 2] {
                if let Some(entry) = series.get_mut(&(workload, t, size, variant)) {
                    entry.extra.insert("flushes_per_op".into(), flushes.clone());
                }
            }
        }
    }
    Ok(())
}

/// Runs one binary and returns its last output line.
#[allow(clippy::too_many_arguments)]
fn run_variant(
    bins: &Path,
    variant: &str,
    workload: &str,
    threads: usize,
    ops: u64,
    size_bytes: usize,
    live: usize,
    count_flushes: bool,
) -> Result<String> {
    let mut command = Command::new(bins.join(variant));
    command.args(["--workload", workload, "--threads", &threads.to_string()]);
    command.args([
        "--ops",
        &ops.to_string(),
        "--size-bytes",
        &size_bytes.to_string(),
    ]);
    command.args(["--live", &live.to_string()]);
    if count_flushes {
        command.arg("--count-flushes");
    }
    output_line(&mut command)
}

fn output_line(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .last()
        .map(str::to_owned)
        .context("a benchmark printed nothing")
}

/// The `key=value` fields of a line that starts with `tag`.
fn parse_fields(line: &str, tag: &str) -> Result<BTreeMap<String, String>> {
    let mut words = line.split_whitespace();
    if words.next() != Some(tag) {
        bail!("expected a {tag:?} line, got {line:?}");
    }
    Ok(words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn number(fields: &BTreeMap<String, String>, key: &str) -> Result<f64> {
    let text = fields.get(key).with_context(|| format!("no {key} field"))?;
    text.parse()
        .with_context(|| format!("{key}={text:?} is not a number"))
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Instructions per pair under callgrind: (workload, size_bytes, variant).
type Instructions = BTreeMap<(&'static str, usize, &'static str), f64>;

/// Counts instructions per operation of the single-threaded tight, ring and
/// server runs for every variant, and of a 4 KiB ring (owner table in use)
/// for the sweep's variants.
fn callgrind(plan: &Plan, bins: &Path) -> Result<Instructions> {
    let (k1, k2) = plan.callgrind_ops();
    let mut jobs: Vec<(&'static str, usize, &'static str)> = Vec::new();
    for workload in ["tight", "ring", "server"] {
        if plan.wants(workload) {
            jobs.extend(plan.variants.iter().map(|v| (workload, 0, *v)));
        }
    }
    if plan.wants("ring") && plan.wants("flush") {
        let sweep = FLUSH_VARIANTS.iter().filter(|v| plan.variants.contains(v));
        jobs.extend(sweep.map(|v| ("ring", 4096, *v)));
    }
    let mut counts = Instructions::new();
    for (workload, size, variant) in jobs {
        eprintln!("xtask: callgrind {variant} {workload} size_bytes={size}");
        let (k1, k2) = if workload == "server" {
            plan.callgrind_server_entries()
        } else {
            (k1, k2)
        };
        let ir = |ops: u64| collected_instructions(bins, variant, workload, ops, size);
        let (low, high) = (ir(k1)?, ir(k2)?);
        counts.insert(
            (workload, size, variant),
            (high - low) as f64 / (k2 - k1) as f64,
        );
    }
    Ok(counts)
}

/// Total instructions callgrind collected over one run.
fn collected_instructions(
    bins: &Path,
    variant: &str,
    workload: &str,
    ops: u64,
    size: usize,
) -> Result<i64> {
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(bins.join(variant))
        .args(["--workload", workload, "--ops", &ops.to_string()])
        .args(["--size-bytes", &size.to_string()])
        .output()
        .context("could not run valgrind")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "callgrind on {variant} failed ({}): {}",
            output.status,
            stderr.trim()
        );
    }
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .context("callgrind printed no \"Collected\" total")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::root().join("target"), PathBuf::from)
}
