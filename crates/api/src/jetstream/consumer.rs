//! JetStream consumer API types with nats-server's JSON shapes (server/consumer.go), their
//! defaults and the config checks nats-server runs at create time (`checkConsumerCfg`,
//! `setConsumerConfigDefaults`), and the consumer error constructors.
//!
//! Owns: `ConsumerConfig`, `ConsumerInfo`, the create/names/list/delete envelopes, the pull
//! request body, and the v1 ack subject. Does not own: consumer state or delivery (the control
//! plane's `consumers` module and the agent's consumer actor).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::ApiError;
use super::config::{
    API_LEVEL, REQUIRED_LEVEL_KEY, SERVER_LEVEL_KEY, SERVER_VERSION, SERVER_VERSION_KEY,
    null_default,
};
use super::time::go_time;

pub const CONSUMER_CREATE_RESPONSE: &str = "io.nats.jetstream.api.v1.consumer_create_response";
pub const CONSUMER_INFO_RESPONSE: &str = "io.nats.jetstream.api.v1.consumer_info_response";
pub const CONSUMER_DELETE_RESPONSE: &str = "io.nats.jetstream.api.v1.consumer_delete_response";
pub const CONSUMER_NAMES_RESPONSE: &str = "io.nats.jetstream.api.v1.consumer_names_response";
pub const CONSUMER_LIST_RESPONSE: &str = "io.nats.jetstream.api.v1.consumer_list_response";

/// nats-server's defaults (server/consumer.go).
pub const DEFAULT_ACK_WAIT: i64 = 30_000_000_000;
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
pub const DEFAULT_MAX_WAITING: i64 = 512;
pub const DEFAULT_EPHEMERAL_INACTIVE: i64 = 5_000_000_000;
const MAX_NAME_LEN: usize = 255;

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    ByStartSequence,
    ByStartTime,
    LastPerSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    #[default]
    None,
    All,
    Explicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

fn lenient_enum<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    null_default(d)
}

/// A consumer's configuration, field for field (and in the order) nats-server serializes it.
/// Durations are nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerConfig {
    #[serde(
        rename = "durable_name",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub durable: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub description: String,
    #[serde(default, deserialize_with = "lenient_enum")]
    pub deliver_policy: DeliverPolicy,
    #[serde(
        default,
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub opt_start_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient_enum")]
    pub ack_policy: AckPolicy,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub ack_wait: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_deliver: i64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub backoff: Vec<i64>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter_subject: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub filter_subjects: Vec<String>,
    #[serde(default, deserialize_with = "lenient_enum")]
    pub replay_policy: ReplayPolicy,
    #[serde(
        rename = "rate_limit_bps",
        default,
        skip_serializing_if = "is_zero_u64",
        deserialize_with = "null_default"
    )]
    pub rate_limit: u64,
    #[serde(
        rename = "sample_freq",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub sample_frequency: String,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_waiting: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_ack_pending: i64,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub flow_control: bool,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub headers_only: bool,
    #[serde(
        rename = "max_batch",
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_batch: i64,
    #[serde(
        rename = "max_expires",
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_expires: i64,
    #[serde(
        rename = "max_bytes",
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub max_request_max_bytes: i64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub deliver_subject: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub deliver_group: String,
    #[serde(
        rename = "idle_heartbeat",
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub heartbeat: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_default"
    )]
    pub inactive_threshold: i64,
    #[serde(rename = "num_replicas", default, deserialize_with = "null_default")]
    pub replicas: i64,
    #[serde(
        rename = "mem_storage",
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub memory_storage: bool,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub direct: bool,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub metadata: BTreeMap<String, String>,
}

/// `CONSUMER.CREATE` / `CONSUMER.DURABLE.CREATE` request body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateConsumerRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub stream_name: String,
    #[serde(default)]
    pub config: Option<ConsumerConfig>,
    /// `create`, `update` or empty (create or update).
    #[serde(default, deserialize_with = "null_default")]
    pub action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub pedantic: bool,
}

/// A (consumer sequence, stream sequence) pair; `last_active` only when something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_go_time")]
    pub last_active: Option<i64>,
}

