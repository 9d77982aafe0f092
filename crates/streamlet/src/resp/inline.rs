//! Splitting an inline command line into arguments with Redis's quoting
//! rules.
//!
//! Outside quotes, arguments are separated by ASCII whitespace. Inside double
//! quotes, `\xHH` is a byte in hex and `\n`, `\r`, `\t`, `\b`, `\a` are the
//! usual control characters (any other escaped character stands for itself).
//! Inside single quotes only `\'` is an escape. A closing quote must be
//! followed by whitespace or the end of the line.

/// Why an inline line could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnbalancedQuotes;

/// The quoting state while reading one argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Splits `line` (without its line ending) into arguments.
///
/// # Errors
///
/// [`UnbalancedQuotes`] when a quote is left open, or a closing quote is
/// followed by something other than whitespace.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|b| is_space(*b)) {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(args);
        }
        let (arg, next) = read_arg(line, pos)?;
        args.push(arg);
        pos = next;
    }
}

/// Reads one argument starting at `pos`; returns it and the position after.
fn read_arg(line: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), UnbalancedQuotes> {
    let mut arg = Vec::new();
    let mut quote = Quote::None;
    loop {
        let Some(&byte) = line.get(pos) else {
            return if quote == Quote::None {
                Ok((arg, pos))
            } else {
                Err(UnbalancedQuotes)
            };
        };
        match quote {
            Quote::None => match byte {
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                b if is_space(b) => return Ok((arg, pos)),
                b => arg.push(b),
            },
            Quote::Double => match byte {
                b'\\' => {
                    let (value, used) = double_quoted_escape(&line[pos + 1..]);
                    arg.push(value);
                    pos += used;
                }
                b'"' => {
                    close_quote(line, pos)?;
                    return Ok((arg, pos + 1));
                }
                b => arg.push(b),
            },
            Quote::Single => match byte {
                b'\\' if line.get(pos + 1) == Some(&b'\'') => {
                    arg.push(b'\'');
                    pos += 1;
                }
                b'\'' => {
                    close_quote(line, pos)?;
                    return Ok((arg, pos + 1));
                }
                b => arg.push(b),
            },
        }
        pos += 1;
    }
}

/// Decodes the escape after a backslash inside double quotes.
///
/// Returns the byte and how many bytes after the backslash it used. A
/// backslash at the very end stands for itself and uses nothing, so the
/// quote is then reported unbalanced.
fn double_quoted_escape(after: &[u8]) -> (u8, usize) {
    match after {
        [b'x', high, low, ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
            (hex_value(*high) << 4 | hex_value(*low), 3)
        }
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'b', ..] => (0x08, 1),
        [b'a', ..] => (0x07, 1),
        [other, ..] => (*other, 1),
        [] => (b'\\', 0),
    }
}

/// Checks that the quote closing at `pos` is followed by whitespace or the end.
fn close_quote(line: &[u8], pos: usize) -> Result<(), UnbalancedQuotes> {
    match line.get(pos + 1) {
        Some(b) if !is_space(*b) => Err(UnbalancedQuotes),
        _ => Ok(()),
    }
}

/// The value of one ASCII hex digit (the caller checked it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'A').wrapping_add(10) & 0x0f,
    }
}

/// Whitespace as C's `isspace` in the "C" locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
        split_args(line.as_bytes()).map(|args| {
            args.into_iter()
                .map(|arg| String::from_utf8_lossy(&arg).into_owned())
                .collect()
        })
    }

    #[test]
    fn plain_words_split_on_any_whitespace() {
        assert_eq!(
            split("  SET\tkey  value ").unwrap(),
            ["SET", "key", "value"]
        );
        assert!(split("   ").unwrap().is_empty());
    }

    #[test]
    fn double_quotes_keep_spaces_and_decode_escapes() {
        assert_eq!(
            split(r#"ECHO "a b\n\x41\"""#).unwrap(),
            ["ECHO", "a b\nA\""]
        );
        assert_eq!(split(r#"ECHO """#).unwrap(), ["ECHO", ""]);
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(split(r"ECHO 'it\'s \n'").unwrap(), ["ECHO", r"it's \n"]);
    }

    #[test]
    fn open_or_glued_quotes_are_unbalanced() {
        assert_eq!(split(r#"ECHO "abc"#), Err(UnbalancedQuotes));
        assert_eq!(split(r"ECHO 'abc"), Err(UnbalancedQuotes));
        assert_eq!(split(r#"ECHO "a"b"#), Err(UnbalancedQuotes));
        assert_eq!(split(r#"ECHO "a\"#), Err(UnbalancedQuotes));
    }
}
