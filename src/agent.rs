//! Starting and stopping one agent: worker arbiters, listeners and the actor graph.
//!
//! Owns: the process-level wiring (which actor runs on which arbiter, who gets whose address) and
//! the accept loop. Does not own: protocol handling (connections), routing (router) or storage
//! (the JetStream actors), which it only starts, downstream first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::net::TcpListener;

use crate::actors::cluster::events::{EventFeed, FeedTargets};
use crate::actors::cluster::membership::{
    Leave, Membership, MembershipSettings, Subscribe as SubscribeMembers, SubscribeGroup,
    resolve_advertise_address,
};
use crate::actors::cluster::route::link::RouteIdentity;
use crate::actors::cluster::route::manager::RouteManager;
use crate::actors::cluster::route::messages::RouterPorts;
use crate::actors::ingress::connection::{Connection, ConnectionSettings};
use crate::actors::ingress::router::BroadcastControl;
use crate::actors::ingress::router::Router;
use crate::actors::jetstream::api::JsApi;
use crate::actors::ops::budget::InflightBudget;
use crate::actors::ops::monitor::{BeginShutdown, HealthProbe, MonitorSources};
use crate::actors::ops::queries::{ConnControl, GetStats};
use crate::actors::read::Reader;
use crate::actors::read::cache::{ReadCache, ReadCacheSettings, SetPeer};
use crate::actors::read::peer::{PeerCache, PeerSettings};
use crate::actors::supervisor::{PeerSupervisor, SequenceSupervisor, SequenceSupervisorSettings};
use crate::actors::write::catalog::{Refresh, StreamCatalog};
pub use crate::actors::write::commit::Committed;
use crate::actors::write::commit::{SequenceClient, SequenceSettings};
use crate::actors::write::flusher::SealNow;
use crate::actors::write::flusher::{Flusher, FlusherSettings};
use crate::actors::write::uploader::{RetryPolicy, UploaderPool};
use crate::config::AgentConfig;
use crate::control_plane::client::ControlPlaneClient;
use crate::logging::{self, Banner, LogFormat};
use crate::protocol::info::{COMPAT_SERVER_VERSION, ServerInfo, new_server_id};
use infinistream_api::control_plane::model::AgentPorts;

/// Bound on dialling another agent's peer port plus the route handshake.
const ROUTE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Startup(String),
    #[error(transparent)]
    Bucket(#[from] crate::bucket::BucketError),
    #[error(transparent)]
    Tls(#[from] crate::control_plane::client::TlsError),
}

/// Knobs tests turn; production uses the defaults.
#[derive(Debug, Clone)]
pub struct AgentTuning {
    pub ping_interval: Duration,
    pub max_pings_out: u32,
    pub max_pending: usize,
    /// How often the stream catalog polls the control plane.
    pub stream_poll_interval: Duration,
    pub upload_deadline: Duration,
    pub commit_deadline: Duration,
    pub uploaders: usize,
    /// How often the zone's member list is refreshed.
    pub membership_refresh: Duration,
    /// How long a read waits for the block's owner before hedging to the bucket.
    pub peer_timeout: Duration,
}

impl Default for AgentTuning {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            max_pending: 64 * 1024 * 1024,
            stream_poll_interval: Duration::from_millis(250),
            upload_deadline: Duration::from_secs(10),
            commit_deadline: Duration::from_secs(10),
            uploaders: 4,
            membership_refresh: Duration::from_secs(1),
            peer_timeout: Duration::from_millis(200),
        }
    }
}

