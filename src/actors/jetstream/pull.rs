//! The agent side of JetStream consumers: pull requests and acks.
//!
//! Owns: the waiting pull requests of this agent (`$JS.API.CONSUMER.MSG.NEXT.>`), their expiry
//! (408), heartbeats (100), no-wait answers (404) and refusals (409), when they claim (at once,
//! when the event feed says their stream or consumer changed, when a redelivery falls due, or
//! every tick while the feed is down), reading claimed messages
//! from the bucket and delivering them with their ack subjects, and batching `$JS.ACK.>` messages
//! to the control plane (answering AckSync requests once it confirmed). Does not own: consumer
//! configs or delivery state (the control plane's, so any agent can serve any consumer).

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use futures::future::join_all;

use crate::actors::ingress::router::{
    DeliverTo, HasInterest, InterestIn, InternalMsg, NatsMsg, Router, SubscribeInternal,
};
use crate::actors::jetstream::wake::{Key, Waitable, to_claim};
use crate::actors::messages::{FeedUp, Publish, Wake};
use crate::actors::read::block::ReadError;
use crate::actors::read::{BlockLocation, ReadSource, Reader};
use crate::control_plane::client::ControlPlaneClient;
use crate::protocol::headers::{Headers, status_only};
use infinistream_api::control_plane::consumers::{
    AckBatch, AckEntry, AckKind, ClaimRequest, ClaimResponse, Delivery, WaitingCount, WaitingReport,
};
use infinistream_api::jetstream::consumer::{AckSubject, PullLimits, PullRequest, ack_subject};

const NEXT_PREFIX: &str = "$JS.API.CONSUMER.MSG.NEXT.";
/// How often waiting requests are expired and heartbeated, and, while the control plane's
/// event feed is down, poll it for new messages (with the feed up they claim when it says
/// something changed, or when the control plane said a redelivery falls due).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Waiting counts are sent again this often while requests wait: they keep ephemeral consumers
/// alive at the control plane (`consumers::WAITING_FRESH` there), as claims did when they polled.
const WAITING_REFRESH: Duration = Duration::from_secs(10);
/// After a failed claim, the next one (the event feed may not say anything soon).
const CLAIM_RETRY: Duration = Duration::from_millis(500);
/// How often buffered acks are sent.
const ACK_FLUSH: Duration = Duration::from_millis(10);
const ACK_BATCH_MAX: usize = 1000;

struct Waiting {
    /// Unique within this agent, to find the request again after an asynchronous check.
    id: u64,
    reply: ByteString,
    /// The request as sent, until the control plane checked it against the consumer's limits.
    unchecked: Option<PullRequest>,
    /// Acks received before this request (ids below this) apply before it claims anything.
    acks_before: u64,
    remaining: u64,
    /// Bytes the request still accepts; None = no limit.
    bytes_left: Option<u64>,
    expires: Option<Instant>,
    no_wait: bool,
    heartbeat: Option<Duration>,
    last_sent: Instant,
}

#[derive(Default)]
struct Waiters {
    queue: VecDeque<Waiting>,
    claiming: bool,
    max_waiting: Option<i64>,
    /// The consumer's pull limits as of the last claim.
    limits: Option<PullLimits>,
    /// (consumer, stream) sequence last delivered, for idle heartbeats.
    last: (u64, u64),
    /// The waiting count the control plane last heard (CONSUMER.INFO `num_waiting`).
    reported: u64,
    /// A wake arrived while a claim was under way (that claim may have looked too early).
    woken: bool,
    /// Claim again at this time although nothing woke it (a redelivery falls due, a retry).
    due: Option<Instant>,
    /// The consumer's filter subjects as of the last claim (None before the first).
    filters: Option<Vec<String>>,
}

impl Waitable for Waiters {
    fn waits(&self) -> bool {
        !self.queue.is_empty()
    }
    fn claiming(&self) -> bool {
        self.claiming
    }
    fn wake_after_claim(&mut self) {
        self.woken = true;
    }
    fn filters(&self) -> Option<&[String]> {
        self.filters.as_deref()
    }
}

