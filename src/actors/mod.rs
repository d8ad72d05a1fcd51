//! The agent's actors. Wiring is downstream-first: each actor is started with the address of the
//! actor it feeds, so no actor looks another one up in a shared registry.

pub mod connection;
pub mod router;
