//! The NATS client protocol: frames (`frame`), the tokio-util codec that turns bytes into frames and
//! back (`codec`), message headers (`headers`), and the INFO / CONNECT documents (`info`); and the
//! peer port's protocol between agents (`peer`).

pub mod codec;
pub mod frame;
pub mod headers;
pub mod info;
pub mod peer;

pub use codec::{NatsCodec, ProtocolError};
pub use frame::{ClientOp, ServerOp};
