//! JetStream API payloads with nats-server's JSON shapes: stream info and state, PubAck, account
//! info, the `$JS.API` response envelopes and request bodies.
//!
//! Owns: field names, order and omission rules (Go's `encoding/json` output order is struct
//! order, embedded structs inline). Does not own: computing any of the values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{StreamConfig, null_default};
use super::errors::ApiError;
use super::time::go_time;

pub const ACCOUNT_INFO_RESPONSE: &str = "io.nats.jetstream.api.v1.account_info_response";
pub const STREAM_CREATE_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_create_response";
pub const STREAM_UPDATE_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_update_response";
pub const STREAM_DELETE_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_delete_response";
pub const STREAM_INFO_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_info_response";
pub const STREAM_NAMES_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_names_response";
pub const STREAM_LIST_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_list_response";
pub const STREAM_PURGE_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_purge_response";
pub const STREAM_MSG_DELETE_RESPONSE: &str = "io.nats.jetstream.api.v1.stream_msg_delete_response";
pub const SYSTEM_RESPONSE: &str = "io.nats.jetstream.api.v1.system_response";

/// JSApiNamesLimit.
pub const NAMES_LIMIT: usize = 1024;
/// JSApiListLimit.
pub const LIST_LIMIT: usize = 256;
/// JSMaxSubjectDetails.
pub const MAX_SUBJECT_DETAILS: usize = 100_000;

fn is_false(v: &bool) -> bool {
    !*v
}
fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// A stream's state (server/store.go `StreamState`). Times are unix nanos, 0 = Go zero time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    #[serde(with = "go_time", default)]
    pub first_ts: i64,
    pub last_seq: u64,
    #[serde(with = "go_time", default)]
    pub last_ts: i64,
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub num_subjects: usize,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub num_deleted: usize,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub deleted: Vec<u64>,
    #[serde(default)]
    pub consumer_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader: String,
}

/// server/stream.go `StreamInfo` (mirror/sources/alternates never set here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    #[serde(with = "go_time")]
    pub created: i64,
    pub state: StreamState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(with = "go_time", default)]
    pub ts: i64,
}

/// A successful publish acknowledgement (server/stream.go `PubAck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubAck {
    pub stream: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
}

/// What a publisher gets back: nats-server's `JSPubAckResponse`. Errors carry the stream name and
/// `seq: 0` because nats-server fills `PubAck{Stream: name}` next to the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PubAckResponse {
    Error {
        error: ApiError,
        #[serde(default)]
        stream: String,
        #[serde(default)]
        seq: u64,
    },
    Ack(PubAck),
}

impl PubAckResponse {
    pub fn ack(stream: &str, seq: u64) -> Self {
        Self::Ack(PubAck {
            stream: stream.to_string(),
            seq,
            domain: String::new(),
            duplicate: false,
        })
    }

    pub fn duplicate(stream: &str, seq: u64) -> Self {
        Self::Ack(PubAck {
            stream: stream.to_string(),
            seq,
            domain: String::new(),
            duplicate: true,
        })
    }

    pub fn error(stream: &str, error: ApiError) -> Self {
        Self::Error {
            error,
            stream: stream.to_string(),
            seq: 0,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error { .. })
    }

    /// The sequence of a plain ack of `stream` (stored, no domain, not a duplicate): the common
    /// answer, which the commit wire format and the ack writer encode compactly.
    pub fn plain_seq(&self, stream: &str) -> Option<u64> {
        match self {
            Self::Ack(a) if !a.duplicate && a.domain.is_empty() && a.stream == stream => {
                Some(a.seq)
            }
            _ => None,
        }
    }

    /// The assigned (or, for a duplicate, original) sequence; None for an error.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::Ack(a) => Some(a.seq),
            Self::Error { .. } => None,
        }
    }

    /// The exact bytes nats-server sends (it writes acks by hand, with `"duplicate": true`).
    pub fn to_nats_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ack(a) => {
                let mut out = Vec::with_capacity(48 + a.stream.len());
                out.extend_from_slice(b"{\"stream\":");
                out.extend_from_slice(
                    serde_json::to_string(&a.stream)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                if !a.domain.is_empty() {
                    out.extend_from_slice(b",\"domain\":");
                    out.extend_from_slice(
                        serde_json::to_string(&a.domain)
                            .unwrap_or_default()
                            .as_bytes(),
                    );
                }
                out.extend_from_slice(format!(",\"seq\":{}", a.seq).as_bytes());
                if a.duplicate {
                    out.extend_from_slice(b",\"duplicate\": true");
                }
                out.push(b'}');
                out
            }
            Self::Error { .. } => serde_json::to_vec(self).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    pub max_memory: i64,
    pub max_storage: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    fn default() -> Self {
        // nats-server reports -1 (unlimited) for every limit of an account without limits.
        Self {
            max_memory: -1,
            max_storage: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiStats {
    pub level: u32,
    pub total: u64,
    pub errors: u64,
}

/// server/jetstream.go `JetStreamAccountStats` (tier totals inline, no tiers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountStats {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub streams: usize,
    pub consumers: usize,
    pub limits: AccountLimits,
    pub api: ApiStats,
}

/// `{"type":…, "error":…}`: any API response that failed, and unknown API subjects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiResponse {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountInfoResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten)]
    pub stats: Option<AccountStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamCreateResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
    #[serde(skip_serializing_if = "is_false")]
    pub did_create: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamUpdateResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamInfoResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamDeleteResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamNamesResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// Go's nil slice: `null` when there are no names.
    pub streams: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamListResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamPurgeResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
    pub purged: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MsgDeleteResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
}

/// STREAM.NAMES and STREAM.LIST request (both optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamListRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub offset: i64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub subject: String,
}

/// STREAM.INFO request (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfoRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub offset: i64,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub deleted_details: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects_filter: String,
}

/// STREAM.PURGE request (optional): purge below `seq`, only `filter`, keeping `keep`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPurgeRequest {
    #[serde(
        default,
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub seq: u64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter: String,
    #[serde(
        default,
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub keep: u64,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// STREAM.MSG.DELETE request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgDeleteRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub seq: u64,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub no_erase: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_ack_shapes() {
        assert_eq!(
            serde_json::to_string(&PubAckResponse::ack("S", 3)).unwrap(),
            r#"{"stream":"S","seq":3}"#
        );
        assert_eq!(
            String::from_utf8(PubAckResponse::duplicate("S", 3).to_nats_bytes()).unwrap(),
            r#"{"stream":"S","seq":3,"duplicate": true}"#
        );
        let err = PubAckResponse::error("S", ApiError::wrong_last_sequence(2));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"},"stream":"S","seq":0}"#
        );
        let back: PubAckResponse = serde_json::from_str(r#"{"stream":"S","seq":4}"#).unwrap();
        assert_eq!(back, PubAckResponse::ack("S", 4));
        let back: PubAckResponse = serde_json::from_slice(&err.to_nats_bytes()).unwrap();
        assert_eq!(back, err);
    }

    #[test]
    fn names_response_null_streams() {
        let r = StreamNamesResponse {
            kind: STREAM_NAMES_RESPONSE,
            error: None,
            total: 0,
            offset: 0,
            limit: NAMES_LIMIT,
            streams: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}"#
        );
    }
}
