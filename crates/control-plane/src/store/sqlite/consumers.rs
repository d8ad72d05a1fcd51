//! Owns: the consumer tables: configs, positions and pending runs (their byte form in `runs`),
//! written through by `consumers::Registry`. Does not own: consumer semantics (`crate::consumers`).

use super::rows::{to_i64, to_u64};
use super::*;

pub(super) fn consumers(store: &mut SqliteStore) -> Result<Vec<StoredConsumer>, StoreError> {
    let mut out = Vec::new();
    {
        let mut stmt = store.conn.prepare_cached(
            "SELECT stream, name, config, created, next_sseq, lps, dseq, sseq, last_delivery, \
             floor_cseq, floor_sseq, last_ack FROM consumers ORDER BY stream, name",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let config: String = r.get(2)?;
            let lps: String = r.get(5)?;
            out.push(StoredConsumer {
                stream: r.get(0)?,
                name: r.get(1)?,
                config: serde_json::from_str(&config)?,
                created: r.get(3)?,
                position: ConsumerPosition {
                    next_sseq: to_u64(r.get(4)?),
                    lps: serde_json::from_str(&lps)?,
                    dseq: to_u64(r.get(6)?),
                    sseq: to_u64(r.get(7)?),
                    last_delivery: r.get(8)?,
                    ack_floor: (to_u64(r.get(9)?), to_u64(r.get(10)?)),
                    last_ack: r.get(11)?,
                },
                pending: Vec::new(),
            });
        }
    }
    let mut stmt = store.conn.prepare_cached(
        "SELECT first_cseq, entries FROM consumer_runs WHERE stream = ?1 AND name = ?2 \
         ORDER BY first_cseq",
    )?;
    for c in &mut out {
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![c.stream, c.name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (first, bytes) in rows {
            let first_cseq = to_u64(first);
            let entries = super::runs::decode(first_cseq, &bytes).map_err(|e| {
                StoreError::Invariant(format!(
                    "consumer {} > {}: pending run at {first_cseq}: {e}",
                    c.stream, c.name
                ))
            })?;
            c.pending.push(PendingRun {
                first_cseq,
                entries,
            });
        }
    }
    Ok(out)
}
pub(super) fn write_consumers(
    store: &mut SqliteStore,
    writes: &[ConsumerWrite],
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    // Deliveries and acks are not fsynced one transaction at a time (nats-server syncs
    // consumer state on an interval too): the next message commit, which is, makes them
    // durable with it. A crash in between can only redeliver, never lose an acked publish.
    // Without this, every pull and every ack batch waited for an fsync.
    store.conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = store.in_tx(|s| {
        for w in writes {
            write_consumer(&s.conn, w)?;
        }
        Ok(())
    });
    store.conn.pragma_update(None, "synchronous", "FULL")?;
    result
}
pub(super) fn write_position(
    conn: &Connection,
    stream: &str,
    name: &str,
    p: &ConsumerPosition,
) -> Result<(), StoreError> {
    let lps = serde_json::to_string(&p.lps)?;
    conn.prepare_cached(
        "UPDATE consumers SET next_sseq = ?3, lps = ?4, dseq = ?5, sseq = ?6, last_delivery = ?7, \
         floor_cseq = ?8, floor_sseq = ?9, last_ack = ?10 WHERE stream = ?1 AND name = ?2",
    )?
    .execute(params![
        stream,
        name,
        to_i64(p.next_sseq),
        lps,
        to_i64(p.dseq),
        to_i64(p.sseq),
        p.last_delivery,
        to_i64(p.ack_floor.0),
        to_i64(p.ack_floor.1),
        p.last_ack,
    ])?;
    Ok(())
}

pub(super) fn delete_pending_of(
    conn: &Connection,
    stream: &str,
    name: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM consumer_runs WHERE stream = ?1 AND name = ?2")?
        .execute(params![stream, name])?;
    Ok(())
}

pub(super) fn write_consumer(conn: &Connection, w: &ConsumerWrite) -> Result<(), StoreError> {
    match w {
        ConsumerWrite::Create {
            stream,
            name,
            config,
            created,
            position,
        } => {
            delete_pending_of(conn, stream, name)?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO consumers (stream, name, config, created, next_sseq, lps, \
                 dseq, sseq, floor_cseq, floor_sseq) VALUES (?1, ?2, ?3, ?4, 0, '[]', 0, 0, 0, 0)",
            )?
            .execute(params![
                stream,
                name,
                serde_json::to_string(config)?,
                created
            ])?;
            write_position(conn, stream, name, position)?;
        }
        ConsumerWrite::UpdateConfig {
            stream,
            name,
            config,
        } => {
            conn.prepare_cached(
                "UPDATE consumers SET config = ?3 WHERE stream = ?1 AND name = ?2",
            )?
            .execute(params![stream, name, serde_json::to_string(config)?])?;
        }
        ConsumerWrite::Position {
            stream,
            name,
            position,
        } => write_position(conn, stream, name, position)?,
        ConsumerWrite::PutRun { stream, name, run } => {
            let first = to_i64(run.first_cseq);
            if run.entries.is_empty() {
                conn.prepare_cached(
                    "DELETE FROM consumer_runs WHERE stream = ?1 AND name = ?2 AND first_cseq = ?3",
                )?
                .execute(params![stream, name, first])?;
            } else {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO consumer_runs (stream, name, first_cseq, entries) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    stream,
                    name,
                    first,
                    super::runs::encode(run.first_cseq, &run.entries)
                ])?;
            }
        }
        ConsumerWrite::Delete { stream, name } => {
            delete_pending_of(conn, stream, name)?;
            conn.prepare_cached("DELETE FROM consumers WHERE stream = ?1 AND name = ?2")?
                .execute(params![stream, name])?;
        }
    }
    Ok(())
}
