//! Storage of the control plane's metadata behind one trait, so another database can replace
//! SQLite without touching the HTTP layer.
//!
//! Owns: the `MetadataStore` trait (streams, message index, commit, lookups, object ids, orphans,
//! membership, durable consumer state), its error type, and the dedicated thread (`StoreThread`/`StoreHandle`) that owns
//! the one store instance and runs requests in order. Does not own: HTTP, auth, JSON envelopes of
//! the `$JS.API` (see `js_api`).

mod commit;
pub mod sqlite;

pub use sqlite::SqliteStore;

use infinistream_api::control_plane::model::{
    AgentInfo, CommitRequest, CommitResponse, LocateRequest, MessageLocation, Orphan,
    OrphanRequest, RegisterRequest, StreamsSnapshot,
};
use infinistream_api::jetstream::consumer::ConsumerConfig;
use infinistream_api::jetstream::{ApiError, StreamConfig, StreamPurgeRequest, StreamState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A JetStream-level refusal, answered to the client as an API error.
    #[error("{0}")]
    Api(ApiError),
    #[error("sqlite failure: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored json is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store thread has stopped")]
    Closed,
    /// The request panicked; the worker rebuilt its state and serves the next one.
    #[error("the control plane store failed on this request")]
    Panicked,
    #[error("store invariant broken: {0}")]
    Invariant(String),
    #[error(
        "the data dir was written by a newer infinistream (store schema {found}); this build reads \
         schema {supported} and older: run the newer release, or start on an empty data dir"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error(
        "cannot migrate the data dir to this release's store schema ({0}); it is unchanged: run \
         the release that wrote it, or start on an empty data dir"
    )]
    Migration(String),
}

impl From<ApiError> for StoreError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// A stream as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamView {
    pub config: StreamConfig,
    /// Creation time, unix nanos.
    pub created: i64,
    pub state: StreamState,
}

/// Extra state details for STREAM.INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDetail {
    /// Fill `state.subjects` with per-subject counts for subjects matching this filter.
    pub subjects_filter: Option<String>,
    /// Fill `state.deleted` with the interior deleted sequences.
    pub deleted: bool,
}

/// Totals for account info.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUsage {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub streams: usize,
}

/// A consumer's durable delivery position: everything but its pending deliveries. Transient
/// state (waiting pull requests, push leases, last activity) is not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerPosition {
    /// Next stream sequence to look at for new messages.
    pub next_sseq: u64,
    /// `last_per_subject` sequences still to deliver before `next_sseq`.
    pub lps: Vec<u64>,
    /// Last consumer sequence handed out.
    pub dseq: u64,
    /// Highest stream sequence delivered.
    pub sseq: u64,
    pub last_delivery: Option<i64>,
    /// (consumer seq, stream seq).
    pub ack_floor: (u64, u64),
    pub last_ack: Option<i64>,
}

/// One delivery waiting for its ack (nak delays are folded into `deadline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDelivery {
    pub sseq: u64,
    pub cseq: u64,
    pub deliveries: u64,
    /// Unix nanos after which it is redelivered.
    pub deadline: i64,
}

/// The deliveries of one claim still waiting for their acks: consumer sequences from
/// `first_cseq` up to the next run's first, stored as one row (a claim of 500 new messages is
/// one row of about 2 KB, not 500 rows).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingRun {
    pub first_cseq: u64,
    /// Ascending by consumer sequence; empty when the run is gone.
    pub entries: Vec<PendingDelivery>,
}

/// A consumer as stored, loaded when the store opens.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConsumer {
    pub stream: String,
    pub name: String,
    pub config: ConsumerConfig,
    /// Unix nanos.
    pub created: i64,
    pub position: ConsumerPosition,
    /// Ascending by first consumer sequence.
    pub pending: Vec<PendingRun>,
}

/// One change to the stored consumers; a batch of them is applied in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerWrite {
    /// Creates (or replaces, dropping its pending deliveries) a consumer.
    Create {
        stream: String,
        name: String,
        config: ConsumerConfig,
        created: i64,
        position: ConsumerPosition,
    },
    UpdateConfig {
        stream: String,
        name: String,
        config: ConsumerConfig,
    },
    Position {
        stream: String,
        name: String,
        position: ConsumerPosition,
    },
    /// Replaces one pending run (an empty one removes it: all acked, terminated, redelivered
    /// under a later run or given up on).
    PutRun {
        stream: String,
        name: String,
        run: PendingRun,
    },
    /// Removes a consumer and its pending deliveries.
    Delete { stream: String, name: String },
}

