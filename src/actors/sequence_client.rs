//! The SequenceClient: commits sealed objects to the control plane, in seal order, and answers
//! their publishers.
//!
//! Owns: the control-plane conversation of the write path (object ids, commits, orphan records),
//! the seal-order reordering buffer, and turning each commit result into the publisher's PubAck,
//! plus delivering stored messages to core subscribers. Does not own: objects' bytes (gone to the
//! bucket before it sees them) or the window (the `Flusher`).
//!
//! Invariant: a publisher is acked only from a successful commit response of an object whose
//! upload succeeded. Any failure answers every publisher of that object with a JetStream error.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use crate::actors::batcher::StreamBatch;
use crate::actors::router::{NatsMsg, Publish, Router};
use crate::control_plane::client::{ControlPlaneClient, CpError};
use crate::control_plane::model::{
    CommitBlock, CommitMessage, CommitRequest, CommitResponse, OrphanRequest,
};
use crate::format::BlockRef;
use crate::jetstream::{ApiError, PubAckResponse};
use crate::metrics;
use crate::protocol::headers::find_header;

/// Supervisor -> sequence client: commit one object (retrying until `deadline`). Commits are
/// idempotent per object id, so the supervisor may send the same request again to a restarted
/// instance.
#[derive(Message)]
#[rtype(result = "Result<CommitResponse, String>")]
pub struct Commit {
    pub request: CommitRequest,
    pub deadline: Instant,
}

/// Supervisor -> sequence client: record an uploaded object that no commit refers to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordOrphan(pub OrphanRequest);

/// Test hook: stop (`panic: false`) or panic the actor, to exercise supervision.
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
#[rtype(result = "Result<u64, String>")]
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
    pub object: Result<SealedObject, String>,
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
    router: Addr<Router>,
    next_commit: u64,
    ready: BTreeMap<u64, Sealed>,
    committing: bool,
    ids: VecDeque<u64>,
}

impl SequenceClient {
    pub fn new(
        settings: SequenceSettings,
        client: ControlPlaneClient,
        router: Addr<Router>,
    ) -> Self {
        Self {
            settings,
            client: Rc::new(client),
            router,
            next_commit: 0,
            ready: BTreeMap::new(),
            committing: false,
            ids: VecDeque::new(),
        }
    }

    /// Commits the next seal in order, if it has arrived and nothing is being committed.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while !self.committing {
            let Some(sealed) = self.ready.remove(&self.next_commit) else {
                return;
            };
            let object = match &sealed.object {
                Ok(o) => o.clone(),
                Err(e) => {
                    let e = e.clone();
                    self.fail_all(sealed.batches, &e);
                    self.next_commit += 1;
                    continue;
                }
            };
            let request = commit_request(&self.settings.agent_id, &object, &sealed.batches);
            self.committing = true;
            let client = self.client.clone();
            let deadline = Instant::now() + self.settings.commit_deadline;
            let started = Instant::now();
            ctx.spawn(
                async move { commit_with_retry(&client, &request, deadline).await }
                    .into_actor(self)
                    .map(move |result, act, ctx| {
                        let elapsed = started.elapsed().as_secs_f64();
                        metrics::FLUSH_STAGE
                            .with_label_values(&["commit"])
                            .observe(elapsed);
                        match result.and_then(|r| check_shape(r, &sealed.batches)) {
                            Ok(response) => {
                                metrics::CONTROL_PLANE_OPS
                                    .with_label_values(&["commit", "ok"])
                                    .observe(elapsed);
                                act.answer(sealed.batches, response);
                            }
                            Err(e) => {
                                metrics::CONTROL_PLANE_OPS
                                    .with_label_values(&["commit", "error"])
                                    .observe(elapsed);
                                tracing::warn!(object_key = %object.key, error = %e, "commit failed; answering publishers with errors");
                                act.record_orphan(ctx, object.key.clone(), e.clone());
                                act.fail_all(sealed.batches, &e);
                            }
                        }
                        act.committing = false;
                        act.next_commit += 1;
                        act.pump(ctx);
                    }),
            );
        }
    }

    fn answer(&self, batches: Vec<StreamBatch>, response: CommitResponse) {
        answer_publishers(&self.router, batches, response);
    }

    fn fail_all(&self, batches: Vec<StreamBatch>, error: &str) {
        fail_publishers(&self.router, batches, error);
    }

    /// An object in the bucket that no commit refers to: recorded so it can be cleaned up.
    fn record_orphan(&self, ctx: &mut Context<Self>, object_key: String, reason: String) {
        let client = self.client.clone();
        ctx.spawn(
            async move {
                let req = OrphanRequest {
                    object_key: object_key.clone(),
                    reason,
                };
                if let Err(e) = client.record_orphan(&req).await {
                    tracing::warn!(object_key = %object_key, error = %e, "recording an orphaned object failed");
                }
            }
            .into_actor(self),
        );
    }
}

