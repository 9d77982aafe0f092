//! Clients that declare a large bulk string and then send nothing: each
//! costs the server only what it sent, PING keeps working, and everything is
//! released when they disconnect.

mod fault_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use fault_support::{eventually, used_memory, ProcessLimits, Server, TempDir, Value};

const CLIENTS: usize = 200;
/// What each client declares: 10 MB, under the 16 MiB bulk limit.
const DECLARED_BYTES: usize = 10_000_000;
/// What the server may hold with every client stalled: far below the 2 GB
/// they declared together.
const MEMORY_BOUND_BYTES: u64 = 64 << 20;

#[test]
fn declared_but_unsent_bulks_cost_little_and_are_released() {
    let dir = TempDir::new("stalled-bulk");
    let server = Server::start(dir.path(), &[], ProcessLimits::default());
    let before_bytes = used_memory(server.port);

    let header = format!("*3\r\n$4\r\nECHO\r\n$1\r\nx\r\n${DECLARED_BYTES}\r\nabc");
    let mut stalled: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            stream.write_all(header.as_bytes()).unwrap();
            stream
        })
        .collect();

    // Every stalled request has been read by now: PING on a new connection
    // is answered after all of them were accepted.
    let mut client = server.connect();
    assert_eq!(
        client.command(&["PING"]).unwrap(),
        Value::Simple("PONG".into())
    );
    std::thread::sleep(Duration::from_millis(500));
    let stalled_bytes = used_memory(server.port);
    assert!(
        stalled_bytes < MEMORY_BOUND_BYTES,
        "used_memory is {stalled_bytes} bytes with {CLIENTS} stalled bulks (before: \
         {before_bytes})"
    );
    assert_eq!(
        client.command(&["PING"]).unwrap(),
        Value::Simple("PONG".into())
    );

    // They leave: the server drops their buffers.
    for stream in stalled.drain(..) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    let released = eventually(Duration::from_secs(10), || {
        used_memory(server.port) <= before_bytes + (1 << 20)
    });
    assert!(
        released,
        "used_memory stayed at {} bytes after the stalled clients left (before: \
         {before_bytes}, stalled: {stalled_bytes})",
        used_memory(server.port)
    );
}
