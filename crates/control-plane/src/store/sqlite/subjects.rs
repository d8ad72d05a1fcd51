//! Owns: per-subject state (nats-server's `psim`): for each subject with stored messages its
//! count and first and last sequence, the `subjects` table that keeps it, and the lazy repair
//! of a first or last sequence after the message it named was removed. Does not own: which
//! messages are removed (`limits`) or finding messages in blocks (`blocks`).
//!
//! A removed first (last) message leaves the old sequence behind as a lower (upper) bound with
//! a stale flag, as nats-server's `firstNeedsUpdate`/`lastNeedsUpdate` do; the exact value is
//! found by walking the blocks from that bound the next time someone asks.

use super::blocks::WorkingSet;
use super::rows::{to_i64, to_u64};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SubjectState {
    pub(super) count: u64,
    /// Exact unless `first_stale`, then a lower bound.
    pub(super) first: u64,
    pub(super) first_stale: bool,
    /// Exact unless `last_stale`, then an upper bound.
    pub(super) last: u64,
    pub(super) last_stale: bool,
}

impl SubjectState {
    /// A subject's state after its first message, `seq`.
    fn first_message(seq: u64) -> Self {
        Self {
            count: 1,
            first: seq,
            first_stale: false,
            last: seq,
            last_stale: false,
        }
    }
}

