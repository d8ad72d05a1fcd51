//! The RouteManager actor: one route to every other agent of the group, and the interest that
//! flows over them (issue 14, in progress: not started by the agent yet, and the router does not
//! feed it).
//!
//! Owns: which agents to dial (the group's members with a larger agent id than this one, so each
//! pair has exactly one route), dialling and redialling with backoff, accepting routes handed to
//! it, the links (a writer task per route fed by an unbounded channel, a reader loop feeding this
//! actor), this agent's interest (`LocalInterest`: announced to every route, replayed to a new
//! one) and the others' (`RemoteInterest`: withdrawn when a route drops), and the fan-out of a
//! forwarded message. The writer channels are unbounded for now: before the router feeds this
//! actor they must be bounded (a slow route must slow the publishers, invariant 3, not grow a
//! queue). Does not own delivery to local subscribers (routed messages go to the
//! `deliver` recipient, the router's job) nor the listener (the peer cache accepts routes on
//! the peer port and hands them over as [`RouteSocket`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::interest::{LocalInterest, PeerId, RemoteInterest};
use super::link::{self, RouteIdentity, Wire};
use super::wire::{self, RouteFrame};
use crate::actors::membership::{GroupChanged, peer_addr};

/// The first and the longest wait before dialling a lost route again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A message that came over a route, for this agent's local subscribers only.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct RoutedMsg {
    pub from: String,
    pub subject: String,
    pub reply: Option<String>,
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Queue groups this agent delivers to (one member each), besides every plain subscriber.
    pub queues: Vec<String>,
}

/// A route the peer port accepted: the other agent passed the route handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RouteSocket {
    pub agent: String,
    pub wire: Wire,
}

/// A local subscription was added (`subscribe`) or removed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LocalSub {
    pub subject: String,
    pub queue: Option<String>,
    pub subscribe: bool,
}

/// Copies a locally published message to the agents interested in it; answers how many
/// copies were sent. `local_queues` are the queue groups with a member on this agent (they
/// take the message here).
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct Forward {
    pub subject: String,
    pub reply: Option<String>,
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub local_queues: Vec<String>,
}

/// Whether any other agent has interest in a subject (for no-responders).
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct RemoteInterestIn(pub String);

/// The agents this one has a route to, sorted.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<String>")]
pub struct Routes;

#[derive(Message)]
#[rtype(result = "()")]
struct Established {
    agent: String,
    wire: Wire,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Inbound {
    peer: PeerId,
    frame: RouteFrame,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Lost {
    peer: PeerId,
}

#[derive(Message)]
#[rtype(result = "()")]
struct DialFailed {
    agent: String,
}

struct Link {
    agent: String,
    tx: mpsc::UnboundedSender<RouteFrame>,
}

pub struct RouteManager {
    me: Arc<RouteIdentity>,
    deliver: Option<Recipient<RoutedMsg>>,
    /// Members this agent dials: agent id -> peer address.
    wanted: HashMap<String, String>,
    dialing: HashSet<String>,
    backoff: HashMap<String, Duration>,
    links: HashMap<PeerId, Link>,
    next_peer: PeerId,
    local: LocalInterest,
    remote: RemoteInterest,
    /// Counts every change of routes or remote interest (tests await it).
    changes: watch::Sender<u64>,
}

impl RouteManager {
    pub fn new(me: RouteIdentity, deliver: Option<Recipient<RoutedMsg>>) -> Self {
        Self {
            me: Arc::new(me),
            deliver,
            wanted: HashMap::new(),
            dialing: HashSet::new(),
            backoff: HashMap::new(),
            links: HashMap::new(),
            next_peer: 0,
            local: LocalInterest::default(),
            remote: RemoteInterest::default(),
            changes: watch::channel(0).0,
        }
    }

    /// A receiver of the change counter (routes up or down, interest applied).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn linked(&self, agent: &str) -> bool {
        self.links.values().any(|l| l.agent == agent)
    }

    fn dial(&mut self, agent: String, ctx: &mut Context<Self>) {
        let Some(addr) = self.wanted.get(&agent).cloned() else {
            return;
        };
        if self.linked(&agent) || !self.dialing.insert(agent.clone()) {
            return;
        }
        let me = self.me.clone();
        let this = ctx.address();
        actix_rt::spawn(async move {
            match link::dial(&addr, &me).await {
                Ok((wire, id)) if id == agent => this.do_send(Established { agent, wire }),
                Ok((_, id)) => {
                    tracing::warn!(expected = %agent, answered = %id, "route answered by another agent");
                    this.do_send(DialFailed { agent });
                }
                Err(e) => {
                    tracing::warn!(agent = %agent, addr = %addr, error = %e, "route dial failed");
                    this.do_send(DialFailed { agent });
                }
            }
        });
    }

    fn broadcast(&self, frame: &RouteFrame) {
        for link in self.links.values() {
            let _ = link.tx.send(frame.clone());
        }
    }
}

impl Actor for RouteManager {
    type Context = Context<Self>;
}

impl Handler<GroupChanged> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: GroupChanged, ctx: &mut Self::Context) {
        self.wanted = m
            .members
            .iter()
            .filter(|a| a.agent_id > m.self_id)
            .map(|a| (a.agent_id.clone(), peer_addr(a)))
            .collect();
        let members: HashSet<&str> = m.members.iter().map(|a| a.agent_id.as_str()).collect();
        // Routes to agents that left the group are closed (dropping the sender ends the writer).
        let gone: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| !members.contains(l.agent.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for peer in gone {
            self.links.remove(&peer);
            self.remote.remove_peer(peer);
            self.changed();
        }
        let to_dial: Vec<String> = self.wanted.keys().cloned().collect();
        for agent in to_dial {
            self.dial(agent, ctx);
        }
    }
}

