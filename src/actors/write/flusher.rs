//! The Flusher: one object per batch window per agent.
//!
//! Owns: the window clock, the list of batchers with pending data in the current window, the seal
//! numbering, and assembling one object from every dirty batcher's messages. Does not own: the
//! messages between seals (batchers), putting objects (the `Uploader` pool), object ids, commits
//! or acks (the `SequenceClient`).
//!
//! Windows tick on a fixed cadence (`window`); a window with data seals at its tick, or as soon as
//! the pending bytes reach `max_object_bytes`. Sealing drains every dirty batcher, builds the
//! object, uploads it, and hands the outcome to the sequencer, which commits in seal order:
//! uploads of consecutive windows overlap, commits never reorder.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::join_all;

use crate::actors::ops::metrics;
use crate::actors::write::commit::{NextObjectId, Sealed, SealedObject, SequencerHandle};
use crate::actors::write::error::WriteError;
use crate::actors::write::messages::{Drain, MarkDirty, StreamBatch};
use crate::actors::write::uploader::{Upload, UploaderPool};
use crate::format::{self, ObjectBuilder};
use object_store::PutPayload;
use tracing_actix::ActorInstrument;

/// Seal now whatever is pending (graceful shutdown, tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SealNow;

#[derive(Debug, Clone)]
pub struct FlusherSettings {
    pub group_id: String,
    pub window: Duration,
    pub max_object_bytes: usize,
    /// How long an upload may take, retries included, before its publishers get an error.
    pub upload_deadline: Duration,
    /// Objects being built or uploaded at once (the uploader pool's size). While this many are
    /// under way a due seal waits: windows merge into a larger object instead of queueing behind
    /// slow PUTs until their deadline, and the in-flight budget pushes back on publishers.
    pub max_uploading: usize,
}

pub struct Flusher {
    settings: FlusherSettings,
    uploader: UploaderPool,
    sequencer: SequencerHandle,
    dirty: Vec<Recipient<Drain>>,
    bytes: usize,
    opened: Option<Instant>,
    next_seal: u64,
    /// Seals between drain and hand-over to the sequencer (building and uploading).
    uploading: usize,
    /// A seal came due while `max_uploading` objects were under way; done when one finishes.
    seal_due: bool,
}

impl Flusher {
    pub fn new(
        settings: FlusherSettings,
        uploader: UploaderPool,
        sequencer: impl Into<SequencerHandle>,
    ) -> Self {
        Self {
            settings,
            uploader,
            sequencer: sequencer.into(),
            dirty: Vec::new(),
            bytes: 0,
            opened: None,
            next_seal: 0,
            uploading: 0,
            seal_due: false,
        }
    }

    fn seal(&mut self, ctx: &mut Context<Self>) {
        if self.uploading >= self.settings.max_uploading.max(1) {
            self.seal_due = true;
            return;
        }
        self.seal_due = false;
        let dirty = std::mem::take(&mut self.dirty);
        self.bytes = 0;
        let opened = self.opened.take();
        if dirty.is_empty() {
            return;
        }
        if let Some(opened) = opened {
            metrics::FLUSH_STAGE
                .with_label_values(&["wait"])
                .observe(opened.elapsed().as_secs_f64());
        }
        let seal_no = self.next_seal;
        self.next_seal += 1;
        self.uploading += 1;
        let group_id = self.settings.group_id.clone();
        let deadline = self.settings.upload_deadline;
        let uploader = self.uploader.clone();
        let sequencer = self.sequencer.clone();
        // One span per object: its seal number and object id are also recorded in the span of
        // every publish it holds, so the two can be joined (`RUST_LOG=infinistream=debug`).
        let span = tracing::debug_span!("flush", seal = seal_no, object_id = tracing::field::Empty);
        ctx.spawn(
            async move {
                let mut batches: Vec<StreamBatch> = join_all(dirty.iter().map(|b| b.send(Drain)))
                    .await
                    .into_iter()
                    .filter_map(|r| match r {
                        Ok(batch) if !batch.pending.is_empty() => Some(batch),
                        Ok(_) => None,
                        Err(e) => {
                            // A batcher stops only when its stream is deleted; its publishers
                            // are answered by the dropped permits' absence of an ack (timeout).
                            tracing::warn!(error = %e, "draining a batcher failed");
                            None
                        }
                    })
                    .collect();
                // Every seal number must reach the sequencer, even one with nothing to write:
                // it commits strictly in seal order and would otherwise wait for it forever.
                let object = if batches.is_empty() {
                    Err(WriteError::NothingToWrite)
                } else {
                    upload_object(&group_id, seal_no, &mut batches, deadline, &uploader, &sequencer)
                        .await
                };
                match &object {
                    Ok(o) => tracing::debug!(key = %o.key, "object uploaded"),
                    Err(e) => tracing::debug!(error = %e, "object not written"),
                }
                // Send, not do_send: the sequencer's backlog is bounded by the in-flight budget,
                // but waiting here keeps the flusher from outrunning it.
                if let Err(e) = sequencer
                    .sealed
                    .send(Sealed {
                        seal_no,
                        batches,
                        object,
                    })
                    .await
                {
                    tracing::error!(seal_no, error = %e, "sequence client unreachable; publishers of this object get no answer");
                }
            }
            .into_actor(self)
            .actor_instrument(span)
            .map(|_, act, ctx| {
                act.uploading -= 1;
                if act.seal_due {
                    act.seal(ctx);
                }
            }),
        );
    }
}

