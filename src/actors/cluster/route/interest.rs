//! Interest bookkeeping for routes between the agents of a group.
//!
//! Owns two pure tables. [`LocalInterest`] counts this agent's subscriptions per (subject,
//! queue) and says when the others must be told: the first subscription of a plain subject
//! (`Add`), the last one gone (`Remove`), and every change of a queue group's size (`Add` with
//! the new weight, as nats-server's `RS+ … queue weight`). [`RemoteInterest`] holds what the other
//! agents said and answers, for one published subject, which agents get a copy: every agent with
//! a plain match once (however many of its subscriptions match), and per queue group one member
//! anywhere, local members counted with the remote weights (none is sent when a local member is
//! drawn). Does not own connections, the wire, or delivery.

use std::collections::HashMap;
use std::sync::Arc;

use infinistream_api::subject::SubjectTree;

/// Which agent, by its index in the route table (stable while the route is up).
pub use crate::message::PeerId;

/// What the other agents must be told after a local subscribe or unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InterestDelta {
    /// Interest in `subject` (for `queue`, with `weight` local members).
    Add {
        subject: String,
        queue: Option<String>,
        weight: u32,
    },
    /// No more interest in `subject` (for `queue`).
    Remove {
        subject: String,
        queue: Option<String>,
    },
}

/// This agent's subscriptions, counted per (subject, queue).
#[derive(Debug, Default)]
pub struct LocalInterest {
    counts: HashMap<(String, Option<String>), u32>,
}

impl LocalInterest {
    /// One more local subscription; the delta to send, if any.
    pub fn subscribe(&mut self, subject: &str, queue: Option<&str>) -> Option<InterestDelta> {
        let key = (subject.to_owned(), queue.map(str::to_owned));
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        match (queue, *count) {
            (None, 1) => Some(InterestDelta::Add {
                subject: subject.to_owned(),
                queue: None,
                weight: 1,
            }),
            (None, _) => None,
            (Some(q), weight) => Some(InterestDelta::Add {
                subject: subject.to_owned(),
                queue: Some(q.to_owned()),
                weight,
            }),
        }
    }

    /// One local subscription fewer; the delta to send, if any. Unknown ones change nothing.
    pub fn unsubscribe(&mut self, subject: &str, queue: Option<&str>) -> Option<InterestDelta> {
        let key = (subject.to_owned(), queue.map(str::to_owned));
        let count = self.counts.get_mut(&key)?;
        *count -= 1;
        let left = *count;
        if left == 0 {
            self.counts.remove(&key);
            return Some(InterestDelta::Remove {
                subject: subject.to_owned(),
                queue: queue.map(str::to_owned),
            });
        }
        queue.map(|q| InterestDelta::Add {
            subject: subject.to_owned(),
            queue: Some(q.to_owned()),
            weight: left,
        })
    }

    /// Everything to tell an agent that just connected, as `Add`s.
    pub fn snapshot(&self) -> Vec<InterestDelta> {
        let mut all: Vec<InterestDelta> = self
            .counts
            .iter()
            .map(|((subject, queue), &count)| InterestDelta::Add {
                subject: subject.clone(),
                queue: queue.clone(),
                weight: if queue.is_some() { count } else { 1 },
            })
            .collect();
        all.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        all
    }
}

#[derive(Debug, Clone, PartialEq)]
struct RemoteSub {
    peer: PeerId,
    queue: Option<String>,
}

/// One copy of a message for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub peer: PeerId,
    /// The queue groups this agent delivers the copy to (one member each); its plain
    /// subscriptions always get it. Like the queue list of nats-server's `RMSG … + q1 q2`: an
    /// agent that gets a copy for its plain subscribers must not also hand it to a queue group
    /// another agent was picked for.
    pub queues: Vec<String>,
}

/// Where one published message goes beyond this agent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fanout {
    /// One copy per agent, in ascending order of peer.
    pub copies: Vec<Copy>,
}

impl Fanout {
    /// The agents that get a copy.
    #[cfg(test)]
    pub fn peers(&self) -> Vec<PeerId> {
        self.copies.iter().map(|c| c.peer).collect()
    }

