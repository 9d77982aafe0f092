//! End to end: the real `redis-cli` and `redis-benchmark` work against
//! streamlet.
//!
//! They come with Debian's `redis-tools`. Without them the test fails with
//! an install hint, unless `MEMPRESSURE_SKIP_REDIS_TOOLS=1` is set.

mod common;

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{raw_ping, Server, TestDir};

/// The longest one tool run may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(40);
const BENCH_REQUESTS: u64 = 20_000;

/// Whether the tools are installed; panics with a hint when they are not,
/// unless skipping is asked for.
fn tools_available() -> bool {
    let found = ["redis-cli", "redis-benchmark"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if found {
        return true;
    }
    if std::env::var("MEMPRESSURE_SKIP_REDIS_TOOLS").as_deref() == Ok("1") {
        println!("skipped: redis-cli or redis-benchmark not found");
        return false;
    }
    panic!(
        "redis-cli and redis-benchmark are needed: install them (Debian/Ubuntu: \
         `apt-get install redis-tools`), or set MEMPRESSURE_SKIP_REDIS_TOOLS=1 to skip"
    );
}

/// Runs `tool` against the server with `args`, bounded in time; returns
/// its standard output and error together.
fn run_tool(dir: &TestDir, server: &Server, tool: &str, args: &[&str]) -> String {
    let out_path = dir.path().join(format!("{tool}.out"));
    let out = File::create(&out_path).expect("create the tool's output file");
    let err = out.try_clone().expect("share the output file");
    let port = server.port().to_string();
    let mut child = Command::new(tool)
        .args(["-h", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{tool} {args:?} ran past {TOOL_TIMEOUT:?}; its output:\n{}",
                fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "{tool} {args:?}: {status}; output:\n{output}"
    );
    output
}

/// The lines that report an error, other than `-OOM` sheds; progress lines
/// end in `\r`, so both line endings split.
fn error_lines(output: &str) -> Vec<&str> {
    output
        .split(['\r', '\n'])
        .filter(|line| line.to_ascii_lowercase().contains("error") && !line.contains("OOM"))
        .collect()
}

#[test]
fn redis_cli_runs_the_stream_commands() {
    if !tools_available() {
        return;
    }
    let dir = TestDir::new("tools-cli");
    let server = Server::start(&dir, &[]);

    assert_eq!(
        run_tool(&dir, &server, "redis-cli", &["PING"]).trim(),
        "PONG"
    );
    let added = run_tool(&dir, &server, "redis-cli", &["XADD", "s", "1-1", "f", "v"]);
    assert_eq!(added.trim(), "1-1");
    let added = run_tool(&dir, &server, "redis-cli", &["XADD", "s", "*", "g", "w"]);
    let auto = added.trim().to_owned();
    assert!(auto.contains('-'), "an ID: {auto:?}");
    let range = run_tool(&dir, &server, "redis-cli", &["XRANGE", "s", "-", "+"]);
    let lines: Vec<&str> = range.lines().map(str::trim).collect();
    assert_eq!(lines, ["1-1", "f", "v", auto.as_str(), "g", "w"], "{range}");
    let len = run_tool(&dir, &server, "redis-cli", &["XLEN", "s"]);
    assert_eq!(len.trim(), "2");
    let info = run_tool(&dir, &server, "redis-cli", &["INFO", "memory"]);
    assert!(info.contains("# Memory"), "{info}");
    assert!(info.contains("mempressure_level:normal"), "{info}");
    assert!(info.contains("used_memory:"), "{info}");
}

#[test]
fn redis_benchmark_runs_without_errors() {
    if !tools_available() {
        return;
    }
    let dir = TestDir::new("tools-bench");
    let mut server = Server::start(&dir, &[]);
    let requests = BENCH_REQUESTS.to_string();
    let common = ["-q", "-n", &requests, "-c", "50", "-P", "16"];

    let mut args = common.to_vec();
    args.extend(["XADD", "bench", "*", "f", "v"]);
    let output = run_tool(&dir, &server, "redis-benchmark", &args);
    assert!(
        error_lines(&output).is_empty(),
        "redis-benchmark XADD reported errors:\n{output}"
    );
    let mut args = common.to_vec();
    args.extend(["-t", "ping"]);
    let output = run_tool(&dir, &server, "redis-benchmark", &args);
    assert!(
        error_lines(&output).is_empty(),
        "redis-benchmark -t ping reported errors:\n{output}"
    );

    assert!(server.is_running(), "the server died:\n{}", server.log());
    raw_ping(server.addr()).expect("the server answers after the benchmark");
    let mut conn = server.client();
    let len: u64 = redis::cmd("XLEN").arg("bench").query(&mut conn).unwrap();
    assert!(len >= BENCH_REQUESTS, "XLEN bench is {len}");
}
