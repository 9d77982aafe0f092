//! Record content, the ledger of acknowledged records and the read-back
//! verification.
//!
//! Every record is `XADD key * p <producer> s <seq> v <value>` where the
//! value is derived from `(producer, seq)` alone, so any record read back
//! can be checked without keeping its bytes.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::resp::{xrange_args, Connection, Reply};

/// One acknowledged record: the ID the server gave and what was sent.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The stream entry ID, `ms-seq`.
    pub id: String,
    /// The producer that sent it.
    pub producer: u64,
    /// The producer's sequence number for it.
    pub seq: u64,
}

/// Every acknowledged record per stream key, plus the sum of the value
/// checksums.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged records per stream key.
    pub acks: BTreeMap<String, Vec<Ack>>,
    /// Wrapping sum of [`checksum`] over every acknowledged value.
    pub checksum: u64,
    /// Value length every record was written with.
    pub value_bytes: usize,
}

impl Ledger {
    /// How many records were acknowledged in all.
    pub fn len(&self) -> u64 {
        self.acks.values().map(|acks| acks.len() as u64).sum()
    }

    /// Adds another ledger's records.
    pub fn merge(&mut self, other: Ledger) {
        for (key, acks) in other.acks {
            self.acks.entry(key).or_default().extend(acks);
        }
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }
}

/// What reading every stream back found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Records acknowledged to the producers.
    pub acknowledged: u64,
    /// Acknowledged records found, each exactly once with the right content.
    pub read_back: u64,
    /// Acknowledged records not found.
    pub missing: u64,
    /// Acknowledged IDs found more than once.
    pub duplicates: u64,
    /// Records whose content does not match their producer and sequence.
    pub corrupt: u64,
    /// Records with correct content that were never acknowledged (their ack
    /// was lost to a timeout or a closed connection).
    pub unacknowledged_extra: u64,
    /// Whether the checksum over acknowledged values read back matches.
    pub checksum_matches: bool,
    /// Stream entries read in all.
    pub entries_read: u64,
}

impl Verification {
    /// Whether nothing acknowledged was lost, doubled or changed.
    pub fn is_ok(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.corrupt == 0
            && self.checksum_matches
            && self.read_back == self.acknowledged
    }
}

/// Spread of the offsets into the pool, so values of the same length still
/// differ beyond their tag.
const POOL_SPREAD_BYTES: usize = 64 * 1024;

/// Makes record values: `len` bytes derived from `(producer, seq)` alone.
///
/// A value is a slice of a fixed pseudo-random pool of letters and digits at
/// an offset hashed from the pair, with the pair written over its start, so
/// making one is a copy rather than a byte-by-byte computation.
#[derive(Debug)]
pub struct Values {
    pool: Vec<u8>,
    len: usize,
}

impl Values {
    /// A maker of `len`-byte values.
    pub fn new(len: usize) -> Self {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut state = 0x5eed_5eed_5eed_5eed;
        let mut pool = Vec::with_capacity(len + POOL_SPREAD_BYTES + 8);
        while pool.len() < len + POOL_SPREAD_BYTES {
            let word = splitmix64(&mut state);
            pool.extend(
                word.to_le_bytes()
                    .iter()
                    .map(|b| ALPHABET[usize::from(b & 63)]),
            );
        }
        Values { pool, len }
    }

    /// The value of record `(producer, seq)`.
    pub fn get(&self, producer: u64, seq: u64) -> Vec<u8> {
        let mut state = producer.rotate_left(40) ^ seq;
        let offset = (splitmix64(&mut state) % POOL_SPREAD_BYTES as u64) as usize;
        let mut out = self.pool[offset..offset + self.len].to_vec();
        let tag = format!("{producer}:{seq}:");
        let tag_len = tag.len().min(self.len);
        out[..tag_len].copy_from_slice(&tag.as_bytes()[..tag_len]);
        out
    }
}

/// A 64-bit checksum of `bytes`, taken a word at a time.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
    }
    for &byte in chunks.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The smallest stream ID after `id` (`ms-seq` becomes `ms-(seq+1)`), so
/// the next XRANGE batch starts past the last entry without needing the
/// exclusive `(` syntax.
///
/// # Errors
///
/// When `id` is not `ms-seq` with both parts decimal.
pub fn next_id(id: &str) -> Result<String> {
    let parsed = id
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)));
    match parsed {
        Some((ms, seq)) if seq < u64::MAX => Ok(format!("{ms}-{}", seq + 1)),
        Some((ms, _)) if ms < u64::MAX => Ok(format!("{}-0", ms + 1)),
        _ => bail!("stream id {id:?} is not MS-SEQ with both parts decimal"),
    }
}

/// One stream entry from an XRANGE reply: its ID and field/value pairs.
pub struct Entry {
    /// The entry ID.
    pub id: String,
    /// Field/value pairs in order.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_slice())
    }

    fn number(&self, name: &[u8]) -> Option<u64> {
        std::str::from_utf8(self.field(name)?).ok()?.parse().ok()
    }
}

