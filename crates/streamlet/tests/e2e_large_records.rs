//! End to end: a large record leaves no buffer behind once it is written,
//! so streams that each took one cannot pin the budget.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{info_memory_u64, Server, TestDir};

/// Streams, each given one record of `RECORD_BYTES`.
const STREAMS: usize = 6;
const RECORD_BYTES: usize = 2 << 20;
/// Bytes `connections` may hold once every producer has gone, on top of
/// its idle figure (the control connection): far below one record.
const LEFT_BEHIND_BYTES: u64 = 1 << 20;
/// How long the server may take to drop a finished connection's buffers.
const SETTLE_TIME: Duration = Duration::from_secs(5);

/// What the `connections` component holds: connection state and buffers,
/// where a record's encoding was charged (caches count on their own).
fn connection_bytes(conn: &mut redis::Connection) -> u64 {
    info_memory_u64(conn, "mempressure_component_connections_bytes")
}

/// A server under a roomy budget, a control connection, and what
/// `connections` holds with only that connection open.
fn idle_server(dir: &TestDir) -> (Server, redis::Connection, u64) {
    let server = Server::start(dir, &["--memory-limit", "256MiB"]);
    let mut control = server.client();
    thread::sleep(Duration::from_millis(300));
    let idle = connection_bytes(&mut control);
    (server, control, idle)
}

/// What `connections` holds once it settles near `idle`, or after the
/// settle time.
fn settled_connection_bytes(control: &mut redis::Connection, idle: u64) -> u64 {
    let deadline = Instant::now() + SETTLE_TIME;
    let mut now = connection_bytes(control);
    while now > idle + LEFT_BEHIND_BYTES && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        now = connection_bytes(control);
    }
    now
}

#[test]
fn large_records_leave_no_buffer_behind() {
    let dir = TestDir::new("large-records");
    let (server, mut control, idle) = idle_server(&dir);

    // Each record comes on its own connection, which then closes.
    let value = vec![b'v'; RECORD_BYTES];
    for stream in 0..STREAMS {
        let mut producer = server.client();
        let id: String = redis::cmd("XADD")
            .arg(format!("s{stream}"))
            .arg("*")
            .arg("f")
            .arg(&value)
            .query(&mut producer)
            .expect("XADD of a large record");
        assert!(id.contains('-'), "reply {id:?}");
    }

    // Once the producers are gone, the records' bytes are gone too.
    let now = settled_connection_bytes(&mut control, idle);
    assert!(
        now <= idle + LEFT_BEHIND_BYTES,
        "after {STREAMS} records of {RECORD_BYTES} bytes, connections still hold {now} bytes \
         (idle {idle})"
    );
}

#[test]
fn many_streams_of_medium_records_leave_no_buffers_behind() {
    // Every stream keeps its encoding buffer between appends, so each one
    // it keeps must be small: 200 streams of 32 KiB records would otherwise
    // hold 6 MiB that no reclaimer can reach.
    const MANY_STREAMS: usize = 200;
    const MEDIUM_BYTES: usize = 32 << 10;
    let dir = TestDir::new("medium-records");
    let (server, mut control, idle) = idle_server(&dir);

    let value = vec![b'm'; MEDIUM_BYTES];
    {
        let mut producer = server.client();
        for stream in 0..MANY_STREAMS {
            let _: String = redis::cmd("XADD")
                .arg(format!("m{stream}"))
                .arg("*")
                .arg("f")
                .arg(&value)
                .query(&mut producer)
                .expect("XADD of a medium record");
        }
    }

    let now = settled_connection_bytes(&mut control, idle);
    assert!(
        now <= idle + LEFT_BEHIND_BYTES,
        "after {MANY_STREAMS} streams of {MEDIUM_BYTES}-byte records, connections still hold \
         {now} bytes (idle {idle})"
    );
}
