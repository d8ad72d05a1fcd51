//! Agents in process: each on its own thread with its own actix system, on free ports.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use infinistream::agent::{self, AgentTuning, ShutdownReport};
use infinistream::config::{AgentConfig, BucketUrl, Secret};

pub const GROUP_ID: &str = "test-group";
pub const GROUP_KEY: &str = "test-group-key-0123456789";

/// A configuration with free ports and small, fast settings.
pub fn test_config() -> AgentConfig {
    let mut c = AgentConfig::new(
        GROUP_ID,
        Secret::new(GROUP_KEY),
        BucketUrl::Memory {
            name: "test".into(),
        },
    );
    c.batch_write = Duration::from_millis(50);
    // Nothing listens on port 1: agents without a control plane serve core NATS only.
    c.control_plane_url = "http://127.0.0.1:1".into();
    c.host = "127.0.0.1".into();
    c.port = 0;
    c.peer_port = 0;
    c.http_port = 0;
    c.workers = 2;
    c.max_inflight_bytes = 64 * 1024 * 1024;
    c.cache_bytes = 64 * 1024 * 1024;
    c.server_name = "test-agent".into();
    // Dropping a TestAgent shuts it down gracefully; never let a stuck test wait a minute.
    c.graceful_shutdown_timeout = Duration::from_secs(10);
    c
}

/// Addresses inside a running agent, for tests that poke its actors.
#[derive(Clone)]
pub struct AgentHandles {
    pub agent_id: String,
    pub peer_addr: std::net::SocketAddr,
    pub sequencer: actix::Addr<infinistream::actors::SequenceSupervisor>,
    pub peer_cache: actix::Addr<infinistream::actors::PeerSupervisor>,
    pub read_cache: actix::Addr<infinistream::actors::ReadCache>,
    pub membership: actix::Addr<infinistream::actors::Membership>,
}

pub struct TestAgent {
    pub handles: AgentHandles,
    pub port: u16,
    pub http_port: u16,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<Option<Duration>>>,
    thread: Option<JoinHandle<()>>,
    report: Option<mpsc::Receiver<ShutdownReport>>,
}

impl TestAgent {
    pub fn start() -> Self {
        Self::start_with(|_, _| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut AgentConfig, &mut AgentTuning)) -> Self {
        let mut config = test_config();
        let mut tuning = AgentTuning::default();
        adjust(&mut config, &mut tuning);
        Self::start_config(config, tuning)
    }

    pub fn start_config(config: AgentConfig, tuning: AgentTuning) -> Self {
        super::init_logs();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Option<Duration>>();
        let (report_tx, report_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let running = match agent::start(config, tuning).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let handles = AgentHandles {
                    agent_id: running.agent_id.clone(),
                    peer_addr: running.peer_addr,
                    sequencer: running.sequencer.clone(),
                    peer_cache: running.peer_cache.clone(),
                    read_cache: running.read_cache.clone(),
                    membership: running.membership.clone(),
                };
                let _ = ready_tx.send(Ok((
                    running.client_addr.port(),
                    running.http_addr.port(),
                    handles,
                )));
                match stop_rx.await {
                    Ok(Some(timeout)) => {
                        let report = running.shutdown(timeout).await;
                        let _ = report_tx.send(report);
                    }
                    _ => running.stop().await,
                }
            });
        });
        let (port, http_port, handles) = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("agent thread answered")
            .expect("agent started");
        Self {
            handles,
            port,
            http_port,
            url: format!("nats://127.0.0.1:{port}"),
            stop: Some(stop_tx),
            thread: Some(thread),
            report: Some(report_rx),
        }
    }

    /// Starts a graceful shutdown (as on SIGTERM) with `timeout` and returns without waiting.
    pub fn begin_shutdown(&mut self, timeout: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Some(timeout));
        }
    }

    /// Waits for the graceful shutdown started by `begin_shutdown` to finish.
    pub fn wait_shutdown(mut self) -> ShutdownReport {
        let report = self
            .report
            .take()
            .expect("report channel")
            .recv_timeout(Duration::from_secs(120))
            .expect("shutdown finished");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        report
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(None);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
