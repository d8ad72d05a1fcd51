//! The agent's HTTP monitoring port (8222): `/healthz`, `/varz`, `/connz`, `/subsz`, `/jsz`,
//! `/routez` in nats-server's JSON shapes (so NATS dashboards and prometheus-nats-exporter
//! work), and `/metrics` in Prometheus' text format.
//!
//! Owns: the rendering, and the `HealthProbe` actor that knows whether the control plane answers
//! and whether a shutdown has begun. Does not own any of the numbers: counters come from
//! `metrics`, sessions from the connections (asked through the router on each request),
//! JetStream totals from the control plane.
//!
//! The handlers run on actix-web's own worker thread, where the control-plane client (awc, not
//! `Send`) cannot live; everything that talks to the control plane is in the `HealthProbe`
//! actor on the JetStream arbiter, and handlers ask it by message.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actors::ops::budget::InflightBudget;
use crate::actors::ops::metrics;
use crate::actors::ops::queries::GetRoutes;
use crate::actors::ops::queries::{ConnControl, ConnInfo, GetStats, ListConnections};
use crate::config::AgentConfig;
use crate::control_plane::client::ControlPlaneClient;

/// How often the probe checks the control plane's `/healthz`.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Whether the agent can serve: the control plane answers and no shutdown has begun.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub struct Health {
    /// None when healthy; otherwise why not.
    pub error: Option<String>,
    pub shutting_down: bool,
}

/// Asks the probe for the current health.
#[derive(Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

/// Marks the agent as shutting down: `/healthz` answers 503 from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BeginShutdown;

/// JetStream totals for `/jsz`, from the control plane.
#[derive(Message)]
#[rtype(result = "Result<Value, String>")]
pub struct GetJsz;

/// Keeps the control plane's reachability (checked every `interval`) and the shutdown flag.
pub struct HealthProbe {
    client: Rc<ControlPlaneClient>,
    interval: Duration,
    reachable: Result<(), String>,
    shutting_down: bool,
    checking: bool,
}

impl HealthProbe {
    /// Build it on the arbiter it runs on (the client is not `Send`).
    pub fn new(client: ControlPlaneClient, interval: Duration) -> Self {
        Self {
            client: Rc::new(client),
            interval,
            reachable: Err("control plane not checked yet".to_string()),
            shutting_down: false,
            checking: false,
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let client = self.client.clone();
        let started = Instant::now();
        ctx.spawn(async move { client.healthy().await }.into_actor(self).map(
            move |res, act, _| {
                act.checking = false;
                let res = match res {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("control plane is not healthy".to_string()),
                    Err(e) => Err(format!("control plane unreachable: {e}")),
                };
                let outcome = if res.is_ok() { "ok" } else { "error" };
                metrics::CONTROL_PLANE_OPS
                    .with_label_values(&["health", outcome])
                    .observe(started.elapsed().as_secs_f64());
                metrics::CONTROL_PLANE_UP.set(i64::from(res.is_ok()));
                if res.is_ok() != act.reachable.is_ok() {
                    match &res {
                        Ok(()) => tracing::info!("control plane reachable"),
                        Err(e) => tracing::warn!(error = %e, "control plane unreachable"),
                    }
                }
                act.reachable = res;
            },
        ));
    }
}

impl Actor for HealthProbe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.check(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.check(ctx));
    }
}

impl Handler<GetHealth> for HealthProbe {
    type Result = Health;
    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Health {
        let error = if self.shutting_down {
            Some("server is shutting down".to_string())
        } else {
            self.reachable.clone().err()
        };
        Health {
            error,
            shutting_down: self.shutting_down,
        }
    }
}

impl Handler<BeginShutdown> for HealthProbe {
    type Result = ();
    fn handle(&mut self, _: BeginShutdown, _: &mut Self::Context) {
        self.shutting_down = true;
        metrics::SHUTTING_DOWN.set(1);
    }
}

impl Handler<GetJsz> for HealthProbe {
    type Result = ResponseFuture<Result<Value, String>>;
    fn handle(&mut self, _: GetJsz, _: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move { jsz_totals(&client).await })
    }
}

/// Key under which `jsz_totals` hands over the per-stream details; never sent as such.
const STREAM_DETAIL: &str = "stream_detail";

