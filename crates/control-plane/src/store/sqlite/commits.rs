//! Owns: commits: a committed object's blocks sequenced (deduplication, discard policies,
//! rollups, per-message TTLs), each block stored as one row, and replaying a commit already
//! applied. Does not own: the commit rules that need no state (`store::commit`) or the block
//! rows' layout (`blocks`).
//!
//! Each message is still judged on its own and in order, as nats-server does, but in memory:
//! the only statements a commit runs per message are for messages that carry a `Nats-Msg-Id`
//! or a `Nats-TTL`. Everything else is per block (its row) or per distinct subject.

use std::borrow::Cow;

use infinistream_api::control_plane::entries::BlockEntry;
use infinistream_api::control_plane::model::{CommitBlock, CommitCheck, HeaderChecks};
use sha2::{Digest, Sha256};

use super::blocks::{Block, WorkingSet};
use super::limits::{enforce_limits, expire, persist_rt, remove_all_but};
use super::lookups::last_seq_for;
use super::rows::{to_i64, to_u64};
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

/// `Nats-Msg-Id` as stored: only equality matters, so a fixed-size digest, not the text.
pub(super) fn msg_id_digest(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes())[..16].to_vec()
}

/// One committed block in the form sequencing needs, from either wire form.
struct BlockInput<'a> {
    subjects: Vec<&'a str>,
    entries: Cow<'a, [BlockEntry]>,
    /// Ascending by index.
    checks: Cow<'a, [CommitCheck]>,
}

impl<'a> BlockInput<'a> {
    fn of(block: &'a CommitBlock) -> Result<Self, StoreError> {
        if let Some(summary) = &block.summary {
            if !block.messages.is_empty() || !summary.consistent() {
                return Err(ApiError::bad_request().into());
            }
            return Ok(Self {
                subjects: summary
                    .subjects
                    .iter()
                    .map(|s| s.subject.as_str())
                    .collect(),
                entries: Cow::Borrowed(&summary.entries.0),
                checks: Cow::Borrowed(&summary.checks),
            });
        }
        let mut subjects: Vec<&str> = Vec::new();
        let mut entries = Vec::with_capacity(block.messages.len());
        let mut checks = Vec::new();
        for (i, m) in block.messages.iter().enumerate() {
            let subject = match subjects.iter().position(|s| *s == m.subject) {
                Some(p) => p,
                None => {
                    subjects.push(&m.subject);
                    subjects.len() - 1
                }
            };
            entries.push(BlockEntry {
                subject: subject as u32,
                size: m.size,
                header_size: m.header_size.min(m.size),
                timestamp_nanos: m.timestamp_nanos,
            });
            let check = CommitCheck {
                index: i as u32,
                headers: m.headers.clone(),
            };
            if !check.headers.is_empty() {
                checks.push(check);
            }
        }
        Ok(Self {
            subjects,
            entries: Cow::Owned(entries),
            checks: Cow::Owned(checks),
        })
    }
}

/// One message being committed: where it goes and what it says.
struct Incoming<'a> {
    block: u64,
    subject: &'a str,
    entry: BlockEntry,
    check: Option<&'a CommitCheck>,
    wall_now: i64,
}

/// What the checks decided for a message that may be stored.
struct Accepted {
    stored: u64,
    ttl: Ttl,
    rollup: Option<Rollup>,
    msg_id: Option<String>,
}

/// Why a message gets no new sequence: a refusal, or a duplicate of the sequence stored before.
enum Refused {
    Error(ApiError),
    Duplicate(u64),
}

