//! JetStream consumers in the control plane: their configs and all their delivery state, so that
//! any agent can serve any consumer.
//!
//! Owns: the `$JS.API.CONSUMER.*` answers (create, durable create, info, delete, names, list), the
//! delivery state of every consumer (next stream sequence, consumer sequence, pending deliveries
//! with their deadlines and counts, ack floor), the claim (pick the next messages, record them as
//! pending) and ack (ack/nak/progress/term, batched) operations, ephemeral expiry, and the push
//! consumer lease. Does not own: message bytes (agents read them from the bucket), waiting pull
//! requests or delivery to clients (the agent's consumer actor).
//!
//! The state lives in memory on the store thread (next to `MetadataStore`) and is written through
//! to the store in the same call that changes it (one transaction per create, claim or ack
//! batch), before the change is visible in memory or answered; `Registry::load` rebuilds it when
//! the store opens. Waiting pull request counts, push leases and activity times are transient.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;

use super::store::{
    ConsumerPosition, ConsumerWrite, MetadataStore, PendingDelivery, PendingRun, StateDetail,
    StoreError,
};
use infinistream_api::control_plane::consumers::{
    AckBatch, AckBatchResponse, AckKind, ClaimRequest, ClaimResponse, Claimed, ClaimedRun,
    LeaseRequest, LeaseResponse, PushAssignment, WaitingReport,
};
use infinistream_api::control_plane::model::MessageLocation;
use infinistream_api::jetstream::consumer::*;
use infinistream_api::jetstream::{ApiError, LIST_LIMIT, NAMES_LIMIT, gojson};

/// What a request closure gets on the store thread (`worker`): the store, the `$JS.API`
/// counters reported by account info, and the consumer registry. Defined here, beside the
/// registry it holds, so the worker and the consumers both depend on it and not on each other.
pub struct Backend {
    pub store: Box<dyn MetadataStore>,
    pub api_total: u64,
    pub api_errors: u64,
    /// JetStream consumers and their delivery state (below).
    pub consumers: Registry,
    /// What changed, for agents' `GET /v1/events` (commits, consumer changes, streams).
    pub events: crate::events::EventLog,
}

/// An agent re-reports its waiting pull requests at least this often (unix nanos): older
/// reports no longer keep an ephemeral consumer alive (the agent may be gone).
pub const WAITING_FRESH: i64 = 30_000_000_000;

/// One delivery waiting for its ack.
#[derive(Debug, Clone, Copy)]
struct Pending {
    cseq: u64,
    deliveries: u64,
    /// Unix nanos after which it is redelivered.
    deadline: i64,
}

#[derive(Debug, Clone)]
struct Consumer {
    stream: String,
    name: String,
    config: ConsumerConfig,
    created: i64,
    /// Next stream sequence to look at for new messages.
    next_sseq: u64,
    /// `last_per_subject`: sequences to deliver before `next_sseq`.
    lps: VecDeque<u64>,
    /// Last consumer (delivery) sequence handed out.
    dseq: u64,
    /// Highest stream sequence delivered.
    sseq: u64,
    last_delivery: Option<i64>,
    pending: BTreeMap<u64, Pending>,
    /// First consumer sequence of each stored pending run (one per claim that delivered
    /// something): a delivery belongs to the run with the greatest start at or below its
    /// consumer sequence.
    runs: BTreeSet<u64>,
    ack_floor: (u64, u64),
    last_ack: Option<i64>,
    /// Any claim, poll or ack; ephemerals expire `inactive_threshold` after it.
    last_seen: i64,
    /// Waiting pull requests last reported by agents, and when (unix nanos).
    waiting: u64,
    waiting_at: i64,
    /// Push consumers: (agent id, lease end in unix nanos).
    lease: Option<(String, i64)>,
}

impl Consumer {
    fn position(&self) -> ConsumerPosition {
        ConsumerPosition {
            next_sseq: self.next_sseq,
            lps: self.lps.iter().copied().collect(),
            dseq: self.dseq,
            sseq: self.sseq,
            last_delivery: self.last_delivery,
            ack_floor: self.ack_floor,
            last_ack: self.last_ack,
        }
    }

    fn create_write(&self) -> ConsumerWrite {
        ConsumerWrite::Create {
            stream: self.stream.clone(),
            name: self.name.clone(),
            config: self.config.clone(),
            created: self.created,
            position: self.position(),
        }
    }

    fn update_floor(&mut self) {
        if self.config.ack_policy == AckPolicy::None {
            self.ack_floor = (self.dseq, self.sseq);
            return;
        }
        self.ack_floor = match self.pending.iter().next() {
            None => (self.dseq, self.sseq),
            Some((sseq, p)) => {
                let cfloor = self
                    .pending
                    .values()
                    .map(|p| p.cseq)
                    .min()
                    .unwrap_or(p.cseq);
                (cfloor.saturating_sub(1), sseq.saturating_sub(1))
            }
        };
    }

    fn info(&self, num_pending: u64, now: i64, dynamic: bool) -> ConsumerInfo {
        let config = if dynamic {
            self.config.with_dynamic_metadata()
        } else {
            self.config.clone()
        };
        ConsumerInfo {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: self.created,
            config,
            delivered: SequenceInfo {
                consumer_seq: self.dseq,
                stream_seq: self.sseq,
                last_active: self.last_delivery,
            },
            ack_floor: SequenceInfo {
                consumer_seq: self.ack_floor.0,
                stream_seq: self.ack_floor.1,
                last_active: self.last_ack,
            },
            num_ack_pending: self.pending.len() as u64,
            num_redelivered: self.pending.values().filter(|p| p.deliveries > 1).count() as u64,
            num_waiting: self.waiting,
            num_pending,
            // The lease is held only by an agent with interest in the deliver subject, and
            // released (or left to expire) when that interest goes.
            push_bound: self.config.is_push()
                && self.lease.as_ref().is_some_and(|(_, end)| *end >= now),
            ts: now,
        }
    }
}

/// Every consumer of every stream, keyed by (stream, name).
#[derive(Debug, Default)]
pub struct Registry {
    consumers: BTreeMap<(String, String), Consumer>,
    /// Consumers swept from memory whose stored rows are still to be deleted (with the next
    /// write, or the next consumer API call).
    swept: Vec<(String, String)>,
}

