//! Thousands of connections at once: each PING is answered, or the client is
//! told `-OOM` when the server is at critical, never reset; the server
//! survives.

mod fault_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fault_support::{raise_open_files, ProcessLimits, Server, TempDir, REPLY_WAIT};

const CONNECTIONS: usize = 2000;
const PONG: &[u8] = b"+PONG\r\n";

/// Reads one line (up to `\n`) from `stream`.
fn read_line(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
    }
    Ok(line)
}

#[test]
fn every_one_of_thousands_of_connections_gets_pong_or_oom() {
    // Our descriptors: the clients, plus slack for the test harness.
    let soft = raise_open_files(CONNECTIONS as u64 + 256);
    assert!(
        soft >= CONNECTIONS as u64 + 64,
        "RLIMIT_NOFILE is only {soft}; the test needs {CONNECTIONS} sockets"
    );
    let dir = TempDir::new("flood");
    let mut server = Server::start(dir.path(), &[], ProcessLimits::default());

    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|n| {
            let stream = TcpStream::connect(("127.0.0.1", server.port))
                .unwrap_or_else(|e| panic!("connection {n} failed: {e}"));
            stream.set_read_timeout(Some(REPLY_WAIT)).unwrap();
            stream
        })
        .collect();
    for stream in &mut streams {
        stream.write_all(b"PING\r\n").unwrap();
    }
    let mut pongs = 0;
    let mut ooms = 0;
    for (n, stream) in streams.iter_mut().enumerate() {
        let line = read_line(stream).unwrap_or_else(|e| panic!("connection {n}: {e}"));
        if line == PONG {
            pongs += 1;
        } else if line.starts_with(b"-OOM ") {
            ooms += 1;
        } else {
            panic!(
                "connection {n} read {:?}, neither PONG nor -OOM",
                String::from_utf8_lossy(&line)
            );
        }
    }
    assert_eq!(pongs + ooms, CONNECTIONS);
    drop(streams);

    // The server is still there and serving.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.is_running(),
        "streamlet exited; log:\n{}",
        server.log()
    );
    let mut client = server.connect();
    assert_eq!(
        client.command(&["PING"]).unwrap(),
        fault_support::Value::Simple("PONG".into())
    );
}
