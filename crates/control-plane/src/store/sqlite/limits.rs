//! Owns: stream limits on the message index: removing messages (by sequence, oldest, expired, over
//! a limit), purges and compaction, and the per-stream counters kept in step. Does not own:
//! deciding what a limit is (the stream config) or sequencing (`commits`).

use super::lookups::oldest_of_subject;
use super::rows::{is_literal, pattern_matches, subject_hash, to_i64, to_u64};
use super::*;

/// Persists the counters a commit changes, in their own narrow table rather than in `streams`,
/// whose rows carry the whole config: a commit touching 1,000 streams rewrote ~1 MB of `streams`
/// pages into the WAL (45 ms per commit); the narrow rows fit in a few pages.
pub(super) fn persist_rt(conn: &Connection, rt: &StreamRt) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO stream_state (stream_id, first_seq, last_seq, last_ts, last_msg_id) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(stream_id) DO UPDATE SET first_seq = excluded.first_seq, last_seq = excluded.last_seq, \
         last_ts = excluded.last_ts, last_msg_id = excluded.last_msg_id",
    )?
    .execute(params![
        rt.id,
        to_i64(rt.first_seq),
        to_i64(rt.last_seq),
        rt.last_ts,
        rt.last_msg_id
    ])?;
    Ok(())
}

