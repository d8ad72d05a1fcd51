//! Owns: commits: a committed object's messages sequenced into the index (deduplication, discard
//! policies, rollups, per-message TTLs), and replaying a commit already applied. Does not own: the
//! commit rules that need no state (`store::commit`).

use super::limits::{enforce_limits, expire, persist_rt, remove_matching_except};
use super::lookups::{last_seq_for, oldest_of_subject};
use super::rows::{subject_hash, to_i64, to_u64};
use super::*;

pub(super) fn commit(
    store: &mut SqliteStore,
    request: &CommitRequest,
) -> Result<CommitResponse, StoreError> {
    if let Some(response) = store.replay(request.object_id)? {
        return Ok(response);
    }
    store.in_tx(|s| s.commit_inner(request))
}
pub(super) fn commit_many(
    store: &mut SqliteStore,
    requests: &[CommitRequest],
) -> Result<Vec<CommitResponse>, StoreError> {
    store.in_tx(|s| {
        requests
            .iter()
            .map(|request| match s.replay(request.object_id)? {
                Some(response) => Ok(response),
                None => s.commit_inner(request),
            })
            .collect()
    })
}
pub(super) fn dedupe_oldest(conn: &Connection, stream_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(ts) FROM dedupe WHERE stream_id = ?1")?
        .query_row(params![stream_id], |r| r.get(0))?)
}

/// Where a message sits in the committed object, and the commit's wall clock.
pub(super) struct MsgPlace {
    pub(super) object_id: u64,
    pub(super) block_offset: u64,
    pub(super) block_len: u64,
    pub(super) index: usize,
    pub(super) wall_now: i64,
}

