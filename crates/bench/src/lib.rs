//! `infinistream bench`: a NATS JetStream client benchmark that works against any server speaking
//! the protocol (an InfiniStream agent or nats-server), built on async-nats.
//!
//! Owns the three workloads (publish, consume, end to end), closed loop (as fast as the in-flight
//! limit allows) or open loop (`rate`: publishes on a schedule, latency from the scheduled time),
//! their latency histogram, the live progress line on stderr, the optional scrape of an agent's
//! Prometheus `/metrics` (objects written, bucket requests, PUT and flush-stage quantiles from the
//! histograms' deltas, issue 7's latency bound), and the [`Report`] printed for people or as JSON.
//! Does not own any server-side code: it only ever talks to servers as an ordinary client would.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, stream};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};

mod route;
pub use route::{RouteOptions, RouteReport, run_route};

/// Bytes at the start of an end-to-end payload holding the publish time (unix nanoseconds).
const STAMP_BYTES: usize = 8;
/// How long a publish or API request may wait for its answer before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one pull request waits on the server before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// A consumer that receives nothing for this long gives up (the stream holds fewer messages).
const CONSUME_IDLE: Duration = Duration::from_secs(10);
/// Streams created concurrently at the start of a run.
const CREATE_CONCURRENCY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid bench options: {0}")]
    Options(String),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot create stream {stream}: {reason}")]
    CreateStream { stream: String, reason: String },
    #[error("cannot open stream {stream}: {reason}")]
    GetStream { stream: String, reason: String },
    #[error("cannot create a consumer on stream {stream}: {reason}")]
    CreateConsumer { stream: String, reason: String },
    #[error("pull request on stream {stream} failed: {reason}")]
    Pull { stream: String, reason: String },
    #[error("every publish failed, first error: {0}")]
    AllPublishesFailed(String),
    #[error("cannot read metrics from {url}: {reason}")]
    Metrics { url: String, reason: String },
    #[error("cannot start the bench runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot encode the report: {0}")]
    Encode(serde_json::Error),
    #[error("a bench task failed: {0}")]
    Task(String),
}

/// Where streams created by the bench keep their messages (nats-server honours it; an agent
/// always writes to its bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    File,
    Memory,
}

impl std::str::FromStr for StreamStorage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "file" => Ok(StreamStorage::File),
            "memory" | "mem" => Ok(StreamStorage::Memory),
            other => Err(format!("unknown storage {other:?}: use file or memory")),
        }
    }
}

/// When publishers stop: after a number of messages in total, or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Msgs(u64),
    Duration(Duration),
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub url: String,
    /// Connections, each publishing its share of the messages.
    pub clients: usize,
    /// Streams `bench-<i>` (subjects `bench.<i>.>`), published to round-robin.
    pub streams: usize,
    /// Distinct subjects per stream (`bench.<i>.m` for one, `bench.<i>.m<k>` for more), also
    /// round-robin.
    pub subjects: usize,
    /// Payload bytes per message.
    pub size: usize,
    pub limit: Limit,
    /// Most publishes a client has sent and not yet seen acknowledged.
    pub inflight: usize,
    /// Create the streams first (else they must exist).
    pub create: bool,
    pub storage: StreamStorage,
    /// An agent's `/metrics` URL, to report objects written and bucket requests.
    pub metrics_url: Option<String>,
    /// Print a progress line on stderr once per second.
    pub progress: bool,
    /// Open loop: publishes per second in total, split evenly over the clients (one publish per
    /// slot of `clients / rate` seconds, at a random point of the slot). Each publish is
    /// sent at its scheduled time whether or not earlier ones were acknowledged (still at most
    /// `inflight` unacknowledged per client), and its latency counts from that time. `None`: closed
    /// loop, a publish goes out as soon as `inflight` allows.
    pub rate: Option<f64>,
    /// The agent's batch window, used only for issue 7's latency bound in rate mode.
    pub window: Duration,
}

impl PublishOptions {
    /// Defaults for a small run against `url`: 1 client, 1 stream, 128 B, 10,000 messages.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clients: 1,
            streams: 1,
            subjects: 1,
            size: 128,
            limit: Limit::Msgs(10_000),
            inflight: 256,
            create: true,
            storage: StreamStorage::File,
            metrics_url: None,
            progress: false,
            rate: None,
            window: DEFAULT_WINDOW,
        }
    }
}

/// The batch window issue 7's latency target is stated for.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub url: String,
    pub stream: String,
    /// Messages to read before stopping.
    pub msgs: u64,
    /// Messages asked for by one pull request.
    pub batch: usize,
    /// Acknowledge every message (explicit ack policy) rather than use ack policy none.
    pub ack: bool,
    /// A durable consumer name; an ephemeral consumer when absent.
    pub durable: Option<String>,
    pub metrics_url: Option<String>,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub publish: PublishOptions,
    pub batch: usize,
    pub ack: bool,
}

#[derive(Debug, Clone)]
pub enum BenchCommand {
    Publish(PublishOptions),
    Consume(ConsumeOptions),
    E2e(E2eOptions),
    /// Core NATS between two servers of one cluster.
    Route(RouteOptions),
}

/// The outcome of one run; printed for people, or as one JSON document with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `publish`, `consume` or `e2e`.
    pub workload: String,
    pub url: String,
    pub params: Params,
    pub published: Option<Throughput>,
    /// From sending a publish to receiving its ack; in rate mode from the time the publish was
    /// scheduled, so a sender held up by the in-flight limit or its own lateness does not hide
    /// latency (coordinated omission).
    pub publish_ack_latency_ms: Option<Latency>,
    /// Rate mode only: from the publish actually being sent to its ack.
    pub publish_ack_latency_from_send_ms: Option<Latency>,
    /// Rate mode only: how well the senders kept to their schedule.
    pub open_loop: Option<OpenLoop>,
    pub consumed: Option<Throughput>,
    /// From sending a publish (its scheduled time in rate mode) to a consumer receiving the
    /// message (same clock, same process).
    pub e2e_latency_ms: Option<Latency>,
    /// What the agent reported on `/metrics` during the run (absent without `--metrics-url`).
    pub agent: Option<AgentMetrics>,
    /// Rate mode with `--metrics-url` only: issue 7's publish-to-ack bound from the agent's own
    /// PUT and commit times, and whether the measured latency met it.
    pub latency_target: Option<LatencyTarget>,
    /// The first error seen, when some operations failed.
    pub first_error: Option<String>,
    /// `route` only: throughput, round trip and interest convergence across two servers.
    pub route: Option<RouteReport>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Params {
    pub clients: Option<usize>,
    pub streams: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<usize>,
    pub stream: Option<String>,
    pub size: Option<usize>,
    pub inflight: Option<usize>,
    pub batch: Option<usize>,
    pub ack: Option<bool>,
    pub storage: Option<StreamStorage>,
    /// Publishes per second in total (rate mode); absent for a closed loop.
    pub rate: Option<f64>,
    /// The window the latency bound is computed for (rate mode).
    pub window_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
}

impl Throughput {
    fn new(msgs: u64, bytes: u64, errors: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Self {
            msgs,
            bytes,
            errors,
            seconds,
            msgs_per_sec: msgs as f64 / seconds,
            mib_per_sec: bytes as f64 / seconds / (1024.0 * 1024.0),
        }
    }
}

/// Latency quantiles in milliseconds (from a log-bucket histogram: within 1.6 %).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// How an open-loop run kept to its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// Publishes per second asked for, in total and per client.
    pub rate: f64,
    pub rate_per_client: f64,
    /// Publishes sent (acknowledged or not).
    pub sent: u64,
    /// Sends that found `inflight` publishes unacknowledged and waited for an ack: the schedule
    /// slipped (their latency still counts from the scheduled time).
    pub late_sends: u64,
    /// From the scheduled time to the actual send. Each client's sender sleeps on a thread of
    /// its own, to within ~0.1 ms; more means the client machine was short of CPU.
    pub send_lag_ms: Option<Latency>,
}

