//! ZIP export and import pages (document 002): an agent's export preview
//! tree as checkboxes (required entries locked), downloaded through
//! [`zip_export::export_scoped`]; an upload with a strategy (`create`,
//! `merge`, `upgrade` with a target agent), previewed and then imported
//! through [`zip_import::import_bytes`], the one import sequence of the CLI
//! (which reads a file through `import_file`) and the API (editor, preview
//! too). Conflicts are imported only when ticked. The
//! previewed archive rides along in the import form (base64), and the
//! import is refused if the tenant moved since the preview.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use maud::{html, Markup};

use super::{csrf_field, layout, me_writing, ok, read_page, respond, write_form, Form, Me, Shared};
use crate::backend::store::Store;
use crate::domain::model::Kind;
use crate::server::backup::{strategy_of, ARCHIVE_WORK};
use crate::server::error::ApiError;
use crate::server::{with_store, zip_response};
use crate::service::zip_export::{self, Scope};
use crate::service::zip_import::{self, ImportOptions, Imported, Strategy};

/// `GET /t/{tenant}/agents/{agent}/export`: the preview tree.
pub async fn export_page(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        let scoped = zip_export::scope(store, &me.actor(), tenant, &Scope::Agent(agent.clone()))?;
        let depth = |e: &zip_export::ExportEntry| {
            let mut d = 0;
            let mut p = e.parent.clone();
            while let Some(id) = p {
                d += 1;
                p = scoped.entries.iter().find(|x| x.id == id).and_then(|x| x.parent.clone());
            }
            d.min(6)
        };
        let body = html! {
            h1 { "Export agent " (agent) " as ZIP" }
            p { "Untick what the archive should leave out. The agent and its workflows are always exported." }
            form.card #export method="get" action={ "/t/" (tenant) "/agents/" (agent) "/export.zip" } {
                fieldset { legend { "Resources" }
                    ul.tree { @for e in &scoped.entries {
                        li style={ "margin-left: " (depth(e) * 2) "rem" } data-id=(e.id) {
                            label.inline {
                                @if e.required {
                                    input type="checkbox" checked disabled aria-describedby="required-note";
                                    input type="hidden" name="selected" value=(e.id);
                                } @else {
                                    input type="checkbox" name="selected" value=(e.id) checked;
                                }
                                span.badge { (e.resource_type) } " " (e.name)
                                @if e.required { " " span.muted { "(required)" } }
                            }
                        }
                    } }
                    p.muted #required-note { "Required entries are locked." }
                }
                button #download-button type="submit" { "Download ZIP" }
            }
        };
        ok(layout(&format!("Export {agent}"), Some(me), Some(tenant), body))
    })
    .await
}

/// `GET /t/{tenant}/agents/{agent}/export.zip?selected=…`: the archive.
pub async fn export_zip(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    let form = Form::parse(&Bytes::from(query.0.unwrap_or_default()));
    read_page(&state, headers, tenant, move |store, me, tenant| {
        let scope = Scope::Agent(agent.clone());
        let scoped = zip_export::scope(store, &me.actor(), tenant, &scope)?;
        let selected: Vec<String> = form
            .all("selected")
            .into_iter()
            .map(str::to_string)
            .collect();
        let now = crate::backend::store::now_rfc3339();
        let made =
            zip_export::export_scoped(store, tenant, scoped, Some(&selected), "ferry", &now, None)?;
        Ok(zip_response(made.bytes, &format!("{tenant}-{agent}.zip")).into_response())
    })
    .await
}

/// The tenant's agents by name, to offer as the agent an import or sync upgrades.
pub(super) fn local_agents(store: &dyn Store, tenant: &str) -> Result<Vec<String>, ApiError> {
    let agents = crate::backend::store::IndexKeys {
        kinds: vec![Kind::Agent],
        ..Default::default()
    };
    let (_, entries) = store.index_entries(tenant, &agents)?;
    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    names.sort();
    Ok(names)
}

fn upload_form(tenant: &str, me: &Me, agents: &[String]) -> Markup {
    html! {
        form.card #import method="post" action={ "/t/" (tenant) "/import/preview" } enctype="multipart/form-data" {
            (csrf_field(me))
            label for="archive" { "ZIP archive" }
            input #archive type="file" name="archive" accept=".zip,application/zip" required;
            label for="strategy" { "Strategy" }
            select #strategy name="strategy" {
                option value="create" { "create: new resources, new IDs" }
                option value="merge" { "merge: update what came from the archive before, create the rest" }
                option value="upgrade" { "upgrade: match onto a target agent" }
            }
            label for="target" { "Target agent (for upgrade)" }
            select #target name="target" {
                option value="" { "(none)" }
                @for a in agents { option value=(a) { (a) } }
            }
            p { button #import-preview-button type="submit" { "Preview import" } }
        }
    }
}

/// `GET /t/{tenant}/import`: the upload form.
pub async fn import_page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        zip_import::authorize_import(store, &me.actor(), tenant)?;
        let agents = local_agents(store, tenant)?;
        let body = html! {
            h1 { "Import a ZIP into " (tenant) }
            (upload_form(tenant, me, &agents))
        };
        ok(layout("Import a ZIP", Some(me), Some(tenant), body))
    })
    .await
}

fn options(form: &Form) -> Result<ImportOptions, ApiError> {
    let target = form
        .get("target")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let strategy = strategy_of(
        form.get("strategy").map(str::to_string).as_ref(),
        Strategy::Create,
    )?;
    let selected: Vec<String> = form
        .all("selected")
        .into_iter()
        .map(str::to_string)
        .collect();
    Ok(ImportOptions {
        strategy,
        target_agent: target,
        selected: (form.get("form") == Some("execute")).then_some(selected),
        workflow_order: None,
    })
}

