//! The request parser: one complete request from the front of a buffer.

use std::fmt;

use super::inline::split_args;
use crate::decimal::parse_i64;

/// Default bound on one bulk string: 16 MiB (Redis allows 512 MiB).
pub const DEFAULT_MAX_BULK_BYTES: usize = 16 << 20;
/// Default bound on the element count of a request array: 1 Mi.
pub const DEFAULT_MAX_ARRAY_LEN: usize = 1 << 20;
/// Default bound on an inline request line, and on the length line of an
/// array or bulk while its `\r` has not arrived: 64 KiB, as Redis.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 64 << 10;

/// Bounds on what one request may declare or send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk string, in bytes.
    pub max_bulk_bytes: usize,
    /// Largest accepted element count of a request array.
    pub max_array_len: usize,
    /// Longest accepted inline line (without its line ending), and longest
    /// wait for the end of a `*<n>` or `$<n>` length line, in bytes.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: DEFAULT_MAX_BULK_BYTES,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_inline_bytes: DEFAULT_MAX_INLINE_BYTES,
        }
    }
}

/// Argument buffers at most this large are kept for the next request.
const SPARE_ARG_BYTES: usize = 1024;
/// How many argument buffers are kept for the next request.
const SPARE_ARGS: usize = 16;

/// One parsed command: its name and arguments as raw bytes.
///
/// A connection parses each request into the same `Request` with
/// [`parse_into`], which copies the arguments into the buffers the previous
/// request left, so a steady stream of small requests allocates nothing;
/// [`Request::recycle`] drops what is too large to keep.
#[derive(Default)]
pub struct Request {
    /// The first `len` are this request's arguments; the rest are spare.
    args: Vec<Vec<u8>>,
    len: usize,
}

impl Request {
    /// Makes a request from its arguments, the command name first.
    pub fn new(args: Vec<Vec<u8>>) -> Self {
        let len = args.len();
        Request { args, len }
    }

    /// All arguments, the command name first.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args[..self.len]
    }

    /// Takes the arguments out.
    pub fn into_args(mut self) -> Vec<Vec<u8>> {
        self.args.truncate(self.len);
        self.args
    }

    /// Whether the request has no arguments at all (see [`parse`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the request for the next [`parse_into`], dropping buffers too
    /// large or too many to keep; call once a request is answered.
    pub fn recycle(&mut self) {
        self.len = 0;
        self.args.truncate(SPARE_ARGS);
        self.args.shrink_to(SPARE_ARGS);
        for arg in &mut self.args {
            if arg.capacity() > SPARE_ARG_BYTES {
                *arg = Vec::new();
            }
        }
    }

    /// Forgets the arguments, keeping their buffers.
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a copy of `data` as the next argument, into a spare buffer
    /// if there is one.
    fn push_arg(&mut self, data: &[u8]) {
        match self.args.get_mut(self.len) {
            Some(spare) => {
                spare.clear();
                spare.extend_from_slice(data);
            }
            None => self.args.push(data.to_vec()),
        }
        self.len += 1;
    }

    /// The bytes of all arguments together, without framing.
    pub fn payload_bytes(&self) -> usize {
        self.args().iter().map(Vec::len).sum()
    }
}

impl Clone for Request {
    fn clone(&self) -> Self {
        Request::new(self.args().to_vec())
    }
}

impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        self.args() == other.args()
    }
}

impl Eq for Request {}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("args", &self.args())
            .finish()
    }
}

/// A request that breaks the protocol; the connection should reply
/// `-ERR <message>` and close.
///
/// Messages are Redis's own where Redis has one, so they read
/// `Protocol error: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    kind: ProtocolErrorKind,
}

/// What exactly broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProtocolErrorKind {
    TooBigInline,
    UnbalancedQuotes,
    TooBigMultibulkCount,
    InvalidMultibulkLength,
    TooBigBulkCount,
    InvalidBulkLength,
    ExpectedDollar(u8),
    MissingBulkTerminator,
}