/// Quantiles of one agent histogram over the run, from the difference of two scrapes. Linear
/// interpolation inside the Prometheus buckets (as `histogram_quantile`), so only as fine as the
/// bucket bounds (1, 2.5, 5, 10, 25, 50, 100 ms, ...).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct AgentQuantiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Issue 7: publish-to-ack p50 <= window/2 + PUT p50 + commit p50 + 3 ms and
/// p99 <= window + PUT p99 + commit p50 + 10 ms.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyTarget {
    pub window_ms: f64,
    pub put_p50_ms: f64,
    pub put_p99_ms: f64,
    pub commit_p50_ms: f64,
    pub p50_bound_ms: f64,
    pub p50_ms: f64,
    pub p50_met: bool,
    pub p99_bound_ms: f64,
    pub p99_ms: f64,
    pub p99_met: bool,
}

/// Deltas of an agent's counters over the run.
#[derive(Debug, Clone, Serialize)]
pub struct AgentMetrics {
    pub objects_written: u64,
    pub objects_per_sec: f64,
    /// Published messages per object written (0 when no object was written).
    pub msgs_per_object: f64,
    /// Every bucket request (all operations and outcomes).
    pub bucket_requests: u64,
    /// Bucket requests by `op/outcome`.
    pub bucket_requests_by_op: BTreeMap<String, u64>,
    /// How the `*_ms` quantiles below were computed.
    pub quantiles: &'static str,
    /// Successful object PUTs (`infinistream_object_store_seconds{op="put",outcome="ok"}`).
    pub put_ms: Option<AgentQuantiles>,
    /// Flush stages (`infinistream_flush_stage_seconds{stage}`): the commit to the control plane,
    /// the upload (PUT with retries), and the wait from an object's first message to its seal.
    pub commit_ms: Option<AgentQuantiles>,
    pub upload_ms: Option<AgentQuantiles>,
    pub wait_ms: Option<AgentQuantiles>,
    /// The agent's own publish-to-ack (`infinistream_publish_ack_seconds`: read to ack sent).
    pub publish_ack_ms: Option<AgentQuantiles>,
}

// ---------------------------------------------------------------------------------------------
// Histogram

/// A log-linear histogram of microseconds: exact below 128 µs, then 64 buckets per power of two
/// (relative error under 1.6 %), constant memory whatever the run length.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

const LINEAR: u64 = 128;
const SUB: u64 = 64;
const BUCKETS: usize = (LINEAR + SUB * 58) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < LINEAR {
            return us as usize;
        }
        let exp = 63 - u64::from(us.leading_zeros()); // >= 7
        let mantissa = us >> (exp - 6); // in [64, 128)
        (LINEAR + (exp - 7) * SUB + (mantissa - SUB)) as usize
    }

    /// The middle of bucket `index`, in microseconds.
    fn value(index: usize) -> f64 {
        let index = index as u64;
        if index < LINEAR {
            return index as f64;
        }
        let exp = (index - LINEAR) / SUB + 7;
        let mantissa = (index - LINEAR) % SUB + SUB;
        let low = mantissa << (exp - 6);
        let width = 1u64 << (exp - 6);
        low as f64 + width as f64 / 2.0
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = Self::index(us).min(BUCKETS - 1);
        self.counts[index] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max_us as f64;
        }
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index).min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    pub fn summary(&self) -> Option<Latency> {
        if self.total == 0 {
            return None;
        }
        let ms = |us: f64| (us / 1000.0 * 1000.0).round() / 1000.0;
        Some(Latency {
            count: self.total,
            mean: ms(self.sum_us as f64 / self.total as f64),
            p50: ms(self.quantile_us(0.50)),
            p90: ms(self.quantile_us(0.90)),
            p99: ms(self.quantile_us(0.99)),
            p999: ms(self.quantile_us(0.999)),
            max: ms(self.max_us as f64),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points

/// Runs `command` on a new multi-threaded tokio runtime and prints its report: a JSON document on
/// stdout with `json`, else a few lines for people.
pub fn run_blocking(command: BenchCommand, json: bool) -> Result<Report, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let report = runtime.block_on(run(command))?;
    let mut out = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string_pretty(&report).map_err(BenchError::Encode)?
    } else {
        report.to_text()
    };
    // A closed stdout (`| head`) must not turn a finished run into an error.
    let _ = writeln!(out, "{text}");
    Ok(report)
}

/// Runs one workload to completion (the library entry point; needs a tokio runtime).
pub async fn run(command: BenchCommand) -> Result<Report, BenchError> {
    match command {
        BenchCommand::Publish(options) => run_publish(options).await,
        BenchCommand::Consume(options) => run_consume(options).await,
        BenchCommand::E2e(options) => run_e2e(options).await,
        BenchCommand::Route(options) => run_route(options).await,
    }
}

fn validate_publish(o: &PublishOptions) -> Result<(), BenchError> {
    if o.clients == 0 || o.streams == 0 || o.inflight == 0 {
        return Err(BenchError::Options(
            "--clients, --streams and --inflight must be at least 1".into(),
        ));
    }
    if let Some(rate) = o.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(BenchError::Options(
            "--rate must be a positive number of messages per second".into(),
        ));
    }
    if o.window.is_zero() {
        return Err(BenchError::Options(
            "--window-ms must be more than zero".into(),
        ));
    }
    match o.limit {
        Limit::Msgs(0) => Err(BenchError::Options("--msgs must be at least 1".into())),
        Limit::Duration(d) if d.is_zero() => Err(BenchError::Options(
            "--duration must be more than zero".into(),
        )),
        _ => Ok(()),
    }
}

fn publish_params(o: &PublishOptions) -> Params {
    Params {
        clients: Some(o.clients),
        streams: Some(o.streams),
        subjects: (o.subjects > 1).then_some(o.subjects),
        size: Some(o.size),
        inflight: Some(o.inflight),
        storage: Some(o.storage),
        rate: o.rate,
        window_ms: o.rate.map(|_| o.window.as_secs_f64() * 1000.0),
        ..Params::default()
    }
}

/// Publishes from `clients` connections, round-robin over `streams` streams.
pub async fn run_publish(options: PublishOptions) -> Result<Report, BenchError> {
    validate_publish(&options)?;
    let contexts = connect_all(&options.url, options.clients, options.inflight).await?;
    let subjects = prepare_streams(&contexts[0], &options).await?;
    let before = scrape_opt(options.metrics_url.as_deref()).await?;

    let counters = Arc::new(Counters::default());
    let progress = options
        .progress
        .then(|| spawn_progress(counters.clone(), None));
    let started = Instant::now();
    let outcome = publish_all(&options, contexts, subjects, counters.clone(), false).await;
    let elapsed = started.elapsed();
    stop_progress(progress);
    let outcome = outcome?;
    let after = scrape_opt(options.metrics_url.as_deref()).await?;

    let published = counters.throughput(elapsed);
    let agent = agent_metrics(before, after, published.msgs, elapsed);
    let publish_ack_latency_ms = outcome.latency.summary();
    Ok(Report {
        workload: "publish".into(),
        url: options.url.clone(),
        params: publish_params(&options),
        published: Some(published),
        latency_target: latency_target(&options, publish_ack_latency_ms.as_ref(), agent.as_ref()),
        publish_ack_latency_ms,
        publish_ack_latency_from_send_ms: outcome.send_to_ack(&options),
        open_loop: outcome.open_loop(&options),
        consumed: None,
        e2e_latency_ms: None,
        agent,
        first_error: outcome.first_error,
        route: None,
    })
}

