//! The per-stream Batcher: a stream's publishes waiting for the current window's object.
//!
//! Owns: the stream's pending messages in arrival order (which is each connection's order: a
//! connection hands them over in order) with their publishers' reply subjects and budget permits,
//! and the window's block data: every message's headers and payload are copied on arrival into
//! one buffer, laid out as the object's block (version 2) will hold them, and each distinct
//! subject once into the window's subject table. At a seal that buffer becomes a chunk of the
//! object as is, and the drained messages are views into it and into the subject table. So a
//! message is in memory once, in the same place before and after its seal, and the connections'
//! read buffers are reused at once instead of being pinned until the ack.
//! Does not own: the window clock or object assembly (the `Flusher` drains every dirty batcher
//! when it seals), sequences (the control plane), or acks (the `SequenceClient`).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::actors::messages::StreamPublish;
use crate::actors::ops::metrics;
use crate::actors::write::messages::{Drain, MarkDirty, Pending, StreamBatch};
use crate::format::RecordMeta;
use crate::message::NatsMsg;

impl StreamBatch {
    /// A batch of messages as they are: copies them into block data like a batcher does.
    #[cfg(test)]
    pub fn from_messages(stream: impl Into<String>, messages: Vec<(NatsMsg, i64)>) -> Self {
        let mut data = BytesMut::new();
        let mut subjects = SubjectTable::default();
        let pending = messages
            .into_iter()
            .map(|(msg, timestamp_nanos)| {
                let subject = subjects.index_of(&msg.subject);
                let meta = append_record(&mut data, &msg, subject, timestamp_nanos);
                Pending {
                    origin: None,
                    msg: NatsMsg {
                        subject: ByteString::new(),
                        reply: msg.reply,
                        headers: None,
                        payload: Bytes::new(),
                    },
                    permit: None,
                    received: Instant::now(),
                    meta,
                    span: tracing::Span::none(),
                }
            })
            .collect();
        let mut batch = StreamBatch {
            stream: stream.into(),
            pending,
            data: Bytes::new(),
            subjects: subjects.take(),
        };
        point_into(
            &mut batch.pending,
            data.freeze(),
            &batch.subjects,
            &mut batch.data,
        );
        batch
    }
}

/// A window's distinct subjects, each stored once in the block (object block version 2).
#[derive(Default)]
struct SubjectTable {
    list: Vec<ByteString>,
    index: HashMap<ByteString, u32>,
}

impl SubjectTable {
    /// The index of `subject`, added on first sight. The subject is copied: the message's own
    /// bytes are a view of its connection's read buffer, which must not stay pinned.
    fn index_of(&mut self, subject: &ByteString) -> u32 {
        if let Some(&i) = self.index.get(subject) {
            return i;
        }
        let owned = ByteString::from(&**subject);
        // A window never holds u32::MAX distinct subjects: the in-flight budget bounds it far
        // below, so saturating only guards the conversion.
        let i = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        self.list.push(owned.clone());
        self.index.insert(owned, i);
        i
    }

    /// The window's subjects, in order of first appearance; the table starts empty again.
    fn take(&mut self) -> Vec<ByteString> {
        self.index.clear();
        std::mem::take(&mut self.list)
    }
}

/// Copies `msg`'s headers and payload to the end of `data` and describes them; its subject is
/// entry `subject` of the window's subject table.
fn append_record(
    data: &mut BytesMut,
    msg: &NatsMsg,
    subject: u32,
    timestamp_nanos: i64,
) -> RecordMeta {
    if let Some(h) = &msg.headers {
        data.put_slice(h);
    }
    data.put_slice(&msg.payload);
    RecordMeta {
        subject,
        headers_len: msg.headers.as_ref().map(Bytes::len),
        payload_len: msg.payload.len(),
        timestamp_nanos,
    }
}

