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
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "ack_wire")]
    pub acks: Vec<AckEntry>,
    /// Answer with [`ClaimResponse::runs`] instead of one [`Claimed`] per message (a control
    /// plane that predates runs ignores this and answers `messages`; agents read both).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runs: bool,
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

/// Claimed deliveries as ranges: consecutive records of one block with consecutive stream and
/// consumer sequences, each delivered `deliveries` times. A claim of new messages from one
/// block is one run, whatever its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedRun {
    pub object_id: u64,
    pub object_key: String,
    pub block_offset: u64,
    pub block_len: u64,
    pub first_seq: u64,
    /// Position of the first message in its block (counting rejected entries).
    pub first_index: u32,
    pub first_cseq: u64,
    pub count: u32,
    pub deliveries: u64,
}

impl ClaimedRun {
    /// A run of one delivery.
    pub fn of(location: &MessageLocation, cseq: u64, deliveries: u64) -> Self {
        Self {
            object_id: location.object_id,
            object_key: location.object_key.clone(),
            block_offset: location.block_offset,
            block_len: location.block_len,
            first_seq: location.seq,
            first_index: location.index,
            first_cseq: cseq,
            count: 1,
            deliveries,
        }
    }

    /// Extends the run by the next delivery when it directly follows the run's last one (same
    /// block, next record, next stream and consumer sequence, same delivery count).
    pub fn extend(&mut self, location: &MessageLocation, cseq: u64, deliveries: u64) -> bool {
        let n = u64::from(self.count);
        let follows = location.object_id == self.object_id
            && location.block_offset == self.block_offset
            && location.block_len == self.block_len
            && location.seq == self.first_seq + n
            && u64::from(location.index) == u64::from(self.first_index) + n
            && cseq == self.first_cseq + n
            && deliveries == self.deliveries;
        if follows {
            self.count += 1;
        }
        follows
    }
}

/// One claimed delivery, whichever form the answer took: where its record is and what its ack
/// reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub object_id: u64,
    pub object_key: &'a str,
    pub block_offset: u64,
    pub block_len: u64,
    pub seq: u64,
    pub index: u32,
    pub cseq: u64,
    pub deliveries: u64,
    /// Messages left for the consumer after this one (the ack subject's last token).
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// The first form: one entry per message (answered when the claim did not ask for runs).
    #[serde(default)]
    pub messages: Vec<Claimed>,
    /// The claimed deliveries in delivery order, as runs (when the claim asked for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<ClaimedRun>,
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

impl ClaimResponse {
    /// How many deliveries the claim handed out.
    pub fn len(&self) -> usize {
        self.messages.len() + self.runs.iter().map(|r| r.count as usize).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every delivery in order, from either form. The pending token of a run's messages is
    /// what is left after the claim plus the first deliveries behind each (a redelivery was
    /// pending already and does not count), as nats-server's ack replies say.
    pub fn deliveries(&self) -> Vec<Delivery<'_>> {
        let mut out = Vec::with_capacity(self.len());
        for m in &self.messages {
            let l = &m.location;
            out.push(Delivery {
                object_id: l.object_id,
                object_key: &l.object_key,
                block_offset: l.block_offset,
                block_len: l.block_len,
                seq: l.seq,
                index: l.index,
                cseq: m.cseq,
                deliveries: m.deliveries,
                pending: m.pending,
            });
        }
        for r in &self.runs {
            for i in 0..r.count {
                let n = u64::from(i);
                out.push(Delivery {
                    object_id: r.object_id,
                    object_key: &r.object_key,
                    block_offset: r.block_offset,
                    block_len: r.block_len,
                    seq: r.first_seq + n,
                    index: r.first_index.saturating_add(i),
                    cseq: r.first_cseq + n,
                    deliveries: r.deliveries,
                    pending: 0,
                });
            }
        }
        if !self.runs.is_empty() {
            let mut behind = 0u64;
            for d in out.iter_mut().rev() {
                d.pending = self.num_pending + behind;
                if d.deliveries == 1 {
                    behind += 1;
                }
            }
        }
        out
    }
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
    #[serde(default, with = "ack_wire")]
    pub acks: Vec<AckEntry>,
}

