//! The per-message columns of a committed block, in one compact byte form shared by the commit
//! request (base64 in JSON) and the control plane's `blocks` table.
//!
//! Owns: `BlockEntry`, `Entries` and their encoding. Does not own: what the control plane
//! decides from them (its store) or the object's own block layout (`format` in the agent).
//!
//! Why columns and not one struct per message: what a control plane needs of each message —
//! its subject (an index into the block's subject table), its sizes and its arrival time — is a
//! few bytes once the columns are delta- and run-length-coded, against ~90 bytes for a row per
//! message. The layout (all integers LEB128, signed ones zigzag):
//!
//! ```text
//! version = 1 | flags | count
//! subjects:  absent when flags & ONE_SUBJECT (every entry has subject 0), else count values
//! sizes:     runs (value, run length) when flags & SIZE_RUNS, else count values
//! headers:   runs (value, run length), always
//! times:     first timestamp, then count-1 deltas from the previous one
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::varint::{self, VarintError, put, unzigzag, zigzag};

const VERSION: u8 = 1;
const ONE_SUBJECT: u8 = 1;
const SIZE_RUNS: u8 = 2;

/// No block holds more entries than this (an object is at most a few MiB, at least one byte per
/// message); guards allocations while decoding hostile input.
pub const MAX_ENTRIES: usize = 16 * 1024 * 1024;

/// One message of a block as the control plane sees it: no payload, no subject text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockEntry {
    /// Index into the block's subject table.
    pub subject: u32,
    /// Header bytes plus payload bytes, as published.
    pub size: u32,
    /// The header block's length (part of `size`), 0 without headers.
    pub header_size: u32,
    /// Arrival time at the agent, unix nanos.
    pub timestamp_nanos: i64,
}

/// Why a byte form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntriesError {
    #[error("block entries end early")]
    Truncated,
    #[error("block entries have version {0}, this build reads 1")]
    Version(u8),
    #[error("block entries are malformed: {0}")]
    Malformed(&'static str),
}

/// A block's entries, in record order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entries(pub Vec<BlockEntry>);

impl Entries {
    pub fn encode(&self) -> Vec<u8> {
        let e = &self.0;
        let mut out = Vec::with_capacity(8 + e.len() * 3);
        let one_subject = e.iter().all(|x| x.subject == 0);
        let plain_len: usize = e.iter().map(|x| varint::len(u64::from(x.size))).sum();
        let runs = runs(e.iter().map(|x| x.size));
        let runs_len: usize = runs
            .iter()
            .map(|(v, n)| varint::len(u64::from(*v)) + varint::len(*n))
            .sum();
        let size_runs = runs_len < plain_len;
        let mut flags = 0;
        if one_subject {
            flags |= ONE_SUBJECT;
        }
        if size_runs {
            flags |= SIZE_RUNS;
        }
        out.push(VERSION);
        out.push(flags);
        put(&mut out, e.len() as u64);
        if !one_subject {
            for x in e {
                put(&mut out, u64::from(x.subject));
            }
        }
        if size_runs {
            put_runs(&mut out, &runs);
        } else {
            for x in e {
                put(&mut out, u64::from(x.size));
            }
        }
        put_runs(&mut out, &self::runs(e.iter().map(|x| x.header_size)));
        let mut prev = 0i64;
        for (i, x) in e.iter().enumerate() {
            let v = if i == 0 {
                x.timestamp_nanos
            } else {
                x.timestamp_nanos.wrapping_sub(prev)
            };
            put(&mut out, zigzag(v));
            prev = x.timestamp_nanos;
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EntriesError> {
        let mut r = Reader(varint::Reader::new(bytes));
        let version = r.byte()?;
        if version != VERSION {
            return Err(EntriesError::Version(version));
        }
        let flags = r.byte()?;
        if flags & !(ONE_SUBJECT | SIZE_RUNS) != 0 {
            return Err(EntriesError::Malformed("unknown flags"));
        }
        let n = usize::try_from(r.get()?).unwrap_or(usize::MAX);
        // Every entry takes at least one byte of the time column.
        if n > MAX_ENTRIES || n > bytes.len() {
            return Err(EntriesError::Malformed("entry count"));
        }
        let mut e = vec![BlockEntry::default(); n];
        if flags & ONE_SUBJECT == 0 {
            for x in &mut e {
                x.subject = r.get_u32()?;
            }
        }
        if flags & SIZE_RUNS != 0 {
            let sizes = r.runs(n)?;
            for (x, v) in e.iter_mut().zip(sizes) {
                x.size = v;
            }
        } else {
            for x in &mut e {
                x.size = r.get_u32()?;
            }
        }
        let headers = r.runs(n)?;
        for (x, v) in e.iter_mut().zip(headers) {
            if v > x.size {
                return Err(EntriesError::Malformed("header larger than message"));
            }
            x.header_size = v;
        }
        let mut prev = 0i64;
        for (i, x) in e.iter_mut().enumerate() {
            let v = unzigzag(r.get()?);
            x.timestamp_nanos = if i == 0 { v } else { prev.wrapping_add(v) };
            prev = x.timestamp_nanos;
        }
        if !r.0.is_done() {
            return Err(EntriesError::Malformed("trailing bytes"));
        }
        Ok(Self(e))
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.encode()))
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        Self::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

fn runs(values: impl Iterator<Item = u32>) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

fn put_runs(out: &mut Vec<u8>, runs: &[(u32, u64)]) {
    for (v, n) in runs {
        put(out, u64::from(*v));
        put(out, *n);
    }
}

/// The entry columns' reads: varints, with the column-level checks on top.
struct Reader<'a>(varint::Reader<'a>);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, EntriesError> {
        self.0.byte().map_err(|_| EntriesError::Truncated)
    }

