//! The scrape endpoint checked by Prometheus's own tools: `promtool check
//! metrics` on a real scrape, a real `prometheus` server scraping it, and the
//! alerting rules in `docs/` with their unit tests.
//!
//! These tests need Debian's `prometheus` package (`promtool`, `prometheus`
//! on PATH). Without it they fail, unless `MEMPRESSURE_SKIP_PROMETHEUS=1` is
//! set: then they say they were skipped and pass.
#![cfg(feature = "prometheus")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mempressure::level::PressureLevel;
use mempressure::metrics::{MetricsRecorder, TickMetrics};
use mempressure::os::ProcessMemory;
use mempressure::prometheus::{serve, MetricsServer};

/// How long the Prometheus server gets to start and scrape once.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(30);

/// Returns the path of `tool`, or `None` when it is missing and skipping was
/// asked for. Panics with instructions when it is missing otherwise.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    if std::env::var("MEMPRESSURE_SKIP_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("skipped: {tool} is not installed and MEMPRESSURE_SKIP_PROMETHEUS=1 is set");
        return None;
    }
    panic!(
        "{tool} is not on PATH: install it (Debian: apt-get install prometheus) or set \
         MEMPRESSURE_SKIP_PROMETHEUS=1 to skip this test"
    );
}

/// The endpoint of this test process, with one tick recorded.
fn server() -> &'static MetricsServer {
    static SERVER: OnceLock<MetricsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = serve(SocketAddr::from(([127, 0, 0, 1], 0))).expect("serve on loopback");
        let components = [
            "connections",
            "request_buffers",
            "segment_cache",
            "index_cache",
        ];
        let recorder = MetricsRecorder::new("streamline", &components).expect("valid prefix");
        recorder.record_transition(PressureLevel::Normal, PressureLevel::Warning);
        recorder.record_tick(&TickMetrics {
            limit_bytes: 1 << 30,
            warning_bytes: 858_993_459,
            critical_bytes: 966_367_641,
            usage_bytes: 900_000_000,
            tracked_bytes: 890_000_000,
            correction_bytes: 10_000_000,
            level: PressureLevel::Warning,
            components: &[("connections", 1 << 20), ("segment_cache", 1 << 28)],
            reserved: &[("request_buffers", 1 << 16)],
            process: Some(ProcessMemory {
                resident_bytes: 950_000_000,
                virtual_bytes: 4_000_000_000,
                anon_resident_bytes: Some(920_000_000),
                ..Default::default()
            }),
            jemalloc: None,
            cgroup_usage_bytes: Some(960_000_000),
            cgroup_limit_bytes: None,
            tick_seconds: 0.0003,
        });
        server
    })
}

/// GETs `target` from `addr` with HTTP/1.1 and returns status line and body.
fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    // Prometheus answers its API with chunks; the body text is enough here.
    Ok((status, body.to_owned()))
}

/// A directory under the system temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed by its PID when dropped, so a failing test does not
/// leave it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

#[test]
fn scrape_passes_promtool_check_metrics() {
    let Some(promtool) = find_tool("promtool") else {
        return;
    };
    let (status, body) = http_get(server().local_addr(), "/metrics").expect("scrape");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.contains(r#"streamline_memory_pressure{level="warning"} 1"#),
        "{body}"
    );

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write scrape");
    let output = child.wait_with_output().expect("wait for promtool");
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool failed: {problems}\n{body}"
    );
    assert_eq!(problems.trim(), "", "promtool found problems in\n{body}");
}

#[test]
fn other_paths_and_methods_are_refused() {
    let addr = server().local_addr();
    let (status, _) = http_get(addr, "/").expect("request /");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, body) = http_get(addr, "/metrics?x=1").expect("request with query");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.contains("streamline_memory_limit_bytes 1073741824"),
        "{body}"
    );
}

#[test]
fn a_second_serve_is_an_error_not_a_panic() {
    // The address in use is reported first.
    let addr = server().local_addr();
    let error = serve(addr).unwrap_err();
    assert!(error
        .to_string()
        .contains(&format!("cannot listen for metrics scrapes on {addr}")));

    // A free address fails on the recorder already installed.
    let error = serve(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap_err();
    assert!(error
        .to_string()
        .contains("a global metrics recorder is already installed"));
}

#[test]
fn a_real_prometheus_server_scrapes_the_endpoint() {
    let Some(prometheus) = find_tool("prometheus") else {
        return;
    };
    let target = server().local_addr();
    let dir = TempDir::new("mempressure-prometheus");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mempressure\n    static_configs:\n\
             \x20     - targets: ['{target}']\n"
        ),
    )
    .expect("write config");
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.0.join("prometheus.log")).expect("log file");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let _child = KillOnDrop(child);

    // Poll the query API until the series arrives, for at most 30 s.
    let deadline = Instant::now() + PROMETHEUS_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((_, body)) = http_get(web, "/api/v1/query?query=streamline_memory_pressure") {
            if body.contains(r#""level":"warning""#) && body.contains(r#""value":"#) {
                assert!(body.contains(r#""status":"success""#), "{body}");
                return;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
    panic!("no streamline_memory_pressure series within 30 s; last answer {last:?}\nlog:\n{log}");
}

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    let Some(promtool) = find_tool("promtool") else {
        return;
    };
    let docs = docs_dir();
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(args)
            .current_dir(&docs)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
