//! The INFO document the server sends and the CONNECT document the client sends.
//!
//! Field names follow nats-server's `Info` and `ClientOpts` structs; clients decide which APIs to use
//! from `version`, `headers` and `proto`, so those are exact. Our own version travels separately in
//! `infinistream_version`.

use serde::{Deserialize, Serialize};

/// The nats-server version we advertise: clients enable modern JetStream APIs from 2.10.
pub const COMPAT_SERVER_VERSION: &str = "2.10.22";

#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub infinistream_version: String,
    pub proto: u8,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: usize,
    pub jetstream: bool,
    pub client_id: u64,
    pub client_ip: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
}

/// What a client may say in CONNECT. Unknown fields are ignored, as nats-server ignores them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConnectInfo {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub tls_required: bool,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub protocol: u8,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub jwt: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
}

impl Default for ConnectInfo {
    /// nats-server's defaults before (and under) CONNECT: verbose, pedantic and echo are on until
    /// the client turns them off; every real client sends `"verbose":false`.
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
            tls_required: false,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            user: None,
            pass: None,
            auth_token: None,
            jwt: None,
            nkey: None,
            sig: None,
        }
    }
}

/// A server id in nats-server's style: 56 upper-case base32 characters starting with `N`.
pub fn new_server_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 1..56 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_echo_on() {
        let c: ConnectInfo = serde_json::from_str(r#"{"verbose":false}"#).unwrap();
        assert!(c.echo);
        assert!(!c.verbose);
        assert!(c.pedantic);
        let c: ConnectInfo = serde_json::from_str(r#"{"echo":false,"foo":1}"#).unwrap();
        assert!(!c.echo);
    }

    #[test]
    fn server_id_shape() {
        let id = new_server_id();
        assert_eq!(id.len(), 56);
        assert!(id.starts_with('N'));
    }
}
