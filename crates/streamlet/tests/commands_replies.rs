//! Reply bytes of every command, compared with what Redis 7 sends.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamlet::cache::{BlockCache, IndexCache};
use streamlet::commands::{execute, Context, InfoProvider, InfoSection, Outcome};
use streamlet::resp::Request;
use streamlet::storage::{Store, StoreConfig};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "streamlet-cmd-{name}-{}-{unique}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A context over a fresh store whose clock reads 1000 ms.
fn context(tmp: &TempDir) -> Context {
    let blocks = Arc::new(BlockCache::new(1 << 20));
    let indexes = Arc::new(IndexCache::new(1 << 20));
    let store = Store::open(StoreConfig::new(&tmp.0), blocks, indexes)
        .unwrap()
        .with_clock(Arc::new(|| 1000));
    Context::new(Arc::new(store)).with_tcp_port(6390)
}

fn run(ctx: &Context, words: &[&str]) -> Outcome {
    let request = Request::new(words.iter().map(|w| w.as_bytes().to_vec()).collect());
    execute(&request, ctx)
}

/// Runs a command and returns its reply as text, for comparison.
fn reply(ctx: &Context, words: &[&str]) -> String {
    String::from_utf8(run(ctx, words).reply.to_bytes()).unwrap()
}

/// PING, ECHO, SELECT, QUIT and names in any case.
#[test]
fn connection_commands_reply_as_redis() {
    let tmp = TempDir::new("conn");
    let ctx = context(&tmp);
    assert_eq!(reply(&ctx, &["PING"]), "+PONG\r\n");
    assert_eq!(reply(&ctx, &["ping", "hi there"]), "$8\r\nhi there\r\n");
    assert_eq!(
        reply(&ctx, &["PING", "a", "b"]),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(reply(&ctx, &["EcHo", ""]), "$0\r\n\r\n");
    assert_eq!(
        reply(&ctx, &["ECHO"]),
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );
    assert_eq!(reply(&ctx, &["SELECT", "0"]), "+OK\r\n");
    assert_eq!(
        reply(&ctx, &["SELECT", "1"]),
        "-ERR DB index is out of range\r\n"
    );
    assert_eq!(
        reply(&ctx, &["SELECT", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    let quit = run(&ctx, &["QUIT"]);
    assert!(quit.close);
    assert_eq!(quit.reply.to_bytes(), b"+OK\r\n");
    assert!(!run(&ctx, &["PING"]).close);
}

/// What redis-cli and redis-benchmark send on connecting.
#[test]
fn handshake_commands_reply_as_redis() {
    let tmp = TempDir::new("handshake");
    let ctx = context(&tmp);
    assert_eq!(reply(&ctx, &["COMMAND", "DOCS"]), "*0\r\n");
    assert_eq!(reply(&ctx, &["COMMAND"]), "*0\r\n");
    assert_eq!(
        reply(&ctx, &["CONFIG", "GET", "save"]),
        "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    );
    assert_eq!(
        reply(&ctx, &["config", "get", "appendonly"]),
        "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    );
    assert_eq!(reply(&ctx, &["CONFIG", "GET", "nosuch"]), "*0\r\n");
    assert_eq!(
        reply(&ctx, &["CONFIG", "GET"]),
        "-ERR wrong number of arguments for 'config|get' command\r\n"
    );
    assert_eq!(
        reply(&ctx, &["CONFIG", "FOO"]),
        "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"
    );
    assert_eq!(reply(&ctx, &["CLIENT", "SETNAME", "bench"]), "+OK\r\n");
    assert_eq!(
        reply(&ctx, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
        "+OK\r\n"
    );
    assert_eq!(
        reply(&ctx, &["HELLO", "3"]),
        "-NOPROTO unsupported protocol version\r\n"
    );
    let hello = reply(&ctx, &["HELLO", "2"]);
    assert!(
        hello.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{hello}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:2\r\n"), "{hello}");
}

/// Unknown commands list their first arguments as Redis 7 does.
#[test]
fn unknown_commands_reply_as_redis() {
    let tmp = TempDir::new("unknown");
    let ctx = context(&tmp);
    assert_eq!(
        reply(&ctx, &["foo", "a", "b"]),
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        reply(&ctx, &["SET", "k"]),
        "-ERR unknown command 'SET', with args beginning with: 'k' \r\n"
    );
    // A known name followed by more letters, and one longer than any name.
    assert_eq!(
        reply(&ctx, &["XADDX"]),
        "-ERR unknown command 'XADDX', with args beginning with: \r\n"
    );
    let long = "x".repeat(40);
    assert_eq!(
        reply(&ctx, &[&long]),
        format!("-ERR unknown command '{long}', with args beginning with: \r\n")
    );
    // Names match in any case.
    assert_eq!(reply(&ctx, &["xLeN", "nothing"]), ":0\r\n");
}

/// XADD replies with the ID; XLEN counts; errors use Redis's texts.
#[test]
fn xadd_and_xlen_reply_as_redis() {
    let tmp = TempDir::new("xadd");
    let ctx = context(&tmp);
    assert_eq!(reply(&ctx, &["XLEN", "s"]), ":0\r\n");
    assert_eq!(
        reply(&ctx, &["XADD", "s", "*", "f", "v"]),
        "$6\r\n1000-0\r\n"
    );
    assert_eq!(
        reply(&ctx, &["xadd", "s", "*", "f", "v", "g", "w"]),
        "$6\r\n1000-1\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XADD", "s", "2000-*", "f", "v"]),
        "$6\r\n2000-0\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XADD", "s", "2000", "f", "v"]),
        format!("-{}\r\n", NOT_GREATER)
    );
    assert_eq!(
        reply(&ctx, &["XADD", "s", "3000-7", "f", "v"]),
        "$6\r\n3000-7\r\n"
    );
    assert_eq!(reply(&ctx, &["XLEN", "s"]), ":4\r\n");
    assert_eq!(
        reply(&ctx, &["XADD", "s", "1-x", "f", "v"]),
        "-ERR Invalid stream ID specified as stream command argument\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XADD", "t", "0-0", "f", "v"]),
        "-ERR The ID specified in XADD must be greater than 0-0\r\n"
    );
    for args in [
        &["XADD", "s", "*", "f"][..],
        &["XADD", "s", "*", "f", "v", "g"],
    ] {
        assert_eq!(
            reply(&ctx, args),
            "-ERR wrong number of arguments for 'xadd' command\r\n"
        );
    }
    assert_eq!(
        reply(&ctx, &["XADD", "u", "NOMKSTREAM", "*", "f", "v"]),
        "$-1\r\n"
    );
    assert_eq!(reply(&ctx, &["XLEN", "u"]), ":0\r\n");
    assert_eq!(
        reply(&ctx, &["XADD", "u", "nOmKsTrEaM", "*", "f", "v"]),
        "$-1\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XADD", "s", "MaxLen", "5", "*", "f", "v"]),
        "-ERR trimming with MAXLEN or MINID is not supported\r\n"
    );
    // More field-value pairs than fit on the stack, all stored in order.
    let mut many = vec!["XADD", "m", "5000-0"];
    let fields: Vec<String> = (0..20).map(|i| format!("x{i}")).collect();
    many.extend(fields.iter().map(String::as_str));
    assert_eq!(reply(&ctx, &many), "$6\r\n5000-0\r\n");
    let range = reply(&ctx, &["XRANGE", "m", "-", "+"]);
    let expected: String = fields
        .iter()
        .map(|f| format!("${}\r\n{f}\r\n", f.len()))
        .collect();
    assert_eq!(
        range,
        format!("*1\r\n*2\r\n$6\r\n5000-0\r\n*20\r\n{expected}")
    );
    assert_eq!(
        reply(&ctx, &["XLEN"]),
        "-ERR wrong number of arguments for 'xlen' command\r\n"
    );
}

