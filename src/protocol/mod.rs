//! The NATS client protocol: frames (`frame`), the tokio-util codec that turns bytes into frames and
//! back (`codec`), message headers (`headers`), and the INFO / CONNECT documents (`info`).

pub mod codec;
pub mod frame;
pub mod headers;
pub mod info;

pub use codec::{NatsCodec, ProtocolError};
pub use frame::{ClientOp, ServerOp};
