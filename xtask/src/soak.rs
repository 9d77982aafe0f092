//! `cargo xtask soak`: streamlet under a load that would need ten times its
//! memory budget, once with the pressure responses on and once off.
//!
//! Each run starts streamlet with `--memory-limit B`, drives producers with
//! deep pipelines of large records, slow consumers, plain consumers and
//! connection floods, samples VmRSS and `INFO memory` at 20 Hz each,
//! SIGKILLs the server two thirds in, restarts it on the same data directory,
//! reads back what was acknowledged so far, loads it again for the last
//! third, stops, measures the way back to normal and reads everything back.
//! The run without responses is capped: the server is killed once its RSS
//! passes the cap. `target/soak/report.md` and `target/soak/memory.png`
//! show both runs side by side.

mod plot;
mod report;
mod sampler;
mod slow;

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::demo::{free_ports, log_tail, target_dir, wait_for_ping, ServerGuard};
use crate::load::record::Ledger;
use crate::load::{self, Generator, LoadConfig, Stats, Verification};
use sampler::{Sampler, Series};
use slow::SlowConsumers;

/// Set when a debug build of xtask has handed the soak to a release one.
const RELEASE_HANDOVER: &str = "XTASK_SOAK_RELEASE";

const USAGE: &str = "usage: cargo xtask soak [options]

  --memory-limit SIZE     streamlet's --memory-limit, B [64MiB]
  --duration-secs N       load time per run, split 2/3 before the kill, 1/3 after [60]
  --producers N           producer connections [48]
  --pipeline N            XADDs in flight per producer [128]
  --records N             records per producer per half, bounding the disk used [128]
  --value-bytes N         record value size [262144]
  --flooders N            threads opening connection after connection [16]
  --flood-hold N          connections each flooder keeps open once answered [1000]
  --slow-consumers N      consumers reading XRANGE replies slowly [4]
  --slow-count N          XRANGE COUNT of the slow consumers [64]
  --rss-cap-factor F      kill the run without responses past F x B RSS [4]
  --runs on,off           which runs, in order [on,off]
  --server-bin PATH       run PATH instead of building streamlet
  --keep-data             keep the data directories (gigabytes; removed by default)
";

/// Plain consumers (fast XRANGE paging).
const CONSUMERS: usize = 2;

/// Stream keys per half.
const STREAMS: usize = 8;

/// XRANGE COUNT of the plain consumers and the read-back.
const READ_COUNT: usize = 16;

/// Longest wait for normal after the load stops.
const RECOVERY_WAIT: Duration = Duration::from_secs(20);

/// Time between two checks of the server while the load runs.
const TICK: Duration = Duration::from_millis(50);

/// What `cargo xtask soak` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct SoakArgs {
    pub(crate) memory_limit: String,
    pub(crate) limit_bytes: u64,
    pub(crate) duration: Duration,
    pub(crate) producers: usize,
    /// Threads opening connections, and how many each keeps open.
    pub(crate) flooders: usize,
    pub(crate) flood_hold: usize,
    pub(crate) pipeline: usize,
    pub(crate) records: u64,
    pub(crate) value_bytes: usize,
    pub(crate) slow_consumers: usize,
    pub(crate) slow_count: usize,
    pub(crate) rss_cap_factor: f64,
    pub(crate) runs: Vec<bool>,
    server_bin: Option<PathBuf>,
    keep_data: bool,
}

impl SoakArgs {
    /// Request bytes the producers keep in flight: connections x pipeline
    /// depth x value size.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        (self.producers * self.pipeline * self.value_bytes) as u64
    }
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    pub(crate) name: &'static str,
    pub(crate) title: String,
    pub(crate) limit_bytes: u64,
    pub(crate) series: Series,
    pub(crate) kill_at_secs: f64,
    pub(crate) load_stop_at_secs: f64,
    /// Load counters of the first half up to the kill, and of the second.
    pub(crate) halves: [Stats; 2],
    /// Slow consumers' `(entries, -OOM, errors)` over both halves.
    pub(crate) slow: (u64, u64, u64),
    /// Server exits nobody asked for.
    pub(crate) deaths: u64,
    /// Times the RSS cap killed the server.
    pub(crate) cap_kills: u64,
    pub(crate) cap_bytes: Option<u64>,
    /// The first half's records read back after the restart.
    pub(crate) after_restart: Option<Verification>,
    /// Both halves' records read back at the end.
    pub(crate) after_run: Option<Verification>,
    /// Seconds from the load stopping to the first normal sample.
    pub(crate) recovery_secs: Option<f64>,
    /// Server transitions and rejected connections, both instances summed.
    pub(crate) transitions: u64,
    pub(crate) rejected: u64,
}

