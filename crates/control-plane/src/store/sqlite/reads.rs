//! Owns: reads of the message index for agents and consumers: locate, scan, counts, time lookups,
//! last per subject. Does not own: what readers do with a location.

use super::lookups::{last_seq_for, location_row, next_seq_for, scan_locations};
use super::rows::{pattern_matches, subject_hash, to_i64, to_u64};
use super::*;

pub(super) fn locate(
    store: &mut SqliteStore,
    stream: &str,
    request: &LocateRequest,
) -> Result<MessageLocation, StoreError> {
    let needs_expiry = store.rt(stream)?.needs_expiry();
    if needs_expiry {
        store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    }
    let rt = store.rt(stream)?;
    let seq = if let Some(subj) = request.last_by_subj.as_deref().filter(|s| !s.is_empty()) {
        match last_seq_for(&store.conn, rt, subj)? {
            0 => None,
            s => Some(s),
        }
    } else if let Some(subj) = request.next_by_subj.as_deref().filter(|s| !s.is_empty()) {
        next_seq_for(&store.conn, rt, subj, request.seq.max(1))?
    } else if request.seq > 0 {
        Some(request.seq)
    } else {
        return Err(ApiError::bad_request().into());
    };
    let Some(seq) = seq else {
        return Err(ApiError::no_message_found().into());
    };
    location_row(&store.conn, rt, seq)?.ok_or_else(|| ApiError::no_message_found().into())
}
pub(super) fn scan(
    store: &mut SqliteStore,
    stream: &str,
    from: u64,
    filters: &[String],
    limit: usize,
) -> Result<Vec<MessageLocation>, StoreError> {
    if store.rt(stream)?.needs_expiry() {
        store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    }
    let rt = store.rt(stream)?;
    scan_locations(&store.conn, rt, from.max(1), filters, limit)
}
pub(super) fn count_from(
    store: &mut SqliteStore,
    stream: &str,
    from: u64,
    filters: &[String],
) -> Result<u64, StoreError> {
    let rt = store.rt(stream)?;
    let from = from.max(rt.first_seq).max(1);
    if rt.msgs == 0 || from > rt.last_seq {
        return Ok(0);
    }
    let all = filters.is_empty() || filters.iter().any(|f| f == ">");
    let dense = rt.last_seq + 1 - rt.first_seq == rt.msgs;
    if all && dense {
        return Ok(rt.last_seq + 1 - from);
    }
    if all {
        return Ok(to_u64(
            store
                .conn
                .prepare_cached("SELECT count(*) FROM messages WHERE stream_id = ?1 AND seq >= ?2")?
                .query_row(params![rt.id, to_i64(from)], |r| r.get(0))?,
        ));
    }
    let subjects: Vec<&String> = rt
        .subjects
        .keys()
        .filter(|s| filters.iter().any(|f| pattern_matches(f, s)))
        .collect();
    let mut total = 0;
    let mut stmt = store.conn.prepare_cached(
        "SELECT count(*) FROM messages WHERE stream_id = ?1 AND subject_hash = ?4 AND subject = ?2 AND seq >= ?3",
    )?;
    for subj in subjects {
        let n: i64 = stmt.query_row(
            params![rt.id, subj, to_i64(from), subject_hash(subj)],
            |r| r.get(0),
        )?;
        total += to_u64(n);
    }
    Ok(total)
}
pub(super) fn seq_at_time(
    store: &mut SqliteStore,
    stream: &str,
    ts: i64,
) -> Result<Option<u64>, StoreError> {
    let rt = store.rt(stream)?;
    Ok(store
        .conn
        .prepare_cached(
            "SELECT seq FROM messages WHERE stream_id = ?1 AND ts >= ?2 ORDER BY seq LIMIT 1",
        )?
        .query_row(params![rt.id, ts], |r| r.get::<_, i64>(0))
        .optional()?
        .map(to_u64))
}
pub(super) fn last_per_subject(
    store: &mut SqliteStore,
    stream: &str,
    filters: &[String],
) -> Result<Vec<u64>, StoreError> {
    let rt = store.rt(stream)?;
    let subjects: Vec<String> = rt
        .subjects
        .keys()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| pattern_matches(f, s)))
        .cloned()
        .collect();
    let mut seqs = Vec::with_capacity(subjects.len());
    for subj in subjects {
        let seq = last_seq_for(&store.conn, rt, &subj)?;
        if seq > 0 {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}
