//! Reading stored messages back, at the lowest level: one block (a range of one object) fetched,
//! its checksum verified and table parsed once, records picked out.
//!
//! Owns: the block address ([`BlockLocation`]), the bucket range GET with its verification, the
//! read error type, the [`ReadSource`] seam and [`read_record`], the one entry point readers
//! call. Does not own caching (`cache`), peers (`peer`) or the agent's read handle (`reader`,
//! which routes through the cache); a bare `Arc<dyn ObjectStore>` reads straight from the bucket.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::actors::ops::metrics;
pub use crate::format::BlockLocation;
use crate::format::{ParsedBlock, Record};
use infinistream_api::control_plane::model::MessageLocation;

/// Cloneable on purpose: one failed fetch answers every reader that waited for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("object {key} does not exist")]
    NotFound { key: String },
    #[error("object {key} is unreadable: {message}")]
    Store { key: String, message: String },
    #[error("object {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
}

/// A verified block with its table parsed, shared by the cache and its readers.
pub type Block = Arc<ParsedBlock>;

/// Checks that `block` is a whole, intact block for `loc` (length and CRC) and parses it.
pub fn verify_block(loc: &BlockLocation, block: Bytes) -> Result<Block, ReadError> {
    if block.len() as u64 != loc.len {
        return Err(ReadError::Corrupt {
            key: loc.object_key.clone(),
            message: format!("block is {} bytes, expected {}", block.len(), loc.len),
        });
    }
    ParsedBlock::parse(block)
        .map(Arc::new)
        .map_err(|e| ReadError::Corrupt {
            key: loc.object_key.clone(),
            message: e.to_string(),
        })
}

/// One range GET of `loc` from the bucket, verified. Counted as a `bucket` read.
pub async fn fetch_block(store: &dyn ObjectStore, loc: &BlockLocation) -> Result<Block, ReadError> {
    let path = Path::from(loc.object_key.as_str());
    let started = Instant::now();
    let res = store.get_range(&path, loc.range()).await;
    let outcome = if res.is_ok() { "ok" } else { "error" };
    metrics::OBJECT_STORE_OPS
        .with_label_values(&["get_range", outcome])
        .observe(started.elapsed().as_secs_f64());
    metrics::CACHE_READS.with_label_values(&["bucket"]).inc();
    let block = res.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ReadError::NotFound {
            key: loc.object_key.clone(),
        },
        other => ReadError::Store {
            key: loc.object_key.clone(),
            message: other.to_string(),
        },
    })?;
    verify_block(loc, block).inspect_err(|e| {
        tracing::error!(object_key = %loc.object_key, offset = loc.offset, error = %e, "corrupt object block");
    })
}

/// Where blocks come from: the bucket directly, or the agent's cache.
pub trait ReadSource {
    fn read_block(&self, loc: &BlockLocation) -> BoxFuture<'static, Result<Block, ReadError>>;
}

impl ReadSource for Arc<dyn ObjectStore> {
    fn read_block(&self, loc: &BlockLocation) -> BoxFuture<'static, Result<Block, ReadError>> {
        let store = self.clone();
        let loc = loc.clone();
        async move { fetch_block(store.as_ref(), &loc).await }.boxed()
    }
}

/// Fetches the block holding `loc` (through the cache when `source` is a [`Reader`]) and returns
/// its record.
pub async fn read_record<S: ReadSource + ?Sized>(
    source: &S,
    loc: &MessageLocation,
) -> Result<Record, ReadError> {
    let block = source.read_block(&BlockLocation::of(loc)).await?;
    block.record(loc.index).map_err(|source| {
        tracing::error!(object_key = %loc.object_key, error = %source, "corrupt object block");
        ReadError::Corrupt {
            key: loc.object_key.clone(),
            message: source.to_string(),
        }
    })
}
