//! Prometheus metrics of one process. Counters are the only state shared across actors, by design:
//! they are written without coordination and read by the `/metrics` handler.
//!
//! Per-stream series are deliberately absent (cardinality); streams are described by `/jsz`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    let _ = REGISTRY.register(Box::new(h.clone()));
    h
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("static metric definition");
    let _ = REGISTRY.register(Box::new(h.clone()));
    h
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

pub static CONNECTIONS: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("infinistream_connections", "open client connections"));
pub static TOTAL_CONNECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_connections_total",
        "client connections accepted",
    )
});
pub static MSGS_IN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_messages_in_total",
        "messages received from clients",
    )
});
pub static MSGS_OUT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_messages_out_total",
        "messages sent to clients",
    )
});
pub static BYTES_IN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_bytes_in_total",
        "payload and header bytes received from clients",
    )
});
pub static BYTES_OUT: LazyLock<IntCounter> =
    LazyLock::new(|| counter("infinistream_bytes_out_total", "bytes written to clients"));
pub static SLOW_CONSUMERS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_slow_consumers_total",
        "clients dropped for not reading fast enough",
    )
});
pub static BACKPRESSURE_PAUSES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_backpressure_pauses_total",
        "times a connection stopped reading because the in-flight budget was spent",
    )
});
pub static PUBLISH_ACK_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "infinistream_publish_ack_seconds",
        "from a jetstream publish being read to its ack being sent",
        latency_buckets(),
    )
});
pub static FLUSH_STAGE: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "infinistream_flush_stage_seconds",
        "time an object spends in each flush stage (wait, upload, commit)",
        &["stage"],
        latency_buckets(),
    )
});
pub static OBJECT_BYTES: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "infinistream_object_bytes",
        "size of objects written",
        prometheus::exponential_buckets(1024.0, 4.0, 10).unwrap_or_default(),
    )
});
pub static OBJECTS_WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_objects_written_total",
        "objects written to the bucket",
    )
});
pub static OBJECT_STORE_OPS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "infinistream_object_store_seconds",
        "object store operation latency by operation and outcome",
        &["op", "outcome"],
        latency_buckets(),
    )
});
pub static CONTROL_PLANE_OPS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "infinistream_control_plane_seconds",
        "control plane request latency by operation and outcome",
        &["op", "outcome"],
        latency_buckets(),
    )
});
pub static CACHE_READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "infinistream_cache_reads_total",
        "object reads by where they were served from (memory, peer, bucket)",
        &["source"],
    )
});
pub static ACTOR_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "infinistream_actor_restarts_total",
        "supervised actor restarts by actor",
        &["actor"],
    )
});
pub static JS_PUBLISH_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_jetstream_publish_errors_total",
        "jetstream publishes answered with an error",
    )
});

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}
