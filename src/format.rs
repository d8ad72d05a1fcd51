//! The object format: how one agent's batch window (the JetStream messages of every stream it
//! received in that window) is laid out in one bucket object, and how it is read back.
//!
//! Owns: the byte layout (header, per-stream blocks, footer index, fixed-size trailer), CRC32C
//! coverage, encoding and strictly bounds-checked decoding, and the object key layout. Does not
//! own: I/O (the uploader PUTs, readers range-GET), sequence numbers (the control plane hands
//! them out; a block only stores messages in arrival order), or deciding which messages go into
//! which object (the flusher).
//!
//! The byte-exact specification is `docs/format.md`; this module is its reference implementation.
//!
//! Design points:
//! - Every block is self-contained and carries its own CRC32C, so a reader that knows a block's
//!   `(offset, len)` (from [`BlockRef`], recorded by the control plane, or from the footer) can
//!   fetch and verify it with a single range GET.
//! - A block is a small bincode-encoded table (lengths and timestamps) followed by the raw
//!   concatenated subject/header/payload bytes, so decoding hands out [`Bytes`] slices of the
//!   fetched buffer instead of copying payloads.
//! - Decoding never panics on malformed input: every length read from the object is checked
//!   against the buffer before it is used.

use std::fmt;

use bincode::config::Configuration;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use object_store::path::Path;
use serde::ser::{Serialize, Serializer};
use serde::{Deserialize, Serialize as SerializeDerive};

/// Magic bytes at the start of every object and at the very end of its trailer.
pub const MAGIC: [u8; 4] = *b"ISTR";

/// Version of the object layout this module writes and the newest one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Version of the block layout this module writes and the newest one it reads.
pub const BLOCK_VERSION: u16 = 1;
/// Block layout version 2: the block's distinct subjects once in its table, each record naming
/// its subject by index, the data region holding headers and payloads only (docs/format.md).
/// Readers decode both; writers choose per block (`ObjectBuilder::add_block_v2`).
pub const BLOCK_VERSION_SUBJECTS: u16 = 2;

/// Flag bits this version understands. None are defined yet; readers reject unknown bits so a
/// future writer can add a flag that changes the meaning of the bytes without old readers
/// silently misreading them.
pub const KNOWN_FLAGS: u16 = 0;

/// Header length: magic (4) + version (2) + flags (2).
pub const HEADER_LEN: usize = 8;

/// Trailer length: footer offset (8) + footer length (4) + footer CRC32C (4) + version (2) +
/// reserved (2) + magic (4). Readers fetch at least this many bytes from the tail of an object.
pub const TRAILER_LEN: usize = 24;

/// Block prefix: block version (2) + table length (4).
const BLOCK_PREFIX_LEN: usize = 6;

/// The CRC32C stored at the end of every block.
const BLOCK_CRC_LEN: usize = 4;

/// The smallest well-formed block: prefix, a table with an empty stream name and no entries
/// (two one-byte varints), and the CRC.
pub const MIN_BLOCK_LEN: usize = BLOCK_PREFIX_LEN + 2 + BLOCK_CRC_LEN;

/// Suggested size of the first tail range GET: large enough to hold the footer of an object
/// with a few hundred streams, so most readers need exactly one request to find the footer.
pub const SUGGESTED_TAIL_FETCH: usize = 64 * 1024;

/// Top-level prefix of every key InfiniStream writes in the user's bucket.
pub const KEY_PREFIX: &str = "infinistream";

/// The one bincode configuration of format version 1. Changing it changes the bytes, so it is
/// part of the format, not a tuning knob.
const BINCODE: Configuration = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding();

/// Errors from decoding an object, a footer or a block. Every malformed input maps to one of
/// these; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Magic bytes are not `ISTR`.
    #[error("bad magic in {what}")]
    BadMagic {
        /// Which part of the object carried the bad magic (`header` or `trailer`).
        what: &'static str,
    },
    /// The object or block declares a layout version this reader does not know.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// `object` or `block`.
        what: &'static str,
        /// The version found.
        version: u16,
    },
    /// The header declares flag bits this reader does not know.
    #[error("unsupported flags {flags:#06x}")]
    UnsupportedFlags {
        /// The flags found.
        flags: u16,
    },
    /// The buffer ends before the structure it should contain.
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The tail handed to [`read_footer`] does not contain the whole footer; fetch the last
    /// `need` bytes of the object and call again.
    #[error("tail too short: have {have} bytes, need the last {need}")]
    TailTooShort {
        /// Bytes given.
        have: u64,
        /// Bytes needed from the end of the object.
        need: u64,
    },
    /// A CRC32C does not match the bytes it covers.
    #[error("checksum mismatch in {what}: expected {expected:#010x}, actual {actual:#010x}")]
    ChecksumMismatch {
        /// The stored checksum.
        expected: u32,
        /// The checksum computed over the bytes (or the other stored copy).
        actual: u32,
        /// Which checksum.
        what: &'static str,
    },
    /// A bincode table could not be decoded.
    #[error("decode error: {0}")]
    Decode(String),
    /// The bytes decode but are inconsistent (lengths that do not add up, blocks that do not
    /// tile the object, ...). Checksums passed, so this points at a writer bug, not bit rot.
    #[error("corrupt object: {0}")]
    Corrupt(String),
    /// [`decode_record`] was asked for a record past the end of the block.
    #[error("record index {index} out of range, block has {count} records")]
    RecordOutOfRange {
        /// The requested index.
        index: u32,
        /// Records in the block.
        count: u32,
    },
}

/// One JetStream message as stored in an object.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The subject the message was published to.
    pub subject: ByteString,
    /// Raw NATS headers block (`NATS/1.0\r\n...\r\n\r\n`) exactly as received, if the message
    /// had headers. `Some(empty)` and `None` are distinct and round-trip as such.
    pub headers: Option<Bytes>,
    /// The message payload.
    pub payload: Bytes,
    /// Arrival time at the agent, unix nanoseconds.
    pub timestamp_nanos: i64,
}

impl Record {
    /// Headers plus payload: the message size the control plane stores and limits count.
    pub fn stored_size(&self) -> u64 {
        (self.headers.as_ref().map_or(0, Bytes::len) + self.payload.len()) as u64
    }
}

impl fmt::Debug for Record {
    // Payloads can be megabytes; print sizes, not contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("subject", &self.subject)
            .field("headers_len", &self.headers.as_ref().map(Bytes::len))
            .field("payload_len", &self.payload.len())
            .field("timestamp_nanos", &self.timestamp_nanos)
            .finish()
    }
}

/// Where a block landed in the finished object. `offset`/`len` are final: `object[offset ..
/// offset + len]` is exactly the block, suitable for one range GET and [`decode_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Position of the block in the footer (0-based, in `add_block` order).
    pub index: u32,
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// Byte length of the block, including its trailing CRC32C.
    pub len: u64,
    /// Number of records in the block.
    pub count: u32,
    /// CRC32C of the block bytes except the trailing CRC (the value stored at the block's end
    /// and in the footer).
    pub crc32c: u32,
}

/// One footer entry: where a stream's block is and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq, SerializeDerive)]
pub struct BlockEntry {
    /// Stream name.
    pub stream: String,
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// Byte length of the block, including its trailing CRC32C.
    pub len: u64,
    /// Number of records in the block.
    pub count: u32,
    /// CRC32C of the block bytes except the trailing CRC.
    pub crc32c: u32,
}

impl BlockEntry {
    /// The block's byte range in the object, as used for a range GET.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(self.len)
    }
}

/// The parsed fixed-size trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Byte offset of the footer in the object.
    pub footer_offset: u64,
    /// Byte length of the footer.
    pub footer_len: u32,
    /// CRC32C of the footer bytes.
    pub footer_crc32c: u32,
    /// Object format version (equal to the header's).
    pub version: u16,
}

impl Trailer {
    /// How many bytes from the end of the object a reader needs to decode the footer.
    pub fn tail_len(&self) -> u64 {
        u64::from(self.footer_len) + TRAILER_LEN as u64
    }

    /// Total object length implied by the trailer, or `None` if it overflows (corrupt).
    pub fn object_len(&self) -> Option<u64> {
        self.footer_offset.checked_add(self.tail_len())
    }
}

/// The decoded, verified footer index of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The trailer the footer was found through.
    pub trailer: Trailer,
    /// One entry per block, in object order.
    pub blocks: Vec<BlockEntry>,
}

