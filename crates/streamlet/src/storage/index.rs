//! The sparse offset index of a segment and its `.idx` file format.
//!
//! The index holds an `(id, file offset)` pair for the first record of a
//! segment and then for the first record at or past every
//! `index_interval_bytes` of file, so a read seeks close to its start ID and
//! scans at most one interval of records before it.
//!
//! File layout, all integers little-endian:
//!
//! ```text
//! magic "SLIX" | version u32 = 1 | record_count u64 | segment_len_bytes u64
//! | last_id ms u64 | last_id seq u64 | entry_count u32
//! | entry_count x (ms u64, seq u64, offset u64) | crc32 u32 of all before
//! ```
//!
//! `segment_len_bytes` ties an index to the segment it was built from: an
//! index whose length disagrees with its segment file is rebuilt.

use super::id::StreamId;

const MAGIC: &[u8; 4] = b"SLIX";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 4 + 4 + 8 + 8 + 16 + 4;
const ENTRY_BYTES: usize = 24;
const CRC_BYTES: usize = 4;

/// One index point: a record's ID and where its frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) id: StreamId,
    pub(crate) offset: u64,
}

/// The sparse index of one segment, with the segment's record count, length
/// and last ID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentIndex {
    entries: Vec<IndexEntry>,
    record_count: u64,
    segment_len_bytes: u64,
    last_id: StreamId,
}

impl SegmentIndex {
    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Length of the segment file the index describes, in bytes.
    pub fn segment_len_bytes(&self) -> u64 {
        self.segment_len_bytes
    }

    /// ID of the segment's last record (`0-0` when it has none).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// Index points held.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the index takes in memory (its points plus the fixed part).
    pub fn size_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.entries.capacity() * std::mem::size_of::<IndexEntry>())
            as u64
    }

    /// The file offset to scan from to find the first record with an ID at
    /// least `id`.
    pub(crate) fn seek(&self, id: StreamId) -> u64 {
        let after = self.entries.partition_point(|entry| entry.id <= id);
        match after.checked_sub(1) {
            Some(at) => self.entries[at].offset,
            None => 0,
        }
    }

    /// The index in its file format.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.entries.len() * ENTRY_BYTES + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.segment_len_bytes.to_le_bytes());
        out.extend_from_slice(&self.last_id.ms.to_le_bytes());
        out.extend_from_slice(&self.last_id.seq.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for entry in &self.entries {
            out.extend_from_slice(&entry.id.ms.to_le_bytes());
            out.extend_from_slice(&entry.id.seq.to_le_bytes());
            out.extend_from_slice(&entry.offset.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads an index file; `None` if it is truncated, of another version,
    /// or fails its checksum or ordering checks.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SegmentIndex> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(CRC_BYTES)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let (header, points) = body.split_at_checked(HEADER_BYTES)?;
        if &header[..4] != MAGIC || u32_at(header, 4)? != VERSION {
            return None;
        }
        let entry_count = u32_at(header, 40)? as usize;
        if points.len() != entry_count.checked_mul(ENTRY_BYTES)? {
            return None;
        }
        let entries: Vec<IndexEntry> = points
            .chunks_exact(ENTRY_BYTES)
            .map(|point| {
                Some(IndexEntry {
                    id: StreamId::new(u64_at(point, 0)?, u64_at(point, 8)?),
                    offset: u64_at(point, 16)?,
                })
            })
            .collect::<Option<_>>()?;
        let ordered = entries
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].offset < w[1].offset);
        ordered.then_some(SegmentIndex {
            entries,
            record_count: u64_at(header, 8)?,
            segment_len_bytes: u64_at(header, 16)?,
            last_id: StreamId::new(u64_at(header, 24)?, u64_at(header, 32)?),
        })
    }
}

/// Builds a segment's index as its records are appended or scanned.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    index: SegmentIndex,
    interval_bytes: u64,
    next_point_at: u64,
}

impl IndexBuilder {
    pub(crate) fn new(interval_bytes: u64) -> Self {
        IndexBuilder {
            index: SegmentIndex::default(),
            interval_bytes,
            next_point_at: 0,
        }
    }

    /// Notes a record of `record_bytes` whose frame starts at `offset`.
    pub(crate) fn push(&mut self, id: StreamId, offset: u64, record_bytes: u64) {
        if offset >= self.next_point_at {
            self.index.entries.push(IndexEntry { id, offset });
            self.next_point_at = offset.saturating_add(self.interval_bytes.max(1));
        }
        self.index.record_count += 1;
        self.index.segment_len_bytes = offset + record_bytes;
        self.index.last_id = id;
    }

    /// Continues building an index read back from a scan.
    pub(crate) fn resume(index: SegmentIndex, interval_bytes: u64) -> Self {
        let next_point_at = match index.entries.last() {
            Some(last) => last.offset.saturating_add(interval_bytes.max(1)),
            None => 0,
        };
        IndexBuilder {
            index,
            interval_bytes,
            next_point_at,
        }
    }

    /// The index so far.
    pub(crate) fn index(&self) -> &SegmentIndex {
        &self.index
    }

    /// Ends building.
    pub(crate) fn finish(self) -> SegmentIndex {
        self.index
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut builder = IndexBuilder::new(100);
        for n in 0..10u64 {
            builder.push(StreamId::new(n + 1, 0), n * 40, 40);
        }
        builder.finish()
    }

    #[test]
    fn points_are_taken_once_per_interval() {
        let index = sample();
        let offsets: Vec<u64> = index.entries.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [0, 120, 240, 360]);
        assert_eq!(index.record_count(), 10);
        assert_eq!(index.segment_len_bytes(), 400);
        assert_eq!(index.last_id(), StreamId::new(10, 0));
    }

    #[test]
    fn seek_lands_at_or_before_the_target() {
        let index = sample();
        assert_eq!(index.seek(StreamId::MIN), 0);
        assert_eq!(index.seek(StreamId::new(4, 0)), 120);
        assert_eq!(index.seek(StreamId::new(5, 0)), 120);
        assert_eq!(index.seek(StreamId::MAX), 360);
    }

    #[test]
    fn file_format_round_trips_and_detects_damage() {
        let index = sample();
        let bytes = index.encode();
        assert_eq!(SegmentIndex::decode(&bytes), Some(index));
        for cut in 0..bytes.len() {
            assert_eq!(SegmentIndex::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut damaged = bytes.clone();
        damaged[HEADER_BYTES + 3] ^= 0x10;
        assert_eq!(SegmentIndex::decode(&damaged), None);
    }
}
