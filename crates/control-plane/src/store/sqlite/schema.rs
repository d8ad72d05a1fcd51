//! Owns: the schema (tables and indexes), its version, and the migration of databases from
//! earlier releases (which kept a `messages` row per message). Does not own: what the tables
//! hold (the other modules).

use super::blocks::{Block, WorkingSet};
use super::commits::msg_id_digest;
use super::*;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    last_msg_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_state (
    stream_id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    last_msg_id TEXT NOT NULL,
    msgs INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    first_ts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blocks (
    stream_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    object_id INTEGER NOT NULL,
    block_offset INTEGER NOT NULL,
    block_len INTEGER NOT NULL,
    live INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    subjects TEXT NOT NULL,
    entries BLOB NOT NULL,
    rejected BLOB NOT NULL,
    deleted BLOB NOT NULL,
    PRIMARY KEY (stream_id, first_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subjects (
    stream_id INTEGER NOT NULL,
    subject TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    first_stale INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (stream_id, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS expiries (
    stream_id INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (stream_id, expires, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    object_id INTEGER PRIMARY KEY,
    object_key TEXT NOT NULL,
    object_size INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    committed_at INTEGER NOT NULL,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedupe (
    stream_id INTEGER NOT NULL,
    digest BLOB NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (stream_id, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_by_time ON dedupe (stream_id, ts);
CREATE TABLE IF NOT EXISTS orphans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    availability_zone TEXT NOT NULL,
    advertise_address TEXT NOT NULL,
    client_port INTEGER NOT NULL,
    peer_port INTEGER NOT NULL,
    http_port INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS consumers (
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    created INTEGER NOT NULL,
    next_sseq INTEGER NOT NULL,
    lps TEXT NOT NULL,
    dseq INTEGER NOT NULL,
    sseq INTEGER NOT NULL,
    last_delivery INTEGER,
    floor_cseq INTEGER NOT NULL,
    floor_sseq INTEGER NOT NULL,
    last_ack INTEGER,
    PRIMARY KEY (stream, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumer_runs (
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    first_cseq INTEGER NOT NULL,
    entries BLOB NOT NULL,
    PRIMARY KEY (stream, name, first_cseq)
) WITHOUT ROWID;
";

pub(super) const VERSION_KEY: &str = "streams_version";

pub(super) const OBJECT_ID_KEY: &str = "object_id_hwm";

/// The `meta` key of the schema version, and the version this build writes.
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(super) const SCHEMA_VERSION: i64 = 3;

fn table_exists(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists(params![table])?)
}

fn column_exists(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists(params![table, column])?)
}

/// Brings a database to this build's schema: refuses one from a newer build, converts, in one
/// transaction, one with a `messages` table (version 1) and one with a `consumer_pending` row
/// per delivery (versions 1 and 2), creates a new one.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    if table_exists(conn, "meta")? {
        let found = meta_get(conn, SCHEMA_VERSION_KEY)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    let messages = table_exists(conn, "messages")?;
    let pending = table_exists(conn, "consumer_pending")?;
    if !messages && !pending {
        conn.execute_batch(SCHEMA)?;
        return meta_set(conn, SCHEMA_VERSION_KEY, SCHEMA_VERSION);
    }
    if messages {
        let rows: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
        tracing::info!(
            messages = rows,
            "migrating the control plane store from a row per message to a row per block"
        );
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        if messages {
            migrate_messages(conn)?;
        }
        conn.execute_batch(SCHEMA)?;
        if pending {
            migrate_pending(conn)?;
        }
        meta_set(conn, SCHEMA_VERSION_KEY, SCHEMA_VERSION)
    })();
    match migrated {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            tracing::info!("control plane store migrated");
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::Migration(e.to_string()))
        }
    }
}

/// Version 1 to 2: blocks rebuilt from the message rows (the rows say which entries of each
/// object block were rejected or deleted), subjects and counters by aggregate, ids as digests.
fn migrate_messages(conn: &Connection) -> Result<(), StoreError> {
    if column_exists(conn, "dedupe", "msg_id")? {
        conn.execute_batch("ALTER TABLE dedupe RENAME TO dedupe_v1")?;
    }
    if table_exists(conn, "stream_state")? {
        for column in ["msgs", "bytes", "first_ts"] {
            if !column_exists(conn, "stream_state", column)? {
                conn.execute_batch(&format!(
                    "ALTER TABLE stream_state ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                ))?;
            }
        }
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(
        "INSERT INTO stream_state (stream_id, first_seq, last_seq, last_ts, last_msg_id)
             SELECT id, first_seq, last_seq, last_ts, last_msg_id FROM streams
             WHERE id NOT IN (SELECT stream_id FROM stream_state);
         INSERT INTO subjects (stream_id, subject, count, first_seq, first_stale, last_seq)
             SELECT stream_id, subject, count(*), min(seq), 0, max(seq) FROM messages
             GROUP BY stream_id, subject;
         UPDATE stream_state SET
             msgs = (SELECT count(*) FROM messages m WHERE m.stream_id = stream_state.stream_id),
             bytes = (SELECT coalesce(sum(stored), 0) FROM messages m
                      WHERE m.stream_id = stream_state.stream_id),
             first_ts = coalesce((SELECT ts FROM messages m WHERE m.stream_id = stream_state.stream_id
                                  ORDER BY seq LIMIT 1), 0);
         INSERT INTO expiries (stream_id, expires, seq)
             SELECT stream_id, expires, seq FROM messages WHERE expires > 0;",
    )?;
    let streams: Vec<i64> = conn
        .prepare("SELECT id FROM streams")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for stream_id in streams {
        migrate_blocks(conn, stream_id)?;
    }
    if table_exists(conn, "dedupe_v1")? {
        let ids: Vec<(i64, String, i64, i64)> = conn
            .prepare("SELECT stream_id, msg_id, seq, ts FROM dedupe_v1")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut insert = conn.prepare(
            "INSERT OR REPLACE INTO dedupe (stream_id, digest, seq, ts) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (stream_id, id, seq, ts) in ids {
            insert.execute(params![stream_id, msg_id_digest(&id), seq, ts])?;
        }
        conn.execute_batch("DROP TABLE dedupe_v1")?;
    }
    conn.execute_batch("DROP TABLE messages")
        .map_err(StoreError::from)
}

/// Versions 1 and 2 to 3: each consumer's pending rows become one run (from its lowest consumer
/// sequence; later claims start runs above it).
fn migrate_pending(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(String, String, i64, i64, i64, i64)> = conn
        .prepare(
            "SELECT stream, name, sseq, cseq, deliveries, deadline FROM consumer_pending \
             ORDER BY stream, name, cseq",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut runs: BTreeMap<(String, String), Vec<PendingDelivery>> = BTreeMap::new();
    for (stream, name, sseq, cseq, deliveries, deadline) in rows {
        runs.entry((stream, name))
            .or_default()
            .push(PendingDelivery {
                sseq: to_u64(sseq),
                cseq: to_u64(cseq),
                deliveries: to_u64(deliveries),
                deadline,
            });
    }
    for ((stream, name), entries) in runs {
        let first_cseq = entries.first().map_or(0, |e| e.cseq);
        consumers::write_consumer(
            conn,
            &ConsumerWrite::PutRun {
                stream,
                name,
                run: PendingRun {
                    first_cseq,
                    entries,
                },
            },
        )?;
    }
    conn.execute_batch("DROP TABLE consumer_pending")
        .map_err(StoreError::from)
}

/// (object_id, object_key, block_offset, block_len, idx, seq, subject, size, header_size, ts).
type LegacyRow = (i64, String, i64, i64, i64, i64, String, i64, i64, i64);

/// One stream's message rows, block by block (a block's rows are consecutive by sequence).
fn migrate_blocks(conn: &Connection, stream_id: i64) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(
        "SELECT m.object_id, coalesce(o.object_key, ''), m.block_offset, m.block_len, m.idx, m.seq, \
         m.subject, m.size, m.header_size, m.ts FROM messages m \
         LEFT JOIN objects o ON o.object_id = m.object_id WHERE m.stream_id = ?1 ORDER BY m.seq",
    )?;
    let mut rows = stmt.query(params![stream_id])?;
    let mut ws = WorkingSet::default();
    let mut group: Vec<LegacyRow> = Vec::new();
    let mut flush_group = |group: &mut Vec<LegacyRow>| -> Result<(), StoreError> {
        let Some(head) = group.first() else {
            return Ok(());
        };
        let (object_id, key, offset, len) = (head.0, head.1.clone(), head.2, head.3);
        let mut entries: Vec<(u32, u64, String, u32, u32, i64)> = group
            .drain(..)
            .map(|r| {
                (
                    u32::try_from(r.4).unwrap_or(u32::MAX),
                    to_u64(r.5),
                    r.6,
                    u32::try_from(r.7).unwrap_or(0),
                    u32::try_from(r.8).unwrap_or(0),
                    r.9,
                )
            })
            .collect();
        entries.sort_by_key(|e| e.0);
        if let Some(block) = Block::from_legacy(
            to_u64(object_id),
            &key,
            to_u64(offset),
            to_u64(len),
            &entries,
        ) {
            ws.insert(stream_id, block);
            ws.flush(conn)?;
            ws.clear();
        }
        Ok(())
    };
    while let Some(r) = rows.next()? {
        let row: LegacyRow = (
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
        );
        let same = group.first().is_some_and(|g| g.0 == row.0 && g.2 == row.2);
        if !same {
            flush_group(&mut group)?;
        }
        group.push(row);
    }
    flush_group(&mut group)
}
