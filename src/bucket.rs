//! Turns a validated [`BucketUrl`] into an `object_store` client: S3 (or any S3-compatible
//! endpoint), Google Cloud Storage, Azure Blob Storage, a local directory, or an in-memory store.
//!
//! Owns the mapping from URL query options to object_store settings, and the option names this
//! project adds (`max_retries`, `retry_timeout`). Does not own what is written to the bucket
//! (`format`, the uploader) nor any retry policy above object_store's own.
//!
//! S3 options: any name `AmazonS3ConfigKey::from_str` accepts (`endpoint`, `region`,
//! `access_key_id`, `secret_access_key`, `session_token`, `allow_http`, `conditional_put`, …, with
//! or without the `aws_` prefix), plus the short aliases `access_key`, `secret_key`,
//! `endpoint_url`, and `max_retries` / `retry_timeout` for object_store's request retries.
//! An `http://` endpoint implies `allow_http=true` unless `allow_http` is given.
//! Anything not in the URL comes from the usual `AWS_*` environment variables.
//!
//! GCS options (`gs://`): any name `GoogleConfigKey::from_str` accepts (`service_account_key`,
//! `service_account`, `application_credentials`, `base_url`, `skip_signature`, client options),
//! else the `GOOGLE_*` environment. Azure options (`az://`): any name `AzureConfigKey::from_str`
//! accepts (`account_name`, `access_key`, `sas_key`, `endpoint`, `use_emulator`, client options),
//! else the `AZURE_*` environment. Both take `max_retries` / `retry_timeout` too, and an
//! `http://` `base_url` / `endpoint` implies `allow_http=true` likewise.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::config::{BucketUrl, parse_duration};

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
trait ProviderKey: FromStr + Sized {
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
struct BuilderOptions<K> {
    keys: Vec<(K, String)>,
    retry: RetryConfig,
    /// An `http://` endpoint was given without `allow_http`: allow it.
    allow_http: bool,
}

/// The options of a URL for one provider's builder: object_store keys (with `allow_http`
/// implied by an `http://` endpoint unless given) and the retry settings.
fn builder_options<K: ProviderKey>(
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

/// Builds the object store a bucket URL names.
///
/// `mem://` creates a fresh, empty store on every call, whatever the name: two calls never share
/// data, so build it once and clone the `Arc` to share it. `file://` creates the directory if
/// needed.
pub fn build_object_store(url: &BucketUrl) -> Result<Arc<dyn ObjectStore>, BucketError> {
    match url {
        BucketUrl::S3 { bucket, options } => build_cloud(
            AmazonS3Builder::from_env().with_bucket_name(bucket),
            options,
        ),
        BucketUrl::Gcs { bucket, options } => build_cloud(
            GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket),
            options,
        ),
        BucketUrl::Azure { container, options } => build_cloud(
            MicrosoftAzureBuilder::from_env().with_container_name(container),
            options,
        ),
        BucketUrl::File { path } => {
            std::fs::create_dir_all(path).map_err(|source| BucketError::CreateDir {
                path: path.clone(),
                source,
            })?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(path)?))
        }
        BucketUrl::Memory { .. } => Ok(Arc::new(InMemory::new())),
    }
}

