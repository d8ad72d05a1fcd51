//! The peer cache: agents of one availability zone serve each other's read-cache misses, so a
//! zone fetches each block from the bucket about once.
//!
//! Owns: the peer listener's accept loop and the serving side (answering `Get` from this agent's
//! `ReadCache`, never forwarding), the client side (one multiplexed connection per owner), the
//! consistent-hash ring built from the zone's members, and the handshake. Does not own membership
//! (`actors::membership` sends `MembersChanged`), caching, hedging or verification (the
//! `ReadCache` bounds how long it waits for a peer and checks every block's CRC).
//!
//! Wire: length-delimited frames (tokio-util) holding bincode-2 encoded [`PeerFrame`]s. The
//! server opens with a random nonce; the client answers with its group id, agent id and
//! HMAC-SHA256(group key, nonce | group id | agent id); a wrong MAC or a foreign group id is
//! refused, logged, and the connection closed before any block is served. A `RouteHello` instead
//! of `Hello` (proven with the route proof) makes the connection a route: it is handed to the
//! route manager after `RouteWelcome`, and serves no blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::actors::cluster::membership::{MembersChanged, peer_addr};
use crate::actors::cluster::route::manager::RouteSocket;
use crate::actors::ops::metrics;
use crate::actors::read::block::{BlockLocation, ReadError};
use crate::actors::read::cache::{PeerFetch, Read, ReadCache};
use crate::actors::read::ring::{Ring, RingNode};
use crate::config::Secret;
use crate::protocol::peer::{
    HANDSHAKE_MAX_FRAME, MAX_DECODED, NONCE_LEN, Wire, authenticated, decode, encode, mac_ok,
    next_frame, wire,
};
pub use crate::protocol::peer::{PROTOCOL_VERSION, PeerError, PeerFrame, handshake_mac};

/// Requests queued per owner connection; beyond this, reads go to the bucket.
const QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub group_id: String,
    pub group_key: Secret,
    pub agent_id: String,
    /// Bound on connecting plus the handshake.
    pub connect_timeout: Duration,
    /// Largest frame accepted (a block plus framing).
    pub max_frame: usize,
}

impl PeerSettings {
    pub fn new(
        group_id: impl Into<String>,
        group_key: Secret,
        agent_id: impl Into<String>,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            group_key,
            agent_id: agent_id.into(),
            connect_timeout: Duration::from_millis(500),
            max_frame: MAX_DECODED,
        }
    }
}

/// Client side: connects to `addr` and authenticates.
pub async fn connect(addr: &str, settings: &PeerSettings) -> Result<Wire, PeerError> {
    let fut = async {
        let stream = TcpStream::connect(addr).await?;
        let mut w = wire(stream, HANDSHAKE_MAX_FRAME);
        let nonce = match next_frame(&mut w).await? {
            PeerFrame::Challenge { version, nonce } if version == PROTOCOL_VERSION => nonce,
            other => {
                return Err(PeerError::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )));
            }
        };
        let mac = handshake_mac(
            &settings.group_key,
            &nonce,
            &settings.group_id,
            &settings.agent_id,
        );
        w.send(encode(&PeerFrame::Hello {
            group_id: settings.group_id.clone(),
            agent_id: settings.agent_id.clone(),
            mac,
        })?)
        .await?;
        match next_frame(&mut w).await? {
            PeerFrame::Welcome => {
                authenticated(&mut w, settings.max_frame);
                Ok(w)
            }
            PeerFrame::Refused { reason } => Err(PeerError::Refused(reason)),
            other => Err(PeerError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
        }
    };
    tokio::time::timeout(settings.connect_timeout, fut)
        .await
        .map_err(|_| PeerError::Timeout)?
}

/// Who passed the handshake.
enum Authenticated {
    /// A peer cache client.
    Cache(String),
    /// A route (`RouteHello`): the agent and its zone.
    Route(String, String),
}