/// A running agent inside the current actix system.
pub struct RunningAgent {
    pub client_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub server_id: String,
    pub router: Addr<Router>,
    pub flusher: Addr<Flusher>,
    pub agent_id: String,
    pub probe: Addr<HealthProbe>,
    /// The in-flight budget, full again once every accepted publish has been answered.
    pub budget: InflightBudget,
    graceful_shutdown_timeout: Duration,
    max_inflight_bytes: usize,
    max_inflight_msgs: usize,
    /// Bound port of the peer-cache listener.
    pub peer_addr: SocketAddr,
    pub sequencer: Addr<SequenceSupervisor>,
    pub peer_cache: Addr<PeerSupervisor>,
    pub read_cache: Addr<ReadCache>,
    pub membership: Addr<Membership>,
    /// Routes to the group's other agents (core NATS across agents).
    pub routes: Addr<RouteManager>,
    arbiters: Vec<Arbiter>,
    accept: actix_rt::task::JoinHandle<()>,
    http: actix_web::dev::ServerHandle,
}

/// How a graceful shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every publish read from a client was answered before the connections closed.
    pub drained: bool,
    /// Connections told about the shutdown (lame-duck INFO).
    pub connections: usize,
    /// Publishes still unanswered when the timeout passed (0 when drained).
    pub unanswered_msgs: usize,
}

impl RunningAgent {
    /// Graceful stop with the configured `graceful_shutdown_timeout` (see `shutdown`).
    pub async fn stop(self) {
        let timeout = self.graceful_shutdown_timeout;
        self.shutdown(timeout).await;
    }

    /// Graceful stop:
    /// 1. `/healthz` turns 503 and the listener stops accepting;
    /// 2. every connection gets INFO with `"ldm":true` and stops reading, so nothing new is
    ///    accepted while what was read is still answered;
    /// 3. the open window is sealed at once, and we wait until every accepted publish is
    ///    answered (ack or error: the in-flight budget is full again) or `timeout` passes;
    /// 4. the agent leaves its virtual group;
    /// 5. connections are closed after the answers routed to them are written, then the
    ///    monitoring server and the worker threads stop.
    pub async fn shutdown(self, timeout: Duration) -> ShutdownReport {
        self.probe.do_send(BeginShutdown);
        self.accept.abort();
        let connections = self
            .router
            .send(BroadcastControl(ConnControl::LameDuck))
            .await
            .unwrap_or(0);
        tracing::info!(
            connections,
            timeout_ms = timeout.as_millis() as u64,
            "graceful shutdown: lame duck sent, draining in-flight publishes"
        );
        let deadline = std::time::Instant::now() + timeout;
        let drained = loop {
            // Seal repeatedly: a publish read just before lame duck may reach its batcher after
            // the previous seal; an empty seal costs nothing.
            self.flusher.do_send(SealNow);
            if self.in_flight_msgs() == 0 {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        let unanswered_msgs = self.in_flight_msgs();
        if drained {
            tracing::info!("graceful shutdown: every in-flight publish answered");
        } else {
            tracing::warn!(
                unanswered_msgs,
                "graceful shutdown: timeout passed with publishes unanswered"
            );
        }
        // Leave the virtual group before the connections go, so the zone's peers take over
        // this agent's share of the ring now rather than at lease expiry.
        let _ = actix_rt::time::timeout(Duration::from_secs(2), self.membership.send(Leave)).await;
        // Through the router: every ack it forwarded to a connection is queued there before Close.
        let _ = self.router.send(BroadcastControl(ConnControl::Close)).await;
        // Closing connections write what is buffered; give them a moment before the threads stop.
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        self.stop_now().await;
        ShutdownReport {
            drained,
            connections,
            unanswered_msgs,
        }
    }

    /// Stops at once: no draining, connections are dropped with their threads.
    pub async fn stop_now(self) {
        self.accept.abort();
        self.http.stop(false).await;
        for a in &self.arbiters {
            a.stop();
        }
    }

    /// Publishes read from clients and not yet answered.
    pub fn in_flight_msgs(&self) -> usize {
        self.max_inflight_msgs
            .max(1)
            .saturating_sub(self.budget.available_msgs())
    }

    /// Bytes of publishes read from clients and not yet answered.
    pub fn in_flight_bytes(&self) -> usize {
        self.max_inflight_bytes
            .clamp(1, u32::MAX as usize)
            .saturating_sub(self.budget.available_bytes())
    }
}

/// Assembles an agent with custom parts. `agent::start(config, tuning)` is
/// `AgentBuilder::new(config).tuning(tuning).start()`.
///
/// ```no_run
/// # async fn f(config: infinistream::config::AgentConfig,
/// #            store: std::sync::Arc<dyn object_store::ObjectStore>) {
/// let agent = infinistream::agent::AgentBuilder::new(config)
///     .object_store(store) // instead of the configured bucket
///     .start()
///     .await;
/// # }
/// ```
pub struct AgentBuilder {
    config: AgentConfig,
    tuning: AgentTuning,
    hooks: AgentHooks,
}

#[derive(Default)]
struct AgentHooks {
    listeners: Option<Listeners>,
    on_listening: Option<Box<dyn FnOnce(Ports)>>,
    object_store: Option<Arc<dyn object_store::ObjectStore>>,
    on_commit: Option<Recipient<Committed>>,
    health_interval: Option<Duration>,
}

impl AgentBuilder {
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            tuning: AgentTuning::default(),
            hooks: AgentHooks::default(),
        }
    }

