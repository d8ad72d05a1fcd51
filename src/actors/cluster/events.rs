//! The control plane's event feed: one long-poll of `GET /v1/events` per agent, held open by the
//! control plane until something changes, instead of a request per waiting consumer every few
//! milliseconds and a re-read of the whole stream list after every change.
//!
//! Owns: the feed's cursor and epoch, the long-poll loop and its back-off, telling the catalog
//! about stream changes (as deltas) and the consumer managers what to wake, and whether the feed
//! is up (`FeedUp`: while it is down they poll as before). Does not own: what a wake or a stream
//! change does (`jetstream::pull`, `jetstream::push`, `write::catalog`).

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::messages::{CatchUp, FeedUp, StreamChanges, Wake};
use crate::control_plane::client::ControlPlaneClient;
use infinistream_api::control_plane::events::{Event, EventsQuery, EventsResponse};

/// How long the control plane holds one request open while nothing happens.
pub const WAIT: Duration = Duration::from_secs(20);
/// First pause after a failed request; doubled up to `BACKOFF_MAX`.
const BACKOFF: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Who hears what the feed learns.
#[derive(Clone)]
pub struct FeedTargets {
    pub catalog: Recipient<StreamChanges>,
    pub catalog_up: Recipient<FeedUp>,
    pub wake: Vec<Recipient<Wake>>,
    pub up: Vec<Recipient<FeedUp>>,
}

pub struct EventFeed {
    client: Rc<ControlPlaneClient>,
    targets: FeedTargets,
    wait: Duration,
    epoch: u64,
    cursor: Option<u64>,
    up: bool,
    backoff: Duration,
}

impl EventFeed {
    pub fn new(client: ControlPlaneClient, targets: FeedTargets) -> Self {
        Self {
            client: Rc::new(client),
            targets,
            wait: WAIT,
            epoch: 0,
            cursor: None,
            up: false,
            backoff: BACKOFF,
        }
    }

    fn query(&self, wait: Duration) -> EventsQuery {
        EventsQuery {
            from: self.cursor,
            epoch: self.epoch,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// One request of the loop; the next starts when this one is delivered.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        // The first request only learns the cursor, at once.
        let wait = if self.cursor.is_some() {
            self.wait
        } else {
            Duration::ZERO
        };
        let query = self.query(wait);
        ctx.spawn(
            async move { client.events(&query).await }
                .into_actor(self)
                .then(|res, act, _| act.deliver(res))
                .map(|delivered, act, ctx| {
                    if delivered {
                        act.backoff = BACKOFF;
                        act.poll(ctx);
                    } else {
                        let pause = act.backoff;
                        act.backoff = (act.backoff * 2).min(BACKOFF_MAX);
                        ctx.run_later(pause, |act, ctx| act.poll(ctx));
                    }
                }),
        );
    }

    /// Hands an answer to the catalog (awaited, so routes are in place) and the consumer
    /// managers; false when the request failed.
    fn deliver(
        &mut self,
        res: Result<EventsResponse, crate::control_plane::client::CpError>,
    ) -> ResponseActFuture<Self, bool> {
        let answer = match res {
            Ok(a) => a,
            Err(e) => {
                if self.up {
                    tracing::warn!(error = %e, "control plane event feed lost, consumers poll until it is back");
                    self.set_up(false);
                }
                return Box::pin(fut::ready(false));
            }
        };
        let first = self.cursor.is_none() || answer.epoch != self.epoch;
        // Two requests may overlap (a catch-up beside the long-poll): keep the furthest cursor.
        if answer.epoch != self.epoch || self.cursor.is_none_or(|c| answer.next > c) {
            self.cursor = Some(answer.next);
        }
        self.epoch = answer.epoch;
        let mut changes = StreamChanges {
            changes: Vec::new(),
            reset: answer.reset,
        };
        let mut wake = Wake {
            all: answer.reset || first,
            ..Wake::default()
        };
        for event in answer.events {
            match event {
                Event::Commit {
                    stream, subjects, ..
                } => wake.streams.push((stream, subjects)),
                Event::Consumer { stream, consumer } => wake.consumers.push((stream, consumer)),
                Event::Stream {
                    name,
                    version,
                    config,
                } => {
                    // A deleted stream ends its consumers' waiting requests.
                    if config.is_none() {
                        wake.streams.push((name.clone(), Vec::new()));
                    }
                    changes.changes.push((name, version, config.map(|c| *c)));
                }
            }
        }
        if !self.up {
            tracing::info!("control plane event feed up");
            self.set_up(true);
        }
        let catalog = self.targets.catalog.clone();
        let targets = self.targets.wake.clone();
        let notify = !wake.streams.is_empty() || !wake.consumers.is_empty() || wake.all;
        Box::pin(
            async move {
                if !changes.changes.is_empty() || changes.reset {
                    let _ = catalog.send(changes).await;
                }
                if notify {
                    for t in &targets {
                        t.do_send(wake.clone());
                    }
                }
                true
            }
            .into_actor(self),
        )
    }

    fn set_up(&mut self, up: bool) {
        self.up = up;
        self.targets.catalog_up.do_send(FeedUp(up));
        for t in &self.targets.up {
            t.do_send(FeedUp(up));
        }
    }
}

impl Actor for EventFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.poll(ctx);
    }
}

impl Handler<CatchUp> for EventFeed {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _: CatchUp, _: &mut Self::Context) -> Self::Result {
        if !self.up {
            return Box::pin(fut::ready(false));
        }
        let client = self.client.clone();
        let query = self.query(Duration::ZERO);
        Box::pin(
            async move { client.events(&query).await }
                .into_actor(self)
                .then(|res, act, _| act.deliver(res)),
        )
    }
}
