//! Stream entry IDs and Redis's rules for choosing and parsing them.
//!
//! An ID is `<ms>-<seq>`, two unsigned 64-bit numbers ordered by `ms` then
//! `seq`. `XADD` takes `*` (choose from the wall clock), `<ms>-*` (choose the
//! sequence), `<ms>-<seq>`, or `<ms>` (sequence 0); the result must be
//! greater than the stream's last ID, which is `0-0` for a new stream.
//! Range bounds take `-` (smallest), `+` (largest), `<ms>` (sequence 0 as a
//! start, the largest sequence as an end), `<ms>-<seq>`, and a leading `(`
//! for an exclusive bound.

use std::fmt;

use crate::decimal::parse_u64;

/// An entry ID: milliseconds and a sequence number within them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds, from the wall clock for auto IDs.
    pub ms: u64,
    /// Sequence number within the same millisecond.
    pub seq: u64,
}

impl StreamId {
    /// The smallest ID, `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The next larger ID, or `None` after [`StreamId::MAX`].
    pub fn successor(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => Some(StreamId::new(self.ms.checked_add(1)?, 0)),
        }
    }

    /// The next smaller ID, or `None` before [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => Some(StreamId::new(self.ms.checked_sub(1)?, u64::MAX)),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The ID argument of `XADD`, before it is resolved against the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSpec {
    /// `*`: milliseconds from the wall clock, sequence chosen.
    Auto,
    /// `<ms>-*`: the given milliseconds, sequence chosen.
    AutoSeq(u64),
    /// `<ms>-<seq>` or `<ms>` (sequence 0).
    Explicit(StreamId),
}

/// Why an ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// The text is not an ID.
    Invalid,
    /// The ID is not greater than the stream's last ID.
    NotGreater,
    /// The ID is `0-0`, which `XADD` never accepts.
    Zero,
    /// The stream's last ID is the largest possible one.
    Exhausted,
    /// An exclusive start bound at the largest ID.
    InvalidStart,
    /// An exclusive end bound at the smallest ID.
    InvalidEnd,
}

impl IdError {
    /// The error reply text Redis gives for this case.
    pub fn redis_message(self) -> &'static str {
        match self {
            IdError::Invalid => "ERR Invalid stream ID specified as stream command argument",
            IdError::NotGreater => {
                "ERR The ID specified in XADD is equal or smaller than the target stream top item"
            }
            IdError::Zero => "ERR The ID specified in XADD must be greater than 0-0",
            IdError::Exhausted => {
                "ERR The stream has exhausted the last possible ID, unable to add more items"
            }
            IdError::InvalidStart => "ERR invalid start ID for the interval",
            IdError::InvalidEnd => "ERR invalid end ID for the interval",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Invalid => "invalid stream id: expected <ms>-<seq>, <ms>, <ms>-* or *",
            IdError::NotGreater => "stream id is not greater than the stream's last id",
            IdError::Zero => "stream id 0-0 is not allowed",
            IdError::Exhausted => "stream has reached the largest possible id",
            IdError::InvalidStart => "exclusive start bound cannot follow the largest id",
            IdError::InvalidEnd => "exclusive end bound cannot precede the smallest id",
        })
    }
}

impl std::error::Error for IdError {}

impl IdSpec {
    /// Parses the ID argument of `XADD`.
    ///
    /// # Errors
    ///
    /// [`IdError::Invalid`] when `arg` is none of the accepted forms.
    pub fn parse(arg: &[u8]) -> Result<IdSpec, IdError> {
        if arg == b"*" {
            return Ok(IdSpec::Auto);
        }
        match split_id(arg) {
            (ms, None) => Ok(IdSpec::Explicit(StreamId::new(number(ms)?, 0))),
            (ms, Some(b"*")) => Ok(IdSpec::AutoSeq(number(ms)?)),
            (ms, Some(seq)) => Ok(IdSpec::Explicit(StreamId::new(number(ms)?, number(seq)?))),
        }
    }

    /// Chooses the ID of a new entry after `last` (`0-0` for a new stream).
    ///
    /// For [`IdSpec::Auto`], `now_ms` is used if it is past `last`;
    /// otherwise (same millisecond, or the clock went back) the ID is the one
    /// after `last`, so IDs never go backwards.
    ///
    /// # Errors
    ///
    /// [`IdError::NotGreater`], [`IdError::Zero`] or [`IdError::Exhausted`]
    /// as Redis reports them.
    pub fn resolve(self, last: StreamId, now_ms: u64) -> Result<StreamId, IdError> {
        match self {
            IdSpec::Auto if now_ms > last.ms => Ok(StreamId::new(now_ms, 0)),
            IdSpec::Auto => last.successor().ok_or(IdError::Exhausted),
            IdSpec::AutoSeq(ms) if ms > last.ms => Ok(StreamId::new(ms, 0)),
            IdSpec::AutoSeq(ms) if ms == last.ms => match last.seq.checked_add(1) {
                Some(seq) => Ok(StreamId::new(ms, seq)),
                None => Err(IdError::NotGreater),
            },
            IdSpec::AutoSeq(_) => Err(IdError::NotGreater),
            IdSpec::Explicit(StreamId::MIN) => Err(IdError::Zero),
            IdSpec::Explicit(id) if id > last => Ok(id),
            IdSpec::Explicit(_) => Err(IdError::NotGreater),
        }
    }
}

