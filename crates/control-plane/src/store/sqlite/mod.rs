//! `MetadataStore` on SQLite: a file under the data dir (WAL, `synchronous=FULL`) or `:memory:`.
//!
//! Owns: opening and reloading the store, the per-stream counters and per-subject state cached
//! in memory (rebuilt from the tables on open and after any failed transaction), transactions,
//! and the `MetadataStore` impl, which hands each request to the module of its table family:
//! `streams`, `commits` (sequencing), `blocks` (where messages are: a row per stream block of an
//! object, never one per message), `subjects` (per-subject state), `limits`, `lookups` and
//! `reads`, `agents`, `objects` (object ids, orphans), `consumers`, `schema`, `rows`. Does not
//! own: request validation that needs no state (`jetstream::config`), threading (`worker`),
//! consumer semantics (`crate::consumers`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::commit::{DiscardNewCheck, Rollup, Ttl, discard_new_refusal, parse_rollup};
use super::{
    AccountUsage, ConsumerPosition, ConsumerWrite, MetadataStore, PendingDelivery, PendingRun,
    StateDetail, StoreError, StoredConsumer, StreamView, file_store_msg_size,
};
use infinistream_api::control_plane::model::{
    AgentInfo, AgentPorts, CommitBlockResult, CommitRequest, CommitResponse, LocateRequest,
    MessageLocation, Orphan, OrphanRequest, RegisterRequest, StreamsSnapshot,
};
use infinistream_api::jetstream::{
    ApiError, DiscardPolicy, PubAckResponse, StorageType, StreamConfig, StreamPurgeRequest,
    StreamState,
};
use infinistream_api::subject;

mod agents;
mod blocks;
mod commits;
mod consumers;
mod limits;
mod lookups;
mod objects;
mod reads;
mod rows;
mod runs;
mod schema;
mod streams;
mod subjects;
use blocks::WorkingSet;
use commits::dedupe_oldest;
use limits::{expire, persist_rt};
use rows::{meta_get, meta_set, to_i64, to_u64};
use schema::{SCHEMA, VERSION_KEY, migrate};
use subjects::SubjectState;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// id, name, config, created, first_seq, last_seq, last_ts, last_msg_id, msgs, bytes, first_ts.
type StreamRow = (
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
);

/// Per-stream counters kept in memory so a commit needs no aggregate query.
#[derive(Debug, Clone)]
struct StreamRt {
    id: i64,
    config: StreamConfig,
    created: i64,
    msgs: u64,
    bytes: u64,
    first_seq: u64,
    first_ts: i64,
    last_seq: u64,
    last_ts: i64,
    last_msg_id: String,
    /// Every subject with stored messages (nats-server's `psim`). foldhash, not SipHash: with
    /// one subject per message (a KV bucket's keys) hashing was a tenth of a commit's CPU.
    subjects: FastMap<String, SubjectState>,
    /// Subjects changed since the stream's state was last written.
    dirty_subjects: FastSet<String>,
    /// The oldest `dedupe` row's timestamp (or older), None when it has none: expiring ids is
    /// then skipped, rather than run as a DELETE for every touched stream on every commit.
    dedupe_oldest: Option<i64>,
}

impl StreamRt {
    fn new(id: i64, config: StreamConfig, created: i64) -> Self {
        Self {
            id,
            config,
            created,
            msgs: 0,
            bytes: 0,
            first_seq: 0,
            first_ts: 0,
            last_seq: 0,
            last_ts: 0,
            last_msg_id: String::new(),
            subjects: FastMap::default(),
            dirty_subjects: FastSet::default(),
            dedupe_oldest: None,
        }
    }

    fn state(&self) -> StreamState {
        let num_deleted = if self.msgs > 0 {
            (self.last_seq - self.first_seq + 1).saturating_sub(self.msgs) as usize
        } else {
            0
        };
        StreamState {
            messages: self.msgs,
            bytes: self.bytes,
            first_seq: self.first_seq,
            first_ts: if self.msgs > 0 { self.first_ts } else { 0 },
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_subjects: self.subjects.len(),
            subjects: BTreeMap::new(),
            num_deleted,
            deleted: Vec::new(),
            consumer_count: 0,
        }
    }

    fn view(&self) -> StreamView {
        StreamView {
            config: self.config.clone(),
            created: self.created,
            state: self.state(),
        }
    }

    fn needs_expiry(&self) -> bool {
        self.config.max_age > 0 || self.config.allow_msg_ttl
    }
}

