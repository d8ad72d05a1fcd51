//! Owns: the group's event log: the last changes (commits, consumer changes, stream catalog
//! changes) numbered by a cursor, kept in a bounded ring, and the watch channel that wakes the
//! long-polls of `GET /v1/events`. Lives on the store thread beside the store, so events are
//! numbered in the order the store applied the changes. Does not own: serving the long-poll
//! (`server`) or what agents do with events.

use std::collections::VecDeque;

use infinistream_api::control_plane::events::{Event, EventsResponse, MAX_EVENT_SUBJECTS};
use tokio::sync::watch;

/// Events kept for agents that fall behind; one further back gets `reset`.
pub const CAPACITY: usize = 65_536;
/// Most events in one answer.
pub const MAX_BATCH: usize = 4_096;

pub struct EventLog {
    epoch: u64,
    /// Cursor of the next event.
    next: u64,
    ring: VecDeque<Event>,
    capacity: usize,
    tx: watch::Sender<u64>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("epoch", &self.epoch)
            .field("next", &self.next)
            .finish()
    }
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        // Not 0, so an agent's first cursor (epoch 0) is always from another epoch.
        let epoch = rand::random::<u64>() | 1;
        Self {
            epoch,
            next: 1,
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            tx: watch::Sender::new(1),
        }
    }

    /// A receiver that sees the cursor of the next event change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    pub fn push(&mut self, event: Event) {
        self.ring.push_back(event);
        self.next += 1;
        if self.ring.len() > self.capacity {
            self.ring.pop_front();
        }
        self.tx.send_replace(self.next);
    }

    fn first(&self) -> u64 {
        self.next - self.ring.len() as u64
    }

    /// What a cursor has not seen. Repeats within one answer (a stream's commits, one
    /// consumer's acks) are sent once, as the newest: agents only need to know that something
    /// changed, and a commit's `last_seq` only grows.
    pub fn since(&self, from: Option<u64>, epoch: u64) -> EventsResponse {
        let Some(from) = from else {
            return self.answer(self.next, false, Vec::new());
        };
        if epoch != self.epoch || from > self.next || from < self.first() {
            return self.answer(self.next, true, Vec::new());
        }
        let skip = (from - self.first()) as usize;
        let window: Vec<&Event> = self.ring.iter().skip(skip).take(MAX_BATCH).collect();
        let next = from + window.len() as u64;
        self.answer(next, false, merge(&window))
    }

    /// Whether `since(from)` would return something now.
    pub fn has_news(&self, from: Option<u64>, epoch: u64) -> bool {
        match from {
            None => true,
            Some(from) => epoch != self.epoch || from != self.next,
        }
    }

    fn answer(&self, next: u64, reset: bool, events: Vec<Event>) -> EventsResponse {
        EventsResponse {
            epoch: self.epoch,
            next,
            reset,
            events,
        }
    }
}

/// Repeats of one change in one answer sent once, where the last of them was: a stream's commits
/// as one (newest `last_seq`, their subjects together, none when too many), one consumer's
/// changes as one. Stream changes all stay, in order.
fn merge(window: &[&Event]) -> Vec<Event> {
    use std::collections::HashMap;
    let mut commits: HashMap<&str, (u64, Option<Vec<String>>)> = HashMap::new();
    for e in window {
        if let Event::Commit {
            stream,
            last_seq,
            subjects,
        } = e
        {
            let entry = commits
                .entry(stream.as_str())
                .or_insert_with(|| (0, Some(Vec::new())));
            entry.0 = entry.0.max(*last_seq);
            entry.1 = match (entry.1.take(), subjects.is_empty()) {
                (Some(mut all), false) => {
                    for s in subjects {
                        if !all.contains(s) {
                            all.push(s.clone());
                        }
                    }
                    (all.len() <= MAX_EVENT_SUBJECTS).then_some(all)
                }
                _ => None,
            };
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Event> = Vec::new();
    for e in window.iter().rev() {
        match e {
            Event::Commit { stream, .. } => {
                if seen.insert((0u8, stream.as_str(), "")) {
                    let (last_seq, subjects) = commits.remove(stream.as_str()).unwrap_or_default();
                    out.push(Event::Commit {
                        stream: stream.clone(),
                        last_seq,
                        subjects: subjects.unwrap_or_default(),
                    });
                }
            }
            Event::Consumer { stream, consumer } => {
                if seen.insert((1, stream.as_str(), consumer.as_str())) {
                    out.push((*e).clone());
                }
            }
            Event::Stream { .. } => out.push((*e).clone()),
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(stream: &str, last_seq: u64) -> Event {
        Event::Commit {
            stream: stream.into(),
            last_seq,
            subjects: vec![format!("{stream}.{last_seq}")],
        }
    }

    #[test]
    fn cursors_see_each_event_once_and_old_ones_reset() {
        let mut log = EventLog::new(4);
        let start = log.since(None, 0);
        assert!(!start.reset && start.events.is_empty());
        assert!(!log.has_news(Some(start.next), start.epoch));
        log.push(commit("a", 1));
        log.push(commit("b", 1));
        assert!(log.has_news(Some(start.next), start.epoch));
        let r = log.since(Some(start.next), start.epoch);
        assert_eq!(r.events, vec![commit("a", 1), commit("b", 1)]);
        assert!(log.since(Some(r.next), r.epoch).events.is_empty());
        // A stream's commits in one answer are sent once, as the newest.
        log.push(commit("c", 1));
        log.push(commit("x", 1));
        log.push(commit("c", 5));
        let r2 = log.since(Some(r.next), r.epoch);
        let merged = Event::Commit {
            stream: "c".into(),
            last_seq: 5,
            subjects: vec!["c.1".into(), "c.5".into()],
        };
        assert_eq!(r2.events, vec![commit("x", 1), merged]);
        // Older than the ring, or another epoch: reset.
        log.push(commit("d", 1));
        log.push(commit("e", 1));
        assert!(log.since(Some(start.next), start.epoch).reset);
        assert!(log.since(Some(r2.next), r2.epoch ^ 2).reset);
        assert!(!log.since(Some(r2.next), r2.epoch).reset);
    }
}