/// How holding the load for a while ended.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    Elapsed,
    CapKill,
    Died,
}

/// Runs `cargo xtask soak` with the arguments after the task name.
///
/// # Errors
///
/// On bad arguments, a failed build or start, or when a run with the
/// responses on breaks one of the soak's claims.
pub fn run(rest: &[String]) -> Result<()> {
    let Some(args) = parse_args(rest)? else {
        print!("{USAGE}");
        return Ok(());
    };

    // The load generator needs an optimised build to offer this load; the
    // `cargo xtask` alias builds a debug one, so hand over to a release one.
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_HANDOVER).is_none() {
        let mut forwarded = vec!["run", "--release", "--quiet", "-p", "xtask", "--", "soak"];
        forwarded.extend(rest.iter().map(String::as_str));
        return super::cargo(&forwarded, &[(RELEASE_HANDOVER, "1")]);
    }
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => {
            super::cargo(&["build", "--release", "-p", "streamlet"], &[])?;
            target_dir().join("release").join("streamlet")
        }
    };
    let out_dir = target_dir().join("soak");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    println!(
        "soak: B = {} ({} B); in flight {} producers x {} x {} B = {:.0} MiB = {:.1} x B",
        args.memory_limit,
        args.limit_bytes,
        args.producers,
        args.pipeline,
        args.value_bytes,
        args.in_flight_bytes() as f64 / (1024.0 * 1024.0),
        args.in_flight_bytes() as f64 / args.limit_bytes as f64
    );

    let mut outcomes = Vec::new();
    for &responses in &args.runs {
        outcomes.push(run_once(&args, &binary, &out_dir, responses)?);
    }

    // Write the report and the picture.
    let with_text = plot::load_font();
    if !with_text {
        println!(
            "soak: {} not readable; the plot has no text",
            plot::FONT_PATH
        );
    }
    let png = out_dir.join("memory.png");
    let refs: Vec<&RunOutcome> = outcomes.iter().collect();
    plot::draw(&png, &refs, with_text)?;
    let failures: Vec<String> = outcomes.iter().flat_map(report::failures).collect();
    let md = report::markdown(&args, &refs, with_text, &failures);
    let md_path = out_dir.join("report.md");
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    println!("soak: wrote {} and {}", md_path.display(), png.display());
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join("; "));
    }
    println!("result: OK");
    Ok(())
}

