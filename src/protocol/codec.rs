//! `NatsCodec`: bytes <-> frames for the client protocol. Owns framing limits (max control line,
//! max payload) and the exact wording of framing errors; does not own semantics (subject
//! validity, permissions, routing), which the connection decides.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{ClientOp, ServerOp};

/// A framing error. Every variant closes the connection after `-ERR '<to_string()>'`.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("Unknown Protocol Operation")]
    UnknownOperation,
    #[error("Maximum Payload Violation")]
    MaxPayload,
    #[error("Maximum Control Line Exceeded")]
    MaxControlLine,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct NatsCodec {
    pub max_control_line: usize,
    pub max_payload: usize,
}

impl NatsCodec {
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_control_line: 4096,
            max_payload,
        }
    }
}

impl Decoder for NatsCodec {
    type Item = ClientOp;
    type Error = ProtocolError;
    fn decode(&mut self, _src: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        unimplemented!("issue 2: codec")
    }
}

impl Encoder<ServerOp> for NatsCodec {
    type Error = ProtocolError;
    fn encode(&mut self, _item: ServerOp, _dst: &mut BytesMut) -> Result<(), ProtocolError> {
        unimplemented!("issue 2: codec")
    }
}
