//! The Router: who is subscribed to what, and where each published message goes.
//!
//! Owns: client subscriptions (with queue groups), internal subscriptions (the JetStream API),
//! handing the stream captures to every connection (`SetCaptures`), the no-responders answer, and the routes' table (`RouteTable`:
//! the other agents' interest and the links to them, so a message is copied to another agent in
//! the same step that delivers it here). Does not own: connection state (auto-unsubscribe
//! counts, outbound buffers), stream contents, acks, or route sockets (the `RouteManager`).
//!
//! Across agents (`route`): every client subscription is announced to the other agents; a
//! message with interest elsewhere is copied once per interested agent, and a queue group gets it
//! at one member anywhere, each member as likely as another (nats-server 2.15 does the same for a
//! client's message); a message that came over a route goes to client subscriptions here only
//! (one hop; the sender already chose this agent for its queue groups), never to internal
//! subscribers.
//! No-responders is answered only when no agent has interest.
//!
//! A message whose subject a stream captures never comes here: its connection hands it straight
//! to that stream's batcher (the connection keeps the captures the router last sent it). Once it
//! is stored, the sequence client publishes it here with `original: false`, so core subscribers
//! see only stored messages.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use rand::Rng;

use crate::actors::cluster::route::messages::{FromRoute, LinkDown, LinkUp};
use crate::actors::cluster::route::table::RouteTable;
use crate::actors::cluster::route::wire::RouteFrame;
use crate::actors::guard;
use crate::actors::messages::{
    Captures, ChangeStreamRoutes, ConnId, Publish, PublishBatch, SetCaptures, SetStreamRoutes,
};
use crate::actors::ops::budget::BudgetPermit;
use crate::actors::ops::queries::GetRoutes;
use crate::actors::ops::queries::RouteInfo;
use crate::actors::ops::queries::{ConnControl, GetStats, ListConnections, RouterStats};
use crate::protocol::ServerOp;
use crate::protocol::headers;
use infinistream_api::subject::SubjectTree;

pub use crate::message::NatsMsg;

/// Router -> connection: one message for one of its subscriptions.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub sid: ByteString,
    pub msg: NatsMsg,
}

/// Router -> connection: what one handler of the router delivers to one connection, in order
/// (one mailbox message for a whole batch of publishes, not one per message).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DeliverBatch(pub Vec<Deliver>);

/// Connection -> router -> connection: the round trip behind a PONG. Because it comes back through
/// the connection's mailbox, every message the router routed to this connection before it is
/// delivered first, as nats-server guarantees (MSG before PONG).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Sync {
    pub conn: ConnId,
    /// What the connection writes once the round trip is back (a PONG, a verbose `+OK`, an
    /// `-ERR`), after every message routed to it before.
    pub then: ServerOp,
}

/// Router -> connection, through the same mailbox as `Deliver`, so it arrives after every message
/// the router routed to the connection before it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Synced {
    /// The answer to `Sync`: the connection writes `then` now.
    Write(ServerOp),
    /// The `Unsubscribe` of `sid` (generation `generation`) took effect: messages for it that
    /// were routed before the UNSUB have been delivered, none follow.
    Unsubscribed { sid: ByteString, generation: u64 },
}

/// Router -> internal subscriber (the JetStream API): a request addressed to it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InternalMsg {
    pub msg: NatsMsg,
}

/// A connection joins the router (again, after CONNECT, to update its options).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub conn: ConnId,
    pub addr: Recipient<DeliverBatch>,
    pub synced: Recipient<Synced>,
    /// Where the stream captures go: sent at once (the connection starts reading then), and
    /// after every change. None keeps what an earlier `Register` gave.
    pub captures: Option<Recipient<SetCaptures>>,
    pub echo: bool,
    pub no_responders: bool,
}

/// A connection leaves: all its subscriptions go with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deregister {
    pub conn: ConnId,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub conn: ConnId,
    pub sid: ByteString,
    pub subject: ByteString,
    pub queue: Option<ByteString>,
}

/// Ends a subscription once every message published before it was routed (the router's mailbox
/// keeps the connection's order), then confirms with `Synced::Unsubscribed`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub conn: ConnId,
    pub sid: ByteString,
    /// The connection's generation of this sid, echoed in the confirmation.
    pub generation: u64,
}

/// Adds an internal subscriber for `pattern`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeInternal {
    pub pattern: String,
    pub recipient: Recipient<InternalMsg>,
}

