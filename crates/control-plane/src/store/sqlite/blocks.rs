//! Owns: the `blocks` table and its decoded form: one row per stream block of a committed
//! object (its sequence range, location, subject table, per-message columns and which entries
//! were rejected or later deleted), the per-transaction working set of decoded blocks, and the
//! walks over a stream's blocks in sequence order. Does not own: what a message's removal does
//! to the stream's counters (`limits`) or sequencing (`commits`).
//!
//! A block's sequences are contiguous: entry `i` has sequence `first_seq + (entries before i
//! that were not rejected)`. Deletions mark entries; a block whose entries are all gone loses
//! its row. Every change goes through the working set and is written once, when the
//! transaction commits (`SqliteStore::in_tx`), so a commit that removes many messages of one
//! block rewrites that block's small `deleted` column once.

use std::collections::BTreeMap;

use infinistream_api::control_plane::entries::{BlockEntry, Entries};
use infinistream_api::varint;

use super::rows::{to_i64, to_u64};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryState {
    Live,
    Deleted,
    /// Refused at commit: in the object, without a sequence.
    Rejected,
}

/// A decoded block.
#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) first_seq: u64,
    pub(super) object_id: u64,
    pub(super) object_key: String,
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) subjects: Vec<String>,
    pub(super) entries: Vec<BlockEntry>,
    pub(super) state: Vec<EntryState>,
    rejected: usize,
    live: usize,
    /// A row exists for it (false for the block a commit is building).
    stored: bool,
    dirty: bool,
}

impl Block {
    /// The block a commit is about to fill, starting at the stream's next sequence.
    pub(super) fn new(
        first_seq: u64,
        object_id: u64,
        object_key: &str,
        offset: u64,
        len: u64,
        subjects: Vec<String>,
    ) -> Self {
        Self {
            first_seq,
            object_id,
            object_key: object_key.to_string(),
            offset,
            len,
            subjects,
            entries: Vec::new(),
            state: Vec::new(),
            rejected: 0,
            live: 0,
            stored: false,
            dirty: true,
        }
    }

    /// Appends a committed entry; its sequence when accepted.
    pub(super) fn push(&mut self, entry: BlockEntry, accepted: bool) -> Option<u64> {
        self.entries.push(entry);
        self.dirty = true;
        if accepted {
            self.state.push(EntryState::Live);
            self.live += 1;
            Some(self.last_seq())
        } else {
            self.state.push(EntryState::Rejected);
            self.rejected += 1;
            None
        }
    }

    /// Entries that have (or had) a sequence.
    fn sequenced(&self) -> usize {
        self.entries.len() - self.rejected
    }

    pub(super) fn last_seq(&self) -> u64 {
        (self.first_seq + self.sequenced() as u64).saturating_sub(1)
    }

    pub(super) fn contains(&self, seq: u64) -> bool {
        self.sequenced() > 0 && seq >= self.first_seq && seq <= self.last_seq()
    }

