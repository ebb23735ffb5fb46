//! The pure core: the tenant model and everything computed from it alone.
//!
//! A tree of files becomes resources plus diagnostics ([`tree`], [`yaml`]),
//! names resolve to IDs ([`validate`]), and a plan is the difference of two
//! models ([`plan`]). Publishing, reverting and structural matching are
//! pure functions of models too ([`publish`], [`matching`]), and so are
//! roles ([`access`]), the promotion order ([`chain`]), IDs ([`ids`]) and the secret formats ([`secrets`]).
//! The JSON shapes the front ends answer in are [`answer`].
//! A publish tags git through the [`tagging`] port, which a back end implements.
//! Nothing here prints, reads the environment, opens a store or names git,
//! SQLite or ZIP: the architecture test in `tests/it/layers.rs` fails if it does.

pub mod access;
pub mod answer;
pub mod chain;
pub mod diagnostic;
pub mod ids;
pub mod matching;
pub mod model;
pub mod plan;
pub mod publish;
pub mod schema;
pub mod secrets;
pub mod state;
pub mod suggest;
pub mod tagging;
pub mod tree;
pub mod validate;
pub mod yaml;
