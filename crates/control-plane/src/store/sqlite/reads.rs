//! Owns: reads for agents and consumers: locate, scan, counts, time lookups, last per subject.
//! Does not own: what readers do with a location. Reads between transactions use the store's
//! working set (clean blocks, kept for later reads) and settle it afterwards, so nothing a read
//! may have changed in a block outlives it.

use super::blocks::{WorkingSet, first_block_since, live_from_block};
use super::lookups::{count_matching, last_seq_for, location_of, next_seq_for, scan_locations};
use super::rows::pattern_matches;
use super::*;

fn expire_if_needed(store: &mut SqliteStore, stream: &str) -> Result<(), StoreError> {
    if store.rt(stream)?.needs_expiry() {
        store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    }
    Ok(())
}

pub(super) fn locate(
    store: &mut SqliteStore,
    stream: &str,
    request: &LocateRequest,
) -> Result<MessageLocation, StoreError> {
    expire_if_needed(store, stream)?;
    let found = with_work(store, stream, |conn, ws, rt| {
        locate_in(conn, ws, rt, request)
    });
    store.work.settle();
    found
}

/// The clean working set, the connection and the stream, borrowed together.
fn with_work<T>(
    store: &mut SqliteStore,
    stream: &str,
    f: impl FnOnce(&Connection, &mut WorkingSet, &mut StreamRt) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let SqliteStore {
        conn,
        work,
        streams,
        ..
    } = store;
    let rt = streams
        .get_mut(stream)
        .ok_or_else(ApiError::stream_not_found)?;
    f(conn, work, rt)
}

fn locate_in(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    request: &LocateRequest,
) -> Result<MessageLocation, StoreError> {
    let seq = if let Some(subj) = request.last_by_subj.as_deref().filter(|s| !s.is_empty()) {
        match last_seq_for(conn, ws, rt, subj)? {
            0 => None,
            s => Some(s),
        }
    } else if let Some(subj) = request.next_by_subj.as_deref().filter(|s| !s.is_empty()) {
        next_seq_for(conn, ws, rt, subj, request.seq.max(1))?
    } else if request.seq > 0 {
        Some(request.seq)
    } else {
        return Err(ApiError::bad_request().into());
    };
    let Some(seq) = seq else {
        return Err(ApiError::no_message_found().into());
    };
    location_of(conn, ws, rt, seq)?.ok_or_else(|| ApiError::no_message_found().into())
}

pub(super) fn scan(
    store: &mut SqliteStore,
    stream: &str,
    from: u64,
    filters: &[String],
    limit: usize,
) -> Result<Vec<MessageLocation>, StoreError> {
    expire_if_needed(store, stream)?;
    let found = with_work(store, stream, |conn, ws, rt| {
        scan_locations(conn, ws, rt, from.max(1), filters, limit)
    });
    store.work.settle();
    found
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
    if from <= rt.first_seq {
        if all {
            return Ok(rt.msgs);
        }
        return Ok(rt
            .subjects
            .iter()
            .filter(|(s, _)| filters.iter().any(|f| pattern_matches(f, s)))
            .map(|(_, st)| st.count)
            .sum());
    }
    let dense = rt.last_seq + 1 - rt.first_seq == rt.msgs;
    if all && dense {
        return Ok(rt.last_seq + 1 - from);
    }
    let mut ws = WorkingSet::default();
    if all {
        // The block holding `from`, counted entry by entry, and every later one by its row.
        let head = match ws.containing(&store.conn, rt.id, from)? {
            Some(first) => ws
                .get(rt.id, first)
                .map_or(0, |b| b.live_from(from).count() as u64),
            None => 0,
        };
        return Ok(head + live_from_block(&store.conn, rt.id, from + 1)?);
    }
    count_matching(&store.conn, &mut ws, rt, from, filters)
}

pub(super) fn seq_at_time(
    store: &mut SqliteStore,
    stream: &str,
    ts: i64,
) -> Result<Option<u64>, StoreError> {
    let rt = store.rt(stream)?;
    let mut ws = WorkingSet::default();
    let mut after = 0;
    while let Some(first) = first_block_since(&store.conn, rt.id, ts, after)? {
        ws.clear();
        if let Some(key) = ws.containing(&store.conn, rt.id, first)?
            && let Some(block) = ws.get(rt.id, key)
            && let Some((_, seq)) = block
                .live_from(0)
                .find(|(i, _)| block.entries[*i].timestamp_nanos >= ts)
        {
            return Ok(Some(seq));
        }
        after = first;
    }
    Ok(None)
}

pub(super) fn last_per_subject(
    store: &mut SqliteStore,
    stream: &str,
    filters: &[String],
) -> Result<Vec<u64>, StoreError> {
    let conn = &store.conn;
    let rt = store
        .streams
        .get_mut(stream)
        .ok_or_else(ApiError::stream_not_found)?;
    let subjects: Vec<String> = rt
        .subjects
        .keys()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| pattern_matches(f, s)))
        .cloned()
        .collect();
    let mut ws = WorkingSet::default();
    let mut seqs = Vec::with_capacity(subjects.len());
    for subj in subjects {
        let seq = subjects::last_of(conn, &mut ws, rt, &subj)?;
        if seq > 0 {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}
