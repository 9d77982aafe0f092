//! A client that hangs up while its large request is muted frees its buffer
//! and reservations at once, and a request that can never fit the budget is
//! refused instead of waiting for ever.
//!
//! Surfaced by a review run at an 8 MiB budget: muted connections waited for
//! room without watching their sockets, kept their reservations after their
//! clients left, and held the server at critical with no client connected.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use std::time::Instant;

use common::{info_memory_field, Server, TestDir};

/// Reserved request bytes, from `INFO memory`.
fn reserved_bytes(conn: &mut redis::Connection) -> u64 {
    let value = info_memory_field(conn, "mempressure_reserved_bytes");
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad mempressure_reserved_bytes {value:?}"))
}

/// Makes closing `stream` send a reset at once (SO_LINGER with zero time).
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor is the open socket `stream` owns, and `linger`
    // is a valid value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER) failed");
}

/// Polls `check` for up to `wait`.
fn eventually(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// Starts an XADD whose value is `value_bytes` long and sends only `sent`
/// bytes of it.
fn partial_xadd(port: u16, value_bytes: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let header = format!("*5\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n$1\r\nf\r\n${value_bytes}\r\n");
    stream.write_all(header.as_bytes()).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < sent {
        let n = chunk.len().min(sent - written);
        if stream.write_all(&chunk[..n]).is_err() {
            break; // the server stopped reading: muted
        }
        written += n;
    }
    stream
}

#[test]
fn a_muted_client_that_hangs_up_gives_its_reservations_back() {
    // Arrange: an 8 MiB budget and one client holding a large partial
    // request, so a second one is muted part way.
    let dir = TestDir::new("muted-hangup");
    let server = Server::start(&dir, &["--memory-limit", "8MiB"]);
    // Opened first: at critical new connections are turned away.
    let mut control = server.client();
    let first = partial_xadd(server.port(), 2 << 20, 3 << 19);
    thread::sleep(Duration::from_millis(300));
    let alone = reserved_bytes(&mut control);
    assert!(
        alone > 1 << 20,
        "the first request should hold a reservation, holds {alone}"
    );
    let second = partial_xadd(server.port(), 3 << 20, 5 << 19);
    thread::sleep(Duration::from_millis(300));
    let both = reserved_bytes(&mut control);
    assert!(
        both > alone,
        "the second request should hold some too ({both} vs {alone})"
    );

    // Act: the muted client leaves. It resets: a plain close would queue
    // its FIN behind the bytes the muted server does not read, and the FIN
    // would arrive only once the client's kernel gives up on them.
    reset_on_close(&second);
    drop(second);

    // Assert: its reservations come back without any read of its socket.
    let released = eventually(Duration::from_secs(5), || {
        reserved_bytes(&mut control) <= alone
    });
    let now = reserved_bytes(&mut control);
    assert!(
        released,
        "reservations stayed at {now} after the client left (one holds {alone})"
    );
    drop(first);
}

#[test]
fn a_request_larger_than_the_budget_is_refused_at_once() {
    let dir = TestDir::new("too-large");
    let server = Server::start(&dir, &["--memory-limit", "8MiB"]);

    // A 16 MiB value at an 8 MiB budget can never be reserved.
    let mut stream = partial_xadd(server.port(), 16 << 20, 12 << 20);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("-ERR request refused"), "got {text:?}");
}
