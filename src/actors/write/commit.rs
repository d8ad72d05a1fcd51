//! The SequenceClient: the write path's conversation with the control plane.
//!
//! Owns: object ids (prefetched), commits with retries until a deadline, and orphan records
//! (retried until the control plane takes them). Also the pure pieces of answering publishers
//! (`commit_request`, `check_shape`, `answer_publishers`, `fail_publishers`), which the
//! `SequenceSupervisor` uses. Does not own: seal order or which publishers are waiting (the
//! `SequenceSupervisor` keeps those, so they survive a restart of this actor), objects' bytes, or
//! the window (the `Flusher`).
//!
//! Invariant: a publisher is acked only from a successful commit response of an object whose
//! upload succeeded. Any failure answers every publisher of that object with a JetStream error.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use crate::actors::messages::{Publish, PublishBatch};
use crate::actors::ops::metrics;
use crate::actors::write::error::WriteError;
use crate::actors::write::messages::StreamBatch;
use crate::control_plane::client::{ControlPlaneClient, CpError};
use crate::format::BlockRef;
use crate::message::NatsMsg;
use crate::protocol::headers::find_header;
use infinistream_api::control_plane::entries::{BlockEntry, Entries};
use infinistream_api::control_plane::model::{
    BlockSummary, CommitBlock, CommitCheck, CommitManyRequest, CommitRequest, CommitResponse,
    HeaderChecks, OrphanRequest,
};
use infinistream_api::jetstream::{ApiError, PubAckResponse};

/// Supervisor -> sequence client: commit consecutive objects in one transaction (retrying until
/// `deadline`); one answer per object, in order. Commits are idempotent per object id, so the
/// supervisor may send the same request again to a restarted instance.
#[derive(Message)]
#[rtype(result = "Result<Vec<CommitResponse>, WriteError>")]
pub struct Commit {
    pub request: CommitManyRequest,
    pub deadline: Instant,
}

/// Supervisor -> sequence client: record an uploaded object that no commit refers to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordOrphan(pub OrphanRequest);

/// Test hook: stop (`panic: false`) or panic the actor, to exercise supervision. Built only
/// for tests (`cfg(test)`, or the `test-hooks` feature the integration tests turn on).
#[cfg(any(test, feature = "test-hooks"))]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash {
    pub panic: bool,
}

/// What the Flusher talks to: a `SequenceClient` or its supervisor.
#[derive(Clone)]
pub struct SequencerHandle {
    pub sealed: Recipient<Sealed>,
    pub ids: Recipient<NextObjectId>,
}

impl<A> From<Addr<A>> for SequencerHandle
where
    A: Actor + Handler<Sealed> + Handler<NextObjectId>,
    A::Context: actix::dev::ToEnvelope<A, Sealed> + actix::dev::ToEnvelope<A, NextObjectId>,
{
    fn from(addr: Addr<A>) -> Self {
        Self {
            sealed: addr.clone().recipient(),
            ids: addr.recipient(),
        }
    }
}

/// Flusher -> sequence client: an object id for the object about to be built.
#[derive(Message)]
#[rtype(result = "Result<u64, WriteError>")]
pub struct NextObjectId;

/// An object that is in the bucket, waiting for its commit.
#[derive(Debug, Clone)]
pub struct SealedObject {
    pub object_id: u64,
    pub key: String,
    pub size: u64,
    /// One per batch, in the same order.
    pub blocks: Vec<BlockRef>,
}

/// Flusher -> sequence client: seal `seal_no` is uploaded (or failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Sealed {
    pub seal_no: u64,
    pub batches: Vec<StreamBatch>,
    pub object: Result<SealedObject, WriteError>,
}

/// Sequence client -> optional observer: an object was committed and its publishers acked.
/// Sent after the acks, once per successful commit; failed commits are not reported.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct Committed {
    pub object_key: String,
    /// The streams with messages in the object, in block order.
    pub streams: Vec<String>,
    /// Messages in the object (duplicates and refused publishes included).
    pub messages: usize,
}