/// `$JS.API.INFO` plus every page of `$JS.API.STREAM.LIST`, summed as nats-server's `/jsz` does.
async fn jsz_totals(client: &ControlPlaneClient) -> Result<Value, String> {
    let info = client
        .js_api("INFO", Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let info: Value = serde_json::from_slice(&info).map_err(|e| e.to_string())?;
    if let Some(e) = info.get("error") {
        return Err(format!("account info failed: {e}"));
    }
    #[derive(Deserialize, Default)]
    struct Page {
        #[serde(default)]
        total: u64,
        #[serde(default)]
        streams: Vec<Value>,
    }
    let (mut streams, mut consumers, mut messages, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut details = Vec::new();
    let mut offset = 0u64;
    loop {
        let body = serde_json::to_vec(&json!({ "offset": offset })).map_err(|e| e.to_string())?;
        let page = client
            .js_api("STREAM.LIST", Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?;
        let page: Page = serde_json::from_slice(&page).map_err(|e| e.to_string())?;
        if page.streams.is_empty() {
            break;
        }
        for s in &page.streams {
            let state = &s["state"];
            streams += 1;
            messages += state["messages"].as_u64().unwrap_or(0);
            bytes += state["bytes"].as_u64().unwrap_or(0);
            consumers += state["consumer_count"].as_u64().unwrap_or(0);
            // nats-server's `StreamDetail`; `config` is dropped later unless asked for.
            details.push(json!({
                "name": s["config"]["name"],
                "created": s["created"],
                "cluster": s["cluster"],
                "config": s["config"],
                "state": s["state"],
            }));
        }
        offset += page.streams.len() as u64;
        if offset >= page.total {
            break;
        }
    }
    Ok(json!({
        STREAM_DETAIL: details,
        "memory": info["memory"].as_u64().unwrap_or(0),
        "storage": info["storage"].as_u64().unwrap_or(0),
        "reserved_memory": info["reserved_memory"].as_u64().unwrap_or(0),
        "reserved_storage": info["reserved_storage"].as_u64().unwrap_or(0),
        "accounts": 1,
        "ha_assets": 0,
        "api": info.get("api").cloned().unwrap_or_else(|| json!({"total": 0, "errors": 0})),
        "streams": streams,
        "consumers": consumers,
        "messages": messages,
        "bytes": bytes,
    }))
}

/// What the monitoring server reads from: actors to ask and the budget to observe.
#[derive(Clone)]
pub struct MonitorSources {
    /// The router's counts (`/varz`, `/healthz`).
    pub stats: Recipient<GetStats>,
    /// Every connection's control address (`/connz`).
    pub connections: Recipient<ListConnections>,
    /// The routes (`/routez`).
    pub routes: Recipient<GetRoutes>,
    pub probe: Addr<HealthProbe>,
    pub budget: InflightBudget,
    pub ping_interval: Duration,
    pub max_pings_out: u32,
    pub max_pending: usize,
}

struct MonitorState {
    sources: MonitorSources,
    server_id: String,
    server_name: String,
    host: String,
    port: u16,
    http_port: u16,
    max_payload: usize,
    max_inflight_bytes: usize,
    max_inflight_msgs: usize,
    batch_write: Duration,
    start: SystemTime,
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// nats-server's uptime format: `1y2d3h4m5s`, leading zero units left out.
pub fn uptime_string(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hrs, days) = (secs / 60, secs / 3600, secs / 86_400);
    let years = days / 365;
    if years > 0 {
        format!(
            "{years}y{}d{}h{}m{}s",
            days % 365,
            hrs % 24,
            mins % 60,
            secs % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hrs % 24, mins % 60, secs % 60)
    } else if hrs > 0 {
        format!("{hrs}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

async fn healthz(state: web::Data<MonitorState>) -> HttpResponse {
    let health = state.sources.probe.send(GetHealth).await;
    let error = match health {
        Ok(h) => h.error,
        Err(e) => Some(format!("health probe unavailable: {e}")),
    };
    match error {
        None => HttpResponse::Ok().json(json!({"status": "ok"})),
        Some(error) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "status_code": 503,
            "error": error,
        })),
    }
}

async fn metrics_text(state: web::Data<MonitorState>) -> HttpResponse {
    metrics::observe_budget(
        &state.sources.budget,
        state.max_inflight_bytes,
        state.max_inflight_msgs,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render())
}

async fn varz(state: web::Data<MonitorState>) -> HttpResponse {
    let stats = state.sources.stats.send(GetStats).await.unwrap_or_default();
    let now = SystemTime::now();
    let uptime = now.duration_since(state.start).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let in_msgs = metrics::MSGS_IN.get();
    let in_bytes = metrics::BYTES_IN.get();
    let out_msgs = metrics::MSGS_OUT.get();
    let out_bytes = metrics::BYTES_OUT.get();
    let slow = metrics::SLOW_CONSUMERS.get();
    let mut body = json!({
        "server_id": state.server_id,
        "server_name": state.server_name,
        "version": crate::protocol::info::COMPAT_SERVER_VERSION,
        "infinistream_version": env!("CARGO_PKG_VERSION"),
        "proto": 1,
        "go": "infinistream",
        "host": state.host,
        "port": state.port,
        "max_connections": 65536,
        "ping_interval": state.sources.ping_interval.as_nanos() as u64,
        "ping_max": state.sources.max_pings_out,
        "http_host": state.host,
        "http_port": state.http_port,
        "http_base_path": "",
        "https_port": 0,
        "auth_timeout": 2,
        "max_control_line": 4096,
        "max_payload": state.max_payload,
        "max_pending": state.sources.max_pending,
        "cluster": {},
        "gateway": {},
        "leaf": {},
        "mqtt": {},
        "websocket": {},
        "jetstream": {
            "config": {
                "max_memory": 0,
                "max_storage": -1,
                "store_dir": "",
                "sync_interval": state.batch_write.as_nanos() as u64,
                "strict": true
            },
        },
    });
    let counters = json!({
        "tls_timeout": 2,
        "write_deadline": 10_000_000_000u64,
        "start": rfc3339(state.start),
        "now": rfc3339(now),
        "uptime": uptime_string(uptime),
        "mem": 0,
        "cores": cores,
        "gomaxprocs": cores,
        "cpu": 0,
        "connections": stats.connections,
        "total_connections": metrics::TOTAL_CONNECTIONS.get(),
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": in_msgs,
        "in_bytes": in_bytes,
        "in_client_msgs": in_msgs,
        "in_client_bytes": in_bytes,
        "out_msgs": out_msgs,
        "out_bytes": out_bytes,
        "out_client_msgs": out_msgs,
        "out_client_bytes": out_bytes,
        "slow_consumers": slow,
        "stale_connections": 0,
        "stalled_clients": metrics::BACKPRESSURE_PAUSES.get(),
        "subscriptions": stats.subscriptions,
        "config_load_time": rfc3339(state.start),
        "slow_consumer_stats": {"clients": slow, "routes": 0, "gateways": 0, "leafs": 0},
    });
    merge(&mut body, counters);
    HttpResponse::Ok().json(body)
}

/// Adds `extra`'s members to `body` (both objects); `json!` cannot build nats-server's larger
/// documents in one piece.
fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: usize,
}

const DEFAULT_LIST_SIZE: usize = 1024;

fn conn_json(c: &ConnInfo, now: SystemTime) -> Value {
    json!({
        "cid": c.cid,
        "kind": "Client",
        "type": "nats",
        "ip": c.peer.ip().to_string(),
        "port": c.peer.port(),
        "start": rfc3339(c.start),
        "last_activity": rfc3339(c.last_activity),
        "rtt": "0s",
        "uptime": uptime_string(now.duration_since(c.start).unwrap_or_default()),
        "idle": uptime_string(now.duration_since(c.last_activity).unwrap_or_default()),
        "pending_bytes": c.pending_bytes,
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": c.subscriptions,
        "name": c.name.clone().unwrap_or_default(),
        "lang": c.lang.clone().unwrap_or_default(),
        "version": c.version.clone().unwrap_or_default(),
    })
}

async fn connz(state: web::Data<MonitorState>, q: web::Query<PageQuery>) -> HttpResponse {
    let controls = state
        .sources
        .connections
        .send(ListConnections)
        .await
        .unwrap_or_default();
    // A connection that closed meanwhile simply does not answer.
    let mut conns: Vec<ConnInfo> = join_all(controls.iter().map(|c| c.send(ConnControl::Info)))
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    conns.sort_by_key(|c| c.cid);
    let total = conns.len();
    let limit = if q.limit == 0 {
        DEFAULT_LIST_SIZE
    } else {
        q.limit
    };
    let now = SystemTime::now();
    let page: Vec<Value> = conns
        .iter()
        .skip(q.offset)
        .take(limit)
        .map(|c| conn_json(c, now))
        .collect();
    HttpResponse::Ok().json(json!({
        "server_id": state.server_id,
        "now": rfc3339(now),
        "num_connections": page.len(),
        "total": total,
        "offset": q.offset,
        "limit": limit,
        "connections": page,
    }))
}

async fn subsz(state: web::Data<MonitorState>) -> HttpResponse {
    let stats = state.sources.stats.send(GetStats).await.unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "server_id": state.server_id,
        "now": rfc3339(SystemTime::now()),
        "num_subscriptions": stats.subscriptions,
        "num_cache": 0,
        "num_inserts": 0,
        "num_removes": 0,
        "num_matches": 0,
        "cache_hit_rate": 0.0,
        "max_fanout": 0,
        "avg_fanout": 0.0,
        "total": 0,
        "offset": 0,
        "limit": DEFAULT_LIST_SIZE,
    }))
}

