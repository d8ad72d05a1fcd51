//! The reference control plane: metadata only, never message bytes. Agents send it stream
//! configs, object ids and a summary per stream block of each object; it assigns sequences, is
//! the source of truth for JetStream stream state, and tells agents what changed (`events`).
//!
//! Owns: starting and stopping the HTTP server and its store thread (`start_in_process`), and
//! the submodules: `store` (persistence), `worker` (the one thread that owns the store and the
//! consumer registry), `consumers` (the consumer registry), `events` (the change feed), `js_api`
//! (`$JS.API` answers), `server` (HTTP), `dirlock` (one owner per data directory).
//! Does not own: the wire types (`infinistream-api`), the agent, or the process edge (banner,
//! signals, logging: the `infinistream` binary).

pub mod consumers;
pub mod dirlock;
pub mod events;
pub mod js_api;
pub mod server;
pub mod store;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

use infinistream_api::Secret;
pub use store::{MetadataStore, SqliteStore, StoreError};

/// Configuration of `infinistream control-plane` (layered from flags, environment and options
/// files by the binary).
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub listen: SocketAddr,
    /// None: in-memory (tests only).
    pub data_dir: Option<std::path::PathBuf>,
    pub group_id: String,
    pub group_key: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("control plane store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("control plane metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("control plane runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error(transparent)]
    Lock(#[from] crate::dirlock::LockError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// Knobs that are not in `ControlPlaneConfig` (tests shorten the agent expiry).
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// A member whose last heartbeat is older than this drops out of `GET /v1/agents`.
    pub agent_expiry: Duration,
    /// HTTP worker threads.
    pub workers: usize,
    /// Stream leader name in STREAM.INFO when the agent sends no `x-infinistream-server-name`.
    pub server_name: String,
    /// How long a graceful stop waits for requests in flight.
    pub shutdown_timeout: Duration,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            agent_expiry: Duration::from_secs(10),
            workers: 2,
            server_name: "infinistream".to_string(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// A control plane serving in this process.
pub struct RunningControlPlane {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    store: Option<worker::StoreThread>,
    /// Ends the `GET /v1/events` long-polls at once when stopping (a graceful stop waits for
    /// requests in flight).
    closing: tokio::sync::watch::Sender<bool>,
    /// Held for as long as this control plane runs (released after the store is closed).
    _lock: Option<crate::dirlock::DirLock>,
}

impl std::fmt::Debug for RunningControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningControlPlane")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RunningControlPlane {
    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` for `ControlPlaneClient::new`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, then closes the store.
    pub async fn stop(mut self) {
        self.closing.send_replace(true);
        self.handle.stop(true).await;
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "control plane server ended with an error")
                }
                Err(e) => tracing::warn!(error = %e, "control plane server task failed"),
            }
        }
        if let Some(store) = self.store.take() {
            // Joining the store thread blocks; keep it off the async executor.
            let _ = tokio::task::spawn_blocking(move || store.stop()).await;
        }
        tracing::info!(listen = %self.addr, "infinistream control plane stopped");
    }
}

impl Drop for RunningControlPlane {
    fn drop(&mut self) {
        if self.server.is_some() {
            // Sends the stop command now; nobody is left to await it.
            drop(self.handle.stop(false));
        }
    }
}

/// Binds and serves on the current actix/tokio runtime (inside an actix `System`, as in tests
/// and the playground). Port 0 picks a free port; see `RunningControlPlane::local_addr`.
pub async fn start_in_process(
    config: ControlPlaneConfig,
) -> Result<RunningControlPlane, ControlPlaneError> {
    start_in_process_with(config, ControlPlaneOptions::default()).await
}

/// `start_in_process` with explicit options.
pub async fn start_in_process_with(
    config: ControlPlaneConfig,
    options: ControlPlaneOptions,
) -> Result<RunningControlPlane, ControlPlaneError> {
    // Everything that can be refused is checked before the database is opened: the directory
    // lock (one owner), then the port.
    let lock = match &config.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| ControlPlaneError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
            Some(crate::dirlock::DirLock::acquire(dir)?)
        }
        None => None,
    };
    let bind = |source| ControlPlaneError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;

    let data_dir = config.data_dir.clone();
    let store_thread = tokio::task::spawn_blocking(move || {
        worker::StoreThread::spawn(move || {
            let store: Box<dyn MetadataStore> = match &data_dir {
                Some(dir) => Box::new(SqliteStore::open(dir)?),
                None => Box::new(SqliteStore::open_in_memory()?),
            };
            Ok(store)
        })
    })
    .await
    .map_err(|e| ControlPlaneError::Runtime(std::io::Error::other(e.to_string())))??;

    let state = web::Data::new(server::AppState::new(
        store_thread.handle(),
        config.group_id.clone(),
        config.group_key.expose(),
        options.agent_expiry,
        options.server_name.clone(),
    )?);
    let closing = state.closing.clone();
    let app_state = state.clone();
    let http = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(actix_web::middleware::from_fn(server::observe))
            .configure(server::configure)
    })
    .workers(options.workers.max(1))
    // Commit responses are large single writes; Nagle would hold their tail for a delayed ACK.
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(options.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(bind)?;
    let running = http.run();
    let handle = running.handle();
    let server = tokio::spawn(running);
    tracing::debug!(listen = %addr, "control plane listening");
    Ok(RunningControlPlane {
        addr,
        handle,
        server: Some(server),
        store: Some(store_thread),
        closing,
        _lock: lock,
    })
}