mod opt_go_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&crate::jetstream::time::format_nanos(*n)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(s.and_then(|s| crate::jetstream::time::parse_nanos(&s)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    #[serde(with = "go_time")]
    pub created: i64,
    pub config: ConsumerConfig,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    /// Push consumers: something has interest in the deliver subject.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push_bound: bool,
    #[serde(with = "go_time")]
    pub ts: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerInfoResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub info: Option<ConsumerInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerDeleteResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerNamesResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub consumers: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerListResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub consumers: Vec<ConsumerInfo>,
}

/// `CONSUMER.NAMES` / `CONSUMER.LIST` body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsumerListRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub offset: i64,
}

/// `CONSUMER.MSG.NEXT` body: `{"batch":…}` or a bare batch number; null fields accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub batch: i64,
    /// Nanoseconds.
    #[serde(default, deserialize_with = "null_default")]
    pub expires: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub no_wait: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Nanoseconds.
    #[serde(default, deserialize_with = "null_default")]
    pub idle_heartbeat: i64,
}

impl PullRequest {
    /// Parses a pull request body as nats-server does: a JSON object when it starts with `{`, else
    /// a bare batch number, else (anything else, even bytes that are not UTF-8) a batch of 1. The
    /// error is what nats-server puts after `400 Bad Request - `.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let body = body.trim_ascii();
        let one = Self {
            batch: 1,
            ..Self::default()
        };
        if !body.starts_with(b"{") {
            let n = std::str::from_utf8(body)
                .ok()
                .and_then(|t| t.parse::<i64>().ok());
            return Ok(match n {
                Some(n) => Self {
                    batch: n.max(1),
                    ..Self::default()
                },
                None => one,
            });
        }
        if let Some(e) = crate::jetstream::gojson::unmarshal_syntax_error(body) {
            return Err(e);
        }
        let mut r: PullRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        // nats-server: a heartbeat must fit twice into the request's expiry (none = zero).
        if r.idle_heartbeat > 0 && r.idle_heartbeat.saturating_mul(2) > r.expires {
            return Err("heartbeat value too large".to_string());
        }
        if r.batch <= 0 {
            r.batch = 1;
        }
        Ok(r)
    }
}

/// What a consumer allows a pull request (its `max_batch`, `max_expires`, `max_bytes`, and whether
/// it is a push consumer, which takes no pull requests at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullLimits {
    #[serde(default)]
    pub push: bool,
    #[serde(default)]
    pub max_batch: i64,
    #[serde(default)]
    pub max_expires: i64,
    #[serde(default)]
    pub max_bytes: i64,
}

impl PullLimits {
    pub fn of(cfg: &ConsumerConfig) -> Self {
        Self {
            push: cfg.is_push(),
            max_batch: cfg.max_request_batch,
            max_expires: cfg.max_request_expires,
            max_bytes: cfg.max_request_max_bytes,
        }
    }

    /// The description of nats-server's 409 for a pull request these limits refuse, checked in
    /// nats-server's order (checked against nats-server 2.15.1).
    pub fn refusal(&self, req: &PullRequest) -> Option<String> {
        if self.push {
            return Some("Consumer is push based".to_string());
        }
        if self.max_batch > 0 && req.batch > self.max_batch {
            return Some(format!("Exceeded MaxRequestBatch of {}", self.max_batch));
        }
        if self.max_expires > 0 && req.expires > self.max_expires {
            return Some(format!(
                "Exceeded MaxRequestExpires of {}",
                go_duration(self.max_expires)
            ));
        }
        if self.max_bytes > 0 && req.max_bytes > self.max_bytes {
            return Some(format!("Exceeded MaxRequestMaxBytes of {}", self.max_bytes));
        }
        None
    }
}

/// Nanoseconds as Go's `time.Duration.String` prints them (`1.5s`, `1m30s`, `1.234567ms`), the
/// form nats-server puts in status descriptions.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    // An integer part and a fraction of `digits` decimals, trailing zeros dropped.
    let frac = |int: u64, rem: u64, digits: usize| {
        if rem == 0 {
            int.to_string()
        } else {
            let f = format!("{rem:0digits$}");
            format!("{int}.{}", f.trim_end_matches('0'))
        }
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}\u{b5}s", frac(u / 1_000, u % 1_000, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u / 1_000_000, u % 1_000_000, 6))
    } else {
        let secs = u / 1_000_000_000;
        let s = frac(secs % 60, u % 1_000_000_000, 9);
        let (h, m) = (secs / 3600, (secs / 60) % 60);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    format!("{sign}{body}")
}

