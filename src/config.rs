//! Validated configuration for each subcommand. Owns layering (defaults < `--config` TOML file <
//! environment < flags), parsing of durations, sizes and bucket URLs, and validation with one clear
//! message per problem. Does not own the CLI grammar (`cli`) or building clients from it
//! (`bucket` builds the object store).
//!
//! Every function here is pure with respect to the process: arguments and environment come in as
//! values, so tests never touch the process environment. The only ambient reads are the defaults
//! that depend on the machine (worker count, host name, current directory for the playground).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{FileFormat, Map, Source, Value, ValueKind};
use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::cli;
use crate::logging::LogFormat;

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
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./infinistream-control-plane";
pub const DEFAULT_PLAYGROUND_DIR: &str = "./infinistream-data";
pub const PLAYGROUND_GROUP_ID: &str = "playground";
/// Placeholder control plane URL of the playground's agent: the playground binds its in-process
/// control plane first and replaces this with the real address.
pub const PLAYGROUND_CONTROL_PLANE_PLACEHOLDER: &str = "http://127.0.0.1:0";
/// Schemes accepted in a bucket URL, as printed in error messages.
pub const BUCKET_SCHEMES: &str = "s3://, gs://, az://, file://, mem://";

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

fn known_regions() -> String {
    REGIONS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

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
///
/// `Debug` and `Display` print the [`BucketUrl::redacted`] form, so credentials in the query never
/// reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub enum BucketUrl {
    /// `s3://bucket?endpoint=…&region=…&<any object_store AmazonS3ConfigKey>=…`
    S3 {
        bucket: String,
        /// Query options (endpoint, region, allow_http, access_key_id, …) in order.
        options: Vec<(String, String)>,
    },
    /// `gs://bucket?<any object_store GoogleConfigKey>=…` (Google Cloud Storage)
    Gcs {
        bucket: String,
        /// Query options (service_account_key, base_url, …) in order.
        options: Vec<(String, String)>,
    },
    /// `az://container?account_name=…&<any object_store AzureConfigKey>=…` (Azure Blob Storage)
    Azure {
        container: String,
        /// Query options (account_name, access_key, endpoint, use_emulator, …) in order.
        options: Vec<(String, String)>,
    },
    /// `file:///absolute/path`
    File { path: PathBuf },
    /// `mem://name`: process-local, for tests and demos.
    Memory { name: String },
}

/// Why a bucket URL is refused. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketUrlError {
    #[error("not a URL")]
    NotAUrl,
    #[error("unsupported scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("missing bucket name ({0}://BUCKET?…)")]
    MissingBucket(&'static str),
    #[error("invalid bucket name {0:?}: use letters, digits, '.', '-' or '_' (at most 255)")]
    InvalidBucketName(String),
    #[error("a path after the bucket name is not supported")]
    S3Path,
    #[error(
        "credentials in the URL user info are not supported: use the access_key_id and secret_access_key options"
    )]
    UserInfo,
    #[error("invalid option: {0}")]
    Option(String),
    #[error("a file URL must hold an absolute path: file:///path/to/dir")]
    FileNotAbsolute,
    #[error("a file URL takes no query")]
    FileQuery,
    #[error("missing store name (mem://NAME)")]
    MissingMemoryName,
    #[error("a mem URL is just a name (mem://NAME)")]
    MemoryExtra,
}

/// Option names whose values are credentials, compared without any `aws_`, `google_`,
/// `azure_storage_` or `azure_` prefix.
const SECRET_OPTIONS: &[&str] = &[
    // S3
    "access_key_id",
    "secret_access_key",
    "session_token",
    "token",
    "sse_customer_key_base64",
    // Google Cloud Storage
    "service_account_key",
    "bearer_token",
    // Azure
    "access_key",
    "account_key",
    "master_key",
    "client_secret",
    "sas_key",
    "sas_token",
    "encryption_key",
    "fabric_session_token",
];

/// Whether a bucket URL option value is a credential that must never be printed.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let key = ["aws_", "google_", "azure_storage_", "azure_"]
        .iter()
        .find_map(|prefix| key.strip_prefix(prefix))
        .unwrap_or(&key);
    SECRET_OPTIONS.contains(&key)
}

/// The cloud object stores a bucket URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    S3,
    Gcs,
    Azure,
}

impl Cloud {
    fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
            Cloud::Azure => "az",
        }
    }

    fn validate(self, key: &str, value: &str) -> Result<(), crate::bucket::BucketError> {
        match self {
            Cloud::S3 => crate::bucket::parse_s3_option(key, value).map(drop),
            Cloud::Gcs => crate::bucket::parse_gcs_option(key, value).map(drop),
            Cloud::Azure => crate::bucket::parse_azure_option(key, value).map(drop),
        }
    }
}

fn redact_options(out: &mut String, options: &[(String, String)]) {
    for (index, (key, value)) in options.iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(if is_secret_option(key) { "***" } else { value });
    }
}

impl BucketUrl {
    /// Parses `s3://bucket?k=v&…`, `gs://bucket?k=v&…`, `az://container?k=v&…`,
    /// `file:///abs/path` or `mem://name`.
    ///
    /// In S3 query values `%XX` escapes are decoded but `+` is kept as is: AWS secret keys
    /// contain `+`, and no option value ever needs a space.
    pub fn parse(s: &str) -> Result<BucketUrl, BucketUrlError> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(BucketUrlError::NotAUrl);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "s3" => parse_cloud(Cloud::S3, rest),
            "gs" => parse_cloud(Cloud::Gcs, rest),
            "az" | "azure" => parse_cloud(Cloud::Azure, rest),
            "file" => parse_file(s),
            "mem" | "memory" => parse_memory(rest),
            other => Err(BucketUrlError::UnsupportedScheme(other.to_owned())),
        }
    }

    /// The URL with credential values masked (`***`), for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            BucketUrl::S3 { bucket, options } => {
                let mut out = format!("s3://{bucket}");
                redact_options(&mut out, options);
                out
            }
            BucketUrl::Gcs { bucket, options } => {
                let mut out = format!("gs://{bucket}");
                redact_options(&mut out, options);
                out
            }
            BucketUrl::Azure { container, options } => {
                let mut out = format!("az://{container}");
                redact_options(&mut out, options);
                out
            }
            BucketUrl::File { path } => format!("file://{}", path.display()),
            BucketUrl::Memory { name } => format!("mem://{name}"),
        }
    }

    /// The value of a cloud store's option (last one wins), by exact key.
    pub fn option(&self, key: &str) -> Option<&str> {
        match self {
            BucketUrl::S3 { options, .. }
            | BucketUrl::Gcs { options, .. }
            | BucketUrl::Azure { options, .. } => options
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for BucketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketUrl({})", self.redacted())
    }
}

