//! The RouteManager actor: one route to every other agent of the group.
//!
//! Owns: which agents to dial (the group's members with a larger agent id than this one, so each
//! pair has exactly one route), dialling and redialling with backoff (100 ms doubling to 5 s),
//! accepting routes the peer port hands over, and two tasks per route: a writer that drains the
//! link's queue into the socket (many frames per write) and a reader that hands frames to the
//! router in batches, waiting for each. Routes to agents that leave the group are closed.
//! Does not own interest or the fan-out (the router's `RouteTable`: the link's queue is handed
//! to the router in `LinkUp`, and the router owns what goes on it), nor the listener (the peer
//! cache accepts routes on the peer port and hands them over as [`RouteSocket`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::interest::PeerId;
use super::link::{self, RouteIdentity, Wire};
use super::messages::{FromRoute, LinkDown, LinkUp, RouterPorts};
use super::table::LinkHandle;
use super::wire::Outgoing;
use crate::actors::cluster::membership::{GroupChanged, peer_addr};

/// The first and the longest wait before dialling a lost route again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Frames a reader hands to the router at once, at most.
const READ_BATCH: usize = 256;

/// A route the peer port accepted: the other agent passed the route handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RouteSocket {
    pub agent: String,
    /// The zone the other agent said it is in.
    pub zone: String,
    pub wire: Wire,
}

/// The agents this one has a route to, sorted.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<String>")]
pub struct Routes;

#[derive(Message)]
#[rtype(result = "()")]
struct Established {
    agent: String,
    /// Known when accepted (the hello says it); None when dialled (the member list says it).
    zone: Option<String>,
    wire: Wire,
    solicited: bool,
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

pub struct RouteManager {
    me: Arc<RouteIdentity>,
    router: RouterPorts,
    /// Members this agent dials: agent id -> peer address.
    wanted: HashMap<String, String>,
    /// Every member's availability zone (metrics and `/routez` label routes with it).
    zones: HashMap<String, String>,
    dialing: HashSet<String>,
    backoff: HashMap<String, Duration>,
    /// Links up: peer id -> the agent at the other end.
    links: HashMap<PeerId, String>,
    next_peer: PeerId,
    /// Counts every change of routes (tests await it).
    changes: watch::Sender<u64>,
}

impl RouteManager {
    pub fn new(me: RouteIdentity, router: RouterPorts) -> Self {
        Self {
            me: Arc::new(me),
            router,
            wanted: HashMap::new(),
            zones: HashMap::new(),
            dialing: HashSet::new(),
            backoff: HashMap::new(),
            links: HashMap::new(),
            next_peer: 0,
            changes: watch::channel(0).0,
        }
    }

    /// A receiver of the change counter (routes up or down).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn linked(&self, agent: &str) -> bool {
        self.links.values().any(|a| a == agent)
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
                Ok((wire, id)) if id == agent => this.do_send(Established {
                    agent,
                    zone: None,
                    wire,
                    solicited: true,
                }),
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

