//! `ferry serve`: the store over HTTP, with the endpoints of the three
//! reference documents.
//!
//! This module is an edge, like the CLI: it owns the listener, the tokio
//! runtime, request logging and the mapping of library results onto HTTP.
//! Every rule (roles, promotion, staging, publish, ZIP import, matching)
//! lives in the library and is called from here exactly as the CLI calls it.
//! Writes go through one store connection behind a mutex, used from
//! blocking tasks, so they are serialised: each write sees the store as the
//! previous one left it, and no accepted write is lost. Requests that only
//! read use a small pool of other connections, each inside one read
//! snapshot, so they run in parallel with each other and with the writer.
//!
//! Routes are registered through [`openapi::Registry`], which refuses a
//! route that `/openapi.json` does not describe (the server does not start);
//! a test checks the converse. The entry point is [`serve`], which the
//! composition root hands to the CLI as a [`ServeFn`](crate::service::serving::ServeFn).

pub mod auth;
pub mod backup;
pub mod error;
mod ferry_api;
pub mod live_sync;
pub mod openapi;
mod staging;
mod tenant_sync;
pub mod ui;

#[doc(hidden)]
pub use staging::{edit_of_body, EditBody};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::backend::store::Store;
use crate::backend::sync_config::ServerConfig;
use crate::domain::tagging::PublishTagger;
pub use crate::service::serving::ServeError;
use crate::service::serving::{RequestLog, ServeRequest};
use error::ApiError;

/// The largest request body accepted (a ZIP upload), in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What every request handler shares.
pub struct AppState {
    /// The store, one writer at a time.
    store: Mutex<Box<dyn Store + Send>>,
    /// More connections to the same store, for requests that only read.
    readers: Vec<Mutex<Box<dyn Store + Send>>>,
    /// Where the next read starts looking for a free reader.
    next_reader: AtomicUsize,
    /// One permit per reader: reads wait for one in arrival order (a
    /// fair queue), not in a scramble for the readers' locks.
    reader_slots: tokio::sync::Semaphore,
    /// Whether the readers' reads are local work (a database file) that
    /// runs in place on the async worker; reads that wait on a database
    /// server move off it.
    local_reads: bool,
    /// The server's configuration.
    pub config: ServerConfig,
    /// How publishes tag git, when the server runs in a config repo.
    pub tagger: Option<Box<dyn PublishTagger + Send + Sync>>,
    /// Where request log lines go instead of stderr, if somewhere.
    request_log: Option<RequestLog>,
    /// When this server last wrote each token's use (by token, Unix seconds),
    /// so a busy token costs one small write a minute, not one per request.
    token_uses: Mutex<std::collections::HashMap<String, i64>>,
    /// Staging diffs rendered at the store's current stamp.
    pub staging_diffs: crate::service::publishing::StagingDiffCache,
}

/// The shared state handed to handlers.
pub type Shared = Arc<AppState>;

impl AppState {
    /// State over a store (and extra read connections to it) with a
    /// configuration and, in a config repo, a publish tagger.
    pub fn new(
        store: Box<dyn Store + Send>,
        readers: Vec<Box<dyn Store + Send>>,
        config: ServerConfig,
        tagger: Option<Box<dyn PublishTagger + Send + Sync>>,
    ) -> Shared {
        let local_reads = readers.iter().all(|r| r.reads_are_local());
        let reader_slots = tokio::sync::Semaphore::new(readers.len());
        Arc::new(AppState {
            store: Mutex::new(store),
            readers: readers.into_iter().map(Mutex::new).collect(),
            next_reader: AtomicUsize::new(0),
            local_reads,
            reader_slots,
            config,
            tagger,
            request_log: None,
            token_uses: Mutex::new(std::collections::HashMap::new()),
            staging_diffs: Default::default(),
        })
    }

    /// Whether this token's use is due to be written (none written in the
    /// last minute), marking it written now if so.
    fn token_use_due(&self, token: &str) -> bool {
        let hash = crate::service::access::token_hash(token);
        let now = crate::backend::store::now_secs();
        let mut uses = self
            .token_uses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if uses
            .get(&hash)
            .is_some_and(|t| now - t < crate::service::access::TOKEN_USE_INTERVAL)
        {
            return false;
        }
        if uses.len() >= 4096 {
            uses.clear();
        }
        uses.insert(hash, now);
        true
    }
}

