//! A tenant's resources by kind, with a search box (filtered as you type
//! through htmx, or on submit without it) and the syncable toggle
//! (document 000, step 1) through [`syncable::set_syncable`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use super::{csrf_field, layout, ok, read_page, see_other, write_form, Me, Shared};
use crate::domain::access::Role;
use crate::domain::model::{Kind, Resource};
use crate::server::error::ApiError;
use crate::service::syncable::{self, SyncableError};

impl From<SyncableError> for ApiError {
    fn from(e: SyncableError) -> ApiError {
        let msg = e.to_string();
        match e {
            SyncableError::NoResource { .. } => ApiError::not_found("resource_not_found", msg),
            SyncableError::Access(a) => a.into(),
            SyncableError::Store(s) => s.into(),
            SyncableError::Pipeline(_) => ApiError::internal(msg),
        }
    }
}

fn row(tenant: &str, me: &Me, r: &Resource, q: &str) -> Markup {
    let id = r.id().unwrap_or_default();
    let editor = me.may(tenant, Role::Editor);
    html! {
        tr data-name=(r.name()) {
            td {
                @if r.kind() == Kind::Agent { a href={ "/t/" (tenant) "/agents/" (r.name()) } { (r.name()) } }
                @else { (r.name()) }
            }
            td { code { (id) } }
            td.syncable {
                @if r.metadata.syncable { "yes" } @else { "no" }
            }
            td {
                @if editor {
                    form method="post" action={ "/t/" (tenant) "/syncable/" (id) } {
                        (csrf_field(me))
                        input type="hidden" name="q" value=(q);
                        input type="hidden" name="syncable" value=(if r.metadata.syncable { "false" } else { "true" });
                        button.secondary type="submit" aria-label={ "Toggle syncable of " (r.name()) } {
                            @if r.metadata.syncable { "Unmark syncable" } @else { "Mark syncable" }
                        }
                    }
                }
                @if r.kind() == Kind::Agent {
                    " " a href={ "/t/" (tenant) "/agents/" (r.name()) "/diff" } { "Diff" }
                    " " a href={ "/t/" (tenant) "/agents/" (r.name()) "/export" } { "Export" }
                }
            }
        }
    }
}

/// `GET /t/{tenant}?q=`.
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
            let q = query.get("q").map(|s| s.trim().to_lowercase()).unwrap_or_default();
            let drafts = syncable::resources_matching(store, &me.actor(), tenant, &q)?;
            let notice = query.get("toggled").cloned();
            let body = html! {
                h1 { "Resources of " (tenant) }
                @if let Some(n) = notice { div.notice role="status" { p #toggled { (n) } } }
                form.row role="search" method="get" action={ "/t/" (tenant) } {
                    div {
                        label for="q" { "Search by name" }
                        input #q type="search" name="q" value=(q)
                            hx-get={ "/t/" (tenant) } hx-trigger="input changed delay:300ms, search"
                            hx-target="#resources" hx-select="#resources" hx-swap="outerHTML";
                    }
                    button type="submit" { "Search" }
                }
                div #resources {
                    @for kind in Kind::ALL {
                        @let of: Vec<&Resource> = drafts.iter().filter(|r| r.kind() == kind).collect();
                        @if !of.is_empty() {
                            section {
                                h2 { (kind.step()) " (" (of.len()) ")" }
                                div.table-wrap { table data-kind=(kind.step()) {
                                    thead { tr { th { "Name" } th { "ID" } th { "Syncable" } th { "Actions" } } }
                                    tbody { @for r in of { (row(tenant, me, r, &q)) } }
                                } }
                            }
                        }
                    }
                    @if drafts.is_empty() { p { "No resource matches." } }
                }
            };
            ok(layout(&format!("Resources of {tenant}"), Some(me), Some(tenant), body))
        })
        .await
}

/// `POST /t/{tenant}/syncable/{id}`: set or clear the flag (editor), then back to the list.
pub async fn toggle(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_form(&state, headers, body, move |store, me, form| {
        let on = form.get("syncable") == Some("true");
        let done = syncable::set_syncable(store, &me.actor(), &tenant, &id, on)?;
        let what = if done.syncable {
            "syncable"
        } else {
            "not syncable"
        };
        let notice = format!("{} is {what} now (in staging).", done.name);
        let back: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", form.get("q").unwrap_or(""))
            .append_pair("toggled", &notice)
            .finish();
        Ok(see_other(&format!("/t/{tenant}?{back}")))
    })
    .await
}