    pub fn tuning(mut self, tuning: AgentTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Writes and reads objects through `store` instead of the bucket in the configuration:
    /// wrap a store to mirror, encrypt or observe objects. Keys and bytes are the agent's own
    /// (`docs/format.md`); a put must be durable when it returns, and must honour
    /// `PutMode::Create`.
    pub fn object_store(mut self, store: Arc<dyn object_store::ObjectStore>) -> Self {
        self.hooks.object_store = Some(store);
        self
    }

    /// Serves on listeners bound beforehand (the playground binds them before it opens any
    /// state, so a port in use stops it before anything is written).
    pub fn listeners(mut self, listeners: Listeners) -> Self {
        self.hooks.listeners = Some(listeners);
        self
    }

    /// Calls `f` with the bound ports once every startup check passed and before any actor
    /// runs, so what it prints comes before the agent's first event.
    pub fn on_listening(mut self, f: impl FnOnce(Ports) + 'static) -> Self {
        self.hooks.on_listening = Some(Box::new(f));
        self
    }

    /// Sends `Committed` to `observer` after every successful commit (after the acks).
    pub fn on_commit(mut self, observer: Recipient<Committed>) -> Self {
        self.hooks.on_commit = Some(observer);
        self
    }

    /// How often `/healthz` re-checks the control plane.
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.hooks.health_interval = Some(interval);
        self
    }

    /// Starts the agent in the current actix system and returns once it listens.
    pub async fn start(self) -> Result<RunningAgent, AgentError> {
        start_with(self.config, self.tuning, self.hooks).await
    }
}

/// The agent's three listening sockets: NATS clients, peers (the zone's read cache), HTTP.
#[derive(Debug)]
pub struct Listeners {
    pub client: std::net::TcpListener,
    pub peer: std::net::TcpListener,
    pub http: std::net::TcpListener,
}

impl Listeners {
    /// Binds the ports of `config` (port 0 picks a free one), clients first.
    pub fn bind(config: &AgentConfig) -> Result<Self, AgentError> {
        let bind = |port: u16| {
            let addr = format!("{}:{}", config.host, port);
            std::net::TcpListener::bind(&addr).map_err(|source| AgentError::Bind { addr, source })
        };
        Ok(Self {
            client: bind(config.port)?,
            peer: bind(config.peer_port)?,
            http: bind(config.http_port)?,
        })
    }
}

/// The ports an agent listens on (the real ones when the configuration asked for 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub client: u16,
    pub peer: u16,
    pub http: u16,
}

impl Listeners {
    pub fn ports(&self) -> Result<Ports, AgentError> {
        Ok(Ports {
            client: local_addr(&self.client)?.port(),
            peer: local_addr(&self.peer)?.port(),
            http: local_addr(&self.http)?.port(),
        })
    }
}

fn local_addr(listener: &std::net::TcpListener) -> Result<SocketAddr, AgentError> {
    listener.local_addr().map_err(|source| AgentError::Bind {
        addr: "a bound listener".to_owned(),
        source,
    })
}

