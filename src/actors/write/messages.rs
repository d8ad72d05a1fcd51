//! The messages inside the write path: a batcher reports growth, the flusher drains it, and what
//! one stream contributes to one object travels on to the sequence client.
//!
//! Owns: those types, apart from the actors, so the batcher, flusher and sequence client import
//! none of each other's actors (each holds a `Recipient` of what it feeds). Does not own: the
//! block layout of a batch's data (`batcher`).

use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;

use crate::actors::messages::ConnId;
use crate::actors::ops::budget::BudgetPermit;
use crate::format::RecordMeta;
use crate::message::NatsMsg;

/// One publish waiting for its object to be durable and committed.
#[derive(Debug)]
pub struct Pending {
    pub origin: Option<ConnId>,
    /// After a drain: views into the batch's `data`. Before it, only the reply subject is set
    /// (the bytes are in the batcher's buffer).
    pub msg: NatsMsg,
    /// Returned to the in-flight budget when this is dropped, i.e. once answered.
    pub permit: Option<BudgetPermit>,
    pub received: Instant,
    /// Lengths and arrival time (unix nanos): the record's entry in the block table.
    pub meta: RecordMeta,
    /// The publish's span (see `StreamPublish::span`): the flusher records its seal and object
    /// id in it, the ack is logged in it.
    pub span: tracing::Span,
}

/// Everything one stream contributes to one object.
#[derive(Debug)]
pub struct StreamBatch {
    pub stream: String,
    pub pending: Vec<Pending>,
    /// The block data: each pending message's headers and payload, back to back.
    pub data: Bytes,
    /// The block's distinct subjects, in order of first appearance; each pending message's
    /// `meta.subject` indexes it (object block version 2).
    pub subjects: Vec<ByteString>,
}

/// Flusher -> batcher: hand over what is pending (the window is sealing).
#[derive(Message)]
#[rtype(result = "StreamBatch")]
pub struct Drain;

/// Batcher -> flusher: it has data for the current window (`first`), or grew by `bytes`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkDirty {
    pub batcher: Recipient<Drain>,
    pub first: bool,
    pub bytes: usize,
}
