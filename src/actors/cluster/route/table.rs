//! The router's side of the routes: which links are up, what interest travels on them, and
//! where a published message must be copied.
//!
//! Owns, inside the router actor (so deciding a fan-out and no-responders is synchronous, with
//! no hop): the links the route manager handed over (their queues, counters and caps), this
//! agent's interest (`LocalInterest`: replayed to a new link first, then every delta in order)
//! and the other agents' (`RemoteInterest`: dropped with their link). Does not own sockets,
//! dialling or handshakes (`manager`), nor local delivery (the router's).
//!
//! Memory: a message a client published holds its share of the in-flight budget until the
//! route's writer has copied it, so a slow route slows the publishers (as nats-server stalls the
//! producers of a slow route) instead of growing a queue. A message no publisher waits for (a
//! stored copy, a consumer's delivery) takes a share of the link's own cap (64 MiB, nats-server's
//! default `max_pending`); when the cap is spent the copy is dropped and counted (core NATS is at
//! most once), which the log says once per burst. Interest deltas are never dropped: when one
//! cannot be queued the link is closed, and the new one starts from a full snapshot.

use crate::actors::ops::queries::RouteInfo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytestring::ByteString;
use prometheus::IntCounter;
use tokio::sync::{Semaphore, mpsc};

use super::interest::{LocalInterest, PeerId, RemoteInterest};
use super::wire::{Hold, Outgoing, RouteFrame};
use crate::actors::ops::budget::BudgetPermit;
use crate::message::NatsMsg;

/// nats-server's default `max_pending` for a connection, here per link.
pub const LINK_CAP_BYTES: usize = 64 * 1024 * 1024;

/// A link the route manager opened: its writer's queue and who is at the other end.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub peer: PeerId,
    pub agent: String,
    pub zone: String,
    pub remote: Option<SocketAddr>,
    /// Whether this agent dialled it (nats-server's `did_solicit`).
    pub solicited: bool,
    /// To the link's writer: the frames of one router handler at a time.
    pub tx: mpsc::UnboundedSender<Vec<Outgoing>>,
}

struct Counters {
    msgs_in: IntCounter,
    msgs_out: IntCounter,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    dropped: IntCounter,
}

impl Counters {
    fn for_zone(zone: &str) -> Self {
        let zone = if zone.is_empty() { "none" } else { zone };
        let msgs = &crate::actors::ops::metrics::ROUTED_MSGS;
        let bytes = &crate::actors::ops::metrics::ROUTED_BYTES;
        Self {
            msgs_in: msgs.with_label_values(&["in", zone]),
            msgs_out: msgs.with_label_values(&["out", zone]),
            bytes_in: bytes.with_label_values(&["in", zone]),
            bytes_out: bytes.with_label_values(&["out", zone]),
            dropped: crate::actors::ops::metrics::ROUTE_DROPPED.with_label_values(&[zone]),
        }
    }
}

struct Link {
    handle: LinkHandle,
    cap: Arc<Semaphore>,
    counters: Counters,
    info: RouteInfo,
    /// Frames of the router's current handler, handed to the writer in one go by `flush`.
    queued: Vec<Outgoing>,
}

impl Link {
    fn send(&mut self, frame: RouteFrame, hold: Hold) {
        self.queued.push(Outgoing { frame, hold });
    }

    /// Hands the queued frames to the writer; false if the link's writer is gone.
    fn flush(&mut self) -> bool {
        if self.queued.is_empty() {
            return true;
        }
        self.info.last_activity = SystemTime::now();
        self.handle
            .tx
            .send(std::mem::take(&mut self.queued))
            .is_ok()
    }
}

/// What [`RouteTable::forward`] did with a message.
#[derive(Debug, Default)]
pub struct Forwarded {
    /// How many agents a copy was queued for.
    pub copies: usize,
    /// The queue groups another agent was picked for: no member here gets the message.
    pub queues_away: Vec<String>,
}

#[derive(Default)]
pub struct RouteTable {
    links: HashMap<PeerId, Link>,
    local: LocalInterest,
    remote: RemoteInterest,
}

impl RouteTable {
    /// A new link: this agent's whole interest goes first, then every delta after it.
    pub fn up(&mut self, handle: LinkHandle) {
        let now = SystemTime::now();
        let link = Link {
            counters: Counters::for_zone(&handle.zone),
            cap: Arc::new(Semaphore::new(LINK_CAP_BYTES)),
            info: RouteInfo {
                peer: handle.peer,
                agent: handle.agent.clone(),
                zone: handle.zone.clone(),
                remote: handle.remote,
                solicited: handle.solicited,
                start: now,
                last_activity: now,
                in_msgs: 0,
                out_msgs: 0,
                in_bytes: 0,
                out_bytes: 0,
                dropped_msgs: 0,
                pending_bytes: 0,
                subscriptions: 0,
            },
            handle,
            queued: Vec::new(),
        };
        let mut link = link;
        for delta in self.local.snapshot() {
            link.send(RouteFrame::Interest(delta), Hold::None);
        }
        link.flush();
        crate::actors::ops::metrics::ROUTES.inc();
        if let Some(old) = self.links.insert(link.handle.peer, link) {
            // Never expected (peer ids are not reused); keep the gauge true if it happens.
            crate::actors::ops::metrics::ROUTES.dec();
            self.remote.remove_peer(old.handle.peer);
        }
    }