impl Registry {
    /// Rebuilds every consumer from the store. Ephemerals get a fresh inactivity window: their
    /// last activity is not stored.
    pub fn load(store: &mut dyn MetadataStore, now: i64) -> Result<Self, StoreError> {
        let mut consumers = BTreeMap::new();
        for s in store.consumers()? {
            let p = s.position;
            let c = Consumer {
                stream: s.stream.clone(),
                name: s.name.clone(),
                config: s.config,
                created: s.created,
                next_sseq: p.next_sseq,
                lps: p.lps.into_iter().collect(),
                dseq: p.dseq,
                sseq: p.sseq,
                last_delivery: p.last_delivery,
                runs: s.pending.iter().map(|r| r.first_cseq).collect(),
                pending: s
                    .pending
                    .into_iter()
                    .flat_map(|r| r.entries)
                    .map(|d| {
                        (
                            d.sseq,
                            Pending {
                                cseq: d.cseq,
                                deliveries: d.deliveries,
                                deadline: d.deadline,
                            },
                        )
                    })
                    .collect(),
                ack_floor: p.ack_floor,
                last_ack: p.last_ack,
                last_seen: now,
                waiting: 0,
                waiting_at: 0,
                lease: None,
            };
            consumers.insert((s.stream, s.name), c);
        }
        if !consumers.is_empty() {
            tracing::info!(
                consumers = consumers.len(),
                "consumers loaded from the store"
            );
        }
        Ok(Self {
            consumers,
            swept: Vec::new(),
        })
    }

    pub fn count(&self, stream: &str) -> usize {
        self.consumers.keys().filter(|(s, _)| s == stream).count()
    }

    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (s, _) in self.consumers.keys() {
            *m.entry(s.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn total(&self) -> usize {
        self.consumers.len()
    }

    /// Drops the consumers of a deleted stream.
    pub fn remove_stream(&mut self, stream: &str) {
        self.consumers.retain(|(s, _), _| s != stream);
    }

    /// Removes ephemerals idle for longer than their inactive threshold.
    pub fn sweep(&mut self, now: i64) {
        let swept = &mut self.swept;
        self.consumers.retain(|(s, n), c| {
            // Waiting pull requests (reported at least every `WAITING_FRESH` by their agent)
            // are interest, as in nats-server: claims no longer run while nothing arrives.
            let waiting = c.waiting > 0 && now - c.waiting_at <= WAITING_FRESH;
            let keep = c.config.inactive_threshold <= 0
                || waiting
                || now - c.last_seen <= c.config.inactive_threshold;
            if !keep {
                tracing::debug!(stream = %s, consumer = %n, "inactive consumer removed");
                swept.push((s.clone(), n.clone()));
            }
            keep
        });
    }
}

/// Writes `writes` (after the deletes of swept consumers) in one transaction. On failure the
/// swept deletes are kept for the next attempt; the caller leaves memory unchanged.
fn persist(backend: &mut Backend, writes: Vec<ConsumerWrite>) -> Result<(), StoreError> {
    let swept = std::mem::take(&mut backend.consumers.swept);
    if swept.is_empty() && writes.is_empty() {
        return Ok(());
    }
    let mut all: Vec<ConsumerWrite> = swept
        .iter()
        .map(|(stream, name)| ConsumerWrite::Delete {
            stream: stream.clone(),
            name: name.clone(),
        })
        .collect();
    all.extend(writes);
    let r = backend.store.write_consumers(&all);
    if r.is_err() {
        backend.consumers.swept.extend(swept);
    }
    r
}

/// The pending deliveries of `c` grouped by run, each run's in consumer-sequence order.
fn runs_of(c: &Consumer) -> BTreeMap<u64, Vec<PendingDelivery>> {
    let mut runs: BTreeMap<u64, Vec<PendingDelivery>> = BTreeMap::new();
    for (sseq, p) in &c.pending {
        // Every delivery's consumer sequence lies in a run: each claim that hands something
        // out starts one at its first consumer sequence.
        let start = c.runs.range(..=p.cseq).next_back().copied().unwrap_or(0);
        runs.entry(start).or_default().push(PendingDelivery {
            sseq: *sseq,
            cseq: p.cseq,
            deliveries: p.deliveries,
            deadline: p.deadline,
        });
    }
    for entries in runs.values_mut() {
        entries.sort_unstable_by_key(|e| e.cseq);
    }
    runs
}

/// What changed between the stored (`before`) and the new state of one consumer: its position
/// and each pending run that gained, lost or changed a delivery (written whole; an emptied run
/// is removed, in the store and from `after`).
fn changes(before: &Consumer, after: &mut Consumer, out: &mut Vec<ConsumerWrite>) {
    let position = after.position();
    if position != before.position() {
        out.push(ConsumerWrite::Position {
            stream: after.stream.clone(),
            name: after.name.clone(),
            position,
        });
    }
    let old = runs_of(before);
    let mut new = runs_of(after);
    after.runs.retain(|start| new.contains_key(start));
    for start in old.keys() {
        new.entry(*start).or_default();
    }
    for (first_cseq, entries) in new {
        if old
            .get(&first_cseq)
            .map_or(entries.is_empty(), |o| *o == entries)
        {
            continue;
        }
        out.push(ConsumerWrite::PutRun {
            stream: after.stream.clone(),
            name: after.name.clone(),
            run: PendingRun {
                first_cseq,
                entries,
            },
        });
    }
}

/// Applies a [`WaitingReport`] (memory only: waiting requests do not outlive their agent).
pub fn report_waiting(backend: &mut Backend, report: &WaitingReport, now: i64) {
    for c in &report.counts {
        if let Some(consumer) = backend
            .consumers
            .consumers
            .get_mut(&(c.stream.clone(), c.consumer.clone()))
        {
            consumer.waiting = c.waiting;
            consumer.waiting_at = now;
        }
    }
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Api(e) => e,
        other => {
            tracing::error!(error = %other, "control plane store failure in consumer");
            ApiError::stream_general(other)
        }
    }
}

fn num_pending(backend: &mut Backend, c: &Consumer) -> Result<u64, ApiError> {
    let n = backend
        .store
        .count_from(&c.stream, c.next_sseq, &c.config.filters())
        .map_err(store_err)?;
    Ok(n + c.lps.len() as u64)
}

/// Where a new consumer starts: (next stream sequence, last-per-subject sequences).
fn start_position(
    backend: &mut Backend,
    stream: &str,
    cfg: &ConsumerConfig,
) -> Result<(u64, VecDeque<u64>), ApiError> {
    let view = backend
        .store
        .stream(stream, &StateDetail::default())
        .map_err(store_err)?;
    let state = view.state;
    let first = state.first_seq.max(1);
    let after_last = state.last_seq + 1;
    let filters = cfg.filters();
    Ok(match cfg.deliver_policy {
        DeliverPolicy::All => (first, VecDeque::new()),
        DeliverPolicy::New => (after_last, VecDeque::new()),
        DeliverPolicy::Last => {
            let last = if filters.is_empty() {
                state.last_seq
            } else {
                backend
                    .store
                    .last_per_subject(stream, &filters)
                    .map_err(store_err)?
                    .last()
                    .copied()
                    .unwrap_or(0)
            };
            (if last == 0 { after_last } else { last }, VecDeque::new())
        }
        DeliverPolicy::ByStartSequence => (cfg.opt_start_seq.max(1), VecDeque::new()),
        DeliverPolicy::ByStartTime => {
            let ts = cfg.start_time_nanos().unwrap_or(0);
            let seq = backend.store.seq_at_time(stream, ts).map_err(store_err)?;
            (seq.unwrap_or(after_last), VecDeque::new())
        }
        DeliverPolicy::LastPerSubject => {
            let seqs = backend
                .store
                .last_per_subject(stream, &filters)
                .map_err(store_err)?;
            (after_last, seqs.into_iter().collect())
        }
    })
}

fn random_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn encode<T: Serialize>(value: &T, is_error: bool) -> (Vec<u8>, bool) {
    match serde_json::to_vec(value) {
        Ok(v) => (v, is_error),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a consumer api response");
            (Vec::new(), true)
        }
    }
}