/// A buffered ack and who waits for its confirmation.
struct PendingAck {
    /// Arrival order: a pull request waits for the acks that arrived before it.
    id: u64,
    entry: AckEntry,
    reply: Option<ByteString>,
    /// `+NXT`: a pull request to start once the ack is applied.
    next: Option<(ByteString, PullRequest)>,
}

pub struct ConsumerManager {
    client: Rc<ControlPlaneClient>,
    router: Addr<Router>,
    reader: Reader,
    waiters: HashMap<Key, Waiters>,
    /// Consumers a claim succeeded for (a missing one is then "deleted", not unknown).
    known: HashSet<Key>,
    acks: Vec<PendingAck>,
    acks_in_flight: bool,
    /// Id of the next ack received.
    next_ack_id: u64,
    /// Every ack with a smaller id has been applied by the control plane (acks are flushed in
    /// arrival order, one flush at a time, failed ones retried first).
    acks_applied_below: u64,
    next_request_id: u64,
    /// An interest check of the waiting requests is under way (one at a time).
    checking_interest: bool,
    /// The control plane's event feed runs: waiting requests claim when woken, not every tick.
    feed_up: bool,
    last_waiting_refresh: Instant,
}

impl ConsumerManager {
    pub fn new(
        client: ControlPlaneClient,
        router: Addr<Router>,
        reader: impl Into<Reader>,
    ) -> Self {
        Self {
            client: Rc::new(client),
            router,
            reader: reader.into(),
            waiters: HashMap::new(),
            known: HashSet::new(),
            acks: Vec::new(),
            acks_in_flight: false,
            next_ack_id: 0,
            acks_applied_below: 0,
            next_request_id: 0,
            checking_interest: false,
            feed_up: false,
            last_waiting_refresh: Instant::now(),
        }
    }

    fn status(&self, to: &ByteString, code: u16, description: &str) {
        send_headers(&self.router, to, status_only(code, Some(description)));
    }

    fn add_request(
        &mut self,
        key: Key,
        reply: ByteString,
        req: PullRequest,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let w = self.waiters.entry(key.clone()).or_default();
        if let Some(refused) = w.limits.and_then(|l| l.refusal(&req)) {
            self.status(&reply, 409, &refused);
            return;
        }
        let max_waiting = w
            .max_waiting
            .unwrap_or(infinistream_api::jetstream::consumer::DEFAULT_MAX_WAITING);
        if i64::try_from(w.queue.len()).unwrap_or(i64::MAX) >= max_waiting {
            self.status(&reply, 409, "Exceeded MaxWaiting");
            return;
        }
        let expires = (req.expires > 0)
            .then(|| now + Duration::from_nanos(u64::try_from(req.expires).unwrap_or(0)));
        let acks_before = self.next_ack_id;
        let id = self.next_request_id;
        self.next_request_id += 1;
        w.queue.push_back(Waiting {
            id,
            reply,
            unchecked: Some(req.clone()),
            acks_before,
            remaining: u64::try_from(req.batch.max(1)).unwrap_or(1),
            bytes_left: u64::try_from(req.max_bytes).ok().filter(|b| *b > 0),
            // A no-wait request without expiry is answered by the first claim.
            expires,
            no_wait: req.no_wait,
            heartbeat: (req.idle_heartbeat > 0)
                .then(|| Duration::from_nanos(u64::try_from(req.idle_heartbeat).unwrap_or(0))),
            last_sent: now,
        });
        self.pump(key, ctx);
    }

