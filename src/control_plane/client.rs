//! Typed HTTP client for the control plane, used by agents (and tests).
//!
//! Owns: URLs, auth headers, per-request timeouts, status/body mapping to `CpError`. Does not own:
//! retries or what to do on failure (callers decide). `awc::Client` is `!Send`: create one
//! `ControlPlaneClient` per actix arbiter thread; it needs a running actix/tokio runtime.

use std::time::Duration;

use awc::error::SendRequestError;
use awc::http::StatusCode;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Secret;
use infinistream_api::control_plane::events::{EventsQuery, EventsResponse};
use infinistream_api::control_plane::model::*;
use infinistream_api::jetstream::{ApiError, StreamState};

/// awc's TCP connector with `TCP_NODELAY`: a commit is a write of headers then a large body, and
/// with Nagle's algorithm its last segment waits for the delayed ACK of the one before (about 40 ms
/// on Linux), which was most of a commit's latency.
fn nodelay_connector() -> impl actix_service::Service<
    actix_tls::connect::ConnectInfo<awc::http::Uri>,
    Response = actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>,
    Error = actix_tls::connect::ConnectError,
> + Clone {
    use actix_service::ServiceExt;
    let tcp = actix_tls::connect::Connector::new(actix_tls::connect::Resolver::default()).service();
    tcp.map(
        |conn: actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>| {
            if let Err(e) = conn.io_ref().set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set tcp_nodelay on a control plane connection");
            }
            conn
        },
    )
}

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CpError {
    #[error("control plane refused the credentials: {0}")]
    Unauthorized(String),
    #[error("control plane answered http {status}: {message}")]
    Http { status: u16, message: String },
    #[error("control plane request timed out")]
    Timeout,
    #[error("cannot connect to the control plane: {0}")]
    Connect(String),
    #[error("control plane request failed: {0}")]
    Send(String),
    #[error("cannot read the control plane response: {0}")]
    Body(String),
    #[error("cannot decode the control plane response: {0}")]
    Decode(String),
    #[error("cannot encode the control plane request: {0}")]
    Encode(String),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (connect, send, response head and body).
    pub timeout: Duration,
    /// Sent as `x-infinistream-server-name` on `$JS.API` requests (stream leader in STREAM.INFO).
    pub server_name: Option<String>,
    /// Trust for https (`tls_with_ca`); `None`: the system roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            server_name: None,
            tls: None,
        }
    }
}

pub struct ControlPlaneClient {
    http: awc::Client,
    base_url: String,
    group_id: String,
    authorization: String,
    options: ClientOptions,
}

impl std::fmt::Debug for ControlPlaneClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneClient")
            .field("base_url", &self.base_url)
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes one path segment (stream names may hold characters URLs reserve).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why the trust for an https control plane cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the control plane CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the control plane CA file {path} is not PEM certificates: {reason}")]
    Invalid { path: String, reason: String },
    #[error("the control plane CA file {path} holds no certificate")]
    Empty { path: String },
    #[error("cannot configure tls for the control plane: {0}")]
    Config(#[from] rustls::Error),
}

/// The trust of https control planes: the system roots (`rustls-native-certs`, which honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus every certificate of `ca_file` (PEM), TLS 1.2 and
/// 1.3 with ring. Read once at startup, so a missing or broken file stops the agent at once.
pub fn tls_with_ca(
    ca_file: Option<&std::path::Path>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsError> {
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    build_tls(extra)
}

fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { path: shown });
    }
    Ok(certs)
}

fn build_tls(
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "cannot load a system root certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    let extra_count = extra.len();
    for cert in extra {
        roots.add(cert)?;
    }
    tracing::debug!(
        added,
        ignored,
        extra = extra_count,
        "control plane tls roots loaded"
    );
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// The system roots only, built once for clients given no trust of their own. None only if
/// rustls refuses the protocol versions, which it never does with the ring provider.
fn system_tls() -> Option<std::sync::Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::LazyLock<Option<std::sync::Arc<rustls::ClientConfig>>> =
        std::sync::LazyLock::new(|| match build_tls(Vec::new()) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(error = %e, "cannot configure tls for the control plane");
                None
            }
        });
    CONFIG.clone()
}

impl ControlPlaneClient {
    pub fn new(base_url: impl Into<String>, group_id: impl Into<String>, key: &Secret) -> Self {
        Self::with_options(base_url, group_id, key, ClientOptions::default())
    }

    pub fn with_options(
        base_url: impl Into<String>,
        group_id: impl Into<String>,
        key: &Secret,
        options: ClientOptions,
    ) -> Self {
        let connector = awc::Connector::new().connector(nodelay_connector());
        let tls = match &options.tls {
            Some(tls) => Some(tls.clone()),
            None => system_tls(),
        };
        let connector = match tls {
            Some(tls) => connector.rustls_0_23(tls),
            None => connector,
        };
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(options.timeout)
            .disable_redirects()
            .finish();
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            group_id: group_id.into(),
            authorization: format!("Bearer {}", key.expose()),
            options,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        self.http
            .request(method, format!("{}{}", self.base_url, path))
            .insert_header((GROUP_ID_HEADER, self.group_id.as_str()))
            .insert_header((
                awc::http::header::AUTHORIZATION,
                self.authorization.as_str(),
            ))
            .timeout(self.options.timeout)
    }

