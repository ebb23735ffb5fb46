//! Starting the HTTP front end from another front end: what `ferry serve`
//! and `ferry demo` hand to the server, and the shape of its entry point.
//!
//! The CLI and the server never name each other. The composition root
//! (`src/main.rs`) passes the server's entry point, a [`ServeFn`], into the
//! CLI; the CLI fills in a [`ServeRequest`] (the store connections, the
//! `[sync]` rules, the publish tagger of the config repo, the address) and
//! calls it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::backend::store::Store;
use crate::backend::sync_config::ServerConfig;
use crate::domain::tagging::PublishTagger;

/// Everything the server needs to run.
pub struct ServeRequest<'a> {
    /// The store connection writes go through.
    pub store: Box<dyn Store + Send>,
    /// More connections to the same store, for requests that only read.
    pub readers: Vec<Box<dyn Store + Send>>,
    /// The server configuration (the `[sync]` source rules).
    pub config: ServerConfig,
    /// How publishes tag git (when the server runs in a config repo).
    pub tagger: Option<Box<dyn PublishTagger + Send + Sync>>,
    /// The address to listen on.
    pub addr: String,
    /// Told the bound address once the server listens.
    pub on_listen: Box<dyn FnOnce(SocketAddr) + 'a>,
    /// Stop when this completes (default: Ctrl-C or SIGTERM).
    pub shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Where the request log's lines go (default: stderr, through a writer
    /// thread). Called before the response leaves, so a caller that prints
    /// them after each answer keeps them in order (`ferry demo`).
    pub request_log: Option<RequestLog>,
}

/// A sink for the server's request log, one JSON line per request.
pub type RequestLog = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The runtime failed.
    #[error("the server failed: {reason}")]
    Runtime {
        /// Why.
        reason: String,
    },
    /// A route is not in the table of documented routes.
    #[error(
        "route {method} {path} is not described in the OpenAPI table; it cannot be registered"
    )]
    Undocumented {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// A page or form of the web UI is not in the UI's table of routes.
    #[error("UI route {method} {path} is not listed in the UI's route table (UI_ROUTES); it cannot be registered")]
    UnlistedPage {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
}

/// The server's entry point: serve until shut down.
pub type ServeFn = fn(ServeRequest<'_>) -> Result<(), ServeError>;
