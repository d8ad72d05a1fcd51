//! The shared integration-test harness: real parts on free loopback ports.
//! `s3`: an S3 HTTP server (s3s-fs) in process with request counting and fault injection;
//! `control_plane`: the control plane over HTTP; `agent`: agents in process;
//! `stack`: all of them together.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod control_plane;
pub mod nats_cluster;
pub mod process;
pub mod s3;
pub mod scenario;
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

/// A plain HTTP/1.0 GET on loopback with extra header lines (`"Name: value"`): status and body.
pub async fn http_get(port: u16, path: &str, headers: &[String]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// The value of the first sample of `series` (a metric name with its labels, as printed) in a
/// Prometheus text page.
pub fn metric_value(page: &str, series: &str) -> Option<f64> {
    let prefix = format!("{series} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
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

/// The `/routez` of a monitoring port, as JSON (`Null` if it does not answer).
pub async fn routez(http_port: u16) -> serde_json::Value {
    let conn = tokio::net::TcpStream::connect(("127.0.0.1", http_port)).await;
    if conn.is_err() {
        return serde_json::Value::Null;
    }
    let (_, body) = http_get(http_port, "/routez", &[]).await;
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// Waits until every server behind `http_ports` has routes to `routes` other servers on
/// `/routez` (counted by remote id: nats-server 2.15 pools several routes per pair).
pub async fn wait_routes(http_ports: &[u16], routes: usize, within: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + within;
    for &port in http_ports {
        loop {
            let z = routez(port).await;
            let remotes: std::collections::HashSet<&str> = z["routes"]
                .as_array()
                .map(|all| all.iter().filter_map(|r| r["remote_id"].as_str()).collect())
                .unwrap_or_default();
            if remotes.len() == routes {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "port {port} never had {routes} routes: {z}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
