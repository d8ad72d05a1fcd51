//! The uploader pool: puts sealed objects into the bucket.
//!
//! Owns: the PUT of one finished object (`PutMode::Create`, never overwriting), retries of
//! transient failures with jittered exponential backoff, the per-upload deadline, recognising
//! that an earlier attempt of ours already landed, and bounding how many uploads are queued or
//! running. Does not own: what is in an object (see `format`), object ids, streams, acks, or the
//! control plane commit; callers (the flusher) decide what an upload failure means for them.
//!
//! Each [`Uploader`] actor runs one PUT at a time (its handler returns an [`AtomicResponse`], so
//! the actor does not take the next message until the current upload finishes); parallelism
//! comes from running several uploaders in an [`UploaderPool`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::{ArbiterHandle, AtomicResponse};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use rand::Rng;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Default mailbox capacity of one uploader.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 2;

/// How many trailing bytes of an existing object are compared with ours when a PUT reports
/// that the object already exists. For `format` objects the tail holds the trailer, whose
/// footer CRC covers every block CRC, so equal size plus equal tail means equal content.
const TAIL_CHECK_LEN: u64 = 64;

/// One sealed object to put into the bucket.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Bucket key (see `format::object_key`).
    pub key: Path,
    /// The finished object, as chunks sent in order (see `format::ObjectBuilder::finish_chunks`).
    pub payload: PutPayload,
    /// Give up (with [`UploadError::DeadlineExceeded`]) if the object is not stored by then.
    pub deadline: Instant,
}

impl Message for Upload {
    type Result = Result<UploadOutcome, UploadError>;
}

/// A successful upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// PUT attempts made (1 if the first one succeeded).
    pub attempts: u32,
    /// Time from the start of the first attempt to success.
    pub elapsed: Duration,
    /// ETag reported by the store, if any.
    pub e_tag: Option<String>,
    /// The object was found already stored with our content (an earlier attempt, or an earlier
    /// `Upload` of the same key, landed even though its response was lost).
    pub already_existed: bool,
}

/// A failed upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// Transient failures until the deadline. The object may or may not be in the bucket (the
    /// last attempt may have landed after its response was lost); never commit it.
    #[error("upload deadline exceeded after {attempts} attempts, last error: {last_error}")]
    DeadlineExceeded {
        /// PUT attempts made.
        attempts: u32,
        /// The last transient error seen.
        last_error: String,
    },
    /// An error retrying cannot fix (permissions, invalid key, a different object already at
    /// this key, ...).
    #[error("permanent upload error: {0}")]
    Permanent(String),
    /// The uploader actor is gone (its arbiter stopped).
    #[error("uploader unavailable: {0}")]
    Unavailable(String),
}

/// Backoff between attempts: `initial`, doubling up to `max`, each delay jittered to between
/// half and all of its nominal value so that uploaders that failed together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    fn jittered(backoff: Duration) -> Duration {
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        Duration::from_nanos(half + rand::rng().random_range(0..=nanos - half))
    }
}

/// Uploads one object at a time into the store it holds.
pub struct Uploader {
    store: Arc<dyn ObjectStore>,
    policy: RetryPolicy,
}

impl Uploader {
    /// An uploader with a custom retry policy.
    pub fn with_policy(store: Arc<dyn ObjectStore>, policy: RetryPolicy) -> Self {
        Self { store, policy }
    }
}

impl Actor for Uploader {
    type Context = Context<Self>;
}

impl Handler<Upload> for Uploader {
    type Result = AtomicResponse<Self, Result<UploadOutcome, UploadError>>;

    fn handle(&mut self, msg: Upload, _ctx: &mut Context<Self>) -> Self::Result {
        let store = Arc::clone(&self.store);
        let policy = self.policy;
        let span =
            tracing::debug_span!("upload", key = %msg.key, bytes = msg.payload.content_length());
        let fut = async move { put_with_retries(store.as_ref(), policy, msg).await };
        AtomicResponse::new(Box::pin(actix::fut::wrap_future(fut.instrument(span))))
    }
}

/// Whether retrying might help. Unknown variants count as transient: the deadline bounds the
/// cost of being wrong, while wrongly giving up loses a batch.
fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
    )
}

/// What we learned about an object that a `Create` PUT said already exists.
enum Existing {
    /// Same size and same tail: our bytes.
    Ours { e_tag: Option<String> },
    /// Something else is stored under the key.
    Different(String),
}

