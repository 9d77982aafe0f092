//! One `XRANGE - +` over a stream far larger than anything the server may
//! hold, from a client that reads slowly: the reply is built and written in
//! batches, so the server never holds the whole range.
//!
//! Before replies were streamed, this request alone held about three copies
//! of the 40 MiB stream (entries, reply tree, encoded bytes).

mod fault_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use fault_support::{encode, used_memory, ProcessLimits, Server, TempDir, Value};

const ENTRIES: usize = 160;
const VALUE_BYTES: usize = 256 * 1024;
/// What the server may hold while the reply is in flight.
const MEMORY_BOUND_BYTES: u64 = 24 << 20;

#[test]
fn a_whole_stream_range_is_answered_in_bounded_memory() {
    // Arrange: a 40 MiB stream, and a small block cache so that what the
    // server holds is the answer, not cached blocks.
    let dir = TempDir::new("large-range");
    let server = Server::start(
        dir.path(),
        &["--segment-cache", "4MiB"],
        ProcessLimits::default(),
    );
    let mut client = server.connect();
    let value = "v".repeat(VALUE_BYTES);
    for _ in 0..ENTRIES {
        let reply = client.command(&["XADD", "s", "*", "f", &value]).unwrap();
        assert!(matches!(reply, Value::Bulk(_)), "XADD gave {reply:?}");
    }

    // Act: ask for all of it (then QUIT, so the answer ends with a close)
    // and read nothing for a while.
    let mut reader = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = encode(&["XRANGE", "s", "-", "+"]);
    request.extend(encode(&["QUIT"]));
    reader.write_all(&request).unwrap();
    let mut peak = 0;
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(100));
        peak = peak.max(used_memory(server.port));
    }

    // Assert: bounded while stalled, and the whole answer arrives intact.
    assert!(
        peak < MEMORY_BOUND_BYTES,
        "server held {peak} bytes for a stalled range"
    );
    let mut answer = Vec::new();
    reader.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(format!("*{ENTRIES}\r\n").as_bytes()));
    assert!(answer.ends_with(b"+OK\r\n"));
    let value_header = format!("${VALUE_BYTES}\r\n");
    let values = answer
        .windows(value_header.len())
        .filter(|w| *w == value_header.as_bytes());
    assert_eq!(values.count(), ENTRIES);
}
