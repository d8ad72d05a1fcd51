//! JetStream push consumers end to end: async-nats push and ordered consumers, deliver groups,
//! idle heartbeats and flow control on the wire, and a push consumer driven by the agent its
//! subscriber is connected to.

mod common;

use common::connect;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, push};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn make_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) -> stream::Stream {
    let config = stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    // The agent answers `$JS.API` from the moment it accepts connections.
    js.create_stream(config).await.expect("stream created")
}

async fn publish(js: &jetstream::Context, subject: &str, from: usize, n: usize) {
    let mut acks = Vec::with_capacity(n);
    for i in from..from + n {
        acks.push(
            js.publish(subject.to_string(), Bytes::from(format!("m{i}")))
                .await
                .expect("published"),
        );
    }
    for a in futures::future::join_all(acks.into_iter().map(|a| a.into_future())).await {
        a.expect("acked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_push_consumer_delivers_and_acks() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "P", &["p.>"]).await;
    publish(&js, "p.a", 0, 50).await;
    let deliver = client.new_inbox();
    let consumer = stream
        .create_consumer(push::Config {
            durable_name: Some("D".to_string()),
            deliver_subject: deliver,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut got = Vec::new();
    while got.len() < 80 {
        if got.len() == 50 {
            publish(&js, "p.b", 50, 30).await;
        }
        let m = timeout(WAIT, messages.next())
            .await
            .expect("delivered in time")
            .expect("some")
            .expect("ok");
        got.push(String::from_utf8(m.payload.to_vec()).expect("utf8"));
        m.ack().await.expect("ack");
    }
    let want: Vec<String> = (0..80).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    common::sync(&client).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = stream.get_consumer::<push::Config>("D").await.expect("get");
        let info = c.info().await.expect("info");
        if info.num_ack_pending == 0 {
            assert_eq!(info.delivered.stream_sequence, 80);
            assert_eq!(info.ack_floor.stream_sequence, 80);
            break;
        }
        assert!(Instant::now() < deadline, "acks never applied: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_consumer_reads_everything_in_order() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "O", &["o.>"]).await;
    publish(&js, "o.a", 0, 700).await;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for i in 0..1000 {
        if i == 700 {
            publish(&js, "o.b", 700, 300).await;
        }
        let m = timeout(WAIT, messages.next())
            .await
            .expect("delivered in time")
            .expect("some")
            .expect("ok");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
        let info = m.info().expect("info");
        assert_eq!(info.stream_sequence, i as u64 + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_consumer_with_filter_and_start_sequence() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "F", &["f.>"]).await;
    for i in 0..20 {
        let subject = if i % 2 == 0 { "f.even" } else { "f.odd" };
        publish(&js, subject, i, 1).await;
    }
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: "f.odd".to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: 10 },
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for i in [9, 11, 13, 15, 17, 19] {
        let m = timeout(WAIT, messages.next())
            .await
            .expect("delivered in time")
            .expect("some")
            .expect("ok");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_group_spreads_each_message_once() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "G", &["g.>"]).await;
    let deliver = client.new_inbox();
    let mut a = client
        .queue_subscribe(deliver.clone(), "workers".to_string())
        .await
        .expect("sub a");
    let mut b = client
        .queue_subscribe(deliver.clone(), "workers".to_string())
        .await
        .expect("sub b");
    common::sync(&client).await;
    stream
        .create_consumer(push::Config {
            durable_name: Some("W".to_string()),
            deliver_subject: deliver,
            deliver_group: Some("workers".to_string()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    publish(&js, "g.x", 0, 200).await;
    let mut seen = HashSet::new();
    let mut from = [0usize; 2];
    while seen.len() < 200 {
        let (m, who) = timeout(WAIT, async {
            tokio::select! {
                m = a.next() => (m, 0),
                m = b.next() => (m, 1),
            }
        })
        .await
        .expect("delivered in time");
        let m = m.expect("some");
        assert!(seen.insert(m.payload.clone()), "delivered twice: {m:?}");
        from[who] += 1;
    }
    assert!(from[0] > 0 && from[1] > 0, "both members receive: {from:?}");
    // Nothing more arrives: each message went to one member only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        timeout(Duration::from_millis(50), a.next()).await.is_err()
            && timeout(Duration::from_millis(50), b.next()).await.is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_is_driven_by_the_agent_with_interest() {
    let stack = Stack::start(2);
    let (_c0, js0) = connect(&stack.url(0)).await;
    let (c1, _js1) = connect(&stack.url(1)).await;
    let stream = make_stream(&js0, "M", &["m.>"]).await;
    publish(&js0, "m.a", 0, 20).await;
    let mut sub = c1.subscribe("deliver.m").await.expect("sub");
    common::sync(&c1).await;
    stream
        .create_consumer(push::Config {
            durable_name: Some("X".to_string()),
            deliver_subject: "deliver.m".to_string(),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    for i in 0..20 {
        let m = timeout(WAIT, sub.next())
            .await
            .expect("delivered in time")
            .expect("some");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }
}

/// Reads raw protocol lines until `pred` matches what was read so far.
async fn read_until(
    sock: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    pred: impl Fn(&[u8]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    let mut chunk = vec![0u8; 1 << 16];
    while !pred(buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = timeout(left, sock.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("timed out; got {:?}", String::from_utf8_lossy(buf)))
            .expect("read");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The exact bytes nats-server 2.15 sends: heartbeats carry the last delivered sequences, flow
/// control requests a `$JS.FC.<stream>.<consumer>.<token>` reply, and delivery pauses until the
/// client answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_flow_control_on_the_wire() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "H", &["h.>"]).await;
    // 3 MiB: past the first flow control request and the stall threshold behind it.
    let body = Bytes::from(vec![b'x'; 10_000]);
    let mut acks = Vec::new();
    for _ in 0..300 {
        acks.push(js.publish("h.a", body.clone()).await.expect("pub"));
    }
    for a in acks {
        a.await.expect("ack");
    }
    let port = stack.agents[0].port;
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    sock.write_all(
        b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB dlv.h 2\r\nPING\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    read_until(&mut sock, &mut buf, |b| find(b, b"PONG\r\n").is_some()).await;
    buf.clear();
    let _ = stream
        .create_consumer(push::Config {
            durable_name: Some("HB".to_string()),
            deliver_subject: "dlv.h".to_string(),
            ack_policy: AckPolicy::None,
            flow_control: true,
            idle_heartbeat: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .expect("consumer");
    read_until(&mut sock, &mut buf, |b| find(b, b"FlowControl").is_some()).await;
    let fc_at = find(&buf, b"HMSG dlv.h 2 $JS.FC.H.HB.").expect("fc request");
    let line_end = fc_at + find(&buf[fc_at..], b"\r\n").expect("line");
    let line = String::from_utf8_lossy(&buf[fc_at..line_end]).to_string();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert_eq!(parts[4], "36");
    assert_eq!(parts[5], "36");
    assert_eq!(
        &buf[line_end + 2..line_end + 2 + 38],
        b"NATS/1.0 100 FlowControl Request\r\n\r\n\r\n"
    );
    let fc_reply = parts[3].to_string();
    // Delivery stalls below 300 messages until the request is answered.
    let mut chunk = vec![0u8; 1 << 20];
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        if let Ok(r) = timeout(Duration::from_millis(100), sock.read(&mut chunk)).await {
            let n = r.expect("read");
            assert!(n > 0, "closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    let count = |b: &[u8]| {
        b.windows(b"MSG h.a 2 $JS.ACK.H.HB.".len())
            .filter(|w| w == b"MSG h.a 2 $JS.ACK.H.HB.")
            .count()
    };
    let before = count(&buf);
    assert!(before < 300, "stalled: {before}");
    let stalled = format!("Nats-Consumer-Stalled: {fc_reply}\r\n");
    read_until(&mut sock, &mut buf, |b| {
        find(b, stalled.as_bytes()).is_some()
    })
    .await;
    sock.write_all(format!("PUB {fc_reply} 0\r\n\r\n").as_bytes())
        .await
        .expect("fc reply");
    read_until(&mut sock, &mut buf, |b| count(b) == 300).await;
    // Answer later requests, then wait for the idle heartbeat after the last message.
    let mut answered = HashSet::from([fc_reply]);
    let hb = b"HMSG dlv.h 2 79 79\r\nNATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 300\r\nNats-Last-Stream: 300\r\n\r\n\r\n";
    loop {
        let mut start = 0;
        while let Some(i) = find(&buf[start..], b"HMSG dlv.h 2 $JS.FC.") {
            let at = start + i;
            let end = at + find(&buf[at..], b"\r\n").expect("line");
            let line = String::from_utf8_lossy(&buf[at..end]).to_string();
            let reply = line.split(' ').nth(3).expect("reply").to_string();
            if answered.insert(reply.clone()) {
                sock.write_all(format!("PUB {reply} 0\r\n\r\n").as_bytes())
                    .await
                    .expect("fc reply");
            }
            start = end;
        }
        if find(&buf, hb).is_some() {
            break;
        }
        let mut more = Vec::new();
        read_until(&mut sock, &mut more, |b| !b.is_empty()).await;
        buf.extend_from_slice(&more);
    }
    drop(client);
}

/// Two agents with interest in the same deliver subject: one holds the lease and pushes, so each
/// message reaches the group once; when its subscriber leaves, the other agent takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_pushes_and_another_takes_over() {
    let stack = Stack::start(2);
    let ports: Vec<u16> = stack.agents.iter().map(|a| a.http_port).collect();
    common::wait_routes(&ports, 1, WAIT).await;
    let (c0, js0) = connect(&stack.url(0)).await;
    let (c1, _js1) = connect(&stack.url(1)).await;
    let stream = make_stream(&js0, "T", &["t.>"]).await;
    let mut s0 = c0
        .queue_subscribe("deliver.t", "g".to_string())
        .await
        .expect("sub0");
    let mut s1 = c1
        .queue_subscribe("deliver.t", "g".to_string())
        .await
        .expect("sub1");
    common::sync(&c0).await;
    common::sync(&c1).await;
    stream
        .create_consumer(push::Config {
            durable_name: Some("T".to_string()),
            deliver_subject: "deliver.t".to_string(),
            deliver_group: Some("g".to_string()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    publish(&js0, "t.a", 0, 100).await;
    let mut seen = HashSet::new();
    let mut from = [0usize; 2];
    while seen.len() < 100 {
        let (m, who) = timeout(WAIT, async {
            tokio::select! {
                m = s0.next() => (m, 0),
                m = s1.next() => (m, 1),
            }
        })
        .await
        .expect("delivered in time");
        assert!(seen.insert(m.expect("some").payload), "delivered twice");
        from[who] += 1;
    }
    // One agent holds the lease and pushes; the deliver group spans both agents, so it hands
    // the other member its share over the route (each member as likely, as with nats-server),
    // and the other agent routes nothing.
    let mut out = [0u64; 2];
    for (i, agent) in stack.agents.iter().enumerate() {
        let z = common::routez(agent.http_port).await;
        out[i] = z["routes"][0]["out_msgs"].as_u64().expect("a route");
    }
    let pusher = if out[0] > 0 || from[1] == 0 { 0 } else { 1 };
    assert_eq!(out[1 - pusher], 0, "one agent pushes: {from:?} {out:?}");
    assert_eq!(
        out[pusher] as usize,
        from[1 - pusher],
        "the pusher routed the other member's share: {from:?} {out:?}"
    );
    // The pushing agent's subscriber leaves; the other agent takes the lease over.
    let (leaving, mut staying) = if pusher == 0 { (s0, s1) } else { (s1, s0) };
    drop(leaving);
    let client = if pusher == 0 { &c0 } else { &c1 };
    common::sync(client).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&js0, "t.a", 100, 20).await;
    for i in 100..120 {
        let m = timeout(WAIT, staying.next())
            .await
            .expect("taken over in time")
            .expect("some");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_respects_max_ack_pending() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "A", &["a.>"]).await;
    publish(&js, "a.x", 0, 30).await;
    let mut sub = client.subscribe("deliver.a").await.expect("sub");
    common::sync(&client).await;
    stream
        .create_consumer(push::Config {
            durable_name: Some("A".to_string()),
            deliver_subject: "deliver.a".to_string(),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 10,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(
            timeout(WAIT, sub.next())
                .await
                .expect("delivered in time")
                .expect("some"),
        );
    }
    assert!(
        timeout(Duration::from_millis(400), sub.next())
            .await
            .is_err(),
        "no more than max_ack_pending outstanding"
    );
    for m in &got {
        client
            .publish(m.reply.clone().expect("ack subject"), Bytes::new())
            .await
            .expect("ack");
    }
    for i in 10..20 {
        let m = timeout(WAIT, sub.next())
            .await
            .expect("delivered after acks")
            .expect("some");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }
}

/// CONSUMER.INFO reports `"push_bound":true` while something subscribes to the deliver subject
/// and leaves the field out otherwise, as nats-server 2.15.1 does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_bound_follows_interest_in_the_deliver_subject() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let stream = make_stream(&js, "PB", &["pb.>"]).await;
    let _ = stream
        .create_consumer(push::Config {
            durable_name: Some("D".to_string()),
            deliver_subject: "dlv.pb".to_string(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("push consumer");
    let bound = async || -> Option<serde_json::Value> {
        let r = client
            .request("$JS.API.CONSUMER.INFO.PB.D", Bytes::new())
            .await
            .expect("info");
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("json");
        assert_eq!(v["name"], "D", "{v}");
        v.get("push_bound").cloned()
    };
    let wait_for = async |want: Option<serde_json::Value>| {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = bound().await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "push_bound stayed {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bound().await, None, "nothing subscribes yet");
    let mut sub = client.subscribe("dlv.pb").await.expect("subscribe");
    common::sync(&client).await;
    wait_for(Some(serde_json::Value::Bool(true))).await;
    sub.unsubscribe().await.expect("unsubscribe");
    common::sync(&client).await;
    wait_for(None).await;
}