/// nats-server's checks, in its order (`processJetStreamMsg`); `Err` answers the publisher.
fn evaluate(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    m: &Incoming<'_>,
) -> Result<Result<Accepted, Refused>, StoreError> {
    let refuse = |e: ApiError| Ok(Err(Refused::Error(e)));
    let empty = HeaderChecks::default();
    let c = m.check.map_or(&empty, |c| &c.headers);
    if rt.config.sealed {
        return refuse(ApiError::stream_sealed());
    }
    if let Some(expected) = c.expected_stream.as_deref()
        && !expected.is_empty()
        && expected != rt.config.name
    {
        return refuse(ApiError::stream_not_match());
    }
    let ttl = Ttl::parse(c.ttl.as_deref());
    if ttl.raw_value() != 0 && !rt.config.allow_msg_ttl {
        return refuse(ApiError::message_ttl_disabled());
    }
    let subj_override = c
        .expected_last_subject_seq_subject
        .as_deref()
        .filter(|s| !s.is_empty());
    if let Some(expected) = c.expected_last_subject_seq {
        let seq_subj = subj_override.unwrap_or(m.subject);
        let found = last_seq_for(conn, ws, rt, seq_subj)?;
        if found != expected {
            return refuse(ApiError::wrong_last_sequence(found));
        }
    } else if subj_override.is_some() {
        return refuse(ApiError::expected_last_seq_per_subject_invalid());
    }
    if let Some(expected) = c.expected_last_seq
        && expected != rt.last_seq
    {
        return refuse(ApiError::wrong_last_sequence(rt.last_seq));
    }
    let msg_id = c.msg_id.as_deref().filter(|s| !s.is_empty());
    if let Some(id) = msg_id
        && rt.config.duplicate_window > 0
    {
        let found: Option<(i64, i64)> = conn
            .prepare_cached("SELECT seq, ts FROM dedupe WHERE stream_id = ?1 AND digest = ?2")?
            .query_row(params![rt.id, msg_id_digest(id)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        // nats-server forgets ids a window after they were stored (wall clock); a publish
        // stamped later than now counts from its own time.
        let now = m.wall_now.max(m.entry.timestamp_nanos);
        if let Some((seq, ts)) = found
            && now - ts < rt.config.duplicate_window
        {
            return Ok(Err(Refused::Duplicate(to_u64(seq))));
        }
    }
    if let Some(expected) = c.expected_last_msg_id.as_deref()
        && !expected.is_empty()
        && expected != rt.last_msg_id
    {
        return refuse(ApiError::wrong_last_msg_id(&rt.last_msg_id));
    }
    let rollup = match parse_rollup(c.rollup.as_deref(), &rt.config) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let size = u64::from(m.entry.size);
    let header_size = u64::from(m.entry.header_size.min(m.entry.size));
    if rt.config.max_msg_size >= 0 && size > rt.config.max_msg_size as u64 {
        return refuse(ApiError::message_exceeds_maximum());
    }
    if header_size > u64::from(u16::MAX) {
        return refuse(ApiError::header_exceeds_maximum());
    }
    let stored = file_store_msg_size(m.subject.len(), header_size, size - header_size);
    if rt.config.discard == DiscardPolicy::New {
        let subject_msgs = rt.subjects.get(m.subject).map_or(0, |s| s.count);
        let subject_first_size = if subject_msgs > 0 && rt.config.max_bytes > 0 {
            oldest_size(conn, ws, rt, m.subject)?
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
            return refuse(e);
        }
    }
    if ttl == Ttl::Invalid {
        return refuse(ApiError::message_ttl_invalid());
    }
    Ok(Ok(Accepted {
        stored,
        ttl,
        rollup,
        msg_id: msg_id.map(str::to_string),
    }))
}

/// Stored size of the oldest message on `subject` (0 when none).
fn oldest_size(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    subject: &str,
) -> Result<u64, StoreError> {
    let Some(seq) = subjects::first_of(conn, ws, rt, subject)? else {
        return Ok(0);
    };
    let Some(first) = ws.containing(conn, rt.id, seq)? else {
        return Ok(0);
    };
    Ok(ws
        .get(rt.id, first)
        .and_then(|b| b.index_of(seq).map(|i| b.stored_size(i)))
        .unwrap_or(0))
}

/// Judges one message and stores it when accepted; the answer for its publisher.
fn process_message(
    conn: &Connection,
    ws: &mut WorkingSet,
    rt: &mut StreamRt,
    m: &Incoming<'_>,
) -> Result<PubAckResponse, StoreError> {
    let verdict = evaluate(conn, ws, rt, m)?;
    let Some(block) = ws.get_mut(rt.id, m.block) else {
        return Err(StoreError::Invariant(
            "the committed block left the working set".into(),
        ));
    };
    let accepted = match verdict {
        Ok(a) => a,
        Err(refused) => {
            block.push(m.entry, false);
            return Ok(match refused {
                Refused::Error(e) => PubAckResponse::error(&rt.config.name, e),
                Refused::Duplicate(seq) => PubAckResponse::duplicate(&rt.config.name, seq),
            });
        }
    };
    let seq = block.push(m.entry, true).unwrap_or(0);
    if seq != rt.last_seq + 1 {
        return Err(StoreError::Invariant(format!(
            "block sequence {seq} does not follow {}",
            rt.last_seq
        )));
    }
    let ts = m.entry.timestamp_nanos;
    if rt.msgs == 0 {
        rt.first_seq = seq;
        rt.first_ts = ts;
    }
    rt.msgs += 1;
    rt.bytes += accepted.stored;
    rt.subject_stored(m.subject, seq);
    rt.last_seq = seq;
    rt.last_ts = ts;
    rt.last_msg_id = accepted.msg_id.clone().unwrap_or_default();
    if let Some(id) = accepted.msg_id.as_deref()
        && rt.config.duplicate_window > 0
    {
        conn.prepare_cached(
            "INSERT INTO dedupe (stream_id, digest, seq, ts) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(stream_id, digest) DO UPDATE SET seq = excluded.seq, ts = excluded.ts",
        )?
        .execute(params![rt.id, msg_id_digest(id), to_i64(seq), ts])?;
        rt.dedupe_oldest = Some(rt.dedupe_oldest.map_or(ts, |o| o.min(ts)));
    }
    if let Ttl::Seconds(s) = accepted.ttl {
        let expires = ts.saturating_add(s.saturating_mul(1_000_000_000));
        conn.prepare_cached("INSERT INTO expiries (stream_id, expires, seq) VALUES (?1, ?2, ?3)")?
            .execute(params![rt.id, expires, to_i64(seq)])?;
    }
    match accepted.rollup {
        Some(Rollup::Subject) => remove_all_but(conn, ws, rt, Some(m.subject), seq)?,
        Some(Rollup::All) => remove_all_but(conn, ws, rt, None, seq)?,
        None => {}
    }
    enforce_limits(conn, ws, rt, Some(m.subject))?;
    Ok(PubAckResponse::ack(&rt.config.name, seq))
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
        let inputs: Vec<BlockInput<'_>> = req
            .blocks
            .iter()
            .map(BlockInput::of)
            .collect::<Result<_, _>>()?;
        let conn = &self.conn;
        let ws = &mut self.work;
        let mut touched: Vec<&str> = Vec::new();
        let mut blocks = Vec::with_capacity(req.blocks.len());
        let wall_now = infinistream_api::jetstream::time::now_nanos();
        let mut now_max = wall_now;
        for (block, input) in req.blocks.iter().zip(&inputs) {
            let mut acks = Vec::with_capacity(input.entries.len());
            let Some(rt) = self.streams.get_mut(&block.stream) else {
                acks.resize(
                    input.entries.len(),
                    PubAckResponse::error(&block.stream, ApiError::stream_not_found()),
                );
                blocks.push(CommitBlockResult {
                    stream: block.stream.clone(),
                    acks,
                });
                continue;
            };
            if !touched.contains(&block.stream.as_str()) {
                touched.push(block.stream.as_str());
            }
            let first = rt.last_seq + 1;
            ws.insert(
                rt.id,
                Block::new(
                    first,
                    req.object_id,
                    &req.object_key,
                    block.block_offset,
                    block.block_len,
                    input.subjects.iter().map(|s| (*s).to_string()).collect(),
                ),
            );
            let mut checks = input.checks.iter().peekable();
            for (index, entry) in input.entries.iter().enumerate() {
                now_max = now_max.max(entry.timestamp_nanos);
                let check = checks.next_if(|c| c.index as usize == index);
                let m = Incoming {
                    block: first,
                    subject: input
                        .subjects
                        .get(entry.subject as usize)
                        .copied()
                        .unwrap_or(""),
                    entry: *entry,
                    check,
                    wall_now,
                };
                acks.push(process_message(conn, ws, rt, &m)?);
            }
            for subject in &input.subjects {
                if rt.subjects.contains_key(*subject) {
                    rt.mark_dirty(subject);
                }
            }
            blocks.push(CommitBlockResult {
                stream: block.stream.clone(),
                acks,
            });
        }
        for name in touched {
            if let Some(rt) = self.streams.get_mut(name) {
                if rt.needs_expiry() {
                    expire(conn, ws, rt, now_max)?;
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
