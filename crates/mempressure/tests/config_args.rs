//! Parsing of the memory flags by a clap application that flattens them.
//!
//! No test here sets an environment variable (see `config_env.rs`), but the
//! process may inherit `MEMPRESSURE_*` ones, so each parse clears them from
//! the command first.
#![cfg(feature = "clap")]

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};
use mempressure::args::MemoryArgs;

/// A host application: its own flag, then the memory flags.
#[derive(Debug, Parser)]
#[command(name = "host", about = "A host application")]
struct Cli {
    /// The host's own flag
    #[arg(long, default_value = "x")]
    name: String,

    #[command(flatten)]
    memory: MemoryArgs,
}

/// Parses `args` after the program name, ignoring inherited variables.
fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    let command = Cli::command().mut_args(|arg| arg.env(None));
    let argv = std::iter::once("host").chain(args.iter().copied());
    let matches = command.try_get_matches_from(argv)?;
    Cli::from_arg_matches(&matches)
}

/// Parses `args`, expecting a parse error, and returns its rendered text.
fn parse_error(args: &[&str]) -> clap::Error {
    match parse(args) {
        Ok(cli) => panic!("{args:?} parsed as {cli:?}, expected an error"),
        Err(error) => error,
    }
}

/// Parses and validates `args`, expecting a validation error.
fn validate_error(args: &[&str]) -> clap::Error {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?} did not parse: {e}"));
    match cli.memory.validate() {
        Ok(()) => panic!("{args:?} validated, expected an error"),
        Err(error) => error,
    }
}

#[test]
fn defaults_apply_when_no_flag_is_given() {
    // Every flag has its documented default; the limit has none.
    let cli = parse(&[]).unwrap();
    assert_eq!(
        cli.memory,
        MemoryArgs {
            memory_limit: None,
            memory_warning_threshold: 0.8,
            memory_critical_threshold: 0.9,
            memory_tick_ms: 100,
            memory_hysteresis: 0.05,
            memory_min_dwell_ms: 1000,
            metrics_prefix: "streamline".to_owned(),
        }
    );
    assert_eq!(cli.name, "x");
    cli.memory.validate().unwrap();
}

#[test]
fn every_flag_is_parsed() {
    let cli = parse(&[
        "--memory-limit=1.5GiB",
        "--memory-warning-threshold",
        "0.7",
        "--memory-critical-threshold=0.95",
        "--memory-tick-ms=250",
        "--memory-hysteresis=0.1",
        "--memory-min-dwell-ms=0",
        "--metrics-prefix=my_app",
    ])
    .unwrap();
    assert_eq!(cli.memory.memory_limit, Some(1_610_612_736));
    assert_eq!(cli.memory.memory_warning_threshold, 0.7);
    assert_eq!(cli.memory.memory_critical_threshold, 0.95);
    assert_eq!(cli.memory.memory_tick_ms, 250);
    assert_eq!(cli.memory.tick(), std::time::Duration::from_millis(250));
    assert_eq!(cli.memory.memory_hysteresis, 0.1);
    assert_eq!(cli.memory.min_dwell(), std::time::Duration::ZERO);
    assert_eq!(cli.memory.metrics_prefix, "my_app");
    cli.memory.validate().unwrap();
}

#[test]
fn the_seed_example_parses() {
    // The flags exactly as the original request writes them.
    let cli = parse(&[
        "--memory-limit=1073741824",
        "--memory-warning-threshold=0.8",
        "--memory-critical-threshold=0.9",
    ])
    .unwrap();
    assert_eq!(cli.memory.memory_limit, Some(1 << 30));
}

#[test]
fn hysteresis_of_zero_is_allowed() {
    let cli = parse(&["--memory-hysteresis=0"]).unwrap();
    assert_eq!(cli.memory.memory_hysteresis, 0.0);
    cli.memory.validate().unwrap();
}

