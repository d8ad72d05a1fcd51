//! The agent reaches a control plane over https: a TLS proxy (a certificate from a test CA) in
//! front of the test control plane, and the real agent binary trusting that CA through
//! `SSL_CERT_FILE`, as on a machine whose system roots include it. JetStream works end to end;
//! with the CA unknown the agent refuses the certificate and JetStream is unavailable; with it
//! given as `--control-plane-ca` (system roots without it) JetStream works again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Stack;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (PEM) and a certificate for `localhost` it signed, with its key.
fn test_ca() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "infinistream test ca");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    (
        ca.pem(),
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// Terminates TLS on a free port and forwards each connection to `upstream`.
async fn tls_proxy(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    upstream: std::net::SocketAddr,
) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

async fn stream_create(url: &str) -> Result<u64, String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "TLS".into(),
        subjects: vec!["tls.>".into()],
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let ack = js
        .publish("tls.a", Bytes::from_static(b"over https"))
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(ack.sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_commits_through_an_https_control_plane() {
    let stack = Stack::start(0);
    let (ca_pem, cert, key) = test_ca();
    let upstream: std::net::SocketAddr = stack
        .cp
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("control plane address");
    let port = tls_proxy(cert, key, upstream).await;
    let https = format!("https://localhost:{port}");
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("ca file");
    let ca = ca_file.to_str().expect("utf-8 path");

    let bucket = stack.s3.bucket_url_with_retries(0);
    let agent =
        common::process::AgentProcess::start_with_env(&bucket, &https, &[("SSL_CERT_FILE", ca)]);
    let seq = tokio::time::timeout(Duration::from_secs(30), stream_create(&agent.url))
        .await
        .expect("in time")
        .expect("stream created and publish acked over https");
    assert_eq!(seq, 1);

    // The same agent without the CA: the certificate is refused, nothing is committed.
    let empty = dir.path().join("none.pem");
    std::fs::write(&empty, "").expect("empty roots");
    let untrusting = common::process::AgentProcess::start_with_env(
        &bucket,
        &https,
        &[("SSL_CERT_FILE", empty.to_str().expect("utf-8 path"))],
    );
    let refused = tokio::time::timeout(Duration::from_secs(30), stream_create(&untrusting.url))
        .await
        .expect("answered in time");
    assert!(refused.is_err(), "an unknown CA was trusted: {refused:?}");

    // The CA given explicitly, beside system roots that do not hold it.
    let explicit = common::process::AgentProcess::start_with_env(
        &bucket,
        &https,
        &[
            ("SSL_CERT_FILE", empty.to_str().expect("utf-8 path")),
            ("INFINISTREAM_CONTROL_PLANE_CA", ca),
        ],
    );
    let seq = tokio::time::timeout(Duration::from_secs(30), stream_create(&explicit.url))
        .await
        .expect("in time")
        .expect("publish acked with --control-plane-ca");
    assert_eq!(seq, 2);

    // A CA file that holds no certificate stops the agent at startup, in one line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infinistream"))
        .args([
            "agent",
            "--group-id",
            "g",
            "--group-key",
            "k",
            "--port",
            "0",
        ])
        .args([
            "--http-port",
            "0",
            "--peer-port",
            "0",
            "--bucket-name",
            &bucket,
        ])
        .args(["--control-plane-url", &https, "--control-plane-ca"])
        .arg(&empty)
        .env_remove("RUST_LOG")
        .output()
        .expect("agent runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: the control plane CA file {} holds no certificate",
            empty.display()
        )
    );
}