fn parse_cloud(cloud: Cloud, rest: &str) -> Result<BucketUrl, BucketUrlError> {
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    if authority.contains('@') {
        return Err(BucketUrlError::UserInfo);
    }
    let bucket = authority.strip_suffix('/').unwrap_or(authority);
    if bucket.contains('/') {
        return Err(BucketUrlError::S3Path);
    }
    if bucket.is_empty() {
        return Err(BucketUrlError::MissingBucket(cloud.scheme()));
    }
    let valid_name = bucket.len() <= 255
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid_name {
        return Err(BucketUrlError::InvalidBucketName(bucket.to_owned()));
    }
    let mut options = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)
            .ok_or_else(|| BucketUrlError::Option(format!("bad %-escape in a key near {key:?}")))?
            .to_ascii_lowercase();
        let value = percent_decode(value)
            .ok_or_else(|| BucketUrlError::Option(format!("bad %-escape in the value of {key}")))?;
        cloud
            .validate(&key, &value)
            .map_err(|err| BucketUrlError::Option(err.to_string()))?;
        options.push((key, value));
    }
    let bucket = bucket.to_owned();
    Ok(match cloud {
        Cloud::S3 => BucketUrl::S3 { bucket, options },
        Cloud::Gcs => BucketUrl::Gcs { bucket, options },
        Cloud::Azure => BucketUrl::Azure {
            container: bucket,
            options,
        },
    })
}

fn parse_file(s: &str) -> Result<BucketUrl, BucketUrlError> {
    let url = url::Url::parse(s).map_err(|_| BucketUrlError::NotAUrl)?;
    if url.query().is_some() {
        return Err(BucketUrlError::FileQuery);
    }
    match url.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(_) => return Err(BucketUrlError::FileNotAbsolute),
    }
    let path = url
        .to_file_path()
        .map_err(|_| BucketUrlError::FileNotAbsolute)?;
    Ok(BucketUrl::File { path })
}

fn parse_memory(rest: &str) -> Result<BucketUrl, BucketUrlError> {
    let name = rest.strip_suffix('/').unwrap_or(rest);
    if name.is_empty() {
        return Err(BucketUrlError::MissingMemoryName);
    }
    if name.contains(['/', '?', '#', '@']) {
        return Err(BucketUrlError::MemoryExtra);
    }
    Ok(BucketUrl::Memory {
        name: name.to_owned(),
    })
}

/// `%XX` decoding that keeps `+` literal. None on a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A bucket URL as it may appear in an error: credentials masked, and nothing of the value at all
/// when it cannot be understood well enough to know where a credential would be.
fn redact_raw_bucket(raw: &str) -> String {
    if let Ok(url) = BucketUrl::parse(raw) {
        return url.redacted();
    }
    match raw.split_once('?') {
        None if !raw.contains('@') => raw.to_owned(),
        None => "<hidden>".to_owned(),
        Some((base, query)) => {
            if base.contains('@') {
                return "<hidden>".to_owned();
            }
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret_option(key) => format!("{key}=***"),
                    Some((key, value)) => format!("{key}={value}"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", masked.join("&"))
        }
    }
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
    fn with_runtime(
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
    /// The agent inside it (bucket = file://<dir>/bucket, control plane in process). Its group is
    /// [`PLAYGROUND_GROUP_ID`] with a key generated per run, its region "local", and its
    /// `control_plane_url` is [`PLAYGROUND_CONTROL_PLANE_PLACEHOLDER`] until the playground binds
    /// its control plane.
    pub agent: AgentConfig,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The long flag, e.g. `--port` (also for `-p` and options files).
    Flag(String),
    /// The environment variable, e.g. `INFINISTREAM_PORT`.
    Env(String),
    /// The `--config` file.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Env(var) => f.write_str(var),
            Origin::File(path) => write!(f, "config file {}", path.display()),
        }
    }
}

/// One configuration problem; its `Display` is the one line printed after `error: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A mandatory value is absent from every layer.
    Missing {
        what: String,
        flag: String,
        env: String,
    },
    /// A value that does not parse or is out of bounds. `value` is None for secrets.
    Invalid {
        what: String,
        value: Option<String>,
        origin: Origin,
        reason: String,
    },
    BatchWriteOutOfRange {
        value: String,
        origin: Origin,
    },
    /// `value` is already redacted.
    Bucket {
        value: String,
        origin: Origin,
        reason: BucketUrlError,
    },
    UnknownRegion {
        region: String,
        origin: Origin,
    },
    /// Values that are fine alone but not together.
    Conflict(String),
    ConfigFile {
        path: PathBuf,
        reason: String,
    },
    UnknownKey {
        path: PathBuf,
        key: String,
    },
    OptionsFile {
        path: PathBuf,
        reason: String,
    },
    /// A grammar error from the command line (unknown flag, …).
    Usage(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing { what, flag, env } => {
                write!(f, "missing {what}: set {flag} or {env}")
            }
            ConfigError::Invalid {
                what,
                value: Some(value),
                origin,
                reason,
            } => write!(f, "invalid {what} {value:?} from {origin}: {reason}"),
            ConfigError::Invalid {
                what,
                value: None,
                origin,
                reason,
            } => write!(f, "invalid {what} from {origin}: {reason}"),
            ConfigError::BatchWriteOutOfRange { value, origin } => write!(
                f,
                "batch write {value:?} from {origin} is out of range: the valid range is {}–{}",
                format_duration(MIN_BATCH_WRITE),
                format_duration(MAX_BATCH_WRITE)
            ),
            ConfigError::Bucket {
                value,
                origin,
                reason,
            } => write!(
                f,
                "invalid bucket URL {value:?} from {origin}: {reason}; accepted schemes: {BUCKET_SCHEMES}"
            ),
            ConfigError::UnknownRegion { region, origin } => write!(
                f,
                "unknown region {region:?} from {origin}: known regions are {}",
                known_regions()
            ),
            ConfigError::Conflict(message) | ConfigError::Usage(message) => f.write_str(message),
            ConfigError::ConfigFile { path, reason } => {
                write!(f, "config file {}: {reason}", path.display())
            }
            ConfigError::UnknownKey { path, key } => write!(
                f,
                "config file {}: unknown key {key:?} (keys are the long flag names)",
                path.display()
            ),
            ConfigError::OptionsFile { path, reason } => {
                write!(f, "options file {}: {reason}", path.display())
            }
        }
    }
}

/// Every problem found, in a stable order. `Display` prints one `error: …` line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

// ---------------------------------------------------------------------------------------------
// Public entry points.

