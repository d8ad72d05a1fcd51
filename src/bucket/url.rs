//! Bucket URLs: where objects go (`INFINISTREAM_BUCKET_NAME`), parsed, validated against the
//! object store's own option names, and printed with every credential hidden.
//!
//! Owns: [`BucketUrl`], its errors and its redaction. Does not own: building the object store
//! (`bucket::build_object_store`).

use std::fmt;
use std::path::PathBuf;

/// Schemes accepted in a bucket URL, as printed in error messages.
pub const BUCKET_SCHEMES: &str = "s3://, gs://, az://, file://, mem://";

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

    fn validate(self, key: &str, value: &str) -> Result<(), super::options::BucketError> {
        match self {
            Cloud::S3 => super::options::parse_s3_option(key, value).map(drop),
            Cloud::Gcs => super::options::parse_gcs_option(key, value).map(drop),
            Cloud::Azure => super::options::parse_azure_option(key, value).map(drop),
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
pub fn redact_raw_bucket(raw: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
