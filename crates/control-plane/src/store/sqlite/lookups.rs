//! Owns: lookups in the message index: the last or next sequence of a subject or pattern, a
//! message's location, scans by sequence. Does not own: changing the index (`limits`, `commits`).

use super::rows::{is_literal, pattern_matches, subject_hash, to_i64, to_u64};
use super::*;

/// Above this many matching subjects a wildcard lookup scans by sequence instead.
pub(super) const PER_SUBJECT_LOOKUP_MAX: usize = 64;

pub(super) fn oldest_of_subject(
    conn: &Connection,
    rt: &StreamRt,
    subj: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, stored FROM messages WHERE stream_id = ?1 AND subject_hash = ?3 AND subject = ?2 ORDER BY seq LIMIT 1",
        )?
        .query_row(params![rt.id, subj, subject_hash(subj)], |r| {
            Ok((to_u64(r.get(0)?), to_u64(r.get(1)?)))
        })
        .optional()?)
}

/// The last sequence stored on exactly `subject`, taken as a literal even when it has wildcard
/// tokens: nats-server stores `PUB a.>` under the subject `a.>` (0 when none).
pub(super) fn last_seq_of_subject(
    conn: &Connection,
    rt: &StreamRt,
    subject: &str,
) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq FROM messages WHERE stream_id = ?1 AND subject_hash = ?3 AND subject = ?2 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![rt.id, subject, subject_hash(subject)], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(to_u64)
        .unwrap_or(0))
}

/// The last sequence stored on a subject pattern (0 when none).
pub(super) fn last_seq_for(
    conn: &Connection,
    rt: &StreamRt,
    pattern: &str,
) -> Result<u64, StoreError> {
    if is_literal(pattern) {
        return last_seq_of_subject(conn, rt, pattern);
    }
    let matching: Vec<&String> = rt
        .subjects
        .keys()
        .filter(|s| pattern_matches(pattern, s))
        .collect();
    if matching.len() > PER_SUBJECT_LOOKUP_MAX {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, subject FROM messages WHERE stream_id = ?1 ORDER BY seq DESC",
        )?;
        let mut rows = stmt.query(params![rt.id])?;
        while let Some(r) = rows.next()? {
            let subj: String = r.get(1)?;
            if pattern_matches(pattern, &subj) {
                return Ok(to_u64(r.get(0)?));
            }
        }
        return Ok(0);
    }
    let mut best = 0;
    // Stored subjects are literals, whatever tokens they hold: never read them as patterns.
    for subj in matching {
        best = best.max(last_seq_of_subject(conn, rt, subj)?);
    }
    Ok(best)
}

/// The first sequence >= `from` stored on exactly `subject` (a literal, as above).
pub(super) fn next_seq_of_subject(
    conn: &Connection,
    rt: &StreamRt,
    subject: &str,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq FROM messages WHERE stream_id = ?1 AND subject_hash = ?4 AND subject = ?2 AND seq >= ?3 ORDER BY seq LIMIT 1",
        )?
        .query_row(params![rt.id, subject, to_i64(from), subject_hash(subject)], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(to_u64))
}

/// The first sequence >= `from` on a subject pattern.
pub(super) fn next_seq_for(
    conn: &Connection,
    rt: &StreamRt,
    pattern: &str,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    if is_literal(pattern) {
        return next_seq_of_subject(conn, rt, pattern, from);
    }
    let matching: Vec<&String> = rt
        .subjects
        .keys()
        .filter(|s| pattern_matches(pattern, s))
        .collect();
    if matching.is_empty() {
        return Ok(None);
    }
    if matching.len() > PER_SUBJECT_LOOKUP_MAX {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, subject FROM messages WHERE stream_id = ?1 AND seq >= ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![rt.id, to_i64(from)])?;
        while let Some(r) = rows.next()? {
            let subj: String = r.get(1)?;
            if pattern_matches(pattern, &subj) {
                return Ok(Some(to_u64(r.get(0)?)));
            }
        }
        return Ok(None);
    }
    let mut best: Option<u64> = None;
    // Stored subjects are literals, whatever tokens they hold: never read them as patterns.
    for subj in matching {
        if let Some(seq) = next_seq_of_subject(conn, rt, subj, from)? {
            best = Some(best.map_or(seq, |b| b.min(seq)));
        }
    }
    Ok(best)
}

