//! Consumers wake on commits instead of polling, and the stream catalog travels as deltas: idle
//! waiting pull requests cost the control plane no claims, a message committed through another
//! agent reaches a request waiting on this one, and creating streams one after another never
//! makes an agent re-read the whole stream list.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use common::{Stack, connect};
use futures::StreamExt;

async fn num_waiting(js: &jetstream::Context, stream: &str, consumer: &str) -> usize {
    let mut c = js
        .get_stream(stream)
        .await
        .expect("stream")
        .get_consumer::<pull::Config>(consumer)
        .await
        .expect("consumer");
    c.info().await.expect("info").num_waiting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_waiting_requests_make_no_claims_and_wake_on_a_commit_through_another_agent() {
    const CONSUMERS: usize = 50;
    let stack = Stack::start(2);
    let (_c0, js0) = connect(&stack.url(0)).await;
    let (_c1, js1) = connect(&stack.url(1)).await;
    let stream = js0
        .create_stream(stream::Config {
            name: "IDLE".into(),
            subjects: vec!["idle.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    for i in 0..CONSUMERS {
        stream
            .create_consumer(pull::Config {
                durable_name: Some(format!("c{i}")),
                filter_subject: format!("idle.{i}"),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("consumer");
    }
    // One waiting request per consumer, all on agent 1.
    let mut batches = Vec::new();
    for i in 0..CONSUMERS {
        let consumer = js1
            .get_stream("IDLE")
            .await
            .expect("stream")
            .get_consumer::<pull::Config>(&format!("c{i}"))
            .await
            .expect("consumer");
        batches.push(
            consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .expect("pull request"),
        );
    }
    // Every request has made its first claim once the control plane counts it as waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..CONSUMERS {
        while num_waiting(&js1, "IDLE", &format!("c{i}")).await != 1 {
            assert!(Instant::now() < deadline, "c{i} never reported waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Two idle seconds: no claims at all (50 requests polling every 50 ms made 2,000).
    let before = stack.cp.ok_requests("/v1/consumers/claim").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_claims = stack.cp.ok_requests("/v1/consumers/claim").await - before;
    assert_eq!(idle_claims, 0, "idle waiting requests claimed");

    // A message committed through agent 0 wakes the request waiting on agent 1.
    let ack = js0
        .publish("idle.7", "wake".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let committed = Instant::now();
    let msg = tokio::time::timeout(Duration::from_secs(5), batches[7].next())
        .await
        .expect("delivered")
        .expect("a message")
        .expect("not an error");
    let latency = committed.elapsed();
    eprintln!("commit on agent 0 to delivery on agent 1: {latency:?}");
    assert_eq!(msg.payload.as_ref(), b"wake");
    assert_eq!(msg.info().expect("info").stream_sequence, ack.sequence);
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    msg.ack().await.expect("ack");
    // The other requests are still waiting and got nothing.
    assert_eq!(num_waiting(&js1, "IDLE", "c8").await, 1);
    let claims_after_wake = stack.cp.ok_requests("/v1/consumers/claim").await - before;
    assert!(
        claims_after_wake <= 4,
        "one commit to one subject made {claims_after_wake} claims"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_created_one_by_one_reach_every_agent_as_deltas() {
    const STREAMS: usize = 100;
    let stack = Stack::start(2);
    let (_c0, js0) = connect(&stack.url(0)).await;
    let (_c1, js1) = connect(&stack.url(1)).await;
    // Both agents' feeds are up once a first change has reached agent 1 through it.
    js0.create_stream(stream::Config {
        name: "FIRST".into(),
        subjects: vec!["first".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    publish_when_routable(&js1, "first").await;

    let lists_before = stack.cp.ok_requests("/v1/streams").await;
    for i in 0..STREAMS {
        js0.create_stream(stream::Config {
            name: format!("S{i}"),
            subjects: vec![format!("s.{i}")],
            ..Default::default()
        })
        .await
        .expect("stream");
        // Routable through the agent that created it before the create was answered.
        let ack = js0
            .publish(format!("s.{i}"), "x".into())
            .await
            .expect("publish")
            .await
            .expect("captured at once");
        assert_eq!(ack.stream, format!("S{i}"));
    }
    publish_when_routable(&js1, &format!("s.{}", STREAMS - 1)).await;
    let lists = stack.cp.ok_requests("/v1/streams").await - lists_before;
    assert!(
        lists <= 2,
        "{STREAMS} stream creates re-read the stream list {lists} times"
    );

    // A delete travels the same way: agent 1 stops capturing the subject.
    js0.delete_stream("S0").await.expect("delete");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match js1.publish("s.0", "x".into()).await.expect("send").await {
            Err(_) => break,
            Ok(_) => {
                assert!(Instant::now() < deadline, "agent 1 still captures s.0");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Publishes until the agent captures `subject` (its catalog learns of a stream created
/// elsewhere from the event feed).
async fn publish_when_routable(js: &jetstream::Context, subject: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match js.publish(subject.to_string(), "x".into()).await {
            Ok(ack) => match ack.await {
                Ok(_) => return,
                Err(e) => assert!(Instant::now() < deadline, "{subject}: {e}"),
            },
            Err(e) => assert!(Instant::now() < deadline, "{subject}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
