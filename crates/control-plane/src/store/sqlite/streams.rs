//! Owns: the `streams` table: create, update, delete, info, purge, message deletes, the change
//! version agents poll, account usage. Does not own: where messages are (`blocks`, `limits`,
//! `commits`, `reads`).

use super::blocks::{WorkingSet, delete_stream_blocks};
use super::limits::{enforce_limits, persist_rt, purge_ex, remove_seq};
use super::lookups::deleted_seqs;
use super::rows::{pattern_matches, to_i64};
use super::*;

pub(super) fn create_stream(
    store: &mut SqliteStore,
    config: StreamConfig,
    now: i64,
) -> Result<StreamView, StoreError> {
    if let Some(rt) = store.streams.get(&config.name) {
        let mut candidate = config.clone();
        candidate.copy_metadata_from(&rt.config);
        if candidate == rt.config {
            return Ok(rt.view());
        }
        return Err(ApiError::stream_name_exist().into());
    }
    if store
        .streams
        .values()
        .any(|rt| rt.config.overlaps_subjects(&config.subjects))
    {
        return Err(ApiError::stream_subject_overlap().into());
    }
    let (first_seq, last_seq) = if config.first_seq > 0 {
        (config.first_seq, config.first_seq - 1)
    } else {
        (0, 0)
    };
    let json = serde_json::to_string(&config)?;
    let id = store.in_tx(|s| {
        s.conn
            .prepare_cached(
                "INSERT INTO streams (name, config, created, first_seq, last_seq, last_ts, last_msg_id) VALUES (?1, ?2, ?3, ?4, ?5, 0, '')",
            )?
            .execute(params![config.name, json, now, to_i64(first_seq), to_i64(last_seq)])?;
        let id = s.conn.last_insert_rowid();
        s.bump_version()?;
        Ok(id)
    })?;
    let mut rt = StreamRt::new(id, config.clone(), now);
    rt.first_seq = first_seq;
    rt.last_seq = last_seq;
    let view = rt.view();
    store.streams.insert(config.name.clone(), rt);
    Ok(view)
}
pub(super) fn update_stream(
    store: &mut SqliteStore,
    config: StreamConfig,
) -> Result<StreamView, StoreError> {
    store.rt(&config.name)?;
    if store
        .streams
        .values()
        .filter(|rt| rt.config.name != config.name)
        .any(|rt| rt.config.overlaps_subjects(&config.subjects))
    {
        return Err(ApiError::stream_subject_overlap().into());
    }
    let json = serde_json::to_string(&config)?;
    let name = config.name.clone();
    store.in_tx(|s| {
        let Some(rt) = s.streams.get_mut(&name) else {
            return Err(ApiError::stream_not_found().into());
        };
        s.conn
            .prepare_cached("UPDATE streams SET config = ?2 WHERE id = ?1")?
            .execute(params![rt.id, json])?;
        rt.config = config;
        enforce_limits(&s.conn, &mut s.work, rt, None)?;
        persist_rt(&s.conn, rt)?;
        s.bump_version()?;
        Ok(())
    })?;
    store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    Ok(store.rt(&name)?.view())
}
pub(super) fn stream_config(
    store: &mut SqliteStore,
    name: &str,
) -> Result<StreamConfig, StoreError> {
    Ok(store.rt(name)?.config.clone())
}
pub(super) fn delete_stream(store: &mut SqliteStore, name: &str) -> Result<(), StoreError> {
    let id = store.rt(name)?.id;
    store.in_tx(|s| {
        s.work.drop_stream(id);
        delete_stream_blocks(&s.conn, id)?;
        for table in ["subjects", "expiries", "dedupe", "stream_state"] {
            s.conn
                .prepare_cached(&format!("DELETE FROM {table} WHERE stream_id = ?1"))?
                .execute(params![id])?;
        }
        s.conn
            .prepare_cached("DELETE FROM streams WHERE id = ?1")?
            .execute(params![id])?;
        s.conn
            .prepare_cached("DELETE FROM consumer_runs WHERE stream = ?1")?
            .execute(params![name])?;
        s.conn
            .prepare_cached("DELETE FROM consumers WHERE stream = ?1")?
            .execute(params![name])?;
        s.bump_version()?;
        Ok(())
    })?;
    store.streams.remove(name);
    Ok(())
}
pub(super) fn stream(
    store: &mut SqliteStore,
    name: &str,
    detail: &StateDetail,
) -> Result<StreamView, StoreError> {
    store.rt(name)?;
    store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    let rt = store.rt(name)?;
    let mut view = rt.view();
    if let Some(filter) = detail.subjects_filter.as_deref().filter(|f| !f.is_empty()) {
        view.state.subjects = rt
            .subjects
            .iter()
            .filter(|(s, _)| pattern_matches(filter, s))
            .map(|(s, st)| (s.clone(), st.count))
            .collect();
    }
    if detail.deleted && rt.msgs > 0 {
        view.state.deleted = deleted_seqs(&store.conn, &mut WorkingSet::default(), rt)?;
    }
    Ok(view)
}
pub(super) fn streams(store: &mut SqliteStore) -> Result<Vec<StreamView>, StoreError> {
    store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    let mut views: Vec<StreamView> = store.streams.values().map(StreamRt::view).collect();
    views.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    Ok(views)
}
pub(super) fn purge(
    store: &mut SqliteStore,
    name: &str,
    request: &StreamPurgeRequest,
) -> Result<u64, StoreError> {
    let cfg = &store.rt(name)?.config;
    if cfg.sealed {
        return Err(ApiError::stream_sealed().into());
    }
    if cfg.deny_purge {
        return Err(ApiError::stream_purge_failed("stream purge not permitted").into());
    }
    if request.seq > 0 && request.keep > 0 {
        return Err(ApiError::bad_request().into());
    }
    let name = name.to_string();
    let request = request.clone();
    store.in_tx(move |s| {
        let Some(rt) = s.streams.get_mut(&name) else {
            return Err(ApiError::stream_not_found().into());
        };
        let purged = purge_ex(&s.conn, &mut s.work, rt, &request)?;
        persist_rt(&s.conn, rt)?;
        Ok(purged)
    })
}
pub(super) fn delete_message(
    store: &mut SqliteStore,
    name: &str,
    seq: u64,
) -> Result<(), StoreError> {
    let rt = store.rt(name)?;
    if rt.config.sealed {
        return Err(ApiError::stream_sealed().into());
    }
    if rt.config.deny_delete {
        return Err(ApiError::stream_msg_delete_failed("message delete not permitted").into());
    }
    if seq == 0 {
        return Err(ApiError::stream_msg_delete_failed("no message found").into());
    }
    if seq > rt.last_seq {
        return Err(ApiError::stream_msg_delete_failed("stream store EOF").into());
    }
    if seq < rt.first_seq || rt.msgs == 0 {
        return Err(ApiError::stream_msg_delete_failed("no message found").into());
    }
    let name = name.to_string();
    store.in_tx(move |s| {
        let Some(rt) = s.streams.get_mut(&name) else {
            return Err(ApiError::stream_not_found().into());
        };
        if !remove_seq(&s.conn, &mut s.work, rt, seq)? {
            return Err(ApiError::sequence_not_found(seq).into());
        }
        persist_rt(&s.conn, rt)?;
        Ok(())
    })
}
pub(super) fn streams_since(
    store: &mut SqliteStore,
    version: u64,
) -> Result<StreamsSnapshot, StoreError> {
    if version >= store.version {
        return Ok(StreamsSnapshot {
            version: store.version,
            changed: false,
            streams: Vec::new(),
        });
    }
    let mut streams: Vec<StreamConfig> =
        store.streams.values().map(|rt| rt.config.clone()).collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StreamsSnapshot {
        version: store.version,
        changed: true,
        streams,
    })
}
pub(super) fn account_usage(store: &mut SqliteStore) -> Result<AccountUsage, StoreError> {
    store.expire_all(infinistream_api::jetstream::time::now_nanos())?;
    let mut usage = AccountUsage::default();
    for rt in store.streams.values() {
        usage.streams += 1;
        let reserved = u64::try_from(rt.config.max_bytes).unwrap_or(0);
        match rt.config.storage {
            StorageType::File => {
                usage.storage += rt.bytes;
                usage.reserved_storage += reserved;
            }
            StorageType::Memory => {
                usage.memory += rt.bytes;
                usage.reserved_memory += reserved;
            }
        }
    }
    Ok(usage)
}
