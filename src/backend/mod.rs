//! The back ends: what the use cases read from and write to.
//!
//! [`store`] is the live state behind traits (SQLite today), [`vcs`] is git
//! through git2 (with [`git_index`] patching git's index in place after a
//! small commit, and [`git_pack`] streaming a big commit's blobs into a
//! pack), and [`archive`] is the ZIP format through the zip crate.
//! [`source`] reads another ferry instance over HTTP for live sync, after
//! [`ssrf`] vetted its URL under the rules of [`sync_config`].
//! Each is the only module naming its crate, so another back end is a new
//! implementation of a small interface, not a change to the core.

pub mod archive;
pub mod git_index;
pub mod git_pack;
pub mod source;
pub mod ssrf;
pub mod store;
pub mod sync_config;
pub mod vcs;
