//! The agent's read cache: verified object blocks in memory, bounded in bytes, with concurrent
//! misses of one block coalesced into one fetch.
//!
//! Owns: the block map (keyed by object key and byte range), LRU eviction by bytes, the in-flight
//! table of fetches and their waiters, and the miss policy (ask the block's owner in the zone
//! through the peer cache, hedge to the bucket when it is down or slow). Does not own: the ring or
//! the peer connections (`peer`), decoding records (`crate::actors::read::block`), or membership.
//!
//! The cache is an actor: callers send [`Read`] and get the block or a [`ReadError`]. A miss
//! spawns the fetch as a future of this actor; its completion comes back into the actor, which
//! fills the map and answers every waiter. Only blocks whose length and CRC check out are cached
//! or returned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use object_store::ObjectStore;
use tokio::sync::oneshot;

use crate::actors::ops::metrics;
use crate::actors::read::block::{Block, BlockLocation, ReadError, fetch_block, verify_block};

/// Reader -> cache: one block, verified and parsed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Block, ReadError>")]
pub struct Read {
    pub location: BlockLocation,
    /// Never ask a peer (set for reads that a peer asked us for: no forwarding loops when two
    /// agents' views of the ring disagree).
    pub local_only: bool,
}

/// Cache -> peer cache: fetch a block from its owner. `Ok(None)`: this agent owns it (or there
/// is no ring yet), read the bucket.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Bytes>, ReadError>")]
pub struct PeerFetch {
    pub location: BlockLocation,
}

/// Wiring: where misses go before the bucket (the peer cache's stable handle).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeer(pub Option<Recipient<PeerFetch>>);

/// Counters for tests and `/varz`-like reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Message)]
#[rtype(result = "CacheStats")]
pub struct GetStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, MessageResponse)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub fetches: u64,
    pub evictions: u64,
}

#[derive(Debug, Clone)]
pub struct ReadCacheSettings {
    /// Upper bound of the cached blocks' bytes. 0 disables caching (misses are still
    /// coalesced).
    pub capacity: usize,
    /// How long to wait for the owner of a block before reading the bucket.
    pub peer_timeout: Duration,
}

impl Default for ReadCacheSettings {
    fn default() -> Self {
        Self {
            capacity: 256 * 1024 * 1024,
            peer_timeout: Duration::from_millis(200),
        }
    }
}

struct Entry {
    block: Block,
    tick: u64,
}

type Waiter = oneshot::Sender<Result<Block, ReadError>>;

pub struct ReadCache {
    settings: ReadCacheSettings,
    store: Arc<dyn ObjectStore>,
    peer: Option<Recipient<PeerFetch>>,
    entries: HashMap<BlockLocation, Entry>,
    /// Recency order: tick -> key; the smallest tick is evicted first.
    lru: BTreeMap<u64, BlockLocation>,
    tick: u64,
    used: usize,
    inflight: HashMap<BlockLocation, Vec<Waiter>>,
    stats: CacheStats,
}

impl ReadCache {
    pub fn new(settings: ReadCacheSettings, store: Arc<dyn ObjectStore>) -> Self {
        Self {
            settings,
            store,
            peer: None,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            used: 0,
            inflight: HashMap::new(),
            stats: CacheStats::default(),
        }
    }

    fn touch(&mut self, loc: &BlockLocation) -> Option<Block> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(loc)?;
        self.lru.remove(&entry.tick);
        entry.tick = tick;
        self.lru.insert(tick, loc.clone());
        Some(entry.block.clone())
    }

    fn insert(&mut self, loc: BlockLocation, block: Block) {
        // Bytes and parsed table both count: the table is what makes a hit cheap.
        let size = block.footprint();
        if size > self.settings.capacity || self.entries.contains_key(&loc) {
            return;
        }
        while self.used + size > self.settings.capacity {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.used -= e.block.footprint();
                self.stats.evictions += 1;
            }
        }
        self.tick += 1;
        self.lru.insert(self.tick, loc.clone());
        self.entries.insert(
            loc,
            Entry {
                block,
                tick: self.tick,
            },
        );
        self.used += size;
    }

    fn complete(&mut self, loc: BlockLocation, result: Result<Block, ReadError>) {
        if let Ok(block) = &result {
            self.insert(loc.clone(), block.clone());
        }
        for waiter in self.inflight.remove(&loc).unwrap_or_default() {
            let _ = waiter.send(result.clone());
        }
    }
}

