//! The whole stack in one process on a local directory: the control plane (SQLite under
//! `<dir>/control-plane`) and one agent writing objects to `file://<dir>/bucket`. Restarting it on
//! the same directory keeps every stream and message.
//!
//! Owns the startup order, chosen so that whatever can refuse to start does so before any state
//! is opened: the directory lock, then the agent's ports, then the database, then the agent.
//! Does not own the control plane or the agent themselves.

use infinistream::agent::{self, AgentBuilder, Listeners};
use infinistream::logging::LogFormat;
use infinistream_control_plane::dirlock::{DirLock, LockError};
use infinistream_control_plane::{self as control_plane, ControlPlaneConfig};

use super::layering::PlaygroundConfig;

#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("cannot create the playground directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    ControlPlane(#[from] control_plane::ControlPlaneError),
    #[error(transparent)]
    Agent(#[from] agent::AgentError),
}

/// Runs the control plane and one agent until SIGINT/SIGTERM; `format` decides between a
/// banner for people and the JSON "started" event.
pub fn run_blocking(config: PlaygroundConfig, format: LogFormat) -> Result<(), PlaygroundError> {
    let create = |dir: &std::path::Path| {
        std::fs::create_dir_all(dir).map_err(|source| PlaygroundError::Dir {
            dir: dir.display().to_string(),
            source,
        })
    };
    create(&config.dir)?;
    let _lock = DirLock::acquire(&config.dir)?;
    let listeners = Listeners::bind(&config.agent)?;
    // Printed now, before the control plane and the agent log their first events.
    if format == LogFormat::Text {
        print!(
            "{}",
            agent::banner("playground", &config.agent, listeners.ports()?)
                .row("data", config.dir.display().to_string())
                .footer("Ctrl-C stops it; the data stays for the next start.")
                .render()
        );
    }
    for sub in ["bucket", "control-plane"] {
        create(&config.dir.join(sub))?;
    }
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut signals = agent::Signals::listen();
        let cp = control_plane::start_in_process(ControlPlaneConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: Some(config.dir.join("control-plane")),
            group_id: config.agent.group_id.clone(),
            group_key: config.agent.group_key.clone(),
        })
        .await?;
        let mut agent_config = config.agent.clone();
        agent_config.control_plane_url = cp.base_url();
        let started = AgentBuilder::new(agent_config.clone())
            .listeners(listeners)
            .start()
            .await;
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                cp.stop().await;
                return Err(e.into());
            }
        };
        let url =
            infinistream::logging::url("nats", &agent_config.host, running.client_addr.port());
        match format {
            LogFormat::Text => {}
            LogFormat::Json => tracing::info!(
                url = %url,
                host = %agent_config.host,
                port = running.client_addr.port(),
                http_port = running.http_addr.port(),
                peer_port = running.peer_addr.port(),
                dir = %config.dir.display(),
                control_plane = %cp.base_url(),
                batch_write_ms = agent_config.batch_write.as_millis() as u64,
                workers = agent_config.workers,
                clients = agent::CLIENT_SECURITY,
                version = env!("CARGO_PKG_VERSION"),
                "infinistream playground started"
            ),
        }
        agent::warn_if_exposed(&agent_config.host);
        signals.next().await;
        // Same as the agent: drain gracefully, a second signal stops at once.
        agent::shutdown_on_signal(
            running,
            agent_config.graceful_shutdown_timeout,
            &mut signals,
        )
        .await;
        cp.stop().await;
        Ok(())
    })
}
