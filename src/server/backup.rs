//! ZIP import and export over HTTP (document 002): preview and import of an
//! uploaded archive, preview and download of an agent's export.
//!
//! An upload is [`zip_import::import_bytes`], the sequence `ferry zip
//! import` runs on a file: it checks the archive whole, decodes, previews or
//! writes in one transaction, and checks the caller's role (editor, for the
//! preview too).
//! `baseRevision` (from a preview) makes the import refuse a tenant that
//! moved since. The caller's token names the tenant; exports need viewer.
//! Live sync ([`super::live_sync`]) feeds the same function with an archive
//! fetched from the source instance.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::openapi::Registry;
use super::{auth, read_store, with_store, zip_response, Shared};
use crate::backend::archive::{self, ArchiveError};
use crate::backend::store::Store;
use crate::domain::tagging::PublishTagger;
use crate::service::zip_export::{self, ExportError, Scope};
use crate::service::zip_import::{self, ImportError, ImportOptions, Strategy};

/// Register the ZIP routes.
pub fn routes(r: Registry) -> Registry {
    r.add(Method::POST, "/backup/import/preview", post(import_preview))
        .add(Method::POST, "/backup/import", post(import_zip))
        .add(
            Method::POST,
            "/backup/export/{agentId}/preview",
            post(export_preview),
        )
        .add(Method::POST, "/backup/export/{agentId}", post(export_agent))
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> ApiError {
        let msg = format!("{e}; nothing was written");
        match e {
            ArchiveError::TooLarge { .. } => ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "archive_too_large",
                msg,
            ),
            ArchiveError::Write { .. } => ApiError::internal(msg),
            _ => ApiError::bad_request("bad_archive", msg),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        if let Some(unavailable) = ApiError::if_unavailable(&e) {
            return unavailable;
        }
        let msg = e.to_string();
        match e {
            ImportError::Store(s) => s.into(),
            ImportError::Archive(a) => a.into(),
            ImportError::Access(a) => a.into(),
            ImportError::Invalid { .. } => ApiError::bad_request("invalid_archive", msg),
            ImportError::EmptySelection => ApiError::bad_request("empty_selection", msg)
                .hint("leave selectedResources out to import everything"),
            ImportError::NoTargetAgent { .. } => ApiError::not_found("agent_not_found", msg),
            ImportError::AmbiguousTarget { .. } => ApiError::conflict("ambiguous_target", msg)
                .hint("name the local agent with targetAgentId"),
            ImportError::NoSourceAgent { .. } | ImportError::UnknownWorkflow { .. } => {
                ApiError::bad_request("bad_import", msg)
            }
            ImportError::Apply(crate::service::apply::ApplyError::Store(s)) => s.into(),
            _ => ApiError::internal(msg),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        if let Some(unavailable) = ApiError::if_unavailable(&e) {
            return unavailable;
        }
        let msg = e.to_string();
        match e {
            ExportError::Access(a) => a.into(),
            ExportError::NoAgent { .. } => ApiError::not_found("agent_not_found", msg),
            ExportError::NoVersion { .. } => ApiError::not_found("version_not_found", msg),
            ExportError::UnknownSelection { .. } | ExportError::EmptySelection => {
                ApiError::bad_request("bad_selection", msg)
            }
            ExportError::Pipeline(crate::service::pipeline::PipelineError::Store(s)) => s.into(),
            _ => ApiError::internal(msg),
        }
    }
}

/// A comma-separated query list: `None` when absent, an error when present and empty.
pub fn id_list(name: &str, v: Option<&String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let ids = archive::split_ids(v);
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "empty_selection",
            format!("{name} is empty; an empty list is an error, not \"everything\""),
        ));
    }
    Ok(Some(ids))
}

/// The strategy named in a query (`create`, `merge`, `upgrade`).
pub fn strategy_of(v: Option<&String>, default: Strategy) -> Result<Strategy, ApiError> {
    match v.map(String::as_str) {
        None => Ok(default),
        Some("create") => Ok(Strategy::Create),
        Some("merge") => Ok(Strategy::Merge),
        Some("upgrade") => Ok(Strategy::Upgrade),
        Some(other) => Err(ApiError::bad_request(
            "bad_strategy",
            format!("unknown strategy `{other}`: expected create, merge or upgrade"),
        )),
    }
}

/// How many archives a server reads at once (ZIP import, its preview, live
/// sync): each may hold up to the archive budget in memory.
const ARCHIVE_SLOTS: usize = 2;

pub(super) static ARCHIVE_WORK: ArchiveSlots = ArchiveSlots::new(ARCHIVE_SLOTS);