async fn check_existing(
    store: &dyn ObjectStore,
    key: &Path,
    payload: &PutPayload,
) -> Result<Existing, object_store::Error> {
    let len = payload.content_length() as u64;
    let tail = TAIL_CHECK_LEN.min(len);
    // One request gives both the size (meta) and the tail; an empty object needs a HEAD since
    // a zero-length range is invalid. The tail is asked as an offset range, not a suffix range:
    // Azure has no suffix ranges (object_store refuses them), every store has offset ranges.
    let opts = if tail == 0 {
        GetOptions::new().with_head(true)
    } else {
        GetOptions::new().with_range(Some(GetRange::Offset(len - tail)))
    };
    let got = match store.get_opts(key, opts).await {
        Ok(got) => got,
        // A shorter object than the offset: the range is unsatisfiable; its size says enough.
        Err(e) if tail > 0 => {
            let meta = store.head(key).await?;
            if meta.size == len {
                return Err(e);
            }
            return Ok(Existing::Different(format!(
                "existing object is {} bytes, ours is {len}",
                meta.size
            )));
        }
        Err(e) => return Err(e),
    };
    let size = got.meta.size;
    let e_tag = got.meta.e_tag.clone();
    if size != len {
        return Ok(Existing::Different(format!(
            "existing object is {size} bytes, ours is {len}"
        )));
    }
    if tail > 0 {
        let theirs = got.bytes().await?;
        // size == len was checked, so tail <= len fits usize.
        if theirs.as_ref() != tail_of(payload, tail as usize).as_slice() {
            return Ok(Existing::Different(
                "existing object has the same size but different content".into(),
            ));
        }
    }
    Ok(Existing::Ours { e_tag })
}

/// The last `n` bytes of a chunked payload (at most its length).
fn tail_of(payload: &PutPayload, n: usize) -> Vec<u8> {
    let mut tail = Vec::with_capacity(n);
    for chunk in payload.as_ref().iter().rev() {
        let take = (n - tail.len()).min(chunk.len());
        // Collected back to front, reversed once at the end.
        tail.extend(chunk[chunk.len() - take..].iter().rev());
        if tail.len() == n {
            break;
        }
    }
    tail.reverse();
    tail
}

/// Puts `upload` with `PutMode::Create`, retrying transient failures until the deadline.
async fn put_with_retries(
    store: &dyn ObjectStore,
    policy: RetryPolicy,
    upload: Upload,
) -> Result<UploadOutcome, UploadError> {
    let Upload {
        key,
        payload,
        deadline,
    } = upload;
    let started = Instant::now();
    let tokio_deadline = tokio::time::Instant::from_std(deadline);
    // PutPayload is a list of Bytes, so cloning it per attempt does not copy the object.
    let mut attempts: u32 = 0;
    let mut backoff = policy.initial_backoff;
    let mut last_error = String::from("deadline passed before the first attempt");

    loop {
        if Instant::now() >= deadline {
            tracing::warn!(attempts, error = %last_error, "upload deadline exceeded");
            return Err(UploadError::DeadlineExceeded {
                attempts,
                last_error,
            });
        }
        attempts += 1;
        let opts = PutOptions::from(PutMode::Create);
        let put =
            tokio::time::timeout_at(tokio_deadline, store.put_opts(&key, payload.clone(), opts));
        let error = match put.await {
            Ok(Ok(res)) => {
                let elapsed = started.elapsed();
                tracing::debug!(
                    attempts,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "object stored"
                );
                return Ok(UploadOutcome {
                    attempts,
                    elapsed,
                    e_tag: res.e_tag,
                    already_existed: false,
                });
            }
            Ok(Err(object_store::Error::AlreadyExists { .. })) => {
                // Object ids are unique, so an existing object is either ours from an attempt
                // whose response was lost, or a bug. Only identical content counts as success.
                let check =
                    tokio::time::timeout_at(tokio_deadline, check_existing(store, &key, &payload));
                match check.await {
                    Ok(Ok(Existing::Ours { e_tag })) => {
                        tracing::info!(attempts, "object already stored by an earlier attempt");
                        return Ok(UploadOutcome {
                            attempts,
                            elapsed: started.elapsed(),
                            e_tag,
                            already_existed: true,
                        });
                    }
                    Ok(Ok(Existing::Different(why))) => {
                        tracing::error!(attempts, reason = %why, "a different object exists at this key");
                        return Err(UploadError::Permanent(format!(
                            "object {key} already exists: {why}"
                        )));
                    }
                    Ok(Err(e)) if is_transient(&e) => format!("checking existing object: {e}"),
                    Ok(Err(e)) => {
                        return Err(UploadError::Permanent(format!(
                            "checking existing object {key}: {e}"
                        )));
                    }
                    Err(_) => "checking existing object timed out at the deadline".to_owned(),
                }
            }
            Ok(Err(e)) if is_transient(&e) => e.to_string(),
            Ok(Err(e)) => {
                tracing::error!(attempts, error = %e, "object put failed permanently");
                return Err(UploadError::Permanent(e.to_string()));
            }
            Err(_) => "put timed out at the deadline".to_owned(),
        };
        tracing::warn!(attempts, error = %error, "object put failed, retrying");
        last_error = error;
        let wake = Instant::now() + RetryPolicy::jittered(backoff);
        backoff = (backoff * 2).min(policy.max_backoff);
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake.min(deadline))).await;
    }
}

