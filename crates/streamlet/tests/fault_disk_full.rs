//! A full disk, simulated with RLIMIT_FSIZE (and SIGXFSZ ignored, so a write
//! past it fails with EFBIG): XADD gets a clear `-ERR`, the server stays up,
//! and after a restart without the limit exactly the acknowledged records
//! are there.

mod fault_support;

use fault_support::{all_ids, ProcessLimits, Server, TempDir, Value};

/// Largest file the server may write: a few hundred records.
const FILE_SIZE_BYTES: u64 = 256 << 10;
const VALUE_BYTES: usize = 1000;
/// More XADDs than fit: the loop must meet the limit well before.
const MAX_APPENDS: usize = 10_000;

#[test]
fn append_past_the_file_size_limit_fails_cleanly_and_only_acked_records_survive() {
    let dir = TempDir::new("disk-full");
    let limits = ProcessLimits {
        file_size_bytes: Some(FILE_SIZE_BYTES),
        ..ProcessLimits::default()
    };
    let mut server = Server::start(dir.path(), &[], limits);
    let mut client = server.connect();
    let value = "v".repeat(VALUE_BYTES);

    let mut acked: Vec<String> = Vec::new();
    let mut failure = None;
    for n in 1..=MAX_APPENDS {
        let id = format!("{n}-0");
        match client.command(&["XADD", "s", &id, "f", &value]).unwrap() {
            Value::Bulk(bytes) => acked.push(String::from_utf8(bytes).unwrap()),
            Value::Error(message) => {
                failure = Some((id, message));
                break;
            }
            other => panic!("XADD gave {other:?}"),
        }
    }
    let (failed_id, message) = failure.expect("XADD never failed under RLIMIT_FSIZE");
    assert!(
        !acked.is_empty(),
        "the first XADD already failed: {message}"
    );
    // The reply names the write that failed, the segment and the OS error.
    assert!(
        message.starts_with("ERR cannot write to ") && message.contains("File too large"),
        "unclear error reply: {message}"
    );

    // Still up: PING, reads, and a later XADD fails the same way (the file
    // is still full) instead of corrupting anything.
    assert_eq!(
        client.command(&["PING"]).unwrap(),
        Value::Simple("PONG".into())
    );
    assert_eq!(all_ids(&mut client, "s"), acked);
    let again = client
        .command(&["XADD", "s", &failed_id, "f", &value])
        .unwrap();
    assert!(matches!(again, Value::Error(_)), "XADD gave {again:?}");
    assert!(server.is_running());

    // Restart without the limit: exactly the acknowledged records.
    server.kill();
    drop(server);
    let server = Server::start(dir.path(), &[], ProcessLimits::default());
    let mut client = server.connect();
    assert_eq!(all_ids(&mut client, "s"), acked);
    assert_eq!(
        client.command(&["XLEN", "s"]).unwrap(),
        Value::Integer(acked.len() as i64)
    );

    // And the stream takes the failed record now.
    let reply = client
        .command(&["XADD", "s", &failed_id, "f", &value])
        .unwrap();
    assert_eq!(reply, Value::Bulk(failed_id.into_bytes()));
}
