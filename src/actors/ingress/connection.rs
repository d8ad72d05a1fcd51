//! One actor per TCP client: the session.
//!
//! Owns: the socket (a framed reader fed in as an actor stream, and the write half with an outbound
//! buffer), the client's CONNECT options, its subscriptions' auto-unsubscribe counts, keepalive
//! pings, and slow-consumer detection. Does not own: routing (the `Router` decides who gets a
//! message) or storage (batchers).
//!
//! Backpressure: before a PUB/HPUB is handed to the actor, the reader takes its share of the agent's
//! in-flight budget; when none is left the reader is not polled, so the socket is not read.
//! Outbound bytes accumulate in one buffer and go out in one write at a time, which coalesces many
//! MSGs per syscall; a client whose pending output passes `max_pending` is a slow consumer and is
//! dropped, as nats-server drops it, without stalling anyone else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use bytestring::ByteString;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::{Encoder, FramedRead};

use crate::actors::ingress::burst::Bursts;
use crate::actors::ingress::router::{
    Deliver, DeliverBatch, Deregister, NatsMsg, Register, RegisterControl, Router, Subscribe, Sync,
    Synced, Unsubscribe,
};
use crate::actors::messages::{
    Captures, ConnId, Publish, PublishBatch, SetCaptures, StreamPublish,
};
use crate::actors::ops::budget::{BudgetPermit, InflightBudget};
use crate::actors::ops::metrics;
use crate::actors::ops::queries::{ConnControl, ConnInfo};
use crate::protocol::codec::HeadersFlag;
use crate::protocol::info::{ConnectInfo, ServerInfo};
use crate::protocol::{ClientOp, NatsCodec, ProtocolError, ServerOp};
use infinistream_api::subject;

/// What every connection of one agent shares (read-only).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// INFO as sent to every client; `client_id`/`client_ip` are filled per connection.
    pub info: ServerInfo,
    pub max_payload: usize,
    pub max_control_line: usize,
    /// nats-server's `max_pending` (64 MiB by default).
    pub max_pending: usize,
    pub ping_interval: Duration,
    pub max_pings_out: u32,
    pub budget: InflightBudget,
}

impl ConnectionSettings {
    pub fn new(info: ServerInfo, budget: InflightBudget) -> Self {
        Self {
            max_payload: info.max_payload,
            info,
            max_control_line: 4096,
            max_pending: 64 * 1024 * 1024,
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            budget,
        }
    }
}

type Frame = Result<(ClientOp, Option<BudgetPermit>), ProtocolError>;

/// At most this many frames are handled as one burst (one mailbox message to the router).
const READ_BURST: usize = 256;

struct SubState {
    max: Option<u64>,
    delivered: u64,
    /// Which SUB of this sid this is (a sid may be reused once unsubscribed).
    generation: u64,
    /// The client sent UNSUB: messages routed before it are still delivered, until the router
    /// confirms (`Synced::Unsubscribed`), as nats-server applies a connection's ops in order.
    unsubscribed: bool,
}

pub struct Connection {
    id: ConnId,
    peer: SocketAddr,
    router: Addr<Router>,
    settings: Arc<ConnectionSettings>,
    codec: NatsCodec,
    opts: ConnectInfo,
    /// Tells the reader's decoder whether CONNECT turned headers on (HPUB is refused until then).
    headers: HeadersFlag,
    /// nats-server follows the first PONG with an INFO for clients of protocol 1.
    first_pong_sent: bool,
    subs: HashMap<ByteString, SubState>,
    /// None while a write is in flight (the write future owns it).
    writer: Option<OwnedWriteHalf>,
    out: BytesMut,
    writing: usize,
    pings_out: u32,
    /// Something went to the router since the last PING: answer the next PING through it.
    routed_since_sync: bool,
    /// Answers on their way round through the router (`write_in_order`).
    syncs_out: u32,
    /// Set once we decided to close: flush what is buffered, then stop.
    closing: bool,
    /// Held until `started` hands it to the actor's context as a stream.
    reader: Option<tokio::net::tcp::OwnedReadHalf>,
    /// The reader stream, cancelled in lame-duck mode.
    reading: Option<SpawnHandle>,
    /// Publishes read from the socket but not yet handed to the router: sent as one batch at
    /// the end of each read burst, and before any other message to the router, so everything
    /// this connection sends still reaches the router in order.
    publishes: Vec<Publish>,
    /// The stream captures as the router last sent them: a captured publish goes straight to
    /// its stream's batcher. The socket is read only once the first arrives (`SetCaptures`).
    captures: Arc<Captures>,
    stats: SessionStats,
}

