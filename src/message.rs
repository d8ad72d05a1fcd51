//! The message value every part of the agent passes around: subject, reply, headers, payload.
//!
//! Owns only the value and its size rule. Kept apart from the router so the route wire, the
//! batcher and the sequence client can name it without importing the router (no module cycle).

use bytes::Bytes;
use bytestring::ByteString;

/// A connection's id, unique within one agent.
pub type ConnId = u64;

/// A route's peer: another agent of the group, as this agent's route table numbers them.
pub type PeerId = u32;

/// A message as it travels between actors. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsMsg {
    pub subject: ByteString,
    pub reply: Option<ByteString>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

impl NatsMsg {
    pub fn new(subject: impl Into<ByteString>, payload: Bytes) -> Self {
        Self {
            subject: subject.into(),
            reply: None,
            headers: None,
            payload,
        }
    }

    /// Bytes this message counts against budgets and limits.
    pub fn size(&self) -> usize {
        self.subject.len()
            + self.reply.as_ref().map_or(0, |r| r.len())
            + self.headers.as_ref().map_or(0, |h| h.len())
            + self.payload.len()
    }
}
