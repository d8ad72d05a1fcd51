//! Write: how a publish becomes durable. A captured publish reaches its stream's `batcher`; the
//! `flusher` seals one object per window from every dirty batcher; the `uploader` pool PUTs it to
//! the bucket; `commit` (the sequence client) commits its metadata to the control plane and only
//! then are the publishers acked. `catalog` keeps one batcher per stream.
//!
//! Owns: those actors and the write path's typed error (`error`). Does not own: capturing a
//! publish (`ingress`), the object format (`crate::format`) or the in-flight budget (`ops`).

pub mod batcher;
pub mod catalog;
pub mod commit;
pub mod error;
pub mod flusher;
pub mod messages;
pub mod uploader;
