//! The agent side of JetStream push consumers (including the ordered consumers clients build on
//! them: async-nats `ordered()`, KV watch/keys/history).
//!
//! Owns: learning which push consumers exist (polling the control plane's lease endpoint, which
//! also lists the deliver subjects of push consumers), checking local interest in their deliver
//! subjects, holding and renewing the control plane lease (exactly one agent pushes a consumer at
//! a time), claiming batches (when the event feed says the stream or consumer changed, when a
//! redelivery falls due, or every tick while the feed is down), reading them through the read cache and delivering them to the
//! deliver subject (queue groups honoured by the router), idle heartbeats and flow control
//! (`$JS.FC.>` replies). Does not own: consumer configs or delivery state (the control plane's),
//! acks (the pull side's `ConsumerManager` handles every `$JS.ACK.>`).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use futures::future::join_all;

use crate::actors::ingress::router::{
    DeliverTo, HasInterest, InternalMsg, NatsMsg, Router, SubscribeInternal,
};
use crate::actors::jetstream::pull::{delivery, read_all};
use crate::actors::jetstream::wake::{Key, Waitable, to_claim};
use crate::actors::messages::{FeedUp, Publish, Wake};
use crate::actors::read::Reader;
use crate::control_plane::client::ControlPlaneClient;
use infinistream_api::control_plane::consumers::{
    ClaimRequest, LeaseRequest, LeaseResponse, PushAssignment,
};

/// How often leases are renewed and new push consumers discovered.
const LEASE_INTERVAL: Duration = Duration::from_millis(100);
/// A lease outlives a few missed renewals, so a slow control plane does not bounce consumers.
const LEASE_TTL_MS: i64 = 2_000;
/// How long this agent trusts a renewed lease: less than its TTL, so it stops pushing before
/// another agent may start.
const LEASE_VALID: Duration = Duration::from_millis(1_500);
/// How often heartbeats are sent and, while the control plane's event feed is down, idle push
/// consumers poll for new messages (with the feed up they claim when it says something changed,
/// or when a redelivery falls due).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const BATCH: u32 = 256;
/// Pause after a failed claim.
const CLAIM_RETRY: Duration = Duration::from_millis(500);
/// Bytes claimed at once by a flow controlled consumer (nats-server asks for flow control after
/// about 1 MiB).
const FC_BYTES: u64 = 1 << 20;
/// Bytes delivered before a flow control request.
const FC_REQUEST_BYTES: u64 = FC_BYTES / 2;
/// Bytes delivered past an unanswered flow control request before delivery pauses.
const FC_STALL_BYTES: u64 = FC_BYTES / 2;
const FC_PREFIX: &str = "$JS.FC.";

struct Driver {
    deliver: ByteString,
    heartbeat: Option<Duration>,
    flow_control: bool,
    claiming: bool,
    last_sent: Instant,
    last_dseq: u64,
    last_sseq: u64,
    /// Bytes delivered since the last flow control request was sent.
    since_fc: u64,
    /// The outstanding flow control request's reply subject.
    fc: Option<String>,
    /// Bytes delivered since `fc` was sent.
    past_fc: u64,
    /// After a failed claim: no new claim before this (the control plane may be down).
    retry_at: Option<Instant>,
    /// A wake arrived while a claim was under way.
    woken: bool,
    /// Claim at this time although nothing woke it (a redelivery falls due).
    due: Option<Instant>,
    /// The consumer's filter subjects as of the last claim (None before the first).
    filters: Option<Vec<String>>,
}

impl Driver {
    fn new(a: &PushAssignment) -> Self {
        Self {
            deliver: ByteString::from(a.config.deliver_subject.as_str()),
            heartbeat: (a.config.heartbeat > 0)
                .then(|| Duration::from_nanos(u64::try_from(a.config.heartbeat).unwrap_or(0))),
            flow_control: a.config.flow_control,
            claiming: false,
            last_sent: Instant::now(),
            last_dseq: 0,
            last_sseq: 0,
            since_fc: 0,
            fc: None,
            past_fc: 0,
            retry_at: None,
            woken: false,
            due: None,
            filters: None,
        }
    }

    fn stalled(&self) -> bool {
        self.fc.is_some() && self.past_fc >= FC_STALL_BYTES
    }
}

