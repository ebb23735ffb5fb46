//! Live agent sync between instances (document 002): discover the source's
//! agents, preview and execute single and batch syncs.
//!
//! The source is another `ferry serve`, named by `sourceUrl` and read with
//! the caller's `X-Source-Authorization`. Every URL passes
//! [`super::ssrf::check_source`] first, and [`super::source::SourceClient`]
//! connects only to the address that check vetted. The agent comes over as
//! the source's own ZIP export and goes through the same pipeline as a ZIP
//! upload ([`super::backup::import_bytes`], strategy `upgrade`): only the
//! transport differs. The caller is authenticated and authorised before any
//! request leaves the server, and the store is never locked while the
//! source is read.

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

use super::backup::{id_list, import_bytes, Imported};
use super::error::ApiError;
use super::openapi::Registry;
use super::source::{SourceClient, SourceError};
use super::ssrf::{self, SsrfError};
use super::{auth, read_store, with_store, Shared};
use crate::domain::access::Role;
use crate::service::zip_import::{ImportOptions, Strategy};

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
        Ok(ImportOptions {
            strategy: Strategy::Upgrade,
            target_agent: self.target_agent_id.clone(),
            selected: self.selected_resources.clone(),
            workflow_order: self.workflow_order.clone(),
        })
    }
}

/// The caller's tenant, after checking they may do this there.
async fn authorize(state: &Shared, headers: &HeaderMap, role: Role) -> Result<String, ApiError> {
    let headers = headers.clone();
    read_store(state, move |store| {
        let caller = auth::authenticate(store, &headers)?;
        let tenant = caller.current_tenant()?.to_string();
        caller.require(&tenant, role, "syncing agents from another instance")?;
        Ok(tenant)
    })
    .await
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
    tokio::task::spawn_blocking(move || {
        let checked = ssrf::check_source(&url, &cfg)?;
        Ok(Arc::new(SourceClient::new(checked, &cfg, authorization)))
    })
    .await
    .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))?
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The source's export endpoint for an agent (and version).
pub fn export_path(agent: &str, version: Option<u64>) -> String {
    let mut path = format!("/backup/export/{}", encode(agent));
    if let Some(v) = version {
        path.push_str(&format!("?agentVersion={v}"));
    }
    path
}

/// Fetch the source agent's export (off the async threads).
async fn fetch_export(client: Arc<SourceClient>, m: &Mapping) -> Result<Vec<u8>, ApiError> {
    let path = export_path(&m.source_agent_id, m.source_agent_version);
    tokio::task::spawn_blocking(move || Ok(client.post(&path, None, &[])?))
        .await
        .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))?
}

/// Sync one mapping: fetch from the source, then plan (and execute) locally.
async fn run_one(
    state: &Shared,
    client: Arc<SourceClient>,
    tenant: &str,
    m: &Mapping,
    preview: bool,
) -> Result<Imported, ApiError> {
    let opts = m.options()?;
    let bytes = fetch_export(client, m).await?;
    let tenant = tenant.to_string();
    with_store(state, move |store| {
        import_bytes(store, &tenant, &bytes, &opts, preview)
    })
    .await
}

async fn agents(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let client = client(&state, &q, &headers).await?;
    let list = tokio::task::spawn_blocking(move || client.get_json::<Value>("/api/v2/agents"))
        .await
        .map_err(|e| ApiError::internal(format!("a request task failed: {e}")))??;
    Ok(Json(list))
}

async fn single(
    state: Shared,
    q: HashMap<String, String>,
    headers: HeaderMap,
    preview: bool,
) -> Result<Json<Value>, ApiError> {
    let role = if preview { Role::Viewer } else { Role::Editor };
    let tenant = authorize(&state, &headers, role).await?;
    let m = Mapping::from_query(&q)?;
    let client = client(&state, &q, &headers).await?;
    let r = run_one(&state, client, &tenant, &m, preview).await?;
    Ok(Json(r.to_json()))
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
    let role = if preview { Role::Viewer } else { Role::Editor };
    let tenant = authorize(&state, &headers, role).await?;
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
        let r = run_one(&state, client.clone(), &tenant, m, preview).await;
        let mut item = match r {
            Ok(done) => {
                let mut v = done.to_json();
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