/// The routes to the group's other agents, in nats-server's `/routez` shape (plus `zone`, the
/// other agent's availability zone, and `dropped_msgs`, copies a slow route could not take).
async fn routez(state: web::Data<MonitorState>) -> HttpResponse {
    let routes = state
        .sources
        .routes
        .send(GetRoutes)
        .await
        .unwrap_or_default();
    let now = SystemTime::now();
    let since = |t: SystemTime| uptime_string(now.duration_since(t).unwrap_or_default());
    let list: Vec<Value> = routes
        .iter()
        .map(|r| {
            json!({
                "rid": r.peer,
                "remote_id": r.agent,
                "remote_name": r.agent,
                "zone": r.zone,
                "did_solicit": r.solicited,
                "is_configured": false,
                "ip": r.remote.map(|a| a.ip().to_string()).unwrap_or_default(),
                "port": r.remote.map(|a| a.port()).unwrap_or_default(),
                "start": rfc3339(r.start),
                "last_activity": rfc3339(r.last_activity),
                "uptime": since(r.start),
                "idle": since(r.last_activity),
                "pending_size": r.pending_bytes,
                "in_msgs": r.in_msgs,
                "out_msgs": r.out_msgs,
                "in_bytes": r.in_bytes,
                "out_bytes": r.out_bytes,
                "dropped_msgs": r.dropped_msgs,
                "subscriptions": r.subscriptions,
                "compression": "off",
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "server_id": state.server_id,
        "server_name": state.server_name,
        "now": rfc3339(now),
        "num_routes": list.len(),
        "routes": list,
    }))
}

/// `/jsz` query flags, as nats-server reads them (prometheus-nats-exporter's `-jsz=all` sends
/// `accounts`, `streams` and `config`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct JszQuery {
    accounts: bool,
    streams: bool,
    consumers: bool,
    config: bool,
}