impl Footer {
    /// Total length of the object this footer belongs to.
    pub fn object_len(&self) -> u64 {
        // read_footer only returns footers whose object length does not overflow.
        self.trailer.object_len().unwrap_or(u64::MAX)
    }

    /// The blocks of `stream` (normally at most one; writers emit one block per stream).
    pub fn blocks_for<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = &'a BlockEntry> + 'a {
        self.blocks.iter().filter(move |b| b.stream == stream)
    }
}

/// A decoded block: its stream and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBlock {
    /// The stream the block belongs to (stored inside the block too, so a block fetched on its
    /// own can be checked against what the reader expected).
    pub stream: String,
    /// The records in arrival order.
    pub records: Vec<Record>,
}

/// A fully decoded and verified object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedObject {
    /// Object format version.
    pub version: u16,
    /// Header flags.
    pub flags: u16,
    /// The footer index.
    pub footer: Footer,
    /// The blocks, in object order (same order as `footer.blocks`).
    pub blocks: Vec<DecodedBlock>,
}

// ---------------------------------------------------------------------------------------------
// Wire types. Field order is the wire order; see docs/format.md before touching them.

/// Per-record entry of a block table.
#[derive(SerializeDerive, Deserialize)]
struct EntryWire {
    subject_len: u64,
    headers_len: Option<u64>,
    payload_len: u64,
    timestamp_nanos: i64,
}

impl EntryWire {
    fn of(r: &Record) -> Self {
        Self {
            subject_len: r.subject.len() as u64,
            headers_len: r.headers.as_ref().map(|h| h.len() as u64),
            payload_len: r.payload.len() as u64,
            timestamp_nanos: r.timestamp_nanos,
        }
    }
}

/// Per-record entry of a version-2 block table: the subject by its index in the table.
#[derive(SerializeDerive, Deserialize)]
struct EntryWireV2 {
    subject: u32,
    headers_len: Option<u64>,
    payload_len: u64,
    timestamp_nanos: i64,
}

/// Encoding view of a version-2 block table.
#[derive(SerializeDerive)]
struct BlockTableRefV2<'a> {
    stream: &'a str,
    subjects: &'a [&'a str],
    entries: &'a [EntryWireV2],
}

/// Decoding view of a version-2 block table.
#[derive(Deserialize)]
struct BlockTableWireV2<'a> {
    #[serde(borrow)]
    stream: &'a str,
    #[serde(borrow)]
    subjects: Vec<&'a str>,
    entries: Vec<EntryWireV2>,
}

/// Encoding view of a block table: serialises straight from the records, no intermediate Vec.
#[derive(SerializeDerive)]
struct BlockTableRef<'a, E: Serialize> {
    stream: &'a str,
    entries: E,
}

struct EntriesRef<'a>(&'a [Record]);

impl Serialize for EntriesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(EntryWire::of))
    }
}

struct MetasRef<'a>(&'a [RecordMeta]);

impl Serialize for MetasRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| EntryWireV2 {
            subject: m.subject,
            headers_len: m.headers_len.map(|h| h as u64),
            payload_len: m.payload_len as u64,
            timestamp_nanos: m.timestamp_nanos,
        }))
    }
}

/// A block's subjects, serialised as a sequence of strings whatever holds them.
struct SubjectsRef<'a, T: AsRef<str>>(&'a [T]);

impl<T: AsRef<str>> Serialize for SubjectsRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(AsRef::as_ref))
    }
}

/// Encoding view of a version-2 block table over records laid out elsewhere.
#[derive(SerializeDerive)]
#[serde(bound = "")]
struct BlockTableMetasRef<'a, T: AsRef<str>> {
    stream: &'a str,
    subjects: SubjectsRef<'a, T>,
    entries: MetasRef<'a>,
}

/// One record whose bytes are already laid out elsewhere: its headers and payload, back to back,
/// at its place in a version-2 block's data, and its subject as an index into the block's
/// subjects (see [`ObjectBuilder::add_block_data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Index of the record's subject in the block's subject table.
    pub subject: u32,
    /// `Some(0)` (an empty header block) and `None` (no headers) are distinct, as in [`Record`].
    pub headers_len: Option<usize>,
    pub payload_len: usize,
    /// Arrival time at the agent, unix nanoseconds.
    pub timestamp_nanos: i64,
}

impl RecordMeta {
    /// Bytes of this record in the block's data.
    pub fn data_len(&self) -> usize {
        self.headers_len.unwrap_or(0) + self.payload_len
    }
}

/// Block data shorter than this is copied next to its table rather than kept as its own chunk:
/// an object spanning thousands of quiet streams stays a few large chunks.
const INLINE_DATA_MAX: usize = 4096;

/// Decoding view of a block table. Strings are borrowed so that garbage lengths are checked
/// against the buffer before anything is allocated.
#[derive(Deserialize)]
struct BlockTableWire<'a> {
    #[serde(borrow)]
    stream: &'a str,
    entries: Vec<EntryWire>,
}

#[derive(SerializeDerive)]
struct FooterRef<'a> {
    blocks: &'a [BlockEntry],
}

#[derive(Deserialize)]
struct FooterWire<'a> {
    #[serde(borrow)]
    blocks: Vec<BlockEntryWire<'a>>,
}

#[derive(Deserialize)]
struct BlockEntryWire<'a> {
    #[serde(borrow)]
    stream: &'a str,
    offset: u64,
    len: u64,
    count: u32,
    crc32c: u32,
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// Builds one object: header, then one block per [`ObjectBuilder::add_block`] call, then the
/// footer and trailer on [`ObjectBuilder::finish`].
///
/// Payloads are copied exactly once, into the object buffer. Use
/// [`ObjectBuilder::with_capacity`] with the expected object size so the buffer never has to
/// grow (growth would move already-written payloads).
///
/// An object is built as a list of chunks: block data handed over with
/// [`ObjectBuilder::add_block_data`] becomes a chunk of its own, never copied, and
/// [`ObjectBuilder::finish_chunks`] returns the chunks for a PUT that sends them in order.
#[derive(Debug)]
pub struct ObjectBuilder {
    /// Finished chunks, in object order.
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    chunked: usize,
    /// The chunk being written (header, tables, CRCs, copied data, footer).
    buf: BytesMut,
    blocks: Vec<BlockEntry>,
    /// Reused between blocks; the table is small so encoding it here first costs little and
    /// lets the block be written with its final length known.
    scratch: Vec<u8>,
}

