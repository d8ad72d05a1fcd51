//! The control plane's HTTP surface on actix-web: routing, authentication, request metrics, and
//! translation between HTTP bodies and store calls.
//!
//! Owns: the route table, the `x-infinistream-group-id` + bearer key check (constant time), the
//! `/metrics` registry and `/healthz`. Does not own: what requests mean (`js_api`, `store`).

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::consumers::{self, Backend};
use super::events::EventLog;
use super::js_api::{self, JsContext};
use super::store::StoreError;
use super::worker::StoreHandle;
use infinistream_api::control_plane::consumers::{
    AckBatch, ClaimRequest, LeaseRequest, WaitingReport,
};
use infinistream_api::control_plane::events::{
    Event, EventsQuery, MAX_EVENT_SUBJECTS, MAX_WAIT_MS,
};
use infinistream_api::control_plane::model::*;
use infinistream_api::jetstream::time::now_nanos;

/// Largest request body accepted (a commit of a large object from an agent of the first release
/// carries one entry per message).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most object ids handed out by one request.
pub const MAX_OBJECT_IDS: u32 = 100_000;

/// Everything the handlers share; cheap to clone into each worker.
pub struct AppState {
    pub store: StoreHandle,
    pub group_id: String,
    key_digest: [u8; 32],
    pub agent_expiry: Duration,
    pub default_server_name: String,
    pub metrics: CpMetrics,
    /// Set when the control plane stops: held `GET /v1/events` requests are answered at once.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(
        store: StoreHandle,
        group_id: String,
        group_key: &str,
        agent_expiry: Duration,
        default_server_name: String,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            store,
            group_id,
            key_digest: Sha256::digest(group_key.as_bytes()).into(),
            agent_expiry,
            default_server_name,
            metrics: CpMetrics::new()?,
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    fn expiry_ms(&self) -> i64 {
        i64::try_from(self.agent_expiry.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Request counts and latencies per route pattern, in the control plane's own registry.
pub struct CpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl CpMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "infinistream_control_plane_requests_total",
                "control plane http requests by route and status",
            ),
            &["endpoint", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "infinistream_control_plane_request_duration_seconds",
                "control plane http request latency by route",
            ),
            &["endpoint"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        // Touched so the series exists (at 0) before the first restart.
        std::sync::LazyLock::force(&crate::worker::STORE_RESTARTS);
        registry.register(Box::new(crate::worker::RESTARTS.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
        })
    }

    fn observe(&self, endpoint: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }

    fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn error_body(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: message.into(),
    })
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    // Fold every byte so the time taken does not depend on where they differ.
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Checks the group id and the bearer key; the refusal never echoes what was sent.
fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), Box<HttpResponse>> {
    let unauthorized = |why: &str| {
        tracing::warn!(path = %req.path(), reason = why, "control plane request refused");
        Box::new(error_body(
            StatusCode::UNAUTHORIZED,
            format!("unauthorized: {why}"),
        ))
    };
    let group = req
        .headers()
        .get(GROUP_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    let Some(group) = group else {
        return Err(unauthorized("missing x-infinistream-group-id header"));
    };
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(auth) = auth else {
        return Err(unauthorized("missing authorization header"));
    };
    let Some(key) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(unauthorized("authorization must be a bearer token"));
    };
    let digest: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
    let key_ok = ct_eq(&digest, &state.key_digest);
    if group != state.group_id || !key_ok {
        return Err(unauthorized("wrong group id or group key"));
    }
    Ok(())
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error_body(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        ))
    })
}

