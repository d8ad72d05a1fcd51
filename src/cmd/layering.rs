//! Configuration layering: defaults < `--config` TOML file < environment < flags, into each
//! subcommand's validated configuration, with one clear message per problem, all at once.
//!
//! Owns: the layers (the `config` crate over tagged sources), where each value came from, typed
//! reading with error collection, and the control plane's and playground's own settings.
//! Does not own: the CLI grammar (`cli` hands in the matches and the keys that take part), the
//! agent's settings types and defaults (`infinistream::config`), or value syntax
//! (`infinistream::values`).
//!
//! Every function here is pure with respect to the process: arguments and environment come in as
//! values, so tests never touch the process environment. The only ambient reads are the defaults
//! that depend on the machine (worker count, host name, current directory for the playground) and
//! the files the configuration names (`--config`, `--group-key-file`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{FileFormat, Map, Source, Value, ValueKind};
use clap::ArgMatches;
use clap::parser::ValueSource;
use infinistream::bucket::{BUCKET_SCHEMES, BucketUrl, BucketUrlError, redact_raw_bucket};
use infinistream::config::*;
use infinistream::logging::LogFormat;
use infinistream::values::*;
use infinistream_control_plane::ControlPlaneConfig;

pub const DEFAULT_DATA_DIR: &str = "./infinistream-control-plane";
pub const DEFAULT_PLAYGROUND_DIR: &str = "./infinistream-data";
pub const PLAYGROUND_GROUP_ID: &str = "playground";
/// The playground listens on loopback by default (the agent on every interface).
pub const PLAYGROUND_HOST: &str = "127.0.0.1";
/// Placeholder control plane URL of the playground's agent: the playground binds its in-process
/// control plane first and replaces this with the real address.
pub const PLAYGROUND_CONTROL_PLANE_PLACEHOLDER: &str = "http://127.0.0.1:0";

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

#[cfg(test)]
impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
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
// One function per subcommand: matches + layered keys + environment -> its configuration.

pub fn agent_from_matches(
    matches: &ArgMatches,
    keys: &[String],
    env: &HashMap<String, String>,
) -> Result<(AgentConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(keys, matches, env);
    let group_id = r.required("group_id", "group id");
    let group_key = r.group_key();
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
        region,
        control_plane_url,
        control_plane_ca,
        availability_zone,
        advertise_address,
        ..AgentConfig::with_runtime(group_id, group_key, bucket, runtime)
    };
    Ok((cfg, log_format))
}

pub fn control_plane_from_matches(
    matches: &ArgMatches,
    keys: &[String],
    env: &HashMap<String, String>,
) -> Result<(ControlPlaneConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(keys, matches, env);
    let group_id = r.required("group_id", "group id");
    let group_key = r.group_key();
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

pub fn playground_from_matches(
    matches: &ArgMatches,
    keys: &[String],
    env: &HashMap<String, String>,
) -> Result<(PlaygroundConfig, Option<LogFormat>), ConfigErrors> {
    let mut r = Reader::new(keys, matches, env);
    let dir = absolute(Path::new(&r.string("dir", DEFAULT_PLAYGROUND_DIR)));
    // Loopback unless asked: the playground has no client authentication.
    let runtime = r.runtime_on(PLAYGROUND_HOST);
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

pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Resolved raw values: key -> (value, origin).
type Resolved = HashMap<String, (String, Origin)>;

fn resolve(
    keys: &[String],
    matches: &ArgMatches,
    env: &HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> Resolved {
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
        && let Some(layer) = read_config_file(path, keys, errors)
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
struct Reader {
    values: Resolved,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn new(keys: &[String], matches: &ArgMatches, env: &HashMap<String, String>) -> Self {
        let mut errors = Vec::new();
        let values = resolve(keys, matches, env, &mut errors);
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

    /// The group key: `group_key`, or the contents of the file `group_key_file` names (so the
    /// key need not appear in the process list or the environment). Both is a conflict; an
    /// unreadable or empty file is an error naming it.
    fn group_key(&mut self) -> Option<Secret> {
        let file = self
            .get("group_key_file")
            .map(|(v, o)| (v.trim().to_owned(), o.clone()))
            .filter(|(v, _)| !v.is_empty());
        let Some((path, origin)) = file else {
            return self.required_secret("group_key", "group key");
        };
        if self.optional_string("group_key").is_some() {
            self.errors.push(ConfigError::Conflict(format!(
                "a group key and a group key file (from {origin}) cannot be used together"
            )));
            return None;
        }
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|text| match text.trim() {
                "" => Err("the file is empty".to_owned()),
                key => Ok(Secret::new(key)),
            });
        self.check("group key file", &path, &origin, read)
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
        self.runtime_on(DEFAULT_HOST)
    }

    /// The runtime settings, listening on `default_host` unless a host is given.
    fn runtime_on(&mut self, default_host: &str) -> Runtime {
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
        let host = self.parsed("host", "host", default_host.to_owned(), parse_host);
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
            None => infinistream::workers::default_workers(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::cli::{load_agent, load_control_plane, load_playground};

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

    /// `--group-key-file` (or its env twin) reads the key from a file, so it is in neither the
    /// process list nor the environment; a key and a file at once, an empty file or a missing
    /// one are errors that never print the key.
    #[test]
    fn group_key_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "FILEKEY\n").unwrap();
        let path = file.display().to_string();
        let base = args(&["--group-id=g", "--bucket-name=mem://b"]);
        let mut a = base.clone();
        a.push(format!("--group-key-file={path}"));
        assert_eq!(
            load_agent(&a, &HashMap::new()).unwrap().group_key.expose(),
            "FILEKEY"
        );
        let e = env(&[("INFINISTREAM_GROUP_KEY_FILE", path.as_str())]);
        assert_eq!(load_agent(&base, &e).unwrap().group_key.expose(), "FILEKEY");
        let e = env(&[
            ("INFINISTREAM_GROUP_ID", "g"),
            ("INFINISTREAM_GROUP_KEY_FILE", path.as_str()),
        ]);
        assert_eq!(
            load_control_plane(&[], &e).unwrap().group_key.expose(),
            "FILEKEY"
        );
        let mut both = a.clone();
        both.push("--group-key=OTHER".into());
        let line = load_agent(&both, &HashMap::new()).unwrap_err().to_string();
        assert!(line.contains("cannot be used together"), "{line}");
        assert!(
            !line.contains("FILEKEY") && !line.contains("OTHER"),
            "{line}"
        );
        std::fs::write(&file, " \n").unwrap();
        let line = load_agent(&a, &HashMap::new()).unwrap_err().to_string();
        assert!(line.contains("empty"), "{line}");
        let mut gone = base.clone();
        gone.push(format!(
            "--group-key-file={}",
            dir.path().join("none").display()
        ));
        let line = load_agent(&gone, &HashMap::new()).unwrap_err().to_string();
        assert!(line.contains("cannot read it"), "{line}");
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
        // Loopback by default (no client authentication), every interface when asked.
        assert_eq!(cfg.agent.host, PLAYGROUND_HOST);
        let open = load_playground(&args(&["--host=0.0.0.0"]), &HashMap::new()).unwrap();
        assert_eq!(open.agent.host, "0.0.0.0");
        assert_eq!(
            load_agent(&required_flags(), &HashMap::new()).unwrap().host,
            DEFAULT_HOST
        );
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
