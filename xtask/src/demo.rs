//! `cargo xtask demo`: build streamlet, start it under a memory budget and
//! drive it through normal, warning and critical and back, then check that
//! every acknowledged record survived.
//!
//! Phases: `ramp` adds producers until warning; `push` adds more producers,
//! consumers and connection floods until critical; `critical` holds the
//! load a few seconds so floods meet `-OOM`; `drain` stops all load and
//! waits for normal; `verify` reads every stream back.

pub(crate) mod monitor;
mod status;

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::load::resp::{Connection, Reply};
use crate::load::{self, Generator, LoadConfig};
use monitor::{level_rank, mib, Sampler};
use status::{percent, StatusLine};

const USAGE: &str = "usage: cargo xtask demo [options]

  --memory-limit SIZE   streamlet's --memory-limit [64MiB]
  --duration-secs N     time under load before the drain [45]
  --keep-data           keep target/demo/run-*/ (always kept on failure)
  --server-bin PATH     run PATH instead of building streamlet
";

/// Most producers the demo starts.
const MAX_PRODUCERS: usize = 48;

/// Most flooders the demo starts; each holds up to 1000 idle connections.
const MAX_FLOODERS: usize = 32;

/// Most consumers the demo starts.
const MAX_CONSUMERS: usize = 4;

/// How long the load is held once critical is reached.
const CRITICAL_HOLD: Duration = Duration::from_secs(6);

/// Longest wait for the server to answer PING after it starts.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

/// Longest wait for normal after the load stops.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

/// Time between status lines.
const STATUS_PERIOD: Duration = Duration::from_millis(500);

/// The demo's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ramp,
    Push,
    Critical,
    Drain,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Push => "push",
            Phase::Critical => "critical",
            Phase::Drain => "drain",
        }
    }
}

struct DemoArgs {
    memory_limit: String,
    duration: Duration,
    keep_data: bool,
    server_bin: Option<PathBuf>,
}

/// The streamlet child process; stopped by PID when dropped.
pub(crate) struct ServerGuard {
    pub(crate) child: Child,
    pub(crate) exit: Option<process::ExitStatus>,
}

