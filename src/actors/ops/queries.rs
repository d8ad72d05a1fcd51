//! What the monitoring server asks the other actors, and what they answer: the router's counts,
//! each connection's session (`/connz`), the routes (`/routez`).
//!
//! Owns: those query types, here beside the monitor so that it names no actor (it holds
//! `Recipient`s of these queries) while the router, the connections and the route table, which
//! answer them, depend on `ops` as they do for metrics. Does not own: the answers' content.

use std::net::SocketAddr;
use std::time::SystemTime;

use actix::prelude::*;

use crate::message::{ConnId, PeerId};

/// Counts, for monitoring and tests.
#[derive(Message)]
#[rtype(result = "RouterStats")]
pub struct GetStats;

#[derive(Debug, Clone, Default, MessageResponse)]
pub struct RouterStats {
    pub connections: usize,
    pub subscriptions: usize,
    pub stream_routes: usize,
}

/// Agent -> connection (through the router): session control for monitoring and shutdown.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "Option<ConnInfo>")]
pub enum ConnControl {
    /// Report the session's counters (`/connz`).
    Info,
    /// Lame-duck mode: send INFO with `"ldm":true` and stop reading new frames, so every publish
    /// already read can be answered before the connection closes.
    LameDuck,
    /// Write out what is buffered, then close.
    Close,
}

/// One connection as `/connz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub cid: ConnId,
    pub peer: SocketAddr,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
}

/// Every connection's control address, for asking them in parallel (`/connz`).
#[derive(Message)]
#[rtype(result = "Vec<Recipient<ConnControl>>")]
pub struct ListConnections;

/// The routes as the router sees them (`/routez`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<RouteInfo>")]
pub struct GetRoutes;

/// One route as `/routez` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub peer: PeerId,
    pub agent: String,
    pub zone: String,
    pub remote: Option<SocketAddr>,
    pub solicited: bool,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub dropped_msgs: u64,
    pub pending_bytes: usize,
    /// Interest entries the other agent announced.
    pub subscriptions: usize,
}
