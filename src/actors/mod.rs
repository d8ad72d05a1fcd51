//! The agent's actors. Wiring is downstream-first: each actor is started with the address of the
//! actor it feeds, so no actor looks another one up in a shared registry.
//!
//! Write path: `connection` -> `router` -> per-stream `batcher` -> `flusher` (one object per
//! window) -> `uploader` pool -> `sequence_client` (commit) -> acks back to the publishers.

pub mod cluster;
pub mod guard;
pub mod ingress;
pub mod jetstream;
pub mod messages;
pub mod ops;
pub mod read;
pub mod supervisor;
pub mod write;

/// Answered as soon as an actor has started: `send(Ready)` returns after its `started` ran (so,
/// for example, the subscriptions it asked the router for are queued there).
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Ready;
