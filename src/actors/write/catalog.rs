//! The stream catalog: the agent's view of which streams exist, polled from the control plane and
//! refreshed at once after a stream changes through this agent.
//!
//! Owns: one `Batcher` per stream (started here, stopped when the stream is gone) and the
//! subject captures it hands the router. Does not own: stream configuration rules (the control
//! plane's) or routing publishes (the router).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::messages::SetStreamRoutes;
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
    flusher: Addr<Flusher>,
    poll_interval: Duration,
    version: u64,
    streams: HashMap<String, (StreamConfig, Addr<Batcher>)>,
    polling: bool,
}

impl StreamCatalog {
    pub fn new(
        client: ControlPlaneClient,
        router: Recipient<SetStreamRoutes>,
        flusher: Addr<Flusher>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            client: Rc::new(client),
            router,
            flusher,
            poll_interval,
            version: 0,
            streams: HashMap::new(),
            polling: false,
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

    fn poll(&mut self) -> ResponseActFuture<Self, ()> {
        if self.polling {
            return Box::pin(fut::ready(()));
        }
        self.polling = true;
        let client = self.client.clone();
        let since = self.version;
        Box::pin(
            async move { client.streams_since(since).await }
                .into_actor(self)
                .then(|res, act, _| {
                    act.polling = false;
                    let update = match res {
                        Ok(snapshot) if snapshot.changed => {
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
            let f = act.poll();
            ctx.spawn(f);
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
