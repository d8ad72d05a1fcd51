//! An in-process S3 server for integration tests: s3s-fs over a temporary directory, behind a
//! thin hyper service that counts requests by operation and injects faults (failed or slow
//! PUTs, failed GETs).
//!
//! It runs on its own thread with its own multi-thread tokio runtime, so it serves requests
//! whatever runtime the test uses (actix, tokio current-thread, none). Dropping the `TestS3`
//! stops the server and deletes the directory.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::{Body as _, Incoming};
use hyper::http::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};

pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key";
pub const BUCKET: &str = "test-bucket";

/// What kind of S3 request it was, from the method and the path (path-style addressing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    /// GET of an object (including range reads).
    GetObject,
    /// PUT of an object (including multipart parts and copies).
    PutObject,
    HeadObject,
    DeleteObject,
    /// GET on a bucket (listing).
    List,
    /// POST (multipart create/complete, multi-object delete).
    Post,
    Other,
}

fn classify(method: &Method, path: &str) -> S3Op {
    let path = path.trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    match (method, has_key) {
        (&Method::GET, true) => S3Op::GetObject,
        (&Method::GET, false) => S3Op::List,
        (&Method::PUT, true) => S3Op::PutObject,
        (&Method::HEAD, true) => S3Op::HeadObject,
        (&Method::DELETE, true) => S3Op::DeleteObject,
        (&Method::POST, _) => S3Op::Post,
        _ => S3Op::Other,
    }
}

/// Request counts since start (or the last [`TestS3::reset_counts`]). Faulted requests count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: u64,
    pub get: u64,
    pub put: u64,
    pub head: u64,
    pub delete: u64,
    pub list: u64,
    pub post: u64,
    pub other: u64,
    /// Requests answered with an injected error.
    pub injected_failures: u64,
}

#[derive(Default)]
struct State {
    total: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    head: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    post: AtomicU64,
    other: AtomicU64,
    injected_failures: AtomicU64,
    fail_puts: AtomicU64,
    fail_puts_status: AtomicU16,
    fail_gets: AtomicU64,
    fail_gets_status: AtomicU16,
    put_delay_nanos: AtomicU64,
}

impl State {
    fn record(&self, op: S3Op) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let counter = match op {
            S3Op::GetObject => &self.get,
            S3Op::PutObject => &self.put,
            S3Op::HeadObject => &self.head,
            S3Op::DeleteObject => &self.delete,
            S3Op::List => &self.list,
            S3Op::Post => &self.post,
            S3Op::Other => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes one pending fault for `op`, if any: the status to answer with.
    fn take_fault(&self, op: S3Op) -> Option<StatusCode> {
        let (remaining, status) = match op {
            S3Op::PutObject => (&self.fail_puts, &self.fail_puts_status),
            S3Op::GetObject => (&self.fail_gets, &self.fail_gets_status),
            _ => return None,
        };
        remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()?;
        self.injected_failures.fetch_add(1, Ordering::SeqCst);
        StatusCode::from_u16(status.load(Ordering::SeqCst)).ok()
    }

    fn counts(&self) -> RequestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        RequestCounts {
            total: l(&self.total),
            get: l(&self.get),
            put: l(&self.put),
            head: l(&self.head),
            delete: l(&self.delete),
            list: l(&self.list),
            post: l(&self.post),
            other: l(&self.other),
            injected_failures: l(&self.injected_failures),
        }
    }

    fn reset(&self) {
        for a in [
            &self.total,
            &self.get,
            &self.put,
            &self.head,
            &self.delete,
            &self.list,
            &self.post,
            &self.other,
            &self.injected_failures,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }
}

/// The s3s service with counting and fault injection in front.
#[derive(Clone)]
struct Faulty {
    inner: S3Service,
    state: Arc<State>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Faulty {
    type Response = Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let op = classify(req.method(), req.uri().path());
        self.state.record(op);
        let fault = self.state.take_fault(op);
        let delay = match op {
            S3Op::PutObject => {
                Duration::from_nanos(self.state.put_delay_nanos.load(Ordering::SeqCst))
            }
            _ => Duration::ZERO,
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(status) = fault {
                // Read the body first so the client sees a clean response, not a reset.
                let mut body = req.into_body();
                while let Some(frame) =
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                {
                    if frame.is_err() {
                        break;
                    }
                }
                return Ok(error_response(status));
            }
            hyper::service::Service::call(&inner, req).await
        })
    }
}

