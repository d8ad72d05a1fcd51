//! Request and response bodies of the control plane's metadata endpoints, shared by the server
//! and `ControlPlaneClient`.
//!
//! Owns: the JSON shapes of `/v1/agents*`, `/v1/object-ids`, `/v1/streams*`, `/v1/commit`,
//! `/v1/orphans`. Does not own: the `$JS.API` payloads relayed through `/v1/js/{api}` (those are
//! `crate::jetstream` types) or any behaviour.

use serde::{Deserialize, Serialize};

use super::entries::Entries;
use crate::jetstream::{ApiError, PubAckResponse, StreamConfig, StreamState};

/// Header carrying the virtual group id on every authenticated request.
pub const GROUP_ID_HEADER: &str = "x-infinistream-group-id";
/// Optional header on `/v1/js/{api}`: the agent's server name, reported as the stream leader.
pub const SERVER_NAME_HEADER: &str = "x-infinistream-server-name";

fn is_false(v: &bool) -> bool {
    !*v
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// The ports an agent listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentPorts {
    #[serde(default)]
    pub client: u16,
    #[serde(default)]
    pub peer: u16,
    #[serde(default)]
    pub http: u16,
}

/// `POST /v1/agents/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub agent_id: String,
    #[serde(default)]
    pub availability_zone: String,
    #[serde(default)]
    pub advertise_address: String,
    #[serde(default)]
    pub ports: AgentPorts,
}

/// Answer to register and heartbeat: the membership lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub agent_id: String,
    /// Heartbeat at least this often (a third of the expiry).
    pub heartbeat_interval_ms: u64,
    /// A member whose last heartbeat is older than this is dropped from `GET /v1/agents`.
    pub expiry_ms: u64,
    /// Unix millis at which the lease ends without a heartbeat.
    pub expires_at_ms: i64,
}

/// `POST /v1/agents/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub agent_id: String,
}

/// Answer to a heartbeat: `known: false` means the agent expired or never registered and must
/// register again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub known: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// One live member of the virtual group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub agent_id: String,
    pub availability_zone: String,
    pub advertise_address: String,
    pub ports: AgentPorts,
    pub registered_at_ms: i64,
    pub last_heartbeat_ms: i64,
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentsResponse {
    pub agents: Vec<AgentInfo>,
}

/// `POST /v1/object-ids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectIdsRequest {
    pub count: u32,
}

/// Unique, strictly increasing ids (`unix_millis << 20 | counter`), never reused across
/// restarts of a control plane with a data dir.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectIdsResponse {
    pub ids: Vec<u64>,
}

/// `GET /v1/streams?since=<version>`: the stream configs for routing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamsSnapshot {
    /// Bumped by every stream create, update and delete.
    pub version: u64,
    /// False when `since` was already current; `streams` is then empty.
    pub changed: bool,
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

/// Metadata of one message in a committed block, as the agent parsed it from the publish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitMessage {
    pub subject: String,
    /// Header bytes plus payload bytes, as published.
    pub size: u32,
    /// The header block's length (`NATS/1.0…\r\n\r\n`), 0 without headers. Part of `size`; needed
    /// to count stored bytes as nats-server's file store does.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub header_size: u32,
    /// When the agent received the publish (unix nanos); becomes the message timestamp.
    pub timestamp_nanos: i64,
    /// The headers the control plane checks, where present.
    #[serde(flatten)]
    pub headers: HeaderChecks,
}

/// One block of one stream inside the committed object: either one `CommitMessage` per message
/// (the first form, still accepted) or a `BlockSummary`, which agents send.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitBlock {
    pub stream: String,
    pub block_offset: u64,
    pub block_len: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<CommitMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<BlockSummary>,
}

/// A block as the control plane needs it: totals, each distinct subject once, the per-message
/// columns in compact form, and header checks only for the messages that carry one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockSummary {
    /// Messages in the block (the number of entries).
    pub count: u32,
    /// Header plus payload bytes of all of them.
    pub bytes: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// The block's distinct subjects in order of first appearance (the object block's own
    /// subject table); entries index it.
    pub subjects: Vec<SubjectSummary>,
    pub entries: Entries,
    /// Only messages with a header the control plane acts on, ascending by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CommitCheck>,
}

