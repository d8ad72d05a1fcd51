//! `StreamConfig` with nats-server's JSON shape and its defaulting and validation rules
//! (server/stream.go `checkStreamCfgLocked` and `configUpdateCheckLocked`).
//!
//! Owns: the config type, its enums, name rules, defaults, create/update validation with
//! nats-server's error texts, and the `_nats.*` versioning metadata. Does not own: checks that
//! need other streams (subject overlap with existing streams is the store's job).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::errors::ApiError;
use crate::subject;

/// JSMaxNameLen.
pub const MAX_NAME_LEN: usize = 255;
/// JSMaxDescriptionLen.
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// JSMaxMetadataLen.
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// StreamMaxReplicas.
pub const MAX_REPLICAS: i64 = 5;
/// StreamDefaultDuplicatesWindow (2 minutes) in nanoseconds.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
const HUNDRED_MS: i64 = 100_000_000;
const ONE_SECOND: i64 = 1_000_000_000;

/// The JetStream API level this implementation reports (`_nats.level`, account info `api.level`).
pub const API_LEVEL: u32 = 1;
/// The nats-server version whose behaviour is mirrored (`_nats.ver`).
pub const SERVER_VERSION: &str = "2.11.0";
pub const REQUIRED_LEVEL_KEY: &str = "_nats.req.level";
pub const SERVER_VERSION_KEY: &str = "_nats.ver";
pub const SERVER_LEVEL_KEY: &str = "_nats.level";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RetentionPolicy {
    #[default]
    #[serde(rename = "limits")]
    Limits,
    #[serde(rename = "interest")]
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum DiscardPolicy {
    #[default]
    #[serde(rename = "old")]
    Old,
    #[serde(rename = "new")]
    New,
}

impl<'de> Deserialize<'de> for DiscardPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // nats-server accepts any letter case here (and only here).
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "old" => Ok(Self::Old),
            "new" => Ok(Self::New),
            _ => Err(serde::de::Error::custom(format!(
                "can not unmarshal \"\\\"{s}\\\"\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StorageType {
    #[default]
    #[serde(rename = "file")]
    File,
    #[serde(rename = "memory")]
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compression {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "s2")]
    S2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PersistMode {
    #[default]
    #[serde(rename = "default", alias = "")]
    Default,
    #[serde(rename = "async")]
    Async,
}

impl PersistMode {
    fn is_default(&self) -> bool {
        *self == Self::Default
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubjectTransform {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RePublish {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src: String,
    #[serde(default)]
    pub dest: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerLimits {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
}

/// A stream's configuration, field for field as nats-server (de)serializes it. Durations are
/// integer nanoseconds as Go's `time.Duration`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub description: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub subjects: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub retention: RetentionPolicy,
    #[serde(default, deserialize_with = "null_default")]
    pub max_consumers: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub max_age: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs_per_subject: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i32",
        deserialize_with = "null_default"
    )]
    pub max_msg_size: i32,
    #[serde(default, deserialize_with = "null_default")]
    pub discard: DiscardPolicy,
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageType,
    #[serde(default, deserialize_with = "null_default")]
    pub num_replicas: i64,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub no_ack: bool,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub duplicate_window: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Kept verbatim: mirrors are refused by validation, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    /// Kept verbatim: sources are refused by validation, never interpreted.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub sources: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub compression: Compression,
    #[serde(
        default,
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub first_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    #[serde(default, deserialize_with = "null_default")]
    pub allow_direct: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub mirror_direct: bool,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub discard_new_per_subject: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub sealed: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub deny_delete: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub deny_purge: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub allow_rollup_hdrs: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub consumer_limits: ConsumerLimits,
    #[serde(default, deserialize_with = "null_default")]
    pub allow_msg_ttl: bool,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub subject_delete_marker_ttl: i64,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_msg_counter: bool,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_atomic: bool,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_msg_schedules: bool,
    #[serde(
        default,
        skip_serializing_if = "PersistMode::is_default",
        deserialize_with = "null_default"
    )]
    pub persist_mode: PersistMode,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub allow_batched: bool,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub metadata: BTreeMap<String, String>,
}

/// A create/update request body: the config plus nats-server's `pedantic` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfigRequest {
    pub config: StreamConfig,
    pub pedantic: bool,
}

impl StreamConfigRequest {
    /// Parses a request payload; an error is the `invalid JSON` API error.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value = serde_json::Value::Object(super::gojson::check(
            body,
            &super::gojson::STREAM_CONFIG_REQUEST,
        )?);
        let pedantic = value
            .get("pedantic")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let config = serde_json::from_value(value).map_err(ApiError::invalid_json)?;
        Ok(Self { config, pedantic })
    }
}

pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    // Go leaves a field untouched on JSON null; serde would refuse it.
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(v: &bool) -> bool {
    !*v
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// nats-server's `isValidAssetName`: non-empty, none of whitespace, `.`, `*`, `>`, `\`, `/`.
pub fn is_valid_asset_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([' ', '\t', '\r', '\n', '\x0c', '.', '*', '>', '\\', '/'])
}

/// A stream name nats-server would accept (asset name rules and length).
pub fn is_valid_stream_name(name: &str) -> bool {
    is_valid_asset_name(name) && name.len() <= MAX_NAME_LEN
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(msg)
}

impl StreamConfig {
    /// A config with only a name and subjects set, for tests and callers building streams.
    pub fn named(name: impl Into<String>, subjects: &[&str]) -> Self {
        Self {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    /// nats-server's `setStaticStreamMetadata`: drop dynamic keys and record the required API
    /// level the config needs.
    pub fn set_static_metadata(&mut self) {
        self.metadata.remove(SERVER_VERSION_KEY);
        self.metadata.remove(SERVER_LEVEL_KEY);
        let mut level = 0;
        if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
            level = level.max(1);
        }
        if self.allow_msg_counter
            || self.allow_atomic
            || self.allow_msg_schedules
            || self.persist_mode == PersistMode::Async
        {
            level = level.max(2);
        }
        if self.allow_batched {
            level = level.max(4);
        }
        self.metadata
            .insert(REQUIRED_LEVEL_KEY.to_string(), level.to_string());
    }

    /// nats-server's `setDynamicStreamMetadata`: the copy sent in create/update/info responses.
    pub fn with_dynamic_metadata(&self) -> Self {
        let mut cfg = self.clone();
        cfg.metadata
            .insert(SERVER_VERSION_KEY.to_string(), SERVER_VERSION.to_string());
        cfg.metadata
            .insert(SERVER_LEVEL_KEY.to_string(), API_LEVEL.to_string());
        cfg
    }

    /// nats-server's `copyStreamMetadata`: align versioning keys with `prev` before comparing.
    pub fn copy_metadata_from(&mut self, prev: &StreamConfig) {
        self.metadata.remove(SERVER_VERSION_KEY);
        self.metadata.remove(SERVER_LEVEL_KEY);
        match prev.metadata.get(REQUIRED_LEVEL_KEY) {
            Some(v) => {
                self.metadata
                    .insert(REQUIRED_LEVEL_KEY.to_string(), v.clone());
            }
            None => {
                self.metadata.remove(REQUIRED_LEVEL_KEY);
            }
        }
    }

    /// Defaults and validation as nats-server's `checkStreamCfg` (no account limits, no
    /// other-stream checks), in its order. Returns the config as it will be stored.
    pub fn checked(&self, pedantic: bool) -> Result<StreamConfig, ApiError> {
        check_names(self)?;
        let mut cfg = self.clone();
        check_limits(&mut cfg, pedantic)?;
        check_duplicate_window(&mut cfg, pedantic)?;
        check_policies(&mut cfg, pedantic)?;
        check_supported(&cfg)?;
        check_subjects(&mut cfg)?;
        check_transforms(&mut cfg, pedantic)?;
        Ok(cfg)
    }

    /// nats-server's `configUpdateCheckLocked` (less account limits): `self` is the stored config,
    /// `new` the requested one. Returns the config to store.
    pub fn checked_update(
        &self,
        new: &StreamConfig,
        pedantic: bool,
    ) -> Result<StreamConfig, ApiError> {
        let mut cfg = new.checked(pedantic)?;
        if cfg.name != self.name {
            return Err(invalid("stream configuration name must match original"));
        }
        if cfg.storage != self.storage {
            return Err(invalid(
                "stream configuration update can not change storage type",
            ));
        }
        if cfg.retention != self.retention
            && (self.retention == RetentionPolicy::WorkQueue
                || cfg.retention == RetentionPolicy::WorkQueue)
        {
            return Err(invalid(
                "stream configuration update can not change retention policy to/from workqueue",
            ));
        }
        if !cfg.sealed && self.sealed {
            return Err(invalid(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        if !cfg.deny_delete && self.deny_delete {
            return Err(invalid(
                "stream configuration update can not cancel deny message deletes",
            ));
        }
        if !cfg.deny_purge && self.deny_purge {
            return Err(invalid(
                "stream configuration update can not cancel deny purge",
            ));
        }
        if self.allow_msg_ttl && !cfg.allow_msg_ttl {
            return Err(invalid("message TTL status can not be disabled"));
        }
        if self.persist_mode != cfg.persist_mode {
            return Err(invalid(
                "stream configuration update can not change persist mode",
            ));
        }
        if cfg.sealed {
            cfg.max_age = 0;
            cfg.discard = DiscardPolicy::New;
            cfg.deny_delete = true;
            cfg.deny_purge = true;
            cfg.allow_rollup_hdrs = false;
        }
        Ok(cfg)
    }

    /// Does any of this stream's subjects overlap any of `subjects`?
    pub fn overlaps_subjects(&self, subjects: &[String]) -> bool {
        self.subjects
            .iter()
            .any(|a| subjects.iter().any(|b| subject::overlaps(a, b)))
    }
}

// The phases of `StreamConfig::checked`, in nats-server's order.

/// The stream's name, description and metadata sizes.
fn check_names(cfg: &StreamConfig) -> Result<(), ApiError> {
    if !is_valid_asset_name(&cfg.name) {
        return Err(invalid(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if cfg.name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
        )));
    }
    if cfg.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid(format!(
            "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
        )));
    }
    let metadata_len: usize = cfg.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if metadata_len > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
        )));
    }
    Ok(())
}

