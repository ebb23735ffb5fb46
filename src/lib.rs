//! ferry: Git-backed, declarative configuration sync for AI-agent platforms.
//!
//! The library is the whole product; the `ferry` binary is a thin shell over
//! it. Data flows one way: a tree of files (folder, git revision or ZIP) is
//! read into a tenant model plus diagnostics, diffed against the store's
//! index into a [`domain::plan::Plan`], and applied to a [`backend::store::Store`] in one
//! transaction. See `ARCHITECTURE.md` for the map.

pub mod backend;
pub mod cli;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod server;
pub mod service;
