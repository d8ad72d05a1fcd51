//! The peer port's protocol (9222): length-delimited frames (tokio-util) holding bincode-2
//! encoded [`PeerFrame`]s, and the handshake's proof.
//!
//! The server opens with a random nonce; the client answers with its group id, agent id and
//! HMAC-SHA256(group key, nonce | group id | agent id); a wrong MAC or a foreign group id is
//! refused. A `RouteHello` instead of `Hello` makes the connection a route.
//!
//! Owns: the frames, their bounded codec, the socket framing and the MAC. Does not own: either
//! side's behaviour (the peer cache, `actors::read::peer`; routes, `actors::cluster::route`).

use bytes::Bytes;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::config::Secret;
use crate::format::BlockLocation;

pub const PROTOCOL_VERSION: u32 = 1;
pub const NONCE_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    Challenge {
        version: u32,
        nonce: Vec<u8>,
    },
    Hello {
        group_id: String,
        agent_id: String,
        mac: Vec<u8>,
    },
    Welcome,
    Refused {
        reason: String,
    },
    Get {
        id: u64,
        location: BlockLocation,
    },
    Block {
        id: u64,
        result: Result<Vec<u8>, String>,
    },
    /// Instead of `Hello`: this connection is a route (core NATS between agents), proven with
    /// the route proof of `route::wire`; after `RouteWelcome` both sides speak route frames.
    RouteHello {
        group_id: String,
        agent_id: String,
        /// The dialler's availability zone (labels the route's traffic; not part of the proof).
        zone: String,
        mac: Vec<u8>,
    },
    RouteWelcome {
        agent_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad peer frame: {0}")]
    Codec(String),
    #[error("peer refused us: {0}")]
    Refused(String),
    #[error("peer protocol violation: {0}")]
    Protocol(String),
    #[error("peer handshake timed out")]
    Timeout,
}

pub type Wire = Framed<TcpStream, LengthDelimitedCodec>;

/// The largest frame decoded (a block and its envelope); see `settings.max_frame`.
pub const MAX_DECODED: usize = 160 * 1024 * 1024;

/// The largest frame either side reads before the handshake completes (a challenge, a hello, a
/// refusal: well under 1 KiB). The codec reserves room for a frame as soon as its length is
/// read, so without this an unauthenticated connection announcing 150 MiB made the agent
/// allocate 150 MiB.
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;

/// After the handshake: frames up to `max_frame` (blocks) are accepted from the proven peer.
pub fn authenticated(w: &mut Wire, max_frame: usize) {
    w.codec_mut().set_max_frame_length(max_frame);
}

/// Decoding is bounded: without a limit, a length prefix claiming terabytes (before the
/// handshake, from anyone who can connect) would make bincode allocate them before finding the
/// input short, and a failed allocation aborts the process.
const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODED>,
> = bincode::config::standard().with_limit::<MAX_DECODED>();

pub fn encode(frame: &PeerFrame) -> Result<Bytes, PeerError> {
    bincode::serde::encode_to_vec(frame, BINCODE)
        .map(Bytes::from)
        .map_err(|e| PeerError::Codec(e.to_string()))
}

pub fn decode(buf: &[u8]) -> Result<PeerFrame, PeerError> {
    bincode::serde::decode_from_slice(buf, BINCODE)
        .map(|(f, _)| f)
        .map_err(|e| PeerError::Codec(e.to_string()))
}

pub fn wire(stream: TcpStream, max_frame: usize) -> Wire {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    Framed::new(stream, codec)
}

pub async fn next_frame(w: &mut Wire) -> Result<PeerFrame, PeerError> {
    match w.next().await {
        Some(Ok(buf)) => decode(&buf),
        Some(Err(e)) => Err(PeerError::Io(e)),
        None => Err(PeerError::Protocol("connection closed".into())),
    }
}

/// HMAC-SHA256(group key, nonce | group id | agent id), fields length-prefixed.
pub fn handshake_mac(key: &Secret, nonce: &[u8], group_id: &str, agent_id: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return Vec::new();
    };
    for part in [nonce, group_id.as_bytes(), agent_id.as_bytes()] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn mac_ok(key: &Secret, nonce: &[u8], group_id: &str, agent_id: &str, got: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return false;
    };
    for part in [nonce, group_id.as_bytes(), agent_id.as_bytes()] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    // Constant-time comparison.
    mac.verify_slice(got).is_ok()
}