async fn upload_object(
    group_id: &str,
    seal_no: u64,
    batches: &mut [StreamBatch],
    deadline: Duration,
    uploader: &UploaderPool,
    sequencer: &SequencerHandle,
) -> Result<SealedObject, WriteError> {
    let object_id = match sequencer.ids.send(NextObjectId).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Err(WriteError::no_object_id(e)),
        Err(e) => return Err(WriteError::no_object_id(WriteError::Mailbox(e))),
    };
    tracing::Span::current().record("object_id", object_id);
    let msgs: usize = batches.iter().map(|b| b.pending.len()).sum();
    // One pass over the publishes: their spans get the ids every later stage logs with.
    for p in batches.iter().flat_map(|b| &b.pending) {
        p.span.record("seal", seal_no);
        p.span.record("object_id", object_id);
    }
    tracing::debug!(msgs, streams = batches.len(), "object sealed");
    // The builder writes only block tables, CRCs, small blocks and the footer; large block
    // data joins the object as the batchers' own buffers.
    let head_estimate: usize = batches
        .iter()
        .map(|b| 64 + b.stream.len() + 24 * b.pending.len())
        .sum::<usize>()
        + 1024;
    let mut builder = ObjectBuilder::with_capacity(head_estimate);
    let mut blocks = Vec::with_capacity(batches.len());
    let mut metas = Vec::new();
    for batch in batches.iter() {
        metas.clear();
        metas.extend(batch.pending.iter().map(|p| p.meta));
        let block = builder
            .add_block_data(&batch.stream, &batch.subjects, &metas, batch.data.clone())
            .map_err(WriteError::Build)?;
        blocks.push(block);
    }
    drop(metas);
    let (chunks, size) = builder.finish_chunks();
    let payload: PutPayload = chunks.into_iter().collect();
    let size = size as u64;
    let key = format::object_key(group_id, object_id);
    metrics::OBJECT_BYTES.observe(size as f64);
    let started = Instant::now();
    let outcome = uploader
        .upload(Upload {
            key: key.clone(),
            payload,
            deadline: Instant::now() + deadline,
        })
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    metrics::FLUSH_STAGE
        .with_label_values(&["upload"])
        .observe(elapsed);
    match outcome {
        Ok(_) => {
            metrics::OBJECT_STORE_OPS
                .with_label_values(&["put", "ok"])
                .observe(elapsed);
            metrics::OBJECTS_WRITTEN.inc();
            Ok(SealedObject {
                object_id,
                key: key.to_string(),
                size,
                blocks,
            })
        }
        Err(e) => {
            metrics::OBJECT_STORE_OPS
                .with_label_values(&["put", "error"])
                .observe(elapsed);
            tracing::warn!(object_key = %key, error = %e, "object upload failed");
            Err(WriteError::Upload(e))
        }
    }
}

impl Actor for Flusher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Windows run on a fixed cadence: a publish waits half a window on average (a window that
        // opened at the first publish would make every lone publish wait a whole one), and under
        // load there is still exactly one object per window.
        ctx.run_interval(self.settings.window, |act, ctx| {
            if !act.dirty.is_empty() || act.seal_due {
                act.seal(ctx);
            }
        });
    }
}

impl Handler<MarkDirty> for Flusher {
    type Result = ();

    fn handle(&mut self, m: MarkDirty, ctx: &mut Self::Context) {
        if m.first {
            self.dirty.push(m.batcher);
        }
        self.bytes += m.bytes;
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
        }
        if self.bytes >= self.settings.max_object_bytes {
            self.seal(ctx);
        }
    }
}

impl Handler<SealNow> for Flusher {
    type Result = ();

