//! The durable write path end to end: async-nats publishing through agents to a real S3 HTTP
//! server (s3s-fs) and a real control plane over HTTP.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use futures::future::join_all;
use serde_json::Value;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn js(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect");
    jetstream::new(client)
}

fn stream_config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        allow_direct: true,
        ..Default::default()
    }
}

/// Publishes with a raw request so the exact PubAck JSON (err_code included) can be checked.
async fn raw_publish(
    client: &async_nats::Client,
    subject: &str,
    headers: HeaderMap,
    payload: &str,
) -> Value {
    let reply = timeout(
        WAIT,
        client.request_with_headers(
            subject.to_string(),
            headers,
            Bytes::from(payload.to_string()),
        ),
    )
    .await
    .expect("answered in time")
    .expect("request succeeded");
    serde_json::from_slice(&reply.payload).expect("json pub ack")
}

/// An ack carries a positive sequence and no error (nats-server's errors carry `"seq":0`).
fn acked(ack: &Value) -> bool {
    ack.get("error").is_none() && ack["seq"].as_u64().is_some_and(|s| s > 0)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, *v);
    }
    h
}

#[tokio::test]
async fn create_publish_ack_and_read_back() {
    let stack = Stack::start(1);
    let js = js(&stack.url(0)).await;
    let stream = js
        .create_stream(stream_config("ORDERS", &["orders.>"]))
        .await
        .expect("stream created");
    let mut seqs = Vec::new();
    for i in 0..3 {
        let ack = js
            .publish(format!("orders.{i}"), format!("order {i}").into())
            .await
            .expect("published")
            .await
            .expect("acked");
        assert_eq!(ack.stream, "ORDERS");
        assert!(!ack.duplicate);
        seqs.push(ack.sequence);
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    let msg = stream.get_raw_message(2).await.expect("msg get");
    assert_eq!(msg.subject.as_str(), "orders.1");
    assert_eq!(msg.payload, Bytes::from("order 1"));
    let direct = stream.direct_get(3).await.expect("direct get");
    assert_eq!(direct.payload, Bytes::from("order 2"));
    let mut stream = js.get_stream("ORDERS").await.expect("stream info");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 3);
    assert_eq!(info.state.last_sequence, 3);
    assert!(stack.s3.put_count() >= 1, "objects went to the bucket");
}

#[tokio::test]
async fn stored_messages_reach_core_subscribers() {
    use futures::StreamExt;
    let stack = Stack::start(1);
    let js = js(&stack.url(0)).await;
    js.create_stream(stream_config("EVENTS", &["events.*"]))
        .await
        .expect("stream created");
    let watcher = async_nats::connect(stack.url(0)).await.unwrap();
    let mut sub = watcher.subscribe("events.*").await.unwrap();
    common::sync(&watcher).await;
    js.publish("events.a", "payload".into())
        .await
        .unwrap()
        .await
        .expect("acked");
    let m = timeout(WAIT, sub.next())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!(m.subject.as_str(), "events.a");
    assert_eq!(m.payload, Bytes::from("payload"));
}

#[tokio::test]
async fn publish_to_subject_without_stream_gets_no_responders() {
    let stack = Stack::start(1);
    let js = js(&stack.url(0)).await;
    let err = js
        .publish("nothing.here", "x".into())
        .await
        .expect("sent")
        .await
        .expect_err("no stream");
    assert_eq!(
        err.kind(),
        jetstream::context::PublishErrorKind::StreamNotFound
    );
}

