//! Owns: lookups over a stream's blocks and subjects: the last or next sequence of a subject or
//! pattern, a message's location, scans by sequence, the interior deletes. Does not own:
//! changing anything (`limits`, `commits`).

use super::blocks::WorkingSet;
use super::rows::{is_literal, pattern_matches};
use super::*;

/// The last sequence stored on a subject pattern (0 when none). Stored subjects are literals,
/// whatever tokens they hold: `PUB a.>` is stored under the subject `a.>`, so a pattern is
/// first taken as that literal.
pub(super) fn last_seq_for(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    pattern: &str,
) -> Result<u64, StoreError> {
    if is_literal(pattern) {
        return subjects::last_of(conn, ws, rt, pattern);
    }
    let matching: Vec<String> = rt
        .subjects
        .keys()
        .filter(|s| pattern_matches(pattern, s))
        .cloned()
        .collect();
    let mut best = 0;
    for subj in matching {
        best = best.max(subjects::last_of(conn, ws, rt, &subj)?);
    }
    Ok(best)
}

/// The first sequence >= `from` on a subject pattern.
pub(super) fn next_seq_for(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    pattern: &str,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    if is_literal(pattern) {
        let Some(first) = subjects::first_of(conn, ws, rt, pattern)? else {
            return Ok(None);
        };
        if from <= first {
            return Ok(Some(first));
        }
        return subjects::next_on_subject(conn, ws, rt, pattern, from);
    }
    let filters = [pattern.to_string()];
    Ok(scan_locations(conn, ws, rt, from, &filters, 1)?
        .first()
        .map(|l| l.seq))
}

/// Where the live message `seq` is, None when it is not stored.
pub(super) fn location_of(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    seq: u64,
) -> Result<Option<MessageLocation>, StoreError> {
    let Some(first) = ws.containing(conn, rt.id, seq)? else {
        return Ok(None);
    };
    let Some(block) = ws.get(rt.id, first) else {
        return Ok(None);
    };
    let Some(index) = block.index_of(seq) else {
        return Ok(None);
    };
    if block.state[index] != blocks::EntryState::Live {
        return Ok(None);
    }
    Ok(Some(block.location(&rt.config.name, index, seq)))
}

/// The sequences a scan for `filters` must cover: from the earliest first to the latest last
/// of the matching subjects (None when no subject matches).
fn bounds(rt: &StreamRt, filters: &[String]) -> Option<(u64, u64)> {
    if filters.is_empty() || filters.iter().any(|f| f == ">") {
        return (rt.msgs > 0).then_some((rt.first_seq, rt.last_seq));
    }
    let mut out: Option<(u64, u64)> = None;
    for (s, st) in &rt.subjects {
        if filters.iter().any(|f| pattern_matches(f, s)) {
            out = Some(match out {
                Some((lo, hi)) => (lo.min(st.first), hi.max(st.last)),
                None => (st.first, st.last),
            });
        }
    }
    out
}

/// Whether a stored subject is one `filters` (empty: all) ask for.
fn wanted(filters: &[String], subject: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| pattern_matches(f, subject))
}

/// Up to `limit` locations with `seq >= from` matching `filters`, in order.
pub(super) fn scan_locations(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    from: u64,
    filters: &[String],
    limit: usize,
) -> Result<Vec<MessageLocation>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 || rt.msgs == 0 || from > rt.last_seq {
        return Ok(out);
    }
    let Some((lo, hi)) = bounds(rt, filters) else {
        return Ok(out);
    };
    let name = &rt.config.name;
    ws.walk(
        conn,
        rt.id,
        from.max(lo),
        hi,
        false,
        |s| wanted(filters, s),
        |block, i, seq| {
            out.push(block.location(name, i, seq));
            out.len() < limit
        },
    )?;
    Ok(out)
}

/// How many live messages from `from` on match `filters`, by walking the blocks. Empties `ws`
/// as it goes: for reads only, never inside a transaction.
pub(super) fn count_matching(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
    from: u64,
    filters: &[String],
) -> Result<u64, StoreError> {
    let Some((lo, hi)) = bounds(rt, filters) else {
        return Ok(0);
    };
    let mut total = 0;
    ws.walk(
        conn,
        rt.id,
        from.max(lo),
        hi,
        true,
        |s| wanted(filters, s),
        |_, _, _| {
            total += 1;
            true
        },
    )?;
    Ok(total)
}

/// The interior deleted sequences between the stream's first and last: the gaps between live
/// messages. Empties `ws` as it goes, as `count_matching`.
pub(super) fn deleted_seqs(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &StreamRt,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    if rt.msgs == 0 {
        return Ok(out);
    }
    let mut expect = rt.first_seq;
    ws.walk(
        conn,
        rt.id,
        rt.first_seq,
        rt.last_seq,
        true,
        |_| true,
        |_, _, seq| {
            out.extend(expect..seq);
            expect = seq + 1;
            true
        },
    )?;
    out.extend(expect..=rt.last_seq);
    Ok(out)
}