/// One run: start, load, kill, restart, verify, load, stop, recover, verify.
fn run_once(args: &SoakArgs, binary: &Path, out_dir: &Path, responses: bool) -> Result<RunOutcome> {
    let name = if responses { "on" } else { "off" };
    let run_dir = out_dir.join(format!("run-{name}"));
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    let data_dir = run_dir.join("data");
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let [addr, _] = free_ports()?;
    let cap_bytes = (!responses).then_some((args.limit_bytes as f64 * args.rss_cap_factor) as u64);
    let spawn = |instance: usize| -> Result<ServerGuard> {
        let log = run_dir.join(format!("streamlet-{instance}.log"));
        start_server(binary, addr, &data_dir, args, responses, &log)
    };
    println!(
        "soak[{name}]: --pressure-responses {name}, data {}",
        data_dir.display()
    );

    let started = Instant::now();
    let sampler = Sampler::start(addr, started, cap_bytes);
    let mut server = spawn(0)?;
    sampler.set_pid(server.child.id());
    let mut outcome = RunOutcome {
        name,
        title: format!(
            "--pressure-responses {name}, --memory-limit {}{}",
            args.memory_limit,
            cap_bytes.map_or(String::new(), |c| format!(
                " (killed past {:.0} MiB RSS)",
                c as f64 / 1048576.0
            ))
        ),
        limit_bytes: args.limit_bytes,
        series: Series::default(),
        kill_at_secs: 0.0,
        load_stop_at_secs: 0.0,
        halves: [Stats::default(); 2],
        slow: (0, 0, 0),
        deaths: 0,
        cap_kills: 0,
        cap_bytes,
        after_restart: None,
        after_run: None,
        recovery_secs: None,
        transitions: 0,
        rejected: 0,
    };

    // First half, then the deliberate SIGKILL mid-load.
    let first = args.duration.mul_f64(2.0 / 3.0);
    let (mut gen_a, mut slow_a) = start_load(args, addr, &format!("soak-{name}-a"));
    let held = hold(first, &mut server, &sampler, &mut outcome, started);
    outcome.halves[0] = gen_a.stats();
    outcome.kill_at_secs = started.elapsed().as_secs_f64();
    if held == Held::Elapsed {
        println!("soak[{name}]: {:.1}s SIGKILL", outcome.kill_at_secs);
        // The child is ours; `kill` sends SIGKILL to its PID.
        let _ = server.child.kill();
    }
    server.exit = server.child.wait().ok();
    sampler.set_pid(0);
    let ledger_a = gen_a.stop();
    slow_a.stop();
    add_slow(&mut outcome, &slow_a);
    println!("soak[{name}]: first half {}", outcome.halves[0]);

    // Restart on the same data, read the first half back.
    let mut server = spawn(1)?;
    sampler.set_pid(server.child.id());
    outcome.after_restart = Some(read_back(name, addr, &ledger_a, "after the restart")?);

    // Second half, stop, wait for normal.
    let second = args.duration.saturating_sub(first);
    let (mut gen_b, mut slow_b) = start_load(args, addr, &format!("soak-{name}-b"));
    hold(second, &mut server, &sampler, &mut outcome, started);
    outcome.load_stop_at_secs = started.elapsed().as_secs_f64();
    outcome.halves[1] = gen_b.stats();
    let mut ledger = gen_b.stop();
    slow_b.stop();
    add_slow(&mut outcome, &slow_b);
    println!(
        "soak[{name}]: {:.1}s load stopped; second half {}",
        outcome.load_stop_at_secs, outcome.halves[1]
    );
    outcome.recovery_secs = wait_for_normal(&mut server, &sampler, outcome.load_stop_at_secs);
    if server.exited().is_some() {
        server = spawn(2)?;
        sampler.set_pid(server.child.id());
    }

    // Read everything back, then stop.
    ledger.merge(ledger_a);
    outcome.after_run = Some(read_back(name, addr, &ledger, "after the run")?);
    server.stop();
    sampler.set_pid(0);
    outcome.series = sampler.snapshot();
    drop(sampler);
    let (transitions, rejected) = server_counters(&outcome.series, outcome.kill_at_secs);
    outcome.transitions = transitions;
    outcome.rejected = rejected;
    // The data is gigabytes: it goes even on failure, unless asked to stay.
    if !args.keep_data {
        if let Err(err) = fs::remove_dir_all(&data_dir) {
            eprintln!("soak: could not remove {}: {err}", data_dir.display());
        }
    }
    if outcome.deaths > 0 {
        println!(
            "soak[{name}]: server log tail:\n{}",
            log_tail(&run_dir.join("streamlet-0.log"), 15)
        );
    }
    Ok(outcome)
}

/// Starts streamlet on `addr` with the soak's flags.
fn start_server(
    binary: &Path,
    addr: SocketAddr,
    data_dir: &Path,
    args: &SoakArgs,
    responses: bool,
    log_path: &Path,
) -> Result<ServerGuard> {
    let log = File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(binary)
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--metrics-listen", "off"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--memory-limit")
        .arg(&args.memory_limit)
        .arg("--pressure-responses")
        .arg(if responses { "on" } else { "off" })
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut server = ServerGuard { child, exit: None };
    wait_for_ping(&mut server, addr, log_path)?;
    Ok(server)
}

