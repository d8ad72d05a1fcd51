//! Validated configuration for each subcommand. Owns layering (defaults < `--config` TOML file <
//! environment < flags), parsing of durations, sizes and bucket URLs, and validation with one clear
//! message per problem. Does not own the CLI grammar (`cli`) or building clients from it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret that never prints itself (logs, errors, Debug output).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where objects go. Parsed from `INFINISTREAM_BUCKET_NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketUrl {
    /// `s3://bucket?endpoint=…&region=…&<any object_store AmazonS3ConfigKey>=…`
    S3 {
        bucket: String,
        /// Query options (endpoint, region, allow_http, access_key_id, …) in order.
        options: Vec<(String, String)>,
    },
    /// `file:///absolute/path`
    File { path: PathBuf },
    /// `mem://name`: process-local, for tests and demos.
    Memory { name: String },
}

/// Configuration of `infinistream agent` (and the agent inside the playground).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub group_id: String,
    pub group_key: Secret,
    pub bucket: BucketUrl,
    /// The batch window: one object per window per agent.
    pub batch_write: Duration,
    /// An object is sealed early when it reaches this size.
    pub max_object_bytes: usize,
    pub region: String,
    /// Resolved control plane base URL: `--control-plane-url` or the region's endpoint.
    pub control_plane_url: String,
    /// Interface to bind the listeners on (default 0.0.0.0).
    pub host: String,
    /// Client port (0 picks a free one).
    pub port: u16,
    pub peer_port: u16,
    pub http_port: u16,
    pub availability_zone: Option<String>,
    pub advertise_address: Option<String>,
    pub workers: usize,
    pub max_payload: usize,
    /// In-flight budget (publishes accepted but not yet acked), bytes and messages.
    pub max_inflight_bytes: usize,
    pub max_inflight_msgs: usize,
    /// Read cache size in bytes.
    pub cache_bytes: usize,
    pub graceful_shutdown_timeout: Duration,
    /// Server name in INFO (defaults to the host name).
    pub server_name: String,
}

/// Configuration of `infinistream control-plane`.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub listen: SocketAddr,
    /// None: in-memory (tests only).
    pub data_dir: Option<PathBuf>,
    pub group_id: String,
    pub group_key: Secret,
}

/// Configuration of `infinistream playground`.
#[derive(Debug, Clone)]
pub struct PlaygroundConfig {
    pub dir: PathBuf,
    /// The agent inside it (bucket = file://<dir>/bucket, control plane in process).
    pub agent: AgentConfig,
}
