//! streamlet: a small log-stream server speaking a subset of Redis streams
//! over RESP2, under a memory budget it enforces.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use mempressure::args::MemoryArgs;
use mempressure::{Monitor, MonitorConfig};
use streamlet::cache::{BlockCache, IndexCache};
use streamlet::cli::{Cli, Fsync, MetricsListen, Switch};
use streamlet::commands::Context;
use streamlet::pressure::{register_caches, CacheReclaimer, MemoryInfo};
use streamlet::resp::Limits;
use streamlet::server::Server;
use streamlet::storage::{FsyncPolicy, Store, StoreConfig};
use streamlet::Component;

/// The tracking allocator: every byte counted per thread and component.
#[cfg(not(feature = "bare-jemalloc"))]
#[global_allocator]
static ALLOC: mempressure::Allocator = mempressure::Allocator::jemalloc();

/// Plain jemalloc, only to measure what the tracking costs (feature
/// `bare-jemalloc`): the shim then counts nothing and the monitor decides
/// on the OS figures.
#[cfg(feature = "bare-jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The smallest budget streamlet accepts: it uses about 2 MiB idle, and
/// below this it would sit at critical with nothing to shed.
const MIN_MEMORY_LIMIT_BYTES: u64 = 4 << 20;

fn main() -> ExitCode {
    let cli = MemoryArgs::parse_validated::<Cli>(|cli| &cli.memory);
    if let Some(limit) = cli
        .memory
        .memory_limit
        .filter(|l| *l < MIN_MEMORY_LIMIT_BYTES)
    {
        use clap::CommandFactory;
        let message = format!(
            "invalid value '{limit}' for '--memory-limit <SIZE>': streamlet needs at least \
             4 MiB ({MIN_MEMORY_LIMIT_BYTES} bytes); it uses about 2 MiB idle"
        );
        Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person; a pipe or a file gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written is dropped: reporting it on
        // the same stderr would panic the server.
        .log_internal_errors(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not `eprintln!`: with stderr a closed pipe it would panic, and
            // the exit status must still say what happened.
            let _ = writeln!(std::io::stderr(), "streamlet: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Metrics first, so the monitor's first tick is already exported.
    let metrics = match cli.metrics_listen {
        MetricsListen::At(addr) => Some(
            mempressure::prometheus::serve(addr)
                .with_context(|| format!("cannot serve metrics on {addr} (--metrics-listen)"))?,
        ),
        MetricsListen::Off => None,
    };
    if let Some(metrics) = &metrics {
        tracing::info!(addr = %metrics.local_addr(), "serving metrics");
    }

    // The memory monitor.
    let config = MonitorConfig::from_args(&cli.memory).components::<Component>();
    let monitor = Monitor::start(config).context("cannot start the memory monitor")?;
    let limit_bytes = monitor.budget().limit_bytes;

    // Storage, with its caches as reclaimers.
    let segment_bytes = cli.segment_cache.unwrap_or(limit_bytes / 4);
    let index_bytes = cli.index_cache.unwrap_or(limit_bytes / 16);
    let blocks = Arc::new(BlockCache::new(segment_bytes));
    let indexes = Arc::new(IndexCache::new(index_bytes));
    let mut store_config = StoreConfig::new(&cli.data_dir);
    store_config.fsync = match cli.fsync {
        Fsync::Never => FsyncPolicy::Never,
        Fsync::Always => FsyncPolicy::EveryAppend,
    };
    let store = Store::open(store_config, blocks.clone(), indexes.clone()).with_context(|| {
        format!(
            "cannot open the data directory {} (--data-dir)",
            cli.data_dir.display()
        )
    })?;
    let responses = cli.pressure_responses == Switch::On;
    let _reclaimers = responses.then(|| {
        register_caches(
            &monitor,
            Arc::new(CacheReclaimer::new(blocks, segment_bytes)),
            Arc::new(CacheReclaimer::new(indexes, index_bytes)),
        )
    });
    let ctx = Context::new(Arc::new(store))
        .with_info_provider(Arc::new(MemoryInfo::new(monitor.clone())))
        .with_tcp_port(cli.listen.port());

    // The listener.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("streamlet-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(
            cli.listen,
            ctx,
            monitor.clone(),
            Limits::default(),
            responses,
        )
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", cli.listen))?;
        tracing::info!(
            addr = %server.local_addr().unwrap_or(cli.listen),
            data_dir = %cli.data_dir.display(),
            segment_cache_bytes = segment_bytes,
            index_cache_bytes = index_bytes,
            pressure_responses = responses,
            "streamlet listening"
        );
        server.run(shutdown_signal()).await;
        Ok::<(), anyhow::Error>(())
    })?;
    monitor.stop();
    Ok(())
}

/// The error and its causes joined with `: `, leaving out a cause whose
/// text its parent already ends with (errors that print their source
/// themselves would otherwise say it twice).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if last.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
        last = message;
    }
    text
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
