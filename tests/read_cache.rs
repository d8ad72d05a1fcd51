//! The read cache end to end: however many times a message is read, its block is fetched from
//! the bucket once while it is cached.

mod common;

use async_nats::jetstream::{self, stream};
use common::Stack;
use futures::future::join_all;

fn stream_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        allow_direct: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn one_get_per_cached_block_however_many_reads() {
    let stack = Stack::start(1);
    let client = async_nats::connect(stack.url(0)).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream_config("CACHED", &["cached.>"]))
        .await
        .expect("stream created");
    // Sent in order without waiting for acks: most land in one window, hence one block.
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(
            js.publish(format!("cached.{i}"), format!("m{i}").into())
                .await
                .expect("published"),
        );
    }
    let acks: Vec<_> = join_all(
        pending
            .into_iter()
            .map(|p| async move { p.await.expect("acked") }),
    )
    .await;
    let blocks = {
        // Windows may split the burst; count how many objects were written.
        stack.s3.put_count()
    };
    assert!(blocks >= 1);
    stack.s3.reset_counts();

    for round in 0..5 {
        let reads = acks.iter().map(|a| {
            let stream = stream.clone();
            let seq = a.sequence;
            async move {
                if round % 2 == 0 {
                    stream.get_raw_message(seq).await.expect("msg get").payload
                } else {
                    stream.direct_get(seq).await.expect("direct get").payload
                }
            }
        });
        let payloads = join_all(reads).await;
        for (a, p) in acks.iter().zip(payloads) {
            assert_eq!(p, format!("m{}", a.sequence - 1));
        }
    }
    let gets = stack.s3.get_count();
    assert!(
        gets >= 1 && gets <= blocks,
        "{gets} bucket GETs for {blocks} objects over 50 reads"
    );
}