fn info_response(kind: &'static str, r: Result<ConsumerInfo, ApiError>) -> (Vec<u8>, bool) {
    match r {
        Ok(info) => encode(
            &ConsumerInfoResponse {
                kind,
                error: None,
                info: Some(info),
            },
            false,
        ),
        Err(error) => encode(
            &ConsumerInfoResponse {
                kind,
                error: Some(error),
                info: None,
            },
            true,
        ),
    }
}

/// Answers `$JS.API.CONSUMER.*` (tokens after `CONSUMER`); None when the api is not a consumer
/// api this module knows.
pub fn handle(
    backend: &mut Backend,
    tokens: &[&str],
    body: &[u8],
    now: i64,
) -> Option<(Vec<u8>, bool)> {
    backend.consumers.sweep(now);
    if let Err(e) = persist(backend, Vec::new()) {
        tracing::error!(error = %e, "cannot delete swept consumers from the store");
    }
    Some(match tokens {
        ["CREATE", stream] => info_response(
            CONSUMER_CREATE_RESPONSE,
            create(backend, stream, Subject::Ephemeral, body, now),
        ),
        ["CREATE", stream, name] => info_response(
            CONSUMER_CREATE_RESPONSE,
            create(backend, stream, Subject::Named(name, None), body, now),
        ),
        ["CREATE", stream, name, filter @ ..] if !filter.is_empty() => {
            let filter = filter.join(".");
            info_response(
                CONSUMER_CREATE_RESPONSE,
                create(
                    backend,
                    stream,
                    Subject::Named(name, Some(&filter)),
                    body,
                    now,
                ),
            )
        }
        ["DURABLE", "CREATE", stream, name] => info_response(
            CONSUMER_CREATE_RESPONSE,
            create(backend, stream, Subject::Durable(name), body, now),
        ),
        // nats-server refuses a body on INFO and DELETE before looking anything up.
        ["INFO", _, _] if !gojson::is_empty_request(body) => {
            info_response(CONSUMER_INFO_RESPONSE, Err(ApiError::not_empty_request()))
        }
        ["INFO", stream, name] => {
            info_response(CONSUMER_INFO_RESPONSE, info(backend, stream, name, now))
        }
        ["DELETE", _, _] if !gojson::is_empty_request(body) => encode(
            &ConsumerDeleteResponse {
                kind: CONSUMER_DELETE_RESPONSE,
                success: false,
                error: Some(ApiError::not_empty_request()),
            },
            true,
        ),
        ["DELETE", stream, name] => delete(backend, stream, name),
        ["NAMES", stream] => names(backend, stream, body),
        ["LIST", stream] => list(backend, stream, body, now),
        _ => return None,
    })
}

enum Subject<'a> {
    Ephemeral,
    Named(&'a str, Option<&'a str>),
    Durable(&'a str),
}

