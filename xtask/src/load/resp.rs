//! A small blocking RESP2 client: command encoding, reply parsing and a
//! connection over `std::net::TcpStream` with read and write timeouts.
//!
//! Only loopback IPv4 (`127.0.0.1`) is accepted as a server address, so no
//! load or probe can be aimed at another host by mistake.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Result};

/// Largest bulk string accepted in a reply; larger lengths are a protocol
/// error rather than an allocation of whatever the peer claims.
const MAX_BULK_BYTES: usize = 512 * 1024 * 1024;

/// Largest array length accepted in a reply, for the same reason.
const MAX_ARRAY_LEN: usize = 64 * 1024 * 1024;

/// Deepest nesting of arrays accepted; XRANGE needs three levels.
const MAX_DEPTH: usize = 16;

/// How much is read from the socket at a time.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` followed by n bytes.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Null,
    /// `*n` followed by n replies.
    Array(Vec<Reply>),
}

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection (clean EOF) before a whole reply came.
    Eof,
    /// A socket error: a reset, a timeout, and so on.
    Io(io::Error),
    /// The bytes are not RESP2.
    Protocol(String),
}

impl ReadError {
    /// Whether the connection was reset or aborted by the peer.
    pub fn is_reset(&self) -> bool {
        matches!(self, ReadError::Io(err) if is_reset(err))
    }

    /// Whether the read timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ReadError::Io(err) if is_timeout(err))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Eof => f.write_str("connection closed by the server"),
            ReadError::Io(err) => write!(f, "socket error: {err}"),
            ReadError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        ReadError::Io(err)
    }
}

/// Whether a socket error means the peer reset or aborted the connection.
pub fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Whether a socket error is a read or write timeout.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Parses `text` as `127.0.0.1:PORT`, refusing every other address.
///
/// # Errors
///
/// When `text` is not a socket address or its host is not 127.0.0.1.
pub fn parse_loopback_addr(text: &str) -> Result<SocketAddr> {
    let Ok(addr) = text.parse::<SocketAddr>() else {
        bail!("address {text:?} is not IP:PORT; only 127.0.0.1:PORT is allowed");
    };
    check_loopback(addr)?;
    Ok(addr)
}

/// Refuses any address but 127.0.0.1.
///
/// # Errors
///
/// When the host of `addr` is not 127.0.0.1.
pub fn check_loopback(addr: SocketAddr) -> Result<()> {
    if addr.ip() != Ipv4Addr::LOCALHOST {
        bail!("address {addr} refused: only 127.0.0.1 is allowed");
    }
    Ok(())
}

/// The arguments of `XRANGE key start + COUNT count`: one batch of a read
/// from `start` on.
pub fn xrange_args<'a>(key: &'a str, start: &'a str, count: &'a str) -> [&'a [u8]; 6] {
    [
        b"XRANGE",
        key.as_bytes(),
        start.as_bytes(),
        b"+",
        b"COUNT",
        count.as_bytes(),
    ]
}

/// Appends `args` to `out` as a RESP2 array of bulk strings.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`.
///
/// Returns the reply and how many bytes it took, or `None` when `buf` holds
/// only part of a reply. Completeness is checked first without allocating,
/// so calling this after every read of a large reply stays cheap.
///
/// # Errors
///
/// When the bytes are not RESP2 or exceed the size limits.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReadError> {
    match frame_end(buf, 0, 0)? {
        None => Ok(None),
        Some(_) => build(buf, 0).map(Some),
    }
}

/// A reply's type byte and header line, and where the header ends.
struct Header<'a> {
    kind: u8,
    line: &'a [u8],
    next: usize,
}

/// Reads the header line at `pos`, or `None` if its CRLF has not come yet.
fn header(buf: &[u8], pos: usize) -> Result<Option<Header<'_>>, ReadError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let rest = &buf[pos + 1..];
    let Some(cr) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    Ok(Some(Header {
        kind,
        line: &rest[..cr],
        next: pos + 1 + cr + 2,
    }))
}

/// Parses a length or integer line.
fn number(line: &[u8]) -> Result<i64, ReadError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            ReadError::Protocol(format!("bad number {:?}", String::from_utf8_lossy(line)))
        })
}