/// The metadata store on one SQLite connection.
pub struct SqliteStore {
    conn: Connection,
    streams: HashMap<String, StreamRt>,
    version: u64,
    /// Decoded blocks: the current operation's, and between operations only clean ones (equal
    /// to their rows, bounded; see `WorkingSet::settle`) kept for the next reads.
    work: WorkingSet,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("streams", &self.streams.len())
            .field("version", &self.version)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/control-plane.sqlite3`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(dir.join("control-plane.sqlite3"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        Self::init(conn)
    }

    /// A store that lives and dies with this value.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        migrate(&conn)?;
        conn.execute_batch(SCHEMA)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Self {
            conn,
            streams: HashMap::new(),
            version: 0,
            work: WorkingSet::default(),
        };
        store.reload()?;
        Ok(store)
    }

    /// Rebuilds every in-memory counter from the tables.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.work.clear();
        self.version = to_u64(meta_get(&self.conn, VERSION_KEY)?);
        let mut streams = HashMap::new();
        let rows: Vec<StreamRow> = {
            let mut stmt = self.conn.prepare(
                "SELECT s.id, s.name, s.config, s.created, coalesce(t.first_seq, s.first_seq), \
                 coalesce(t.last_seq, s.last_seq), coalesce(t.last_ts, s.last_ts), \
                 coalesce(t.last_msg_id, s.last_msg_id), coalesce(t.msgs, 0), \
                 coalesce(t.bytes, 0), coalesce(t.first_ts, 0) \
                 FROM streams s LEFT JOIN stream_state t ON t.stream_id = s.id",
            )?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })?
            .collect::<Result<_, _>>()?
        };
        for row in rows {
            let (id, name, config, created, first_seq, last_seq, last_ts, last_msg_id) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let config: StreamConfig = serde_json::from_str(&config)?;
            let mut rt = StreamRt::new(id, config, created);
            rt.first_seq = to_u64(first_seq);
            rt.last_seq = to_u64(last_seq);
            rt.last_ts = last_ts;
            rt.last_msg_id = last_msg_id;
            rt.msgs = to_u64(row.8);
            rt.bytes = to_u64(row.9);
            rt.first_ts = row.10;
            rt.dedupe_oldest = dedupe_oldest(&self.conn, id)?;
            rt.subjects = subjects::load(&self.conn, id)?;
            let counted: u64 = rt.subjects.values().map(|s| s.count).sum();
            if counted != rt.msgs {
                tracing::warn!(stream = %name, counted, msgs = rt.msgs, "stream counters disagree with its subjects, rebuilding them from its blocks");
                subjects::rebuild(&self.conn, &mut self.work, &mut rt)?;
                persist_rt(&self.conn, &mut rt)?;
            }
            streams.insert(name, rt);
        }
        self.work.clear();
        self.streams = streams;
        Ok(())
    }

    /// Runs `f` in one write transaction; on a storage failure rolls back and rebuilds the caches.
    fn in_tx<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        // Between operations the working set holds only clean blocks, equal to their rows.
        let result = f(self).and_then(|v| {
            self.work.flush(&self.conn)?;
            Ok(v)
        });
        if result.is_ok() {
            self.work.settle();
        } else {
            self.work.clear();
        }
        match result {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.reload_after_failure();
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // API refusals are raised before anything changes, so the caches are still right.
                if !matches!(e, StoreError::Api(_)) {
                    self.reload_after_failure();
                }
                Err(e)
            }
        }
    }

    fn reload_after_failure(&mut self) {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "control plane store cannot rebuild its caches");
        }
    }

    fn bump_version(&mut self) -> Result<(), StoreError> {
        self.version += 1;
        meta_set(&self.conn, VERSION_KEY, to_i64(self.version))
    }

    fn rt(&self, name: &str) -> Result<&StreamRt, StoreError> {
        self.streams
            .get(name)
            .ok_or_else(|| ApiError::stream_not_found().into())
    }

    /// Applies max_age and per-message TTL expiry to every stream that has them.
    fn expire_all(&mut self, now: i64) -> Result<(), StoreError> {
        let names: Vec<String> = self
            .streams
            .values()
            .filter(|rt| rt.needs_expiry() && rt.msgs > 0)
            .map(|rt| rt.config.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        self.in_tx(|s| {
            for name in &names {
                if let Some(rt) = s.streams.get_mut(name)
                    && expire(&s.conn, &mut s.work, rt, now)?
                {
                    persist_rt(&s.conn, rt)?;
                }
            }
            Ok(())
        })
    }
}

impl MetadataStore for SqliteStore {
    fn create_stream(&mut self, config: StreamConfig, now: i64) -> Result<StreamView, StoreError> {
        streams::create_stream(self, config, now)
    }

    fn update_stream(&mut self, config: StreamConfig) -> Result<StreamView, StoreError> {
        streams::update_stream(self, config)
    }

    fn stream_config(&mut self, name: &str) -> Result<StreamConfig, StoreError> {
        streams::stream_config(self, name)
    }

    fn delete_stream(&mut self, name: &str) -> Result<(), StoreError> {
        streams::delete_stream(self, name)
    }

    fn stream(&mut self, name: &str, detail: &StateDetail) -> Result<StreamView, StoreError> {
        streams::stream(self, name, detail)
    }

    fn streams(&mut self) -> Result<Vec<StreamView>, StoreError> {
        streams::streams(self)
    }

    fn purge(&mut self, name: &str, request: &StreamPurgeRequest) -> Result<u64, StoreError> {
        streams::purge(self, name, request)
    }

    fn delete_message(&mut self, name: &str, seq: u64) -> Result<(), StoreError> {
        streams::delete_message(self, name, seq)
    }

    fn streams_since(&mut self, version: u64) -> Result<StreamsSnapshot, StoreError> {
        streams::streams_since(self, version)
    }

    fn account_usage(&mut self) -> Result<AccountUsage, StoreError> {
        streams::account_usage(self)
    }

    fn commit(&mut self, request: &CommitRequest) -> Result<CommitResponse, StoreError> {
        commits::commit(self, request)
    }

    fn commit_many(
        &mut self,
        requests: &[CommitRequest],
    ) -> Result<Vec<CommitResponse>, StoreError> {
        commits::commit_many(self, requests)
    }

    fn locate(
        &mut self,
        stream: &str,
        request: &LocateRequest,
    ) -> Result<MessageLocation, StoreError> {
        reads::locate(self, stream, request)
    }

    fn allocate_object_ids(&mut self, count: u32, now_ms: i64) -> Result<Vec<u64>, StoreError> {
        objects::allocate_object_ids(self, count, now_ms)
    }

    fn record_orphan(&mut self, request: &OrphanRequest, now_ms: i64) -> Result<(), StoreError> {
        objects::record_orphan(self, request, now_ms)
    }

    fn orphans(&mut self) -> Result<Vec<Orphan>, StoreError> {
        objects::orphans(self)
    }

    fn register_agent(
        &mut self,
        request: &RegisterRequest,
        now_ms: i64,
    ) -> Result<AgentInfo, StoreError> {
        agents::register_agent(self, request, now_ms)
    }

    fn heartbeat(
        &mut self,
        agent_id: &str,
        now_ms: i64,
        expiry_ms: i64,
    ) -> Result<Option<AgentInfo>, StoreError> {
        agents::heartbeat(self, agent_id, now_ms, expiry_ms)
    }

    fn remove_agent(&mut self, agent_id: &str) -> Result<bool, StoreError> {
        agents::remove_agent(self, agent_id)
    }

    fn agents(&mut self, now_ms: i64, expiry_ms: i64) -> Result<Vec<AgentInfo>, StoreError> {
        agents::agents(self, now_ms, expiry_ms)
    }

    fn scan(
        &mut self,
        stream: &str,
        from: u64,
        filters: &[String],
        limit: usize,
    ) -> Result<Vec<MessageLocation>, StoreError> {
        reads::scan(self, stream, from, filters, limit)
    }

    fn count_from(
        &mut self,
        stream: &str,
        from: u64,
        filters: &[String],
    ) -> Result<u64, StoreError> {
        reads::count_from(self, stream, from, filters)
    }

    fn seq_at_time(&mut self, stream: &str, ts: i64) -> Result<Option<u64>, StoreError> {
        reads::seq_at_time(self, stream, ts)
    }

    fn last_per_subject(
        &mut self,
        stream: &str,
        filters: &[String],
    ) -> Result<Vec<u64>, StoreError> {
        reads::last_per_subject(self, stream, filters)
    }

    fn consumers(&mut self) -> Result<Vec<StoredConsumer>, StoreError> {
        consumers::consumers(self)
    }

    fn recover(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.reload_after_failure();
    }

    fn write_consumers(&mut self, writes: &[ConsumerWrite]) -> Result<(), StoreError> {
        consumers::write_consumers(self, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::rows::{is_literal, pattern_matches};
    use super::*;
    use infinistream_api::jetstream::consumer::ConsumerConfig;

    fn run(
        stream: &str,
        name: &str,
        first_cseq: u64,
        entries: Vec<PendingDelivery>,
    ) -> ConsumerWrite {
        ConsumerWrite::PutRun {
            stream: stream.into(),
            name: name.into(),
            run: PendingRun {
                first_cseq,
                entries,
            },
        }
    }

    fn pending(sseq: u64, deliveries: u64) -> PendingDelivery {
        PendingDelivery {
            sseq,
            cseq: sseq + 100,
            deliveries,
            deadline: i64::try_from(sseq).unwrap_or(0) * 7,
        }
    }

    /// Stream `S` on `s.>`, as the API would create it.
    fn stream_s() -> StreamConfig {
        infinistream_api::jetstream::config::StreamConfigRequest::parse(
            br#"{"name":"S","subjects":["s.>"]}"#,
        )
        .expect("request")
        .config
        .checked(false)
        .expect("config")
    }

    fn commit_subjects(s: &mut SqliteStore, object_id: u64, subjects: &[&str]) {
        let request = CommitRequest {
            agent_id: "a".into(),
            object_id,
            object_key: format!("k{object_id}"),
            object_size: 1,
            blocks: vec![infinistream_api::control_plane::model::CommitBlock {
                stream: "S".into(),
                block_offset: 0,
                block_len: 1,
                summary: None,
                messages: subjects
                    .iter()
                    .map(
                        |subject| infinistream_api::control_plane::model::CommitMessage {
                            subject: subject.to_string(),
                            size: 1,
                            timestamp_nanos: 1,
                            ..Default::default()
                        },
                    )
                    .collect(),
            }],
        };
        s.commit(&request).expect("commit");
    }

    /// The schema of the release that kept a row per message (store schema 1).
    const SCHEMA_V1: &str = "
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE streams (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
            config TEXT NOT NULL, created INTEGER NOT NULL, first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_msg_id TEXT NOT NULL);
        CREATE TABLE stream_state (stream_id INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_msg_id TEXT NOT NULL);
        CREATE TABLE messages (stream_id INTEGER NOT NULL, seq INTEGER NOT NULL,
            subject TEXT NOT NULL, subject_hash INTEGER NOT NULL, ts INTEGER NOT NULL,
            object_id INTEGER NOT NULL, block_offset INTEGER NOT NULL, block_len INTEGER NOT NULL,
            idx INTEGER NOT NULL, size INTEGER NOT NULL, header_size INTEGER NOT NULL,
            stored INTEGER NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (stream_id, seq))
            WITHOUT ROWID;
        CREATE INDEX messages_by_subject_hash ON messages (stream_id, subject_hash, seq);
        CREATE TABLE objects (object_id INTEGER PRIMARY KEY, object_key TEXT NOT NULL,
            object_size INTEGER NOT NULL, agent_id TEXT NOT NULL, committed_at INTEGER NOT NULL,
            response TEXT NOT NULL);
        CREATE TABLE dedupe (stream_id INTEGER NOT NULL, msg_id TEXT NOT NULL,
            seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (stream_id, msg_id))
            WITHOUT ROWID;
    ";

    /// Blocks decoded by one operation are kept for the next ones: every later read still sees
    /// each change (a delete, a purge, a new block, a stream deleted and created again), and a
    /// refused write leaves nothing behind.
    #[test]
    fn kept_blocks_follow_every_change() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = SqliteStore::open(dir.path()).expect("store");
        s.create_stream(stream_s(), 1).expect("stream");
        commit_subjects(&mut s, 1, &["s.a", "s.b", "s.a", "s.c"]);
        let seq =
            |s: &mut SqliteStore, n: u64| s.locate("S", &LocateRequest::seq(n)).map(|l| l.seq);
        assert_eq!(seq(&mut s, 2).expect("2"), 2);
        assert_eq!(s.scan("S", 1, &[], 10).expect("scan").len(), 4);
        s.delete_message("S", 2).expect("delete");
        assert!(
            seq(&mut s, 2).is_err(),
            "deleted, though its block was kept"
        );
        assert_eq!(
            s.scan("S", 1, &[], 10)
                .expect("scan")
                .iter()
                .map(|l| l.seq)
                .collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        // A refused delete (no such message) changes nothing and keeps reads right.
        assert!(s.delete_message("S", 2).is_err());
        assert_eq!(seq(&mut s, 3).expect("3"), 3);
        commit_subjects(&mut s, 2, &["s.d"]);
        assert_eq!(seq(&mut s, 5).expect("5"), 5);
        s.purge("S", &StreamPurgeRequest::default()).expect("purge");
        assert!(seq(&mut s, 3).is_err(), "purged");
        assert!(s.scan("S", 1, &[], 10).expect("scan").is_empty());
        commit_subjects(&mut s, 3, &["s.e"]);
        assert_eq!(seq(&mut s, 6).expect("6"), 6);
        s.delete_stream("S").expect("delete stream");
        s.create_stream(stream_s(), 2).expect("again");
        assert!(seq(&mut s, 6).is_err(), "a new stream of the same name");
        commit_subjects(&mut s, 4, &["s.f"]);
        let loc = s.locate("S", &LocateRequest::seq(1)).expect("1");
        assert_eq!((loc.subject.as_str(), loc.object_id), ("s.f", 4));
    }

    /// A store of schema 2 (a `consumer_pending` row per delivery) opens with each consumer's
    /// deliveries as one run, and its old table gone.
    #[test]
    fn pending_rows_of_schema_2_become_runs() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let mut s = SqliteStore::open(dir.path()).expect("store");
            s.create_stream(stream_s(), 1).expect("stream");
            s.write_consumers(&[ConsumerWrite::Create {
                stream: "S".into(),
                name: "D".into(),
                config: ConsumerConfig::default(),
                created: 1,
                position: ConsumerPosition::default(),
            }])
            .expect("consumer");
            s.conn
                .execute_batch(
                    "DROP TABLE consumer_runs;
                     CREATE TABLE consumer_pending (stream TEXT NOT NULL, name TEXT NOT NULL,
                         sseq INTEGER NOT NULL, cseq INTEGER NOT NULL,
                         deliveries INTEGER NOT NULL, deadline INTEGER NOT NULL,
                         PRIMARY KEY (stream, name, sseq)) WITHOUT ROWID;
                     INSERT INTO consumer_pending VALUES ('S', 'D', 9, 3, 2, 70);
                     INSERT INTO consumer_pending VALUES ('S', 'D', 4, 1, 1, 50);
                     INSERT INTO consumer_pending VALUES ('S', 'D', 5, 2, 1, 50);
                     UPDATE meta SET value = 2 WHERE key = 'schema_version';",
                )
                .expect("schema 2");
        }
        let mut s = SqliteStore::open(dir.path()).expect("migrated");
        let c = s.consumers().expect("consumers").remove(0);
        let d = |sseq, cseq, deliveries, deadline| PendingDelivery {
            sseq,
            cseq,
            deliveries,
            deadline,
        };
        assert_eq!(
            c.pending,
            vec![PendingRun {
                first_cseq: 1,
                entries: vec![d(4, 1, 1, 50), d(5, 2, 1, 50), d(9, 3, 2, 70)],
            }]
        );
        let old: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'consumer_pending'",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(old, 0);
        assert_eq!(
            rows::meta_get(&s.conn, schema::SCHEMA_VERSION_KEY).expect("version"),
            schema::SCHEMA_VERSION
        );
    }

    #[test]
    fn databases_of_the_row_per_message_release_are_migrated() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let conn = Connection::open(dir.path().join("control-plane.sqlite3")).expect("open");
            conn.execute_batch(SCHEMA_V1).expect("old schema");
            let config = serde_json::to_string(&stream_s()).expect("config");
            conn.execute(
                "INSERT INTO streams VALUES (1, 'S', ?1, 1, 0, 0, 0, '')",
                params![config],
            )
            .expect("stream");
            conn.execute_batch(
                "INSERT INTO stream_state VALUES (1, 1, 6, 60, 'id-6');
                 INSERT INTO objects VALUES (7, 'k7', 100, 'a', 1, '{}');
                 INSERT INTO objects VALUES (8, 'k8', 100, 'a', 1, '{}');
                 -- object 7: index 0 seq 1, index 1 rejected, index 2 seq 2 (deleted), index 3 seq 3
                 INSERT INTO messages VALUES (1, 1, 's.a', 0, 10, 7, 8, 50, 0, 5, 0, 40, 0);
                 INSERT INTO messages VALUES (1, 3, 's.b', 0, 30, 7, 8, 50, 3, 6, 0, 41, 0);
                 -- object 8: seqs 4..=6, 5 deleted
                 INSERT INTO messages VALUES (1, 4, 's.a', 0, 40, 8, 8, 60, 0, 7, 0, 42, 0);
                 INSERT INTO messages VALUES (1, 6, 's.a', 0, 60, 8, 8, 60, 2, 8, 0, 43, 0);
                 INSERT INTO dedupe VALUES (1, 'id-6', 6, 9223372036854775000);
                 INSERT INTO meta VALUES ('streams_version', 3);",
            )
            .expect("rows");
        }
        let mut s = SqliteStore::open(dir.path()).expect("migrated store");
        let view = s
            .stream(
                "S",
                &StateDetail {
                    subjects_filter: Some(">".into()),
                    deleted: true,
                },
            )
            .expect("stream");
        let st = &view.state;
        assert_eq!((st.messages, st.bytes), (4, 40 + 41 + 42 + 43));
        assert_eq!((st.first_seq, st.last_seq, st.first_ts), (1, 6, 10));
        assert_eq!(st.deleted, vec![2, 5]);
        assert_eq!(st.subjects.get("s.a"), Some(&3));
        let loc = s.locate("S", &LocateRequest::seq(3)).expect("seq 3");
        assert_eq!(
            (
                loc.object_key.as_str(),
                loc.index,
                loc.size,
                loc.subject.as_str()
            ),
            ("k7", 3, 6, "s.b")
        );
        let loc = s.locate("S", &LocateRequest::seq(6)).expect("seq 6");
        assert_eq!((loc.index, loc.timestamp_nanos), (2, 60));
        assert!(s.locate("S", &LocateRequest::seq(5)).is_err());
        let last = s
            .locate("S", &LocateRequest::last_by_subject("s.a"))
            .expect("last");
        assert_eq!(last.seq, 6);
        let filter = vec!["s.a".to_string()];
        assert_eq!(s.count_from("S", 2, &filter).expect("count"), 2);
        // The msg id survives as a digest: publishing it again is a duplicate.
        let dup = CommitRequest {
            agent_id: "a".into(),
            object_id: 9,
            object_key: "k9".into(),
            object_size: 1,
            blocks: vec![infinistream_api::control_plane::model::CommitBlock {
                stream: "S".into(),
                block_offset: 0,
                block_len: 1,
                messages: vec![infinistream_api::control_plane::model::CommitMessage {
                    subject: "s.c".into(),
                    size: 1,
                    timestamp_nanos: 70,
                    headers: infinistream_api::control_plane::model::HeaderChecks {
                        msg_id: Some("id-6".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                summary: None,
            }],
        };
        let r = s.commit(&dup).expect("commit");
        assert_eq!(r.blocks[0].acks, vec![PubAckResponse::duplicate("S", 6)]);
        commit_subjects(&mut s, 10, &["s.b"]);
        assert_eq!(
            s.locate("S", &LocateRequest::last_by_subject("s.b"))
                .expect("b")
                .seq,
            7
        );
        let old: i64 = s
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('messages', 'dedupe_v1')",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(old, 0);
        drop(s);
        // Reopening a migrated store changes nothing.
        let mut s = SqliteStore::open(dir.path()).expect("reopen");
        let st = s
            .stream("S", &StateDetail::default())
            .expect("stream")
            .state;
        assert_eq!((st.messages, st.last_seq), (5, 7));
    }

    fn summary_block(
        subjects: &[&str],
        sizes: &[(u32, u32)],
    ) -> infinistream_api::control_plane::model::CommitBlock {
        use infinistream_api::control_plane::entries::{BlockEntry, Entries};
        let entries = sizes
            .iter()
            .enumerate()
            .map(|(i, (subject, size))| BlockEntry {
                subject: *subject,
                size: *size,
                header_size: 0,
                timestamp_nanos: 1_000 + i as i64,
            })
            .collect();
        infinistream_api::control_plane::model::CommitBlock {
            stream: "S".into(),
            block_offset: 0,
            block_len: 1,
            messages: Vec::new(),
            summary: Some(infinistream_api::control_plane::model::BlockSummary::new(
                subjects,
                Entries(entries),
                Vec::new(),
            )),
        }
    }

    fn commit_block(
        s: &mut SqliteStore,
        object_id: u64,
        block: infinistream_api::control_plane::model::CommitBlock,
    ) -> CommitResponse {
        s.commit(&CommitRequest {
            agent_id: "a".into(),
            object_id,
            object_key: format!("k{object_id}"),
            object_size: 1,
            blocks: vec![block],
        })
        .expect("commit")
    }

    /// Limits that cut into blocks keep exact counters, one row per block and none per message,
    /// and the counters survive a reopen.
    #[test]
    fn limits_inside_blocks_keep_exact_counters() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = SqliteStore::open(dir.path()).expect("store");
        let mut cfg = stream_s();
        cfg.max_msgs = 15;
        cfg.max_msgs_per_subject = 3;
        s.create_stream(cfg, 1).expect("stream");
        // Three blocks of 10: sizes 1..=30, subjects s.a (even) and s.b (odd) alternating.
        for b in 0..3u32 {
            let sizes: Vec<(u32, u32)> = (0..10).map(|i| (i % 2, b * 10 + i + 1)).collect();
            commit_block(
                &mut s,
                u64::from(b) + 1,
                summary_block(&["s.a", "s.b"], &sizes),
            );
        }
        let check = |s: &mut SqliteStore| {
            let st = s
                .stream(
                    "S",
                    &StateDetail {
                        subjects_filter: Some(">".into()),
                        deleted: false,
                    },
                )
                .expect("stream")
                .state;
            // max_msgs_per_subject 3 leaves seqs 25..=30; their stored sizes are exact.
            let want: u64 = (25..=30u64).map(|seq| file_store_msg_size(3, 0, seq)).sum();
            assert_eq!(
                (st.messages, st.first_seq, st.last_seq, st.bytes),
                (6, 25, 30, want)
            );
            assert_eq!(st.subjects.get("s.a"), Some(&3));
            assert_eq!(
                s.locate("S", &LocateRequest::last_by_subject("s.b"))
                    .expect("b")
                    .seq,
                30
            );
            assert_eq!(
                s.locate("S", &LocateRequest::next_by_subject("s.a", 1))
                    .expect("a")
                    .seq,
                25
            );
        };
        check(&mut s);
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
            .expect("blocks");
        assert_eq!(rows, 1, "only the last block has messages left");
        drop(s);
        let mut s = SqliteStore::open(dir.path()).expect("reopen");
        check(&mut s);
        // A delete inside the block, then the subject's first is repaired lazily.
        s.delete_message("S", 25).expect("delete");
        assert_eq!(
            s.locate("S", &LocateRequest::next_by_subject("s.a", 1))
                .expect("a")
                .seq,
            27
        );
        let st = s
            .stream(
                "S",
                &StateDetail {
                    subjects_filter: None,
                    deleted: true,
                },
            )
            .expect("s")
            .state;
        assert_eq!((st.first_seq, st.deleted.clone()), (26, vec![]));
        s.delete_message("S", 28).expect("delete");
        let st = s
            .stream(
                "S",
                &StateDetail {
                    subjects_filter: None,
                    deleted: true,
                },
            )
            .expect("s")
            .state;
        assert_eq!(st.deleted, vec![28]);
    }

    #[test]
    fn an_inconsistent_summary_is_refused() {
        let mut s = SqliteStore::open_in_memory().expect("store");
        s.create_stream(stream_s(), 1).expect("stream");
        let mut block = summary_block(&["s.a"], &[(0, 5), (0, 6)]);
        if let Some(summary) = block.summary.as_mut() {
            summary.count = 3;
        }
        let err = s
            .commit(&CommitRequest {
                agent_id: "a".into(),
                object_id: 1,
                object_key: "k1".into(),
                object_size: 1,
                blocks: vec![block],
            })
            .expect_err("refused");
        assert!(matches!(err, StoreError::Api(_)), "{err:?}");
        assert_eq!(
            s.stream("S", &StateDetail::default())
                .expect("s")
                .state
                .messages,
            0
        );
    }

    #[test]
    fn a_store_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        drop(SqliteStore::open(dir.path()).expect("store"));
        {
            let conn = Connection::open(dir.path().join("control-plane.sqlite3")).expect("open");
            meta_set(&conn, schema::SCHEMA_VERSION_KEY, 99).expect("version");
        }
        let err = SqliteStore::open(dir.path()).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("newer infinistream") && text.contains("99"),
            "{text}"
        );
    }

    #[test]
    fn consumer_writes_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = SqliteStore::open(dir.path()).expect("store");
        let stream: StreamConfig =
            serde_json::from_str(r#"{"name":"S","subjects":["s.>"]}"#).expect("config");
        s.create_stream(stream, 1).expect("stream");
        let config = ConsumerConfig {
            durable: "D".into(),
            name: "D".into(),
            description: "first".into(),
            ..ConsumerConfig::default()
        };
        let position = ConsumerPosition {
            next_sseq: 4,
            lps: vec![1, 3],
            dseq: 3,
            sseq: 3,
            last_delivery: Some(9),
            ack_floor: (1, 1),
            last_ack: None,
        };
        let (st, nm) = (String::from("S"), String::from("D"));
        s.write_consumers(&[
            ConsumerWrite::Create {
                stream: st.clone(),
                name: nm.clone(),
                config: config.clone(),
                created: 5,
                position: position.clone(),
            },
            run(&st, &nm, 102, vec![pending(2, 1), pending(3, 1)]),
            run(&st, &nm, 105, vec![pending(5, 1)]),
            run(&st, &nm, 110, vec![pending(10, 1)]),
            // A run rewritten (3 acked, 2 redelivered) and one emptied.
            run(&st, &nm, 102, vec![pending(2, 4)]),
            run(&st, &nm, 110, Vec::new()),
            ConsumerWrite::UpdateConfig {
                stream: st.clone(),
                name: nm.clone(),
                config: ConsumerConfig {
                    description: "second".into(),
                    ..config.clone()
                },
            },
        ])
        .expect("write");
        drop(s);

        let mut s = SqliteStore::open(dir.path()).expect("reopen");
        let all = s.consumers().expect("consumers");
        assert_eq!(all.len(), 1);
        let c = &all[0];
        assert_eq!(
            (c.stream.as_str(), c.name.as_str(), c.created),
            ("S", "D", 5)
        );
        assert_eq!(c.config.description, "second");
        assert_eq!(c.position, position);
        assert_eq!(
            c.pending,
            vec![
                PendingRun {
                    first_cseq: 102,
                    entries: vec![pending(2, 4)]
                },
                PendingRun {
                    first_cseq: 105,
                    entries: vec![pending(5, 1)]
                }
            ]
        );

        // Re-creating drops the old pending deliveries; a position update keeps them.
        let moved = ConsumerPosition {
            lps: Vec::new(),
            last_ack: Some(11),
            ..position.clone()
        };
        s.write_consumers(&[ConsumerWrite::Position {
            stream: st.clone(),
            name: nm.clone(),
            position: moved.clone(),
        }])
        .expect("position");
        let c = s.consumers().expect("consumers").remove(0);
        assert_eq!((c.position, c.pending.len()), (moved, 2));
        s.write_consumers(&[ConsumerWrite::Create {
            stream: st.clone(),
            name: nm.clone(),
            config: config.clone(),
            created: 6,
            position: ConsumerPosition::default(),
        }])
        .expect("recreate");
        let c = s.consumers().expect("consumers").remove(0);
        assert!(c.pending.is_empty());
        assert_eq!(c.created, 6);

        // Deleting a consumer, and deleting a stream, remove the rows.
        s.write_consumers(&[
            ConsumerWrite::Delete {
                stream: st.clone(),
                name: nm.clone(),
            },
            ConsumerWrite::Create {
                stream: st.clone(),
                name: "E".into(),
                config,
                created: 7,
                position: ConsumerPosition::default(),
            },
            run(&st, "E", 101, vec![pending(1, 1)]),
        ])
        .expect("delete and create");
        let names: Vec<String> = s
            .consumers()
            .expect("consumers")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, vec!["E".to_string()]);
        s.delete_stream("S").expect("delete stream");
        assert!(s.consumers().expect("consumers").is_empty());
        let left: i64 = s
            .conn
            .query_row("SELECT count(*) FROM consumer_runs", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0);
    }

    /// Random subjects (wildcard tokens, empty tokens, long ones) are stored as literals and
    /// looked up as patterns without ever recursing per token: last/next by subject agree with
    /// a brute force over what was stored, and purge and counts by subject never fail.
    mod subjects_prop {
        use super::*;
        use proptest::prelude::*;

        fn token() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("*".to_string()),
                Just(">".to_string()),
                Just(String::new()),
                "[a-z*>]{1,3}",
            ]
        }

        fn subject() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => proptest::collection::vec(token(), 1..6).prop_map(|t| format!("s.{}", t.join("."))),
                1 => (1usize..3000).prop_map(|n| format!("s.{}", vec!["a"; n].join("."))),
            ]
        }

        fn store_with(subjects: &[String]) -> SqliteStore {
            let mut s = SqliteStore::open_in_memory().expect("store");
            s.create_stream(stream_s(), 1).expect("stream");
            let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
            commit_subjects(&mut s, 1, &refs);
            s
        }

        fn brute_last(stored: &[String], pattern: &str) -> Option<u64> {
            stored
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    pattern_matches(pattern, s) || is_literal(pattern) && *s == pattern
                })
                .map(|(i, _)| i as u64 + 1)
                .max()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn lookups_by_random_subjects(
                stored in proptest::collection::vec(subject(), 1..12),
                patterns in proptest::collection::vec(subject(), 1..6),
            ) {
                let mut s = store_with(&stored);
                for p in stored.iter().chain(&patterns) {
                    let last = s.locate("S", &LocateRequest::last_by_subject(p.clone()));
                    match (last, brute_last(&stored, p)) {
                        (Ok(loc), Some(seq)) => prop_assert_eq!(loc.seq, seq, "pattern {}", p),
                        (Err(StoreError::Api(_)), None) => {}
                        (other, want) => prop_assert!(false, "{p}: got {other:?}, want {want:?}"),
                    }
                    let next = s.locate("S", &LocateRequest {
                        seq: 1,
                        next_by_subj: Some(p.clone()),
                        ..LocateRequest::default()
                    });
                    prop_assert!(matches!(next, Ok(_) | Err(StoreError::Api(_))), "{:?}", next);
                    let filter = vec![p.clone()];
                    prop_assert!(s.count_from("S", 1, &filter).is_ok());
                    prop_assert!(s.last_per_subject("S", &filter).is_ok());
                }
                let purge = StreamPurgeRequest {
                    filter: patterns[0].clone(),
                    ..StreamPurgeRequest::default()
                };
                let purged = s.purge("S", &purge);
                prop_assert!(matches!(purged, Ok(_) | Err(StoreError::Api(_))), "{:?}", purged);
            }
        }
    }
}