/// One distinct subject of a block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubjectSummary {
    pub subject: String,
    pub count: u32,
    /// Index of its last message in the block.
    pub last_index: u32,
}

/// The headers of one message that the control plane checks or acts on, raw as published.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderChecks {
    /// `Nats-Msg-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// `Nats-Expected-Stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_stream: Option<String>,
    /// `Nats-Expected-Last-Sequence` (unparsable values: send `u64::MAX`, as nats-server reads -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_last_seq: Option<u64>,
    /// `Nats-Expected-Last-Subject-Sequence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_last_subject_seq: Option<u64>,
    /// `Nats-Expected-Last-Subject-Sequence-Subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_last_subject_seq_subject: Option<String>,
    /// `Nats-Expected-Last-Msg-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_last_msg_id: Option<String>,
    /// `Nats-Rollup`, raw (`sub` / `all`, any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<String>,
    /// `Nats-TTL`, raw (`30s`, `60`, `never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl HeaderChecks {
    /// True when none of the headers is present (such a message needs no check entry).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The checked headers of the message at `index` of a block summary.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitCheck {
    pub index: u32,
    #[serde(flatten)]
    pub headers: HeaderChecks,
}

impl BlockSummary {
    /// Builds the summary of a block from its subjects and entries; `checks` as above.
    pub fn new(subjects: &[&str], entries: Entries, checks: Vec<CommitCheck>) -> Self {
        let mut summaries: Vec<SubjectSummary> = subjects
            .iter()
            .map(|s| SubjectSummary {
                subject: (*s).to_string(),
                count: 0,
                last_index: 0,
            })
            .collect();
        for (i, e) in entries.0.iter().enumerate() {
            if let Some(s) = summaries.get_mut(e.subject as usize) {
                s.count += 1;
                s.last_index = i as u32;
            }
        }
        Self {
            count: entries.0.len() as u32,
            bytes: entries.0.iter().map(|e| u64::from(e.size)).sum(),
            first_ts: entries.0.first().map_or(0, |e| e.timestamp_nanos),
            last_ts: entries.0.last().map_or(0, |e| e.timestamp_nanos),
            subjects: summaries,
            entries,
            checks,
        }
    }

    /// The totals and per-subject entries agree with the entries, every entry names a subject
    /// of the table, and checks are ascending within the block.
    pub fn consistent(&self) -> bool {
        let e = &self.entries.0;
        if e.len() != self.count as usize
            || e.iter().any(|x| x.subject as usize >= self.subjects.len())
            || e.iter().map(|x| u64::from(x.size)).sum::<u64>() != self.bytes
            || e.first().map_or(0, |x| x.timestamp_nanos) != self.first_ts
            || e.last().map_or(0, |x| x.timestamp_nanos) != self.last_ts
        {
            return false;
        }
        let mut counts = vec![(0u32, 0u32); self.subjects.len()];
        for (i, x) in e.iter().enumerate() {
            let c = &mut counts[x.subject as usize];
            c.0 += 1;
            c.1 = i as u32;
        }
        let subjects_agree = self
            .subjects
            .iter()
            .zip(&counts)
            .all(|(s, (n, last))| s.count == *n && (*n == 0 || s.last_index == *last));
        let checks_ordered = self.checks.windows(2).all(|w| w[0].index < w[1].index)
            && self
                .checks
                .last()
                .is_none_or(|c| (c.index as usize) < e.len());
        subjects_agree && checks_ordered
    }
}

/// `POST /v1/commit`: everything one object holds. Committing the same `object_id` again returns
/// the first commit's answer (retries are safe).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitRequest {
    pub agent_id: String,
    pub object_id: u64,
    pub object_key: String,
    pub object_size: u64,
    pub blocks: Vec<CommitBlock>,
}

/// Per block (same order as the request), per message, the PubAck for the publisher.
///
/// On the wire, runs of plain acks of this stream with consecutive sequences are sent as
/// `[first_seq, count]` and anything else as the PubAck object itself: a commit answers thousands
/// of publishes, and one JSON object per message was a large part of its cost on both ends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "WireBlockResult")]
pub struct CommitBlockResult {
    pub stream: String,
    pub acks: Vec<PubAckResponse>,
}