/// Reads `msgs` messages of an existing stream with a pull consumer.
pub async fn run_consume(options: ConsumeOptions) -> Result<Report, BenchError> {
    if options.msgs == 0 || options.batch == 0 {
        return Err(BenchError::Options(
            "--msgs and --batch must be at least 1".into(),
        ));
    }
    let js = connect_all(&options.url, 1, 1)
        .await?
        .pop()
        .ok_or_else(|| BenchError::Options("no connection".into()))?;
    let stream = get_stream(&js, &options.stream).await?;
    let consumer = create_pull_consumer(
        &stream,
        &options.stream,
        options.durable.clone(),
        options.ack,
        consumer::DeliverPolicy::All,
    )
    .await?;
    let before = scrape_opt(options.metrics_url.as_deref()).await?;
    let counters = Arc::new(Counters::default());
    let progress = options
        .progress
        .then(|| spawn_progress(counters.clone(), None));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let result = consume_loop(ConsumeLoop {
        consumer: consumer.clone(),
        stream: options.stream.clone(),
        limit: Some(options.msgs),
        batch: options.batch,
        ack: options.ack,
        counters: counters.clone(),
        stop,
        stamped: false,
    })
    .await;
    let elapsed = started.elapsed();
    stop_progress(progress);
    // Best effort: a durable the user named is theirs to keep.
    if options.durable.is_none() {
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
    }
    let first_error = result?.first_error;
    let after = scrape_opt(options.metrics_url.as_deref()).await?;
    let consumed = counters.throughput(elapsed);
    let agent = agent_metrics(before, after, 0, elapsed);
    Ok(Report {
        workload: "consume".into(),
        url: options.url.clone(),
        params: Params {
            stream: Some(options.stream.clone()),
            batch: Some(options.batch),
            ack: Some(options.ack),
            ..Params::default()
        },
        published: None,
        publish_ack_latency_ms: None,
        publish_ack_latency_from_send_ms: None,
        open_loop: None,
        consumed: Some(consumed),
        e2e_latency_ms: None,
        agent,
        latency_target: None,
        first_error,
        route: None,
    })
}