/// 10k acked publishes over 100 streams from 10 connections; sequences contiguous per stream,
/// each connection's order kept, one object per window (not per stream), all readable from a
/// second agent by MSG.GET and DIRECT.GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_publishes_over_a_hundred_streams() {
    const STREAMS: usize = 100;
    const CONNS: usize = 10;
    const PER_CONN: usize = 1_000;
    let stack = Stack::start(1);
    let admin = js(&stack.url(0)).await;
    for s in 0..STREAMS {
        admin
            .create_stream(stream_config(&format!("S{s}"), &[&format!("s.{s}.>")]))
            .await
            .expect("stream created");
    }
    let puts_before = stack.s3.put_count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let url = stack.url(0);
        tasks.push(tokio::spawn(async move {
            let js = js(&url).await;
            let mut acks = Vec::with_capacity(PER_CONN);
            for k in 0..PER_CONN {
                let s = (c * 7 + k) % STREAMS;
                let fut = js
                    .publish(format!("s.{s}.c{c}"), format!("{c}:{k}").into())
                    .await
                    .expect("published");
                acks.push((s, k, fut));
            }
            let mut out = Vec::with_capacity(PER_CONN);
            for (s, k, fut) in acks {
                let ack = fut.await.expect("acked");
                assert_eq!(ack.stream, format!("S{s}"));
                out.push((s, k, ack.sequence));
            }
            (c, out)
        }));
    }
    let results = join_all(tasks).await;
    let elapsed = started.elapsed();

    // (stream, seq) -> (connection, k)
    let mut by_stream: HashMap<usize, Vec<(u64, usize, usize)>> = HashMap::new();
    for r in results {
        let (c, acks) = r.expect("publisher task");
        let mut last_seq: HashMap<usize, u64> = HashMap::new();
        for (s, k, seq) in acks {
            // A connection's messages into one stream are stored in the order it sent them.
            if let Some(prev) = last_seq.insert(s, seq) {
                assert!(
                    seq > prev,
                    "connection {c} stream {s}: seq {seq} after {prev}"
                );
            }
            by_stream.entry(s).or_default().push((seq, c, k));
        }
    }
    assert_eq!(by_stream.len(), STREAMS);
    for (s, msgs) in &mut by_stream {
        msgs.sort();
        let seqs: Vec<u64> = msgs.iter().map(|m| m.0).collect();
        let expected: Vec<u64> = (1..=msgs.len() as u64).collect();
        assert_eq!(
            seqs, expected,
            "stream S{s} sequences are contiguous from 1"
        );
    }

    // One object per window that had data: bounded by the number of windows, not streams.
    let objects = stack.s3.put_count() - puts_before;
    let windows = (elapsed.as_millis() / 50) as u64 + 2;
    assert!(objects >= 1);
    assert!(
        objects <= windows,
        "{objects} objects for {windows} windows of 50 ms over {elapsed:?}"
    );

    // A second agent, a separate process on the same bucket and control plane, reads them back.
    let process = stack.agent_process();
    let reader = js(&process.url).await;
    for s in [0usize, 1, 42, 99] {
        let stream = reader
            .get_stream(format!("S{s}"))
            .await
            .expect("stream on agent 2");
        let msgs = &by_stream[&s];
        for &(seq, c, k) in [msgs.first(), msgs.last()].into_iter().flatten() {
            let expected = Bytes::from(format!("{c}:{k}"));
            let got = stream.get_raw_message(seq).await.expect("msg get");
            assert_eq!(got.payload, expected, "S{s} seq {seq} by MSG.GET");
            assert_eq!(got.subject.as_str(), format!("s.{s}.c{c}"));
            let direct = stream.direct_get(seq).await.expect("direct get");
            assert_eq!(direct.payload, expected, "S{s} seq {seq} by DIRECT.GET");
        }
    }
}

