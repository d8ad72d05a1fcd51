//! InfiniStream: NATS JetStream, stateless and diskless, on the user's own object-storage bucket.
//!
//! The crate is a library (every actor and protocol piece is public so agents can be assembled by
//! hand, see `examples/`) plus the `infinistream` binary in `src/main.rs`.

pub mod actors;
pub mod agent;
pub mod bucket;
pub mod config;
pub mod control_plane;
pub mod format;
pub mod logging;
pub mod message;
pub mod protocol;
#[cfg(test)]
mod test_support;
pub mod values;
pub mod workers;