/// Publishes as [`run_publish`] while one pull consumer per stream reads the new messages; the
/// payload carries its publish time, so receipt latency is measured end to end.
pub async fn run_e2e(options: E2eOptions) -> Result<Report, BenchError> {
    let publish = options.publish;
    validate_publish(&publish)?;
    if publish.size < STAMP_BYTES {
        return Err(BenchError::Options(format!(
            "e2e needs --size of at least {STAMP_BYTES} bytes (the publish time travels in the payload)"
        )));
    }
    if options.batch == 0 {
        return Err(BenchError::Options("--batch must be at least 1".into()));
    }
    let contexts = connect_all(&publish.url, publish.clients, publish.inflight).await?;
    let consumer_contexts = connect_all(&publish.url, publish.clients, publish.inflight).await?;
    let subjects = prepare_streams(&contexts[0], &publish).await?;

    let mut consumers = Vec::with_capacity(publish.streams);
    for i in 0..publish.streams {
        let name = stream_name(i);
        let js = &consumer_contexts[i % consumer_contexts.len()];
        let stream = get_stream(js, &name).await?;
        let consumer = create_pull_consumer(
            &stream,
            &name,
            None,
            options.ack,
            consumer::DeliverPolicy::New,
        )
        .await?;
        consumers.push((stream, name, consumer));
    }
    let before = scrape_opt(publish.metrics_url.as_deref()).await?;

    let pub_counters = Arc::new(Counters::default());
    let sub_counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::with_capacity(consumers.len());
    for (_, name, consumer) in &consumers {
        readers.push(tokio::spawn(consume_loop(ConsumeLoop {
            consumer: consumer.clone(),
            stream: name.clone(),
            limit: None,
            batch: options.batch,
            ack: options.ack,
            counters: sub_counters.clone(),
            stop: stop.clone(),
            stamped: true,
        })));
    }
    let progress = publish
        .progress
        .then(|| spawn_progress(pub_counters.clone(), Some(sub_counters.clone())));
    let started = Instant::now();
    let outcome = publish_all(&publish, contexts, subjects, pub_counters.clone(), true).await;
    let pub_elapsed = started.elapsed();

    // Let consumers catch up with everything acknowledged, then stop them.
    let acked = pub_counters.msgs.load(Ordering::Relaxed);
    let mut last = sub_counters.msgs.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while last < acked && last_change.elapsed() < CONSUME_IDLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sub_counters.msgs.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let sub_elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut e2e = Histogram::new();
    let mut first_error = None;
    for reader in readers {
        match reader.await {
            Ok(Ok(done)) => {
                e2e.merge(&done.latency);
                first_error = first_error.or(done.first_error);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e.to_string())),
            Err(e) => first_error = first_error.or(Some(e.to_string())),
        }
    }
    stop_progress(progress);
    for (stream, _, consumer) in &consumers {
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
    }
    let outcome = outcome?;
    let after = scrape_opt(publish.metrics_url.as_deref()).await?;
    let published = pub_counters.throughput(pub_elapsed);
    let agent = agent_metrics(before, after, published.msgs, pub_elapsed);
    let mut params = publish_params(&publish);
    params.batch = Some(options.batch);
    params.ack = Some(options.ack);
    let publish_ack_latency_ms = outcome.latency.summary();
    Ok(Report {
        workload: "e2e".into(),
        url: publish.url.clone(),
        params,
        published: Some(published),
        latency_target: latency_target(&publish, publish_ack_latency_ms.as_ref(), agent.as_ref()),
        publish_ack_latency_ms,
        publish_ack_latency_from_send_ms: outcome.send_to_ack(&publish),
        open_loop: outcome.open_loop(&publish),
        consumed: Some(sub_counters.throughput(sub_elapsed)),
        e2e_latency_ms: e2e.summary(),
        agent,
        first_error: outcome.first_error.or(first_error),
        route: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Publishing

#[derive(Debug, Default)]
struct Counters {
    msgs: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn throughput(&self, elapsed: Duration) -> Throughput {
        Throughput::new(
            self.msgs.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            elapsed,
        )
    }
}

#[derive(Default)]
struct PublishOutcome {
    /// From when each publish was due (open loop) or sent (closed loop) to its ack.
    latency: Histogram,
    /// From each publish being sent to its ack.
    from_send: Histogram,
    /// Open loop: from when each publish was due to its send.
    send_lag: Histogram,
    sent: u64,
    late_sends: u64,
    first_error: Option<String>,
}

impl PublishOutcome {
    fn merge(&mut self, other: PublishOutcome) {
        self.latency.merge(&other.latency);
        self.from_send.merge(&other.from_send);
        self.send_lag.merge(&other.send_lag);
        self.sent += other.sent;
        self.late_sends += other.late_sends;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn send_to_ack(&self, options: &PublishOptions) -> Option<Latency> {
        options.rate.and_then(|_| self.from_send.summary())
    }

    fn open_loop(&self, options: &PublishOptions) -> Option<OpenLoop> {
        let rate = options.rate?;
        Some(OpenLoop {
            rate,
            rate_per_client: rate / options.clients.max(1) as f64,
            sent: self.sent,
            late_sends: self.late_sends,
            send_lag_ms: self.send_lag.summary(),
        })
    }
}

fn stream_name(i: usize) -> String {
    format!("bench-{i}")
}

/// `n` connections; each context lets `inflight` acks be pending (waiting, not failing, beyond).
async fn connect_all(
    url: &str,
    n: usize,
    inflight: usize,
) -> Result<Vec<jetstream::Context>, BenchError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(url)
            .await
            .map_err(|source| BenchError::Connect {
                url: url.to_owned(),
                source,
            })?;
        out.push(
            jetstream::ContextBuilder::new()
                .timeout(REQUEST_TIMEOUT)
                .max_ack_inflight(inflight.max(1))
                .backpressure_on_inflight(true)
                .build(client),
        );
    }
    Ok(out)
}

/// Creates (unless told not to) the streams and returns the subject published to on each.
async fn prepare_streams(
    js: &jetstream::Context,
    options: &PublishOptions,
) -> Result<Arc<Vec<String>>, BenchError> {
    if options.create {
        let storage = match options.storage {
            StreamStorage::File => stream::StorageType::File,
            StreamStorage::Memory => stream::StorageType::Memory,
        };
        let results: Vec<Result<(), BenchError>> = futures::stream::iter(0..options.streams)
            .map(|i| async move {
                let name = stream_name(i);
                let config = stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("bench.{i}.>")],
                    storage,
                    allow_direct: true,
                    ..Default::default()
                };
                match js.create_stream(config).await {
                    Ok(_) => Ok(()),
                    // An existing stream with other settings is fine: the bench only appends.
                    Err(create) => match js.get_stream(&name).await {
                        Ok(_) => Ok(()),
                        Err(_) => Err(BenchError::CreateStream {
                            stream: name,
                            reason: create.to_string(),
                        }),
                    },
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    // Consecutive publishes go to the next stream, then to the next subject of each.
    let per_stream = options.subjects.max(1);
    Ok(Arc::new(
        (0..per_stream)
            .flat_map(|k| {
                (0..options.streams).map(move |i| match per_stream {
                    1 => format!("bench.{i}.m"),
                    _ => format!("bench.{i}.m{k}"),
                })
            })
            .collect(),
    ))
}

/// What each publishing client must do.
#[derive(Debug, Clone, Copy)]
enum Quota {
    Msgs(u64),
    Until(Instant),
}

/// Open loop: publish `i` of a client is due at a random point of its slot
/// `[start + i * interval, start + (i + 1) * interval)`: exactly one publish per slot, so the rate
/// is exact, yet the times are not locked to the agent's window. With even spacing at a rate
/// commensurate with the window (100/s against 50 ms: five publishes per window, always at the
/// same five offsets from the tick) every publish would wait the same few fixed times, and the
/// median depended on the phase between client and agent by up to an interval (we saw 23.7 ms
/// against an expected ~27); the target assumes publishes arriving at random.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    interval_secs: f64,
}

impl Schedule {
    /// `within` (0..1) places the publish in its slot. Computed from `i` each time rather than by
    /// adding intervals, so rounding never drifts.
    fn due(&self, i: u64, within: f64) -> Instant {
        self.start + Duration::from_secs_f64((i as f64 + within) * self.interval_secs)
    }
}

async fn publish_all(
    options: &PublishOptions,
    contexts: Vec<jetstream::Context>,
    subjects: Arc<Vec<String>>,
    counters: Arc<Counters>,
    stamped: bool,
) -> Result<PublishOutcome, BenchError> {
    let payload = Bytes::from(vec![b'x'; options.size]);
    let n = contexts.len() as u64;
    // One start for every client, so their schedules interleave.
    let start = Instant::now();
    let per_client = options.rate.map(|rate| rate / n as f64);
    let mut tasks = Vec::with_capacity(contexts.len());
    for (id, js) in contexts.into_iter().enumerate() {
        let quota = match options.limit {
            Limit::Msgs(total) => {
                let share = total / n + u64::from((id as u64) < total % n);
                Quota::Msgs(share)
            }
            Limit::Duration(d) => Quota::Until(match per_client {
                Some(_) => start + d,
                None => Instant::now() + d,
            }),
        };
        if matches!(quota, Quota::Msgs(0)) {
            continue;
        }
        let schedule = per_client.map(|rate| Schedule {
            start,
            interval_secs: 1.0 / rate,
        });
        tasks.push(tokio::spawn(publish_client(PublishClient {
            js,
            // Clients start on different streams so a few clients still spread over all of them.
            offset: id * subjects.len() / n as usize,
            subjects: subjects.clone(),
            payload: payload.clone(),
            quota,
            schedule,
            inflight: options.inflight,
            counters: counters.clone(),
            stamped,
        })));
    }
    let mut total = PublishOutcome::default();
    for task in tasks {
        match task.await {
            Ok(done) => total.merge(done),
            Err(e) => return Err(BenchError::Task(e.to_string())),
        }
    }
    if counters.msgs.load(Ordering::Relaxed) == 0 {
        return Err(BenchError::AllPublishesFailed(
            total
                .first_error
                .unwrap_or_else(|| "no publish was acknowledged".into()),
        ));
    }
    Ok(total)
}

struct PublishClient {
    js: jetstream::Context,
    offset: usize,
    subjects: Arc<Vec<String>>,
    payload: Bytes,
    quota: Quota,
    /// Open loop; `None` sends as fast as `inflight` allows.
    schedule: Option<Schedule>,
    inflight: usize,
    counters: Arc<Counters>,
    stamped: bool,
}

/// A publish waiting for its ack.
struct Pending {
    /// When it was due: the send time in a closed loop, the schedule's in an open one.
    due: Instant,
    sent: Instant,
    permit: tokio::sync::OwnedSemaphorePermit,
    ack: jetstream::context::PublishAckFuture,
}

/// One connection: sends publishes while fewer than `inflight` are unacknowledged (and, in an
/// open loop, each at its scheduled time); a separate task awaits the acks so latency is taken
/// when an ack arrives, not when the sender gets to it.
async fn publish_client(c: PublishClient) -> PublishOutcome {
    let (tx, rx) = mpsc::unbounded_channel::<Pending>();
    let collector = tokio::spawn(collect_acks(rx, c.counters.clone(), c.payload.len() as u64));
    // The connection must outlive the sender: closing it would fail the acks still awaited.
    let connection = c.js.clone();
    let handle = tokio::runtime::Handle::current();
    // An open-loop sender sleeps on a thread of its own: tokio's timers have a 1 ms resolution,
    // which made sends ~1 ms late, and that lag counts against the server (latency is taken from
    // the schedule) within a target that allows 3 ms of overhead. A thread sleeps to ~0.1 ms.
    // `Handle::block_on` there relies on worker threads to drive I/O, hence multi-thread only.
    let sender = if c.schedule.is_some()
        && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::spawn_blocking(move || handle.block_on(send_loop(c, tx, Pacer::Thread)))
    } else {
        tokio::spawn(send_loop(c, tx, Pacer::Tokio))
    };
    let sent = sender.await.unwrap_or_else(|e| SendOutcome {
        first_error: Some(e.to_string()),
        ..SendOutcome::default()
    });
    let mut done = match collector.await {
        Ok(done) => done,
        Err(e) => PublishOutcome {
            first_error: Some(e.to_string()),
            ..PublishOutcome::default()
        },
    };
    drop(connection);
    done.first_error = sent.first_error.or(done.first_error);
    done.sent = sent.sent;
    done.late_sends = sent.late;
    done.send_lag = sent.send_lag;
    done
}

/// How an open-loop sender waits for a publish's scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacer {
    /// `tokio::time::sleep_until` (1 ms resolution).
    Tokio,
    /// `std::thread::sleep`: only on a thread that runs nothing else.
    Thread,
}

#[derive(Default)]
struct SendOutcome {
    sent: u64,
    late: u64,
    send_lag: Histogram,
    first_error: Option<String>,
}

