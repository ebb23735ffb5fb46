//! The `ferry serve` HTTP server: configuration, SSRF protection and the
//! client that reads a source instance during live sync.

pub mod config;
pub mod source;
pub mod ssrf;
