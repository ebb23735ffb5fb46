//! ferry: Git-backed, declarative configuration sync for AI-agent platforms.
//!
//! The library is the whole product; the `ferry` binary is a thin shell over
//! it. Data flows one way: a tree of files (folder, git revision or ZIP) is
//! read into a tenant model plus diagnostics, diffed against the store's
//! index into a [`plan::Plan`], and applied to a [`store::Store`] in one
//! transaction. See `ARCHITECTURE.md` for the map.

pub mod access;
pub mod apply;
pub mod archive;
pub mod cli;
pub mod diagnostic;
pub mod gitplan;
pub mod ids;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod promote;
pub mod publish;
pub mod publish_ops;
pub mod schema;
pub mod secrets;
pub mod server;
pub mod staging;
pub mod state;
pub mod store;
pub mod tree;
pub mod validate;
pub mod vcs;
pub mod yaml;