/// A pool of [`Uploader`]s. Cheap to clone; clones share the uploaders and the admission limit.
///
/// Backpressure: at most `uploaders * (1 + mailbox capacity)` uploads are admitted (running or
/// queued in a mailbox); further [`UploaderPool::upload`] futures wait for a slot before they
/// send. The limit is enforced here, not by actix: `Addr::send` to a full mailbox still
/// enqueues the message on first poll (each sender clone gets its own slot), so the mailbox
/// capacity alone does not bound the queue.
#[derive(Clone)]
pub struct UploaderPool {
    uploaders: Vec<Addr<Uploader>>,
    /// Per-uploader count of admitted, unfinished uploads; only a load-spreading hint.
    pending: Arc<[AtomicUsize]>,
    /// Where the next least-pending scan starts, so ties rotate round robin.
    cursor: Arc<AtomicUsize>,
    admission: Arc<Semaphore>,
    capacity: usize,
}

impl std::fmt::Debug for UploaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploaderPool")
            .field("uploaders", &self.uploaders.len())
            .field("outstanding", &self.outstanding())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl UploaderPool {
    /// Starts `n` uploaders (at least one) on the current arbiter with default settings.
    pub fn start(store: Arc<dyn ObjectStore>, n: usize) -> Self {
        Self::start_with(store, n, RetryPolicy::default(), DEFAULT_MAILBOX_CAPACITY)
    }

    /// Starts `n` uploaders (at least one) on the current arbiter.
    pub fn start_with(
        store: Arc<dyn ObjectStore>,
        n: usize,
        policy: RetryPolicy,
        mailbox_capacity: usize,
    ) -> Self {
        let uploaders = (0..n.max(1))
            .map(|_| {
                let store = Arc::clone(&store);
                Uploader::create(move |ctx| {
                    ctx.set_mailbox_capacity(mailbox_capacity);
                    Uploader::with_policy(store, policy)
                })
            })
            .collect();
        Self::from_addrs(uploaders, mailbox_capacity)
    }

    /// Starts `per_arbiter` uploaders (at least one) on each of `arbiters`, so PUT overhead
    /// (TLS, hashing, signing) is spread over threads. With no arbiters, starts on the current
    /// one.
    pub fn start_in_arbiters(
        store: Arc<dyn ObjectStore>,
        arbiters: &[ArbiterHandle],
        per_arbiter: usize,
        policy: RetryPolicy,
        mailbox_capacity: usize,
    ) -> Self {
        if arbiters.is_empty() {
            return Self::start_with(store, per_arbiter, policy, mailbox_capacity);
        }
        let uploaders = arbiters
            .iter()
            .flat_map(|arb| std::iter::repeat_n(arb, per_arbiter.max(1)))
            .map(|arb| {
                let store = Arc::clone(&store);
                Uploader::start_in_arbiter(arb, move |ctx| {
                    ctx.set_mailbox_capacity(mailbox_capacity);
                    Uploader::with_policy(store, policy)
                })
            })
            .collect();
        Self::from_addrs(uploaders, mailbox_capacity)
    }

    fn from_addrs(uploaders: Vec<Addr<Uploader>>, mailbox_capacity: usize) -> Self {
        let capacity = uploaders.len() * (1 + mailbox_capacity);
        Self {
            pending: uploaders.iter().map(|_| AtomicUsize::new(0)).collect(),
            uploaders,
            cursor: Arc::new(AtomicUsize::new(0)),
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Number of uploaders.
    pub fn len(&self) -> usize {
        self.uploaders.len()
    }

    /// Always false: a pool has at least one uploader.
    pub fn is_empty(&self) -> bool {
        self.uploaders.is_empty()
    }

    /// Uploads admitted and not yet finished (running or queued in a mailbox).
    pub fn outstanding(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Most uploads admitted at once; further `upload` calls wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Picks the uploader with the fewest pending uploads, scanning from a rotating start.
    fn pick(&self) -> usize {
        let n = self.uploaders.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start.wrapping_add(k)) % n)
            .min_by_key(|&i| self.pending[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Uploads one object. The returned future first waits for an admission slot (this is the
    /// backpressure), then sends to the least busy uploader and resolves when the object is
    /// stored or the upload failed. Dropping the future before it resolves does not cancel an
    /// upload already handed to an uploader.
    pub fn upload(
        &self,
        upload: Upload,
    ) -> impl Future<Output = Result<UploadOutcome, UploadError>> + Send + 'static {
        let pool = self.clone();
        async move {
            let _permit = Arc::clone(&pool.admission)
                .acquire_owned()
                .await
                .map_err(|e| UploadError::Unavailable(e.to_string()))?;
            let i = pool.pick();
            let _pending = PendingGuard::new(Arc::clone(&pool.pending), i);
            pool.uploaders[i]
                .send(upload)
                .await
                .map_err(|e| UploadError::Unavailable(e.to_string()))?
        }
    }
}

/// Counts an upload against its uploader until the caller's future completes or is dropped.
struct PendingGuard {
    pending: Arc<[AtomicUsize]>,
    index: usize,
}

impl PendingGuard {
    fn new(pending: Arc<[AtomicUsize]>, index: usize) -> Self {
        pending[index].fetch_add(1, Ordering::Relaxed);
        Self { pending, index }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::{GetResult, ObjectStoreExt, PutResult};
    use std::fmt;
    use std::sync::atomic::AtomicU32;
    use tokio::sync::watch;

    /// Wraps InMemory: fails the first `fail_first` puts, optionally stores the first put and
    /// then reports a failure (a lost response), optionally holds puts at a gate, and tracks
    /// how many puts are in flight at once.
    #[derive(Debug)]
    struct TestStore {
        inner: InMemory,
        fail_first: AtomicU32,
        land_then_fail_first: bool,
        permanent: bool,
        puts: AtomicU32,
        gate: Option<Arc<Semaphore>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        in_flight_tx: watch::Sender<usize>,
    }

    impl TestStore {
        fn new() -> Self {
            Self {
                inner: InMemory::new(),
                fail_first: AtomicU32::new(0),
                land_then_fail_first: false,
                permanent: false,
                puts: AtomicU32::new(0),
                gate: None,
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                in_flight_tx: watch::Sender::new(0),
            }
        }

        fn failing(n: u32) -> Self {
            let s = Self::new();
            s.fail_first.store(n, Ordering::SeqCst);
            s
        }

        async fn do_put(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            let n = self.puts.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.in_flight_tx.send_replace(now);
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate open").forget();
            }
            let res = if self.permanent {
                Err(object_store::Error::PermissionDenied {
                    path: location.to_string(),
                    source: "denied".into(),
                })
            } else if self.land_then_fail_first && n == 0 {
                self.inner.put_opts(location, payload, opts).await?;
                Err(object_store::Error::Generic {
                    store: "test",
                    source: "connection reset after upload".into(),
                })
            } else if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok()
            {
                Err(object_store::Error::Generic {
                    store: "test",
                    source: "503 slow down".into(),
                })
            } else {
                self.inner.put_opts(location, payload, opts).await
            };
            let now = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
            self.in_flight_tx.send_replace(now);
            res
        }
    }

    impl fmt::Display for TestStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "TestStore")
        }
    }

    impl TestStore {
        async fn do_get(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
    }

    crate::test_support::delegating_object_store!(TestStore);

    fn fast_policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
        }
    }

    fn upload(key: &str, bytes: &'static [u8], within: Duration) -> Upload {
        Upload {
            key: Path::from(key),
            payload: PutPayload::from_static(bytes),
            deadline: Instant::now() + within,
        }
    }

    fn pool(store: &Arc<TestStore>, n: usize) -> UploaderPool {
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        UploaderPool::start_with(dyn_store, n, fast_policy(), DEFAULT_MAILBOX_CAPACITY)
    }

    #[test]
    fn tail_of_spans_chunks() {
        let payload: PutPayload = [
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"f"),
        ]
        .into_iter()
        .collect();
        assert_eq!(tail_of(&payload, 0), b"");
        assert_eq!(tail_of(&payload, 1), b"f");
        assert_eq!(tail_of(&payload, 4), b"cdef");
        assert_eq!(tail_of(&payload, 6), b"abcdef");
        assert_eq!(tail_of(&payload, 64), b"abcdef");
    }

    async fn stored(store: &TestStore, key: &str) -> Bytes {
        store
            .inner
            .get(&Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    const LONG: Duration = Duration::from_secs(10);

    #[actix_rt::test]
    async fn success_first_attempt() {
        let store = Arc::new(TestStore::new());
        let out = pool(&store, 1)
            .upload(upload("a/1.obj", b"hello", LONG))
            .await
            .unwrap();
        assert_eq!(out.attempts, 1);
        assert!(out.e_tag.is_some());
        assert!(!out.already_existed);
        assert_eq!(stored(&store, "a/1.obj").await, "hello");
    }

    #[actix_rt::test]
    async fn retries_transient_errors_then_succeeds() {
        let store = Arc::new(TestStore::failing(3));
        let out = pool(&store, 1)
            .upload(upload("a/2.obj", b"data", LONG))
            .await
            .unwrap();
        assert_eq!(out.attempts, 4);
        assert_eq!(stored(&store, "a/2.obj").await, "data");
    }

    #[actix_rt::test]
    async fn deadline_exceeded_after_several_attempts() {
        let store = Arc::new(TestStore::failing(u32::MAX));
        let started = Instant::now();
        let err = pool(&store, 1)
            .upload(upload("a/3.obj", b"data", Duration::from_millis(150)))
            .await
            .unwrap_err();
        match err {
            UploadError::DeadlineExceeded {
                attempts,
                last_error,
            } => {
                assert!(attempts > 1, "attempts {attempts}");
                assert!(last_error.contains("503"), "{last_error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[actix_rt::test]
    async fn past_deadline_makes_no_attempt() {
        let store = Arc::new(TestStore::new());
        let mut u = upload("a/4.obj", b"data", Duration::ZERO);
        u.deadline = Instant::now() - Duration::from_millis(1);
        let err = pool(&store, 1).upload(u).await.unwrap_err();
        assert!(matches!(
            err,
            UploadError::DeadlineExceeded { attempts: 0, .. }
        ));
        assert_eq!(store.puts.load(Ordering::SeqCst), 0);
    }

    #[actix_rt::test]
    async fn permanent_error_is_not_retried() {
        let mut s = TestStore::new();
        s.permanent = true;
        let store = Arc::new(s);
        let err = pool(&store, 1)
            .upload(upload("a/5.obj", b"x", LONG))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::Permanent(_)), "{err:?}");
        assert_eq!(store.puts.load(Ordering::SeqCst), 1);
    }

    #[actix_rt::test]
    async fn landed_attempt_with_lost_response_counts_as_success() {
        let mut s = TestStore::new();
        s.land_then_fail_first = true;
        let store = Arc::new(s);
        let out = pool(&store, 1)
            .upload(upload("a/6.obj", b"payload", LONG))
            .await
            .unwrap();
        assert_eq!(out.attempts, 2);
        assert!(out.already_existed);
        assert!(out.e_tag.is_some());
    }

    #[actix_rt::test]
    async fn existing_object_same_content_is_success_different_is_permanent() {
        let store = Arc::new(TestStore::new());
        store
            .inner
            .put(&Path::from("a/7.obj"), Bytes::from_static(b"same").into())
            .await
            .unwrap();
        store
            .inner
            .put(&Path::from("a/8.obj"), Bytes::from_static(b"diff").into())
            .await
            .unwrap();
        store
            .inner
            .put(&Path::from("a/9.obj"), Bytes::from_static(b"").into())
            .await
            .unwrap();
        let p = pool(&store, 1);
        let out = p.upload(upload("a/7.obj", b"same", LONG)).await.unwrap();
        assert!(out.already_existed);
        let err = p
            .upload(upload("a/8.obj", b"same", LONG))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::Permanent(_)), "{err:?}");
        let err = p
            .upload(upload("a/8.obj", b"longer", LONG))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::Permanent(_)), "{err:?}");
        let out = p.upload(upload("a/9.obj", b"", LONG)).await.unwrap();
        assert!(out.already_existed);
        assert_eq!(stored(&store, "a/8.obj").await, "diff");
        // Ours is longer than the tail checked and the stored one shorter than the offset of
        // that tail: the range cannot be served, the size tells.
        let long: &'static [u8] =
            Box::leak(vec![b'x'; TAIL_CHECK_LEN as usize * 3].into_boxed_slice());
        let err = p.upload(upload("a/8.obj", long, LONG)).await.unwrap_err();
        assert!(matches!(err, UploadError::Permanent(_)), "{err:?}");
    }

    async fn wait_in_flight(store: &TestStore, want: usize) {
        let mut rx = store.in_flight_tx.subscribe();
        tokio::time::timeout(LONG, rx.wait_for(|v| *v == want))
            .await
            .unwrap_or_else(|_| panic!("never saw {want} puts in flight"))
            .unwrap();
    }

    #[actix_rt::test]
    async fn pool_runs_uploads_in_parallel() {
        let gate = Arc::new(Semaphore::new(0));
        let mut s = TestStore::new();
        s.gate = Some(gate.clone());
        let store = Arc::new(s);
        let p = pool(&store, 2);
        let a = tokio::spawn(p.upload(upload("p/1.obj", b"1", LONG)));
        let b = tokio::spawn(p.upload(upload("p/2.obj", b"2", LONG)));
        // Both puts are held at the gate at the same time: only possible if they run in
        // parallel on different uploaders.
        wait_in_flight(&store, 2).await;
        gate.add_permits(2);
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 2);
        assert_eq!(p.outstanding(), 0);
    }

    #[actix_rt::test]
    async fn one_uploader_runs_one_put_at_a_time() {
        let gate = Arc::new(Semaphore::new(0));
        let mut s = TestStore::new();
        s.gate = Some(gate.clone());
        let store = Arc::new(s);
        let p = pool(&store, 1);
        let a = tokio::spawn(p.upload(upload("s/1.obj", b"1", LONG)));
        let b = tokio::spawn(p.upload(upload("s/2.obj", b"2", LONG)));
        wait_in_flight(&store, 1).await;
        // Give a concurrent second put every chance to start; it must not.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.in_flight.load(Ordering::SeqCst), 1);
        assert_eq!(p.outstanding(), 2);
        gate.add_permits(2);
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 1);
    }

    #[actix_rt::test]
    async fn admission_limit_gives_backpressure() {
        let gate = Arc::new(Semaphore::new(0));
        let mut s = TestStore::new();
        s.gate = Some(gate.clone());
        let store = Arc::new(s);
        let p = pool(&store, 1);
        assert_eq!(p.capacity(), 1 + DEFAULT_MAILBOX_CAPACITY);
        let keys: Vec<String> = (0..p.capacity() + 2)
            .map(|i| format!("b/{i}.obj"))
            .collect();
        let handles: Vec<_> = keys
            .iter()
            .map(|k| {
                tokio::spawn(p.upload(Upload {
                    key: Path::from(k.as_str()),
                    payload: PutPayload::from_static(b"x"),
                    deadline: Instant::now() + LONG,
                }))
            })
            .collect();
        wait_in_flight(&store, 1).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        // Two uploads wait for admission instead of piling into the mailbox.
        assert_eq!(p.outstanding(), p.capacity());
        gate.add_permits(keys.len());
        for h in handles {
            h.await.unwrap().unwrap();
        }
        assert_eq!(p.outstanding(), 0);
        assert_eq!(store.puts.load(Ordering::SeqCst) as usize, keys.len());
    }

    #[actix_rt::test]
    async fn pool_spreads_over_arbiters() {
        let store = Arc::new(TestStore::new());
        let arbiters = [actix::Arbiter::new(), actix::Arbiter::new()];
        let handles: Vec<_> = arbiters.iter().map(|a| a.handle()).collect();
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        let p = UploaderPool::start_in_arbiters(dyn_store, &handles, 2, fast_policy(), 2);
        assert_eq!(p.len(), 4);
        let outs = futures::future::join_all(
            (0..8).map(|i| p.upload(upload(&format!("r/{i}.obj"), b"z", LONG))),
        )
        .await;
        assert!(outs.iter().all(Result::is_ok));
        for a in arbiters {
            a.stop();
        }
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        for _ in 0..1000 {
            let d = RetryPolicy::jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
        assert_eq!(RetryPolicy::jittered(Duration::ZERO), Duration::ZERO);
    }
}
