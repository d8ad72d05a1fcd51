//! The agent's monitoring port: `/healthz`, `/metrics`, `/varz`, `/connz`, `/subsz`, `/jsz`.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{Stack, TestAgent};
use serde_json::Value;

async fn get(port: u16, path: &str) -> (u16, String) {
    common::http_get(port, path, &[]).await
}

async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = get(port, path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

async fn wait_healthy(port: u16) {
    for _ in 0..100 {
        if get(port, "/healthz").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("agent never became healthy");
}

#[tokio::test]
async fn endpoints_in_nats_server_shapes() {
    let stack = Stack::start(1);
    let http = stack.agents[0].http_port;
    wait_healthy(http).await;
    assert_eq!(get(http, "/healthz").await.1, r#"{"status":"ok"}"#);

    let client = async_nats::ConnectOptions::new()
        .name("monitor-test")
        .connect(stack.url(0))
        .await
        .expect("connect");
    let _sub = client.subscribe("watch.>").await.expect("sub");
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "M".into(),
        subjects: vec!["m.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        js.publish(format!("m.{i}"), Bytes::from_static(b"hello"))
            .await
            .expect("sent")
            .await
            .expect("acked");
    }
    common::sync(&client).await;

    let (status, metrics) = get(http, "/metrics").await;
    assert_eq!(status, 200);
    for family in [
        "infinistream_connections",
        "infinistream_messages_in_total",
        "infinistream_bytes_out_total",
        "infinistream_publish_ack_seconds",
        "infinistream_flush_stage_seconds",
        "infinistream_object_bytes",
        "infinistream_object_store_seconds",
        "infinistream_control_plane_seconds",
        "infinistream_cache_reads_total",
        "infinistream_backpressure_pauses_total",
        "infinistream_actor_restarts_total",
        "infinistream_inflight_bytes",
        "infinistream_inflight_messages",
        "infinistream_control_plane_up",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    // Metrics are per process and the tests of this binary run concurrently: at least ours.
    let acks: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("infinistream_publish_ack_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("ack count");
    assert!(acks >= 3, "{acks}");
    assert!(metrics.contains("infinistream_inflight_messages_limit "));

    let (status, varz) = get_json(http, "/varz").await;
    assert_eq!(status, 200);
    assert_eq!(varz["connections"], 1);
    assert_eq!(varz["port"], stack.agents[0].port);
    assert_eq!(varz["http_port"], http);
    assert!(varz["in_msgs"].as_u64().expect("in_msgs") >= 3);
    assert!(varz["start"].as_str().expect("start").contains('T'));

    let (status, connz) = get_json(http, "/connz").await;
    assert_eq!(status, 200);
    assert_eq!(connz["num_connections"], 1);
    let conn = &connz["connections"][0];
    assert_eq!(conn["name"], "monitor-test");
    assert_eq!(conn["lang"], "rust");
    assert_eq!(conn["ip"], "127.0.0.1");
    assert!(conn["in_msgs"].as_u64().expect("in_msgs") >= 3);
    assert!(conn["out_msgs"].as_u64().expect("out_msgs") >= 3, "{conn}");
    assert!(conn["subscriptions"].as_u64().expect("subs") >= 2);
    for field in [
        "cid",
        "port",
        "start",
        "last_activity",
        "pending_bytes",
        "in_bytes",
        "out_bytes",
        "uptime",
        "idle",
        "version",
    ] {
        assert!(conn.get(field).is_some(), "{field} missing: {conn}");
    }

    let (status, subsz) = get_json(http, "/subsz").await;
    assert_eq!(status, 200);
    assert!(subsz["num_subscriptions"].as_u64().expect("subs") >= 2);

    let (status, jsz) = get_json(http, "/jsz").await;
    assert_eq!(status, 200, "{jsz}");
    assert_eq!(jsz["streams"], 1);
    assert_eq!(jsz["messages"], 3);
    assert!(jsz["bytes"].as_u64().expect("bytes") > 0);
    assert!(jsz["api"]["total"].as_u64().is_some());
    assert!(
        jsz.get("account_details").is_none(),
        "details only when asked"
    );

    // What prometheus-nats-exporter's `-jsz=all` asks for.
    let (status, jsz) = get_json(http, "/jsz?accounts=true&streams=true&config=true").await;
    assert_eq!(status, 200, "{jsz}");
    let account = &jsz["account_details"][0];
    assert_eq!(account["name"], "$G", "{jsz}");
    assert_eq!(account["messages"], 3);
    let detail = &account["stream_detail"][0];
    assert_eq!(detail["state"]["messages"], 3, "{detail}");
    assert!(detail["name"].is_string(), "{detail}");
    assert!(detail["config"]["subjects"].is_array(), "{detail}");
    let (_, jsz) = get_json(http, "/jsz?accounts=true&streams=true").await;
    assert!(
        jsz["account_details"][0]["stream_detail"][0]
            .get("config")
            .is_none()
    );
}

#[tokio::test]
async fn healthz_is_unavailable_without_a_control_plane() {
    // The test configuration points at a port nothing listens on.
    let agent = TestAgent::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get_json(agent.http_port, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("control plane"),
        "{body}"
    );
}

#[tokio::test]
async fn healthz_turns_unavailable_during_shutdown() {
    let mut stack = Stack::start(1);
    let http = stack.agents[0].http_port;
    wait_healthy(http).await;
    // A publish that cannot finish quickly keeps the shutdown draining while we look.
    stack.s3.set_put_delay(Duration::from_millis(1500));
    let client = async_nats::connect(stack.url(0)).await.expect("connect");
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "H".into(),
        subjects: vec!["h.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ack = js
        .publish("h.1", Bytes::from_static(b"x"))
        .await
        .expect("sent");
    common::sync(&client).await;
    let mut agent = stack.agents.remove(0);
    agent.begin_shutdown(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = get_json(http, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "server is shutting down");
    let seq = ack.await.expect("acked while draining").sequence;
    assert_eq!(seq, 1);
    let report = tokio::task::spawn_blocking(move || agent.wait_shutdown())
        .await
        .expect("joined");
    assert!(report.drained);
}
