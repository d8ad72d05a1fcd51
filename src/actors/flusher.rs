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

use crate::actors::batcher::{Drain, StreamBatch};
use crate::actors::sequence_client::{NextObjectId, Sealed, SealedObject, SequencerHandle};
use crate::actors::uploader::{Upload, UploaderPool};
use crate::format::{self, ObjectBuilder, Record};
use crate::metrics;

/// Batcher -> flusher: it has data for the current window (`first`), or grew by `bytes`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkDirty {
    pub batcher: Recipient<Drain>,
    pub first: bool,
    pub bytes: usize,
}

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
                    Err("nothing to write".to_string())
                } else {
                    upload_object(&group_id, &mut batches, deadline, &uploader, &sequencer).await
                };
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
    batches: &mut [StreamBatch],
    deadline: Duration,
    uploader: &UploaderPool,
    sequencer: &SequencerHandle,
) -> Result<SealedObject, String> {
    let object_id = match sequencer.ids.send(NextObjectId).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Err(format!("no object id: {e}")),
        Err(e) => return Err(format!("no object id: {e}")),
    };
    let capacity: usize = batches
        .iter()
        .flat_map(|b| b.pending.iter())
        .map(|p| p.msg.size() + 32)
        .sum::<usize>()
        + 1024;
    let mut builder = ObjectBuilder::with_capacity(capacity);
    let mut blocks = Vec::with_capacity(batches.len());
    let mut records = Vec::new();
    let mut data_ranges = Vec::with_capacity(batches.len());
    for batch in batches.iter() {
        records.clear();
        records.extend(batch.pending.iter().map(|p| Record {
            subject: p.msg.subject.clone(),
            headers: p.msg.headers.clone(),
            payload: p.msg.payload.clone(),
            timestamp_nanos: p.timestamp_nanos,
        }));
        let block = builder.add_block(&batch.stream, &records);
        let data_len: usize = records
            .iter()
            .map(|r| r.subject.len() + r.headers.as_ref().map_or(0, |h| h.len()) + r.payload.len())
            .sum();
        data_ranges.push((ObjectBuilder::data_start(&block, data_len), data_len));
        blocks.push(block);
    }
    drop(records);
    let bytes = tracked(builder.finish());
    for (batch, (start, len)) in batches.iter_mut().zip(data_ranges) {
        rebase_on_object(batch, &bytes, start, len);
    }
    let size = bytes.len() as u64;
    let key = format::object_key(group_id, object_id);
    metrics::OBJECT_BYTES.observe(size as f64);
    let started = Instant::now();
    let outcome = uploader
        .upload(Upload {
            key: key.clone(),
            bytes,
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
            Err(format!("object upload failed: {e}"))
        }
    }
}

/// An object's bytes, counted in `infinistream_objects_in_memory` until the last slice of them
/// (the object being uploaded, or a waiting message re-pointed into it) is dropped.
fn tracked(bytes: bytes::Bytes) -> bytes::Bytes {
    struct Live(bytes::Bytes);
    impl AsRef<[u8]> for Live {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Live {
        fn drop(&mut self) {
            metrics::OBJECTS_IN_MEMORY.dec();
            metrics::OBJECT_MEMORY_BYTES.sub(self.0.len() as i64);
        }
    }
    metrics::OBJECTS_IN_MEMORY.inc();
    metrics::OBJECT_MEMORY_BYTES.add(bytes.len() as i64);
    bytes::Bytes::from_owner(Live(bytes))
}

/// Points the waiting messages at their copies in the object. They were slices of the
/// connections' read buffers, which stayed allocated until the last message in them was acked:
/// with a slow bucket that held the in-flight data twice, once in read buffers and once in objects.
/// The reply subject is copied out for the same reason.
fn rebase_on_object(batch: &mut StreamBatch, object: &bytes::Bytes, mut pos: usize, len: usize) {
    if pos.checked_add(len).is_none_or(|end| end > object.len()) {
        // Cannot happen with the builder's own offsets; keeping the originals is always correct.
        tracing::error!(stream = %batch.stream, "block data outside its object; messages not rebased");
        return;
    }
    for p in &mut batch.pending {
        let msg = &mut p.msg;
        let subject_end = pos + msg.subject.len();
        if let Ok(subject) = bytestring::ByteString::try_from(object.slice(pos..subject_end)) {
            msg.subject = subject;
        }
        pos = subject_end;
        if let Some(h) = &msg.headers {
            let end = pos + h.len();
            msg.headers = Some(object.slice(pos..end));
            pos = end;
        }
        let end = pos + msg.payload.len();
        msg.payload = object.slice(pos..end);
        pos = end;
        if let Some(reply) = &msg.reply {
            msg.reply = Some(bytestring::ByteString::from(reply.to_string()));
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
    use super::*;
    use crate::actors::batcher::Pending;
    use crate::actors::router::NatsMsg;
    use bytes::Bytes;

    fn pending(
        subject: &str,
        reply: Option<&str>,
        headers: Option<&str>,
        payload: &str,
    ) -> Pending {
        Pending {
            origin: None,
            msg: NatsMsg {
                subject: subject.into(),
                reply: reply.map(Into::into),
                headers: headers.map(|h| Bytes::copy_from_slice(h.as_bytes())),
                payload: Bytes::copy_from_slice(payload.as_bytes()),
            },
            permit: None,
            received: Instant::now(),
            timestamp_nanos: 1,
        }
    }

    #[test]
    fn messages_are_rebased_onto_their_bytes_in_the_object() {
        let batches = vec![
            StreamBatch {
                stream: "A".into(),
                pending: vec![
                    pending("a.1", Some("_INBOX.1"), None, "one"),
                    pending("a.2", None, Some("NATS/1.0\r\nX: y\r\n\r\n"), ""),
                ],
            },
            StreamBatch {
                stream: "B".into(),
                pending: vec![pending("b", Some("r"), Some("NATS/1.0\r\n\r\n"), "three")],
            },
        ];
        let before: Vec<NatsMsg> = batches
            .iter()
            .flat_map(|b| b.pending.iter().map(|p| p.msg.clone()))
            .collect();
        let mut batches = batches;
        let mut builder = ObjectBuilder::with_capacity(1024);
        let mut starts = Vec::new();
        for batch in &batches {
            let records: Vec<Record> = batch
                .pending
                .iter()
                .map(|p| Record {
                    subject: p.msg.subject.clone(),
                    headers: p.msg.headers.clone(),
                    payload: p.msg.payload.clone(),
                    timestamp_nanos: 1,
                })
                .collect();
            let block = builder.add_block(&batch.stream, &records);
            let len = records
                .iter()
                .map(|r| {
                    r.subject.len() + r.headers.as_ref().map_or(0, |h| h.len()) + r.payload.len()
                })
                .sum();
            starts.push((ObjectBuilder::data_start(&block, len), len));
        }
        let object = builder.finish();
        for (batch, (start, len)) in batches.iter_mut().zip(starts) {
            rebase_on_object(batch, &object, start, len);
        }
        let range = object.as_ptr() as usize..object.as_ptr() as usize + object.len();
        let after: Vec<NatsMsg> = batches
            .iter()
            .flat_map(|b| b.pending.iter().map(|p| p.msg.clone()))
            .collect();
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(a.subject, b.subject);
            assert_eq!(a.reply, b.reply);
            assert_eq!(a.headers, b.headers);
            assert_eq!(a.payload, b.payload);
            if !a.payload.is_empty() {
                assert!(range.contains(&(a.payload.as_ptr() as usize)));
            }
            assert!(range.contains(&(a.subject.as_bytes().as_ptr() as usize)));
        }
    }
}
