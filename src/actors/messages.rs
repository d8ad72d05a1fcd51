//! The messages that cross the agent's stages: a publish to route (connections, the JetStream
//! actors and the sequence client's acks all send them to the router), a publish a stream
//! captured (connection to batcher), the stream captures (catalog to router, router to every
//! connection), and what the control plane's event feed tells the catalog and the consumer
//! managers.
//!
//! Owns: those message types, apart from the actors that send and handle them, so a stage can
//! name another stage's input without importing it (a batcher never imports the router).
//! Does not own: what a stage does with them.

use std::sync::Arc;

use actix::prelude::*;
use infinistream_api::subject::SubjectTree;

use crate::actors::ops::budget::BudgetPermit;
use crate::message::NatsMsg;

pub use crate::message::ConnId;

/// Routes one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    /// The publishing connection (for echo and no-responders), None for internal publishers.
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    /// The publisher's own message, which gets the no-responders answer when nobody listens;
    /// false for a copy of a message that is already stored (and answered by its stream).
    pub original: bool,
    /// The publisher's share of the in-flight budget; kept only if a stream captures the message.
    pub permit: Option<BudgetPermit>,
}

/// Routes many messages, in order: the acks and core copies of one committed object. One mailbox
/// message instead of two per publish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch(pub Vec<Publish>);

/// Replaces every stream capture: each pattern with the batcher that stores its messages.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStreamRoutes {
    pub routes: Vec<(String, Recipient<StreamPublish>)>,
}

/// Connection -> batcher: a message captured by this batcher's stream.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StreamPublish {
    pub origin: Option<ConnId>,
    pub msg: NatsMsg,
    pub permit: Option<BudgetPermit>,
    /// The publish's `publish` span (debug level; disabled, it costs a callsite check): each
    /// stage records into it and logs in it, so one publish can be followed to its ack.
    pub span: tracing::Span,
}

/// Which stream's batcher stores a subject's messages: one immutable snapshot per change of the
/// streams, shared read-only by the router and every connection (a new snapshot replaces it;
/// nothing mutates one).
#[derive(Default)]
pub struct Captures {
    tree: SubjectTree<usize>,
    batchers: Vec<Recipient<StreamPublish>>,
}

impl Captures {
    pub fn new(routes: Vec<(String, Recipient<StreamPublish>)>) -> Self {
        let mut captures = Self::default();
        for (pattern, batcher) in routes {
            captures.batchers.push(batcher);
            captures.tree.insert(&pattern, captures.batchers.len() - 1);
        }
        captures
    }

    /// The batcher of the first stream whose subjects match `subject` (stream subjects do not
    /// overlap, so there is at most one).
    pub fn batcher_for(&self, subject: &str) -> Option<&Recipient<StreamPublish>> {
        let mut target = None;
        self.tree
            .for_each_match(subject, |i| target = target.or(Some(*i)));
        target.and_then(|i| self.batchers.get(i))
    }

    /// Subject patterns captured.
    pub fn len(&self) -> usize {
        self.batchers.len()
    }
}

/// Router -> connection: the stream captures now (on registering, and after every change), so a
/// connection hands a captured publish straight to its stream's batcher.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SetCaptures(pub Arc<Captures>);

/// Event feed -> consumer managers: something changed that may let waiting consumers take
/// messages (a commit to one of `streams`, on the subjects listed with it or, when none are, on
/// any; a change to one of `consumers`), or, with `all`, anything may have (the feed just
/// started or lost events).
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "()")]
pub struct Wake {
    pub streams: Vec<(String, Vec<String>)>,
    pub consumers: Vec<(String, String)>,
    pub all: bool,
}

impl Wake {
    /// Whether consumer `key` with `filters` (None: not known yet; empty: all subjects) must
    /// look again.
    pub fn concerns(&self, key: &(String, String), filters: Option<&[String]>) -> bool {
        if self.all
            || self
                .consumers
                .iter()
                .any(|(s, c)| *s == key.0 && *c == key.1)
        {
            return true;
        }
        self.streams.iter().any(|(stream, subjects)| {
            *stream == key.0
                && (subjects.is_empty()
                    || filters.is_none_or(|f| {
                        f.is_empty()
                            || f.iter().any(|f| {
                                subjects
                                    .iter()
                                    .any(|s| f == s || infinistream_api::subject::matches(f, s))
                            })
                    }))
        })
    }
}

/// Event feed -> consumer managers and catalog: whether the feed runs. While it does not, they
/// poll the control plane as they did before it existed.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct FeedUp(pub bool);

/// Event feed -> catalog: stream changes in the order the control plane made them (name,
/// catalog version after the change, the config or None when deleted); `reset`: events were
/// lost, re-read the whole catalog. Answered once the routes are in place.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "()")]
pub struct StreamChanges {
    pub changes: Vec<(
        String,
        u64,
        Option<infinistream_api::jetstream::StreamConfig>,
    )>,
    pub reset: bool,
}

/// JetStream API -> event feed: fetch and deliver what is new now, answering once delivered;
/// false when the feed is down (the caller then refreshes the catalog itself).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct CatchUp;
