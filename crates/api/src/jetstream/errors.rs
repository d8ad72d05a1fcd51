//! JetStream API errors with nats-server's codes and texts (server/errors.json).
//!
//! Owns: the `ApiError` JSON shape (`{"code":…,"err_code":…,"description":…}`) and one
//! constructor per error this crate answers. Does not own: deciding when an error applies.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error as nats-server puts it in the `error` member of API responses and PubAcks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: u16,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err_code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (err_code={})", self.description, self.err_code)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            err_code,
            description: description.into(),
        }
    }

    /// 10003 JSBadRequestErr.
    pub fn bad_request() -> Self {
        Self::new(400, 10003, "bad request")
    }
    /// 10025 JSInvalidJSONErr.
    pub fn invalid_json(err: impl fmt::Display) -> Self {
        Self::new(400, 10025, format!("invalid JSON: {err}"))
    }
    /// 10023 JSInsufficientResourcesErr.
    pub fn insufficient_resources() -> Self {
        Self::new(503, 10023, "insufficient resources")
    }
    /// 10037 JSNoMessageFoundErr.
    pub fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found")
    }
    /// 10038 JSNotEmptyRequestErr.
    pub fn not_empty_request() -> Self {
        Self::new(400, 10038, "expected an empty request payload")
    }
    /// 10039 JSNotEnabledForAccountErr.
    pub fn not_enabled_for_account() -> Self {
        Self::new(503, 10039, "JetStream not enabled for account")
    }
    /// 10043 JSSequenceNotFoundErrF.
    pub fn sequence_not_found(seq: u64) -> Self {
        Self::new(400, 10043, format!("sequence {seq} not found"))
    }
    /// 10049 JSStreamCreateErrF.
    pub fn stream_create(err: impl fmt::Display) -> Self {
        Self::new(500, 10049, err.to_string())
    }
    /// 10050 JSStreamDeleteErrF.
    pub fn stream_delete(err: impl fmt::Display) -> Self {
        Self::new(500, 10050, err.to_string())
    }
    /// 10051 JSStreamGeneralErrorF.
    pub fn stream_general(err: impl fmt::Display) -> Self {
        Self::new(500, 10051, err.to_string())
    }
    /// 10052 JSStreamInvalidConfigF.
    pub fn stream_invalid_config(err: impl fmt::Display) -> Self {
        Self::new(500, 10052, err.to_string())
    }
    /// 10054 JSStreamMessageExceedsMaximumErr.
    pub fn message_exceeds_maximum() -> Self {
        Self::new(400, 10054, "message size exceeds maximum allowed")
    }
    /// 10056 JSStreamMismatchErr.
    pub fn stream_mismatch() -> Self {
        Self::new(400, 10056, "stream name in subject does not match request")
    }
    /// 10057 JSStreamMsgDeleteFailedF.
    pub fn stream_msg_delete_failed(err: impl fmt::Display) -> Self {
        Self::new(500, 10057, err.to_string())
    }
    /// 10058 JSStreamNameExistErr.
    pub fn stream_name_exist() -> Self {
        Self::new(
            400,
            10058,
            "stream name already in use with a different configuration",
        )
    }
    /// 10059 JSStreamNotFoundErr.
    pub fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found")
    }
    /// 10060 JSStreamNotMatchErr.
    pub fn stream_not_match() -> Self {
        Self::new(400, 10060, "expected stream does not match")
    }
    /// 10065 JSStreamSubjectOverlapErr.
    pub fn stream_subject_overlap() -> Self {
        Self::new(400, 10065, "subjects overlap with an existing stream")
    }
    /// 10069 JSStreamUpdateErrF.
    pub fn stream_update(err: impl fmt::Display) -> Self {
        Self::new(500, 10069, err.to_string())
    }
    /// 10070 JSStreamWrongLastMsgIDErrF.
    pub fn wrong_last_msg_id(id: &str) -> Self {
        Self::new(400, 10070, format!("wrong last msg ID: {id}"))
    }
    /// 10071 JSStreamWrongLastSequenceErrF.
    pub fn wrong_last_sequence(seq: u64) -> Self {
        Self::new(400, 10071, format!("wrong last sequence: {seq}"))
    }
    /// 10077 JSStreamStoreFailedF (e.g. "maximum messages exceeded").
    pub fn stream_store_failed(err: impl fmt::Display) -> Self {
        Self::new(503, 10077, err.to_string())
    }
    /// 10097 JSStreamHeaderExceedsMaximumErr.
    pub fn header_exceeds_maximum() -> Self {
        Self::new(400, 10097, "header size exceeds maximum allowed of 64k")
    }
    /// 10109 JSStreamSealedErr.
    pub fn stream_sealed() -> Self {
        Self::new(400, 10109, "invalid operation on sealed stream")
    }
    /// 10110 JSStreamPurgeFailedF.
    pub fn stream_purge_failed(err: impl fmt::Display) -> Self {
        Self::new(500, 10110, err.to_string())
    }
    /// 10111 JSStreamRollupFailedF.
    pub fn stream_rollup_failed(err: impl fmt::Display) -> Self {
        Self::new(500, 10111, err.to_string())
    }
    /// 10128 JSStreamNameContainsPathSeparatorsErr.
    pub fn stream_name_contains_path_separators() -> Self {
        Self::new(400, 10128, "Stream name can not contain path separators")
    }
    /// 10133 JSReplicasCountCannotBeNegative.
    pub fn replicas_count_cannot_be_negative() -> Self {
        Self::new(400, 10133, "replicas count cannot be negative")
    }
    /// 10157 JSPedanticErrF.
    pub fn pedantic(err: impl fmt::Display) -> Self {
        Self::new(400, 10157, format!("pedantic mode: {err}"))
    }
    /// 10165 JSMessageTTLInvalidErr.
    pub fn message_ttl_invalid() -> Self {
        Self::new(400, 10165, "invalid per-message TTL")
    }
    /// 10166 JSMessageTTLDisabledErr.
    pub fn message_ttl_disabled() -> Self {
        Self::new(400, 10166, "per-message TTL is disabled")
    }
    /// 10193 JSStreamExpectedLastSeqPerSubjectInvalid.
    pub fn expected_last_seq_per_subject_invalid() -> Self {
        Self::new(
            400,
            10193,
            "missing sequence for expected last sequence per subject",
        )
    }
}
