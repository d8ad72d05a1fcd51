//! Ingress: where a message enters and leaves an agent. One `connection` actor per client reads
//! the NATS protocol in bursts (`burst`); the `router` delivers to local subscribers and routes,
//! and hands publishes captured by a stream to that stream's batcher.
//!
//! Owns: the connection and router actors. Does not own: what happens to a captured publish
//! (`write`), JetStream requests (`jetstream`) or the route mesh (`cluster`).

mod burst;
pub mod connection;
pub mod router;