    /// Claims for the oldest waiting request of `key` unless a claim is already under way.
    fn pump(&mut self, key: Key, ctx: &mut Context<Self>) {
        let Some(w) = self.waiters.get_mut(&key) else {
            return;
        };
        if w.claiming {
            return;
        }
        // A client's acks (a NAK above all) apply before its next pull, as in nats-server: a
        // request claims only once every ack received before it is applied; the flush's
        // completion pumps it again. Acks received after it do not hold it back (under steady
        // consumption they never stop arriving).
        let needs_acks = w
            .queue
            .front()
            .is_some_and(|r| r.acks_before > self.acks_applied_below);
        if needs_acks && (self.acks_in_flight || self.acks.len() > ACK_BATCH_MAX) {
            // A flush under way (its completion pumps again), or more acks than one claim
            // should carry: flush first.
            self.flush_acks(ctx);
            return;
        }
        // A request about to expire gets no messages: its client may be gone when they arrive,
        // and they would then wait out ack_wait.
        let soon = Instant::now() + Duration::from_millis(20);
        while let Some(r) = w.queue.front() {
            if r.expires.is_none_or(|e| e > soon) {
                break;
            }
            let r = w.queue.pop_front();
            if let Some(r) = r {
                send_headers(&self.router, &r.reply, r.ended(408, "Request Timeout"));
            }
        }
        let Some(front) = w.queue.front() else {
            self.report_waiting(vec![key], ctx);
            return;
        };
        w.claiming = true;
        w.reported = w.queue.len() as u64;
        let (front_id, front_reply) = (front.id, front.reply.clone());
        // The acks this request must see applied ride on the claim: one round trip, not two.
        let carried: Vec<PendingAck> = if needs_acks {
            self.acks_in_flight = true;
            std::mem::take(&mut self.acks)
        } else {
            Vec::new()
        };
        let request = ClaimRequest {
            stream: key.0.clone(),
            consumer: key.1.clone(),
            batch: u32::try_from(front.remaining.min(10_000)).unwrap_or(10_000),
            max_bytes: front.bytes_left.unwrap_or(0),
            waiting: w.queue.len() as u64,
            agent_id: String::new(),
            pull: front.unchecked.clone(),
            acks: carried.iter().map(|a| a.entry.clone()).collect(),
            runs: true,
        };
        let client = self.client.clone();
        let reader = self.reader.clone();
        let router = self.router.clone();
        ctx.spawn(
            async move {
                // A request whose requester is gone (its reply subject has no subscription any
                // more: a closed `consume()` or `fetch()`) is dropped, as nats-server does, and
                // takes nothing: its messages would wait out ack_wait at a dead inbox.
                let interested = router
                    .send(HasInterest {
                        subject: front_reply.to_string(),
                    })
                    .await
                    .unwrap_or(true);
                if !interested {
                    return (request, None);
                }
                let res = client.consumer_claim(&request).await;
                let res = match res {
                    Ok(Ok(claim)) => {
                        let reads = read_all(&reader, &claim).await;
                        Ok(Ok((claim, reads)))
                    }
                    Ok(Err(e)) => Ok(Err(e)),
                    Err(e) => Err(e),
                };
                (request, Some(res))
            }
            .into_actor(self)
            .map(move |(request, res), act, ctx| {
                let Some(res) = res else {
                    if !carried.is_empty() {
                        // Not sent: back to the front of the acks, for the next flush.
                        act.acks_in_flight = false;
                        act.ack_batch_done(carried, false, ctx);
                    }
                    act.drop_request(&key, front_id);
                    act.pump(key, ctx);
                    return;
                };
                if carried.is_empty() {
                    act.claimed(key, request, res, ctx);
                    return;
                }
                // The control plane applied the acks if it answered at all.
                let applied = res.is_ok();
                act.acks_in_flight = false;
                if applied && let Some(last) = carried.last() {
                    act.acks_applied_below = act.acks_applied_below.max(last.id + 1);
                }
                act.claimed(key, request, res, ctx);
                act.ack_batch_done(carried, applied, ctx);
            }),
        );
    }