async fn send_loop(
    c: PublishClient,
    tx: mpsc::UnboundedSender<Pending>,
    pacer: Pacer,
) -> SendOutcome {
    let permits = Arc::new(Semaphore::new(c.inflight));
    let mut out = SendOutcome::default();
    let mut consecutive_errors = 0u64;
    loop {
        let due = c.schedule.map(|s| s.due(out.sent, rand::random::<f64>()));
        match c.quota {
            Quota::Msgs(n) if out.sent >= n => break,
            Quota::Until(deadline) if due.unwrap_or_else(Instant::now) >= deadline => break,
            _ => {}
        }
        if let Some(due) = due {
            let now = Instant::now();
            if due > now {
                match pacer {
                    Pacer::Tokio => tokio::time::sleep_until(due.into()).await,
                    Pacer::Thread => std::thread::sleep(due - now),
                }
            }
        }
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => break,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                out.late += 1;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                permit
            }
        };
        let subject = c.subjects[(c.offset + out.sent as usize) % c.subjects.len()].clone();
        let start = Instant::now();
        let due = due.unwrap_or(start);
        let lag = start.saturating_duration_since(due);
        if c.schedule.is_some() {
            out.send_lag.record(lag);
        }
        let payload = if c.stamped {
            // The receipt latency counts from the same moment as the ack latency.
            let nanos = unix_nanos().saturating_sub(u64::try_from(lag.as_nanos()).unwrap_or(0));
            stamp_at(&c.payload, nanos)
        } else {
            c.payload.clone()
        };
        out.sent += 1;
        match c.js.publish(subject, payload).await {
            Ok(ack) => {
                consecutive_errors = 0;
                let pending = Pending {
                    due,
                    sent: start,
                    permit,
                    ack,
                };
                if tx.send(pending).is_err() {
                    break;
                }
            }
            Err(e) => {
                c.counters.errors.fetch_add(1, Ordering::Relaxed);
                out.first_error.get_or_insert_with(|| e.to_string());
                consecutive_errors += 1;
                // A connection that cannot send at all will not recover during a benchmark.
                if consecutive_errors >= 1000 {
                    break;
                }
            }
        }
    }
    out
}

async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    counters: Arc<Counters>,
    size: u64,
) -> PublishOutcome {
    let mut pending = FuturesUnordered::new();
    let mut out = PublishOutcome::default();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open => match next {
                Some(p) => pending.push(async move {
                    let result = p.ack.await;
                    let now = Instant::now();
                    drop(p.permit);
                    (now - p.due, now - p.sent, result)
                }),
                None => open = false,
            },
            Some((from_due, from_send, result)) = pending.next(), if !pending.is_empty() => match result {
                Ok(_) => {
                    out.latency.record(from_due);
                    out.from_send.record(from_send);
                    counters.msgs.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
            },
            else => break,
        }
    }
    out
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A copy of `payload` whose first bytes hold `unix_nanos`.
fn stamp_at(payload: &Bytes, unix_nanos: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(payload.len());
    buf.put_u64(unix_nanos);
    buf.extend_from_slice(&payload[STAMP_BYTES.min(payload.len())..]);
    buf.freeze()
}

fn stamp_age(payload: &[u8]) -> Option<Duration> {
    let raw: [u8; STAMP_BYTES] = payload.get(..STAMP_BYTES)?.try_into().ok()?;
    let sent = u64::from_be_bytes(raw);
    unix_nanos().checked_sub(sent).map(Duration::from_nanos)
}

// ---------------------------------------------------------------------------------------------
// Consuming

async fn get_stream(js: &jetstream::Context, name: &str) -> Result<stream::Stream, BenchError> {
    js.get_stream(name)
        .await
        .map_err(|e| BenchError::GetStream {
            stream: name.to_owned(),
            reason: e.to_string(),
        })
}

async fn create_pull_consumer(
    stream: &stream::Stream,
    stream_name: &str,
    durable: Option<String>,
    ack: bool,
    deliver_policy: consumer::DeliverPolicy,
) -> Result<consumer::PullConsumer, BenchError> {
    let config = consumer::pull::Config {
        durable_name: durable,
        deliver_policy,
        ack_policy: if ack {
            consumer::AckPolicy::Explicit
        } else {
            consumer::AckPolicy::None
        },
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    stream
        .create_consumer(config)
        .await
        .map_err(|e| BenchError::CreateConsumer {
            stream: stream_name.to_owned(),
            reason: e.to_string(),
        })
}

struct ConsumeLoop {
    consumer: consumer::PullConsumer,
    stream: String,
    /// Stop after this many messages; else run until `stop`.
    limit: Option<u64>,
    batch: usize,
    ack: bool,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Payloads carry their publish time (e2e).
    stamped: bool,
}

struct ConsumeOutcome {
    latency: Histogram,
    first_error: Option<String>,
}

/// Pull requests of `batch` messages one after another (each waits up to [`PULL_EXPIRES`]).
async fn consume_loop(c: ConsumeLoop) -> Result<ConsumeOutcome, BenchError> {
    let mut received = 0u64;
    let mut latency = Histogram::new();
    let mut first_error = None;
    let mut last_message = Instant::now();
    loop {
        if c.stop.load(Ordering::Relaxed) {
            break;
        }
        let want = match c.limit {
            Some(limit) if received >= limit => break,
            Some(limit) => c
                .batch
                .min(usize::try_from(limit - received).unwrap_or(usize::MAX)),
            None => c.batch,
        };
        if c.limit.is_some() && last_message.elapsed() > CONSUME_IDLE {
            first_error.get_or_insert_with(|| {
                format!(
                    "stream {} delivered only {received} messages (nothing for {}s)",
                    c.stream,
                    CONSUME_IDLE.as_secs()
                )
            });
            break;
        }
        let mut batch = c
            .consumer
            .batch()
            .max_messages(want)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|e| BenchError::Pull {
                stream: c.stream.clone(),
                reason: e.to_string(),
            })?;
        while let Some(message) = batch.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    c.counters.errors.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert_with(|| e.to_string());
                    break;
                }
            };
            if c.stamped
                && let Some(age) = stamp_age(&message.payload)
            {
                latency.record(age);
            }
            received += 1;
            last_message = Instant::now();
            c.counters.msgs.fetch_add(1, Ordering::Relaxed);
            c.counters
                .bytes
                .fetch_add(message.payload.len() as u64, Ordering::Relaxed);
            if c.ack
                && let Err(e) = message.ack().await
            {
                c.counters.errors.fetch_add(1, Ordering::Relaxed);
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok(ConsumeOutcome {
        latency,
        first_error,
    })
}

// ---------------------------------------------------------------------------------------------
// Progress

/// Stops the progress line; on a terminal, moves past it so the report starts on its own line.
fn stop_progress(progress: Option<tokio::task::JoinHandle<()>>) {
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

fn spawn_progress(
    published: Arc<Counters>,
    consumed: Option<Arc<Counters>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let terminal = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut last = (0u64, 0u64, 0u64);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let p = published.msgs.load(Ordering::Relaxed);
            let b = published.bytes.load(Ordering::Relaxed);
            let errors = published.errors.load(Ordering::Relaxed);
            let c = consumed
                .as_ref()
                .map_or(0, |c| c.msgs.load(Ordering::Relaxed));
            let mut line = format!(
                "[{:>4}s] {:>10} msgs {:>9.0} msgs/s {:>8.1} MiB/s",
                started.elapsed().as_secs(),
                p,
                (p - last.0) as f64,
                (b - last.1) as f64 / (1024.0 * 1024.0),
            );
            if consumed.is_some() {
                line.push_str(&format!(
                    " | consumed {:>10} ({:>9.0} msgs/s)",
                    c,
                    (c - last.2) as f64
                ));
            }
            if errors > 0 {
                line.push_str(&format!(" | {errors} errors"));
            }
            last = (p, b, c);
            let mut err = std::io::stderr().lock();
            let _ = if terminal {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Agent metrics

/// What the bench reads from one `/metrics` scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub objects_written: u64,
    /// `op/outcome` -> count of `infinistream_object_store_seconds`.
    pub bucket_requests: BTreeMap<String, u64>,
    /// Every histogram on the page, by [`series_key`] of its name and labels (without `le`).
    pub histograms: BTreeMap<String, PromHistogram>,
}

/// One Prometheus histogram series as scraped: cumulative counts by upper bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromHistogram {
    /// `(le, cumulative count)`, ascending by `le`; the last bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl PromHistogram {
    /// What was observed between `before` and `self` (a later scrape of the same series).
    /// `None` when the bucket bounds differ or a count went down (the agent restarted).
    pub fn since(&self, before: Option<&PromHistogram>) -> Option<PromHistogram> {
        let Some(before) = before else {
            return Some(self.clone());
        };
        if before.buckets.len() != self.buckets.len()
            || before
                .buckets
                .iter()
                .zip(&self.buckets)
                .any(|((a, ca), (b, cb))| a != b || cb < ca)
        {
            return None;
        }
        Some(PromHistogram {
            buckets: self
                .buckets
                .iter()
                .zip(&before.buckets)
                .map(|((le, after), (_, before))| (*le, after - before))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        })
    }

    /// The `q` quantile (0..=1) as Prometheus' `histogram_quantile` computes it: find the bucket
    /// holding rank `q * count`, interpolate linearly between its bounds (the first bucket starts
    /// at 0); a rank in the `+Inf` bucket answers the highest finite bound. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = (0.0, 0.0);
        for (i, &(le, cumulative)) in self.buckets.iter().enumerate() {
            if cumulative >= rank && cumulative > lower.1 {
                if le.is_infinite() {
                    return Some(if i == 0 { 0.0 } else { lower.0 });
                }
                let share = (rank - lower.1) / (cumulative - lower.1);
                return Some(lower.0 + (le - lower.0) * share);
            }
            lower = (le, cumulative);
        }
        Some(lower.0)
    }

    /// p50, p99 and mean in milliseconds of a histogram of seconds.
    fn quantiles_ms(&self) -> Option<AgentQuantiles> {
        let ms = |s: f64| (s * 1e6).round() / 1000.0;
        Some(AgentQuantiles {
            count: self.count.max(0.0) as u64,
            mean_ms: ms(self.sum / self.count.max(1.0)),
            p50_ms: ms(self.quantile(0.50)?),
            p99_ms: ms(self.quantile(0.99)?),
        })
    }
}