impl Committed {
    pub fn of(object_key: &str, batches: &[StreamBatch]) -> Self {
        Self {
            object_key: object_key.to_string(),
            streams: batches.iter().map(|b| b.stream.clone()).collect(),
            messages: batches.iter().map(|b| b.pending.len()).sum(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SequenceSettings {
    pub agent_id: String,
    /// How long a commit may take, retries included.
    pub commit_deadline: Duration,
    pub id_prefetch: u32,
}

pub struct SequenceClient {
    settings: SequenceSettings,
    /// Built on this actor's arbiter (the HTTP client is not `Send`).
    client: Rc<ControlPlaneClient>,
    ids: VecDeque<u64>,
    /// Orphan records the control plane has not accepted yet.
    orphans: VecDeque<OrphanRequest>,
    recording_orphans: bool,
}

impl SequenceClient {
    pub fn new(settings: SequenceSettings, client: ControlPlaneClient) -> Self {
        Self {
            settings,
            client: Rc::new(client),
            ids: VecDeque::new(),
            orphans: VecDeque::new(),
            recording_orphans: false,
        }
    }

    /// An object in the bucket that no commit refers to: recorded so it can be cleaned up. The
    /// control plane is often what just failed, so records that do not go through are kept
    /// (bounded) and retried by the orphan timer.
    fn record_orphan(&mut self, ctx: &mut Context<Self>, object_key: String, reason: String) {
        if self.orphans.len() >= MAX_PENDING_ORPHANS {
            tracing::error!(object_key = %object_key, "too many unrecorded orphaned objects; dropping the record");
            return;
        }
        self.orphans.push_back(OrphanRequest { object_key, reason });
        self.flush_orphans(ctx);
    }

    fn flush_orphans(&mut self, ctx: &mut Context<Self>) {
        if self.recording_orphans || self.orphans.is_empty() {
            return;
        }
        self.recording_orphans = true;
        let batch: Vec<OrphanRequest> = self.orphans.drain(..).collect();
        let client = self.client.clone();
        ctx.spawn(
            async move {
                let mut failed = Vec::new();
                for req in batch {
                    if let Err(e) = client.record_orphan(&req).await {
                        tracing::warn!(object_key = %req.object_key, error = %e, "recording an orphaned object failed, will retry");
                        failed.push(req);
                    }
                }
                failed
            }
            .into_actor(self)
            .map(|failed, act, _| {
                act.recording_orphans = false;
                for req in failed.into_iter().rev() {
                    act.orphans.push_front(req);
                }
            }),
        );
    }
}

/// Unrecorded orphan records kept for retry; past this the oldest news is the least useful.
const MAX_PENDING_ORPHANS: usize = 10_000;
const ORPHAN_RETRY: Duration = Duration::from_secs(1);
/// Answers every publisher of a committed object from its commit response (which must have
/// passed [`check_shape`]); stored messages also go to core subscribers.
pub fn answer_publishers(
    router: &Recipient<PublishBatch>,
    batches: Vec<StreamBatch>,
    response: CommitResponse,
) {
    let mut out = Vec::with_capacity(2 * batches.iter().map(|b| b.pending.len()).sum::<usize>());
    for (batch, result) in batches.into_iter().zip(response.blocks) {
        let plain = PlainAcks::new(&result.stream);
        for (pending, ack) in batch.pending.into_iter().zip(result.acks) {
            let stored = !ack.is_error() && !is_duplicate(&ack);
            if ack.is_error() {
                metrics::JS_PUBLISH_ERRORS.inc();
            }
            if stored {
                // Core subscribers see a stream's messages once they are stored.
                out.push(Publish {
                    origin: pending.origin,
                    msg: pending.msg.clone(),
                    original: false,
                    permit: None,
                });
            }
            if let Some(reply) = reply_to(&pending.msg, plain.encode(&ack)) {
                out.push(reply);
            }
            metrics::PUBLISH_ACK_LATENCY.observe(pending.received.elapsed().as_secs_f64());
            pending
                .span
                .in_scope(|| tracing::debug!(stream = %result.stream, ack = ?ack, "publish acked"));
            // Dropping `pending` returns its share of the in-flight budget.
        }
    }
    if !out.is_empty() {
        router.do_send(PublishBatch(out));
    }
}

/// Answers every publisher of an object that was not committed with a JetStream error.
pub fn fail_publishers(
    router: &Recipient<PublishBatch>,
    batches: Vec<StreamBatch>,
    error: &WriteError,
) {
    // Publishers read what failed and a reference; where (bucket endpoint, object key,
    // control-plane URL) is only in this log line, under the same reference.
    let reference = crate::logging::reference();
    let full = error.to_string();
    tracing::warn!(reference = %reference, error = %full, streams = batches.len(), "publishes answered with an error");
    let error = format!("{} (ref {reference})", error.public());
    let mut out = Vec::new();
    for batch in batches {
        let ack = PubAckResponse::error(&batch.stream, ApiError::stream_store_failed(&error));
        let payload = Bytes::from(ack.to_nats_bytes());
        for pending in batch.pending {
            metrics::JS_PUBLISH_ERRORS.inc();
            pending
                .span
                .in_scope(|| tracing::debug!(stream = %batch.stream, %error, "publish failed"));
            out.extend(reply_to(&pending.msg, payload.clone()));
        }
    }
    if !out.is_empty() {
        router.do_send(PublishBatch(out));
    }
}

fn reply_to(msg: &NatsMsg, payload: Bytes) -> Option<Publish> {
    msg.reply.as_ref().map(|reply| Publish {
        origin: None,
        msg: NatsMsg {
            subject: reply.clone(),
            reply: None,
            headers: None,
            payload,
        },
        original: false,
        permit: None,
    })
}

/// Encodes a block's acks; plain ones (this stream, no domain, not duplicates) from a prefix
/// built once, byte for byte what `PubAckResponse::to_nats_bytes` writes.
struct PlainAcks<'a> {
    stream: &'a str,
    prefix: Vec<u8>,
}

impl<'a> PlainAcks<'a> {
    fn new(stream: &'a str) -> Self {
        let prefix = match PubAckResponse::ack(stream, 0)
            .to_nats_bytes()
            .strip_suffix(b"0}")
        {
            Some(p) => p.to_vec(),
            None => Vec::new(),
        };
        Self { stream, prefix }
    }

    fn encode(&self, ack: &PubAckResponse) -> Bytes {
        match ack.plain_seq(self.stream) {
            Some(seq) if !self.prefix.is_empty() => {
                use std::io::Write as _;
                let mut out = Vec::with_capacity(self.prefix.len() + 21);
                out.extend_from_slice(&self.prefix);
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{seq}}}");
                Bytes::from(out)
            }
            _ => Bytes::from(ack.to_nats_bytes()),
        }
    }
}

fn is_duplicate(ack: &PubAckResponse) -> bool {
    matches!(ack, PubAckResponse::Ack(a) if a.duplicate)
}

/// Never answer publishers from a response that does not line up with what we sent.
pub fn check_shape(
    response: CommitResponse,
    batches: &[StreamBatch],
) -> Result<CommitResponse, WriteError> {
    let fits = response.blocks.len() == batches.len()
        && response
            .blocks
            .iter()
            .zip(batches)
            .all(|(r, b)| r.acks.len() == b.pending.len() && r.stream == b.stream);
    if fits {
        Ok(response)
    } else {
        Err(WriteError::CommitShape)
    }
}

fn header_str(headers: Option<&Bytes>, name: &str) -> Option<String> {
    headers
        .and_then(|h| find_header(h, name))
        .map(str::to_string)
}

fn header_u64(headers: Option<&Bytes>, name: &str) -> Option<u64> {
    headers
        .and_then(|h| find_header(h, name))
        // nats-server reads an unparsable number as -1, which never matches.
        .map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX))
}