    fn claimed(
        &mut self,
        key: Key,
        request: ClaimRequest,
        res: ClaimOutcome,
        ctx: &mut Context<Self>,
    ) {
        let known = self.known.contains(&key);
        let Some(w) = self.waiters.get_mut(&key) else {
            return;
        };
        w.claiming = false;
        let woken = std::mem::take(&mut w.woken);
        let (claim, reads) = match res {
            Err(e) => {
                tracing::warn!(stream = %key.0, consumer = %key.1, error = %e, "consumer claim failed");
                w.due = Some(Instant::now() + CLAIM_RETRY);
                return;
            }
            Ok(Err(api)) => {
                tracing::debug!(stream = %key.0, consumer = %key.1, error = %api, "consumer claim refused");
                let w = self.waiters.remove(&key).unwrap_or_default();
                for r in w.queue {
                    if known {
                        self.status(&r.reply, 409, "Consumer Deleted");
                    } else {
                        // Nobody serves the MSG.NEXT subject of a consumer that does not exist.
                        send_headers(&self.router, &r.reply, status_only(503, None));
                    }
                }
                self.known.remove(&key);
                return;
            }
            Ok(Ok(v)) => v,
        };
        self.known.insert(key.clone());
        w.due = claim
            .redeliver_in_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        w.filters = Some(claim.filters.clone());
        w.max_waiting = Some(claim.max_waiting).filter(|m| *m > 0);
        w.limits = Some(claim.limits);
        if let Some(refused) = &claim.refused {
            if let Some(r) = w.queue.pop_front() {
                self.status(&r.reply, 409, refused);
            }
            self.pump(key, ctx);
            return;
        }
        w.last = (
            w.last.0.max(claim.last_consumer_seq),
            w.last.1.max(claim.last_stream_seq),
        );
        let Some(front) = w.queue.front_mut() else {
            return;
        };
        front.unchecked = None;
        let mut sent = 0u64;
        let deliveries = claim.deliveries();
        let mut out = Vec::with_capacity(deliveries.len());
        for (m, rec) in deliveries.iter().zip(reads) {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    // Stays pending at the control plane: redelivered after ack_wait.
                    tracing::warn!(stream = %key.0, seq = m.seq, error = %e, "consumer read failed");
                    continue;
                }
            };
            let (headers, payload, reply) = delivery(&key, m, &rec, claim.headers_only);
            // What nats-server counts against max_bytes: subject, reply, headers, payload.
            let size = rec.stored_size() + rec.subject.len() as u64 + reply.len() as u64;
            out.push(NatsMsg {
                subject: rec.subject,
                reply: Some(ByteString::from(reply)),
                headers,
                payload,
            });
            sent += 1;
            if let Some(left) = front.bytes_left.as_mut() {
                *left = left.saturating_sub(size);
            }
        }
        if !out.is_empty() {
            self.router.do_send(DeliverTo {
                to: front.reply.clone(),
                msgs: out,
            });
        }
        let got = deliveries.len() as u64;
        front.remaining = front.remaining.saturating_sub(got);
        if sent > 0 {
            front.last_sent = Instant::now();
        }
        let full = got >= u64::from(request.batch);
        let mut done = front.remaining == 0;
        if !done && claim.too_big {
            send_headers(
                &self.router,
                &front.reply,
                front.ended(409, "Message Size Exceeds MaxBytes"),
            );
            done = true;
        } else if !done && front.bytes_left == Some(0) {
            done = true;
        } else if !done && front.no_wait && !full {
            send_headers(
                &self.router,
                &front.reply,
                status_only(404, Some("No Messages")),
            );
            done = true;
        }
        if done {
            w.queue.pop_front();
        }
        if full || done || woken {
            self.pump(key, ctx);
        }
    }

    /// Claims for every waiting consumer the wake concerns; one claiming now claims again when
    /// it is done.
    fn wake(&mut self, m: &Wake, ctx: &mut Context<Self>) {
        let keys = to_claim(&mut self.waiters, m);
        for key in keys {
            self.pump(key, ctx);
        }
    }

    /// Expires requests, sends heartbeats and polls for consumers with waiting requests.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut to_pump = Vec::new();
        let router = self.router.clone();
        let feed_up = self.feed_up;
        self.waiters.retain(|key, w| {
            let claiming = w.claiming;
            let mut i = 0;
            w.queue.retain(|r| {
                let front = i == 0;
                i += 1;
                if front && claiming {
                    return true;
                }
                if r.expires.is_some_and(|e| e <= now) {
                    send_headers(&router, &r.reply, r.ended(408, "Request Timeout"));
                    return false;
                }
                true
            });
            for r in w.queue.iter_mut() {
                if let Some(hb) = r.heartbeat
                    && now.duration_since(r.last_sent) >= hb
                {
                    let mut h = Headers::with_status(100, Some("Idle Heartbeat"));
                    h.insert("Nats-Last-Consumer", w.last.0.to_string());
                    h.insert("Nats-Last-Stream", w.last.1.to_string());
                    send_headers(&router, &r.reply, h.encode());
                    r.last_sent = now;
                }
            }
            let due = w.due.is_some_and(|t| t <= now);
            if !w.queue.is_empty() && !w.claiming && (!feed_up || due) {
                w.due = None;
                to_pump.push(key.clone());
            }
            true
        });
        for key in to_pump {
            self.pump(key, ctx);
        }
        self.check_interest(ctx);
        let changed: Vec<Key> = self
            .waiters
            .iter()
            .filter(|(_, w)| !w.claiming && w.queue.len() as u64 != w.reported)
            .map(|(k, _)| k.clone())
            .collect();
        self.report_waiting(changed, ctx);
        if now.duration_since(self.last_waiting_refresh) >= WAITING_REFRESH {
            self.last_waiting_refresh = now;
            self.refresh_waiting(ctx);
        }
        self.waiters
            .retain(|_, w| !w.queue.is_empty() || w.claiming || w.reported > 0);
    }

    /// Removes one waiting request (no status: its requester is gone).
    fn drop_request(&mut self, key: &Key, id: u64) {
        if let Some(w) = self.waiters.get_mut(key) {
            w.claiming = false;
            w.queue.retain(|r| r.id != id);
        }
    }

    /// Asks the router which waiting requests still have a subscriber on their reply subject and
    /// drops the others, so `num_waiting` counts live requests only.
    fn check_interest(&mut self, ctx: &mut Context<Self>) {
        if self.checking_interest {
            return;
        }
        let mut ids: Vec<(Key, u64)> = Vec::new();
        let mut subjects: Vec<ByteString> = Vec::new();
        for (key, w) in &self.waiters {
            // The front of a claiming queue is checked by its claim.
            let skip = usize::from(w.claiming);
            for r in w.queue.iter().skip(skip) {
                ids.push((key.clone(), r.id));
                subjects.push(r.reply.clone());
            }
        }
        if subjects.is_empty() {
            return;
        }
        self.checking_interest = true;
        let router = self.router.clone();
        ctx.spawn(
            async move { router.send(InterestIn { subjects }).await }
                .into_actor(self)
                .map(move |answer, act, _| {
                    act.checking_interest = false;
                    let Ok(answer) = answer else {
                        return;
                    };
                    for ((key, id), interested) in ids.into_iter().zip(answer) {
                        let Some(w) = act.waiters.get_mut(&key) else {
                            continue;
                        };
                        // A claim started since for the front request: it checks for itself.
                        let claimed_front =
                            w.claiming && w.queue.front().is_some_and(|r| r.id == id);
                        if !interested && !claimed_front {
                            w.queue.retain(|r| r.id != id);
                        }
                    }
                }),
        );
    }

    /// Tells the control plane how many requests wait for each of `keys` (CONSUMER.INFO
    /// `num_waiting`) when that changed without a claim to carry it.
    /// Sends every non-zero waiting count again, in one request.
    fn refresh_waiting(&mut self, ctx: &mut Context<Self>) {
        let keys: Vec<Key> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.reported > 0 && !w.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        self.send_waiting(keys, true, ctx);
    }

    fn report_waiting(&mut self, keys: Vec<Key>, ctx: &mut Context<Self>) {
        self.send_waiting(keys, false, ctx);
    }

    /// Reports the waiting counts of `keys` that changed since last reported (all of them with
    /// `again`), in one request.
    fn send_waiting(&mut self, keys: Vec<Key>, again: bool, ctx: &mut Context<Self>) {
        let mut counts = Vec::new();
        for key in keys {
            let Some(w) = self.waiters.get_mut(&key) else {
                continue;
            };
            let waiting = w.queue.len() as u64;
            if waiting == w.reported && !again {
                continue;
            }
            w.reported = waiting;
            counts.push(WaitingCount {
                stream: key.0,
                consumer: key.1,
                waiting,
            });
        }
        if counts.is_empty() {
            return;
        }
        let client = self.client.clone();
        ctx.spawn(
            async move {
                if let Err(e) = client.consumer_waiting(&WaitingReport { counts }).await {
                    tracing::debug!(error = %e, "waiting count report failed");
                }
            }
            .into_actor(self),
        );
    }

    fn on_ack(&mut self, msg: NatsMsg, ctx: &mut Context<Self>) {
        let Some(subject) = AckSubject::parse(&msg.subject) else {
            return;
        };
        let body = msg.payload.as_ref();
        let (kind, rest) = split_ack(body);
        let mut delay = 0;
        let mut next = None;
        let kind = match kind {
            b"" | b"+ACK" => AckKind::Ack,
            b"-NAK" => {
                delay = parse_delay(rest);
                AckKind::Nak
            }
            b"+WPI" => AckKind::Progress,
            b"+TERM" => AckKind::Term,
            b"+NXT" => {
                if let Some(reply) = msg.reply.clone() {
                    let req = PullRequest::parse(rest).unwrap_or(PullRequest {
                        batch: 1,
                        ..PullRequest::default()
                    });
                    next = Some((reply, req));
                }
                AckKind::Ack
            }
            _ => {
                tracing::debug!(subject = %msg.subject, "unknown ack kind ignored");
                return;
            }
        };
        let reply = if next.is_some() {
            None
        } else {
            msg.reply.clone()
        };
        let id = self.next_ack_id;
        self.next_ack_id += 1;
        self.acks.push(PendingAck {
            id,
            entry: AckEntry {
                stream: subject.stream,
                consumer: subject.consumer,
                sseq: subject.sseq,
                kind,
                delay,
            },
            reply,
            next,
        });
        if self.acks.len() >= ACK_BATCH_MAX {
            self.flush_acks(ctx);
        }
    }

    fn flush_acks(&mut self, ctx: &mut Context<Self>) {
        if self.acks_in_flight || self.acks.is_empty() {
            return;
        }
        let n = self.acks.len().min(ACK_BATCH_MAX);
        let batch: Vec<PendingAck> = self.acks.drain(..n).collect();
        self.acks_in_flight = true;
        let body = AckBatch {
            acks: batch.iter().map(|a| a.entry.clone()).collect(),
        };
        let client = self.client.clone();
        ctx.spawn(
            async move { client.consumer_ack(&body).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.acks_in_flight = false;
                    if let Err(e) = &res {
                        tracing::warn!(error = %e, acks = batch.len(), "consumer ack flush failed");
                    } else if let Some(last) = batch.last() {
                        act.acks_applied_below = act.acks_applied_below.max(last.id + 1);
                    }
                    act.ack_batch_done(batch, res.is_ok(), ctx);
                }),
        );
    }

    /// After a batch of acks reached the control plane (`applied`), alone or with a claim: answer
    /// AckSync requests, start `+NXT` requests and pump requests that waited for them. A batch
    /// that did not get through goes back, in order, ahead of newer acks for the next flush.
    fn ack_batch_done(&mut self, batch: Vec<PendingAck>, applied: bool, ctx: &mut Context<Self>) {
        if !applied {
            let newer = std::mem::take(&mut self.acks);
            self.acks = batch;
            self.acks.extend(newer);
            return;
        }
        // Acks free max_ack_pending room of their own consumers, and requests that arrived
        // after one of them waited for it to apply: pump those now. Others have nothing new
        // (with 50 consumers waiting, one ack made 50 claims).
        let first_id = batch.first().map_or(u64::MAX, |a| a.id);
        let keys: Vec<Key> = self
            .waiters
            .iter()
            .filter(|(k, w)| {
                let held = w.queue.front().is_some_and(|r| r.acks_before > first_id);
                let acked = batch
                    .iter()
                    .any(|a| a.entry.stream == k.0 && a.entry.consumer == k.1);
                !w.queue.is_empty() && !w.claiming && (held || acked)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.pump(key, ctx);
        }
        for a in batch {
            if let Some(reply) = a.reply {
                send_headers_or_empty(&self.router, &reply);
            }
            if let Some((reply, req)) = a.next {
                let key = (a.entry.stream.clone(), a.entry.consumer.clone());
                self.add_request(key, reply, req, ctx);
            }
        }
    }
}

