//! The whole stack in one process on a local directory.

use crate::config::PlaygroundConfig;

#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("the playground is not implemented yet")]
    NotImplemented,
}

/// Runs the control plane and one agent on `file://<dir>/bucket` until told to stop.
pub fn run_blocking(_config: PlaygroundConfig) -> Result<(), PlaygroundError> {
    Err(PlaygroundError::NotImplemented)
}