    fn close(&mut self, peer: PeerId) -> Option<String> {
        let agent = self.links.remove(&peer)?;
        // The router drops the link's queue; the writer then ends and closes the socket.
        self.router.down.do_send(LinkDown { peer });
        self.changed();
        Some(agent)
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
        self.zones = m
            .members
            .iter()
            .map(|a| (a.agent_id.clone(), a.availability_zone.clone()))
            .collect();
        // Routes to agents that left the group are closed.
        let gone: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, agent)| !self.zones.contains_key(*agent))
            .map(|(id, _)| *id)
            .collect();
        for peer in gone {
            if let Some(agent) = self.close(peer) {
                tracing::info!(agent = %agent, "route closed, the agent left the group");
            }
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
                zone: Some(m.zone),
                wire: m.wire,
                solicited: false,
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
        let remote = m.wire.get_ref().peer_addr().ok();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Outgoing>>();
        // Before the reader starts: the router knows the link before its first frame.
        self.router.up.do_send(LinkUp(LinkHandle {
            peer,
            agent: m.agent.clone(),
            zone: m
                .zone
                .or_else(|| self.zones.get(&m.agent).cloned())
                .unwrap_or_default(),
            remote,
            solicited: m.solicited,
            tx,
        }));
        let (mut sink, frames) = link::into_route(m.wire).split();
        let this = ctx.address();
        let down = self.router.down.clone();
        self.router.arbiter.spawn(async move {
            'write: while let Some(first) = rx.recv().await {
                for frame in first {
                    if sink.feed(frame).await.is_err() {
                        break 'write;
                    }
                }
                // Whatever else is queued goes in the same write.
                while let Ok(next) = rx.try_recv() {
                    for frame in next {
                        if sink.feed(frame).await.is_err() {
                            break 'write;
                        }
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            // The queue was dropped (the link closed) or the socket failed: shut the write
            // side, so the other agent sees the route end and closes too.
            let _ = sink.close().await;
            down.do_send(LinkDown { peer });
            this.do_send(Lost { peer });
        });
        let this = ctx.address();
        let router = self.router.clone();
        self.router.arbiter.spawn(async move {
            let mut batches = frames.ready_chunks(READ_BATCH);
            'read: while let Some(batch) = batches.next().await {
                let mut frames = Vec::with_capacity(batch.len());
                let mut failed = false;
                for item in batch {
                    match item {
                        Ok(frame) => frames.push(frame),
                        Err(e) => {
                            tracing::warn!(error = %e, "route read failed, closing");
                            failed = true;
                            break;
                        }
                    }
                }
                if !frames.is_empty()
                    && router
                        .inbound
                        .send(FromRoute { peer, frames })
                        .await
                        .is_err()
                {
                    break 'read;
                }
                if failed {
                    break;
                }
            }
            router.down.do_send(LinkDown { peer });
            this.do_send(Lost { peer });
        });
        tracing::info!(agent = %m.agent, solicited = m.solicited, "route up");
        self.links.insert(peer, m.agent);
        self.changed();
    }
}

impl Handler<Lost> for RouteManager {
    type Result = ();
    fn handle(&mut self, m: Lost, ctx: &mut Self::Context) {
        let Some(agent) = self.close(m.peer) else {
            return;
        };
        tracing::info!(agent = %agent, "route down");
        self.handle(DialFailed { agent }, ctx);
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

impl Handler<Routes> for RouteManager {
    type Result = MessageResult<Routes>;
    fn handle(&mut self, _: Routes, _: &mut Self::Context) -> Self::Result {
        let mut agents: Vec<String> = self.links.values().cloned().collect();
        agents.sort();
        MessageResult(agents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::ingress::router::{
        Deliver, DeliverBatch, Register, Router, Subscribe, Synced,
    };
    use crate::actors::messages::Publish;
    use crate::actors::ops::queries::GetRoutes;
    use crate::actors::read::cache::{ReadCache, ReadCacheSettings};
    use crate::actors::read::peer::{PeerCache, PeerSettings};
    use crate::config::Secret;
    use crate::message::NatsMsg;
    use infinistream_api::control_plane::model::{AgentInfo, AgentPorts};

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

    /// A client connection as the router sees it: what is delivered to it.
    struct Inbox(mpsc::UnboundedSender<Deliver>);

    impl Actor for Inbox {
        type Context = Context<Self>;
    }

    impl Handler<DeliverBatch> for Inbox {
        type Result = ();
        fn handle(&mut self, m: DeliverBatch, _: &mut Self::Context) {
            for deliver in m.0 {
                let _ = self.0.send(deliver);
            }
        }
    }

    impl Handler<Synced> for Inbox {
        type Result = ();
        fn handle(&mut self, _: Synced, _: &mut Self::Context) {}
    }

    fn register(router: &Addr<Router>, conn: u64) -> mpsc::UnboundedReceiver<Deliver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = Inbox(tx).start();
        router.do_send(Register {
            conn,
            addr: inbox.clone().recipient(),
            synced: inbox.recipient(),
            captures: None,
            echo: true,
            no_responders: true,
        });
        rx
    }

    fn identity(agent: &str) -> RouteIdentity {
        RouteIdentity {
            group_id: "g".into(),
            group_key: Secret::new("k"),
            agent_id: agent.into(),
            zone: format!("zone-{agent}"),
            handshake_timeout: Duration::from_secs(5),
        }
    }

    fn info(agent: &str, peer: u16) -> AgentInfo {
        AgentInfo {
            agent_id: agent.into(),
            availability_zone: format!("zone-{agent}"),
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

    /// Waits until `check` holds (polled: interest reaching a router has no event to await).
    async fn until<F, Fut>(what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !check().await {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "never: {what}");
    }

    fn publish(subject: &str) -> Publish {
        Publish {
            origin: Some(1),
            msg: NatsMsg {
                reply: Some("_INBOX.r".into()),
                ..NatsMsg::new(subject, bytes::Bytes::from_static(b"hello"))
            },
            original: true,
            permit: None,
        }
    }

    /// Two agents' routers and route managers over a real peer port: b's subscription is
    /// known to a, a's publish reaches b's subscriber (and only once), a route lost is dialled
    /// again and b's interest replayed on it.
    #[actix_rt::test]
    async fn interest_and_messages_cross_a_route_which_comes_back_after_a_loss() {
        let a_router = Router::new().start();
        let b_router = Router::new().start();
        let mut b_inbox = register(&b_router, 7);
        let mut a_inbox = register(&a_router, 1);
        a_router.do_send(Subscribe {
            conn: 1,
            sid: "r".into(),
            subject: "_INBOX.r".into(),
            queue: None,
        });
        let b = RouteManager::new(identity("b"), RouterPorts::of(&b_router)).start();
        let b_port = peer_port("b", "k", b.clone().recipient());
        let a_manager = RouteManager::new(identity("a"), RouterPorts::of(&a_router));
        let a = a_manager.start();
        let group = vec![info("a", 1), info("b", b_port)];
        for (who, addr) in [("b", &b), ("a", &a)] {
            addr.do_send(GroupChanged {
                self_id: who.into(),
                members: group.clone(),
            });
        }
        until("a route from a to b", || async {
            a.send(Routes).await.expect("routes") == vec!["b".to_owned()]
        })
        .await;
        b_router.do_send(Subscribe {
            conn: 7,
            sid: "s".into(),
            subject: "orders.>".into(),
            queue: None,
        });
        let known = || async {
            let routes = a_router.send(GetRoutes).await.expect("routes");
            routes.len() == 1 && routes[0].subscriptions == 1
        };
        until("b's interest known to a", known).await;
        let routes = a_router.send(GetRoutes).await.expect("routes");
        assert_eq!(routes[0].agent, "b");
        assert_eq!(routes[0].zone, "zone-b", "the dialled agent's zone");
        assert!(routes[0].solicited);
        let at_b = b_router.send(GetRoutes).await.expect("routes");
        assert_eq!(at_b[0].zone, "zone-a", "the zone the dialler said");
        assert!(!at_b[0].solicited);

        // Nobody anywhere: no responders, nothing sent.
        a_router.do_send(publish("payments.x"));
        let answer = tokio::time::timeout(Duration::from_secs(10), a_inbox.recv())
            .await
            .expect("in time")
            .expect("no responders");
        assert_eq!(answer.msg.subject, "_INBOX.r");
        a_router.do_send(publish("orders.eu"));
        let got = tokio::time::timeout(Duration::from_secs(10), b_inbox.recv())
            .await
            .expect("in time")
            .expect("a routed message");
        assert_eq!(got.sid, "s");
        assert_eq!(got.msg.subject, "orders.eu");
        assert_eq!(got.msg.reply.as_deref(), Some("_INBOX.r"));
        assert_eq!(&got.msg.payload[..], b"hello");
        let out = a_router.send(GetRoutes).await.expect("routes")[0].out_msgs;
        assert_eq!(out, 1, "one copy");

        // b drops the route (a left its view of the group): a withdraws b's interest at once,
        // dials again, and b's interest is replayed on the new route.
        b.do_send(GroupChanged {
            self_id: "b".into(),
            members: vec![info("b", b_port)],
        });
        until("the route back with b's interest", || async {
            let routes = a_router.send(GetRoutes).await.expect("routes");
            routes.len() == 1 && routes[0].subscriptions == 1 && routes[0].out_msgs == 0
        })
        .await;
        assert_eq!(a.send(Routes).await.expect("routes"), vec!["b".to_owned()]);
        a_router.do_send(publish("orders.us"));
        let got = tokio::time::timeout(Duration::from_secs(10), b_inbox.recv())
            .await
            .expect("in time")
            .expect("a routed message");
        assert_eq!(got.msg.subject, "orders.us");
        assert!(a_inbox.try_recv().is_err(), "no no-responders for it");
    }

    #[actix_rt::test]
    async fn the_peer_port_opens_routes_for_the_group_key_only() {
        let router = Router::new().start();
        let b_manager = RouteManager::new(identity("b"), RouterPorts::of(&router));
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
        let _ = tokio::time::timeout(Duration::from_secs(10), b_changes.changed()).await;
        assert_eq!(b.send(Routes).await.expect("routes"), vec!["a".to_owned()]);
        assert_eq!(router.send(GetRoutes).await.expect("routes").len(), 1);
    }
}
