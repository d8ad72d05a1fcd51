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

/// Fine where a window lives (tens of ms) and where local PUTs and commits do (sub-ms to a few
/// ms), so quantiles interpolated from them (`infinistream bench`) are close to the truth.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04,
        0.05, 0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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
pub static PEER_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_peer_refused_total",
        "peer-port connections refused before or at the handshake",
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
pub static INFLIGHT_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_inflight_bytes",
        "bytes of publishes accepted but not yet answered (in-flight budget in use)",
    )
});
pub static INFLIGHT_MSGS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_inflight_messages",
        "publishes accepted but not yet answered (in-flight budget in use)",
    )
});
pub static UNSEALED_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_unsealed_bytes",
        "bytes of jetstream publishes waiting in batchers for the next seal (updated in 256 KiB steps per stream)",
    )
});
pub static SEALED_BLOCKS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_sealed_blocks_in_memory",
        "blocks drained into an object and still in memory (uploading, committing, or held by unanswered publishes)",
    )
});
pub static SEALED_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_sealed_bytes_in_memory",
        "bytes of the blocks counted by infinistream_sealed_blocks_in_memory",
    )
});

/// Counts `bytes` (a drained block's data) in `SEALED_BLOCKS`/`SEALED_BYTES` until the last
/// view of it (the object being uploaded, a waiting message) is dropped.
pub fn track_sealed(bytes: bytes::Bytes) -> bytes::Bytes {
    struct Live(bytes::Bytes);
    impl AsRef<[u8]> for Live {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Live {
        fn drop(&mut self) {
            SEALED_BLOCKS.dec();
            SEALED_BYTES.sub(self.0.len() as i64);
        }
    }
    if bytes.is_empty() {
        return bytes;
    }
    SEALED_BLOCKS.inc();
    SEALED_BYTES.add(bytes.len() as i64);
    bytes::Bytes::from_owner(Live(bytes))
}
pub static INFLIGHT_BYTES_LIMIT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_inflight_bytes_limit",
        "the in-flight budget in bytes (--max-inflight-bytes)",
    )
});
pub static INFLIGHT_MSGS_LIMIT: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_inflight_messages_limit",
        "the in-flight budget in messages (--max-inflight-msgs)",
    )
});
pub static CONTROL_PLANE_UP: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_control_plane_up",
        "1 when the last control plane health check succeeded",
    )
});
pub static SHUTTING_DOWN: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_shutting_down",
        "1 once a graceful shutdown has begun",
    )
});
pub static JS_PUBLISH_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "infinistream_jetstream_publish_errors_total",
        "jetstream publishes answered with an error",
    )
});

/// Label values every vector is created with at startup, so dashboards and alerts see each series
/// (at zero) before its first event.
const FLUSH_STAGES: [&str; 3] = ["wait", "upload", "commit"];
const OBJECT_STORE_OPS_KNOWN: [&str; 2] = ["put", "get"];
const CONTROL_PLANE_OPS_KNOWN: [&str; 2] = ["commit", "health"];
const OUTCOMES: [&str; 2] = ["ok", "error"];
const CACHE_SOURCES: [&str; 3] = ["memory", "peer", "bucket"];
/// Restarted by a supervisor, or a panic contained by `actors::guard`. (The control plane counts
/// its store worker's restarts on its own `/metrics`.)
const SUPERVISED_ACTORS: [&str; 6] = [
    "sequence_client",
    "peer_cache",
    "router",
    "connection",
    "jetstream_api",
    "consumer_manager",
];