/// Loads `infinistream agent`'s configuration. `args` are the arguments after the subcommand
/// (no program or subcommand name); `@file` arguments are options files.
pub fn load_agent(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<AgentConfig, ConfigErrors> {
    let matches = cli::parse_subcommand(cli::AGENT, args)?;
    agent_from_matches(&matches, env).map(|(cfg, _)| cfg)
}

/// Loads `infinistream control-plane`'s configuration; `args` as for [`load_agent`].
pub fn load_control_plane(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<ControlPlaneConfig, ConfigErrors> {
    let matches = cli::parse_subcommand(cli::CONTROL_PLANE, args)?;
    control_plane_from_matches(&matches, env).map(|(cfg, _)| cfg)
}

/// Loads `infinistream playground`'s configuration; `args` as for [`load_agent`].
pub fn load_playground(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<PlaygroundConfig, ConfigErrors> {
    let matches = cli::parse_subcommand(cli::PLAYGROUND, args)?;
    playground_from_matches(&matches, env).map(|(cfg, _)| cfg)
}

pub(crate) fn agent_from_matches(
    matches: &ArgMatches,
    env: &HashMap<String, String>,
) -> Result<(AgentConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(cli::AGENT, matches, env);
    let group_id = r.required("group_id", "group id");
    let group_key = r.required_secret("group_key", "group key");
    let bucket = r.bucket("bucket_name");
    let region = r.string("region", DEFAULT_REGION);
    let control_plane_url = match r.get("control_plane_url") {
        Some((value, origin)) => {
            let (value, origin) = (value.to_owned(), origin.clone());
            r.check("control plane URL", &value, &origin, parse_http_url(&value))
        }
        None => match region_endpoint(&region) {
            Some(url) => Some(url.to_owned()),
            None => {
                let origin = r.origin("region");
                r.errors.push(ConfigError::UnknownRegion {
                    region: region.clone(),
                    origin,
                });
                None
            }
        },
    };
    let control_plane_ca = r.optional_string("control_plane_ca").map(PathBuf::from);
    let availability_zone = r.optional_string("availability_zone");
    let advertise_address = r
        .optional_string("advertise_address")
        .filter(|a| !a.eq_ignore_ascii_case("auto"));
    let runtime = r.runtime();
    let log_format = r.log_format();
    r.finish()?;

    // Every `None` above pushed an error, so finish() returned early; these are unreachable
    // fallbacks kept only to avoid panicking paths.
    let (Some(group_id), Some(group_key), Some(bucket), Some(control_plane_url)) =
        (group_id, group_key, bucket, control_plane_url)
    else {
        return Err(ConfigError::Usage("incomplete configuration".to_owned()).into());
    };
    let cfg = AgentConfig {
        group_id,
        group_key,
        bucket,
        region,
        control_plane_url,
        control_plane_ca,
        availability_zone,
        advertise_address,
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
    };
    Ok((cfg, log_format))
}

pub(crate) fn control_plane_from_matches(
    matches: &ArgMatches,
    env: &HashMap<String, String>,
) -> Result<(ControlPlaneConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(cli::CONTROL_PLANE, matches, env);
    let group_id = r.required("group_id", "group id");
    let group_key = r.required_secret("group_key", "group key");
    let listen = r.parsed(
        "listen",
        "listen address",
        Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        |s| {
            s.parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| "must be an IP address and port, such as 127.0.0.1:8080".to_owned())
        },
    );
    let in_memory = r.parsed("in_memory", "in-memory switch", false, parse_bool);
    let data_dir = match (in_memory, r.get("data_dir")) {
        (true, Some((_, origin))) => {
            let origin = origin.clone();
            r.errors.push(ConfigError::Conflict(format!(
                "--in-memory and a data directory (from {origin}) cannot be used together"
            )));
            None
        }
        (true, None) => None,
        (false, _) => Some(PathBuf::from(r.string("data_dir", DEFAULT_DATA_DIR))),
    };
    let log_format = r.log_format();
    r.finish()?;
    let (Some(group_id), Some(group_key), Some(listen)) = (group_id, group_key, listen) else {
        return Err(ConfigError::Usage("incomplete configuration".to_owned()).into());
    };
    Ok((
        ControlPlaneConfig {
            listen,
            data_dir,
            group_id,
            group_key,
        },
        log_format,
    ))
}

pub(crate) fn playground_from_matches(
    matches: &ArgMatches,
    env: &HashMap<String, String>,
) -> Result<(PlaygroundConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(cli::PLAYGROUND, matches, env);
    let dir = absolute(Path::new(&r.string("dir", DEFAULT_PLAYGROUND_DIR)));
    let runtime = r.runtime();
    let log_format = r.log_format();
    r.finish()?;
    let mut agent = AgentConfig::with_runtime(
        PLAYGROUND_GROUP_ID,
        Secret::new(generate_key()),
        BucketUrl::File {
            path: dir.join("bucket"),
        },
        runtime,
    );
    agent.region = "local".to_owned();
    agent.control_plane_url = PLAYGROUND_CONTROL_PLANE_PLACEHOLDER.to_owned();
    Ok((PlaygroundConfig { dir, agent }, log_format))
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path.strip_prefix(".").unwrap_or(path)),
        Err(_) => path.to_path_buf(),
    }
}

fn generate_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

// ---------------------------------------------------------------------------------------------
// Layering.

const FLAG_ORIGIN: &str = "\u{0}flag";
const ENV_ORIGIN: &str = "\u{0}env";

/// One layer handed to the `config` crate, values tagged with where they came from.
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<Map<String, Value>, ::config::ConfigError> {
        Ok(self.0.clone())
    }
}

fn string_layer(origin: &str, entries: impl IntoIterator<Item = (String, String)>) -> Layer {
    let origin = origin.to_owned();
    Layer(
        entries
            .into_iter()
            .map(|(key, value)| (key, Value::new(Some(&origin), ValueKind::String(value))))
            .collect(),
    )
}

/// The keys (arg ids, i.e. long flag names with underscores) that take part in layering.
fn layered_keys(subcommand: &str) -> Vec<String> {
    let cmd = cli::command();
    let Some(sub) = cmd.get_subcommands().find(|s| s.get_name() == subcommand) else {
        return Vec::new();
    };
    sub.get_arguments()
        .filter(|arg| arg.get_long().is_some())
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|id| !matches!(id.as_str(), "config" | "help" | "version"))
        .collect()
}

pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Resolved raw values: key -> (value, origin).
type Resolved = HashMap<String, (String, Origin)>;

