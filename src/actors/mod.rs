//! The agent's actors, one folder per stage a message travels through (see
//! `docs/architecture.md`): `ingress` (connections, router), `write` (catalog, batchers, flusher,
//! uploaders, commit), `read` (blocks, reader, cache, peers), `jetstream` (API, pull, push),
//! `cluster` (membership, routes), `ops` (monitor, metrics, budget); `messages` holds what crosses
//! stages, `supervisor` restarts the sequence client and the peer cache, `guard` contains panics.
//! Wiring is downstream-first: each actor is started with the address (or `Recipient`) of the
//! actor it feeds, so no actor looks another one up in a shared registry.
//!
//! The stages are private to the crate (`crate::agent` assembles them); the few actors and
//! messages that embedders and the integration tests reach are re-exported here.

pub(crate) mod cluster;
pub(crate) mod guard;
pub(crate) mod ingress;
pub(crate) mod jetstream;
pub(crate) mod messages;
pub(crate) mod ops;
pub(crate) mod read;
pub(crate) mod supervisor;
pub(crate) mod write;

pub use cluster::membership::{GetMembers, Membership};
pub use read::ReadCache;
pub use supervisor::{PeerSupervisor, Restarts, SequenceSupervisor};

/// The peer cache's client side, for tests and tools that speak the peer port.
pub mod peer {
    #[cfg(any(test, feature = "test-hooks"))]
    pub use super::read::peer::Crash;
    pub use super::read::peer::{PeerCache, PeerError, PeerSettings, connect};
}

/// Test-only hooks that exercise the supervisors.
#[cfg(any(test, feature = "test-hooks"))]
pub mod hooks {
    pub use super::write::commit::Crash as SequenceCrash;
}

/// Answered as soon as an actor has started: `send(Ready)` returns after its `started` ran (so,
/// for example, the subscriptions it asked the router for are queued there).
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Ready;
