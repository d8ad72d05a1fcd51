//! The types both sides of InfiniStream's control-plane contract share: the agent and the
//! control plane depend on this crate, never on each other.
//!
//! Owns: the JetStream API's JSON shapes, error codes and configuration rules (`jetstream`),
//! subject syntax and matching (`subject`), LEB128 integers (`varint`), the `/v1/*` request and response bodies
//! (`control_plane`), and [`Secret`]. Does not own: any I/O, actor or storage.

pub mod control_plane;
pub mod jetstream;
mod secret;
pub mod subject;
pub mod varint;

pub use secret::Secret;
