//! The route wire between two agents of a group.
//!
//! Owns the route frames, their codec and the route handshake's proof. Routes run over the peer
//! port: the accepting agent's peer cache opens with its challenge (a random nonce); the
//! dialling agent answers `RouteHello` with its group id, agent id and HMAC-SHA256 under the
//! group key of "route", the nonce, the group id and the agent id, each length-prefixed. The
//! "route" label keeps a route proof from ever passing as a peer-cache proof and back. After
//! `RouteWelcome` both sides switch to [`RouteCodec`]: frames with a 4-byte big-endian length
//! (as the handshake's), then a tag. Interest deltas are bincode-2; messages are laid out by
//! hand so a payload is copied once into the socket buffer and read back without a copy (see
//! `docs/architecture.md`, "Routes"). Does not own sockets, reconnects or what the frames mean to
//! the router.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::{Decoder, Encoder};

use super::interest::InterestDelta;
use crate::actors::ops::budget::BudgetPermit;
use crate::config::Secret;
use crate::message::NatsMsg;

const LABEL: &[u8] = b"route";
/// The largest frame a route carries: a message of the largest payload with its headers.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

const TAG_INTEREST: u8 = 0;
const TAG_MSG: u8 = 1;

/// Decoding is bounded: without a limit, a length prefix claiming terabytes would make bincode
/// allocate them before finding the input short, and a failed allocation aborts the process.
const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME>,
> = bincode::config::standard().with_limit::<MAX_FRAME>();

/// One frame on a route, after the handshake (which is the peer port's: `PeerFrame::RouteHello`
/// and `RouteWelcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFrame {
    /// A change of the sender's interest.
    Interest(InterestDelta),
    /// A message for the receiver's local subscribers only: every plain one, and one member of
    /// each queue group in `queues`, of the subscriptions matching `to` if set (a JetStream
    /// delivery keeps its stored subject but goes to a deliver subject), else `msg.subject`.
    Msg {
        msg: NatsMsg,
        to: Option<ByteString>,
        queues: Vec<String>,
    },
}

/// What keeps a queued frame's memory accounted until the codec has copied it: the
/// publisher's share of the in-flight budget (a slow route slows the publishers), or a share
/// of the route's own cap (messages no publisher waits for, such as stored copies).
#[derive(Debug)]
pub enum Hold {
    None,
    Owned { _permit: BudgetPermit },
    Budget { _permit: Arc<BudgetPermit> },
    Cap { _permit: OwnedSemaphorePermit },
}

/// A frame queued for a route's writer.
#[derive(Debug)]
pub struct Outgoing {
    pub frame: RouteFrame,
    pub hold: Hold,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("route i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode a route frame: {0}")]
    Encode(String),
    #[error("cannot decode a route frame: {0}")]
    Decode(String),
}

/// Route frames after the handshake, both ways.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteCodec;

impl Encoder<Outgoing> for RouteCodec {
    type Error = WireError;
    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_into(&item.frame, dst)
    }
}

impl Decoder for RouteCodec {
    type Item = RouteFrame;
    type Error = WireError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RouteFrame>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > MAX_FRAME {
            return Err(WireError::Decode(format!(
                "a frame of {len} bytes, more than {MAX_FRAME}"
            )));
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        decode(src.split_to(len).freeze()).map(Some)
    }
}

