//! Routes between the agents of a group, so core NATS crosses agents (issue 14, in progress).
//!
//! Owns, so far, the interest tables (`interest`: which subjects this agent announces to the
//! others, and which agents a published message must be copied to), the wire (`wire`: frames
//! and the group-key handshake proof) and one connection's handshake (`link`: dial, accept).
//! Not done yet, and not wired: the actor keeping a route to every member of the group
//! (dialling, reconnecting with backoff, the peer-port hand-off), the router's
//! forwarding and no-responders across agents, `/routez`, metrics. Until then core NATS stays
//! per agent.

pub mod interest;
pub mod link;
pub mod wire;