    fn get(&mut self) -> Result<u64, EntriesError> {
        self.0.get().map_err(|e| match e {
            VarintError::Truncated => EntriesError::Truncated,
            VarintError::TooLong => EntriesError::Malformed("varint longer than 64 bits"),
        })
    }

    fn get_u32(&mut self) -> Result<u32, EntriesError> {
        u32::try_from(self.get()?).map_err(|_| EntriesError::Malformed("value over u32"))
    }

    /// Run-length pairs covering exactly `n` values.
    fn runs(&mut self, n: usize) -> Result<Vec<u32>, EntriesError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let v = self.get_u32()?;
            let run = usize::try_from(self.get()?).unwrap_or(usize::MAX);
            if run == 0 || run > n - out.len() {
                return Err(EntriesError::Malformed("run length"));
            }
            out.extend(std::iter::repeat_n(v, run));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(subject: u32, size: u32, header_size: u32, ts: i64) -> BlockEntry {
        BlockEntry {
            subject,
            size,
            header_size,
            timestamp_nanos: ts,
        }
    }

    #[test]
    fn a_block_of_equal_messages_costs_about_two_bytes_each() {
        let e = Entries(
            (0..1000)
                .map(|i| {
                    entry(
                        i % 10,
                        128,
                        0,
                        1_700_000_000_000_000_000 + i64::from(i) * 6_000,
                    )
                })
                .collect(),
        );
        let bytes = e.encode();
        // One byte of subject index and two of time delta per message; sizes are one run.
        assert!(bytes.len() < 3 * 1000 + 32, "{} bytes", bytes.len());
        assert_eq!(Entries::decode(&bytes), Ok(e));
    }

    #[test]
    fn damaged_forms_are_refused_not_panicked_on() {
        let e = Entries(vec![entry(0, 10, 2, 5), entry(1, 300, 0, -7)]);
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert!(Entries::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Entries::decode(&extra).is_err());
        let mut version = bytes;
        version[0] = 9;
        assert_eq!(Entries::decode(&version), Err(EntriesError::Version(9)));
        // A header larger than its message.
        let bad = Entries(vec![entry(0, 1, 2, 0)]).encode();
        assert!(Entries::decode(&bad).is_err());
    }

    #[test]
    fn json_form_is_base64() {
        let e = Entries(vec![entry(0, 10, 0, 5)]);
        let json = serde_json::to_string(&e).expect("json");
        assert!(json.starts_with('"'), "{json}");
        let back: Entries = serde_json::from_str(&json).expect("back");
        assert_eq!(back, e);
        assert!(serde_json::from_str::<Entries>("\"!!\"").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(raw in proptest::collection::vec(
            (0u32..5, 0u32..100_000, 0u32..50, any::<i64>()), 0..200)
        ) {
            let e = Entries(raw.into_iter()
                .map(|(s, size, h, ts)| entry(s, size, h.min(size), ts)).collect());
            prop_assert_eq!(Entries::decode(&e.encode()), Ok(e));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Entries::decode(&bytes);
        }
    }
}
