//! `cargo xtask bench --streamlet`: streamlet's throughput with the tracking
//! allocator against the same server on bare jemalloc.
//!
//! Two release binaries are built and copied aside: `streamlet-tracking`
//! (the default build, `mempressure::Allocator::jemalloc()`) and
//! `streamlet-bare` (feature `bare-jemalloc`, plain
//! `tikv_jemallocator::Jemalloc`). Everything else, the memory monitor
//! included, is the same code. Each round starts each binary once on a free
//! loopback port with a fresh data directory, runs `redis-benchmark` XADD
//! and PING against it and stops it by PID; the binary that goes first
//! alternates from round to round, so drift of a shared machine lands on
//! both alike. The ratio tracking/bare is taken round by round and its
//! median reported.
//!
//! Results go to standard output as markdown and to
//! `target/bench/streamlet.json`.
//!
//! `--callgrind` counts the servers' instructions per request instead: see
//! [`callgrind`].

mod callgrind;
mod report;
mod server;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use report::StreamletReport;
use server::{free_port, Server};

/// The two builds, in the order of even rounds.
pub(super) const BINARIES: [&str; 2] = ["streamlet-tracking", "streamlet-bare"];
/// The three figures `redis-benchmark` prints per server: the XADD run,
/// then the two tests of `-t ping`.
pub(super) const WORKLOADS: [&str; 3] = ["xadd", "ping_inline", "ping_mbulk"];
/// The two `redis-benchmark` invocations, whose server CPU time is taken
/// apart: the XADD run, and both PING tests together.
pub(super) const CPU_WORKLOADS: [&str; 2] = ["xadd", "ping"];
/// Concurrent client connections of every run, as `redis-benchmark -c`.
pub(super) const CLIENTS: usize = 50;
/// Requests each client keeps in flight, as `redis-benchmark -P`.
pub(super) const PIPELINE: usize = 16;
/// Longest wait for a server to answer PING after it starts.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

const USAGE: &str = "usage: cargo xtask bench --streamlet [--quick] [--rounds N]
                         [--requests N] [--ping-requests N]
       cargo xtask bench --streamlet --callgrind [--quick]

  --quick            3 rounds, 50 000 XADDs and 250 000 PINGs per server
  --rounds N         interleaved rounds (default 8, quick 3)
  --requests N       XADD requests per server and round (default 200 000)
  --ping-requests N  requests per PING test (default 1 000 000)
  --callgrind        instructions per request under valgrind's callgrind
                     instead of timing (see --callgrind --help)

Needs redis-benchmark (Debian: redis-tools) on the PATH.";

/// What one invocation measures.
pub(super) struct Plan {
    pub(super) quick: bool,
    pub(super) rounds: usize,
    pub(super) xadd_requests: u64,
    pub(super) ping_requests: u64,
    /// The arguments as given, for the report's command line.
    pub(super) args: Vec<String>,
}