/// A connection offers its control address (once, when it starts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterControl {
    pub conn: ConnId,
    pub control: Recipient<ConnControl>,
}

/// Sends `ConnControl` to every connection, in this mailbox's order: whatever the router forwarded
/// to a connection before (acks, messages) reaches it first.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct BroadcastControl(pub ConnControl);

#[derive(Debug, Clone, PartialEq)]
struct ClientSub {
    conn: ConnId,
    sid: ByteString,
    queue: Option<ByteString>,
}

struct ConnEntry {
    addr: Recipient<DeliverBatch>,
    synced: Recipient<Synced>,
    captures: Option<Recipient<SetCaptures>>,
    echo: bool,
    no_responders: bool,
    /// sid -> (subject, queue), to find the tree entry again on UNSUB.
    subs: HashMap<ByteString, (ByteString, Option<ByteString>)>,
}

#[derive(Default)]
pub struct Router {
    conns: HashMap<ConnId, ConnEntry>,
    clients: SubjectTree<ClientSub>,
    internal: SubjectTree<usize>,
    internal_recipients: Vec<Recipient<InternalMsg>>,
    /// The stream captures the connections have (the router itself captures nothing).
    captures: Arc<Captures>,
    /// Scratch space reused for every publish, so routing does not allocate per message.
    scratch: Vec<ClientSub>,
    queues: Vec<(ByteString, Vec<usize>)>,
    controls: HashMap<ConnId, Recipient<ConnControl>>,
    routes: RouteTable,
    /// What the handler running now delivers, per connection; sent when it returns
    /// (`flush_outbox`), so it is empty whenever a handler starts and a `Sync` still comes
    /// back behind every message routed before it.
    outbox: Vec<(ConnId, Vec<Deliver>)>,
    outbox_at: HashMap<ConnId, usize>,
}

/// Adds member `idx` to queue group `queue` in `groups`.
fn add_member(groups: &mut Vec<(ByteString, Vec<usize>)>, queue: &ByteString, idx: usize) {
    match groups.iter_mut().find(|(name, _)| name == queue) {
        Some((_, members)) => members.push(idx),
        None => groups.push((queue.clone(), vec![idx])),
    }
}