impl Handler<RouteSocket> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: RouteSocket, ctx: &mut Self::Context) {
        self.handle(
            Established {
                agent: m.agent,
                wire: m.wire,
            },
            ctx,
        );
    }
}

impl Handler<Established> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: Established, ctx: &mut Self::Context) {
        self.dialing.remove(&m.agent);
        if self.linked(&m.agent) {
            return; // one route per pair; the new socket is dropped
        }
        self.backoff.remove(&m.agent);
        let peer = self.next_peer;
        self.next_peer += 1;
        let (tx, mut rx) = mpsc::unbounded_channel::<RouteFrame>();
        // This agent's interest first, then every delta after it, in order.
        for delta in self.local.snapshot() {
            let _ = tx.send(RouteFrame::Interest(delta));
        }
        let (mut sink, mut frames) = m.wire.split();
        actix_rt::spawn(async move {
            use futures::SinkExt;
            while let Some(frame) = rx.recv().await {
                let Ok(bytes) = wire::encode(&frame) else {
                    continue;
                };
                if sink.send(bytes::Bytes::from(bytes)).await.is_err() {
                    break;
                }
            }
            // The link was dropped: shut the socket's write side, so the other agent sees the
            // route end (its reader ends, it withdraws this agent's interest) and closes too.
            let _ = sink.close().await;
        });
        let this = ctx.address();
        actix_rt::spawn(async move {
            while let Some(Ok(buf)) = frames.next().await {
                match wire::decode(&buf) {
                    Ok(frame) => this.do_send(Inbound { peer, frame }),
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable route frame, closing");
                        break;
                    }
                }
            }
            this.do_send(Lost { peer });
        });
        tracing::info!(agent = %m.agent, "route up");
        self.links.insert(peer, Link { agent: m.agent, tx });
        self.changed();
    }
}

impl Handler<Inbound> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: Inbound, _: &mut Self::Context) {
        let Some(link) = self.links.get(&m.peer) else {
            return;
        };
        match m.frame {
            RouteFrame::Interest(delta) => {
                self.remote.apply(m.peer, &delta);
                self.changed();
            }
            RouteFrame::Msg {
                subject,
                reply,
                headers,
                payload,
                queues,
            } => {
                if let Some(deliver) = &self.deliver {
                    deliver.do_send(RoutedMsg {
                        from: link.agent.clone(),
                        subject,
                        reply,
                        headers,
                        payload,
                        queues,
                    });
                }
            }
        }
    }
}

impl Handler<Lost> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: Lost, ctx: &mut Self::Context) {
        let Some(link) = self.links.remove(&m.peer) else {
            return;
        };
        self.remote.remove_peer(m.peer);
        self.changed();
        tracing::info!(agent = %link.agent, "route down");
        self.handle(DialFailed { agent: link.agent }, ctx);
    }
}