/// Server side of the handshake: the authenticated agent and what it came for.
async fn authenticate(w: &mut Wire, settings: &PeerSettings) -> Result<Authenticated, PeerError> {
    let nonce: Vec<u8> = (0..NONCE_LEN).map(|_| rand::random::<u8>()).collect();
    w.send(encode(&PeerFrame::Challenge {
        version: PROTOCOL_VERSION,
        nonce: nonce.clone(),
    })?)
    .await?;
    // Why a hello from `group_id` is refused, if it is: another group, or a proof that fails.
    let refused = |group_id: &str, proven: bool| {
        if group_id != settings.group_id {
            Some(format!("foreign group {group_id}"))
        } else if !proven {
            Some("bad credentials".to_string())
        } else {
            None
        }
    };
    let key = &settings.group_key;
    let refusal = match next_frame(w).await? {
        PeerFrame::Hello {
            group_id,
            agent_id,
            mac,
        } => match refused(&group_id, mac_ok(key, &nonce, &group_id, &agent_id, &mac)) {
            Some(why) => why,
            None => {
                w.send(encode(&PeerFrame::Welcome)?).await?;
                return Ok(Authenticated::Cache(agent_id));
            }
        },
        PeerFrame::RouteHello {
            group_id,
            agent_id,
            zone,
            mac,
        } => {
            let proven = crate::actors::cluster::route::wire::hello_ok(
                key, &nonce, &group_id, &agent_id, &mac,
            );
            match refused(&group_id, proven) {
                Some(why) => why,
                None => {
                    w.send(encode(&PeerFrame::RouteWelcome {
                        agent_id: settings.agent_id.clone(),
                    })?)
                    .await?;
                    return Ok(Authenticated::Route(agent_id, zone));
                }
            }
        }
        other => format!("expected hello, got {}", frame_name(&other)),
    };
    let _ = w
        .send(encode(&PeerFrame::Refused {
            reason: refusal.clone(),
        })?)
        .await;
    Err(PeerError::Refused(refusal))
}

fn frame_name(f: &PeerFrame) -> &'static str {
    match f {
        PeerFrame::Challenge { .. } => "challenge",
        PeerFrame::Hello { .. } => "hello",
        PeerFrame::Welcome => "welcome",
        PeerFrame::Refused { .. } => "refused",
        PeerFrame::Get { .. } => "get",
        PeerFrame::Block { .. } => "block",
        PeerFrame::RouteHello { .. } => "route hello",
        PeerFrame::RouteWelcome { .. } => "route welcome",
    }
}

/// Serves one incoming peer connection from this agent's read cache, or hands a route to
/// `routes`.
async fn serve(
    stream: TcpStream,
    settings: Arc<PeerSettings>,
    cache: Addr<ReadCache>,
    routes: Option<Recipient<RouteSocket>>,
) {
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut w = wire(stream, HANDSHAKE_MAX_FRAME);
    let auth =
        tokio::time::timeout(settings.connect_timeout, authenticate(&mut w, &settings)).await;
    if matches!(auth, Ok(Ok(_))) {
        authenticated(&mut w, settings.max_frame);
    }
    let agent = match auth {
        Ok(Ok(Authenticated::Cache(agent))) => agent,
        Ok(Ok(Authenticated::Route(agent, zone))) => {
            match routes {
                Some(routes) => routes.do_send(RouteSocket {
                    agent,
                    zone,
                    wire: w,
                }),
                None => tracing::warn!(peer = %remote, "a route was offered but routes are off"),
            }
            return;
        }
        Ok(Err(e)) => {
            refused(&remote, &e.to_string());
            return;
        }
        Err(_) => {
            refused(&remote, "handshake timed out");
            return;
        }
    };
    tracing::debug!(peer = %remote, peer_agent = %agent, "peer connected");
    let (mut sink, mut frames) = w.split();
    let mut reads = FuturesUnordered::new();
    loop {
        tokio::select! {
            frame = frames.next() => {
                let Some(Ok(buf)) = frame else { break };
                match decode(&buf) {
                    Ok(PeerFrame::Get { id, location }) => {
                        let cache = cache.clone();
                        reads.push(async move {
                            // local_only: a peer's request is never forwarded again.
                            let res = cache.send(Read { location, local_only: true }).await;
                            (id, res)
                        });
                    }
                    Ok(other) => {
                        tracing::warn!(peer = %remote, frame = frame_name(&other), "unexpected peer frame, closing");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %remote, error = %e, "undecodable peer frame, closing");
                        break;
                    }
                }
            }
            Some((id, res)) = reads.next(), if !reads.is_empty() => {
                let result = match res {
                    Ok(Ok(block)) => Ok(block.bytes().to_vec()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("read cache unavailable: {e}")),
                };
                let Ok(frame) = encode(&PeerFrame::Block { id, result }) else { break };
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
}

type Request = (BlockLocation, oneshot::Sender<Result<Bytes, ReadError>>);

/// A refused peer connection: counted (`infinistream_peer_refused_total`) and logged by the
/// peer's address without its port, so that a flood from one host is identical warnings, which
/// the log's rate limit (`logging::quiet`) writes once and then counts.
fn refused(remote: &str, reason: &str) {
    metrics::PEER_REFUSED.inc();
    let host = remote
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| remote.to_string(), |a| a.ip().to_string());
    tracing::warn!(peer_host = %host, reason, "refused a peer connection");
}

fn peer_failure(loc: &BlockLocation, message: impl Into<String>) -> ReadError {
    ReadError::Store {
        key: loc.object_key.clone(),
        message: message.into(),
    }
}

/// One outgoing connection to an owner: multiplexes requests by id until either side fails.
async fn run_client(addr: String, settings: Arc<PeerSettings>, mut rx: mpsc::Receiver<Request>) {
    let w = match connect(&addr, &settings).await {
        Ok(w) => w,
        Err(e) => {
            tracing::debug!(peer = %addr, error = %e, "cannot reach peer");
            rx.close();
            while let Ok((loc, tx)) = rx.try_recv() {
                let _ = tx.send(Err(peer_failure(&loc, e.to_string())));
            }
            return;
        }
    };
    let (mut sink, mut frames) = w.split();
    let mut pending: HashMap<u64, (BlockLocation, oneshot::Sender<Result<Bytes, ReadError>>)> =
        HashMap::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            req = rx.recv() => {
                let Some((location, tx)) = req else { break };
                next_id += 1;
                let Ok(frame) = encode(&PeerFrame::Get { id: next_id, location: location.clone() }) else {
                    let _ = tx.send(Err(peer_failure(&location, "cannot encode request")));
                    continue;
                };
                pending.insert(next_id, (location, tx));
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
            frame = frames.next() => {
                let Some(Ok(buf)) = frame else { break };
                match decode(&buf) {
                    Ok(PeerFrame::Block { id, result }) => {
                        if let Some((loc, tx)) = pending.remove(&id) {
                            let _ = tx.send(result.map(Bytes::from).map_err(|m| peer_failure(&loc, m)));
                        }
                    }
                    _ => break,
                }
            }
        }
    }
    rx.close();
    // Waiters of `pending` see their sender dropped: the cache reads the bucket instead.
}