/// What a claimed message is delivered as, pulled or pushed: its headers and payload (with
/// `headers_only`, the headers plus `Nats-Msg-Size` and no payload) and its v1 ack subject.
pub(crate) fn delivery(
    (stream, consumer): &(String, String),
    m: &Delivery<'_>,
    rec: &crate::format::Record,
    headers_only: bool,
) -> (Option<Bytes>, Bytes, String) {
    let (headers, payload) = if headers_only {
        let mut h = rec
            .headers
            .as_ref()
            .and_then(|raw| Headers::parse(raw).ok())
            .unwrap_or_default();
        h.insert("Nats-Msg-Size", rec.payload.len().to_string());
        (Some(h.encode()), Bytes::new())
    } else {
        (
            rec.headers.clone().filter(|h| !h.is_empty()),
            rec.payload.clone(),
        )
    };
    let reply = ack_subject(
        stream,
        consumer,
        m.deliveries,
        m.seq,
        m.cseq,
        rec.timestamp_nanos,
        m.pending,
    );
    (headers, payload, reply)
}

pub(crate) type ReadResult = Result<crate::format::Record, ReadError>;
pub(crate) type ClaimOutcome = Result<
    Result<(ClaimResponse, Vec<ReadResult>), infinistream_api::jetstream::ApiError>,
    crate::control_plane::CpError,