/// The key of a series: `name{a="x",b="y"}` with the labels sorted (`name` alone without any).
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut labels = labels.to_vec();
    labels.sort_unstable();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Label names and values of one sample, in the order written.
type Labels = Vec<(String, String)>;

/// Splits one sample line of the text format into its name, labels and value.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let labels = parse_labels(line.get(open + 1..close)?)?;
            (&line[..open], labels, &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, Vec::new(), rest)
        }
    };
    // A timestamp may follow the value.
    let value = parse_prom_float(rest.split_whitespace().next()?)?;
    Some((name.trim(), labels, value))
}

fn parse_prom_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `a="x",b="y\"z"` -> pairs, unescaping `\"`, `\\` and `\n`.
fn parse_labels(text: &str) -> Option<Labels> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        out.push((name.trim().to_owned(), value));
    }
}

async fn scrape_opt(url: Option<&str>) -> Result<Option<Scrape>, BenchError> {
    match url {
        Some(url) => scrape(url).await.map(Some),
        None => Ok(None),
    }
}

/// Reads an agent's counters from its Prometheus endpoint (`http://host:port/metrics`).
pub async fn scrape(url: &str) -> Result<Scrape, BenchError> {
    let body = http_get(url).await.map_err(|reason| BenchError::Metrics {
        url: url.to_owned(),
        reason,
    })?;
    Ok(parse_metrics(&body))
}