/// Test hook: stop (`panic: false`) or panic the actor, to exercise supervision. Built only
/// for tests (`cfg(test)`, or the `test-hooks` feature the integration tests turn on).
#[cfg(any(test, feature = "test-hooks"))]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash {
    pub panic: bool,
}

pub struct PeerCache {
    settings: Arc<PeerSettings>,
    cache: Addr<ReadCache>,
    listener: Option<std::net::TcpListener>,
    ring: Ring,
    self_id: String,
    conns: HashMap<String, mpsc::Sender<Request>>,
    routes: Option<Recipient<RouteSocket>>,
}

impl PeerCache {
    /// `listener` is this agent's peer listener (the supervisor keeps the original, so the port
    /// stays bound across restarts).
    pub fn new(
        settings: PeerSettings,
        cache: Addr<ReadCache>,
        listener: Option<std::net::TcpListener>,
    ) -> Self {
        Self {
            self_id: settings.agent_id.clone(),
            settings: Arc::new(settings),
            cache,
            listener,
            ring: Ring::default(),
            conns: HashMap::new(),
            routes: None,
        }
    }

    /// Hands authenticated route connections (`RouteHello`) to `routes`; without it they are
    /// dropped after the handshake.
    pub fn with_routes(mut self, routes: Recipient<RouteSocket>) -> Self {
        self.routes = Some(routes);
        self
    }
}

