//! One route connection: framing and the two sides of the handshake (issue 14, in progress).
//!
//! Owns the socket-level steps: length-delimited frames of at most [`MAX_FRAME`] bytes, the
//! accepting side's challenge and check, the dialling side's answer. Does not own what the
//! frames mean after the handshake (`manager`), nor which agents to dial.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::wire::{self, MAX_FRAME, ROUTE_PROTOCOL_VERSION, RouteFrame, WireError};
use crate::config::Secret;

const NONCE_LEN: usize = 32;

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
    #[error("route refused: {0}")]
    Refused(String),
    #[error("route protocol: {0}")]
    Protocol(String),
    #[error("route handshake timed out")]
    Timeout,
}

pub fn framed(stream: TcpStream) -> Wire {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    Framed::new(stream, codec)
}

pub async fn send(w: &mut Wire, frame: &RouteFrame) -> Result<(), LinkError> {
    w.send(bytes::Bytes::from(wire::encode(frame)?)).await?;
    Ok(())
}

pub async fn next(w: &mut Wire) -> Result<RouteFrame, LinkError> {
    match w.next().await {
        Some(Ok(buf)) => Ok(wire::decode(&buf)?),
        Some(Err(e)) => Err(LinkError::Io(e)),
        None => Err(LinkError::Protocol("connection closed".into())),
    }
}

/// Dialling side: connects to `addr`, proves the group key; the other agent's id.
pub async fn dial(addr: &str, me: &RouteIdentity) -> Result<(Wire, String), LinkError> {
    let steps = async {
        let mut w = framed(TcpStream::connect(addr).await?);
        let nonce = match next(&mut w).await? {
            RouteFrame::Challenge { version, nonce } if version == ROUTE_PROTOCOL_VERSION => nonce,
            other => {
                return Err(LinkError::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )));
            }
        };
        let mac = wire::hello_mac(&me.group_key, &nonce, &me.group_id, &me.agent_id);
        send(
            &mut w,
            &RouteFrame::Hello {
                group_id: me.group_id.clone(),
                agent_id: me.agent_id.clone(),
                mac,
            },
        )
        .await?;
        match next(&mut w).await? {
            RouteFrame::Welcome { agent_id } => Ok((w, agent_id)),
            RouteFrame::Refused { reason } => Err(LinkError::Refused(reason)),
            other => Err(LinkError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
        }
    };
    tokio::time::timeout(me.handshake_timeout, steps)
        .await
        .map_err(|_| LinkError::Timeout)?
}

/// Accepting side: challenges, checks the proof; the other agent's id.
pub async fn accept(stream: TcpStream, me: &RouteIdentity) -> Result<(Wire, String), LinkError> {
    let steps = async {
        let mut w = framed(stream);
        let nonce: Vec<u8> = (0..NONCE_LEN).map(|_| rand::random::<u8>()).collect();
        send(
            &mut w,
            &RouteFrame::Challenge {
                version: ROUTE_PROTOCOL_VERSION,
                nonce: nonce.clone(),
            },
        )
        .await?;
        let refusal = match next(&mut w).await? {
            RouteFrame::Hello {
                group_id,
                agent_id,
                mac,
            } => {
                if group_id != me.group_id {
                    format!("foreign group {group_id}")
                } else if !wire::hello_ok(&me.group_key, &nonce, &group_id, &agent_id, &mac) {
                    "bad credentials".to_owned()
                } else {
                    send(
                        &mut w,
                        &RouteFrame::Welcome {
                            agent_id: me.agent_id.clone(),
                        },
                    )
                    .await?;
                    return Ok((w, agent_id));
                }
            }
            _ => "expected hello".to_owned(),
        };
        let _ = send(
            &mut w,
            &RouteFrame::Refused {
                reason: refusal.clone(),
            },
        )
        .await;
        Err(LinkError::Refused(refusal))
    };
    tokio::time::timeout(me.handshake_timeout, steps)
        .await
        .map_err(|_| LinkError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(agent: &str, key: &str) -> RouteIdentity {
        RouteIdentity {
            group_id: "g".into(),
            group_key: Secret::new(key),
            agent_id: agent.into(),
            handshake_timeout: Duration::from_secs(5),
        }
    }

    async fn pair(dialler: RouteIdentity) -> (Result<String, String>, Result<String, String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            accept(stream, &me("server", "k"))
                .await
                .map(|(_, id)| id)
                .map_err(|e| e.to_string())
        });
        let client = dial(&addr, &dialler)
            .await
            .map(|(_, id)| id)
            .map_err(|e| e.to_string());
        (client, server.await.expect("server task"))
    }

    #[tokio::test]
    async fn the_group_key_opens_a_route_and_a_wrong_one_does_not() {
        let (client, server) = pair(me("client", "k")).await;
        assert_eq!(client.as_deref(), Ok("server"));
        assert_eq!(server.as_deref(), Ok("client"));

        let (client, server) = pair(me("intruder", "wrong")).await;
        assert_eq!(client, Err("route refused: bad credentials".to_owned()));
        assert_eq!(server, Err("route refused: bad credentials".to_owned()));

        let mut foreign = me("other", "k");
        foreign.group_id = "h".into();
        let (client, _) = pair(foreign).await;
        assert_eq!(client, Err("route refused: foreign group h".to_owned()));
    }
}
