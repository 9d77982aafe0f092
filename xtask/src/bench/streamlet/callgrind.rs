//! `cargo xtask bench --streamlet --callgrind`: the servers' instructions per
//! request under valgrind's callgrind, tracking against bare jemalloc.
//!
//! Timing on a shared machine cannot resolve a difference of 1 %; counting
//! instructions can, since the count hardly depends on what else runs. Each
//! of the two binaries of the timed comparison is started under callgrind
//! once per workload and request count, `redis-benchmark` sends it N
//! requests, and the server is stopped by SIGTERM, at which valgrind prints
//! the instructions it collected over the whole process. Two counts N1 < N2
//! are run so that start-up and shutdown cancel:
//! `(Ir(N2) - Ir(N1)) / (N2 - N1)` instructions per request.
//!
//! The server's runtime gets a fixed number of worker threads (two unless
//! `--workers` says otherwise), so the count does not depend on how many
//! CPUs the machine has; with two, tasks still move between workers and
//! frees on another thread than the allocation's are counted too.
//!
//! The monitor ticks once a minute (`--memory-tick-ms 60000`), so its
//! periodic readings, whose number depends on wall time, stay out of a run
//! that takes less than that. `redis-benchmark` sends requests in batches
//! of the pipeline depth, so N1 and N2 are multiples of it and exactly N
//! requests reach the server.
//!
//! Results go to standard output as markdown and to
//! `target/bench/streamlet-callgrind.json`; callgrind's profile, valgrind's
//! log and the server's log of every run are kept in
//! `target/bench/streamlet-callgrind/` for `callgrind_annotate`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::server::{free_port, Server};
use super::{bounded, build, redis_benchmark, redis_benchmark_version, require_redis_benchmark};
use super::{BINARIES, PIPELINE};
use crate::bench::report::{json_preamble, machine, quote, today};

/// The workloads by name, each with its `redis-benchmark` command. PING is
/// sent as a command of its own, in the multi-bulk form, one per request.
const WORKLOADS: [(&str, &[&str]); 2] = [
    ("xadd", &["XADD", "bench", "*", "f", "v"]),
    ("ping", &["PING"]),
];
/// Client connections of every run, as `redis-benchmark -c`; few, since
/// valgrind runs the server's threads one at a time anyway.
const CLIENTS: usize = 10;
/// Worker threads of the server's runtime unless `--workers` is given.
const WORKERS: u64 = 2;
/// Requests N1 and N2 per run.
const REQUESTS: (u64, u64) = (20_000, 100_000);
/// Requests N1 and N2 with `--quick`.
const QUICK_REQUESTS: (u64, u64) = (4_000, 20_000);
/// The monitor's tick: the longest the flag allows, so that no periodic
/// reading lands in a run shorter than it.
const TICK_MS: u64 = 60_000;
/// Longest wait for a server under valgrind to answer PING.
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for a server to exit after SIGTERM; callgrind writes its
/// profile on the way out.
const STOP_WAIT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: cargo xtask bench --streamlet --callgrind [--quick] [--workers N]

Counts streamlet's instructions per request under valgrind's callgrind,
with the tracking allocator and on bare jemalloc, for XADD and PING:
(Ir(N2) - Ir(N1)) / (N2 - N1), one server run per count.

  --quick       N1 = 4 000, N2 = 20 000 requests (default 20 000, 100 000)
  --workers N   worker threads of the server's runtime, 1 to 64 (default 2)

Needs valgrind (Debian: valgrind) and redis-benchmark (Debian: redis-tools)
on the PATH.";

/// The instruction counts of one workload on one binary.
struct Row {
    workload: &'static str,
    binary: &'static str,
    ir_low: u64,
    ir_high: u64,
    per_request: f64,
}