/// Replicas and the message and byte limits, with their defaults.
fn check_limits(cfg: &mut StreamConfig, pedantic: bool) -> Result<(), ApiError> {
    if cfg.num_replicas == 0 {
        cfg.num_replicas = 1;
    }
    if cfg.num_replicas > MAX_REPLICAS {
        return Err(invalid(format!("maximum replicas is {MAX_REPLICAS}")));
    }
    if cfg.num_replicas < 0 {
        return Err(ApiError::replicas_count_cannot_be_negative());
    }
    for (value, field) in [
        (&mut cfg.max_msgs, "max_msgs"),
        (&mut cfg.max_msgs_per_subject, "max_msgs_per_subject"),
        (&mut cfg.max_bytes, "max_bytes"),
        (&mut cfg.max_consumers, "max_consumers"),
    ] {
        if *value == 0 || *value < -1 {
            if pedantic && *value < -1 {
                return Err(ApiError::pedantic(format!("{field} must be set to -1")));
            }
            *value = -1;
        }
    }
    if cfg.max_msg_size == 0 || cfg.max_msg_size < -1 {
        if pedantic && cfg.max_msg_size < -1 {
            return Err(ApiError::pedantic("max_msg_size must be set to -1"));
        }
        cfg.max_msg_size = -1;
    }
    if cfg.max_age < 0 {
        return Err(invalid("max age can not be negative"));
    }
    if cfg.max_age != 0 && cfg.max_age < HUNDRED_MS {
        return Err(invalid("max age needs to be >= 100ms"));
    }
    Ok(())
}

