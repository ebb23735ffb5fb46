//! The publish history of a tenant: every publish (who, when, summary,
//! change ID, git tag), "Preview revert" (staging now against staging after
//! the revert, side by side, from [`publishing::publish_diff`]) and
//! "Revert" ([`publishing::revert`], editor). A revert changes staging only;
//! the page says Production moves at the next publish.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::{csrf_field, layout, ok, read_page, see_other, view, write_form, Shared};
use crate::domain::access::Role;
use crate::service::publishing;

/// `GET /t/{tenant}/history`.
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
            let list = publishing::publishes_of(store, &me.actor(), tenant, None)?;
            let body = html! {
                h1 { "Publish history of " (tenant) }
                @if let Some(n) = q.get("published") {
                    div.notice role="status" { p #published { "Published #" (n) ". Production now holds it." } }
                }
                @if let Some(c) = q.get("reverted") {
                    div.notice role="status" { p #reverted {
                        "Reverted publish " code { (c) } " out of staging. Production moves at the next publish."
                    } }
                }
                @if list.is_empty() { p { "Nothing was published in this tenant yet." } }
                @else {
                    div.table-wrap { table #history {
                        thead { tr { th { "#" } th { "Who" } th { "When" } th { "Message and summary" } th { "Change ID" } th { "Git tag" } th { "Revert" } } }
                        tbody { @for p in &list {
                            tr data-number=(p.number) {
                                td { (p.number) }
                                td.who { (p.published_by) }
                                td { (p.published_at) }
                                td { p { (p.message) } ul.summary { @for l in p.summary.lines() { li { (l) } } } }
                                td { code.change-id { (p.change_track_id) } }
                                td { @match &p.tag { Some(t) => { code { (t) } } None => { span.muted { "(no tag)" } } } }
                                td { a href={ "/t/" (tenant) "/history/" (p.change_track_id) } { "Preview revert" } }
                            }
                        } }
                    } }
                }
            };
            ok(layout(&format!("History of {tenant}"), Some(me), Some(tenant), body))
        })
        .await
}

/// `GET /t/{tenant}/history/{change}`: what reverting the publish would do to staging.
pub async fn preview(
    State(state): State<Shared>,
    Path((tenant, change)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
            let out = publishing::publish_diff(store, &me.actor(), tenant, None, &change)?;
            let may = me.may(tenant, Role::Editor);
            let body = html! {
                h1 { "Preview revert of " code { (change) } }
                p { "Staging now on the left, staging after the revert on the right. Production is unchanged until the next publish." }
                @if out.resources.is_empty() { p #nothing-to-revert { "Reverting this publish changes nothing in staging." } }
                @for r in &out.resources {
                    section.card.revert-diff {
                        h2 { span class={ "badge " (r.action.word()) } { (r.action.word()) } " " (r.kind) " " (r.name) }
                        @for c in &r.changes { (view::change(&c.path, &c.shown_before(), &c.shown_after(), ("Staging now", "After the revert"))) }
                    }
                }
                @if !out.conflicts.is_empty() {
                    div.warning { p { "Kept as they are in staging (they changed again after this publish):" }
                        ul { @for c in &out.conflicts { li { (c.kind) " " (c.name) " " code { (c.path) } ": " (c.reason) } } } }
                }
                @if may {
                    form.card method="post" action={ "/t/" (tenant) "/history/" (change) "/revert" } {
                        (csrf_field(me))
                        button #revert-button.danger type="submit" disabled[out.resources.is_empty()] { "Revert" }
                    }
                } @else { p.muted { "Reverting needs the editor role on " (tenant) "." } }
                p { a href={ "/t/" (tenant) "/history" } { "Back to the history" } }
            };
            ok(layout("Preview revert", Some(me), Some(tenant), body))
        })
        .await
}

/// `POST /t/{tenant}/history/{change}/revert`: revert the publish out of staging (editor).
pub async fn revert(
    State(state): State<Shared>,
    Path((tenant, change)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_form(&state, headers, body, move |store, me, _| {
        publishing::revert(store, &me.actor(), &tenant, &change, false)?;
        Ok(see_other(&format!("/t/{tenant}/history?reverted={change}")))
    })
    .await
}
