//! Owns: object ids (the high-water mark in `meta`) and the `orphans` table. Does not own: the
//! objects themselves (in the user's bucket).

use super::rows::{meta_get, meta_set, to_i64, to_u64};
use super::schema::OBJECT_ID_KEY;
use super::*;

pub(super) fn allocate_object_ids(
    store: &mut SqliteStore,
    count: u32,
    now_ms: i64,
) -> Result<Vec<u64>, StoreError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    store.in_tx(|s| {
        let hwm = to_u64(meta_get(&s.conn, OBJECT_ID_KEY)?);
        let time_base = to_u64(now_ms) << 20;
        let first = time_base.max(hwm + 1);
        let ids: Vec<u64> = (0..u64::from(count)).map(|i| first + i).collect();
        let last = first + u64::from(count) - 1;
        meta_set(&s.conn, OBJECT_ID_KEY, to_i64(last))?;
        Ok(ids)
    })
}
pub(super) fn record_orphan(
    store: &mut SqliteStore,
    request: &OrphanRequest,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .conn
        .prepare_cached(
            "INSERT INTO orphans (object_key, reason, recorded_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![request.object_key, request.reason, now_ms])?;
    Ok(())
}
pub(super) fn orphans(store: &mut SqliteStore) -> Result<Vec<Orphan>, StoreError> {
    let mut stmt = store
        .conn
        .prepare_cached("SELECT object_key, reason, recorded_at FROM orphans ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Orphan {
                object_key: r.get(0)?,
                reason: r.get(1)?,
                recorded_at_ms: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
