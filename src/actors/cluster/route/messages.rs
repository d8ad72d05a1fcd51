//! Messages between the route manager and the router.
//!
//! Owns the message types only, apart from both actors, so the manager names the router by
//! recipients ([`RouterPorts`]) and neither imports the other.

use actix::prelude::*;

use super::interest::PeerId;
use super::table::LinkHandle;
use super::wire::RouteFrame;

/// Manager -> router: a link is up; its interest snapshot goes first on it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkUp(pub LinkHandle);

/// Manager (or a link's tasks) -> router: a link is gone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct LinkDown {
    pub peer: PeerId,
}

/// A link's reader -> router: frames in the order they came. The reader waits for each batch
/// to be handled before it reads on, so a busy router slows the other agent's writer (TCP).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromRoute {
    pub peer: PeerId,
    pub frames: Vec<RouteFrame>,
}

/// The router's side of the routes, as recipients.
#[derive(Clone)]
pub struct RouterPorts {
    pub up: Recipient<LinkUp>,
    pub down: Recipient<LinkDown>,
    pub inbound: Recipient<FromRoute>,
    /// The router's thread: each route's reader and writer run there, so a message crosses no
    /// thread between the router and the socket.
    pub arbiter: actix::dev::ArbiterHandle,
}

impl RouterPorts {
    /// Called on the router's own arbiter (its thread is taken from the caller).
    pub fn of<A>(router: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<LinkUp> + Handler<LinkDown> + Handler<FromRoute>,
    {
        Self {
            up: router.clone().recipient(),
            down: router.clone().recipient(),
            inbound: router.clone().recipient(),
            arbiter: actix::Arbiter::current(),
        }
    }
}