>;

/// Reads every claimed message, one block read per block (through the read cache and the zone's
/// peers): messages published together share a block, and a batch usually spans few blocks.
/// One answer per [`ClaimResponse::deliveries`], in that order.
pub(crate) async fn read_all(reader: &Reader, claim: &ClaimResponse) -> Vec<ReadResult> {
    let deliveries = claim.deliveries();
    let mut blocks: Vec<(BlockLocation, Vec<usize>)> = Vec::new();
    let mut by_block: HashMap<(&str, u64, u64), usize> = HashMap::new();
    for (i, d) in deliveries.iter().enumerate() {
        let k = (d.object_key, d.block_offset, d.block_len);
        match by_block.get(&k) {
            Some(b) => blocks[*b].1.push(i),
            None => {
                by_block.insert(k, blocks.len());
                let loc = BlockLocation {
                    object_key: d.object_key.to_string(),
                    offset: d.block_offset,
                    len: d.block_len,
                };
                blocks.push((loc, vec![i]));
            }
        }
    }
    let fetched = join_all(blocks.iter().map(|(loc, members)| {
        let deliveries = &deliveries;
        async move {
            match reader.read_block(loc).await {
                // The cache keeps blocks verified and parsed: only the claimed records are
                // built (a pull takes hundreds of a block's thousands).
                Ok(block) => members
                    .iter()
                    .map(|i| {
                        block
                            .record(deliveries[*i].index)
                            .map_err(|e| ReadError::Corrupt {
                                key: loc.object_key.clone(),
                                message: e.to_string(),
                            })
                    })
                    .collect::<Vec<_>>(),
                Err(e) => members.iter().map(|_| Err(e.clone())).collect(),
            }
        }
    }))
    .await;
    let mut out: Vec<Option<ReadResult>> = (0..deliveries.len()).map(|_| None).collect();
    for ((_, members), results) in blocks.iter().zip(fetched) {
        for (i, r) in members.iter().zip(results) {
            out[*i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ReadError::Store {
                    key: String::new(),
                    message: "block not read".to_string(),
                })
            })
        })
        .collect()
}