/// Starts producers, flooders, plain and slow consumers on streams `prefix:*`.
fn start_load(args: &SoakArgs, addr: SocketAddr, prefix: &str) -> (Generator, SlowConsumers) {
    let mut config = LoadConfig::new(addr);
    config.key_prefix = prefix.to_string();
    config.streams = STREAMS;
    config.value_bytes = args.value_bytes;
    config.pipeline_depth = args.pipeline;
    config.records_per_producer = Some(args.records);
    config.range_count = READ_COUNT;
    config.flood_interval = Duration::from_millis(10);
    config.flood_hold = args.flood_hold;
    config.io_timeout = Duration::from_secs(30);
    let keys: Vec<String> = (0..STREAMS).map(|i| config.key(i)).collect();
    let mut generator = Generator::new(config);
    for _ in 0..args.producers {
        generator.add_producer();
    }
    for _ in 0..args.flooders {
        generator.add_flooder();
    }
    for _ in 0..CONSUMERS {
        generator.add_consumer();
    }
    let slow = SlowConsumers::start(addr, &keys, args.slow_consumers, args.slow_count);
    (generator, slow)
}

/// Keeps the load on for `duration`, killing the server if it passes the
/// RSS cap and noting a server that exits by itself.
fn hold(
    duration: Duration,
    server: &mut ServerGuard,
    sampler: &Sampler,
    outcome: &mut RunOutcome,
    started: Instant,
) -> Held {
    let until = Instant::now() + duration;
    let mut last_print = Instant::now();
    while Instant::now() < until {
        thread::sleep(TICK);
        if sampler.take_over_cap() {
            // The child is ours; `kill` sends SIGKILL to its PID.
            let _ = server.child.kill();
            server.exit = server.child.wait().ok();
            outcome.cap_kills += 1;
            println!(
                "soak[{}]: {:.1}s RSS passed the cap; server killed",
                outcome.name,
                started.elapsed().as_secs_f64()
            );
            return Held::CapKill;
        }
        if let Some(status) = server.exited() {
            outcome.deaths += 1;
            println!("soak[{}]: the server died ({status})", outcome.name);
            return Held::Died;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            let series = sampler.snapshot();
            let rss = series.rss.last().map_or(0, |s| s.1);
            let level = series.levels.last().map_or(9, |s| s.level);
            println!(
                "soak[{}]: {:>5.1}s rss {:.1} MiB ({:.2} x B) level {level}",
                outcome.name,
                started.elapsed().as_secs_f64(),
                rss as f64 / 1048576.0,
                rss as f64 / outcome.limit_bytes as f64
            );
        }
    }
    Held::Elapsed
}

/// Seconds from `stop_secs` to the first normal sample after it.
fn wait_for_normal(server: &mut ServerGuard, sampler: &Sampler, stop_secs: f64) -> Option<f64> {
    let waited = Instant::now();
    while waited.elapsed() < RECOVERY_WAIT && server.exited().is_none() {
        let series = sampler.snapshot();
        let normal = series
            .levels
            .iter()
            .find(|s| s.t_secs >= stop_secs && s.level == 0);
        if let Some(sample) = normal {
            return Some(sample.t_secs - stop_secs);
        }
        thread::sleep(TICK);
    }
    None
}

/// Reads `ledger` back and prints what was found.
fn read_back(name: &str, addr: SocketAddr, ledger: &Ledger, when: &str) -> Result<Verification> {
    let started = Instant::now();
    let report = load::verify(addr, ledger, READ_COUNT, Duration::from_secs(60))?;
    print!(
        "soak[{name}]: read back {when} in {:.1}s: ",
        started.elapsed().as_secs_f64()
    );
    load::print_verification(&report);
    Ok(report)
}

fn add_slow(outcome: &mut RunOutcome, slow: &SlowConsumers) {
    let (entries, oom, errors) = slow.counts();
    outcome.slow.0 += entries;
    outcome.slow.1 += oom;
    outcome.slow.2 += errors;
}