impl Default for ObjectBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectBuilder {
    /// An empty object (header only).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty object whose buffer is pre-sized for `capacity` bytes in total.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity.max(HEADER_LEN + TRAILER_LEN));
        buf.put_slice(&MAGIC);
        buf.put_u16_le(FORMAT_VERSION);
        buf.put_u16_le(0);
        Self {
            chunks: Vec::new(),
            chunked: 0,
            buf,
            blocks: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Bytes written so far.
    fn len(&self) -> usize {
        self.chunked + self.buf.len()
    }

    /// Appends one stream's version-2 block whose record bytes are already laid out in `data`
    /// (each record's headers and payload, back to back, in `records` order; its subject is
    /// `subjects[record.subject]`). `data` becomes part of the object as is: no copy, and slices
    /// of it stay valid views of the object.
    ///
    /// # Errors
    ///
    /// [`FormatError::Corrupt`] if the records' lengths do not add up to `data.len()` or a
    /// record names a subject past the end of `subjects`.
    pub fn add_block_data<T: AsRef<str>>(
        &mut self,
        stream: &str,
        subjects: &[T],
        records: &[RecordMeta],
        data: Bytes,
    ) -> Result<BlockRef, FormatError> {
        let data_len: usize = records.iter().map(RecordMeta::data_len).sum();
        if data_len != data.len() {
            return Err(FormatError::Corrupt(format!(
                "block data of {} bytes for records of {data_len}",
                data.len()
            )));
        }
        if let Some(r) = records
            .iter()
            .find(|r| usize::try_from(r.subject).map_or(true, |i| i >= subjects.len()))
        {
            return Err(FormatError::Corrupt(format!(
                "record names subject {} of {}",
                r.subject,
                subjects.len()
            )));
        }
        let count = u32::try_from(records.len())
            .map_err(|_| FormatError::Corrupt("more than u32::MAX records in a block".into()))?;
        self.scratch.clear();
        let table = BlockTableMetasRef {
            stream,
            subjects: SubjectsRef(subjects),
            entries: MetasRef(records),
        };
        bincode::serde::encode_into_std_write(&table, &mut self.scratch, BINCODE)
            .map_err(|e| FormatError::Decode(e.to_string()))?;
        let table_len = u32::try_from(self.scratch.len())
            .map_err(|_| FormatError::Corrupt("block table over 4 GiB".into()))?;
        let block_len = BLOCK_PREFIX_LEN + self.scratch.len() + data_len + BLOCK_CRC_LEN;
        let start = self.len();
        let head_start = self.buf.len();
        self.buf
            .reserve(BLOCK_PREFIX_LEN + self.scratch.len() + BLOCK_CRC_LEN);
        self.buf.put_u16_le(BLOCK_VERSION_SUBJECTS);
        self.buf.put_u32_le(table_len);
        self.buf.put_slice(&self.scratch);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.buf[head_start..]), &data);
        if data.len() <= INLINE_DATA_MAX {
            self.buf.put_slice(&data);
        } else {
            let head = self.buf.split().freeze();
            self.chunked += head.len() + data.len();
            self.chunks.push(head);
            self.chunks.push(data);
        }
        self.buf.put_u32_le(crc);
        debug_assert_eq!(self.len() - start, block_len);
        Ok(self.push_entry(stream, start, block_len, count, crc))
    }

    fn push_entry(
        &mut self,
        stream: &str,
        start: usize,
        block_len: usize,
        count: u32,
        crc: u32,
    ) -> BlockRef {
        let index = u32::try_from(self.blocks.len()).expect("block count fits in u32");
        let entry = BlockEntry {
            stream: stream.to_owned(),
            offset: start as u64,
            len: block_len as u64,
            count,
            crc32c: crc,
        };
        let block_ref = BlockRef {
            index,
            offset: entry.offset,
            len: entry.len,
            count,
            crc32c: crc,
        };
        self.blocks.push(entry);
        block_ref
    }

    /// Appends one stream's messages (in arrival order) as a block and returns its final
    /// position in the object. Writers should add each stream at most once per object.
    ///
    /// # Panics
    ///
    /// If a block holds more than `u32::MAX` records or its table exceeds 4 GiB; batch limits
    /// keep real blocks many orders of magnitude below that.
    /// Where the records' bytes (headers and payload of each, back to back) start in the object,
    /// for a block added with [`ObjectBuilder::add_block_data`] totalling `data_len` bytes.
    pub fn data_start(block: &BlockRef, data_len: usize) -> usize {
        (block.offset + block.len) as usize - BLOCK_CRC_LEN - data_len
    }

    pub fn add_block(&mut self, stream: &str, records: &[Record]) -> BlockRef {
        self.scratch.clear();
        let table = BlockTableRef {
            stream,
            entries: EntriesRef(records),
        };
        // Serialising plain integers and strings into a Vec cannot fail.
        bincode::serde::encode_into_std_write(&table, &mut self.scratch, BINCODE)
            .expect("encoding a block table into memory is infallible");
        self.put_block(stream, BLOCK_VERSION, records, true)
    }

    /// Like [`ObjectBuilder::add_block`], as a version-2 block: each distinct subject is
    /// written once, in the block's table, in order of first appearance.
    ///
    /// # Panics
    ///
    /// As [`ObjectBuilder::add_block`], and past `u32::MAX` distinct subjects.
    pub fn add_block_v2(&mut self, stream: &str, records: &[Record]) -> BlockRef {
        let mut subjects: Vec<&str> = Vec::new();
        let mut index: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let entries: Vec<EntryWireV2> = records
            .iter()
            .map(|r| {
                let subject = *index.entry(&*r.subject).or_insert_with(|| {
                    subjects.push(&r.subject);
                    u32::try_from(subjects.len() - 1).expect("distinct subjects fit in u32")
                });
                EntryWireV2 {
                    subject,
                    headers_len: r.headers.as_ref().map(|h| h.len() as u64),
                    payload_len: r.payload.len() as u64,
                    timestamp_nanos: r.timestamp_nanos,
                }
            })
            .collect();
        self.scratch.clear();
        let table = BlockTableRefV2 {
            stream,
            subjects: &subjects,
            entries: &entries,
        };
        // Serialising plain integers and strings into a Vec cannot fail.
        bincode::serde::encode_into_std_write(&table, &mut self.scratch, BINCODE)
            .expect("encoding a block table into memory is infallible");
        self.put_block(stream, BLOCK_VERSION_SUBJECTS, records, false)
    }

    /// Writes a block whose table is in `scratch`: prefix, table, the records' bytes (with
    /// their subjects in version 1, `inline_subjects`), CRC, and its footer entry.
    fn put_block(
        &mut self,
        stream: &str,
        version: u16,
        records: &[Record],
        inline_subjects: bool,
    ) -> BlockRef {
        let count = u32::try_from(records.len()).expect("block record count fits in u32");
        let table_len = u32::try_from(self.scratch.len()).expect("block table fits in 4 GiB");
        let subject_len = |r: &Record| if inline_subjects { r.subject.len() } else { 0 };
        let data_len: usize = records
            .iter()
            .map(|r| subject_len(r) + r.headers.as_ref().map_or(0, Bytes::len) + r.payload.len())
            .sum();
        let block_len = BLOCK_PREFIX_LEN + self.scratch.len() + data_len + BLOCK_CRC_LEN;
        self.buf.reserve(block_len);

        let start = self.len();
        let buf_start = self.buf.len();
        self.buf.put_u16_le(version);
        self.buf.put_u32_le(table_len);
        self.buf.put_slice(&self.scratch);
        for r in records {
            if inline_subjects {
                self.buf.put_slice(r.subject.as_bytes());
            }
            if let Some(h) = &r.headers {
                self.buf.put_slice(h);
            }
            self.buf.put_slice(&r.payload);
        }
        let crc = crc32c::crc32c(&self.buf[buf_start..]);
        self.buf.put_u32_le(crc);
        debug_assert_eq!(self.len() - start, block_len);
        self.push_entry(stream, start, block_len, count, crc)
    }

    /// Number of blocks added so far.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// An upper-bound estimate of the finished object's size, for batch size limits.
    pub fn len_estimate(&self) -> usize {
        // Per footer entry: stream length varint (<= 9) + name + offset (<= 9) + len (<= 9) +
        // count (<= 5) + crc (<= 5), plus the entry-count varint.
        let footer: usize = 9 + self
            .blocks
            .iter()
            .map(|b| b.stream.len() + 9 + 9 + 9 + 5 + 5)
            .sum::<usize>();
        self.len() + footer + TRAILER_LEN
    }

    /// Appends the footer and trailer and returns the finished object.
    ///
    /// # Panics
    ///
    /// If the footer exceeds 4 GiB (hundreds of millions of streams).
    pub fn finish(self) -> Bytes {
        let (chunks, len) = self.finish_chunks();
        match <[Bytes; 1]>::try_from(chunks) {
            Ok([one]) => one,
            Err(chunks) => {
                let mut out = BytesMut::with_capacity(len);
                for c in &chunks {
                    out.put_slice(c);
                }
                out.freeze()
            }
        }
    }

    /// Appends the footer and trailer and returns the finished object as chunks (to be written
    /// in order) and its total length.
    ///
    /// # Panics
    ///
    /// If the footer exceeds 4 GiB (hundreds of millions of streams).
    pub fn finish_chunks(mut self) -> (Vec<Bytes>, usize) {
        let footer_offset = self.len() as u64;
        self.scratch.clear();
        bincode::serde::encode_into_std_write(
            FooterRef {
                blocks: &self.blocks,
            },
            &mut self.scratch,
            BINCODE,
        )
        .expect("encoding a footer into memory is infallible");
        let footer_len = u32::try_from(self.scratch.len()).expect("footer fits in 4 GiB");
        let footer_crc = crc32c::crc32c(&self.scratch);
        self.buf.reserve(self.scratch.len() + TRAILER_LEN);
        self.buf.put_slice(&self.scratch);
        self.buf.put_u64_le(footer_offset);
        self.buf.put_u32_le(footer_len);
        self.buf.put_u32_le(footer_crc);
        self.buf.put_u16_le(FORMAT_VERSION);
        self.buf.put_u16_le(0);
        self.buf.put_slice(&MAGIC);
        let len = self.len();
        self.chunks.push(self.buf.freeze());
        (self.chunks, len)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers. All reads go through these so no index can run past a buffer.

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

fn truncated(what: &'static str, needed: usize, available: usize) -> FormatError {
    FormatError::Truncated {
        what,
        needed: needed as u64,
        available: available as u64,
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, FormatError> {
    usize::try_from(v).map_err(|_| FormatError::Corrupt(format!("{what} {v} exceeds usize")))
}

/// Where a record's subject is: inline at the start of its data (block version 1), or the
/// block table's subject at this index (version 2).
#[derive(Clone, Copy)]
enum SubjectAt {
    Inline(u64),
    Table(u32),
}

/// One record's entry, whichever the block version.
struct Entry {
    subject: SubjectAt,
    headers_len: Option<u64>,
    payload_len: u64,
    timestamp_nanos: i64,
}

impl Entry {
    /// Bytes of this record in the data region.
    fn data_len(&self) -> u64 {
        let inline = match self.subject {
            SubjectAt::Inline(n) => n,
            SubjectAt::Table(_) => 0,
        };
        inline + self.headers_len.unwrap_or(0) + self.payload_len
    }
}

/// A verified block, split into its table and data region.
struct BlockParts<'a> {
    stream: &'a str,
    /// Version 2: the block's distinct subjects (borrowed from the block's bytes).
    subjects: Vec<&'a str>,
    entries: Vec<Entry>,
    /// Byte range of the data region within the block.
    data_start: usize,
    data_end: usize,
}

impl From<EntryWire> for Entry {
    fn from(e: EntryWire) -> Self {
        Self {
            subject: SubjectAt::Inline(e.subject_len),
            headers_len: e.headers_len,
            payload_len: e.payload_len,
            timestamp_nanos: e.timestamp_nanos,
        }
    }
}

impl From<EntryWireV2> for Entry {
    fn from(e: EntryWireV2) -> Self {
        Self {
            subject: SubjectAt::Table(e.subject),
            headers_len: e.headers_len,
            payload_len: e.payload_len,
            timestamp_nanos: e.timestamp_nanos,
        }
    }
}

/// Decodes a block table of either version from `bytes` (exactly the table).
fn decode_table(version: u16, bytes: &[u8]) -> Result<(&str, Vec<&str>, Vec<Entry>), FormatError> {
    let decoded = match version {
        BLOCK_VERSION => bincode::serde::borrow_decode_from_slice::<BlockTableWire<'_>, _>(
            bytes, BINCODE,
        )
        .map(|(t, used)| {
            let entries = t.entries.into_iter().map(Entry::from).collect();
            ((t.stream, Vec::new(), entries), used)
        }),
        BLOCK_VERSION_SUBJECTS => {
            bincode::serde::borrow_decode_from_slice::<BlockTableWireV2<'_>, _>(bytes, BINCODE).map(
                |(t, used)| {
                    let entries = t.entries.into_iter().map(Entry::from).collect();
                    ((t.stream, t.subjects, entries), used)
                },
            )
        }
        other => {
            return Err(FormatError::UnsupportedVersion {
                what: "block",
                version: other,
            });
        }
    };
    let (table, used) = decoded.map_err(|e| FormatError::Decode(format!("block table: {e}")))?;
    if used != bytes.len() {
        return Err(FormatError::Corrupt(format!(
            "block table has {} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(table)
}

/// Checks the block CRC and version, decodes the table, and checks that the table's lengths
/// add up to exactly the data region (and, in version 2, that every subject index exists).
fn parse_block(buf: &[u8]) -> Result<BlockParts<'_>, FormatError> {
    if buf.len() < MIN_BLOCK_LEN {
        return Err(truncated("block", MIN_BLOCK_LEN, buf.len()));
    }
    let body_end = buf.len() - BLOCK_CRC_LEN;
    let stored = le_u32(buf, body_end).ok_or_else(|| truncated("block crc", 4, 0))?;
    let actual = crc32c::crc32c(&buf[..body_end]);
    if stored != actual {
        return Err(FormatError::ChecksumMismatch {
            expected: stored,
            actual,
            what: "block",
        });
    }
    let version = le_u16(buf, 0).ok_or_else(|| truncated("block prefix", 2, buf.len()))?;
    let table_len = le_u32(buf, 2).ok_or_else(|| truncated("block prefix", 6, buf.len()))?;
    let table_len = to_usize(u64::from(table_len), "block table length")?;
    let table_end = BLOCK_PREFIX_LEN
        .checked_add(table_len)
        .filter(|&e| e <= body_end)
        .ok_or_else(|| {
            FormatError::Corrupt(format!(
                "block table length {table_len} exceeds block body {body_end}"
            ))
        })?;
    let (stream, subjects, entries) = decode_table(version, &buf[BLOCK_PREFIX_LEN..table_end])?;
    let mut total: u64 = 0;
    for e in &entries {
        if let SubjectAt::Table(i) = e.subject
            && usize::try_from(i).map_or(true, |i| i >= subjects.len())
        {
            return Err(FormatError::Corrupt(format!(
                "record names subject {i} of {}",
                subjects.len()
            )));
        }
        let inline = match e.subject {
            SubjectAt::Inline(n) => n,
            SubjectAt::Table(_) => 0,
        };
        total = [inline, e.headers_len.unwrap_or(0), e.payload_len]
            .into_iter()
            .try_fold(total, u64::checked_add)
            .ok_or_else(|| FormatError::Corrupt("record lengths overflow".into()))?;
    }
    let data_len = body_end - table_end;
    if total != data_len as u64 {
        return Err(FormatError::Corrupt(format!(
            "record lengths sum to {total}, data region is {data_len} bytes"
        )));
    }
    Ok(BlockParts {
        stream,
        subjects,
        entries,
        data_start: table_end,
        data_end: body_end,
    })
}

/// A version-2 table subject as a view of the block buffer it was decoded from (no copy).
fn table_subject(buf: &Bytes, subject: &str) -> Result<ByteString, FormatError> {
    // `subject` was borrowed from `buf` by the decoder, so it lies inside it.
    let start = (subject.as_ptr() as usize)
        .checked_sub(buf.as_ptr() as usize)
        .filter(|s| s + subject.len() <= buf.len())
        .ok_or_else(|| FormatError::Corrupt("subject outside its block".into()))?;
    ByteString::try_from(buf.slice(start..start + subject.len()))
        .map_err(|err| FormatError::Decode(format!("subject is not utf-8: {err}")))
}

/// The subjects of a version-2 block, as views of `buf` (empty for version 1).
fn table_subjects(buf: &Bytes, parts: &BlockParts<'_>) -> Result<Vec<ByteString>, FormatError> {
    parts
        .subjects
        .iter()
        .map(|s| table_subject(buf, s))
        .collect()
}

/// Subject `i` of `subjects`, for [`cut_record`].
fn nth_subject(subjects: &[ByteString], i: u32) -> Result<ByteString, FormatError> {
    usize::try_from(i)
        .ok()
        .and_then(|i| subjects.get(i))
        .cloned()
        .ok_or_else(|| FormatError::Corrupt(format!("record names subject {i}")))
}

/// Cuts one record out of the data region starting at `*pos`, advancing `*pos`. The caller has
/// already checked (in `parse_block`) that all lengths fit the data region and every subject
/// index exists; `subject` gives the block table's subject `i` (version 2).
fn cut_record(
    data: &Bytes,
    pos: &mut usize,
    e: &Entry,
    subject: &dyn Fn(u32) -> Result<ByteString, FormatError>,
) -> Result<Record, FormatError> {
    let mut take = |len: u64| -> Result<Bytes, FormatError> {
        let len = to_usize(len, "record field length")?;
        let end = pos
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| FormatError::Corrupt("record runs past the data region".into()))?;
        let out = data.slice(*pos..end);
        *pos = end;
        Ok(out)
    };
    let subject = match e.subject {
        SubjectAt::Inline(len) => ByteString::try_from(take(len)?)
            .map_err(|err| FormatError::Decode(format!("subject is not utf-8: {err}")))?,
        SubjectAt::Table(i) => subject(i)?,
    };
    let headers = match e.headers_len {
        Some(n) => Some(take(n)?),
        None => None,
    };
    let payload = take(e.payload_len)?;
    Ok(Record {
        subject,
        headers,
        payload,
        timestamp_nanos: e.timestamp_nanos,
    })
}

/// Decodes and verifies one block. `buf` must be exactly the block's byte range (as fetched
/// with one range GET); the returned records' `headers` and `payload` are slices of `buf`.
pub fn decode_block(buf: Bytes) -> Result<Vec<Record>, FormatError> {
    decode_block_full(buf).map(|b| b.records)
}

/// Like [`decode_block`], also returning the stream name stored in the block.
pub fn decode_block_full(buf: Bytes) -> Result<DecodedBlock, FormatError> {
    let parts = parse_block(&buf)?;
    let subjects = table_subjects(&buf, &parts)?;
    let data = buf.slice(parts.data_start..parts.data_end);
    let mut pos = 0;
    let records = parts
        .entries
        .iter()
        .map(|e| cut_record(&data, &mut pos, e, &|i| nth_subject(&subjects, i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DecodedBlock {
        stream: parts.stream.to_owned(),
        records,
    })
}

/// Decodes record `index` of a block without materialising the others. The whole block is
/// still checksummed (a record cannot be verified on its own), but only one record is built.
pub fn decode_record(buf: Bytes, index: u32) -> Result<Record, FormatError> {
    ParsedBlock::parse(buf)?.record(index)
}

/// Decodes the records at `indices` of a block (any order, repeats allowed), one answer per
/// index: [`ParsedBlock::parse`] once, then [`ParsedBlock::record`] per index.
///
/// # Errors
///
/// The outer error when the block itself is bad (checksum, table); a per-index
/// [`FormatError::RecordOutOfRange`] for an index past the end.
pub fn decode_records(
    buf: Bytes,
    indices: &[u32],
) -> Result<Vec<Result<Record, FormatError>>, FormatError> {
    let block = ParsedBlock::parse(buf)?;
    Ok(indices.iter().map(|&i| block.record(i)).collect())
}

/// A verified block with its table parsed: what a read cache keeps, so that taking records out
/// of a cached block costs only those records (not a checksum of the block and a parse of its
/// whole table per read).
pub struct ParsedBlock {
    /// The block's bytes, exactly as stored (what peers are sent).
    bytes: Bytes,
    subjects: Vec<ByteString>,
    entries: Vec<Entry>,
    /// Start of each record in the data region.
    starts: Vec<u64>,
    data: Bytes,
}

impl fmt::Debug for ParsedBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedBlock")
            .field("len", &self.bytes.len())
            .field("records", &self.entries.len())
            .finish()
    }
}

impl ParsedBlock {
    /// Verifies `buf` (exactly one block's bytes) and parses its table.
    pub fn parse(buf: Bytes) -> Result<Self, FormatError> {
        let parts = parse_block(&buf)?;
        let subjects = table_subjects(&buf, &parts)?;
        let BlockParts {
            entries,
            data_start,
            data_end,
            ..
        } = parts;
        // parse_block proved every length and their sum fit the data region.
        let mut starts = Vec::with_capacity(entries.len());
        let mut pos: u64 = 0;
        for e in &entries {
            starts.push(pos);
            pos += e.data_len();
        }
        let data = buf.slice(data_start..data_end);
        Ok(Self {
            bytes: buf,
            subjects,
            entries,
            starts,
            data,
        })
    }

    /// The block's bytes as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Records in the block (rejected ones included: indexes count them).
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Memory this parsed block holds: its bytes and its table.
    pub fn footprint(&self) -> usize {
        self.bytes.len()
            + self.entries.len() * (std::mem::size_of::<Entry>() + std::mem::size_of::<u64>())
            + self.subjects.len() * std::mem::size_of::<ByteString>()
    }

    /// Record `index`, its subject, headers and payload as views of the block's bytes.
    pub fn record(&self, index: u32) -> Result<Record, FormatError> {
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let idx = usize::try_from(index).unwrap_or(usize::MAX);
        let (Some(entry), Some(&start)) = (self.entries.get(idx), self.starts.get(idx)) else {
            return Err(FormatError::RecordOutOfRange { index, count });
        };
        let mut pos = to_usize(start, "record offset")?;
        cut_record(&self.data, &mut pos, entry, &|i| {
            nth_subject(&self.subjects, i)
        })
    }
}

/// Parses the trailer from the last [`TRAILER_LEN`] bytes of `tail` (the end of an object).
pub fn read_trailer(tail: &[u8]) -> Result<Trailer, FormatError> {
    let start = tail
        .len()
        .checked_sub(TRAILER_LEN)
        .ok_or(FormatError::TailTooShort {
            have: tail.len() as u64,
            need: TRAILER_LEN as u64,
        })?;
    let t = &tail[start..];
    if t.get(20..24) != Some(&MAGIC[..]) {
        return Err(FormatError::BadMagic { what: "trailer" });
    }
    let field = || truncated("trailer", TRAILER_LEN, t.len());
    let footer_offset = le_u64(t, 0).ok_or_else(field)?;
    let footer_len = le_u32(t, 8).ok_or_else(field)?;
    let footer_crc32c = le_u32(t, 12).ok_or_else(field)?;
    let version = le_u16(t, 16).ok_or_else(field)?;
    let reserved = le_u16(t, 18).ok_or_else(field)?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "object",
            version,
        });
    }
    if reserved != 0 {
        return Err(FormatError::Corrupt(format!(
            "trailer reserved field is {reserved:#06x}, must be 0"
        )));
    }
    let trailer = Trailer {
        footer_offset,
        footer_len,
        footer_crc32c,
        version,
    };
    if trailer.object_len().is_none() || footer_offset < HEADER_LEN as u64 {
        return Err(FormatError::Corrupt(format!(
            "footer offset {footer_offset} is impossible"
        )));
    }
    Ok(trailer)
}