/// Evaluates one published message in nats-server's order and stores it when accepted. The
/// outer error is a storage failure (aborts the commit); the inner one the publisher's PubAck.
pub(super) fn process_message(
    conn: &Connection,
    rt: &mut StreamRt,
    at: &MsgPlace,
    m: &infinistream_api::control_plane::model::CommitMessage,
) -> Result<Result<PubAckResponse, ApiError>, StoreError> {
    let wall_now = at.wall_now;
    let cfg = &rt.config;
    let name = cfg.name.clone();
    if cfg.sealed {
        return Ok(Err(ApiError::stream_sealed()));
    }
    if let Some(expected) = m.expected_stream.as_deref()
        && !expected.is_empty()
        && expected != name
    {
        return Ok(Err(ApiError::stream_not_match()));
    }
    let ttl = Ttl::parse(m.ttl.as_deref());
    if ttl.raw_value() != 0 && !cfg.allow_msg_ttl {
        return Ok(Err(ApiError::message_ttl_disabled()));
    }
    let subj_override = m
        .expected_last_subject_seq_subject
        .as_deref()
        .filter(|s| !s.is_empty());
    if let Some(expected) = m.expected_last_subject_seq {
        let seq_subj = subj_override.unwrap_or(&m.subject);
        let found = last_seq_for(conn, rt, seq_subj)?;
        if found != expected {
            return Ok(Err(ApiError::wrong_last_sequence(found)));
        }
    } else if subj_override.is_some() {
        return Ok(Err(ApiError::expected_last_seq_per_subject_invalid()));
    }
    if let Some(expected) = m.expected_last_seq
        && expected != rt.last_seq
    {
        return Ok(Err(ApiError::wrong_last_sequence(rt.last_seq)));
    }
    let msg_id = m.msg_id.as_deref().filter(|s| !s.is_empty());
    if let Some(id) = msg_id
        && rt.config.duplicate_window > 0
    {
        let found: Option<(i64, i64)> = conn
            .prepare_cached("SELECT seq, ts FROM dedupe WHERE stream_id = ?1 AND msg_id = ?2")?
            .query_row(params![rt.id, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        // nats-server forgets ids a window after they were stored (wall clock); a publish
        // stamped later than now counts from its own time.
        let now = wall_now.max(m.timestamp_nanos);
        if let Some((seq, ts)) = found
            && now - ts < rt.config.duplicate_window
        {
            return Ok(Ok(PubAckResponse::duplicate(&name, to_u64(seq))));
        }
    }
    if let Some(expected) = m.expected_last_msg_id.as_deref()
        && !expected.is_empty()
        && expected != rt.last_msg_id
    {
        return Ok(Err(ApiError::wrong_last_msg_id(&rt.last_msg_id)));
    }
    let rollup = match parse_rollup(m.rollup.as_deref(), &rt.config) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let size = u64::from(m.size);
    let header_size = u64::from(m.header_size.min(m.size));
    if rt.config.max_msg_size >= 0 && size > rt.config.max_msg_size as u64 {
        return Ok(Err(ApiError::message_exceeds_maximum()));
    }
    if header_size > u64::from(u16::MAX) {
        return Ok(Err(ApiError::header_exceeds_maximum()));
    }
    let stored = file_store_msg_size(m.subject.len(), header_size, size - header_size);
    if rt.config.discard == DiscardPolicy::New {
        let subject_msgs = rt.subjects.get(&m.subject).copied().unwrap_or(0);
        let subject_first_size = if subject_msgs > 0 && rt.config.max_bytes > 0 {
            oldest_of_subject(conn, rt, &m.subject)?.map_or(0, |(_, s)| s)
        } else {
            0
        };
        let check = DiscardNewCheck {
            msgs: rt.msgs,
            bytes: rt.bytes,
            subject_msgs,
            subject_first_size,
            new_size: stored,
            has_rollup: rollup.is_some(),
        };
        if let Some(e) = discard_new_refusal(&rt.config, &check) {
            return Ok(Err(e));
        }
    }
    if ttl == Ttl::Invalid {
        return Ok(Err(ApiError::message_ttl_invalid()));
    }

    let seq = rt.last_seq + 1;
    let expires = match ttl {
        Ttl::Seconds(s) => m
            .timestamp_nanos
            .saturating_add(s.saturating_mul(1_000_000_000)),
        _ => 0,
    };
    conn.prepare_cached(
        "INSERT INTO messages (stream_id, seq, subject, ts, object_id, block_offset, block_len, idx, size, header_size, stored, expires, subject_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        rt.id,
        to_i64(seq),
        m.subject,
        m.timestamp_nanos,
        to_i64(at.object_id),
        to_i64(at.block_offset),
        to_i64(at.block_len),
        at.index as i64,
        i64::from(m.size),
        to_i64(header_size),
        to_i64(stored),
        expires,
        subject_hash(&m.subject),
    ])?;
    if rt.msgs == 0 {
        rt.first_seq = seq;
        rt.first_ts = m.timestamp_nanos;
    }
    rt.msgs += 1;
    rt.bytes += stored;
    *rt.subjects.entry(m.subject.clone()).or_insert(0) += 1;
    rt.last_seq = seq;
    rt.last_ts = m.timestamp_nanos;
    rt.last_msg_id = msg_id.unwrap_or_default().to_string();
    if let Some(id) = msg_id
        && rt.config.duplicate_window > 0
    {
        conn.prepare_cached(
            "INSERT INTO dedupe (stream_id, msg_id, seq, ts) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(stream_id, msg_id) DO UPDATE SET seq = excluded.seq, ts = excluded.ts",
        )?
        .execute(params![rt.id, id, to_i64(seq), m.timestamp_nanos])?;
        rt.dedupe_oldest = Some(
            rt.dedupe_oldest
                .map_or(m.timestamp_nanos, |o| o.min(m.timestamp_nanos)),
        );
    }
    match rollup {
        Some(Rollup::Subject) => remove_matching_except(conn, rt, Some(&m.subject), seq)?,
        Some(Rollup::All) => remove_matching_except(conn, rt, None, seq)?,
        None => {}
    }
    enforce_limits(conn, rt, Some(&m.subject))?;
    Ok(Ok(PubAckResponse::ack(&name, seq)))
}

impl SqliteStore {
    /// The stored answer of an object committed before (retries are safe).
    pub(super) fn replay(&self, object_id: u64) -> Result<Option<CommitResponse>, StoreError> {
        let json: Option<String> = self
            .conn
            .prepare_cached("SELECT response FROM objects WHERE object_id = ?1")?
            .query_row(params![to_i64(object_id)], |r| r.get(0))
            .optional()?;
        let Some(json) = json else {
            return Ok(None);
        };
        let mut response: CommitResponse = serde_json::from_str(&json)?;
        response.replayed = true;
        Ok(Some(response))
    }

    pub(super) fn commit_inner(
        &mut self,
        req: &CommitRequest,
    ) -> Result<CommitResponse, StoreError> {
        let conn = &self.conn;
        let mut touched: Vec<&str> = Vec::new();
        let mut touched_set: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut blocks = Vec::with_capacity(req.blocks.len());
        let wall_now = infinistream_api::jetstream::time::now_nanos();
        let mut now_max = wall_now;
        for block in &req.blocks {
            let mut acks = Vec::with_capacity(block.messages.len());
            let Some(rt) = self.streams.get_mut(&block.stream) else {
                for _ in &block.messages {
                    acks.push(PubAckResponse::error(
                        &block.stream,
                        ApiError::stream_not_found(),
                    ));
                }
                blocks.push(CommitBlockResult {
                    stream: block.stream.clone(),
                    acks,
                });
                continue;
            };
            if touched_set.insert(block.stream.as_str()) {
                touched.push(block.stream.as_str());
            }
            for (index, m) in block.messages.iter().enumerate() {
                now_max = now_max.max(m.timestamp_nanos);
                let at = MsgPlace {
                    object_id: req.object_id,
                    block_offset: block.block_offset,
                    block_len: block.block_len,
                    index,
                    wall_now,
                };
                let ack = match process_message(conn, rt, &at, m)? {
                    Ok(ack) => ack,
                    Err(e) => PubAckResponse::error(&rt.config.name, e),
                };
                acks.push(ack);
            }
            blocks.push(CommitBlockResult {
                stream: block.stream.clone(),
                acks,
            });
        }
        for name in touched {
            if let Some(rt) = self.streams.get_mut(name) {
                if rt.needs_expiry() {
                    expire(conn, rt, now_max)?;
                }
                // Wall clock only: one agent's skewed timestamps must not drop others' ids.
                let cutoff = wall_now - rt.config.duplicate_window;
                if rt.dedupe_oldest.is_some_and(|oldest| oldest <= cutoff) {
                    conn.prepare_cached("DELETE FROM dedupe WHERE stream_id = ?1 AND ts <= ?2")?
                        .execute(params![rt.id, cutoff])?;
                    rt.dedupe_oldest = dedupe_oldest(conn, rt.id)?;
                }
                persist_rt(conn, rt)?;
            }
        }
        let response = CommitResponse {
            object_id: req.object_id,
            replayed: false,
            blocks,
        };
        conn.prepare_cached(
            "INSERT INTO objects (object_id, object_key, object_size, agent_id, committed_at, response) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            to_i64(req.object_id),
            req.object_key,
            to_i64(req.object_size),
            req.agent_id,
            infinistream_api::jetstream::time::now_nanos(),
            serde_json::to_string(&response)?,
        ])?;
        Ok(response)
    }
}
