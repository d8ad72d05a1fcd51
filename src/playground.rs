//! The whole stack in one process on a local directory: the control plane (SQLite under
//! `<dir>/control-plane`) and one agent writing objects to `file://<dir>/bucket`. Restarting it on
//! the same directory keeps every stream and message.

use crate::agent::{self, AgentTuning};
use crate::config::{ControlPlaneConfig, PlaygroundConfig};
use crate::control_plane;

#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("cannot create the playground directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error(transparent)]
    ControlPlane(#[from] control_plane::ControlPlaneError),
    #[error(transparent)]
    Agent(#[from] agent::AgentError),
}

/// Runs the control plane and one agent until SIGINT/SIGTERM.
pub fn run_blocking(config: PlaygroundConfig) -> Result<(), PlaygroundError> {
    for sub in ["bucket", "control-plane"] {
        let dir = config.dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(|source| PlaygroundError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    let system = actix_rt::System::new();
    system.block_on(async move {
        let cp = control_plane::start_in_process(ControlPlaneConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: Some(config.dir.join("control-plane")),
            group_id: config.agent.group_id.clone(),
            group_key: config.agent.group_key.clone(),
        })
        .await?;
        let mut agent_config = config.agent.clone();
        agent_config.control_plane_url = cp.base_url();
        let running = match agent::start(agent_config.clone(), AgentTuning::default()).await {
            Ok(r) => r,
            Err(e) => {
                cp.stop().await;
                return Err(e.into());
            }
        };
        let port = running.client_addr.port();
        tracing::info!(
            port,
            http_port = running.http_addr.port(),
            dir = %config.dir.display(),
            control_plane = %cp.base_url(),
            batch_write_ms = agent_config.batch_write.as_millis() as u64,
            workers = agent_config.workers,
            "infinistream playground started"
        );
        // The one line a person needs, on its own so it is easy to copy.
        println!("nats://127.0.0.1:{port}");
        agent::wait_for_signal().await;
        // Same as the agent: drain gracefully, a second signal stops at once.
        agent::shutdown_on_signal(running, agent_config.graceful_shutdown_timeout).await;
        cp.stop().await;
        Ok(())
    })
}
