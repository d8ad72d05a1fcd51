//! JetStream API types with nats-server's exact JSON shapes, its error codes and its stream
//! configuration rules.
//!
//! Owns: serde types for `$JS.API` payloads (stream config/info/state, PubAck, account info,
//! response envelopes), `ApiError` constructors and config validation. Does not own: storage,
//! sequencing or transport (see `control_plane`).

pub mod config;
pub mod consumer;
pub mod errors;
pub mod gojson;
pub mod time;
pub mod types;

pub use config::{
    API_LEVEL, Compression, ConsumerLimits, DiscardPolicy, PersistMode, Placement, RePublish,
    RetentionPolicy, SERVER_VERSION, StorageType, StreamConfig, StreamConfigRequest,
    SubjectTransform, is_valid_stream_name,
};
pub use errors::ApiError;
pub use types::*;

/// The subject prefix of the JetStream API.
pub const API_PREFIX: &str = "$JS.API.";