/// How many members queue group `name` has among `groups` (local queue groups by member index).
fn members_of(groups: &[(ByteString, Vec<usize>)], name: &str) -> u32 {
    groups
        .iter()
        .find(|(q, _)| &**q == name)
        .map_or(0, |(_, members)| members.len() as u32)
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    fn route(
        &mut self,
        origin: Option<ConnId>,
        msg: NatsMsg,
        original: bool,
        permit: Option<BudgetPermit>,
    ) {
        let mut delivered = false;
        let mut internal_hits: Vec<usize> = Vec::new();
        self.internal
            .for_each_match(&msg.subject, |i| internal_hits.push(*i));
        for i in internal_hits {
            if let Some(r) = self.internal_recipients.get(i) {
                r.do_send(InternalMsg { msg: msg.clone() });
                delivered = true;
            }
        }

        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.clients
            .for_each_match(&msg.subject, |s| scratch.push(s.clone()));
        let mut queues = std::mem::take(&mut self.queues);
        queues.clear();
        for (idx, sub) in scratch.iter().enumerate() {
            if origin == Some(sub.conn) && self.conns.get(&sub.conn).is_some_and(|c| !c.echo) {
                continue;
            }
            match &sub.queue {
                None => {
                    if self.deliver(sub, &msg) {
                        delivered = true;
                    }
                }
                Some(q) => add_member(&mut queues, q, idx),
            }
        }
        // The publisher's permit stays with the copies until they are written to their routes.
        let forwarded = self
            .routes
            .forward(&msg, None, |q| members_of(&queues, q), permit);
        delivered |= self.deliver_to_groups(&scratch, &queues, &forwarded.queues_away, &msg);
        let forwarded = forwarded.copies > 0;
        self.scratch = scratch;
        self.queues = queues;

        // Only a client's own publish can have nobody listening; a stored message re-published
        // for core subscribers has already been answered by its stream.
        if !delivered && !forwarded && original {
            self.no_responders(origin, &msg);
        }
    }

    /// A message from another agent: to every plain client subscription here and one member of
    /// each queue group in `queues` (the sender picked this agent for those), nothing else.
    fn deliver_routed(&mut self, msg: &NatsMsg, to: Option<&ByteString>, queues: &[String]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.clients
            .for_each_match(to.unwrap_or(&msg.subject), |s| scratch.push(s.clone()));
        let mut groups = std::mem::take(&mut self.queues);
        groups.clear();
        for (idx, sub) in scratch.iter().enumerate() {
            match &sub.queue {
                None => {
                    self.deliver(sub, msg);
                }
                Some(q) if queues.iter().any(|name| name == &**q) => {
                    add_member(&mut groups, q, idx)
                }
                Some(_) => {}
            }
        }
        self.deliver_to_groups(&scratch, &groups, &[], msg);
        self.scratch = scratch;
        self.queues = groups;
    }

    /// One member of each queue group in `groups` (member indexes into `subs`) gets `msg`,
    /// except the groups in `away` (another agent was picked for them). Whether any got it.
    fn deliver_to_groups(
        &mut self,
        subs: &[ClientSub],
        groups: &[(ByteString, Vec<usize>)],
        away: &[String],
        msg: &NatsMsg,
    ) -> bool {
        let mut delivered = false;
        let mut rng = rand::rng();
        for (name, members) in groups {
            if members.is_empty() || away.iter().any(|q| q == &**name) {
                continue;
            }
            let pick = members[rng.random_range(0..members.len())];
            delivered |= self.deliver(&subs[pick], msg);
        }
        delivered
    }

    fn deliver(&mut self, sub: &ClientSub, msg: &NatsMsg) -> bool {
        if !self.conns.contains_key(&sub.conn) {
            return false;
        }
        self.push_delivery(
            sub.conn,
            Deliver {
                sid: sub.sid.clone(),
                msg: msg.clone(),
            },
        );
        true
    }

    fn push_delivery(&mut self, conn: ConnId, deliver: Deliver) {
        let outbox = &mut self.outbox;
        let at = *self.outbox_at.entry(conn).or_insert_with(|| {
            outbox.push((conn, Vec::new()));
            outbox.len() - 1
        });
        self.outbox[at].1.push(deliver);
    }

    /// Sends what the handler delivered: one batch per connection.
    fn flush_outbox(&mut self) {
        self.routes.flush();
        self.outbox_at.clear();
        for (conn, batch) in self.outbox.drain(..) {
            if let Some(c) = self.conns.get(&conn) {
                c.addr.do_send(DeliverBatch(batch));
            }
        }
    }

    /// nats-server answers a request nobody received with a 503 status, sent only to the
    /// requester's own subscription that matches the reply subject.
    fn no_responders(&mut self, origin: Option<ConnId>, msg: &NatsMsg) {
        let (Some(conn), Some(reply)) = (origin, msg.reply.as_ref()) else {
            return;
        };
        let Some(entry) = self.conns.get(&conn) else {
            return;
        };
        if !entry.no_responders {
            return;
        }
        let mut sid = None;
        self.clients.for_each_match(reply, |s| {
            if s.conn == conn && sid.is_none() {
                sid = Some(s.sid.clone());
            }
        });
        if let Some(sid) = sid {
            let answer = Deliver {
                sid,
                msg: NatsMsg {
                    subject: reply.clone(),
                    reply: None,
                    headers: Some(no_responders_headers(&msg.subject)),
                    payload: Bytes::new(),
                },
            };
            self.push_delivery(conn, answer);
        }
    }
}