/// Per-session counters for `/connz`.
struct SessionStats {
    start: std::time::SystemTime,
    last_activity: std::time::SystemTime,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
}

impl Connection {
    pub fn new(
        id: ConnId,
        stream: TcpStream,
        peer: SocketAddr,
        router: Addr<Router>,
        settings: Arc<ConnectionSettings>,
    ) -> Self {
        let (read, write) = stream.into_split();
        let mut codec = NatsCodec::new(settings.max_payload);
        codec.max_control_line = settings.max_control_line;
        Self {
            id,
            peer,
            router,
            settings,
            codec,
            opts: ConnectInfo::default(),
            headers: HeadersFlag::default(),
            first_pong_sent: false,
            subs: HashMap::new(),
            writer: Some(write),
            out: BytesMut::with_capacity(16 * 1024),
            writing: 0,
            pings_out: 0,
            routed_since_sync: false,
            syncs_out: 0,
            closing: false,
            reader: Some(read),
            reading: None,
            publishes: Vec::new(),
            captures: Arc::default(),
            stats: SessionStats {
                start: std::time::SystemTime::now(),
                last_activity: std::time::SystemTime::now(),
                in_msgs: 0,
                out_msgs: 0,
                in_bytes: 0,
                out_bytes: 0,
            },
        }
    }

    fn send(&mut self, op: ServerOp) {
        if self.closing {
            return;
        }
        if let Err(e) = self.codec.encode(op, &mut self.out) {
            tracing::warn!(cid = self.id, error = %e, "encoding a frame failed");
        }
    }