/// Parses the start bound of `XRANGE`.
///
/// # Errors
///
/// [`IdError::Invalid`] for text that is not a bound, and
/// [`IdError::InvalidStart`] for an exclusive start at the largest ID.
pub fn parse_range_start(arg: &[u8]) -> Result<StreamId, IdError> {
    match arg.strip_prefix(b"(") {
        Some(inner) => parse_bound(inner, 0)?
            .successor()
            .ok_or(IdError::InvalidStart),
        None => parse_bound(arg, 0),
    }
}

/// Parses the end bound of `XRANGE`.
///
/// # Errors
///
/// [`IdError::Invalid`] for text that is not a bound, and
/// [`IdError::InvalidEnd`] for an exclusive end at the smallest ID.
pub fn parse_range_end(arg: &[u8]) -> Result<StreamId, IdError> {
    match arg.strip_prefix(b"(") {
        Some(inner) => parse_bound(inner, u64::MAX)?
            .predecessor()
            .ok_or(IdError::InvalidEnd),
        None => parse_bound(arg, u64::MAX),
    }
}

/// Parses `-`, `+`, `<ms>` (with `missing_seq`) or `<ms>-<seq>`.
fn parse_bound(arg: &[u8], missing_seq: u64) -> Result<StreamId, IdError> {
    match arg {
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        _ => match split_id(arg) {
            (ms, None) => Ok(StreamId::new(number(ms)?, missing_seq)),
            (ms, Some(seq)) => Ok(StreamId::new(number(ms)?, number(seq)?)),
        },
    }
}

/// Splits `<ms>-<seq>` at its first `-`.
fn split_id(arg: &[u8]) -> (&[u8], Option<&[u8]>) {
    match arg.iter().position(|&b| b == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    }
}

fn number(text: &[u8]) -> Result<u64, IdError> {
    parse_u64(text).ok_or(IdError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xadd_id_forms_parse() {
        assert_eq!(IdSpec::parse(b"*"), Ok(IdSpec::Auto));
        assert_eq!(IdSpec::parse(b"5-*"), Ok(IdSpec::AutoSeq(5)));
        assert_eq!(
            IdSpec::parse(b"5-3"),
            Ok(IdSpec::Explicit(StreamId::new(5, 3)))
        );
        assert_eq!(
            IdSpec::parse(b"5"),
            Ok(IdSpec::Explicit(StreamId::new(5, 0)))
        );
        for bad in [
            &b""[..],
            b"-",
            b"5-",
            b"-5",
            b"a-1",
            b"1-2-3",
            b"*-1",
            b"1-**",
            b"+1",
        ] {
            assert_eq!(IdSpec::parse(bad), Err(IdError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn auto_ids_never_go_backwards_when_the_clock_does() {
        let last = StreamId::new(1000, 4);
        assert_eq!(IdSpec::Auto.resolve(last, 1001), Ok(StreamId::new(1001, 0)));
        assert_eq!(IdSpec::Auto.resolve(last, 1000), Ok(StreamId::new(1000, 5)));
        assert_eq!(IdSpec::Auto.resolve(last, 10), Ok(StreamId::new(1000, 5)));
        let full_ms = StreamId::new(7, u64::MAX);
        assert_eq!(IdSpec::Auto.resolve(full_ms, 3), Ok(StreamId::new(8, 0)));
        assert_eq!(
            IdSpec::Auto.resolve(StreamId::MAX, 3),
            Err(IdError::Exhausted)
        );
    }

    #[test]
    fn explicit_ids_must_exceed_the_last_and_zero() {
        let last = StreamId::new(5, 5);
        let resolve = |text: &[u8]| IdSpec::parse(text).unwrap().resolve(last, 0);
        assert_eq!(resolve(b"5-6"), Ok(StreamId::new(5, 6)));
        assert_eq!(resolve(b"5-5"), Err(IdError::NotGreater));
        assert_eq!(resolve(b"5"), Err(IdError::NotGreater));
        assert_eq!(resolve(b"5-*"), Ok(StreamId::new(5, 6)));
        assert_eq!(resolve(b"4-*"), Err(IdError::NotGreater));
        assert_eq!(resolve(b"6-*"), Ok(StreamId::new(6, 0)));
        let zero = IdSpec::parse(b"0-0").unwrap();
        assert_eq!(zero.resolve(StreamId::MIN, 0), Err(IdError::Zero));
        assert_eq!(
            IdSpec::AutoSeq(0).resolve(StreamId::MIN, 0),
            Ok(StreamId::new(0, 1))
        );
    }

    #[test]
    fn range_bounds_fill_the_missing_sequence_by_side() {
        assert_eq!(parse_range_start(b"-"), Ok(StreamId::MIN));
        assert_eq!(parse_range_end(b"+"), Ok(StreamId::MAX));
        assert_eq!(parse_range_start(b"7"), Ok(StreamId::new(7, 0)));
        assert_eq!(parse_range_end(b"7"), Ok(StreamId::new(7, u64::MAX)));
        assert_eq!(parse_range_start(b"(7-1"), Ok(StreamId::new(7, 2)));
        assert_eq!(parse_range_end(b"(7-0"), Ok(StreamId::new(6, u64::MAX)));
        assert_eq!(parse_range_start(b"(+"), Err(IdError::InvalidStart));
        assert_eq!(parse_range_end(b"(-"), Err(IdError::InvalidEnd));
        assert_eq!(parse_range_start(b"x"), Err(IdError::Invalid));
    }
}
