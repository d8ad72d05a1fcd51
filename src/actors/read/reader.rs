//! The agent's read handle: blocks through the read cache (and so its peers), or straight from
//! the bucket while the cache is not running.
//!
//! Owns: [`Reader`] and its [`ReadSource`] routing. Does not own the cache or block decoding
//! (`cache`, `block`).

use std::sync::Arc;

use actix::Addr;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;

use super::block::{Block, BlockLocation, ReadError, ReadSource, fetch_block};
use super::cache::{Read, ReadCache};

/// The agent's read handle: the read cache's address plus the bucket, used when the cache is
/// not running (reads never fail because the cache actor is restarting). Cheap to clone, `Send`.
#[derive(Clone)]
pub struct Reader {
    cache: Option<Addr<ReadCache>>,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub fn new(cache: Addr<ReadCache>, store: Arc<dyn ObjectStore>) -> Self {
        Self {
            cache: Some(cache),
            store,
        }
    }

    /// Reads straight from the bucket, without a cache.
    pub fn uncached(store: Arc<dyn ObjectStore>) -> Self {
        Self { cache: None, store }
    }
}

impl From<Arc<dyn ObjectStore>> for Reader {
    fn from(store: Arc<dyn ObjectStore>) -> Self {
        Self::uncached(store)
    }
}

impl ReadSource for Reader {
    fn read_block(&self, loc: &BlockLocation) -> BoxFuture<'static, Result<Block, ReadError>> {
        let store = self.store.clone();
        let cache = self.cache.clone();
        let loc = loc.clone();
        async move {
            if let Some(cache) = cache.filter(|c| c.connected()) {
                match cache
                    .send(Read {
                        location: loc.clone(),
                        local_only: false,
                    })
                    .await
                {
                    Ok(res) => return res,
                    Err(e) => {
                        tracing::debug!(error = %e, "read cache unavailable, reading from the bucket")
                    }
                }
            }
            fetch_block(store.as_ref(), &loc).await
        }
        .boxed()
    }
}
