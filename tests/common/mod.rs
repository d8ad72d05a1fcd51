//! The shared integration-test harness: real parts on free loopback ports.
//! `s3`: an S3 HTTP server (s3s-fs) in process with request counting and fault injection;
//! `control_plane`: the control plane over HTTP; `agent`: agents in process;
//! `stack`: all of them together.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod control_plane;
pub mod s3;
pub mod stack;

pub use agent::TestAgent;
pub use stack::Stack;
