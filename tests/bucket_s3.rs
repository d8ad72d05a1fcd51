//! `bucket::build_object_store` against the in-process S3 server (s3s-fs): the S3 options of a
//! bucket URL reach object_store, and the test server's counting and fault injection work.

mod common;

use std::time::{Duration, Instant};

use common::s3::TestS3;
use infinistream::bucket::build_object_store;
use infinistream::config::BucketUrl;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

fn store_for(url: &str) -> std::sync::Arc<dyn ObjectStore> {
    let url = BucketUrl::parse(url).expect("test S3 URL parses");
    build_object_store(&url).expect("object store builds")
}

#[tokio::test]
async fn round_trip() {
    let s3 = TestS3::start();
    let store = store_for(&s3.bucket_url());
    let path = Path::from("streams/orders/000001.obj");
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();

    store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .unwrap();
    assert_eq!(s3.put_count(), 1);
    assert!(s3.object_path("streams/orders/000001.obj").exists());

    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], &body[..]);
    let range = store.get_range(&path, 100..200).await.unwrap();
    assert_eq!(&range[..], &body[100..200]);
    assert_eq!(s3.get_count(), 2);

    let meta = store.head(&path).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(s3.counts().head, 1);

    store.delete(&path).await.unwrap();
    assert!(matches!(
        store.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(s3.get_count(), 3);
    assert!(s3.request_count() >= 6);

    s3.reset_counts();
    assert_eq!(s3.request_count(), 0);
}

#[tokio::test]
async fn create_mode_refuses_to_overwrite() {
    let s3 = TestS3::start();
    let store = store_for(&s3.bucket_url());
    let path = Path::from("once.obj");
    let create = || PutOptions::from(PutMode::Create);

    store
        .put_opts(&path, PutPayload::from_static(b"first"), create())
        .await
        .unwrap();
    let second = store
        .put_opts(&path, PutPayload::from_static(b"second"), create())
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "{second:?}"
    );
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"first");
}

#[tokio::test]
async fn injected_put_failures() {
    let s3 = TestS3::start();
    let path = Path::from("a.obj");

    // Without object_store retries the failure reaches the caller, and nothing is stored.
    let no_retry = store_for(&s3.bucket_url_with_retries(0));
    s3.fail_next_puts(1);
    let err = no_retry.put(&path, PutPayload::from_static(b"x")).await;
    assert!(err.is_err(), "an injected 500 fails the put");
    assert!(!s3.object_path("a.obj").exists());
    no_retry
        .put(&path, PutPayload::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(s3.put_count(), 2);
    assert_eq!(s3.counts().injected_failures, 1);

    s3.fail_next_puts_with_status(1, 503);
    assert!(
        no_retry
            .put(&path, PutPayload::from_static(b"y"))
            .await
            .is_err()
    );

    // With retries (the default) a transient failure is absorbed by object_store.
    let retrying = store_for(&s3.bucket_url());
    s3.reset_counts();
    s3.fail_next_puts(1);
    retrying
        .put(&path, PutPayload::from_static(b"z"))
        .await
        .unwrap();
    assert_eq!(s3.put_count(), 2);
    let got = retrying.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"z");
}

#[tokio::test]
async fn injected_get_failures() {
    let s3 = TestS3::start();
    let store = store_for(&s3.bucket_url_with_retries(0));
    let path = Path::from("g.obj");
    store
        .put(&path, PutPayload::from_static(b"x"))
        .await
        .unwrap();
    s3.fail_next_gets_with_status(1, 503);
    assert!(store.get(&path).await.is_err());
    assert!(store.get(&path).await.is_ok());
    assert_eq!(s3.get_count(), 2);
}

#[tokio::test]
async fn put_delay() {
    let s3 = TestS3::start();
    let store = store_for(&s3.bucket_url());
    s3.set_put_delay(Duration::from_millis(200));
    let started = Instant::now();
    store
        .put(&Path::from("slow.obj"), PutPayload::from_static(b"x"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    s3.set_put_delay(Duration::ZERO);
    let started = Instant::now();
    store
        .put(&Path::from("fast.obj"), PutPayload::from_static(b"x"))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let s3 = TestS3::start();
    let url = format!(
        "s3://{}?endpoint={}&region=us-east-1&access_key_id={}&secret_access_key=wrong&max_retries=0",
        s3.bucket, s3.endpoint, s3.access_key
    );
    let store = store_for(&url);
    assert!(
        store
            .put(&Path::from("x.obj"), PutPayload::from_static(b"x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn objects_on_disk_can_be_corrupted() {
    let s3 = TestS3::start();
    let store = store_for(&s3.bucket_url());
    let path = Path::from("c.obj");
    store
        .put(&path, PutPayload::from_static(b"good"))
        .await
        .unwrap();
    assert!(s3.root_dir().join(&s3.bucket).join("c.obj").exists());
    std::fs::write(s3.object_path("c.obj"), b"evil").unwrap();
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"evil");
}

/// The server runs on its own runtime, so a caller on a current-thread runtime (as actix's
/// arbiters are) or one that blocks is served all the same.
#[test]
fn serves_a_current_thread_runtime() {
    let s3 = TestS3::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store_for(&s3.bucket_url());
        let path = Path::from("ct.obj");
        store
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(store.head(&path).await.is_ok());
    });
}