fn resolve(
    subcommand: &str,
    matches: &ArgMatches,
    env: &HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> Resolved {
    let keys = layered_keys(subcommand);
    let mut builder = ::config::Config::builder();

    let config_file = match matches.get_one::<PathBuf>("config") {
        Some(path) if matches.value_source("config") == Some(ValueSource::CommandLine) => {
            Some(path.clone())
        }
        _ => env
            .get("INFINISTREAM_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    if let Some(path) = &config_file
        && let Some(layer) = read_config_file(path, &keys, errors)
    {
        builder = builder.add_source(layer);
    }

    let env_layer = keys.iter().filter_map(|key| {
        env.get(&env_name(key))
            .filter(|v| !v.is_empty())
            .map(|v| (key.clone(), v.clone()))
    });
    builder = builder.add_source(string_layer(ENV_ORIGIN, env_layer));

    let flag_layer = keys.iter().filter_map(|key| {
        if matches.value_source(key) != Some(ValueSource::CommandLine) {
            return None;
        }
        let value = match matches.try_get_one::<String>(key) {
            Ok(Some(value)) => value.clone(),
            _ => match matches.try_get_one::<bool>(key) {
                Ok(Some(value)) => value.to_string(),
                _ => return None,
            },
        };
        Some((key.clone(), value))
    });
    builder = builder.add_source(string_layer(FLAG_ORIGIN, flag_layer));

    let mut resolved = Resolved::new();
    let table = match builder.build().and_then(|cfg| cfg.cache.into_table()) {
        Ok(table) => table,
        Err(err) => {
            errors.push(ConfigError::Usage(format!(
                "cannot merge the configuration: {err}"
            )));
            return resolved;
        }
    };
    for (key, value) in table {
        let origin = match value.origin() {
            Some(FLAG_ORIGIN) => Origin::Flag(flag_name(&key)),
            Some(ENV_ORIGIN) => Origin::Env(env_name(&key)),
            _ => Origin::File(config_file.clone().unwrap_or_default()),
        };
        match value.into_string() {
            Ok(text) => {
                resolved.insert(key, (text, origin));
            }
            Err(_) => errors.push(ConfigError::Invalid {
                what: key.replace('_', " "),
                value: None,
                origin,
                reason: "must be a single value, not a table or a list".to_owned(),
            }),
        }
    }
    resolved
}

/// Reads the TOML file into a layer with normalized keys, reporting unknown keys.
fn read_config_file(path: &Path, keys: &[String], errors: &mut Vec<ConfigError>) -> Option<Layer> {
    let file = ::config::File::from(path)
        .format(FileFormat::Toml)
        .required(true);
    let table = match ::config::Config::builder()
        .add_source(file)
        .build()
        .and_then(|cfg| cfg.cache.into_table())
    {
        Ok(table) => table,
        Err(err) => {
            let reason = if path.exists() {
                format!("cannot parse it as TOML: {err}")
            } else {
                "not found".to_owned()
            };
            errors.push(ConfigError::ConfigFile {
                path: path.to_path_buf(),
                reason,
            });
            return None;
        }
    };
    let mut layer = Map::new();
    let mut entries: Vec<(String, Value)> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (raw_key, value) in entries {
        let key = raw_key.replace('-', "_").to_ascii_lowercase();
        if !keys.contains(&key) {
            errors.push(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: raw_key,
            });
            continue;
        }
        layer.insert(key, value);
    }
    Some(Layer(layer))
}

// ---------------------------------------------------------------------------------------------
// Typed reading with error collection.

/// Settings shared by the agent and the playground's agent.
#[derive(Debug, Clone)]
struct Runtime {
    batch_write: Duration,
    host: String,
    port: u16,
    peer_port: u16,
    http_port: u16,
    workers: usize,
    max_payload: usize,
    max_object_bytes: usize,
    max_inflight_bytes: usize,
    max_inflight_msgs: usize,
    cache_bytes: usize,
    graceful_shutdown_timeout: Duration,
    server_name: String,
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

struct Reader {
    values: Resolved,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn new(subcommand: &str, matches: &ArgMatches, env: &HashMap<String, String>) -> Self {
        let mut errors = Vec::new();
        let values = resolve(subcommand, matches, env, &mut errors);
        Self { values, errors }
    }

    fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn get(&self, key: &str) -> Option<(&str, &Origin)> {
        self.values
            .get(key)
            .map(|(value, origin)| (value.as_str(), origin))
    }

    fn origin(&self, key: &str) -> Origin {
        self.values
            .get(key)
            .map(|(_, origin)| origin.clone())
            .unwrap_or_else(|| Origin::Flag(flag_name(key)))
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.get(key)
            .map(|(v, _)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    fn optional_string(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|(v, _)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn missing(&mut self, key: &str, what: &str) {
        self.errors.push(ConfigError::Missing {
            what: what.to_owned(),
            flag: flag_name(key),
            env: env_name(key),
        });
    }

    fn required(&mut self, key: &str, what: &str) -> Option<String> {
        let value = self.optional_string(key);
        if value.is_none() {
            self.missing(key, what);
        }
        value
    }

    fn required_secret(&mut self, key: &str, what: &str) -> Option<Secret> {
        match self.get(key) {
            Some((value, _)) if !value.trim().is_empty() => Some(Secret::new(value.trim())),
            _ => {
                self.missing(key, what);
                None
            }
        }
    }

    fn check<T>(
        &mut self,
        what: &str,
        value: &str,
        origin: &Origin,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(reason) => {
                self.errors.push(ConfigError::Invalid {
                    what: what.to_owned(),
                    value: Some(value.to_owned()),
                    origin: origin.clone(),
                    reason,
                });
                None
            }
        }
    }

    /// Parses `key` if set, else returns `default`; on error records it and returns `default`.
    fn parsed<T>(
        &mut self,
        key: &str,
        what: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        let Some((value, origin)) = self.get(key) else {
            return default;
        };
        let (value, origin) = (value.trim().to_owned(), origin.clone());
        self.check(what, &value, &origin, parse(&value))
            .unwrap_or(default)
    }

    fn bucket(&mut self, key: &str) -> Option<BucketUrl> {
        let Some((raw, origin)) = self.get(key) else {
            self.missing(key, "bucket URL");
            return None;
        };
        let (raw, origin) = (raw.trim().to_owned(), origin.clone());
        if raw.is_empty() {
            self.missing(key, "bucket URL");
            return None;
        }
        match BucketUrl::parse(&raw) {
            Ok(url) => Some(url),
            Err(reason) => {
                self.errors.push(ConfigError::Bucket {
                    value: redact_raw_bucket(&raw),
                    origin,
                    reason,
                });
                None
            }
        }
    }

    /// The format asked for, `None` when unset (the binary then decides by the terminal).
    fn log_format(&mut self) -> Option<LogFormat> {
        self.parsed("log_format", "log format", None, |s| {
            s.parse::<LogFormat>().map(Some)
        })
    }

    fn runtime(&mut self) -> Runtime {
        let batch_write = match self.get("batch_write") {
            None => DEFAULT_BATCH_WRITE,
            Some((value, origin)) => {
                let (value, origin) = (value.trim().to_owned(), origin.clone());
                match parse_duration(&value, Duration::from_millis(1)) {
                    Ok(d) if (MIN_BATCH_WRITE..=MAX_BATCH_WRITE).contains(&d) => d,
                    Ok(_) => {
                        self.errors
                            .push(ConfigError::BatchWriteOutOfRange { value, origin });
                        DEFAULT_BATCH_WRITE
                    }
                    Err(reason) => {
                        self.check::<()>("batch write", &value, &origin, Err(reason));
                        DEFAULT_BATCH_WRITE
                    }
                }
            }
        };
        let host = self.parsed("host", "host", DEFAULT_HOST.to_owned(), parse_host);
        let port = self.parsed("port", "port", DEFAULT_PORT, parse_port);
        let peer_port = self.parsed("peer_port", "peer port", DEFAULT_PEER_PORT, parse_port);
        let http_port = self.parsed("http_port", "HTTP port", DEFAULT_HTTP_PORT, parse_port);
        let named = [
            ("--port", port),
            ("--peer-port", peer_port),
            ("--http-port", http_port),
        ];
        for (i, (name_a, a)) in named.iter().enumerate() {
            for (name_b, b) in &named[i + 1..] {
                if *a != 0 && a == b {
                    self.errors.push(ConfigError::Conflict(format!(
                        "{name_a} and {name_b} are both {a}: each listener needs its own port"
                    )));
                }
            }
        }
        let workers = match self.get("workers") {
            None => crate::workers::default_workers(),
            Some(_) => self.parsed("workers", "worker count", 1, |s| {
                parse_count(s, 1, MAX_WORKERS)
            }),
        };
        let max_payload = self.parsed("max_payload", "max payload", DEFAULT_MAX_PAYLOAD, |s| {
            parse_size_in(s, 1, MAX_MAX_PAYLOAD)
        });
        let max_object_bytes = self.parsed(
            "max_object_bytes",
            "max object bytes",
            DEFAULT_MAX_OBJECT_BYTES,
            |s| parse_size_in(s, 1024, MAX_MAX_OBJECT_BYTES),
        );
        if max_payload > max_object_bytes {
            self.errors.push(ConfigError::Conflict(format!(
                "max payload ({}) is larger than max object bytes ({}): a message must fit in one object",
                format_size(max_payload),
                format_size(max_object_bytes)
            )));
        }
        let max_inflight_bytes = self.parsed(
            "max_inflight_bytes",
            "max in-flight bytes",
            DEFAULT_MAX_INFLIGHT_BYTES,
            |s| parse_size_in(s, 1, usize::MAX),
        );
        if max_inflight_bytes < max_payload {
            self.errors.push(ConfigError::Conflict(format!(
                "max in-flight bytes ({}) is smaller than max payload ({}): a message must fit in the in-flight budget",
                format_size(max_inflight_bytes),
                format_size(max_payload)
            )));
        }
        let max_inflight_msgs = self.parsed(
            "max_inflight_msgs",
            "max in-flight messages",
            DEFAULT_MAX_INFLIGHT_MSGS,
            |s| parse_count(s, 1, usize::MAX),
        );
        let cache_bytes = self.parsed("cache_bytes", "cache bytes", DEFAULT_CACHE_BYTES, |s| {
            parse_size_in(s, 0, usize::MAX)
        });
        let graceful_shutdown_timeout = self.parsed(
            "graceful_shutdown_timeout",
            "graceful shutdown timeout",
            DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
            |s| parse_duration(s, Duration::from_secs(1)),
        );
        let server_name = match self.get("server_name") {
            None => default_server_name(),
            Some(_) => self.parsed("server_name", "server name", String::new(), |s| {
                if s.is_empty() {
                    Err("must not be empty".to_owned())
                } else if s.contains(char::is_whitespace) {
                    Err("must not contain spaces".to_owned())
                } else {
                    Ok(s.to_owned())
                }
            }),
        };
        Runtime {
            batch_write,
            host,
            port,
            peer_port,
            http_port,
            workers,
            max_payload,
            max_object_bytes,
            max_inflight_bytes,
            max_inflight_msgs,
            cache_bytes,
            graceful_shutdown_timeout,
            server_name,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers (pure; errors are the reason part of a message).

/// Parses a duration: a decimal number with an optional unit (`ns`, `us`, `ms`, `s`, `m`, `h`);
/// a bare number is in `bare_unit`. `100`, `100ms`, `0.1s` with a millisecond bare unit are all
/// 100 ms. Exact: no floating point is involved.
pub fn parse_duration(s: &str, bare_unit: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare_unit.as_nanos(),
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use a number with ms, s, m or h, such as 250ms"
            ));
        }
    };
    let nanos = scale_decimal(number, unit_nanos).ok_or_else(|| {
        "must be a number with an optional unit, such as 250ms or 0.25s".to_owned()
    })?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "too large".to_owned())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| "too large".to_owned())?;
    Ok(Duration::new(secs, sub))
}

/// Parses a byte size: a decimal number with an optional unit: none or `B` (bytes), `KB`/`MB`/`GB`
/// (powers of 1000), `KiB`/`MiB`/`GiB` and `K`/`M`/`G` (powers of 1024); case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use bytes or KiB, MiB, GiB, KB, MB, GB"
            ));
        }
    };
    let bytes = scale_decimal(number, multiplier)
        .ok_or_else(|| "must be a size such as 1048576, 512KiB or 1MiB".to_owned())?;
    u64::try_from(bytes).map_err(|_| "too large".to_owned())
}