/// Points every pending message at its bytes in `data` (laid out by `append_record`, in order)
/// and its subject in `subjects`, and stores `data` in `out`.
fn point_into(pending: &mut [Pending], data: Bytes, subjects: &[ByteString], out: &mut Bytes) {
    let mut pos = 0;
    for p in pending {
        let m = p.meta;
        let end = pos + m.data_len();
        if end > data.len() {
            // Cannot happen: `data` was written from these very lengths.
            tracing::error!(
                pos,
                end,
                len = data.len(),
                "block data shorter than its records"
            );
            break;
        }
        match usize::try_from(m.subject)
            .ok()
            .and_then(|i| subjects.get(i))
        {
            Some(subject) => p.msg.subject = subject.clone(),
            // Cannot happen: every index was handed out by the window's subject table.
            None => tracing::error!(
                subject = m.subject,
                "record names a subject the window does not have"
            ),
        }
        let headers_end = pos + m.headers_len.unwrap_or(0);
        p.msg.headers = m.headers_len.map(|_| data.slice(pos..headers_end));
        p.msg.payload = data.slice(headers_end..end);
        pos = end;
    }
    *out = data;
}

/// Tell the flusher about growth in steps of this many bytes, not per message.
const REPORT_STEP: usize = 256 * 1024;

/// The first reservation of a window's buffer is never smaller than this.
const MIN_RESERVE: usize = 256;

pub struct Batcher {
    stream: String,
    flusher: Recipient<MarkDirty>,
    pending: Vec<Pending>,
    /// This window's block data (see the module doc).
    data: BytesMut,
    /// This window's distinct subjects (the block's subject table).
    subjects: SubjectTable,
    /// Block data of the previous window: the first reservation of the next one.
    last_window_bytes: usize,
    /// What this batcher has added to `infinistream_unsealed_bytes` for the current window.
    gauged_bytes: usize,
    pending_bytes: usize,
    reported_bytes: usize,
    last_timestamp: i64,
}

impl Batcher {
    pub fn new(stream: impl Into<String>, flusher: Recipient<MarkDirty>) -> Self {
        Self {
            stream: stream.into(),
            flusher,
            pending: Vec::new(),
            data: BytesMut::new(),
            subjects: SubjectTable::default(),
            last_window_bytes: 0,
            gauged_bytes: 0,
            pending_bytes: 0,
            reported_bytes: 0,
            last_timestamp: 0,
        }
    }

    /// Arrival time in unix nanos, never going backwards within the stream.
    fn timestamp(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        self.last_timestamp = now.max(self.last_timestamp);
        self.last_timestamp
    }
}

impl Actor for Batcher {
    type Context = Context<Self>;
}

impl Handler<StreamPublish> for Batcher {
    type Result = ();

    fn handle(&mut self, m: StreamPublish, ctx: &mut Self::Context) {
        let size = m.msg.size();
        let timestamp_nanos = self.timestamp();
        let first = self.pending.is_empty();
        let need = m.msg.headers.as_ref().map_or(0, Bytes::len) + m.msg.payload.len();
        if self.data.capacity() - self.data.len() < need {
            // Doubling, starting from what the last window needed: a steady stream reserves once.
            let grow = if self.data.is_empty() {
                self.last_window_bytes + self.last_window_bytes / 8
            } else {
                self.data.len()
            };
            self.data.reserve(need.max(grow).max(MIN_RESERVE));
        }
        let subject = self.subjects.index_of(&m.msg.subject);
        let meta = append_record(&mut self.data, &m.msg, subject, timestamp_nanos);
        // The message's own bytes are dropped here; the reply subject is copied out because a
        // slice of it would keep the connection's whole read buffer alive until the ack.
        let reply = m.msg.reply.map(|r| ByteString::from(&*r));
        m.span
            .in_scope(|| tracing::debug!(stream = %self.stream, "publish batched"));
        self.pending.push(Pending {
            origin: m.origin,
            msg: NatsMsg {
                subject: ByteString::new(),
                reply,
                headers: None,
                payload: Bytes::new(),
            },
            permit: m.permit,
            received: Instant::now(),
            meta,
            span: m.span,
        });
        self.pending_bytes += size;
        if first || self.pending_bytes - self.reported_bytes >= REPORT_STEP {
            // The gauge moves with the flusher's reports, not per message.
            metrics::UNSEALED_BYTES.add((self.data.len() - self.gauged_bytes) as i64);
            self.gauged_bytes = self.data.len();
            self.flusher.do_send(MarkDirty {
                batcher: ctx.address().recipient(),
                first,
                bytes: self.pending_bytes - self.reported_bytes,
            });
            self.reported_bytes = self.pending_bytes;
        }
    }
}

