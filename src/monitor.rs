//! The agent's HTTP monitoring port (8222): `/healthz`, `/varz`, `/metrics`, in nats-server's
//! shapes where nats-server has the endpoint. Owns nothing but the rendering; the numbers come from
//! `metrics` and from actors asked on each request.

use std::net::SocketAddr;
use std::time::SystemTime;

use actix::Addr;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::actors::router::{GetStats, Router};
use crate::config::AgentConfig;
use crate::metrics;

struct MonitorState {
    router: Addr<Router>,
    server_id: String,
    server_name: String,
    port: u16,
    max_payload: usize,
    start: SystemTime,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render())
}

async fn varz(state: web::Data<MonitorState>) -> HttpResponse {
    let stats = state.router.send(GetStats).await.unwrap_or_default();
    let now = SystemTime::now();
    let uptime = now.duration_since(state.start).unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "server_id": state.server_id,
        "server_name": state.server_name,
        "version": crate::protocol::info::COMPAT_SERVER_VERSION,
        "infinistream_version": env!("CARGO_PKG_VERSION"),
        "proto": 1,
        "port": state.port,
        "max_payload": state.max_payload,
        "connections": stats.connections,
        "total_connections": metrics::TOTAL_CONNECTIONS.get(),
        "subscriptions": stats.subscriptions,
        "in_msgs": metrics::MSGS_IN.get(),
        "out_msgs": metrics::MSGS_OUT.get(),
        "in_bytes": metrics::BYTES_IN.get(),
        "out_bytes": metrics::BYTES_OUT.get(),
        "slow_consumers": metrics::SLOW_CONSUMERS.get(),
        "uptime": format!("{}s", uptime.as_secs()),
    }))
}

/// Binds the monitoring server on `host:http_port` and runs it on the current actix system.
pub async fn start(
    config: &AgentConfig,
    server_id: &str,
    router: Addr<Router>,
) -> std::io::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let state = web::Data::new(MonitorState {
        router,
        server_id: server_id.to_string(),
        server_name: config.server_name.clone(),
        port: config.port,
        max_payload: config.max_payload,
        start: SystemTime::now(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/varz", web::get().to(varz))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals()
    .bind((config.host.as_str(), config.http_port))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("monitoring server bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addr, handle))
}
