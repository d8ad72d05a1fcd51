//! Cluster: the agents of one group. `membership` registers this agent with the control plane
//! and tells the others' addresses; `route` keeps a route to every member so core NATS crosses
//! agents; `events` follows the control plane's change feed (commits, consumers, streams).
//!
//! Owns: membership, the route mesh and the event feed. Does not own: the peer cache (`read::peer`, which uses
//! membership) or local delivery (`ingress`).

pub mod events;
pub mod membership;
pub mod route;