    fn handle(&mut self, _: SealNow, ctx: &mut Self::Context) {
        self.seal(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::actors::ingress::router::NatsMsg;
    use crate::actors::messages::StreamPublish;
    use crate::actors::write::batcher::Batcher;
    use bytes::Bytes;

    fn msg(subject: &str, reply: Option<&str>, headers: Option<&str>, payload: &str) -> NatsMsg {
        NatsMsg {
            subject: subject.into(),
            reply: reply.map(Into::into),
            headers: headers.map(|h| Bytes::copy_from_slice(h.as_bytes())),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    /// The object's chunks are the batches' data, and the drained messages are views into the
    /// very bytes that are uploaded: one copy of each message in memory.
    #[test]
    fn objects_are_built_from_the_batches_data_without_copying_it() {
        let big = "p".repeat(8192);
        let sent = [
            msg("a.1", Some("_INBOX.1"), None, &big),
            msg("a.2", None, Some("NATS/1.0\r\nX: y\r\n\r\n"), ""),
            msg("b", Some("r"), Some("NATS/1.0\r\n\r\n"), "three"),
        ];
        let batches = vec![
            StreamBatch::from_messages("A", vec![(sent[0].clone(), 1), (sent[1].clone(), 2)]),
            StreamBatch::from_messages("B", vec![(sent[2].clone(), 3)]),
        ];
        let got: Vec<&NatsMsg> = batches
            .iter()
            .flat_map(|b| &b.pending)
            .map(|p| &p.msg)
            .collect();
        assert_eq!(got.len(), sent.len());
        for (a, b) in got.iter().zip(&sent) {
            assert_eq!(**a, *b);
        }
        let mut builder = ObjectBuilder::new();
        for b in &batches {
            let metas: Vec<_> = b.pending.iter().map(|p| p.meta).collect();
            builder
                .add_block_data(&b.stream, &b.subjects, &metas, b.data.clone())
                .expect("lengths add up");
        }
        let (chunks, len) = builder.finish_chunks();
        let a_data = &batches[0].data;
        assert!(
            chunks
                .iter()
                .any(|c| c.as_ptr() == a_data.as_ptr() && c.len() == a_data.len())
        );
        let payload = &batches[0].pending[0].msg.payload;
        let range = a_data.as_ptr() as usize..a_data.as_ptr() as usize + a_data.len();
        assert!(range.contains(&(payload.as_ptr() as usize)));
        let object: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(object.len(), len);
        let decoded = format::decode_object(Bytes::from(object)).expect("decodes");
        assert_eq!(decoded.blocks[0].records[0].payload, Bytes::from(big));
        assert_eq!(decoded.blocks[1].records[0].timestamp_nanos, 3);
    }

    /// Stands in for the sequence client: hands out object ids and reports every seal.
    struct FakeSequencer {
        next_id: u64,
        sealed: tokio::sync::mpsc::UnboundedSender<(Sealed, tokio::time::Instant)>,
    }

    impl Actor for FakeSequencer {
        type Context = Context<Self>;
    }

    impl Handler<NextObjectId> for FakeSequencer {
        type Result = Result<u64, WriteError>;
        fn handle(&mut self, _: NextObjectId, _: &mut Self::Context) -> Self::Result {
            self.next_id += 1;
            Ok(self.next_id)
        }
    }

    impl Handler<Sealed> for FakeSequencer {
        type Result = ();
        fn handle(&mut self, m: Sealed, _: &mut Self::Context) {
            let _ = self.sealed.send((m, tokio::time::Instant::now()));
        }
    }

    #[actix_rt::test]
    async fn one_object_per_window_uploaded_before_it_reaches_the_sequencer() {
        tokio::time::pause();
        let window = Duration::from_millis(250);
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let (tx, mut sealed) = tokio::sync::mpsc::unbounded_channel();
        let sequencer = FakeSequencer {
            next_id: 41,
            sealed: tx,
        }
        .start();
        let flusher = Flusher::new(
            FlusherSettings {
                group_id: "g".into(),
                window,
                max_object_bytes: 1 << 20,
                upload_deadline: Duration::from_secs(5),
                max_uploading: 2,
            },
            UploaderPool::start(store.clone(), 1),
            sequencer,
        )
        .start();
        let a = Batcher::new("A", flusher.clone().recipient()).start();
        let b = Batcher::new("B", flusher.recipient()).start();
        let started = tokio::time::Instant::now();
        for (batcher, subject) in [(&a, "a.1"), (&b, "b.1"), (&a, "a.2")] {
            batcher.do_send(StreamPublish {
                origin: None,
                msg: NatsMsg::new(subject, bytes::Bytes::from_static(b"data")),
                permit: None,
                span: tracing::Span::none(),
            });
        }

        let (seal, at) = sealed.recv().await.expect("a seal");
        let object = seal.object.expect("uploaded");
        // The window's clock, not the publishes, sealed it: one object for both streams.
        assert!(
            at - started >= window && at - started < 2 * window,
            "{:?}",
            at - started
        );
        assert_eq!(seal.seal_no, 0);
        assert_eq!(object.object_id, 42);
        let mut streams: Vec<(String, usize)> = seal
            .batches
            .iter()
            .map(|b| (b.stream.clone(), b.pending.len()))
            .collect();
        streams.sort();
        assert_eq!(streams, vec![("A".into(), 2), ("B".into(), 1)]);
        let stored = store
            .get(&object_store::path::Path::from(object.key.as_str()))
            .await
            .expect("in the bucket before the sequencer hears of it");
        assert_eq!(stored.meta.size, object.size);
        assert!(sealed.try_recv().is_err(), "nothing else sealed");
    }
}
