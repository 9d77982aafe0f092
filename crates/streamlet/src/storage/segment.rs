//! Segment files: naming, scanning for recovery, index files, and reads
//! through the block cache.
//!
//! A segment is named after the ID of its first record, both parts
//! zero-padded to 20 digits so that names sort as IDs do:
//! `00000001700000000000-00000000000000000000.log`, with its index beside it
//! as `<same>.idx`.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::id::StreamId;
use super::index::{IndexBuilder, SegmentIndex};
use super::record::{self, Entry, FrameHeader, FRAME_HEADER_BYTES};
use crate::cache::{BlockCache, BlockKey, BLOCK_BYTES};

/// The segment file name for a base ID.
pub(crate) fn log_file_name(base: StreamId) -> String {
    format!("{:020}-{:020}.log", base.ms, base.seq)
}

/// The index file name for a base ID.
pub(crate) fn index_file_name(base: StreamId) -> String {
    format!("{:020}-{:020}.idx", base.ms, base.seq)
}

/// The base ID of a segment file name, or `None` if it is not one.
pub(crate) fn parse_log_file_name(name: &str) -> Option<StreamId> {
    let stem = name.strip_suffix(".log")?;
    let (ms, seq) = stem.split_once('-')?;
    if ms.len() != 20 || seq.len() != 20 {
        return None;
    }
    let ms = crate::decimal::parse_u64(ms.as_bytes())?;
    let seq = crate::decimal::parse_u64(seq.as_bytes())?;
    Some(StreamId::new(ms, seq))
}

/// What a scan of a segment file found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The index of the valid records.
    pub(crate) index: SegmentIndex,
    /// The length of the file when scanned.
    pub(crate) file_len_bytes: u64,
}

impl Scan {
    /// Whether bytes past the last valid record were found (a torn or
    /// corrupt tail).
    pub(crate) fn has_bad_tail(&self) -> bool {
        self.index.segment_len_bytes() < self.file_len_bytes
    }
}

/// Reads a segment from its start and indexes every valid record.
///
/// The scan stops at the first record that is cut short, fails its checksum,
/// does not decode, or whose ID is not greater than the one before it (the
/// first must be greater than `after`).
///
/// # Errors
///
/// I/O errors from reading the file.
pub(crate) fn scan(file: &File, after: StreamId, interval_bytes: u64) -> io::Result<Scan> {
    let file_len_bytes = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(BLOCK_BYTES, file);
    let mut builder = IndexBuilder::new(interval_bytes);
    let mut offset = 0u64;
    let mut last = after;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        if file_len_bytes - offset < FRAME_HEADER_BYTES as u64 {
            break;
        }
        reader.read_exact(&mut header)?;
        let Some(header) = FrameHeader::parse(header) else {
            break;
        };
        if file_len_bytes - offset < header.record_bytes() {
            break;
        }
        payload.resize(header.payload_bytes, 0);
        reader.read_exact(&mut payload)?;
        match record::decode(header, &payload) {
            Some(entry) if entry.id > last => {
                builder.push(entry.id, offset, header.record_bytes());
                last = entry.id;
                offset += header.record_bytes();
            }
            _ => break,
        }
    }
    Ok(Scan {
        index: builder.finish(),
        file_len_bytes,
    })
}

/// Reads an index file; `None` if it is missing, unreadable or corrupt.
pub(crate) fn load_index_file(path: &Path) -> Option<SegmentIndex> {
    let bytes = fs::read(path).ok()?;
    SegmentIndex::decode(&bytes)
}

/// Writes an index file through a temporary file and a rename, so a reader
/// sees either the old file or the whole new one.
///
/// # Errors
///
/// I/O errors from writing, syncing or renaming.
pub(crate) fn write_index_file(path: &Path, index: &SegmentIndex, sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("idx.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&index.encode())?;
    if sync {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&tmp, path)
}

/// A read-only view of one segment for a range read.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub(crate) stream_no: u64,
    pub(crate) base: StreamId,
    pub(crate) file: Arc<File>,
    /// Bytes of complete records: reads never go past it.
    pub(crate) len_bytes: u64,
}

