//! `infinistream bench route`: core NATS between two servers of one cluster (two agents of a
//! group, or two routed nats-server nodes), as an ordinary client sees it.
//!
//! Owns the three measurements of a route: routed throughput (a publisher on one server, a
//! subscriber on the other, messages received per second and how many never arrived), the
//! request/reply round trip with the requester on one server and the service on the other, and
//! interest convergence (from a subscription being acknowledged by its server to the first
//! message published on the other server reaching it). Does not own the report's printing or the
//! histogram (the parent module).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::{BenchError, Histogram, Params, Report, Throughput};

/// A subscriber that has seen nothing for this long after the publisher finished has all it
/// will get (core NATS drops what a slow consumer cannot take).
const ROUTED_IDLE: Duration = Duration::from_secs(2);
/// How long one request or one convergence probe may take before the run fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// Where the publisher and the requester connect.
    pub pub_url: String,
    /// Where the subscriber and the service connect.
    pub sub_url: String,
    pub size: usize,
    /// Messages the publisher sends for the throughput run (0 skips it).
    pub msgs: u64,
    /// Sequential requests for the round trip (0 skips it).
    pub requests: usize,
    /// Subscriptions whose convergence is timed (0 skips it).
    pub probes: usize,
}

/// The route measurements, in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteReport {
    pub sub_url: String,
    /// What the subscriber received, from its first message to its last.
    pub routed: Option<Throughput>,
    /// Messages published that never reached the subscriber.
    pub lost: u64,
    /// How fast the publisher's client sent (messages per second).
    pub sent_per_sec: f64,
    pub request_reply_ms: Option<super::Latency>,
    pub interest_ms: Option<super::Latency>,
}

/// Messages a subscription buffers in the client: async-nats drops beyond its default (65,536),
/// which would count the client's own backlog as messages the servers lost.
const SUBSCRIPTION_CAPACITY: usize = 1 << 22;

async fn connect(url: &str) -> Result<async_nats::Client, BenchError> {
    async_nats::ConnectOptions::new()
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .connect(url)
        .await
        .map_err(|source| BenchError::Connect {
            url: url.to_string(),
            source,
        })
}

fn task_error(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Task(format!("{what}: {e}"))
}

/// A subscription its server has acknowledged (the flush's PONG comes after the SUB).
async fn subscribed(
    client: &async_nats::Client,
    subject: &str,
) -> Result<async_nats::Subscriber, BenchError> {
    let sub = client
        .subscribe(subject.to_string())
        .await
        .map_err(|e| task_error("subscribe", e))?;
    client.flush().await.map_err(|e| task_error("flush", e))?;
    Ok(sub)
}

/// One message, and the server's PONG behind it.
async fn publish_flushed(
    client: &async_nats::Client,
    subject: &str,
    payload: Bytes,
) -> Result<(), BenchError> {
    client
        .publish(subject.to_string(), payload)
        .await
        .map_err(|e| task_error("publish", e))?;
    client.flush().await.map_err(|e| task_error("flush", e))
}

pub async fn run_route(o: RouteOptions) -> Result<Report, BenchError> {
    if o.msgs == 0 && o.requests == 0 && o.probes == 0 {
        return Err(BenchError::Options(
            "route: at least one of --msgs, --requests, --probes must be above 0".into(),
        ));
    }
    let publisher = connect(&o.pub_url).await?;
    let subscriber = connect(&o.sub_url).await?;
    let mut report = RouteReport {
        sub_url: o.sub_url.clone(),
        routed: None,
        lost: 0,
        sent_per_sec: 0.0,
        request_reply_ms: None,
        interest_ms: None,
    };
    if o.probes > 0 {
        report.interest_ms = convergence(&publisher, &subscriber, o.probes).await?;
    }
    if o.msgs > 0 {
        throughput(&publisher, &subscriber, &o, &mut report).await?;
    }
    if o.requests > 0 {
        report.request_reply_ms = round_trips(&publisher, &subscriber, &o).await?;
    }
    Ok(Report {
        workload: "route".into(),
        url: o.pub_url.clone(),
        params: Params {
            size: Some(o.size),
            ..Params::default()
        },
        published: None,
        publish_ack_latency_ms: None,
        publish_ack_latency_from_send_ms: None,
        open_loop: None,
        consumed: None,
        e2e_latency_ms: None,
        agent: None,
        latency_target: None,
        first_error: None,
        route: Some(report),
    })
}