/// Runs the callgrind comparison as planned by `rest`.
pub(super) fn run(rest: &[String]) -> Result<()> {
    let mut quick = false;
    let mut workers = WORKERS;
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--workers" => {
                let value = args
                    .next()
                    .with_context(|| format!("--workers needs a value\n\n{USAGE}"))?;
                workers = bounded("--workers", value, 1, 64)?;
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?} for --callgrind\n\n{USAGE}"),
        }
    }
    let (n_low, n_high) = if quick { QUICK_REQUESTS } else { REQUESTS };
    let started = Instant::now();
    let valgrind = valgrind_version()?;
    require_redis_benchmark()?;
    let bench_dir = crate::bench::target_dir().join("bench");
    let binaries = build(&bench_dir)?;
    let runs_dir = bench_dir.join("streamlet-callgrind");
    fs::create_dir_all(&runs_dir)
        .with_context(|| format!("could not create {}", runs_dir.display()))?;

    let mut rows = Vec::new();
    for (workload, command) in WORKLOADS {
        for (binary, path) in BINARIES.into_iter().zip(&binaries) {
            let count = |requests| {
                eprintln!("xtask: callgrind {binary} {workload} {requests} requests");
                let run = Run {
                    binary: path,
                    name: binary,
                    workload,
                    command,
                    requests,
                    workers,
                };
                run.collected(&runs_dir)
            };
            let (ir_low, ir_high) = (count(n_low)?, count(n_high)?);
            rows.push(Row {
                workload,
                binary,
                ir_low,
                ir_high,
                per_request: per_request(ir_low, ir_high, n_low, n_high)
                    .with_context(|| format!("{binary}, {workload}"))?,
            });
        }
    }

    let report = Report {
        rows: &rows,
        requests: (n_low, n_high),
        workers,
        args: rest,
        valgrind: &valgrind,
        redis_benchmark: &redis_benchmark_version(),
    };
    print!("{}", report.markdown(started.elapsed().as_secs()));
    let json_path = bench_dir.join("streamlet-callgrind.json");
    fs::write(&json_path, report.json())
        .with_context(|| format!("could not write {}", json_path.display()))?;
    eprintln!("xtask: wrote {}", json_path.display());
    Ok(())
}

/// `valgrind --version`, or an error naming the package to install.
fn valgrind_version() -> Result<String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        }
        _ => bail!("valgrind is not on the PATH (Debian: apt-get install valgrind)"),
    }
}

/// One server run under callgrind.
struct Run<'a> {
    binary: &'a Path,
    name: &'static str,
    workload: &'static str,
    command: &'a [&'a str],
    requests: u64,
    workers: u64,
}

impl Run<'_> {
    /// Starts the server under callgrind, sends it the requests, stops it
    /// and returns the instructions valgrind collected; its files go to
    /// `runs_dir`.
    fn collected(&self, runs_dir: &Path) -> Result<u64> {
        let stem = format!("{}-{}-{}", self.name, self.workload, self.requests);
        let profile = runs_dir.join(format!("{stem}.callgrind.out"));
        let valgrind_log = runs_dir.join(format!("{stem}.valgrind.log"));
        let server_log = runs_dir.join(format!("{stem}.log"));
        // Declared before the server, so it is removed after the server stops.
        let data_dir = DataDir::create(&stem)?;
        let addr = free_port()?;

        let mut command = Command::new("valgrind");
        command.arg("--tool=callgrind");
        command.arg(flag_with_path("--callgrind-out-file=", &profile));
        command.arg(flag_with_path("--log-file=", &valgrind_log));
        command.arg(self.binary);
        command.args(["--memory-tick-ms", &TICK_MS.to_string()]);
        command.env("TOKIO_WORKER_THREADS", self.workers.to_string());
        let started = Instant::now();
        let mut server = Server::start(command, addr, &data_dir.0, &server_log)?;
        server.stop_wait = STOP_WAIT;
        server.wait_for_ping(addr, &server_log, STARTUP_WAIT)?;

        let port = addr.port().to_string();
        redis_benchmark(&port, self.requests, CLIENTS, self.command)
            .with_context(|| format!("{}, {} requests", self.name, self.requests))?;
        let exit = server.stop();
        if !exit.is_some_and(|s| s.success()) {
            bail!(
                "{} under valgrind did not exit cleanly after SIGTERM ({exit:?}); logs {} and {}",
                self.name,
                server_log.display(),
                valgrind_log.display()
            );
        }
        if started.elapsed() >= Duration::from_millis(TICK_MS) {
            eprintln!(
                "xtask: {stem} ran {} s, past the monitor's tick: its count includes a tick",
                started.elapsed().as_secs()
            );
        }
        let text = fs::read_to_string(&valgrind_log)
            .with_context(|| format!("could not read {}", valgrind_log.display()))?;
        parse_collected(&text).with_context(|| format!("in {}", valgrind_log.display()))
    }
}

