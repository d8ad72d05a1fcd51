//! Supervisors: keep the SequenceClient and the PeerCache running, whatever stops them.
//!
//! Owns: the factories of the supervised actors, the watchdog that notices a child has gone
//! (stopped, or panicked: actix does not restart a panicked actor, its mailbox just closes),
//! restarts with exponential backoff (`infinistream_actor_restarts_total{actor}`), and a stable
//! address for users: they talk to the supervisor, which forwards to the current child.
//! Does not own the children's work.
//!
//! The sequence supervisor also owns what must survive a crash of the SequenceClient: the sealed
//! objects waiting to be committed (in seal order) and their publishers. The child only runs
//! commits (idempotent per object id, so a commit interrupted by a crash is sent again to the
//! next instance); publishers are acked only from a commit response, and answered with an error
//! once the commit deadline passes. While the child is down, seals wait here (bounded by the
//! in-flight budget their permits belong to) and object-id requests wait for the restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::watch;
use tracing_actix::ActorInstrument;

use crate::actors::cluster::membership::MembersChanged;
use crate::actors::messages::PublishBatch;
use crate::actors::ops::metrics;
use crate::actors::read::block::ReadError;
use crate::actors::read::cache::PeerFetch;
use crate::actors::read::peer::PeerCache;
use crate::actors::write::commit::{
    Commit, Committed, NextObjectId, RecordOrphan, Sealed, SealedObject, SequenceClient,
    answer_publishers, check_shape, commit_request, fail_publishers,
};
use crate::actors::write::error::WriteError;
use infinistream_api::control_plane::model::{CommitManyRequest, CommitResponse, OrphanRequest};

/// How often the watchdog looks at the child.
const WATCH_EVERY: Duration = Duration::from_millis(20);
const INITIAL_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A child that ran this long before dying restarts without the accumulated backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// A commit group's caps: its request body (~60 bytes of JSON per message) stays well under the
/// control plane's body limit, and one group's transaction stays short.
const MAX_GROUP_OBJECTS: usize = 32;
const MAX_GROUP_MESSAGES: usize = 200_000;

/// One supervised child: its address (published on a watch channel for waiting senders) and
/// the restart schedule.
struct Slot<A: Actor> {
    name: &'static str,
    addr: Addr<A>,
    tx: watch::Sender<Option<Addr<A>>>,
    started_at: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
    restarts: u64,
}

impl<A: Actor> Slot<A> {
    fn new(name: &'static str, addr: Addr<A>) -> Self {
        let (tx, _) = watch::channel(Some(addr.clone()));
        Self {
            name,
            addr,
            tx,
            started_at: Instant::now(),
            backoff: INITIAL_BACKOFF,
            restart_at: None,
            restarts: 0,
        }
    }

    /// Restarts the child with `make` once it is gone and its backoff has passed. True when a
    /// new child was started.
    fn check(&mut self, make: impl FnOnce() -> Addr<A>) -> bool {
        if self.addr.connected() {
            return false;
        }
        let now = Instant::now();
        let at = *self.restart_at.get_or_insert_with(|| {
            if self.started_at.elapsed() >= STABLE_AFTER {
                self.backoff = INITIAL_BACKOFF;
            }
            tracing::warn!(
                actor = self.name,
                backoff_ms = self.backoff.as_millis() as u64,
                "supervised actor is gone, restarting"
            );
            self.tx.send_replace(None);
            now + self.backoff
        });
        if now < at {
            return false;
        }
        self.addr = make();
        self.started_at = now;
        self.restart_at = None;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.restarts += 1;
        metrics::ACTOR_RESTARTS
            .with_label_values(&[self.name])
            .inc();
        self.tx.send_replace(Some(self.addr.clone()));
        true
    }

    fn current(&self) -> Option<Addr<A>> {
        Some(self.addr.clone()).filter(Addr::connected)
    }
}

/// Waits until a live child is published, at most until `deadline`.
async fn live_child<A: Actor>(
    rx: &mut watch::Receiver<Option<Addr<A>>>,
    deadline: Instant,
) -> Option<Addr<A>> {
    let left = deadline.saturating_duration_since(Instant::now());
    let res = tokio::time::timeout(
        left,
        rx.wait_for(|c| c.as_ref().is_some_and(Addr::connected)),
    )
    .await;
    match res {
        Ok(Ok(c)) => c.clone(),
        _ => None,
    }
}