/// Why a range read within one segment stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadStop {
    /// The segment ended; later segments may hold more.
    SegmentEnd,
    /// The end bound or the count was reached.
    Done,
}

impl SegmentView {
    /// Appends to `out` the entries with IDs in `start..=end`, scanning from
    /// `offset`, until `out` holds `count` entries.
    ///
    /// # Errors
    ///
    /// I/O errors, and `InvalidData` when a record that was acknowledged no
    /// longer passes its checksum.
    pub(crate) fn read_range(
        &self,
        cache: &BlockCache,
        mut offset: u64,
        (start, end): (StreamId, StreamId),
        count: usize,
        out: &mut Vec<Entry>,
    ) -> io::Result<ReadStop> {
        let mut payload = Vec::new();
        while offset < self.len_bytes {
            if out.len() >= count {
                return Ok(ReadStop::Done);
            }
            let mut header = [0u8; FRAME_HEADER_BYTES];
            self.read_exact_at(cache, offset, &mut header)?;
            let header = FrameHeader::parse(header).ok_or_else(|| corrupt(self, offset))?;
            payload.resize(header.payload_bytes, 0);
            self.read_exact_at(cache, offset + FRAME_HEADER_BYTES as u64, &mut payload)?;
            let entry = record::decode(header, &payload).ok_or_else(|| corrupt(self, offset))?;
            offset += header.record_bytes();
            if entry.id > end {
                return Ok(ReadStop::Done);
            }
            if entry.id >= start {
                out.push(entry);
            }
        }
        Ok(if out.len() >= count {
            ReadStop::Done
        } else {
            ReadStop::SegmentEnd
        })
    }

    /// Fills `buf` from the segment at `offset`, block by block through the
    /// cache.
    fn read_exact_at(&self, cache: &BlockCache, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len_bytes {
            return Err(corrupt(self, offset));
        }
        let mut filled = 0usize;
        while filled < buf.len() {
            let at = offset + filled as u64;
            let block_no = at / BLOCK_BYTES as u64;
            let within = (at % BLOCK_BYTES as u64) as usize;
            let wanted = (buf.len() - filled).min(BLOCK_BYTES - within);
            let block = self.block(cache, block_no, within + wanted)?;
            buf[filled..filled + wanted].copy_from_slice(&block[within..within + wanted]);
            filled += wanted;
        }
        Ok(())
    }

    /// A block holding at least `needed_bytes` bytes, from the cache or the
    /// file. A cached tail block that is too short (the segment has grown
    /// since) is loaded again.
    fn block(
        &self,
        cache: &BlockCache,
        block_no: u64,
        needed_bytes: usize,
    ) -> io::Result<Arc<[u8]>> {
        let key = BlockKey {
            stream_no: self.stream_no,
            segment_base: self.base,
            block_no,
        };
        if let Some(block) = cache.get(&key) {
            if block.len() >= needed_bytes {
                return Ok(block);
            }
        }
        let start = block_no * BLOCK_BYTES as u64;
        let len = (self.len_bytes - start).min(BLOCK_BYTES as u64) as usize;
        let _scope = mempressure::scope!(crate::Component::SegmentCache);
        let mut data = vec![0u8; len];
        self.file.read_exact_at(&mut data, start)?;
        let block: Arc<[u8]> = Arc::from(data);
        cache.insert(key, Arc::clone(&block));
        Ok(block)
    }
}

fn corrupt(view: &SegmentView, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt record in segment {} at offset {offset}", view.base),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_as_ids() {
        let a = StreamId::new(9, 10);
        let b = StreamId::new(10, 0);
        assert_eq!(parse_log_file_name(&log_file_name(a)), Some(a));
        assert!(log_file_name(a) < log_file_name(b));
        assert_eq!(parse_log_file_name("1-0.log"), None);
        assert_eq!(parse_log_file_name(&index_file_name(a)), None);
    }
}