    async fn send(&self, req: awc::ClientRequest, body: Bytes) -> Result<Bytes, CpError> {
        let mut res = req.send_body(body).await.map_err(map_send_error)?;
        let status = res.status();
        let body = res
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| CpError::Body(e.to_string()))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(CpError::Unauthorized(error_message(&body)));
        }
        if !status.is_success() {
            return Err(CpError::Http {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        Ok(body)
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, CpError> {
        decode(&self.get_raw(path).await?)
    }

    async fn get_raw(&self, path: &str) -> Result<Bytes, CpError> {
        self.send(self.request(awc::http::Method::GET, path), Bytes::new())
            .await
    }

    async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<R, CpError> {
        decode(&self.post_raw(path, value).await?)
    }

    async fn post_raw<T: Serialize>(&self, path: &str, value: &T) -> Result<Bytes, CpError> {
        let json = serde_json::to_vec(value).map_err(|e| CpError::Encode(e.to_string()))?;
        let req = self
            .request(awc::http::Method::POST, path)
            .insert_header((awc::http::header::CONTENT_TYPE, "application/json"));
        self.send(req, Bytes::from(json)).await
    }

    /// Relays one `$JS.API.<api>` request payload; returns nats-server's response payload.
    pub async fn js_api(&self, api: &str, body: Bytes) -> Result<Bytes, CpError> {
        let mut req = self.request(awc::http::Method::POST, &format!("/v1/js/{}", segment(api)));
        if let Some(name) = &self.options.server_name {
            req = req.insert_header((SERVER_NAME_HEADER, name.as_str()));
        }
        self.send(req, body).await
    }

    pub async fn register(&self, request: &RegisterRequest) -> Result<Lease, CpError> {
        self.post("/v1/agents/register", request).await
    }

    pub async fn heartbeat(&self, agent_id: &str) -> Result<HeartbeatResponse, CpError> {
        self.post(
            "/v1/agents/heartbeat",
            &HeartbeatRequest {
                agent_id: agent_id.to_string(),
            },
        )
        .await
    }

    /// Leaves the virtual group at once (graceful shutdown); true if the agent was a member.
    pub async fn leave(&self, agent_id: &str) -> Result<bool, CpError> {
        #[derive(serde::Deserialize)]
        struct Left {
            left: bool,
        }
        let left: Left = self
            .post(
                "/v1/agents/leave",
                &HeartbeatRequest {
                    agent_id: agent_id.to_string(),
                },
            )
            .await?;
        Ok(left.left)
    }

    pub async fn agents(&self) -> Result<Vec<AgentInfo>, CpError> {
        let r: AgentsResponse = self.get("/v1/agents").await?;
        Ok(r.agents)
    }

    pub async fn object_ids(&self, count: u32) -> Result<Vec<u64>, CpError> {
        let r: ObjectIdsResponse = self
            .post("/v1/object-ids", &ObjectIdsRequest { count })
            .await?;
        Ok(r.ids)
    }

    /// `GET /v1/events`: held open by the control plane up to `query.wait_ms`, so this request's
    /// timeout is that much longer than the others'.
    pub async fn events(&self, query: &EventsQuery) -> Result<EventsResponse, CpError> {
        let mut path = format!("/v1/events?epoch={}&wait_ms={}", query.epoch, query.wait_ms);
        if let Some(from) = query.from {
            path.push_str(&format!("&from={from}"));
        }
        let req = self
            .request(awc::http::Method::GET, &path)
            .timeout(self.options.timeout + Duration::from_millis(query.wait_ms));
        decode(&self.send(req, Bytes::new()).await?)
    }

    pub async fn streams_since(&self, version: u64) -> Result<StreamsSnapshot, CpError> {
        self.get(&format!("/v1/streams?since={version}")).await
    }

    pub async fn commit(&self, request: &CommitRequest) -> Result<CommitResponse, CpError> {
        self.post("/v1/commit", request).await
    }

    /// Several objects in one transaction; answers in request order.
    pub async fn commit_many(
        &self,
        request: &CommitManyRequest,
    ) -> Result<Vec<CommitResponse>, CpError> {
        let r: CommitManyResponse = self.post("/v1/commits", request).await?;
        Ok(r.commits)
    }

    pub async fn record_orphan(&self, request: &OrphanRequest) -> Result<(), CpError> {
        let _: serde_json::Value = self.post("/v1/orphans", request).await?;
        Ok(())
    }

    pub async fn orphans(&self) -> Result<Vec<Orphan>, CpError> {
        let r: OrphansResponse = self.get("/v1/orphans").await?;
        Ok(r.orphans)
    }

    /// Where a message's bytes are; the inner error is a JetStream error (10037, 10059, 10003).
    pub async fn locate(
        &self,
        stream: &str,
        request: &LocateRequest,
    ) -> Result<Result<MessageLocation, ApiError>, CpError> {
        decode_api(
            &self
                .post_raw(&format!("/v1/streams/{}/locate", segment(stream)), request)
                .await?,
        )
    }

    /// A stream's state; the inner error is a JetStream error (10059).
    pub async fn state(&self, stream: &str) -> Result<Result<StreamState, ApiError>, CpError> {
        decode_api(
            &self
                .get_raw(&format!("/v1/streams/{}/state", segment(stream)))
                .await?,
        )
    }

    /// Claims a consumer's next messages; the inner error is a JetStream error (10014).
    pub async fn consumer_claim(
        &self,
        request: &infinistream_api::control_plane::consumers::ClaimRequest,
    ) -> Result<Result<infinistream_api::control_plane::consumers::ClaimResponse, ApiError>, CpError>
    {
        decode_api(&self.post_raw("/v1/consumers/claim", request).await?)
    }

    /// Reports changed waiting-request counts (CONSUMER.INFO `num_waiting`).
    pub async fn consumer_waiting(
        &self,
        report: &infinistream_api::control_plane::consumers::WaitingReport,
    ) -> Result<serde_json::Value, CpError> {
        self.post("/v1/consumers/waiting", report).await
    }

    /// Applies a batch of consumer acks.
    pub async fn consumer_ack(
        &self,
        batch: &infinistream_api::control_plane::consumers::AckBatch,
    ) -> Result<infinistream_api::control_plane::consumers::AckBatchResponse, CpError> {
        self.post("/v1/consumers/ack", batch).await
    }

    /// Takes or renews push consumer leases.
    pub async fn consumer_lease(
        &self,
        request: &infinistream_api::control_plane::consumers::LeaseRequest,
    ) -> Result<infinistream_api::control_plane::consumers::LeaseResponse, CpError> {
        self.post("/v1/consumers/lease", request).await
    }

    /// True when `/healthz` answers 200.
    pub async fn healthy(&self) -> Result<bool, CpError> {
        let res = self
            .http
            .get(format!("{}/healthz", self.base_url))
            .timeout(self.options.timeout)
            .send()
            .await
            .map_err(map_send_error)?;
        Ok(res.status().is_success())
    }
}

fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<R, CpError> {
    serde_json::from_slice(body).map_err(|e| CpError::Decode(e.to_string()))
}

/// An `ApiResult<R>` body. Not through its untagged `Deserialize`: serde buffers an untagged
/// value whole before trying each variant, which made decoding a claim of hundreds of messages
/// the largest cost of pulling them. The control plane writes errors as `{"error":…}`.
fn decode_api<R: DeserializeOwned>(body: &[u8]) -> Result<Result<R, ApiError>, CpError> {
    #[derive(serde::Deserialize)]
    struct ErrorOnly {
        error: ApiError,
    }
    let is_error = body
        .trim_ascii_start()
        .strip_prefix(b"{")
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"error\""));
    if is_error {
        decode::<ErrorOnly>(body).map(|e| Err(e.error))
    } else {
        decode(body).map(Ok)
    }
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned())
}

