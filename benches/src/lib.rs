//! Side-by-side allocator benchmarks: one binary per global allocator, all
//! running the same workloads from this library.
//!
//! A global allocator is fixed when a binary is linked, so each variant is
//! its own binary under `src/bin/`, which declares its `#[global_allocator]`
//! and hands a [`Variant`] to [`run`]. Everything else (argument parsing,
//! threads, timing, the workloads themselves, the probes that only a
//! tracking binary can answer) lives here, so every variant runs exactly the
//! same code.
//!
//! Each run prints one machine-readable line on standard output:
//!
//! ```text
//! result variant=jemalloc workload=tight threads=1 ops=10000000 size_bytes=0 ns_per_op=4.210
//! ```
//!
//! A tracking variant can instead report how its total compares with
//! jemalloc's while a workload runs (`--sample-accuracy`, one
//! `accuracy_sampled` line) or on two shapes at rest (`--workload
//! accuracy`, two `accuracy` lines).
//!
//! `cargo xtask bench` builds the binaries, runs them interleaved for several
//! rounds and tabulates the lines; see `docs/performance.md`.

// Every public item is documented: the binaries and the xtask read these
// docs to know what a number means.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod allocators;
mod args;
mod harness;
mod probes;
mod sampled;
pub mod variants;
mod workloads;

use std::io::Write;
use std::process::ExitCode;

pub use allocators::{enable_tracking_allocator, GlobalAtomic, LiveBytesTracker};
pub use args::{Args, ArgsError, Workload};
pub use harness::Sizes;

mempressure_alloc::components! {
    /// The components the scoped variant charges its work to.
    pub enum BenchComponent {
        /// Every workload thread of the scoped variant runs in this scope.
        Workload => "workload",
    }
}

/// Allocator calls counted by a variant that can count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls to `alloc` and `alloc_zeroed`.
    pub allocs: u64,
    /// Calls to `realloc`.
    pub reallocs: u64,
    /// Calls to `dealloc`.
    pub frees: u64,
}

/// What a binary tells the shared runner about its global allocator.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// The variant's name, as printed and as the binary is called.
    pub name: &'static str,
    /// Runs once, before any workload (installs a tracker, say).
    pub setup: fn(),
    /// Whether every workload thread runs inside `scope!` of a component.
    pub scoped: bool,
    /// Whether the global allocator is mempressure's tracking allocator, so
    /// the accuracy and flush probes can be answered.
    pub tracked: bool,
    /// Reads the allocator's own call counters, where it keeps them.
    pub call_counts: Option<fn() -> CallCounts>,
}

/// Parses the command line, runs the workload and prints its result line.
///
/// Exit status 2 on a bad argument, 1 when the workload cannot run on this
/// variant (a probe, `--workload accuracy` or `--sample-accuracy`, on an
/// untracked allocator).
pub fn run(variant: Variant) -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{}: {err}\n\n{}", variant.name, args::USAGE);
            return ExitCode::from(2);
        }
    };
    (variant.setup)();
    let line = match args.workload {
        Workload::Accuracy => probes::accuracy(&variant, args.ops),
        _ if args.sample_accuracy => sampled::sampled_accuracy(&variant, &args),
        _ => Ok(result_line(&variant, &args)),
    };
    let line = match line {
        Ok(line) => line,
        Err(err) => {
            eprintln!("{}: {err}", variant.name);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}").is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs a timed workload and formats its `result` line.
fn result_line(variant: &Variant, args: &Args) -> String {
    // The untimed counting pass runs first so the timed run starts cold the
    // same way in every variant.
    let flushes = (args.count_flushes && variant.tracked)
        .then(|| probes::flushes_per_op(args))
        .flatten();
    let before = variant.call_counts.map(|read| read());
    let ns_per_op = harness::time_workload(args, variant.scoped);
    let after = variant.call_counts.map(|read| read());

    let mut line = format!(
        "result variant={} workload={} threads={} ops={} size_bytes={} ns_per_op={ns_per_op:.3}",
        variant.name,
        args.workload.name(),
        args.threads,
        args.ops,
        args.size_bytes,
    );
    if let Some(flushes) = flushes {
        line.push_str(&format!(" flushes_per_op={flushes:.6}"));
    }
    if let (Some(before), Some(after)) = (before, after) {
        let pairs = harness::total_pairs(args) as f64;
        line.push_str(&format!(
            " allocs_per_op={:.3} reallocs_per_op={:.3} frees_per_op={:.3}",
            after.allocs.saturating_sub(before.allocs) as f64 / pairs,
            after.reallocs.saturating_sub(before.reallocs) as f64 / pairs,
            after.frees.saturating_sub(before.frees) as f64 / pairs,
        ));
    }
    line
}
