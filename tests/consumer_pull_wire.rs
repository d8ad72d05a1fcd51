//! Pull consumer statuses byte for byte, as nats-server 2.15.1 sends them (each expected frame
//! below was captured from a real nats-server over raw TCP), and the pull features clients lean
//! on: `+NXT` acks, `backoff` redelivery delays, `headers_only`.

mod common;

use common::{connect, make_stream};

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, AckPolicy, pull, push};
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn publish_n(js: &jetstream::Context, subject: &str, body: &'static [u8], n: usize) {
    for _ in 0..n {
        js.publish(subject.to_string(), Bytes::from_static(body))
            .await
            .expect("published")
            .await
            .expect("acked");
    }
}

/// A raw client connection: what the agent writes, unparsed.
struct Raw {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(port: u16) -> Self {
        let sock = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
        let mut raw = Self {
            sock,
            buf: Vec::new(),
        };
        raw.send(
            b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nPING\r\n",
        )
        .await;
        raw.read_until(|b| find(b, b"PONG\r\n").is_some()).await;
        raw.buf.clear();
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.expect("write");
    }

    async fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut chunk = vec![0u8; 1 << 16];
        while !pred(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = timeout(left, self.sock.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out; got {:?}", String::from_utf8_lossy(&self.buf))
                })
                .expect("read");
            assert!(n > 0, "closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Subscribes `_R.<sid>` and publishes `body` to `subject` with that reply.
    async fn request(&mut self, subject: &str, body: &[u8], sid: u32) {
        let mut out = format!(
            "SUB _R.{sid} {sid}\r\nPUB {subject} _R.{sid} {}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\nPING\r\n");
        self.send(&out).await;
    }

    /// Everything received up to `want` equals `want` exactly (PONGs of the requests dropped),
    /// and nothing else follows within 100 ms.
    async fn expect_exact(&mut self, want: &[u8]) {
        self.read_until(|b| strip_pongs(b).len() >= want.len())
            .await;
        let _ = timeout(Duration::from_millis(100), async {
            let mut chunk = vec![0u8; 4096];
            if let Ok(n) = self.sock.read(&mut chunk).await {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        let got = strip_pongs(&self.buf);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "exact bytes"
        );
        self.buf.clear();
    }
}

fn strip_pongs(b: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    while let Some(i) = find(&out, b"PONG\r\n") {
        out.drain(i..i + 6);
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header-only message to `_R.<sid>`: the status line and headers in `head`.
fn status(sid: u32, head: &str) -> Vec<u8> {
    let n = head.len() + 4;
    format!("HMSG _R.{sid} {sid} {n} {n}\r\n{head}\r\n\r\n\r\n").into_bytes()
}

/// `max_batch`, `max_expires` and `max_bytes` refuse a pull request with nats-server's 409s, in
/// nats-server's order, both for the first request of a consumer (checked by the control plane)
/// and for later ones (checked by the agent); a push consumer refuses pull requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_and_push_consumers_refuse_with_exact_409s() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "U", &["u.>"]).await;
    publish_n(&js, "u.x", b"hello", 3).await;
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("P".into()),
            ack_policy: AckPolicy::Explicit,
            max_batch: 5,
            max_expires: Duration::from_secs(2),
            max_bytes: 1000,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("R".into()),
            max_expires: Duration::from_secs(90),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let _: consumer::PushConsumer = s
        .create_consumer(push::Config {
            durable_name: Some("PU".into()),
            deliver_subject: "dlv".into(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("push consumer");

    let mut raw = Raw::connect(stack.agents[0].port).await;
    let next = "$JS.API.CONSUMER.MSG.NEXT.U.P";
    // Every limit exceeded: the batch is reported first, then expires, then bytes.
    raw.request(
        next,
        br#"{"batch":10,"expires":9000000000,"max_bytes":5000}"#,
        1,
    )
    .await;
    raw.expect_exact(&status(1, "NATS/1.0 409 Exceeded MaxRequestBatch of 5"))
        .await;
    raw.request(next, b"10", 2).await;
    raw.expect_exact(&status(2, "NATS/1.0 409 Exceeded MaxRequestBatch of 5"))
        .await;
    raw.request(
        next,
        br#"{"batch":1,"expires":9000000000,"max_bytes":5000}"#,
        3,
    )
    .await;
    raw.expect_exact(&status(3, "NATS/1.0 409 Exceeded MaxRequestExpires of 2s"))
        .await;
    raw.request(next, br#"{"batch":1,"max_bytes":5000}"#, 4)
        .await;
    raw.expect_exact(&status(
        4,
        "NATS/1.0 409 Exceeded MaxRequestMaxBytes of 1000",
    ))
    .await;
    // Go's duration format.
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.U.R",
        br#"{"batch":1,"expires":99000000000}"#,
        5,
    )
    .await;
    raw.expect_exact(&status(
        5,
        "NATS/1.0 409 Exceeded MaxRequestExpires of 1m30s",
    ))
    .await;
    for sid in [6, 7] {
        raw.request("$JS.API.CONSUMER.MSG.NEXT.U.PU", br#"{"batch":1}"#, sid)
            .await;
        raw.expect_exact(&status(sid, "NATS/1.0 409 Consumer is push based"))
            .await;
    }
    // Within the limits: a message, nothing refused.
    raw.request(
        next,
        br#"{"batch":5,"expires":2000000000,"max_bytes":1000}"#,
        8,
    )
    .await;
    raw.read_until(|b| find(b, b"MSG u.x 8 $JS.ACK.U.P.1.1.1.").is_some())
        .await;
    // The status line, not "409": the ack subject carries a nanosecond timestamp.
    assert!(find(&raw.buf, b"NATS/1.0 409").is_none());
}

/// `409 Message Size Exceeds MaxBytes` ends a request whose next message does not fit, after the
/// ones that did, with what the request still wanted; sizes count subject, ack reply, headers and
/// payload as nats-server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_ends_the_request_with_pending_headers() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "U", &["u.>"]).await;
    publish_n(&js, "u.x", b"hello", 3).await;
    for name in ["Q", "Q2"] {
        let _: consumer::PullConsumer = s
            .create_consumer(pull::Config {
                durable_name: Some(name.into()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("consumer");
    }
    let mut raw = Raw::connect(stack.agents[0].port).await;
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.U.Q2",
        br#"{"batch":1,"max_bytes":10}"#,
        1,
    )
    .await;
    raw.expect_exact(&status(
        1,
        "NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 10",
    ))
    .await;

    // Each message counts 3 (subject) + 39 (ack reply, 19-digit timestamp) + 5 = 47 bytes: two
    // fit in 100, leaving 6.
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.U.Q",
        br#"{"batch":3,"max_bytes":100,"expires":1000000000}"#,
        2,
    )
    .await;
    let tail = status(
        2,
        "NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 6",
    );
    raw.read_until(|b| find(b, &tail).is_some()).await;
    let got = String::from_utf8_lossy(&strip_pongs(&raw.buf)).to_string();
    let lines: Vec<&str> = got.split("\r\n").collect();
    assert!(
        lines[0].starts_with("MSG u.x 2 $JS.ACK.U.Q.1.1.1.") && lines[0].ends_with(".2 5"),
        "{got}"
    );
    assert_eq!(lines[1], "hello");
    assert!(
        lines[2].starts_with("MSG u.x 2 $JS.ACK.U.Q.1.2.2.") && lines[2].ends_with(".1 5"),
        "{got}"
    );
    assert_eq!(lines[3], "hello");
    assert!(
        got.ends_with(&String::from_utf8_lossy(&tail).to_string()),
        "{got}"
    );
    assert_eq!(got.matches("MSG u.x").count(), 2, "{got}");
}

/// A waiting pull request with `idle_heartbeat` gets nats-server's heartbeat (with the last
/// delivered sequences) and, at expiry, `408 Request Timeout` with what it still wanted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_idle_heartbeats_and_timeout_on_the_wire() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "T", &["t.>"]).await;
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("Q".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut raw = Raw::connect(stack.agents[0].port).await;
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.T.Q",
        br#"{"batch":3,"max_bytes":777,"expires":1000000000,"idle_heartbeat":300000000}"#,
        8,
    )
    .await;
    let timeout_frame = status(
        8,
        "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 777",
    );
    raw.read_until(|b| find(b, &timeout_frame).is_some()).await;
    let heartbeat = status(
        8,
        "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0",
    );
    let mut rest = strip_pongs(&raw.buf);
    let mut beats = 0;
    while rest.starts_with(&heartbeat) {
        rest.drain(..heartbeat.len());
        beats += 1;
    }
    assert!(
        (1..=3).contains(&beats),
        "{beats} heartbeats: {:?}",
        String::from_utf8_lossy(&raw.buf)
    );
    assert_eq!(rest, timeout_frame, "{:?}", String::from_utf8_lossy(&rest));

    // After deliveries, heartbeats carry the last delivered sequences.
    publish_n(&js, "t.x", b"x", 2).await;
    raw.buf.clear();
    raw.request("$JS.API.CONSUMER.MSG.NEXT.T.Q", b"2", 9).await;
    raw.read_until(|b| find(b, b"MSG t.x 9 $JS.ACK.T.Q.1.2.2.").is_some())
        .await;
    raw.read_until(|b| {
        find(b, b"\r\nx\r\n").is_some_and(|i| find(&b[i + 1..], b"\r\nx\r\n").is_some())
    })
    .await;
    raw.buf.clear();
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.T.Q",
        br#"{"batch":1,"expires":600000000,"idle_heartbeat":200000000}"#,
        10,
    )
    .await;
    let beat = status(
        10,
        "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2",
    );
    raw.read_until(|b| find(b, &beat).is_some()).await;
}

/// A request waiting on a consumer that is deleted ends with `409 Consumer Deleted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_consumer_ends_its_waiting_requests() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "T", &["t.>"]).await;
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("Q".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut raw = Raw::connect(stack.agents[0].port).await;
    raw.request(
        "$JS.API.CONSUMER.MSG.NEXT.T.Q",
        br#"{"batch":4,"expires":5000000000}"#,
        10,
    )
    .await;
    // The request has been claimed for at least once (the agent knows the consumer).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client
        .request("$JS.API.CONSUMER.DELETE.T.Q", Bytes::new())
        .await
        .expect("delete");
    let v: Value = serde_json::from_slice(&r.payload).expect("json");
    assert_eq!(v["success"], true, "{v}");
    raw.expect_exact(&status(10, "NATS/1.0 409 Consumer Deleted"))
        .await;
}

/// `+NXT` acks the message and asks for the next ones on the ack's reply subject; the body after
/// `+NXT` may be empty, a batch size or a pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_next_acks_and_delivers_the_next_messages() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "N", &["n.>"]).await;
    for i in 1..=5 {
        js.publish("n.x", Bytes::from(format!("{i}")))
            .await
            .expect("published")
            .await
            .expect("acked");
    }
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("sub");
    common::sync(&client).await;
    client
        .publish_with_reply("$JS.API.CONSUMER.MSG.NEXT.N.D", inbox.clone(), Bytes::new())
        .await
        .expect("pull");
    let next = async |sub: &mut async_nats::Subscriber| {
        timeout(WAIT, sub.next())
            .await
            .expect("in time")
            .expect("message")
    };
    let m1 = next(&mut sub).await;
    assert_eq!(m1.payload.as_ref(), b"1");
    let ack_next = async |m: &async_nats::Message, body: &'static str| {
        client
            .publish_with_reply(
                m.reply.clone().expect("ack subject"),
                inbox.clone(),
                Bytes::from_static(body.as_bytes()),
            )
            .await
            .expect("ack");
    };
    ack_next(&m1, "+NXT").await;
    let m2 = next(&mut sub).await;
    assert_eq!(m2.payload.as_ref(), b"2");
    ack_next(&m2, "+NXT 2").await;
    let m3 = next(&mut sub).await;
    let m4 = next(&mut sub).await;
    assert_eq!(
        (m3.payload.as_ref(), m4.payload.as_ref()),
        (&b"3"[..], &b"4"[..])
    );
    ack_next(&m4, r#"+NXT {"batch":1}"#).await;
    let m5 = next(&mut sub).await;
    assert_eq!(m5.payload.as_ref(), b"5");

    // 1, 2 and 4 acked by their +NXT; 3 and 5 still pending.
    let r = client
        .request("$JS.API.CONSUMER.INFO.N.D", Bytes::new())
        .await
        .expect("info");
    let v: Value = serde_json::from_slice(&r.payload).expect("json");
    assert_eq!(v["num_ack_pending"], 2, "{v}");
    assert_eq!(v["ack_floor"]["stream_seq"], 2, "{v}");
    assert_eq!(v["delivered"]["stream_seq"], 5, "{v}");
}

/// Redeliveries follow the backoff list (the last value repeating) and stop at max_deliver; a
/// config with fewer deliveries than backoff values is refused with nats-server's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_spaces_redeliveries() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "B", &["b.>"]).await;

    let r = client
        .request(
            "$JS.API.CONSUMER.CREATE.B.BAD",
            Bytes::from_static(
                br#"{"stream_name":"B","config":{"durable_name":"BAD","ack_policy":"explicit","backoff":[1000000000,2000000000,3000000000],"max_deliver":2}}"#,
            ),
        )
        .await
        .expect("create");
    let v: Value = serde_json::from_slice(&r.payload).expect("json");
    assert_eq!(
        v["error"],
        serde_json::json!({"code":400,"err_code":10116,"description":"max deliver is required to be > length of backoff values"}),
        "{v}"
    );

    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("D".into()),
            ack_policy: AckPolicy::Explicit,
            backoff: vec![Duration::from_millis(300), Duration::from_millis(900)],
            max_deliver: 4,
            ..Default::default()
        })
        .await
        .expect("consumer");
    // nats-server takes the first backoff as the ack wait.
    assert_eq!(c.cached_info().config.ack_wait, Duration::from_millis(300));
    publish_n(&js, "b.x", b"x", 1).await;
    let mut msgs = c.messages().await.expect("messages");
    let mut at = Vec::new();
    let started = Instant::now();
    while at.len() < 4 {
        let m = timeout(WAIT, msgs.next())
            .await
            .expect("in time")
            .expect("some")
            .expect("message");
        let info = m.info().expect("info");
        assert_eq!(info.stream_sequence, 1);
        assert_eq!(info.delivered as usize, at.len() + 1);
        at.push(started.elapsed());
    }
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    let within = |d: Duration, lo: u64, hi: u64| {
        d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi)
    };
    assert!(within(gaps[0], 250, 700), "{gaps:?}");
    assert!(within(gaps[1], 850, 1500), "{gaps:?}");
    assert!(within(gaps[2], 850, 1500), "{gaps:?}");
    // max_deliver 4: no fifth delivery.
    assert!(
        timeout(Duration::from_millis(1500), msgs.next())
            .await
            .is_err(),
        "delivered past max_deliver"
    );
}

/// A headers-only pull consumer delivers the headers and `Nats-Msg-Size` (the payload's size)
/// with an empty body, byte for byte as nats-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_only_pull_consumer_on_the_wire() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "H", &["h.>"]).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-A", "1");
    js.publish_with_headers("h.x", headers, Bytes::from_static(b"hello world"))
        .await
        .expect("published")
        .await
        .expect("acked");
    publish_n(&js, "h.y", b"plain", 1).await;
    let _: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("HO".into()),
            ack_policy: AckPolicy::Explicit,
            headers_only: true,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut raw = Raw::connect(stack.agents[0].port).await;
    raw.request("$JS.API.CONSUMER.MSG.NEXT.H.HO", br#"{"batch":2}"#, 3)
        .await;
    raw.read_until(|b| find(b, b"Nats-Msg-Size: 5\r\n\r\n\r\n").is_some())
        .await;
    let got = String::from_utf8_lossy(&strip_pongs(&raw.buf)).to_string();
    let frames: Vec<&str> = got.split("HMSG ").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 2, "{got}");
    let (line, rest) = frames[0].split_once("\r\n").expect("line");
    assert!(
        line.starts_with("h.x 3 $JS.ACK.H.HO.1.1.1.") && line.ends_with(".1 39 39"),
        "{got}"
    );
    assert_eq!(rest, "NATS/1.0\r\nX-A: 1\r\nNats-Msg-Size: 11\r\n\r\n\r\n");
    let (line, rest) = frames[1].split_once("\r\n").expect("line");
    assert!(
        line.starts_with("h.y 3 $JS.ACK.H.HO.1.2.2.") && line.ends_with(".0 30 30"),
        "{got}"
    );
    assert_eq!(rest, "NATS/1.0\r\nNats-Msg-Size: 5\r\n\r\n\r\n");
}