/// `NATS/1.0 503` with the request's subject, byte for byte as nats-server 2.15 sends it.
fn no_responders_headers(subject: &str) -> Bytes {
    let mut h = headers::Headers::with_status(503, None);
    h.insert("Nats-Subject", subject);
    h.encode()
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<Register> for Router {
    type Result = ();
    fn handle(&mut self, m: Register, _: &mut Self::Context) {
        match self.conns.get_mut(&m.conn) {
            Some(e) => {
                e.addr = m.addr;
                e.synced = m.synced;
                e.echo = m.echo;
                e.no_responders = m.no_responders;
                if let Some(captures) = m.captures {
                    captures.do_send(SetCaptures(self.captures.clone()));
                    e.captures = Some(captures);
                }
            }
            None => {
                if let Some(captures) = &m.captures {
                    captures.do_send(SetCaptures(self.captures.clone()));
                }
                self.conns.insert(
                    m.conn,
                    ConnEntry {
                        addr: m.addr,
                        synced: m.synced,
                        echo: m.echo,
                        no_responders: m.no_responders,
                        captures: m.captures,
                        subs: HashMap::new(),
                    },
                );
            }
        }
    }
}

impl Handler<Sync> for Router {
    type Result = ();
    fn handle(&mut self, m: Sync, _: &mut Self::Context) {
        if let Some(entry) = self.conns.get(&m.conn) {
            entry.synced.do_send(Synced::Write(m.then));
        }
    }
}

impl Handler<Deregister> for Router {
    type Result = ();
    fn handle(&mut self, m: Deregister, _: &mut Self::Context) {
        self.controls.remove(&m.conn);
        if let Some(entry) = self.conns.remove(&m.conn) {
            for (sid, (subject, queue)) in entry.subs {
                self.routes.local_sub(&subject, queue.as_deref(), false);
                self.clients.remove(
                    &subject,
                    &ClientSub {
                        conn: m.conn,
                        sid,
                        queue,
                    },
                );
            }
        }
    }
}

impl Handler<Subscribe> for Router {
    type Result = ();
    fn handle(&mut self, m: Subscribe, _: &mut Self::Context) {
        let Some(entry) = self.conns.get_mut(&m.conn) else {
            return;
        };
        // A re-used sid replaces its old subscription, as in nats-server.
        if let Some((old_subject, old_queue)) = entry
            .subs
            .insert(m.sid.clone(), (m.subject.clone(), m.queue.clone()))
        {
            self.routes
                .local_sub(&old_subject, old_queue.as_deref(), false);
            self.clients.remove(
                &old_subject,
                &ClientSub {
                    conn: m.conn,
                    sid: m.sid.clone(),
                    queue: old_queue,
                },
            );
        }
        self.routes.local_sub(&m.subject, m.queue.as_deref(), true);
        self.clients.insert(
            &m.subject,
            ClientSub {
                conn: m.conn,
                sid: m.sid,
                queue: m.queue,
            },
        );
    }
}

impl Handler<Unsubscribe> for Router {
    type Result = ();
    fn handle(&mut self, m: Unsubscribe, _: &mut Self::Context) {
        let Some(entry) = self.conns.get_mut(&m.conn) else {
            return;
        };
        if let Some((subject, queue)) = entry.subs.remove(&m.sid) {
            self.routes.local_sub(&subject, queue.as_deref(), false);
            self.clients.remove(
                &subject,
                &ClientSub {
                    conn: m.conn,
                    sid: m.sid.clone(),
                    queue,
                },
            );
        }
        entry.synced.do_send(Synced::Unsubscribed {
            sid: m.sid,
            generation: m.generation,
        });
    }
}

impl Handler<Publish> for Router {
    type Result = ();
    fn handle(&mut self, m: Publish, _: &mut Self::Context) {
        guard::catch("router", || {
            self.route(m.origin, m.msg, m.original, m.permit)
        });
        self.flush_outbox();
    }
}

impl Handler<PublishBatch> for Router {
    type Result = ();
    fn handle(&mut self, m: PublishBatch, _: &mut Self::Context) {
        for p in m.0 {
            guard::catch("router", || {
                self.route(p.origin, p.msg, p.original, p.permit)
            });
        }
        self.flush_outbox();
    }
}

impl Handler<SubscribeInternal> for Router {
    type Result = ();
    fn handle(&mut self, m: SubscribeInternal, _: &mut Self::Context) {
        self.internal_recipients.push(m.recipient);
        self.internal
            .insert(&m.pattern, self.internal_recipients.len() - 1);
    }
}

impl Handler<SetStreamRoutes> for Router {
    type Result = ();
    fn handle(&mut self, m: SetStreamRoutes, _: &mut Self::Context) {
        // Sent before any message routed after this one (a create's answer among them), so a
        // client that learns of a stream publishes to it with its connection's captures updated.
        self.captures = Arc::new(Captures::new(m.routes));
        for captures in self.conns.values().filter_map(|c| c.captures.as_ref()) {
            captures.do_send(SetCaptures(self.captures.clone()));
        }
    }
}

impl Handler<ChangeStreamRoutes> for Router {
    type Result = ();
    fn handle(&mut self, m: ChangeStreamRoutes, _: &mut Self::Context) {
        // As SetStreamRoutes: before any message routed after it.
        self.captures = Arc::new(self.captures.changed(&m.remove, m.add));
        for captures in self.conns.values().filter_map(|c| c.captures.as_ref()) {
            captures.do_send(SetCaptures(self.captures.clone()));
        }
    }
}

impl Handler<GetStats> for Router {
    type Result = RouterStats;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> RouterStats {
        RouterStats {
            connections: self.conns.len(),
            subscriptions: self.clients.len(),
            stream_routes: self.captures.len(),
        }
    }
}

impl Handler<RegisterControl> for Router {
    type Result = ();
    fn handle(&mut self, m: RegisterControl, _: &mut Self::Context) {
        self.controls.insert(m.conn, m.control);
    }
}

impl Handler<BroadcastControl> for Router {
    type Result = usize;
    fn handle(&mut self, m: BroadcastControl, _: &mut Self::Context) -> usize {
        for c in self.controls.values() {
            c.do_send(m.0);
        }
        self.controls.len()
    }
}

impl Handler<ListConnections> for Router {
    type Result = Vec<Recipient<ConnControl>>;
    fn handle(&mut self, _: ListConnections, _: &mut Self::Context) -> Self::Result {
        let mut ids: Vec<&ConnId> = self.controls.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| self.controls.get(id).cloned())
            .collect()
    }
}

