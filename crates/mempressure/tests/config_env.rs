//! Environment fallbacks of the memory flags.
//!
//! clap reads the variables when the command is built, so every test here
//! sets variables, builds and parses under one lock and removes them again:
//! tests in this file never see each other's variables.
#![cfg(feature = "clap")]

use std::sync::{Mutex, MutexGuard};

use clap::error::ErrorKind;
use clap::Parser;
use mempressure::args::MemoryArgs;

/// Every variable the memory flags read.
const VARIABLES: [&str; 7] = [
    "MEMPRESSURE_MEMORY_LIMIT",
    "MEMPRESSURE_MEMORY_WARNING_THRESHOLD",
    "MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD",
    "MEMPRESSURE_MEMORY_TICK_MS",
    "MEMPRESSURE_MEMORY_HYSTERESIS",
    "MEMPRESSURE_MEMORY_MIN_DWELL_MS",
    "MEMPRESSURE_METRICS_PREFIX",
];

/// Serialises the tests of this file around the process environment.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// A host application that flattens the memory flags.
#[derive(Debug, Parser)]
#[command(name = "host")]
struct Cli {
    #[command(flatten)]
    memory: MemoryArgs,
}

/// Holds the lock with exactly `vars` set, and clears them when dropped.
struct EnvGuard {
    _lock: MutexGuard<'static, ()>,
}

impl EnvGuard {
    fn set(vars: &[(&str, &str)]) -> Self {
        let lock = ENV_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for name in VARIABLES {
            std::env::remove_var(name);
        }
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        EnvGuard { _lock: lock }
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for name in VARIABLES {
            std::env::remove_var(name);
        }
    }
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("host").chain(args.iter().copied()))
}

#[test]
fn every_flag_falls_back_to_its_variable() {
    let _env = EnvGuard::set(&[
        ("MEMPRESSURE_MEMORY_LIMIT", "2GiB"),
        ("MEMPRESSURE_MEMORY_WARNING_THRESHOLD", "0.6"),
        ("MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD", "0.7"),
        ("MEMPRESSURE_MEMORY_TICK_MS", "50"),
        ("MEMPRESSURE_MEMORY_HYSTERESIS", "0.02"),
        ("MEMPRESSURE_MEMORY_MIN_DWELL_MS", "500"),
        ("MEMPRESSURE_METRICS_PREFIX", "env_app"),
    ]);
    let memory = parse(&[]).unwrap().memory;
    assert_eq!(
        memory,
        MemoryArgs {
            memory_limit: Some(2 << 30),
            memory_warning_threshold: 0.6,
            memory_critical_threshold: 0.7,
            memory_tick_ms: 50,
            memory_hysteresis: 0.02,
            memory_min_dwell_ms: 500,
            metrics_prefix: "env_app".to_owned(),
        }
    );
}

#[test]
fn a_flag_wins_over_its_variable() {
    let _env = EnvGuard::set(&[
        ("MEMPRESSURE_MEMORY_LIMIT", "2GiB"),
        ("MEMPRESSURE_MEMORY_TICK_MS", "50"),
        ("MEMPRESSURE_METRICS_PREFIX", "env_app"),
    ]);
    let memory = parse(&["--memory-limit=1GiB", "--metrics-prefix=flag_app"])
        .unwrap()
        .memory;
    assert_eq!(memory.memory_limit, Some(1 << 30));
    assert_eq!(memory.metrics_prefix, "flag_app");
    // A variable without a flag still applies beside them.
    assert_eq!(memory.memory_tick_ms, 50);
}

#[test]
fn empty_variables_count_as_unset() {
    // Without special handling clap hands "" to the value parsers, which
    // refuse it ("memory size is empty").
    let empty: Vec<(&str, &str)> = VARIABLES.iter().map(|name| (*name, "")).collect();
    let _env = EnvGuard::set(&empty);
    let memory = parse(&[]).unwrap().memory;
    assert_eq!(memory.memory_limit, None);
    assert_eq!(memory.memory_warning_threshold, 0.8);
    assert_eq!(memory.memory_tick_ms, 100);
    assert_eq!(memory.metrics_prefix, "streamline");

    // The help still names the ignored variable.
    let help = <Cli as clap::CommandFactory>::command()
        .render_help()
        .to_string();
    assert!(
        help.contains("[env: MEMPRESSURE_MEMORY_LIMIT (empty: ignored)]"),
        "{help}"
    );
}

#[test]
fn a_bad_variable_is_refused_like_a_bad_flag() {
    let _env = EnvGuard::set(&[("MEMPRESSURE_MEMORY_LIMIT", "0.3B")]);
    let error = parse(&[]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ValueValidation);
    assert_eq!(error.exit_code(), 2);
    let text = error.to_string();
    assert!(text.contains("--memory-limit"), "{text}");
    assert!(
        text.contains("memory size \"0.3B\" is not a whole number of bytes"),
        "{text}"
    );
}

#[test]
fn variables_take_part_in_cross_field_validation() {
    let _env = EnvGuard::set(&[("MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD", "0.75")]);
    let error = parse(&[]).unwrap().memory.validate().unwrap_err();
    assert!(
        error.to_string().contains(
            "--memory-warning-threshold (0.8) must be below --memory-critical-threshold (0.75)"
        ),
        "{error}"
    );
}