/// The v1 ack reply subject of one delivery.
pub fn ack_subject(
    stream: &str,
    consumer: &str,
    deliveries: u64,
    sseq: u64,
    cseq: u64,
    ts: i64,
    pending: u64,
) -> String {
    // Built by hand: one of these per delivered message, and `format!` with seven arguments
    // was a measurable share of a warm consume.
    let mut s = String::with_capacity(8 + stream.len() + consumer.len() + 5 * 21);
    s.push_str("$JS.ACK.");
    s.push_str(stream);
    s.push('.');
    s.push_str(consumer);
    for v in [deliveries, sseq, cseq] {
        s.push('.');
        push_decimal(&mut s, v);
    }
    s.push('.');
    if ts < 0 {
        s.push('-');
    }
    push_decimal(&mut s, ts.unsigned_abs());
    s.push('.');
    push_decimal(&mut s, pending);
    s
}

fn push_decimal(s: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written, so this never falls back.
    s.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
}

/// The fields of an ack subject (v1 `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
/// or v2 with domain and account hash in front and a random token at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckSubject {
    pub stream: String,
    pub consumer: String,
    pub deliveries: u64,
    pub sseq: u64,
    pub cseq: u64,
}

impl AckSubject {
    pub fn parse(subject: &str) -> Option<Self> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let base = match tokens.len() {
            9 => 2,
            11 | 12 => 4,
            _ => return None,
        };
        if tokens[0] != "$JS" || tokens[1] != "ACK" {
            return None;
        }
        Some(Self {
            stream: tokens[base].to_string(),
            consumer: tokens[base + 1].to_string(),
            deliveries: tokens[base + 2].parse().ok()?,
            sseq: tokens[base + 3].parse().ok()?,
            cseq: tokens[base + 4].parse().ok()?,
        })
    }
}

fn invalid_policy(msg: &str) -> ApiError {
    ApiError::new(400, 10094, msg)
}

impl ApiError {
    /// 10014 JSConsumerNotFoundErr.
    pub fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found")
    }
    /// 10012 JSConsumerCreateErrF.
    pub fn consumer_create(err: impl std::fmt::Display) -> Self {
        Self::new(500, 10012, err.to_string())
    }
    /// 10013 JSConsumerNameExistErr.
    pub fn consumer_name_exist() -> Self {
        Self::new(400, 10013, "consumer name already in use")
    }
    /// 10148 JSConsumerAlreadyExists.
    pub fn consumer_already_exists() -> Self {
        Self::new(400, 10148, "consumer already exists")
    }
    /// 10149 JSConsumerDoesNotExist.
    pub fn consumer_does_not_exist() -> Self {
        Self::new(400, 10149, "consumer does not exist")
    }
    /// 10131 JSConsumerCreateFilterSubjectMismatchErr.
    pub fn consumer_filter_mismatch() -> Self {
        Self::new(
            400,
            10131,
            "Consumer create request did not match filtered subject from create subject",
        )
    }
    /// 10017 JSConsumerDurableNameNotMatchSubjectErr.
    pub fn consumer_durable_not_match_subject() -> Self {
        Self::new(
            400,
            10017,
            "consumer name in subject does not match durable name in request",
        )
    }
    /// 10016 JSConsumerDurableNameNotInSubjectErr.
    pub fn consumer_durable_not_in_subject() -> Self {
        Self::new(
            400,
            10016,
            "consumer expected to be durable but no durable name set in subject",
        )
    }
    /// 10078 JSConsumerConfigRequiredErr.
    pub fn consumer_config_required() -> Self {
        Self::new(400, 10078, "consumer config required")
    }
    /// 10132 JSConsumerCreateDurableAndNameMismatch.
    pub fn consumer_durable_name_mismatch() -> Self {
        Self::new(
            400,
            10132,
            "Consumer Durable and Name have to be equal if both are provided",
        )
    }
    /// 10103 JSConsumerBadDurableNameErr.
    pub fn consumer_bad_durable_name() -> Self {
        Self::new(400, 10103, "durable name can not contain '.', '*', '>'")
    }
    /// 10137 JSConsumerMultipleFiltersNotAllowed.
    pub fn consumer_multiple_filters_not_allowed() -> Self {
        Self::new(
            400,
            10137,
            "consumer with multiple subject filters cannot use subject based API",
        )
    }
}

impl ConsumerConfig {
    /// The configured filters (filter_subject or filter_subjects), empty = everything.
    pub fn filters(&self) -> Vec<String> {
        if !self.filter_subject.is_empty() {
            vec![self.filter_subject.clone()]
        } else {
            self.filter_subjects.clone()
        }
    }

