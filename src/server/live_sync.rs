//! Live agent sync between instances (document 002): discover the source's
//! agents, preview and execute single and batch syncs.
//!
//! The source is another `ferry serve`, named by `sourceUrl` and read with
//! the caller's `X-Source-Authorization`. The use case is
//! [`crate::service::live_sync`], as for `ferry sync`: every URL passes the
//! SSRF check first and the client connects only to the address it vetted;
//! the agent comes over as the source's own ZIP export and lands through
//! [`crate::service::zip_import::import_bytes`] (strategy `upgrade`). The
//! caller is authenticated and authorised (editor, for lists and previews
//! too) before any request leaves the server, and the store is never
//! locked while the source is read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::backup::id_list;
use super::error::ApiError;
use super::openapi::Registry;
use super::{auth, read_store, with_store, Shared};
use crate::backend::source::{SourceClient, SourceError};
use crate::backend::ssrf::SsrfError;
use crate::service::access::Actor;
use crate::service::live_sync::{self, LiveSyncError};
use crate::service::zip_import::{self, ImportOptions, Imported};

/// The header whose value is forwarded to the source as `Authorization`.
pub const SOURCE_AUTH_HEADER: &str = "x-source-authorization";

/// Register the live-sync routes.
pub fn routes(r: Registry) -> Registry {
    r.add(Method::GET, "/backup/import/sync/agents", get(agents))
        .add(
            Method::POST,
            "/backup/import/sync/preview",
            post(preview_one),
        )
        .add(
            Method::POST,
            "/backup/import/sync/preview/batch",
            post(preview_batch),
        )
        .add(Method::POST, "/backup/import/sync", post(sync_one))
        .add(Method::POST, "/backup/import/sync/batch", post(sync_batch))
}

impl From<SsrfError> for ApiError {
    fn from(e: SsrfError) -> ApiError {
        let mut err = ApiError::bad_request(e.code(), e.to_string());
        if let Some(s) = e.setting() {
            err = err.hint(format!(
                "the `{s}` setting of the [sync] table of the server config (ferry serve --config FILE) governs this"
            ));
        }
        err
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, e.code(), e.to_string())
    }
}

impl From<LiveSyncError> for ApiError {
    fn from(e: LiveSyncError) -> ApiError {
        if let Some(unavailable) = ApiError::if_unavailable(&e) {
            return unavailable;
        }
        match e {
            LiveSyncError::Ssrf(e) => e.into(),
            LiveSyncError::Source(e) => e.into(),
            LiveSyncError::Access(e) => e.into(),
            LiveSyncError::Store(e) => e.into(),
        }
    }
}

/// One mapping of a batch (SyncMapping / SyncRequest).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Mapping {
    source_agent_id: String,
    #[serde(default)]
    source_agent_version: Option<u64>,
    #[serde(default)]
    target_agent_id: Option<String>,
    #[serde(default)]
    selected_resources: Option<Vec<String>>,
    #[serde(default)]
    workflow_order: Option<Vec<String>>,
}

impl Mapping {
    fn from_query(q: &HashMap<String, String>) -> Result<Mapping, ApiError> {
        let source_agent_id = q
            .get("sourceAgentId")
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request("missing_parameter", "sourceAgentId is required")
            })?;
        let source_agent_version = match q.get("sourceAgentVersion").map(String::as_str) {
            None | Some("") | Some("null") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                ApiError::bad_request(
                    "bad_version",
                    format!("sourceAgentVersion `{v}` is not a number"),
                )
            })?),
        };
        Ok(Mapping {
            source_agent_id,
            source_agent_version,
            target_agent_id: q.get("targetAgentId").filter(|s| !s.is_empty()).cloned(),
            selected_resources: id_list("selectedResources", q.get("selectedResources"))?,
            workflow_order: id_list("workflowOrder", q.get("workflowOrder"))?,
        })
    }

    fn options(&self) -> Result<ImportOptions, ApiError> {
        if self.selected_resources.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::bad_request(
                "empty_selection",
                "selectedResources is empty; an empty list is an error, not \"everything\"",
            ));
        }
        Ok(live_sync::sync_options(
            self.target_agent_id.clone(),
            self.selected_resources.clone(),
            self.workflow_order.clone(),
        ))
    }
}