#[derive(Deserialize)]
struct WireBlockResult {
    stream: String,
    acks: Vec<WireAck>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireAck {
    Run(u64, u64),
    One(PubAckResponse),
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireAckRef<'a> {
    Run(u64, u64),
    One(&'a PubAckResponse),
}

impl Serialize for CommitBlockResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut wire: Vec<WireAckRef<'_>> = Vec::new();
        for ack in &self.acks {
            match (ack.plain_seq(&self.stream), wire.last_mut()) {
                (Some(seq), Some(WireAckRef::Run(first, count))) if *first + *count == seq => {
                    *count += 1;
                }
                (Some(seq), _) => wire.push(WireAckRef::Run(seq, 1)),
                (None, _) => wire.push(WireAckRef::One(ack)),
            }
        }
        let mut st = serializer.serialize_struct("CommitBlockResult", 2)?;
        st.serialize_field("stream", &self.stream)?;
        st.serialize_field("acks", &wire)?;
        st.end()
    }
}

impl From<WireBlockResult> for CommitBlockResult {
    fn from(w: WireBlockResult) -> Self {
        let mut acks = Vec::new();
        for a in w.acks {
            match a {
                // Bounded by the request: a run longer than the block fails check_shape.
                WireAck::Run(first, count) => acks.extend(
                    (0..count.min(MAX_RUN))
                        .map(|i| PubAckResponse::ack(&w.stream, first.saturating_add(i))),
                ),
                WireAck::One(ack) => acks.push(ack),
            }
        }
        Self {
            stream: w.stream,
            acks,
        }
    }
}

/// No block holds more messages than this (an object is at most a few MiB of at least one byte
/// per message); guards the expansion of a hostile run.
const MAX_RUN: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitResponse {
    pub object_id: u64,
    /// True when this object had been committed before and these are the stored answers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
    pub blocks: Vec<CommitBlockResult>,
}

/// `POST /v1/commits`: several objects of one agent, in seal order, committed in one
/// transaction. An agent whose commits fall behind its windows sends what has queued up at once,
/// so a commit's per-stream cost is paid once per group instead of once per object. Each object
/// keeps its own idempotence: one committed before is answered from its stored response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitManyRequest {
    pub commits: Vec<CommitRequest>,
}

/// One answer per request of `CommitManyRequest::commits`, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitManyResponse {
    pub commits: Vec<CommitResponse>,
}

/// `POST /v1/orphans`: an object that was PUT but never committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanRequest {
    pub object_key: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    pub object_key: String,
    pub reason: String,
    pub recorded_at_ms: i64,
}

/// `GET /v1/orphans`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrphansResponse {
    pub orphans: Vec<Orphan>,
}

/// `POST /v1/streams/{name}/locate`: the fields of nats-server's `JSApiMsgGetRequest` that pick
/// one message, so a `STREAM.MSG.GET` / `DIRECT.GET` body can be forwarded as is.
/// `{seq}` exact; `{last_by_subj}` last on a subject (wildcards allowed); `{next_by_subj, seq}`
/// first at or after `seq` on a subject.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocateRequest {
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_by_subj: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_by_subj: Option<String>,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

impl LocateRequest {
    pub fn seq(seq: u64) -> Self {
        Self {
            seq,
            ..Self::default()
        }
    }
    pub fn last_by_subject(subject: impl Into<String>) -> Self {
        Self {
            last_by_subj: Some(subject.into()),
            ..Self::default()
        }
    }
    pub fn next_by_subject(subject: impl Into<String>, seq: u64) -> Self {
        Self {
            seq,
            next_by_subj: Some(subject.into()),
            ..Self::default()
        }
    }
}

/// Where one stored message's bytes are: block `index` of the block at
/// `block_offset..block_offset+block_len` in object `object_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLocation {
    pub stream: String,
    pub seq: u64,
    pub subject: String,
    pub timestamp_nanos: i64,
    pub object_id: u64,
    pub object_key: String,
    pub block_offset: u64,
    pub block_len: u64,
    /// Position of the message in its block, counting messages that were rejected.
    pub index: u32,
    pub size: u32,
    #[serde(default)]
    pub header_size: u32,
}