/// JetStream consumers -> router: delivers `msgs`, in order (each keeping its own subject, as
/// nats-server shows the stored message's subject), to the client subscriptions matching `to`
/// (a pull request's reply subject or a push consumer's deliver subject), one member per queue
/// group for each. A claim's messages travel together: one subscription match and one batch
/// per receiving connection, not one of each per message. Answers whether anyone received them.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct DeliverTo {
    pub to: ByteString,
    pub msgs: Vec<NatsMsg>,
}

/// Whether any client subscription matches `subject` (push consumers look for interest).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct HasInterest {
    pub subject: String,
}

/// For each subject, whether any client subscription matches it (pull requests whose requester
/// has gone are dropped).
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct InterestIn {
    pub subjects: Vec<ByteString>,
}

impl Handler<InterestIn> for Router {
    type Result = Vec<bool>;
    fn handle(&mut self, m: InterestIn, _: &mut Self::Context) -> Vec<bool> {
        m.subjects
            .iter()
            .map(|s| self.clients.has_match(s))
            .collect()
    }
}

impl Handler<DeliverTo> for Router {
    type Result = bool;
    fn handle(&mut self, m: DeliverTo, _: &mut Self::Context) -> bool {
        let mut subs: Vec<ClientSub> = Vec::new();
        self.clients.for_each_match(&m.to, |s| subs.push(s.clone()));
        let mut delivered = false;
        let mut groups: Vec<(ByteString, Vec<usize>)> = Vec::new();
        for (idx, sub) in subs.iter().enumerate() {
            if let Some(q) = &sub.queue {
                add_member(&mut groups, q, idx);
            }
        }
        for msg in &m.msgs {
            for sub in subs.iter().filter(|s| s.queue.is_none()) {
                delivered |= self.deliver(sub, msg);
            }
            // A deliver subject may be subscribed on another agent too (a deliver group spread
            // over agents): the stored message is copied there, addressed to `to`.
            let forwarded = self
                .routes
                .forward(msg, Some(&m.to), |q| members_of(&groups, q), None);
            delivered |= self.deliver_to_groups(&subs, &groups, &forwarded.queues_away, msg);
            delivered |= forwarded.copies > 0;
        }
        self.flush_outbox();
        delivered
    }
}

impl Handler<HasInterest> for Router {
    type Result = bool;
    fn handle(&mut self, m: HasInterest, _: &mut Self::Context) -> bool {
        let mut any = false;
        self.clients.for_each_match(&m.subject, |_| any = true);
        any
    }
}

impl Handler<LinkUp> for Router {
    type Result = ();
    fn handle(&mut self, m: LinkUp, _: &mut Self::Context) {
        self.routes.up(m.0);
    }
}

impl Handler<LinkDown> for Router {
    type Result = ();
    fn handle(&mut self, m: LinkDown, _: &mut Self::Context) {
        self.routes.down(m.peer);
    }
}

impl Handler<FromRoute> for Router {
    type Result = ();
    fn handle(&mut self, m: FromRoute, _: &mut Self::Context) {
        self.routes.touch(m.peer);
        for frame in m.frames {
            match frame {
                RouteFrame::Interest(delta) => self.routes.apply(m.peer, &delta),
                RouteFrame::Msg { msg, to, queues } => {
                    if self.routes.received(m.peer, msg.size()) {
                        guard::catch("router", || self.deliver_routed(&msg, to.as_ref(), &queues));
                    }
                }
            }
        }
        self.flush_outbox();
    }
}

