//! Routes between the agents of a group, so core NATS crosses agents (issue 14, in progress).
//!
//! Owns, so far, only the interest tables (`interest`): which subjects this agent announces to
//! the others, and which agents a published message must be copied to. Not done yet, and not
//! wired: the route connections (handshake with the group key, reconnect with backoff), the
//! wire frames, the router's forwarding, `/routez`. Until then core NATS stays per agent.

pub mod interest;