/// The headers the control plane checks, or None when the message carries none of them.
fn commit_check(index: usize, headers: Option<&Bytes>) -> Option<CommitCheck> {
    let h = headers?;
    let headers = HeaderChecks {
        msg_id: header_str(Some(h), "Nats-Msg-Id"),
        expected_stream: header_str(Some(h), "Nats-Expected-Stream"),
        expected_last_seq: header_u64(Some(h), "Nats-Expected-Last-Sequence"),
        expected_last_subject_seq: header_u64(Some(h), "Nats-Expected-Last-Subject-Sequence"),
        expected_last_subject_seq_subject: header_str(
            Some(h),
            "Nats-Expected-Last-Subject-Sequence-Subject",
        ),
        expected_last_msg_id: header_str(Some(h), "Nats-Expected-Last-Msg-Id"),
        rollup: header_str(Some(h), "Nats-Rollup"),
        ttl: header_str(Some(h), "Nats-TTL"),
    };
    (!headers.is_empty()).then_some(CommitCheck {
        index: index as u32,
        headers,
    })
}

/// The commit of one object: per stream block its summary (totals, each distinct subject once,
/// the per-message columns in compact form) and header checks only where a message has one.
pub fn commit_request(
    agent_id: &str,
    object: &SealedObject,
    batches: &[StreamBatch],
) -> CommitRequest {
    let blocks = batches
        .iter()
        .zip(&object.blocks)
        .map(|(batch, block)| {
            let entries = batch
                .pending
                .iter()
                .map(|p| {
                    let header_size = p.meta.headers_len.unwrap_or(0);
                    BlockEntry {
                        subject: p.meta.subject,
                        size: (header_size + p.meta.payload_len) as u32,
                        header_size: header_size as u32,
                        timestamp_nanos: p.meta.timestamp_nanos,
                    }
                })
                .collect();
            let checks = batch
                .pending
                .iter()
                .enumerate()
                .filter_map(|(i, p)| commit_check(i, p.msg.headers.as_ref()))
                .collect();
            let subjects: Vec<&str> = batch.subjects.iter().map(|s| &**s).collect();
            CommitBlock {
                stream: batch.stream.clone(),
                block_offset: block.offset,
                block_len: block.len,
                messages: Vec::new(),
                summary: Some(BlockSummary::new(&subjects, Entries(entries), checks)),
            }
        })
        .collect();
    CommitRequest {
        agent_id: agent_id.to_string(),
        object_id: object.object_id,
        object_key: object.key.clone(),
        object_size: object.size,
        blocks,
    }
}

