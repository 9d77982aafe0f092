//! A server out of file descriptors: accept errors are logged and backed off
//! (no busy loop), and accepting resumes once descriptors are free again.

mod fault_support;

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use fault_support::{
    cpu_ticks, eventually, ticks_per_second, Client, ProcessLimits, Server, TempDir, Value,
};

/// The server's RLIMIT_NOFILE.
const SERVER_OPEN_FILES: u64 = 64;
/// Connections opened: well past what the server can accept.
const CONNECTIONS: usize = 150;

#[test]
fn accept_backs_off_when_out_of_descriptors_and_resumes() {
    let dir = TempDir::new("fd-limit");
    let limits = ProcessLimits {
        open_files: Some(SERVER_OPEN_FILES),
        ..ProcessLimits::default()
    };
    let server = Server::start(dir.path(), &[], limits);

    // Fill the server's descriptor table; the rest wait in the backlog.
    let mut held: Vec<TcpStream> = (0..CONNECTIONS)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.port)).ok())
        .collect();
    assert!(held.len() > SERVER_OPEN_FILES as usize);
    let logged = eventually(Duration::from_secs(10), || {
        server.log().contains("accept failed")
    });
    assert!(logged, "no accept error logged; log:\n{}", server.log());

    // Out of descriptors, it must not spin: under half a core over 2 s.
    let ticks_before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_secs(2));
    let used_ticks = cpu_ticks(server.pid()) - ticks_before;
    assert!(
        used_ticks < ticks_per_second(),
        "streamlet used {used_ticks} clock ticks of CPU in 2 s while out of descriptors"
    );
    let log = server.log();
    assert!(
        log.contains("backoff_ms=1000"),
        "accept errors are not backed off to 1 s; log:\n{log}"
    );

    // Free descriptors: a new client is served again.
    held.clear();
    let served = eventually(Duration::from_secs(15), || {
        Client::connect(server.port)
            .and_then(|mut client| client.command(&["PING"]))
            .is_ok_and(|reply| reply == Value::Simple("PONG".into()))
    });
    assert!(
        served,
        "no PONG after descriptors were freed; log:\n{}",
        server.log()
    );
}