    pub fn is_push(&self) -> bool {
        !self.deliver_subject.is_empty()
    }

    pub fn is_durable(&self) -> bool {
        !self.durable.is_empty()
    }

    /// How long a delivery waits for its ack before redelivery, given how often it was delivered.
    pub fn ack_wait_for(&self, deliveries: u64) -> i64 {
        if !self.backoff.is_empty() {
            let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
            return self.backoff[i.min(self.backoff.len() - 1)];
        }
        self.ack_wait
    }

    /// nats-server's `setConsumerConfigDefaults` and `checkConsumerCfg` (the checks that apply
    /// to a stream with limits retention and no clustering), in its order.
    pub fn checked(mut self) -> Result<Self, ApiError> {
        self.check_names()?;
        self.check_filters()?;
        self.check_acks_with_defaults()?;
        self.check_mode()?;
        self.check_deliver_policy()?;
        self.metadata.remove(SERVER_VERSION_KEY);
        self.metadata.remove(SERVER_LEVEL_KEY);
        self.metadata
            .insert(REQUIRED_LEVEL_KEY.to_string(), "0".to_string());
        Ok(self)
    }

    /// Durable and name: length, characters, and that they agree.
    fn check_names(&self) -> Result<(), ApiError> {
        for name in [&self.durable, &self.name] {
            if name.len() > MAX_NAME_LEN {
                return Err(ApiError::new(
                    400,
                    10102,
                    format!("consumer name is too long, maximum allowed is {MAX_NAME_LEN}"),
                ));
            }
            if name.contains(['.', '*', '>']) || name.chars().any(char::is_whitespace) {
                return Err(ApiError::consumer_bad_durable_name());
            }
            if name.contains(['/', '\\']) {
                return Err(ApiError::new(
                    400,
                    10127,
                    "Consumer name can not contain path separators",
                ));
            }
        }
        if !self.durable.is_empty() && !self.name.is_empty() && self.durable != self.name {
            return Err(ApiError::consumer_durable_name_mismatch());
        }
        Ok(())
    }

