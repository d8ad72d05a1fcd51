//! `GET /v1/events?from=C&epoch=E&wait_ms=T`: what changed in the group since cursor `C`, held
//! open up to `T` ms until something does. One such request per agent replaces polling per
//! waiting consumer and re-reading the stream list after every change.
//!
//! Owns: the event and answer shapes and the cursor rules. Does not own: who emits events (the
//! control plane's handlers) or what agents do with them.

use serde::{Deserialize, Serialize};

use crate::jetstream::StreamConfig;

/// Most subjects a commit event names; a commit to more names none (it may wake anyone).
pub const MAX_EVENT_SUBJECTS: usize = 32;

/// The longest a request may be held open.
pub const MAX_WAIT_MS: u64 = 30_000;

fn is_false(v: &bool) -> bool {
    !*v
}

/// One change, as agents need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Messages were committed to `stream`, up to `last_seq`, on `subjects` (when there were at
    /// most [`MAX_EVENT_SUBJECTS`]; empty: on any), so only consumers they match need to look.
    Commit {
        stream: String,
        last_seq: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        subjects: Vec<String>,
    },
    /// A consumer changed in a way that may let waiting requests take messages (acks, naks,
    /// a config update, a pause or resume) or must end them (deleted).
    Consumer { stream: String, consumer: String },
    /// A stream was created or updated (`config`) or deleted (no `config`); `version` is the
    /// stream catalog's version after the change (as `GET /v1/streams` reports it).
    Stream {
        name: String,
        version: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<Box<StreamConfig>>,
    },
}

/// The query of `GET /v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventsQuery {
    /// The cursor: events numbered from here on. Absent: answer at once with the current cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// The `epoch` of the answer the cursor came from.
    #[serde(default)]
    pub epoch: u64,
    /// Hold the request open this long (at most [`MAX_WAIT_MS`]) while there is nothing new.
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventsResponse {
    /// Identifies this control plane's event log; a different one means it restarted.
    pub epoch: u64,
    /// The cursor for the next request.
    pub next: u64,
    /// Events were lost to the agent (the cursor is older than the log, or from another epoch):
    /// re-read the stream catalog and wake every waiting consumer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}
