//! Core NATS across agents (the route mesh), side by side with a two-node nats-server 2.15.1
//! cluster: the same scenarios run against both, with async-nats. Then what only agents have:
//! three agents with wildcards, JetStream-stored messages and KV watchers across agents,
//! `/routez` and the per-zone metrics, and an agent killed with SIGKILL and started again.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::{Client, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use common::Stack;
use common::nats_cluster::NatsCluster;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> Client {
    async_nats::connect(url).await.expect("connect")
}

async fn next(sub: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing in {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: subscription ended"))
}

/// Waits until what `subscriber` subscribed so far is known where `publisher` is: a fresh
/// subscription on `subscriber`'s connection (announced after the ones before it, on the same
/// route) is probed from `publisher` until a probe arrives.
async fn barrier(subscriber: &Client, publisher: &Client) {
    let subject = format!("barrier.{}", subscriber.new_inbox());
    let mut probe = subscriber
        .subscribe(subject.clone())
        .await
        .expect("subscribe");
    subscriber.flush().await.expect("flush");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        publisher
            .publish(subject.clone(), Bytes::new())
            .await
            .expect("publish");
        publisher.flush().await.expect("flush");
        if tokio::time::timeout(Duration::from_millis(20), probe.next())
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "interest never reached the publisher's server"
        );
    }
}

/// Runs `scenario` against agents of one group and against a nats-server cluster, both with
/// `nodes` servers.
macro_rules! side_by_side {
    ($name:ident, $nodes:expr, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let reference = NatsCluster::start($nodes).await;
            $scenario(&reference.urls, "nats-server").await;
            drop(reference);
            let stack = agents($nodes).await;
            let urls: Vec<String> = (0..$nodes).map(|i| stack.url(i)).collect();
            $scenario(&urls, "agents").await;
        }
    };
}

/// `n` agents of one group whose routes are all up.
async fn agents(n: usize) -> Stack {
    let zones: Vec<&str> = (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }).collect();
    let stack = Stack::start_zones(&zones);
    let ports: Vec<u16> = stack.agents.iter().map(|a| a.http_port).collect();
    common::wait_routes(&ports, n - 1, WAIT).await;
    stack
}

/// Messages cross in the publisher's order, headers intact; a subject nobody elsewhere wants
/// does not cross; `max_payload` is the same across servers; `no_echo` holds across servers.
async fn order_headers_and_no_echo(urls: &[String], who: &str) {
    let publisher = connect(&urls[0]).await;
    let remote = connect(&urls[1]).await;
    let mut orders = remote.subscribe("orders.>").await.expect("subscribe");
    let mut other = remote.subscribe("payments.>").await.expect("subscribe");
    barrier(&remote, &publisher).await;
    const N: usize = 500;
    for i in 0..N {
        if i % 50 == 0 {
            let mut h = HeaderMap::new();
            h.insert("Seq", i.to_string().as_str());
            publisher
                .publish_with_headers("orders.eu", h, i.to_string().into())
                .await
                .expect("publish");
        } else {
            publisher
                .publish("orders.eu", i.to_string().into())
                .await
                .expect("publish");
        }
    }
    publisher
        .publish("payments.eu", "last".into())
        .await
        .expect("publish");
    publisher.flush().await.expect("flush");
    for i in 0..N {
        let m = next(&mut orders, who).await;
        assert_eq!(m.payload, i.to_string().as_bytes(), "{who}: in order");
        let seq = m.headers.as_ref().and_then(|h| h.get("Seq"));
        if i % 50 == 0 {
            assert_eq!(
                seq.map(|v| v.as_str()),
                Some(i.to_string().as_str()),
                "{who}"
            );
        } else {
            assert!(seq.is_none(), "{who}: headers only where sent");
        }
    }
    assert_eq!(next(&mut other, who).await.payload, "last");

    // A message of exactly max_payload crosses whole; one byte more is refused where it is
    // published (async-nats checks the server's INFO before sending).
    let max = publisher.server_info().max_payload;
    let mut big_sub = remote.subscribe("big.one").await.expect("subscribe");
    barrier(&remote, &publisher).await;
    publisher
        .publish("big.one", vec![b'x'; max].into())
        .await
        .expect("publish max_payload");
    publisher.flush().await.expect("flush");
    let big = next(&mut big_sub, who).await;
    assert_eq!(big.payload.len(), max, "{who}: max_payload crosses whole");
    assert!(
        publisher
            .publish("big.one", vec![b'x'; max + 1].into())
            .await
            .is_err(),
        "{who}: over max_payload is refused"
    );

    // no_echo: the publisher's own subscription never sees its message, wherever it went.
    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(&urls[0])
        .await
        .expect("connect");
    let mut own = quiet.subscribe("echo.x").await.expect("subscribe");
    let mut far = remote.subscribe("echo.x").await.expect("subscribe");
    barrier(&quiet, &remote).await;
    barrier(&remote, &quiet).await;
    quiet.publish("echo.x", "a".into()).await.expect("publish");
    quiet.flush().await.expect("flush");
    assert_eq!(next(&mut far, who).await.payload, "a");
    remote.publish("echo.x", "b".into()).await.expect("publish");
    remote.flush().await.expect("flush");
    assert_eq!(
        next(&mut own, who).await.payload,
        "b",
        "{who}: no echo of a"
    );
}

