//! `cargo xtask load`: a load generator for RESP2 stream servers.
//!
//! Producers pipeline XADDs of large deterministic records and keep every
//! acknowledged ID; flooders open connection after connection and sort the
//! answers into `+PONG`, `-OOM`, reset and EOF; consumers page through the
//! streams with XRANGE. At the end every stream is read back and each
//! acknowledged record must be there exactly once with the right content.

pub(crate) mod record;
pub mod resp;
mod workers;

use std::net::SocketAddr;
use std::process;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

pub use record::{verify, Verification};
pub use workers::{Generator, Stats};

const USAGE: &str = "usage: cargo xtask load --addr 127.0.0.1:PORT [options]

  --addr 127.0.0.1:PORT   server to load (only 127.0.0.1 is accepted)
  --producers N           producer threads, one connection each [4]
  --streams N             stream keys written round-robin [4]
  --value-bytes N         value size of each record [32768]
  --pipeline N            XADDs sent before reading their replies [8]
  --records N             stop each producer after N records [no limit]
  --duration-secs N       stop all load after N seconds [10]
  --flooders N            threads opening new connections in a loop [0]
  --flood-interval-ms N   pause between a flooder's connections [20]
  --consumers N           threads paging through streams with XRANGE [1]
  --count N               XRANGE COUNT for consumers and verification [64]
  --timeout-ms N          connect, read and write timeout [10000]
  --key-prefix TEXT       stream keys are TEXT:0 .. TEXT:N-1 [load-PID-SECS]
  --no-verify             skip reading the streams back
";

/// What a load run does; shared by the `load` task and the demo.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server, always on 127.0.0.1.
    pub addr: SocketAddr,
    /// Number of stream keys the producers write round-robin.
    pub streams: usize,
    /// Value size of each record.
    pub value_bytes: usize,
    /// XADDs written before their replies are read.
    pub pipeline_depth: usize,
    /// Records after which a producer stops; `None` for no limit.
    pub records_per_producer: Option<u64>,
    /// Pause between one flooder's connections.
    pub flood_interval: Duration,
    /// Connections each flooder keeps open once answered, as idle clients
    /// that hold server memory; 0 closes every one at once.
    pub flood_hold: usize,
    /// XRANGE COUNT for consumers and for the read-back.
    pub range_count: usize,
    /// Connect, read and write timeout.
    pub io_timeout: Duration,
    /// Stream keys are `{key_prefix}:{i}`.
    pub key_prefix: String,
}

impl LoadConfig {
    /// A configuration with the defaults of `cargo xtask load` for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        LoadConfig {
            addr,
            streams: 4,
            value_bytes: 32 * 1024,
            pipeline_depth: 8,
            records_per_producer: None,
            flood_interval: Duration::from_millis(20),
            flood_hold: 0,
            range_count: 64,
            io_timeout: Duration::from_secs(10),
            key_prefix: format!("load-{}-{secs}", process::id()),
        }
    }

    /// The name of stream `index`.
    pub fn key(&self, index: usize) -> String {
        format!("{}:{index}", self.key_prefix)
    }
}

/// The command line of `cargo xtask load` beyond the shared configuration.
struct LoadArgs {
    config: LoadConfig,
    producers: usize,
    flooders: usize,
    consumers: usize,
    duration: Duration,
    verify: bool,
}

