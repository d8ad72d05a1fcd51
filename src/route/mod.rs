//! Routes between the agents of a group, so core NATS crosses agents (issue 14, in progress).
//!
//! Owns, so far, the interest tables (`interest`: which subjects this agent announces to the
//! others, and which agents a published message must be copied to), the wire (`wire`: frames
//! and the group-key handshake proof), one connection's handshake (`link`: dial, accept) and the
//! `RouteManager` actor (`manager`: a route to every member of the group, redialled with backoff,
//! interest announced, replayed and withdrawn, messages copied by interest). Not done yet, and
//! not wired: the agent does not start the manager, the peer port does not hand it sockets,
//! its writer queues are not bounded yet, the router's
//! forwarding and no-responders across agents, `/routez`, metrics. Until then core NATS stays
//! per agent.

pub mod interest;
pub mod link;
pub mod manager;
pub mod wire;