/// Registers every metric (and the known label values of every vector) so `/metrics` lists them
/// all from the first scrape. Idempotent; the agent calls it at startup.
pub fn init() {
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&TOTAL_CONNECTIONS);
    LazyLock::force(&MSGS_IN);
    LazyLock::force(&MSGS_OUT);
    LazyLock::force(&BYTES_IN);
    LazyLock::force(&BYTES_OUT);
    LazyLock::force(&SLOW_CONSUMERS);
    LazyLock::force(&BACKPRESSURE_PAUSES);
    LazyLock::force(&PUBLISH_ACK_LATENCY);
    LazyLock::force(&OBJECT_BYTES);
    LazyLock::force(&OBJECTS_WRITTEN);
    LazyLock::force(&INFLIGHT_BYTES);
    LazyLock::force(&INFLIGHT_MSGS);
    LazyLock::force(&INFLIGHT_BYTES_LIMIT);
    LazyLock::force(&INFLIGHT_MSGS_LIMIT);
    LazyLock::force(&UNSEALED_BYTES);
    LazyLock::force(&SEALED_BLOCKS);
    LazyLock::force(&SEALED_BYTES);
    LazyLock::force(&CONTROL_PLANE_UP);
    LazyLock::force(&SHUTTING_DOWN);
    LazyLock::force(&JS_PUBLISH_ERRORS);
    LazyLock::force(&ROUTES);
    LazyLock::force(&ROUTED_MSGS);
    LazyLock::force(&ROUTED_BYTES);
    LazyLock::force(&ROUTE_DROPPED);
    for stage in FLUSH_STAGES {
        FLUSH_STAGE.with_label_values(&[stage]);
    }
    for outcome in OUTCOMES {
        for op in OBJECT_STORE_OPS_KNOWN {
            OBJECT_STORE_OPS.with_label_values(&[op, outcome]);
        }
        for op in CONTROL_PLANE_OPS_KNOWN {
            CONTROL_PLANE_OPS.with_label_values(&[op, outcome]);
        }
    }
    for source in CACHE_SOURCES {
        CACHE_READS.with_label_values(&[source]);
    }
    for actor in SUPERVISED_ACTORS {
        ACTOR_RESTARTS.with_label_values(&[actor]);
    }
}

/// Publishes the in-flight budget's use as gauges; called just before rendering, since the
/// budget itself is the source of truth.
pub fn observe_budget(
    budget: &crate::actors::ops::budget::InflightBudget,
    max_bytes: usize,
    max_msgs: usize,
) {
    let max_bytes = max_bytes.clamp(1, u32::MAX as usize);
    let max_msgs = max_msgs.max(1);
    INFLIGHT_BYTES_LIMIT.set(max_bytes as i64);
    INFLIGHT_MSGS_LIMIT.set(max_msgs as i64);
    INFLIGHT_BYTES.set(max_bytes.saturating_sub(budget.available_bytes()) as i64);
    INFLIGHT_MSGS.set(max_msgs.saturating_sub(budget.available_msgs()) as i64);
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

pub static ROUTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "infinistream_routes",
        "routes up to other agents of the group",
    )
});
pub static ROUTED_MSGS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "infinistream_routed_msgs_total",
        "core messages copied over routes, by direction and the other agent's availability zone",
        &["direction", "zone"],
    )
});
pub static ROUTED_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "infinistream_routed_bytes_total",
        "bytes of core messages (subject, reply, headers, payload) copied over routes, by direction and zone (the inter-zone bill)",
        &["direction", "zone"],
    )
});
pub static ROUTE_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "infinistream_route_dropped_msgs_total",
        "messages not copied to a route whose queue was full (a slow route), by zone",
        &["zone"],
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_registers_every_family() {
        init();
        let text = render();
        for name in [
            "infinistream_connections",
            "infinistream_messages_in_total",
            "infinistream_publish_ack_seconds",
            "infinistream_flush_stage_seconds",
            "infinistream_object_store_seconds",
            "infinistream_control_plane_seconds",
            "infinistream_cache_reads_total",
            "infinistream_actor_restarts_total",
            "infinistream_backpressure_pauses_total",
            "infinistream_inflight_bytes",
            "infinistream_object_bytes",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(text.contains("stage=\"commit\""));
        assert!(text.contains("source=\"peer\""));
    }
}
