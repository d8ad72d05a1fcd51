//! JetStream: the `$JS.API` responder (`api`), pull consumers (`pull`: requests, claims,
//! deliveries, acks) and push consumers (`push`: leases and deliveries to a subject); `wake`:
//! which of their consumers an event-feed wake concerns.
//!
//! Owns: those actors. Does not own: JetStream metadata (the control plane's), reading message
//! bytes (`read`) or delivering to subscribers (`ingress`).

pub mod api;
pub mod pull;
pub mod push;
pub mod wake;