/// Answers every publisher of a committed object from its commit response (which must have
/// passed [`check_shape`]); stored messages also go to core subscribers.
pub fn answer_publishers(
    router: &Addr<Router>,
    batches: Vec<StreamBatch>,
    response: CommitResponse,
) {
    for (batch, result) in batches.into_iter().zip(response.blocks) {
        for (pending, ack) in batch.pending.into_iter().zip(result.acks) {
            let stored = !ack.is_error() && !is_duplicate(&ack);
            if ack.is_error() {
                metrics::JS_PUBLISH_ERRORS.inc();
            }
            if stored {
                // Core subscribers see a stream's messages once they are stored.
                router.do_send(Publish {
                    origin: pending.origin,
                    msg: pending.msg.clone(),
                    capture: false,
                    permit: None,
                });
            }
            reply(router, &pending.msg, &ack);
            metrics::PUBLISH_ACK_LATENCY.observe(pending.received.elapsed().as_secs_f64());
            // Dropping `pending` returns its share of the in-flight budget.
        }
    }
}

/// Answers every publisher of an object that was not committed with a JetStream error.
pub fn fail_publishers(router: &Addr<Router>, batches: Vec<StreamBatch>, error: &str) {
    for batch in batches {
        let ack = PubAckResponse::error(&batch.stream, ApiError::stream_store_failed(error));
        for pending in batch.pending {
            metrics::JS_PUBLISH_ERRORS.inc();
            reply(router, &pending.msg, &ack);
        }
    }
}

fn reply(router: &Addr<Router>, msg: &NatsMsg, ack: &PubAckResponse) {
    if let Some(reply) = &msg.reply {
        router.do_send(Publish {
            origin: None,
            msg: NatsMsg {
                subject: reply.clone(),
                reply: None,
                headers: None,
                payload: Bytes::from(ack.to_nats_bytes()),
            },
            capture: false,
            permit: None,
        });
    }
}

fn is_duplicate(ack: &PubAckResponse) -> bool {
    matches!(ack, PubAckResponse::Ack(a) if a.duplicate)
}

/// Never answer publishers from a response that does not line up with what we sent.
pub fn check_shape(
    response: CommitResponse,
    batches: &[StreamBatch],
) -> Result<CommitResponse, String> {
    let fits = response.blocks.len() == batches.len()
        && response
            .blocks
            .iter()
            .zip(batches)
            .all(|(r, b)| r.acks.len() == b.pending.len() && r.stream == b.stream);
    if fits {
        Ok(response)
    } else {
        Err("control plane answered a commit with a mismatched shape".to_string())
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

pub fn commit_request(
    agent_id: &str,
    object: &SealedObject,
    batches: &[StreamBatch],
) -> CommitRequest {
    let blocks = batches
        .iter()
        .zip(&object.blocks)
        .map(|(batch, block)| CommitBlock {
            stream: batch.stream.clone(),
            block_offset: block.offset,
            block_len: block.len,
            messages: batch
                .pending
                .iter()
                .map(|p| {
                    let h = p.msg.headers.as_ref();
                    let header_size = h.map_or(0, |h| h.len());
                    CommitMessage {
                        subject: p.msg.subject.to_string(),
                        size: (header_size + p.msg.payload.len()) as u32,
                        header_size: header_size as u32,
                        timestamp_nanos: p.timestamp_nanos,
                        msg_id: header_str(h, "Nats-Msg-Id"),
                        expected_stream: header_str(h, "Nats-Expected-Stream"),
                        expected_last_seq: header_u64(h, "Nats-Expected-Last-Sequence"),
                        expected_last_subject_seq: header_u64(
                            h,
                            "Nats-Expected-Last-Subject-Sequence",
                        ),
                        expected_last_subject_seq_subject: header_str(
                            h,
                            "Nats-Expected-Last-Subject-Sequence-Subject",
                        ),
                        expected_last_msg_id: header_str(h, "Nats-Expected-Last-Msg-Id"),
                        rollup: header_str(h, "Nats-Rollup"),
                        ttl: header_str(h, "Nats-TTL"),
                    }
                })
                .collect(),
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
    request: &CommitRequest,
    deadline: Instant,
) -> Result<CommitResponse, String> {
    let mut backoff = Duration::from_millis(25);
    loop {
        match client.commit(request).await {
            Ok(r) => return Ok(r),
            Err(e) => {
                if !retryable(&e) || Instant::now() + backoff >= deadline {
                    return Err(format!("commit failed: {e}"));
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
}

impl Handler<Sealed> for SequenceClient {
    type Result = ();

    fn handle(&mut self, m: Sealed, ctx: &mut Self::Context) {
        self.ready.insert(m.seal_no, m);
        self.pump(ctx);
    }
}

impl Handler<NextObjectId> for SequenceClient {
    type Result = ResponseActFuture<Self, Result<u64, String>>;

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
                    Ok(_) => Err("control plane handed out no object ids".to_string()),
                    Err(e) => Err(e.to_string()),
                }),
        )
    }
}

impl Handler<Commit> for SequenceClient {
    type Result = ResponseFuture<Result<CommitResponse, String>>;

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

impl Handler<Crash> for SequenceClient {
    type Result = ();

    fn handle(&mut self, m: Crash, ctx: &mut Self::Context) {
        if m.panic {
            panic!("sequence client crash requested (test hook)");
        }
        ctx.stop();
    }
}
