//! The shared integration-test harness: real parts on free loopback ports.
//! `s3`: an S3 HTTP server (s3s-fs) in process with request counting and fault injection;
//! `control_plane`: the control plane over HTTP; `agent`: agents in process;
//! `stack`: all of them together.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod control_plane;
pub mod process;
pub mod s3;
pub mod stack;

pub use agent::TestAgent;
pub use stack::Stack;

/// Logs for a test run, filtered by `RUST_LOG` (nothing unless it is set).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A server-side barrier for an async-nats client: its `flush()` only empties the client's own
/// buffer, so it proves nothing about what the server processed. A request nobody answers comes
/// back (503, no responders) through the router after everything this client sent before it.
pub async fn sync(client: &async_nats::Client) {
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request("_test.sync.nobody", bytes::Bytes::new()),
    )
    .await
    .expect("sync answered in time");
    match res {
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
        other => panic!("sync expected no responders, got {other:?}"),
    }
}

/// An async-nats client and its JetStream context.
pub async fn connect(url: &str) -> (async_nats::Client, async_nats::jetstream::Context) {
    let client = async_nats::connect(url).await.expect("connect");
    (client.clone(), async_nats::jetstream::new(client))
}

/// A stream with these subjects and otherwise default settings.
pub async fn make_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: &[&str],
) -> async_nats::jetstream::stream::Stream {
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("stream created")
}