/// Runs `cargo xtask load` with the arguments after the task name.
///
/// # Errors
///
/// On bad arguments, an unreachable server, or a verification that finds
/// acknowledged records missing, doubled or changed.
pub fn run(rest: &[String]) -> Result<()> {
    if rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(rest)?;
    let config = &args.config;
    println!(
        "load: {} producers x pipeline {} of {} B records to {} streams {}:*, {} flooders, \
         {} consumers, for {:?}",
        args.producers,
        config.pipeline_depth,
        config.value_bytes,
        config.streams,
        config.key_prefix,
        args.flooders,
        args.consumers,
        args.duration
    );

    // Start every worker, then wait for the duration or for the producers'
    // record limits, printing a line a second.
    let mut generator = Generator::new(args.config.clone());
    for _ in 0..args.producers {
        generator.add_producer();
    }
    for _ in 0..args.flooders {
        generator.add_flooder();
    }
    for _ in 0..args.consumers {
        generator.add_consumer();
    }
    let started = Instant::now();
    let mut last_print = started;
    let producers_done = |g: &Generator| g.producers() > 0 && g.producers_running() == 0;
    while started.elapsed() < args.duration && !producers_done(&generator) {
        thread::sleep(Duration::from_millis(100));
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            println!(
                "load: {:>5.1}s {}",
                started.elapsed().as_secs_f64(),
                generator.stats()
            );
        }
    }
    let ledger = generator.stop();
    let stats = generator.stats();
    println!(
        "load: stopped after {:.1}s: {stats}",
        started.elapsed().as_secs_f64()
    );
    println!("load: {}", stats.flood_summary());

    // Read everything back.
    if !args.verify {
        return Ok(());
    }
    let report = verify(config.addr, &ledger, config.range_count, config.io_timeout)?;
    print_verification(&report);
    if !report.is_ok() {
        bail!("verification failed: acknowledged records are missing, doubled or changed");
    }
    Ok(())
}

/// Prints what the read-back found.
pub fn print_verification(report: &Verification) {
    println!(
        "verify: acknowledged {} read back {} ({}) | missing {} duplicates {} corrupt {} | \
         written but unacknowledged {} | checksum {} | entries read {}",
        report.acknowledged,
        report.read_back,
        if report.read_back == report.acknowledged {
            "equal"
        } else {
            "DIFFERENT"
        },
        report.missing,
        report.duplicates,
        report.corrupt,
        report.unacknowledged_extra,
        if report.checksum_matches {
            "matches"
        } else {
            "DIFFERS"
        },
        report.entries_read
    );
}

fn parse_args(rest: &[String]) -> Result<LoadArgs> {
    let mut addr = None;
    let mut config = LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut args = LoadArgs {
        config: config.clone(),
        producers: 4,
        flooders: 0,
        consumers: 1,
        duration: Duration::from_secs(10),
        verify: true,
    };
    let mut iter = rest.iter();
    while let Some(flag) = iter.next() {
        if flag == "--no-verify" {
            args.verify = false;
            continue;
        }
        let Some(value) = iter.next() else {
            bail!("{flag} needs a value\n\n{USAGE}");
        };
        let number = || -> Result<u64> {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} takes a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--addr" => addr = Some(resp::parse_loopback_addr(value)?),
            "--producers" => args.producers = count(flag, number()?, 0, 256)?,
            "--streams" => config.streams = count(flag, number()?, 1, 1024)?,
            "--value-bytes" => config.value_bytes = count(flag, number()?, 1, 64 << 20)?,
            "--pipeline" => config.pipeline_depth = count(flag, number()?, 1, 1024)?,
            "--records" => config.records_per_producer = Some(number()?),
            "--duration-secs" => args.duration = Duration::from_secs(number()?.clamp(1, 3600)),
            "--flooders" => args.flooders = count(flag, number()?, 0, 64)?,
            "--flood-interval-ms" => config.flood_interval = Duration::from_millis(number()?),
            "--consumers" => args.consumers = count(flag, number()?, 0, 64)?,
            "--count" => config.range_count = count(flag, number()?, 1, 100_000)?,
            "--timeout-ms" => {
                config.io_timeout = Duration::from_millis(number()?.clamp(1, 600_000));
            }
            "--key-prefix" => config.key_prefix = value.clone(),
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    let Some(addr) = addr else {
        bail!("--addr is required\n\n{USAGE}");
    };
    config.addr = addr;
    args.config = config;
    Ok(args)
}

/// Checks that `value` of `flag` lies in `min..=max`.
fn count(flag: &str, value: u64, min: usize, max: usize) -> Result<usize> {
    match usize::try_from(value) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => bail!("{flag} must be between {min} and {max}, got {value}"),
    }
}
