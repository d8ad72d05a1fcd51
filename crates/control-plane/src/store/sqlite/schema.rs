//! Owns: the schema (tables and indexes) and the migrations of databases from earlier releases.
//! Does not own: what the tables hold (the other modules).

use super::rows::subject_hash;
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
    last_msg_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    subject_hash INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    object_id INTEGER NOT NULL,
    block_offset INTEGER NOT NULL,
    block_len INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    size INTEGER NOT NULL,
    header_size INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (stream_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_subject_hash ON messages (stream_id, subject_hash, seq);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (stream_id, expires) WHERE expires > 0;
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
    msg_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (stream_id, msg_id)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS consumer_pending (
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    sseq INTEGER NOT NULL,
    cseq INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    PRIMARY KEY (stream, name, sseq)
) WITHOUT ROWID;
";

pub(super) const VERSION_KEY: &str = "streams_version";

pub(super) const OBJECT_ID_KEY: &str = "object_id_hwm";

/// Databases written before `subject_hash` existed: add and fill the column, replace the index on
/// the subject text. A no-op on new or already migrated databases.
pub(super) fn migrate_subject_hash(conn: &Connection) -> Result<(), StoreError> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('messages')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() || columns.iter().any(|c| c == "subject_hash") {
        return Ok(());
    }
    tracing::info!("migrating the message index to subject hashes");
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DROP INDEX IF EXISTS messages_by_subject;
         ALTER TABLE messages ADD COLUMN subject_hash INTEGER NOT NULL DEFAULT 0;",
    )?;
    let rows: Vec<(i64, i64, String)> = conn
        .prepare("SELECT stream_id, seq, subject FROM messages")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    {
        let mut update = conn
            .prepare("UPDATE messages SET subject_hash = ?3 WHERE stream_id = ?1 AND seq = ?2")?;
        for (stream_id, seq, subject) in rows {
            update.execute(params![stream_id, seq, subject_hash(&subject)])?;
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}
