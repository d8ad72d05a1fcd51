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

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ObjectStore, RetryConfig};

mod options;
mod url;

pub use options::{
    BucketError, CloudOption, S3Option, parse_azure_option, parse_gcs_option, parse_s3_option,
};
pub use url::{BUCKET_SCHEMES, BucketUrl, BucketUrlError, is_secret_option, redact_raw_bucket};

use options::{BuilderOptions, ProviderKey, builder_options};

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
    use std::time::Duration;

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