impl ServerGuard {
    /// The exit status if the server has exited.
    pub(crate) fn exited(&mut self) -> Option<process::ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Sends SIGTERM to the server's PID, waits up to five seconds, then
    /// kills it.
    pub(crate) fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        // If `kill` cannot run, the SIGKILL below still stops the server.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.exited().is_none() {
            thread::sleep(Duration::from_millis(50));
        }
        if self.exited().is_none() {
            // The child is ours; killing it by its handle targets its PID.
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cargo xtask demo` with the arguments after the task name.
///
/// # Errors
///
/// On bad arguments, a failed build or start, lost records, a server that
/// died, or a reset connection.
pub fn run(rest: &[String]) -> Result<()> {
    let Some(args) = parse_args(rest)? else {
        print!("{USAGE}");
        return Ok(());
    };

    // Build, lay out the run directory and start the server.
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => {
            super::cargo(&["build", "--release", "-p", "streamlet"], &[])?;
            target_dir().join("release").join("streamlet")
        }
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_dir = target_dir()
        .join("demo")
        .join(format!("run-{secs}-{}", process::id()));
    let data_dir = run_dir.join("data");
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let log_path = run_dir.join("streamlet.log");
    let [addr, metrics_addr] = free_ports()?;
    println!(
        "demo: {} --listen {addr} --metrics-listen {metrics_addr} --memory-limit {} \
         (log {})",
        binary.display(),
        args.memory_limit,
        log_path.display()
    );
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(&binary)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--metrics-listen")
        .arg(metrics_addr.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--memory-limit")
        .arg(&args.memory_limit)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut server = ServerGuard { child, exit: None };
    println!("demo: server pid {}", server.child.id());
    wait_for_ping(&mut server, addr, &log_path)?;

    // Drive the phases, then verify and summarise.
    let outcome = drive(&args, &mut server, addr);
    server.stop();
    let failed = match outcome {
        Ok(failures) => failures,
        Err(err) => vec![format!("{err:#}")],
    };
    if failed.is_empty() {
        if !args.keep_data {
            // Leaving the directory behind is harmless; say so and go on.
            if let Err(err) = fs::remove_dir_all(&run_dir) {
                eprintln!("demo: could not remove {}: {err}", run_dir.display());
            }
        }
        println!("result: OK");
        return Ok(());
    }
    println!("result: FAILED; data and log kept in {}", run_dir.display());
    println!("server log tail:\n{}", log_tail(&log_path, 15));
    bail!("demo failed: {}", failed.join("; "))
}

/// Runs the phases and the verification; returns the reasons the demo
/// failed, empty when it passed.
fn drive(args: &DemoArgs, server: &mut ServerGuard, addr: SocketAddr) -> Result<Vec<String>> {
    let mut config = LoadConfig::new(addr);
    config.key_prefix = "demo".into();
    config.value_bytes = 256 * 1024;
    config.pipeline_depth = 16;
    config.range_count = 32;
    config.flood_interval = Duration::from_millis(10);
    // Idle clients that stay connected: the memory a connection storm holds.
    config.flood_hold = 1000;
    let sampler = Sampler::start(addr);
    let mut generator = Generator::new(config.clone());
    let mut status = StatusLine::new();
    let started = Instant::now();
    let mut phase = Phase::Ramp;
    let mut phase_since = started;
    let mut last_add = started;
    let mut critical_reached = false;
    let mut consumers = 1;
    let mut flooders = 1;
    generator.add_producer();
    generator.add_consumer();
    generator.add_flooder();

    // Load phases: ramp, push, critical.
    while phase != Phase::Drain {
        thread::sleep(Duration::from_millis(100));
        if server.exited().is_some() {
            break;
        }
        let sampled = sampler.snapshot();
        let rank = level_rank(&sampled.latest.level());
        let elapsed = started.elapsed();
        let next = match phase {
            Phase::Ramp if rank >= Some(1) || elapsed > args.duration.mul_f64(0.4) => Phase::Push,
            Phase::Push if rank == Some(2) => Phase::Critical,
            Phase::Push if elapsed > args.duration.mul_f64(0.85) => Phase::Drain,
            Phase::Critical if phase_since.elapsed() >= CRITICAL_HOLD => Phase::Drain,
            _ if elapsed >= args.duration => Phase::Drain,
            same => same,
        };
        if next != phase {
            status.finish();
            println!(
                "demo: {:>5.1}s phase {} -> {}",
                elapsed.as_secs_f64(),
                phase.name(),
                next.name()
            );
            phase = next;
            phase_since = Instant::now();
            critical_reached |= phase == Phase::Critical;
            if phase == Phase::Push {
                generator.add_flooder();
            }
            if phase == Phase::Critical {
                generator.add_flooder();
                generator.add_flooder();
            }
        }
        let add_every = if phase == Phase::Ramp { 1.0 } else { 0.5 };
        if phase != Phase::Critical
            && last_add.elapsed().as_secs_f64() >= add_every
            && generator.producers() < MAX_PRODUCERS
        {
            last_add = Instant::now();
            generator.add_producer();
            if phase == Phase::Push && flooders < MAX_FLOODERS {
                // A connection storm: idle clients that hold memory.
                flooders += 4;
                for _ in 0..4 {
                    generator.add_flooder();
                }
            }
            if phase == Phase::Push
                && generator.producers().is_multiple_of(4)
                && consumers < MAX_CONSUMERS
            {
                consumers += 1;
                generator.add_consumer();
            }
        }
        status.show(started, phase, &sampled, &generator);
    }

    // Drain: stop the load and wait for normal.
    let load_stats = generator.stats();
    let ledger = generator.stop();
    status.finish();
    println!(
        "demo: {:>5.1}s load stopped: {load_stats}",
        started.elapsed().as_secs_f64()
    );
    let drain_started = Instant::now();
    let mut recovered = false;
    while drain_started.elapsed() < RECOVERY_WAIT && server.exited().is_none() {
        let sampled = sampler.snapshot();
        let level = sampled.latest.level();
        if level == "normal" || level_rank(&level).is_none() {
            recovered = level == "normal";
            break;
        }
        status.show(started, Phase::Drain, &sampled, &generator);
        thread::sleep(Duration::from_millis(100));
    }
    status.finish();

    // Verify, unless the server is gone.
    let server_died = server.exited();
    let report = match server_died {
        None => Some(load::verify(addr, &ledger, 64, config.io_timeout)?),
        Some(_) => None,
    };
    let sampled = sampler.snapshot();
    drop(sampler);

    // Summary.
    let info = &sampled.latest;
    println!("summary:");
    println!(
        "  peak usage      {} MiB of {} MiB limit ({}) | peak used_memory {} MiB, rss {} MiB | \
         {} samples at {:.1} Hz, {} failed",
        sampled.peak_usage_bytes.map_or_else(|| "?".into(), mib),
        info.limit_bytes().map_or_else(|| "?".into(), mib),
        percent(sampled.peak_usage_bytes, info.limit_bytes()),
        mib(sampled.peak_used_bytes),
        mib(sampled.peak_rss_bytes),
        sampled.samples,
        sampled.rate_hz(),
        sampled.failures
    );
    println!(
        "  levels seen     {} | server transitions {} | recovered to normal: {}",
        sampled.levels.join(" -> "),
        info.show("mempressure_transitions"),
        match (recovered, level_rank(&info.level())) {
            (true, _) => "yes",
            (false, None) => "unknown (no mempressure_level)",
            (false, Some(_)) => "NO",
        }
    );
    println!(
        "  rejected -OOM   {} of {} flood connections (+PONG {}) | server \
         mempressure_rejected_connections {}",
        load_stats.flood_oom,
        load_stats.flood_attempts,
        load_stats.flood_pong,
        info.show("mempressure_rejected_connections")
    );
    println!(
        "  resets          {} (flood resets {}, flood closes without reply {}, producer resets {})",
        load_stats.resets(),
        load_stats.flood_resets,
        load_stats.flood_eofs,
        load_stats.producer_resets
    );
    println!(
        "  acknowledged    {} records ({} MiB); XADD refused -OOM {}, unanswered {}",
        ledger.len(),
        mib(load_stats.acked_bytes),
        load_stats.refused_oom,
        load_stats.unknown
    );
    if let Some(report) = &report {
        load::print_verification(report);
    }

    // Decide.
    let mut failures = Vec::new();
    if let Some(status) = server_died {
        failures.push(format!("the server died ({status})"));
    }
    if load_stats.resets() > 0 {
        failures.push(format!(
            "{} connections were reset or closed without reply",
            load_stats.resets()
        ));
    }
    if report.as_ref().is_some_and(|r| !r.is_ok()) {
        failures.push("acknowledged records were lost or changed".into());
    }
    if !critical_reached {
        println!("  note            critical was not reached; no -OOM rejection was shown");
    }
    Ok(failures)
}

fn parse_args(rest: &[String]) -> Result<Option<DemoArgs>> {
    let mut args = DemoArgs {
        memory_limit: "64MiB".into(),
        duration: Duration::from_secs(45),
        keep_data: false,
        server_bin: None,
    };
    let mut iter = rest.iter();
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--keep-data" => args.keep_data = true,
            "--memory-limit" | "--duration-secs" | "--server-bin" => {
                let Some(value) = iter.next() else {
                    bail!("{flag} needs a value\n\n{USAGE}");
                };
                match flag.as_str() {
                    "--memory-limit" => args.memory_limit = value.clone(),
                    "--server-bin" => args.server_bin = Some(PathBuf::from(value)),
                    _ => {
                        let secs: u64 = value
                            .parse()
                            .ok()
                            .filter(|s| (5..=600).contains(s))
                            .with_context(|| {
                                format!("--duration-secs takes 5 to 600 seconds, got {value:?}")
                            })?;
                        args.duration = Duration::from_secs(secs);
                    }
                }
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Some(args))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` or the workspace's.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join("target"))
}

/// Two free loopback ports, both held open until both are known.
pub(crate) fn free_ports() -> Result<[SocketAddr; 2]> {
    let first = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let second = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok([first.local_addr()?, second.local_addr()?])
}

/// Waits until the server answers PING, failing early if it exits.
pub(crate) fn wait_for_ping(server: &mut ServerGuard, addr: SocketAddr, log: &Path) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < STARTUP_WAIT {
        if let Some(status) = server.exited() {
            bail!(
                "the server exited at start-up ({status}); log:\n{}",
                log_tail(log, 15)
            );
        }
        let pong = Connection::connect(addr, Duration::from_secs(1))
            .ok()
            .and_then(|mut conn| conn.call(&[b"PING"]).ok());
        if matches!(pong, Some(Reply::Simple(ref text)) if text == "PONG") {
            println!(
                "demo: server answers PING after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the server did not answer PING within {STARTUP_WAIT:?}; log:\n{}",
        log_tail(log, 15)
    )
}

/// The last `lines` lines of the file at `path`.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