/// The caller and their tenant, after checking they may sync into it (editor).
async fn authorize(state: &Shared, headers: &HeaderMap) -> Result<(Actor, String), ApiError> {
    let headers = headers.clone();
    read_store(state, move |store| {
        let caller = auth::authenticate(store, &headers)?;
        let tenant = caller.current_tenant()?.to_string();
        live_sync::authorize_sync(store, &caller.actor(), &tenant)?;
        Ok((caller.actor(), tenant))
    })
    .await
}

/// Run `work` on the blocking pool (resolution and the source's answers never hold an async thread).
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))?
}

/// A client for the request's `sourceUrl`, after the SSRF check (resolution runs off the async threads).
async fn client(
    state: &Shared,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Arc<SourceClient>, ApiError> {
    let url = q
        .get("sourceUrl")
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("missing_parameter", "sourceUrl is required"))?;
    let authorization = headers
        .get(SOURCE_AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let cfg = state.config.sync.clone();
    blocking(move || Ok(Arc::new(live_sync::connect(&url, &cfg, authorization)?))).await
}

/// Fetch the source agent's export (off the async threads).
async fn fetch_export(client: Arc<SourceClient>, m: &Mapping) -> Result<Vec<u8>, ApiError> {
    let (agent, version) = (m.source_agent_id.clone(), m.source_agent_version);
    blocking(move || Ok(live_sync::fetch_agent(&client, &agent, version)?)).await
}

/// Sync one mapping: fetch from the source, then plan (and execute) locally.
async fn run_one(
    state: &Shared,
    client: Arc<SourceClient>,
    (actor, tenant): &(Actor, String),
    m: &Mapping,
    preview: bool,
) -> Result<Imported, ApiError> {
    let opts: ImportOptions = m.options()?;
    let bytes = fetch_export(client, m).await?;
    let (actor, tenant) = (actor.clone(), tenant.clone());
    with_store(state, move |store| {
        let _slot = super::backup::ARCHIVE_WORK.acquire();
        Ok(zip_import::import_bytes(
            store, &actor, &tenant, &bytes, &opts, preview, None,
        )?)
    })
    .await
}

fn json_of(done: &Imported) -> Value {
    serde_json::to_value(done).unwrap_or(Value::Null)
}

async fn agents(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?;
    let client = client(&state, &q, &headers).await?;
    let list = blocking(move || Ok(live_sync::list_agents(&client)?)).await?;
    Ok(Json(list))
}

async fn single(
    state: Shared,
    q: HashMap<String, String>,
    headers: HeaderMap,
    preview: bool,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let m = Mapping::from_query(&q)?;
    let client = client(&state, &q, &headers).await?;
    let r = run_one(&state, client, &who, &m, preview).await?;
    Ok(Json(json_of(&r)))
}

async fn preview_one(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    single(state, q, headers, true).await
}

async fn sync_one(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    single(state, q, headers, false).await
}

async fn batch(
    state: Shared,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    preview: bool,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers).await?;
    let mappings: Vec<Mapping> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_body",
            format!(
                "the body must be a JSON array of {{sourceAgentId, sourceAgentVersion, targetAgentId, selectedResources, workflowOrder}}: {e}"
            ),
        )
    })?;
    if mappings.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the batch holds no mappings",
        ));
    }
    let client = client(&state, &q, &headers).await?;
    let mut items = Vec::with_capacity(mappings.len());
    let mut failed = 0;
    for m in &mappings {
        let r = run_one(&state, client.clone(), &who, m, preview).await;
        let mut item = match r {
            Ok(done) => {
                let mut v = json_of(&done);
                if let Value::Object(o) = &mut v {
                    o.insert("status".into(), "ok".into());
                }
                v
            }
            Err(e) => {
                failed += 1;
                let mut v = e.body();
                if let Value::Object(o) = &mut v {
                    o.insert("status".into(), "failed".into());
                    o.insert("httpStatus".into(), e.status.as_u16().into());
                }
                v
            }
        };
        if let Value::Object(o) = &mut item {
            o.insert("sourceAgentId".into(), m.source_agent_id.clone().into());
            o.insert("targetAgentId".into(), json!(m.target_agent_id.clone()));
        }
        items.push(item);
    }
    let status = if failed > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Value::Array(items))).into_response())
}

async fn preview_batch(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    batch(state, q, headers, body, true).await
}

async fn sync_batch(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    batch(state, q, headers, body, false).await
}