/// Body of a metadata endpoint answer that is either a value or a JetStream API error
/// (`{"error":{…}}`), always with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiResult<T> {
    Err { error: ApiError },
    Ok(T),
}

impl<T> From<Result<T, ApiError>> for ApiResult<T> {
    fn from(r: Result<T, ApiError>) -> Self {
        match r {
            Ok(v) => Self::Ok(v),
            Err(error) => Self::Err { error },
        }
    }
}

impl<T> From<ApiResult<T>> for Result<T, ApiError> {
    fn from(r: ApiResult<T>) -> Self {
        match r {
            ApiResult::Ok(v) => Ok(v),
            ApiResult::Err { error } => Err(error),
        }
    }
}

/// `GET /v1/streams/{name}/state` answer value.
pub type StreamStateResult = ApiResult<StreamState>;

/// Body of every non-API failure (401, 400, 500): `{"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_results_compress_runs_and_keep_everything_else() {
        let acks = vec![
            PubAckResponse::ack("s", 5),
            PubAckResponse::ack("s", 6),
            PubAckResponse::ack("s", 7),
            PubAckResponse::duplicate("s", 2),
            PubAckResponse::ack("s", 8),
            PubAckResponse::error("s", ApiError::wrong_last_sequence(8)),
            PubAckResponse::ack("s", 10),
            PubAckResponse::ack("other", 11),
        ];
        let block = CommitBlockResult {
            stream: "s".into(),
            acks,
        };
        let json = serde_json::to_string(&block).expect("serialize");
        assert!(
            json.starts_with(r#"{"stream":"s","acks":[[5,3],{"#),
            "{json}"
        );
        assert!(json.contains("[8,1]") && json.contains("[10,1]"), "{json}");
        let back: CommitBlockResult = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, block);
    }

    /// What one block of 10,000 messages of 128 B over 10 subjects costs on the wire: the
    /// summary against one entry per message (the first form).
    #[test]
    fn a_block_summary_is_a_few_bytes_per_message() {
        use crate::control_plane::entries::{BlockEntry, Entries};
        let n = 10_000u32;
        let subjects: Vec<String> = (0..10).map(|k| format!("orders.region.{k}")).collect();
        let names: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let entries = Entries(
            (0..n)
                .map(|i| BlockEntry {
                    subject: i % 10,
                    size: 128,
                    header_size: 0,
                    timestamp_nanos: 1_764_800_000_000_000_000 + i64::from(i) * 5_000,
                })
                .collect(),
        );
        let v2 = CommitBlock {
            stream: "ORDERS".into(),
            summary: Some(BlockSummary::new(&names, entries, Vec::new())),
            ..CommitBlock::default()
        };
        let v1 = CommitBlock {
            stream: "ORDERS".into(),
            messages: (0..n)
                .map(|i| CommitMessage {
                    subject: subjects[(i % 10) as usize].clone(),
                    size: 128,
                    timestamp_nanos: 1_764_800_000_000_000_000 + i64::from(i) * 5_000,
                    ..CommitMessage::default()
                })
                .collect(),
            ..CommitBlock::default()
        };
        let per_msg =
            |b: &CommitBlock| serde_json::to_vec(b).expect("json").len() as f64 / f64::from(n);
        let (new, old) = (per_msg(&v2), per_msg(&v1));
        eprintln!("commit bytes per message: summary {new:.2}, one entry per message {old:.2}");
        assert!(new < 4.5, "{new}");
        assert!(old > 40.0, "{old}");
        let back: CommitBlock =
            serde_json::from_slice(&serde_json::to_vec(&v2).expect("json")).expect("back");
        assert!(back.summary.as_ref().is_some_and(BlockSummary::consistent));
    }

    #[test]
    fn block_results_in_the_old_form_still_read() {
        let json = r#"{"stream":"s","acks":[{"stream":"s","seq":1},{"stream":"s","seq":2}]}"#;
        let back: CommitBlockResult = serde_json::from_str(json).expect("deserialize");
        assert_eq!(
            back.acks,
            vec![PubAckResponse::ack("s", 1), PubAckResponse::ack("s", 2)]
        );
    }
}