/// Every operation the control plane performs on its metadata. Implementations run one call at
/// a time (the store thread serializes them), and each mutating call is atomic.
pub trait MetadataStore {
    /// Creates a stream from a config that already passed `StreamConfig::checked`. An identical
    /// existing stream is returned as is; a different one is 10058; overlapping subjects 10065.
    fn create_stream(&mut self, config: StreamConfig, now: i64) -> Result<StreamView, StoreError>;
    /// Replaces the config of an existing stream (already checked against the old one by the
    /// caller through `stream_config`) and applies the new limits.
    fn update_stream(&mut self, config: StreamConfig) -> Result<StreamView, StoreError>;
    /// The stored config, or 10059.
    fn stream_config(&mut self, name: &str) -> Result<StreamConfig, StoreError>;
    fn delete_stream(&mut self, name: &str) -> Result<(), StoreError>;
    fn stream(&mut self, name: &str, detail: &StateDetail) -> Result<StreamView, StoreError>;
    /// All streams, sorted by name.
    fn streams(&mut self) -> Result<Vec<StreamView>, StoreError>;
    /// nats-server's purge semantics (`PurgeEx`); returns the number purged.
    fn purge(&mut self, name: &str, request: &StreamPurgeRequest) -> Result<u64, StoreError>;
    fn delete_message(&mut self, name: &str, seq: u64) -> Result<(), StoreError>;
    fn streams_since(&mut self, version: u64) -> Result<StreamsSnapshot, StoreError>;
    fn account_usage(&mut self) -> Result<AccountUsage, StoreError>;

    /// Sequences every message of an object in one transaction (see `CommitResponse`).
    fn commit(&mut self, request: &CommitRequest) -> Result<CommitResponse, StoreError>;
    /// Several objects in order, all in one transaction: every one is committed or none is.
    fn commit_many(
        &mut self,
        requests: &[CommitRequest],
    ) -> Result<Vec<CommitResponse>, StoreError>;
    fn locate(
        &mut self,
        stream: &str,
        request: &LocateRequest,
    ) -> Result<MessageLocation, StoreError>;
    fn allocate_object_ids(&mut self, count: u32, now_ms: i64) -> Result<Vec<u64>, StoreError>;
    fn record_orphan(&mut self, request: &OrphanRequest, now_ms: i64) -> Result<(), StoreError>;
    fn orphans(&mut self) -> Result<Vec<Orphan>, StoreError>;

    fn register_agent(
        &mut self,
        request: &RegisterRequest,
        now_ms: i64,
    ) -> Result<AgentInfo, StoreError>;
    /// None when the agent is unknown or its lease expired (it must register again).
    fn heartbeat(
        &mut self,
        agent_id: &str,
        now_ms: i64,
        expiry_ms: i64,
    ) -> Result<Option<AgentInfo>, StoreError>;
    /// Live members; expired ones are removed.
    fn agents(&mut self, now_ms: i64, expiry_ms: i64) -> Result<Vec<AgentInfo>, StoreError>;

    /// An agent leaves the group (graceful shutdown); true if it was a member.
    fn remove_agent(&mut self, agent_id: &str) -> Result<bool, StoreError>;

    /// Consumers: up to `limit` messages with `seq >= from` whose subject matches one of
    /// `filters` (empty = all), in sequence order.
    fn scan(
        &mut self,
        stream: &str,
        from: u64,
        filters: &[String],
        limit: usize,
    ) -> Result<Vec<MessageLocation>, StoreError>;
    /// Consumers: how many messages with `seq >= from` match `filters` (empty = all).
    fn count_from(
        &mut self,
        stream: &str,
        from: u64,
        filters: &[String],
    ) -> Result<u64, StoreError>;
    /// Consumers: the first sequence stored at or after `ts` (unix nanos).
    fn seq_at_time(&mut self, stream: &str, ts: i64) -> Result<Option<u64>, StoreError>;
    /// Consumers: the last sequence of every subject matching `filters`, ascending.
    fn last_per_subject(
        &mut self,
        stream: &str,
        filters: &[String],
    ) -> Result<Vec<u64>, StoreError>;

    /// Consumers: every stored consumer with its position and pending deliveries, sorted by
    /// (stream, name). Deleting a stream deletes its consumers too.
    fn consumers(&mut self) -> Result<Vec<StoredConsumer>, StoreError>;
    /// Consumers: applies `writes` in order, in one transaction (all or nothing).
    fn write_consumers(&mut self, writes: &[ConsumerWrite]) -> Result<(), StoreError>;

    /// After a request panicked: abandon any open transaction and rebuild every cache from what
    /// is stored, so the next request sees durable state only.
    fn recover(&mut self);
}

/// Stored size of a message as nats-server's file store counts it (`fileStoreMsgSize`).
pub fn file_store_msg_size(subject_len: usize, header_len: u64, payload_len: u64) -> u64 {
    let base = 22 + subject_len as u64 + payload_len + 8;
    if header_len == 0 {
        base
    } else {
        base + 4 + header_len
    }
}