fn server_info(config: &AgentConfig, server_id: &str, port: u16) -> ServerInfo {
    ServerInfo {
        server_id: server_id.to_string(),
        server_name: config.server_name.clone(),
        version: COMPAT_SERVER_VERSION.to_string(),
        infinistream_version: env!("CARGO_PKG_VERSION").to_string(),
        proto: 1,
        go: "infinistream".to_string(),
        host: config.host.clone(),
        port,
        headers: true,
        max_payload: config.max_payload,
        jetstream: true,
        client_id: 0,
        client_ip: String::new(),
        connect_urls: Vec::new(),
        ldm: false,
        connect_info: false,
        remote_account: None,
    }
}

/// Starts an agent in the current actix system and returns once it listens.
pub async fn start(config: AgentConfig, tuning: AgentTuning) -> Result<RunningAgent, AgentError> {
    AgentBuilder::new(config).tuning(tuning).start().await
}

/// A control-plane client factory: awc's client is `!Send`, so each actor that talks to the
/// control plane builds its own on its arbiter.
type CpFactory = Arc<dyn Fn() -> ControlPlaneClient + Send + Sync>;

/// What every subsystem's start function needs.
struct Shared<'a> {
    config: &'a AgentConfig,
    tuning: &'a AgentTuning,
    cp: CpFactory,
    router: Addr<Router>,
    agent_id: String,
    /// The JetStream arbiter: the write path, the read cache, the API, membership.
    js: ArbiterHandle,
}

async fn start_with(
    config: AgentConfig,
    tuning: AgentTuning,
    hooks: AgentHooks,
) -> Result<RunningAgent, AgentError> {
    crate::actors::ops::metrics::init();
    // What can refuse to start goes first: the CA file, the bucket client, then every port.
    let tls = crate::control_plane::client::tls_with_ca(config.control_plane_ca.as_deref())?;
    // Building the bucket client contacts nothing; it fails only on a URL it cannot use.
    let store = match hooks.object_store {
        Some(store) => store,
        None => crate::bucket::build_object_store(&config.bucket)?,
    };
    let listeners = match hooks.listeners {
        Some(listeners) => listeners,
        None => Listeners::bind(&config)?,
    };
    let client_addr = local_addr(&listeners.client)?;
    let peer_addr = local_addr(&listeners.peer)?;
    if let Some(on_listening) = hooks.on_listening {
        on_listening(listeners.ports()?);
    }
    let http_listener = listeners.http;
    let peer_listener = listeners.peer;
    let listener = {
        let std = listeners.client;
        let runtime = |source| AgentError::Bind {
            addr: client_addr.to_string(),
            source,
        };
        std.set_nonblocking(true).map_err(runtime)?;
        TcpListener::from_std(std).map_err(runtime)?
    };

    let server_id = new_server_id();
    let budget = InflightBudget::new(config.max_inflight_bytes, config.max_inflight_msgs);
    let router = Router::new().start();
    // The JetStream write path and API share one arbiter: they exchange many small messages.
    let js = Arbiter::new();
    let shared = Shared {
        config: &config,
        tuning: &tuning,
        cp: control_plane_factory(&config, tls),
        router: router.clone(),
        agent_id: format!("{}-{}", config.server_name, &server_id[..8]),
        js: js.handle(),
    };

    let write = start_write_path(&shared, store.clone(), hooks.on_commit);
    let (route_arbiter, routes) = start_routes(&shared);
    let read = start_read_path(&shared, store, peer_listener, &routes);
    start_jetstream(&shared, &write.catalog, &read.reader).await;

    let mut arbiters: Vec<Arbiter> = (0..config.workers.max(1)).map(|_| Arbiter::new()).collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(|a| a.handle()).collect();
    arbiters.push(js);
    arbiters.push(route_arbiter);

    let probe = {
        let cp = shared.cp.clone();
        let interval = hooks
            .health_interval
            .unwrap_or(crate::actors::ops::monitor::DEFAULT_HEALTH_INTERVAL);
        HealthProbe::start_in_arbiter(&shared.js, move |_| HealthProbe::new(cp(), interval))
    };
    let sources = MonitorSources {
        stats: router.clone().recipient(),
        connections: router.clone().recipient(),
        routes: router.clone().recipient(),
        probe: probe.clone(),
        budget: budget.clone(),
        ping_interval: tuning.ping_interval,
        max_pings_out: tuning.max_pings_out,
        max_pending: tuning.max_pending,
    };
    let http_addr = local_addr(&http_listener)?;
    let http = crate::actors::ops::monitor::start(
        &config,
        http_listener,
        &server_id,
        client_addr.port(),
        sources,
    )
    .map_err(|source| AgentError::Bind {
        addr: http_addr.to_string(),
        source,
    })?;

    // Membership: register once every listener is bound, so the ports registered are real.
    let (urls_tx, urls_rx) = tokio::sync::watch::channel(Vec::<String>::new());
    let ports = AgentPorts {
        client: client_addr.port(),
        peer: peer_addr.port(),
        http: http_addr.port(),
    };
    let membership = start_membership(&shared, ports, urls_tx);
    membership.do_send(SubscribeMembers(read.peer_cache.clone().recipient()));
    membership.do_send(SubscribeGroup(routes.clone().recipient()));

    let settings = connection_settings(&config, &tuning, &server_id, client_addr.port(), &budget);
    let accept = spawn_accept(listener, settings, router.clone(), handles, urls_rx);
    let agent_id = shared.agent_id.clone();
    Ok(RunningAgent {
        client_addr,
        http_addr,
        server_id,
        router,
        flusher: write.flusher,
        agent_id,
        probe,
        budget,
        graceful_shutdown_timeout: config.graceful_shutdown_timeout,
        max_inflight_bytes: config.max_inflight_bytes,
        max_inflight_msgs: config.max_inflight_msgs,
        peer_addr,
        sequencer: write.sequencer,
        peer_cache: read.peer_cache,
        read_cache: read.read_cache,
        membership,
        routes,
        arbiters,
        accept,
        http,
    })
}