impl Plan {
    fn parse(rest: &[String]) -> Result<Plan> {
        let mut plan = Plan {
            quick: false,
            rounds: 0,
            xadd_requests: 0,
            ping_requests: 0,
            args: rest.to_vec(),
        };
        let mut args = rest.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match flag.as_str() {
                "--quick" => plan.quick = true,
                "--rounds" => plan.rounds = bounded("--rounds", value()?, 1, 100)? as usize,
                "--requests" => {
                    plan.xadd_requests = bounded("--requests", value()?, 1_000, 100_000_000)?
                }
                "--ping-requests" => {
                    plan.ping_requests = bounded("--ping-requests", value()?, 1_000, 100_000_000)?
                }
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        let (rounds, xadd, ping) = if plan.quick {
            (3, 50_000, 250_000)
        } else {
            (8, 200_000, 1_000_000)
        };
        if plan.rounds == 0 {
            plan.rounds = rounds;
        }
        if plan.xadd_requests == 0 {
            plan.xadd_requests = xadd;
        }
        if plan.ping_requests == 0 {
            plan.ping_requests = ping;
        }
        Ok(plan)
    }
}

/// Parses `text` as an integer in `low..=high` for `flag`.
fn bounded(flag: &str, text: &str, low: u64, high: u64) -> Result<u64> {
    match text.parse::<u64>() {
        Ok(n) if (low..=high).contains(&n) => Ok(n),
        _ => bail!("{flag} {text:?}: expected an integer in {low}..={high}"),
    }
}

/// A figure of every round: (workload, binary) -> one value per round.
pub(super) type Rates = BTreeMap<(&'static str, &'static str), Vec<f64>>;

/// What one server measured in one round.
struct Measured {
    /// Requests per second by workload of [`WORKLOADS`].
    rates: Vec<(&'static str, f64)>,
    /// Server CPU nanoseconds per request by workload of
    /// [`CPU_WORKLOADS`], where `/proc` has the figures.
    cpu: Vec<(&'static str, f64)>,
}

/// Runs the streamlet throughput comparison as planned by `rest`.
pub(super) fn run(rest: &[String]) -> Result<()> {
    if let Some(at) = rest.iter().position(|arg| arg == "--callgrind") {
        let mut rest = rest.to_vec();
        rest.remove(at);
        return callgrind::run(&rest);
    }
    let plan = Plan::parse(rest)?;
    let started = Instant::now();
    require_redis_benchmark()?;
    let bench_dir = super::target_dir().join("bench");
    let binaries = build(&bench_dir)?;
    let version = redis_benchmark_version();

    let mut rates = Rates::new();
    let mut cpu = Rates::new();
    for round in 0..plan.rounds {
        eprintln!("xtask: streamlet round {}/{}", round + 1, plan.rounds);
        let mut order: Vec<usize> = vec![0, 1];
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let name = BINARIES[index];
            let measured = measure(&plan, &binaries[index], name, round, &bench_dir)?;
            for (workload, rps) in measured.rates {
                rates.entry((workload, name)).or_default().push(rps);
            }
            for (workload, ns) in measured.cpu {
                cpu.entry((workload, name)).or_default().push(ns);
            }
        }
    }

    let report = StreamletReport {
        plan: &plan,
        rates: &rates,
        cpu: &cpu,
        redis_benchmark: &version,
    };
    print!("{}", report.markdown(started.elapsed().as_secs()));
    let json_path = bench_dir.join("streamlet.json");
    fs::write(&json_path, report.json())
        .with_context(|| format!("could not write {}", json_path.display()))?;
    eprintln!("xtask: wrote {}", json_path.display());
    Ok(())
}

/// Fails with the package to install unless `redis-benchmark` runs.
fn require_redis_benchmark() -> Result<()> {
    if Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        bail!("redis-benchmark is not on the PATH (Debian: apt-get install redis-tools)");
    }
    Ok(())
}

/// Builds both binaries and copies them into `bench_dir`, in the order of
/// [`BINARIES`].
fn build(bench_dir: &Path) -> Result<[PathBuf; 2]> {
    fs::create_dir_all(bench_dir)
        .with_context(|| format!("could not create {}", bench_dir.display()))?;
    let built = super::target_dir().join("release").join("streamlet");
    let features: [&[&str]; 2] = [&[], &["--features", "bare-jemalloc"]];
    let mut paths = [PathBuf::new(), PathBuf::new()];
    for (index, extra) in features.iter().enumerate() {
        let mut args = vec!["build", "--release", "-p", "streamlet"];
        args.extend_from_slice(extra);
        crate::cargo(&args, &[])?;
        let copy = bench_dir.join(BINARIES[index]);
        fs::copy(&built, &copy)
            .with_context(|| format!("could not copy {} to {}", built.display(), copy.display()))?;
        paths[index] = copy;
    }
    Ok(paths)
}

/// Starts `binary`, runs the XADD and PING benchmarks against it, stops it,
/// and returns the requests per second and server CPU time of each
/// workload.
fn measure(
    plan: &Plan,
    binary: &Path,
    name: &str,
    round: usize,
    bench_dir: &Path,
) -> Result<Measured> {
    // A fresh data directory and port per server.
    let data_dir =
        std::env::temp_dir().join(format!("streamlet-bench-{}-{round}-{name}", process::id()));
    if data_dir.exists() {
        fs::remove_dir_all(&data_dir)
            .with_context(|| format!("could not clear {}", data_dir.display()))?;
    }
    fs::create_dir_all(&data_dir)
        .with_context(|| format!("could not create {}", data_dir.display()))?;
    let addr = free_port()?;
    let log_path = bench_dir.join(format!("{name}.log"));
    let mut server = Server::start(Command::new(binary), addr, &data_dir, &log_path)?;
    server.wait_for_ping(addr, &log_path, STARTUP_WAIT)?;

    // The benchmarks, XADD first so PING meets a server that holds a stream.
    // Server CPU time is read from /proc around each invocation.
    let port = addr.port().to_string();
    let pid = server.child.id();
    let cpu_start = cpu_ns(pid);
    let xadd_args = ["XADD", "bench", "*", "f", "v"];
    let xadd = redis_benchmark(&port, plan.xadd_requests, CLIENTS, &xadd_args);
    let cpu_xadd = cpu_ns(pid);
    let ping = xadd.and_then(|xadd| {
        let ping = redis_benchmark(&port, plan.ping_requests, CLIENTS, &["-t", "ping"])?;
        Ok((xadd, ping))
    });
    let cpu_ping = cpu_ns(pid);
    let exit = server.stop();
    // Leaving the directory behind is harmless; say so and go on.
    if let Err(err) = fs::remove_dir_all(&data_dir) {
        eprintln!("xtask: could not remove {}: {err}", data_dir.display());
    }
    let (xadd, ping) = ping.with_context(|| format!("{name}, round {}", round + 1))?;
    if !exit.is_some_and(|s| s.success()) {
        bail!(
            "{name} did not exit cleanly after SIGTERM ({exit:?}); log {}",
            log_path.display()
        );
    }
    let rate = |lines: &BTreeMap<String, f64>, test: &str| {
        lines
            .get(test)
            .copied()
            .with_context(|| format!("redis-benchmark printed no {test} figure: {lines:?}"))
    };
    let per_request = |from: Option<u64>, to: Option<u64>, requests: u64| {
        Some(to?.checked_sub(from?)? as f64 / requests as f64)
    };
    let cpu = [
        ("xadd", per_request(cpu_start, cpu_xadd, plan.xadd_requests)),
        (
            "ping",
            per_request(cpu_xadd, cpu_ping, 2 * plan.ping_requests),
        ),
    ];
    Ok(Measured {
        rates: vec![
            ("xadd", rate(&xadd, "XADD")?),
            ("ping_inline", rate(&ping, "PING_INLINE")?),
            ("ping_mbulk", rate(&ping, "PING_MBULK")?),
        ],
        cpu: cpu
            .into_iter()
            .filter_map(|(workload, ns)| Some((workload, ns?)))
            .collect(),
    })
}

/// Nanoseconds the process `pid` has run on a CPU so far: the sum over its
/// threads of the first field of `/proc/PID/task/TID/schedstat`, which the
/// scheduler keeps in nanoseconds (`/proc/PID/stat` has only clock ticks).
/// `None` where `/proc` lacks it. Threads that already exited are not
/// counted; streamlet's runtime and monitor threads live as long as it.
fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total_ns = 0u64;
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("schedstat")).ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        total_ns = total_ns.saturating_add(ns);
    }
    Some(total_ns)
}

