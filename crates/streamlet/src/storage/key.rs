//! Escaping stream keys, which are arbitrary bytes, into directory names.
//!
//! Lower-case ASCII letters, digits, `_` and `-` stand for themselves; every
//! other byte is written `%XX` in upper-case hex. The empty key is `%`. So a
//! name never contains `/`, never is `.` or `..`, and two keys never map to
//! names that differ only in letter case (upper-case letters appear only as
//! hex digits after `%`), which keeps them apart on case-insensitive file
//! systems.

/// The longest directory name produced; longer keys are refused (255 is the
/// usual file name limit).
pub const MAX_ENCODED_KEY_BYTES: usize = 255;

/// Escapes a key into a directory name, or `None` if the name would be longer
/// than [`MAX_ENCODED_KEY_BYTES`].
pub(crate) fn encode_key(key: &[u8]) -> Option<String> {
    if key.is_empty() {
        return Some("%".to_owned());
    }
    let mut name = String::with_capacity(key.len());
    for &byte in key {
        if is_plain(byte) {
            name.push(char::from(byte));
        } else {
            name.push('%');
            name.push(hex_digit(byte >> 4));
            name.push(hex_digit(byte & 0x0f));
        }
        if name.len() > MAX_ENCODED_KEY_BYTES {
            return None;
        }
    }
    Some(name)
}

/// Recovers the key from a directory name made by [`encode_key`], or `None`
/// if the name is not one.
pub(crate) fn decode_key(name: &str) -> Option<Vec<u8>> {
    if name == "%" {
        return Some(Vec::new());
    }
    let bytes = name.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while let Some(&byte) = bytes.get(pos) {
        if byte == b'%' {
            let high = hex_value(*bytes.get(pos + 1)?)?;
            let low = hex_value(*bytes.get(pos + 2)?)?;
            let decoded = high << 4 | low;
            if is_plain(decoded) {
                return None;
            }
            key.push(decoded);
            pos += 3;
        } else if is_plain(byte) {
            key.push(byte);
            pos += 1;
        } else {
            return None;
        }
    }
    if key.is_empty() {
        return None;
    }
    Some(key)
}

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dangerous_keys_become_plain_names() {
        assert_eq!(encode_key(b"..").as_deref(), Some("%2E%2E"));
        assert_eq!(encode_key(b"a/b").as_deref(), Some("a%2Fb"));
        assert_eq!(encode_key(b"Ab").as_deref(), Some("%41b"));
        assert_eq!(encode_key(b"").as_deref(), Some("%"));
        assert_eq!(
            encode_key(b"orders-2024_x").as_deref(),
            Some("orders-2024_x")
        );
    }

    #[test]
    fn overlong_keys_are_refused() {
        assert!(encode_key(&[b'a'; MAX_ENCODED_KEY_BYTES]).is_some());
        assert!(encode_key(&[b'a'; MAX_ENCODED_KEY_BYTES + 1]).is_none());
        assert!(encode_key(&[b'.'; 86]).is_none());
    }

    #[test]
    fn names_not_made_by_encode_are_not_keys() {
        for name in ["A", "%2e", "%41%", "%61", "a.b", ""] {
            assert_eq!(decode_key(name), None, "{name}");
        }
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_stays_safe(key in prop::collection::vec(any::<u8>(), 0..80)) {
            let name = encode_key(&key).unwrap();
            prop_assert!(!name.contains('/') && name != "." && name != "..");
            prop_assert_eq!(decode_key(&name), Some(key));
        }
    }
}