/// Reads the entries of an XRANGE reply.
///
/// # Errors
///
/// When the reply is an error or not shaped like `[[id, [f, v, ...]], ...]`.
pub fn entries(reply: Reply) -> Result<Vec<Entry>> {
    let items = match reply {
        Reply::Array(items) => items,
        Reply::Null => return Ok(Vec::new()),
        Reply::Error(text) => bail!("XRANGE failed: {text}"),
        other => bail!("XRANGE returned {other:?}, expected an array"),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Reply::Array(mut parts) = item else {
            bail!("XRANGE entry is not an array");
        };
        if parts.len() != 2 {
            bail!("XRANGE entry has {} parts, expected 2", parts.len());
        }
        let body = parts.pop();
        let id = parts.pop();
        let (Some(Reply::Bulk(id)), Some(Reply::Array(flat))) = (id, body) else {
            bail!("XRANGE entry is not [id, [field, value, ...]]");
        };
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
            let (Reply::Bulk(field), Reply::Bulk(value)) = (field, value) else {
                bail!("XRANGE field or value is not a bulk string");
            };
            fields.push((field, value));
        }
        out.push(Entry {
            id: String::from_utf8_lossy(&id).into_owned(),
            fields,
        });
    }
    Ok(out)
}

/// Reads every stream in `ledger` back completely in batches of
/// `batch_count` and checks each acknowledged record.
///
/// # Errors
///
/// When the server cannot be reached or answers XRANGE with an error.
pub fn verify(
    addr: SocketAddr,
    ledger: &Ledger,
    batch_count: usize,
    timeout: Duration,
) -> Result<Verification> {
    let mut conn = Connection::connect(addr, timeout).context("connecting to verify")?;
    let mut report = Verification {
        acknowledged: ledger.len(),
        ..Verification::default()
    };
    let mut read_checksum = 0u64;
    let values = Values::new(ledger.value_bytes);
    let count = batch_count.max(1).to_string();
    for (key, acks) in &ledger.acks {
        let mut expected: HashMap<&str, (&Ack, bool)> = acks
            .iter()
            .map(|ack| (ack.id.as_str(), (ack, false)))
            .collect();
        let mut start = "-".to_string();
        loop {
            let args = xrange_args(key, &start, &count);
            let reply = conn
                .call(&args)
                .with_context(|| format!("XRANGE {key} {start} +"))?;
            let batch = entries(reply).with_context(|| format!("stream {key}"))?;
            let Some(last) = batch.last() else {
                break;
            };
            start = next_id(&last.id)?;
            for entry in &batch {
                report.entries_read += 1;
                let (producer, seq) = match (entry.number(b"p"), entry.number(b"s")) {
                    (Some(producer), Some(seq)) => (producer, seq),
                    _ => {
                        report.corrupt += 1;
                        continue;
                    }
                };
                let content_ok = entry.field(b"v") == Some(&values.get(producer, seq)[..]);
                match expected.get_mut(entry.id.as_str()) {
                    Some((_, seen)) if *seen => report.duplicates += 1,
                    Some((ack, seen)) => {
                        *seen = true;
                        if content_ok && ack.producer == producer && ack.seq == seq {
                            report.read_back += 1;
                            let bytes = entry.field(b"v").unwrap_or_default();
                            read_checksum = read_checksum.wrapping_add(checksum(bytes));
                        } else {
                            report.corrupt += 1;
                        }
                    }
                    None if content_ok => report.unacknowledged_extra += 1,
                    None => report.corrupt += 1,
                }
            }
        }
        report.missing += expected.values().filter(|(_, seen)| !seen).count() as u64;
    }
    report.checksum_matches = read_checksum == ledger.checksum;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_differ_between_records() {
        // A second maker stands for the verifier in another run.
        let (a, b) = (Values::new(100), Values::new(100));
        assert_eq!(a.get(1, 2), b.get(1, 2));
        assert_ne!(a.get(1, 2), a.get(2, 1));
        assert_ne!(a.get(1, 2), a.get(1, 3));
        assert_eq!(Values::new(3).get(123, 456).len(), 3);
    }

    #[test]
    fn checksum_sees_a_changed_byte_and_length() {
        let value = Values::new(1000).get(5, 6);
        let mut changed = value.clone();
        changed[999] ^= 1;
        assert_ne!(checksum(&value), checksum(&changed));
        assert_ne!(checksum(&value), checksum(&value[..992]));
    }

    #[test]
    fn next_id_steps_past_the_given_id() {
        assert_eq!(
            next_id("1700000000000-0").ok().as_deref(),
            Some("1700000000000-1")
        );
        assert_eq!(
            next_id("5-18446744073709551615").ok().as_deref(),
            Some("6-0")
        );
        assert!(next_id("abc").is_err());
        assert!(next_id("1-x").is_err());
    }

    #[test]
    fn entries_reads_an_xrange_reply() {
        let reply = Reply::Array(vec![Reply::Array(vec![
            Reply::Bulk(b"1-0".to_vec()),
            Reply::Array(vec![Reply::Bulk(b"p".to_vec()), Reply::Bulk(b"7".to_vec())]),
        ])]);
        let parsed = entries(reply).unwrap_or_default();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id, "1-0");
        assert_eq!(parsed[0].number(b"p"), Some(7));
        assert!(entries(Reply::Error("ERR no".into())).is_err());
    }
}