    /// The entry index of a sequence of this block (live or deleted).
    pub(super) fn index_of(&self, seq: u64) -> Option<usize> {
        if !self.contains(seq) {
            return None;
        }
        let rank = (seq - self.first_seq) as usize;
        if self.rejected == 0 {
            return Some(rank);
        }
        self.state
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != EntryState::Rejected)
            .nth(rank)
            .map(|(i, _)| i)
    }

    /// Live entries with their sequences, from `from` on.
    pub(super) fn live_from(&self, from: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let mut seq = self.first_seq;
        self.state.iter().enumerate().filter_map(move |(i, s)| {
            if *s == EntryState::Rejected {
                return None;
            }
            let this = seq;
            seq += 1;
            (*s == EntryState::Live && this >= from).then_some((i, this))
        })
    }

    pub(super) fn subject_of(&self, index: usize) -> &str {
        self.entries
            .get(index)
            .and_then(|e| self.subjects.get(e.subject as usize))
            .map_or("", String::as_str)
    }

    /// Stored size of an entry as nats-server's file store counts it.
    pub(super) fn stored_size(&self, index: usize) -> u64 {
        let Some(e) = self.entries.get(index) else {
            return 0;
        };
        let header = u64::from(e.header_size.min(e.size));
        file_store_msg_size(
            self.subject_of(index).len(),
            header,
            u64::from(e.size) - header,
        )
    }

    /// Marks a live entry deleted; false when it was not live.
    pub(super) fn delete(&mut self, index: usize) -> bool {
        match self.state.get_mut(index) {
            Some(s @ EntryState::Live) => {
                *s = EntryState::Deleted;
                self.live -= 1;
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    pub(super) fn location(&self, stream: &str, index: usize, seq: u64) -> MessageLocation {
        let e = self.entries.get(index).copied().unwrap_or_default();
        MessageLocation {
            stream: stream.to_string(),
            seq,
            subject: self.subject_of(index).to_string(),
            timestamp_nanos: e.timestamp_nanos,
            object_id: self.object_id,
            object_key: self.object_key.clone(),
            block_offset: self.offset,
            block_len: self.len,
            index: index as u32,
            size: e.size,
            header_size: e.header_size,
        }
    }

    fn indexes(&self, state: EntryState) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = 0usize;
        for (i, s) in self.state.iter().enumerate() {
            if *s == state {
                varint::put(&mut out, (i - prev) as u64);
                prev = i;
            }
        }
        out
    }

    fn max_ts(&self) -> i64 {
        self.entries
            .iter()
            .map(|e| e.timestamp_nanos)
            .max()
            .unwrap_or(0)
    }

    /// The block from its row; `Invariant` when the row does not decode.
    fn from_row(r: &rusqlite::Row<'_>) -> Result<Self, StoreError> {
        let first_seq = to_u64(r.get(0)?);
        let subjects: Vec<String> = serde_json::from_str(&r.get::<_, String>(5)?)?;
        let entries = Entries::decode(&r.get::<_, Vec<u8>>(6)?)
            .map_err(|e| StoreError::Invariant(format!("block at {first_seq}: {e}")))?
            .0;
        let mut state = vec![EntryState::Live; entries.len()];
        let mut mark = |column: Vec<u8>, as_state: EntryState| -> Result<usize, StoreError> {
            let mut at = 0usize;
            let mut n = 0;
            for delta in read_varints(&column) {
                at += delta as usize;
                let Some(s) = state.get_mut(at) else {
                    return Err(StoreError::Invariant(format!(
                        "block at {first_seq}: index {at} past its {} entries",
                        entries.len()
                    )));
                };
                *s = as_state;
                n += 1;
            }
            Ok(n)
        };
        let rejected = mark(r.get(7)?, EntryState::Rejected)?;
        let deleted = mark(r.get(8)?, EntryState::Deleted)?;
        Ok(Self {
            first_seq,
            object_id: to_u64(r.get(1)?),
            object_key: r.get(9)?,
            offset: to_u64(r.get(2)?),
            len: to_u64(r.get(3)?),
            subjects,
            live: entries.len() - rejected - deleted,
            entries,
            state,
            rejected,
            stored: true,
            dirty: false,
        })
    }

    /// A block of an object committed before this release, from the message rows that are
    /// left of it (`(idx, seq, subject, size, header_size, ts)` ascending by index). Entries that
    /// have no row were rejected or deleted; the gaps between the rows' sequences say which.
    pub(super) fn from_legacy(
        object_id: u64,
        object_key: &str,
        offset: u64,
        len: u64,
        rows: &[(u32, u64, String, u32, u32, i64)],
    ) -> Option<Self> {
        let first = rows.first()?;
        let mut subjects: Vec<String> = Vec::new();
        let mut block = Self::new(first.1, object_id, object_key, offset, len, Vec::new());
        let mut subject_index = |s: &str| match subjects.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                subjects.push(s.to_string());
                (subjects.len() - 1) as u32
            }
        };
        let mut prev: Option<(u32, u64)> = None;
        for (idx, seq, subject, size, header_size, ts) in rows {
            let subject = subject_index(subject);
            let filler = BlockEntry {
                subject,
                size: 0,
                header_size: 0,
                timestamp_nanos: *ts,
            };
            let (gap, deleted) = match prev {
                None => (*idx as u64, 0),
                Some((pidx, pseq)) => (
                    u64::from(idx.saturating_sub(pidx + 1)),
                    seq.saturating_sub(pseq + 1),
                ),
            };
            for k in 0..gap {
                let had_seq = k < deleted;
                block.push(filler, had_seq);
                if had_seq {
                    let last = block.entries.len() - 1;
                    block.delete(last);
                }
            }
            block.push(
                BlockEntry {
                    subject,
                    size: *size,
                    header_size: (*header_size).min(*size),
                    timestamp_nanos: *ts,
                },
                true,
            );
            prev = Some((*idx, *seq));
        }
        block.subjects = subjects;
        Some(block)
    }
}

