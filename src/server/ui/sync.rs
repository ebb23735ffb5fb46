//! The sync panel (document 000): choose a target tenant the person may
//! promote to, preview the promotion grouped by step (create, update and
//! unchanged counts, each resource's changes, the variables the target
//! still has to define), then Sync. Both go through
//! [`promote::plan_as`] (admin of both tenants); Sync applies the plan with
//! [`promote::apply`] in one transaction, as `POST /api/tenant/sync` does.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use super::{csrf_field, layout, ok, read_page, view, write_form, Me, Shared};
use crate::domain::plan::Action;
use crate::service::promote::{self, Promotion, Request};

fn request(from: &str, to: &str) -> Request {
    Request {
        from: from.to_string(),
        to: to.to_string(),
        step: None,
        same_store: true,
        defined_variables: None,
        // The server reads no ferry.toml, so no chain governs it (as the tenant-sync API).
        chain: crate::domain::chain::Chain::default(),
        against_chain: false,
    }
}

fn report_view(p: &Promotion, applied: Option<u64>) -> Markup {
    let r = promote::report(p);
    let actions: HashMap<&str, &Action> =
        p.plan.actions.iter().map(|a| (a.id.as_str(), a)).collect();
    html! {
        section #sync-report {
            @match applied {
                Some(rev) => { div.notice role="status" { p #synced { "Synced " (r.from) " into " (r.to) ". " (r.to) " is at revision " (rev) " now (its staging; publish there to move its production)." } } }
                None => { h2 { "Preview: " (r.from) " → " (r.to) } }
            }
            @if !r.missing_variables.is_empty() {
                div.warning #missing-variables {
                    p { (r.to) " still has to define these variables: " }
                    ul { @for v in &r.missing_variables { li { code { (v) } } } }
                    p.muted { "Set them with " code { "ferry vars set --tenant " (r.to) " NAME" } "." }
                }
            }
            @if r.steps.is_empty() { p { "Nothing is marked syncable in " (r.from) "." } }
            @for s in &r.steps {
                section.card.step data-step=(s.step) {
                    h3 { (s.step) }
                    p.counts { span.badge.create { (s.create) " create" } " " span.badge.update { (s.update) " update" } " " span.badge { (s.skip) " unchanged" } }
                    ul {
                        @for e in &s.resources {
                            @let action = format!("{:?}", e.action).to_lowercase();
                            li {
                                span class={ "badge " (action) } { (action) } " " (e.kind) " " strong { (e.name) }
                                @if let Some(a) = actions.get(e.id.as_str()) {
                                    @for c in &a.changes { (view::change(&c.path, &c.before, &c.after, (r.to.as_str(), "After the sync"))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn panel(
    tenant: &str,
    me: &Me,
    targets: &[String],
    chosen: Option<&str>,
    preview: Option<Markup>,
) -> Markup {
    let body = html! {
        h1 { "Sync " (tenant) " into another tenant" }
        p { "Everything marked syncable in " (tenant) " and what it uses is copied into the target's staging." }
        @if targets.is_empty() {
            p.warning { "You are not an admin of another tenant, so there is nowhere to sync to." }
        } @else {
            form.card.row method="get" action={ "/t/" (tenant) "/sync" } {
                div {
                    label for="target" { "Target tenant" }
                    select #target name="target" {
                        @for t in targets { option value=(t) selected[chosen == Some(t.as_str())] { (t) } }
                    }
                }
                button #preview-button type="submit" { "Preview" }
            }
        }
        @if let Some(p) = preview {
            (p)
            @if let Some(t) = chosen {
                form.card method="post" action={ "/t/" (tenant) "/sync" } {
                    (csrf_field(me))
                    input type="hidden" name="target" value=(t);
                    button #sync-button type="submit" { "Sync into " (t) }
                }
            }
        }
    };
    layout(&format!("Sync {tenant}"), Some(me), Some(tenant), body)
}

/// `GET /t/{tenant}/sync?target=`: the panel, with a preview when a target is chosen.
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        let targets = promote::targets_for(store, &me.actor(), tenant)?;
        let chosen = q.get("target").filter(|t| !t.is_empty());
        let preview = match chosen {
            Some(to) => {
                let p = promote::plan_as(store, store, &me.actor(), &request(tenant, to))?;
                Some(report_view(&p, None))
            }
            None => None,
        };
        ok(panel(
            tenant,
            me,
            &targets,
            chosen.map(String::as_str),
            preview,
        ))
    })
    .await
}

/// `POST /t/{tenant}/sync`: run the sync into the chosen target and show the result.
pub async fn run(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_form(&state, headers, body, move |store, me, form| {
        let to = form.get("target").unwrap_or("").to_string();
        let p = promote::plan_as(&*store, &*store, &me.actor(), &request(&tenant, &to))?;
        let revision = if promote::has_changes(&p) {
            promote::apply(store, &p)?.revision
        } else {
            store.tenant(&to)?.revision
        };
        let targets = promote::targets_for(&*store, &me.actor(), &tenant)?;
        ok(panel(
            &tenant,
            me,
            &targets,
            None,
            Some(report_view(&p, Some(revision))),
        ))
    })
    .await
}
