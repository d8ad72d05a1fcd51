//! The binary's edge: the command-line grammar, configuration layering and each subcommand's
//! process life (banner, signals, graceful stop). Not part of the library: it is the only code
//! that needs the control plane and the bench tool beside the agent.
//!
//! Owns: `cli` (grammar, options files, dispatch), `layering` (flags, environment and files into
//! configurations), `control_plane` and `playground` (running them as processes). Does not own:
//! the agent (`infinistream`), the control plane (`infinistream-control-plane`) or the bench
//! (`infinistream-bench`).

pub mod cli;
pub mod control_plane;
pub mod layering;
pub mod playground;
