//! The live-sync page (document 002, "sync an agent from another
//! instance"): a source URL and an optional source token, the source's
//! agents, a preview of one agent's CREATE/UPDATE/SKIP/CONFLICT rows, then
//! the sync. It runs the use case of the API's `/backup/import/sync`
//! routes and of `ferry sync` ([`live_sync`]): the editor role is checked
//! before any request leaves the server, the URL passes the SSRF check
//! under the server's `[sync]` rules and the client connects only to the
//! address it vetted, and the agent lands through
//! [`zip_import::import_bytes`] (strategy `upgrade`). The store is not held
//! while the source is read. The source token goes only to the source: the
//! page never writes it back (with htmx only the result below the form is
//! swapped, so the field keeps what the browser holds) and it rides in the
//! body, which is not logged. The previewed archive rides in the sync form,
//! so what is synced is what was previewed, refused if the tenant moved
//! since the preview.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use maud::{html, Markup};
use serde_json::Value;

use super::backup::{imported_view, local_agents, preview_rows};
use super::{csrf_field, layout, me_writing, ok, read_page, respond, Form, Me, Shared};
use crate::backend::source::SourceClient;
use crate::server::backup::ARCHIVE_WORK;
use crate::server::error::ApiError;
use crate::server::live_sync::blocking;
use crate::server::{read_store, with_store};
use crate::service::live_sync;
use crate::service::zip_import::{self, ImportPreview, Imported};

/// The source URL as the page may show it again: not when it carries credentials.
fn shown_source(form: &Form) -> String {
    let source = form.get("source").unwrap_or("").trim();
    match url::Url::parse(source) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => String::new(),
        _ => source.to_string(),
    }
}

fn live_page(tenant: &str, me: &Me, source: &str, result: Markup) -> Markup {
    let action = format!("/t/{tenant}/live-sync");
    let body = html! {
        h1 { "Live sync into " (tenant) }
        p { "Bring one agent from another ferry instance into " (tenant) "'s staging: list the source's agents, preview one, then sync. "
            "The source must be allowed by the " code { "[sync]" } " rules of this server's config." }
        form.card #live-sync method="post" action=(action)
            hx-post=(action) hx-target="#live-result" hx-select="#live-result" hx-swap="outerHTML" {
            (csrf_field(me))
            label for="source" { "Source URL" }
            input #source type="url" name="source" value=(source) required placeholder="https://ferry.example.com";
            label for="source-token" { "Source token (optional)" }
            input #source-token type="password" name="token" autocomplete="off" aria-describedby="token-note";
            p.muted #token-note { "An API token of the source instance. It is sent to the source only, as "
                code { "Authorization: Bearer" } ", and never shown or kept here." }
            p { button #list-button type="submit" name="step" value="agents" { "List agents" } }
            div #live-result aria-live="polite" { (result) }
        }
    };
    layout("Live sync", Some(me), Some(tenant), body)
}

/// `GET /t/{tenant}/live-sync`: the form.
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        live_sync::authorize_sync(store, &me.actor(), tenant)?;
        ok(live_page(tenant, me, "", html! {}))
    })
    .await
}

/// What the form holds besides its step, read once.
struct Request {
    tenant: String,
    me: Me,
    locals: Vec<String>,
    form: Form,
}

impl Request {
    fn text(&self, key: &str) -> Option<String> {
        self.form
            .get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn version(&self) -> Result<Option<u64>, ApiError> {
        self.text("version")
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(
                        "bad_version",
                        format!("the version `{v}` is not a number"),
                    )
                    .hint("leave it empty to sync the source's staging state")
                })
            })
            .transpose()
    }
}

/// A client for the form's source, after the SSRF check (off the async threads).
async fn client(state: &Shared, r: &Request) -> Result<SourceClient, ApiError> {
    let url = r.text("source").ok_or_else(|| {
        ApiError::bad_request("missing_source", "enter the source instance's URL")
    })?;
    let authorization = r.text("token").map(|t| match t.strip_prefix("Bearer ") {
        Some(_) => t,
        None => format!("Bearer {t}"),
    });
    let cfg = state.config.sync.clone();
    blocking(move || Ok(live_sync::connect(&url, &cfg, authorization)?)).await
}

fn agents_view(list: &Value, locals: &[String]) -> Markup {
    let items: Vec<&Value> = list
        .get("items")
        .and_then(Value::as_array)
        .or_else(|| list.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let field = |a: &Value, k: &str| a[k].as_str().unwrap_or("").to_string();
    html! {
        h2 { "Agents at the source (" (items.len()) ")" }
        @if items.is_empty() {
            p.muted #no-source-agents { "The source lists no agents for this token's tenant." }
        } @else {
            div.table-wrap { table #source-agents {
                thead { tr { th { "Sync" } th { "Name" } th { "ID" } th { "Published version" } th { "Description" } } }
                tbody { @for (i, a) in items.iter().enumerate() {
                    @let id = field(a, "id");
                    tr data-name=(field(a, "name")) data-id=(id) {
                        td { input id={ "agent-" (i) } type="radio" name="agent" value=(id) checked[i == 0]; }
                        td { label.inline for={ "agent-" (i) } { (field(a, "name")) } }
                        td { code { (id) } }
                        td { @match a["publishedVersion"].as_u64() { Some(v) => (v), None => "never" } }
                        td { (field(a, "description")) }
                    }
                } }
            } }
            label for="version" { "Published version to sync (empty: the source's staging state)" }
            input #version type="number" name="version" min="1";
            label for="target" { "Local agent to upgrade" }
            select #target name="target" {
                option value="" { "(the one it came from before, else a new agent)" }
                @for l in locals { option value=(l) { (l) } }
            }
            p { button #live-preview-button type="submit" name="step" value="preview" { "Preview" } }
        }
    }
}

