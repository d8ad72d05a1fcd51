//! The consumer half of the control plane's HTTP contract: claim, ack, waiting and lease bodies.
//!
//! Owns: the serde types agents send to `/v1/consumers/*` and the answers they get. Does not own:
//! what the control plane does with them (`infinistream-control-plane`'s consumer registry) or
//! how an agent delivers what it claimed.

use serde::{Deserialize, Serialize};

use super::model::MessageLocation;
use crate::jetstream::consumer::{ConsumerConfig, PullLimits, PullRequest};

/// `POST /v1/consumers/claim`: the next messages of one consumer for one pull request (or a push
/// consumer's next batch). A claim that finds nothing is the cheap poll of a waiting request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub stream: String,
    pub consumer: String,
    pub batch: u32,
    /// 0 = no byte limit.
    #[serde(default)]
    pub max_bytes: u64,
    /// Pull requests waiting at the claiming agent (reported in CONSUMER.INFO).
    #[serde(default)]
    pub waiting: u64,
    /// Push consumers: the agent driving it (must hold the lease).
    #[serde(default)]
    pub agent_id: String,
    /// A pull request not yet checked against the consumer's limits: refused (nothing claimed)
    /// when the consumer is push based or the request exceeds `max_batch`, `max_expires` or
    /// `max_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullRequest>,
    /// Acks to apply before claiming (any consumers'), as `POST /v1/consumers/ack` would: a
    /// client's acks apply before its next pull, and sending them with the claim makes that one
    /// round trip instead of two.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<AckEntry>,
}

/// `POST /v1/consumers/waiting`: how many pull requests wait at the reporting agent, for
/// consumers whose count changed without a claim (requests expired or their requesters left).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WaitingReport {
    pub counts: Vec<WaitingCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WaitingCount {
    pub stream: String,
    pub consumer: String,
    pub waiting: u64,
}

/// One claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claimed {
    pub location: MessageLocation,
    pub cseq: u64,
    pub deliveries: u64,
    /// Messages left for the consumer after this one (the ack subject's last token).
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimResponse {
    pub messages: Vec<Claimed>,
    /// Messages left for the consumer after this claim.
    pub num_pending: u64,
    /// The next message does not fit in what is left of `max_bytes` (nats-server then ends the
    /// pull request with `409 Message Size Exceeds MaxBytes`).
    #[serde(default)]
    pub too_big: bool,
    #[serde(default)]
    pub headers_only: bool,
    /// Stream sequence of the last message the consumer delivered (push heartbeats).
    #[serde(default)]
    pub last_stream_seq: u64,
    #[serde(default)]
    pub last_consumer_seq: u64,
    /// Pull requests the consumer allows at once.
    #[serde(default)]
    pub max_waiting: i64,
    /// What the consumer allows a pull request (agents check later requests themselves).
    #[serde(default)]
    pub limits: PullLimits,
    /// The 409 description when `pull` was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Set when the claim ended short and deliveries are pending: claim again after this many
    /// ms, when the earliest of them may be redelivered (nothing else announces that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeliver_in_ms: Option<u64>,
    /// The consumer's filter subjects (empty: all): agents wake it only for commits they match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckKind {
    Ack,
    Nak,
    Progress,
    Term,
}

/// One `$JS.ACK` message, parsed by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEntry {
    pub stream: String,
    pub consumer: String,
    pub sseq: u64,
    pub kind: AckKind,
    /// `-NAK {"delay":…}`: nanoseconds before redelivery.
    #[serde(default)]
    pub delay: i64,
}

/// `POST /v1/consumers/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AckBatch {
    pub acks: Vec<AckEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AckBatchResponse {
    pub applied: usize,
}

/// `POST /v1/consumers/lease`: ask to drive (or keep driving) push consumers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub agent_id: String,
    /// Deliver subjects this agent has local interest in; empty = only renew.
    #[serde(default)]
    pub deliver_subjects: Vec<String>,
    pub ttl_ms: i64,
}

/// A push consumer this agent now drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAssignment {
    pub stream: String,
    pub consumer: String,
    pub config: ConsumerConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub assignments: Vec<PushAssignment>,
    /// Deliver subjects of the push consumers not leased by another agent: the ones the agent
    /// should check for local interest before its next lease request.
    #[serde(default)]
    pub push_subjects: Vec<String>,
}