/// The values of an index column, up to the first undecodable byte.
fn read_varints(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut r = varint::Reader::new(bytes);
    std::iter::from_fn(move || r.get().ok())
}

const BLOCK_COLUMNS: &str = "b.first_seq, b.object_id, b.block_offset, b.block_len, b.last_seq, \
     b.subjects, b.entries, b.rejected, b.deleted, coalesce(o.object_key, '')";

/// The store's working set keeps at most this many decoded entries between operations (about
/// 24 bytes each): a consumer reading a block of 10,000 messages 500 at a time decodes it once,
/// not 20 times, and a KV get does not decode its block's columns per get.
const CLEAN_MAX_ENTRIES: usize = 262_144;
const CLEAN_MAX_BLOCKS: usize = 1024;

/// Decoded blocks, keyed by (stream id, first sequence): reads load through it, changes stay in
/// it until `flush`. Between operations the store's own working set holds only clean blocks
/// (exactly their stored rows), so later operations reuse them; every write of a block row goes
/// through `flush` or drops the stream's blocks (`drop_stream`), and a failed operation clears
/// it.
#[derive(Debug, Default)]
pub(super) struct WorkingSet {
    blocks: BTreeMap<(i64, u64), Block>,
}

impl WorkingSet {
    pub(super) fn clear(&mut self) {
        self.blocks.clear();
    }

    /// After an operation: keeps the clean blocks for the next one (a change not flushed is
    /// dropped), all of them only while they stay within `CLEAN_MAX_ENTRIES`.
    pub(super) fn settle(&mut self) {
        self.blocks.retain(|_, b| !b.dirty && b.stored);
        // Bounded in blocks too, so that this sum stays cheap with thousands of small streams.
        let entries: usize = self.blocks.values().map(|b| b.entries.len()).sum();
        if entries > CLEAN_MAX_ENTRIES || self.blocks.len() > CLEAN_MAX_BLOCKS {
            self.blocks.clear();
        }
    }

    pub(super) fn insert(&mut self, stream_id: i64, block: Block) {
        self.blocks.insert((stream_id, block.first_seq), block);
    }

    pub(super) fn get(&self, stream_id: i64, first_seq: u64) -> Option<&Block> {
        self.blocks.get(&(stream_id, first_seq))
    }

    pub(super) fn get_mut(&mut self, stream_id: i64, first_seq: u64) -> Option<&mut Block> {
        self.blocks.get_mut(&(stream_id, first_seq))
    }

    /// Forgets one stream's blocks (its rows are being deleted wholesale).
    pub(super) fn drop_stream(&mut self, stream_id: i64) {
        self.blocks.retain(|(sid, _), _| *sid != stream_id);
    }

