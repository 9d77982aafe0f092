//! Stream commands: `XADD`, `XRANGE`, `XLEN`.

use std::fmt::Write as _;

use super::arity_error;
use crate::decimal::parse_i64;
use crate::resp::Reply;
use crate::storage::{
    parse_range_end, parse_range_start, Entry, IdSpec, StorageError, Store, StreamId,
};

/// Field-value pairs an `XADD` hands to the store without allocating.
const STACK_PAIRS: usize = 8;

/// `XADD key [NOMKSTREAM] <* | ms-* | ms-seq | ms> field value [field value ...]`.
///
/// Replies with the new ID as a bulk string, or the null bulk when
/// `NOMKSTREAM` is given and the stream does not exist. Trimming (`MAXLEN`,
/// `MINID`) is refused: the store keeps every entry.
pub(crate) fn xadd(args: &[Vec<u8>], store: &Store) -> Reply {
    if args.len() < 5 {
        return arity_error("xadd");
    }
    let mut pos = 2;
    let mut create = true;
    loop {
        let option = args[pos].as_slice();
        if option.eq_ignore_ascii_case(b"nomkstream") {
            create = false;
        } else if option.eq_ignore_ascii_case(b"maxlen") || option.eq_ignore_ascii_case(b"minid") {
            return Reply::error("ERR trimming with MAXLEN or MINID is not supported");
        } else {
            break;
        }
        pos += 1;
        if pos >= args.len() {
            return arity_error("xadd");
        }
    }
    let id = match IdSpec::parse(&args[pos]) {
        Ok(id) => id,
        Err(error) => return Reply::error(error.redis_message()),
    };
    let fields = &args[pos + 1..];
    if fields.is_empty() || fields.len() % 2 == 1 {
        return arity_error("xadd");
    }
    // Up to eight pairs on the stack, which is every common XADD.
    let mut stack: [(&[u8], &[u8]); STACK_PAIRS] = [(&[], &[]); STACK_PAIRS];
    let heap: Vec<(&[u8], &[u8])>;
    let pairs: &[(&[u8], &[u8])] = if fields.len() / 2 <= STACK_PAIRS {
        for (slot, fields) in stack.iter_mut().zip(fields.chunks_exact(2)) {
            *slot = field_pair(fields);
        }
        &stack[..fields.len() / 2]
    } else {
        heap = fields.chunks_exact(2).map(field_pair).collect();
        &heap
    };
    match store.append(&args[1], id, pairs, create) {
        Ok(Some(id)) => {
            // An ID is at most 41 characters: one allocation, no growth.
            let mut text = String::with_capacity(41);
            let _ = write!(text, "{id}");
            Reply::bulk(text)
        }
        Ok(None) => Reply::NullBulk,
        Err(error) => storage_error(&error),
    }
}

/// A field and its value, from two adjacent arguments.
fn field_pair(pair: &[Vec<u8>]) -> (&[u8], &[u8]) {
    (pair[0].as_slice(), pair[1].as_slice())
}

/// `XRANGE key start end [COUNT n]`: an array of `[id, [field, value, ...]]`.
///
/// As Redis: `COUNT 0` (or negative) gives the null array on an existing
/// stream, a missing stream gives the empty array.
pub(crate) fn xrange(args: &[Vec<u8>], store: &Store) -> Reply {
    let range = match parse_xrange(args, store) {
        Ok(range) => range,
        Err(reply) => return reply,
    };
    match store.range(&args[1], range.start, range.end, range.count) {
        Ok(entries) => Reply::Array(entries.into_iter().map(entry_reply).collect()),
        Err(error) => storage_error(&error),
    }
}

/// The bounds of an `XRANGE` whose answer is not known without reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeArgs {
    pub(crate) start: StreamId,
    pub(crate) end: StreamId,
    pub(crate) count: Option<usize>,
}

/// Parses `XRANGE key start end [COUNT n]`; `Err` carries the whole reply
/// when it is known without reading (an error, a missing stream, `COUNT 0`).
pub(crate) fn parse_xrange(args: &[Vec<u8>], store: &Store) -> Result<RangeArgs, Reply> {
    if args.len() < 4 {
        return Err(arity_error("xrange"));
    }
    let start = parse_range_start(&args[2]).map_err(|e| Reply::error(e.redis_message()))?;
    let end = parse_range_end(&args[3]).map_err(|e| Reply::error(e.redis_message()))?;
    let mut count = None;
    let mut pos = 4;
    while pos < args.len() {
        if !args[pos].eq_ignore_ascii_case(b"count") || pos + 1 >= args.len() {
            return Err(Reply::error("ERR syntax error"));
        }
        match parse_i64(&args[pos + 1]) {
            Some(n) => count = Some(usize::try_from(n).unwrap_or(0)),
            None => return Err(Reply::error("ERR value is not an integer or out of range")),
        }
        pos += 2;
    }
    if !store.exists(&args[1]) {
        return Err(Reply::Array(Vec::new()));
    }
    if count == Some(0) {
        return Err(Reply::NullArray);
    }
    Ok(RangeArgs { start, end, count })
}

/// `XLEN key`: the number of entries, 0 for a missing stream.
pub(crate) fn xlen(args: &[Vec<u8>], store: &Store) -> Reply {
    let [_, key] = args else {
        return arity_error("xlen");
    };
    Reply::Integer(i64::try_from(store.len(key)).unwrap_or(i64::MAX))
}

/// One entry as Redis replies it: `[id, [field, value, ...]]`.
pub(crate) fn entry_reply(entry: Entry) -> Reply {
    let fields = entry
        .fields
        .into_iter()
        .flat_map(|(field, value)| [Reply::Bulk(field), Reply::Bulk(value)])
        .collect();
    Reply::Array(vec![
        Reply::bulk(entry.id.to_string()),
        Reply::Array(fields),
    ])
}

/// The error reply for a storage failure: Redis's text for ID errors, the
/// error's own message otherwise. I/O failures are logged, since an operator
/// may have to act.
pub(crate) fn storage_error(error: &StorageError) -> Reply {
    match error {
        StorageError::Id(id_error) => Reply::error(id_error.redis_message()),
        StorageError::Io { .. } | StorageError::Write { .. } => {
            tracing::error!(%error, "storage operation failed");
            Reply::error(format!("ERR {error}"))
        }
        _ => Reply::error(format!("ERR {error}")),
    }
}