/// Restarts seen by a supervisor (tests).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "u64")]
pub struct Restarts;

// ---------------------------------------------------------------------------------------------
// The SequenceClient's supervisor.

#[derive(Debug, Clone)]
pub struct SequenceSupervisorSettings {
    pub agent_id: String,
    pub commit_deadline: Duration,
    /// How long an object-id request waits for a restarting child.
    pub id_wait: Duration,
}

type SequenceFactory = Box<dyn Fn() -> SequenceClient>;

pub struct SequenceSupervisor {
    settings: SequenceSupervisorSettings,
    factory: SequenceFactory,
    /// Where acks and failures go (the router).
    router: Recipient<PublishBatch>,
    slot: Slot<SequenceClient>,
    next_commit: u64,
    ready: BTreeMap<u64, Sealed>,
    committing: bool,
    observer: Option<Recipient<Committed>>,
}

impl SequenceSupervisor {
    /// Reports every successful commit to `observer` (see `Committed`).
    pub fn with_observer(mut self, observer: Option<Recipient<Committed>>) -> Self {
        self.observer = observer;
        self
    }

    /// `factory` builds a SequenceClient; it runs on the supervisor's arbiter (the control-plane
    /// client is `!Send`), so start the supervisor where the SequenceClient should run.
    pub fn new(
        settings: SequenceSupervisorSettings,
        router: Recipient<PublishBatch>,
        factory: impl Fn() -> SequenceClient + 'static,
    ) -> Self {
        let child = factory().start();
        Self {
            settings,
            factory: Box::new(factory),
            router,
            slot: Slot::new("sequence_client", child),
            next_commit: 0,
            ready: BTreeMap::new(),
            committing: false,
            observer: None,
        }
    }

    /// Commits the next run of consecutive ready seals as one group. While a commit is under way
    /// later seals queue here; the next commit takes all of them (up to a size cap), so when
    /// commits are slower than windows the groups grow instead of the queue.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.committing {
            return;
        }
        let mut group: Vec<(Sealed, SealedObject)> = Vec::new();
        let mut messages = 0usize;
        while group.len() < MAX_GROUP_OBJECTS && messages < MAX_GROUP_MESSAGES {
            let Some(sealed) = self.ready.remove(&self.next_commit) else {
                break;
            };
            self.next_commit += 1;
            match &sealed.object {
                Ok(o) => {
                    let object = o.clone();
                    messages += sealed
                        .batches
                        .iter()
                        .map(|b| b.pending.len())
                        .sum::<usize>();
                    group.push((sealed, object));
                }
                Err(e) => {
                    let e = e.clone();
                    fail_publishers(&self.router, sealed.batches, &e);
                }
            }
        }
        if group.is_empty() {
            return;
        }
        let request = CommitManyRequest {
            commits: group
                .iter()
                .map(|(sealed, object)| {
                    commit_request(&self.settings.agent_id, object, &sealed.batches)
                })
                .collect(),
        };
        self.committing = true;
        let deadline = Instant::now() + self.settings.commit_deadline;
        let started = Instant::now();
        let mut rx = self.slot.tx.subscribe();
        // The seals this commit covers, the ids shared with the `flush` and `publish` spans.
        let span = tracing::debug_span!(
            "commit",
            first_seal = group.first().map_or(0, |(s, _)| s.seal_no),
            last_seal = group.last().map_or(0, |(s, _)| s.seal_no),
            objects = group.len(),
        );
        ctx.spawn(
            async move {
                loop {
                    let Some(child) = live_child(&mut rx, deadline).await else {
                        return Err(WriteError::commit(WriteError::SequencerUnavailable));
                    };
                    match child
                        .send(Commit {
                            request: request.clone(),
                            deadline,
                        })
                        .await
                    {
                        Ok(res) => return res,
                        // The child died mid-commit: the next instance sends it again.
                        Err(e) => {
                            tracing::warn!(objects = request.commits.len(), error = %e, "sequence client lost during a commit, retrying");
                            if Instant::now() >= deadline {
                                return Err(WriteError::commit(WriteError::Mailbox(e)));
                            }
                        }
                    }
                }
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                let elapsed = started.elapsed().as_secs_f64();
                let outcome = if result.is_ok() { "ok" } else { "error" };
                metrics::CONTROL_PLANE_OPS
                    .with_label_values(&["commit", outcome])
                    .observe(elapsed);
                let mut responses = match result {
                    Ok(r) => r.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e); group.len()],
                };
                // The child checked the count; this only guards the zip below.
                responses.resize_with(group.len(), || {
                    Err(WriteError::CommitShape)
                });
                for ((sealed, object), response) in group.into_iter().zip(responses) {
                    metrics::FLUSH_STAGE
                        .with_label_values(&["commit"])
                        .observe(elapsed);
                    act.finish_commit(sealed, object, response);
                }
                act.committing = false;
                act.pump(ctx);
            })
            .actor_instrument(span),
        );
    }

    fn finish_commit(
        &mut self,
        sealed: Sealed,
        object: SealedObject,
        response: Result<CommitResponse, WriteError>,
    ) {
        match response.and_then(|r| check_shape(r, &sealed.batches)) {
            Ok(response) => {
                tracing::debug!(
                    seal = sealed.seal_no,
                    object_id = object.object_id,
                    "object committed"
                );
                let note = self
                    .observer
                    .as_ref()
                    .map(|_| Committed::of(&object.key, &sealed.batches));
                answer_publishers(&self.router, sealed.batches, response);
                if let (Some(observer), Some(note)) = (&self.observer, note) {
                    observer.do_send(note);
                }
            }
            Err(e) => {
                tracing::warn!(object_key = %object.key, error = %e, "commit failed; answering publishers with errors");
                match self.slot.current() {
                    Some(c) => c.do_send(RecordOrphan(OrphanRequest {
                        object_key: object.key.clone(),
                        reason: e.to_string(),
                    })),
                    None => {
                        tracing::warn!(object_key = %object.key, "cannot record an orphaned object: sequence client down")
                    }
                }
                fail_publishers(&self.router, sealed.batches, &e);
            }
        }
    }
}