/// Counts what the members of a queue group got, after a marker published behind the messages
/// reached every member connection (so nothing later can still arrive).
async fn drain(
    members: &mut [(usize, async_nats::Subscriber)],
    markers: &mut [async_nats::Subscriber],
    n: usize,
    who: &str,
) -> HashMap<usize, usize> {
    let mut got: HashMap<usize, usize> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for marker in markers.iter_mut() {
        next(marker, who).await;
    }
    for (server, sub) in members.iter_mut() {
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(1), sub.next()).await {
            assert!(seen.insert(m.payload.clone()), "{who}: delivered twice");
            *got.entry(*server).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), n, "{who}: every message exactly once");
    got
}

/// Publishes `work` messages numbered `range`, then the `work.done` marker behind them.
async fn publish_work(publisher: &Client, range: std::ops::Range<usize>) {
    for i in range {
        publisher
            .publish("work", i.to_string().into())
            .await
            .expect("publish");
    }
    publisher
        .publish("work.done", Bytes::new())
        .await
        .expect("publish");
    publisher.flush().await.expect("flush");
}

/// A queue group spread over servers gets each message once. nats-server 2.15 picks among all
/// members, local and remote alike, for a client's message (measured: a local member among four
/// got 59 of 200; it prefers local members only for messages that arrived over a route), so
/// with one member where the publisher is and three elsewhere, each side gets a share.
async fn queue_groups_exactly_once_over_all_members(urls: &[String], who: &str) {
    let publisher = connect(&urls[0]).await;
    let remote = connect(&urls[1]).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push((
            1usize,
            remote
                .queue_subscribe("work", "workers".into())
                .await
                .expect("queue subscribe"),
        ));
    }
    let mut markers = vec![remote.subscribe("work.done").await.expect("subscribe")];
    barrier(&remote, &publisher).await;
    const N: usize = 200;
    publish_work(&publisher, 0..N).await;
    let got = drain(&mut members, &mut markers, N, who).await;
    assert_eq!(got.get(&1), Some(&N), "{who}");

    // A member joins where the publisher is: one member of four, it gets about a quarter.
    let local = connect(&urls[0]).await;
    members.push((
        0,
        local
            .queue_subscribe("work", "workers".into())
            .await
            .expect("queue subscribe"),
    ));
    markers.push(local.subscribe("work.done").await.expect("subscribe"));
    local.flush().await.expect("flush");
    common::sync(&local).await;
    publish_work(&publisher, N..2 * N).await;
    let got = drain(&mut members, &mut markers, N, who).await;
    let here = got.get(&0).copied().unwrap_or(0);
    // Expected 50 with a standard deviation of about 6: outside 20..=90 is not chance.
    assert!(
        (20..=90).contains(&here),
        "{who}: the local member got {here} of {N}"
    );
}