/// Decodes and verifies the footer from `tail`, the last bytes of an object (any length that
/// covers footer + trailer; [`SUGGESTED_TAIL_FETCH`] is a good first guess). If `tail` is too
/// short, returns [`FormatError::TailTooShort`] with the exact number of tail bytes to fetch.
///
/// Also checks that the blocks tile the object from the header to the footer without gaps or
/// overlaps, so block ranges taken from a verified footer are always within the object.
pub fn read_footer(tail: &[u8]) -> Result<Footer, FormatError> {
    let trailer = read_trailer(tail)?;
    let need = trailer.tail_len();
    let footer_start = (tail.len() as u64)
        .checked_sub(need)
        .ok_or(FormatError::TailTooShort {
            have: tail.len() as u64,
            need,
        })?;
    // footer_start <= tail.len() so it fits usize.
    let footer_start = to_usize(footer_start, "footer start")?;
    let footer_bytes = &tail[footer_start..tail.len() - TRAILER_LEN];
    let actual = crc32c::crc32c(footer_bytes);
    if actual != trailer.footer_crc32c {
        return Err(FormatError::ChecksumMismatch {
            expected: trailer.footer_crc32c,
            actual,
            what: "footer",
        });
    }
    let (wire, used): (FooterWire<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(footer_bytes, BINCODE)
            .map_err(|e| FormatError::Decode(format!("footer: {e}")))?;
    if used != footer_bytes.len() {
        return Err(FormatError::Corrupt(format!(
            "footer has {} trailing bytes",
            footer_bytes.len() - used
        )));
    }
    let mut pos = HEADER_LEN as u64;
    let mut blocks = Vec::with_capacity(wire.blocks.len());
    for (i, b) in wire.blocks.into_iter().enumerate() {
        if b.offset != pos {
            return Err(FormatError::Corrupt(format!(
                "block {i} starts at {}, expected {pos}",
                b.offset
            )));
        }
        if b.len < MIN_BLOCK_LEN as u64 {
            return Err(FormatError::Corrupt(format!(
                "block {i} is {} bytes, shorter than any block",
                b.len
            )));
        }
        pos = pos
            .checked_add(b.len)
            .ok_or_else(|| FormatError::Corrupt(format!("block {i} length overflows")))?;
        blocks.push(BlockEntry {
            stream: b.stream.to_owned(),
            offset: b.offset,
            len: b.len,
            count: b.count,
            crc32c: b.crc32c,
        });
    }
    if pos != trailer.footer_offset {
        return Err(FormatError::Corrupt(format!(
            "blocks end at {pos}, footer starts at {}",
            trailer.footer_offset
        )));
    }
    Ok(Footer { trailer, blocks })
}

/// Parses the header (first [`HEADER_LEN`] bytes); returns `(version, flags)`.
pub fn read_header(buf: &[u8]) -> Result<(u16, u16), FormatError> {
    let h = buf
        .get(..HEADER_LEN)
        .ok_or_else(|| truncated("header", HEADER_LEN, buf.len()))?;
    if h[..4] != MAGIC {
        return Err(FormatError::BadMagic { what: "header" });
    }
    let field = || truncated("header", HEADER_LEN, h.len());
    let version = le_u16(h, 4).ok_or_else(field)?;
    let flags = le_u16(h, 6).ok_or_else(field)?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "object",
            version,
        });
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FormatError::UnsupportedFlags { flags });
    }
    Ok((version, flags))
}

