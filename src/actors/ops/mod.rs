//! Ops: what operators see and what bounds the agent. The monitoring server (`monitor`, port
//! 8222), the Prometheus metrics (`metrics`) and the in-flight budget (`budget`) that stops
//! reading connections when the bucket or control plane is slow.
//!
//! Owns: those three. Does not own: what is measured.

pub mod budget;
pub mod metrics;
pub mod monitor;
pub mod queries;