/// Sets first_seq/first_ts from the oldest row; an empty stream's first is last + 1.
pub(super) fn refresh_first(conn: &Connection, rt: &mut StreamRt) -> Result<(), StoreError> {
    if rt.msgs == 0 {
        // A brand-new stream reports first 0 (or its configured first_seq); keep that.
        if rt.last_seq > 0 || rt.first_seq > 0 {
            rt.first_seq = rt.last_seq + 1;
        }
        rt.first_ts = 0;
        return Ok(());
    }
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT seq, ts FROM messages WHERE stream_id = ?1 ORDER BY seq LIMIT 1")?
        .query_row(params![rt.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((seq, ts)) => {
            rt.first_seq = to_u64(seq);
            rt.first_ts = ts;
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
    rt: &mut StreamRt,
    seq: u64,
) -> Result<bool, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "DELETE FROM messages WHERE stream_id = ?1 AND seq = ?2 RETURNING subject, stored",
        )?
        .query_row(params![rt.id, to_i64(seq)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((subj, stored)) = row else {
        return Ok(false);
    };
    rt.msgs = rt.msgs.saturating_sub(1);
    rt.bytes = rt.bytes.saturating_sub(to_u64(stored));
    if let Some(n) = rt.subjects.get_mut(&subj) {
        *n -= 1;
        if *n == 0 {
            rt.subjects.remove(&subj);
        }
    }
    if seq == rt.first_seq || rt.msgs == 0 {
        refresh_first(conn, rt)?;
    }
    Ok(true)
}

pub(super) fn remove_oldest(conn: &Connection, rt: &mut StreamRt) -> Result<bool, StoreError> {
    if rt.msgs == 0 {
        return Ok(false);
    }
    let seq = rt.first_seq;
    remove_seq(conn, rt, seq)
}

/// Drops messages past max_age or their TTL; true when anything changed.
pub(super) fn expire(conn: &Connection, rt: &mut StreamRt, now: i64) -> Result<bool, StoreError> {
    let mut changed = false;
    if rt.config.max_age > 0 {
        let cutoff = now - rt.config.max_age;
        while rt.msgs > 0 && rt.first_ts <= cutoff {
            changed |= remove_oldest(conn, rt)?;
        }
    }
    if rt.config.allow_msg_ttl {
        let seqs: Vec<i64> = conn
            .prepare_cached(
                "SELECT seq FROM messages WHERE stream_id = ?1 AND expires > 0 AND expires <= ?2",
            )?
            .query_map(params![rt.id, now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for seq in seqs {
            changed |= remove_seq(conn, rt, to_u64(seq))?;
        }
    }
    Ok(changed)
}

/// Discard-old limits and the per-subject limit, after a store or a config update.
pub(super) fn enforce_limits(
    conn: &Connection,
    rt: &mut StreamRt,
    subj: Option<&str>,
) -> Result<(), StoreError> {
    let mmp = rt.config.max_msgs_per_subject;
    if mmp > 0 {
        let subjects: Vec<String> = match subj {
            Some(s) => vec![s.to_string()],
            None => rt
                .subjects
                .iter()
                .filter(|(_, n)| **n > mmp as u64)
                .map(|(s, _)| s.clone())
                .collect(),
        };
        for s in subjects {
            while rt.subjects.get(&s).copied().unwrap_or(0) > mmp as u64 {
                let Some((seq, _)) = oldest_of_subject(conn, rt, &s)? else {
                    break;
                };
                remove_seq(conn, rt, seq)?;
            }
        }
    }
    if rt.config.discard == DiscardPolicy::Old {
        if rt.config.max_msgs > 0 {
            while rt.msgs > rt.config.max_msgs as u64 {
                if !remove_oldest(conn, rt)? {
                    break;
                }
            }
        }
        if rt.config.max_bytes > 0 {
            while rt.bytes > rt.config.max_bytes as u64 {
                if !remove_oldest(conn, rt)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Removes every message except `keep_seq` that matches `pattern` (rollups).
pub(super) fn remove_matching_except(
    conn: &Connection,
    rt: &mut StreamRt,
    pattern: Option<&str>,
    keep_seq: u64,
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = match pattern {
        Some(p) => conn
            .prepare_cached(
                "SELECT seq FROM messages WHERE stream_id = ?1 AND subject_hash = ?4 AND subject = ?2 AND seq <> ?3",
            )?
            .query_map(
                params![rt.id, p, to_i64(keep_seq), subject_hash(p)],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached("SELECT seq FROM messages WHERE stream_id = ?1 AND seq <> ?2")?
            .query_map(params![rt.id, to_i64(keep_seq)], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    for seq in seqs {
        remove_seq(conn, rt, to_u64(seq))?;
    }
    Ok(())
}

/// nats-server's `PurgeEx(subject, sequence, keep)` (memstore flavour).
pub(super) fn purge_ex(
    conn: &Connection,
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
            let purged = rt.msgs;
            conn.prepare_cached("DELETE FROM messages WHERE stream_id = ?1")?
                .execute(params![rt.id])?;
            rt.msgs = 0;
            rt.bytes = 0;
            rt.subjects.clear();
            rt.first_seq = rt.last_seq + 1;
            rt.first_ts = 0;
            return Ok(purged);
        }
        if seq > 1 {
            return compact(conn, rt, seq);
        }
        filter = ">";
    }
    let total: u64 = rt
        .subjects
        .iter()
        .filter(|(s, _)| pattern_matches(filter, s))
        .map(|(_, n)| *n)
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
    let candidates: Vec<(i64, String)> = if is_literal(filter) {
        conn.prepare_cached(
            "SELECT seq, subject FROM messages WHERE stream_id = ?1 AND subject_hash = ?4 AND subject = ?2 AND seq <= ?3 ORDER BY seq",
        )?
        .query_map(params![rt.id, filter, to_i64(upper), subject_hash(filter)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?
    } else {
        conn.prepare_cached(
            "SELECT seq, subject FROM messages WHERE stream_id = ?1 AND seq <= ?2 ORDER BY seq",
        )?
        .query_map(params![rt.id, to_i64(upper)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut purged = 0;
    for (s, subj) in candidates {
        if purged >= max_purge {
            break;
        }
        if pattern_matches(filter, &subj) && remove_seq(conn, rt, to_u64(s))? {
            purged += 1;
        }
    }
    Ok(purged)
}

/// nats-server's `Compact(seq)`: drop everything below `seq`; past the end, restart at `seq`.
pub(super) fn compact(conn: &Connection, rt: &mut StreamRt, seq: u64) -> Result<u64, StoreError> {
    if rt.msgs > 0 && rt.first_seq > seq {
        return Ok(0);
    }
    if seq <= rt.last_seq {
        let removed: Vec<(String, i64)> = conn
            .prepare_cached(
                "DELETE FROM messages WHERE stream_id = ?1 AND seq < ?2 RETURNING subject, stored",
            )?
            .query_map(params![rt.id, to_i64(seq)], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let purged = removed.len() as u64;
        for (subj, stored) in removed {
            rt.msgs = rt.msgs.saturating_sub(1);
            rt.bytes = rt.bytes.saturating_sub(to_u64(stored));
            if let Some(n) = rt.subjects.get_mut(&subj) {
                *n -= 1;
                if *n == 0 {
                    rt.subjects.remove(&subj);
                }
            }
        }
        refresh_first(conn, rt)?;
        Ok(purged)
    } else {
        let purged = rt.msgs;
        conn.prepare_cached("DELETE FROM messages WHERE stream_id = ?1")?
            .execute(params![rt.id])?;
        rt.msgs = 0;
        rt.bytes = 0;
        rt.subjects.clear();
        rt.first_seq = seq;
        rt.last_seq = seq - 1;
        rt.first_ts = 0;
        Ok(purged)
    }
}