/// Request/reply with inbox replies across servers; no responders only when nobody anywhere
/// listens, including once the service has gone.
async fn request_reply_and_no_responders(urls: &[String], who: &str) {
    let requester = connect(&urls[0]).await;
    let service = connect(&urls[1]).await;
    let mut calls = service
        .queue_subscribe("svc.echo", "svc".into())
        .await
        .expect("subscribe");
    let answering = service.clone();
    let server = tokio::spawn(async move {
        let mut answered = 0usize;
        while let Some(m) = calls.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"re:".to_vec();
                body.extend_from_slice(&m.payload);
                answering.publish(reply, body.into()).await.expect("reply");
                answering.flush().await.expect("flush");
                answered += 1;
            }
        }
        answered
    });
    barrier(&service, &requester).await;
    for i in 0..50 {
        let answer =
            tokio::time::timeout(WAIT, requester.request("svc.echo", i.to_string().into()))
                .await
                .expect("in time")
                .expect("answered");
        assert_eq!(answer.payload, format!("re:{i}").as_bytes(), "{who}");
    }
    let none = requester.request("svc.nobody", Bytes::new()).await;
    assert!(
        matches!(&none, Err(e) if e.kind() == RequestErrorKind::NoResponders),
        "{who}: {none:?}"
    );
    // The service leaves: once that is known here, requests get no responders at once.
    server.abort();
    drop(service);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            requester.request("svc.echo", Bytes::new()),
        )
        .await;
        if matches!(&r, Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who}: the service's interest was never withdrawn: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

side_by_side!(
    messages_cross_in_order_with_headers_and_no_echo,
    2,
    order_headers_and_no_echo
);
side_by_side!(
    queue_groups_get_each_message_once_from_any_member,
    2,
    queue_groups_exactly_once_over_all_members
);
side_by_side!(
    requests_cross_and_no_responders_means_nobody_anywhere,
    2,
    request_reply_and_no_responders
);

/// A client library's scenario script (`program dir/script urls`), off the async runtime.
async fn client_scenario(program: String, dir: &'static str, script: &'static str, urls: String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    tokio::task::spawn_blocking(move || common::scenario::run(&program, &dir, script, &[&urls]))
        .await
        .expect("scenario ran");
}

fn python() -> String {
    std::env::var("INFINISTREAM_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn node() -> String {
    std::env::var("INFINISTREAM_TEST_NODE").unwrap_or_else(|_| "node".to_string())
}

async fn nats_py_routes(urls: &[String], _who: &str) {
    // nats.py takes the three URLs as three arguments.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let urls = urls.to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = urls.iter().map(String::as_str).collect();
        common::scenario::run(&python(), &dir, "routes_scenario.py", &args)
    })
    .await
    .expect("scenario ran");
}

async fn nats_js_routes(urls: &[String], _who: &str) {
    client_scenario(node(), "tests/js", "routes.mjs", urls.join(",")).await;
}

side_by_side!(
    nats_py_wildcards_queue_groups_and_a_micro_service_across_three_servers,
    3,
    nats_py_routes
);
side_by_side!(
    nats_js_wildcards_queue_groups_and_requests_across_three_servers,
    3,
    nats_js_routes
);

