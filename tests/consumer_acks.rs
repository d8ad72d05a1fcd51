//! Ack policies and ack kinds beyond plain ack/nak/term: AckAll, AckNone, and +WPI extending
//! ack_wait, through async-nats against real S3 and the control plane.

mod common;

use std::time::Duration;

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, PullConsumer, pull},
    stream,
};
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;

async fn setup(stack: &Stack, n: usize) -> (jetstream::Context, stream::Stream) {
    let js = jetstream::new(async_nats::connect(stack.url(0)).await.expect("connect"));
    let s = js
        .create_stream(stream::Config {
            name: "ACKS".into(),
            subjects: vec!["acks.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(
            js.publish("acks.x", Bytes::from(format!("m{i}")))
                .await
                .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("acked");
    }
    (js, s)
}

async fn fetch(c: &PullConsumer, n: usize, expires: Duration) -> Vec<jetstream::Message> {
    let mut batch = c
        .fetch()
        .max_messages(n)
        .expires(expires)
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        out.push(m.expect("message"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_all_acks_everything_up_to_the_acked_message() {
    let stack = Stack::start(1);
    let (_js, s) = setup(&stack, 8).await;
    let c: PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("ALL".into()),
            ack_policy: AckPolicy::All,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let msgs = fetch(&c, 5, Duration::from_secs(2)).await;
    assert_eq!(msgs.len(), 5);
    // Acking the fifth with a confirmed ack acks the four before it too.
    msgs[4].double_ack().await.expect("confirmed ack");
    let mut c = c;
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.ack_floor.stream_sequence, 5, "{info:?}");
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_pending, 3, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_none_needs_no_acks_and_never_redelivers() {
    let stack = Stack::start(1);
    let (_js, s) = setup(&stack, 6).await;
    let mut c: PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("NONE".into()),
            ack_policy: AckPolicy::None,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let first = fetch(&c, 3, Duration::from_secs(2)).await;
    let rest = fetch(&c, 10, Duration::from_millis(1500)).await;
    let seqs: Vec<u64> = first
        .iter()
        .chain(rest.iter())
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    // Everything once, in order, although nothing was acked and ack_wait passed meanwhile.
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    let info = c.info().await.expect("info");
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_extends_ack_wait() {
    let stack = Stack::start(1);
    let (_js, s) = setup(&stack, 1).await;
    let c: PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("WPI".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let msgs = fetch(&c, 1, Duration::from_secs(2)).await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    // Working on it for 2 s, twice ack_wait, saying so every 400 ms.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        m.ack_with(AckKind::Progress).await.expect("progress");
    }
    // Not redelivered meanwhile: a short fetch finds nothing.
    let again = fetch(&c, 1, Duration::from_millis(300)).await;
    assert!(again.is_empty(), "redelivered despite progress acks");
    m.double_ack().await.expect("confirmed ack");
    let mut c = c;
    let info = c.info().await.expect("info");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_redelivered, 0);
}
