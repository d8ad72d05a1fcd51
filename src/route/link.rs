//! Dialling a route: the dialling side of the route handshake on another agent's peer port
//! (issue 14, in progress).
//!
//! Owns the socket-level steps of the dialler: the peer cache's challenge, `RouteHello` with the
//! route proof, `RouteWelcome`, then length-delimited route frames of at most [`MAX_FRAME`]
//! bytes. The accepting side is the peer cache's (`cache::peer`), which hands the socket to the
//! route manager. Does not own what the frames mean (`manager`), nor which agents to dial.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::wire::{self, MAX_FRAME, WireError};
use crate::cache::peer::{self, PeerFrame};
use crate::config::Secret;

pub type Wire = Framed<TcpStream, LengthDelimitedCodec>;

/// Who this agent is on its routes.
#[derive(Debug, Clone)]
pub struct RouteIdentity {
    pub group_id: String,
    pub group_key: Secret,
    pub agent_id: String,
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
            mac,
        })?)
        .await?;
        match next_peer_frame(&mut w).await? {
            PeerFrame::RouteWelcome { agent_id } => Ok((w, agent_id)),
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
