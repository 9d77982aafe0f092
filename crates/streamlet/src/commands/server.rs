//! Connection and server commands: `PING`, `ECHO`, `SELECT`, `CLIENT`,
//! `CONFIG GET`, `COMMAND`, `HELLO`.

use super::{arity_error, unknown_subcommand, COMMAND_NAMES};
use crate::decimal::parse_i64;
use crate::resp::Reply;

/// The Redis version announced to clients, which some of them check before
/// using stream commands.
pub(crate) const REDIS_VERSION: &str = "7.0.0";

/// The configuration parameters `CONFIG GET` knows, with their values:
/// those `redis-benchmark` asks for. There are no snapshots and no
/// append-only file in the Redis sense.
const CONFIG_PARAMS: &[(&str, &str)] = &[("appendonly", "no"), ("save", "")];

/// `PING [message]`: `+PONG`, or the message as a bulk string.
pub(crate) fn ping(args: &[Vec<u8>]) -> Reply {
    match args {
        [_] => Reply::Simple("PONG".into()),
        [_, message] => Reply::bulk(message.clone()),
        _ => arity_error("ping"),
    }
}

/// `ECHO message`.
pub(crate) fn echo(args: &[Vec<u8>]) -> Reply {
    match args {
        [_, message] => Reply::bulk(message.clone()),
        _ => arity_error("echo"),
    }
}

/// `SELECT index`: only database 0 exists.
pub(crate) fn select(args: &[Vec<u8>]) -> Reply {
    let [_, index] = args else {
        return arity_error("select");
    };
    match parse_i64(index) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::error("ERR DB index is out of range"),
        None => Reply::error("ERR value is not an integer or out of range"),
    }
}

/// `CLIENT SETNAME name`, `CLIENT SETINFO attr value`, `CLIENT GETNAME`:
/// accepted so that clients' handshakes succeed; names are not kept.
pub(crate) fn client(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.get(1) else {
        return arity_error("client");
    };
    let sub = sub.to_ascii_lowercase();
    match (sub.as_slice(), args.len()) {
        (b"setname", 3) => Reply::ok(),
        (b"setname", _) => arity_error("client|setname"),
        (b"setinfo", 4) => Reply::ok(),
        (b"setinfo", _) => arity_error("client|setinfo"),
        (b"getname", 2) => Reply::NullBulk,
        (b"getname", _) => arity_error("client|getname"),
        _ => unknown_subcommand(args),
    }
}

/// `CONFIG GET pattern [pattern ...]`: a flat array of matching names and
/// values, glob patterns allowed.
pub(crate) fn config(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.get(1) else {
        return arity_error("config");
    };
    let sub = sub.to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if args.len() < 3 => arity_error("config|get"),
        b"get" => {
            let mut reply = Vec::new();
            for (name, value) in CONFIG_PARAMS {
                let wanted = args[2..]
                    .iter()
                    .any(|pattern| glob_match(&pattern.to_ascii_lowercase(), name.as_bytes()));
                if wanted {
                    reply.push(Reply::bulk(*name));
                    reply.push(Reply::bulk(*value));
                }
            }
            Reply::Array(reply)
        }
        b"set" | b"resetstat" | b"rewrite" => Reply::error(format!(
            "ERR CONFIG {} is not supported by this server",
            String::from_utf8_lossy(&sub).to_ascii_uppercase()
        )),
        _ => unknown_subcommand(args),
    }
}

/// `COMMAND` and `COMMAND DOCS|COUNT|INFO|LIST`: enough for `redis-cli`'s
/// start-up (an empty `DOCS` reply means no hints), without command
/// metadata.
pub(crate) fn command(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(Vec::new());
    };
    let sub = sub.to_ascii_lowercase();
    match sub.as_slice() {
        b"docs" => Reply::Array(Vec::new()),
        b"count" if args.len() == 2 => Reply::Integer(COMMAND_NAMES.len() as i64),
        b"count" => arity_error("command|count"),
        b"info" => Reply::Array(args[2..].iter().map(|_| Reply::NullArray).collect()),
        b"list" => Reply::Array(
            COMMAND_NAMES
                .iter()
                .map(|name| Reply::bulk(*name))
                .collect(),
        ),
        _ => unknown_subcommand(args),
    }
}

/// `HELLO [2 [AUTH user pass] [SETNAME name]]`: the server's description as
/// a flat array. Only RESP2 is spoken; `HELLO 3` gets `-NOPROTO`.
pub(crate) fn hello(args: &[Vec<u8>]) -> Reply {
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Some(2) => {}
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => return Reply::error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut pos = 2;
    while let Some(option) = args.get(pos) {
        let option = option.to_ascii_lowercase();
        let takes = match option.as_slice() {
            b"auth" => 2,
            b"setname" => 1,
            _ => 0,
        };
        if takes == 0 || pos + takes >= args.len() {
            let option = String::from_utf8_lossy(&args[pos]);
            return Reply::error(format!("ERR Syntax error in HELLO option '{option}'"));
        }
        pos += takes + 1;
    }
    Reply::Array(vec![
        Reply::bulk("server"),
        Reply::bulk("redis"),
        Reply::bulk("version"),
        Reply::bulk(REDIS_VERSION),
        Reply::bulk("proto"),
        Reply::Integer(2),
        Reply::bulk("id"),
        Reply::Integer(0),
        Reply::bulk("mode"),
        Reply::bulk("standalone"),
        Reply::bulk("role"),
        Reply::bulk("master"),
        Reply::bulk("modules"),
        Reply::Array(Vec::new()),
    ])
}

/// Glob matching with `*`, `?` and `[...]`-free patterns, enough for
/// `CONFIG GET`.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((byte, rest)) => text.first() == Some(byte) && glob_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_supports_star_and_question_mark() {
        assert!(glob_match(b"save", b"save"));
        assert!(glob_match(b"*", b"appendonly"));
        assert!(glob_match(b"app*ly", b"appendonly"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(!glob_match(b"sav", b"save"));
        assert!(!glob_match(b"*x", b"save"));
    }
}
