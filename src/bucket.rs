//! Turns a validated [`BucketUrl`] into an `object_store` client: S3 (or any S3-compatible
//! endpoint), a local directory, or an in-memory store.
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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::config::{BucketUrl, parse_duration};

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("unknown s3 option {key:?}")]
    UnknownOption { key: String },
    #[error("invalid value for s3 option {key}: {reason}")]
    InvalidOption { key: String, reason: String },
    #[error("cannot create bucket directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the bucket: {0}")]
    Store(#[from] object_store::Error),
}

/// One S3 URL option, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Option {
    /// object_store's retry count for failed requests (default 10).
    MaxRetries(usize),
    /// object_store's bound on the total time spent retrying one request (default 3 min).
    RetryTimeout(Duration),
    /// Any object_store S3 setting.
    Key(AmazonS3ConfigKey, String),
}

/// Understands one S3 URL option: our own names first, then object_store's.
pub fn parse_s3_option(key: &str, value: &str) -> Result<S3Option, BucketError> {
    let invalid = |reason: &str| BucketError::InvalidOption {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    match key {
        "max_retries" => {
            return value
                .parse()
                .map(S3Option::MaxRetries)
                .map_err(|_| invalid("must be a whole number"));
        }
        "retry_timeout" => {
            return parse_duration(value, Duration::from_secs(1))
                .map(S3Option::RetryTimeout)
                .map_err(|reason| invalid(&reason));
        }
        _ => {}
    }
    let canonical = match key {
        "access_key" => "access_key_id",
        "secret_key" => "secret_access_key",
        "endpoint_url" => "endpoint",
        other => other,
    };
    let config_key =
        AmazonS3ConfigKey::from_str(canonical).map_err(|_| BucketError::UnknownOption {
            key: key.to_owned(),
        })?;
    if matches!(
        config_key,
        AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)
    ) && parse_bool(value).is_none()
    {
        return Err(invalid("must be true or false"));
    }
    Ok(S3Option::Key(config_key, value.to_owned()))
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
        BucketUrl::S3 { bucket, options } => build_s3(bucket, options),
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

fn build_s3(
    bucket: &str,
    options: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, BucketError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let mut retry = RetryConfig::default();
    let mut allow_http_set = false;
    let mut http_endpoint = false;
    for (key, value) in options {
        match parse_s3_option(key, value)? {
            S3Option::MaxRetries(n) => retry.max_retries = n,
            S3Option::RetryTimeout(d) => retry.retry_timeout = d,
            S3Option::Key(config_key, value) => {
                match &config_key {
                    AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp) => allow_http_set = true,
                    AmazonS3ConfigKey::Endpoint => {
                        http_endpoint = value.to_ascii_lowercase().starts_with("http://");
                    }
                    _ => {}
                }
                builder = builder.with_config(config_key, value);
            }
        }
    }
    if http_endpoint && !allow_http_set {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.with_retry(retry).build()?))
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
