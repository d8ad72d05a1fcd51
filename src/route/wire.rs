//! The route wire between two agents of a group (issue 14, in progress: no connection uses it
//! yet).
//!
//! Owns the route frames and the route handshake's proof. Routes run over the peer port: the
//! accepting agent's peer cache opens with its challenge (a random nonce); the dialling agent
//! answers `RouteHello` with its group id, agent id and HMAC-SHA256 under the group key of
//! "route", the nonce, the group id and the agent id, each length-prefixed. The "route" label
//! keeps a route proof from ever passing as a peer-cache proof and back. After `RouteWelcome`
//! frames are length-delimited (tokio-util) bincode-2 encoded [`RouteFrame`]s. Does not own
//! sockets, reconnects or what the frames mean to the router.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::interest::InterestDelta;
use crate::config::Secret;

const LABEL: &[u8] = b"route";
/// The largest frame a route carries: a message of the largest payload with its headers.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Decoding is bounded: without a limit, a length prefix claiming terabytes would make bincode
/// allocate them before finding the input short, and a failed allocation aborts the process.
const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME>,
> = bincode::config::standard().with_limit::<MAX_FRAME>();

/// One frame on a route, after the handshake (which is the peer port's: `PeerFrame::RouteHello`
/// and `RouteWelcome`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteFrame {
    /// A change of the sender's interest.
    Interest(InterestDelta),
    /// A message for the receiver's local subscribers only: every plain one, and one member of
    /// each queue group in `queues`.
    Msg {
        subject: String,
        reply: Option<String>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
        queues: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot encode a route frame: {0}")]
    Encode(String),
    #[error("cannot decode a route frame: {0}")]
    Decode(String),
}

/// The frame's bytes (without the length prefix).
pub fn encode(frame: &RouteFrame) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(frame, BINCODE).map_err(|e| WireError::Encode(e.to_string()))
}

/// A frame from its bytes; trailing bytes are an error (a frame is exactly one value).
pub fn decode(bytes: &[u8]) -> Result<RouteFrame, WireError> {
    let (frame, used) = bincode::serde::decode_from_slice::<RouteFrame, _>(bytes, BINCODE)
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(WireError::Decode(format!(
            "{} bytes after the frame",
            bytes.len() - used
        )));
    }
    Ok(frame)
}

fn mac_of(key: &Secret, nonce: &[u8], group_id: &str, agent_id: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).ok()?;
    // Each part with its length first, so no split of the same bytes gives the same proof.
    for part in [LABEL, nonce, group_id.as_bytes(), agent_id.as_bytes()] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    Some(mac)
}

/// The dialling agent's proof that it holds the group key.
pub fn hello_mac(key: &Secret, nonce: &[u8], group_id: &str, agent_id: &str) -> Vec<u8> {
    mac_of(key, nonce, group_id, agent_id)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// Checks a proof in constant time.
pub fn hello_ok(key: &Secret, nonce: &[u8], group_id: &str, agent_id: &str, got: &[u8]) -> bool {
    mac_of(key, nonce, group_id, agent_id).is_some_and(|m| m.verify_slice(got).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_an_error() {
        let frames = [
            RouteFrame::Interest(InterestDelta::Add {
                subject: "orders.>".into(),
                queue: Some("workers".into()),
                weight: 3,
            }),
            RouteFrame::Msg {
                subject: "orders.eu".into(),
                reply: Some("_INBOX.x".into()),
                headers: Some(b"NATS/1.0\r\n\r\n".to_vec()),
                payload: b"hello".to_vec(),
                queues: vec!["workers".into()],
            },
        ];
        for frame in frames {
            let bytes = encode(&frame).expect("encode");
            assert_eq!(decode(&bytes).expect("decode"), frame);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(decode(&[0xff; 7]).is_err());
    }

    /// A message whose subject claims an absurd length: refused, nothing allocated for it.
    #[test]
    fn a_huge_length_claim_is_an_error_not_an_allocation() {
        let mut bytes = vec![1u8]; // variant Msg
        bytes.push(253); // varint: a u64 follows
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        bytes.extend_from_slice(b"short");
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn the_proof_binds_key_nonce_group_and_agent() {
        let key = Secret::new("k");
        let mac = hello_mac(&key, b"nonce", "g", "a1");
        assert!(hello_ok(&key, b"nonce", "g", "a1", &mac));
        assert!(!hello_ok(&Secret::new("other"), b"nonce", "g", "a1", &mac));
        assert!(!hello_ok(&key, b"other", "g", "a1", &mac));
        assert!(!hello_ok(&key, b"nonce", "g2", "a1", &mac));
        assert!(!hello_ok(&key, b"nonce", "g", "a2", &mac));
        // Moving a byte between group and agent ids changes the proof.
        assert!(!hello_ok(&key, b"nonce", "ga", "1", &mac));
        // Not the peer cache's proof for the same values.
        let peer = crate::cache::peer::handshake_mac(&key, b"nonce", "g", "a1");
        assert_ne!(peer, mac);
    }
}