/// A bulk or array length: `None` for -1, an error for other negatives or
/// values over `max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, ReadError> {
    let value = number(line)?;
    if value == -1 {
        return Ok(None);
    }
    match usize::try_from(value) {
        Ok(len) if len <= max => Ok(Some(len)),
        _ => Err(ReadError::Protocol(format!(
            "length {value} out of range 0..={max}"
        ))),
    }
}

/// Where the reply starting at `pos` ends, or `None` if it is incomplete.
fn frame_end(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, ReadError> {
    if depth > MAX_DEPTH {
        return Err(ReadError::Protocol(format!(
            "arrays nested deeper than {MAX_DEPTH}"
        )));
    }
    let Some(head) = header(buf, pos)? else {
        return Ok(None);
    };
    match head.kind {
        b'+' | b'-' => Ok(Some(head.next)),
        b':' => number(head.line).map(|_| Some(head.next)),
        b'$' => match length(head.line, MAX_BULK_BYTES)? {
            None => Ok(Some(head.next)),
            Some(len) => {
                let end = head.next + len + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(ReadError::Protocol(
                        "bulk string not followed by CRLF".into(),
                    ));
                }
                Ok(Some(end))
            }
        },
        b'*' => {
            let Some(len) = length(head.line, MAX_ARRAY_LEN)? else {
                return Ok(Some(head.next));
            };
            let mut at = head.next;
            for _ in 0..len {
                match frame_end(buf, at, depth + 1)? {
                    Some(next) => at = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        other => Err(ReadError::Protocol(format!(
            "unknown reply type byte {other:#04x}"
        ))),
    }
}

/// Builds the reply at `pos`, which `frame_end` has found complete.
fn build(buf: &[u8], pos: usize) -> Result<(Reply, usize), ReadError> {
    let Some(head) = header(buf, pos)? else {
        return Err(ReadError::Protocol("reply ended early".into()));
    };
    let text = || String::from_utf8_lossy(head.line).into_owned();
    match head.kind {
        b'+' => Ok((Reply::Simple(text()), head.next)),
        b'-' => Ok((Reply::Error(text()), head.next)),
        b':' => Ok((Reply::Integer(number(head.line)?), head.next)),
        b'$' => match length(head.line, MAX_BULK_BYTES)? {
            None => Ok((Reply::Null, head.next)),
            Some(len) => {
                let bytes = buf
                    .get(head.next..head.next + len)
                    .ok_or_else(|| ReadError::Protocol("bulk string ended early".into()))?;
                Ok((Reply::Bulk(bytes.to_vec()), head.next + len + 2))
            }
        },
        b'*' => {
            let Some(len) = length(head.line, MAX_ARRAY_LEN)? else {
                return Ok((Reply::Null, head.next));
            };
            let mut items = Vec::with_capacity(len.min(1024));
            let mut at = head.next;
            for _ in 0..len {
                let (item, next) = build(buf, at)?;
                items.push(item);
                at = next;
            }
            Ok((Reply::Array(items), at))
        }
        other => Err(ReadError::Protocol(format!(
            "unknown reply type byte {other:#04x}"
        ))),
    }
}

/// A blocking connection to a RESP2 server on 127.0.0.1.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Connection {
    /// Connects to `addr` with `timeout` for the connect and every read and
    /// write.
    ///
    /// # Errors
    ///
    /// When `addr` is not on 127.0.0.1 or the connect fails.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        check_loopback(addr)?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::new(),
            start: 0,
        })
    }

    /// A second handle on the socket, so another thread can shut it down.
    ///
    /// # Errors
    ///
    /// When the socket cannot be duplicated.
    pub fn try_clone_stream(&self) -> io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Changes the read timeout.
    ///
    /// # Errors
    ///
    /// When the socket refuses the option.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Writes already encoded commands.
    ///
    /// # Errors
    ///
    /// On a socket error or write timeout.
    pub fn send(&mut self, encoded: &[u8]) -> io::Result<()> {
        self.stream.write_all(encoded)
    }

    /// Reads the next reply.
    ///
    /// # Errors
    ///
    /// On EOF, a socket error or timeout, or bytes that are not RESP2.
    pub fn read_reply(&mut self) -> Result<Reply, ReadError> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf[self.start..])? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(reply);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let old_len = self.buf.len();
            self.buf.resize(old_len + READ_CHUNK_BYTES, 0);
            let read = self.stream.read(&mut self.buf[old_len..]);
            match read {
                Ok(0) => {
                    self.buf.truncate(old_len);
                    return Err(ReadError::Eof);
                }
                Ok(n) => self.buf.truncate(old_len + n),
                Err(err) => {
                    self.buf.truncate(old_len);
                    return Err(ReadError::Io(err));
                }
            }
        }
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`] and [`Connection::read_reply`].
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, ReadError> {
        let mut encoded = Vec::new();
        encode_command(args, &mut encoded);
        self.send(&encoded)?;
        self.read_reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Reply {
        match parse_reply(bytes) {
            Ok(Some((reply, used))) => {
                assert_eq!(used, bytes.len(), "whole input consumed");
                reply
            }
            other => panic!("expected a complete reply, got {other:?}"),
        }
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        // The wire form of a command with an empty and a binary argument.
        let mut out = Vec::new();
        encode_command(&[b"XADD", b"", b"a\r\nb"], &mut out);
        assert_eq!(out, b"*3\r\n$4\r\nXADD\r\n$0\r\n\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn parses_every_scalar_reply_type() {
        assert_eq!(parse_all(b"+PONG\r\n"), Reply::Simple("PONG".into()));
        assert_eq!(
            parse_all(b"-OOM command not allowed\r\n"),
            Reply::Error("OOM command not allowed".into())
        );
        assert_eq!(parse_all(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(
            parse_all(b"$5\r\nhe\r\no\r\n"),
            Reply::Bulk(b"he\r\no".to_vec())
        );
        assert_eq!(parse_all(b"$0\r\n\r\n"), Reply::Bulk(Vec::new()));
        assert_eq!(parse_all(b"$-1\r\n"), Reply::Null);
        assert_eq!(parse_all(b"*-1\r\n"), Reply::Null);
        assert_eq!(parse_all(b"*0\r\n"), Reply::Array(Vec::new()));
    }

    #[test]
    fn parses_nested_arrays_like_an_xrange_reply() {
        // One entry: [id, [field, value]].
        let bytes = b"*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nv\r\n$2\r\nab\r\n";
        let entry = Reply::Array(vec![
            Reply::Bulk(b"1-0".to_vec()),
            Reply::Array(vec![
                Reply::Bulk(b"v".to_vec()),
                Reply::Bulk(b"ab".to_vec()),
            ]),
        ]);
        assert_eq!(parse_all(bytes), Reply::Array(vec![entry]));
    }

    #[test]
    fn reports_incomplete_input_at_every_cut() {
        // No prefix of a valid reply parses, and none is an error.
        let bytes = b"*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n";
        for cut in 0..bytes.len() {
            assert!(
                matches!(parse_reply(&bytes[..cut]), Ok(None)),
                "prefix of {cut} bytes"
            );
        }
        assert!(matches!(parse_reply(bytes), Ok(Some(_))));
    }

    #[test]
    fn leaves_pipelined_replies_after_the_first() {
        let bytes = b"$3\r\n1-1\r\n$3\r\n1-2\r\n";
        match parse_reply(bytes) {
            Ok(Some((reply, used))) => {
                assert_eq!(reply, Reply::Bulk(b"1-1".to_vec()));
                assert_eq!(&bytes[used..], b"$3\r\n1-2\r\n");
            }
            other => panic!("expected the first reply, got {other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_replies() {
        let bad: [&[u8]; 6] = [
            b"?what\r\n",
            b":12x\r\n",
            b"$-2\r\n",
            b"$3\r\nabcde\r\n",
            b"*-5\r\n",
            b"$99999999999\r\n",
        ];
        for bytes in bad {
            assert!(
                matches!(parse_reply(bytes), Err(ReadError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn rejects_nesting_deeper_than_the_limit() {
        let bytes = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(matches!(
            parse_reply(bytes.as_bytes()),
            Err(ReadError::Protocol(_))
        ));
    }

    #[test]
    fn refuses_addresses_other_than_loopback_v4() {
        assert!(parse_loopback_addr("127.0.0.1:6379").is_ok());
        for text in [
            "10.0.0.1:6379",
            "[::1]:6379",
            "localhost:6379",
            "0.0.0.0:1",
            "127.0.0.1",
        ] {
            assert!(parse_loopback_addr(text).is_err(), "{text}");
        }
    }
}
