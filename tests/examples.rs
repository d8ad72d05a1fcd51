//! Runs the logic of the custom-wiring examples in `examples/`.

#[path = "../examples/mirror_bucket.rs"]
mod mirror_bucket;

#[path = "../examples/commit_observer.rs"]
mod commit_observer;

#[test]
fn mirror_bucket_stores_every_object_twice() {
    let report = actix_rt::System::new()
        .block_on(mirror_bucket::run(25))
        .expect("example ran");
    assert_eq!(report.acked, 25);
    assert!(!report.primary_keys.is_empty());
    assert_eq!(report.primary_keys, report.mirror_keys);
    assert!(
        report
            .primary_keys
            .iter()
            .all(|k| k.starts_with("infinistream/example/objects/"))
    );
}

#[test]
fn commit_observer_sees_every_commit() {
    let summary = actix_rt::System::new()
        .block_on(commit_observer::run(10))
        .expect("example ran");
    assert_eq!(summary.messages, 20);
    assert_eq!(summary.streams, vec!["ORDERS", "PAYMENTS"]);
    assert!(!summary.objects.is_empty());
}