/// Acks on the wire: consecutive acks of one consumer with the same kind and delay travel as one
/// group with a list of stream sequences (`{"stream":…,"consumer":…,"kind":"ack","seqs":[…]}`),
/// so a batch of 500 acks names its stream and consumer once, not 500 times. Reading accepts
/// the groups and the first form (one object per ack), in order.
mod ack_wire {
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{AckEntry, AckKind};

    #[derive(Serialize, Deserialize)]
    struct Group<'a> {
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        consumer: Cow<'a, str>,
        kind: AckKind,
        #[serde(default, skip_serializing_if = "is_zero")]
        delay: i64,
        seqs: Vec<u64>,
    }

    fn is_zero(v: &i64) -> bool {
        *v == 0
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item<'a> {
        #[serde(borrow)]
        Group(Group<'a>),
        Entry(AckEntry),
    }

    pub fn serialize<S: Serializer>(acks: &[AckEntry], serializer: S) -> Result<S::Ok, S::Error> {
        let mut groups: Vec<Group<'_>> = Vec::new();
        for a in acks {
            match groups.last_mut() {
                Some(g)
                    if g.stream == a.stream
                        && g.consumer == a.consumer
                        && g.kind == a.kind
                        && g.delay == a.delay =>
                {
                    g.seqs.push(a.sseq);
                }
                _ => groups.push(Group {
                    stream: Cow::Borrowed(&a.stream),
                    consumer: Cow::Borrowed(&a.consumer),
                    kind: a.kind,
                    delay: a.delay,
                    seqs: vec![a.sseq],
                }),
            }
        }
        groups.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<AckEntry>, D::Error> {
        let items = Vec::<Item<'de>>::deserialize(deserializer)?;
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Entry(e) => out.push(e),
                Item::Group(g) => out.extend(g.seqs.iter().map(|&sseq| AckEntry {
                    stream: g.stream.to_string(),
                    consumer: g.consumer.to_string(),
                    sseq,
                    kind: g.kind,
                    delay: g.delay,
                })),
            }
        }
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(consumer: &str, sseq: u64, kind: AckKind, delay: i64) -> AckEntry {
        AckEntry {
            stream: "S".into(),
            consumer: consumer.into(),
            sseq,
            kind,
            delay,
        }
    }

    /// Acks travel grouped (names once per run of one consumer and kind), come back in the
    /// same order, and the first form (one object per ack) still reads.
    #[test]
    fn acks_travel_grouped_and_both_forms_read() {
        let acks = vec![
            entry("C", 1, AckKind::Ack, 0),
            entry("C", 2, AckKind::Ack, 0),
            entry("C", 3, AckKind::Nak, 5),
            entry("C", 4, AckKind::Nak, 5),
            entry("D", 9, AckKind::Ack, 0),
            entry("C", 5, AckKind::Ack, 0),
        ];
        let batch = AckBatch { acks: acks.clone() };
        let json = serde_json::to_string(&batch).expect("json");
        assert_eq!(json.matches("\"consumer\"").count(), 4, "{json}");
        let back: AckBatch = serde_json::from_str(&json).expect("read");
        assert_eq!(back.acks, acks);
        let old = r#"{"acks":[{"stream":"S","consumer":"C","sseq":7,"kind":"term"},
            {"stream":"S","consumer":"C","kind":"ack","seqs":[8,9]}]}"#;
        let read: AckBatch = serde_json::from_str(old).expect("old form");
        assert_eq!(
            read.acks,
            vec![
                entry("C", 7, AckKind::Term, 0),
                entry("C", 8, AckKind::Ack, 0),
                entry("C", 9, AckKind::Ack, 0)
            ]
        );
        let claim = ClaimRequest {
            acks: acks.clone(),
            ..ClaimRequest::default()
        };
        let back: ClaimRequest =
            serde_json::from_str(&serde_json::to_string(&claim).expect("json")).expect("read");
        assert_eq!(back.acks, acks);
        assert!(serde_json::from_str::<AckBatch>(r#"{"acks":[{"seqs":[1]}]}"#).is_err());
    }
}
