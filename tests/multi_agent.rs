//! Many agents as one: messages published through one agent are consumed through two other agents
//! of its zone, each exactly once, from one durable consumer that both of them serve.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, consumer::pull, stream};
use common::Stack;
use futures::StreamExt;

async fn consumer_on(url: &str) -> PullConsumer {
    let js = jetstream::new(async_nats::connect(url).await.expect("connect"));
    js.get_stream("SHARED")
        .await
        .expect("stream visible on this agent")
        .get_consumer::<pull::Config>("workers")
        .await
        .expect("consumer visible on this agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_one_agent_consume_through_two_others() {
    const N: usize = 300;
    let stack = Stack::start_zones(&["a", "a", "a", "b"]);
    let producer = jetstream::new(async_nats::connect(stack.url(0)).await.unwrap());
    let stream = producer
        .create_stream(stream::Config {
            name: "SHARED".into(),
            subjects: vec!["shared.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream created");
    stream
        .create_consumer(pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("durable consumer");
    let mut acks = Vec::new();
    for i in 0..N {
        acks.push(
            producer
                .publish(format!("shared.{}", i % 7), i.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.expect("acked");
    }

    // Agents 2 and 3 take turns fetching from the same durable consumer.
    let consumers = [
        consumer_on(&stack.url(1)).await,
        consumer_on(&stack.url(2)).await,
    ];
    let mut seen = HashSet::new();
    let mut per_agent = [0usize; 2];
    let mut turn = 0;
    while seen.len() < N {
        assert!(turn < 200, "consumption stalled at {} of {N}", seen.len());
        let agent = turn % 2;
        turn += 1;
        let mut batch = consumers[agent]
            .fetch()
            .max_messages(40)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
            assert!(seen.insert(i), "message {i} delivered twice");
            per_agent[agent] += 1;
            m.ack().await.expect("ack sent");
        }
    }
    assert_eq!(seen.len(), N);
    assert!(
        per_agent.iter().all(|&n| n > 0),
        "both agents served: {per_agent:?}"
    );
}

/// A gracefully stopping agent leaves the virtual group itself; the others do not have to wait
/// for its lease to expire (3 s in tests) to stop counting on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_leaves_the_virtual_group() {
    let mut stack = Stack::start_zones(&["a", "a"]);
    let members = |stack: &Stack| -> Vec<String> {
        stack.cp.with_client(async |c| {
            c.agents()
                .await
                .map(|a| a.into_iter().map(|a| a.agent_id).collect())
                .unwrap_or_default()
        })
    };
    // Both register when they start; wait for the control plane to list them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while members(&stack).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "agents never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut leaving = stack.agents.remove(1);
    let id = leaving.handles.agent_id.clone();
    let stopped = std::time::Instant::now();
    leaving.begin_shutdown(Duration::from_secs(5));
    let _ = tokio::task::spawn_blocking(move || leaving.wait_shutdown())
        .await
        .unwrap();
    let now = members(&stack);
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "checked before any lease could expire"
    );
    assert!(!now.contains(&id), "{id} left the group: {now:?}");
    assert_eq!(now.len(), 1);
}