    /// The queue groups sent to another agent (none of their members here gets the message).
    pub fn queues_away(&self) -> Vec<String> {
        self.copies
            .iter()
            .flat_map(|c| c.queues.iter().cloned())
            .collect()
    }

    fn copy_for(&mut self, peer: PeerId) -> &mut Copy {
        let at = match self.copies.iter().position(|c| c.peer == peer) {
            Some(at) => at,
            None => {
                self.copies.push(Copy {
                    peer,
                    queues: Vec::new(),
                });
                self.copies.len() - 1
            }
        };
        &mut self.copies[at]
    }
}

/// What the other agents are interested in.
#[derive(Debug, Default)]
pub struct RemoteInterest {
    tree: SubjectTree<RemoteSub>,
    /// (peer, subject, queue) -> weight, to update and withdraw entries.
    entries: HashMap<(PeerId, String, Option<String>), u32>,
    /// Published subject -> who matches it, as nats-server's sublist cache: a subject published
    /// again skips the tree walk. Emptied on every change of interest and when full.
    cache: HashMap<String, Arc<Matches>>,
}

/// Who has interest in one subject, before a queue group member is drawn.
#[derive(Debug, Default)]
struct Matches {
    /// Agents with a plain subscription that matches, each once, ascending.
    plain: Vec<PeerId>,
    /// Per queue group, its agents and their weights.
    groups: Vec<(String, Vec<(PeerId, u32)>)>,
}

/// Subjects the match cache holds at most.
const CACHE_SUBJECTS: usize = 4096;