/// Three agents, wildcards on two of them: each subscription gets exactly what matches it,
/// once; a queue group spread over two agents gets each message once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_wildcards_and_a_spread_queue_group() {
    let stack = agents(3).await;
    let a0 = connect(&stack.url(0)).await;
    let a1 = connect(&stack.url(1)).await;
    let a2 = connect(&stack.url(2)).await;
    let mut star = a1.subscribe("orders.*").await.expect("subscribe");
    let mut gt = a2.subscribe("orders.>").await.expect("subscribe");
    let mut local = a0.subscribe("orders.eu").await.expect("subscribe");
    let mut members = Vec::new();
    for (i, c) in [(1usize, &a1), (1, &a1), (2, &a2), (2, &a2)] {
        members.push((
            i,
            c.queue_subscribe("orders.>", "q".into()).await.expect("q"),
        ));
    }
    let mut markers = vec![
        a1.subscribe("orders.end").await.expect("subscribe"),
        a2.subscribe("orders.end").await.expect("subscribe"),
    ];
    barrier(&a1, &a0).await;
    barrier(&a2, &a0).await;
    const N: usize = 300;
    for i in 0..N {
        let subject = if i % 3 == 0 {
            "orders.eu.x"
        } else {
            "orders.eu"
        };
        a0.publish(subject, i.to_string().into())
            .await
            .expect("publish");
    }
    a0.publish("orders.end", Bytes::new())
        .await
        .expect("publish");
    a0.flush().await.expect("flush");
    let deep = (0..N).filter(|i| i % 3 == 0).count();
    for i in (0..N).filter(|i| i % 3 != 0) {
        assert_eq!(next(&mut star, "orders.*").await.payload, i.to_string());
        assert_eq!(next(&mut local, "local").await.payload, i.to_string());
    }
    for i in 0..N {
        assert_eq!(next(&mut gt, "orders.>").await.payload, i.to_string());
    }
    assert_eq!(next(&mut star, "orders.* end").await.payload, "");
    assert_eq!(next(&mut gt, "orders.> end").await.payload, "");
    // N messages plus the end marker, each to one member.
    let got = drain(&mut members, &mut markers, N + 1, "queue").await;
    assert!(
        got.get(&1).is_some_and(|n| *n > 0) && got.get(&2).is_some_and(|n| *n > 0),
        "both agents' members took a share: {got:?} ({deep} deep)"
    );

    // /routez shows both routes of agent 0 with the traffic, labelled by zone.
    let z = common::routez(stack.agents[0].http_port).await;
    assert_eq!(z["num_routes"], 2, "{z}");
    let routes = z["routes"].as_array().expect("routes");
    let mut zones: Vec<&str> = routes
        .iter()
        .map(|r| r["zone"].as_str().unwrap_or(""))
        .collect();
    zones.sort();
    assert_eq!(zones, ["a", "b"], "{z}");
    for r in routes {
        assert!(
            r["out_msgs"].as_u64().unwrap_or(0) >= (N - deep) as u64,
            "{r}"
        );
        assert!(r["subscriptions"].as_u64().unwrap_or(0) >= 2, "{r}");
    }
    let (_, page) = common::http_get(stack.agents[0].http_port, "/metrics", &[]).await;
    // Agent 2 (zone a) takes every message for `orders.>`, agent 1 (zone b) those for
    // `orders.*`, at least.
    let series = |what: &str, zone: &str| {
        common::metric_value(
            &page,
            &format!("infinistream_routed_{what}_total{{direction=\"out\",zone=\"{zone}\"}}"),
        )
        .unwrap_or_else(|| panic!("routed {what} to zone {zone}"))
    };
    assert!(series("msgs", "a") >= N as f64, "{page}");
    assert!(series("msgs", "b") >= (N - deep) as f64, "{page}");
    assert!(series("bytes", "a") > series("msgs", "a"), "{page}");
}

/// A message stored by a stream reaches the core subscribers of every agent once (the agent
/// that stored it copies it to the others); a KV watcher on one agent sees a put made through
/// another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_messages_and_kv_watchers_cross_agents() {
    let stack = agents(3).await;
    let (c0, js0) = common::connect(&stack.url(0)).await;
    let c1 = connect(&stack.url(1)).await;
    let c2 = connect(&stack.url(2)).await;
    common::make_stream(&js0, "EVENTS", &["events.>"]).await;
    let mut subs = Vec::new();
    for c in [&c0, &c1, &c2] {
        subs.push(c.subscribe("events.>").await.expect("subscribe"));
    }
    barrier(&c1, &c0).await;
    barrier(&c2, &c0).await;
    const N: usize = 40;
    let mut acks = Vec::new();
    for i in 0..N {
        acks.push(
            js0.publish(format!("events.{i}"), i.to_string().into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    c0.publish("events.end", Bytes::new())
        .await
        .expect("publish");
    c0.flush().await.expect("flush");
    for (agent, sub) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        loop {
            let m = next(sub, &format!("agent {agent}")).await;
            if m.subject.as_str() == "events.end" {
                break;
            }
            got.push(String::from_utf8_lossy(&m.payload).to_string());
        }
        let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(
            got, want,
            "agent {agent}: each stored message once, in order"
        );
    }

    let js2 = async_nats::jetstream::new(c2.clone());
    let kv = js0
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "cfg".into(),
            ..Default::default()
        })
        .await
        .expect("kv bucket");
    let far = js2.get_key_value("cfg").await.expect("bucket on agent 2");
    let mut watch = far.watch("colour").await.expect("watch");
    kv.put("colour", "blue".into()).await.expect("put");
    let entry = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("the watcher saw the put in time")
        .expect("an entry")
        .expect("no error");
    assert_eq!(entry.value, "blue");
}