#[tokio::test]
async fn dedupe_within_and_across_agents() {
    let stack = Stack::start(2);
    let a = async_nats::connect(stack.url(0)).await.unwrap();
    let b = async_nats::connect(stack.url(1)).await.unwrap();
    jetstream::new(a.clone())
        .create_stream(stream_config("DEDUPE", &["dd.>"]))
        .await
        .expect("created");
    let first = raw_publish(&a, "dd.1", headers(&[("Nats-Msg-Id", "m-1")]), "one").await;
    assert_eq!(first["seq"], 1, "{first}");
    assert!(first.get("duplicate").is_none(), "{first}");
    let again = raw_publish(&a, "dd.1", headers(&[("Nats-Msg-Id", "m-1")]), "one").await;
    assert_eq!(again["seq"], 1, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    // The other agent learns of the stream by polling; wait until it captures the subject.
    let deadline = Instant::now() + Duration::from_secs(5);
    let across = loop {
        match timeout(
            WAIT,
            b.request_with_headers("dd.1", headers(&[("Nats-Msg-Id", "m-1")]), "one".into()),
        )
        .await
        .expect("answered")
        {
            Ok(reply) => break serde_json::from_slice::<Value>(&reply.payload).unwrap(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("stream never reached agent 2: {e}"),
        }
    };
    assert_eq!(across["seq"], 1, "{across}");
    assert_eq!(across["duplicate"], true, "{across}");
    let fresh = raw_publish(&b, "dd.1", headers(&[("Nats-Msg-Id", "m-2")]), "two").await;
    assert_eq!(fresh["seq"], 2, "{fresh}");
}

#[tokio::test]
async fn expected_headers_accepted_and_refused() {
    let stack = Stack::start(1);
    let c = async_nats::connect(stack.url(0)).await.unwrap();
    jetstream::new(c.clone())
        .create_stream(stream_config("EXP", &["exp.>"]))
        .await
        .expect("created");
    let ok = raw_publish(
        &c,
        "exp.a",
        headers(&[("Nats-Expected-Stream", "EXP"), ("Nats-Msg-Id", "id-1")]),
        "1",
    )
    .await;
    assert_eq!(ok["seq"], 1, "{ok}");
    let bad = raw_publish(
        &c,
        "exp.a",
        headers(&[("Nats-Expected-Stream", "OTHER")]),
        "x",
    )
    .await;
    assert_eq!(bad["error"]["err_code"], 10060, "{bad}");

    let ok = raw_publish(
        &c,
        "exp.b",
        headers(&[("Nats-Expected-Last-Sequence", "1")]),
        "2",
    )
    .await;
    assert_eq!(ok["seq"], 2, "{ok}");
    let bad = raw_publish(
        &c,
        "exp.b",
        headers(&[("Nats-Expected-Last-Sequence", "1")]),
        "x",
    )
    .await;
    assert_eq!(bad["error"]["err_code"], 10071, "{bad}");

    let ok = raw_publish(
        &c,
        "exp.b",
        headers(&[("Nats-Expected-Last-Subject-Sequence", "2")]),
        "3",
    )
    .await;
    assert_eq!(ok["seq"], 3, "{ok}");
    let bad = raw_publish(
        &c,
        "exp.b",
        headers(&[("Nats-Expected-Last-Subject-Sequence", "2")]),
        "x",
    )
    .await;
    assert_eq!(bad["error"]["err_code"], 10071, "{bad}");

    // The last msg id is the last stored message's (empty when it had none), as in nats-server.
    let bad = raw_publish(
        &c,
        "exp.c",
        headers(&[("Nats-Expected-Last-Msg-Id", "id-1")]),
        "x",
    )
    .await;
    assert_eq!(bad["error"]["err_code"], 10070, "{bad}");
    let ok = raw_publish(&c, "exp.c", headers(&[("Nats-Msg-Id", "id-4")]), "4").await;
    assert_eq!(ok["seq"], 4, "{ok}");
    let ok = raw_publish(
        &c,
        "exp.c",
        headers(&[("Nats-Expected-Last-Msg-Id", "id-4")]),
        "5",
    )
    .await;
    assert_eq!(ok["seq"], 5, "{ok}");

    // Refused messages took no sequence.
    let mut stream = jetstream::new(c).get_stream("EXP").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
}

#[tokio::test]
async fn put_failure_gives_errors_not_acks_and_service_resumes() {
    let stack = Stack::start_with(1, |_, _, t| {
        t.upload_deadline = Duration::from_millis(400);
    });
    let c = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::new(c.clone());
    js.create_stream(stream_config("FAIL", &["fail.>"]))
        .await
        .expect("created");
    let ok = raw_publish(&c, "fail.1", HeaderMap::new(), "before").await;
    assert_eq!(ok["seq"], 1, "{ok}");

    stack.s3.fail_next_puts(1_000);
    let failed = raw_publish(&c, "fail.1", HeaderMap::new(), "during").await;
    assert!(!acked(&failed), "no ack while the bucket fails: {failed}");
    assert_eq!(failed["error"]["code"], 503, "{failed}");
    // What failed and a reference, never where: no endpoint, bucket path or object key.
    let text = failed["error"]["description"].as_str().unwrap_or_default();
    assert!(text.contains("object upload failed (ref "), "{failed}");
    for place in ["http", "127.0.0.1", "objects/", ".obj"] {
        assert!(!text.contains(place), "{place} in {failed}");
    }
    stack.s3.fail_next_puts(0);

    let ok = raw_publish(&c, "fail.1", HeaderMap::new(), "after").await;
    assert_eq!(ok["seq"], 2, "service resumed with the next sequence: {ok}");
    let stream = js.get_stream("FAIL").await.unwrap();
    assert_eq!(
        stream.get_raw_message(2).await.unwrap().payload,
        Bytes::from("after")
    );
}

#[tokio::test]
async fn control_plane_outage_gives_errors_and_restart_loses_nothing() {
    let mut stack = Stack::start_with(1, |_, _, t| {
        t.commit_deadline = Duration::from_millis(500);
    });
    let c = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::new(c.clone());
    js.create_stream(stream_config("CP", &["cp.>"]))
        .await
        .expect("created");
    for i in 1..=20u64 {
        let ack = raw_publish(&c, "cp.x", HeaderMap::new(), &format!("m{i}")).await;
        assert_eq!(ack["seq"], i, "{ack}");
    }

    stack.cp.stop();
    let failed = raw_publish(&c, "cp.x", HeaderMap::new(), "while down").await;
    assert!(!acked(&failed), "no ack without a commit: {failed}");
    let text = failed["error"]["description"].as_str().unwrap_or_default();
    assert!(text.contains("(ref "), "{failed}");
    assert!(
        !text.contains("http") && !text.contains("127.0.0.1"),
        "{failed}"
    );

    stack.cp.restart();
    // The object uploaded for the refused publish is recorded for cleanup once the control
    // plane is back (the agent retries the record every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    let orphans = loop {
        let keys = stack.cp.orphan_keys();
        if !keys.is_empty() || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        orphans.len(),
        1,
        "one orphaned object recorded: {orphans:?}"
    );
    assert!(orphans[0].starts_with("infinistream/test-group/objects/"));
    let ack = raw_publish(&c, "cp.x", HeaderMap::new(), "m21").await;
    assert_eq!(ack["seq"], 21, "{ack}");
    let mut stream = js.get_stream("CP").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 21);
    for i in [1u64, 10, 20, 21] {
        let m = stream.get_raw_message(i).await.expect("acked message kept");
        assert_eq!(m.payload, Bytes::from(format!("m{i}")));
    }
}

