//! Consumers survive a control plane restart: configs, ack floors, pending deliveries with their
//! counts and deadlines, all served by an agent that keeps running across the restart.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, AckPolicy, pull};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn publish(js: &jetstream::Context, subject: &str, n: usize) {
    for i in 0..n {
        js.publish(subject.to_string(), Bytes::from(format!("m{i}")))
            .await
            .expect("published")
            .await
            .expect("acked");
    }
}

/// Fetches until `want` messages arrived (or `deadline` passed); returns (stream seq, delivery
/// count, message) in arrival order.
async fn fetch(
    c: &consumer::PullConsumer,
    want: usize,
    deadline: Duration,
) -> Vec<(u64, i64, jetstream::Message)> {
    let end = Instant::now() + deadline;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < end {
        let mut batch = c
            .batch()
            .max_messages(want - out.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = timeout(WAIT, batch.next()).await.expect("in time") {
            let m = m.expect("message");
            let info = m.info().expect("info");
            let (seq, delivered) = (info.stream_sequence, info.delivered);
            out.push((seq, delivered, m));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_pull_consumer_survives_control_plane_restart() {
    common::init_logs();
    let mut stack = Stack::start(1);
    let client = async_nats::connect(stack.url(0)).await.expect("connect");
    let js = jetstream::new(client.clone());
    let s = js
        .create_stream(stream::Config {
            name: "R".into(),
            subjects: vec!["r.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    publish(&js, "r.x", 20).await;
    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            description: Some("survives".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("consumer");

    let first = fetch(&c, 10, WAIT).await;
    assert_eq!(
        first.iter().map(|(s, d, _)| (*s, *d)).collect::<Vec<_>>(),
        (1..=10).map(|s| (s, 1)).collect::<Vec<_>>()
    );
    // Double acks are answered once the control plane stored them.
    for (_, _, m) in &first {
        m.double_ack().await.expect("double ack");
    }
    let unacked = fetch(&c, 5, WAIT).await;
    assert_eq!(
        unacked.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    let fetched_at = Instant::now();

    stack.cp.restart();

    let mut c = c;
    let info = c.info().await.expect("info after restart").clone();
    assert_eq!(info.config.description.as_deref(), Some("survives"));
    assert_eq!(info.config.ack_wait, Duration::from_secs(1));
    assert_eq!(info.ack_floor.stream_sequence, 10);
    assert_eq!(info.ack_floor.consumer_sequence, 10);
    assert_eq!(info.delivered.stream_sequence, 15);
    assert_eq!(info.delivered.consumer_sequence, 15);
    assert_eq!(info.num_ack_pending, 5);
    assert_eq!(info.num_pending, 5);

    // Past the ack wait: the five unacked come again (second delivery), the rest once.
    if let Some(left) = Duration::from_millis(1200).checked_sub(fetched_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let rest = fetch(&c, 10, WAIT).await;
    let mut got: Vec<(u64, i64)> = rest.iter().map(|(s, d, _)| (*s, *d)).collect();
    got.sort_unstable();
    let want: Vec<(u64, i64)> = (11..=15)
        .map(|s| (s, 2))
        .chain((16..=20).map(|s| (s, 1)))
        .collect();
    assert_eq!(got, want);
    for (_, _, m) in &rest {
        m.double_ack().await.expect("double ack");
    }

    // Nothing acked comes back, before or after another restart.
    assert!(fetch(&c, 1, Duration::from_millis(1500)).await.is_empty());
    stack.cp.restart();
    let info = c.info().await.expect("info after second restart").clone();
    assert_eq!(info.ack_floor.stream_sequence, 20);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_redelivered, 0);
    assert!(fetch(&c, 1, Duration::from_millis(1500)).await.is_empty());

    // Deleting is stored too.
    s.delete_consumer("D").await.expect("deleted");
    stack.cp.restart();
    assert!(s.consumer_info("D").await.is_err());
}