/// An agent killed with SIGKILL: its interest is withdrawn from the others within seconds
/// (requests to its service get no responders, its route is gone), nothing arrives twice, and
/// an agent started again rejoins the mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_withdrawn_and_a_new_one_rejoins() {
    let stack = agents(2).await;
    let ports = [stack.agents[0].http_port, stack.agents[1].http_port];
    let mut process = stack.agent_process();
    common::wait_routes(&[ports[0], ports[1], process.http_port], 2, WAIT).await;
    let requester = connect(&stack.url(0)).await;
    let watcher = connect(&stack.url(1)).await;
    let mut seen = watcher.subscribe("ticks").await.expect("subscribe");
    let doomed = connect(&process.url).await;
    let mut calls = doomed.subscribe("svc.doomed").await.expect("subscribe");
    let mut ticks = doomed.subscribe("ticks").await.expect("subscribe");
    let answering = doomed.clone();
    tokio::spawn(async move {
        while let Some(m) = calls.next().await {
            if let Some(reply) = m.reply {
                let _ = answering.publish(reply, "alive".into()).await;
                let _ = answering.flush().await;
            }
        }
    });
    barrier(&doomed, &requester).await;
    barrier(&watcher, &requester).await;
    let answer = requester
        .request("svc.doomed", Bytes::new())
        .await
        .expect("answered");
    assert_eq!(answer.payload, "alive");

    // Mid-stream: ticks flow to both, then the process dies.
    for i in 0..100 {
        requester
            .publish("ticks", i.to_string().into())
            .await
            .expect("publish");
    }
    requester.flush().await.expect("flush");
    for i in 0..100 {
        assert_eq!(next(&mut ticks, "doomed").await.payload, i.to_string());
    }
    process.kill();
    let killed = tokio::time::Instant::now();
    for i in 100..200 {
        requester
            .publish("ticks", i.to_string().into())
            .await
            .expect("publish");
    }
    requester.flush().await.expect("flush");
    for i in 0..200 {
        assert_eq!(next(&mut seen, "watcher").await.payload, i.to_string());
    }
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            requester.request("svc.doomed", Bytes::new()),
        )
        .await;
        if matches!(&r, Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "interest of the killed agent still there: {r:?}"
        );
    }
    common::wait_routes(&ports, 1, Duration::from_secs(5)).await;
    // Nothing twice: the next tick is the first thing the watcher sees after 199.
    requester
        .publish("ticks", "200".into())
        .await
        .expect("publish");
    requester.flush().await.expect("flush");
    assert_eq!(next(&mut seen, "watcher").await.payload, "200");

    let again = stack.agent_process();
    common::wait_routes(&[ports[0], ports[1], again.http_port], 2, WAIT).await;
    let back = connect(&again.url).await;
    let mut calls = back.subscribe("svc.back").await.expect("subscribe");
    barrier(&back, &requester).await;
    let request = tokio::spawn({
        let requester = requester.clone();
        async move { requester.request("svc.back", "hi".into()).await }
    });
    let call = next(&mut calls, "the rejoined agent").await;
    back.publish(call.reply.expect("a reply subject"), "back".into())
        .await
        .expect("reply");
    back.flush().await.expect("flush");
    let answer = request.await.expect("joined").expect("answered");
    assert_eq!(answer.payload, "back");
}
