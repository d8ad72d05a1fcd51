//! A client's acks apply before its next pull request, as in nats-server: a nak followed by a
//! fetch gets the nak'd message again. Ignored until the agent's consumer actor flushes a
//! consumer's queued acks before claiming for it (today it claims at once and flushes acks on a
//! 10 ms timer, so the fetch usually gets the next message instead).

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn fetch_one(c: &consumer::PullConsumer) -> jetstream::Message {
    let mut batch = c.fetch().max_messages(1).messages().await.expect("fetch");
    timeout(WAIT, batch.next())
        .await
        .expect("in time")
        .expect("a message")
        .expect("message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nak_then_fetch_redelivers_the_nakd_message() {
    let stack = Stack::start(1);
    let client = async_nats::connect(stack.url(0)).await.expect("connect");
    let js = jetstream::new(client.clone());
    let s = js
        .create_stream(stream::Config {
            name: "O".into(),
            subjects: vec!["o.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    for i in 0..5 {
        js.publish("o.x", Bytes::from(format!("m{i}")))
            .await
            .expect("published")
            .await
            .expect("acked");
    }
    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut current = fetch_one(&c).await;
    assert_eq!(current.info().expect("info").stream_sequence, 1);
    for round in 2..=10 {
        current.ack_with(AckKind::Nak(None)).await.expect("nak");
        common::sync(&client).await;
        current = fetch_one(&c).await;
        let info = current.info().expect("info");
        assert_eq!(
            (info.stream_sequence, info.delivered),
            (1, round),
            "round {round}"
        );
    }
}