/// `flag` followed by `path`, as one argument.
fn flag_with_path(flag: &str, path: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from(flag);
    arg.push(path);
    arg
}

/// A fresh, empty data directory, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn create(stem: &str) -> Result<DataDir> {
        let path =
            std::env::temp_dir().join(format!("streamlet-callgrind-{}-{stem}", process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("could not clear {}", path.display()))?;
        }
        fs::create_dir_all(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(DataDir(path))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // Leaving the directory behind is harmless; say so and go on.
        if let Err(err) = fs::remove_dir_all(&self.0) {
            eprintln!("xtask: could not remove {}: {err}", self.0.display());
        }
    }
}

/// The instruction count of valgrind's `==PID== Collected : N` line.
fn parse_collected(valgrind_log: &str) -> Result<u64> {
    let Some(line) = valgrind_log.lines().find(|l| l.contains("Collected :")) else {
        bail!("valgrind printed no \"Collected :\" line");
    };
    let count = line
        .split_once("Collected :")
        .map_or("", |(_, count)| count.trim());
    match count.parse() {
        Ok(count) => Ok(count),
        Err(_) => bail!("valgrind's line {line:?} holds no instruction count"),
    }
}

/// Instructions per request between a run of `n_low` requests that
/// collected `ir_low` instructions and one of `n_high` that collected
/// `ir_high`.
fn per_request(ir_low: u64, ir_high: u64, n_low: u64, n_high: u64) -> Result<f64> {
    if n_high <= n_low {
        bail!("request counts {n_low} and {n_high}: the second must be larger");
    }
    let Some(extra) = ir_high.checked_sub(ir_low) else {
        bail!("{n_high} requests took fewer instructions ({ir_high}) than {n_low} ({ir_low})");
    };
    Ok(extra as f64 / (n_high - n_low) as f64)
}

/// Everything one callgrind comparison measured.
struct Report<'a> {
    rows: &'a [Row],
    requests: (u64, u64),
    workers: u64,
    args: &'a [String],
    valgrind: &'a str,
    redis_benchmark: &'a str,
}