/// A counting semaphore for blocking-pool work on archives.
pub(super) struct ArchiveSlots {
    busy: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    slots: usize,
}

/// A held slot; dropping it frees the slot.
pub(super) struct ArchiveSlot<'a>(&'a ArchiveSlots);

impl ArchiveSlots {
    const fn new(slots: usize) -> Self {
        ArchiveSlots {
            busy: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            slots,
        }
    }

    /// Wait for a free slot.
    pub(super) fn acquire(&self) -> ArchiveSlot<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= self.slots {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        ArchiveSlot(self)
    }
}

impl Drop for ArchiveSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.0.freed.notify_one();
    }
}

fn zip_body(headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with("application/zip") || ct.starts_with("application/octet-stream")) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be a ZIP archive (Content-Type: application/zip), not `{ct}`"),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request has no ZIP archive in its body",
        ));
    }
    Ok(())
}

async fn run_import(
    state: Shared,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    preview: bool,
) -> Result<Json<Value>, ApiError> {
    let out = with_store(&state, move |store| {
        // The caller first: an unauthenticated request learns nothing of what the body should be.
        let caller = auth::authenticate(store, &headers)?;
        zip_body(&headers, &body)?;
        let tenant = caller.current_tenant()?.to_string();
        let base = match q.get("baseRevision").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "bad_revision",
                    format!("baseRevision `{v}` is not a number"),
                )
            })?),
        };
        let target_agent = q.get("targetAgentId").cloned();
        let default = if target_agent.is_some() {
            Strategy::Upgrade
        } else {
            Strategy::Create
        };
        let opts = ImportOptions {
            strategy: strategy_of(q.get("strategy"), default)?,
            target_agent,
            selected: id_list("selectedResources", q.get("selectedResources"))?,
            workflow_order: id_list("workflowOrder", q.get("workflowOrder"))?,
        };
        let done = {
            let _slot = ARCHIVE_WORK.acquire();
            zip_import::import_bytes(store, &caller.actor(), &tenant, &body, &opts, preview, base)?
        };
        serde_json::to_value(done).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}

async fn import_preview(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run_import(state, q, headers, body, true).await
}

async fn import_zip(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    run_import(state, q, headers, body, false).await
}

/// The caller's tenant and the agent's export scope there: staging, or
/// (with `agentVersion` N > 0) the agent as published in version N (the
/// export checks the caller may read the tenant).
fn scoped_at(
    store: &dyn Store,
    headers: &HeaderMap,
    agent: &str,
    v: Option<&String>,
) -> Result<(String, zip_export::Scoped), ApiError> {
    let caller = auth::authenticate(store, headers)?;
    let tenant = caller.current_tenant()?;
    let actor = caller.actor();
    let version = match v.map(String::as_str) {
        None | Some("") | Some("null") | Some("0") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request("bad_version", format!("agentVersion `{v}` is not a number"))
        })?),
    };
    let scope = Scope::Agent(agent.to_string());
    let scoped = match version {
        None => zip_export::scope(store, &actor, tenant, &scope)?,
        Some(n) => {
            let model = zip_export::model_at_version(store, &actor, tenant, agent, n)?;
            zip_export::scope_in(model, tenant, &scope)?
        }
    };
    Ok((tenant.to_string(), scoped))
}

async fn export_preview(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let out = read_store(&state, move |store| {
        let (tenant, scoped) = scoped_at(store, &headers, &agent, q.get("agentVersion"))?;
        Ok(json!({"tenant": tenant, "agent": scoped.agent, "resources": scoped.entries}))
    })
    .await?;
    Ok(Json(out))
}

async fn export_agent(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let repo = state.clone();
    let (bytes, name) = read_store(&state, move |store| {
        let (tenant, scoped) = scoped_at(store, &headers, &agent, q.get("agentVersion"))?;
        let selected = id_list("selectedResources", q.get("selectedResources"))?;
        let made = zip_export::export_scoped(
            store,
            &tenant,
            scoped,
            selected.as_deref(),
            "ferry",
            &crate::backend::store::now_rfc3339(),
            repo.tagger.as_deref().map(|t| t as &dyn PublishTagger),
        )?;
        Ok((made.bytes, format!("{tenant}-{agent}.zip")))
    })
    .await?;
    Ok(zip_response(bytes, &name).into_response())
}

#[cfg(test)]
mod slot_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn archive_work_never_runs_more_than_its_slots_at_once() {
        let slots = ArchiveSlots::new(2);
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _slot = slots.acquire();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(*slots.busy.lock().unwrap(), 0);
    }
}
