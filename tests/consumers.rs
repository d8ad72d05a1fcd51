//! JetStream consumers end to end: async-nats against agents, a real S3 HTTP server and the
//! control plane over HTTP. Consumer state lives in the control plane, so any agent serves any
//! consumer.

mod common;

use common::{connect, make_stream};

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::AckKind;
use bytes::Bytes;
use common::Stack;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

/// Publishes `n` messages on `subject` concurrently and waits for every ack. In chunks: async-nats
/// holds one of its 5000 in-flight permits per unanswered publish until its ack future is awaited.
async fn publish(js: &jetstream::Context, subject: &str, n: usize) {
    const CHUNK: usize = 2_000;
    for start in (0..n).step_by(CHUNK) {
        let mut acks = Vec::with_capacity(CHUNK);
        for i in start..n.min(start + CHUNK) {
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
}

async fn api(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let payload = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let reply = timeout(WAIT, client.request(subject.to_string(), payload))
        .await
        .expect("answered in time")
        .expect("request ok");
    serde_json::from_slice(&reply.payload).expect("json")
}

/// An existing durable pull consumer, looked up through `js`.
async fn pull_consumer(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
) -> consumer::PullConsumer {
    js.get_stream(stream)
        .await
        .expect("stream")
        .get_consumer(name)
        .await
        .expect("consumer")
}

fn explicit(name: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_api_json_and_errors() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    make_stream(&js, "S", &["s.>"]).await;
    publish(&js, "s.a", 1).await;
    publish(&js, "s.b", 1).await;

    let r = api(
        &client,
        "$JS.API.CONSUMER.CREATE.S.D",
        json!({"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit"}}),
    )
    .await;
    assert_eq!(
        r["type"], "io.nats.jetstream.api.v1.consumer_create_response",
        "{r}"
    );
    assert_eq!(r["name"], "D");
    assert_eq!(r["stream_name"], "S");
    let cfg = &r["config"];
    assert_eq!(cfg["durable_name"], "D");
    assert_eq!(cfg["name"], "D");
    assert_eq!(cfg["deliver_policy"], "all");
    assert_eq!(cfg["ack_wait"], 30_000_000_000i64);
    assert_eq!(cfg["max_deliver"], -1);
    assert_eq!(cfg["max_waiting"], 512);
    assert_eq!(cfg["max_ack_pending"], 1000);
    assert_eq!(cfg["num_replicas"], 0);
    assert!(cfg.get("inactive_threshold").is_none());
    assert_eq!(r["delivered"], json!({"consumer_seq":0,"stream_seq":0}));
    assert_eq!(r["ack_floor"], json!({"consumer_seq":0,"stream_seq":0}));
    assert_eq!(r["num_pending"], 2);
    assert_eq!(r["num_ack_pending"], 0);
    assert!(r["created"].is_string() && r["ts"].is_string());

    let e = api(
        &client,
        "$JS.API.CONSUMER.CREATE.S",
        json!({"stream_name":"S","config":{"ack_policy":"explicit"}}),
    )
    .await;
    assert_eq!(e["config"]["inactive_threshold"], 5_000_000_000i64);
    assert!(e["config"].get("name").is_none());
    assert_eq!(e["name"].as_str().map(str::len), Some(8));

    let cases = [
        ("$JS.API.CONSUMER.INFO.S.NOPE", Value::Null, 404, 10014),
        (
            "$JS.API.CONSUMER.CREATE.S.X.y",
            json!({"stream_name":"S","config":{"durable_name":"X","ack_policy":"explicit"}}),
            400,
            10131,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.X",
            json!({"stream_name":"S","config":{"durable_name":"Y"}}),
            400,
            10017,
        ),
        (
            "$JS.API.CONSUMER.CREATE.NOS.X",
            json!({"stream_name":"NOS","config":{"durable_name":"X"}}),
            404,
            10059,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.D",
            json!({"stream_name":"S","action":"create","config":{"durable_name":"D","ack_policy":"explicit","max_deliver":3}}),
            400,
            10148,
        ),
        (
            "$JS.API.CONSUMER.CREATE.S.U",
            json!({"stream_name":"S","action":"update","config":{"durable_name":"U"}}),
            400,
            10149,
        ),
    ];
    for (subject, body, code, err_code) in cases {
        let r = api(&client, subject, body).await;
        assert_eq!(r["error"]["code"], code, "{subject}: {r}");
        assert_eq!(r["error"]["err_code"], err_code, "{subject}: {r}");
    }

    let names = api(&client, "$JS.API.CONSUMER.NAMES.S", Value::Null).await;
    assert_eq!(names["total"], 2);
    let list = api(&client, "$JS.API.CONSUMER.LIST.S", Value::Null).await;
    assert_eq!(list["consumers"].as_array().map(Vec::len), Some(2));
    let info = api(&client, "$JS.API.STREAM.INFO.S", Value::Null).await;
    assert_eq!(info["state"]["consumer_count"], 2);

    let d = api(&client, "$JS.API.CONSUMER.DELETE.S.D", Value::Null).await;
    assert_eq!(
        d,
        json!({"type":"io.nats.jetstream.api.v1.consumer_delete_response","success":true})
    );
    let d = api(&client, "$JS.API.CONSUMER.DELETE.S.D", Value::Null).await;
    assert_eq!(d["error"]["err_code"], 10014);

    // The async-nats API on top.
    let s = js.get_stream("S").await.expect("stream");
    let c: consumer::PullConsumer = s.create_consumer(explicit("C")).await.expect("created");
    let mut c = c;
    let info = c.info().await.expect("info");
    assert_eq!(info.num_pending, 2);
    assert!(s.consumer_info("NOPE").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_fetch_batch_no_wait_and_expiry() {
    let stack = Stack::start(1);
    let (client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "P", &["p.>"]).await;
    publish(&js, "p.x", 10).await;
    let c: consumer::PullConsumer = s.create_consumer(explicit("D")).await.expect("consumer");

    let mut got = Vec::new();
    let mut batch = c.fetch().max_messages(4).messages().await.expect("fetch");
    while let Some(m) = timeout(WAIT, batch.next()).await.expect("in time") {
        let m = m.expect("message");
        let info = m.info().expect("info");
        assert_eq!(info.delivered, 1);
        got.push(info.stream_sequence);
        m.ack().await.expect("ack");
    }
    assert_eq!(got, vec![1, 2, 3, 4]);

    let mut batch = c
        .batch()
        .max_messages(20)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .expect("batch");
    let mut n = 0;
    while let Some(m) = timeout(WAIT, batch.next()).await.expect("in time") {
        m.expect("message").double_ack().await.expect("double ack");
        n += 1;
    }
    assert_eq!(n, 6);
    let mut c = c;
    let info = c.info().await.expect("info");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 10);
    assert_eq!(info.delivered.consumer_sequence, 10);

    // Raw pull requests: no_wait on an empty consumer is 404, expiry is 408 with pending counts.
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("sub");
    common::sync(&client).await;
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.P.D",
            inbox.clone(),
            Bytes::from(r#"{"batch":5,"no_wait":true}"#),
        )
        .await
        .expect("pub");
    let m = timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(m.status, Some(async_nats::StatusCode::NOT_FOUND));
    assert_eq!(m.description.as_deref(), Some("No Messages"));
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.P.D",
            inbox.clone(),
            Bytes::from(r#"{"batch":5,"expires":200000000}"#),
        )
        .await
        .expect("pub");
    let m = timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(m.status, Some(async_nats::StatusCode::TIMEOUT));
    let h = m.headers.expect("headers");
    assert_eq!(
        h.get("Nats-Pending-Messages").map(|v| v.as_str()),
        Some("5")
    );
    assert_eq!(h.get("Nats-Pending-Bytes").map(|v| v.as_str()), Some("0"));

    // A waiting request is woken by a new message.
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.P.D",
            inbox.clone(),
            Bytes::from(r#"{"batch":1,"expires":5000000000}"#),
        )
        .await
        .expect("pub");
    publish(&js, "p.y", 1).await;
    let m = timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("msg");
    assert_eq!(m.subject.as_str(), "p.y");
    let reply = m.reply.expect("ack subject");
    assert!(reply.starts_with("$JS.ACK.P.D.1.11.11."), "{reply}");
    assert!(reply.ends_with(".0"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_nak_term_and_max_deliver() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "R", &["r.>"]).await;
    publish(&js, "r.a", 3).await;
    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            durable_name: Some("R".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(600),
            max_deliver: 3,
            ..Default::default()
        })
        .await
        .expect("consumer");

    let fetch = |n: usize| {
        let c = c.clone();
        async move {
            let mut out = Vec::new();
            let mut b = c
                .batch()
                .max_messages(n)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .expect("batch");
            while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
                out.push(m.expect("message"));
            }
            out
        }
    };

    // 1 is left unacked, 2 is nak'd, 3 is terminated.
    let first = fetch(3).await;
    assert_eq!(first.len(), 3);
    first[1].ack_with(AckKind::Nak(None)).await.expect("nak");
    first[2].ack_with(AckKind::Term).await.expect("term");
    let again = fetch(1).await;
    let info = again[0].info().expect("info");
    assert_eq!((info.stream_sequence, info.delivered), (2, 2));
    again[0].ack().await.expect("ack");

    tokio::time::sleep(Duration::from_millis(700)).await;
    let third = fetch(3).await;
    let seqs: Vec<(u64, i64)> = third
        .iter()
        .map(|m| {
            let i = m.info().expect("info");
            (i.stream_sequence, i.delivered)
        })
        .collect();
    assert_eq!(seqs, vec![(1, 2)]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fourth = fetch(3).await;
    assert_eq!(fourth.len(), 1);
    assert_eq!(fourth[0].info().expect("info").delivered, 3);
    // max_deliver 3 reached: never again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(fetch(3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_policies_and_filters() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "F", &["f.>"]).await;
    for subj in ["f.a", "f.b", "f.a", "f.c", "f.b"] {
        publish(&js, subj, 1).await;
    }
    let start_time = time_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    publish(&js, "f.c", 1).await;

    async fn seqs(c: &consumer::PullConsumer, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut b = c
            .batch()
            .max_messages(n)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
            let m = m.expect("message");
            out.push(m.info().expect("info").stream_sequence);
            m.ack().await.expect("ack");
        }
        out
    }
    let make = |name: &str, policy: DeliverPolicy, filters: &[&str]| pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: policy,
        filter_subjects: filters.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let cases: Vec<(pull::Config, Vec<u64>)> = vec![
        (make("all", DeliverPolicy::All, &[]), vec![1, 2, 3, 4, 5, 6]),
        (make("last", DeliverPolicy::Last, &[]), vec![6]),
        (make("new", DeliverPolicy::New, &[]), vec![]),
        (
            make(
                "seq",
                DeliverPolicy::ByStartSequence { start_sequence: 4 },
                &[],
            ),
            vec![4, 5, 6],
        ),
        (
            make("time", DeliverPolicy::ByStartTime { start_time }, &[]),
            vec![6],
        ),
        (
            make("lps", DeliverPolicy::LastPerSubject, &[]),
            vec![3, 5, 6],
        ),
        (make("fa", DeliverPolicy::All, &["f.a"]), vec![1, 3]),
        (
            make("fab", DeliverPolicy::All, &["f.a", "f.b"]),
            vec![1, 2, 3, 5],
        ),
        (
            make("fw", DeliverPolicy::All, &["f.*"]),
            vec![1, 2, 3, 4, 5, 6],
        ),
    ];
    for (config, want) in cases {
        let name = config.durable_name.clone().unwrap_or_default();
        let c: consumer::PullConsumer = s.create_consumer(config).await.expect("consumer");
        assert_eq!(seqs(&c, 10).await, want, "consumer {name}");
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_with_three_pull_clients() {
    // The issue's figure. A debug build consumes it in about 10 s (publishing takes about as
    // long); the consumer path decodes each block once per claim, not once per message.
    const N: usize = 100_000;
    let stack = Stack::start(2);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "E", &["e.>"]).await;
    let started = Instant::now();
    publish(&js, "e.x", N).await;
    eprintln!("published {N} in {:?}", started.elapsed());
    let started = Instant::now();
    let _: consumer::PullConsumer = s.create_consumer(explicit("W")).await.expect("consumer");

    let mut tasks = Vec::new();
    for i in 0..3 {
        let url = stack.url(i % 2);
        tasks.push(tokio::spawn(async move {
            let (_c, js) = connect(&url).await;
            let c = pull_consumer(&js, "E", "W").await;
            let mut seen = Vec::new();
            let mut idle = Instant::now();
            while idle.elapsed() < Duration::from_secs(2) {
                let mut b = c
                    .batch()
                    .max_messages(500)
                    .expires(Duration::from_millis(300))
                    .messages()
                    .await
                    .expect("batch");
                while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
                    let m = m.expect("message");
                    seen.push(m.info().expect("info").stream_sequence);
                    m.ack().await.expect("ack");
                    idle = Instant::now();
                }
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    eprintln!("consumed {} in {:?}", all.len(), started.elapsed());
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), N, "every message delivered");
    assert_eq!(all.len(), N, "no message delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumer_continues_on_another_agent() {
    let mut stack = Stack::start(2);
    let (_a, js_a) = connect(&stack.url(0)).await;
    let s = make_stream(&js_a, "M", &["m.>"]).await;
    publish(&js_a, "m.x", 10).await;
    let c: consumer::PullConsumer = s.create_consumer(explicit("D")).await.expect("consumer");
    let mut b = c.fetch().max_messages(4).messages().await.expect("fetch");
    while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
        m.expect("message").double_ack().await.expect("ack");
    }
    drop(b);
    drop(c);
    let a = stack.agents.remove(0);
    drop(a);

    let (_b, js_b) = connect(&stack.url(0)).await;
    let c = pull_consumer(&js_b, "M", "D").await;
    let mut rest = Vec::new();
    let mut b = c
        .batch()
        .max_messages(10)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .expect("batch");
    while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
        let m = m.expect("message");
        rest.push(m.info().expect("info").stream_sequence);
        m.ack().await.expect("ack");
    }
    assert_eq!(rest, vec![5, 6, 7, 8, 9, 10]);
}

/// Agent A is a real process, SIGKILLed while one delivery is unacked: the durable consumer goes
/// on through agent B, the acked messages are not delivered again, the unacked one is redelivered
/// after ack_wait, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumer_continues_after_its_agent_is_killed() {
    let stack = Stack::start(1);
    let a = stack.agent_process();
    let (_a, js_a) = connect(&a.url).await;
    let s = make_stream(&js_a, "K", &["k.>"]).await;
    publish(&js_a, "k.x", 10).await;
    let c: consumer::PullConsumer = s
        .create_consumer(pull::Config {
            ack_wait: Duration::from_secs(1),
            ..explicit("D")
        })
        .await
        .expect("consumer");
    let mut b = c.fetch().max_messages(4).messages().await.expect("fetch");
    let mut first = Vec::new();
    while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
        let m = m.expect("message");
        let seq = m.info().expect("info").stream_sequence;
        first.push(seq);
        if seq < 4 {
            m.double_ack().await.expect("ack");
        }
    }
    assert_eq!(first, vec![1, 2, 3, 4]);
    drop(b);
    drop(c);
    drop(a); // SIGKILL: no graceful shutdown, seq 4 stays delivered and unacked

    let (_b, js_b) = connect(&stack.url(0)).await;
    let c = pull_consumer(&js_b, "K", "D").await;
    let mut rest = Vec::new();
    let started = Instant::now();
    while rest.len() < 7 && started.elapsed() < WAIT {
        let mut b = c
            .batch()
            .max_messages(10)
            .expires(Duration::from_millis(1500))
            .messages()
            .await
            .expect("batch");
        while let Some(m) = timeout(WAIT, b.next()).await.expect("in time") {
            let m = m.expect("message");
            let info = m.info().expect("info");
            rest.push((info.stream_sequence, info.delivered));
            m.double_ack().await.expect("ack");
        }
    }
    rest.sort_unstable();
    assert_eq!(
        rest,
        vec![(4, 2), (5, 1), (6, 1), (7, 1), (8, 1), (9, 1), (10, 1)],
        "acked messages stay acked; the unacked one is redelivered once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stream_consumes_continuously() {
    let stack = Stack::start(1);
    let (_client, js) = connect(&stack.url(0)).await;
    let s = make_stream(&js, "C", &["c.>"]).await;
    let c: consumer::PullConsumer = s.create_consumer(explicit("D")).await.expect("consumer");
    let mut msgs = c.messages().await.expect("messages");
    publish(&js, "c.x", 50).await;
    for want in 1..=50u64 {
        let m = timeout(WAIT, msgs.next())
            .await
            .expect("in time")
            .expect("some")
            .expect("message");
        assert_eq!(m.info().expect("info").stream_sequence, want);
        m.ack().await.expect("ack");
    }
}