fn create(
    backend: &mut Backend,
    stream: &str,
    subject: Subject<'_>,
    body: &[u8],
    now: i64,
) -> Result<ConsumerInfo, ApiError> {
    let req: CreateConsumerRequest = gojson::decode(body, &gojson::CREATE_CONSUMER_REQUEST)?;
    if req.stream_name != stream {
        return Err(ApiError::stream_mismatch());
    }
    // Go's request holds the config by value: a request without one asks for the defaults.
    let mut cfg = req.config.unwrap_or_default();
    match subject {
        Subject::Ephemeral => {
            if !cfg.durable.is_empty() {
                return Err(ApiError::new(
                    400,
                    10020,
                    "consumer expected to be ephemeral but a durable name was set in request",
                ));
            }
        }
        Subject::Named(name, filter) => {
            if !cfg.durable.is_empty() && cfg.durable != name {
                return Err(ApiError::consumer_durable_not_match_subject());
            }
            if !cfg.name.is_empty() && cfg.name != name {
                return Err(ApiError::consumer_durable_not_match_subject());
            }
            if let Some(filter) = filter {
                if cfg.filter_subjects.len() > 1 {
                    return Err(ApiError::consumer_multiple_filters_not_allowed());
                }
                let configured = if cfg.filter_subject.is_empty() {
                    cfg.filter_subjects.first().cloned().unwrap_or_default()
                } else {
                    cfg.filter_subject.clone()
                };
                if configured != filter {
                    return Err(ApiError::consumer_filter_mismatch());
                }
            }
            if cfg.name.is_empty() {
                cfg.name = name.to_string();
            }
        }
        Subject::Durable(name) => {
            if cfg.durable.is_empty() {
                return Err(ApiError::new(
                    400,
                    10018,
                    "consumer expected to be durable but a durable name was not set",
                ));
            }
            if cfg.durable != name {
                return Err(ApiError::consumer_durable_not_match_subject());
            }
        }
    }
    backend.store.stream_config(stream).map_err(store_err)?;
    let mut cfg = cfg.checked()?;
    if !cfg.durable.is_empty() {
        cfg.name = cfg.durable.clone();
    }
    let name = if cfg.name.is_empty() {
        random_name()
    } else {
        cfg.name.clone()
    };
    let key = (stream.to_string(), name.clone());
    if let Some(existing) = backend.consumers.consumers.get_mut(&key) {
        let mut candidate = cfg.clone();
        if existing.config.durable.is_empty() {
            candidate.name = existing.config.name.clone();
        }
        if candidate != existing.config {
            if req.action == "create" {
                return Err(ApiError::consumer_already_exists());
            }
            if existing.config.deliver_policy != cfg.deliver_policy {
                return Err(ApiError::consumer_create(
                    "deliver policy can not be updated",
                ));
            }
            if existing.config.ack_policy != cfg.ack_policy {
                return Err(ApiError::consumer_create("ack policy can not be updated"));
            }
            if existing.config.is_push() != cfg.is_push() {
                return Err(ApiError::consumer_create(
                    "can not update pull consumer to push based",
                ));
            }
            let write = ConsumerWrite::UpdateConfig {
                stream: stream.to_string(),
                name: name.clone(),
                config: candidate.clone(),
            };
            persist(backend, vec![write]).map_err(store_err)?;
            if let Some(existing) = backend.consumers.consumers.get_mut(&key) {
                existing.config = candidate;
            }
        }
        let Some(existing) = backend.consumers.consumers.get_mut(&key) else {
            return Err(ApiError::consumer_not_found());
        };
        existing.last_seen = now;
        let c = existing.clone();
        let n = num_pending(backend, &c)?;
        return Ok(c.info(n, now, true));
    }
    if req.action == "update" {
        return Err(ApiError::consumer_does_not_exist());
    }
    let (next_sseq, lps) = start_position(backend, stream, &cfg)?;
    let stored_name = if cfg.durable.is_empty() {
        // nats-server reports an ephemeral's generated name only outside its config.
        if matches!(subject, Subject::Ephemeral) && cfg.name.is_empty() {
            String::new()
        } else {
            cfg.name.clone()
        }
    } else {
        cfg.name.clone()
    };
    cfg.name = stored_name;
    let c = Consumer {
        stream: stream.to_string(),
        name: name.clone(),
        config: cfg,
        created: now,
        next_sseq,
        lps,
        dseq: 0,
        sseq: next_sseq.saturating_sub(1),
        last_delivery: None,
        pending: BTreeMap::new(),
        runs: BTreeSet::new(),
        ack_floor: (0, 0),
        last_ack: None,
        last_seen: now,
        waiting: 0,
        waiting_at: 0,
        lease: None,
    };
    let mut c = c;
    if c.config.deliver_policy == DeliverPolicy::LastPerSubject {
        c.sseq = c.lps.front().map_or(next_sseq, |s| *s).saturating_sub(1);
    }
    c.ack_floor = (0, c.sseq);
    if c.config.deliver_policy == DeliverPolicy::All {
        c.ack_floor = (0, 0);
        c.sseq = 0;
    }
    let n = num_pending(backend, &c)?;
    let info = c.info(n, now, true);
    persist(backend, vec![c.create_write()]).map_err(store_err)?;
    backend.consumers.consumers.insert(key, c);
    Ok(info)
}

fn info(
    backend: &mut Backend,
    stream: &str,
    name: &str,
    now: i64,
) -> Result<ConsumerInfo, ApiError> {
    backend.store.stream_config(stream).map_err(store_err)?;
    let c = backend
        .consumers
        .consumers
        .get(&(stream.to_string(), name.to_string()))
        .cloned()
        .ok_or_else(ApiError::consumer_not_found)?;
    let n = num_pending(backend, &c)?;
    Ok(c.info(n, now, true))
}

fn delete(backend: &mut Backend, stream: &str, name: &str) -> (Vec<u8>, bool) {
    let error = match backend.store.stream_config(stream) {
        Err(e) => Some(store_err(e)),
        Ok(_) => {
            let key = (stream.to_string(), name.to_string());
            if !backend.consumers.consumers.contains_key(&key) {
                Some(ApiError::consumer_not_found())
            } else {
                let write = ConsumerWrite::Delete {
                    stream: key.0.clone(),
                    name: key.1.clone(),
                };
                match persist(backend, vec![write]) {
                    Ok(()) => {
                        backend.consumers.consumers.remove(&key);
                        None
                    }
                    Err(e) => Some(store_err(e)),
                }
            }
        }
    };
    let is_error = error.is_some();
    encode(
        &ConsumerDeleteResponse {
            kind: CONSUMER_DELETE_RESPONSE,
            success: !is_error,
            error,
        },
        is_error,
    )
}

fn list_offset(body: &[u8]) -> Result<usize, ApiError> {
    if !gojson::is_json_object_or_array(body) {
        return Ok(0);
    }
    let r: ConsumerListRequest = gojson::decode(body, &gojson::CONSUMERS_REQUEST)?;
    Ok(usize::try_from(r.offset.max(0)).unwrap_or(0))
}

fn names(backend: &mut Backend, stream: &str, body: &[u8]) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(
            &ConsumerNamesResponse {
                kind: CONSUMER_NAMES_RESPONSE,
                error: Some(error),
                total: 0,
                offset: 0,
                limit: 0,
                consumers: None,
            },
            true,
        )
    };
    let offset = match list_offset(body) {
        Ok(o) => o,
        Err(e) => return err(e),
    };
    if let Err(e) = backend.store.stream_config(stream) {
        return err(store_err(e));
    }
    let all: Vec<String> = backend
        .consumers
        .consumers
        .keys()
        .filter(|(s, _)| s == stream)
        .map(|(_, n)| n.clone())
        .collect();
    let total = all.len();
    let offset = offset.min(total);
    let names: Vec<String> = all.into_iter().skip(offset).take(NAMES_LIMIT).collect();
    encode(
        &ConsumerNamesResponse {
            kind: CONSUMER_NAMES_RESPONSE,
            error: None,
            total,
            offset,
            limit: NAMES_LIMIT,
            consumers: Some(names),
        },
        false,
    )
}

