//! Owns: removing messages (by sequence, oldest, expired, over a limit), purges and compaction,
//! and keeping the stream's counters and per-subject state in step with the blocks. Does not
//! own: deciding what a limit is (the stream config), sequencing (`commits`) or the block rows
//! (`blocks`: a removal marks an entry there and the block is written when the transaction
//! commits).

use super::blocks::{WorkingSet, delete_stream_blocks};
use super::rows::{is_literal, pattern_matches, to_i64, to_u64};
use super::*;

/// Persists the counters an operation changed: the stream's narrow state row (not `streams`,
/// whose rows carry the whole config: a commit touching 1,000 streams would rewrite ~1 MB of
/// pages) and the subjects that changed.
pub(super) fn persist_rt(conn: &Connection, rt: &mut StreamRt) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO stream_state (stream_id, first_seq, last_seq, last_ts, last_msg_id, msgs, bytes, first_ts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(stream_id) DO UPDATE SET first_seq = excluded.first_seq, last_seq = excluded.last_seq, \
         last_ts = excluded.last_ts, last_msg_id = excluded.last_msg_id, msgs = excluded.msgs, \
         bytes = excluded.bytes, first_ts = excluded.first_ts",
    )?
    .execute(params![
        rt.id,
        to_i64(rt.first_seq),
        to_i64(rt.last_seq),
        rt.last_ts,
        rt.last_msg_id,
        to_i64(rt.msgs),
        to_i64(rt.bytes),
        rt.first_ts,
    ])?;
    subjects::persist(conn, rt)
}

/// Moves first_seq/first_ts to the oldest live message; an empty stream's first is last + 1.
pub(super) fn refresh_first(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
) -> Result<(), StoreError> {
    if rt.msgs == 0 {
        // A brand-new stream reports first 0 (or its configured first_seq); keep that.
        if rt.last_seq > 0 || rt.first_seq > 0 {
            rt.first_seq = rt.last_seq + 1;
        }
        rt.first_ts = 0;
        return Ok(());
    }
    match ws.live_at_or_after(conn, rt.id, rt.first_seq)? {
        Some((block, index, seq)) => {
            rt.first_seq = seq;
            rt.first_ts = ws
                .get(rt.id, block)
                .and_then(|b| b.entries.get(index))
                .map_or(0, |e| e.timestamp_nanos);
            Ok(())
        }
        None => Err(StoreError::Invariant(format!(
            "stream {} counts {} messages but has none",
            rt.config.name, rt.msgs
        ))),
    }
}

/// Removes one message; false when it was not there.
pub(super) fn remove_seq(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    seq: u64,
) -> Result<bool, StoreError> {
    let Some(first) = ws.containing(conn, rt.id, seq)? else {
        return Ok(false);
    };
    let Some(block) = ws.get_mut(rt.id, first) else {
        return Ok(false);
    };
    let Some(index) = block.index_of(seq) else {
        return Ok(false);
    };
    if !block.delete(index) {
        return Ok(false);
    }
    let subject = block.subject_of(index).to_string();
    let stored = block.stored_size(index);
    rt.msgs = rt.msgs.saturating_sub(1);
    rt.bytes = rt.bytes.saturating_sub(stored);
    rt.subject_removed(&subject, seq);
    if seq == rt.first_seq || rt.msgs == 0 {
        refresh_first(conn, ws, rt)?;
    }
    Ok(true)
}

pub(super) fn remove_oldest(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
) -> Result<bool, StoreError> {
    if rt.msgs == 0 {
        return Ok(false);
    }
    let seq = rt.first_seq;
    remove_seq(conn, ws, rt, seq)
}