impl Handler<Drain> for Batcher {
    type Result = MessageResult<Drain>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.pending_bytes = 0;
        self.reported_bytes = 0;
        // The whole buffer goes (spare capacity too), so an idle stream holds nothing between
        // windows; the next window reserves from `last_window_bytes`.
        let data = std::mem::take(&mut self.data);
        self.last_window_bytes = data.len();
        metrics::UNSEALED_BYTES.sub(self.gauged_bytes as i64);
        self.gauged_bytes = 0;
        let mut batch = StreamBatch {
            stream: self.stream.clone(),
            pending: std::mem::take(&mut self.pending),
            data: Bytes::new(),
            subjects: self.subjects.take(),
        };
        let data = metrics::track_sealed(data.freeze());
        point_into(&mut batch.pending, data, &batch.subjects, &mut batch.data);
        MessageResult(batch)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::actors::messages::ConnId;

    /// Stands in for the flusher: every `MarkDirty` it gets, in order.
    struct FakeFlusher(mpsc::UnboundedSender<(bool, usize)>);

    impl Actor for FakeFlusher {
        type Context = Context<Self>;
    }

    impl Handler<MarkDirty> for FakeFlusher {
        type Result = ();
        fn handle(&mut self, m: MarkDirty, _: &mut Self::Context) {
            let _ = self.0.send((m.first, m.bytes));
        }
    }

    fn publish(subject: &str, payload: &'static str) -> StreamPublish {
        StreamPublish {
            origin: Some(7),
            msg: NatsMsg::new(subject, Bytes::from_static(payload.as_bytes())),
            permit: None,
            span: tracing::Span::none(),
        }
    }

    #[actix_rt::test]
    async fn reports_the_first_publish_then_drains_all_in_arrival_order() {
        let (tx, mut dirty) = mpsc::unbounded_channel();
        let flusher = FakeFlusher(tx).start();
        let batcher = Batcher::new("S", flusher.recipient()).start();
        batcher.do_send(publish("s.a", "one"));
        batcher.do_send(publish("s.b", "two"));
        let batch = batcher.send(Drain).await.expect("drained");

        // One report for the window's first publish; a small second one is not worth a message.
        assert_eq!(dirty.recv().await, Some((true, "s.a".len() + "one".len())));
        assert!(dirty.try_recv().is_err());
        assert_eq!(batch.stream, "S");
        let got: Vec<(&str, &[u8], Option<ConnId>)> = batch
            .pending
            .iter()
            .map(|p| (&*p.msg.subject, &p.msg.payload[..], p.origin))
            .collect();
        assert_eq!(
            got,
            vec![("s.a", &b"one"[..], Some(7)), ("s.b", &b"two"[..], Some(7))]
        );
        // The payloads are views into the batch's block data, laid out back to back; each
        // subject is in the block's subject table once.
        assert_eq!(&batch.data[..], b"onetwo");
        assert_eq!(batch.subjects, vec!["s.a", "s.b"]);

        // Drained: the next publish opens a new window and is reported as first again.
        batcher.do_send(publish("s.c", "three"));
        let next = batcher.send(Drain).await.expect("drained");
        assert_eq!(next.pending.len(), 1);
        assert_eq!(dirty.recv().await.map(|d| d.0), Some(true));
    }
}