impl Actor for PeerCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "peer listener unusable; this agent serves no peers");
                return;
            }
        };
        let settings = self.settings.clone();
        let cache = self.cache.clone();
        let routes = self.routes.clone();
        ctx.spawn(
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            actix_rt::spawn(serve(
                                stream,
                                settings.clone(),
                                cache.clone(),
                                routes.clone(),
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "peer accept failed");
                            actix_rt::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<PeerFetch> for PeerCache {
    type Result = ResponseFuture<Result<Option<Bytes>, ReadError>>;

    fn handle(&mut self, m: PeerFetch, _: &mut Self::Context) -> Self::Result {
        let Some(owner) = self.ring.owner(&m.location) else {
            return Box::pin(async { Ok(None) });
        };
        if owner.agent_id == self.self_id {
            return Box::pin(async { Ok(None) });
        }
        let addr = owner.peer_addr.clone();
        let sender = match self.conns.get(&addr) {
            Some(s) if !s.is_closed() => s.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                actix_rt::spawn(run_client(addr.clone(), self.settings.clone(), rx));
                self.conns.insert(addr.clone(), tx.clone());
                tx
            }
        };
        let (tx, rx) = oneshot::channel();
        let loc = m.location;
        if sender.try_send((loc.clone(), tx)).is_err() {
            return Box::pin(async move { Err(peer_failure(&loc, "peer queue full")) });
        }
        Box::pin(async move {
            match rx.await {
                Ok(res) => res.map(Some),
                Err(_) => Err(peer_failure(&loc, "peer connection lost")),
            }
        })
    }
}

impl Handler<MembersChanged> for PeerCache {
    type Result = ();
    fn handle(&mut self, m: MembersChanged, _: &mut Self::Context) {
        self.self_id = m.self_id;
        self.ring = Ring::new(
            m.members
                .iter()
                .map(|a| RingNode {
                    agent_id: a.agent_id.clone(),
                    peer_addr: peer_addr(a),
                })
                .collect(),
        );
        let live: Vec<&str> = self
            .ring
            .nodes()
            .iter()
            .map(|n| n.peer_addr.as_str())
            .collect();
        self.conns.retain(|addr, _| live.contains(&addr.as_str()));
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<Crash> for PeerCache {
    type Result = ();
    fn handle(&mut self, m: Crash, ctx: &mut Self::Context) {
        if m.panic {
            panic!("peer cache crash requested (test hook)");
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::read::cache::tests::{Counting, object};
    use crate::actors::read::cache::{ReadCacheSettings, SetPeer};
    use infinistream_api::control_plane::model::{AgentInfo, AgentPorts};
    use object_store::ObjectStore;
    use std::sync::atomic::Ordering;

    fn settings(group: &str, key: &str, agent: &str) -> PeerSettings {
        PeerSettings::new(group, Secret::new(key), agent)
    }

    /// A Hello (before any authentication) whose group id claims an absurd length is an error,
    /// not an allocation of that length (which would abort the process).
    #[test]
    fn a_huge_length_claim_is_refused_before_any_allocation() {
        let mut bytes = vec![1u8]; // variant Hello
        bytes.push(253); // varint: a u64 follows
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        bytes.extend_from_slice(b"short");
        assert!(decode(&bytes).is_err());
        let hello = PeerFrame::Hello {
            group_id: "g".into(),
            agent_id: "a".into(),
            mac: vec![1, 2],
        };
        let encoded = encode(&hello).expect("encode");
        assert_eq!(decode(&encoded).expect("decode"), hello);
    }

    struct Node {
        cache: Addr<ReadCache>,
        peer: Addr<PeerCache>,
        info: AgentInfo,
    }

    fn node(store: &Arc<Counting>, agent: &str, key: &str) -> Node {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        let cache = ReadCache::new(ReadCacheSettings::default(), dyn_store).start();
        let peer = PeerCache::new(settings("g", key, agent), cache.clone(), Some(listener)).start();
        cache.do_send(SetPeer(Some(peer.clone().recipient())));
        let info = AgentInfo {
            agent_id: agent.into(),
            availability_zone: "a".into(),
            advertise_address: "127.0.0.1".into(),
            ports: AgentPorts {
                client: 0,
                peer: port,
                http: 0,
            },
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
        };
        Node { cache, peer, info }
    }

    #[actix_rt::test]
    async fn handshake_accepts_the_group_and_refuses_others() {
        let store = Arc::new(Counting::default());
        let n = node(&store, "server", "k");
        let addr = format!("127.0.0.1:{}", n.info.ports.peer);
        assert!(connect(&addr, &settings("g", "k", "client")).await.is_ok());
        let wrong_key = connect(&addr, &settings("g", "other", "client")).await;
        assert!(
            matches!(wrong_key, Err(PeerError::Refused(ref r)) if r.contains("credentials")),
            "{wrong_key:?}"
        );
        let foreign = connect(&addr, &settings("h", "k", "client")).await;
        assert!(
            matches!(foreign, Err(PeerError::Refused(ref r)) if r.contains("foreign")),
            "{foreign:?}"
        );
        // A raw client that does not answer the challenge gets nothing.
        let mut raw = wire(TcpStream::connect(&addr).await.unwrap(), 1 << 20);
        assert!(matches!(
            next_frame(&mut raw).await,
            Ok(PeerFrame::Challenge { .. })
        ));
        raw.send(
            encode(&PeerFrame::Get {
                id: 1,
                location: BlockLocation {
                    object_key: "x".into(),
                    offset: 0,
                    len: 1,
                },
            })
            .unwrap(),
        )
        .await
        .unwrap();
        assert!(matches!(
            next_frame(&mut raw).await,
            Ok(PeerFrame::Refused { .. })
        ));
        drop(n);
    }

    /// Before the handshake a frame is at most a few KiB: connections announcing 150 MiB frames
    /// are closed without the agent reserving that memory (8 of them grew it by ~400 MiB), and
    /// a proven peer still gets blocks of any size up to `max_frame`.
    #[actix_rt::test]
    async fn unauthenticated_connections_cannot_announce_big_frames() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let store = Arc::new(Counting::default());
        let n = node(&store, "server", "k");
        let addr = format!("127.0.0.1:{}", n.info.ports.peer);
        let rss = || -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let before = rss();
        let refused_before = metrics::PEER_REFUSED.get();
        let mut floods = Vec::new();
        for _ in 0..8 {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            // A length prefix of 150 MiB and the first bytes of such a frame.
            s.write_all(&(150u32 * 1024 * 1024).to_be_bytes())
                .await
                .unwrap();
            // 8 MiB of it: without the limit the server buffers what arrives (64 MiB for 8
            // connections); with it, writing fails once the server has closed.
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..8 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            floods.push(s);
        }
        // Measured while the connections may still be open (memory held, not freed at close).
        let grown_kib = rss().saturating_sub(before);
        for s in &mut floods {
            // The server closes the connection (after its challenge) instead of reading on.
            let mut sink = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
            assert!(
                matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
                "connection left open"
            );
        }
        assert!(grown_kib < 32 * 1024, "grew by {grown_kib} KiB");
        // Each one counted (the log writes the first and counts the rest).
        assert!(metrics::PEER_REFUSED.get() >= refused_before + 8);
        // A proven peer reads a block bigger than the handshake limit.
        let blocks = object(&store, "o/big.obj", 1, 2000).await;
        assert!(blocks[0].len as usize > HANDSHAKE_MAX_FRAME);
        let mut w = connect(&addr, &settings("g", "k", "client")).await.unwrap();
        w.send(
            encode(&PeerFrame::Get {
                id: 7,
                location: blocks[0].clone(),
            })
            .unwrap(),
        )
        .await
        .unwrap();
        match next_frame(&mut w).await {
            Ok(PeerFrame::Block {
                id: 7,
                result: Ok(bytes),
            }) => {
                assert_eq!(bytes.len() as u64, blocks[0].len)
            }
            other => panic!("{other:?}"),
        }
        drop(n);
    }

    #[actix_rt::test]
    async fn misses_are_served_by_the_owner_once() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/p.obj", 8, 2).await;
        let a = node(&store, "agent-a", "k");
        let b = node(&store, "agent-b", "k");
        let members = vec![a.info.clone(), b.info.clone()];
        for (n, id) in [(&a, "agent-a"), (&b, "agent-b")] {
            n.peer
                .send(MembersChanged {
                    self_id: id.into(),
                    members: members.clone(),
                })
                .await
                .unwrap();
        }
        for blk in &blocks {
            for n in [&a, &b, &a, &b] {
                let got = n
                    .cache
                    .send(Read {
                        location: blk.clone(),
                        local_only: false,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(got.bytes().len() as u64, blk.len);
            }
        }
        // Each block from the bucket once, by its owner, whichever agent read it first.
        assert_eq!(store.gets.load(Ordering::SeqCst), blocks.len() as u64);
    }

    #[actix_rt::test]
    async fn a_dead_owner_means_a_bucket_read() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/q.obj", 8, 2).await;
        let a = node(&store, "agent-a", "k");
        let mut ghost = a.info.clone();
        ghost.agent_id = "agent-ghost".into();
        // Nothing listens there any more.
        ghost.ports.peer = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        a.peer
            .send(MembersChanged {
                self_id: "agent-a".into(),
                members: vec![a.info.clone(), ghost],
            })
            .await
            .unwrap();
        for blk in &blocks {
            let got = a
                .cache
                .send(Read {
                    location: blk.clone(),
                    local_only: false,
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.bytes().len() as u64, blk.len);
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), blocks.len() as u64);
    }
}