/// Commits that fall behind the windows are grouped: objects sealed while the control plane was
/// away are committed together once it is back, in seal order, and every publisher gets its ack.
#[tokio::test]
async fn objects_queued_behind_a_slow_commit_are_committed_as_one_group() {
    let mut stack = Stack::start_with(1, |_, _, t| {
        t.commit_deadline = Duration::from_secs(30);
    });
    let c = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::new(c.clone());
    js.create_stream(stream_config("GRP", &["grp.>"]))
        .await
        .expect("created");
    let first = raw_publish(&c, "grp.x", HeaderMap::new(), "before").await;
    assert_eq!(first["seq"], 1, "{first}");

    stack.cp.stop();
    // One publish per object: wait for each object's PUT before the next publish, so every
    // message is sealed into its own object while the first of them retries its commit.
    const OBJECTS: usize = 5;
    let mut acks = Vec::new();
    for i in 0..OBJECTS {
        let puts = stack.s3.put_count();
        acks.push(
            js.publish("grp.x", Bytes::from(format!("m{i}")))
                .await
                .expect("sent"),
        );
        let deadline = Instant::now() + WAIT;
        while stack.s3.put_count() == puts {
            assert!(Instant::now() < deadline, "object {i} was not uploaded");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stack.cp.restart();
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = timeout(WAIT, ack)
            .await
            .expect("acked in time")
            .expect("acked, not failed");
        assert_eq!(ack.sequence, i as u64 + 2, "seal order kept");
    }
    // The commit under way when the control plane went down is retried alone; everything
    // sealed behind it must have ridden in fewer requests than objects.
    let commits = stack.cp.ok_requests("/v1/commits").await;
    assert!(
        (1..OBJECTS as u64).contains(&commits),
        "{OBJECTS} objects committed in {commits} requests"
    );
    let mut stream = js.get_stream("GRP").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        OBJECTS as u64 + 1
    );
    let last = stream.get_raw_message(OBJECTS as u64 + 1).await.unwrap();
    assert_eq!(last.payload, Bytes::from(format!("m{}", OBJECTS - 1)));
}

