//! `XRANGE` answered in bounded pieces.
//!
//! A range can be as large as the stream, and building its whole reply in
//! memory would let one slow reader hold a copy of the log. Instead the range
//! is read twice in batches of [`BATCH_ENTRIES`]: once to count the entries
//! (RESP2 arrays state their length first), then to encode them, batch by
//! batch, for the connection to write before it reads the next. The end bound
//! is pinned to the stream's last ID when the plan is made, so appends that
//! arrive meanwhile cannot change the count.

use super::streams::{entry_reply, parse_xrange, storage_error};
use super::Context;
use crate::resp::{Reply, Request};
use crate::storage::StreamId;

/// Entries read per step: a few MiB at most for large records.
pub const BATCH_ENTRIES: usize = 8;

/// A planned `XRANGE` answer, encoded a batch at a time.
#[derive(Debug, Clone)]
pub struct RangeStream {
    key: Vec<u8>,
    cursor: StreamId,
    end: StreamId,
    total: usize,
    remaining: usize,
}

impl RangeStream {
    /// Plans the answer if `request` is an `XRANGE`: `None` for any other
    /// command, `Some(Err(reply))` when the whole reply is known already (an
    /// error, an empty or null array).
    pub fn plan(request: &Request, ctx: &Context) -> Option<Result<RangeStream, Reply>> {
        let args = request.args();
        if !args.first()?.eq_ignore_ascii_case(b"xrange") {
            return None;
        }
        Some(Self::count(args, ctx))
    }

    fn count(args: &[Vec<u8>], ctx: &Context) -> Result<RangeStream, Reply> {
        let store = ctx.store();
        let range = parse_xrange(args, store)?;
        let key = args[1].clone();
        let end = store
            .last_id(&key)
            .map_or(range.end, |last| last.min(range.end));
        let limit = range.count.unwrap_or(usize::MAX);

        // Count in batches, holding one batch at a time.
        let mut total = 0usize;
        let mut cursor = range.start;
        while total < limit && cursor <= end {
            let want = BATCH_ENTRIES.min(limit - total);
            let batch = store
                .range(&key, cursor, end, Some(want))
                .map_err(|e| storage_error(&e))?;
            let Some(last) = batch.last() else { break };
            total += batch.len();
            match last.id.successor() {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(RangeStream {
            key,
            cursor: range.start,
            end,
            total,
            remaining: total,
        })
    }

    /// How many entries the answer holds.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Encodes the array header into `out`.
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", self.total).as_bytes());
    }

    /// Encodes the next batch into `out`; `Ok(false)` once every entry is
    /// out.
    ///
    /// # Errors
    ///
    /// A storage failure, as the error reply it would have been; the array
    /// is then incomplete and the connection must be closed.
    pub fn next_batch(&mut self, ctx: &Context, out: &mut Vec<u8>) -> Result<bool, Reply> {
        if self.remaining == 0 {
            return Ok(false);
        }
        let want = BATCH_ENTRIES.min(self.remaining);
        let batch = ctx
            .store()
            .range(&self.key, self.cursor, self.end, Some(want))
            .map_err(|e| storage_error(&e))?;
        if batch.is_empty() {
            return Err(Reply::error("ERR the stream changed while it was read"));
        }
        self.remaining -= batch.len();
        match batch.last().and_then(|last| last.id.successor()) {
            Some(next) => self.cursor = next,
            None => self.remaining = 0,
        }
        for entry in batch {
            entry_reply(entry).encode(out);
        }
        Ok(self.remaining > 0)
    }
}