/// Decodes a whole object, verifying the header, the footer CRC, every block CRC (both the
/// copy at the block's end and the copy in the footer), and that every block's stream and
/// record count match its footer entry.
pub fn decode_object(buf: Bytes) -> Result<DecodedObject, FormatError> {
    let min = HEADER_LEN + TRAILER_LEN;
    if buf.len() < min {
        return Err(truncated("object", min, buf.len()));
    }
    let (version, flags) = read_header(&buf)?;
    let footer = read_footer(&buf).map_err(|e| match e {
        FormatError::TailTooShort { have, need } => FormatError::Truncated {
            what: "object",
            needed: need,
            available: have,
        },
        other => other,
    })?;
    let object_len = footer.object_len();
    if object_len != buf.len() as u64 {
        return Err(FormatError::Truncated {
            what: "object (length per trailer)",
            needed: object_len,
            available: buf.len() as u64,
        });
    }
    let mut blocks = Vec::with_capacity(footer.blocks.len());
    for entry in &footer.blocks {
        // read_footer proved the blocks tile [HEADER_LEN, footer_offset) and footer_offset <
        // buf.len(), so these conversions and the slice are in bounds.
        let start = to_usize(entry.offset, "block offset")?;
        let end = to_usize(entry.offset + entry.len, "block end")?;
        let block = buf.slice(start..end);
        let stored = le_u32(&block, block.len() - BLOCK_CRC_LEN)
            .ok_or_else(|| truncated("block crc", BLOCK_CRC_LEN, block.len()))?;
        if stored != entry.crc32c {
            return Err(FormatError::ChecksumMismatch {
                expected: entry.crc32c,
                actual: stored,
                what: "block crc in footer vs block",
            });
        }
        let decoded = decode_block_full(block)?;
        if decoded.stream != entry.stream {
            return Err(FormatError::Corrupt(format!(
                "block at {} belongs to stream {:?}, footer says {:?}",
                entry.offset, decoded.stream, entry.stream
            )));
        }
        if decoded.records.len() != entry.count as usize {
            return Err(FormatError::Corrupt(format!(
                "block at {} has {} records, footer says {}",
                entry.offset,
                decoded.records.len(),
                entry.count
            )));
        }
        blocks.push(decoded);
    }
    Ok(DecodedObject {
        version,
        flags,
        footer,
        blocks,
    })
}

