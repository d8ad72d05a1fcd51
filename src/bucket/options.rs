//! Bucket URL options as each cloud's object_store builder understands them, plus the two this
//! project adds (`max_retries`, `retry_timeout`).
//!
//! Owns: checking one `key=value` against the provider's config keys, and turning a URL's
//! options into builder settings. Does not own: the URL grammar (`url`) or building the store.

use std::str::FromStr;
use std::time::Duration;

use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use object_store::{ClientConfigKey, RetryConfig};

use crate::values::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("unknown {provider} option {key:?}")]
    UnknownOption { provider: &'static str, key: String },
    #[error("invalid value for {provider} option {key}: {reason}")]
    InvalidOption {
        provider: &'static str,
        key: String,
        reason: String,
    },
    #[error("cannot create bucket directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the bucket: {0}")]
    Store(#[from] object_store::Error),
}

/// One cloud-store URL option, understood; `K` is object_store's key type of that provider.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudOption<K> {
    /// object_store's retry count for failed requests (default 10).
    MaxRetries(usize),
    /// object_store's bound on the total time spent retrying one request (default 3 min).
    RetryTimeout(Duration),
    /// Any object_store setting of the provider.
    Key(K, String),
}

/// One S3 URL option, understood.
pub type S3Option = CloudOption<AmazonS3ConfigKey>;

/// How one provider's keys are read.
pub(super) trait ProviderKey: FromStr + Sized {
    const PROVIDER: &'static str;
    /// Our short aliases, mapped to a name object_store knows.
    fn canonical(key: &str) -> &str {
        key
    }
    fn is_allow_http(&self) -> bool;
    /// Whether this key names an endpoint (an `http://` one implies `allow_http`).
    fn is_endpoint(&self) -> bool;
}

impl ProviderKey for AmazonS3ConfigKey {
    const PROVIDER: &'static str = "s3";
    fn canonical(key: &str) -> &str {
        match key {
            "access_key" => "access_key_id",
            "secret_key" => "secret_access_key",
            "endpoint_url" => "endpoint",
            other => other,
        }
    }
    fn is_allow_http(&self) -> bool {
        matches!(self, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
    }
    fn is_endpoint(&self) -> bool {
        matches!(self, AmazonS3ConfigKey::Endpoint)
    }
}

impl ProviderKey for GoogleConfigKey {
    const PROVIDER: &'static str = "gcs";
    fn is_allow_http(&self) -> bool {
        matches!(self, GoogleConfigKey::Client(ClientConfigKey::AllowHttp))
    }
    fn is_endpoint(&self) -> bool {
        matches!(self, GoogleConfigKey::BaseUrl)
    }
}

impl ProviderKey for AzureConfigKey {
    const PROVIDER: &'static str = "azure";
    fn is_allow_http(&self) -> bool {
        matches!(self, AzureConfigKey::Client(ClientConfigKey::AllowHttp))
    }
    fn is_endpoint(&self) -> bool {
        matches!(self, AzureConfigKey::Endpoint)
    }
}

/// Understands one option: our own names first, then object_store's.
fn parse_option<K: ProviderKey>(key: &str, value: &str) -> Result<CloudOption<K>, BucketError> {
    let invalid = |reason: &str| BucketError::InvalidOption {
        provider: K::PROVIDER,
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    match key {
        "max_retries" => {
            return value
                .parse()
                .map(CloudOption::MaxRetries)
                .map_err(|_| invalid("must be a whole number"));
        }
        "retry_timeout" => {
            return parse_duration(value, Duration::from_secs(1))
                .map(CloudOption::RetryTimeout)
                .map_err(|reason| invalid(&reason));
        }
        _ => {}
    }
    let config_key = K::from_str(K::canonical(key)).map_err(|_| BucketError::UnknownOption {
        provider: K::PROVIDER,
        key: key.to_owned(),
    })?;
    if config_key.is_allow_http() && parse_bool(value).is_none() {
        return Err(invalid("must be true or false"));
    }
    Ok(CloudOption::Key(config_key, value.to_owned()))
}

/// Understands one S3 URL option.
pub fn parse_s3_option(key: &str, value: &str) -> Result<S3Option, BucketError> {
    parse_option(key, value)
}

/// Understands one GCS URL option.
pub fn parse_gcs_option(
    key: &str,
    value: &str,
) -> Result<CloudOption<GoogleConfigKey>, BucketError> {
    parse_option(key, value)
}

/// Understands one Azure URL option.
pub fn parse_azure_option(
    key: &str,
    value: &str,
) -> Result<CloudOption<AzureConfigKey>, BucketError> {
    parse_option(key, value)
}

/// A URL's options for one provider's builder.
pub(super) struct BuilderOptions<K> {
    pub(super) keys: Vec<(K, String)>,
    pub(super) retry: RetryConfig,
    /// An `http://` endpoint was given without `allow_http`: allow it.
    pub(super) allow_http: bool,
}

/// The options of a URL for one provider's builder: object_store keys (with `allow_http`
/// implied by an `http://` endpoint unless given) and the retry settings.
pub(super) fn builder_options<K: ProviderKey>(
    options: &[(String, String)],
) -> Result<BuilderOptions<K>, BucketError> {
    let mut keys = Vec::new();
    let mut retry = RetryConfig::default();
    let mut allow_http_set = false;
    let mut http_endpoint = false;
    for (key, value) in options {
        match parse_option::<K>(key, value)? {
            CloudOption::MaxRetries(n) => retry.max_retries = n,
            CloudOption::RetryTimeout(d) => retry.retry_timeout = d,
            CloudOption::Key(config_key, value) => {
                if config_key.is_allow_http() {
                    allow_http_set = true;
                }
                if config_key.is_endpoint() {
                    http_endpoint = value.to_ascii_lowercase().starts_with("http://");
                }
                keys.push((config_key, value));
            }
        }
    }
    Ok(BuilderOptions {
        keys,
        retry,
        allow_http: http_endpoint && !allow_http_set,
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
