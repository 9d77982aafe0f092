//! A client that pipelines large XRANGE requests and never reads its
//! replies: the server stops working for it once the socket is full instead
//! of queueing replies without bound, keeps serving everyone else, and lets
//! the memory go when the client leaves.

mod fault_support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use fault_support::{encode, eventually, used_memory, ProcessLimits, Server, TempDir, Value};

/// Entries in the stream and bytes per value: a 4 MiB stream.
const ENTRIES: usize = 4000;
const VALUE_BYTES: usize = 1024;
/// Pipelined requests, each asking for 1000 entries (about 1 MiB of reply):
/// about 2 GiB of replies if they were all queued.
const REQUESTS: usize = 2000;
/// What the server may hold over the whole run.
const MEMORY_BOUND_BYTES: u64 = 64 << 20;

#[test]
fn unread_replies_do_not_grow_the_server_and_others_are_served() {
    let dir = TempDir::new("slow-reader");
    let server = Server::start(dir.path(), &[], ProcessLimits::default());
    let mut client = server.connect();
    let value = "v".repeat(VALUE_BYTES);
    for _ in 0..ENTRIES {
        let reply = client.command(&["XADD", "s", "*", "f", &value]).unwrap();
        assert!(matches!(reply, Value::Bulk(_)), "XADD gave {reply:?}");
    }
    let before_bytes = used_memory(server.port);

    // The slow client: writes every request from a thread (its writes block
    // once the server stops reading) and never reads.
    let slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = slow.try_clone().unwrap();
    let pipeline: Vec<u8> = (0..REQUESTS)
        .flat_map(|_| encode(&["XRANGE", "s", "-", "+", "COUNT", "1000"]))
        .collect();
    let sender = thread::spawn(move || {
        // Fails with a timeout or a reset once the server closes; either is
        // fine, only the server's side is under test.
        let _ = writer.write_all(&pipeline);
    });

    // While it stalls: memory stays bounded and PING is answered.
    let mut peak_bytes = 0;
    for _ in 0..30 {
        thread::sleep(Duration::from_millis(100));
        peak_bytes = peak_bytes.max(used_memory(server.port));
        assert_eq!(
            client.command(&["PING"]).unwrap(),
            Value::Simple("PONG".into())
        );
    }
    assert!(
        peak_bytes < MEMORY_BOUND_BYTES,
        "used_memory reached {peak_bytes} bytes with a slow reader (before: {before_bytes})"
    );

    // The slow client leaves: what it held is released.
    let _ = slow.shutdown(std::net::Shutdown::Both);
    drop(slow);
    let _ = sender.join();
    let released = eventually(Duration::from_secs(10), || {
        used_memory(server.port) < before_bytes + (4 << 20)
    });
    assert!(
        released,
        "used_memory stayed at {} bytes after the slow client left (before: {before_bytes})",
        used_memory(server.port)
    );
}
