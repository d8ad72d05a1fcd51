//! The control plane's HTTP contract: what agents send to `/v1/*` and what they get back.
//!
//! Owns: `entries` (a block's per-message columns), `events` (the change feed), `model` (agents, object ids, streams, commits, orphans, locations) and `consumers`
//! (claim, ack, waiting, lease). Does not own: the server (`infinistream-control-plane`) or the
//! client (the agent's `control_plane::client`).

pub mod consumers;
pub mod entries;
pub mod events;
pub mod model;
