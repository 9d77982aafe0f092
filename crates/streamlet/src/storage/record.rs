//! Framing of one entry in a segment file.
//!
//! A record is `[len u32 LE][crc32 u32 LE][payload]`, where `len` is the
//! payload length and the CRC-32 (IEEE) covers the payload. The payload is
//! `ms u64 LE, seq u64 LE, pairs u32 LE`, then for each pair
//! `field_len u32 LE, field, value_len u32 LE, value`.

use super::id::StreamId;

/// Bytes of the `[len][crc32]` header before each payload.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;

/// The largest payload accepted: 256 MiB. Larger entries are refused rather
/// than written, so a corrupt length field can never be mistaken for a
/// plausible record of gigabytes.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// Bytes of the fixed part of a payload (ID and pair count).
const PAYLOAD_FIXED_BYTES: usize = 20;

/// One stream entry: its ID and its field-value pairs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's ID.
    pub id: StreamId,
    /// Field-value pairs, in the order given to `XADD`.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Appends the framed record of an entry to `out`; returns `false` (writing
/// nothing) if its payload would exceed [`MAX_RECORD_BYTES`].
pub(crate) fn encode(id: StreamId, fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) -> bool {
    let payload_bytes = fields
        .iter()
        .try_fold(PAYLOAD_FIXED_BYTES, |acc, (field, value)| {
            acc.checked_add(8)?
                .checked_add(field.len())?
                .checked_add(value.len())
        })
        .filter(|&bytes| bytes <= MAX_RECORD_BYTES);
    let Some(payload_bytes) = payload_bytes else {
        return false;
    };
    let start = out.len();
    out.reserve(FRAME_HEADER_BYTES + payload_bytes);
    out.extend_from_slice(&(payload_bytes as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.ms.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for (field, value) in fields {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    let crc = crc32fast::hash(&out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    true
}

/// The header of a record: its payload length and checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub(crate) payload_bytes: usize,
    pub(crate) crc: u32,
}

impl FrameHeader {
    /// Reads a header; `None` if its length is impossible.
    pub(crate) fn parse(bytes: [u8; FRAME_HEADER_BYTES]) -> Option<FrameHeader> {
        let [l0, l1, l2, l3, c0, c1, c2, c3] = bytes;
        let payload_bytes = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if !(PAYLOAD_FIXED_BYTES..=MAX_RECORD_BYTES).contains(&payload_bytes) {
            return None;
        }
        Some(FrameHeader {
            payload_bytes,
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
        })
    }

    /// Bytes of the whole record, header included.
    pub(crate) fn record_bytes(&self) -> u64 {
        (FRAME_HEADER_BYTES + self.payload_bytes) as u64
    }
}

/// Checks a payload against its header's CRC and decodes it; `None` if the
/// checksum fails or the payload is malformed.
pub(crate) fn decode(header: FrameHeader, payload: &[u8]) -> Option<Entry> {
    if payload.len() != header.payload_bytes || crc32fast::hash(payload) != header.crc {
        return None;
    }
    let mut reader = Reader { bytes: payload };
    let id = StreamId::new(reader.u64()?, reader.u64()?);
    let pairs = reader.u32()? as usize;
    // Each pair takes at least 8 bytes, so a count larger than that is
    // corrupt and must not size an allocation.
    if pairs > reader.bytes.len() / 8 {
        return None;
    }
    let mut fields = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let field = reader.chunk()?.to_vec();
        let value = reader.chunk()?.to_vec();
        fields.push((field, value));
    }
    reader.bytes.is_empty().then_some(Entry { id, fields })
}

/// A cursor over a payload that fails instead of reading past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(id: StreamId, fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode(id, fields, &mut out));
        out
    }

    fn split(record: &[u8]) -> (FrameHeader, &[u8]) {
        let header = FrameHeader::parse(record[..8].try_into().unwrap()).unwrap();
        (header, &record[8..])
    }

    #[test]
    fn records_round_trip() {
        let id = StreamId::new(1700000000000, 3);
        let record = framed(id, &[(b"f", b"v"), (b"", b"long value")]);
        let (header, payload) = split(&record);
        assert_eq!(header.record_bytes(), record.len() as u64);
        let entry = decode(header, payload).unwrap();
        assert_eq!(entry.id, id);
        assert_eq!(
            entry.fields,
            [
                (b"f".to_vec(), b"v".to_vec()),
                (vec![], b"long value".to_vec())
            ]
        );
    }

    #[test]
    fn any_flipped_bit_fails_the_checksum() {
        let record = framed(StreamId::new(1, 1), &[(b"field", b"value")]);
        for bit in 0..(record.len() - 8) * 8 {
            let mut damaged = record.clone();
            damaged[8 + bit / 8] ^= 1 << (bit % 8);
            let (header, payload) = split(&damaged);
            assert_eq!(decode(header, payload), None, "bit {bit}");
        }
    }

    #[test]
    fn impossible_lengths_are_not_headers() {
        assert!(FrameHeader::parse([0; 8]).is_none());
        assert!(FrameHeader::parse([0xff; 8]).is_none());
    }
}
