//! The tenants page (`/`): every tenant the signed-in person holds a role
//! on, with its resource counts per kind, its last publish, the git commit
//! it was last applied from, and drift since that apply.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use super::{layout, me, ok, read_store, respond, Me, Shared};
use crate::backend::store::Store;
use crate::domain::access::Role;
use crate::server::error::ApiError;

/// `GET /`.
pub async fn page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    respond(
        read_store(&state, move |store| {
            let me = me(store, &headers)?;
            let mut cards = Vec::new();
            // A signed-in person is a user, so each tenant listed comes with their role.
            for (tenant, role) in crate::service::tenants::visible(store, &me.actor())? {
                if let Some(role) = role {
                    cards.push(card(store, &tenant.name, role)?);
                }
            }
            ok(layout("Tenants", Some(&me), None, body(&me, &cards)))
        })
        .await,
    )
}

fn body(me: &Me, cards: &[Markup]) -> Markup {
    html! {
        h1 { "Tenants" }
        @if cards.is_empty() {
            div.warning { p { "You hold no role on any tenant yet. An owner can grant one with "
                code { "ferry grant " (me.user) " TENANT viewer" } "." } }
        }
        div.cards { @for c in cards { (c) } }
    }
}

fn card(store: &dyn Store, tenant: &str, role: Role) -> Result<Markup, ApiError> {
    let record = store.tenant(tenant)?;
    let counts = store.kind_counts(tenant)?;
    let last = store.publishes(tenant)?.into_iter().next();
    let drift = store.drift(tenant)?;
    Ok(html! {
        section.card data-tenant=(tenant) aria-labelledby={ "t-" (tenant) } {
            h2 #{ "t-" (tenant) } { a href={ "/t/" (tenant) } { (tenant) } }
            p.muted {
                @if let Some(env) = &record.environment { "environment " (env) " · " }
                "your role: " strong.role { (role.name()) }
            }
            table.counts {
                caption.muted { "Resources in staging" }
                tbody { @for (k, n) in &counts { tr { th scope="row" { (k.step()) } td { (n) } } } }
            }
            p.last-publish {
                @match &last {
                    Some(p) => { "Last publish: #" (p.number) " by " (p.published_by) " at " (p.published_at) }
                    None => { "Never published." }
                }
            }
            p.last-commit {
                @match &record.last_commit {
                    Some(c) => { "Last applied from git commit " code { (c.get(..12).unwrap_or(c)) } }
                    None => { "Not applied from git." }
                }
            }
            @if drift.is_empty() {
                p.drift.muted { "No drift since the last apply." }
            } @else {
                div.warning.drift {
                    p { (drift.len()) " resource(s) changed in the store since the last apply from git:" }
                    ul { @for d in &drift { li { (d.kind) " " (d.name) } } }
                }
            }
            p.row {
                a href={ "/t/" (tenant) } { "Resources" }
                a href={ "/t/" (tenant) "/history" } { "History" }
                a href={ "/t/" (tenant) "/sync" } { "Sync" }
            }
        }
    })
}
