//! End to end: idle connections drive a small budget to critical; then new
//! connections read `-OOM` and a clean close, open ones still get `PONG`, a
//! large request waits muted, and all of it recovers once the load leaves.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    info_memory_field, info_memory_u64, raw_connect, raw_ping, read_line, read_to_eof, Server,
    TestDir,
};

/// What the load must add on top of the idle server's usage to reach the
/// critical threshold.
const HEADROOM_BYTES: u64 = 3 << 20;
/// The default critical threshold, as a fraction of the limit.
const CRITICAL_FRACTION: f64 = 0.9;
/// Bounds on the load that should reach critical.
const MAX_IDLE_CONNECTIONS: usize = 3000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(30);
/// How long the level may take to return to normal once the load is gone.
const RECOVERY_TIME: Duration = Duration::from_secs(10);
/// Longer than the minimum dwell plus a few ticks of the monitor.
const SETTLE_TIME: Duration = Duration::from_millis(500);
/// The value of the request that must wait for room.
const LARGE_VALUE_BYTES: usize = 200 * 1024;

fn level(conn: &mut redis::Connection) -> String {
    info_memory_field(conn, "mempressure_level")
}

/// The figures a failure message needs.
fn memory_state(conn: &mut redis::Connection) -> String {
    [
        "mempressure_level",
        "mempressure_usage_bytes",
        "mempressure_critical_bytes",
        "mempressure_decided_by",
        "mempressure_correction_bytes",
        "mempressure_reserved_bytes",
        "used_memory",
    ]
    .map(|field| format!("{field}:{}", info_memory_field(conn, field)))
    .join(" ")
}

/// The idle server's usage, after its first ticks.
fn baseline_usage_bytes(dir: &TestDir) -> u64 {
    let server = Server::start(dir, &["--memory-limit", "1GiB"]);
    let mut conn = server.client();
    thread::sleep(Duration::from_millis(500));
    info_memory_u64(&mut conn, "mempressure_usage_bytes")
}

/// Opens connections that each answer one `PING` until the level is
/// critical and stays there: usage, not a stale figure, is above the
/// critical threshold.
///
/// The crossing is often decided on the shim's total plus the last tick's
/// correction, which still counts dirty pages that jemalloc then purges at
/// the next tick; usage falls back below critical and, after the dwell, so
/// does the level, and connections are admitted again. So the load goes on
/// until a check a few ticks after the last admitted connection still reads
/// `critical`.
fn load_until_critical(server: &Server, control: &mut redis::Connection) -> Vec<TcpStream> {
    let started = Instant::now();
    let mut idle = Vec::new();
    while idle.len() < MAX_IDLE_CONNECTIONS && started.elapsed() < MAX_LOAD_TIME {
        let mut stream = raw_connect(server.addr()).unwrap_or_else(|e| {
            panic!(
                "connection {} failed: {e} (descriptor limit?)",
                idle.len() + 1
            )
        });
        stream.write_all(b"PING\r\n").expect("send PING");
        let line = read_line(&mut stream).expect("the PING reply");
        let turned_away = line.starts_with(b"-OOM");
        if !turned_away {
            assert_eq!(line, b"+PONG\r\n", "idle connection {}", idle.len() + 1);
            idle.push(stream);
        }
        if turned_away || (idle.len() % 10 == 0 && level(control) == "critical") {
            // Past the dwell and a few ticks: is usage itself critical?
            thread::sleep(SETTLE_TIME);
            if level(control) == "critical" {
                return idle;
            }
        }
    }
    panic!(
        "{} idle connections in {:?} did not hold the level at critical: {}",
        idle.len(),
        started.elapsed(),
        memory_state(control)
    );
}

/// Sends an `XADD` carrying a large value and waits for its reply line in a
/// thread; the reply (or error) arrives on the returned channel.
fn send_large_xadd(mut stream: TcpStream) -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let value = vec![b'v'; LARGE_VALUE_BYTES];
        let mut request = format!(
            "*5\r\n$4\r\nXADD\r\n$5\r\nlarge\r\n$1\r\n*\r\n$1\r\nf\r\n${LARGE_VALUE_BYTES}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        // Waiting for room may take longer than the default timeouts.
        let long = Some(Duration::from_secs(50));
        let _ = stream.set_write_timeout(long);
        let _ = stream.set_read_timeout(long);
        let result = stream
            .write_all(&request)
            .and_then(|()| {
                let header = read_line(&mut stream)?;
                let id = read_line(&mut stream)?;
                Ok(format!(
                    "{}{}",
                    String::from_utf8_lossy(&header),
                    String::from_utf8_lossy(&id)
                ))
            })
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    rx
}