/// Run read-only `work` on a reader connection (the writer when there are
/// none), inside one read snapshot, so it sees one committed state.
pub async fn read_store<T, F>(state: &Shared, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
{
    if state.readers.is_empty() {
        return with_store(state, move |s| work(&*s)).await;
    }
    let slot = state
        .reader_slots
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let read = move || {
        let _slot = slot;
        let n = state.readers.len();
        let start = state.next_reader.fetch_add(1, Ordering::Relaxed);
        let guard = (0..n)
            .find_map(|i| state.readers[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                state.readers[start % n]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            });
        guard.begin_read()?;
        let out = work(guard.as_ref());
        guard.end_read()?;
        out
    };
    if state.local_reads {
        // A read of a local database file is a millisecond of work: running
        // it right here keeps requests in arrival order, where handing the
        // worker over (below) left some waiting several times as long.
        read()
    } else {
        // A read that waits on a database server: tell the runtime to move
        // this worker's other tasks away while it waits.
        tokio::task::block_in_place(read)
    }
}

/// Run `work` on the store in a blocking task, one request at a time.
pub async fn with_store<T, F>(state: &Shared, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Store) -> Result<T, ApiError> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        // A request that failed while holding the lock left no open
        // transaction behind (SQLite rolls back on drop), so the store is
        // still consistent: take the lock back instead of failing forever.
        let mut guard = state
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(guard.as_mut())
    })
    .await
    .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))?
}

/// Every route of the API, registered against the OpenAPI table.
pub fn registry() -> openapi::Registry {
    let registry = openapi::Registry::new()
        .add(Method::GET, "/health", get(health))
        .add(Method::GET, "/openapi.json", get(openapi_json))
        .add(Method::GET, "/api/tenants", get(tenants));
    let registry = tenant_sync::routes(registry);
    let registry = backup::routes(registry);
    let registry = live_sync::routes(registry);
    let registry = ferry_api::routes(registry);
    staging::routes(registry)
}

/// The whole API; refused when a route is not in the OpenAPI table.
pub fn router(state: Shared) -> Result<Router, ServeError> {
    Ok(registry()
        .into_router()?
        .merge(ui::router()?)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(read_small_bodies))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_token_use,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_and_shape,
        ))
        .with_state(state))
}

