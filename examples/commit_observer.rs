//! An extra actor wired into the agent: it observes every commit (object key, streams, message
//! count) through `AgentBuilder::on_commit`, e.g. to feed an audit log, a downstream index, or a
//! replication trigger, without touching the write path.
//!
//! Run it with `cargo run --example commit_observer`.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use infinistream::agent::{AgentBuilder, Committed};
use infinistream::config::{AgentConfig, BucketUrl, Secret};
use infinistream_control_plane::ControlPlaneConfig;

/// Keeps a tally of what has been committed. Its state lives in its mailbox, like every actor's.
#[derive(Default)]
pub struct CommitLog {
    objects: Vec<String>,
    streams: BTreeSet<String>,
    messages: usize,
}

impl Actor for CommitLog {
    type Context = Context<Self>;
}

impl Handler<Committed> for CommitLog {
    type Result = ();
    fn handle(&mut self, c: Committed, _: &mut Self::Context) {
        tracing::info!(object_key = %c.object_key, messages = c.messages, streams = ?c.streams, "committed");
        self.objects.push(c.object_key);
        self.streams.extend(c.streams);
        self.messages += c.messages;
    }
}

/// What the log has seen so far.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub struct CommitSummary {
    pub objects: Vec<String>,
    pub streams: Vec<String>,
    pub messages: usize,
}

#[derive(Message)]
#[rtype(result = "CommitSummary")]
pub struct GetSummary;

impl Handler<GetSummary> for CommitLog {
    type Result = CommitSummary;
    fn handle(&mut self, _: GetSummary, _: &mut Self::Context) -> CommitSummary {
        CommitSummary {
            objects: self.objects.clone(),
            streams: self.streams.iter().cloned().collect(),
            messages: self.messages,
        }
    }
}

/// Starts a control plane, the `CommitLog` actor and an agent reporting to it; publishes
/// `per_stream` messages to each of two streams; returns the log's summary. Call inside an actix
/// system.
pub async fn run(per_stream: usize) -> anyhow::Result<CommitSummary> {
    let group_key = Secret::new("example-group-key-0123456789");
    let cp = infinistream_control_plane::start_in_process(ControlPlaneConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: None,
        group_id: "example".into(),
        group_key: group_key.clone(),
    })
    .await?;

    let log = CommitLog::default().start();

    let mut config = AgentConfig::new(
        "example",
        group_key,
        BucketUrl::Memory {
            name: "example".into(),
        },
    );
    config.host = "127.0.0.1".into();
    config.port = 0;
    config.http_port = 0;
    config.peer_port = 0;
    config.batch_write = Duration::from_millis(50);
    config.control_plane_url = cp.base_url();
    let agent = AgentBuilder::new(config)
        .on_commit(log.clone().recipient())
        .start()
        .await?;

    let client = async_nats::connect(format!("nats://{}", agent.client_addr)).await?;
    let js = async_nats::jetstream::new(client);
    for (name, subject) in [("ORDERS", "orders.>"), ("PAYMENTS", "payments.>")] {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await?;
    }
    actix_rt::time::sleep(Duration::from_millis(500)).await;

    let mut acks = Vec::new();
    for i in 0..per_stream {
        for prefix in ["orders", "payments"] {
            acks.push(
                js.publish(format!("{prefix}.{i}"), Bytes::from("x"))
                    .await?,
            );
        }
    }
    for ack in acks {
        ack.await?;
    }
    // The observer hears of a commit right after its acks; one more mailbox turn is enough.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    let summary = log.send(GetSummary).await?;

    agent.stop().await;
    cp.stop().await;
    Ok(summary)
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let summary = actix_rt::System::new().block_on(run(10))?;
    println!(
        "{} messages in {} objects, streams {:?}",
        summary.messages,
        summary.objects.len(),
        summary.streams
    );
    Ok(())
}