fn control_plane_factory(config: &AgentConfig, tls: Arc<rustls::ClientConfig>) -> CpFactory {
    let url = config.control_plane_url.clone();
    let group_id = config.group_id.clone();
    let key = config.group_key.clone();
    let options = crate::control_plane::ClientOptions {
        tls: Some(tls),
        ..Default::default()
    };
    Arc::new(move || ControlPlaneClient::with_options(&url, &group_id, &key, options.clone()))
}

fn connection_settings(
    config: &AgentConfig,
    tuning: &AgentTuning,
    server_id: &str,
    port: u16,
    budget: &InflightBudget,
) -> Arc<ConnectionSettings> {
    let mut settings =
        ConnectionSettings::new(server_info(config, server_id, port), budget.clone());
    settings.ping_interval = tuning.ping_interval;
    settings.max_pings_out = tuning.max_pings_out;
    settings.max_pending = tuning.max_pending;
    Arc::new(settings)
}

/// The write path's actors, downstream first: the sequencer (commits, acks), the uploader
/// pool, the flusher (the window), the stream catalog (which starts the batchers).
struct WritePath {
    sequencer: Addr<SequenceSupervisor>,
    flusher: Addr<Flusher>,
    catalog: Addr<StreamCatalog>,
}

fn start_write_path(
    s: &Shared<'_>,
    store: Arc<dyn object_store::ObjectStore>,
    observer: Option<Recipient<Committed>>,
) -> WritePath {
    let sequencer = {
        let cp = s.cp.clone();
        let router = s.router.clone();
        let settings = SequenceSettings {
            agent_id: s.agent_id.clone(),
            commit_deadline: s.tuning.commit_deadline,
            id_prefetch: 16,
        };
        let supervision = SequenceSupervisorSettings {
            agent_id: s.agent_id.clone(),
            commit_deadline: s.tuning.commit_deadline,
            id_wait: s.tuning.upload_deadline,
        };
        SequenceSupervisor::start_in_arbiter(&s.js, move |_| {
            SequenceSupervisor::new(supervision, router.recipient(), move || {
                SequenceClient::new(settings.clone(), cp())
            })
            .with_observer(observer)
        })
    };
    let uploader = UploaderPool::start_in_arbiters(
        store,
        std::slice::from_ref(&s.js),
        s.tuning.uploaders.max(1),
        RetryPolicy::default(),
        crate::actors::write::uploader::DEFAULT_MAILBOX_CAPACITY,
    );
    let flusher = {
        let settings = FlusherSettings {
            group_id: s.config.group_id.clone(),
            window: s.config.batch_write,
            max_object_bytes: s.config.max_object_bytes,
            upload_deadline: s.tuning.upload_deadline,
            max_uploading: s.tuning.uploaders.max(1),
        };
        let sequencer = sequencer.clone();
        Flusher::start_in_arbiter(&s.js, move |_| Flusher::new(settings, uploader, sequencer))
    };
    let catalog = {
        let cp = s.cp.clone();
        let router = s.router.clone();
        let flusher = flusher.clone();
        let interval = s.tuning.stream_poll_interval;
        StreamCatalog::start_in_arbiter(&s.js, move |_| {
            StreamCatalog::new(
                cp(),
                router.clone().recipient(),
                router.recipient(),
                flusher,
                interval,
            )
        })
    };
    WritePath {
        sequencer,
        flusher,
        catalog,
    }
}

