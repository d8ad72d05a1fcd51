//! An agent assembled by hand whose objects go to two buckets: every object the agent writes is
//! stored in a mirror bucket too, before any of its publishers is acked.
//!
//! The hook is `AgentBuilder::object_store`: the agent writes through any `ObjectStore`, so a
//! wrapper can mirror, encrypt or observe objects without touching the write path's actors.
//!
//! Run it with `cargo run --example mirror_bucket`: it starts a control plane in process, an agent
//! on in-memory buckets, publishes a few messages with async-nats, and lists both buckets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use infinistream::agent::AgentBuilder;
use infinistream::config::{AgentConfig, BucketUrl, Secret};
use infinistream_control_plane::ControlPlaneConfig;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Writes every object to `mirror` first, then to `primary`; reads from `primary` only.
///
/// Mirror first: the agent acks only after its put returns, so an acked message is in both
/// buckets. A failed mirror put fails the whole put and the uploader retries it (the mirror is
/// overwritten, which is harmless: object keys are unique and their bytes never change).
#[derive(Debug)]
pub struct MirrorStore {
    pub primary: Arc<dyn ObjectStore>,
    pub mirror: Arc<dyn ObjectStore>,
}

impl fmt::Display for MirrorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MirrorStore({} -> {})", self.primary, self.mirror)
    }
}

#[async_trait]
impl ObjectStore for MirrorStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.mirror
            .put_opts(
                location,
                payload.clone(),
                PutOptions::from(PutMode::Overwrite),
            )
            .await?;
        self.primary.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // The agent writes each object with one put; multipart is not mirrored.
        self.primary.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.primary.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.primary.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.primary.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.primary.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.primary.copy_opts(from, to, options).await
    }
}

/// What the demo saw: object keys in each bucket, and the acks.
#[derive(Debug)]
pub struct MirrorReport {
    pub primary_keys: Vec<String>,
    pub mirror_keys: Vec<String>,
    pub acked: usize,
}

async fn keys(store: &dyn ObjectStore) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = store
        .list(None)
        .map(|m| m.map(|m| m.location.to_string()))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    keys.sort();
    Ok(keys)
}

/// Starts a control plane and an agent writing through a `MirrorStore`, publishes `messages`
/// JetStream messages, stops both, and reports what each bucket holds. Call inside an actix
/// system.
pub async fn run(messages: usize) -> anyhow::Result<MirrorReport> {
    let group_key = Secret::new("example-group-key-0123456789");
    let cp = infinistream_control_plane::start_in_process(ControlPlaneConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: None,
        group_id: "example".into(),
        group_key: group_key.clone(),
    })
    .await?;

    let primary: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mirror: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Arc::new(MirrorStore {
        primary: primary.clone(),
        mirror: mirror.clone(),
    });

    // The configured bucket is not used: the builder's store replaces it.
    let mut config = AgentConfig::new(
        "example",
        group_key,
        BucketUrl::Memory {
            name: "unused".into(),
        },
    );
    config.host = "127.0.0.1".into();
    config.port = 0;
    config.http_port = 0;
    config.peer_port = 0;
    config.batch_write = Duration::from_millis(50);
    config.control_plane_url = cp.base_url();
    let agent = AgentBuilder::new(config)
        .object_store(store)
        .start()
        .await?;

    let client = async_nats::connect(format!("nats://{}", agent.client_addr)).await?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MIRRORED".into(),
        subjects: vec!["mirrored.>".into()],
        ..Default::default()
    })
    .await?;
    // The agent learns about new streams from the control plane within its poll interval.
    actix_rt::time::sleep(Duration::from_millis(500)).await;

    // Publish asynchronously: all acks come from the same one or two windows.
    let mut acks = Vec::with_capacity(messages);
    for i in 0..messages {
        acks.push(
            js.publish(format!("mirrored.{i}"), Bytes::from(format!("message {i}")))
                .await?,
        );
    }
    let mut acked = 0;
    for ack in acks {
        ack.await?;
        acked += 1;
    }

    agent.stop().await;
    cp.stop().await;
    Ok(MirrorReport {
        primary_keys: keys(primary.as_ref()).await?,
        mirror_keys: keys(mirror.as_ref()).await?,
        acked,
    })
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let report = actix_rt::System::new().block_on(run(20))?;
    println!("acked {} messages", report.acked);
    println!("primary bucket: {:?}", report.primary_keys);
    println!("mirror bucket:  {:?}", report.mirror_keys);
    Ok(())
}
