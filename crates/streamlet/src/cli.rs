//! streamlet's command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use mempressure::args::MemoryArgs;

/// The data directory used when `--data-dir` is not given: relative to the
/// working directory, created on first start.
pub const DEFAULT_DATA_DIR: &str = "streamlet-data";

/// A small log-stream server speaking a subset of Redis streams (RESP2),
/// under a memory budget it enforces.
#[derive(Debug, Clone, Parser)]
#[command(name = "streamlet", version, about)]
pub struct Cli {
    /// Address to accept clients on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "STREAMLET_LISTEN",
        default_value = "127.0.0.1:6390",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,

    /// Address to serve Prometheus metrics on (`/metrics`), or `off`.
    #[arg(
        long,
        value_name = "ADDR|off",
        env = "STREAMLET_METRICS_LISTEN",
        default_value = "127.0.0.1:9898",
        value_parser = parse_metrics_listen
    )]
    pub metrics_listen: MetricsListen,

    /// Directory holding one sub-directory of segment files per stream;
    /// created if missing.
    #[arg(long, value_name = "DIR", env = "STREAMLET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Capacity of the segment block cache in bytes [default: a quarter of
    /// the memory limit].
    #[arg(long, value_name = "SIZE", env = "STREAMLET_SEGMENT_CACHE", value_parser = parse_size)]
    pub segment_cache: Option<u64>,

    /// Capacity of the index cache in bytes [default: a sixteenth of the
    /// memory limit].
    #[arg(long, value_name = "SIZE", env = "STREAMLET_INDEX_CACHE", value_parser = parse_size)]
    pub index_cache: Option<u64>,

    /// When appends reach the disk: `never` acknowledges after write(2)
    /// (survives a process crash), `always` after fdatasync (survives power
    /// loss).
    #[arg(
        long,
        value_name = "WHEN",
        env = "STREAMLET_FSYNC",
        default_value = "never"
    )]
    pub fsync: Fsync,

    /// Whether the server acts on memory pressure: `-OOM` for new
    /// connections at critical, muted intake, cache reclaim. `off` only
    /// monitors (for comparison runs).
    #[arg(
        long,
        value_name = "on|off",
        env = "STREAMLET_PRESSURE_RESPONSES",
        default_value = "on"
    )]
    pub pressure_responses: Switch,

    /// The memory budget and its thresholds.
    #[command(flatten)]
    pub memory: MemoryArgs,
}

/// Where metrics are served, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// Serve on this address.
    At(SocketAddr),
    /// Serve nothing.
    Off,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// When appends are synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    /// After write(2) only.
    Never,
    /// After every append, with fdatasync.
    Always,
}

fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        format!("{value:?} is not a socket address such as 127.0.0.1:6390 or [::1]:6390")
    })
}

fn parse_metrics_listen(value: &str) -> Result<MetricsListen, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    value
        .parse()
        .map(MetricsListen::At)
        .map_err(|_| format!("{value:?} is not a socket address (such as 127.0.0.1:9898) or `off`"))
}

fn parse_size(value: &str) -> Result<u64, String> {
    mempressure::size::parse_size(value).map_err(|e| e.to_string())
}