fn list(backend: &mut Backend, stream: &str, body: &[u8], now: i64) -> (Vec<u8>, bool) {
    let err = |error| {
        encode(
            &ConsumerListResponse {
                kind: CONSUMER_LIST_RESPONSE,
                error: Some(error),
                total: 0,
                offset: 0,
                limit: 0,
                consumers: Vec::new(),
            },
            true,
        )
    };
    let offset = match list_offset(body) {
        Ok(o) => o,
        Err(e) => return err(e),
    };
    if let Err(e) = backend.store.stream_config(stream) {
        return err(store_err(e));
    }
    let all: Vec<Consumer> = backend
        .consumers
        .consumers
        .iter()
        .filter(|((s, _), _)| s == stream)
        .map(|(_, c)| c.clone())
        .collect();
    let total = all.len();
    let offset = offset.min(total);
    let mut infos = Vec::new();
    for c in all.into_iter().skip(offset).take(LIST_LIMIT) {
        match num_pending(backend, &c) {
            Ok(n) => infos.push(c.info(n, now, false)),
            Err(e) => return err(e),
        }
    }
    encode(
        &ConsumerListResponse {
            kind: CONSUMER_LIST_RESPONSE,
            error: None,
            total,
            offset,
            limit: LIST_LIMIT,
            consumers: infos,
        },
        false,
    )
}

/// The size nats-server counts against a pull request's `max_bytes`: subject, ack reply,
/// headers and payload. `pending` is the ack reply's last token.
fn wire_size(c: &Consumer, loc: &MessageLocation, deliveries: u64, cseq: u64, pending: u64) -> u64 {
    let reply = ack_subject(
        &c.stream,
        &c.name,
        deliveries,
        loc.seq,
        cseq,
        loc.timestamp_nanos,
        pending,
    )
    .len();
    u64::from(loc.size) + loc.subject.len() as u64 + reply as u64
}

/// Picks the next messages for a consumer: expired pending deliveries first (redeliveries,
/// respecting max_deliver), then new messages (respecting filters and max_ack_pending), and
/// records them as pending.
pub fn claim(
    backend: &mut Backend,
    req: &ClaimRequest,
    now: i64,
) -> Result<ClaimResponse, ApiError> {
    backend.consumers.sweep(now);
    let key = (req.stream.clone(), req.consumer.clone());
    let Some(mut c) = backend.consumers.consumers.get(&key).cloned() else {
        return Err(ApiError::consumer_not_found());
    };
    let limits = PullLimits::of(&c.config);
    if let Some(refused) = req.pull.as_ref().and_then(|p| limits.refusal(p)) {
        return Ok(ClaimResponse {
            limits,
            refused: Some(refused),
            max_waiting: c.config.max_waiting,
            ..ClaimResponse::default()
        });
    }
    c.last_seen = now;
    c.waiting = req.waiting;
    c.waiting_at = now;
    // The ack reply's pending token, exact for what this claim hands out: redeliveries come
    // first and see everything still to deliver, the i-th new message sees `before - i - 1`.
    let pending_before = if req.max_bytes > 0 {
        num_pending(backend, &c)?
    } else {
        0
    };
    let mut claim = Claim::new(&c, req, pending_before);
    // This claim's deliveries (redeliveries included) are one run from here.
    c.runs.insert(c.dseq + 1);
    if !claim.ack_none {
        claim.redeliveries(backend, &mut c, now)?;
    }
    claim.new_messages(backend, &mut c, now)?;
    if !claim.out.is_empty() {
        c.last_delivery = Some(now);
    }
    c.update_floor();
    let remaining = num_pending(backend, &c)?;
    let response = claim.response(&c, remaining, limits, now);
    let mut writes = Vec::new();
    if let Some(before) = backend.consumers.consumers.get(&key) {
        changes(before, &mut c, &mut writes);
    }
    persist(backend, writes).map_err(store_err)?;
    backend.consumers.consumers.insert(key, c);
    Ok(response)
}

/// One claim under way: what it has handed out so far and the limits it stops at.
struct Claim {
    batch: usize,
    max_bytes: u64,
    ack_none: bool,
    max_deliver: u64,
    max_ack_pending: usize,
    pending_before: u64,
    /// Answer as runs ([`ClaimRequest::runs`]).
    runs: bool,
    /// (location, consumer sequence, deliveries) of each message claimed, in delivery order.
    out: Vec<(MessageLocation, u64, u64)>,
    bytes: u64,
    /// The next message does not fit in `max_bytes`.
    too_big: bool,
    new_count: u64,
}

impl Claim {
    fn new(c: &Consumer, req: &ClaimRequest, pending_before: u64) -> Self {
        Self {
            batch: req.batch.max(1) as usize,
            max_bytes: req.max_bytes,
            ack_none: c.config.ack_policy == AckPolicy::None,
            max_deliver: u64::try_from(c.config.max_deliver).unwrap_or(u64::MAX),
            max_ack_pending: usize::try_from(c.config.max_ack_pending)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(usize::MAX),
            pending_before,
            runs: req.runs,
            out: Vec::new(),
            bytes: 0,
            too_big: false,
            new_count: 0,
        }
    }

    /// Takes `size` more bytes if they fit in `max_bytes`; else marks the claim complete.
    fn fits(&mut self, size: u64) -> bool {
        if self.max_bytes > 0 && self.bytes + size > self.max_bytes {
            self.too_big = true;
            return false;
        }
        self.bytes += size;
        true
    }

    /// Redeliveries whose ack wait (or nak delay) ran out, first.
    fn redeliveries(
        &mut self,
        backend: &mut Backend,
        c: &mut Consumer,
        now: i64,
    ) -> Result<(), ApiError> {
        let due: Vec<u64> = c
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for sseq in due {
            if self.out.len() >= self.batch {
                break;
            }
            let Some(p) = c.pending.get(&sseq).copied() else {
                continue;
            };
            if p.deliveries >= self.max_deliver {
                // Delivered as often as allowed: no longer pending.
                c.pending.remove(&sseq);
                continue;
            }
            let Some(loc) = locate(backend, c, sseq)? else {
                c.pending.remove(&sseq);
                continue;
            };
            let deliveries = p.deliveries + 1;
            let size = wire_size(c, &loc, deliveries, c.dseq + 1, self.pending_before);
            if !self.fits(size) {
                break;
            }
            c.dseq += 1;
            c.pending.insert(
                sseq,
                Pending {
                    cseq: c.dseq,
                    deliveries,
                    deadline: now + c.config.ack_wait_for(deliveries),
                },
            );
            self.out.push((loc, c.dseq, deliveries));
        }
        Ok(())
    }

    /// How many more messages this claim may hand out now.
    fn room(&self, c: &Consumer) -> usize {
        let left = self.batch.saturating_sub(self.out.len());
        if self.ack_none {
            left
        } else {
            left.min(self.max_ack_pending.saturating_sub(c.pending.len()))
        }
    }

