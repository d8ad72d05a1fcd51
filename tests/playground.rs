//! `infinistream playground` as a user runs it: the real binary on a directory, a first publish
//! and read with a real client, and the data still there after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

struct Playground {
    child: Child,
    url: String,
}

impl Playground {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_infinistream"))
            .arg("playground")
            .arg("--dir")
            .arg(dir)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--http-port",
                "0",
                "--peer-port",
                "0",
            ])
            .args(["--batch-write", "50ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("playground starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = started_url(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url);
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("playground printed its nats:// url");
        Self { child, url }
    }

    /// SIGTERM, as a process supervisor stops it; returns the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("playground exits")
    }
}

#[tokio::test]
async fn playground_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();

    let pg = Playground::start(dir.path());
    let js = jetstream::new(async_nats::connect(&pg.url).await.unwrap());
    js.create_stream(stream::Config {
        name: "FIRST".into(),
        subjects: vec!["first.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream created");
    for i in 1..=3u64 {
        let ack = js
            .publish("first.hello", format!("hello {i}").into())
            .await
            .unwrap()
            .await
            .expect("acked");
        assert_eq!(ack.sequence, i);
    }
    drop(js);
    assert!(pg.stop().success(), "clean exit on SIGTERM");
    assert!(dir.path().join("bucket").is_dir());
    assert!(dir.path().join("control-plane").is_dir());

    let pg = Playground::start(dir.path());
    let js = jetstream::new(async_nats::connect(&pg.url).await.unwrap());
    let mut stream = js.get_stream("FIRST").await.expect("stream survived");
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    let msg = stream.get_raw_message(2).await.expect("message survived");
    assert_eq!(msg.payload, Bytes::from("hello 2"));
    let ack = js
        .publish("first.hello", "after restart".into())
        .await
        .unwrap()
        .await
        .expect("acked");
    assert_eq!(ack.sequence, 4, "sequences continue after a restart");
    drop(js);
    assert!(pg.stop().success());
}

/// The `url` of the playground's JSON "started" line (its output is JSON off a terminal).
fn started_url(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "infinistream playground started" {
        return None;
    }
    Some(v.get("url")?.as_str()?.to_owned())
}
