//! The per-stream Batcher: a stream's publishes waiting for the current window's object.
//!
//! Owns: the stream's pending messages in arrival order (which is each connection's order, since
//! the router forwards them in order) with their publishers' reply subjects and budget permits.
//! Does not own: the window clock or object assembly (the `Flusher` drains every dirty batcher
//! when it seals), sequences (the control plane), or acks (the `SequenceClient`).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::actors::flusher::{Flusher, MarkDirty};
use crate::actors::router::{ConnId, NatsMsg};
use crate::budget::BudgetPermit;

/// Router -> batcher: a message captured by this batcher's stream.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StreamPublish {
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    pub permit: Option<BudgetPermit>,
}

/// One publish waiting for its object to be durable and committed.
#[derive(Debug)]
pub struct Pending {
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    /// Returned to the in-flight budget when this is dropped, i.e. once answered.
    pub permit: Option<BudgetPermit>,
    pub received: Instant,
    pub timestamp_nanos: i64,
}

/// Everything one stream contributes to one object.
#[derive(Debug)]
pub struct StreamBatch {
    pub stream: String,
    pub pending: Vec<Pending>,
}

/// Flusher -> batcher: hand over what is pending (the window is sealing).
#[derive(Message)]
#[rtype(result = "StreamBatch")]
pub struct Drain;

/// Tell the flusher about growth in steps of this many bytes, not per message.
const REPORT_STEP: usize = 256 * 1024;

pub struct Batcher {
    stream: String,
    flusher: Addr<Flusher>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    reported_bytes: usize,
    last_timestamp: i64,
}

impl Batcher {
    pub fn new(stream: impl Into<String>, flusher: Addr<Flusher>) -> Self {
        Self {
            stream: stream.into(),
            flusher,
            pending: Vec::new(),
            pending_bytes: 0,
            reported_bytes: 0,
            last_timestamp: 0,
        }
    }

    /// Arrival time in unix nanos, never going backwards within the stream.
    fn timestamp(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        self.last_timestamp = now.max(self.last_timestamp);
        self.last_timestamp
    }
}

impl Actor for Batcher {
    type Context = Context<Self>;
}

impl Handler<StreamPublish> for Batcher {
    type Result = ();

    fn handle(&mut self, m: StreamPublish, ctx: &mut Self::Context) {
        let size = m.msg.size();
        let timestamp_nanos = self.timestamp();
        let first = self.pending.is_empty();
        self.pending.push(Pending {
            origin: m.origin,
            msg: m.msg,
            permit: m.permit,
            received: Instant::now(),
            timestamp_nanos,
        });
        self.pending_bytes += size;
        if first || self.pending_bytes - self.reported_bytes >= REPORT_STEP {
            self.flusher.do_send(MarkDirty {
                batcher: ctx.address().recipient(),
                first,
                bytes: self.pending_bytes - self.reported_bytes,
            });
            self.reported_bytes = self.pending_bytes;
        }
    }
}

impl Handler<Drain> for Batcher {
    type Result = MessageResult<Drain>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.pending_bytes = 0;
        self.reported_bytes = 0;
        MessageResult(StreamBatch {
            stream: self.stream.clone(),
            pending: std::mem::take(&mut self.pending),
        })
    }
}
