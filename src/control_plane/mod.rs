//! The mock (reference) control plane: metadata only, never message bytes.

use crate::config::ControlPlaneConfig;

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("the control plane is not implemented yet")]
    NotImplemented,
}

/// Runs the control plane HTTP server until told to stop.
pub fn run_blocking(_config: ControlPlaneConfig) -> Result<(), ControlPlaneError> {
    Err(ControlPlaneError::NotImplemented)
}