/// Picks what the bench reports out of Prometheus' text format: two counters and the histograms.
pub fn parse_metrics(text: &str) -> Scrape {
    let mut out = Scrape::default();
    for line in text.lines() {
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let label = |wanted: &str| {
            labels
                .iter()
                .find(|(k, _)| k == wanted)
                .map(|(_, v)| v.as_str())
        };
        if name == "infinistream_objects_written_total" {
            out.objects_written = value.max(0.0) as u64;
        } else if name == "infinistream_object_store_seconds_count" {
            let key = format!(
                "{}/{}",
                label("op").unwrap_or_default(),
                label("outcome").unwrap_or_default()
            );
            *out.bucket_requests.entry(key).or_default() += value.max(0.0) as u64;
        }
        let (base, part) = if let Some(base) = name.strip_suffix("_bucket") {
            (base, "bucket")
        } else if let Some(base) = name.strip_suffix("_sum") {
            (base, "sum")
        } else if let Some(base) = name.strip_suffix("_count") {
            (base, "count")
        } else {
            continue;
        };
        let plain: Vec<(&str, &str)> = labels
            .iter()
            .filter(|(k, _)| k != "le")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let key = series_key(base, &plain);
        match part {
            "bucket" => {
                let Some(le) = label("le").and_then(parse_prom_float) else {
                    continue;
                };
                out.histograms
                    .entry(key)
                    .or_default()
                    .buckets
                    .push((le, value));
            }
            // A summary or a counter named `*_count` makes an entry without buckets: dropped below.
            "sum" => out.histograms.entry(key).or_default().sum = value,
            _ => out.histograms.entry(key).or_default().count = value,
        }
    }
    out.histograms.retain(|_, h| !h.buckets.is_empty());
    for h in out.histograms.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn agent_metrics(
    before: Option<Scrape>,
    after: Option<Scrape>,
    published: u64,
    elapsed: Duration,
) -> Option<AgentMetrics> {
    let (before, after) = (before?, after?);
    let objects = after.objects_written.saturating_sub(before.objects_written);
    let by_op: BTreeMap<String, u64> = after
        .bucket_requests
        .iter()
        .map(|(k, v)| {
            let prior = before.bucket_requests.get(k).copied().unwrap_or(0);
            (k.clone(), v.saturating_sub(prior))
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    let quantiles = |name: &str, labels: &[(&str, &str)]| {
        let key = series_key(name, labels);
        after
            .histograms
            .get(&key)?
            .since(before.histograms.get(&key))?
            .quantiles_ms()
    };
    let stage = |stage: &str| quantiles("infinistream_flush_stage_seconds", &[("stage", stage)]);
    Some(AgentMetrics {
        objects_written: objects,
        objects_per_sec: objects as f64 / elapsed.as_secs_f64().max(1e-9),
        msgs_per_object: if objects == 0 {
            0.0
        } else {
            published as f64 / objects as f64
        },
        bucket_requests: by_op.values().sum(),
        bucket_requests_by_op: by_op,
        quantiles: "interpolated within the agent's Prometheus histogram buckets",
        put_ms: quantiles(
            "infinistream_object_store_seconds",
            &[("op", "put"), ("outcome", "ok")],
        ),
        commit_ms: stage("commit"),
        upload_ms: stage("upload"),
        wait_ms: stage("wait"),
        publish_ack_ms: quantiles("infinistream_publish_ack_seconds", &[]),
    })
}

/// Issue 7's bound for a rate-mode run whose agent reported PUT and commit times.
fn latency_target(
    options: &PublishOptions,
    measured: Option<&Latency>,
    agent: Option<&AgentMetrics>,
) -> Option<LatencyTarget> {
    options.rate?;
    let (measured, agent) = (measured?, agent?);
    let (put, commit) = (agent.put_ms?, agent.commit_ms?);
    let window_ms = options.window.as_secs_f64() * 1000.0;
    let round = |ms: f64| (ms * 1000.0).round() / 1000.0;
    let p50_bound_ms = round(window_ms / 2.0 + put.p50_ms + commit.p50_ms + 3.0);
    let p99_bound_ms = round(window_ms + put.p99_ms + commit.p50_ms + 10.0);
    Some(LatencyTarget {
        window_ms,
        put_p50_ms: put.p50_ms,
        put_p99_ms: put.p99_ms,
        commit_p50_ms: commit.p50_ms,
        p50_bound_ms,
        p50_ms: measured.p50,
        p50_met: measured.p50 <= p50_bound_ms,
        p99_bound_ms,
        p99_ms: measured.p99,
        p99_met: measured.p99 <= p99_bound_ms,
    })
}

/// A minimal HTTP/1.0 GET (plain http only), enough for a local `/metrics` endpoint.
async fn http_get(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if parsed.scheme() != "http" {
        return Err("only http:// metrics urls are supported".into());
    }
    let host = parsed.host_str().ok_or("the url has no host")?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut path = parsed.path().to_owned();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    let io = async {
        let mut conn = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/plain\r\n\r\n");
        conn.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed http response")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("http status {status:?}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Text output

impl Report {
    /// A few lines for people.
    pub fn to_text(&self) -> String {
        let mut out = format!("{} against {}\n", self.workload, self.url);
        let p = &self.params;
        let mut params = Vec::new();
        if let Some(v) = p.clients {
            params.push(format!("clients={v}"));
        }
        if let Some(v) = p.streams {
            params.push(format!("streams={v}"));
        }
        if let Some(v) = &p.stream {
            params.push(format!("stream={v}"));
        }
        if let Some(v) = p.size {
            params.push(format!("size={v}B"));
        }
        if let Some(v) = p.inflight {
            params.push(format!("inflight={v}"));
        }
        if let Some(v) = p.batch {
            params.push(format!("batch={v}"));
        }
        if let Some(v) = p.ack {
            params.push(format!("ack={v}"));
        }
        if let Some(v) = p.rate {
            params.push(format!("rate={v}/s"));
        }
        if !params.is_empty() {
            out.push_str(&format!("  {}\n", params.join(" ")));
        }
        let throughput = |name: &str, t: &Throughput| {
            format!(
                "  {name:<10} {} msgs in {:.2}s: {:.0} msgs/s, {:.2} MiB/s{}\n",
                t.msgs,
                t.seconds,
                t.msgs_per_sec,
                t.mib_per_sec,
                if t.errors > 0 {
                    format!(", {} errors", t.errors)
                } else {
                    String::new()
                }
            )
        };
        let latency = |name: &str, l: &Latency| {
            format!(
                "  {name:<10} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (mean {:.2} ms)\n",
                l.p50, l.p90, l.p99, l.max, l.mean
            )
        };
        if let Some(t) = &self.published {
            out.push_str(&throughput("published", t));
        }
        if let Some(o) = &self.open_loop {
            out.push_str(&format!(
                "  open loop  {} msgs/s ({} per client), {} sent, {} late (in-flight limit reached); \
                 pub->ack counts from the scheduled send time, send->ack from the actual send\n",
                o.rate, o.rate_per_client, o.sent, o.late_sends
            ));
            if let Some(l) = &o.send_lag_ms {
                out.push_str(&latency("send lag", l));
            }
        }
        if let Some(l) = &self.publish_ack_latency_ms {
            out.push_str(&latency("pub->ack", l));
        }
        if let Some(l) = &self.publish_ack_latency_from_send_ms {
            out.push_str(&latency("send->ack", l));
        }
        if let Some(t) = &self.consumed {
            out.push_str(&throughput("consumed", t));
        }
        if let Some(l) = &self.e2e_latency_ms {
            out.push_str(&latency("pub->recv", l));
        }
        if let Some(r) = &self.route {
            out.push_str(&format!("  to         {}\n", r.sub_url));
            if let Some(t) = &r.routed {
                out.push_str(&throughput("routed", t));
                out.push_str(&format!(
                    "  sent       {:.0} msgs/s, {} never arrived\n",
                    r.sent_per_sec, r.lost
                ));
            }
            if let Some(l) = &r.request_reply_ms {
                out.push_str(&latency("req/reply", l));
            }
            if let Some(l) = &r.interest_ms {
                out.push_str(&latency("interest", l));
            }
        }
        if let Some(a) = &self.agent {
            out.push_str(&format!(
                "  agent      {} objects ({:.1}/s, {:.0} msgs/object), {} bucket requests {:?}\n",
                a.objects_written,
                a.objects_per_sec,
                a.msgs_per_object,
                a.bucket_requests,
                a.bucket_requests_by_op
            ));
            let rows = [
                ("put", &a.put_ms),
                ("commit", &a.commit_ms),
                ("upload", &a.upload_ms),
                ("wait", &a.wait_ms),
                ("pub->ack", &a.publish_ack_ms),
            ];
            if rows.iter().any(|(_, q)| q.is_some()) {
                out.push_str(&format!("  agent      p50/p99 {}:\n", a.quantiles));
            }
            for (name, q) in rows {
                if let Some(q) = q {
                    out.push_str(&format!(
                        "    {name:<9} p50 {:.2} ms, p99 {:.2} ms (mean {:.2} ms, {} observed)\n",
                        q.p50_ms, q.p99_ms, q.mean_ms, q.count
                    ));
                }
            }
        }
        if let Some(t) = &self.latency_target {
            let met = |ok: bool| if ok { "met" } else { "not met" };
            out.push_str(&format!(
                "  target p50 <= {} ms + PUT p50 + commit p50 + 3 ms = {:.2} ms (window {} ms): measured {:.2} ms, {}\n",
                t.window_ms / 2.0,
                t.p50_bound_ms,
                t.window_ms,
                t.p50_ms,
                met(t.p50_met)
            ));
            out.push_str(&format!(
                "  target p99 <= {} ms + PUT p99 + commit p50 + 10 ms = {:.2} ms: measured {:.2} ms, {}\n",
                t.window_ms,
                t.p99_bound_ms,
                t.p99_ms,
                met(t.p99_met)
            ));
        }
        if let Some(e) = &self.first_error {
            out.push_str(&format!("  first error: {e}\n"));
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::new();
        for us in 1..=100_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5);
        let p99 = h.quantile_us(0.99);
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile_us(1.0), 100_000.0);
        let s = h.summary().unwrap();
        assert_eq!(s.count, 100_000);
        assert!((s.mean - 50.0).abs() < 0.01);
    }

    #[test]
    fn histogram_index_is_monotonic_and_bounded() {
        let mut last = 0;
        for us in (0..1u64 << 40).step_by(1 << 25).chain(0..5000) {
            let i = Histogram::index(us);
            assert!(i < BUCKETS);
            if us >= 5000 {
                assert!(i >= last);
                last = i;
            }
            let mid = Histogram::value(i);
            assert!(
                (mid - us as f64).abs() <= (us as f64 / 64.0).max(1.0),
                "{us} {mid}"
            );
        }
        let mut h = Histogram::new();
        h.record(Duration::from_secs(1 << 40));
        assert_eq!(h.count(), 1);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.quantile_us(1.0) - 3000.0).abs() < 50.0);
    }

    #[test]
    fn parses_prometheus_text() {
        let text = "# HELP x\n# TYPE infinistream_objects_written_total counter\n\
infinistream_objects_written_total 42\n\
infinistream_object_store_seconds_bucket{op=\"put\",outcome=\"ok\",le=\"0.1\"} 7\n\
infinistream_object_store_seconds_count{op=\"put\",outcome=\"ok\"} 40\n\
infinistream_object_store_seconds_count{op=\"get\",outcome=\"error\"} 2\n";
        let s = parse_metrics(text);
        assert_eq!(s.objects_written, 42);
        assert_eq!(s.bucket_requests.get("put/ok"), Some(&40));
        assert_eq!(s.bucket_requests.get("get/error"), Some(&2));
        let mut before = Scrape {
            objects_written: 2,
            ..Scrape::default()
        };
        before.bucket_requests.insert("put/ok".into(), 10);
        let m = agent_metrics(Some(before), Some(s), 400, Duration::from_secs(2)).unwrap();
        assert_eq!(m.objects_written, 40);
        assert_eq!(m.bucket_requests, 32);
        assert_eq!(m.msgs_per_object, 10.0);
        assert_eq!(m.objects_per_sec, 20.0);
    }

    /// A histogram page as the agent's prometheus registry writes it.
    fn histogram_page(name: &str, labels: &str, counts: &[(&str, u64)], sum: f64) -> String {
        let mut page = format!("# TYPE {name} histogram\n");
        for (le, count) in counts {
            page.push_str(&format!("{name}_bucket{{{labels},le=\"{le}\"}} {count}\n"));
        }
        let total = counts.last().map_or(0, |c| c.1);
        page.push_str(&format!("{name}_sum{{{labels}}} {sum}\n"));
        page.push_str(&format!("{name}_count{{{labels}}} {total}\n"));
        page
    }

    #[test]
    fn agent_quantiles_come_from_bucket_deltas() {
        let put = "infinistream_object_store_seconds";
        let stage = "infinistream_flush_stage_seconds";
        let labels = "op=\"put\",outcome=\"ok\"";
        let les = ["0.001", "0.0025", "0.005", "0.01", "+Inf"];
        let page = |put_counts: [u64; 5], put_sum: f64, commit_counts: [u64; 5]| {
            let zip = |c: [u64; 5]| les.iter().copied().zip(c).collect::<Vec<_>>();
            histogram_page(put, labels, &zip(put_counts), put_sum)
                + &histogram_page(stage, "stage=\"commit\"", &zip(commit_counts), 0.5)
                + &histogram_page(stage, "stage=\"upload\"", &zip([0; 5]), 0.0)
        };
        // Before: 4 PUTs all in (1, 2.5] ms, which the delta must remove.
        let before = parse_metrics(&page([0, 4, 4, 4, 4], 0.008, [0, 0, 0, 0, 0]));
        // After: +10 in (1, 2.5], +80 in (2.5, 5], +10 in (5, 10] ms; commits: 1 of 2 past 10 ms.
        let after = parse_metrics(&page([0, 14, 94, 104, 104], 0.408, [0, 1, 1, 1, 2]));
        let key = series_key(put, &[("outcome", "ok"), ("op", "put")]);
        let delta = after.histograms[&key]
            .since(before.histograms.get(&key))
            .unwrap();
        assert_eq!(delta.count, 100.0);
        assert_eq!(
            delta.buckets,
            vec![
                (0.001, 0.0),
                (0.0025, 10.0),
                (0.005, 90.0),
                (0.01, 100.0),
                (f64::INFINITY, 100.0)
            ]
        );
        // Rank 50 is 40 of the 80 in (2.5, 5] ms: 2.5 + 2.5 * 40/80.
        assert!((delta.quantile(0.5).unwrap() - 0.00375).abs() < 1e-12);
        // Rank 99 is 9 of the 10 in (5, 10] ms.
        assert!((delta.quantile(0.99).unwrap() - 0.0095).abs() < 1e-12);
        // Rank 5 is the first half of the 10 in (1, 2.5] ms.
        assert!((delta.quantile(0.05).unwrap() - 0.00175).abs() < 1e-12);

        let agent = agent_metrics(Some(before), Some(after), 1000, Duration::from_secs(5)).unwrap();
        let put_ms = agent.put_ms.unwrap();
        assert_eq!(
            (put_ms.count, put_ms.p50_ms, put_ms.p99_ms),
            (100, 3.75, 9.5)
        );
        assert_eq!(put_ms.mean_ms, 4.0);
        // The p99 of the commits falls in +Inf: the highest finite bound, as Prometheus answers.
        let commit = agent.commit_ms.unwrap();
        assert_eq!((commit.count, commit.p50_ms, commit.p99_ms), (2, 2.5, 10.0));
        // Nothing uploaded during the run: no quantiles rather than zeros.
        assert!(agent.upload_ms.is_none());
        assert!(agent.wait_ms.is_none());

        let mut options = PublishOptions::new("nats://x");
        let measured = Latency {
            count: 10,
            mean: 30.0,
            p50: 31.0,
            p90: 50.0,
            p99: 80.0,
            p999: 90.0,
            max: 95.0,
        };
        assert!(latency_target(&options, Some(&measured), Some(&agent)).is_none());
        options.rate = Some(100.0);
        let t = latency_target(&options, Some(&measured), Some(&agent)).unwrap();
        // 25 + 3.75 + 2.5 + 3 and 50 + 9.5 + 2.5 + 10.
        assert_eq!((t.p50_bound_ms, t.p99_bound_ms), (34.25, 72.0));
        assert!(t.p50_met && !t.p99_met);
        options.window = Duration::from_millis(20);
        let t = latency_target(&options, Some(&measured), Some(&agent)).unwrap();
        assert_eq!((t.p50_bound_ms, t.p99_bound_ms), (19.25, 42.0));
        assert!(!t.p50_met);
        let text = Report {
            workload: "publish".into(),
            url: "nats://x".into(),
            params: Params::default(),
            published: None,
            publish_ack_latency_ms: Some(measured),
            publish_ack_latency_from_send_ms: None,
            open_loop: None,
            consumed: None,
            e2e_latency_ms: None,
            agent: Some(agent),
            latency_target: Some(t),
            first_error: None,
            route: None,
        }
        .to_text();
        assert!(
            text.contains("target p50 <= 10 ms + PUT p50 + commit p50 + 3 ms = 19.25 ms (window 20 ms): measured 31.00 ms, not met"),
            "{text}"
        );
        assert!(text.contains("interpolated"), "{text}");
    }

    #[test]
    fn histogram_delta_refuses_a_restarted_agent() {
        let page = |n: u64| histogram_page("h", "a=\"1\"", &[("0.1", n), ("+Inf", n)], 0.0);
        let before = parse_metrics(&page(5));
        let after = parse_metrics(&page(3));
        let key = series_key("h", &[("a", "1")]);
        assert!(
            after.histograms[&key]
                .since(before.histograms.get(&key))
                .is_none()
        );
        assert!(after.histograms[&key].since(None).is_some());
        let empty = parse_metrics(&page(0));
        assert_eq!(empty.histograms[&key].quantile(0.5), None);
    }

    #[test]
    fn samples_parse_with_escapes_and_timestamps() {
        let (name, labels, value) =
            parse_sample(r#"x_bucket{a="q\"u,o}te",le="+Inf"} 12 1700000000000"#).unwrap();
        assert_eq!(name, "x_bucket");
        assert_eq!(
            labels,
            vec![
                ("a".to_owned(), "q\"u,o}te".to_owned()),
                ("le".to_owned(), "+Inf".to_owned())
            ]
        );
        assert_eq!(value, 12.0);
        assert_eq!(parse_sample("up 1").map(|s| s.2), Some(1.0));
        assert!(parse_sample("# HELP up x").is_none());
        assert!(parse_sample("broken{a=1} 2").is_none());
    }

    #[test]
    fn schedules_keep_one_publish_per_slot_without_drift() {
        let start = Instant::now();
        let s = Schedule {
            start,
            interval_secs: 1.0 / 3.0,
        };
        assert_eq!(s.due(0, 0.0), start);
        let late = s.due(3_000_000, 0.0) - start;
        assert!((late.as_secs_f64() - 1_000_000.0).abs() < 1e-3, "{late:?}");
        // Slots never overlap: publishes stay in order whatever their places in the slots.
        assert!(s.due(7, 0.999_999) < s.due(8, 0.0));
        let middle = s.due(6, 0.5) - start;
        assert!(
            (middle.as_secs_f64() - 6.5 / 3.0).abs() < 1e-9,
            "{middle:?}"
        );
    }

    #[test]
    fn stamps_round_trip() {
        let payload = Bytes::from(vec![b'x'; 32]);
        let stamped = stamp_at(&payload, unix_nanos());
        assert_eq!(stamped.len(), 32);
        let age = stamp_age(&stamped).unwrap();
        assert!(age < Duration::from_secs(1));
        assert!(stamp_age(b"short").is_none());
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn storage_parses() {
        assert_eq!("FILE".parse(), Ok(StreamStorage::File));
        assert_eq!("memory".parse(), Ok(StreamStorage::Memory));
        assert!("disk".parse::<StreamStorage>().is_err());
    }
}