/// Subscribes on `subscriber`, and once its server acknowledged the subscription (flush), times
/// how long until a message published on the other server arrives; the publisher sends one
/// message per round trip meanwhile, so the figure is exact to one round trip.
async fn convergence(
    publisher: &async_nats::Client,
    subscriber: &async_nats::Client,
    probes: usize,
) -> Result<Option<super::Latency>, BenchError> {
    let mut histogram = Histogram::new();
    for i in 0..probes {
        let subject = format!("bench.interest.{}.{i}", subscriber.new_inbox());
        let mut sub = subscribed(subscriber, &subject).await?;
        let started = Instant::now();
        let deadline = started + STEP_TIMEOUT;
        // Publish, wait for the server's PONG, look for an arrival without waiting: a timer
        // would round every probe up to its 1 ms tick.
        loop {
            publish_flushed(publisher, &subject, Bytes::new()).await?;
            if sub.next().now_or_never().flatten().is_some() {
                histogram.record(started.elapsed());
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Task(format!(
                    "interest probe {i} never arrived"
                )));
            }
        }
        let _ = sub.unsubscribe().await;
    }
    Ok(histogram.summary())
}

/// The publisher sends `msgs` messages as fast as its client can; the subscriber counts them.
async fn throughput(
    publisher: &async_nats::Client,
    subscriber: &async_nats::Client,
    o: &RouteOptions,
    report: &mut RouteReport,
) -> Result<(), BenchError> {
    let subject = format!("bench.routed.{}", subscriber.new_inbox());
    let mut sub = subscribed(subscriber, &subject).await?;
    barrier(publisher, subscriber).await?;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let expected = o.msgs;
    let counter = {
        let received = received.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut first = None;
            let mut last = Instant::now();
            loop {
                let wait = if done.load(Ordering::Relaxed) {
                    ROUTED_IDLE
                } else {
                    STEP_TIMEOUT
                };
                match tokio::time::timeout(wait, sub.next()).await {
                    Ok(Some(_)) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        if received.fetch_add(1, Ordering::Relaxed) + 1 == expected {
                            break;
                        }
                    }
                    _ if done.load(Ordering::Relaxed) => break,
                    _ => {}
                }
            }
            first.map(|f| last - f)
        })
    };
    let payload = Bytes::from(vec![b'r'; o.size]);
    let started = Instant::now();
    for _ in 0..o.msgs {
        publisher
            .publish(subject.clone(), payload.clone())
            .await
            .map_err(|e| task_error("publish", e))?;
    }
    publisher
        .flush()
        .await
        .map_err(|e| task_error("flush", e))?;
    let sent_in = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let span = counter.await.map_err(|e| task_error("subscriber", e))?;
    let got = received.load(Ordering::Relaxed);
    report.sent_per_sec = o.msgs as f64 / sent_in.as_secs_f64().max(1e-9);
    report.lost = o.msgs - got.min(o.msgs);
    report.routed = span.map(|s| Throughput::new(got, got * o.size as u64, 0, s));
    Ok(())
}

/// A probe subject subscribed on `subscriber` is published from `publisher` until it arrives:
/// the route carries the subscriber's interest.
async fn barrier(
    publisher: &async_nats::Client,
    subscriber: &async_nats::Client,
) -> Result<(), BenchError> {
    convergence(publisher, subscriber, 1).await.map(|_| ())
}

/// A service on the subscriber's server answers; the requester on the publisher's server sends
/// one request at a time.
async fn round_trips(
    requester: &async_nats::Client,
    server: &async_nats::Client,
    o: &RouteOptions,
) -> Result<Option<super::Latency>, BenchError> {
    let subject = format!("bench.service.{}", server.new_inbox());
    let mut calls = subscribed(server, &subject).await?;
    let answering = server.clone();
    let service = tokio::spawn(async move {
        while let Some(m) = calls.next().await {
            if let Some(reply) = m.reply {
                let _ = answering.publish(reply, m.payload).await;
            }
        }
    });
    // The service's interest has crossed once a request is answered.
    let payload = Bytes::from(vec![b'q'; o.size]);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while requester
        .request(subject.clone(), payload.clone())
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            service.abort();
            return Err(BenchError::Task("the service never answered".into()));
        }
    }
    let mut histogram = Histogram::new();
    for _ in 0..o.requests {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            STEP_TIMEOUT,
            requester.request(subject.clone(), payload.clone()),
        )
        .await;
        match answer {
            Ok(Ok(_)) => histogram.record(started.elapsed()),
            Ok(Err(e)) => {
                service.abort();
                return Err(task_error("request", e));
            }
            Err(_) => {
                service.abort();
                return Err(BenchError::Task(
                    "a request was not answered in time".into(),
                ));
            }
        }
    }
    service.abort();
    Ok(histogram.summary())
}
