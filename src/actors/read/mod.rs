//! Read: how a stored message comes back. A consumer or a `$JS.API` message read asks the
//! [`Reader`]; the reader asks the [`ReadCache`]; a miss goes to the zone's peer that owns the
//! block (`peer`, placed on the consistent-hash `ring`), else to the bucket (`block`), and every
//! block's checksum is verified before it is cached or used.
//!
//! Owns: `block` (block addresses, range GETs, verification, record decoding), `reader` (the
//! agent's read handle), `cache` (the in-memory read cache), `peer` and `ring` (the peer cache).
//! Does not own: what is read (the consumers, `jetstream`) or membership (`cluster`).

pub mod block;
pub mod cache;
pub mod peer;
pub mod reader;
pub mod ring;

pub use block::{BlockLocation, ReadSource, read_record};
pub use cache::ReadCache;
pub use reader::Reader;