impl Waitable for Driver {
    fn waits(&self) -> bool {
        true
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

pub struct PushManager {
    client: Rc<ControlPlaneClient>,
    router: Addr<Router>,
    reader: Reader,
    agent_id: String,
    drivers: HashMap<Key, Driver>,
    /// Deliver subjects of push consumers not driven by another agent (last lease answer).
    candidates: Vec<String>,
    leasing: bool,
    /// The drivers' leases run out at the control plane around this time (counted from when the
    /// last successful renewal was sent, minus a margin): past it another agent may push them.
    leased_until: Instant,
    /// The control plane's event feed runs: drivers claim when woken, not every tick.
    feed_up: bool,
}

impl PushManager {
    pub fn new(
        client: ControlPlaneClient,
        router: Addr<Router>,
        reader: impl Into<Reader>,
        agent_id: impl Into<String>,
    ) -> Self {
        Self {
            client: Rc::new(client),
            router,
            reader: reader.into(),
            agent_id: agent_id.into(),
            drivers: HashMap::new(),
            candidates: Vec::new(),
            leasing: false,
            leased_until: Instant::now(),
            feed_up: false,
        }
    }

    /// Checks local interest in every candidate deliver subject, then takes/renews the leases of
    /// the ones with interest (and releases the others).
    fn lease(&mut self, ctx: &mut Context<Self>) {
        if self.leasing {
            return;
        }
        self.leasing = true;
        let router = self.router.clone();
        let client = self.client.clone();
        let candidates = self.candidates.clone();
        let agent_id = self.agent_id.clone();
        let sent = Instant::now();
        ctx.spawn(
            async move {
                let checks = join_all(
                    candidates
                        .iter()
                        .map(|s| router.send(HasInterest { subject: s.clone() })),
                )
                .await;
                let deliver_subjects: Vec<String> = candidates
                    .into_iter()
                    .zip(checks)
                    .filter(|(_, r)| matches!(r, Ok(true)))
                    .map(|(s, _)| s)
                    .collect();
                let wanted = deliver_subjects.len();
                let res = client
                    .consumer_lease(&LeaseRequest {
                        agent_id,
                        deliver_subjects,
                        ttl_ms: LEASE_TTL_MS,
                    })
                    .await;
                (wanted, res)
            }
            .into_actor(self)
            .map(move |(wanted, res), act, ctx| {
                act.leasing = false;
                match res {
                    Ok(r) => {
                        act.leased_until = sent + LEASE_VALID;
                        act.leased(r, wanted, ctx);
                    }
                    Err(e) => {
                        // Keep pushing until the lease would have run out (`tick` stops then);
                        // the next renewal retries.
                        tracing::warn!(error = %e, "push consumer lease failed");
                    }
                }
            }),
        );
    }

    fn leased(&mut self, r: LeaseResponse, wanted: usize, ctx: &mut Context<Self>) {
        let assigned: HashSet<Key> = r
            .assignments
            .iter()
            .map(|a| (a.stream.clone(), a.consumer.clone()))
            .collect();
        self.drivers.retain(|k, _| assigned.contains(k));
        for a in &r.assignments {
            let key = (a.stream.clone(), a.consumer.clone());
            if !self.drivers.contains_key(&key) {
                tracing::debug!(stream = %a.stream, consumer = %a.consumer, "push consumer leased");
                self.drivers.insert(key.clone(), Driver::new(a));
                self.pump(key, ctx);
            }
        }
        let new_candidates = r.push_subjects != self.candidates;
        self.candidates = r.push_subjects;
        // A push consumer just appeared: check interest now instead of at the next renewal.
        if new_candidates && self.candidates.len() > wanted {
            self.lease(ctx);
        }
    }

    fn pump(&mut self, key: Key, ctx: &mut Context<Self>) {
        let Some(d) = self.drivers.get_mut(&key) else {
            return;
        };
        if d.claiming || d.stalled() || d.retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        d.retry_at = None;
        d.due = None;
        d.claiming = true;
        let request = ClaimRequest {
            stream: key.0.clone(),
            consumer: key.1.clone(),
            batch: BATCH,
            max_bytes: if d.flow_control { FC_BYTES } else { 0 },
            waiting: 0,
            agent_id: self.agent_id.clone(),
            pull: None,
            acks: Vec::new(),
            runs: true,
        };
        let client = self.client.clone();
        let reader = self.reader.clone();
        ctx.spawn(
            async move {
                match client.consumer_claim(&request).await {
                    Ok(Ok(claim)) => {
                        let reads = read_all(&reader, &claim).await;
                        Ok(Ok((claim, reads)))
                    }
                    Ok(Err(e)) => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            }
            .into_actor(self)
            .map(move |res, act, ctx| act.claimed(key, res, ctx)),
        );
    }

    fn claimed(&mut self, key: Key, res: super::pull::ClaimOutcome, ctx: &mut Context<Self>) {
        let Some(d) = self.drivers.get_mut(&key) else {
            return;
        };
        d.claiming = false;
        let woken = std::mem::take(&mut d.woken);
        let (claim, reads) = match res {
            Err(e) => {
                tracing::warn!(stream = %key.0, consumer = %key.1, error = %e, "push claim failed");
                d.retry_at = Some(Instant::now() + CLAIM_RETRY);
                return;
            }
            Ok(Err(api)) => {
                tracing::debug!(stream = %key.0, consumer = %key.1, error = %api, "push consumer gone");
                self.drivers.remove(&key);
                return;
            }
            Ok(Ok(v)) => v,
        };
        let deliveries = claim.deliveries();
        let got = deliveries.len();
        d.due = claim
            .redeliver_in_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        d.filters = Some(claim.filters.clone());
        let mut out = Vec::with_capacity(got);
        for (m, rec) in deliveries.iter().zip(reads) {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(stream = %key.0, seq = m.seq, error = %e, "push read failed");
                    continue;
                }
            };
            let (headers, payload, reply) = delivery(&key, m, &rec, claim.headers_only);
            let size = rec.stored_size() + rec.subject.len() as u64;
            out.push(NatsMsg {
                subject: rec.subject,
                reply: Some(ByteString::from(reply)),
                headers,
                payload,
            });
            d.last_dseq = m.cseq;
            d.last_sseq = d.last_sseq.max(m.seq);
            if d.flow_control {
                d.since_fc += size;
                if d.fc.is_some() {
                    d.past_fc += size;
                }
            }
        }
        if !out.is_empty() {
            self.router.do_send(DeliverTo {
                to: d.deliver.clone(),
                msgs: out,
            });
        }
        if got > 0 {
            d.last_sent = Instant::now();
        } else {
            d.last_sseq = d.last_sseq.max(claim.last_stream_seq);
            d.last_dseq = d.last_dseq.max(claim.last_consumer_seq);
        }
        if d.flow_control && d.fc.is_none() && d.since_fc >= FC_REQUEST_BYTES {
            let fc = format!("{FC_PREFIX}{}.{}.{}", key.0, key.1, random_token());
            send(
                &self.router,
                &d.deliver,
                Some(fc.clone()),
                Bytes::from_static(b"NATS/1.0 100 FlowControl Request\r\n\r\n"),
            );
            d.fc = Some(fc);
            d.since_fc = 0;
            d.past_fc = 0;
        }
        if got >= BATCH as usize || (d.flow_control && got > 0) || woken {
            self.pump(key, ctx);
        }
    }

    fn wake(&mut self, m: &Wake, ctx: &mut Context<Self>) {
        let keys = to_claim(&mut self.drivers, m);
        for key in keys {
            self.pump(key, ctx);
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if now > self.leased_until && !self.drivers.is_empty() {
            tracing::warn!(
                consumers = self.drivers.len(),
                "push consumer leases not renewed in time, pausing them"
            );
            self.drivers.clear();
        }
        let mut to_pump = Vec::new();
        for (key, d) in &mut self.drivers {
            if let Some(hb) = d.heartbeat
                && now.duration_since(d.last_sent) >= hb
            {
                let mut h = format!(
                    "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: {}\r\nNats-Last-Stream: {}\r\n",
                    d.last_dseq, d.last_sseq
                );
                if let Some(fc) = &d.fc {
                    h.push_str(&format!("Nats-Consumer-Stalled: {fc}\r\n"));
                }
                h.push_str("\r\n");
                send(&self.router, &d.deliver, None, Bytes::from(h));
                d.last_sent = now;
            }
            let due = d.due.is_some_and(|t| t <= now) || d.retry_at.is_some_and(|t| t <= now);
            if !d.claiming && !d.stalled() && (!self.feed_up || due) {
                to_pump.push(key.clone());
            }
        }
        for key in to_pump {
            self.pump(key, ctx);
        }
    }

    fn on_flow_control(&mut self, subject: &str, ctx: &mut Context<Self>) {
        let Some(rest) = subject.strip_prefix(FC_PREFIX) else {
            return;
        };
        let mut parts = rest.rsplitn(2, '.');
        let (Some(_token), Some(sc)) = (parts.next(), parts.next()) else {
            return;
        };
        let Some((stream, consumer)) = sc.split_once('.') else {
            return;
        };
        let key = (stream.to_string(), consumer.to_string());
        let Some(d) = self.drivers.get_mut(&key) else {
            return;
        };
        if d.fc.as_deref() == Some(subject) {
            d.fc = None;
            d.past_fc = 0;
            self.pump(key, ctx);
        }
    }
}

fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..4)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn send(router: &Addr<Router>, to: &ByteString, reply: Option<String>, headers: Bytes) {
    router.do_send(Publish {
        origin: None,
        msg: NatsMsg {
            subject: to.clone(),
            reply: reply.map(ByteString::from),
            headers: Some(headers),
            payload: Bytes::new(),
        },
        original: false,
        permit: None,
    });
}

impl Actor for PushManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.router.do_send(SubscribeInternal {
            pattern: format!("{FC_PREFIX}>"),
            recipient: ctx.address().recipient(),
        });
        self.lease(ctx);
        ctx.run_interval(LEASE_INTERVAL, |act, ctx| act.lease(ctx));
        ctx.run_interval(POLL_INTERVAL, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Wake> for PushManager {
    type Result = ();

    fn handle(&mut self, m: Wake, ctx: &mut Self::Context) {
        self.wake(&m, ctx);
    }
}

impl Handler<FeedUp> for PushManager {
    type Result = ();

    fn handle(&mut self, m: FeedUp, ctx: &mut Self::Context) {
        self.feed_up = m.0;
        if m.0 {
            self.wake(&Wake::everything(), ctx);
        }
    }
}

impl Handler<InternalMsg> for PushManager {
    type Result = ();

    fn handle(&mut self, m: InternalMsg, ctx: &mut Self::Context) {
        self.on_flow_control(&m.msg.subject.clone(), ctx);
    }
}
