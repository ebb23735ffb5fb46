//! The use cases: one library function per thing a user does.
//!
//! Each function takes the store (and, for writes, the acting user), runs
//! the pure core, and writes through the store traits in one transaction.
//! The CLI and the server are thin front ends over this layer: they parse,
//! call and render, and hold no rules of their own.

pub mod access;
pub mod agent_view;
pub mod apply;
pub mod changed_export;
pub mod failure;
pub mod folder_export;
pub mod gitplan;
pub mod live_sync;
pub mod partial_plan;
pub mod pipeline;
pub mod promote;
pub mod publishing;
pub mod remote_export;
pub mod remote_plan;
pub mod serving;
pub mod sessions;
pub mod staging;
pub mod store_copy;
pub mod syncable;
pub mod tenants;
pub mod vars;
pub mod zip_export;
pub mod zip_import;