/// The route manager, on an arbiter of its own (dialling and handshakes; the routes' reads and
/// writes run on the router's thread).
fn start_routes(s: &Shared<'_>) -> (Arbiter, Addr<RouteManager>) {
    let arbiter = Arbiter::new();
    let me = RouteIdentity {
        group_id: s.config.group_id.clone(),
        group_key: s.config.group_key.clone(),
        agent_id: s.agent_id.clone(),
        zone: s.config.availability_zone.clone().unwrap_or_default(),
        handshake_timeout: ROUTE_HANDSHAKE_TIMEOUT,
    };
    let ports = RouterPorts::of(&s.router);
    let routes =
        RouteManager::start_in_arbiter(&arbiter.handle(), move |_| RouteManager::new(me, ports));
    (arbiter, routes)
}

/// The read path: the read cache, the peer cache over the peer port (which also accepts routes
/// and hands them to the route manager), and the reader every read goes through.
struct ReadPath {
    read_cache: Addr<ReadCache>,
    peer_cache: Addr<PeerSupervisor>,
    reader: Reader,
}

fn start_read_path(
    s: &Shared<'_>,
    store: Arc<dyn object_store::ObjectStore>,
    peer_listener: std::net::TcpListener,
    routes: &Addr<RouteManager>,
) -> ReadPath {
    let read_cache = {
        let store = store.clone();
        let settings = ReadCacheSettings {
            capacity: s.config.cache_bytes,
            peer_timeout: s.tuning.peer_timeout,
        };
        ReadCache::start_in_arbiter(&s.js, move |_| ReadCache::new(settings, store))
    };
    // Bound once: the peer cache's supervisor keeps the listener across restarts.
    let peer_cache = {
        let settings = PeerSettings::new(
            s.config.group_id.clone(),
            s.config.group_key.clone(),
            s.agent_id.clone(),
        );
        let cache = read_cache.clone();
        let route_sockets = routes.clone().recipient();
        PeerSupervisor::start_in_arbiter(&s.js, move |_| {
            PeerSupervisor::new(Some(peer_listener), move |listener| {
                PeerCache::new(settings.clone(), cache.clone(), listener)
                    .with_routes(route_sockets.clone())
            })
        })
    };
    read_cache.do_send(SetPeer(Some(peer_cache.clone().recipient())));
    let reader = Reader::new(read_cache.clone(), store);
    ReadPath {
        read_cache,
        peer_cache,
        reader,
    }
}