impl Waiting {
    /// A status that ends this request, with what it still wanted (as nats-server sends 408 and
    /// `409 Message Size Exceeds MaxBytes`).
    fn ended(&self, code: u16, description: &str) -> Bytes {
        let mut h = Headers::with_status(code, Some(description));
        h.insert("Nats-Pending-Messages", self.remaining.to_string());
        h.insert(
            "Nats-Pending-Bytes",
            self.bytes_left.unwrap_or(0).to_string(),
        );
        h.encode()
    }
}

fn split_ack(body: &[u8]) -> (&[u8], &[u8]) {
    let body = body.trim_ascii();
    match body.iter().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&body[..i], body[i..].trim_ascii()),
        None => (body, &[]),
    }
}

/// `-NAK {"delay": nanos}` (a bare number is read as nanoseconds too).
fn parse_delay(rest: &[u8]) -> i64 {
    if rest.is_empty() {
        return 0;
    }
    #[derive(serde::Deserialize)]
    struct Delay {
        #[serde(default)]
        delay: i64,
    }
    if let Ok(d) = serde_json::from_slice::<Delay>(rest) {
        return d.delay;
    }
    std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn send_headers(router: &Addr<Router>, to: &ByteString, headers: Bytes) {
    router.do_send(Publish {
        origin: None,
        msg: NatsMsg {
            subject: to.clone(),
            reply: None,
            headers: Some(headers),
            payload: Bytes::new(),
        },
        original: false,
        permit: None,
    });
}

fn send_headers_or_empty(router: &Addr<Router>, to: &ByteString) {
    router.do_send(Publish {
        origin: None,
        msg: NatsMsg::new(to.clone(), Bytes::new()),
        original: false,
        permit: None,
    });
}

impl Actor for ConsumerManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address().recipient();
        self.router.do_send(SubscribeInternal {
            pattern: format!("{NEXT_PREFIX}>"),
            recipient: me.clone(),
        });
        self.router.do_send(SubscribeInternal {
            pattern: "$JS.ACK.>".to_string(),
            recipient: me,
        });
        ctx.run_interval(POLL_INTERVAL, |act, ctx| act.tick(ctx));
        ctx.run_interval(ACK_FLUSH, |act, ctx| act.flush_acks(ctx));
    }
}