/// Transport failures and server errors may succeed on a retry; refusals will not.
fn retryable(e: &CpError) -> bool {
    match e {
        CpError::Timeout | CpError::Connect(_) | CpError::Send(_) | CpError::Body(_) => true,
        CpError::Http { status, .. } => *status >= 500,
        CpError::Unauthorized(_) | CpError::Decode(_) | CpError::Encode(_) => false,
    }
}

/// Commits are idempotent per object id, so a timed-out attempt can be retried safely.
async fn commit_with_retry(
    client: &ControlPlaneClient,
    request: &CommitManyRequest,
    deadline: Instant,
) -> Result<Vec<CommitResponse>, WriteError> {
    let mut backoff = Duration::from_millis(25);
    loop {
        match client.commit_many(request).await {
            Ok(r) if r.len() == request.commits.len() => return Ok(r),
            Ok(_) => {
                return Err(WriteError::CommitShape);
            }
            Err(e) => {
                if !retryable(&e) || Instant::now() + backoff >= deadline {
                    return Err(WriteError::commit(e.into()));
                }
                tracing::debug!(error = %e, "commit attempt failed, retrying");
                actix_rt::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

impl Actor for SequenceClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(ORPHAN_RETRY, |act, ctx| act.flush_orphans(ctx));
    }
}

impl Handler<NextObjectId> for SequenceClient {
    type Result = ResponseActFuture<Self, Result<u64, WriteError>>;

    fn handle(&mut self, _: NextObjectId, _: &mut Self::Context) -> Self::Result {
        if let Some(id) = self.ids.pop_front() {
            return Box::pin(fut::ready(Ok(id)));
        }
        let client = self.client.clone();
        let count = self.settings.id_prefetch.max(1);
        Box::pin(
            async move { client.object_ids(count).await }
                .into_actor(self)
                .map(|res, act, _| match res {
                    Ok(mut ids) if !ids.is_empty() => {
                        let first = ids.remove(0);
                        act.ids.extend(ids);
                        Ok(first)
                    }
                    Ok(_) => Err(WriteError::NoObjectIds),
                    Err(e) => Err(e.into()),
                }),
        )
    }
}

impl Handler<Commit> for SequenceClient {
    type Result = ResponseFuture<Result<Vec<CommitResponse>, WriteError>>;

    fn handle(&mut self, m: Commit, _: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move { commit_with_retry(&client, &m.request, m.deadline).await })
    }
}

impl Handler<RecordOrphan> for SequenceClient {
    type Result = ();

    fn handle(&mut self, m: RecordOrphan, ctx: &mut Self::Context) {
        self.record_orphan(ctx, m.0.object_key, m.0.reason);
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<Crash> for SequenceClient {
    type Result = ();

    fn handle(&mut self, m: Crash, ctx: &mut Self::Context) {
        if m.panic {
            panic!("sequence client crash requested (test hook)");
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ack_fast_path_writes_what_nats_server_writes() {
        for stream in ["orders", "we\"ird\\name", "ünï"] {
            let plain = PlainAcks::new(stream);
            let acks = [
                PubAckResponse::ack(stream, 1),
                PubAckResponse::ack(stream, u64::MAX),
                PubAckResponse::duplicate(stream, 7),
                PubAckResponse::ack("other", 3),
                PubAckResponse::error(stream, ApiError::stream_not_found()),
            ];
            for ack in &acks {
                assert_eq!(plain.encode(ack).as_ref(), ack.to_nats_bytes().as_slice());
            }
        }
    }
}