impl Actor for SequenceSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(WATCH_EVERY, |act, _| {
            let factory = &act.factory;
            act.slot.check(|| factory().start());
        });
    }
}

impl Handler<Sealed> for SequenceSupervisor {
    type Result = ();

    fn handle(&mut self, m: Sealed, ctx: &mut Self::Context) {
        self.ready.insert(m.seal_no, m);
        self.pump(ctx);
    }
}

impl Handler<NextObjectId> for SequenceSupervisor {
    type Result = ResponseFuture<Result<u64, WriteError>>;

    fn handle(&mut self, _: NextObjectId, _: &mut Self::Context) -> Self::Result {
        let mut rx = self.slot.tx.subscribe();
        let deadline = Instant::now() + self.settings.id_wait;
        Box::pin(async move {
            loop {
                let Some(child) = live_child(&mut rx, deadline).await else {
                    return Err(WriteError::SequencerUnavailable);
                };
                if let Ok(res) = child.send(NextObjectId).await {
                    return res;
                }
            }
        })
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<crate::actors::write::commit::Crash> for SequenceSupervisor {
    type Result = ();
    fn handle(&mut self, m: crate::actors::write::commit::Crash, _: &mut Self::Context) {
        if let Some(c) = self.slot.current() {
            c.do_send(m);
        }
    }
}

impl Handler<Restarts> for SequenceSupervisor {
    type Result = u64;
    fn handle(&mut self, _: Restarts, _: &mut Self::Context) -> u64 {
        self.slot.restarts
    }
}

// ---------------------------------------------------------------------------------------------
// The PeerCache's supervisor.

type PeerFactory = Box<dyn Fn(Option<std::net::TcpListener>) -> PeerCache>;

pub struct PeerSupervisor {
    factory: PeerFactory,
    /// The peer listener itself: each child gets a clone, so the port stays bound (connections
    /// wait in the backlog) while a child restarts.
    listener: Option<std::net::TcpListener>,
    members: Option<MembersChanged>,
    slot: Slot<PeerCache>,
}

impl PeerSupervisor {
    pub fn new(
        listener: Option<std::net::TcpListener>,
        factory: impl Fn(Option<std::net::TcpListener>) -> PeerCache + 'static,
    ) -> Self {
        let clone = listener.as_ref().and_then(|l| l.try_clone().ok());
        let child = factory(clone).start();
        Self {
            factory: Box::new(factory),
            listener,
            members: None,
            slot: Slot::new("peer_cache", child),
        }
    }
}

impl Actor for PeerSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(WATCH_EVERY, |act, _| {
            let factory = &act.factory;
            let listener = &act.listener;
            let restarted = act.slot.check(|| {
                let clone = listener.as_ref().and_then(|l| match l.try_clone() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot share the peer listener with the new peer cache");
                        None
                    }
                });
                factory(clone).start()
            });
            if restarted && let Some(m) = &act.members {
                act.slot.addr.do_send(m.clone());
            }
        });
    }
}

