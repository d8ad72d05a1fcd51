//! The messages that cross the agent's stages: a publish to route (connections, the JetStream
//! actors and the sequence client's acks all send them to the router), a publish a stream
//! captured (router to batcher), and the stream captures (catalog to router).
//!
//! Owns: those message types, apart from the actors that send and handle them, so a stage can
//! name another stage's input without importing it (a batcher never imports the router).
//! Does not own: what a stage does with them.

use actix::prelude::*;

use crate::actors::ops::budget::BudgetPermit;
use crate::message::NatsMsg;

pub use crate::message::ConnId;

/// Routes one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    /// The publishing connection (for echo and no-responders), None for internal publishers.
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    /// Whether streams may capture it; false for a message that is already stored.
    pub capture: bool,
    /// The publisher's share of the in-flight budget; kept only if a stream captures the message.
    pub permit: Option<BudgetPermit>,
}

/// Routes many messages, in order: the acks and core copies of one committed object. One mailbox
/// message instead of two per publish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch(pub Vec<Publish>);

/// Replaces every stream capture: each pattern with the batcher that stores its messages.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStreamRoutes {
    pub routes: Vec<(String, Recipient<StreamPublish>)>,
}

/// Router -> batcher: a message captured by this batcher's stream.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StreamPublish {
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    pub permit: Option<BudgetPermit>,
}
