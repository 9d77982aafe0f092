//! RESP2: incremental request parsing and reply encoding.
//!
//! [`parse`] takes the bytes a connection has buffered so far and returns the
//! first complete [`Request`] with the number of bytes it used, or `None`
//! when more bytes are needed. It keeps no state between calls: the caller
//! drops the consumed prefix and calls again. Two request forms are accepted,
//! as Redis accepts them:
//!
//! - arrays of bulk strings (`*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n`), what client
//!   libraries, `redis-cli` and `redis-benchmark` send;
//! - inline commands (`ECHO hi\r\n`, `\n` alone also ends a line), what
//!   telnet users and `redis-cli` in pipe mode send, with Redis's quoting
//!   rules (`"a b"`, `'c'`, `\x41`).
//!
//! # Limits
//!
//! [`Limits`] bounds a bulk string (16 MiB by default, smaller than Redis's
//! 512 MiB `proto-max-bulk-len`: one entry of a log stream rarely needs
//! more, and a smaller bound caps what one connection can make the server
//! buffer), the element count of an array (1 Mi) and an inline line
//! (64 KiB, as Redis). Parsing never allocates in proportion to a declared
//! length: a request is checked complete before anything is copied, so a
//! client that declares a 1 GiB bulk and sends nothing costs only the bytes
//! it sent.
//!
//! Errors carry Redis's wording (`Protocol error: invalid bulk length`); the
//! connection replies `-ERR <message>` and closes, as Redis does.

mod inline;
mod parse;
mod reply;

pub use parse::{
    parse, parse_into, Limits, ProtocolError, Request, DEFAULT_MAX_ARRAY_LEN,
    DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_INLINE_BYTES,
};
pub use reply::Reply;