impl Handler<PeerFetch> for PeerSupervisor {
    type Result = ResponseFuture<Result<Option<Bytes>, ReadError>>;

    fn handle(&mut self, m: PeerFetch, _: &mut Self::Context) -> Self::Result {
        // While the peer cache is down, reads go to the bucket.
        let Some(child) = self.slot.current() else {
            return Box::pin(async { Ok(None) });
        };
        Box::pin(async move { child.send(m).await.unwrap_or(Ok(None)) })
    }
}

impl Handler<MembersChanged> for PeerSupervisor {
    type Result = ();
    fn handle(&mut self, m: MembersChanged, _: &mut Self::Context) {
        if let Some(c) = self.slot.current() {
            c.do_send(m.clone());
        }
        self.members = Some(m);
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<crate::actors::read::peer::Crash> for PeerSupervisor {
    type Result = ();
    fn handle(&mut self, m: crate::actors::read::peer::Crash, _: &mut Self::Context) {
        if let Some(c) = self.slot.current() {
            c.do_send(m);
        }
    }
}

impl Handler<Restarts> for PeerSupervisor {
    type Result = u64;
    fn handle(&mut self, _: Restarts, _: &mut Self::Context) -> u64 {
        self.slot.restarts
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::actors::write::commit::SequenceSettings;
    use crate::actors::write::messages::StreamBatch;
    use crate::config::Secret;
    use crate::control_plane::ControlPlaneClient;
    use crate::message::NatsMsg;

    /// Stands in for the router: the subjects of every batch of answers, one batch at a time.
    struct FakeRouter(mpsc::UnboundedSender<Vec<String>>);

    impl Actor for FakeRouter {
        type Context = Context<Self>;
    }

    impl Handler<PublishBatch> for FakeRouter {
        type Result = ();
        fn handle(&mut self, m: PublishBatch, _: &mut Self::Context) {
            let _ = self
                .0
                .send(m.0.iter().map(|p| p.msg.subject.to_string()).collect());
        }
    }

    /// A seal whose object could not be written, with one publisher waiting on `reply`.
    fn failed_seal(seal_no: u64, reply: &str) -> Sealed {
        let mut msg = NatsMsg::new("s.x", bytes::Bytes::from_static(b"x"));
        msg.reply = Some(reply.into());
        Sealed {
            seal_no,
            batches: vec![StreamBatch::from_messages("S", vec![(msg, 0)])],
            object: Err(WriteError::NothingToWrite),
        }
    }

    #[actix_rt::test]
    async fn seals_are_answered_in_seal_order_whatever_order_they_arrive_in() {
        let (tx, mut answered) = mpsc::unbounded_channel();
        let router = FakeRouter(tx).start();
        let supervisor = SequenceSupervisor::new(
            SequenceSupervisorSettings {
                agent_id: "a".into(),
                commit_deadline: Duration::from_secs(1),
                id_wait: Duration::from_secs(1),
            },
            router.recipient(),
            // Never asked anything here: failed seals are answered without a commit.
            || {
                let client = ControlPlaneClient::new("http://127.0.0.1:9", "g", &Secret::new("k"));
                let settings = SequenceSettings {
                    agent_id: "a".into(),
                    commit_deadline: Duration::from_secs(1),
                    id_prefetch: 1,
                };
                SequenceClient::new(settings, client)
            },
        )
        .start();
        supervisor.do_send(failed_seal(1, "reply.1"));
        supervisor.do_send(failed_seal(2, "reply.2"));
        // Seals 1 and 2 wait for seal 0; its arrival answers all three, in order.
        supervisor
            .send(failed_seal(0, "reply.0"))
            .await
            .expect("delivered");

        for want in ["reply.0", "reply.1", "reply.2"] {
            assert_eq!(answered.recv().await, Some(vec![want.to_string()]));
        }
        assert!(answered.try_recv().is_err());
    }
}