/// The duplicate window: its default from max age, its bounds.
fn check_duplicate_window(cfg: &mut StreamConfig, pedantic: bool) -> Result<(), ApiError> {
    if cfg.duplicate_window == 0 && cfg.mirror.is_none() && cfg.sources.is_empty() {
        let max_window = DEFAULT_DUPLICATE_WINDOW;
        if cfg.max_age != 0 && cfg.max_age < max_window {
            if pedantic {
                return Err(ApiError::pedantic(
                    "duplicate window cannot be bigger than max age",
                ));
            }
            cfg.duplicate_window = cfg.max_age;
        } else {
            cfg.duplicate_window = max_window;
        }
    }
    if cfg.duplicate_window < 0 {
        return Err(invalid("duplicates window can not be negative"));
    }
    if cfg.max_age != 0 && cfg.duplicate_window > cfg.max_age {
        return Err(invalid("duplicates window can not be larger then max age"));
    }
    if cfg.duplicate_window > 0 && cfg.duplicate_window < HUNDRED_MS {
        return Err(invalid("duplicates window needs to be >= 100ms"));
    }
    Ok(())
}

/// Roll-ups, discard-new-per-subject and subject delete markers.
fn check_policies(cfg: &mut StreamConfig, pedantic: bool) -> Result<(), ApiError> {
    if cfg.deny_purge && cfg.allow_rollup_hdrs {
        return Err(invalid("roll-ups require the purge permission"));
    }
    if cfg.discard_new_per_subject {
        if cfg.discard != DiscardPolicy::New {
            return Err(invalid(
                "discard new per subject requires discard new policy to be set",
            ));
        }
        if cfg.max_msgs_per_subject <= 0 {
            return Err(invalid(
                "discard new per subject requires max msgs per subject > 0",
            ));
        }
    }
    if cfg.subject_delete_marker_ttl > 0 {
        if cfg.subject_delete_marker_ttl < ONE_SECOND {
            return Err(invalid(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        if !cfg.allow_msg_ttl {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if message TTLs are disabled",
                ));
            }
            cfg.allow_msg_ttl = true;
        }
        if !cfg.allow_rollup_hdrs {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if roll-ups are disabled",
                ));
            }
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    } else if cfg.subject_delete_marker_ttl < 0 {
        return Err(invalid("subject delete marker TTL must not be negative"));
    }
    Ok(())
}

/// Features an agent cannot honour (the control plane never sees payloads).
fn check_supported(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.mirror.is_some() || !cfg.sources.is_empty() {
        return Err(invalid("stream mirrors and sources are not supported"));
    }
    if cfg.allow_msg_counter {
        return Err(invalid("counter streams are not supported"));
    }
    if cfg.allow_msg_schedules {
        return Err(invalid("message schedules are not supported"));
    }
    if cfg.allow_atomic || cfg.allow_batched {
        return Err(invalid("batch publishing is not supported"));
    }
    if cfg.persist_mode == PersistMode::Async && cfg.num_replicas > 1 {
        return Err(invalid(
            "async persist mode is not supported on replicated streams",
        ));
    }
    if cfg.persist_mode == PersistMode::Async && cfg.storage != StorageType::File {
        return Err(invalid(
            "async persist mode is only supported on file storage",
        ));
    }
    Ok(())
}

/// The subjects: the name when none, each valid, none duplicated or overlapping, no
/// capture of the JetStream or system API without no-ack.
fn check_subjects(cfg: &mut StreamConfig) -> Result<(), ApiError> {
    if cfg.subjects.is_empty() {
        cfg.subjects.push(cfg.name.clone());
    } else {
        for (i, subj) in cfg.subjects.iter().enumerate() {
            if !subject::is_valid_subject(subj) {
                return Err(invalid("invalid subject"));
            }
            if cfg.subjects[..i].contains(subj) {
                return Err(invalid("duplicate subjects detected"));
            }
            if subj == ">" {
                if !cfg.no_ack {
                    return Err(invalid("capturing all subjects requires no-ack to be true"));
                }
                if cfg.num_replicas != 1 {
                    return Err(invalid("capturing all subjects requires replicas of 1"));
                }
            }
            if !cfg.no_ack {
                for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                    if subject::overlaps(subj, ns) && !subject::is_subset(subj, "$JS.EVENT.>") {
                        return Err(invalid(
                            "subjects that overlap with jetstream api require no-ack to be true",
                        ));
                    }
                }
                if subject::overlaps(subj, "$SYS.>") && !subject::is_subset(subj, "$SYS.ACCOUNT.>")
                {
                    return Err(invalid(
                        "subjects that overlap with system api require no-ack to be true",
                    ));
                }
            }
            for other in &cfg.subjects[i + 1..] {
                if subject::overlaps(other, subj) {
                    return Err(invalid(format!("subject {subj:?} overlaps with {other:?}")));
                }
            }
        }
    }
    Ok(())
}