    fn load(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        sql_where: &str,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks b LEFT JOIN objects o ON o.object_id = b.object_id \
             WHERE b.stream_id = ?1 AND {sql_where}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![stream_id, to_i64(seq)])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let first_seq = to_u64(r.get(0)?);
        if let std::collections::btree_map::Entry::Vacant(slot) =
            self.blocks.entry((stream_id, first_seq))
        {
            slot.insert(Block::from_row(r)?);
        }
        Ok(Some(first_seq))
    }

    /// The block holding `seq` (live or deleted), by its first sequence.
    pub(super) fn containing(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        let cached = self
            .blocks
            .range((stream_id, 0)..=(stream_id, seq))
            .next_back()
            .map(|(k, b)| (k.1, b.contains(seq)));
        if let Some((first, true)) = cached {
            return Ok(Some(first));
        }
        let Some(first) = self.load(
            conn,
            stream_id,
            "b.first_seq <= ?2 ORDER BY b.first_seq DESC LIMIT 1",
            seq,
        )?
        else {
            return Ok(None);
        };
        // A cached block may sit between the row found and `seq` (one not yet written).
        let newest = self
            .blocks
            .range((stream_id, first)..=(stream_id, seq))
            .next_back()
            .filter(|(_, b)| b.contains(seq))
            .map(|(k, _)| k.1);
        Ok(newest)
    }

    /// The first block starting after `after` (stored or cached).
    pub(super) fn next_after(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        after: u64,
    ) -> Result<Option<u64>, StoreError> {
        let cached = self
            .blocks
            .range((stream_id, after.saturating_add(1))..=(stream_id, u64::MAX))
            .next()
            .map(|(k, _)| k.1);
        let stored = self.load(
            conn,
            stream_id,
            "b.first_seq > ?2 ORDER BY b.first_seq LIMIT 1",
            after,
        )?;
        Ok(match (cached, stored) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The block holding `from`, else the first one after it: where a walk from `from` starts.
    pub(super) fn first_from(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        from: u64,
    ) -> Result<Option<u64>, StoreError> {
        match self.containing(conn, stream_id, from)? {
            Some(first) => Ok(Some(first)),
            None => self.next_after(conn, stream_id, from),
        }
    }

    /// Calls `f(block, index, seq)` for every live entry from `from` to `upto` whose subject
    /// `wanted` accepts, in sequence order, until `f` returns false. Each block's subject table
    /// is judged once, not each entry. With `one_at_a_time` the set is emptied after each block
    /// (reads over long spans only: a transaction's changes live in the set).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn walk(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        from: u64,
        upto: u64,
        one_at_a_time: bool,
        wanted: impl Fn(&str) -> bool,
        mut f: impl FnMut(&Block, usize, u64) -> bool,
    ) -> Result<(), StoreError> {
        let mut key = self.first_from(conn, stream_id, from)?;
        while let Some(first) = key {
            if first > upto {
                break;
            }
            let Some(block) = self.get(stream_id, first) else {
                break;
            };
            let matches: Vec<bool> = block.subjects.iter().map(|s| wanted(s)).collect();
            for (i, seq) in block.live_from(from) {
                if seq > upto {
                    return Ok(());
                }
                let subject = block.entries[i].subject as usize;
                if matches.get(subject).copied().unwrap_or(false) && !f(block, i, seq) {
                    return Ok(());
                }
            }
            if one_at_a_time {
                self.clear();
            }
            key = self.next_after(conn, stream_id, first)?;
        }
        Ok(())
    }

    /// The first block with a live entry at or after `from`, by its first sequence.
    pub(super) fn live_at_or_after(
        &mut self,
        conn: &Connection,
        stream_id: i64,
        from: u64,
    ) -> Result<Option<(u64, usize, u64)>, StoreError> {
        let mut key = self.first_from(conn, stream_id, from)?;
        while let Some(first) = key {
            let Some(block) = self.get(stream_id, first) else {
                return Ok(None);
            };
            if let Some((i, seq)) = block.live_from(from).next() {
                return Ok(Some((first, i, seq)));
            }
            key = self.next_after(conn, stream_id, first)?;
        }
        Ok(None)
    }

    /// Writes every changed block: new ones inserted, emptied ones deleted, others updated.
    pub(super) fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        for ((stream_id, first_seq), block) in &mut self.blocks {
            if !block.dirty {
                continue;
            }
            let key = params![*stream_id, to_i64(*first_seq)];
            if block.live == 0 {
                if block.stored {
                    conn.prepare_cached(
                        "DELETE FROM blocks WHERE stream_id = ?1 AND first_seq = ?2",
                    )?
                    .execute(key)?;
                }
            } else if block.stored {
                conn.prepare_cached(
                    "UPDATE blocks SET live = ?3, deleted = ?4 WHERE stream_id = ?1 AND first_seq = ?2",
                )?
                .execute(params![
                    *stream_id,
                    to_i64(*first_seq),
                    block.live as i64,
                    block.indexes(EntryState::Deleted)
                ])?;
            } else {
                conn.prepare_cached(
                    "INSERT INTO blocks (stream_id, first_seq, last_seq, object_id, block_offset, block_len, live, max_ts, subjects, entries, rejected, deleted) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?
                .execute(params![
                    *stream_id,
                    to_i64(*first_seq),
                    to_i64(block.last_seq()),
                    to_i64(block.object_id),
                    to_i64(block.offset),
                    to_i64(block.len),
                    block.live as i64,
                    block.max_ts(),
                    serde_json::to_string(&block.subjects)?,
                    Entries(block.entries.clone()).encode(),
                    block.indexes(EntryState::Rejected),
                    block.indexes(EntryState::Deleted),
                ])?;
                block.stored = true;
            }
            block.dirty = false;
        }
        self.blocks.retain(|_, b| b.stored && b.live > 0);
        Ok(())
    }
}