async fn jsz(state: web::Data<MonitorState>, query: web::Query<JszQuery>) -> HttpResponse {
    let mut totals = match state.sources.probe.send(GetJsz).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": format!("jetstream totals unavailable: {e}")}));
        }
        Err(e) => {
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": format!("health probe unavailable: {e}")}));
        }
    };
    let mut body = json!({
        "server_id": state.server_id,
        "now": rfc3339(SystemTime::now()),
        "config": {
            "max_memory": 0,
            "max_storage": -1,
            "store_dir": "",
            "sync_interval": state.batch_write.as_nanos() as u64,
            "strict": true
        },
        "limits": {},
        "total": 1,
    });
    let mut details = totals
        .as_object_mut()
        .and_then(|o| o.remove(STREAM_DETAIL))
        .unwrap_or_else(|| json!([]));
    if query.accounts || query.streams || query.consumers {
        // One account, as nats-server names its default account.
        let mut account = json!({"name": "$G", "id": "$G"});
        merge(&mut account, totals.clone());
        if query.streams || query.consumers {
            if !query.config
                && let Some(list) = details.as_array_mut()
            {
                for d in list.iter_mut().filter_map(Value::as_object_mut) {
                    d.remove("config");
                }
            }
            account[STREAM_DETAIL] = details;
        }
        body["account_details"] = json!([account]);
    }
    merge(&mut body, totals);
    HttpResponse::Ok().json(body)
}

/// Serves the monitoring endpoints on `listener` (bound by the agent) in the current actix system.
pub fn start(
    config: &AgentConfig,
    listener: std::net::TcpListener,
    server_id: &str,
    client_port: u16,
    sources: MonitorSources,
) -> std::io::Result<actix_web::dev::ServerHandle> {
    // Bound by the caller, so `/varz` reports the real port when `http_port` is 0.
    let addr = listener.local_addr()?;
    let state = web::Data::new(MonitorState {
        sources,
        server_id: server_id.to_string(),
        server_name: config.server_name.clone(),
        host: config.host.clone(),
        port: client_port,
        http_port: addr.port(),
        max_payload: config.max_payload,
        max_inflight_bytes: config.max_inflight_bytes,
        max_inflight_msgs: config.max_inflight_msgs,
        batch_write: config.batch_write,
        start: SystemTime::now(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/varz", web::get().to(varz))
            .route("/connz", web::get().to(connz))
            .route("/subsz", web::get().to(subsz))
            .route("/subscriptionsz", web::get().to(subsz))
            .route("/jsz", web::get().to(jsz))
            .route("/routez", web::get().to(routez))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_matches_nats_server() {
        assert_eq!(uptime_string(Duration::from_secs(3)), "3s");
        assert_eq!(uptime_string(Duration::from_secs(62)), "1m2s");
        assert_eq!(uptime_string(Duration::from_secs(3600 + 5)), "1h0m5s");
        assert_eq!(
            uptime_string(Duration::from_secs(86_400 * 2 + 1)),
            "2d0h0m1s"
        );
        assert_eq!(
            uptime_string(Duration::from_secs(86_400 * 366)),
            "1y1d0h0m0s"
        );
    }
}
