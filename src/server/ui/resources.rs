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
use crate::service::syncable::{self, KindPage, SyncableError};

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

fn row(tenant: &str, me: &Me, r: &Resource, at: &ListAt) -> Markup {
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
                        input type="hidden" name="q" value=(at.q);
                        @if let Some(k) = at.kind {
                            input type="hidden" name="kind" value=(k.step());
                            input type="hidden" name="page" value=(at.page);
                        }
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

/// Where the list stands: the search, and the one kind paged through, if any.
struct ListAt {
    q: String,
    kind: Option<Kind>,
    page: usize,
}

impl ListAt {
    fn of(query: &HashMap<String, String>) -> ListAt {
        ListAt {
            q: query
                .get("q")
                .map(|s| s.trim().to_lowercase())
                .unwrap_or_default(),
            kind: query.get("kind").and_then(|k| Kind::from_step(k)),
            page: query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0),
        }
    }

    /// The list's address for `kind` (every kind for `None`) at `page`.
    fn href(&self, tenant: &str, kind: Option<Kind>, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("q", &self.q);
        if let Some(k) = kind {
            query.append_pair("kind", k.step());
            query.append_pair("page", &page.to_string());
        }
        format!("/t/{tenant}?{}", query.finish())
    }
}

/// Which of a kind's matches are shown, and the links to the others.
fn pager(tenant: &str, at: &ListAt, p: &KindPage) -> Markup {
    let shown = p.resources.len();
    let last = p.first + shown;
    html! {
        @if shown == 0 && p.matching > 0 {
            p.pager.muted data-kind=(p.kind.step()) {
                "This page is past the last of " (p.matching) ". "
                a href=(at.href(tenant, Some(p.kind), 0)) { "First page" }
            }
        } @else if shown < p.matching {
            p.pager.muted data-kind=(p.kind.step()) {
                "Showing " (p.first + 1) "–" (last) " of " (p.matching) ". "
                @if at.kind.is_none() {
                    a href=(at.href(tenant, Some(p.kind), 0)) { "Page through all " (p.matching) }
                    ", or search to narrow the list."
                } @else {
                    @if at.page > 0 { a rel="prev" href=(at.href(tenant, Some(p.kind), at.page - 1)) { "← Previous" } " " }
                    @if last < p.matching { a rel="next" href=(at.href(tenant, Some(p.kind), at.page + 1)) { "Next →" } }
                }
            }
        }
    }
}

/// `GET /t/{tenant}?q=&kind=&page=`: every kind's first page, or one kind's page `page`.
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
            let at = ListAt::of(&query);
            let pages = syncable::resources_matching(store, &me.actor(), tenant, &at.q, at.kind, at.page)?;
            let notice = query.get("toggled").cloned();
            let body = html! {
                h1 { "Resources of " (tenant) }
                @if let Some(n) = notice { div.notice role="status" { p #toggled { (n) } } }
                form.row role="search" method="get" action={ "/t/" (tenant) } {
                    div {
                        label for="q" { "Search by name" }
                        input #q type="search" name="q" value=(at.q)
                            hx-get={ "/t/" (tenant) } hx-trigger="input changed delay:300ms, search"
                            hx-target="#resources" hx-select="#resources" hx-swap="outerHTML";
                    }
                    button type="submit" { "Search" }
                }
                div #resources {
                    @if at.kind.is_some() { p { a href=(at.href(tenant, None, 0)) { "← Every kind" } } }
                    @for p in &pages {
                        section {
                            h2 { (p.kind.step()) " (" (p.matching) ")" }
                            (pager(tenant, &at, p))
                            div.table-wrap { table data-kind=(p.kind.step()) {
                                thead { tr { th { "Name" } th { "ID" } th { "Syncable" } th { "Actions" } } }
                                tbody { @for r in &p.resources { (row(tenant, me, r, &at)) } }
                            } }
                        }
                    }
                    @if pages.is_empty() { p { "No resource matches." } }
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
        let mut back = url::form_urlencoded::Serializer::new(String::new());
        back.append_pair("q", form.get("q").unwrap_or(""));
        for key in ["kind", "page"] {
            if let Some(v) = form.get(key) {
                back.append_pair(key, v);
            }
        }
        let back = back.append_pair("toggled", &notice).finish();
        Ok(see_other(&format!("/t/{tenant}?{back}")))
    })
    .await
}