/// The largest transitions and rejected-connection counts of the server
/// before `kill_secs` plus those after: each instance counts from zero.
fn server_counters(series: &Series, kill_secs: f64) -> (u64, u64) {
    let max = |before: bool, f: fn(&sampler::LevelSample) -> u64| {
        series
            .levels
            .iter()
            .filter(|s| (s.t_secs < kill_secs) == before)
            .map(f)
            .max()
            .unwrap_or(0)
    };
    (
        max(true, |s| s.transitions) + max(false, |s| s.transitions),
        max(true, |s| s.rejected) + max(false, |s| s.rejected),
    )
}

fn parse_args(rest: &[String]) -> Result<Option<SoakArgs>> {
    let mut args = SoakArgs {
        memory_limit: "64MiB".into(),
        limit_bytes: 64 << 20,
        duration: Duration::from_secs(60),
        producers: 48,
        pipeline: 128,
        records: 128,
        value_bytes: 256 * 1024,
        flooders: 16,
        flood_hold: 1000,
        slow_consumers: 4,
        slow_count: 64,
        rss_cap_factor: 4.0,
        runs: vec![true, false],
        server_bin: None,
        keep_data: false,
    };
    let mut iter = rest.iter();
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--keep-data" => {
                args.keep_data = true;
                continue;
            }
            _ => {}
        }
        let Some(value) = iter.next() else {
            bail!("{flag} needs a value\n\n{USAGE}");
        };
        let number = |min: u64, max: u64| -> Result<u64> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .with_context(|| {
                    format!("{flag} takes a whole number {min} to {max}, got {value:?}")
                })
        };
        match flag.as_str() {
            "--memory-limit" => {
                args.limit_bytes = parse_size(value)?;
                args.memory_limit = value.clone();
            }
            "--duration-secs" => args.duration = Duration::from_secs(number(6, 1800)?),
            "--producers" => args.producers = number(1, 256)? as usize,
            "--flooders" => args.flooders = number(0, 64)? as usize,
            "--flood-hold" => args.flood_hold = number(0, 4000)? as usize,
            "--pipeline" => args.pipeline = number(1, 1024)? as usize,
            "--records" => args.records = number(1, 1_000_000)?,
            "--value-bytes" => args.value_bytes = number(1, 16 << 20)? as usize,
            "--slow-consumers" => args.slow_consumers = number(0, 64)? as usize,
            "--slow-count" => args.slow_count = number(1, 100_000)? as usize,
            "--rss-cap-factor" => {
                args.rss_cap_factor = value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (1.1..=16.0).contains(f))
                    .with_context(|| format!("--rss-cap-factor takes 1.1 to 16, got {value:?}"))?;
            }
            "--runs" => {
                args.runs = value
                    .split(',')
                    .map(|run| match run {
                        "on" => Ok(true),
                        "off" => Ok(false),
                        other => {
                            bail!("--runs takes on and off separated by commas, got {other:?}")
                        }
                    })
                    .collect::<Result<_>>()?;
            }
            "--server-bin" => args.server_bin = Some(PathBuf::from(value)),
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Some(args))
}

/// Parses `N`, `NKiB`, `NMiB` or `NGiB` (also `K`, `M`, `G`) into bytes.
fn parse_size(text: &str) -> Result<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &text[digits.len()..] {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => bail!("--memory-limit unit {other:?} is not one of B, KiB, MiB, GiB"),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("--memory-limit takes a size like 128MiB, got {text:?}"))?;
    n.checked_shl(shift)
        .filter(|&bytes| bytes > 0 && bytes >> shift == n)
        .with_context(|| format!("--memory-limit {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("128MiB").ok(), Some(128 << 20));
        assert_eq!(parse_size("2G").ok(), Some(2 << 30));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("12MB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn defaults_put_ten_budgets_in_flight() {
        let args = parse_args(&[]).ok().flatten();
        let args = args.as_ref();
        let ratio = args.map_or(0.0, |a| a.in_flight_bytes() as f64 / a.limit_bytes as f64);
        assert!(ratio >= 10.0, "in flight only {ratio} x B");
    }
}