#[test]
fn critical_sheds_new_connections_mutes_large_requests_and_recovers() {
    let dir = TestDir::new("pressure");
    let baseline = baseline_usage_bytes(&dir);
    let limit = ((baseline + HEADROOM_BYTES) as f64 / CRITICAL_FRACTION).ceil() as u64;
    let limit_arg = limit.to_string();
    let server = Server::start(
        &dir,
        &[
            "--memory-limit",
            &limit_arg,
            "--memory-min-dwell-ms",
            "200",
            // Without hysteresis the level leaves critical as soon as usage
            // is below the threshold (after the dwell), so a level that
            // holds at critical means usage above it, where a reservation
            // cannot succeed.
            "--memory-hysteresis",
            "0",
        ],
    );
    let mut control = server.client();
    assert_eq!(level(&mut control), "normal", "idle at baseline {baseline}");

    // A client connected before the pressure, to send a large request later.
    let mut pending = server.raw();
    pending.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_line(&mut pending).unwrap(), b"+PONG\r\n");

    let idle = load_until_critical(&server, &mut control);
    println!(
        "baseline {baseline} B, limit {limit} B: critical after {} idle connections",
        idle.len()
    );

    // A new connection is turned away with one line and a FIN.
    let mut turned_away = server.raw();
    let line = read_line(&mut turned_away).expect("the -OOM line");
    assert!(
        line.starts_with(b"-OOM"),
        "a new connection at critical read {:?}",
        String::from_utf8_lossy(&line)
    );
    let rest = read_to_eof(&mut turned_away).expect("a clean close after -OOM, not a reset");
    assert!(rest.is_empty(), "nothing after -OOM: {rest:?}");

    // The connection that was already open is still served.
    let pong: String = redis::cmd("PING").query(&mut control).unwrap();
    assert_eq!(pong, "PONG");

    // A request larger than the unreserved buffer waits, muted.
    let reply = send_large_xadd(pending);
    match reply.recv_timeout(Duration::from_secs(1)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!(
            "the large XADD at critical was not muted: {other:?}; {}
{}",
            memory_state(&mut control),
            server.log()
        ),
    }

    // The load leaves: the level recovers and the muted request is served.
    drop(idle);
    let deadline = Instant::now() + RECOVERY_TIME;
    while level(&mut control) != "normal" && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        level(&mut control),
        "normal",
        "the level did not return to normal within {RECOVERY_TIME:?}: {}",
        memory_state(&mut control)
    );
    let answer = reply
        .recv_timeout(RECOVERY_TIME)
        .expect("the muted XADD was answered after recovery")
        .expect("the muted XADD's reply");
    let (header, id) = answer.split_once("\r\n").expect("a bulk reply");
    let id = id.trim_end();
    assert_eq!(header, format!("${}", id.len()), "reply {answer:?}");
    assert!(
        id.split_once('-')
            .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok()),
        "the muted XADD's reply is an ID: {answer:?}"
    );
    let len: u64 = redis::cmd("XLEN").arg("large").query(&mut control).unwrap();
    assert_eq!(len, 1);

    // Serving the muted request adds its bytes, which may take usage back up
    // for a few ticks; new connections are admitted again once it settles.
    let deadline = Instant::now() + RECOVERY_TIME;
    while let Err(error) = raw_ping(server.addr()) {
        assert!(
            Instant::now() < deadline,
            "a new connection still fails {RECOVERY_TIME:?} after recovery: {error}; {}",
            memory_state(&mut control)
        );
        thread::sleep(Duration::from_millis(50));
    }
    let rejected = info_memory_u64(&mut control, "mempressure_rejected_connections");
    assert!(rejected >= 1, "rejected connections counted: {rejected}");
}
