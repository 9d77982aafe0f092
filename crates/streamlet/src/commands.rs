//! Dispatch of parsed requests to replies, in Redis's reply formats.
//!
//! The subset: `PING`, `ECHO`, `XADD`, `XRANGE`, `XLEN`, `INFO`, `QUIT`,
//! and what `redis-cli` and `redis-benchmark` send while connecting:
//! `COMMAND` (`DOCS`, `COUNT`, `INFO`, `LIST`), `CONFIG GET`, `SELECT 0`,
//! `CLIENT SETNAME|SETINFO|GETNAME`, `HELLO [2]`. Names are case-insensitive.
//! Anything else gets Redis 7's
//! `-ERR unknown command 'foo', with args beginning with: 'a' `.
//!
//! [`execute`] is synchronous: storage commands do `write(2)` (and
//! `fdatasync` under `FsyncPolicy::EveryAppend`) and may read segment blocks
//! from disk. From tokio, run storage commands with `spawn_blocking` (or the
//! whole batch of requests parsed from one read, which amortises the hand
//! off) when fsync is on; without fsync a write to the page cache is short
//! enough to call directly from the connection task, as long as reads mostly
//! hit the block cache. [`is_storage_command`] tells the two kinds apart.

mod info;
mod range_stream;
mod server;
mod streams;

use std::sync::Arc;
use std::time::Instant;

pub use info::{InfoProvider, InfoSection};
pub use range_stream::{RangeStream, BATCH_ENTRIES};

use crate::resp::{Reply, Request};
use crate::storage::Store;

/// What executing a request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to send.
    pub reply: Reply,
    /// Whether to close the connection once the reply is sent (`QUIT`).
    pub close: bool,
}

impl Outcome {
    fn reply(reply: Reply) -> Self {
        Outcome {
            reply,
            close: false,
        }
    }
}

/// What commands run against: the store, and what `INFO` reports.
pub struct Context {
    store: Arc<Store>,
    info_providers: Vec<Arc<dyn InfoProvider>>,
    started: Instant,
    tcp_port: u16,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("store", &self.store)
            .field("info_providers", &self.info_providers.len())
            .field("tcp_port", &self.tcp_port)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over a store; uptime counts from now.
    pub fn new(store: Arc<Store>) -> Self {
        Context {
            store,
            info_providers: Vec::new(),
            started: Instant::now(),
            tcp_port: 0,
        }
    }

    /// Adds a source of extra `INFO` sections (e.g. `# Memory`).
    pub fn with_info_provider(mut self, provider: Arc<dyn InfoProvider>) -> Self {
        self.info_providers.push(provider);
        self
    }

    /// Sets the port `INFO` reports as `tcp_port`.
    pub fn with_tcp_port(mut self, tcp_port: u16) -> Self {
        self.tcp_port = tcp_port;
        self
    }

    /// The store commands run against.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// Whether a request touches storage (and so may block on disk).
pub fn is_storage_command(request: &Request) -> bool {
    let Some(name) = request.args().first() else {
        return false;
    };
    ["xadd", "xrange", "xlen"]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

/// Executes one request and returns its reply.
///
/// An empty request (see [`crate::resp::parse`]) needs no reply; callers
/// should skip it, and get an error reply if they do not.
pub fn execute(request: &Request, ctx: &Context) -> Outcome {
    let args = request.args();
    let Some(name) = args.first() else {
        return Outcome::reply(Reply::error("ERR empty command"));
    };
    // Lower-cased on the stack: no command name is longer than 7 bytes, and
    // a longer one is unknown whatever its case.
    let mut lower = [0u8; 8];
    let name: &[u8] = match lower.get_mut(..name.len()) {
        Some(room) => {
            room.copy_from_slice(name);
            room.make_ascii_lowercase();
            room
        }
        None => b"",
    };
    let reply = match name {
        b"ping" => server::ping(args),
        b"echo" => server::echo(args),
        b"quit" => {
            return Outcome {
                reply: Reply::ok(),
                close: true,
            }
        }
        b"select" => server::select(args),
        b"client" => server::client(args),
        b"config" => server::config(args),
        b"command" => server::command(args),
        b"hello" => server::hello(args),
        b"info" => info::info(args, ctx),
        b"xadd" => streams::xadd(args, ctx.store()),
        b"xrange" => streams::xrange(args, ctx.store()),
        b"xlen" => streams::xlen(args, ctx.store()),
        _ => unknown_command(args),
    };
    Outcome::reply(reply)
}

/// The names of the commands [`execute`] knows, lower case.
pub const COMMAND_NAMES: &[&str] = &[
    "client", "command", "config", "echo", "hello", "info", "ping", "quit", "select", "xadd",
    "xlen", "xrange",
];

/// `ERR wrong number of arguments for '<name>' command`; `name` is lower
/// case, `parent|sub` for subcommands, as Redis 7 writes it.
pub(crate) fn arity_error(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// `ERR unknown subcommand '<sub>'. Try <COMMAND> HELP.`
pub(crate) fn unknown_subcommand(args: &[Vec<u8>]) -> Reply {
    let command = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let sub = args
        .get(1)
        .map(|sub| c_string(sub, 128))
        .unwrap_or_default();
    Reply::error(format!(
        "ERR unknown subcommand '{sub}'. Try {command} HELP."
    ))
}

/// Redis 7's reply to an unknown command: the name (up to 128 bytes) and the
/// first arguments, each quoted and followed by a space, until 128 bytes of
/// arguments are written.
fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push('\'');
        listed.push_str(&c_string(arg, room));
        listed.push_str("' ");
    }
    let name = c_string(&args[0], 128);
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {listed}"
    ))
}

/// An argument as C's `%.*s` would print it: cut at a NUL byte and at
/// `max_bytes`, with invalid UTF-8 replaced.
fn c_string(arg: &[u8], max_bytes: usize) -> String {
    let end = arg
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(arg.len())
        .min(max_bytes);
    String::from_utf8_lossy(&arg[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn unknown_command_lists_its_first_args_like_redis() {
        let reply = unknown_command(&args(&["foo", "a", "b"]));
        assert_eq!(
            reply.to_bytes(),
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        let reply = unknown_command(&args(&["foo"]));
        assert_eq!(
            reply.to_bytes(),
            b"-ERR unknown command 'foo', with args beginning with: \r\n"
        );
    }

    #[test]
    fn unknown_command_stops_listing_after_128_bytes() {
        let long = "x".repeat(200);
        let reply = unknown_command(&args(&["foo", &long, "next"]));
        let expected = format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            &long[..128]
        );
        assert_eq!(reply, Reply::error(expected));
    }
}
