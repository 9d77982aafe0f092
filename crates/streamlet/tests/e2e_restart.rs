//! End to end: every acknowledged record survives a SIGKILL, and a garbage
//! tail on the last segment is cut at the next start.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Server, TestDir};

type Entries = Vec<(String, Vec<String>)>;

const RECORDS: usize = 500;

fn all_entries(conn: &mut redis::Connection, key: &str) -> Entries {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(conn)
        .expect("XRANGE")
}

fn xlen(conn: &mut redis::Connection, key: &str) -> usize {
    redis::cmd("XLEN").arg(key).query(conn).expect("XLEN")
}

/// The segment file that sorts last in the one stream directory.
fn last_segment(data_dir: &Path) -> PathBuf {
    let streams = data_dir.join("streams");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&streams)
        .unwrap_or_else(|e| panic!("list {}: {e}", streams.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one stream directory: {dirs:?}");
    let dir = dirs.remove(0);
    let mut logs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("list the stream directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs.pop()
        .unwrap_or_else(|| panic!("no segment in {}", dir.display()))
}

#[test]
fn acknowledged_records_survive_sigkill_and_a_garbage_tail_is_cut() {
    let dir = TestDir::new("restart");

    // Write, acknowledged one by one, then kill without any shutdown.
    let mut server = Server::start(&dir, &[]);
    let mut conn = server.client();
    let mut acked: Entries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let value = format!("value-{i}-{}", "x".repeat(i % 50));
        let id: String = redis::cmd("XADD")
            .arg("log")
            .arg("*")
            .arg("n")
            .arg(i)
            .arg("v")
            .arg(&value)
            .query(&mut conn)
            .expect("XADD");
        acked.push((id, vec!["n".into(), i.to_string(), "v".into(), value]));
    }
    drop(conn);
    server.kill();

    // Every acknowledged record is back.
    let mut server = Server::start(&dir, &[]);
    let mut conn = server.client();
    assert_eq!(xlen(&mut conn, "log"), RECORDS);
    assert_eq!(all_entries(&mut conn, "log"), acked);
    drop(conn);
    server.kill();

    // A torn or corrupt tail: bytes after the last record.
    let segment = last_segment(&dir.data_dir());
    let valid_len = fs::metadata(&segment).expect("segment metadata").len();
    let mut file = OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open the segment");
    file.write_all(b"\x17\xde\xad\xbe\xefgarbage that is no record\xff\x00\x01")
        .expect("append garbage");
    drop(file);

    let mut server = Server::start(&dir, &[]);
    let mut conn = server.client();
    assert_eq!(xlen(&mut conn, "log"), RECORDS);
    assert_eq!(all_entries(&mut conn, "log"), acked);
    assert_eq!(
        fs::metadata(&segment).expect("segment metadata").len(),
        valid_len,
        "the garbage tail was cut from {}",
        segment.display()
    );

    // Appending goes on after the last good record.
    let id: String = redis::cmd("XADD")
        .arg("log")
        .arg("*")
        .arg("n")
        .arg("after")
        .query(&mut conn)
        .expect("XADD after recovery");
    acked.push((id, vec!["n".into(), "after".into()]));
    assert_eq!(xlen(&mut conn, "log"), RECORDS + 1);
    assert_eq!(all_entries(&mut conn, "log"), acked);
    assert!(
        server.log().contains("torn or corrupt tail"),
        "the cut is logged:\n{}",
        server.log()
    );
    drop(conn);
    server.kill();

    // And what was appended after the cut survives the next start too.
    let server = Server::start(&dir, &[]);
    let mut conn = server.client();
    assert_eq!(all_entries(&mut conn, "log"), acked);
}
