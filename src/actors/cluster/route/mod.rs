//! Routes between the agents of a group, so core NATS crosses agents as in a nats-server
//! cluster: a full mesh, interest propagated as deltas, one hop.
//!
//! Owns the interest tables (`interest`), the wire (`wire`: frames, codec and the route proof),
//! dialling (`link`: the route handshake on another agent's peer port, whose peer cache accepts
//! it and hands the socket over), the `RouteManager` actor (`manager`: a route to every member
//! of the group, redialled with backoff, tasks that read and write each socket) and the router's
//! half (`table`: links, interest and the fan-out, inside the router actor). Does not own local
//! delivery (the router) or membership (the control plane's, through `Membership`).

pub mod interest;
pub mod link;
pub mod manager;
pub mod messages;
pub mod table;
pub mod wire;
