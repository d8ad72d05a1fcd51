//! The shared integration-test harness: real parts on free loopback ports.
//! `s3`: an S3 HTTP server (s3s-fs) in process with request counting and fault injection;
//! `agent`: agents in process, each on its own actix system.
#![allow(dead_code)]

pub mod agent;
pub mod s3;

pub use agent::TestAgent;
