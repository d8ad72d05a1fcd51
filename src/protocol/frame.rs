//! Parsed protocol operations. Owns the shapes only; parsing and encoding live in `codec`.

use bytes::Bytes;
use bytestring::ByteString;

/// An operation sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the raw JSON document, parsed by the connection (a bad document is a
    /// semantic error there, not a framing error here).
    Connect(Bytes),
    /// `PUB` (headers = None) or `HPUB` (headers = Some, the raw `NATS/1.0…\r\n\r\n` block).
    Pub {
        subject: ByteString,
        reply: Option<ByteString>,
        headers: Option<Bytes>,
        payload: Bytes,
    },
    /// `SUB <subject> [queue] <sid>`
    Sub {
        subject: ByteString,
        queue: Option<ByteString>,
        sid: ByteString,
    },
    /// `UNSUB <sid> [max]`
    Unsub {
        sid: ByteString,
        max: Option<u64>,
    },
    Ping,
    Pong,
}

/// An operation sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json}`: the already serialised document.
    Info(Bytes),
    /// `MSG` (headers = None) or `HMSG` (headers = Some).
    Msg {
        subject: ByteString,
        sid: ByteString,
        reply: Option<ByteString>,
        headers: Option<Bytes>,
        payload: Bytes,
    },
    Ping,
    Pong,
    Ok,
    /// `-ERR '<text>'`
    Err(String),
}