/// `number` (digits, optional fraction) times `unit`, exactly, rounded down.
fn scale_decimal(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 18
    {
        return None;
    }
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int_value.checked_mul(unit)?;
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        total = total.checked_add(frac_value.checked_mul(unit)? / scale)?;
    }
    Some(total)
}

fn parse_size_in(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    let bytes = usize::try_from(bytes).map_err(|_| "too large".to_owned())?;
    if bytes < min || bytes > max {
        return Err(if max == usize::MAX {
            format!("must be at least {}", format_size(min))
        } else {
            format!(
                "must be between {} and {}",
                format_size(min),
                format_size(max)
            )
        });
    }
    Ok(bytes)
}

fn parse_count(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = s
        .replace('_', "")
        .parse()
        .map_err(|_| "must be a whole number".to_owned())?;
    if n < min || n > max {
        return Err(if max == usize::MAX {
            format!("must be at least {min}")
        } else {
            format!("must be between {min} and {max}")
        });
    }
    Ok(n)
}

/// A TCP port; 0 means "pick a free port".
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| "must be a number from 0 to 65535 (0 picks a free port)".to_owned())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

fn parse_host(s: &str) -> Result<String, String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let hostname = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if hostname {
        Ok(s.to_owned())
    } else {
        Err("must be an IP address (such as 0.0.0.0) or a host name".to_owned())
    }
}