/// The miss path: the owner in the zone first (bounded by `peer_timeout`), else the bucket.
async fn fetch(
    store: Arc<dyn ObjectStore>,
    peer: Option<Recipient<PeerFetch>>,
    loc: BlockLocation,
    peer_timeout: Duration,
) -> Result<Block, ReadError> {
    if let Some(peer) = peer {
        let asked = tokio::time::timeout(
            peer_timeout,
            peer.send(PeerFetch {
                location: loc.clone(),
            }),
        )
        .await;
        match asked {
            Ok(Ok(Ok(Some(block)))) => match verify_block(&loc, block) {
                Ok(block) => {
                    metrics::CACHE_READS.with_label_values(&["peer"]).inc();
                    return Ok(block);
                }
                Err(e) => {
                    tracing::warn!(object_key = %loc.object_key, error = %e, "peer sent a bad block, reading from the bucket")
                }
            },
            Ok(Ok(Ok(None))) => {}
            Ok(Ok(Err(e))) => {
                tracing::debug!(object_key = %loc.object_key, error = %e, "peer read failed, reading from the bucket")
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "peer cache unavailable, reading from the bucket")
            }
            Err(_) => {
                tracing::debug!(object_key = %loc.object_key, "peer read timed out, hedging to the bucket")
            }
        }
    }
    fetch_block(store.as_ref(), &loc).await
}

impl Actor for ReadCache {
    type Context = Context<Self>;
}

impl Handler<Read> for ReadCache {
    type Result = ResponseFuture<Result<Block, ReadError>>;

    fn handle(&mut self, m: Read, ctx: &mut Self::Context) -> Self::Result {
        if let Some(block) = self.touch(&m.location) {
            self.stats.hits += 1;
            metrics::CACHE_READS.with_label_values(&["memory"]).inc();
            return Box::pin(async move { Ok(block) });
        }
        self.stats.misses += 1;
        let (tx, rx) = oneshot::channel();
        let loc = m.location;
        let waiters = self.inflight.entry(loc.clone()).or_default();
        waiters.push(tx);
        if waiters.len() == 1 {
            self.stats.fetches += 1;
            let peer = if m.local_only {
                None
            } else {
                self.peer.clone()
            };
            let fut = fetch(
                self.store.clone(),
                peer,
                loc.clone(),
                self.settings.peer_timeout,
            );
            ctx.spawn(
                fut.into_actor(self)
                    .map(move |result, act, _| act.complete(loc, result)),
            );
        }
        let key = String::new();
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ReadError::Store {
                    key,
                    message: "read cache stopped".into(),
                })
            })
        })
    }
}

impl Handler<SetPeer> for ReadCache {
    type Result = ();
    fn handle(&mut self, m: SetPeer, _: &mut Self::Context) {
        self.peer = m.0;
    }
}

impl Handler<GetStats> for ReadCache {
    type Result = CacheStats;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.used,
            ..self.stats
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::actors::read::{Reader, read_record};
    use crate::format::{ObjectBuilder, Record};
    use bytestring::ByteString;
    use infinistream_api::control_plane::model::MessageLocation;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{GetOptions, GetResult, ObjectStoreExt, PutOptions, PutPayload, PutResult};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts GETs and delays them, so coalescing is observable.
    #[derive(Debug, Default)]
    pub(crate) struct Counting {
        pub inner: InMemory,
        pub gets: AtomicU64,
        pub delay: Duration,
    }