async fn health(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let revision = read_store(&state, |s| Ok(s.revision()?)).await?;
    Ok(Json(json!({"status": "ok", "revision": revision})))
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn tenants(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = read_store(&state, move |store| {
        let caller = auth::authenticate(store, &headers)?;
        let visible = crate::service::tenants::visible(store, &caller.actor())?;
        Ok(visible
            .into_iter()
            .map(|(tenant, role)| crate::backend::store::TenantListing {
                tenant,
                folder: None,
                role,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(
        serde_json::to_value(crate::domain::answer::Items::new(list))
            .map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// After a request its token let in ([`auth::take_admitted`]: a made-up
/// token never causes a write), record the token's last use (at most once a
/// minute per token; the store skips revoked and unknown tokens). The
/// record is written beside the answer, not before it: the request that
/// happens to be a token's first in a minute does not wait for a commit.
async fn record_token_use(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let token = auth::bearer(req.headers()).map(str::to_string);
    let response = next.run(req).await;
    if let Some(token) = token {
        if auth::take_admitted(&token) && state.token_use_due(&token) {
            tokio::spawn(async move {
                let recorded = with_store(&state, move |s| {
                    Ok(crate::service::access::record_token_use(s, &token)?)
                })
                .await;
                if let Err(e) = recorded {
                    log_line(
                        json!({"warning": "cannot record a token's use", "error": e.to_string()})
                            .to_string(),
                    );
                }
            });
        }
    }
    response
}

/// The largest request body read whole before its handler runs.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// Read a small request body whole before its handler runs. A handler that
/// takes no body (a token revoke) or refuses before reading it would leave
/// it on the connection, and when its bytes arrive after the answer, hyper
/// closes the connection without saying so in the answer: the client's
/// next request on it then meets a closed socket. A body read here is
/// handed on unchanged; a larger one streams to its handler as before.
async fn read_small_bodies(req: Request, next: Next) -> Response {
    let small = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= SMALL_BODY_BYTES);
    if !small {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, SMALL_BODY_BYTES as usize).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => {
            ApiError::bad_request("bad_body", "the request body could not be read").into_response()
        }
    }
}

async fn fallback() -> ApiError {
    error::json_error(StatusCode::NOT_FOUND)
}

/// One JSON log line per request; framework errors rewritten into the error shape.
///
/// The line holds the method, the path (never the query or a header, so no
/// token reaches the log), the status and the time taken.
async fn log_and_shape(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut response = next.run(req).await;
    let status = response.status();
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !shaped {
        response = error::json_error(status).into_response();
    }
    let line = json!({
        "ts": crate::backend::store::now_rfc3339(),
        "method": method.as_str(),
        "path": path,
        "status": status.as_u16(),
        "ms": (start.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
    });
    match &state.request_log {
        Some(log) => log(line.to_string()),
        None => log_line(line.to_string()),
    }
    response
}

/// What the log writer thread receives.
enum LogMsg {
    /// One line to write.
    Line(String),
    /// Write everything queued, then answer.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The log writer thread's queue, started on first use.
fn log_queue() -> Option<&'static std::sync::mpsc::Sender<LogMsg>> {
    static LOG: std::sync::OnceLock<Option<std::sync::mpsc::Sender<LogMsg>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<LogMsg>();
        std::thread::Builder::new()
            .name("ferry-log".into())
            .spawn(move || {
                use std::io::Write;
                let mut err = std::io::BufWriter::new(std::io::stderr());
                while let Ok(first) = rx.recv() {
                    let mut acks = Vec::new();
                    // Write what queued meanwhile in one go, then flush.
                    for msg in
                        std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()))
                    {
                        match msg {
                            LogMsg::Line(l) => {
                                let _ = writeln!(err, "{l}");
                            }
                            LogMsg::Flush(ack) => acks.push(ack),
                        }
                    }
                    let _ = err.flush();
                    for ack in acks {
                        let _ = ack.send(());
                    }
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Hand a log line to the writer thread: requests never wait on stderr.
fn log_line(line: String) {
    match log_queue() {
        Some(tx) => {
            if let Err(std::sync::mpsc::SendError(LogMsg::Line(l))) = tx.send(LogMsg::Line(line)) {
                eprintln!("{l}");
            }
        }
        None => eprintln!("{line}"),
    }
}

/// Wait until every queued log line is written.
fn flush_log() {
    if let Some(tx) = log_queue() {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if tx.send(LogMsg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// A binary response (a ZIP).
pub fn zip_response(bytes: Vec<u8>, filename: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        )
        .body(Body::from(bytes))
        .unwrap_or_else(|_| ApiError::internal("cannot build the response").into_response())
}

/// Serve the API until the request's shutdown (default: Ctrl-C or SIGTERM)
/// completes, then finish the requests in flight. The request's `on_listen`
/// hears the bound address.
pub fn serve(req: ServeRequest<'_>) -> Result<(), ServeError> {
    let ServeRequest {
        store,
        readers,
        config,
        tagger,
        addr,
        on_listen,
        shutdown,
        request_log,
    } = req;
    let mut state = AppState::new(store, readers, config, tagger);
    if let Some(s) = Arc::get_mut(&mut state) {
        s.request_log = request_log;
    }
    let app = router(state.clone())?;
    let shutdown = shutdown.unwrap_or_else(|| Box::pin(shutdown_signal()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Runtime {
            reason: e.to_string(),
        })?;
    let served = runtime.block_on(async move {
        let bind = |e: std::io::Error| ServeError::Bind {
            addr: addr.clone(),
            reason: e.to_string(),
        };
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        on_listen(local);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ServeError::Runtime {
                reason: e.to_string(),
            });
        flush_log();
        served
    });
    // The store connections go last, outside the runtime: a PostgreSQL
    // connection closes by blocking on a runtime of its own, which may not
    // start inside another.
    drop(runtime);
    drop(state);
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