/// Loads one stream's subjects.
pub(super) fn load(
    conn: &Connection,
    stream_id: i64,
) -> Result<FastMap<String, SubjectState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject, count, first_seq, first_stale, last_seq FROM subjects WHERE stream_id = ?1",
    )?;
    let rows = stmt.query_map(params![stream_id], |r| {
        let stale: i64 = r.get(3)?;
        Ok((
            r.get::<_, String>(0)?,
            SubjectState {
                count: to_u64(r.get(1)?),
                first: to_u64(r.get(2)?),
                first_stale: stale & 1 != 0,
                last: to_u64(r.get(4)?),
                last_stale: stale & 2 != 0,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes the subjects changed since the last call.
pub(super) fn persist(conn: &Connection, rt: &mut StreamRt) -> Result<(), StoreError> {
    if rt.dirty_subjects.is_empty() {
        return Ok(());
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO subjects (stream_id, subject, count, first_seq, first_stale, last_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(stream_id, subject) DO UPDATE SET \
         count = excluded.count, first_seq = excluded.first_seq, \
         first_stale = excluded.first_stale, last_seq = excluded.last_seq",
    )?;
    let mut delete =
        conn.prepare_cached("DELETE FROM subjects WHERE stream_id = ?1 AND subject = ?2")?;
    for subject in rt.dirty_subjects.drain() {
        match rt.subjects.get(&subject) {
            Some(st) => {
                let stale = i64::from(st.first_stale) | (i64::from(st.last_stale) << 1);
                upsert.execute(params![
                    rt.id,
                    subject,
                    to_i64(st.count),
                    to_i64(st.first),
                    stale,
                    to_i64(st.last)
                ])?;
            }
            None => {
                delete.execute(params![rt.id, subject])?;
            }
        }
    }
    Ok(())
}

/// Forgets every subject of a stream (purge, delete).
pub(super) fn clear(conn: &Connection, rt: &mut StreamRt) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM subjects WHERE stream_id = ?1")?
        .execute(params![rt.id])?;
    rt.subjects.clear();
    rt.dirty_subjects.clear();
    Ok(())
}

impl StreamRt {
    /// A message was stored on `subject` as `seq` (the stream's newest). Per message, so it
    /// leaves marking the subject for persisting to the caller, once per block
    /// (`mark_dirty`); removals mark theirs.
    pub(super) fn subject_stored(&mut self, subject: &str, seq: u64) {
        match self.subjects.get_mut(subject) {
            Some(st) => {
                st.count += 1;
                st.last = seq;
                st.last_stale = false;
            }
            None => {
                self.subjects
                    .insert(subject.to_string(), SubjectState::first_message(seq));
            }
        }
    }

    /// The message `seq` on `subject` was removed.
    pub(super) fn subject_removed(&mut self, subject: &str, seq: u64) {
        let Some(st) = self.subjects.get_mut(subject) else {
            return;
        };
        st.count = st.count.saturating_sub(1);
        if st.count == 0 {
            self.subjects.remove(subject);
        } else {
            if seq == st.first {
                st.first = seq + 1;
                st.first_stale = true;
            }
            if seq == st.last {
                st.last = seq.saturating_sub(1);
                st.last_stale = true;
            }
            if st.count == 1 && st.first_stale != st.last_stale {
                // One message left: whichever end is exact names it.
                let exact = if st.first_stale { st.last } else { st.first };
                st.first = exact;
                st.last = exact;
                st.first_stale = false;
                st.last_stale = false;
            }
        }
        self.mark_dirty(subject);
    }

    /// The subject's state is written with the stream's next `persist_rt`.
    pub(super) fn mark_dirty(&mut self, subject: &str) {
        if !self.dirty_subjects.contains(subject) {
            self.dirty_subjects.insert(subject.to_string());
        }
    }
}

/// The first sequence stored on exactly `subject` (repairing a stale one), None when none.
pub(super) fn first_of(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    subject: &str,
) -> Result<Option<u64>, StoreError> {
    let Some(st) = rt.subjects.get(subject).copied() else {
        return Ok(None);
    };
    if !st.first_stale {
        return Ok(Some(st.first));
    }
    let found = next_on_subject(conn, ws, rt, subject, st.first)?;
    if let (Some(seq), Some(st)) = (found, rt.subjects.get_mut(subject)) {
        st.first = seq;
        st.first_stale = false;
    }
    Ok(found)
}

/// The last sequence stored on exactly `subject` (repairing a stale one), 0 when none.
pub(super) fn last_of(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    subject: &str,
) -> Result<u64, StoreError> {
    let Some(st) = rt.subjects.get(subject).copied() else {
        return Ok(0);
    };
    if !st.last_stale {
        return Ok(st.last);
    }
    let found = prev_on_subject(conn, ws, rt, subject, st.last, st.first)?;
    if let (Some(seq), Some(st)) = (found, rt.subjects.get_mut(subject)) {
        st.last = seq;
        st.last_stale = false;
    }
    Ok(found.unwrap_or(0))
}

/// The first live message on exactly `subject` at or after `from` (an exact match: stored
/// subjects are literals even with wildcard tokens).
pub(super) fn next_on_subject(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    subject: &str,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(st) = rt.subjects.get(subject) else {
        return Ok(None);
    };
    let mut found = None;
    ws.walk(
        conn,
        rt.id,
        from,
        st.last,
        false,
        |s| s == subject,
        |_, _, seq| {
            found = Some(seq);
            false
        },
    )?;
    Ok(found)
}

/// The last live message on exactly `subject` at or before `upto` (and not before `floor`):
/// blocks are only indexed forward, so one walk from the subject's first message.
fn prev_on_subject(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    subject: &str,
    upto: u64,
    floor: u64,
) -> Result<Option<u64>, StoreError> {
    let mut best = None;
    let from = floor.max(rt.first_seq);
    ws.walk(
        conn,
        rt.id,
        from,
        upto,
        false,
        |s| s == subject,
        |_, _, seq| {
            best = Some(seq);
            true
        },
    )?;
    Ok(best)
}

/// Recomputes a stream's counters and subjects from its blocks (after a migration, or when
/// the stored counters disagree).
pub(super) fn rebuild(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
) -> Result<(), StoreError> {
    rt.subjects.clear();
    rt.msgs = 0;
    rt.bytes = 0;
    let mut first: Option<(u64, i64)> = None;
    let mut after = 0;
    loop {
        // One block decoded at a time: a rebuild must not hold a whole stream in memory.
        ws.clear();
        let Some(next) = ws.next_after(conn, rt.id, after)? else {
            break;
        };
        let Some(block) = ws.get(rt.id, next) else {
            break;
        };
        for (i, seq) in block.live_from(0) {
            let subject = block.subject_of(i).to_string();
            rt.msgs += 1;
            rt.bytes += block.stored_size(i);
            if first.is_none() {
                first = Some((seq, block.entries[i].timestamp_nanos));
            }
            match rt.subjects.get_mut(&subject) {
                Some(st) => {
                    st.count += 1;
                    st.last = seq;
                }
                None => {
                    rt.subjects
                        .insert(subject, SubjectState::first_message(seq));
                }
            }
        }
        after = next;
    }
    ws.clear();
    match first {
        Some((seq, ts)) => {
            rt.first_seq = seq;
            rt.first_ts = ts;
        }
        None => {
            if rt.last_seq > 0 || rt.first_seq > 0 {
                rt.first_seq = rt.last_seq + 1;
            }
            rt.first_ts = 0;
        }
    }
    conn.prepare_cached("DELETE FROM subjects WHERE stream_id = ?1")?
        .execute(params![rt.id])?;
    rt.dirty_subjects = rt.subjects.keys().cloned().collect();
    Ok(())
}
