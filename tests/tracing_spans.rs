//! One publish followed through its spans (`RUST_LOG=infinistream=debug`, JSON logs): the
//! connection, the batcher, the flush that seals its object, the upload, the commit and the ack
//! all log with ids that join them (the publish's `cid`/`n`, its object's `seal`/`object_id`).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::Stack;
use serde_json::Value;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

/// Every line the subscriber writes, kept for the assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn message(e: &Value) -> &str {
    e["message"].as_str().unwrap_or_default()
}

fn span_field<'a>(e: &'a Value, field: &str) -> &'a Value {
    &e["span"][field]
}

#[tokio::test]
async fn one_publish_is_followed_from_its_connection_to_its_ack() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The same JSON shape as the binary's `--log-format json` (event fields flat, the current
    // span beside them), at the debug level the publish path logs at.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter("infinistream=debug")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let stack = Stack::start(1);
    let client = async_nats::connect(stack.url(0)).await.expect("connect");
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "TRACED".into(),
        subjects: vec!["traced.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream created");
    let ack = timeout(WAIT, async {
        js.publish("traced.one", "followed".into())
            .await
            .expect("published")
            .await
    })
    .await
    .expect("acked in time")
    .expect("ack");

    // The ack is logged before it is sent, so everything below is written by now.
    let events = captured.events();
    let acked = events
        .iter()
        .find(|e| message(e) == "publish acked" && e["stream"] == "TRACED")
        .expect("the ack is logged in the publish's span");
    assert_eq!(acked["span"]["name"], "publish");
    let (cid, n) = (span_field(acked, "cid"), span_field(acked, "n"));
    let seal = span_field(acked, "seal")
        .as_u64()
        .expect("the publish span has its seal");
    let object_id = span_field(acked, "object_id")
        .as_u64()
        .expect("the publish span has its object id");
    assert!(
        acked["ack"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("seq: {}", ack.sequence)),
        "{acked}"
    );

    let of_this_publish = |m: &str| {
        events.iter().any(|e| {
            message(e) == m
                && e["span"]["name"] == "publish"
                && span_field(e, "cid") == cid
                && span_field(e, "n") == n
        })
    };
    assert!(
        of_this_publish("publish captured"),
        "the connection logs it"
    );
    assert!(of_this_publish("publish batched"), "its batcher logs it");

    let in_flush = |m: &str| {
        events.iter().any(|e| {
            message(e) == m
                && e["span"]["name"] == "flush"
                && span_field(e, "seal").as_u64() == Some(seal)
                && span_field(e, "object_id").as_u64() == Some(object_id)
        })
    };
    assert!(in_flush("object sealed"), "the flush that sealed it");
    assert!(in_flush("object uploaded"), "and saw it uploaded");

    let key = format!("{object_id:020}.obj");
    assert!(
        events.iter().any(|e| e["span"]["name"] == "upload"
            && span_field(e, "key")
                .as_str()
                .is_some_and(|k| k.ends_with(&key))),
        "the upload of its object logs in a span naming the object"
    );
    assert!(
        events.iter().any(|e| message(e) == "object committed"
            && e["span"]["name"] == "commit"
            && e["seal"].as_u64() == Some(seal)
            && e["object_id"].as_u64() == Some(object_id)),
        "its commit logs the same seal and object"
    );
}