impl Handler<GetRoutes> for Router {
    type Result = Vec<RouteInfo>;
    fn handle(&mut self, _: GetRoutes, _: &mut Self::Context) -> Vec<RouteInfo> {
        self.routes.routes()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::actors::messages::StreamPublish;

    /// What a fake connection saw.
    #[derive(Debug)]
    enum Seen {
        Deliver(String, String),
        Captures(usize),
    }

    /// Stands in for a connection: records deliveries and capture tables.
    struct FakeConn(mpsc::UnboundedSender<Seen>);

    impl Actor for FakeConn {
        type Context = Context<Self>;
    }

    impl Handler<DeliverBatch> for FakeConn {
        type Result = ();
        fn handle(&mut self, m: DeliverBatch, _: &mut Self::Context) {
            for d in m.0 {
                let _ = self
                    .0
                    .send(Seen::Deliver(d.sid.to_string(), d.msg.subject.to_string()));
            }
        }
    }

    impl Handler<Synced> for FakeConn {
        type Result = ();
        fn handle(&mut self, _: Synced, _: &mut Self::Context) {}
    }

    impl Handler<SetCaptures> for FakeConn {
        type Result = ();
        fn handle(&mut self, m: SetCaptures, _: &mut Self::Context) {
            let _ = self.0.send(Seen::Captures(m.0.len()));
        }
    }

    /// Stands in for a batcher.
    struct FakeBatcher;

    impl Actor for FakeBatcher {
        type Context = Context<Self>;
    }

    impl Handler<StreamPublish> for FakeBatcher {
        type Result = ();
        fn handle(&mut self, _: StreamPublish, _: &mut Self::Context) {}
    }

    fn connect(router: &Addr<Router>, conn: ConnId) -> mpsc::UnboundedReceiver<Seen> {
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = FakeConn(tx).start();
        router.do_send(Register {
            conn,
            addr: fake.clone().recipient(),
            synced: fake.clone().recipient(),
            captures: Some(fake.recipient()),
            echo: false,
            no_responders: false,
        });
        rx
    }

    fn publish(origin: ConnId, subject: &str) -> Publish {
        Publish {
            origin: Some(origin),
            msg: NatsMsg::new(subject, Bytes::from_static(b"x")),
            original: true,
            permit: None,
        }
    }

    #[actix_rt::test]
    async fn delivers_to_matching_subscribers_but_not_back_to_a_publisher_without_echo() {
        let router = Router::new().start();
        let mut a = connect(&router, 1);
        let mut b = connect(&router, 2);
        for (conn, sid, subject) in [
            (1, "s1", "orders.*"),
            (2, "s2", "orders.>"),
            (2, "s3", "other"),
        ] {
            router.do_send(Subscribe {
                conn,
                sid: sid.into(),
                subject: subject.into(),
                queue: None,
            });
        }
        router.do_send(publish(1, "orders.new"));
        let stats = router.send(GetStats).await.expect("stats");

        assert_eq!((stats.connections, stats.subscriptions), (2, 3));
        // Each connection learns the (empty) captures as it registers, before anything else.
        assert!(matches!(a.recv().await, Some(Seen::Captures(0))));
        assert!(matches!(b.recv().await, Some(Seen::Captures(0))));
        match b.recv().await {
            Some(Seen::Deliver(sid, subject)) => {
                assert_eq!((&*sid, &*subject), ("s2", "orders.new"))
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
        assert!(a.try_recv().is_err(), "no echo to the publisher");
        assert!(
            b.try_recv().is_err(),
            "nothing for the non-matching subscription"
        );
    }

    #[actix_rt::test]
    async fn stream_captures_go_to_every_connection_and_the_router_captures_nothing() {
        let router = Router::new().start();
        let mut a = connect(&router, 1);
        let mut b = connect(&router, 2);
        router.do_send(Subscribe {
            conn: 2,
            sid: "s".into(),
            subject: ">".into(),
            queue: None,
        });
        let batcher = FakeBatcher.start();
        router.do_send(SetStreamRoutes {
            routes: vec![("orders.>".into(), batcher.recipient())],
        });
        // A publish that reaches the router is delivered as core NATS even on a stream subject:
        // capturing is the connection's job.
        router.do_send(publish(1, "orders.1"));
        let stats = router.send(GetStats).await.expect("stats");

        assert_eq!(stats.stream_routes, 1);
        for rx in [&mut a, &mut b] {
            assert!(matches!(rx.recv().await, Some(Seen::Captures(0))));
            assert!(matches!(rx.recv().await, Some(Seen::Captures(1))));
        }
        assert!(matches!(b.recv().await, Some(Seen::Deliver(_, s)) if s == "orders.1"));
    }
}