    /// New messages, after the redeliveries, until the batch, the bytes or the ack-pending
    /// limit is reached or the stream has no more.
    fn new_messages(
        &mut self,
        backend: &mut Backend,
        c: &mut Consumer,
        now: i64,
    ) -> Result<(), ApiError> {
        let filters = c.config.filters();
        while !self.too_big && self.room(c) > 0 {
            let locs = if let Some(seq) = c.lps.front().copied() {
                match locate(backend, c, seq)? {
                    Some(loc) => vec![loc],
                    None => {
                        c.lps.pop_front();
                        continue;
                    }
                }
            } else {
                backend
                    .store
                    .scan(&c.stream, c.next_sseq, &filters, self.room(c))
                    .map_err(store_err)?
            };
            if locs.is_empty() {
                break;
            }
            for loc in locs {
                let pending = self.pending_before.saturating_sub(self.new_count + 1);
                let size = wire_size(c, &loc, 1, c.dseq + 1, pending);
                if !self.fits(size) {
                    break;
                }
                self.new_count += 1;
                self.deliver_new(c, loc, now);
            }
        }
        Ok(())
    }

    /// Hands out one message for the first time.
    fn deliver_new(&mut self, c: &mut Consumer, loc: MessageLocation, now: i64) {
        if c.lps.front() == Some(&loc.seq) {
            c.lps.pop_front();
        } else {
            c.next_sseq = loc.seq + 1;
        }
        c.dseq += 1;
        c.sseq = c.sseq.max(loc.seq);
        if !self.ack_none {
            c.pending.insert(
                loc.seq,
                Pending {
                    cseq: c.dseq,
                    deliveries: 1,
                    deadline: now + c.config.ack_wait_for(1),
                },
            );
        }
        self.out.push((loc, c.dseq, 1));
    }

    fn response(self, c: &Consumer, remaining: u64, limits: PullLimits, now: i64) -> ClaimResponse {
        // A short claim leaves its requests waiting; they wake on the next commit or consumer
        // event, or when the earliest pending delivery may be redelivered, which only the
        // control plane knows.
        let redeliver_in_ms = if self.out.len() < self.batch && !self.ack_none {
            c.pending
                .values()
                .filter(|p| p.deliveries < self.max_deliver)
                .map(|p| p.deadline)
                .min()
                .map(|d| u64::try_from((d - now).max(0) / 1_000_000).unwrap_or(0) + 1)
        } else {
            None
        };
        let (messages, runs) = if self.runs {
            (Vec::new(), as_runs(&self.out))
        } else {
            let pending = pending_after_each(&self.out, remaining);
            let messages = self
                .out
                .into_iter()
                .zip(pending)
                .map(|((location, cseq, deliveries), pending)| Claimed {
                    location,
                    cseq,
                    deliveries,
                    pending,
                })
                .collect();
            (messages, Vec::new())
        };
        ClaimResponse {
            redeliver_in_ms,
            filters: c.config.filters(),
            messages,
            runs,
            num_pending: remaining,
            too_big: self.too_big,
            headers_only: c.config.headers_only,
            last_stream_seq: c.sseq,
            last_consumer_seq: c.dseq,
            max_waiting: c.config.max_waiting,
            limits,
            refused: None,
        }
    }
}

/// The message at `seq` of the consumer's stream; None when it is gone (deleted, expired).
fn locate(
    backend: &mut Backend,
    c: &Consumer,
    seq: u64,
) -> Result<Option<MessageLocation>, ApiError> {
    match backend.store.locate(
        &c.stream,
        &infinistream_api::control_plane::model::LocateRequest::seq(seq),
    ) {
        Ok(loc) => Ok(Some(loc)),
        Err(StoreError::Api(_)) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}

/// Claimed deliveries folded into runs of consecutive records.
fn as_runs(out: &[(MessageLocation, u64, u64)]) -> Vec<ClaimedRun> {
    let mut runs: Vec<ClaimedRun> = Vec::new();
    for (loc, cseq, deliveries) in out {
        let extended = runs
            .last_mut()
            .is_some_and(|r| r.extend(loc, *cseq, *deliveries));
        if !extended {
            runs.push(ClaimedRun::of(loc, *cseq, *deliveries));
        }
    }
    runs
}

/// The pending count after each claimed message: what is left plus the new ones behind it
/// (a redelivery does not count, it was pending already).
fn pending_after_each(out: &[(MessageLocation, u64, u64)], remaining: u64) -> Vec<u64> {
    let mut acc = Vec::with_capacity(out.len());
    let mut behind = 0u64;
    for (_, _, deliveries) in out.iter().rev() {
        acc.push(remaining + behind);
        if *deliveries == 1 {
            behind += 1;
        }
    }
    acc.reverse();
    acc
}

/// Applies a batch of acks; acks of unknown consumers or sequences are ignored (as nats-server
/// ignores stale acks). The whole batch is stored in one transaction; if that fails nothing is
/// applied (the messages are redelivered after their ack wait).
/// The consumers for which `batch` may let waiting requests take messages: a nak (or term)
/// makes one available, and any ack frees a slot of a consumer at its `max_ack_pending`. Plain
/// acks of a consumer with room to spare change nothing a waiting request could see, so they
/// wake nobody. Call before the batch is applied.
pub fn ack_wakes(backend: &Backend, batch: &AckBatch) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for a in &batch.acks {
        if out.iter().any(|(s, c)| *s == a.stream && *c == a.consumer) {
            continue;
        }
        let Some(c) = backend
            .consumers
            .consumers
            .get(&(a.stream.clone(), a.consumer.clone()))
        else {
            continue;
        };
        let full = usize::try_from(c.config.max_ack_pending)
            .ok()
            .filter(|m| *m > 0)
            .is_some_and(|m| c.pending.len() >= m);
        if full || matches!(a.kind, AckKind::Nak | AckKind::Term) {
            out.push((a.stream.clone(), a.consumer.clone()));
        }
    }
    out
}