/// Drops messages past max_age or their TTL; true when anything changed.
pub(super) fn expire(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    now: i64,
) -> Result<bool, StoreError> {
    let mut changed = false;
    if rt.config.max_age > 0 {
        let cutoff = now - rt.config.max_age;
        while rt.msgs > 0 && rt.first_ts <= cutoff {
            changed |= remove_oldest(conn, ws, rt)?;
        }
    }
    if rt.config.allow_msg_ttl {
        let seqs: Vec<i64> = conn
            .prepare_cached(
                "DELETE FROM expiries WHERE stream_id = ?1 AND expires <= ?2 RETURNING seq",
            )?
            .query_map(params![rt.id, now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for seq in seqs {
            changed |= remove_seq(conn, ws, rt, to_u64(seq))?;
        }
    }
    Ok(changed)
}

/// Discard-old limits and the per-subject limit, after a store or a config update.
pub(super) fn enforce_limits(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    subj: Option<&str>,
) -> Result<(), StoreError> {
    let mmp = rt.config.max_msgs_per_subject;
    if mmp > 0 {
        let over: Vec<String> = match subj {
            Some(s) => vec![s.to_string()],
            None => rt
                .subjects
                .iter()
                .filter(|(_, st)| st.count > mmp as u64)
                .map(|(s, _)| s.clone())
                .collect(),
        };
        for s in over {
            while rt.subjects.get(&s).is_some_and(|st| st.count > mmp as u64) {
                let Some(seq) = subjects::first_of(conn, ws, rt, &s)? else {
                    break;
                };
                if !remove_seq(conn, ws, rt, seq)? {
                    return Err(StoreError::Invariant(format!(
                        "subject {s} starts at {seq}, which is not stored"
                    )));
                }
            }
        }
    }
    if rt.config.discard == DiscardPolicy::Old {
        if rt.config.max_msgs > 0 {
            while rt.msgs > rt.config.max_msgs as u64 {
                if !remove_oldest(conn, ws, rt)? {
                    break;
                }
            }
        }
        if rt.config.max_bytes > 0 {
            while rt.bytes > rt.config.max_bytes as u64 {
                if !remove_oldest(conn, ws, rt)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Removes every message but `keep_seq` (the newest) on exactly `subject`, or on every subject
/// (rollups).
pub(super) fn remove_all_but(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    subject: Option<&str>,
    keep_seq: u64,
) -> Result<(), StoreError> {
    match subject {
        Some(s) => {
            while let Some(seq) = subjects::first_of(conn, ws, rt, s)? {
                if seq >= keep_seq || !remove_seq(conn, ws, rt, seq)? {
                    break;
                }
            }
        }
        None => {
            while rt.msgs > 0 && rt.first_seq < keep_seq {
                if !remove_oldest(conn, ws, rt)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Every live message from `from` to `upto` whose subject matches `filter`, in order.
fn matching_seqs(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    filter: &str,
    from: u64,
    upto: u64,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    ws.walk(
        conn,
        rt.id,
        from,
        upto,
        false,
        |s| pattern_matches(filter, s),
        |_, _, seq| {
            out.push(seq);
            true
        },
    )?;
    Ok(out)
}

/// Removes everything a stream holds (its counters keep `last_seq`).
fn remove_everything(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
) -> Result<u64, StoreError> {
    let purged = rt.msgs;
    ws.drop_stream(rt.id);
    delete_stream_blocks(conn, rt.id)?;
    conn.prepare_cached("DELETE FROM expiries WHERE stream_id = ?1")?
        .execute(params![rt.id])?;
    subjects::clear(conn, rt)?;
    rt.msgs = 0;
    rt.bytes = 0;
    rt.first_ts = 0;
    Ok(purged)
}

/// nats-server's `PurgeEx(subject, sequence, keep)` (memstore flavour).
pub(super) fn purge_ex(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    request: &StreamPurgeRequest,
) -> Result<u64, StoreError> {
    let (seq, keep) = (request.seq, request.keep);
    let mut filter = request.filter.as_str();
    if seq == 1 {
        return Ok(0);
    }
    if filter.is_empty() || filter == ">" {
        if keep == 0 && seq == 0 {
            let purged = remove_everything(conn, ws, rt)?;
            rt.first_seq = rt.last_seq + 1;
            return Ok(purged);
        }
        if seq > 1 {
            return compact(conn, ws, rt, seq);
        }
        filter = ">";
    }
    let total: u64 = rt
        .subjects
        .iter()
        .filter(|(s, _)| pattern_matches(filter, s))
        .map(|(_, st)| st.count)
        .sum();
    if total == 0 {
        return Ok(0);
    }
    let mut max_purge = u64::MAX;
    if keep > 0 {
        if keep >= total {
            return Ok(0);
        }
        max_purge = total - keep;
    }
    let upper = if seq >= 1 { seq - 1 } else { u64::MAX };
    let from = if is_literal(filter) {
        subjects::first_of(conn, ws, rt, filter)?.unwrap_or(rt.first_seq)
    } else {
        rt.first_seq
    };
    let candidates = matching_seqs(conn, ws, rt, filter, from.max(rt.first_seq), upper)?;
    let mut purged = 0;
    for s in candidates {
        if purged >= max_purge {
            break;
        }
        if remove_seq(conn, ws, rt, s)? {
            purged += 1;
        }
    }
    Ok(purged)
}

/// nats-server's `Compact(seq)`: drop everything below `seq`; past the end, restart at `seq`.
pub(super) fn compact(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    seq: u64,
) -> Result<u64, StoreError> {
    if rt.msgs > 0 && rt.first_seq > seq {
        return Ok(0);
    }
    if seq <= rt.last_seq {
        let mut purged = 0;
        while rt.msgs > 0 && rt.first_seq < seq {
            if !remove_oldest(conn, ws, rt)? {
                break;
            }
            purged += 1;
        }
        if rt.msgs == 0 {
            // Everything below `seq` is gone; an empty stream's next message is `last + 1`.
            refresh_first(conn, ws, rt)?;
        }
        Ok(purged)
    } else {
        let purged = remove_everything(conn, ws, rt)?;
        rt.first_seq = seq;
        rt.last_seq = seq - 1;
        Ok(purged)
    }
}
