//! The messages that cross the agent's stages: a publish to route (connections, the JetStream
//! actors and the sequence client's acks all send them to the router), a publish a stream
//! captured (connection to batcher), the stream captures (catalog to router, router to every
//! connection), and what the control plane's event feed tells the catalog and the consumer
//! managers.
//!
//! Owns: those message types, apart from the actors that send and handle them, so a stage can
//! name another stage's input without importing it (a batcher never imports the router).
//! Does not own: what a stage does with them.

use std::collections::HashSet;
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

/// Changes some stream captures: `remove` patterns are no longer captured, `add` ones are (by
/// that batcher). What the catalog sends for one stream's change, instead of every route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeStreamRoutes {
    pub remove: Vec<String>,
    pub add: Vec<(String, Recipient<StreamPublish>)>,
}

/// Patterns and their batchers, with the tree that matches subjects against them.
#[derive(Default)]
struct CaptureTable {
    tree: SubjectTree<usize>,
    routes: Vec<(String, Recipient<StreamPublish>)>,
}

impl CaptureTable {
    fn new(routes: Vec<(String, Recipient<StreamPublish>)>) -> Self {
        let mut tree = SubjectTree::new();
        for (i, (pattern, _)) in routes.iter().enumerate() {
            tree.insert(pattern, i);
        }
        Self { tree, routes }
    }

    fn find(&self, subject: &str) -> Option<&(String, Recipient<StreamPublish>)> {
        let mut target = None;
        self.tree
            .for_each_match(subject, |i| target = target.or(Some(*i)));
        target.and_then(|i| self.routes.get(i))
    }

    fn has(&self, pattern: &str) -> bool {
        self.routes.iter().any(|(p, _)| p == pattern)
    }
}

/// After this many changes since the base table was built, a change rebuilds it.
const CAPTURE_CHANGES_MAX: usize = 64;

/// Which stream's batcher stores a subject's messages: one immutable snapshot per change of the
/// streams, shared read-only by the router and every connection (a new snapshot replaces it;
/// nothing mutates one). A snapshot is a shared base table plus the few changes since it was
/// built, so one stream's change costs a small table, not a rebuild of every stream's routes
/// (creating 10,000 streams one by one rebuilt 50 million routes).
#[derive(Default)]
pub struct Captures {
    base: Arc<CaptureTable>,
    /// Routes added since `base` was built; they win over `base`.
    recent: CaptureTable,
    /// Patterns of `base` no longer captured (or captured by `recent` now).
    removed: HashSet<String>,
}

impl Captures {
    pub fn new(routes: Vec<(String, Recipient<StreamPublish>)>) -> Self {
        Self {
            base: Arc::new(CaptureTable::new(routes)),
            ..Self::default()
        }
    }

    /// This snapshot with `remove` no longer captured and `add` captured.
    pub fn changed(&self, remove: &[String], add: Vec<(String, Recipient<StreamPublish>)>) -> Self {
        let mut removed = self.removed.clone();
        let mut recent: Vec<(String, Recipient<StreamPublish>)> = self
            .recent
            .routes
            .iter()
            .filter(|(p, _)| !remove.contains(p) && !add.iter().any(|(a, _)| a == p))
            .cloned()
            .collect();
        for pattern in remove.iter().chain(add.iter().map(|(p, _)| p)) {
            if !removed.contains(pattern) && self.base.has(pattern) {
                removed.insert(pattern.clone());
            }
        }
        recent.extend(add);
        if recent.len() + removed.len() > CAPTURE_CHANGES_MAX {
            let mut all: Vec<(String, Recipient<StreamPublish>)> = self
                .base
                .routes
                .iter()
                .filter(|(p, _)| !removed.contains(p))
                .cloned()
                .collect();
            all.extend(recent);
            return Self::new(all);
        }
        Self {
            base: self.base.clone(),
            recent: CaptureTable::new(recent),
            removed,
        }
    }

    /// The batcher of the stream whose subjects match `subject` (stream subjects do not
    /// overlap, so there is at most one).
    pub fn batcher_for(&self, subject: &str) -> Option<&Recipient<StreamPublish>> {
        if let Some((_, batcher)) = self.recent.find(subject) {
            return Some(batcher);
        }
        match self.base.find(subject) {
            Some((pattern, batcher)) if !self.removed.contains(pattern) => Some(batcher),
            _ => None,
        }
    }

    /// Subject patterns captured.
    pub fn len(&self) -> usize {
        self.base.routes.len() - self.removed.len() + self.recent.routes.len()
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
    /// Every consumer must look again (the feed started, or lost events).
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<StreamPublish> for Sink {
        type Result = ();
        fn handle(&mut self, _: StreamPublish, _: &mut Self::Context) {}
    }

    fn sink() -> Recipient<StreamPublish> {
        Sink.start().recipient()
    }

    /// Captures changed one stream at a time agree with captures built whole, before and after
    /// the base table is rebuilt.
    #[actix::test]
    async fn changed_captures_match_rebuilt_ones() {
        let (a, b) = (sink(), sink());
        let mut routes: Vec<(String, Recipient<StreamPublish>)> =
            vec![("a.>".into(), a.clone()), ("b.*".into(), b.clone())];
        let mut captures = Captures::new(routes.clone());
        let subjects = |i: usize| format!("s{i}.x");
        for i in 0..(CAPTURE_CHANGES_MAX * 3) {
            let r = sink();
            let pattern = format!("s{i}.*");
            captures = captures.changed(&[], vec![(pattern.clone(), r.clone())]);
            routes.push((pattern, r));
            if i % 5 == 0 {
                // A delete now and then, of an older stream.
                let gone = format!("s{}.*", i / 2);
                captures = captures.changed(std::slice::from_ref(&gone), Vec::new());
                routes.retain(|(p, _)| *p != gone);
            }
            let whole = Captures::new(routes.clone());
            assert_eq!(captures.len(), whole.len(), "after change {i}");
            for j in 0..=i {
                assert_eq!(
                    captures.batcher_for(&subjects(j)),
                    whole.batcher_for(&subjects(j)),
                    "s{j} after change {i}"
                );
            }
        }
        assert_eq!(captures.batcher_for("a.q.r"), Some(&a));
        // A pattern taken over by another batcher (a stream update) captures for the new one.
        let c = sink();
        let moved = captures.changed(&["b.*".to_string()], vec![("b.*".into(), c.clone())]);
        assert_eq!(moved.batcher_for("b.x"), Some(&c));
        assert_eq!(moved.len(), captures.len());
        assert_eq!(
            captures.batcher_for("b.x"),
            Some(&b),
            "old snapshots stay as they were"
        );
    }
}
