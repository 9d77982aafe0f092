//! End to end: the command subset answers a real client as Redis would,
//! one command at a time and pipelined.

mod common;

use common::{info_memory_field, read_to_eof, Server, TestDir};
use std::io::Write;

type Entries = Vec<(String, Vec<String>)>;

fn xadd(conn: &mut redis::Connection, key: &str, id: &str, fields: &[&str]) -> String {
    redis::cmd("XADD")
        .arg(key)
        .arg(id)
        .arg(fields)
        .query(conn)
        .unwrap_or_else(|e| panic!("XADD {key} {id}: {e}"))
}

#[test]
fn ping_and_echo_answer() {
    let dir = TestDir::new("roundtrip-ping");
    let server = Server::start(&dir, &[]);
    let mut conn = server.client();

    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
    let message: String = redis::cmd("PING").arg("hi").query(&mut conn).unwrap();
    assert_eq!(message, "hi");
    let echoed: Vec<u8> = redis::cmd("ECHO")
        .arg(&b"bin\x00\r\nary"[..])
        .query(&mut conn)
        .unwrap();
    assert_eq!(echoed, b"bin\x00\r\nary");
}

#[test]
fn xadd_xrange_and_xlen_keep_entries_in_id_order() {
    let dir = TestDir::new("roundtrip-streams");
    let server = Server::start(&dir, &[]);
    let mut conn = server.client();

    assert_eq!(xadd(&mut conn, "s", "5-1", &["a", "1"]), "5-1");
    assert_eq!(xadd(&mut conn, "s", "5-*", &["b", "2"]), "5-2");
    assert_eq!(xadd(&mut conn, "s", "7", &["c", "3", "d", "4"]), "7-0");
    let auto = xadd(&mut conn, "s", "*", &["e", "5"]);
    let (ms, seq) = auto.split_once('-').expect("an ID is ms-seq");
    assert!(ms.parse::<u64>().unwrap() > 7, "auto ID {auto}");
    seq.parse::<u64>().unwrap();

    // IDs must grow.
    let error = redis::cmd("XADD")
        .arg("s")
        .arg("6-0")
        .arg("f")
        .arg("v")
        .query::<String>(&mut conn)
        .unwrap_err();
    assert_eq!(error.code(), Some("ERR"));
    assert_eq!(
        error.detail(),
        Some("The ID specified in XADD is equal or smaller than the target stream top item")
    );
    let error = redis::cmd("XADD")
        .arg("s")
        .arg("0-0")
        .arg("f")
        .arg("v")
        .query::<String>(&mut conn)
        .unwrap_err();
    assert_eq!(
        error.detail(),
        Some("The ID specified in XADD must be greater than 0-0")
    );

    let all: Entries = redis::cmd("XRANGE")
        .arg("s")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    let expected: Entries = vec![
        ("5-1".into(), vec!["a".into(), "1".into()]),
        ("5-2".into(), vec!["b".into(), "2".into()]),
        (
            "7-0".into(),
            vec!["c".into(), "3".into(), "d".into(), "4".into()],
        ),
        (auto.clone(), vec!["e".into(), "5".into()]),
    ];
    assert_eq!(all, expected);

    let first_two: Entries = redis::cmd("XRANGE")
        .arg("s")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(2)
        .query(&mut conn)
        .unwrap();
    assert_eq!(first_two, expected[..2]);
    let from_seven: Entries = redis::cmd("XRANGE")
        .arg("s")
        .arg("7")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(from_seven, expected[2..]);

    let len: u64 = redis::cmd("XLEN").arg("s").query(&mut conn).unwrap();
    assert_eq!(len, 4);
    let missing: u64 = redis::cmd("XLEN").arg("nope").query(&mut conn).unwrap();
    assert_eq!(missing, 0);
    let none: Entries = redis::cmd("XRANGE")
        .arg("nope")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn info_memory_reports_the_pressure_fields() {
    let dir = TestDir::new("roundtrip-info");
    let server = Server::start(&dir, &["--memory-limit", "512MiB"]);
    let mut conn = server.client();

    assert_eq!(info_memory_field(&mut conn, "mempressure_level"), "normal");
    assert_eq!(
        info_memory_field(&mut conn, "mempressure_limit_bytes"),
        (512u64 << 20).to_string()
    );
    assert_eq!(
        info_memory_field(&mut conn, "maxmemory"),
        (512u64 << 20).to_string()
    );
    for field in [
        "used_memory",
        "mempressure_usage_bytes",
        "mempressure_critical_bytes",
        "mempressure_rejected_connections",
        "mempressure_component_connections_bytes",
        "mempressure_component_request_buffers_bytes",
        "mempressure_component_segment_cache_bytes",
        "mempressure_component_index_cache_bytes",
    ] {
        let value = info_memory_field(&mut conn, field);
        assert!(value.parse::<u64>().is_ok(), "{field}:{value}");
    }
    let usage: u64 = info_memory_field(&mut conn, "mempressure_usage_bytes")
        .parse()
        .unwrap();
    assert!(usage > 0, "usage is measured");
}

#[test]
fn unknown_command_gets_redis_error_text() {
    let dir = TestDir::new("roundtrip-unknown");
    let server = Server::start(&dir, &[]);
    let mut conn = server.client();

    let error = redis::cmd("FOO")
        .arg("a")
        .arg("b")
        .query::<String>(&mut conn)
        .unwrap_err();
    assert_eq!(error.code(), Some("ERR"));
    // Redis ends the list with a space after every argument.
    assert_eq!(
        error.detail(),
        Some("unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    // The connection is still usable.
    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn quit_answers_ok_and_closes_cleanly() {
    let dir = TestDir::new("roundtrip-quit");
    let server = Server::start(&dir, &[]);
    let mut stream = server.raw();

    stream.write_all(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
    let rest = read_to_eof(&mut stream).expect("a clean close after QUIT");
    assert_eq!(rest, b"+OK\r\n");
}

#[test]
fn a_pipeline_of_a_thousand_xadds_comes_back_in_order() {
    const COUNT: usize = 1000;
    let dir = TestDir::new("roundtrip-pipeline");
    let server = Server::start(&dir, &[]);
    let mut conn = server.client();

    let mut pipe = redis::pipe();
    for i in 0..COUNT {
        pipe.cmd("XADD").arg("p").arg("*").arg("i").arg(i);
    }
    let ids: Vec<String> = pipe.query(&mut conn).unwrap();
    assert_eq!(ids.len(), COUNT);

    let all: Entries = redis::cmd("XRANGE")
        .arg("p")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(all.len(), COUNT);
    for (i, ((id, fields), acked)) in all.iter().zip(&ids).enumerate() {
        assert_eq!(id, acked, "entry {i}");
        assert_eq!(fields, &["i".to_owned(), i.to_string()], "entry {i}");
    }
    let len: usize = redis::cmd("XLEN").arg("p").query(&mut conn).unwrap();
    assert_eq!(len, COUNT);
}
