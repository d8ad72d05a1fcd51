//! Starting and stopping one agent: arbiters, listeners and the actor graph.

use crate::config::AgentConfig;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent is not implemented yet")]
    NotImplemented,
}

/// Runs an agent until it is told to stop (SIGINT/SIGTERM).
pub fn run_blocking(_config: AgentConfig) -> Result<(), AgentError> {
    Err(AgentError::NotImplemented)
}
