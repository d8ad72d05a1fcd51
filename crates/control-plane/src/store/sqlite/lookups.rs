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
    let all = filters.is_empty() || filters.iter().any(|f| f == ">");
    let Some((lo, hi)) = bounds(rt, filters) else {
        return Ok(out);
    };
    let from = from.max(lo);
    let mut key = ws.first_from(conn, rt.id, from)?;
    while let Some(first) = key {
        if first > hi {
            break;
        }
        let Some(block) = ws.get(rt.id, first) else {
            break;
        };
        let matches = (!all).then(|| block.matching_subjects(filters));
        for (i, seq) in block.live_from(from) {
            if seq > hi {
                return Ok(out);
            }
            let wanted = matches.as_ref().is_none_or(|m| {
                m.get(block.entries[i].subject as usize)
                    .copied()
                    .unwrap_or(false)
            });
            if wanted {
                out.push(block.location(&rt.config.name, i, seq));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        key = ws.next_after(conn, rt.id, first)?;
    }
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
    let from = from.max(lo);
    let mut total = 0;
    let mut key = ws.first_from(conn, rt.id, from)?;
    while let Some(first) = key {
        if first > hi {
            break;
        }
        // Decoded one at a time: a count over a long backlog must not hold it in memory.
        let Some(block) = ws.get(rt.id, first) else {
            break;
        };
        let matches = block.matching_subjects(filters);
        total += block
            .live_from(from)
            .filter(|(i, seq)| {
                *seq <= hi
                    && matches
                        .get(block.entries[*i].subject as usize)
                        .copied()
                        .unwrap_or(false)
            })
            .count() as u64;
        ws.clear();
        key = ws.next_after(conn, rt.id, first)?;
    }
    Ok(total)
}

/// The interior deleted sequences between the stream's first and last. Empties `ws` as it
/// goes, as `count_matching`.
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
    let mut key = ws.first_from(conn, rt.id, expect)?;
    while let Some(first) = key {
        let Some(block) = ws.get(rt.id, first) else {
            break;
        };
        for (_, seq) in block.live_from(expect) {
            out.extend(expect..seq);
            expect = seq + 1;
        }
        ws.clear();
        key = ws.next_after(conn, rt.id, first)?;
    }
    out.extend(expect..=rt.last_seq);
    Ok(out)
}