/// JetStream beyond the write path: pull consumers and acks, push consumers (under a
/// control-plane lease, so one agent pushes each), the `$JS.API` responders. Returns once they
/// are ready for the first client: the responders subscribed, and the streams that exist
/// routable (bounded: a control plane that is down must not stop the agent serving core NATS).
async fn start_jetstream(s: &Shared<'_>, catalog: &Addr<StreamCatalog>, reader: &Reader) {
    let consumers = {
        let cp = s.cp.clone();
        let router = s.router.clone();
        let reader = reader.clone();
        crate::actors::jetstream::pull::ConsumerManager::start_in_arbiter(&s.js, move |_| {
            crate::actors::jetstream::pull::ConsumerManager::new(cp(), router, reader)
        })
    };
    let push = {
        let cp = s.cp.clone();
        let router = s.router.clone();
        let reader = reader.clone();
        let agent_id = s.agent_id.clone();
        crate::actors::jetstream::push::PushManager::start_in_arbiter(&s.js, move |_| {
            crate::actors::jetstream::push::PushManager::new(cp(), router, reader, agent_id)
        })
    };
    let feed = {
        let cp = s.cp.clone();
        let targets = FeedTargets {
            catalog: catalog.clone().recipient(),
            catalog_up: catalog.clone().recipient(),
            wake: vec![consumers.clone().recipient(), push.clone().recipient()],
            up: vec![consumers.clone().recipient(), push.recipient()],
        };
        EventFeed::start_in_arbiter(&s.js, move |_| EventFeed::new(cp(), targets))
    };
    let js_api = {
        let cp = s.cp.clone();
        let router = s.router.clone();
        let reader = reader.clone();
        let catalog = catalog.clone();
        let feed = feed.recipient();
        JsApi::start_in_arbiter(&s.js, move |_| {
            JsApi::new(cp(), router, catalog, feed, reader)
        })
    };
    let _ = js_api.send(crate::actors::Ready).await;
    let _ = consumers.send(crate::actors::Ready).await;
    let _ = s.router.send(GetStats).await;
    if actix_rt::time::timeout(Duration::from_secs(5), catalog.send(Refresh))
        .await
        .is_err()
    {
        tracing::warn!("streams not loaded at startup; the catalog keeps polling");
    }
}

/// Registration with the control plane and heartbeats; the zone's agents go to `urls` (INFO
/// `connect_urls`).
fn start_membership(
    s: &Shared<'_>,
    ports: AgentPorts,
    urls: tokio::sync::watch::Sender<Vec<String>>,
) -> Addr<Membership> {
    let cp = s.cp.clone();
    let settings = MembershipSettings {
        agent_id: s.agent_id.clone(),
        zone: s.config.availability_zone.clone().unwrap_or_default(),
        advertise_address: resolve_advertise_address(
            s.config.advertise_address.as_deref(),
            &s.config.host,
        ),
        ports,
        refresh: s.tuning.membership_refresh,
    };
    Membership::start_in_arbiter(&s.js, move |_| {
        Membership::new(settings, cp()).with_connect_urls(urls)
    })
}

/// The accept loop: one Connection actor per client, round robin over the worker arbiters.
fn spawn_accept(
    listener: TcpListener,
    mut settings: Arc<ConnectionSettings>,
    router: Addr<Router>,
    handles: Vec<ArbiterHandle>,
    mut urls: tokio::sync::watch::Receiver<Vec<String>>,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let next_id = AtomicU64::new(1);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Running out of descriptors must not end the accept loop.
                    tracing::warn!(error = %e, "accept failed");
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // INFO lists the zone's agents as they are now (new connections only).
            if urls.has_changed().unwrap_or(false) {
                let mut next = (*settings).clone();
                next.info.connect_urls = urls.borrow_and_update().clone();
                settings = Arc::new(next);
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let arbiter = &handles[(id as usize) % handles.len()];
            let router = router.clone();
            let settings = settings.clone();
            Connection::start_in_arbiter(arbiter, move |_| {
                Connection::new(id, stream, peer, router, settings)
            });
        }
    })
}