    /// A link is gone: what its agent said is forgotten. Whether it was known.
    pub fn down(&mut self, peer: PeerId) -> bool {
        self.remote.remove_peer(peer);
        let known = self.links.remove(&peer).is_some();
        if known {
            crate::actors::ops::metrics::ROUTES.dec();
        }
        known
    }

    /// A local subscription came (`subscribe`) or went; the others are told if that changes
    /// this agent's interest.
    pub fn local_sub(&mut self, subject: &str, queue: Option<&str>, subscribe: bool) {
        let delta = if subscribe {
            self.local.subscribe(subject, queue)
        } else {
            self.local.unsubscribe(subject, queue)
        };
        let Some(delta) = delta else {
            return;
        };
        for link in self.links.values_mut() {
            link.send(RouteFrame::Interest(delta.clone()), Hold::None);
        }
        self.flush();
    }

    /// Hands every link's queued frames to its writer (the router calls it when a handler
    /// ends, so frames of one handler go out in one write); a link whose writer is gone is
    /// taken down.
    pub fn flush(&mut self) {
        let mut broken = Vec::new();
        for (peer, link) in &mut self.links {
            if !link.flush() {
                broken.push(*peer);
            }
        }
        for peer in broken {
            self.down(peer);
        }
    }

    /// What another agent said about its interest.
    pub fn apply(&mut self, peer: PeerId, delta: &super::interest::InterestDelta) {
        if let Some(link) = self.links.get_mut(&peer) {
            self.remote.apply(peer, delta);
            link.info.subscriptions = self.remote.count_of(peer);
        }
    }

    /// Counts a message that came in over `peer`'s link; false if that link is not known
    /// (anymore), and then the message is not delivered.
    pub fn received(&mut self, peer: PeerId, bytes: usize) -> bool {
        let Some(link) = self.links.get_mut(&peer) else {
            return false;
        };
        link.counters.msgs_in.inc();
        link.counters.bytes_in.inc_by(bytes as u64);
        link.info.in_msgs += 1;
        link.info.in_bytes += bytes as u64;
        true
    }

    /// Something came in over `peer`'s link (once per batch of frames: the clock is not read
    /// per message).
    pub fn touch(&mut self, peer: PeerId) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.info.last_activity = SystemTime::now();
        }
    }

    /// Copies `msg` to every agent interested in `to` (its own subject when None), once each;
    /// `local_members(queue)` is how many members a queue group has here (a group goes to one
    /// member anywhere). `permit`, the publisher's share of the in-flight budget, is kept until
    /// every copy is written.
    pub fn forward(
        &mut self,
        msg: &NatsMsg,
        to: Option<&ByteString>,
        local_members: impl Fn(&str) -> u32,
        permit: Option<BudgetPermit>,
    ) -> Forwarded {
        if self.links.is_empty() {
            return Forwarded::default();
        }
        let mut rng = rand::rng();
        let subject = to.unwrap_or(&msg.subject);
        let fanout = self.remote.fanout(subject, local_members, |total| {
            rand::Rng::random_range(&mut rng, 0..total)
        });
        if fanout.copies.is_empty() {
            return Forwarded::default();
        }
        let queues_away = fanout.queues_away();
        // One copy keeps the permit itself; several share it.
        let (mut single, shared) = match permit {
            Some(p) if fanout.copies.len() == 1 => (Some(p), None),
            Some(p) => (None, Some(Arc::new(p))),
            None => (None, None),
        };
        let size = msg.size();
        let mut sent = 0;
        for copy in fanout.copies {
            let Some(link) = self.links.get_mut(&copy.peer) else {
                continue;
            };
            let hold = match (single.take(), &shared) {
                (Some(p), _) => Hold::Owned { _permit: p },
                (None, Some(p)) => Hold::Budget { _permit: p.clone() },
                (None, None) => {
                    let cost = size.clamp(1, LINK_CAP_BYTES) as u32;
                    match link.cap.clone().try_acquire_many_owned(cost) {
                        Ok(p) => Hold::Cap { _permit: p },
                        Err(_) => {
                            link.counters.dropped.inc();
                            link.info.dropped_msgs += 1;
                            // Identical warnings are written once per burst (logging::quiet).
                            tracing::warn!(
                                agent = %link.handle.agent,
                                pending_bytes = LINK_CAP_BYTES,
                                "route is a slow consumer, message dropped"
                            );
                            continue;
                        }
                    }
                }
            };
            let frame = RouteFrame::Msg {
                msg: msg.clone(),
                to: to.cloned(),
                queues: copy.queues,
            };
            link.send(frame, hold);
            link.counters.msgs_out.inc();
            link.counters.bytes_out.inc_by(size as u64);
            link.info.out_msgs += 1;
            link.info.out_bytes += size as u64;
            sent += 1;
        }
        Forwarded {
            copies: sent,
            queues_away,
        }
    }

    /// Every link, by peer id.
    pub fn routes(&self) -> Vec<RouteInfo> {
        let mut all: Vec<RouteInfo> = self
            .links
            .values()
            .map(|l| RouteInfo {
                pending_bytes: LINK_CAP_BYTES.saturating_sub(l.cap.available_permits()),
                ..l.info.clone()
            })
            .collect();
        all.sort_by_key(|r| r.peer);
        all
    }
}
