//! The agent's actors. Wiring is downstream-first: each actor is started with the address of the
//! actor it feeds, so no actor looks another one up in a shared registry.
//!
//! Write path: `connection` -> `router` -> per-stream `batcher` -> `flusher` (one object per
//! window) -> `uploader` pool -> `sequence_client` (commit) -> acks back to the publishers.

pub mod batcher;
mod burst;
pub mod connection;
pub mod consumer;
pub mod flusher;
pub mod guard;
pub mod jetstream_api;
pub mod membership;
pub mod push;
pub mod router;
pub mod sequence_client;
pub mod supervisor;
pub mod uploader;
pub mod write_error;

/// Answered as soon as an actor has started: `send(Ready)` returns after its `started` ran (so,
/// for example, the subscriptions it asked the router for are queued there).
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Ready;