pub fn ack(backend: &mut Backend, batch: &AckBatch, now: i64) -> AckBatchResponse {
    let mut applied = 0;
    // Working copies, so memory changes only once the batch is stored.
    let mut touched: HashMap<(String, String), Consumer> = HashMap::new();
    for a in &batch.acks {
        let key = (a.stream.clone(), a.consumer.clone());
        let c = match touched.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Some(c) = backend.consumers.consumers.get(e.key()) else {
                    continue;
                };
                e.insert(c.clone())
            }
        };
        c.last_seen = now;
        let policy = c.config.ack_policy;
        match a.kind {
            AckKind::Ack | AckKind::Term => {
                if policy == AckPolicy::All && a.kind == AckKind::Ack {
                    let before = c.pending.len();
                    c.pending.retain(|s, _| *s > a.sseq);
                    if c.pending.len() != before {
                        applied += 1;
                    }
                } else if c.pending.remove(&a.sseq).is_some() {
                    applied += 1;
                }
                c.last_ack = Some(now);
            }
            AckKind::Nak => {
                if let Some(p) = c.pending.get_mut(&a.sseq) {
                    p.deadline = now + a.delay.max(0);
                    applied += 1;
                }
            }
            AckKind::Progress => {
                let wait = c.config.ack_wait;
                if let Some(p) = c.pending.get_mut(&a.sseq) {
                    p.deadline = now + wait;
                    applied += 1;
                }
            }
        }
    }
    let mut writes = Vec::new();
    for (key, c) in touched.iter_mut() {
        c.update_floor();
        if let Some(before) = backend.consumers.consumers.get(key) {
            changes(before, c, &mut writes);
        }
    }
    if let Err(e) = persist(backend, writes) {
        tracing::error!(error = %e, acks = batch.acks.len(), "cannot store consumer acks");
        return AckBatchResponse { applied: 0 };
    }
    backend.consumers.consumers.extend(touched);
    AckBatchResponse { applied }
}

