//! `az://` buckets through the real Azure Blob HTTP API: Azurite (Azure's own emulator, from npm
//! at the version in tests/azurite/package-lock.json, installed by scripts/test.sh) on a free
//! port, the real agent binary writing to it with account-key auth, and a second agent reading
//! everything back from it cold. Also the conditional create the uploader relies on and the
//! offset range read it uses to recognise its own object after a retry.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use infinistream::config::BucketUrl;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, PutMode, PutOptions};

/// Azurite's well-known development account and key (public, in Azure's documentation).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY_URLENCODED: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq%2FK1SZFPTOtr%2FKBHBeksoGMGw%3D%3D";
/// An account SAS signed with that key (any host, until 2099), to create the container:
/// object_store has no call for it.
const CREATE_SAS: &str = "sv=2019-12-12&ss=b&srt=sco&sp=rwdlacup&se=2099-01-01T00%3A00%3A00Z&spr=http%2Chttps&sig=YoAOTRJHVIOkE7nD7Mh%2B4Mwbj5NwBCA64xfRkj77XzY%3D";
const CONTAINER: &str = "infinistream";

struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn azurite_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/azurite/node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/test.sh, or `cd tests/azurite && npm ci`",
        bin.display()
    );
    bin
}

impl Azurite {
    fn start() -> Self {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(azurite_bin())
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("azurite starts");
        let mut azurite = Self {
            child,
            port,
            _dir: dir,
        };
        // Ready when it says it listens; its output is drained after that.
        let stdout = azurite.child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("successfully listens")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("azurite listens");
        let status = azurite.create_container().expect("azurite answers");
        assert_eq!(status, 201, "create the container");
        azurite
    }

    /// `PUT /<account>/<container>?restype=container` with the SAS; the HTTP status.
    fn create_container(&self) -> std::io::Result<u16> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            tcp,
            "PUT /{ACCOUNT}/{CONTAINER}?restype=container&{CREATE_SAS} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer)?;
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:?}")))
    }

    fn bucket_url(&self) -> String {
        format!(
            "az://{CONTAINER}?account_name={ACCOUNT}&access_key={ACCOUNT_KEY_URLENCODED}&endpoint=http://127.0.0.1:{}/{ACCOUNT}",
            self.port
        )
    }
}

async fn publish_all(url: &str, count: usize) {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "AZ".into(),
        subjects: vec!["az.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let mut acks = Vec::new();
    for i in 0..count {
        let payload = Bytes::from(format!("message {i} via azure"));
        acks.push(
            js.publish(format!("az.{}", i % 3), payload)
                .await
                .expect("publish"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.expect("acked after the blob was written");
        assert_eq!(ack.sequence, i as u64 + 1);
    }
}

async fn read_all(url: &str, count: usize) -> Vec<String> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("AZ").await.expect("stream");
    let mut out = Vec::new();
    for seq in 1..=count as u64 {
        let msg = stream.get_raw_message(seq).await.expect("message");
        out.push(String::from_utf8_lossy(&msg.payload).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writes_and_reads_an_azure_container() {
    let azurite = Azurite::start();
    let cp = common::control_plane::TestControlPlane::start();
    let bucket = azurite.bucket_url();
    const COUNT: usize = 60;

    let writer = common::process::AgentProcess::start(&bucket, &cp.url);
    tokio::time::timeout(Duration::from_secs(60), publish_all(&writer.url, COUNT))
        .await
        .expect("published in time");

    // A second agent has nothing cached: every read goes to the container.
    let reader = common::process::AgentProcess::start(&bucket, &cp.url);
    let got = tokio::time::timeout(Duration::from_secs(60), read_all(&reader.url, COUNT))
        .await
        .expect("read in time");
    let want: Vec<String> = (0..COUNT)
        .map(|i| format!("message {i} via azure"))
        .collect();
    assert_eq!(got, want);

    // The objects are blobs of the container, under the group's prefix.
    let url = BucketUrl::parse(&bucket).expect("az url");
    let store = infinistream::bucket::build_object_store(&url).expect("store");
    let prefix = Path::from(format!("infinistream/{}", common::agent::GROUP_ID));
    let keys: Vec<String> = store
        .list(Some(&prefix))
        .map(|m| m.expect("listed").location.to_string())
        .collect()
        .await;
    assert!(
        keys.iter().any(|k| k.ends_with(".obj")),
        "no object blobs in {keys:?}"
    );
}

/// What the uploader needs of a store, on Azure: a create that refuses to overwrite, and an
/// offset range that returns the tail and the size in one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_honours_create_and_offset_ranges() {
    let azurite = Azurite::start();
    let url = BucketUrl::parse(&azurite.bucket_url()).expect("az url");
    let store = infinistream::bucket::build_object_store(&url).expect("store");
    let key = Path::from("probe/one.obj");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&key, Bytes::from_static(b"0123456789").into(), create())
        .await
        .expect("first create");
    let again = store
        .put_opts(&key, Bytes::from_static(b"other").into(), create())
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let got = store
        .get_opts(
            &key,
            GetOptions::new().with_range(Some(GetRange::Offset(6))),
        )
        .await
        .expect("offset range");
    assert_eq!(got.meta.size, 10);
    assert_eq!(&got.bytes().await.expect("bytes")[..], b"6789");
}