const NOT_GREATER: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";

/// XRANGE replies with nested arrays of IDs and fields, honours COUNT and
/// treats COUNT 0 and missing streams as Redis does.
#[test]
fn xrange_replies_as_redis() {
    let tmp = TempDir::new("xrange");
    let ctx = context(&tmp);
    reply(&ctx, &["XADD", "s", "1-1", "a", "1"]);
    reply(&ctx, &["XADD", "s", "2-1", "b", "2", "c", "3"]);

    let both = "*2\r\n\
        *2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n\
        *2\r\n$3\r\n2-1\r\n*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n";
    assert_eq!(reply(&ctx, &["XRANGE", "s", "-", "+"]), both);
    let first = "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n";
    assert_eq!(reply(&ctx, &["XRANGE", "s", "-", "+", "COUNT", "1"]), first);
    assert_eq!(reply(&ctx, &["XRANGE", "s", "1", "1"]), first);
    assert!(reply(&ctx, &["XRANGE", "s", "(1-1", "+"]).starts_with("*1\r\n*2\r\n$3\r\n2-1"));
    assert_eq!(
        reply(&ctx, &["XRANGE", "s", "-", "+", "COUNT", "0"]),
        "*-1\r\n"
    );
    assert_eq!(reply(&ctx, &["XRANGE", "missing", "-", "+"]), "*0\r\n");
    assert_eq!(reply(&ctx, &["XRANGE", "s", "+", "-"]), "*0\r\n");
    assert_eq!(
        reply(&ctx, &["XRANGE", "s", "-", "+", "COUNT"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XRANGE", "s", "-", "+", "COUNT", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XRANGE", "s", "x", "+"]),
        "-ERR Invalid stream ID specified as stream command argument\r\n"
    );
    assert_eq!(
        reply(&ctx, &["XRANGE", "s", "-"]),
        "-ERR wrong number of arguments for 'xrange' command\r\n"
    );
}

struct MemoryInfo;

impl InfoProvider for MemoryInfo {
    fn sections(&self) -> Vec<InfoSection> {
        vec![InfoSection {
            name: "Memory".to_owned(),
            fields: vec![("used_memory".to_owned(), "1234".to_owned())],
        }]
    }
}

/// INFO lists sections in Redis's layout, filters them by name, and includes
/// sections from providers.
#[test]
fn info_lists_sections_and_provider_sections() {
    let tmp = TempDir::new("info");
    let ctx = context(&tmp).with_info_provider(Arc::new(MemoryInfo));

    let all = reply(&ctx, &["INFO"]);
    assert!(all.contains("# Server\r\nredis_version:7.0.0\r\n"), "{all}");
    assert!(all.contains("tcp_port:6390\r\n"), "{all}");
    assert!(all.contains("\r\n\r\n# Streams\r\nstreams:0\r\n"), "{all}");
    assert!(
        all.ends_with("\r\n\r\n# Memory\r\nused_memory:1234\r\n\r\n"),
        "{all}"
    );

    let memory = reply(&ctx, &["INFO", "MEMORY"]);
    assert_eq!(memory, "$28\r\n# Memory\r\nused_memory:1234\r\n\r\n");
    assert_eq!(reply(&ctx, &["INFO", "nosuch"]), "$0\r\n\r\n");
}
