//! Command-line flags for the memory budget, flattenable into any clap
//! application.
//!
//! ```no_run
//! use clap::Parser;
//! use mempressure::args::MemoryArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     memory: MemoryArgs,
//! }
//!
//! // Parses, checks the flags against each other, and exits with code 2 and
//! // a usage message on any error.
//! let cli: Cli = MemoryArgs::parse_validated(|cli: &Cli| &cli.memory);
//! # let _ = cli;
//! ```
//!
//! Every flag falls back to an environment variable (`MEMPRESSURE_…`); a flag
//! on the command line wins over the variable, and a variable that is set but
//! empty counts as unset.

use std::ffi::OsString;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Arg, Parser};

use crate::size::{parse_fraction, parse_size};

/// Prefix of every environment variable these flags read.
const ENV_PREFIX: &str = "MEMPRESSURE_";

/// The longest minimum dwell accepted: one hour.
///
/// A level held back for longer than this would hide real pressure from
/// subscribers; anything beyond it is far more likely a typo than a wish.
const MAX_MIN_DWELL_MS: u64 = 3_600_000;

/// Flags for the memory budget, its pressure levels and its metrics.
///
/// Flatten it into an application with `#[command(flatten)]`, then call
/// [`MemoryArgs::validate`] (or parse with [`MemoryArgs::parse_validated`])
/// so the cross-field rules are checked too.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(mut_args = ignore_empty_env)]
pub struct MemoryArgs {
    /// Memory budget in bytes, or with a unit: 1073741824, 1GiB, 512MiB,
    /// 1.5G (K/M/G/T and KiB/MiB/GiB/TiB are binary, KB/MB/GB/TB decimal).
    /// Unset: the monitor derives the budget from the cgroup limit or the
    /// machine's memory
    #[arg(
        long,
        value_name = "SIZE",
        env = "MEMPRESSURE_MEMORY_LIMIT",
        value_parser = parse_size
    )]
    pub memory_limit: Option<u64>,

    /// Fraction of the memory limit at which the level becomes warning, in
    /// (0, 1]
    #[arg(
        long,
        value_name = "FRACTION",
        env = "MEMPRESSURE_MEMORY_WARNING_THRESHOLD",
        default_value = "0.8",
        value_parser = parse_fraction
    )]
    pub memory_warning_threshold: f64,

    /// Fraction of the memory limit at which the level becomes critical, in
    /// (0, 1]; must be above the warning threshold
    #[arg(
        long,
        value_name = "FRACTION",
        env = "MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD",
        default_value = "0.9",
        value_parser = parse_fraction
    )]
    pub memory_critical_threshold: f64,

    /// Milliseconds between two readings of the monitor, 1 to 60000
    #[arg(
        long,
        value_name = "MS",
        env = "MEMPRESSURE_MEMORY_TICK_MS",
        default_value = "100",
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub memory_tick_ms: u64,

    /// Fraction of the memory limit that usage must fall below a level's
    /// threshold before the level is left, in [0, 1); must be below the
    /// warning threshold
    #[arg(
        long,
        value_name = "FRACTION",
        env = "MEMPRESSURE_MEMORY_HYSTERESIS",
        default_value = "0.05",
        value_parser = parse_hysteresis
    )]
    pub memory_hysteresis: f64,

    /// Milliseconds a level is held at least before usage may lower it, 0 to
    /// 3600000
    #[arg(
        long,
        value_name = "MS",
        env = "MEMPRESSURE_MEMORY_MIN_DWELL_MS",
        default_value = "1000",
        value_parser = clap::value_parser!(u64).range(0..=MAX_MIN_DWELL_MS)
    )]
    pub memory_min_dwell_ms: u64,

    /// Prefix of every exported metric name, matching `[a-zA-Z_][a-zA-Z0-9_]*`
    #[arg(
        long,
        value_name = "PREFIX",
        env = "MEMPRESSURE_METRICS_PREFIX",
        default_value = "streamline",
        value_parser = parse_metrics_prefix
    )]
    pub metrics_prefix: String,
}