#[tokio::test]
async fn corrupted_object_is_reported_not_served() {
    let stack = Stack::start(1);
    let c = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::new(c.clone());
    let stream = js
        .create_stream(stream_config("CORRUPT", &["corrupt.>"]))
        .await
        .expect("created");
    let ack = raw_publish(&c, "corrupt.x", HeaderMap::new(), "precious payload").await;
    assert_eq!(ack["seq"], 1, "{ack}");

    // Flip one payload byte of every object on disk.
    let mut flipped = 0;
    for entry in walk(stack.s3.root_dir()) {
        let mut bytes = std::fs::read(&entry).unwrap();
        if let Some(pos) = bytes.windows(8).position(|w| w == b"precious") {
            bytes[pos] ^= 0x20;
            std::fs::write(&entry, bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 1, "found the object holding the message");

    let err = stream
        .get_raw_message(1)
        .await
        .expect_err("corruption reported");
    assert!(!err.to_string().contains("precious"), "{err}");
    assert!(
        !err.to_string().contains("objects/"),
        "no object key: {err}"
    );
    let direct = stream.direct_get(1).await;
    assert!(direct.is_err(), "direct get refuses corrupt data");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// With the bucket slow and the in-flight budget at 50 messages, the agent never holds more than
/// 50 publishes: it stops reading the socket instead. No object can therefore contain more than
/// 50 messages, and every publish is still acked, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_what_the_agent_holds() {
    const BUDGET: usize = 50;
    const N: usize = 500;
    let stack = Stack::start_with(1, |_, c, _| c.max_inflight_msgs = BUDGET);
    let client = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::context::ContextBuilder::new()
        .max_ack_inflight(10_000)
        .build(client);
    js.create_stream(stream_config("BP", &["bp.>"]))
        .await
        .expect("created");
    stack.s3.set_put_delay(Duration::from_millis(200));
    let mut acks = Vec::with_capacity(N);
    for i in 0..N {
        acks.push(
            js.publish("bp.x", format!("{i}").into())
                .await
                .expect("sent"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = timeout(Duration::from_secs(60), ack)
            .await
            .expect("acked in time")
            .expect("acked");
        assert_eq!(ack.sequence, i as u64 + 1);
    }
    stack.s3.set_put_delay(Duration::ZERO);

    let mut per_object = Vec::new();
    for path in walk(stack.s3.root_dir()) {
        if !path
            .to_string_lossy()
            .contains("infinistream/test-group/objects/")
        {
            continue;
        }
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let object = infinistream::format::decode_object(bytes).expect("valid object");
        per_object.push(object.blocks.iter().map(|b| b.records.len()).sum::<usize>());
    }
    assert_eq!(per_object.iter().sum::<usize>(), N, "{per_object:?}");
    assert!(
        per_object.iter().all(|&n| n <= BUDGET),
        "an object held more than the in-flight budget: {per_object:?}"
    );
}

/// A bucket slower than the window (1 s per PUT, 50 ms windows, two uploaders, 3 s deadline):
/// instead of sealing objects that queue behind the uploaders until their deadline, the agent
/// merges windows into larger objects, and every publish is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bucket_merges_windows_instead_of_failing() {
    const N: usize = 200;
    let stack = Stack::start_with(1, |_, _, t| {
        t.uploaders = 2;
        t.upload_deadline = Duration::from_secs(3);
    });
    let client = async_nats::connect(stack.url(0)).await.unwrap();
    let js = jetstream::context::ContextBuilder::new()
        .max_ack_inflight(10_000)
        .build(client);
    js.create_stream(stream_config("SLOW", &["slow.>"]))
        .await
        .expect("created");
    stack.s3.set_put_delay(Duration::from_secs(1));
    let puts_before = stack.s3.put_count();
    let mut acks = Vec::with_capacity(N);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..N {
        tick.tick().await;
        acks.push(
            js.publish("slow.x", format!("{i}").into())
                .await
                .expect("sent"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = timeout(Duration::from_secs(30), ack)
            .await
            .expect("answered in time")
            .expect("acked, not failed");
        assert_eq!(ack.sequence, i as u64 + 1);
    }
    stack.s3.set_put_delay(Duration::ZERO);
    let objects = stack.s3.put_count() - puts_before;
    assert!(
        objects <= 10,
        "{objects} objects for ~2 s of publishing with 1 s PUTs: windows were merged"
    );
}
