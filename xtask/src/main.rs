//! Project tasks: `cargo xtask test | demo | load | bench | soak`.
//!
//! `test` runs everything a contributor keeps green: the format check,
//! clippy with warnings denied, every test and the doc build.

use std::env;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};

mod bench;
mod demo;
mod load;
mod soak;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test    format check, clippy (warnings denied), all tests, doc build
  demo    build streamlet and drive it through every pressure level
          [--memory-limit 256MiB] [--duration-secs N] [--keep-data] [--server-bin PATH]
  load    load any RESP2 stream server on 127.0.0.1 and verify what it kept
          (cargo xtask load --help for the options)
  bench   allocator variants side by side, their accuracy, the monitor's
          latency and tick cost (see cargo xtask bench --help);
          --streamlet: the server's throughput, tracking against bare jemalloc
  soak    streamlet under 10x its budget, responses on and off, with a report
          and a plot in target/soak/ (cargo xtask soak --help for the options)
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "test" => test(&rest),
        "demo" => demo::run(&rest),
        "load" => load::run(&rest),
        "bench" => bench::run(&rest),
        "soak" => soak::run(&rest),
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `cargo` with `args` in the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    run_cargo(args, envs, Stdio::inherit())
}

/// The same with the child's standard output sent to standard error, for a
/// step whose own report would mix with the task's on standard output.
fn cargo_to_stderr(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    run_cargo(args, envs, io::stderr().into())
}

fn run_cargo(args: &[&str], envs: &[(&str, &str)], stdout: Stdio) -> Result<()> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(stdout)
        .current_dir(root())
        .status()
        .with_context(|| format!("could not run {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(rest: &[String]) -> Result<()> {
    if !rest.is_empty() {
        bail!("test takes no arguments, got {rest:?}");
    }
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cargo(&["test", "--workspace"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    Ok(())
}