impl RemoteInterest {
    /// Applies what `peer` said.
    pub fn apply(&mut self, peer: PeerId, delta: &InterestDelta) {
        self.cache.clear();
        match delta {
            InterestDelta::Add {
                subject,
                queue,
                weight,
            } => {
                let key = (peer, subject.clone(), queue.clone());
                if self.entries.insert(key, *weight).is_none() {
                    self.tree.insert(
                        subject,
                        RemoteSub {
                            peer,
                            queue: queue.clone(),
                        },
                    );
                }
            }
            InterestDelta::Remove { subject, queue } => {
                let key = (peer, subject.clone(), queue.clone());
                if self.entries.remove(&key).is_some() {
                    self.tree.remove(
                        subject,
                        &RemoteSub {
                            peer,
                            queue: queue.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Forgets everything `peer` said (its route went down).
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.cache.clear();
        let gone: Vec<(PeerId, String, Option<String>)> = self
            .entries
            .keys()
            .filter(|(p, _, _)| *p == peer)
            .cloned()
            .collect();
        for (p, subject, queue) in gone {
            self.entries.remove(&(p, subject.clone(), queue.clone()));
            self.tree.remove(&subject, &RemoteSub { peer: p, queue });
        }
    }

    /// Which agents get `subject`. `local_members(queue)` is how many members a queue group has
    /// here: as nats-server does for a client's message, each member anywhere is equally likely,
    /// so a group is kept here with probability local / (local + remote weights) and otherwise
    /// sent to one agent by weight. `pick(total)` returns a number below `total`.
    pub fn fanout(
        &mut self,
        subject: &str,
        local_members: impl Fn(&str) -> u32,
        mut pick: impl FnMut(u32) -> u32,
    ) -> Fanout {
        let matches = self.matches(subject);
        let mut fanout = Fanout::default();
        for &peer in &matches.plain {
            fanout.copy_for(peer);
        }
        for (queue, members) in &matches.groups {
            let here = local_members(queue);
            let remote: u32 = members.iter().map(|(_, w)| *w).sum();
            let total = here.saturating_add(remote);
            if remote == 0 {
                continue;
            }
            let mut at = pick(total).min(total - 1);
            if at < here {
                continue;
            }
            at -= here;
            for &(peer, weight) in members {
                if at < weight {
                    fanout.copy_for(peer).queues.push(queue.clone());
                    break;
                }
                at -= weight;
            }
        }
        fanout.copies.sort_unstable_by_key(|c| c.peer);
        fanout
    }

    /// Who matches `subject`, from the cache or the tree.
    fn matches(&mut self, subject: &str) -> Arc<Matches> {
        if let Some(m) = self.cache.get(subject) {
            return m.clone();
        }
        let mut matches = Matches::default();
        let mut queued: Vec<(PeerId, String)> = Vec::new();
        self.tree.for_each_match(subject, |s| match &s.queue {
            None => {
                if !matches.plain.contains(&s.peer) {
                    matches.plain.push(s.peer);
                }
            }
            Some(q) => queued.push((s.peer, q.clone())),
        });
        matches.plain.sort_unstable();
        for (peer, q) in queued {
            let weight = self.weight_of(peer, subject, &q);
            match matches.groups.iter_mut().find(|(name, _)| *name == q) {
                Some((_, members)) => {
                    if !members.iter().any(|(p, _)| *p == peer) {
                        members.push((peer, weight));
                    }
                }
                None => matches.groups.push((q, vec![(peer, weight)])),
            }
        }
        let matches = Arc::new(matches);
        if self.cache.len() >= CACHE_SUBJECTS {
            self.cache.clear();
        }
        self.cache.insert(subject.to_string(), matches.clone());
        matches
    }

    /// The weight `peer` announced for `queue` on a pattern matching `subject` (the largest, if
    /// several of its patterns match).
    fn weight_of(&self, peer: PeerId, subject: &str, queue: &str) -> u32 {
        self.entries
            .iter()
            .filter(|((p, pattern, q), _)| {
                *p == peer
                    && q.as_deref() == Some(queue)
                    && infinistream_api::subject::matches(pattern, subject)
            })
            .map(|(_, w)| *w)
            .max()
            .unwrap_or(0)
    }

    /// How many interest entries `peer` announced.
    pub fn count_of(&self, peer: PeerId) -> usize {
        self.entries.keys().filter(|(p, _, _)| *p == peer).count()
    }

    /// Whether any agent has interest in `subject`.
    #[cfg(test)]
    pub fn has_interest(&self, subject: &str) -> bool {
        self.tree.has_match(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(subject: &str, queue: Option<&str>, weight: u32) -> InterestDelta {
        InterestDelta::Add {
            subject: subject.into(),
            queue: queue.map(Into::into),
            weight,
        }
    }

    fn remove(subject: &str, queue: Option<&str>) -> InterestDelta {
        InterestDelta::Remove {
            subject: subject.into(),
            queue: queue.map(Into::into),
        }
    }

    #[test]
    fn plain_interest_is_announced_on_the_first_and_withdrawn_on_the_last() {
        let mut local = LocalInterest::default();
        assert_eq!(local.subscribe("a.>", None), Some(add("a.>", None, 1)));
        assert_eq!(local.subscribe("a.>", None), None);
        assert_eq!(local.unsubscribe("a.>", None), None);
        assert_eq!(local.unsubscribe("a.>", None), Some(remove("a.>", None)));
        assert_eq!(local.unsubscribe("a.>", None), None, "already gone");
    }

    #[test]
    fn queue_weights_follow_every_change() {
        let mut local = LocalInterest::default();
        assert_eq!(
            local.subscribe("svc", Some("w")),
            Some(add("svc", Some("w"), 1))
        );
        assert_eq!(
            local.subscribe("svc", Some("w")),
            Some(add("svc", Some("w"), 2))
        );
        assert_eq!(
            local.unsubscribe("svc", Some("w")),
            Some(add("svc", Some("w"), 1))
        );
        assert_eq!(
            local.unsubscribe("svc", Some("w")),
            Some(remove("svc", Some("w")))
        );
    }

    #[test]
    fn a_snapshot_replays_everything() {
        let mut local = LocalInterest::default();
        local.subscribe("b", None);
        local.subscribe("b", None);
        local.subscribe("q", Some("g"));
        local.subscribe("q", Some("g"));
        let mut remote = RemoteInterest::default();
        for delta in local.snapshot() {
            remote.apply(7, &delta);
        }
        assert!(remote.has_interest("b"));
        assert_eq!(remote.weight_of(7, "q", "g"), 2);
    }

    #[test]
    fn one_copy_per_agent_however_many_of_its_patterns_match() {
        let mut remote = RemoteInterest::default();
        remote.apply(1, &add("orders.*", None, 1));
        remote.apply(1, &add("orders.>", None, 1));
        remote.apply(2, &add("orders.eu", None, 1));
        remote.apply(3, &add("payments.>", None, 1));
        let out = remote.fanout("orders.eu", |_| 0, |_| 0);
        assert_eq!(out.peers(), vec![1, 2]);
        assert!(remote.fanout("nothing", |_| 0, |_| 0).peers().is_empty());
    }

    #[test]
    fn a_queue_group_goes_to_one_member_anywhere_by_weight() {
        let mut remote = RemoteInterest::default();
        remote.apply(1, &add("svc", Some("workers"), 1));
        remote.apply(2, &add("svc", Some("workers"), 3));
        // Weights 1 and 3: picks 0 go to agent 1, picks 1..=3 to agent 2.
        assert_eq!(remote.fanout("svc", |_| 0, |_| 0).peers(), vec![1]);
        for at in 1..4 {
            assert_eq!(remote.fanout("svc", |_| 0, |_| at).peers(), vec![2]);
        }
        // Two members here and weights 1 + 3 there: picks 0..2 stay here, 2 goes to agent 1.
        let two_here = |q: &str| if q == "workers" { 2 } else { 0 };
        for at in 0..2 {
            assert!(remote.fanout("svc", two_here, |_| at).peers().is_empty());
        }
        let away = remote.fanout("svc", two_here, |_| 2);
        assert_eq!(away.peers(), vec![1]);
        assert_eq!(away.queues_away(), vec!["workers".to_string()]);
        // Over a fair picker each member anywhere gets the same share.
        let mut kept = 0;
        for at in 0..6000u32 {
            if remote
                .fanout("svc", two_here, |total| at % total)
                .peers()
                .is_empty()
            {
                kept += 1;
            }
        }
        assert_eq!(kept, 2000);
        // Every draw of a fair picker lands on exactly one agent.
        let mut counts = [0u32; 3];
        for at in 0..4000u32 {
            let out = remote.fanout("svc", |_| 0, |total| at % total);
            assert_eq!(out.peers().len(), 1);
            counts[out.peers()[0] as usize] += 1;
        }
        assert_eq!(counts, [0, 1000, 3000]);
    }

    #[test]
    fn a_copy_names_the_queue_groups_its_agent_serves() {
        let mut remote = RemoteInterest::default();
        remote.apply(1, &add("svc", None, 1));
        remote.apply(1, &add("svc", Some("a"), 1));
        remote.apply(2, &add("svc", Some("a"), 1));
        remote.apply(2, &add("svc", Some("b"), 1));
        // Group a picked on agent 2 (pick 1 of weights 1+1), group b only on agent 2.
        let out = remote.fanout("svc", |_| 0, |_| 1);
        assert_eq!(
            out.copies,
            vec![
                Copy {
                    peer: 1,
                    queues: vec![]
                },
                Copy {
                    peer: 2,
                    queues: vec!["a".into(), "b".into()]
                },
            ]
        );
    }

    #[test]
    fn withdrawn_interest_and_lost_agents_receive_nothing() {
        let mut remote = RemoteInterest::default();
        remote.apply(1, &add("a", None, 1));
        remote.apply(2, &add("a", None, 1));
        remote.apply(2, &add("a", Some("q"), 2));
        remote.apply(1, &remove("a", None));
        assert_eq!(remote.fanout("a", |_| 0, |_| 0).peers(), vec![2]);
        remote.remove_peer(2);
        assert!(!remote.has_interest("a"));
        assert!(remote.fanout("a", |_| 0, |_| 0).peers().is_empty());
        // Re-adding after a removal works (no stale entries left behind).
        remote.apply(2, &add("a", Some("q"), 1));
        assert_eq!(remote.fanout("a", |_| 0, |_| 0).peers(), vec![2]);
    }
}