/// Runs `redis-benchmark -q` with `clients` connections against
/// 127.0.0.1:`port` and returns its requests per second by test name (`XADD`
/// for a custom XADD command).
fn redis_benchmark(
    port: &str,
    requests: u64,
    clients: usize,
    test: &[&str],
) -> Result<BTreeMap<String, f64>> {
    let clients = clients.to_string();
    let pipeline = PIPELINE.to_string();
    let requests = requests.to_string();
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", "127.0.0.1", "-p", port, "-q", "-n", &requests]);
    command.args(["-c", &clients, "-P", &pipeline]).args(test);
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let rates = parse_rates(&stdout);
    if rates.is_empty() {
        bail!("{command:?} printed no requests per second: {stdout:?}");
    }
    Ok(rates)
}

/// The `NAME: R requests per second` lines of `redis-benchmark -q` output,
/// whose progress lines are separated by carriage returns. A custom
/// command is named by its first word.
fn parse_rates(output: &str) -> BTreeMap<String, f64> {
    output
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": ")?;
            let rps = rest
                .strip_suffix(" requests per second")
                .or_else(|| rest.split_once(" requests per second").map(|(rps, _)| rps))?;
            let name = name.split_whitespace().next()?.to_owned();
            Some((name, rps.trim().parse().ok()?))
        })
        .collect()
}

/// `redis-benchmark --version`, or `unknown`.
fn redis_benchmark_version() -> String {
    Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_past_progress_lines() {
        // Progress lines end in \r; only the final line of each test counts.
        let output = "XADD bench * f v: rps=0.0 (overall: 0.0) avg_msec=-nan\r   \r\
                      XADD bench * f v: 324675.31 requests per second, p50=2.343 msec\n";
        let rates = parse_rates(output);
        assert_eq!(rates.len(), 1);
        assert_eq!(rates["XADD"], 324_675.31);
    }

    #[test]
    fn both_ping_tests_are_read() {
        let output = "PING_INLINE: 925925.88 requests per second, p50=0.471 msec\n \r\
                      PING_MBULK: 980392.19 requests per second, p50=0.423 msec\n";
        let rates = parse_rates(output);
        assert_eq!(rates["PING_INLINE"], 925_925.88);
        assert_eq!(rates["PING_MBULK"], 980_392.19);
    }

    #[test]
    fn quick_defaults_apply_unless_given() {
        let plan = Plan::parse(&["--quick".into(), "--rounds".into(), "5".into()]).unwrap();
        assert_eq!(
            (plan.rounds, plan.xadd_requests, plan.ping_requests),
            (5, 50_000, 250_000)
        );
    }

    #[test]
    fn out_of_range_counts_are_rejected() {
        let error = Plan::parse(&["--requests".into(), "10".into()])
            .err()
            .unwrap();
        assert!(error.to_string().contains("1000..=100000000"), "{error}");
    }
}