/// How clients are admitted on the NATS port, for the started line and the banner: this release
/// has neither client authentication nor TLS on it.
pub const CLIENT_SECURITY: &str = "no authentication, no TLS";

/// Warns when the NATS port listens beyond loopback: with no client authentication, anyone who
/// reaches it can read, write and delete every stream.
pub fn warn_if_exposed(host: &str) {
    let loopback = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    if !loopback {
        tracing::warn!(
            host,
            "the NATS port listens beyond loopback with no client authentication or TLS: anyone who reaches it can read and delete every stream"
        );
    }
}

/// Runs an agent until SIGINT/SIGTERM; `format` decides between a banner for people and the
/// JSON "started" event.
pub fn run_blocking(config: AgentConfig, format: LogFormat) -> Result<(), AgentError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut signals = Signals::listen();
        let mut builder = AgentBuilder::new(config.clone());
        if format == LogFormat::Text {
            let config = config.clone();
            builder = builder.on_listening(move |ports| {
                print!(
                    "{}",
                    banner("agent", &config, ports)
                        .row("bucket", config.bucket.redacted())
                        .row("control plane", config.control_plane_url.as_str())
                        .row("group", config.group_id.as_str())
                        .footer("Ctrl-C drains and stops it.")
                        .render()
                );
            });
        }
        let running = builder.start().await?;
        match format {
            LogFormat::Text => {}
            LogFormat::Json => tracing::info!(
                url = %logging::url("nats", &config.host, running.client_addr.port()),
                host = %config.host,
                port = running.client_addr.port(),
                http_port = running.http_addr.port(),
                peer_port = running.peer_addr.port(),
                group_id = %config.group_id,
                bucket = %config.bucket.redacted(),
                control_plane = %config.control_plane_url,
                batch_write_ms = config.batch_write.as_millis() as u64,
                workers = config.workers,
                server_id = %running.server_id,
                clients = CLIENT_SECURITY,
                version = env!("CARGO_PKG_VERSION"),
                "infinistream agent started"
            ),
        }
        warn_if_exposed(&config.host);
        signals.next().await;
        shutdown_on_signal(running, config.graceful_shutdown_timeout, &mut signals).await;
        Ok(())
    })
}

/// The agent's startup banner (also the playground's, with rows of its own).
pub fn banner(what: &str, config: &AgentConfig, ports: Ports) -> Banner {
    Banner::new(format!("InfiniStream {} {what}", env!("CARGO_PKG_VERSION")))
        .row("NATS", logging::url("nats", &config.host, ports.client))
        .row("clients", CLIENT_SECURITY)
        .row(
            "monitoring",
            format!(
                "{}/healthz  /metrics  /varz",
                logging::url("http", &config.host, ports.http)
            ),
        )
        .row(
            "peers",
            format!("{}:{}", logging::connect_host(&config.host), ports.peer),
        )
        .row(
            "window",
            format!(
                "{} ms (one object per window, or {} MiB)",
                config.batch_write.as_millis(),
                config.max_object_bytes / (1024 * 1024)
            ),
        )
}

/// Graceful shutdown after the first signal; a second signal stops at once.
pub async fn shutdown_on_signal(running: RunningAgent, timeout: Duration, signals: &mut Signals) {
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "infinistream agent stopping gracefully (signal again to stop at once)"
    );
    let graceful = running.shutdown(timeout);
    tokio::select! {
        report = graceful => {
            tracing::info!(drained = report.drained, unanswered_msgs = report.unanswered_msgs, "infinistream agent stopped");
        }
        _ = signals.next() => {
            // The graceful future is dropped mid-way; the worker threads go with the process.
            tracing::warn!("second signal: stopping at once");
        }
    }
}

/// SIGINT and SIGTERM, listened for from the moment `listen` is called: a signal that arrives
/// while a process is still starting (its first warnings already on screen) is kept for `next`
/// instead of being missed.
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Needs a tokio runtime (call it inside `block_on`).
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            if self.interrupt.is_none() && self.terminate.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                _ = recv(&mut self.interrupt) => {}
                _ = recv(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