impl Report<'_> {
    /// Instructions per request of tracking over bare for `workload`.
    fn ratio(&self, workload: &str) -> Option<f64> {
        let of = |binary: &str| {
            self.rows
                .iter()
                .find(|r| r.workload == workload && r.binary == binary)
                .map(|r| r.per_request)
        };
        Some(of(BINARIES[0])? / of(BINARIES[1])?)
    }

    /// The command line that reproduces this report.
    fn command(&self) -> String {
        let mut command = String::from("cargo xtask bench --streamlet --callgrind");
        for arg in self.args {
            command.push(' ');
            command.push_str(arg);
        }
        command
    }

    /// The markdown report.
    fn markdown(&self, elapsed_secs: u64) -> String {
        let (nproc, cpu) = machine();
        let (n_low, n_high) = self.requests;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## streamlet instructions per request under callgrind, tracking against bare \
             jemalloc, {}\n",
            today()
        );
        let _ = writeln!(out, "- machine: {nproc} CPUs, {cpu}");
        let _ = writeln!(out, "- command: `{}`", self.command());
        let _ = writeln!(
            out,
            "- one server run per binary, workload and count, N1 = {n_low} and N2 = \
             {n_high} requests, {} runtime workers, `redis-benchmark -c {CLIENTS} -P \
             {PIPELINE}` ({}), {}; per request: (Ir(N2) - Ir(N1)) / (N2 - N1); \
             {elapsed_secs} s\n",
            self.workers, self.redis_benchmark, self.valgrind
        );
        let _ = writeln!(
            out,
            "| workload | binary | Ir at N1 | Ir at N2 | instructions per request | \
             tracking/bare |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for row in self.rows {
            let ratio = match self.ratio(row.workload) {
                Some(ratio) if row.binary == BINARIES[0] => format!("{ratio:.4}"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {ratio} |",
                row.workload, row.binary, row.ir_low, row.ir_high, row.per_request
            );
        }
        out
    }

    /// `target/bench/streamlet-callgrind.json`: one object per workload x
    /// binary and one per workload's ratio, plus the run's context.
    fn json(&self) -> String {
        let (n_low, n_high) = self.requests;
        let mut out = json_preamble(&self.command());
        let _ = writeln!(out, "  \"valgrind\": {},", quote(self.valgrind));
        let _ = writeln!(
            out,
            "  \"redis_benchmark\": {},",
            quote(self.redis_benchmark)
        );
        let _ = writeln!(
            out,
            "  \"requests_low\": {n_low}, \"requests_high\": {n_high}, \"workers\": {},\n  \
             \"clients\": {CLIENTS}, \"pipeline\": {PIPELINE},\n  \"results\": [",
            self.workers
        );
        let mut objects = Vec::new();
        for row in self.rows {
            objects.push(format!(
                "    {{\"binary\": {}, \"workload\": {}, \"ir_low\": {}, \"ir_high\": {}, \
                 \"instructions_per_request\": {:.2}}}",
                quote(row.binary),
                quote(row.workload),
                row.ir_low,
                row.ir_high,
                row.per_request
            ));
        }
        for (workload, _) in WORKLOADS {
            if let Some(ratio) = self.ratio(workload) {
                objects.push(format!(
                    "    {{\"workload\": {}, \"ratio\": \"tracking/bare\", \
                     \"instructions_ratio\": {ratio:.5}}}",
                    quote(workload)
                ));
            }
        }
        out.push_str(&objects.join(",\n"));
        out.push_str("\n  ]\n}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_count_is_read_from_valgrind_log() {
        let log = "==15892== Events    : Ir\n\
                   ==15892== Collected : 1077458188\n\
                   ==15892== \n\
                   ==15892== I   refs:      1,077,458,188\n";
        assert_eq!(parse_collected(log).unwrap(), 1_077_458_188);
    }

    #[test]
    fn log_without_collected_line_is_an_error() {
        // A server killed by SIGKILL leaves a log without the totals.
        let log = "==15892== Callgrind, a call-graph generating cache profiler\n\
                   ==15892== For interactive control, run 'callgrind_control -h'.\n";
        let error = parse_collected(log).unwrap_err();
        assert!(
            error.to_string().contains("no \"Collected :\" line"),
            "{error}"
        );
    }

    #[test]
    fn malformed_collected_line_is_an_error() {
        for log in [
            "==1== Collected : \n",
            "==1== Collected : 1,077,458,188\n",
            "==1== Collected : twelve\n",
        ] {
            let error = parse_collected(log).unwrap_err();
            assert!(
                error.to_string().contains("holds no instruction count"),
                "{log:?}: {error}"
            );
        }
    }

    #[test]
    fn per_request_count_cancels_start_up() {
        // 1 000 000 instructions of start-up plus 10 000 per request.
        let ir = |n: u64| 1_000_000 + 10_000 * n;
        let per = per_request(ir(20_000), ir(100_000), 20_000, 100_000).unwrap();
        assert_eq!(per, 10_000.0);
        assert_eq!(per_request(500, 1_250, 10, 20).unwrap(), 75.0);
    }

    #[test]
    fn per_request_rejects_counts_in_the_wrong_order() {
        assert!(per_request(100, 200, 20, 20).is_err());
        assert!(per_request(100, 200, 30, 20).is_err());
        let error = per_request(300, 200, 10, 20).unwrap_err();
        assert!(error.to_string().contains("fewer instructions"), "{error}");
    }

    #[test]
    fn request_counts_are_whole_pipeline_batches() {
        // redis-benchmark rounds N up to whole batches of -P requests.
        for n in [REQUESTS.0, REQUESTS.1, QUICK_REQUESTS.0, QUICK_REQUESTS.1] {
            assert_eq!(n % PIPELINE as u64, 0, "{n}");
        }
        assert!(REQUESTS.0 < REQUESTS.1 && QUICK_REQUESTS.0 < QUICK_REQUESTS.1);
    }

    #[test]
    fn other_arguments_are_rejected() {
        let error = run(&["--rounds".into(), "3".into()]).unwrap_err();
        assert!(error.to_string().contains("unknown argument"), "{error}");
        let error = run(&["--workers".into(), "0".into()]).unwrap_err();
        assert!(error.to_string().contains("1..=64"), "{error}");
    }
}
