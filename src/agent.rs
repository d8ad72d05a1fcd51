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

use crate::actors::connection::{Connection, ConnectionSettings};
use crate::actors::flusher::{Flusher, FlusherSettings};
use crate::actors::jetstream_api::{JsApi, StreamCatalog};
use crate::actors::router::Router;
use crate::actors::sequence_client::{SequenceClient, SequenceSettings};
use crate::actors::uploader::{RetryPolicy, UploaderPool};
use crate::budget::InflightBudget;
use crate::config::AgentConfig;
use crate::control_plane::client::ControlPlaneClient;
use crate::protocol::info::{COMPAT_SERVER_VERSION, ServerInfo, new_server_id};

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
    #[error("cannot open the bucket: {0}")]
    Bucket(#[from] crate::bucket::BucketError),
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
    arbiters: Vec<Arbiter>,
    accept: actix_rt::task::JoinHandle<()>,
    http: actix_web::dev::ServerHandle,
}

impl RunningAgent {
    /// Stops accepting, closes every connection and the worker threads.
    pub async fn stop(self) {
        self.accept.abort();
        self.http.stop(false).await;
        for a in &self.arbiters {
            a.stop();
        }
    }
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
    }
}

/// Starts an agent in the current actix system and returns once it listens.
pub async fn start(config: AgentConfig, tuning: AgentTuning) -> Result<RunningAgent, AgentError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| AgentError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let client_addr = listener.local_addr().map_err(|source| AgentError::Bind {
        addr: addr.clone(),
        source,
    })?;

    let server_id = new_server_id();
    let budget = InflightBudget::new(config.max_inflight_bytes, config.max_inflight_msgs);
    let mut settings = ConnectionSettings::new(
        server_info(&config, &server_id, client_addr.port()),
        budget.clone(),
    );
    settings.ping_interval = tuning.ping_interval;
    settings.max_pings_out = tuning.max_pings_out;
    settings.max_pending = tuning.max_pending;
    let settings = Arc::new(settings);

    let router = Router::new().start();
    let agent_id = format!("{}-{}", config.server_name, &server_id[..8]);

    // The JetStream write path and API share one arbiter: they exchange many small messages.
    let js = Arbiter::new();
    let js_handle = js.handle();
    let store = crate::bucket::build_object_store(&config.bucket)?;
    let cp = {
        let url = config.control_plane_url.clone();
        let group_id = config.group_id.clone();
        let key = config.group_key.clone();
        move || ControlPlaneClient::new(&url, &group_id, &key)
    };
    let sequencer = {
        let cp = cp.clone();
        let router = router.clone();
        let settings = SequenceSettings {
            agent_id: agent_id.clone(),
            commit_deadline: tuning.commit_deadline,
            id_prefetch: 16,
        };
        SequenceClient::start_in_arbiter(&js_handle, move |_| {
            SequenceClient::new(settings, cp(), router)
        })
    };
    let uploader = UploaderPool::start_in_arbiters(
        store.clone(),
        std::slice::from_ref(&js_handle),
        tuning.uploaders.max(1),
        RetryPolicy::default(),
        crate::actors::uploader::DEFAULT_MAILBOX_CAPACITY,
    );
    let flusher = {
        let settings = FlusherSettings {
            group_id: config.group_id.clone(),
            window: config.batch_write,
            max_object_bytes: config.max_object_bytes,
            upload_deadline: tuning.upload_deadline,
        };
        let sequencer = sequencer.clone();
        Flusher::start_in_arbiter(&js_handle, move |_| {
            Flusher::new(settings, uploader, sequencer)
        })
    };
    let catalog = {
        let cp = cp.clone();
        let router = router.clone();
        let flusher = flusher.clone();
        let interval = tuning.stream_poll_interval;
        StreamCatalog::start_in_arbiter(&js_handle, move |_| {
            StreamCatalog::new(cp(), router, flusher, interval)
        })
    };
    // JetStream consumers: pull requests and acks (state in the control plane).
    {
        let cp = cp.clone();
        let router = router.clone();
        let store = store.clone();
        crate::actors::consumer::ConsumerManager::start_in_arbiter(&js_handle, move |_| {
            crate::actors::consumer::ConsumerManager::new(cp(), router, store)
        });
    }
    {
        let cp = cp.clone();
        let router = router.clone();
        let store = store.clone();
        JsApi::start_in_arbiter(&js_handle, move |_| {
            JsApi::new(cp(), router, catalog, store)
        });
    }

    let mut arbiters: Vec<Arbiter> = (0..config.workers.max(1)).map(|_| Arbiter::new()).collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(|a| a.handle()).collect();
    arbiters.push(js);

    let (http_addr, http) = crate::monitor::start(&config, &server_id, router.clone())
        .await
        .map_err(|source| AgentError::Bind {
            addr: format!("{}:{}", config.host, config.http_port),
            source,
        })?;

    let accept_router = router.clone();
    let accept = actix_rt::spawn(async move {
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
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let arbiter = &handles[(id as usize) % handles.len()];
            let router = accept_router.clone();
            let settings = settings.clone();
            Connection::start_in_arbiter(arbiter, move |_| {
                Connection::new(id, stream, peer, router, settings)
            });
        }
    });

    Ok(RunningAgent {
        client_addr,
        http_addr,
        server_id,
        router,
        flusher,
        agent_id,
        arbiters,
        accept,
        http,
    })
}

/// Runs an agent until SIGINT/SIGTERM.
pub fn run_blocking(config: AgentConfig) -> Result<(), AgentError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let running = start(config.clone(), AgentTuning::default()).await?;
        tracing::info!(
            port = running.client_addr.port(),
            http_port = running.http_addr.port(),
            peer_port = config.peer_port,
            group_id = %config.group_id,
            bucket = %config.bucket.redacted(),
            batch_write_ms = config.batch_write.as_millis() as u64,
            workers = config.workers,
            server_id = %running.server_id,
            "infinistream agent started"
        );
        wait_for_signal().await;
        tracing::info!("infinistream agent stopping");
        running.stop().await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