fn store_failure(e: StoreError) -> HttpResponse {
    match e {
        StoreError::Api(api) => HttpResponse::Ok().json(ApiResult::<()>::Err { error: api }),
        other => {
            tracing::error!(error = %other, "control plane store failure");
            error_body(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn now_ms() -> i64 {
    now_nanos() / 1_000_000
}

macro_rules! auth {
    ($req:expr, $state:expr) => {
        if let Err(resp) = authorize(&$req, &$state) {
            return *resp;
        }
    };
}

fn block_messages(b: &CommitBlock) -> usize {
    b.messages.len() + b.summary.as_ref().map_or(0, |s| s.count as usize)
}

/// A commit event per stream that got new messages, naming the block's subjects when few.
fn commit_events(events: &mut EventLog, requests: &[CommitRequest], responses: &[CommitResponse]) {
    for (req, r) in requests.iter().zip(responses).filter(|(_, r)| !r.replayed) {
        for (block, b) in req.blocks.iter().zip(&r.blocks) {
            let Some(last_seq) = b.acks.iter().filter_map(|a| a.plain_seq(&b.stream)).max() else {
                continue;
            };
            let mut subjects: Vec<String> = Vec::new();
            let names: Box<dyn Iterator<Item = &String>> = match &block.summary {
                Some(summary) => Box::new(summary.subjects.iter().map(|s| &s.subject)),
                None => Box::new(block.messages.iter().map(|m| &m.subject)),
            };
            for name in names {
                if !subjects.contains(name) {
                    if subjects.len() == MAX_EVENT_SUBJECTS {
                        // Too many to be worth naming: the event wakes every consumer.
                        subjects.clear();
                        break;
                    }
                    subjects.push(name.clone());
                }
            }
            events.push(Event::Commit {
                stream: b.stream.clone(),
                last_seq,
                subjects,
            });
        }
    }
}

/// The event a `$JS.API` request causes: a stream changed the catalog, a consumer changed.
fn api_events(b: &mut Backend, api: &str, version_before: u64) {
    let tokens: Vec<&str> = api.split('.').collect();
    match tokens.as_slice() {
        ["STREAM", "CREATE" | "UPDATE" | "DELETE", name] => {
            let version = b
                .store
                .streams_since(u64::MAX)
                .map_or(version_before, |s| s.version);
            if version != version_before {
                let config = b.store.stream_config(name).ok().map(Box::new);
                b.events.push(Event::Stream {
                    name: (*name).to_string(),
                    version,
                    config,
                });
            }
        }
        ["CONSUMER", "CREATE", stream, consumer, ..]
        | ["CONSUMER", "DURABLE", "CREATE", stream, consumer]
        | ["CONSUMER", "DELETE" | "PAUSE" | "UNPIN", stream, consumer] => {
            b.events.push(Event::Consumer {
                stream: (*stream).to_string(),
                consumer: (*consumer).to_string(),
            });
        }
        _ => {}
    }
}

/// Applies an ack batch, with a consumer event for each consumer it may unblock.
fn apply_acks(
    b: &mut Backend,
    acks: &AckBatch,
    now: i64,
) -> infinistream_api::control_plane::consumers::AckBatchResponse {
    let wakes = consumers::ack_wakes(b, acks);
    let out = consumers::ack(b, acks, now);
    for (stream, consumer) in wakes {
        b.events.push(Event::Consumer { stream, consumer });
    }
    out
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    auth!(req, state);
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4"))
            .body(text),
        Err(e) => error_body(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn js(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let server_name = req
        .headers()
        .get(SERVER_NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| state.default_server_name.clone());
    let api = api.into_inner();
    let ctx = JsContext {
        server_name,
        now: now_nanos(),
        consumer_counts: Default::default(),
    };
    match state
        .store
        .call(move |backend| {
            let before = backend
                .store
                .streams_since(u64::MAX)
                .map_or(0, |s| s.version);
            let out = js_api::handle(backend, &api, &body, &ctx);
            api_events(backend, &api, before);
            out
        })
        .await
    {
        Ok(out) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(out),
        Err(e) => store_failure(e),
    }
}

async fn register(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    auth!(req, state);
    let request: RegisterRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if request.agent_id.is_empty() {
        return error_body(StatusCode::BAD_REQUEST, "agent_id is required");
    }
    let expiry = state.expiry_ms();
    let now = now_ms();
    match state
        .store
        .call(move |b| b.store.register_agent(&request, now))
        .await
    {
        Ok(Ok(agent)) => json(&lease(&agent, expiry)),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

fn lease(agent: &AgentInfo, expiry_ms: i64) -> Lease {
    Lease {
        agent_id: agent.agent_id.clone(),
        heartbeat_interval_ms: u64::try_from(expiry_ms / 3).unwrap_or(1).max(1),
        expiry_ms: u64::try_from(expiry_ms).unwrap_or(0),
        expires_at_ms: agent.last_heartbeat_ms + expiry_ms,
    }
}

async fn heartbeat(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    auth!(req, state);
    let request: HeartbeatRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let expiry = state.expiry_ms();
    let now = now_ms();
    match state
        .store
        .call(move |b| b.store.heartbeat(&request.agent_id, now, expiry))
        .await
    {
        Ok(Ok(found)) => json(&HeartbeatResponse {
            known: found.is_some(),
            lease: found.map(|a| lease(&a, expiry)),
        }),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

/// `POST /v1/agents/leave`: the agent is stopping; drop it now rather than at lease expiry.
async fn leave(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    auth!(req, state);
    let request: HeartbeatRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match state
        .store
        .call(move |b| b.store.remove_agent(&request.agent_id))
        .await
    {
        Ok(Ok(left)) => json(&serde_json::json!({ "left": left })),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn agents(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    auth!(req, state);
    let expiry = state.expiry_ms();
    let now = now_ms();
    match state.store.call(move |b| b.store.agents(now, expiry)).await {
        Ok(Ok(agents)) => json(&AgentsResponse { agents }),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn object_ids(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: ObjectIdsRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if request.count == 0 || request.count > MAX_OBJECT_IDS {
        return error_body(
            StatusCode::BAD_REQUEST,
            format!("count must be between 1 and {MAX_OBJECT_IDS}"),
        );
    }
    let now = now_ms();
    match state
        .store
        .call(move |b| b.store.allocate_object_ids(request.count, now))
        .await
    {
        Ok(Ok(ids)) => json(&ObjectIdsResponse { ids }),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

#[derive(serde::Deserialize)]
struct SinceQuery {
    #[serde(default)]
    since: u64,
}

async fn streams_since(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<SinceQuery>,
) -> HttpResponse {
    auth!(req, state);
    let since = query.since;
    match state
        .store
        .call(move |b| b.store.streams_since(since))
        .await
    {
        Ok(Ok(snapshot)) => json(&snapshot),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn commit(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    auth!(req, state);
    let request: CommitRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let started = Instant::now();
    let messages: usize = request.blocks.iter().map(block_messages).sum();
    let object_id = request.object_id;
    let committed = move |b: &mut Backend| {
        let r = b.store.commit(&request);
        if let Ok(response) = &r {
            commit_events(
                &mut b.events,
                std::slice::from_ref(&request),
                std::slice::from_ref(response),
            );
        }
        r
    };
    match state.store.call(committed).await {
        Ok(Ok(response)) => {
            tracing::debug!(
                object_id,
                messages,
                elapsed_us = started.elapsed().as_micros() as u64,
                "object committed"
            );
            json(&response)
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!(object_id, error = %e, "commit failed");
            store_failure(e)
        }
    }
}

async fn commit_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: CommitManyRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let started = Instant::now();
    let objects = request.commits.len();
    let messages: usize = request
        .commits
        .iter()
        .flat_map(|c| &c.blocks)
        .map(block_messages)
        .sum();
    match state
        .store
        .call(move |b| {
            let r = b.store.commit_many(&request.commits);
            if let Ok(responses) = &r {
                commit_events(&mut b.events, &request.commits, responses);
            }
            r
        })
        .await
    {
        Ok(Ok(commits)) => {
            tracing::debug!(
                objects,
                messages,
                elapsed_us = started.elapsed().as_micros() as u64,
                "objects committed"
            );
            json(&CommitManyResponse { commits })
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!(objects, error = %e, "commit failed");
            store_failure(e)
        }
    }
}

async fn record_orphan(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: OrphanRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_ms();
    match state
        .store
        .call(move |b| b.store.record_orphan(&request, now))
        .await
    {
        Ok(Ok(())) => json(&serde_json::json!({})),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn orphans(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    auth!(req, state);
    match state.store.call(|b| b.store.orphans()).await {
        Ok(Ok(orphans)) => json(&OrphansResponse { orphans }),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn locate(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: LocateRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let name = name.into_inner();
    match state
        .store
        .call(move |b| b.store.locate(&name, &request))
        .await
    {
        Ok(Ok(location)) => json(&ApiResult::Ok(location)),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn stream_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> HttpResponse {
    auth!(req, state);
    let name = name.into_inner();
    match state
        .store
        .call(move |b| b.store.stream(&name, &Default::default()))
        .await
    {
        Ok(Ok(view)) => json(&ApiResult::Ok(view.state)),
        Ok(Err(e)) | Err(e) => store_failure(e),
    }
}

async fn consumer_claim(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let mut request: ClaimRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_nanos();
    match state
        .store
        .call(move |b| {
            if !request.acks.is_empty() {
                let acks = AckBatch {
                    acks: std::mem::take(&mut request.acks),
                };
                apply_acks(b, &acks, now);
            }
            consumers::claim(b, &request, now)
        })
        .await
    {
        Ok(r) => json(&ApiResult::from(r)),
        Err(e) => store_failure(e),
    }
}

async fn consumer_waiting(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let report: WaitingReport = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match state
        .store
        .call(move |b| consumers::report_waiting(b, &report, now_nanos()))
        .await
    {
        Ok(()) => json(&serde_json::json!({})),
        Err(e) => store_failure(e),
    }
}

async fn consumer_ack(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: AckBatch = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_nanos();
    match state
        .store
        .call(move |b| apply_acks(b, &request, now))
        .await
    {
        Ok(r) => json(&r),
        Err(e) => store_failure(e),
    }
}

async fn consumer_lease(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    auth!(req, state);
    let request: LeaseRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_nanos();
    match state
        .store
        .call(move |b| consumers::lease(b, &request, now))
        .await
    {
        Ok(r) => json(&r),
        Err(e) => store_failure(e),
    }
}

/// `GET /v1/events`: what changed since the cursor, held open up to `wait_ms` while nothing has.
async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> HttpResponse {
    auth!(req, state);
    let q = query.into_inner();
    let wait = Duration::from_millis(q.wait_ms.min(MAX_WAIT_MS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut cursor = state.store.events();
    let mut closing = state.closing.subscribe();
    loop {
        let answer = match state
            .store
            .call(move |b| b.events.since(q.from, q.epoch))
            .await
        {
            Ok(a) => a,
            Err(e) => return store_failure(e),
        };
        if !answer.events.is_empty() || answer.reset || q.from.is_none() {
            return json(&answer);
        }
        let seen = answer.next;
        let newer = tokio::select! {
            r = tokio::time::timeout_at(deadline, cursor.wait_for(|next| *next > seen)) => {
                matches!(r, Ok(Ok(_)))
            }
            _ = closing.wait_for(|c| *c) => false,
        };
        if !newer {
            return json(&answer);
        }
    }
}

/// Records count and latency per matched route pattern (never the raw path: stream names would
/// explode the label set).
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let pattern = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        state
            .metrics
            .observe(&pattern, res.status().as_u16(), started.elapsed());
    }
    Ok(res)
}

/// Adds every route to an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/v1/js/{api:.*}", web::post().to(js))
        .route("/v1/agents/register", web::post().to(register))
        .route("/v1/agents/heartbeat", web::post().to(heartbeat))
        .route("/v1/agents/leave", web::post().to(leave))
        .route("/v1/agents", web::get().to(agents))
        .route("/v1/object-ids", web::post().to(object_ids))
        .route("/v1/streams", web::get().to(streams_since))
        .route("/v1/streams/{name}/locate", web::post().to(locate))
        .route("/v1/streams/{name}/state", web::get().to(stream_state))
        .route("/v1/commit", web::post().to(commit))
        .route("/v1/commits", web::post().to(commit_many))
        .route("/v1/consumers/claim", web::post().to(consumer_claim))
        .route("/v1/consumers/waiting", web::post().to(consumer_waiting))
        .route("/v1/consumers/ack", web::post().to(consumer_ack))
        .route("/v1/consumers/lease", web::post().to(consumer_lease))
        .route("/v1/events", web::get().to(events))
        .route("/v1/orphans", web::post().to(record_orphan))
        .route("/v1/orphans", web::get().to(orphans));
}