// ---------------------------------------------------------------------------------------------
// Object keys.

/// The bucket key of an object: `infinistream/<group-id>/objects/<object-id>.obj`, the id
/// zero-padded to 20 digits so lexicographic listing order is numeric (time) order. Characters
/// not allowed in a path segment (including `/`) in `group_id` are percent-encoded.
pub fn object_key(group_id: &str, object_id: u64) -> Path {
    let file = format!("{object_id:020}.obj");
    Path::from_iter([KEY_PREFIX, group_id, "objects", file.as_str()])
}

/// The prefix under which all objects of a group live (for listing).
pub fn objects_prefix(group_id: &str) -> Path {
    Path::from_iter([KEY_PREFIX, group_id, "objects"])
}

/// Parses the object id out of an object key produced by [`object_key`]; `None` for any other
/// key.
pub fn parse_object_key(key: &Path) -> Option<u64> {
    let parts: Vec<_> = key.parts().collect();
    let [prefix, _group, objects, file] = parts.as_slice() else {
        return None;
    };
    if prefix.as_ref() != KEY_PREFIX || objects.as_ref() != "objects" {
        return None;
    }
    let digits = file.as_ref().strip_suffix(".obj")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One block of one object: the unit that is fetched, verified and cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, SerializeDerive, Deserialize)]
pub struct BlockLocation {
    pub object_key: String,
    pub offset: u64,
    pub len: u64,
}

impl BlockLocation {
    pub fn of(loc: &infinistream_api::control_plane::model::MessageLocation) -> Self {
        Self {
            object_key: loc.object_key.clone(),
            offset: loc.block_offset,
            len: loc.block_len,
        }
    }

    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lays records out as a batcher does: distinct subjects in order of first appearance, each
    /// record's headers and payload back to back.
    fn meta_and_data(records: &[Record]) -> (Vec<String>, Vec<RecordMeta>, Bytes) {
        let mut data = BytesMut::new();
        let mut subjects: Vec<String> = Vec::new();
        let metas = records
            .iter()
            .map(|r| {
                let subject = match subjects.iter().position(|s| *s == *r.subject) {
                    Some(i) => i,
                    None => {
                        subjects.push(r.subject.to_string());
                        subjects.len() - 1
                    }
                };
                if let Some(h) = &r.headers {
                    data.put_slice(h);
                }
                data.put_slice(&r.payload);
                RecordMeta {
                    subject: subject as u32,
                    headers_len: r.headers.as_ref().map(Bytes::len),
                    payload_len: r.payload.len(),
                    timestamp_nanos: r.timestamp_nanos,
                }
            })
            .collect();
        (subjects, metas, data.freeze())
    }