fn preview_view(r: &Request, agent: &str, zip: &[u8], p: &ImportPreview) -> Markup {
    let encoded = base64::engine::general_purpose::STANDARD.encode(zip);
    let hidden = |k: &str| r.text(k).unwrap_or_default();
    let name = p
        .resources
        .iter()
        .find(|row| row.resource_type == "agent" && row.origin_id == agent)
        .map_or(agent, |row| row.name.as_str());
    html! {
        h2 #live-preview { "Preview of agent " (name) " into " (r.tenant) }
        @for w in &p.warnings { div.warning { p { (w) } } }
        input type="hidden" name="agent" value=(agent);
        input type="hidden" name="version" value=(hidden("version"));
        input type="hidden" name="target" value=(hidden("target"));
        input type="hidden" name="zip" value=(encoded);
        input type="hidden" name="base" value=(p.base_revision);
        (preview_rows(p))
        p.muted { "Untick what should not come over. A CONFLICT is overwritten only when ticked." }
        p { button #live-sync-button type="submit" name="step" value="execute" { "Sync" } }
    }
}

async fn list_step(state: &Shared, r: &Request) -> Result<Markup, ApiError> {
    let client = client(state, r).await?;
    let list = blocking(move || Ok(live_sync::list_agents(&client)?)).await?;
    Ok(agents_view(&list, &r.locals))
}

async fn preview_step(state: &Shared, r: &Request) -> Result<Markup, ApiError> {
    let agent = r.text("agent").ok_or_else(|| {
        ApiError::bad_request("missing_agent", "choose one of the source's agents")
            .hint("list the source's agents first")
    })?;
    let version = r.version()?;
    let client = client(state, r).await?;
    let fetched = agent.clone();
    let zip = blocking(move || Ok(live_sync::fetch_agent(&client, &fetched, version)?)).await?;
    let opts = live_sync::sync_options(r.text("target"), None, None);
    let (actor, tenant) = (r.me.actor(), r.tenant.clone());
    let (zip, p) = with_store(state, move |store| {
        let _slot = ARCHIVE_WORK.acquire();
        match zip_import::import_bytes(store, &actor, &tenant, &zip, &opts, true, None)? {
            Imported::Preview(p) => Ok((zip, p)),
            Imported::Result(_) => Err(ApiError::internal("a preview wrote")),
        }
    })
    .await?;
    Ok(preview_view(r, &agent, &zip, &p))
}

async fn execute_step(state: &Shared, r: &Request) -> Result<Markup, ApiError> {
    let zip = base64::engine::general_purpose::STANDARD
        .decode(r.form.get("zip").unwrap_or(""))
        .map_err(|_| {
            ApiError::bad_request(
                "bad_archive",
                "the previewed agent did not come back intact",
            )
            .hint("preview the agent again")
        })?;
    let selected: Vec<String> = r
        .form
        .all("selected")
        .into_iter()
        .map(str::to_string)
        .collect();
    if selected.is_empty() {
        return Err(ApiError::bad_request(
            "empty_selection",
            "nothing is ticked, so nothing would be synced",
        )
        .hint("tick the rows to bring over"));
    }
    let base = r.text("base").and_then(|b| b.parse::<u64>().ok());
    let opts = live_sync::sync_options(r.text("target"), Some(selected), None);
    let (actor, tenant) = (r.me.actor(), r.tenant.clone());
    let done = with_store(state, move |store| {
        let _slot = ARCHIVE_WORK.acquire();
        match zip_import::import_bytes(store, &actor, &tenant, &zip, &opts, false, base)? {
            Imported::Result(done) => Ok(done),
            Imported::Preview(_) => Err(ApiError::internal("a sync only previewed")),
        }
    })
    .await?;
    Ok(html! {
        h2 #live-synced { "Synced into " (r.tenant) }
        (imported_view(&r.tenant, &done))
        p { "Review the change in " a href={ "/t/" (r.tenant) } { "the tenant's resources" } " and publish it from the agent's staging diff." }
    })
}

fn error_box(e: &ApiError) -> Markup {
    html! {
        div.error #live-error role="alert" {
            p { (e.message) }
            @if let Some(h) = e.hint.as_deref().filter(|h| !h.is_empty()) { p { "Hint: " (h) } }
        }
    }
}

/// `POST /t/{tenant}/live-sync`: list the source's agents, preview one, or sync it (`step`).
pub async fn run(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let htmx = headers.contains_key("hx-request");
    let form = Form::parse(&body);
    let checked = read_store(&state, move |store| {
        let me = me_writing(store, &headers, &form)?;
        live_sync::authorize_sync(store, &me.actor(), &tenant)?;
        let locals = local_agents(store, &tenant)?;
        Ok(Request {
            tenant,
            me,
            locals,
            form,
        })
    })
    .await;
    let r = match checked {
        Ok(r) => r,
        Err(e) => return respond(Err(e)),
    };
    let done = match r.form.get("step").unwrap_or("agents") {
        "agents" => list_step(&state, &r).await,
        "preview" => preview_step(&state, &r).await,
        "execute" => execute_step(&state, &r).await,
        other => Err(ApiError::bad_request(
            "bad_step",
            format!("`{other}` is not a step of a live sync"),
        )),
    };
    // htmx swaps only a 2xx answer: a refusal is still shown, in the result.
    let (status, result) = match done {
        Ok(m) => (StatusCode::OK, m),
        Err(e) if htmx => (StatusCode::OK, error_box(&e)),
        Err(e) => (e.status, error_box(&e)),
    };
    let page = live_page(&r.tenant, &r.me, &shown_source(&r.form), result);
    (status, Html(page.into_string())).into_response()
}