    impl std::fmt::Display for Counting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counting")
        }
    }

    impl Counting {
        async fn do_get(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.inner.get_opts(location, options).await
        }
    }

    impl Counting {
        async fn do_put(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
    }

    crate::test_support::delegating_object_store!(Counting);

    fn record(payload: &str) -> Record {
        Record {
            subject: ByteString::from_static("s.a"),
            headers: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            timestamp_nanos: 1,
        }
    }

    /// Writes one object with `blocks` blocks of `per_block` records each; returns the blocks.
    pub(crate) async fn object(
        store: &Counting,
        key: &str,
        blocks: usize,
        per_block: usize,
    ) -> Vec<BlockLocation> {
        let mut b = ObjectBuilder::new();
        let mut refs = Vec::new();
        for i in 0..blocks {
            let recs: Vec<Record> = (0..per_block)
                .map(|j| record(&format!("m{i}-{j}")))
                .collect();
            refs.push(b.add_block("S", &recs));
        }
        let bytes = b.finish();
        store
            .inner
            .put(&Path::from(key), bytes.into())
            .await
            .unwrap();
        refs.into_iter()
            .map(|r| BlockLocation {
                object_key: key.to_string(),
                offset: r.offset,
                len: r.len,
            })
            .collect()
    }

    fn location(block: &BlockLocation, index: u32) -> MessageLocation {
        MessageLocation {
            stream: "S".into(),
            seq: 1,
            subject: "s.a".into(),
            timestamp_nanos: 1,
            object_id: 1,
            object_key: block.object_key.clone(),
            block_offset: block.offset,
            block_len: block.len,
            index,
            size: 0,
            header_size: 0,
        }
    }

    fn start(store: &Arc<Counting>, capacity: usize) -> Addr<ReadCache> {
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        ReadCache::new(
            ReadCacheSettings {
                capacity,
                peer_timeout: Duration::from_millis(200),
            },
            dyn_store,
        )
        .start()
    }

    fn read(loc: &BlockLocation) -> Read {
        Read {
            location: loc.clone(),
            local_only: false,
        }
    }

    #[actix_rt::test]
    async fn hits_are_served_from_memory() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/1.obj", 2, 3).await;
        let cache = start(&store, 1 << 20);
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        let reader = Reader::new(cache.clone(), dyn_store);
        for _ in 0..5 {
            let rec = read_record(&reader, &location(&blocks[1], 2))
                .await
                .unwrap();
            assert_eq!(rec.payload, Bytes::from_static(b"m1-2"));
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);
        let stats = cache.send(GetStats).await.unwrap();
        assert_eq!((stats.hits, stats.misses, stats.entries), (4, 1, 1));
        // The block's bytes and its parsed table.
        let cached = cache.send(read(&blocks[1])).await.unwrap().unwrap();
        assert_eq!(stats.bytes, cached.footprint());
        assert!(stats.bytes as u64 > blocks[1].len);
    }

    #[actix_rt::test]
    async fn concurrent_misses_share_one_get() {
        let store = Arc::new(Counting {
            delay: Duration::from_millis(50),
            ..Counting::default()
        });
        let blocks = object(&store, "o/2.obj", 1, 4).await;
        let cache = start(&store, 1 << 20);
        let reads = (0..32).map(|_| cache.send(read(&blocks[0])));
        let results = futures::future::join_all(reads).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(Ok(b)) if b.bytes().len() as u64 == blocks[0].len))
        );
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);
        let stats = cache.send(GetStats).await.unwrap();
        assert_eq!(stats.fetches, 1);
    }

    #[actix_rt::test]
    async fn eviction_is_by_bytes_least_recent_first() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/3.obj", 4, 2).await;
        let mut biggest = 0;
        for b in &blocks {
            biggest = biggest.max(fetch_block(store.as_ref(), b).await.unwrap().footprint());
        }
        // Room for two blocks, not three.
        let cache = start(&store, biggest * 2 + biggest / 2);
        for b in &blocks[..2] {
            cache.send(read(b)).await.unwrap().unwrap();
        }
        // Touch block 0 so block 1 is the least recent.
        cache.send(read(&blocks[0])).await.unwrap().unwrap();
        cache.send(read(&blocks[2])).await.unwrap().unwrap();
        let stats = cache.send(GetStats).await.unwrap();
        assert_eq!(stats.entries, 2);
        assert_eq!(stats.evictions, 1);
        assert!(stats.bytes <= biggest * 2 + biggest / 2);
        let before = store.gets.load(Ordering::SeqCst);
        cache.send(read(&blocks[0])).await.unwrap().unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), before, "block 0 stayed");
        cache.send(read(&blocks[1])).await.unwrap().unwrap();
        assert_eq!(
            store.gets.load(Ordering::SeqCst),
            before + 1,
            "block 1 was evicted"
        );
    }

    #[actix_rt::test]
    async fn a_block_larger_than_the_cache_is_served_not_cached() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/4.obj", 1, 2).await;
        let cache = start(&store, 8);
        cache.send(read(&blocks[0])).await.unwrap().unwrap();
        let stats = cache.send(GetStats).await.unwrap();
        assert_eq!((stats.entries, stats.bytes), (0, 0));
    }

    #[actix_rt::test]
    async fn missing_and_corrupt_objects_are_errors_and_not_cached() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/5.obj", 1, 2).await;
        let cache = start(&store, 1 << 20);
        let missing = BlockLocation {
            object_key: "o/none.obj".into(),
            ..blocks[0].clone()
        };
        let err = cache.send(read(&missing)).await.unwrap().unwrap_err();
        assert!(matches!(err, ReadError::NotFound { .. }), "{err:?}");

        // Flip one byte inside the block: its CRC no longer matches.
        let mut bytes = store
            .inner
            .get(&Path::from("o/5.obj"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let at = (blocks[0].offset + blocks[0].len / 2) as usize;
        bytes[at] ^= 0xff;
        store
            .inner
            .put(&Path::from("o/6.obj"), bytes.into())
            .await
            .unwrap();
        let bad = BlockLocation {
            object_key: "o/6.obj".into(),
            ..blocks[0].clone()
        };
        let err = cache.send(read(&bad)).await.unwrap().unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { .. }), "{err:?}");
        // A range that is not a block is corrupt too (never wrong data).
        let shifted = BlockLocation {
            offset: blocks[0].offset + 1,
            ..blocks[0].clone()
        };
        assert!(cache.send(read(&shifted)).await.unwrap().is_err());
        let stats = cache.send(GetStats).await.unwrap();
        assert_eq!(stats.entries, 0);
    }

    /// A peer answering with the block, so misses never reach the bucket.
    struct FakePeer(Arc<Counting>);
    impl Actor for FakePeer {
        type Context = Context<Self>;
    }
    impl Handler<PeerFetch> for FakePeer {
        type Result = ResponseFuture<Result<Option<Bytes>, ReadError>>;
        fn handle(&mut self, m: PeerFetch, _: &mut Self::Context) -> Self::Result {
            let store = self.0.clone();
            Box::pin(async move {
                let bytes = store
                    .inner
                    .get_range(
                        &Path::from(m.location.object_key.as_str()),
                        m.location.range(),
                    )
                    .await
                    .unwrap();
                Ok(Some(bytes))
            })
        }
    }

    #[actix_rt::test]
    async fn misses_go_to_the_peer_first_unless_local_only() {
        let store = Arc::new(Counting::default());
        let blocks = object(&store, "o/7.obj", 2, 2).await;
        let cache = start(&store, 1 << 20);
        let peer = FakePeer(store.clone()).start();
        cache.send(SetPeer(Some(peer.recipient()))).await.unwrap();
        cache.send(read(&blocks[0])).await.unwrap().unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), 0);
        cache
            .send(Read {
                location: blocks[1].clone(),
                local_only: true,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), 1);
    }
}