fn error_response(status: StatusCode) -> Response<s3s::Body> {
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => "SlowDown",
        _ => "InternalError",
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected failure</Message></Error>"
    );
    let mut response = Response::new(s3s::Body::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::http::header::CONTENT_TYPE,
        hyper::http::HeaderValue::from_static("application/xml"),
    );
    response
}

/// A running S3 server on 127.0.0.1 with one bucket.
pub struct TestS3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    state: Arc<State>,
    root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestS3 {
    /// Starts a server with bucket [`BUCKET`] and credentials [`ACCESS_KEY`] / [`SECRET_KEY`].
    pub fn start() -> TestS3 {
        let root = tempfile::tempdir().expect("temp dir for the test S3");
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs over the temp dir");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let state = Arc::new(State {
            fail_puts_status: AtomicU16::new(500),
            fail_gets_status: AtomicU16::new(500),
            ..State::default()
        });
        let service = Faulty {
            inner: builder.build(),
            state: state.clone(),
        };

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the test S3");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("test S3 address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("test-s3".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("test-s3-worker")
                    .enable_all()
                    .build()
                    .expect("test S3 runtime");
                runtime.block_on(serve(listener, service, stop_rx));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("test S3 thread");

        TestS3 {
            endpoint: format!("http://{addr}"),
            bucket: BUCKET.to_owned(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            state,
            root,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// An `s3://` URL for `--bucket-name` / `BucketUrl::parse`, credentials included.
    pub fn bucket_url(&self) -> String {
        format!(
            "s3://{}?endpoint={}&region=us-east-1&access_key_id={}&secret_access_key={}&allow_http=true",
            self.bucket, self.endpoint, self.access_key, self.secret_key
        )
    }

    /// Like [`Self::bucket_url`] with object_store's own retries set (0 disables them), so an
    /// injected failure reaches the caller instead of being retried away.
    pub fn bucket_url_with_retries(&self, max_retries: usize) -> String {
        format!("{}&max_retries={max_retries}", self.bucket_url())
    }

    pub fn counts(&self) -> RequestCounts {
        self.state.counts()
    }

    /// GETs of objects (range reads included) since start or the last reset.
    pub fn get_count(&self) -> u64 {
        self.counts().get
    }

    /// PUTs of objects (failed ones included) since start or the last reset.
    pub fn put_count(&self) -> u64 {
        self.counts().put
    }

    pub fn request_count(&self) -> u64 {
        self.counts().total
    }

    pub fn reset_counts(&self) {
        self.state.reset();
    }

    /// The next `n` object PUTs fail with 500 InternalError (nothing is stored).
    pub fn fail_next_puts(&self, n: u64) {
        self.fail_next_puts_with_status(n, 500);
    }

    /// The next `n` object PUTs fail with `status` (500 or 503 are the useful ones).
    pub fn fail_next_puts_with_status(&self, n: u64, status: u16) {
        self.state.fail_puts_status.store(status, Ordering::SeqCst);
        self.state.fail_puts.store(n, Ordering::SeqCst);
    }

    /// The next `n` object GETs fail with `status`.
    pub fn fail_next_gets_with_status(&self, n: u64, status: u16) {
        self.state.fail_gets_status.store(status, Ordering::SeqCst);
        self.state.fail_gets.store(n, Ordering::SeqCst);
    }

    /// Every object PUT waits `delay` before being handled (zero turns it off).
    pub fn set_put_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.state.put_delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// The directory s3s-fs serves; the bucket is the subdirectory named after it.
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// Where the object `key` lives on disk (to corrupt or remove it in tests).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(&self.bucket).join(key)
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    service: Faulty,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => panic!("test S3 listener: {err}"),
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        // Without it small responses wait on delayed ACKs (~40 ms per request).
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
