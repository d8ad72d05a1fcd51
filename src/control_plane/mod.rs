//! The agent's side of the control plane: a typed HTTP client for `/v1/*`.
//!
//! Owns: `client` (requests, retries, TLS, errors as the agent sees them). Does not own: the
//! wire types (`infinistream_api::control_plane`) or the server (`infinistream-control-plane`).

pub mod client;

pub use client::{ClientOptions, ControlPlaneClient, CpError};
