//! The Prometheus scrape endpoint: metrics-exporter-prometheus installed as
//! the global `metrics` recorder, served on `GET /metrics`.
//!
//! [`serve`] binds the address first and returns every failure to the caller:
//! an address in use or not bindable, a global recorder already installed, a
//! thread that cannot start. Nothing is left running when it fails.
//!
//! The exporter's own HTTP listener is not used: it needs a Tokio runtime to
//! hand back a [`PrometheusHandle`], and when the global recorder is already
//! set it keeps serving an empty page from a thread nobody owns. The listener
//! here is a small blocking HTTP/1.1 server on one thread that answers one
//! request per connection, which is all a scraper needs.
//!
//! [`render_with`] renders the scrape text of a closure's metrics without
//! HTTP or a global recorder, for tests.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for the monitor's tick duration, in seconds.
///
/// A tick reads counters and a few files; 100 µs to 1 s covers a healthy tick
/// and one slowed by a starved machine.
const TICK_SECONDS_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The metric the buckets apply to, by the suffix every prefix shares.
const TICK_SECONDS_SUFFIX: &str = "_memory_monitor_tick_seconds";

/// How often histogram samples are folded when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest request head read; a scrape request is a few hundred bytes.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// The content type of the Prometheus text exposition format.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running scrape endpoint.
///
/// The listener and its threads live for the rest of the process, as the
/// global recorder does; dropping this value does not stop them.
#[derive(Debug, Clone)]
pub struct MetricsServer {
    handle: PrometheusHandle,
    local_addr: SocketAddr,
}

/// Why [`serve`] could not start the endpoint.
#[derive(Debug)]
pub enum ServeError {
    /// The address could not be bound (in use, not local, no permission).
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another global `metrics` recorder is already installed.
    RecorderAlreadyInstalled,
    /// The exporter refused its configuration.
    Exporter(metrics_exporter_prometheus::BuildError),
    /// A serving thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { addr, source } => {
                write!(f, "cannot listen for metrics scrapes on {addr}: {source}")
            }
            Self::RecorderAlreadyInstalled => f.write_str(
                "cannot install the prometheus recorder: a global metrics recorder is \
                     already installed",
            ),
            Self::Exporter(error) => write!(f, "cannot configure the prometheus exporter: {error}"),
            Self::Thread(error) => write!(f, "cannot start the metrics server thread: {error}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } | Self::Thread(source) => Some(source),
            Self::Exporter(error) => Some(error),
            Self::RecorderAlreadyInstalled => None,
        }
    }
}

impl MetricsServer {
    /// The address the endpoint listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Renders the scrape text that `GET /metrics` returns now.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The exporter's handle, for rendering elsewhere.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

/// Installs the Prometheus recorder globally and serves `GET /metrics` on
/// `addr` (port 0 picks a free port; see [`MetricsServer::local_addr`]).
///
/// # Errors
///
/// Returns [`ServeError::Bind`] when `addr` cannot be bound,
/// [`ServeError::RecorderAlreadyInstalled`] when a global recorder is set,
/// and [`ServeError::Exporter`] or [`ServeError::Thread`] when the exporter
/// or its threads cannot be set up. Nothing keeps running after an error.
pub fn serve(addr: SocketAddr) -> Result<MetricsServer, ServeError> {
    // Bind first: an address in use is the likeliest failure.
    let listener = TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;

    // Install the recorder; a failure here drops the listener.
    let recorder = builder().map_err(ServeError::Exporter)?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| ServeError::RecorderAlreadyInstalled)?;

    // Serve scrapes, and fold histogram samples when nobody scrapes.
    let scrape_handle = handle.clone();
    thread::Builder::new()
        .name("mempressure-metrics".to_owned())
        .spawn(move || accept_loop(&listener, &scrape_handle))
        .map_err(ServeError::Thread)?;
    let upkeep_handle = handle.clone();
    thread::Builder::new()
        .name("mempressure-metrics-upkeep".to_owned())
        .spawn(move || loop {
            thread::sleep(UPKEEP_INTERVAL);
            upkeep_handle.run_upkeep();
        })
        .map_err(ServeError::Thread)?;

    tracing::info!(addr = %local_addr, "serving prometheus metrics on /metrics");
    Ok(MetricsServer { handle, local_addr })
}

/// Runs `record` with a fresh Prometheus recorder as the thread's recorder
/// and returns the scrape text, without HTTP or a global recorder.
pub fn render_with(record: impl FnOnce()) -> String {
    // The buckets are constants known to be valid; fall back to a plain
    // builder (summaries instead of buckets) rather than fail a render.
    let recorder = builder()
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder();
    metrics::with_local_recorder(&recorder, record);
    recorder.handle().render()
}

/// The exporter's configuration shared by [`serve`] and [`render_with`].
fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Suffix(TICK_SECONDS_SUFFIX.to_owned()),
        &TICK_SECONDS_BUCKETS,
    )
}

/// Answers connections one at a time, for the life of the process.
fn accept_loop(listener: &TcpListener, handle: &PrometheusHandle) {
    for stream in listener.incoming() {
        let result = stream.and_then(|stream| answer(stream, handle));
        if let Err(error) = result {
            tracing::debug!(error = %error, "metrics scrape failed");
        }
    }
}

/// Reads one request head and writes one response, then closes.
fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();

    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", handle.render()),
        ("GET", _) => (
            "404 Not Found",
            "not found: metrics are served on /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "only GET is served\n".into()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {TEXT_CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Reads up to the blank line that ends a request head.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