#[test]
fn bad_values_are_refused_with_flag_value_and_rule() {
    let cases: &[(&str, &str)] = &[
        ("--memory-limit=0", "memory size \"0\" is zero"),
        ("--memory-limit=-1", "memory size \"-1\" is negative"),
        (
            "--memory-limit=1.5",
            "memory size \"1.5\" is not a whole number of bytes",
        ),
        ("--memory-limit=0.3B", "is not a whole number of bytes"),
        ("--memory-limit=5XB", "unknown unit \"XB\""),
        ("--memory-limit=abc", "invalid memory size \"abc\""),
        ("--memory-limit=99999999999999999999", "is too large"),
        ("--memory-limit=", "memory size is empty"),
        (
            "--memory-warning-threshold=0",
            "fraction \"0\" is out of range",
        ),
        (
            "--memory-warning-threshold=1.5",
            "fraction \"1.5\" is out of range",
        ),
        (
            "--memory-warning-threshold=NaN",
            "\"NaN\" is not a finite number",
        ),
        (
            "--memory-critical-threshold=inf",
            "\"inf\" is not a finite number",
        ),
        (
            "--memory-critical-threshold=high",
            "invalid fraction \"high\"",
        ),
        (
            "--memory-critical-threshold=90%",
            "percentages are not accepted",
        ),
        ("--memory-tick-ms=0", "0 is not in 1..=60000"),
        ("--memory-tick-ms=60001", "60001 is not in 1..=60000"),
        ("--memory-tick-ms=fast", "invalid digit found in string"),
        ("--memory-hysteresis=1", "hysteresis \"1\" is out of range"),
        ("--memory-hysteresis=-0.1", "(or 0 for no hysteresis)"),
        (
            "--memory-min-dwell-ms=3600001",
            "3600001 is not in 0..=3600000",
        ),
        ("--metrics-prefix=1abc", "invalid metrics prefix \"1abc\""),
        ("--metrics-prefix=my-app", "[a-zA-Z_][a-zA-Z0-9_]*"),
        ("--metrics-prefix=__x", "not starting with __"),
        ("--metrics-prefix=", "invalid metrics prefix \"\""),
    ];
    for (arg, expected) in cases {
        let error = parse_error(&[arg]);
        let text = error.to_string();
        let flag = arg.split('=').next().unwrap();
        assert_eq!(error.kind(), ErrorKind::ValueValidation, "{arg}: {text}");
        assert!(
            text.contains(expected),
            "{arg}: {text:?} lacks {expected:?}"
        );
        assert!(text.contains(flag), "{arg}: {text:?} lacks the flag");
        assert_eq!(error.exit_code(), 2, "{arg}");
    }
}

#[test]
fn cross_field_rules_are_checked_by_validate() {
    // Warning at or above critical, and hysteresis at or above warning.
    let cases: &[(&[&str], &str)] = &[
        (
            &["--memory-warning-threshold=0.9"],
            "--memory-warning-threshold (0.9) must be below --memory-critical-threshold (0.9)",
        ),
        (
            &[
                "--memory-warning-threshold=0.95",
                "--memory-critical-threshold=0.5",
            ],
            "--memory-warning-threshold (0.95) must be below --memory-critical-threshold (0.5)",
        ),
        (
            &["--memory-hysteresis=0.8"],
            "--memory-hysteresis (0.8) must be below --memory-warning-threshold (0.8)",
        ),
    ];
    for (args, expected) in cases {
        let error = validate_error(args);
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(error.to_string().contains(expected), "{args:?}: {error}");
        assert_eq!(error.exit_code(), 2);
    }
}

#[test]
fn parse_validated_reports_cross_field_errors_with_usage() {
    // The helper runs validate itself and adds the host's usage.
    let argv = ["host", "--memory-warning-threshold=0.95"];
    let result = MemoryArgs::try_parse_validated_from(argv, |cli: &Cli| &cli.memory);
    let error = result.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::ValueValidation);
    assert_eq!(error.exit_code(), 2);
    assert!(
        text.contains("must be below --memory-critical-threshold (0.9)"),
        "{text}"
    );
    assert!(text.contains("Usage: host"), "{text}");

    let cli = MemoryArgs::try_parse_validated_from(["host"], |cli: &Cli| &cli.memory).unwrap();
    assert_eq!(cli.memory.memory_warning_threshold, 0.8);
}

#[test]
fn help_names_unit_default_and_variable_of_every_flag() {
    let help = Cli::command().render_long_help().to_string();
    let flags = [
        ("--memory-limit <SIZE>", "MEMPRESSURE_MEMORY_LIMIT", None),
        (
            "--memory-warning-threshold <FRACTION>",
            "MEMPRESSURE_MEMORY_WARNING_THRESHOLD",
            Some("0.8"),
        ),
        (
            "--memory-critical-threshold <FRACTION>",
            "MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD",
            Some("0.9"),
        ),
        (
            "--memory-tick-ms <MS>",
            "MEMPRESSURE_MEMORY_TICK_MS",
            Some("100"),
        ),
        (
            "--memory-hysteresis <FRACTION>",
            "MEMPRESSURE_MEMORY_HYSTERESIS",
            Some("0.05"),
        ),
        (
            "--memory-min-dwell-ms <MS>",
            "MEMPRESSURE_MEMORY_MIN_DWELL_MS",
            Some("1000"),
        ),
        (
            "--metrics-prefix <PREFIX>",
            "MEMPRESSURE_METRICS_PREFIX",
            Some("streamline"),
        ),
    ];
    for (flag, variable, default) in flags {
        let start = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} missing from {help}"));
        let entry = &help[start..];
        let end = entry[flag.len()..]
            .find("  --")
            .map_or(entry.len(), |i| i + flag.len());
        let entry = &entry[..end];
        assert!(entry.contains(&format!("[env: {variable}")), "{entry}");
        if let Some(default) = default {
            assert!(entry.contains(&format!("[default: {default}]")), "{entry}");
        }
    }
    // The host keeps its own about text.
    assert!(help.contains("A host application"), "{help}");
}