    /// Writes the buffer out, one write at a time.
    /// Sends `m` to the router behind the publishes read before it.
    fn tell_router<M>(&mut self, m: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Router: Handler<M>,
    {
        self.hand_over_publishes();
        self.router.do_send(m);
    }

    fn hand_over_publishes(&mut self) {
        match self.publishes.len() {
            0 => {}
            1 => {
                if let Some(p) = self.publishes.pop() {
                    self.router.do_send(p);
                }
            }
            _ => self
                .router
                .do_send(PublishBatch(std::mem::take(&mut self.publishes))),
        }
    }

    /// A client's publish: to its stream's batcher when a stream captures it (nothing comes
    /// back on this connection until its ack), else to the router with this burst's others.
    fn publish(&mut self, msg: NatsMsg, permit: Option<BudgetPermit>) {
        if let Some(batcher) = self.captures.batcher_for(&msg.subject) {
            // Fields recorded later: the seal and object that store it (`flusher`).
            let span = tracing::debug_span!(
                "publish",
                cid = self.id,
                n = self.stats.in_msgs,
                seal = tracing::field::Empty,
                object_id = tracing::field::Empty,
            );
            span.in_scope(|| tracing::debug!(subject = %msg.subject, "publish captured"));
            // The batcher's mailbox is bounded by the in-flight budget the permit holds.
            batcher.do_send(StreamPublish {
                origin: Some(self.id),
                msg,
                permit,
                span,
            });
            return;
        }
        self.routed_since_sync = true;
        self.publishes.push(Publish {
            origin: Some(self.id),
            msg,
            original: true,
            permit,
        });
    }

    /// Starts reading the socket (once: on the first `SetCaptures`, so no publish is read
    /// before the connection knows which streams capture what).
    fn start_reading(&mut self, ctx: &mut Context<Self>) {
        let Some(read) = self.reader.take() else {
            return;
        };
        let budget = self.settings.budget.clone();
        let mut codec =
            NatsCodec::new(self.settings.max_payload).with_headers_flag(self.headers.clone());
        codec.max_control_line = self.settings.max_control_line;
        let frames = FramedRead::new(read, codec).then(move |res| {
            let budget = budget.clone();
            async move {
                match res {
                    Ok(op @ ClientOp::Pub { .. }) => {
                        let size = match &op {
                            ClientOp::Pub {
                                subject,
                                headers,
                                payload,
                                ..
                            } => {
                                subject.len()
                                    + headers.as_ref().map_or(0, |h| h.len())
                                    + payload.len()
                            }
                            _ => 0,
                        };
                        let permit = match budget.try_acquire(size) {
                            Some(p) => p,
                            None => {
                                metrics::BACKPRESSURE_PAUSES.inc();
                                budget.acquire(size).await
                            }
                        };
                        Ok((op, Some(permit)))
                    }
                    other => other.map(|op| (op, None)),
                }
            }
        });
        // What one read made ready is handled as one burst: its publishes go to the router
        // as one batch (a frame still waiting for budget ends the burst, so a burst never
        // holds permits while waiting for more). A CONNECT ends its burst: whether it
        // negotiated headers decides how the frames after it are decoded.
        let bursts = Bursts::new(frames, READ_BURST, |f: &Frame| {
            matches!(f, Ok((ClientOp::Connect(_), _)))
        });
        self.reading = Some(ctx.add_stream(bursts));
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.out.is_empty() {
            if self.closing && self.writer.is_some() {
                ctx.stop();
            }
            return;
        }
        if self.out.len() + self.writing > self.settings.max_pending && !self.closing {
            tracing::warn!(
                cid = self.id,
                peer = %self.peer,
                pending = self.out.len() + self.writing,
                "slow consumer detected, closing connection"
            );
            metrics::SLOW_CONSUMERS.inc();
            self.out.clear();
            self.closing = true;
            ctx.stop();
            return;
        }
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let buf = self.out.split().freeze();
        self.writing = buf.len();
        metrics::BYTES_OUT.inc_by(buf.len() as u64);
        let fut = async move {
            let res = writer.write_all(&buf).await;
            (writer, res)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(|(writer, res), act, ctx| match res {
                    Ok(()) => {
                        act.writer = Some(writer);
                        act.writing = 0;
                        act.flush(ctx);
                    }
                    Err(e) => {
                        tracing::debug!(cid = act.id, error = %e, "write failed, closing");
                        ctx.stop();
                    }
                }),
        );
    }

    /// Sends `-ERR '<text>'` and closes once it is written.
    fn fatal(&mut self, text: &str, ctx: &mut Context<Self>) {
        tracing::debug!(cid = self.id, peer = %self.peer, error = text, "closing connection on protocol error");
        self.send(ServerOp::Err(text.to_string()));
        self.closing = true;
        self.flush(ctx);
    }

    fn ok(&mut self) {
        if self.opts.verbose {
            self.write_in_order(ServerOp::Ok);
        }
    }

    /// Writes an answer to one of the client's commands after every message that its earlier
    /// commands produced for this connection (nats-server writes them inline, in order): once a
    /// PUB was routed, or while an earlier answer is still on that round trip, the answer goes
    /// round through the router (`Sync`) and comes back behind those messages.
    fn write_in_order(&mut self, op: ServerOp) {
        if self.routed_since_sync || self.syncs_out > 0 {
            self.routed_since_sync = false;
            self.syncs_out += 1;
            self.tell_router(Sync {
                conn: self.id,
                then: op,
            });
        } else {
            self.write_now(op);
        }
    }

    fn write_now(&mut self, op: ServerOp) {
        match op {
            ServerOp::Pong => self.pong(),
            other => self.send(other),
        }
    }

    /// Closes without an `-ERR`, as nats-server does for input it cannot parse; what was already
    /// answered (say `+OK`s in verbose mode) still goes out first.
    fn close_silently(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        self.flush(ctx);
    }

    /// The INFO this connection is sent: the agent's, with the client's id and address.
    fn info_json(&self, connect_info: bool) -> Option<bytes::Bytes> {
        let mut info = self.settings.info.clone();
        info.client_id = self.id;
        info.client_ip = self.peer.ip().to_string();
        if connect_info {
            info.connect_info = true;
            info.remote_account = Some("$G".to_string());
        }
        match serde_json::to_vec(&info) {
            Ok(json) => Some(json.into()),
            Err(e) => {
                tracing::error!(error = %e, "serialising INFO failed");
                None
            }
        }
    }

    /// PONG; the first one is followed, for clients of protocol 1, by an INFO with
    /// `connect_info` and the account, as nats-server sends it.
    fn pong(&mut self) {
        self.send(ServerOp::Pong);
        if !self.first_pong_sent {
            self.first_pong_sent = true;
            if self.opts.protocol >= 1
                && let Some(json) = self.info_json(true)
            {
                self.send(ServerOp::Info(json));
            }
        }
    }

    fn connect(&mut self, json: &[u8], ctx: &mut Context<Self>) {
        // Decoded onto the options in force, as nats-server unmarshals into its client's opts.
        let mut opts = self.opts.clone();
        if let Err(e) = opts.apply(json) {
            tracing::debug!(cid = self.id, error = %e, "bad connect document, closing");
            self.close_silently(ctx);
            return;
        }
        // nats-server's order: authentication (an account name is refused), protocol version,
        // then no_responders without headers.
        if opts.new_account || opts.account.as_deref().is_some_and(|a| !a.is_empty()) {
            self.fatal("Authorization Violation", ctx);
            return;
        }
        if !(0..=1).contains(&opts.protocol) {
            self.fatal("invalid client protocol", ctx);
            return;
        }
        if opts.no_responders && !opts.headers {
            self.fatal("no responders requires headers support", ctx);
            return;
        }
        self.opts = opts;
        self.headers.set(self.opts.headers);
        self.tell_router(Register {
            conn: self.id,
            addr: ctx.address().recipient(),
            synced: ctx.address().recipient(),
            captures: None,
            echo: self.opts.echo,
            no_responders: self.opts.no_responders && self.opts.headers,
        });
        self.ok();
    }

    fn handle_op(&mut self, op: ClientOp, permit: Option<BudgetPermit>, ctx: &mut Context<Self>) {
        match op {
            ClientOp::Connect(json) => self.connect(&json, ctx),
            ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            } => {
                if self.opts.pedantic && !subject::nats_server_pedantic_pub_ok(&subject) {
                    // nats-server (pedantic) complains but still routes the message.
                    self.write_in_order(ServerOp::Err("Invalid Publish Subject".into()));
                }
                // nats-server acks a verbose PUB before delivering it: +OK, then its MSGs.
                self.ok();
                metrics::MSGS_IN.inc();
                let size = (payload.len() + headers.as_ref().map_or(0, |h| h.len())) as u64;
                metrics::BYTES_IN.inc_by(size);
                self.stats.in_msgs += 1;
                self.stats.in_bytes += size;
                let msg = NatsMsg {
                    subject,
                    reply,
                    headers,
                    payload,
                };
                self.publish(msg, permit);
            }
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                if !subject::nats_server_accepts_sub(&subject) {
                    self.write_in_order(ServerOp::Err("Invalid Subject".into()));
                    return;
                }
                let generation = match self.subs.get(&sid) {
                    Some(s) if !s.unsubscribed => {
                        // nats-server ignores a SUB that reuses a live sid.
                        self.ok();
                        return;
                    }
                    Some(s) => s.generation + 1,
                    None => 0,
                };
                self.subs.insert(
                    sid.clone(),
                    SubState {
                        max: None,
                        delivered: 0,
                        generation,
                        unsubscribed: false,
                    },
                );
                self.tell_router(Subscribe {
                    conn: self.id,
                    sid,
                    subject,
                    queue,
                });
                self.ok();
            }
            ClientOp::Unsub { sid, max } => {
                match (self.subs.get_mut(&sid), max) {
                    (Some(s), _) if s.unsubscribed => {}
                    (Some(s), Some(max)) if s.delivered < max => s.max = Some(max),
                    (Some(s), _) => {
                        // Kept until the router confirms, so the messages of earlier PUBs
                        // (still on their way back) are delivered.
                        s.unsubscribed = true;
                        let generation = s.generation;
                        self.tell_router(Unsubscribe {
                            conn: self.id,
                            sid,
                            generation,
                        });
                    }
                    (None, _) => {}
                }
                self.ok();
            }
            ClientOp::Ping => self.write_in_order(ServerOp::Pong),
            ClientOp::Pong => self.pings_out = 0,
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::CONNECTIONS.inc();
        metrics::TOTAL_CONNECTIONS.inc();
        // Registered before CONNECT with nats-server's defaults, so a client that publishes first
        // still routes.
        self.tell_router(Register {
            conn: self.id,
            addr: ctx.address().recipient(),
            synced: ctx.address().recipient(),
            captures: Some(ctx.address().recipient()),
            echo: true,
            no_responders: false,
        });

        if let Some(json) = self.info_json(false) {
            self.send(ServerOp::Info(json));
        }
        self.flush(ctx);

        self.tell_router(RegisterControl {
            conn: self.id,
            control: ctx.address().recipient(),
        });

        let interval = self.settings.ping_interval;
        ctx.run_interval(interval, |act, ctx| {
            if act.pings_out >= act.settings.max_pings_out {
                act.fatal("Stale Connection", ctx);
                return;
            }
            act.pings_out += 1;
            act.send(ServerOp::Ping);
            act.flush(ctx);
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::CONNECTIONS.dec();
        self.tell_router(Deregister { conn: self.id });
    }
}

impl StreamHandler<Vec<Frame>> for Connection {
    fn handle(&mut self, burst: Vec<Frame>, ctx: &mut Self::Context) {
        self.stats.last_activity = std::time::SystemTime::now();
        for item in burst {
            if self.closing || ctx.state() != ActorState::Running {
                break;
            }
            self.handle_frame(item, ctx);
        }
        self.hand_over_publishes();
        self.flush(ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // EOF: flush anything pending (e.g. a final -ERR) and stop.
        self.closing = true;
        self.flush(ctx);
        if self.writer.is_some() {
            ctx.stop();
        }
    }
}

impl Handler<Synced> for Connection {
    type Result = ();
    fn handle(&mut self, m: Synced, ctx: &mut Self::Context) {
        match m {
            Synced::Write(op) => {
                self.syncs_out = self.syncs_out.saturating_sub(1);
                self.write_now(op);
                self.flush(ctx);
            }
            Synced::Unsubscribed { sid, generation } => {
                if self
                    .subs
                    .get(&sid)
                    .is_some_and(|s| s.unsubscribed && s.generation == generation)
                {
                    self.subs.remove(&sid);
                }
            }
        }
    }
}

impl Connection {
    fn handle_frame(&mut self, item: Frame, ctx: &mut Context<Self>) {
        match item {
            Ok((op, permit)) => {
                let handled =
                    crate::actors::guard::catch("connection", || self.handle_op(op, permit, ctx));
                if handled.is_none() {
                    // Its state may be half updated: this connection ends, the agent goes on.
                    self.fatal("Internal Server Error", ctx);
                }
            }
            Err(ProtocolError::Io(e)) => {
                tracing::debug!(cid = self.id, error = %e, "read failed, closing");
                ctx.stop();
            }
            Err(e) => match e.err_text() {
                Some(text) => {
                    let text = text.to_string();
                    self.fatal(&text, ctx)
                }
                None => self.close_silently(ctx),
            },
        }
    }
}

impl Handler<DeliverBatch> for Connection {
    type Result = ();
    fn handle(&mut self, m: DeliverBatch, ctx: &mut Self::Context) {
        // Once per batch: reading the clock per message was a measurable share of routing.
        self.stats.last_activity = std::time::SystemTime::now();
        for deliver in m.0 {
            self.deliver(deliver);
        }
        self.flush(ctx);
    }
}

impl Connection {
    fn deliver(&mut self, m: Deliver) {
        let Some(sub) = self.subs.get_mut(&m.sid) else {
            return;
        };
        sub.delivered += 1;
        let done = sub.max.is_some_and(|max| sub.delivered >= max);
        if done {
            let generation = sub.generation;
            self.subs.remove(&m.sid);
            self.tell_router(Unsubscribe {
                conn: self.id,
                sid: m.sid.clone(),
                generation,
            });
        }
        // Clients that did not negotiate headers get the payload alone, as from nats-server.
        let headers = if self.opts.headers {
            m.msg.headers
        } else {
            None
        };
        metrics::MSGS_OUT.inc();
        self.stats.out_msgs += 1;
        self.stats.out_bytes +=
            (m.msg.payload.len() + headers.as_ref().map_or(0, |h| h.len())) as u64;
        self.send(ServerOp::Msg {
            subject: m.msg.subject,
            sid: m.sid,
            reply: m.msg.reply,
            headers,
            payload: m.msg.payload,
        });
    }
}

impl Handler<ConnControl> for Connection {
    type Result = Option<ConnInfo>;
    fn handle(&mut self, m: ConnControl, ctx: &mut Self::Context) -> Option<ConnInfo> {
        match m {
            ConnControl::Info => Some(ConnInfo {
                cid: self.id,
                peer: self.peer,
                start: self.stats.start,
                last_activity: self.stats.last_activity,
                pending_bytes: self.out.len() + self.writing,
                in_msgs: self.stats.in_msgs,
                out_msgs: self.stats.out_msgs,
                in_bytes: self.stats.in_bytes,
                out_bytes: self.stats.out_bytes,
                subscriptions: self.subs.len(),
                name: self.opts.name.clone(),
                lang: self.opts.lang.clone(),
                version: self.opts.version.clone(),
            }),
            ConnControl::LameDuck => {
                // Frames not read yet stay unread: their publishers see the connection close,
                // never an ack, while everything already read is answered before we close.
                if let Some(h) = self.reading.take() {
                    ctx.cancel_future(h);
                }
                // Not reading yet (its first captures still on their way): never start.
                self.reader = None;
                let mut info = self.settings.info.clone();
                info.client_id = self.id;
                info.client_ip = self.peer.ip().to_string();
                info.ldm = true;
                match serde_json::to_vec(&info) {
                    Ok(json) => self.send(ServerOp::Info(json.into())),
                    Err(e) => tracing::error!(error = %e, "serialising INFO failed"),
                }
                self.flush(ctx);
                None
            }
            ConnControl::Close => {
                self.closing = true;
                self.flush(ctx);
                None
            }
        }
    }
}
impl Handler<SetCaptures> for Connection {
    type Result = ();
    fn handle(&mut self, m: SetCaptures, ctx: &mut Self::Context) {
        self.captures = m.0;
        self.start_reading(ctx);
    }
}