impl Handler<DialFailed> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: DialFailed, ctx: &mut Self::Context) {
        self.dialing.remove(&m.agent);
        if !self.wanted.contains_key(&m.agent) {
            return;
        }
        let wait = self.backoff.get(&m.agent).copied().unwrap_or(FIRST_BACKOFF);
        self.backoff
            .insert(m.agent.clone(), (wait * 2).min(MAX_BACKOFF));
        ctx.run_later(wait, move |act, ctx| act.dial(m.agent, ctx));
    }
}

impl Handler<LocalSub> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: LocalSub, _: &mut Self::Context) {
        let delta = if m.subscribe {
            self.local.subscribe(&m.subject, m.queue.as_deref())
        } else {
            self.local.unsubscribe(&m.subject, m.queue.as_deref())
        };
        if let Some(delta) = delta {
            self.broadcast(&RouteFrame::Interest(delta));
        }
    }
}

impl Handler<Forward> for RouteManager {
    type Result = usize;
    fn handle(&mut self, m: Forward, _: &mut Self::Context) -> usize {
        let mut rng = rand::rng();
        let fanout = self.remote.fanout(
            &m.subject,
            |q| m.local_queues.iter().any(|l| l == q),
            |total| rand::Rng::random_range(&mut rng, 0..total),
        );
        let mut sent = 0;
        for copy in fanout.copies {
            if let Some(link) = self.links.get(&copy.peer) {
                let frame = RouteFrame::Msg {
                    subject: m.subject.clone(),
                    reply: m.reply.clone(),
                    headers: m.headers.clone(),
                    payload: m.payload.clone(),
                    queues: copy.queues,
                };
                if link.tx.send(frame).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }
}

impl Handler<RemoteInterestIn> for RouteManager {
    type Result = bool;
    fn handle(&mut self, m: RemoteInterestIn, _: &mut Self::Context) -> bool {
        self.remote.has_interest(&m.0)
    }
}

impl Handler<Routes> for RouteManager {
    type Result = MessageResult<Routes>;
    fn handle(&mut self, _: Routes, _: &mut Self::Context) -> Self::Result {
        let mut agents: Vec<String> = self.links.values().map(|l| l.agent.clone()).collect();
        agents.sort();
        MessageResult(agents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::peer::{PeerCache, PeerSettings};
    use crate::cache::{ReadCache, ReadCacheSettings};
    use crate::config::Secret;
    use crate::control_plane::model::{AgentInfo, AgentPorts};

    /// A peer port (a real peer cache over an empty store) that hands routes to `routes`; its
    /// port.
    fn peer_port(agent: &str, key: &str, routes: Recipient<RouteSocket>) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let cache = ReadCache::new(ReadCacheSettings::default(), store).start();
        PeerCache::new(
            PeerSettings::new("g", Secret::new(key), agent),
            cache,
            Some(listener),
        )
        .with_routes(routes)
        .start();
        port
    }

    struct Inbox(mpsc::UnboundedSender<RoutedMsg>);

    impl Actor for Inbox {
        type Context = Context<Self>;
    }

    impl Handler<RoutedMsg> for Inbox {
        type Result = ();
        fn handle(&mut self, m: RoutedMsg, _: &mut Self::Context) {
            let _ = self.0.send(m);
        }
    }

    fn identity(agent: &str) -> RouteIdentity {
        RouteIdentity {
            group_id: "g".into(),
            group_key: Secret::new("k"),
            agent_id: agent.into(),
            handshake_timeout: Duration::from_secs(5),
        }
    }

    fn info(agent: &str, peer: u16) -> AgentInfo {
        AgentInfo {
            agent_id: agent.into(),
            availability_zone: String::new(),
            advertise_address: "127.0.0.1".into(),
            ports: AgentPorts {
                client: 0,
                peer,
                http: 0,
            },
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
        }
    }

    /// Waits until `check` holds, re-checking at every change of the manager.
    async fn until<F, Fut>(changes: &mut watch::Receiver<u64>, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if check().await {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(waited.is_ok(), "never: {what}");
    }

    #[actix_rt::test]
    async fn interest_and_messages_cross_a_route_which_comes_back_after_a_loss() {
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
        let inbox_addr = Inbox(inbox_tx).start();
        let b_manager = RouteManager::new(identity("b"), Some(inbox_addr.recipient()));
        let b = b_manager.start();
        let b_port = peer_port("b", "k", b.clone().recipient());
        let a_manager = RouteManager::new(identity("a"), None);
        let mut a_changes = a_manager.changes();
        let a = a_manager.start();
        let group = vec![info("a", 1), info("b", b_port)];
        b.do_send(GroupChanged {
            self_id: "b".into(),
            members: group.clone(),
        });
        a.do_send(GroupChanged {
            self_id: "a".into(),
            members: group.clone(),
        });
        until(&mut a_changes, "a route from a to b", || async {
            a.send(Routes).await.expect("routes") == vec!["b".to_owned()]
        })
        .await;
        assert_eq!(b.send(Routes).await.expect("routes"), vec!["a".to_owned()]);

        b.do_send(LocalSub {
            subject: "orders.>".into(),
            queue: None,
            subscribe: true,
        });
        until(&mut a_changes, "b's interest known to a", || async {
            a.send(RemoteInterestIn("orders.eu".into()))
                .await
                .expect("interest")
        })
        .await;
        assert!(
            !a.send(RemoteInterestIn("payments.x".into()))
                .await
                .expect("interest")
        );
        let forward = |subject: &str| Forward {
            subject: subject.into(),
            reply: Some("_INBOX.r".into()),
            headers: None,
            payload: b"hello".to_vec(),
            local_queues: vec![],
        };
        assert_eq!(a.send(forward("payments.x")).await.expect("forward"), 0);
        assert_eq!(a.send(forward("orders.eu")).await.expect("forward"), 1);
        let got = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("in time")
            .expect("a routed message");
        assert_eq!(got.from, "a");
        assert_eq!(got.subject, "orders.eu");
        assert_eq!(got.reply.as_deref(), Some("_INBOX.r"));
        assert_eq!(got.payload, b"hello");

        // b drops the route (a left its view of the group): a withdraws b's interest at once,
        // dials again, and b's interest is replayed on the new route.
        b.do_send(GroupChanged {
            self_id: "b".into(),
            members: vec![info("b", b_port)],
        });
        until(&mut a_changes, "b's interest withdrawn", || async {
            !a.send(RemoteInterestIn("orders.eu".into()))
                .await
                .expect("interest")
        })
        .await;
        until(
            &mut a_changes,
            "the route back with b's interest",
            || async {
                a.send(RemoteInterestIn("orders.eu".into()))
                    .await
                    .expect("interest")
            },
        )
        .await;
        assert_eq!(a.send(Routes).await.expect("routes"), vec!["b".to_owned()]);
    }

    #[actix_rt::test]
    async fn the_peer_port_opens_routes_for_the_group_key_only() {
        let b_manager = RouteManager::new(identity("b"), None);
        let b_changes = b_manager.changes();
        let b = b_manager.start();
        let port = peer_port("b", "k", b.clone().recipient());
        let addr = format!("127.0.0.1:{port}");

        let mut wrong = identity("a");
        wrong.group_key = Secret::new("not the key");
        let refused = link::dial(&addr, &wrong).await;
        assert!(
            matches!(refused, Err(link::LinkError::Refused(ref r)) if r == "bad credentials"),
            "{refused:?}"
        );
        let mut foreign = identity("a");
        foreign.group_id = "h".into();
        let refused = link::dial(&addr, &foreign).await;
        assert!(
            matches!(refused, Err(link::LinkError::Refused(ref r)) if r == "foreign group h"),
            "{refused:?}"
        );
        assert!(b.send(Routes).await.expect("routes").is_empty());
        assert!(!b_changes.has_changed().unwrap_or(true));

        // Kept open: the route lives as long as its socket.
        let (_wire, answered) = link::dial(&addr, &identity("a")).await.expect("a route");
        assert_eq!(answered, "b");
        let mut b_changes = b_changes;
        until(&mut b_changes, "b holds the route", || async {
            b.send(Routes).await.expect("routes") == vec!["a".to_owned()]
        })
        .await;
    }
}
