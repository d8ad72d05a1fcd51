//! Routes between the agents of a group, so core NATS crosses agents (issue 14, in progress).
//!
//! Owns, so far, the interest tables (`interest`: which subjects this agent announces to the
//! others, and which agents a published message must be copied to), the wire (`wire`: route
//! frames and the route proof), dialling (`link`: the route handshake on another agent's peer
//! port, whose peer cache accepts it and hands the socket over) and the `RouteManager` actor
//! (`manager`: a route to every member of the group, redialled with backoff, interest
//! announced, replayed and withdrawn, messages copied by interest). Not done yet, and not wired:
//! the agent does not start the manager nor give the peer cache its address, the writer queues
//! are not bounded yet, the router's forwarding and no-responders across agents, `/routez`,
//! metrics. Until then core NATS stays per agent.

pub mod interest;
pub mod link;
pub mod manager;
pub mod wire;