    #[test]
    fn block_data_handed_over_gives_the_same_object_without_copying_it() {
        let big = vec![7u8; INLINE_DATA_MAX + 1];
        let streams: Vec<(&str, Vec<Record>)> = vec![
            (
                "small",
                vec![rec("a.1", None, b"x", 1), rec("a.2", Some(b""), b"", 2)],
            ),
            (
                "large",
                vec![
                    rec("b", Some(b"NATS/1.0\r\nK: v\r\n\r\n"), &big, 3),
                    rec("b.2", None, b"tail", 4),
                ],
            ),
            ("empty", vec![]),
        ];
        let mut copied = ObjectBuilder::new();
        let mut handed = ObjectBuilder::new();
        let mut datas = Vec::new();
        for (stream, records) in &streams {
            let a = copied.add_block_v2(stream, records);
            let (subjects, metas, data) = meta_and_data(records);
            let b = handed
                .add_block_data(stream, &subjects, &metas, data.clone())
                .expect("lengths add up");
            assert_eq!(a, b);
            datas.push(data);
        }
        let expected = copied.finish();
        let (chunks, len) = handed.finish_chunks();
        assert_eq!(len, expected.len());
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, expected.as_ref());
        // The large block's data is one of the chunks itself, the small one was inlined.
        assert!(chunks.iter().any(|c| c.as_ptr() == datas[1].as_ptr()));
        assert!(!chunks.iter().any(|c| c.as_ptr() == datas[0].as_ptr()));
        let decoded = decode_object(Bytes::from(joined)).expect("decodes");
        assert_eq!(decoded.blocks[1].records, streams[1].1);
    }

    #[test]
    fn decode_records_builds_only_the_asked_for_records() {
        let records = vec![
            rec("a", None, b"1", 1),
            rec("b", Some(b"NATS/1.0\r\n\r\n"), b"22", 2),
            rec("c", Some(b""), b"", 3),
        ];
        let mut b = ObjectBuilder::new();
        let block = b.add_block("S", &records);
        let object = b.finish();
        let buf = object.slice(block.offset as usize..(block.offset + block.len) as usize);
        let got = decode_records(buf.clone(), &[2, 0, 2, 3]).expect("block is fine");
        assert_eq!(got[0].as_ref().ok(), Some(&records[2]));
        assert_eq!(got[1].as_ref().ok(), Some(&records[0]));
        assert_eq!(got[2].as_ref().ok(), Some(&records[2]));
        assert!(matches!(
            got[3],
            Err(FormatError::RecordOutOfRange { index: 3, count: 3 })
        ));
        let mut bad = buf.to_vec();
        bad[8] ^= 1;
        assert!(decode_records(Bytes::from(bad), &[0]).is_err());
    }

    #[test]
    fn block_data_that_does_not_match_its_records_is_refused() {
        let (subjects, metas, data) = meta_and_data(&[rec("s", None, b"abc", 1)]);
        let mut b = ObjectBuilder::new();
        let short = data.slice(..data.len() - 1);
        assert!(matches!(
            b.add_block_data("S", &subjects, &metas, short),
            Err(FormatError::Corrupt(_))
        ));
        let none: [&str; 0] = [];
        assert!(matches!(
            b.add_block_data("S", &none, &metas, data),
            Err(FormatError::Corrupt(m)) if m.contains("subject 0 of 0")
        ));
        assert_eq!(b.block_count(), 0);
    }

    fn rec(subject: &str, headers: Option<&[u8]>, payload: &[u8], ts: i64) -> Record {
        Record {
            subject: ByteString::from(subject.to_owned()),
            headers: headers.map(Bytes::copy_from_slice),
            payload: Bytes::copy_from_slice(payload),
            timestamp_nanos: ts,
        }
    }

    fn build(blocks: &[(String, Vec<Record>)]) -> (Bytes, Vec<BlockRef>) {
        build_with(blocks, false)
    }

    /// Builds an object of version-1 blocks, or of version-2 ones (`v2`).
    fn build_with(blocks: &[(String, Vec<Record>)], v2: bool) -> (Bytes, Vec<BlockRef>) {
        let mut b = ObjectBuilder::new();
        let refs = blocks
            .iter()
            .map(|(s, r)| {
                if v2 {
                    b.add_block_v2(s, r)
                } else {
                    b.add_block(s, r)
                }
            })
            .collect::<Vec<_>>();
        let est = b.len_estimate();
        let obj = b.finish();
        assert!(est >= obj.len(), "estimate {est} < actual {}", obj.len());
        (obj, refs)
    }

    fn assert_round_trip(blocks: &[(String, Vec<Record>)]) -> Bytes {
        assert_round_trip_with(blocks, false)
    }

    fn assert_round_trip_with(blocks: &[(String, Vec<Record>)], v2: bool) -> Bytes {
        let (obj, refs) = build_with(blocks, v2);
        let dec = decode_object(obj.clone()).unwrap();
        assert_eq!(dec.version, FORMAT_VERSION);
        assert_eq!(dec.blocks.len(), blocks.len());
        for (i, ((stream, records), r)) in blocks.iter().zip(&refs).enumerate() {
            assert_eq!(&dec.blocks[i].stream, stream);
            assert_eq!(&dec.blocks[i].records, records);
            assert_eq!(r.index as usize, i);
            assert_eq!(r.count as usize, records.len());
            let entry = &dec.footer.blocks[i];
            assert_eq!(
                (entry.offset, entry.len, entry.crc32c),
                (r.offset, r.len, r.crc32c)
            );
            // A block fetched on its own equals the block from the full object.
            let range = obj.slice(r.offset as usize..(r.offset + r.len) as usize);
            assert_eq!(&decode_block(range.clone()).unwrap(), records);
            for (j, want) in records.iter().enumerate() {
                assert_eq!(&decode_record(range.clone(), j as u32).unwrap(), want);
            }
            assert!(matches!(
                decode_record(range, records.len() as u32),
                Err(FormatError::RecordOutOfRange { .. })
            ));
        }
        // The footer can be read from any tail that covers it, and asks for more otherwise.
        let footer = read_footer(&obj).unwrap();
        assert_eq!(footer, dec.footer);
        assert_eq!(footer.object_len(), obj.len() as u64);
        let need = footer.trailer.tail_len() as usize;
        assert_eq!(read_footer(&obj[obj.len() - need..]).unwrap(), footer);
        if need > TRAILER_LEN {
            assert_eq!(
                read_footer(&obj[obj.len() - need + 1..]),
                Err(FormatError::TailTooShort {
                    have: need as u64 - 1,
                    need: need as u64
                })
            );
        }
        obj
    }

    #[test]
    fn version_2_blocks_hold_each_subject_once_and_decode_like_version_1() {
        let records = vec![
            rec("kv.a", None, b"1", 1),
            rec("kv.b", Some(b"NATS/1.0\r\nK: v\r\n\r\n"), b"22", 2),
            rec("kv.a", Some(b""), b"", 3),
            rec("kv.a", None, b"4444", 4),
        ];
        let blocks = vec![
            ("KV".to_string(), records.clone()),
            ("E".to_string(), vec![]),
        ];
        let v2 = assert_round_trip_with(&blocks, true);
        let v1 = assert_round_trip(&blocks);
        // Same records, and "kv.a" stored once instead of three times.
        assert!(v2.len() < v1.len(), "{} >= {}", v2.len(), v1.len());
        let (_, refs) = build_with(&blocks, true);
        let block = v2.slice(refs[0].offset as usize..(refs[0].offset + refs[0].len) as usize);
        assert_eq!(le_u16(&block, 0), Some(BLOCK_VERSION_SUBJECTS));
        let got = decode_records(block.clone(), &[3, 0, 9]).expect("block is fine");
        assert_eq!(got[0].as_ref().ok(), Some(&records[3]));
        assert_eq!(got[1].as_ref().ok(), Some(&records[0]));
        assert!(matches!(
            got[2],
            Err(FormatError::RecordOutOfRange { index: 9, count: 4 })
        ));
        // Subjects are views of the fetched block, not copies.
        let one = decode_record(block.clone(), 2).expect("record");
        let at = one.subject.as_bytes().as_ptr() as usize;
        assert!(at >= block.as_ptr() as usize && at < block.as_ptr() as usize + block.len());
        // One object may mix both block versions.
        let mut mixed = ObjectBuilder::new();
        mixed.add_block("A", &records);
        mixed.add_block_v2("B", &records);
        let decoded = decode_object(mixed.finish()).expect("decodes");
        assert_eq!(decoded.blocks[0].records, decoded.blocks[1].records);
    }

    #[test]
    fn version_2_block_naming_a_missing_subject_is_corrupt() {
        let table = BlockTableRefV2 {
            stream: "S",
            subjects: &["a"],
            entries: &[EntryWireV2 {
                subject: 1,
                headers_len: None,
                payload_len: 0,
                timestamp_nanos: 0,
            }],
        };
        let encoded = bincode::serde::encode_to_vec(&table, BINCODE).expect("encodes");
        let mut body = BLOCK_VERSION_SUBJECTS.to_le_bytes().to_vec();
        body.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        body.extend_from_slice(&encoded);
        assert!(
            matches!(decode_block(with_crc(body)), Err(FormatError::Corrupt(m)) if m.contains("subject 1 of 1"))
        );
    }

    #[test]
    fn version_2_bit_flips_and_truncations_are_detected() {
        let (obj, _) = build_with(
            &[
                (
                    "A".into(),
                    vec![
                        rec("a", Some(b"NATS/1.0\r\n\r\n"), b"xy", 7),
                        rec("a", None, b"z", 8),
                    ],
                ),
                ("B".into(), vec![rec("b", None, b"", 9)]),
            ],
            true,
        );
        for bit in 0..obj.len() * 8 {
            let mut m = obj.to_vec();
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_object(Bytes::from(m)).is_err(),
                "bit {bit} undetected"
            );
        }
        for n in 0..obj.len() {
            assert!(decode_object(obj.slice(..n)).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn round_trip_zero_blocks() {
        let obj = assert_round_trip(&[]);
        assert_eq!(obj.len(), HEADER_LEN + 1 + TRAILER_LEN);
    }

    #[test]
    fn round_trip_one_block() {
        assert_round_trip(&[(
            "ORDERS".into(),
            vec![rec("orders.new", None, b"hello", 1_700_000_000_000_000_000)],
        )]);
    }

    #[test]
    fn round_trip_many_blocks_and_edge_records() {
        let hdr = b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n";
        let big = vec![0xAB; 3 * 1024 * 1024];
        let blocks = vec![
            (
                "A".to_string(),
                vec![
                    rec("a.1", Some(hdr), b"", -5),
                    rec("a.2", None, b"", 0),
                    rec("a.3", Some(b""), b"x", i64::MAX),
                    rec("a.4", None, &big, i64::MIN),
                ],
            ),
            ("EMPTY".to_string(), vec![]),
            ("".to_string(), vec![rec("", None, b"", 1)]),
            (
                "ünïcödé".to_string(),
                (0..1000)
                    .map(|i| rec(&format!("u.{i}"), (i % 2 == 0).then_some(hdr), b"p", i))
                    .collect(),
            ),
        ];
        assert_round_trip(&blocks);
    }

    #[test]
    fn decoded_payloads_are_slices_of_the_fetched_buffer() {
        let (obj, refs) = build(&[("S".into(), vec![rec("s", Some(b"h"), b"payload", 1)])]);
        let r = refs[0];
        let block = obj.slice(r.offset as usize..(r.offset + r.len) as usize);
        let recs = decode_block(block.clone()).unwrap();
        let range = block.as_ptr_range();
        assert!(range.contains(&recs[0].payload.as_ptr()));
        assert!(range.contains(&recs[0].subject.as_bytes().as_ptr()));
    }

    #[test]
    fn every_single_bit_flip_is_detected_exhaustive() {
        let (obj, _) = build(&[
            (
                "A".into(),
                vec![rec("a", Some(b"NATS/1.0\r\n\r\n"), b"xy", 7)],
            ),
            (
                "B".into(),
                vec![rec("b", None, b"", 8), rec("b2", None, b"z", 9)],
            ),
        ]);
        for bit in 0..obj.len() * 8 {
            let mut m = obj.to_vec();
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_object(Bytes::from(m)).is_err(),
                "bit {bit} undetected"
            );
        }
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        let (obj, refs) = build(&[
            ("A".into(), vec![rec("a", Some(b"h"), b"xyz", 7)]),
            ("B".into(), vec![rec("b", None, b"", 8)]),
        ]);
        for n in 0..obj.len() {
            assert!(decode_object(obj.slice(..n)).is_err(), "prefix {n}");
            assert!(
                decode_object(obj.slice(obj.len() - n..)).is_err(),
                "suffix {n}"
            );
        }
        let r = refs[0];
        let block = obj.slice(r.offset as usize..(r.offset + r.len) as usize);
        for n in 0..block.len() {
            assert!(decode_block(block.slice(..n)).is_err());
            assert!(decode_record(block.slice(..n), 0).is_err());
        }
    }

    #[test]
    fn header_checks() {
        let (obj, _) = build(&[]);
        let mut m = obj.to_vec();
        m[4] = 2;
        assert!(matches!(
            decode_object(Bytes::from(m)),
            Err(FormatError::UnsupportedVersion {
                what: "object",
                version: 2
            })
        ));
        let mut m = obj.to_vec();
        m[6] = 1;
        assert!(matches!(
            decode_object(Bytes::from(m)),
            Err(FormatError::UnsupportedFlags { flags: 1 })
        ));
        let mut m = obj.to_vec();
        m[0] = b'X';
        assert!(matches!(
            decode_object(Bytes::from(m)),
            Err(FormatError::BadMagic { what: "header" })
        ));
    }

    #[test]
    fn block_with_foreign_stream_is_rejected() {
        // Swap in a block of the same length from another stream: checksums are all valid,
        // only the cross-check against the footer catches it.
        let (a, _) = build(&[("AA".into(), vec![rec("s", None, b"1", 1)])]);
        let (b, rb) = build(&[("BB".into(), vec![rec("s", None, b"1", 1)])]);
        let mut m = a.to_vec();
        let range = rb[0].offset as usize..(rb[0].offset + rb[0].len) as usize;
        m[range.clone()].copy_from_slice(&b[range]);
        assert!(decode_object(Bytes::from(m)).is_err());
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The check value documented in docs/format.md.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn object_keys() {
        let k = object_key("g1", 42);
        assert_eq!(
            k.as_ref(),
            "infinistream/g1/objects/00000000000000000042.obj"
        );
        assert_eq!(parse_object_key(&k), Some(42));
        assert_eq!(parse_object_key(&object_key("g", u64::MAX)), Some(u64::MAX));
        assert_eq!(
            parse_object_key(&Path::from("infinistream/g/objects/42.obj")),
            None
        );
        assert_eq!(
            parse_object_key(&Path::from("other/g/objects/00000000000000000042.obj")),
            None
        );
        // A slash in a group id cannot escape its segment.
        let k = object_key("a/b", 1);
        assert_eq!(parse_object_key(&k), Some(1));
        assert!(k.as_ref().starts_with("infinistream/a%2Fb/objects/"));
        assert!(object_key("g1", 7).prefix_matches(&objects_prefix("g1")));
        assert!(object_key("g", 9) < object_key("g", 10));
    }

    /// Appends a valid CRC32C so garbage reaches the decoders behind the checksum.
    fn with_crc(mut body: Vec<u8>) -> Bytes {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        Bytes::from(body)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            "[a-z.]{0,12}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            prop_oneof![
                4 => proptest::collection::vec(any::<u8>(), 0..64),
                1 => proptest::collection::vec(any::<u8>(), 0..5000),
            ],
            any::<i64>(),
        )
            .prop_map(|(s, h, p, ts)| Record {
                subject: ByteString::from(s),
                headers: h.map(Bytes::from),
                payload: Bytes::from(p),
                timestamp_nanos: ts,
            })
    }

    fn arb_blocks() -> impl Strategy<Value = Vec<(String, Vec<Record>)>> {
        proptest::collection::vec(
            (
                "[A-Z_]{0,10}",
                proptest::collection::vec(arb_record(), 0..8),
            ),
            0..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn prop_round_trip(blocks in arb_blocks()) {
            assert_round_trip(&blocks);
        }

        #[test]
        fn prop_round_trip_v2(blocks in arb_blocks()) {
            assert_round_trip_with(&blocks, true);
        }

        #[test]
        fn prop_single_bit_flip_detected(blocks in arb_blocks(), pick in any::<prop::sample::Index>()) {
            let (obj, _) = build(&blocks);
            let bit = pick.index(obj.len() * 8);
            let mut m = obj.to_vec();
            m[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_object(Bytes::from(m)).is_err(), "bit {} undetected", bit);
        }

        #[test]
        fn prop_truncation_is_error(blocks in arb_blocks(), pick in any::<prop::sample::Index>()) {
            let (obj, _) = build(&blocks);
            let n = pick.index(obj.len());
            prop_assert!(decode_object(obj.slice(..n)).is_err());
            // A tail shorter than the footer is never mistaken for a footer.
            let _ = read_footer(&obj[n..]);
        }

        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), idx in any::<u32>()) {
            let b = Bytes::from(data.clone());
            let _ = decode_object(b.clone());
            let _ = decode_block(b.clone());
            let _ = decode_record(b.clone(), idx % 4);
            let _ = read_footer(&data);
            let _ = read_header(&data);
            // Same garbage behind a valid checksum, to exercise the table decoder.
            let mut block = vec![1, 0];
            block.extend_from_slice(&(data.len().min(64) as u32).to_le_bytes());
            block.extend_from_slice(&data);
            let block = with_crc(block);
            let _ = decode_block(block.clone());
            let _ = decode_record(block, idx % 4);
        }

        #[test]
        fn prop_garbage_footer_never_panics(footer in proptest::collection::vec(any::<u8>(), 0..256), offset in any::<u64>()) {
            let mut tail = footer.clone();
            tail.extend_from_slice(&(offset % 1024).to_le_bytes());
            tail.extend_from_slice(&(footer.len() as u32).to_le_bytes());
            tail.extend_from_slice(&crc32c::crc32c(&footer).to_le_bytes());
            tail.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            tail.extend_from_slice(&[0, 0]);
            tail.extend_from_slice(&MAGIC);
            let _ = read_footer(&tail);
            let mut obj = MAGIC.to_vec();
            obj.extend_from_slice(&[1, 0, 0, 0]);
            obj.extend_from_slice(&tail);
            let _ = decode_object(Bytes::from(obj));
        }

        #[test]
        fn prop_valid_table_with_wrong_lengths_never_panics(
            blocks in arb_blocks(),
            pick in any::<prop::sample::Index>(),
            delta in 1u64..1000,
        ) {
            // Re-encode a real table with one length perturbed and fix up the CRC: decoding
            // must report an error, not slice out of bounds.
            prop_assume!(blocks.iter().any(|(_, r)| !r.is_empty()));
            let (stream, records) = blocks.iter().find(|(_, r)| !r.is_empty()).unwrap();
            let mut entries: Vec<EntryWire> = records.iter().map(EntryWire::of).collect();
            let i = pick.index(entries.len());
            entries[i].payload_len = entries[i].payload_len.wrapping_add(delta);
            #[derive(SerializeDerive)]
            struct T<'a> { stream: &'a str, entries: &'a [EntryWire] }
            let table = bincode::serde::encode_to_vec(T { stream, entries: &entries }, BINCODE).unwrap();
            let mut block = vec![1, 0];
            block.extend_from_slice(&(table.len() as u32).to_le_bytes());
            block.extend_from_slice(&table);
            for r in records {
                block.extend_from_slice(r.subject.as_bytes());
                if let Some(h) = &r.headers { block.extend_from_slice(h); }
                block.extend_from_slice(&r.payload);
            }
            let block = with_crc(block);
            prop_assert!(decode_block(block.clone()).is_err());
            prop_assert!(decode_record(block, i as u32).is_err());
        }
    }
}
