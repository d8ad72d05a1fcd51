//! Core NATS through an unmodified client (async-nats) against one agent.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use common::TestAgent;
use futures::StreamExt;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    timeout(WAIT, sub.next())
        .await
        .expect("message within timeout")
        .expect("subscription open")
}

#[tokio::test]
async fn publish_subscribe_round_trip() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let mut sub = client.subscribe("greet.joe").await.unwrap();
    common::sync(&client).await;
    client.publish("greet.joe", "hello".into()).await.unwrap();
    let msg = next(&mut sub).await;
    assert_eq!(msg.subject.as_str(), "greet.joe");
    assert_eq!(msg.payload, Bytes::from("hello"));
}

#[tokio::test]
async fn wildcards_route_by_token() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let mut star = client.subscribe("foo.*").await.unwrap();
    let mut full = client.subscribe("foo.>").await.unwrap();
    let mut mid = client.subscribe("*.bar.*").await.unwrap();
    common::sync(&client).await;
    for s in ["foo.bar", "foo.bar.baz", "x.bar.y", "foo"] {
        client.publish(s, s.into()).await.unwrap();
    }
    client.publish("end", "".into()).await.unwrap();
    common::sync(&client).await;
    assert_eq!(next(&mut star).await.subject.as_str(), "foo.bar");
    assert_eq!(next(&mut full).await.subject.as_str(), "foo.bar");
    assert_eq!(next(&mut full).await.subject.as_str(), "foo.bar.baz");
    assert_eq!(next(&mut mid).await.subject.as_str(), "foo.bar.baz");
    assert_eq!(next(&mut mid).await.subject.as_str(), "x.bar.y");
    // Nothing else arrived for the `*` subscription: "foo.bar.baz" and "foo" do not match it, so
    // the next thing it sees is a marker published after them.
    client.publish("foo.marker", "".into()).await.unwrap();
    assert_eq!(next(&mut star).await.subject.as_str(), "foo.marker");
}

#[tokio::test]
async fn queue_group_delivers_each_message_to_one_member() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = async_nats::connect(&agent.url).await.unwrap();
        let s = c.queue_subscribe("work", "workers".into()).await.unwrap();
        common::sync(&c).await;
        members.push((c, s));
    }
    let mut plain = client.subscribe("work").await.unwrap();
    common::sync(&client).await;
    const N: usize = 300;
    for i in 0..N {
        client.publish("work", i.to_string().into()).await.unwrap();
    }
    common::sync(&client).await;
    for _ in 0..N {
        next(&mut plain).await;
    }
    // Take exactly N from all members together: a duplicate would leave some message missing.
    let tagged = members
        .iter_mut()
        .enumerate()
        .map(|(i, (_c, s))| s.map(move |m| (i, m)).boxed());
    let mut all = futures::stream::select_all(tagged);
    let mut seen = vec![0usize; N];
    let mut per_member = vec![0usize; 3];
    for _ in 0..N {
        let (member, m) = timeout(WAIT, all.next())
            .await
            .expect("in time")
            .expect("open");
        let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        seen[i] += 1;
        per_member[member] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every message reached exactly one member"
    );
    assert!(
        per_member.iter().all(|&n| n > 0),
        "load spread over members: {per_member:?}"
    );
}

#[tokio::test]
async fn request_reply_through_inbox() {
    let agent = TestAgent::start();
    let server = async_nats::connect(&agent.url).await.unwrap();
    let mut svc = server.subscribe("svc.echo").await.unwrap();
    common::sync(&server).await;
    let responder = server.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut out = b"echo: ".to_vec();
                out.extend_from_slice(&m.payload);
                responder.publish(reply, out.into()).await.unwrap();
            }
        }
    });
    let client = async_nats::connect(&agent.url).await.unwrap();
    let resp = timeout(WAIT, client.request("svc.echo", "ping".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.payload, Bytes::from("echo: ping"));
}

#[tokio::test]
async fn request_without_responder_gets_no_responders() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let err = timeout(WAIT, client.request("nobody.home", "?".into()))
        .await
        .expect("answered before the timeout")
        .expect_err("no responder");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn headers_round_trip() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let mut sub = client.subscribe("h").await.unwrap();
    common::sync(&client).await;
    let mut headers = HeaderMap::new();
    headers.insert("X-Trace", "abc-123");
    headers.append("X-Multi", "one");
    headers.append("X-Multi", "two");
    client
        .publish_with_headers("h", headers, "body".into())
        .await
        .unwrap();
    let msg = next(&mut sub).await;
    let h = msg.headers.expect("headers delivered");
    assert_eq!(h.get("X-Trace").map(|v| v.as_str()), Some("abc-123"));
    let multi: Vec<&str> = h.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, vec!["one", "two"]);
    assert_eq!(msg.payload, Bytes::from("body"));
}

#[tokio::test]
async fn echo_false_skips_own_messages() {
    let agent = TestAgent::start();
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(&agent.url)
        .await
        .unwrap();
    let other = async_nats::connect(&agent.url).await.unwrap();
    let mut own = quiet.subscribe("echo.test").await.unwrap();
    let mut theirs = other.subscribe("echo.test").await.unwrap();
    common::sync(&quiet).await;
    common::sync(&other).await;
    quiet
        .publish("echo.test", "from quiet".into())
        .await
        .unwrap();
    common::sync(&quiet).await;
    other
        .publish("echo.test", "from other".into())
        .await
        .unwrap();
    common::sync(&other).await;
    assert_eq!(next(&mut theirs).await.payload, Bytes::from("from quiet"));
    // The quiet client's first message is the other client's: its own was not echoed.
    assert_eq!(next(&mut own).await.payload, Bytes::from("from other"));
}

#[tokio::test]
async fn auto_unsubscribe_after_max() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let mut sub = client.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    common::sync(&client).await;
    for i in 0..10 {
        client
            .publish("limited", i.to_string().into())
            .await
            .unwrap();
    }
    common::sync(&client).await;
    let mut got = Vec::new();
    while let Ok(Some(m)) = timeout(Duration::from_secs(2), sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(
        got,
        vec![Bytes::from("0"), Bytes::from("1"), Bytes::from("2")]
    );
}

#[tokio::test]
async fn one_mib_payload_accepted_one_more_byte_refused() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    assert_eq!(client.server_info().max_payload, 1024 * 1024);
    let mut sub = client.subscribe("big").await.unwrap();
    common::sync(&client).await;
    let big = Bytes::from(vec![7u8; 1024 * 1024]);
    client.publish("big", big.clone()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload, big);
    let too_big = Bytes::from(vec![7u8; 1024 * 1024 + 1]);
    let err = client.publish("big", too_big).await.expect_err("refused");
    assert_eq!(
        err.kind(),
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
    );
}

#[tokio::test]
async fn info_advertises_what_clients_need() {
    let agent = TestAgent::start();
    let client = async_nats::connect(&agent.url).await.unwrap();
    let info = client.server_info();
    assert!(info.headers);
    assert_eq!(info.proto, 1);
    assert!(info.jetstream);
    assert!(
        info.version.as_str() >= "2.10.0",
        "version {}",
        info.version
    );
    assert_eq!(info.port, agent.port);
    assert!(info.client_id > 0);
}
