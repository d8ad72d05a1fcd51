//! The stream catalog: the agent's view of which streams exist, kept by the control plane's
//! event feed as deltas (one stream's change applied, not the whole list re-read), read whole at
//! start and after the feed lost events, and polled while the feed is down.
//!
//! Owns: one `Batcher` per stream (started here, stopped when the stream is gone) and the
//! subject captures it hands the router. Does not own: stream configuration rules (the control
//! plane's) or routing publishes (the router).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::messages::{ChangeStreamRoutes, FeedUp, SetStreamRoutes, StreamChanges};
use crate::actors::write::batcher::Batcher;
use crate::actors::write::flusher::Flusher;
use crate::control_plane::client::ControlPlaneClient;
use infinistream_api::jetstream::StreamConfig;

/// Ask the catalog to catch up with the control plane now; answers once routes are in place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

/// A stream's configuration as this agent last saw it.
#[derive(Message)]
#[rtype(result = "Option<StreamConfig>")]
pub struct GetStream(pub String);

pub struct StreamCatalog {
    client: Rc<ControlPlaneClient>,
    router: Recipient<SetStreamRoutes>,
    /// The same router, for one stream's change at a time.
    route_changes: Recipient<ChangeStreamRoutes>,
    flusher: Addr<Flusher>,
    poll_interval: Duration,
    version: u64,
    streams: HashMap<String, (StreamConfig, Addr<Batcher>)>,
    polling: bool,
    /// The event feed runs: periodic polls are skipped.
    feed_up: bool,
}

impl StreamCatalog {
    pub fn new(
        client: ControlPlaneClient,
        router: Recipient<SetStreamRoutes>,
        route_changes: Recipient<ChangeStreamRoutes>,
        flusher: Addr<Flusher>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            client: Rc::new(client),
            router,
            route_changes,
            flusher,
            poll_interval,
            version: 0,
            streams: HashMap::new(),
            polling: false,
            feed_up: false,
        }
    }

    /// Replaces the catalog with `configs` and the router's captures with theirs.
    fn apply(&mut self, configs: Vec<StreamConfig>) -> SetStreamRoutes {
        let mut next = HashMap::with_capacity(configs.len());
        for config in configs {
            let batcher = match self.streams.remove(&config.name) {
                Some((_, batcher)) => batcher,
                None => Batcher::new(config.name.clone(), self.flusher.clone().recipient()).start(),
            };
            next.insert(config.name.clone(), (config, batcher));
        }
        // Batchers of deleted streams stop once the router and flusher drop their addresses.
        self.streams = next;
        self.routes()
    }

    /// Applies one stream's change (None: deleted), adding the route changes it makes to `out`.
    fn apply_change(
        &mut self,
        name: &str,
        config: Option<StreamConfig>,
        out: &mut ChangeStreamRoutes,
    ) {
        let old = self.streams.remove(name);
        if let Some((old_config, _)) = &old {
            out.remove.extend(old_config.subjects.iter().cloned());
        }
        if let Some(config) = config {
            let batcher = match old {
                Some((_, batcher)) => batcher,
                None => Batcher::new(config.name.clone(), self.flusher.clone().recipient()).start(),
            };
            out.add.extend(
                config
                    .subjects
                    .iter()
                    .map(|s| (s.clone(), batcher.clone().recipient())),
            );
            self.streams.insert(name.to_string(), (config, batcher));
        }
    }

    fn routes(&self) -> SetStreamRoutes {
        let routes = self
            .streams
            .values()
            .flat_map(|(config, batcher)| {
                config
                    .subjects
                    .iter()
                    .map(move |s| (s.clone(), batcher.clone().recipient()))
            })
            .collect();
        SetStreamRoutes { routes }
    }

    /// Reads the catalog if it changed after the version this agent has (0: whatever it is).
    fn poll(&mut self) -> ResponseActFuture<Self, ()> {
        if self.polling {
            return Box::pin(fut::ready(()));
        }
        self.polling = true;
        let since = self.version;
        let client = self.client.clone();
        Box::pin(
            async move { client.streams_since(since).await }
                .into_actor(self)
                .then(|res, act, _| {
                    act.polling = false;
                    let update = match res {
                        // Not older than what the event feed applied during the poll.
                        Ok(snapshot) if snapshot.changed && snapshot.version >= act.version => {
                            act.version = snapshot.version;
                            Some(act.apply(snapshot.streams))
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "polling streams failed");
                            None
                        }
                    };
                    let router = act.router.clone();
                    async move {
                        if let Some(update) = update {
                            // Awaited so a stream is routable before its create is answered.
                            let _ = router.send(update).await;
                        }
                    }
                    .into_actor(act)
                }),
        )
    }
}

impl Actor for StreamCatalog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.poll_interval, |act, ctx| {
            if !act.feed_up {
                let f = act.poll();
                ctx.spawn(f);
            }
        });
        let f = self.poll();
        ctx.spawn(f);
    }
}

impl StreamCatalog {
    /// A poll that starts after now: a poll already under way may have read the control plane
    /// before the change being waited for, so wait it out first.
    fn fresh_poll(&mut self) -> ResponseActFuture<Self, ()> {
        if !self.polling {
            return self.poll();
        }
        Box::pin(
            async { actix_rt::time::sleep(Duration::from_millis(5)).await }
                .into_actor(self)
                .then(|_, act, _| act.fresh_poll()),
        )
    }
}

impl Handler<Refresh> for StreamCatalog {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Refresh, _: &mut Self::Context) -> Self::Result {
        self.fresh_poll()
    }
}

impl Handler<GetStream> for StreamCatalog {
    type Result = Option<StreamConfig>;

    fn handle(&mut self, m: GetStream, _: &mut Self::Context) -> Self::Result {
        self.streams.get(&m.0).map(|(c, _)| c.clone())
    }
}

impl Handler<StreamChanges> for StreamCatalog {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, m: StreamChanges, _: &mut Self::Context) -> Self::Result {
        if m.reset {
            // Events were lost: read everything again.
            self.version = 0;
            return self.fresh_poll();
        }
        let mut update = ChangeStreamRoutes {
            remove: Vec::new(),
            add: Vec::new(),
        };
        for (name, version, config) in m.changes {
            // A change at or below the version already read (a full poll, or the same events
            // delivered twice by overlapping requests) is in the catalog already.
            if version <= self.version {
                continue;
            }
            self.version = version;
            self.apply_change(&name, config, &mut update);
        }
        if update.remove.is_empty() && update.add.is_empty() {
            return Box::pin(fut::ready(()));
        }
        let router = self.route_changes.clone();
        Box::pin(
            async move {
                let _ = router.send(update).await;
            }
            .into_actor(self),
        )
    }
}

impl Handler<FeedUp> for StreamCatalog {
    type Result = ();

    fn handle(&mut self, m: FeedUp, ctx: &mut Self::Context) {
        let was = self.feed_up;
        self.feed_up = m.0;
        // Up again after a gap: changes made while it was down came by poll or are lost;
        // one poll closes the gap either way.
        if m.0 && !was {
            let f = self.poll();
            ctx.spawn(f);
        }
    }
}