impl MemoryArgs {
    /// Checks the rules that tie flags together: the warning threshold is
    /// below the critical one, and the hysteresis is below the warning
    /// threshold.
    ///
    /// A binary that parses by itself calls
    /// `cli.memory.validate().unwrap_or_else(|e| e.exit())`, which prints the
    /// message and exits with code 2.
    ///
    /// # Errors
    ///
    /// Returns a [`clap::Error`] of kind [`ErrorKind::ValueValidation`] whose
    /// message names the flags and their values.
    pub fn validate(&self) -> Result<(), clap::Error> {
        if self.memory_warning_threshold >= self.memory_critical_threshold {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "--memory-warning-threshold ({}) must be below --memory-critical-threshold \
                     ({})\n",
                    self.memory_warning_threshold, self.memory_critical_threshold
                ),
            ));
        }
        if self.memory_hysteresis >= self.memory_warning_threshold {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "--memory-hysteresis ({}) must be below --memory-warning-threshold ({})\n",
                    self.memory_hysteresis, self.memory_warning_threshold
                ),
            ));
        }
        Ok(())
    }

    /// Parses the process arguments into `C` and validates its memory flags,
    /// exiting with code 2 and a usage message on any error.
    ///
    /// `memory` picks the flattened [`MemoryArgs`] out of `C`.
    pub fn parse_validated<C: Parser>(memory: impl Fn(&C) -> &MemoryArgs) -> C {
        Self::try_parse_validated_from(std::env::args_os(), memory).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first) into `C` and validates its
    /// memory flags.
    ///
    /// # Errors
    ///
    /// Returns the [`clap::Error`] of parsing, or of
    /// [`MemoryArgs::validate`] formatted with `C`'s usage.
    pub fn try_parse_validated_from<C, I, T>(
        args: I,
        memory: impl Fn(&C) -> &MemoryArgs,
    ) -> Result<C, clap::Error>
    where
        C: Parser,
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = C::try_parse_from(args)?;
        memory(&cli)
            .validate()
            .map_err(|e| e.format(&mut C::command()))?;
        Ok(cli)
    }

    /// The time between two readings of the monitor.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.memory_tick_ms)
    }

    /// The least time a level is held before usage may lower it.
    pub fn min_dwell(&self) -> Duration {
        Duration::from_millis(self.memory_min_dwell_ms)
    }
}

/// Why a flag value is refused, for the parsers that have no error type of
/// their own; clap prefixes it with the flag and the value.
#[derive(Debug)]
struct FlagValueError(String);

impl std::fmt::Display for FlagValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagValueError {}

/// Parses the hysteresis, a fraction of the limit in [0, 1).
///
/// 0 is allowed (no hysteresis; the minimum dwell still damps flapping); 1 is
/// refused, since a level could then never be left.
fn parse_hysteresis(input: &str) -> Result<f64, FlagValueError> {
    if input.trim().parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    match parse_fraction(input) {
        Ok(value) if value < 1.0 => Ok(value),
        Ok(_) => Err(FlagValueError(format!(
            "hysteresis \"{input}\" is out of range: expected at least 0 and below 1, such as 0.05"
        ))),
        Err(error) => Err(FlagValueError(format!("{error} (or 0 for no hysteresis)"))),
    }
}

/// Parses a metric name prefix: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with
/// the `__` that Prometheus reserves.
fn parse_metrics_prefix(input: &str) -> Result<String, FlagValueError> {
    let mut chars = input.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok || input.starts_with("__") {
        return Err(FlagValueError(format!(
            "invalid metrics prefix \"{input}\": expected a Prometheus metric name prefix \
             matching [a-zA-Z_][a-zA-Z0-9_]* and not starting with __, such as streamline"
        )));
    }
    Ok(input.to_owned())
}

/// Drops the environment binding of a `MEMPRESSURE_…` flag whose variable is
/// set but empty, so that an empty variable counts as unset.
///
/// clap reads a variable when the argument is built and hands an empty value
/// to the value parser like any other, so `MEMPRESSURE_MEMORY_LIMIT=` would
/// otherwise be an error. The help text then says that the variable is empty
/// and ignored, so `--help` still names it.
fn ignore_empty_env(arg: Arg) -> Arg {
    let Some(name) = arg
        .get_env()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
    else {
        return arg;
    };
    let is_empty = std::env::var_os(&name).is_some_and(|value| value.is_empty());
    if !name.starts_with(ENV_PREFIX) || !is_empty {
        return arg;
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.env(None)
        .help(format!("{help} [env: {name} (empty: ignored)]"))
}
