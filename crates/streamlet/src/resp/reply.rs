//! RESP2 replies and their encoding.

use std::borrow::Cow;
use std::io::Write;

/// A reply in RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple string: `+OK\r\n`.
    Simple(Cow<'static, str>),
    /// An error: `-ERR message\r\n`. The text includes its prefix (`ERR`,
    /// `NOPROTO`, ...).
    Error(Cow<'static, str>),
    /// An integer: `:42\r\n`.
    Integer(i64),
    /// A bulk string: `$5\r\nhello\r\n`.
    Bulk(Vec<u8>),
    /// The null bulk string: `$-1\r\n`.
    NullBulk,
    /// An array of replies: `*2\r\n...`.
    Array(Vec<Reply>),
    /// The null array: `*-1\r\n`.
    NullArray,
}

impl Reply {
    /// The `+OK` reply.
    pub fn ok() -> Self {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// An error reply from its full text, e.g. `"ERR syntax error"`.
    pub fn error(text: impl Into<Cow<'static, str>>) -> Self {
        Reply::Error(text.into())
    }

    /// A bulk string reply from anything byte-like.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(bytes.into())
    }

    /// Appends the encoded reply to `out`.
    ///
    /// Line breaks inside simple strings and errors would end the line early,
    /// so they are written as spaces, as Redis does for errors.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => write_line(out, b'+', text.as_bytes()),
            Reply::Error(text) => write_line(out, b'-', text.as_bytes()),
            Reply::Integer(value) => write_header(out, b':', *value),
            Reply::Bulk(bytes) => {
                write_header(out, b'$', bytes.len() as i64);
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                write_header(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(out);
                }
            }
            Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
        }
    }

    /// The encoded reply as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Writes `<prefix><number>\r\n`.
fn write_header(out: &mut Vec<u8>, prefix: u8, number: i64) {
    out.push(prefix);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{number}");
    out.extend_from_slice(b"\r\n");
}

/// Writes `<prefix><text>\r\n` with line breaks in `text` made spaces.
fn write_line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.push(prefix);
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reply_kind_encodes_as_resp2() {
        let cases = [
            (Reply::ok(), &b"+OK\r\n"[..]),
            (Reply::error("ERR bad"), b"-ERR bad\r\n"),
            (Reply::Integer(-3), b":-3\r\n"),
            (Reply::bulk("hi"), b"$2\r\nhi\r\n"),
            (Reply::bulk(""), b"$0\r\n\r\n"),
            (Reply::NullBulk, b"$-1\r\n"),
            (Reply::NullArray, b"*-1\r\n"),
            (Reply::Array(vec![]), b"*0\r\n"),
            (
                Reply::Array(vec![
                    Reply::Integer(1),
                    Reply::Array(vec![Reply::bulk("a")]),
                ]),
                b"*2\r\n:1\r\n*1\r\n$1\r\na\r\n",
            ),
        ];
        for (reply, bytes) in cases {
            assert_eq!(reply.to_bytes(), bytes, "{reply:?}");
        }
    }

    #[test]
    fn line_breaks_in_errors_become_spaces() {
        assert_eq!(Reply::error("ERR a\r\nb").to_bytes(), b"-ERR a  b\r\n");
    }
}