pub(super) fn location_row(
    conn: &Connection,
    rt: &StreamRt,
    seq: u64,
) -> Result<Option<MessageLocation>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT m.seq, m.subject, m.ts, m.object_id, o.object_key, m.block_offset, m.block_len, m.idx, m.size, m.header_size \
             FROM messages m JOIN objects o ON o.object_id = m.object_id WHERE m.stream_id = ?1 AND m.seq = ?2",
        )?
        .query_row(params![rt.id, to_i64(seq)], |r| {
            Ok(MessageLocation {
                stream: rt.config.name.clone(),
                seq: to_u64(r.get(0)?),
                subject: r.get(1)?,
                timestamp_nanos: r.get(2)?,
                object_id: to_u64(r.get(3)?),
                object_key: r.get(4)?,
                block_offset: to_u64(r.get(5)?),
                block_len: to_u64(r.get(6)?),
                index: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
                size: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
                header_size: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
            })
        })
        .optional()?)
}

pub(super) const LOCATION_COLUMNS: &str = "m.seq, m.subject, m.ts, m.object_id, o.object_key, m.block_offset, m.block_len, m.idx, m.size, m.header_size";

/// Up to `limit` locations with `seq >= from` matching `filters`, in order.
pub(super) fn scan_locations(
    conn: &Connection,
    rt: &StreamRt,
    from: u64,
    filters: &[String],
    limit: usize,
) -> Result<Vec<MessageLocation>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 || rt.msgs == 0 || from > rt.last_seq {
        return Ok(out);
    }
    let all = filters.is_empty() || filters.iter().any(|f| f == ">");
    let literal = (filters.len() == 1 && is_literal(&filters[0])).then(|| filters[0].as_str());
    let chunk = limit.clamp(64, 1024);
    let mut next = from;
    loop {
        let rows: Vec<MessageLocation> = if let Some(subj) = literal {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOCATION_COLUMNS} FROM messages m JOIN objects o ON o.object_id = m.object_id \
                 WHERE m.stream_id = ?1 AND m.subject_hash = ?5 AND m.subject = ?2 AND m.seq >= ?3 ORDER BY m.seq LIMIT ?4"
            ))?;
            stmt.query_map(
                params![
                    rt.id,
                    subj,
                    to_i64(next),
                    to_i64(limit as u64),
                    subject_hash(subj)
                ],
                |r| location_from_row(rt, r),
            )?
            .collect::<Result<_, _>>()?
        } else {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOCATION_COLUMNS} FROM messages m JOIN objects o ON o.object_id = m.object_id \
                 WHERE m.stream_id = ?1 AND m.seq >= ?2 ORDER BY m.seq LIMIT ?3"
            ))?;
            stmt.query_map(params![rt.id, to_i64(next), to_i64(chunk as u64)], |r| {
                location_from_row(rt, r)
            })?
            .collect::<Result<_, _>>()?
        };
        let n = rows.len();
        for loc in rows {
            next = loc.seq + 1;
            if all || literal.is_some() || filters.iter().any(|f| pattern_matches(f, &loc.subject))
            {
                out.push(loc);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        if literal.is_some() || n < chunk {
            return Ok(out);
        }
    }
}

pub(super) fn location_from_row(
    rt: &StreamRt,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<MessageLocation> {
    Ok(MessageLocation {
        stream: rt.config.name.clone(),
        seq: to_u64(r.get(0)?),
        subject: r.get(1)?,
        timestamp_nanos: r.get(2)?,
        object_id: to_u64(r.get(3)?),
        object_key: r.get(4)?,
        block_offset: to_u64(r.get(5)?),
        block_len: to_u64(r.get(6)?),
        index: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
        size: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
        header_size: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
    })
}