impl ProtocolError {
    fn new(kind: ProtocolErrorKind) -> Self {
        ProtocolError { kind }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolErrorKind::*;
        f.write_str("Protocol error: ")?;
        match &self.kind {
            TooBigInline => f.write_str("too big inline request"),
            UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            TooBigMultibulkCount => f.write_str("too big mbulk count string"),
            InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            TooBigBulkCount => f.write_str("too big bulk count string"),
            InvalidBulkLength => f.write_str("invalid bulk length"),
            ExpectedDollar(got) => write!(f, "expected '$', got '{}'", char::from(*got)),
            MissingBulkTerminator => f.write_str("expected CRLF after bulk data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What one step of parsing found at the front of the buffer.
enum Step {
    /// More bytes are needed.
    Incomplete,
    /// A request with no arguments (blank line, `*0`, `*-1`), to be skipped.
    Skip(usize),
    /// A request, now in the caller's [`Request`], and the bytes it used.
    Request(usize),
}

/// Parses the first complete request at the front of `buf`.
///
/// Returns the request and the number of bytes it used, or `Ok(None)` when
/// `buf` holds no complete request yet. Blank inline lines and empty arrays
/// are skipped, as Redis skips them; if only such bytes are complete, an
/// empty [`Request`] is returned with their length so that the caller can
/// drop them (it needs no reply). Nothing is allocated before the whole
/// request has arrived.
///
/// # Errors
///
/// [`ProtocolError`] when the bytes break the protocol or exceed `limits`;
/// the message is Redis's wording.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, ProtocolError> {
    let mut request = Request::default();
    Ok(parse_into(buf, limits, &mut request)?.map(|used| (request, used)))
}

/// Parses the first complete request at the front of `buf` into `request`,
/// reusing its argument buffers, and returns the number of bytes it used.
///
/// As [`parse`], which it serves: `Ok(None)` leaves `request` as it was,
/// and skipped bytes alone leave it empty.
///
/// # Errors
///
/// As [`parse`].
pub fn parse_into(
    buf: &[u8],
    limits: &Limits,
    request: &mut Request,
) -> Result<Option<usize>, ProtocolError> {
    let mut skipped = 0;
    loop {
        let rest = &buf[skipped..];
        let step = match rest.first() {
            None => Step::Incomplete,
            Some(b'*') => parse_multibulk(rest, limits, request)?,
            Some(_) => parse_inline(rest, limits, request)?,
        };
        match step {
            Step::Incomplete if skipped == 0 => return Ok(None),
            Step::Incomplete => {
                request.clear();
                return Ok(Some(skipped));
            }
            Step::Skip(used) => skipped += used,
            Step::Request(used) => return Ok(Some(skipped + used)),
        }
    }
}

/// Parses an inline request: one line ending in `\n` (a `\r` before it is
/// dropped).
fn parse_inline(buf: &[u8], limits: &Limits, out: &mut Request) -> Result<Step, ProtocolError> {
    let window = &buf[..buf.len().min(limits.max_inline_bytes.saturating_add(2))];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_bytes {
            return Err(ProtocolError::new(ProtocolErrorKind::TooBigInline));
        }
        return Ok(Step::Incomplete);
    };
    let line = match buf[..newline].strip_suffix(b"\r") {
        Some(line) => line,
        None => &buf[..newline],
    };
    if line.len() > limits.max_inline_bytes {
        return Err(ProtocolError::new(ProtocolErrorKind::TooBigInline));
    }
    let args =
        split_args(line).map_err(|_| ProtocolError::new(ProtocolErrorKind::UnbalancedQuotes))?;
    if args.is_empty() {
        return Ok(Step::Skip(newline + 1));
    }
    *out = Request::new(args);
    Ok(Step::Request(newline + 1))
}

/// Parses an array of bulk strings; `buf` starts with `*`.
///
/// A first pass checks that every element has arrived without copying
/// anything; only then does a second pass copy the arguments out.
fn parse_multibulk(buf: &[u8], limits: &Limits, out: &mut Request) -> Result<Step, ProtocolError> {
    let Some((count, mut pos)) = length_line(
        buf,
        limits,
        ProtocolErrorKind::TooBigMultibulkCount,
        ProtocolErrorKind::InvalidMultibulkLength,
    )?
    else {
        return Ok(Step::Incomplete);
    };
    if count <= 0 {
        return Ok(Step::Skip(pos));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.max_array_len {
        return Err(ProtocolError::new(
            ProtocolErrorKind::InvalidMultibulkLength,
        ));
    }

    // Check that the whole request has arrived.
    let start = pos;
    for _ in 0..count {
        match bulk(buf, pos, limits)? {
            Some((_, next)) => pos = next,
            None => return Ok(Step::Incomplete),
        }
    }

    // Copy the arguments out; every element is known complete.
    out.clear();
    let mut pos = start;
    while let Some((data, next)) = bulk(buf, pos, limits)? {
        out.push_arg(&buf[data]);
        pos = next;
        if out.len == count {
            break;
        }
    }
    Ok(Step::Request(pos))
}

/// Reads one bulk string at `pos`: returns its data range and the position
/// after its terminator, or `None` if it has not fully arrived.
fn bulk(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(std::ops::Range<usize>, usize)>, ProtocolError> {
    let rest = &buf[pos..];
    match rest.first() {
        None => return Ok(None),
        Some(b'$') => {}
        Some(&other) => return Err(ProtocolError::new(ProtocolErrorKind::ExpectedDollar(other))),
    }
    let Some((len, header)) = length_line(
        rest,
        limits,
        ProtocolErrorKind::TooBigBulkCount,
        ProtocolErrorKind::InvalidBulkLength,
    )?
    else {
        return Ok(None);
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= limits.max_bulk_bytes)
        .ok_or(ProtocolError::new(ProtocolErrorKind::InvalidBulkLength))?;
    let data_start = pos + header;
    let data_end = data_start + len;
    if buf.len() < data_end + 2 {
        return Ok(None);
    }
    if &buf[data_end..data_end + 2] != b"\r\n" {
        return Err(ProtocolError::new(ProtocolErrorKind::MissingBulkTerminator));
    }
    Ok(Some((data_start..data_end, data_end + 2)))
}

/// Reads a `*<n>\r\n` or `$<n>\r\n` line at the front of `buf`: returns the
/// number and the length of the line, or `None` if its end has not arrived.
fn length_line(
    buf: &[u8],
    limits: &Limits,
    too_long: ProtocolErrorKind,
    invalid: ProtocolErrorKind,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window = &buf[..buf.len().min(limits.max_inline_bytes.saturating_add(1))];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if buf.len() > limits.max_inline_bytes {
            return Err(ProtocolError::new(too_long));
        }
        return Ok(None);
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProtocolError::new(invalid)),
    }
    let number = parse_i64(&buf[1..cr]).ok_or(ProtocolError::new(invalid))?;
    Ok(Some((number, cr + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(buf: &[u8]) -> Result<Option<(Request, usize)>, ProtocolError> {
        parse(buf, &Limits::default())
    }

    fn args(request: &Request) -> Vec<&[u8]> {
        request.args().iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn multibulk_request_parses_with_its_length() {
        let buf = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n";
        let (request, used) = parse_default(buf).unwrap().unwrap();
        assert_eq!(args(&request), [&b"ECHO"[..], b"hi"]);
        assert_eq!(used, 22);
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let buf = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse_default(&buf[..end]).unwrap(), None, "prefix {end}");
        }
    }

    #[test]
    fn inline_request_accepts_lf_or_crlf() {
        let (request, used) = parse_default(b"PING hello\nrest").unwrap().unwrap();
        assert_eq!(args(&request), [&b"PING"[..], b"hello"]);
        assert_eq!(used, 11);
        let (request, used) = parse_default(b"PING\r\n").unwrap().unwrap();
        assert_eq!(args(&request), [&b"PING"[..]]);
        assert_eq!(used, 6);
    }

    #[test]
    fn blank_lines_and_empty_arrays_are_skipped() {
        let (request, used) = parse_default(b"\r\n\n*0\r\n*-1\r\nPING\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(args(&request), [&b"PING"[..]]);
        assert_eq!(used, 18);
        let (request, used) = parse_default(b"\r\n\r\nPI").unwrap().unwrap();
        assert!(request.is_empty());
        assert_eq!(used, 4);
    }

    #[test]
    fn errors_use_redis_wording() {
        let cases: [(&[u8], &str); 7] = [
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*2\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$17000000\r\n",
                "Protocol error: invalid bulk length",
            ),
            (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
            (
                b"*1\r\n$1\r\nab\r\n",
                "Protocol error: expected CRLF after bulk data",
            ),
            (b"*2000000\r\n", "Protocol error: invalid multibulk length"),
            (
                b"ECHO \"a\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, message) in cases {
            let error = parse_default(input).unwrap_err();
            assert_eq!(
                error.to_string(),
                message,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn overlong_lines_are_rejected_once_past_the_limit() {
        let limits = Limits {
            max_inline_bytes: 8,
            ..Limits::default()
        };
        assert_eq!(parse(b"PINGPING", &limits).unwrap(), None);
        let error = parse(b"PINGPINGP", &limits).unwrap_err();
        assert_eq!(error.to_string(), "Protocol error: too big inline request");
        let error = parse(b"*123456789", &limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Protocol error: too big mbulk count string"
        );
        let error = parse(b"*1\r\n$123456789", &limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn declared_but_missing_bulk_is_just_incomplete() {
        let buf = b"*1\r\n$16777216\r\nabc";
        assert_eq!(parse_default(buf).unwrap(), None);
    }

    #[test]
    fn recycling_keeps_only_a_few_small_buffers() {
        let limits = Limits::default();
        let mut request = Request::default();
        let mut many = b"*300\r\n".to_vec();
        for _ in 0..299 {
            many.extend_from_slice(b"$1\r\nx\r\n");
        }
        many.extend_from_slice(b"$2000\r\n");
        many.extend_from_slice(&[b'y'; 2000]);
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_into(&many, &limits, &mut request).unwrap(),
            Some(many.len())
        );
        request.recycle();
        assert!(
            request.args.capacity() <= SPARE_ARGS,
            "{}",
            request.args.capacity()
        );
        assert!(request.args.iter().all(|a| a.capacity() <= SPARE_ARG_BYTES));
    }
}