fn parse_http_url(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("must be an http:// or https:// URL".to_owned()),
    }
}

/// Prints a duration the way users write it: `250ms`, `60s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) && d < Duration::from_secs(10) {
        format!("{}ms", d.as_millis())
    } else if d.as_nanos().is_multiple_of(1_000) && d < Duration::from_millis(1) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Prints a size with the largest binary unit that divides it exactly.
pub fn format_size(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn env(v: &[(&str, &str)]) -> HashMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn required_flags() -> Vec<String> {
        args(&["--group-id=g", "--group-key=k", "--bucket-name=mem://b"])
    }

    fn messages(errors: &ConfigErrors) -> Vec<String> {
        errors.iter().map(|e| e.to_string()).collect()
    }

    fn one_error(a: &[&str]) -> String {
        let mut full = required_flags();
        full.extend(args(a));
        let errors = load_agent(&full, &HashMap::new()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        errors.0[0].to_string()
    }

    #[test]
    fn defaults() {
        let cfg = load_agent(&required_flags(), &HashMap::new()).unwrap();
        assert_eq!(cfg.group_id, "g");
        assert_eq!(cfg.group_key.expose(), "k");
        assert_eq!(
            cfg.bucket,
            BucketUrl::Memory {
                name: "b".to_owned()
            }
        );
        assert_eq!(cfg.batch_write, Duration::from_millis(250));
        assert_eq!(cfg.region, "us-east-1");
        assert_eq!(cfg.control_plane_url, "https://api-use1.infinistream.io");
        assert_eq!(cfg.host, "0.0.0.0");
        assert_eq!((cfg.port, cfg.peer_port, cfg.http_port), (4222, 9222, 8222));
        assert_eq!(cfg.max_payload, 1 << 20);
        assert_eq!(cfg.max_object_bytes, 4 << 20);
        assert_eq!(cfg.max_inflight_bytes, 256 << 20);
        assert_eq!(cfg.max_inflight_msgs, 100_000);
        assert_eq!(cfg.cache_bytes, 256 << 20);
        assert_eq!(cfg.graceful_shutdown_timeout, Duration::from_secs(60));
        assert!(cfg.workers >= 1);
        assert!(!cfg.server_name.is_empty());
        assert_eq!(cfg.availability_zone, None);
        assert_eq!(cfg.advertise_address, None);
    }

    #[test]
    fn new_matches_loaded_defaults() {
        let loaded = load_agent(&required_flags(), &HashMap::new()).unwrap();
        let built = AgentConfig::new("g", Secret::new("k"), loaded.bucket.clone());
        assert_eq!(format!("{built:?}"), format!("{loaded:?}"));
    }

    #[test]
    fn env_alone_is_enough() {
        let e = env(&[
            ("INFINISTREAM_GROUP_ID", "g"),
            ("INFINISTREAM_GROUP_KEY", "k"),
            ("INFINISTREAM_BUCKET_NAME", "file:///tmp/b"),
            ("INFINISTREAM_PORT", "0"),
            ("INFINISTREAM_AVAILABILITY_ZONE", "use1-az1"),
            ("INFINISTREAM_ADVERTISE_ADDRESS", "auto"),
            ("INFINISTREAM_CONTROL_PLANE_URL", "http://127.0.0.1:9/"),
            ("INFINISTREAM_UNRELATED", "ignored"),
        ]);
        let cfg = load_agent(&[], &e).unwrap();
        assert_eq!(cfg.port, 0);
        assert_eq!(cfg.availability_zone.as_deref(), Some("use1-az1"));
        assert_eq!(cfg.advertise_address, None);
        assert_eq!(cfg.control_plane_url, "http://127.0.0.1:9");
        assert_eq!(
            cfg.bucket,
            BucketUrl::File {
                path: PathBuf::from("/tmp/b")
            }
        );
    }

    #[test]
    fn layering_file_env_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            r#"
group-id = "from-file"
group_key = "file-key"
bucket-name = "mem://file"
port = 1111
peer_port = 2222
http-port = 3333
batch_write = 100
"#,
        )
        .unwrap();
        let e = env(&[
            ("INFINISTREAM_PEER_PORT", "2000"),
            ("INFINISTREAM_HTTP_PORT", "3000"),
        ]);
        let a = args(&["--config", file.to_str().unwrap(), "--http-port", "3001"]);
        let cfg = load_agent(&a, &e).unwrap();
        assert_eq!(cfg.group_id, "from-file");
        assert_eq!(cfg.port, 1111, "file beats default");
        assert_eq!(cfg.peer_port, 2000, "env beats file");
        assert_eq!(cfg.http_port, 3001, "flag beats env");
        assert_eq!(cfg.batch_write, Duration::from_millis(100));
    }

    #[test]
    fn config_file_from_env_and_its_problems() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "group-id = \"g\"\nbogus-key = 1\nport = \"x\"\n").unwrap();
        let e = env(&[("INFINISTREAM_CONFIG", file.to_str().unwrap())]);
        let errors =
            load_agent(&args(&["--group-key=k", "--bucket-name=mem://b"]), &e).unwrap_err();
        let m = messages(&errors);
        assert!(
            m.iter().any(|l| l.contains("unknown key \"bogus-key\"")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|l| l.starts_with("invalid port \"x\" from config file")),
            "{m:?}"
        );

        let missing =
            load_agent(&args(&["--config=/nonexistent/x.toml"]), &HashMap::new()).unwrap_err();
        assert!(messages(&missing)[0].contains("/nonexistent/x.toml: not found"));
    }

    #[test]
    fn options_file_is_at_flag_level() {
        let dir = tempfile::tempdir().unwrap();
        let opts = dir.path().join("agent.opts");
        std::fs::write(
            &opts,
            "# agent\n--group-id g\n--group-key=\"k\"\n\n--bucket-name 's3://b?endpoint=http://127.0.0.1:9000&region=us-east-1'\n-p 5000\n",
        )
        .unwrap();
        let e = env(&[("INFINISTREAM_PORT", "6000")]);
        let at = format!("@{}", opts.display());
        let cfg = load_agent(&args(&[&at]), &e).unwrap();
        assert_eq!(cfg.port, 5000);
        assert_eq!(cfg.group_key.expose(), "k");
        assert_eq!(cfg.bucket.option("endpoint"), Some("http://127.0.0.1:9000"));
        let cfg = load_agent(&args(&[&at, "--port", "7000"]), &e).unwrap();
        assert_eq!(cfg.port, 7000, "a flag after the options file wins");
    }

    #[test]
    fn all_missing_values_are_reported_at_once() {
        let errors = load_agent(&[], &HashMap::new()).unwrap_err();
        assert_eq!(
            messages(&errors),
            vec![
                "missing group id: set --group-id or INFINISTREAM_GROUP_ID",
                "missing group key: set --group-key or INFINISTREAM_GROUP_KEY",
                "missing bucket URL: set --bucket-name or INFINISTREAM_BUCKET_NAME",
            ]
        );
        assert!(errors.to_string().starts_with("error: missing group id"));
    }

    #[test]
    fn batch_write_bounds() {
        for (value, ms) in [
            ("100", 100),
            ("100ms", 100),
            ("0.1s", 100),
            ("50ms", 50),
            ("500ms", 500),
        ] {
            let mut a = required_flags();
            a.push(format!("--batch-write={value}"));
            let cfg = load_agent(&a, &HashMap::new()).unwrap();
            assert_eq!(cfg.batch_write, Duration::from_millis(ms), "{value}");
        }
        for value in ["40ms", "501ms", "1s"] {
            let line = one_error(&[&format!("--batch-write={value}")]);
            assert!(line.contains("valid range is 50ms–500ms"), "{line}");
            assert!(line.contains("--batch-write"), "{line}");
        }
        let line = one_error(&["--batch-write=fast"]);
        assert!(
            line.starts_with("invalid batch write \"fast\" from --batch-write"),
            "{line}"
        );
    }

    #[test]
    fn ports() {
        let line = one_error(&["--port=70000"]);
        assert_eq!(
            line,
            "invalid port \"70000\" from --port: must be a number from 0 to 65535 (0 picks a free port)"
        );
        let line = one_error(&["--http-port=abc"]);
        assert!(
            line.starts_with("invalid HTTP port \"abc\" from --http-port"),
            "{line}"
        );
        let line = one_error(&["--peer-port=4222"]);
        assert!(
            line.contains("--port and --peer-port are both 4222"),
            "{line}"
        );
        let mut a = required_flags();
        a.extend(args(&["-p", "0", "--peer-port", "0", "--http-port", "0"]));
        let cfg = load_agent(&a, &HashMap::new()).unwrap();
        assert_eq!((cfg.port, cfg.peer_port, cfg.http_port), (0, 0, 0));
    }

    #[test]
    fn region_and_control_plane_url() {
        let line = one_error(&["--region=mars-1"]);
        assert!(
            line.starts_with(
                "unknown region \"mars-1\" from --region: known regions are us-east-1"
            ),
            "{line}"
        );
        let mut a = required_flags();
        a.push("--region=eu-west-1".to_owned());
        let cfg = load_agent(&a, &HashMap::new()).unwrap();
        assert_eq!(cfg.control_plane_url, "https://api-euw1.infinistream.io");
        let line = one_error(&["--control-plane-url=ftp://x"]);
        assert!(
            line.contains("must be an http:// or https:// URL"),
            "{line}"
        );
    }

    #[test]
    fn sizes_and_counts() {
        let mut a = required_flags();
        a.extend(args(&[
            "--max-payload=512KiB",
            "--max-object-bytes=8MB",
            "--max-inflight-bytes=1GiB",
            "--max-inflight-msgs=5000",
            "--cache-bytes=0",
            "--workers=3",
            "--graceful-shutdown-timeout=5",
            "--server-name=n1",
            "--host=127.0.0.1",
            "--log-format=text",
        ]));
        let cfg = load_agent(&a, &HashMap::new()).unwrap();
        assert_eq!(cfg.max_payload, 512 * 1024);
        assert_eq!(cfg.max_object_bytes, 8_000_000);
        assert_eq!(cfg.max_inflight_bytes, 1 << 30);
        assert_eq!(cfg.max_inflight_msgs, 5000);
        assert_eq!(cfg.cache_bytes, 0);
        assert_eq!(cfg.workers, 3);
        assert_eq!(cfg.graceful_shutdown_timeout, Duration::from_secs(5));
        assert_eq!(cfg.server_name, "n1");
        assert_eq!(cfg.host, "127.0.0.1");

        assert!(one_error(&["--max-payload=65MiB"]).contains("between 1B and 64MiB"));
        assert!(one_error(&["--max-payload=lots"]).starts_with("invalid max payload \"lots\""));
        assert!(one_error(&["--workers=0"]).contains("between 1 and 1024"));
        assert!(one_error(&["--max-payload=8MiB"]).contains("larger than max object bytes"));
        assert!(one_error(&["--log-format=xml"]).starts_with("invalid log format"));
        assert!(one_error(&["--server-name=a b"]).contains("spaces"));
        assert!(one_error(&["--host=not a host"]).starts_with("invalid host"));
    }

    #[test]
    fn several_problems_at_once() {
        let errors = load_agent(
            &args(&["--batch-write=40ms", "--port=x", "--bucket-name=ftp://b"]),
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 5, "{errors}");
    }

    #[test]
    fn bucket_errors_list_schemes_and_hide_secrets() {
        let line = one_error(&["--bucket-name=ftp://b"]);
        assert_eq!(
            line,
            "invalid bucket URL \"ftp://b\" from --bucket-name: unsupported scheme \"ftp\"; accepted schemes: s3://, gs://, az://, file://, mem://"
        );
        let line = one_error(&["--bucket-name=s3://b?secret_access_key=TOPSECRET&bogus=1"]);
        assert!(!line.contains("TOPSECRET"), "{line}");
        assert!(line.contains("bogus"), "{line}");
        let line = one_error(&["--bucket-name=s3://AKID:TOPSECRET@b"]);
        assert!(!line.contains("TOPSECRET"), "{line}");
        assert!(line.contains("user info"), "{line}");
        let line = one_error(&["--bucket-name=file://relative/dir"]);
        assert!(line.contains("absolute"), "{line}");
    }

    #[test]
    fn group_key_never_printed() {
        let a = args(&["--group-key=TOPSECRETKEY", "--port=x"]);
        let errors = load_agent(&a, &HashMap::new()).unwrap_err();
        assert!(!errors.to_string().contains("TOPSECRETKEY"));
        let mut a = required_flags();
        a[1] = "--group-key=TOPSECRETKEY".to_owned();
        let cfg = load_agent(&a, &HashMap::new()).unwrap();
        assert!(!format!("{cfg:?}").contains("TOPSECRETKEY"));
        assert_eq!(cfg.group_key.expose(), "TOPSECRETKEY");
    }

    #[test]
    fn bucket_url_parsing() {
        let url = BucketUrl::parse(
            "s3://my-bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1&access_key_id=AK&secret_access_key=a+b/c&allow_http=true",
        )
        .unwrap();
        let BucketUrl::S3 { bucket, options } = &url else {
            panic!()
        };
        assert_eq!(bucket, "my-bucket");
        assert_eq!(
            options[0],
            ("endpoint".to_owned(), "http://127.0.0.1:9000".to_owned())
        );
        assert_eq!(url.option("secret_access_key"), Some("a+b/c"));
        assert_eq!(
            url.redacted(),
            "s3://my-bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&access_key_id=***&secret_access_key=***&allow_http=true"
        );
        assert!(!format!("{url:?}").contains("a+b/c"));
        assert!(!format!("{url}").contains("a+b/c"));

        assert_eq!(
            BucketUrl::parse("s3://b/").unwrap(),
            BucketUrl::S3 {
                bucket: "b".into(),
                options: vec![]
            }
        );
        assert_eq!(
            BucketUrl::parse("s3://b/prefix"),
            Err(BucketUrlError::S3Path)
        );
        assert_eq!(
            BucketUrl::parse("s3://"),
            Err(BucketUrlError::MissingBucket("s3"))
        );
        assert_eq!(BucketUrl::parse("bucket"), Err(BucketUrlError::NotAUrl));
        assert!(matches!(
            BucketUrl::parse("s3://b?nonsense=1"),
            Err(BucketUrlError::Option(_))
        ));
        assert!(BucketUrl::parse("s3://b?session_token=T&aws_token=U").is_ok());
        let redacted = BucketUrl::parse("s3://b?session_token=T1&aws_token=T2")
            .unwrap()
            .redacted();
        assert!(
            !redacted.contains("T1") && !redacted.contains("T2"),
            "{redacted}"
        );
        assert_eq!(
            BucketUrl::parse("file:///var/lib/x").unwrap(),
            BucketUrl::File {
                path: "/var/lib/x".into()
            }
        );
        assert_eq!(
            BucketUrl::parse("file:///var/lib/x").unwrap().redacted(),
            "file:///var/lib/x"
        );
        assert_eq!(
            BucketUrl::parse("file:///x?y=1"),
            Err(BucketUrlError::FileQuery)
        );
        assert_eq!(
            BucketUrl::parse("mem://t1").unwrap(),
            BucketUrl::Memory { name: "t1".into() }
        );
        assert_eq!(
            BucketUrl::parse("mem://"),
            Err(BucketUrlError::MissingMemoryName)
        );
    }

    #[test]
    fn raw_redaction_of_unparsable_urls() {
        let r = redact_raw_bucket("ftp://b?secret_access_key=S&x=1");
        assert_eq!(r, "ftp://b?secret_access_key=***&x=1");
        assert_eq!(redact_raw_bucket("ftp://u:p@b"), "<hidden>");
        // Parsable cloud URLs: every provider's credentials are masked.
        assert_eq!(
            redact_raw_bucket("gs://b?service_account_key=KEY&base_url=http://x"),
            "gs://b?service_account_key=***&base_url=http://x"
        );
        assert_eq!(
            redact_raw_bucket("az://c?account_name=a&access_key=KEY&azure_storage_sas_key=S"),
            "az://c?account_name=a&access_key=***&azure_storage_sas_key=***"
        );
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis(1);
        assert_eq!(parse_duration("100", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("100ms", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0.1s", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration(".25s", ms), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5 s", ms), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m", ms), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h", ms), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10us", ms), Ok(Duration::from_micros(10)));
        assert_eq!(
            parse_duration("60", Duration::from_secs(1)),
            Ok(Duration::from_secs(60))
        );
        for bad in ["", "ms", "1.2.3s", "-1s", "1d", "1e3"] {
            assert!(parse_duration(bad, ms).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(60)), "60s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1mib"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10 B"), Ok(10));
        for bad in ["", "MiB", "1XB", "-1", "1,000"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn control_plane() {
        let e = env(&[
            ("INFINISTREAM_GROUP_ID", "g"),
            ("INFINISTREAM_GROUP_KEY", "k"),
        ]);
        let cfg = load_control_plane(&[], &e).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(cfg.data_dir, Some(PathBuf::from(DEFAULT_DATA_DIR)));
        let cfg = load_control_plane(&args(&["--in-memory", "--listen=127.0.0.1:0"]), &e).unwrap();
        assert_eq!(cfg.data_dir, None);
        assert_eq!(cfg.listen.port(), 0);
        let e2 = env(&[
            ("INFINISTREAM_GROUP_ID", "g"),
            ("INFINISTREAM_GROUP_KEY", "k"),
            ("INFINISTREAM_IN_MEMORY", "true"),
        ]);
        assert_eq!(load_control_plane(&[], &e2).unwrap().data_dir, None);
        let errors = load_control_plane(
            &args(&["--in-memory", "--data-dir=/x", "--listen=nowhere"]),
            &HashMap::new(),
        )
        .unwrap_err();
        let m = messages(&errors);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("missing group id"));
        assert!(m[1].starts_with("missing group key"));
        assert!(
            m.iter()
                .any(|l| l.starts_with("invalid listen address \"nowhere\""))
        );
        assert!(m.iter().any(|l| l.contains("cannot be used together")));
    }

    #[test]
    fn playground_needs_nothing() {
        let cfg = load_playground(&[], &HashMap::new()).unwrap();
        assert!(cfg.dir.is_absolute());
        assert!(cfg.dir.ends_with("infinistream-data"));
        assert_eq!(cfg.agent.group_id, PLAYGROUND_GROUP_ID);
        assert_eq!(
            cfg.agent.bucket,
            BucketUrl::File {
                path: cfg.dir.join("bucket")
            }
        );
        assert_eq!(cfg.agent.port, DEFAULT_PORT);
        // Agent-only values in the environment do not concern the playground.
        let e = env(&[("INFINISTREAM_GROUP_ID", "x"), ("INFINISTREAM_PORT", "0")]);
        let cfg = load_playground(&args(&["--dir=/tmp/pg", "--batch-write=100ms"]), &e).unwrap();
        assert_eq!(cfg.dir, PathBuf::from("/tmp/pg"));
        assert_eq!(cfg.agent.port, 0);
        assert_eq!(cfg.agent.group_id, PLAYGROUND_GROUP_ID);
        assert_eq!(cfg.agent.batch_write, Duration::from_millis(100));
        // The playground has no --group-id flag.
        assert!(load_playground(&args(&["--group-id=x"]), &HashMap::new()).is_err());
    }
}
