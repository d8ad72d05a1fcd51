//! A value that must never appear in logs, errors or Debug output (group keys).
//!
//! Owns: the wrapper and its redacting `Debug`. Does not own: where secrets come from
//! (configuration) or how they are checked (the control plane's auth).

use std::fmt;

/// A secret that never prints itself (logs, errors, Debug output).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
