//! Ordered consumers (async-nats push and pull) recovering from a gap: one delivery of their
//! consumer is claimed behind their back at the control plane, so the next message they receive
//! skips a consumer sequence. The client must notice, delete its consumer, create a new one
//! (`{name}_1`) starting at the stream sequence after the last one it received, and so still see
//! every message exactly once and in order.

mod common;

use common::connect;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, push};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use futures::{Stream, StreamExt};
use infinistream_api::control_plane::consumers::ClaimRequest;
use serde_json::Value;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn publish(js: &jetstream::Context, from: usize, n: usize) {
    for i in from..from + n {
        js.publish("o.x", Bytes::from(format!("{i}")))
            .await
            .expect("published")
            .await
            .expect("acked");
    }
}

/// Claims one delivery of `consumer` straight from the control plane, retrying for up to
/// `for_ms` (the agent polls every 50 ms, so a fresh message is usually ours to take first).
fn steal(stack: &Stack, consumer: &str, for_ms: u64) -> Option<u64> {
    let consumer = consumer.to_string();
    stack.cp.with_client(async move |c| {
        let deadline = Instant::now() + Duration::from_millis(for_ms);
        while Instant::now() < deadline {
            let claim = c
                .consumer_claim(&ClaimRequest {
                    stream: "O".into(),
                    consumer: consumer.clone(),
                    batch: 1,
                    ..ClaimRequest::default()
                })
                .await
                .expect("control plane")
                .expect("claim");
            if let Some(m) = claim.messages.first() {
                return Some(m.location.seq);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    })
}

async fn consumer_names(client: &async_nats::Client) -> Vec<String> {
    let r = client
        .request("$JS.API.CONSUMER.NAMES.O", Bytes::new())
        .await
        .expect("names");
    let v: Value = serde_json::from_slice(&r.payload).expect("json");
    v["consumers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Receives the next message's payload as a number (stream sequence - 1 here).
async fn next_payload<M, E>(msgs: &mut (impl Stream<Item = Result<M, E>> + Unpin)) -> usize
where
    M: std::ops::Deref<Target = async_nats::Message>,
    E: std::fmt::Debug,
{
    let m = timeout(WAIT, msgs.next())
        .await
        .expect("in time")
        .expect("some")
        .expect("message");
    std::str::from_utf8(&m.payload)
        .expect("utf8")
        .parse()
        .expect("number")
}

/// Publishes one message at a time and tries to take its delivery from the consumer before the
/// agent does; when the agent wins, the client receives it normally. Returns the stolen
/// sequence and how many messages exist now.
async fn make_gap<M, E>(
    stack: &Stack,
    js: &jetstream::Context,
    consumer: &str,
    msgs: &mut (impl Stream<Item = Result<M, E>> + Unpin),
    mut published: usize,
    got: &mut Vec<usize>,
) -> (u64, usize)
where
    M: std::ops::Deref<Target = async_nats::Message>,
    E: std::fmt::Debug,
{
    for _ in 0..50 {
        let js2 = js.clone();
        let p = tokio::spawn(async move { publish(&js2, published, 1).await });
        let stolen = steal(stack, consumer, 1_000);
        p.await.expect("publish task");
        published += 1;
        if let Some(seq) = stolen {
            return (seq, published);
        }
        got.push(next_payload(msgs).await);
    }
    panic!("the agent always delivered first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_push_consumer_recovers_from_a_gap() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = js
        .create_stream(stream::Config {
            name: "O".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    publish(&js, 0, 20).await;
    let consumer = s
        .create_consumer(push::OrderedConfig {
            name: Some("ord".into()),
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut msgs = consumer.messages().await.expect("messages");
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(next_payload(&mut msgs).await);
    }
    let (stolen, published) = make_gap(&stack, &js, "ord", &mut msgs, 20, &mut got).await;
    publish(&js, published, 10).await;
    let total = published + 10;
    while got.len() < total {
        got.push(next_payload(&mut msgs).await);
    }
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "every message once, in order (stream seq {stolen} was taken from the first consumer)"
    );
    // The client replaced its consumer: deleted `ord`, created `ord_1`.
    assert_eq!(consumer_names(&client).await, vec!["ord_1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pull_consumer_recovers_from_a_gap() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = js
        .create_stream(stream::Config {
            name: "O".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    publish(&js, 0, 20).await;
    let consumer = s
        .create_consumer(pull::OrderedConfig {
            name: Some("ordp".into()),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut msgs = consumer.messages().await.expect("messages");
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(next_payload(&mut msgs).await);
    }
    let (stolen, published) = make_gap(&stack, &js, "ordp", &mut msgs, 20, &mut got).await;
    publish(&js, published, 10).await;
    let total = published + 10;
    while got.len() < total {
        got.push(next_payload(&mut msgs).await);
    }
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "every message once, in order (stream seq {stolen} was taken from the first consumer)"
    );
    assert_eq!(consumer_names(&client).await, vec!["ordp_1".to_string()]);
}
