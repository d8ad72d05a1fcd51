//! The INFO document the server sends and the CONNECT document the client sends.
//!
//! Field names follow nats-server's `Info` and `ClientOpts` structs; clients decide which APIs to use
//! from `version`, `headers` and `proto`, so those are exact. Our own version travels separately in
//! `infinistream_version`.
//!
//! CONNECT is decoded the way Go's `json.Unmarshal` fills nats-server's `ClientOpts`: onto the
//! options already in force (a second CONNECT changes only what it names), keys matched without
//! regard to case, the last of duplicate keys winning, `null` leaving a field as it is, invalid
//! UTF-8 inside strings replaced, and a value of the wrong type failing the whole document.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Set in the INFO nats-server sends after the first PONG to clients of protocol 1.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_account: Option<String>,
}

/// What a client may say in CONNECT. Unknown fields are ignored, as nats-server ignores them.
#[derive(Debug, Clone)]
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
    /// Go's `int`: any integer decodes; the connection refuses those outside 0..=1.
    pub protocol: i64,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub jwt: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
    /// Naming an account (or asking for a new one) is an authorization violation in nats-server.
    pub account: Option<String>,
    pub new_account: bool,
}

/// A CONNECT document nats-server cannot decode; it closes the connection without an `-ERR`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect is not json: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("connect is not a json object")]
    NotAnObject,
    #[error("connect field {0} has the wrong type")]
    WrongType(String),
}

/// A JSON object's members in document order (serde_json's map would sort them, and Go assigns
/// duplicates in order, the last one winning). `None` for a top-level `null`.
struct Members(Option<Vec<(String, Value)>>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object or null")
            }
            fn visit_unit<E>(self) -> Result<Members, E> {
                Ok(Members(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Members(Some(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `ClientOpts` fields a client may send, by their JSON name.
const BOOL_FIELDS: &[&str] = &[
    "echo",
    "verbose",
    "pedantic",
    "tls_required",
    "new_account",
    "headers",
    "no_responders",
];
const STRING_FIELDS: &[&str] = &[
    "nkey",
    "jwt",
    "sig",
    "auth_token",
    "user",
    "pass",
    "name",
    "lang",
    "version",
    "account",
    "remote_account",
];

impl ConnectInfo {
    /// Applies one CONNECT document onto these options, as Go's `json.Unmarshal` would.
    pub fn apply(&mut self, json: &[u8]) -> Result<(), ConnectError> {
        let text = String::from_utf8_lossy(json);
        let Members(members) = serde_json::from_str(&text).map_err(|e| {
            if e.is_data() {
                ConnectError::NotAnObject
            } else {
                ConnectError::Syntax(e)
            }
        })?;
        let Some(members) = members else {
            // `null` leaves everything as it was.
            return Ok(());
        };
        let mut first_error = None;
        for (key, value) in members {
            if value.is_null() {
                continue;
            }
            if let Err(e) = self.set(&key, value) {
                // Go keeps decoding the rest, then fails the document with the first error.
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn set(&mut self, key: &str, value: Value) -> Result<(), ConnectError> {
        let wrong = || ConnectError::WrongType(key.to_string());
        let field = |names: &[&'static str]| {
            names
                .iter()
                .find(|n| **n == key)
                .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(key)))
                .copied()
        };
        if let Some(name) = field(BOOL_FIELDS) {
            let v = value.as_bool().ok_or_else(wrong)?;
            match name {
                "echo" => self.echo = v,
                "verbose" => self.verbose = v,
                "pedantic" => self.pedantic = v,
                "tls_required" => self.tls_required = v,
                "new_account" => self.new_account = v,
                "headers" => self.headers = v,
                _ => self.no_responders = v,
            }
            return Ok(());
        }
        if let Some(name) = field(STRING_FIELDS) {
            let Value::String(v) = value else {
                return Err(wrong());
            };
            let slot = match name {
                "nkey" => &mut self.nkey,
                "jwt" => &mut self.jwt,
                "sig" => &mut self.sig,
                "auth_token" => &mut self.auth_token,
                "user" => &mut self.user,
                "pass" => &mut self.pass,
                "name" => &mut self.name,
                "lang" => &mut self.lang,
                "version" => &mut self.version,
                "account" => &mut self.account,
                // Leafnode-only; decoded and ignored, as for client connections.
                _ => return Ok(()),
            };
            *slot = Some(v);
            return Ok(());
        }
        if key.eq_ignore_ascii_case("protocol") {
            // Go's int: integers only (no fraction, no exponent), within 64 bits.
            self.protocol = value.as_i64().ok_or_else(wrong)?;
        }
        Ok(())
    }
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
            account: None,
            new_account: false,
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

    fn connect(json: &str) -> Result<ConnectInfo, ConnectError> {
        let mut c = ConnectInfo::default();
        c.apply(json.as_bytes()).map(|_| c)
    }

    #[test]
    fn connect_defaults_echo_on() {
        let c = connect(r#"{"verbose":false}"#).expect("a CONNECT nats-server accepts");
        assert!(c.echo);
        assert!(!c.verbose);
        assert!(c.pedantic);
        let c = connect(r#"{"echo":false,"foo":1}"#).expect("a CONNECT nats-server accepts");
        assert!(!c.echo);
    }

    #[test]
    fn connect_decodes_like_go() {
        // Keys without regard to case, the last duplicate winning, null as "leave it".
        let c = connect(r#"{"VERBOSE":false,"echo":false,"Echo":true,"pedantic":null}"#)
            .expect("a CONNECT nats-server accepts");
        assert!(!c.verbose && c.echo && c.pedantic);
        assert!(
            connect("null")
                .expect("a CONNECT nats-server accepts")
                .verbose
        );
        assert!(connect("[]").is_err());
        assert!(connect(r#"{"verbose":1}"#).is_err());
        assert!(connect(r#"{"protocol":1.5}"#).is_err());
        assert_eq!(
            connect(r#"{"protocol":99}"#)
                .expect("a CONNECT nats-server accepts")
                .protocol,
            99
        );
        assert_eq!(
            connect(r#"{"protocol":-1}"#)
                .expect("a CONNECT nats-server accepts")
                .protocol,
            -1
        );
        // Invalid UTF-8 inside a string is replaced, not refused.
        let mut c = ConnectInfo::default();
        c.apply(b"{\"name\":\"\xff\"}")
            .expect("a CONNECT nats-server accepts");
        assert_eq!(c.name.as_deref(), Some("\u{fffd}"));
        // A second CONNECT keeps what it does not name.
        c.apply(br#"{"verbose":false}"#)
            .expect("a CONNECT nats-server accepts");
        c.apply(br#"{"pedantic":false}"#)
            .expect("a CONNECT nats-server accepts");
        assert!(!c.verbose);
    }

    #[test]
    fn server_id_shape() {
        let id = new_server_id();
        assert_eq!(id.len(), 56);
        assert!(id.starts_with('N'));
    }
}
