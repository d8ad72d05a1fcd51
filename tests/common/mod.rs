//! The shared integration-test harness: real parts on free loopback ports.
//! `agent` starts agents in process; `s3` an S3 HTTP server (s3s-fs) in process.
#![allow(dead_code)]

pub mod agent;
pub mod s3;

pub use agent::TestAgent;