/// What the three cloud builders of object_store have in common, so one function configures
/// them all.
trait CloudBuilder: Sized {
    type Key: ProviderKey;
    fn set(self, key: Self::Key, value: String) -> Self;
    fn allow_http(self) -> Self;
    fn finish(self, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, object_store::Error>;
}

impl CloudBuilder for AmazonS3Builder {
    type Key = AmazonS3ConfigKey;
    fn set(self, key: Self::Key, value: String) -> Self {
        self.with_config(key, value)
    }
    fn allow_http(self) -> Self {
        self.with_allow_http(true)
    }
    fn finish(self, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
        Ok(Arc::new(self.with_retry(retry).build()?))
    }
}

impl CloudBuilder for GoogleCloudStorageBuilder {
    type Key = GoogleConfigKey;
    fn set(self, key: Self::Key, value: String) -> Self {
        self.with_config(key, value)
    }
    fn allow_http(self) -> Self {
        self.with_client_options(object_store::ClientOptions::new().with_allow_http(true))
    }
    fn finish(self, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
        Ok(Arc::new(self.with_retry(retry).build()?))
    }
}

impl CloudBuilder for MicrosoftAzureBuilder {
    type Key = AzureConfigKey;
    fn set(self, key: Self::Key, value: String) -> Self {
        self.with_config(key, value)
    }
    fn allow_http(self) -> Self {
        self.with_allow_http(true)
    }
    fn finish(self, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
        Ok(Arc::new(self.with_retry(retry).build()?))
    }
}

/// Applies a URL's options to `builder` (which already names the bucket) and builds it.
fn build_cloud<B: CloudBuilder>(
    builder: B,
    options: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, BucketError> {
    let BuilderOptions {
        keys,
        retry,
        allow_http,
    } = builder_options::<B::Key>(options)?;
    let mut builder = keys
        .into_iter()
        .fold(builder, |builder, (key, value)| builder.set(key, value));
    if allow_http {
        builder = builder.allow_http();
    }
    Ok(builder.finish(retry)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::path::Path;

    #[test]
    fn option_names() {
        for key in [
            "endpoint",
            "endpoint_url",
            "aws_endpoint",
            "region",
            "aws_region",
            "access_key_id",
            "access_key",
            "secret_access_key",
            "secret_key",
            "session_token",
            "token",
            "virtual_hosted_style_request",
            "conditional_put",
            "timeout",
            "connect_timeout",
        ] {
            assert!(
                matches!(parse_s3_option(key, "x"), Ok(S3Option::Key(..))),
                "{key}"
            );
        }
        assert!(matches!(
            parse_s3_option("allow_http", "true"),
            Ok(S3Option::Key(..))
        ));
        assert!(parse_s3_option("allow_http", "maybe").is_err());
        assert_eq!(
            parse_s3_option("max_retries", "0").unwrap(),
            S3Option::MaxRetries(0)
        );
        assert_eq!(
            parse_s3_option("retry_timeout", "5s").unwrap(),
            S3Option::RetryTimeout(Duration::from_secs(5))
        );
        assert!(matches!(
            parse_s3_option("nonsense", "1"),
            Err(BucketError::UnknownOption { .. })
        ));
        for key in [
            "service_account_key",
            "google_service_account",
            "application_credentials",
            "base_url",
            "skip_signature",
            "timeout",
        ] {
            assert!(
                matches!(parse_gcs_option(key, "x"), Ok(CloudOption::Key(..))),
                "{key}"
            );
        }
        for key in [
            "account_name",
            "access_key",
            "sas_key",
            "endpoint",
            "use_emulator",
            "azure_storage_account_name",
            "timeout",
        ] {
            assert!(
                matches!(parse_azure_option(key, "x"), Ok(CloudOption::Key(..))),
                "{key}"
            );
        }
        let err = parse_gcs_option("region", "x").expect_err("no region in gcs");
        assert_eq!(err.to_string(), "unknown gcs option \"region\"");
        let err = parse_azure_option("allow_http", "maybe").expect_err("a boolean");
        assert_eq!(
            err.to_string(),
            "invalid value for azure option allow_http: must be true or false"
        );
    }

    #[test]
    fn builds_gcs_and_azure_without_network() {
        let gcs = BucketUrl::parse(
            "gs://b?base_url=http://127.0.0.1:1&skip_signature=true&max_retries=0",
        )
        .expect("gs url");
        assert!(build_object_store(&gcs).is_ok());
        let azure = BucketUrl::parse(
            "az://c?account_name=devstoreaccount1&access_key=a2V5&endpoint=http://127.0.0.1:1/devstoreaccount1",
        )
        .expect("az url");
        assert!(build_object_store(&azure).is_ok());
    }

    #[test]
    fn builds_s3_without_network() {
        let url = BucketUrl::parse(
            "s3://b?endpoint=http://127.0.0.1:1&region=us-east-1&access_key_id=a&secret_access_key=s&max_retries=0",
        )
        .unwrap();
        assert!(build_object_store(&url).is_ok());
    }

    #[tokio::test]
    async fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = BucketUrl::File {
            path: dir.path().join("nested/bucket"),
        };
        let store = build_object_store(&url).unwrap();
        let path = Path::from("a/b.obj");
        store.put(&path, "hello".into()).await.unwrap();
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"hello");
        assert!(dir.path().join("nested/bucket/a/b.obj").exists());
    }

    #[tokio::test]
    async fn memory_stores_are_independent() {
        let url = BucketUrl::Memory { name: "x".into() };
        let a = build_object_store(&url).unwrap();
        let b = build_object_store(&url).unwrap();
        let path = Path::from("k");
        a.put(&path, "v".into()).await.unwrap();
        assert!(a.head(&path).await.is_ok());
        assert!(b.head(&path).await.is_err());
    }
}