/// Deletes every block row of a stream.
pub(super) fn delete_stream_blocks(conn: &Connection, stream_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM blocks WHERE stream_id = ?1")?
        .execute(params![stream_id])?;
    Ok(())
}

/// The first sequence of a block holding a message stamped at or after `ts`.
pub(super) fn first_block_since(
    conn: &Connection,
    stream_id: i64,
    ts: i64,
    after: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT first_seq FROM blocks WHERE stream_id = ?1 AND max_ts >= ?2 AND first_seq > ?3 \
             ORDER BY first_seq LIMIT 1",
        )?
        .query_row(params![stream_id, ts, to_i64(after)], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(to_u64))
}

/// Live messages of blocks that start at or after `from`, without decoding them.
pub(super) fn live_from_block(
    conn: &Connection,
    stream_id: i64,
    from: u64,
) -> Result<u64, StoreError> {
    Ok(to_u64(
        conn.prepare_cached(
            "SELECT coalesce(sum(live), 0) FROM blocks WHERE stream_id = ?1 AND first_seq >= ?2",
        )?
        .query_row(params![stream_id, to_i64(from)], |r| r.get(0))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: u32) -> BlockEntry {
        BlockEntry {
            subject,
            size: 10,
            header_size: 0,
            timestamp_nanos: 1,
        }
    }

    #[test]
    fn sequences_skip_rejected_entries() {
        let mut b = Block::new(10, 1, "k", 0, 1, vec!["a".into(), "b".into()]);
        assert_eq!(b.push(entry(0), true), Some(10));
        assert_eq!(b.push(entry(1), false), None);
        assert_eq!(b.push(entry(1), true), Some(11));
        assert_eq!(b.last_seq(), 11);
        assert_eq!(b.index_of(11), Some(2));
        assert_eq!(b.index_of(12), None);
        assert!(b.delete(0));
        assert!(!b.delete(0));
        assert!(!b.delete(1));
        assert_eq!(b.live_from(0).collect::<Vec<_>>(), vec![(2, 11)]);
        assert_eq!(b.subject_of(2), "b");
    }

    #[test]
    fn legacy_rows_rebuild_rejected_and_deleted_entries() {
        // Indexes 0..=5; index 0 rejected (before the first row), 2 deleted, 3 rejected.
        let rows = vec![
            (1, 7, "a".to_string(), 5, 0, 1),
            (4, 9, "b".to_string(), 6, 0, 2),
            (5, 10, "a".to_string(), 7, 0, 3),
        ];
        let b = Block::from_legacy(1, "k", 0, 1, &rows).expect("block");
        assert_eq!(b.first_seq, 7);
        assert_eq!(b.last_seq(), 10);
        assert_eq!(b.index_of(9), Some(4));
        assert_eq!(
            b.live_from(0).collect::<Vec<_>>(),
            vec![(1, 7), (4, 9), (5, 10)]
        );
        assert_eq!(b.entries[4].size, 6);
    }
}