/// Grants or renews push consumer leases: a push consumer whose deliver subject the agent has
/// interest in and whose lease is free (or expired, or already this agent's) is assigned to it.
pub fn lease(backend: &mut Backend, req: &LeaseRequest, now: i64) -> LeaseResponse {
    backend.consumers.sweep(now);
    let until = now + req.ttl_ms.max(1) * 1_000_000;
    let mut assignments = Vec::new();
    let mut push_subjects = Vec::new();
    for c in backend.consumers.consumers.values_mut() {
        if !c.config.is_push() {
            continue;
        }
        let mine = c.lease.as_ref().is_some_and(|(a, _)| *a == req.agent_id);
        let free = c.lease.as_ref().is_none_or(|(_, end)| *end < now);
        if mine || free {
            push_subjects.push(c.config.deliver_subject.clone());
        }
        let wants = req.deliver_subjects.contains(&c.config.deliver_subject);
        if wants && (mine || free) {
            c.lease = Some((req.agent_id.clone(), until));
            c.last_seen = now;
            assignments.push(PushAssignment {
                stream: c.stream.clone(),
                consumer: c.name.clone(),
                config: c.config.clone(),
            });
        } else if mine {
            // The agent lost interest: release so another agent can take over.
            c.lease = None;
        }
    }
    push_subjects.sort();
    push_subjects.dedup();
    LeaseResponse {
        assignments,
        push_subjects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::js_api::{self, JsContext};
    use crate::store::SqliteStore;
    use infinistream_api::control_plane::consumers::AckEntry;

    fn backend() -> Backend {
        Backend {
            store: Box::new(SqliteStore::open_in_memory().expect("store")),
            api_total: 0,
            api_errors: 0,
            events: crate::events::EventLog::new(16),
            consumers: Registry::default(),
        }
    }

    fn call(b: &mut Backend, api: &str, body: &str) -> serde_json::Value {
        let ctx = JsContext {
            server_name: "t".into(),
            now: 1,
            consumer_counts: Default::default(),
        };
        serde_json::from_slice(&js_api::handle(b, api, body.as_bytes(), &ctx)).expect("json")
    }

    #[test]
    fn create_info_delete() {
        let mut b = backend();
        call(
            &mut b,
            "STREAM.CREATE.S",
            r#"{"name":"S","subjects":["s.>"]}"#,
        );
        let r = call(
            &mut b,
            "CONSUMER.CREATE.S.D",
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit"}}"#,
        );
        assert_eq!(r["name"], "D", "{r}");
        let r = call(&mut b, "CONSUMER.INFO.S.D", "");
        assert_eq!(r["name"], "D", "{r}");
        let r = call(&mut b, "CONSUMER.DELETE.S.D", "");
        assert_eq!(r["success"], true, "{r}");
    }

    fn file_backend(dir: &std::path::Path) -> Backend {
        let mut store: Box<dyn MetadataStore> = Box::new(SqliteStore::open(dir).expect("store"));
        let consumers = Registry::load(store.as_mut(), 1).expect("load");
        Backend {
            store,
            api_total: 0,
            api_errors: 0,
            events: crate::events::EventLog::new(16),
            consumers,
        }
    }

    fn publish(b: &mut Backend, n: usize) {
        use infinistream_api::control_plane::model::{CommitBlock, CommitMessage, CommitRequest};
        let id = b.store.allocate_object_ids(1, 0).expect("ids")[0];
        let messages = (0..n)
            .map(|_| CommitMessage {
                subject: "s.x".into(),
                size: 10,
                timestamp_nanos: 1,
                ..CommitMessage::default()
            })
            .collect();
        b.store
            .commit(&CommitRequest {
                agent_id: "a".into(),
                object_id: id,
                object_key: format!("objects/{id}"),
                object_size: 100,
                blocks: vec![CommitBlock {
                    stream: "S".into(),
                    block_offset: 0,
                    block_len: 100,
                    messages,
                    summary: None,
                }],
            })
            .expect("commit");
    }

    fn claim_n(b: &mut Backend, name: &str, batch: u32, now: i64) -> Vec<Claimed> {
        let req = ClaimRequest {
            stream: "S".into(),
            consumer: name.into(),
            batch,
            ..ClaimRequest::default()
        };
        claim(b, &req, now).expect("claim").messages
    }

    fn acks(name: &str, seqs: impl IntoIterator<Item = u64>, kind: AckKind) -> AckBatch {
        AckBatch {
            acks: seqs
                .into_iter()
                .map(|sseq| AckEntry {
                    stream: "S".into(),
                    consumer: name.into(),
                    sseq,
                    kind,
                    delay: 0,
                })
                .collect(),
        }
    }

    /// The same claims on two twin consumers, one answered per message and one as runs: the
    /// runs expand to exactly the same deliveries (sequences, counts, ack-reply pending), and
    /// new messages of one block are one run.
    #[test]
    fn runs_expand_to_the_per_message_answer() {
        let mut b = backend();
        call(
            &mut b,
            "STREAM.CREATE.S",
            r#"{"name":"S","subjects":["s.>"]}"#,
        );
        publish(&mut b, 12);
        publish(&mut b, 5);
        for name in ["M", "R"] {
            let r = call(
                &mut b,
                &format!("CONSUMER.CREATE.S.{name}"),
                &format!(
                    r#"{{"stream_name":"S","config":{{"durable_name":"{name}","ack_policy":"explicit","ack_wait":1000000000}}}}"#
                ),
            );
            assert_eq!(r["name"], name, "{r}");
        }
        let claim_both = |b: &mut Backend, batch: u32, now: i64| {
            let mut answers = Vec::new();
            for (name, runs) in [("M", false), ("R", true)] {
                let req = ClaimRequest {
                    stream: "S".into(),
                    consumer: name.into(),
                    batch,
                    runs,
                    ..ClaimRequest::default()
                };
                answers.push(claim(b, &req, now).expect("claim"));
            }
            answers
        };
        let now = 10_000_000_000;
        let first = claim_both(&mut b, 4, now);
        assert_eq!(first[1].runs.len(), 1, "{:?}", first[1].runs);
        assert!(first[1].messages.is_empty());
        assert_eq!(first[0].deliveries(), first[1].deliveries());
        for name in ["M", "R"] {
            ack(&mut b, &acks(name, [2], AckKind::Nak), now);
            ack(&mut b, &acks(name, [3], AckKind::Ack), now);
        }
        // Redeliveries of 1 (expired) and 2 (nak'd), 4 is not due yet, then 5..=17 across the
        // two objects' blocks.
        let later = now + 1_500_000_000;
        for name in ["M", "R"] {
            ack(&mut b, &acks(name, [4], AckKind::Progress), later);
        }
        let second = claim_both(&mut b, 20, later);
        let d = second[1].deliveries();
        assert_eq!(second[0].deliveries(), d);
        assert_eq!(
            d.iter().map(|d| (d.seq, d.deliveries)).collect::<Vec<_>>(),
            [(1, 2), (2, 2)]
                .into_iter()
                .chain((5..=17).map(|s| (s, 1)))
                .collect::<Vec<_>>()
        );
        assert_eq!(d.last().map(|d| d.pending), Some(0));
        assert_eq!(
            d[0].pending, 13,
            "redeliveries see every new message behind them"
        );
        // One run for both redeliveries, one per block of new messages.
        assert_eq!(second[1].runs.len(), 3, "{:?}", second[1].runs);
    }

    #[test]
    fn delivery_state_survives_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = file_backend(dir.path());
        call(
            &mut b,
            "STREAM.CREATE.S",
            r#"{"name":"S","subjects":["s.>"]}"#,
        );
        publish(&mut b, 20);
        let r = call(
            &mut b,
            "CONSUMER.CREATE.S.D",
            r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit","ack_wait":1000000000,"description":"kept"}}"#,
        );
        assert_eq!(r["name"], "D", "{r}");
        let now = 10_000_000_000;
        let got = claim_n(&mut b, "D", 10, now);
        assert_eq!(got.len(), 10);
        let done = ack(&mut b, &acks("D", 1..=10, AckKind::Ack), now);
        assert_eq!(done.applied, 10);
        let got = claim_n(&mut b, "D", 5, now);
        assert_eq!(
            got.iter().map(|m| m.location.seq).collect::<Vec<_>>(),
            vec![11, 12, 13, 14, 15]
        );
        // A nak and a term are stored too.
        let got = claim_n(&mut b, "D", 2, now);
        assert_eq!(got.len(), 2);
        ack(&mut b, &acks("D", [16], AckKind::Term), now);
        drop(b);

        let mut b = file_backend(dir.path());
        let r = call(&mut b, "CONSUMER.INFO.S.D", "");
        assert_eq!(r["config"]["description"], "kept", "{r}");
        assert_eq!(r["ack_floor"]["stream_seq"], 10, "{r}");
        assert_eq!(r["ack_floor"]["consumer_seq"], 10, "{r}");
        assert_eq!(r["delivered"]["stream_seq"], 17, "{r}");
        assert_eq!(r["delivered"]["consumer_seq"], 17, "{r}");
        assert_eq!(r["num_ack_pending"], 6, "{r}");
        assert_eq!(r["num_pending"], 3, "{r}");
        // After the ack wait: the unacked ones again (second delivery), then the rest once.
        let later = now + 2_000_000_000;
        let got = claim_n(&mut b, "D", 20, later);
        let seqs: Vec<(u64, u64)> = got.iter().map(|m| (m.location.seq, m.deliveries)).collect();
        assert_eq!(
            seqs,
            vec![
                (11, 2),
                (12, 2),
                (13, 2),
                (14, 2),
                (15, 2),
                (17, 2),
                (18, 1),
                (19, 1),
                (20, 1)
            ]
        );
        ack(&mut b, &acks("D", 11..=20, AckKind::Ack), later);
        drop(b);

        let mut b = file_backend(dir.path());
        let r = call(&mut b, "CONSUMER.INFO.S.D", "");
        assert_eq!(r["num_ack_pending"], 0, "{r}");
        assert_eq!(r["ack_floor"]["stream_seq"], 20, "{r}");
        assert!(claim_n(&mut b, "D", 20, later + 10_000_000_000).is_empty());
        let r = call(&mut b, "CONSUMER.DELETE.S.D", "");
        assert_eq!(r["success"], true, "{r}");
        drop(b);

        let mut b = file_backend(dir.path());
        let r = call(&mut b, "CONSUMER.INFO.S.D", "");
        assert_eq!(r["error"]["err_code"], 10014, "{r}");
        call(
            &mut b,
            "CONSUMER.CREATE.S.E",
            r#"{"stream_name":"S","config":{"durable_name":"E"}}"#,
        );
        call(&mut b, "STREAM.DELETE.S", "");
        drop(b);
        let mut b = file_backend(dir.path());
        assert!(b.store.consumers().expect("consumers").is_empty());
        assert_eq!(b.consumers.total(), 0);
    }

    #[test]
    fn swept_ephemerals_are_deleted_from_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = file_backend(dir.path());
        call(
            &mut b,
            "STREAM.CREATE.S",
            r#"{"name":"S","subjects":["s.>"]}"#,
        );
        let r = call(
            &mut b,
            "CONSUMER.CREATE.S",
            r#"{"stream_name":"S","config":{"inactive_threshold":1000}}"#,
        );
        let name = r["name"].as_str().expect("name").to_string();
        assert_eq!(b.store.consumers().expect("consumers").len(), 1);
        // Far past the threshold: the next consumer call sweeps it from memory and the store.
        handle(&mut b, &["NAMES", "S"], b"", 1_000_000_000_000);
        assert!(b.store.consumers().expect("consumers").is_empty(), "{name}");
    }
}