impl Handler<Wake> for ConsumerManager {
    type Result = ();

    fn handle(&mut self, m: Wake, ctx: &mut Self::Context) {
        self.wake(&m, ctx);
    }
}

impl Handler<FeedUp> for ConsumerManager {
    type Result = ();

    fn handle(&mut self, m: FeedUp, ctx: &mut Self::Context) {
        self.feed_up = m.0;
        if m.0 {
            // Whatever happened before the feed started is not in it.
            self.wake(&Wake::everything(), ctx);
        }
    }
}

impl Handler<InternalMsg> for ConsumerManager {
    type Result = ();

    fn handle(&mut self, m: InternalMsg, ctx: &mut Self::Context) {
        let reply = m.msg.reply.clone();
        if crate::actors::guard::catch("consumer_manager", || self.on_request(m, ctx)).is_none()
            && let Some(reply) = reply
        {
            self.status(&reply, 500, "Internal Error");
        }
    }
}

impl ConsumerManager {
    fn on_request(&mut self, m: InternalMsg, ctx: &mut Context<Self>) {
        if m.msg.subject.starts_with("$JS.ACK.") {
            self.on_ack(m.msg, ctx);
            return;
        }
        let Some(rest) = m.msg.subject.strip_prefix(NEXT_PREFIX) else {
            return;
        };
        let Some(reply) = m.msg.reply.clone() else {
            return;
        };
        let Some((stream, consumer)) = rest.split_once('.') else {
            return;
        };
        if consumer.contains('.') {
            return;
        }
        let req = match PullRequest::parse(&m.msg.payload) {
            Ok(r) => r,
            Err(e) => {
                self.status(&reply, 400, &format!("Bad Request - {e}"));
                return;
            }
        };
        self.add_request((stream.to_string(), consumer.to_string()), reply, req, ctx);
    }
}

impl Handler<crate::actors::Ready> for ConsumerManager {
    type Result = ();
    fn handle(&mut self, _: crate::actors::Ready, _: &mut Self::Context) {}
}