/// Appends one frame, its length first.
pub fn encode_into(frame: &RouteFrame, dst: &mut BytesMut) -> Result<(), WireError> {
    let at = dst.len();
    dst.put_u32(0);
    match frame {
        RouteFrame::Interest(delta) => {
            dst.put_u8(TAG_INTEREST);
            let body = bincode::serde::encode_to_vec(delta, BINCODE)
                .map_err(|e| WireError::Encode(e.to_string()))?;
            dst.extend_from_slice(&body);
        }
        RouteFrame::Msg { msg, to, queues } => {
            // One reservation for the whole frame: the fields below never grow the buffer.
            dst.reserve(
                1 + 4 * 4
                    + 2
                    + msg.subject.len()
                    + msg.reply.as_ref().map_or(0, |r| r.len())
                    + msg.headers.as_ref().map_or(0, |h| h.len())
                    + to.as_ref().map_or(0, |t| t.len())
                    + queues.iter().map(|q| 4 + q.len()).sum::<usize>()
                    + msg.payload.len(),
            );
            dst.put_u8(TAG_MSG);
            put_field(dst, Some(str::as_bytes(&msg.subject)))?;
            put_field(dst, msg.reply.as_deref().map(str::as_bytes))?;
            put_field(dst, msg.headers.as_deref())?;
            put_field(dst, to.as_deref().map(str::as_bytes))?;
            let count = u16::try_from(queues.len())
                .map_err(|_| WireError::Encode("too many queue groups".into()))?;
            dst.put_u16(count);
            for q in queues {
                put_field(dst, Some(q.as_bytes()))?;
            }
            dst.extend_from_slice(&msg.payload);
        }
    }
    let len = dst.len() - at - 4;
    if len > MAX_FRAME {
        dst.truncate(at);
        return Err(WireError::Encode(format!(
            "a frame of {len} bytes, more than {MAX_FRAME}"
        )));
    }
    dst[at..at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// A field: 0 for none, else its length plus one, then its bytes.
fn put_field(dst: &mut BytesMut, field: Option<&[u8]>) -> Result<(), WireError> {
    match field {
        None => dst.put_u32(0),
        Some(b) => {
            let len = u32::try_from(b.len())
                .ok()
                .filter(|l| *l < u32::MAX)
                .ok_or_else(|| WireError::Encode("a field too long".into()))?;
            dst.put_u32(len + 1);
            dst.extend_from_slice(b);
        }
    }
    Ok(())
}

fn take_field(body: &mut Bytes) -> Result<Option<Bytes>, WireError> {
    if body.remaining() < 4 {
        return Err(WireError::Decode("a field cut short".into()));
    }
    let len = body.get_u32() as usize;
    if len == 0 {
        return Ok(None);
    }
    let len = len - 1;
    if body.remaining() < len {
        return Err(WireError::Decode("a field cut short".into()));
    }
    Ok(Some(body.split_to(len)))
}

fn text(b: Bytes) -> Result<ByteString, WireError> {
    ByteString::try_from(b).map_err(|_| WireError::Decode("a subject that is not UTF-8".into()))
}

/// A frame from its bytes (without the length); trailing bytes are an error.
pub fn decode(mut body: Bytes) -> Result<RouteFrame, WireError> {
    if body.is_empty() {
        return Err(WireError::Decode("an empty frame".into()));
    }
    match body.get_u8() {
        TAG_INTEREST => {
            let (delta, used) =
                bincode::serde::decode_from_slice::<InterestDelta, _>(&body, BINCODE)
                    .map_err(|e| WireError::Decode(e.to_string()))?;
            if used != body.len() {
                return Err(WireError::Decode(format!(
                    "{} bytes after the frame",
                    body.len() - used
                )));
            }
            Ok(RouteFrame::Interest(delta))
        }
        TAG_MSG => {
            let subject = take_field(&mut body)?
                .ok_or_else(|| WireError::Decode("a message without a subject".into()))?;
            let reply = take_field(&mut body)?.map(text).transpose()?;
            let headers = take_field(&mut body)?;
            let to = take_field(&mut body)?.map(text).transpose()?;
            if body.remaining() < 2 {
                return Err(WireError::Decode("a frame cut short".into()));
            }
            let count = body.get_u16();
            let mut queues = Vec::with_capacity(usize::from(count).min(16));
            for _ in 0..count {
                let q = take_field(&mut body)?
                    .ok_or_else(|| WireError::Decode("an empty queue group".into()))?;
                queues.push(text(q)?.to_string());
            }
            Ok(RouteFrame::Msg {
                msg: NatsMsg {
                    subject: text(subject)?,
                    reply,
                    headers,
                    payload: body,
                },
                to,
                queues,
            })
        }
        tag => Err(WireError::Decode(format!("unknown frame tag {tag}"))),
    }
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

    fn msg_frame() -> RouteFrame {
        RouteFrame::Msg {
            msg: NatsMsg {
                subject: "orders.eu".into(),
                reply: Some("_INBOX.x".into()),
                headers: Some(Bytes::from_static(b"NATS/1.0\r\n\r\n")),
                payload: Bytes::from_static(b"hello"),
            },
            to: Some("deliver.here".into()),
            queues: vec!["workers".into()],
        }
    }

    fn bytes_of(frame: &RouteFrame) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_into(frame, &mut buf).expect("encode");
        buf
    }

    #[test]
    fn frames_round_trip_through_the_codec_even_split_anywhere() {
        let frames = [
            RouteFrame::Interest(InterestDelta::Add {
                subject: "orders.>".into(),
                queue: Some("workers".into()),
                weight: 3,
            }),
            msg_frame(),
            RouteFrame::Msg {
                msg: NatsMsg::new("a", Bytes::new()),
                to: None,
                queues: vec![],
            },
        ];
        let mut all = BytesMut::new();
        for f in &frames {
            all.extend_from_slice(&bytes_of(f));
        }
        for cut in 0..all.len() {
            let mut codec = RouteCodec;
            let mut src = BytesMut::from(&all[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut src).expect("decode") {
                got.push(f);
            }
            src.extend_from_slice(&all[cut..]);
            while let Some(f) = codec.decode(&mut src).expect("decode") {
                got.push(f);
            }
            assert_eq!(got, frames, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = bytes_of(&msg_frame()).freeze().slice(4..);
        for end in 0..good.len() - 5 {
            // Every prefix that cuts a field short (the payload is the rest, so cuts in it are
            // a shorter payload, not an error).
            assert!(decode(good.slice(..end)).is_err(), "prefix of {end}");
        }
        assert!(decode(Bytes::from_static(&[9, 0, 0])).is_err());
        assert!(decode(Bytes::from_static(&[TAG_MSG, 0, 0, 0, 2, 0xff])).is_err());
        let mut interest = bytes_of(&RouteFrame::Interest(InterestDelta::Remove {
            subject: "a".into(),
            queue: None,
        }));
        interest.extend_from_slice(&[0]);
        let len = (interest.len() - 4) as u32;
        interest[..4].copy_from_slice(&len.to_be_bytes());
        assert!(RouteCodec.decode(&mut interest).is_err(), "a trailing byte");
    }

    /// A length prefix claiming more than a frame may hold: refused before anything is read.
    #[test]
    fn a_huge_length_claim_is_an_error_not_an_allocation() {
        let mut src = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(RouteCodec.decode(&mut src).is_err());
        let mut claim = BytesMut::from(&[TAG_INTEREST][..]);
        claim.put_u8(253);
        claim.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(decode(claim.freeze()).is_err());
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
        let peer = crate::protocol::peer::handshake_mac(&key, b"nonce", "g", "a1");
        assert_ne!(peer, mac);
    }
}
