//! Owns: small row helpers: integer conversions, subject patterns, the `meta` table.
//! Does not own: any table but `meta`.

use super::*;

pub(super) fn pattern_matches(pattern: &str, subj: &str) -> bool {
    pattern == ">" || pattern == subj || subject::matches(pattern, subj)
}

pub(super) fn is_literal(pattern: &str) -> bool {
    !pattern.split('.').any(|t| t == "*" || t == ">")
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn meta_get(conn: &Connection, key: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(super) fn meta_set(conn: &Connection, key: &str, value: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}