/// The preview rows of an import, each top-level row with its checkbox
/// (`selected`, ticked unless it is a CONFLICT, which is written only when ticked).
pub(super) fn preview_rows(p: &zip_import::ImportPreview) -> Markup {
    html! {
        div.table-wrap { table #import-rows {
            thead { tr { th { "Import" } th { "Action" } th { "Type" } th { "Name" } th { "Why" } } }
            tbody { @for r in &p.resources {
                @let action = format!("{:?}", r.action).to_uppercase();
                tr data-action=(action) data-name=(r.name) {
                    td { @if r.parent.is_none() {
                        @let conflict = action == "CONFLICT";
                        label.inline { input type="checkbox" name="selected" value=(r.origin_id) checked[!conflict]
                            aria-label={ (if conflict { "Overwrite " } else { "Import " }) (r.name) };
                            @if conflict { "overwrite" } }
                    } }
                    td { span class={ "badge " (action.to_lowercase()) } { (action) } }
                    td { (r.resource_type) }
                    td { (r.name) }
                    td { (r.reason.as_deref().unwrap_or("")) }
                }
            } }
        } }
    }
}

fn preview_view(
    tenant: &str,
    me: &Me,
    form: &Form,
    zip: &[u8],
    p: &zip_import::ImportPreview,
) -> Markup {
    let encoded = base64::engine::general_purpose::STANDARD.encode(zip);
    html! {
        h1 { "Import preview for " (tenant) }
        @for w in &p.warnings { div.warning { p { (w) } } }
        form.card #import-execute method="post" action={ "/t/" (tenant) "/import" } {
            (csrf_field(me))
            input type="hidden" name="form" value="execute";
            input type="hidden" name="zip" value=(encoded);
            input type="hidden" name="strategy" value=(form.get("strategy").unwrap_or("create"));
            input type="hidden" name="target" value=(form.get("target").unwrap_or(""));
            input type="hidden" name="base" value=(p.base_revision);
            (preview_rows(p))
            button #import-button type="submit" { "Import" }
        }
    }
}

/// `POST /t/{tenant}/import/preview` (multipart): the preview rows of an uploaded ZIP.
pub async fn import_preview(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let mut fields = Vec::new();
    let mut zip = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or("").to_string();
                match f.bytes().await {
                    Ok(b) if name == "archive" => zip = b.to_vec(),
                    Ok(b) => fields.push((name, String::from_utf8_lossy(&b).into_owned())),
                    Err(e) => {
                        return respond(Err(ApiError::bad_request("bad_upload", e.body_text())))
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return respond(Err(ApiError::bad_request("bad_upload", e.body_text()))),
        }
    }
    let form = Form(fields);
    respond(
        with_store(&state, move |store| {
            let me = me_writing(&*store, &headers, &form)?;
            let opts = options(&form)?;
            let done = {
                let _slot = ARCHIVE_WORK.acquire();
                zip_import::import_bytes(store, &me.actor(), &tenant, &zip, &opts, true, None)?
            };
            let Imported::Preview(p) = done else {
                return Err(ApiError::internal("a preview wrote"));
            };
            ok(layout(
                "Import preview",
                Some(&me),
                Some(&tenant),
                preview_view(&tenant, &me, &form, &zip, &p),
            ))
        })
        .await,
    )
}

/// What an import (or a live sync) wrote into `tenant`'s staging.
pub(super) fn imported_view(tenant: &str, r: &zip_import::ImportResult) -> Markup {
    let list = |label: &str, l: &[zip_import::Outcome]| {
        html! {
            @if !l.is_empty() { h2 { (label) " (" (l.len()) ")" } ul { @for o in l { li { (o.resource_type) " " (o.name) @if let Some(w) = &o.reason { " — " (w) } } } } }
        }
    };
    html! {
        div.notice role="status" { p #imported { "Imported into " (tenant) "'s staging: " (r.created.len()) " created, " (r.updated.len()) " updated, " (r.skipped.len()) " skipped, " (r.failures.len()) " not written. Revision " (r.revision) "." } }
        (list("Created", &r.created)) (list("Updated", &r.updated)) (list("Skipped", &r.skipped)) (list("Not written", &r.failures))
        @for w in &r.warnings { div.warning { p { (w) } } }
    }
}

/// `POST /t/{tenant}/import`: import the previewed ZIP, the ticked rows only.
pub async fn import(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_form(&state, headers, body, move |store, me, form| {
        let zip = base64::engine::general_purpose::STANDARD
            .decode(form.get("zip").unwrap_or(""))
            .map_err(|_| {
                ApiError::bad_request(
                    "bad_archive",
                    "the previewed archive did not come back intact",
                )
            })?;
        let base = form.get("base").and_then(|b| b.parse::<u64>().ok());
        let opts = options(form)?;
        let done = {
            let _slot = ARCHIVE_WORK.acquire();
            zip_import::import_bytes(store, &me.actor(), &tenant, &zip, &opts, false, base)?
        };
        let Imported::Result(r) = done else {
            return Err(ApiError::internal("an import only previewed"));
        };
        let body = html! {
            h1 { "Imported into " (tenant) }
            (imported_view(&tenant, &r))
        };
        ok(layout("Imported", Some(me), Some(&tenant), body))
    })
    .await
}
