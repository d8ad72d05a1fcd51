//! Reading stored messages back from the bucket: one range GET of the message's block, every
//! checksum verified, the record picked out. Owns nothing; the read cache (a later layer) wraps it.

use std::sync::Arc;
use std::time::Instant;

use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::control_plane::model::MessageLocation;
use crate::format::{self, FormatError, Record};
use crate::metrics;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("object {key} is unreadable: {source}")]
    Store {
        key: String,
        source: object_store::Error,
    },
    #[error("object {key} is corrupt: {source}")]
    Corrupt { key: String, source: FormatError },
}

/// Fetches the block holding `loc` and returns its record.
pub async fn read_record(
    store: &Arc<dyn ObjectStore>,
    loc: &MessageLocation,
) -> Result<Record, ReadError> {
    let path = Path::from(loc.object_key.as_str());
    let started = Instant::now();
    let range = loc.block_offset..loc.block_offset + loc.block_len;
    let res = store.get_range(&path, range).await;
    let outcome = if res.is_ok() { "ok" } else { "error" };
    metrics::OBJECT_STORE_OPS
        .with_label_values(&["get_range", outcome])
        .observe(started.elapsed().as_secs_f64());
    metrics::CACHE_READS.with_label_values(&["bucket"]).inc();
    let block = res.map_err(|source| ReadError::Store {
        key: loc.object_key.clone(),
        source,
    })?;
    format::decode_record(block, loc.index).map_err(|source| {
        tracing::error!(object_key = %loc.object_key, error = %source, "corrupt object block");
        ReadError::Corrupt {
            key: loc.object_key.clone(),
            source,
        }
    })
}
