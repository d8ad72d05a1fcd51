//! Routes between the agents of a group, so core NATS crosses agents (issue 14, in progress).
//!
//! Owns, so far, the interest tables (`interest`: which subjects this agent announces to the
//! others, and which agents a published message must be copied to) and the wire (`wire`: frames
//! and the group-key handshake proof). Not done yet, and not wired: the route connections
//! (accepting, dialling every member of the group, reconnecting with backoff), the router's
//! forwarding and no-responders across agents, `/routez`, metrics. Until then core NATS stays
//! per agent.

pub mod interest;
pub mod wire;
