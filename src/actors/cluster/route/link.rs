//! Dialling a route: the dialling side of the route handshake on another agent's peer port.
//!
//! Owns the socket-level steps of the dialler: the peer cache's challenge, `RouteHello` with the
//! route proof, `RouteWelcome`, then the switch of either side's socket to route frames
//! ([`RouteCodec`], at most [`MAX_FRAME`] bytes each). The accepting side is the peer cache's (`cache::peer`), which hands the socket to the
//! route manager. Does not own what the frames mean (`manager`), nor which agents to dial.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts, LengthDelimitedCodec};

use super::wire::{self, MAX_FRAME, Outgoing, RouteCodec, WireError};
use crate::config::Secret;
use crate::protocol::peer::{self, PeerFrame};

/// A socket during the handshake (the peer port's frames).
pub type Wire = Framed<TcpStream, LengthDelimitedCodec>;
/// A socket after the handshake.
pub type RouteWire = Framed<TcpStream, RouteCodec>;

/// Switches a socket whose handshake is done to route frames, keeping whatever the other side
/// already sent after its last handshake frame.
pub fn into_route(w: Wire) -> RouteWire {
    let old = w.into_parts();
    let mut parts = FramedParts::new::<Outgoing>(old.io, RouteCodec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut framed = Framed::from_parts(parts);
    // Frames queued behind each other go out in writes of up to this much (tokio-util's default
    // of 8 KiB made one write per ~50 small messages).
    framed.set_backpressure_boundary(WRITE_BATCH_BYTES);
    framed
}

/// How many encoded bytes a route's writer gathers before writing them to the socket.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Who this agent is on its routes.
#[derive(Debug, Clone)]
pub struct RouteIdentity {
    pub group_id: String,
    pub group_key: Secret,
    pub agent_id: String,
    /// This agent's availability zone, told to the agents it dials.
    pub zone: String,
    /// Bound on connecting plus the handshake.
    pub handshake_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("route i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("route handshake: {0}")]
    Peer(#[from] peer::PeerError),
    #[error("route refused: {0}")]
    Refused(String),
    #[error("route protocol: {0}")]
    Protocol(String),
    #[error("route handshake timed out")]
    Timeout,
}

fn framed(stream: TcpStream) -> Wire {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    Framed::new(stream, codec)
}

async fn next_peer_frame(w: &mut Wire) -> Result<PeerFrame, LinkError> {
    match w.next().await {
        Some(Ok(buf)) => Ok(peer::decode(&buf)?),
        Some(Err(e)) => Err(LinkError::Io(e)),
        None => Err(LinkError::Protocol("connection closed".into())),
    }
}

/// Connects to another agent's peer port and opens a route; the other agent's id.
pub async fn dial(addr: &str, me: &RouteIdentity) -> Result<(Wire, String), LinkError> {
    let steps = async {
        let mut w = framed(TcpStream::connect(addr).await?);
        // Nothing large before the other side has proven itself.
        w.codec_mut()
            .set_max_frame_length(peer::HANDSHAKE_MAX_FRAME);
        let nonce = match next_peer_frame(&mut w).await? {
            PeerFrame::Challenge { version, nonce } if version == peer::PROTOCOL_VERSION => nonce,
            other => {
                return Err(LinkError::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )));
            }
        };
        let mac = wire::hello_mac(&me.group_key, &nonce, &me.group_id, &me.agent_id);
        w.send(peer::encode(&PeerFrame::RouteHello {
            group_id: me.group_id.clone(),
            agent_id: me.agent_id.clone(),
            zone: me.zone.clone(),
            mac,
        })?)
        .await?;
        match next_peer_frame(&mut w).await? {
            PeerFrame::RouteWelcome { agent_id } => {
                w.codec_mut().set_max_frame_length(MAX_FRAME);
                Ok((w, agent_id))
            }
            PeerFrame::Refused { reason } => Err(LinkError::Refused(reason)),
            other => Err(LinkError::Protocol(format!(
                "expected a route welcome, got {other:?}"
            ))),
        }
    };
    tokio::time::timeout(me.handshake_timeout, steps)
        .await
        .map_err(|_| LinkError::Timeout)?
}
