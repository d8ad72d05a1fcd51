//! What an agent is configured with: [`AgentConfig`], the defaults and bounds of every setting,
//! and the known regions' control plane endpoints.
//!
//! Owns: the settings' types and defaults (pure values; the only ambient reads are the defaults
//! that depend on the machine: worker count and host name). Does not own: layering flags,
//! environment and files into these values (the binary's `cmd::layering`), the CLI grammar
//! (`cmd::cli`), value syntax (`values`) or bucket URLs (`bucket`).

use std::path::PathBuf;
use std::time::Duration;

pub use crate::bucket::BucketUrl;
pub use infinistream_api::Secret;

/// Prefix of every environment variable: `INFINISTREAM_<FLAG NAME WITH UNDERSCORES>`.
pub const ENV_PREFIX: &str = "INFINISTREAM_";

pub const DEFAULT_BATCH_WRITE: Duration = Duration::from_millis(250);
pub const MIN_BATCH_WRITE: Duration = Duration::from_millis(50);
pub const MAX_BATCH_WRITE: Duration = Duration::from_millis(500);
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_HOST: &str = "0.0.0.0";
pub const DEFAULT_PORT: u16 = 4222;
pub const DEFAULT_PEER_PORT: u16 = 9222;
pub const DEFAULT_HTTP_PORT: u16 = 8222;
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// nats-server refuses a max_payload above 64 MiB; so do we.
pub const MAX_MAX_PAYLOAD: usize = 64 * 1024 * 1024;
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_MAX_OBJECT_BYTES: usize = 1024 * 1024 * 1024;
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_MAX_INFLIGHT_MSGS: usize = 100_000;
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_WORKERS: usize = 1024;

/// Control plane endpoint of each known region.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "https://api-use1.infinistream.io"),
    ("us-east-2", "https://api-use2.infinistream.io"),
    ("us-west-2", "https://api-usw2.infinistream.io"),
    ("eu-west-1", "https://api-euw1.infinistream.io"),
    ("eu-central-1", "https://api-euc1.infinistream.io"),
    ("ap-southeast-1", "https://api-apse1.infinistream.io"),
];

/// The control plane endpoint of a known region.
pub fn region_endpoint(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, url)| *url)
}

pub fn known_regions() -> String {
    REGIONS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
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
    /// PEM file of CA certificates trusted for an https control plane, beside the system roots.
    pub control_plane_ca: Option<PathBuf>,
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

impl AgentConfig {
    /// An agent configuration with every default, as `infinistream agent` would build it from
    /// just the three required values. Tests usually then set the ports to 0 and
    /// `control_plane_url` to their control plane.
    pub fn new(group_id: impl Into<String>, group_key: Secret, bucket: BucketUrl) -> Self {
        Self::with_runtime(group_id, group_key, bucket, Runtime::default())
    }

    /// The required values plus the runtime settings every subcommand that runs an agent shares.
    pub fn with_runtime(
        group_id: impl Into<String>,
        group_key: Secret,
        bucket: BucketUrl,
        runtime: Runtime,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            group_key,
            bucket,
            region: DEFAULT_REGION.to_owned(),
            control_plane_url: region_endpoint(DEFAULT_REGION)
                .unwrap_or_default()
                .to_owned(),
            availability_zone: None,
            advertise_address: None,
            control_plane_ca: None,
            batch_write: runtime.batch_write,
            max_object_bytes: runtime.max_object_bytes,
            host: runtime.host,
            port: runtime.port,
            peer_port: runtime.peer_port,
            http_port: runtime.http_port,
            workers: runtime.workers,
            max_payload: runtime.max_payload,
            max_inflight_bytes: runtime.max_inflight_bytes,
            max_inflight_msgs: runtime.max_inflight_msgs,
            cache_bytes: runtime.cache_bytes,
            graceful_shutdown_timeout: runtime.graceful_shutdown_timeout,
            server_name: runtime.server_name,
        }
    }
}

/// The default server name: the host name, else "infinistream".
pub fn default_server_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        .unwrap_or_else(|| "infinistream".to_owned())
}

/// Settings shared by the agent and the playground's agent.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub batch_write: Duration,
    pub host: String,
    pub port: u16,
    pub peer_port: u16,
    pub http_port: u16,
    pub workers: usize,
    pub max_payload: usize,
    pub max_object_bytes: usize,
    pub max_inflight_bytes: usize,
    pub max_inflight_msgs: usize,
    pub cache_bytes: usize,
    pub graceful_shutdown_timeout: Duration,
    pub server_name: String,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            batch_write: DEFAULT_BATCH_WRITE,
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            peer_port: DEFAULT_PEER_PORT,
            http_port: DEFAULT_HTTP_PORT,
            workers: crate::workers::default_workers(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            max_inflight_msgs: DEFAULT_MAX_INFLIGHT_MSGS,
            cache_bytes: DEFAULT_CACHE_BYTES,
            graceful_shutdown_timeout: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
            server_name: default_server_name(),
        }
    }
}