/// Subject transform, republish and placement.
fn check_transforms(cfg: &mut StreamConfig, pedantic: bool) -> Result<(), ApiError> {
    if let Some(tr) = &cfg.subject_transform {
        if !tr.src.is_empty() && !subject::is_valid_subject(&tr.src) {
            return Err(ApiError::new(
                400,
                10155,
                format!("stream transform source: invalid subject {}", tr.src),
            ));
        }
        if tr.dest.is_empty() {
            return Err(ApiError::new(
                400,
                10156,
                "stream transform: invalid mapping destination",
            ));
        }
    }
    if let Some(rp) = &mut cfg.republish {
        if rp.src.is_empty() {
            if pedantic {
                return Err(ApiError::pedantic("republish source can not be empty"));
            }
            rp.src = ">".to_string();
        }
        if cfg.subjects.iter().any(|s| subject::overlaps(&rp.dest, s)) {
            return Err(invalid(
                "stream configuration for republish destination forms a cycle",
            ));
        }
        if !subject::is_valid_subject(&rp.src) || rp.dest.is_empty() {
            return Err(invalid(format!(
                "stream configuration for republish with transform from '{}' to '{}' not valid",
                rp.src, rp.dest
            )));
        }
    }
    if cfg.placement.as_ref() == Some(&Placement::default()) {
        cfg.placement = None;
    }
    if cfg
        .placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(invalid("preferred server not permitted in placement"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_like_nats_server() {
        let cfg = StreamConfig::named("ORDERS", &[]).checked(false).unwrap();
        assert_eq!(cfg.subjects, vec!["ORDERS".to_string()]);
        assert_eq!(cfg.max_msgs, -1);
        assert_eq!(cfg.max_bytes, -1);
        assert_eq!(cfg.max_msg_size, -1);
        assert_eq!(cfg.max_consumers, -1);
        assert_eq!(cfg.max_msgs_per_subject, -1);
        assert_eq!(cfg.num_replicas, 1);
        assert_eq!(cfg.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["storage"], "file");
        assert_eq!(json["discard"], "old");
        assert_eq!(json["retention"], "limits");
        assert_eq!(json["compression"], "none");
        assert_eq!(json["consumer_limits"], serde_json::json!({}));
        assert_eq!(json["max_age"], 0);
        assert!(json.get("no_ack").is_none());
    }

    #[test]
    fn names() {
        assert!(is_valid_stream_name("ORDERS-1_x"));
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b", "a\\b", "a\tb"] {
            assert!(!is_valid_stream_name(bad), "{bad:?}");
        }
        assert!(!is_valid_stream_name(&"x".repeat(256)));
    }

    #[test]
    fn max_age_shrinks_duplicate_window() {
        let mut cfg = StreamConfig::named("S", &["s"]);
        cfg.max_age = 1_000_000_000;
        let cfg = cfg.checked(false).unwrap();
        assert_eq!(cfg.duplicate_window, 1_000_000_000);
    }

    #[test]
    fn discard_new_per_subject_needs_discard_new() {
        let mut cfg = StreamConfig::named("S", &["s"]);
        cfg.discard_new_per_subject = true;
        let err = cfg.checked(false).unwrap_err();
        assert_eq!(err.err_code, 10052);
        assert_eq!(
            err.description,
            "discard new per subject requires discard new policy to be set"
        );
    }
}
