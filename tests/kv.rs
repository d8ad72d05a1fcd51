//! JetStream key-value buckets with unmodified async-nats: the read/write operations (streams,
//! DIRECT.GET, expected-last-subject-sequence and rollup headers) and the ones built on ordered
//! push consumers (history, keys, watch).

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use common::Stack;
use futures::{StreamExt, TryStreamExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn bucket(url: &str, name: &str, history: i64) -> (async_nats::Client, kv::Store) {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client.clone());
    let store = js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            history,
            ..Default::default()
        })
        .await
        .expect("bucket created");
    (client, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_entry_and_revisions() {
    let stack = Stack::start(1);
    let (_client, kv) = bucket(&stack.url(0), "B", 5).await;
    let r1 = kv.put("a", Bytes::from_static(b"one")).await.expect("put");
    let r2 = kv.put("a", Bytes::from_static(b"two")).await.expect("put");
    let r3 = kv.put("b", Bytes::from_static(b"bee")).await.expect("put");
    assert_eq!((r1, r2, r3), (1, 2, 3));
    assert_eq!(
        kv.get("a").await.expect("get"),
        Some(Bytes::from_static(b"two"))
    );
    assert_eq!(kv.get("missing").await.expect("get"), None);
    let e = kv.entry("a").await.expect("entry").expect("some");
    assert_eq!(e.revision, 2);
    assert_eq!(e.operation, kv::Operation::Put);
    let old = kv
        .entry_for_revision("a", 1)
        .await
        .expect("entry")
        .expect("some");
    assert_eq!(old.value, Bytes::from_static(b"one"));
    // Reopening the bucket works through STREAM.INFO.
    let js = jetstream::new(_client.clone());
    let again = js.get_key_value("B").await.expect("get bucket");
    assert_eq!(
        again.get("b").await.expect("get"),
        Some(Bytes::from_static(b"bee"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_delete_purge() {
    let stack = Stack::start(1);
    let (_client, kv) = bucket(&stack.url(0), "C", 10).await;
    let r = kv
        .create("k", Bytes::from_static(b"v1"))
        .await
        .expect("create");
    let err = kv
        .create("k", Bytes::from_static(b"again"))
        .await
        .expect_err("create of an existing key fails");
    assert_eq!(err.kind(), kv::CreateErrorKind::AlreadyExists, "{err:?}");
    let r2 = kv
        .update("k", Bytes::from_static(b"v2"), r)
        .await
        .expect("update with the right revision");
    kv.update("k", Bytes::from_static(b"v3"), r)
        .await
        .expect_err("update with a stale revision fails");
    assert_eq!(
        kv.get("k").await.expect("get"),
        Some(Bytes::from_static(b"v2"))
    );
    kv.delete("k").await.expect("delete");
    assert_eq!(kv.get("k").await.expect("get"), None);
    let e = kv.entry("k").await.expect("entry");
    assert!(
        e.is_none()
            || e.as_ref()
                .is_some_and(|e| e.operation == kv::Operation::Delete),
        "{e:?}"
    );
    // A deleted key can be created again.
    let r3 = kv
        .create("k", Bytes::from_static(b"v4"))
        .await
        .expect("create after delete");
    assert!(r3 > r2);
    kv.purge("k").await.expect("purge");
    assert_eq!(kv.get("k").await.expect("get"), None);
    // The purge rolled up the key's history to the purge marker alone.
    let js = jetstream::new(_client.clone());
    let mut stream = js.get_stream("KV_C").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 1, "{:?}", info.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_limited_and_keys_listed() {
    let stack = Stack::start(1);
    let (_client, kv) = bucket(&stack.url(0), "H", 3).await;
    for i in 0..5 {
        kv.put("x", Bytes::from(format!("x{i}")))
            .await
            .expect("put");
    }
    kv.put("y", Bytes::from_static(b"y")).await.expect("put");
    kv.put("z", Bytes::from_static(b"z")).await.expect("put");
    kv.delete("z").await.expect("delete");
    let history: Vec<kv::Entry> = timeout(WAIT, async {
        kv.history("x")
            .await
            .expect("history")
            .try_collect()
            .await
            .expect("entries")
    })
    .await
    .expect("history in time");
    let values: Vec<Bytes> = history.iter().map(|e| e.value.clone()).collect();
    assert_eq!(
        values,
        vec![
            Bytes::from_static(b"x2"),
            Bytes::from_static(b"x3"),
            Bytes::from_static(b"x4")
        ]
    );
    let mut keys: Vec<String> = timeout(WAIT, async {
        kv.keys()
            .await
            .expect("keys")
            .try_collect()
            .await
            .expect("keys")
    })
    .await
    .expect("keys in time");
    keys.sort();
    assert_eq!(keys, vec!["x".to_string(), "y".to_string()]);
}

async fn next(w: &mut kv::Watch) -> kv::Entry {
    timeout(WAIT, w.next())
        .await
        .expect("watched in time")
        .expect("some")
        .expect("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_updates_and_deletes() {
    let stack = Stack::start(1);
    let (_client, kv) = bucket(&stack.url(0), "W", 1).await;
    kv.put("before", Bytes::from_static(b"old"))
        .await
        .expect("put");
    let mut all = kv.watch_all().await.expect("watch");
    let mut one = kv.watch("k.*").await.expect("watch");
    kv.put("k.1", Bytes::from_static(b"a")).await.expect("put");
    kv.put("other", Bytes::from_static(b"b"))
        .await
        .expect("put");
    kv.delete("k.1").await.expect("delete");
    let e = next(&mut all).await;
    assert_eq!((e.key.as_str(), e.operation), ("k.1", kv::Operation::Put));
    let e = next(&mut all).await;
    assert_eq!(e.key, "other");
    let e = next(&mut all).await;
    assert_eq!(
        (e.key.as_str(), e.operation),
        ("k.1", kv::Operation::Delete)
    );
    let e = next(&mut one).await;
    assert_eq!((e.key.as_str(), e.value.as_ref()), ("k.1", &b"a"[..]));
    let e = next(&mut one).await;
    assert_eq!(
        (e.key.as_str(), e.operation),
        ("k.1", kv::Operation::Delete)
    );

    // With history: the current values first, then live updates.
    let mut hist = kv.watch_with_history("before").await.expect("watch");
    let e = next(&mut hist).await;
    assert_eq!(e.value, Bytes::from_static(b"old"));
    kv.put("before", Bytes::from_static(b"new"))
        .await
        .expect("put");
    let e = next(&mut hist).await;
    assert_eq!(e.value, Bytes::from_static(b"new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_another_agent() {
    let stack = Stack::start(2);
    let (_c0, kv0) = bucket(&stack.url(0), "X", 1).await;
    let c1 = async_nats::connect(stack.url(1)).await.expect("connect");
    let kv1 = jetstream::new(c1).get_key_value("X").await.expect("bucket");
    let mut w = kv1.watch_all().await.expect("watch");
    for i in 0..10 {
        kv0.put(format!("k{i}"), Bytes::from(format!("v{i}")))
            .await
            .expect("put");
    }
    for i in 0..10 {
        let e = next(&mut w).await;
        assert_eq!(e.key, format!("k{i}"));
        assert_eq!(e.value, Bytes::from(format!("v{i}")));
    }
    let keys: Vec<String> = kv1
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys");
    assert_eq!(keys.len(), 10);
}
