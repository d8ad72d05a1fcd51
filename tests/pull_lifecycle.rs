//! Waiting pull requests live as long as their requester, as in nats-server: a request whose
//! reply subject lost its subscriber is dropped (a new `consume()` on the same durable gets the
//! next message at once, not after ack_wait), expired requests leave `num_waiting`, a heartbeat
//! too large for the expiry is refused, and a message committed while a request waits is
//! delivered promptly.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use bytes::Bytes;
use common::{Stack, connect, make_stream, sync};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn consumer_info(client: &async_nats::Client, stream: &str, name: &str) -> Value {
    let reply = timeout(
        WAIT,
        client.request(
            format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
            Bytes::new(),
        ),
    )
    .await
    .expect("answered in time")
    .expect("request ok");
    serde_json::from_slice(&reply.payload).expect("json")
}

/// Polls CONSUMER.INFO until `num_waiting` is `want` (waiting counts reach the control plane
/// asynchronously); panics with the last value after the deadline.
async fn wait_for_num_waiting(client: &async_nats::Client, stream: &str, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = consumer_info(client, stream, name).await;
        let got = info["num_waiting"].as_u64().unwrap_or(u64::MAX);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "num_waiting stayed {got}, expected {want}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn durable(js: &async_nats::jetstream::Context, stream: &str, name: &str) {
    js.get_stream(stream)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
}

fn pull_body(expires: Duration) -> Bytes {
    Bytes::from(json!({"batch": 1, "expires": expires.as_nanos() as u64}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_requester_left_is_dropped() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    make_stream(&js, "LEFT", &["left.>"]).await;
    durable(&js, "LEFT", "d").await;

    // The first requester waits, then goes away (a closed consume() / fetch()).
    let gone = async_nats::connect(&stack.url(0)).await.expect("connect");
    let mut gone_inbox = gone.subscribe("_INBOX.gone").await.expect("sub");
    gone.publish_with_reply(
        "$JS.API.CONSUMER.MSG.NEXT.LEFT.d",
        "_INBOX.gone",
        pull_body(Duration::from_secs(30)),
    )
    .await
    .expect("pull");
    sync(&gone).await;
    wait_for_num_waiting(&client, "LEFT", "d", 1).await;
    gone_inbox.unsubscribe().await.expect("unsub");
    sync(&gone).await;

    // Its interest is gone, so it is no longer counted.
    wait_for_num_waiting(&client, "LEFT", "d", 0).await;

    // A new requester on the same durable gets the next message at once.
    let mut inbox = client.subscribe("_INBOX.new").await.expect("sub");
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.LEFT.d",
            "_INBOX.new",
            pull_body(Duration::from_secs(10)),
        )
        .await
        .expect("pull");
    sync(&client).await;
    js.publish("left.a", Bytes::from_static(b"one"))
        .await
        .expect("published")
        .await
        .expect("acked");
    let acked = Instant::now();
    let msg = timeout(Duration::from_secs(5), inbox.next())
        .await
        .expect("delivered to the new requester")
        .expect("message");
    assert_eq!(msg.payload.as_ref(), b"one");
    let took = acked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "delivered {took:?} after its ack"
    );
    let info = consumer_info(&client, "LEFT", "d").await;
    assert_eq!(info["num_ack_pending"], 1, "{info}");
    assert_eq!(info["num_redelivered"], 0, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_requests_are_not_counted_as_waiting() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    make_stream(&js, "EXP", &["exp.>"]).await;
    durable(&js, "EXP", "d").await;
    let mut inbox = client.subscribe("_INBOX.exp").await.expect("sub");
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.EXP.d",
            "_INBOX.exp",
            pull_body(Duration::from_millis(400)),
        )
        .await
        .expect("pull");
    sync(&client).await;
    wait_for_num_waiting(&client, "EXP", "d", 1).await;
    let timed_out = timeout(WAIT, inbox.next())
        .await
        .expect("a status in time")
        .expect("message");
    let status = timed_out.status.map(|s| s.as_u16());
    assert_eq!(status, Some(408), "{timed_out:?}");
    wait_for_num_waiting(&client, "EXP", "d", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_too_large_for_the_expiry_is_refused() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    make_stream(&js, "HB", &["hb.>"]).await;
    durable(&js, "HB", "d").await;
    // Raw, to see the status line byte for byte as nats-server 2.15.1 sends it.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", stack.agents[0].port))
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(
        b"CONNECT {\"headers\":true,\"verbose\":false}\r\nSUB _INBOX.hb 1\r\n\
          PUB $JS.API.CONSUMER.MSG.NEXT.HB.d _INBOX.hb 59\r\n\
          {\"batch\":1,\"expires\":1000000000,\"idle_heartbeat\":600000000}\r\n",
    )
    .await
    .expect("write");
    let want = b"NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while !got.windows(want.len()).any(|w| w == want) {
        assert!(
            Instant::now() < deadline,
            "no refusal: {:?}",
            String::from_utf8_lossy(&got)
        );
        let n = timeout(WAIT, raw.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // A heartbeat that fits twice is accepted: the request waits (counted). The inbox is
    // subscribed first: a request without interest would be dropped.
    let _inbox = client.subscribe("_INBOX.ok").await.expect("sub");
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.HB.d",
            "_INBOX.ok",
            Bytes::from_static(
                b"{\"batch\":1,\"expires\":5000000000,\"idle_heartbeat\":1000000000}",
            ),
        )
        .await
        .expect("pull");
    sync(&client).await;
    wait_for_num_waiting(&client, "HB", "d", 1).await;
}

/// Deliveries to a waiting request follow the commit closely (the agent polls every 50 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_committed_while_a_fetch_waits_is_delivered_promptly() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    make_stream(&js, "FAST", &["fast.>"]).await;
    durable(&js, "FAST", "d").await;
    let mut inbox = client.subscribe("_INBOX.fast").await.expect("sub");
    let mut delays = Vec::new();
    for i in 0..5 {
        client
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.FAST.d",
                "_INBOX.fast",
                pull_body(Duration::from_secs(10)),
            )
            .await
            .expect("pull");
        sync(&client).await;
        wait_for_num_waiting(&client, "FAST", "d", 1).await;
        js.publish("fast.a", Bytes::from(format!("m{i}")))
            .await
            .expect("published")
            .await
            .expect("acked");
        let acked = Instant::now();
        let msg = timeout(WAIT, inbox.next())
            .await
            .expect("delivered")
            .expect("message");
        delays.push(acked.elapsed());
        client
            .publish(msg.reply.expect("ack subject"), Bytes::new())
            .await
            .expect("ack");
    }
    delays.sort();
    // The median: one slow scheduling hiccup on a loaded CI machine must not fail the test,
    // a poll that waits for the next window (or longer) must.
    let median = delays[delays.len() / 2];
    assert!(
        median < Duration::from_millis(100),
        "delays after the ack: {delays:?}"
    );
}