fn map_send_error(e: SendRequestError) -> CpError {
    match e {
        SendRequestError::Timeout => CpError::Timeout,
        SendRequestError::Connect(c) => match c {
            awc::error::ConnectError::Timeout => CpError::Timeout,
            other => CpError::Connect(other.to_string()),
        },
        other => CpError::Send(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_results_decode_without_untagged_buffering() {
        let ok: Result<StreamState, ApiError> =
            decode_api(br#"{"messages":2,"bytes":3,"first_seq":1,"first_ts":"1970-01-01T00:00:00Z","last_seq":2,"last_ts":"1970-01-01T00:00:00Z","consumer_count":0}"#)
                .expect("decodes");
        assert_eq!(ok.expect("ok").messages, 2);
        let err: Result<StreamState, ApiError> = decode_api(
            br#" { "error":{"code":404,"err_code":10059,"description":"stream not found"}}"#,
        )
        .expect("decodes");
        assert_eq!(err.expect_err("api error"), ApiError::stream_not_found());
        assert!(decode_api::<StreamState>(b"[]").is_err());
    }

    #[test]
    fn a_ca_file_must_exist_and_hold_certificates() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("absent.pem");
        let err = tls_with_ca(Some(&missing)).expect_err("missing file");
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        let text = dir.path().join("notes.pem");
        std::fs::write(&text, "not a certificate\n").expect("write");
        let err = tls_with_ca(Some(&text)).expect_err("no certificate");
        assert!(matches!(err, TlsError::Empty { .. }), "{err}");
        assert!(tls_with_ca(None).is_ok());
    }
}
