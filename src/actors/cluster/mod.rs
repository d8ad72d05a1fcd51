//! Cluster: the agents of one group. `membership` registers this agent with the control plane
//! and tells the others' addresses; `route` keeps a route to every member so core NATS crosses
//! agents.
//!
//! Owns: membership and the route mesh. Does not own: the peer cache (`read::peer`, which uses
//! membership) or local delivery (`ingress`).

pub mod membership;
pub mod route;
