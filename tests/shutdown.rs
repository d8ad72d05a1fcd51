//! Graceful shutdown: a publisher sending continuously while its agent stops gets, for every
//! publish, an ack for a message that is stored, or an error; never an ack for a missing message.
//! And the binary exits 0 on SIGTERM.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::Stack;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_during_graceful_shutdown_are_acked_and_stored_or_refused() {
    let mut stack = Stack::start_with(2, |_, c, _| {
        c.batch_write = Duration::from_millis(100);
    });
    let reader = jetstream::new(async_nats::connect(stack.url(1)).await.expect("connect"));
    reader
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .expect("stream created");
    // Give agent 0's stream catalog time to see the stream.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let client = async_nats::ConnectOptions::new()
        .max_reconnects(Some(1))
        .connect(stack.url(0))
        .await
        .expect("connect");
    let publisher = jetstream::new(client);
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut shutdown_at = None;
    let mut agent0 = Some(stack.agents.remove(0));
    let mut i = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        if shutdown_at.is_none() && started.elapsed() > Duration::from_millis(500) {
            agent0
                .as_mut()
                .expect("agent 0")
                .begin_shutdown(Duration::from_secs(10));
            shutdown_at = Some(i);
        }
        let payload = format!("m{i}");
        let js = publisher.clone();
        pending.push((
            payload.clone(),
            tokio::spawn(async move {
                let ack = js
                    .publish(format!("events.{}", i % 7), Bytes::from(payload))
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
            }),
        ));
        i += 1;
        // Continuous, asynchronous publishing: many publishes per window.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = tokio::task::spawn_blocking(move || agent0.take().expect("agent").wait_shutdown())
        .await
        .expect("joined");
    assert!(
        report.drained,
        "every publish read before lame duck was answered: {report:?}"
    );
    assert!(shutdown_at.expect("shutdown started") > 10);

    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut errors = 0usize;
    for (payload, handle) in pending {
        // Every publish is answered: an ack, an error, or the client's own timeout (an error).
        let outcome = timeout(Duration::from_secs(30), handle)
            .await
            .expect("publish answered or timed out in time")
            .expect("task joined");
        match outcome {
            Ok(seq) => {
                assert!(
                    acked.insert(seq, payload.clone()).is_none(),
                    "sequence {seq} acked twice"
                );
            }
            Err(_) => errors += 1,
        }
    }
    assert!(
        acked.len() > 10,
        "acks before the shutdown: {}",
        acked.len()
    );

    // Every acked message is stored, with its own payload, read through the other agent.
    let stream = reader.get_stream("EVENTS").await.expect("stream");
    for (seq, payload) in &acked {
        let msg = timeout(Duration::from_secs(10), stream.direct_get(*seq))
            .await
            .expect("read in time")
            .unwrap_or_else(|e| panic!("acked sequence {seq} is not stored: {e}"));
        assert_eq!(
            msg.payload,
            Bytes::from(payload.clone()),
            "sequence {seq} holds another message"
        );
    }
    eprintln!(
        "published {i}, acked {}, errors {errors}, shutdown after {:?} publishes",
        acked.len(),
        shutdown_at
    );
}

#[test]
fn binary_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_infinistream"))
        .args(["playground", "--dir"])
        .arg(dir.path())
        .args(["--port", "0", "--http-port", "0", "--peer-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn playground");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = started_url(&line) {
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("playground printed its url");

    // A client with a stream and a message, so the shutdown has something to drain.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
        js.create_stream(stream::Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
        tokio::time::sleep(Duration::from_millis(500)).await;
        js.publish("s.1", Bytes::from_static(b"x"))
            .await
            .expect("sent")
            .await
            .expect("acked");
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("playground did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn clients_get_lame_duck_info_then_close() {
    use std::io::{Read, Write};
    let mut agent = common::TestAgent::start();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", agent.port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(sock.try_clone().expect("clone"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("info");
    assert!(first.starts_with("INFO ") && !first.contains("\"ldm\":true"));
    sock.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .expect("write");
    let mut pong = String::new();
    reader.read_line(&mut pong).expect("pong");
    assert_eq!(pong, "PONG\r\n");

    agent.begin_shutdown(Duration::from_secs(5));
    let mut ldm = String::new();
    reader.read_line(&mut ldm).expect("lame duck info");
    assert!(ldm.starts_with("INFO {"), "{ldm}");
    let info: serde_json::Value =
        serde_json::from_str(ldm.trim_start_matches("INFO ").trim()).expect("json");
    assert_eq!(info["ldm"], true);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("closed");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let report = agent.wait_shutdown();
    assert!(report.drained);
    assert_eq!(report.connections, 1);
}

/// The `url` of the playground's JSON "started" line (its output is JSON off a terminal).
fn started_url(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "infinistream playground started" {
        return None;
    }
    Some(v.get("url")?.as_str()?.to_owned())
}