    /// One filter form, none empty, none overlapping.
    fn check_filters(&self) -> Result<(), ApiError> {
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::new(
                400,
                10139,
                "consumer filter in FilterSubjects cannot be empty",
            ));
        }
        for (i, a) in self.filter_subjects.iter().enumerate() {
            for b in &self.filter_subjects[i + 1..] {
                if crate::subject::overlaps(a, b) {
                    return Err(ApiError::new(
                        400,
                        10138,
                        "consumer subject filters cannot overlap",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Ack wait and backoff, with the defaults of max deliver, ack wait and max ack pending.
    fn check_acks_with_defaults(&mut self) -> Result<(), ApiError> {
        if self.ack_wait < 0 {
            return Err(ApiError::new(
                400,
                10183,
                "consumer ack wait needs to be positive",
            ));
        }
        // nats-server 2.15.1 accepts a zero backoff, not a negative one.
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::new(
                400,
                10184,
                "consumer backoff needs to be positive",
            ));
        }
        // Defaults (setConsumerConfigDefaults).
        if self.max_deliver == 0 {
            self.max_deliver = -1;
        }
        if self.ack_policy != AckPolicy::None && self.ack_wait == 0 {
            self.ack_wait = DEFAULT_ACK_WAIT;
        }
        // With a backoff the first delay is the ack wait, whatever was configured (and whatever
        // the ack policy): what nats-server 2.15.1 reports.
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        // The text says ">", but nats-server accepts as many deliveries as backoff values.
        if !self.backoff.is_empty()
            && self.max_deliver != -1
            && self.max_deliver < i64::try_from(self.backoff.len()).unwrap_or(i64::MAX)
        {
            return Err(ApiError::new(
                400,
                10116,
                "max deliver is required to be > length of backoff values",
            ));
        }
        if self.ack_policy != AckPolicy::None && self.max_ack_pending == 0 {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
        if self.ack_policy == AckPolicy::None && self.max_ack_pending > 0 {
            self.max_ack_pending = 0;
        }
        Ok(())
    }

    /// What only pull (max waiting) or only push (deliver subject, heartbeats, flow control) consumers may set.
    fn check_mode(&mut self) -> Result<(), ApiError> {
        if !self.is_push() {
            if self.max_waiting == 0 {
                self.max_waiting = DEFAULT_MAX_WAITING;
            }
            if self.max_waiting < 0 {
                return Err(ApiError::new(
                    400,
                    10087,
                    "consumer max waiting needs to be positive",
                ));
            }
            if self.heartbeat > 0 {
                return Err(ApiError::new(
                    400,
                    10088,
                    "consumer idle heartbeat requires a push based consumer",
                ));
            }
            if self.flow_control {
                return Err(ApiError::new(
                    400,
                    10089,
                    "consumer flow control requires a push based consumer",
                ));
            }
        } else {
            if self.max_waiting > 0 {
                return Err(ApiError::new(
                    400,
                    10080,
                    "consumer in push mode can not set max waiting",
                ));
            }
            if self.deliver_subject.contains(['*', '>']) {
                return Err(ApiError::new(
                    400,
                    10079,
                    "consumer deliver subject has wildcards",
                ));
            }
            if !crate::subject::is_valid_literal_subject(&self.deliver_subject) {
                return Err(ApiError::new(
                    400,
                    10112,
                    "invalid push consumer deliver subject",
                ));
            }
            if self.heartbeat > 0 && self.heartbeat < 100_000_000 {
                return Err(ApiError::new(
                    400,
                    10083,
                    "consumer idle heartbeat needs to be >= 100ms",
                ));
            }
            if self.flow_control && self.heartbeat <= 0 {
                return Err(ApiError::new(
                    400,
                    10108,
                    "consumer with flow control also needs heartbeats",
                ));
            }
        }
        Ok(())
    }

    /// The ephemeral inactivity default, and the start options the deliver policy requires.
    fn check_deliver_policy(&mut self) -> Result<(), ApiError> {
        if self.durable.is_empty() && self.inactive_threshold == 0 {
            self.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE;
        }
        match self.deliver_policy {
            DeliverPolicy::ByStartSequence => {
                if self.opt_start_seq == 0 {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
                    ));
                }
                if self.opt_start_time.is_some() {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver by start sequence, but optional start time is also set",
                    ));
                }
            }
            DeliverPolicy::ByStartTime => {
                if self.opt_start_time.is_none() {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver by start time, but optional start time is not set",
                    ));
                }
                if self.opt_start_seq != 0 {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver by start time, but optional start sequence is also set",
                    ));
                }
            }
            _ => {
                if self.opt_start_seq != 0 {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver all, but optional start sequence is also set",
                    ));
                }
                if self.opt_start_time.is_some() {
                    return Err(invalid_policy(
                        "consumer delivery policy is deliver all, but optional start time is also set",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The copy sent in create and info responses (with the server's versioning metadata).
    pub fn with_dynamic_metadata(&self) -> Self {
        let mut cfg = self.clone();
        cfg.metadata
            .insert(SERVER_VERSION_KEY.to_string(), SERVER_VERSION.to_string());
        cfg.metadata
            .insert(SERVER_LEVEL_KEY.to_string(), API_LEVEL.to_string());
        cfg
    }

    /// The start time as unix nanos.
    pub fn start_time_nanos(&self) -> Option<i64> {
        self.opt_start_time
            .as_deref()
            .and_then(crate::jetstream::time::parse_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_request_forms() {
        assert_eq!(PullRequest::parse(b"").map(|r| r.batch), Ok(1));
        assert_eq!(PullRequest::parse(b"7").map(|r| r.batch), Ok(7));
        let r = PullRequest::parse(br#"{"batch":5,"expires":null,"no_wait":true}"#).unwrap();
        assert_eq!((r.batch, r.expires, r.no_wait), (5, 0, true));
        // As nats-server: anything that is neither JSON nor a number is a batch of one.
        assert_eq!(PullRequest::parse(b"abc").map(|r| r.batch), Ok(1));
        assert_eq!(PullRequest::parse(b"\xff\xfe").map(|r| r.batch), Ok(1));
        // Go's words for a syntax error, as nats-server sends them after `Bad Request - `.
        assert_eq!(
            PullRequest::parse(b"{nope"),
            Err("invalid character 'n' looking for beginning of object key string".to_string())
        );
        assert_eq!(
            PullRequest::parse(br#"{"batch":1"#),
            Err("unexpected end of JSON input".to_string())
        );
    }

    #[test]
    fn a_heartbeat_must_fit_twice_into_the_expiry() {
        let too_large = Err("heartbeat value too large".to_string());
        let hb = |hb: i64, exp: i64| {
            PullRequest::parse(format!(r#"{{"idle_heartbeat":{hb},"expires":{exp}}}"#).as_bytes())
                .map(|r| r.idle_heartbeat)
        };
        assert_eq!(hb(5, 10), Ok(5));
        assert_eq!(hb(6, 10), too_large);
        assert_eq!(hb(1, 0), too_large);
        assert_eq!(hb(0, 0), Ok(0));
    }

    #[test]
    fn backoff_rules_match_nats_server() {
        let cfg = |backoff: Vec<i64>, max_deliver, ack_wait, ack_policy| {
            ConsumerConfig {
                durable: "D".into(),
                ack_policy,
                backoff,
                max_deliver,
                ack_wait,
                ..Default::default()
            }
            .checked()
        };
        let s = 1_000_000_000;
        let e = AckPolicy::Explicit;
        // As many deliveries as backoff values is enough; fewer is refused.
        assert!(cfg(vec![s, 2 * s], 2, 0, e).is_ok());
        for md in [1, 2] {
            let err = cfg(vec![s, 2 * s, 3 * s], md, 0, e).unwrap_err();
            assert_eq!(err.err_code, 10116);
            assert_eq!(
                err.description,
                "max deliver is required to be > length of backoff values"
            );
        }
        // The first backoff replaces any ack wait, even with ack policy none.
        assert_eq!(cfg(vec![s, 2 * s], -1, 5 * s, e).unwrap().ack_wait, s);
        assert_eq!(cfg(vec![s], 3, 0, AckPolicy::None).unwrap().ack_wait, s);
        assert_eq!(cfg(vec![0], -1, 0, e).unwrap().ack_wait, 0);
        assert_eq!(cfg(vec![-1], -1, 0, e).unwrap_err().err_code, 10184);
        assert_eq!(cfg(vec![], -1, 0, AckPolicy::None).unwrap().ack_wait, 0);
    }

    #[test]
    fn go_durations() {
        for (n, want) in [
            (0, "0s"),
            (2_000_000_000, "2s"),
            (1_500_000_000, "1.5s"),
            (1_234_567, "1.234567ms"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500, "1.5\u{b5}s"),
            (999, "999ns"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(n), want, "{n}");
        }
    }

    #[test]
    fn pull_limits_refusals_in_nats_server_order() {
        let l = PullLimits {
            push: false,
            max_batch: 5,
            max_expires: 2_000_000_000,
            max_bytes: 1000,
        };
        let req = |batch, expires, max_bytes| PullRequest {
            batch,
            expires,
            max_bytes,
            ..PullRequest::default()
        };
        assert_eq!(
            l.refusal(&req(10, 9_000_000_000, 5000)).as_deref(),
            Some("Exceeded MaxRequestBatch of 5")
        );
        assert_eq!(
            l.refusal(&req(1, 9_000_000_000, 5000)).as_deref(),
            Some("Exceeded MaxRequestExpires of 2s")
        );
        assert_eq!(
            l.refusal(&req(1, 0, 5000)).as_deref(),
            Some("Exceeded MaxRequestMaxBytes of 1000")
        );
        assert_eq!(l.refusal(&req(5, 2_000_000_000, 1000)), None);
        let push = PullLimits {
            push: true,
            ..PullLimits::default()
        };
        assert_eq!(
            push.refusal(&req(1, 0, 0)).as_deref(),
            Some("Consumer is push based")
        );
    }

    #[test]
    fn ack_subject_round_trip() {
        let s = ack_subject("S", "C", 2, 10, 11, 123, 4);
        let a = AckSubject::parse(&s).unwrap();
        assert_eq!((a.stream.as_str(), a.consumer.as_str()), ("S", "C"));
        assert_eq!((a.deliveries, a.sseq, a.cseq), (2, 10, 11));
        // Exactly what the formatter writes, extremes included.
        for (d, sseq, cseq, ts, pending) in [
            (0, 0, 0, 0, 0),
            (1, 9, 10, -5, 99),
            (u64::MAX, u64::MAX, 1, i64::MIN, u64::MAX),
            (3, 1_000_000, 7, 1_764_000_000_123_456_789, 12),
        ] {
            assert_eq!(
                ack_subject("KV_b", "c-1", d, sseq, cseq, ts, pending),
                format!("$JS.ACK.KV_b.c-1.{d}.{sseq}.{cseq}.{ts}.{pending}")
            );
        }
    }

    #[test]
    fn defaults_match_nats_server() {
        let c = ConsumerConfig {
            durable: "D".into(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        }
        .checked()
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"durable_name":"D","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0,"metadata":{"_nats.req.level":"0"}}"#
        );
    }
}
