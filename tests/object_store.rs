//! The JetStream object store through async-nats, unmodified: a 10 MiB object put and read back
//! (chunks as stream messages, read through an ordered consumer), listed, deleted.

mod common;

use async_nats::jetstream::{self, object_store};
use common::Stack;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_delete_a_ten_mib_object() {
    let stack = Stack::start(2);
    let js = jetstream::new(async_nats::connect(stack.url(0)).await.unwrap());
    let store = js
        .create_object_store(object_store::Config {
            bucket: "files".into(),
            ..Default::default()
        })
        .await
        .expect("object store created");
    let data: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let info = store
        .put("big.bin", &mut data.as_slice())
        .await
        .expect("object stored");
    assert_eq!(info.size, data.len());
    store
        .put("small.txt", &mut &b"hello"[..])
        .await
        .expect("second object stored");

    // Read it back through another agent.
    let other = jetstream::new(async_nats::connect(stack.url(1)).await.unwrap());
    let store2 = other
        .get_object_store("files")
        .await
        .expect("store visible");
    let mut object = store2.get("big.bin").await.expect("object found");
    let mut back = Vec::with_capacity(data.len());
    object.read_to_end(&mut back).await.expect("object read");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "object content round-trips");

    let mut names: Vec<String> = store2
        .list()
        .await
        .expect("list")
        .map(|i| i.expect("info").name)
        .collect()
        .await;
    names.sort();
    assert_eq!(names, vec!["big.bin".to_string(), "small.txt".to_string()]);

    store.delete("big.bin").await.expect("deleted");
    assert!(
        store2.get("big.bin").await.is_err(),
        "deleted object is gone"
    );
    let remaining: Vec<String> = store2
        .list()
        .await
        .expect("list")
        .map(|i| i.expect("info").name)
        .collect()
        .await;
    assert_eq!(remaining, vec!["small.txt".to_string()]);
}
