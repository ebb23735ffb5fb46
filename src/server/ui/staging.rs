//! An agent's staging pages: the editor (saved through
//! [`staging::edit_staging`], validation errors beside the field they
//! name), the side-by-side staging diff (Production against Staging, only
//! the changed fields) and Publish ([`publishing::publish`]).

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::{csrf_field, layout, ok, read_page, see_other, view, write_form, Form, Me, Shared};
use crate::backend::store::Store;
use crate::domain::access::Role;
use crate::domain::model::{AgentSpec, FreeForm, Kind, Resource, Spec};
use crate::domain::validate::render_names;
use crate::server::error::ApiError;
use crate::service::staging::{self, StagingEdit, StagingError, ACCESS_VALUES};
use crate::service::{agent_view, publishing};

type Notes = std::collections::HashMap<String, String>;

/// What the editor shows in its fields: from the draft, or as submitted.
#[derive(Debug, Clone, Default)]
struct Values {
    name: String,
    description: String,
    provider: String,
    model: String,
    temperature: String,
    max_tokens: String,
    instructions: String,
    knowledge_bases: Vec<String>,
    tools: Vec<String>,
    guardrails_on: Vec<String>,
    access: String,
    tags: String,
    /// The snippets, (name, text), in order.
    snippets: Vec<(String, String)>,
    /// The tool actions' settings as typed (JSON), by `tool/action`; absent: as stored.
    action_configs: std::collections::BTreeMap<String, String>,
    /// The tool actions ticked on (`tool/action`), as submitted; `None`: as stored.
    actions_on: Option<BTreeSet<String>>,
}

/// One action of a tool the agent uses.
struct ActionRow {
    tool: String,
    action: String,
    enabled: bool,
    /// Its settings, a JSON object.
    config: Value,
}

impl ActionRow {
    fn key(&self) -> String {
        format!("{}/{}", self.tool, self.action)
    }
}

/// How many of the tenant's other tools (or knowledge sources) the editor
/// offers as boxes to tick, by name; any more are added by name.
const OFFERED: usize = 50;

/// What the editor offers of one kind: the agent's own first, in its order,
/// then the first [`OFFERED`] others by name; `more` others are not shown.
struct Offer {
    names: Vec<String>,
    more: usize,
}

/// What the editor offers to pick from.
struct Choices {
    knowledge_bases: Offer,
    tools: Offer,
    guardrails: Vec<String>,
    /// Each attached tool's actions.
    actions: Vec<ActionRow>,
}

/// The agent's draft in tree form (references by name), and its spec.
fn draft_of(
    store: &dyn Store,
    tenant: &str,
    agent: &str,
) -> Result<(Resource, AgentSpec), ApiError> {
    let id = staging::find_agent_id(store, tenant, agent)?;
    let stored = store
        .drafts(tenant, std::slice::from_ref(&id))?
        .pop()
        .ok_or_else(|| {
            ApiError::not_found(
                "agent_not_found",
                format!("agent `{agent}` has no staging state (it was deleted there)"),
            )
        })?;
    let names = crate::service::pipeline::names_of_references(store, tenant, &stored)?;
    let tree = render_names(&stored, &names);
    let Spec::Agent(spec) = &tree.spec else {
        return Err(ApiError::not_found(
            "agent_not_found",
            format!("`{agent}` is not an agent"),
        ));
    };
    let spec = (**spec).clone();
    Ok((tree, spec))
}

fn values_of(r: &Resource, s: &AgentSpec) -> Values {
    let num = |v: Option<String>| v.unwrap_or_default();
    Values {
        name: r.name().to_string(),
        description: s.description.clone().unwrap_or_default(),
        provider: s.model.provider.clone(),
        model: s.model.name.clone(),
        temperature: num(s.model.temperature.map(|t| t.to_string())),
        max_tokens: num(s.model.max_tokens.map(|t| t.to_string())),
        instructions: s.instructions.clone().unwrap_or_default(),
        knowledge_bases: s.knowledge_bases.clone(),
        tools: s.tools.clone(),
        guardrails_on: s
            .guardrails
            .iter()
            .filter(|g| g.enabled)
            .map(|g| g.name.clone())
            .collect(),
        access: s.access.clone().unwrap_or_default(),
        tags: s.tags.join(", "),
        snippets: s
            .snippets
            .iter()
            .map(|sn| (sn.name.clone(), sn.text.clone()))
            .collect(),
        action_configs: Default::default(),
        actions_on: None,
    }
}

/// The values of a refused form as the page shows them again: a text field
/// that holds a credential comes back empty, so the page never shows one.
fn without_credentials(mut v: Values) -> Values {
    let texts = [
        &mut v.name,
        &mut v.description,
        &mut v.provider,
        &mut v.model,
        &mut v.temperature,
        &mut v.max_tokens,
        &mut v.instructions,
        &mut v.access,
        &mut v.tags,
    ];
    let snippets = v.snippets.iter_mut().flat_map(|(n, t)| [n, t]);
    for field in texts
        .into_iter()
        .chain(snippets)
        .chain(v.action_configs.values_mut())
    {
        if crate::domain::secrets::credential_in(field).is_some() {
            field.clear();
        }
    }
    v
}

fn values_from(form: &Form) -> Values {
    let text = |k: &str| form.get(k).unwrap_or("").replace("\r\n", "\n");
    let list = |k: &str| form.all(k).into_iter().map(str::to_string).collect();
    // The boxes ticked, then any names typed in beside them (`KEY.add`).
    let picked = |k: &str| -> Vec<String> {
        let mut names: Vec<String> = list(k);
        let typed = form.get(&format!("{k}.add")).unwrap_or("");
        for name in typed.split([',', ' ', '\n']).map(str::trim) {
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    };
    Values {
        name: text("name"),
        description: text("description"),
        provider: text("model.provider"),
        model: text("model.name"),
        temperature: text("model.temperature"),
        max_tokens: text("model.maxTokens"),
        instructions: text("instructions"),
        knowledge_bases: picked("knowledgeBases"),
        tools: picked("tools"),
        guardrails_on: list("guardrails"),
        access: text("access"),
        tags: text("tags"),
        snippets: snippets_from(form),
        action_configs: Default::default(),
        actions_on: None,
    }
}

/// The snippets of the form, in order: the ones ticked for removal and a
/// new entry left empty are left out.
fn snippets_from(form: &Form) -> Vec<(String, String)> {
    let removed: BTreeSet<&str> = form.all("snippet.remove").into_iter().collect();
    form.all("snippet.name")
        .into_iter()
        .zip(form.all("snippet.text"))
        .enumerate()
        .filter(|(i, _)| !removed.contains(i.to_string().as_str()))
        .map(|(_, (n, t))| (n.trim().to_string(), t.replace("\r\n", "\n")))
        .filter(|(n, t)| !(n.is_empty() && t.is_empty()))
        .collect()
}

fn choices(store: &dyn Store, tenant: &str, spec: &AgentSpec) -> Result<Choices, ApiError> {
    let names = store.id_names(tenant)?;
    let offer = |mine: &[String], k: Kind| -> Offer {
        let mut others: Vec<&str> = names
            .iter()
            .filter(|(_, kind, n)| *kind == k && !mine.iter().any(|m| m == n))
            .map(|(_, _, n)| n)
            .collect();
        others.sort_unstable();
        let more = others.len().saturating_sub(OFFERED);
        let mut offered = mine.to_vec();
        offered.extend(others.into_iter().take(OFFERED).map(str::to_string));
        Offer {
            names: offered,
            more,
        }
    };
    let tools = offer(&spec.tools, Kind::Tool);
    // The attached tools' IDs in the agent's order, so their actions are too.
    let tool_ids: std::collections::HashMap<&str, &str> = names
        .iter()
        .filter(|(_, kind, n)| *kind == Kind::Tool && spec.tools.iter().any(|t| t == n))
        .map(|(id, _, n)| (n, id))
        .collect();
    let attached: Vec<String> = spec
        .tools
        .iter()
        .filter_map(|t| tool_ids.get(t.as_str()).map(|id| id.to_string()))
        .collect();
    let mut actions = Vec::new();
    for t in store.drafts(tenant, &attached)? {
        if let Spec::Tool(ts) = &t.spec {
            for a in &ts.actions {
                actions.push(ActionRow {
                    tool: t.name().to_string(),
                    action: a.name.clone(),
                    enabled: a.enabled,
                    config: FreeForm::object_of(&a.config),
                });
            }
        }
    }
    Ok(Choices {
        knowledge_bases: offer(&spec.knowledge_bases, Kind::KnowledgeBase),
        tools,
        guardrails: spec.guardrails.iter().map(|g| g.name.clone()).collect(),
        actions,
    })
}

/// A number field as JSON: a number when it reads as one, else the text (the service names what is wrong).
fn number(v: &str) -> Value {
    let v = v.trim();
    if v.is_empty() {
        return Value::Null;
    }
    v.parse::<u64>()
        .map(Value::from)
        .or_else(|_| v.parse::<f64>().map(Value::from))
        .unwrap_or_else(|_| Value::String(v.to_string()))
}

fn or_null(v: &str) -> Value {
    if v.trim().is_empty() {
        Value::Null
    } else {
        Value::String(v.to_string())
    }
}

/// The merge patch of the editor's form: every field it shows.
fn patch_of(v: &Values, spec: &AgentSpec) -> Value {
    let on: BTreeSet<&str> = v.guardrails_on.iter().map(String::as_str).collect();
    let guardrails: Vec<Value> = spec
        .guardrails
        .iter()
        .map(|g| json!({"name": g.name, "enabled": on.contains(g.name.as_str()), "config": g.config}))
        .collect();
    let tags: Vec<&str> = v
        .tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut p = Map::new();
    p.insert("name".into(), v.name.trim().into());
    p.insert("description".into(), or_null(&v.description));
    p.insert(
        "model".into(),
        json!({"provider": v.provider.trim(), "name": v.model.trim(),
               "temperature": number(&v.temperature), "maxTokens": number(&v.max_tokens)}),
    );
    p.insert("instructions".into(), or_null(&v.instructions));
    p.insert("knowledgeBases".into(), json!(v.knowledge_bases));
    p.insert("tools".into(), json!(v.tools));
    p.insert("guardrails".into(), Value::Array(guardrails));
    p.insert("access".into(), or_null(&v.access));
    p.insert("tags".into(), json!(tags));
    let snippets: Vec<Value> = v
        .snippets
        .iter()
        .map(|(name, text)| json!({"name": name, "text": text}))
        .collect();
    p.insert("snippets".into(), Value::Array(snippets));
    Value::Object(p)
}

/// The form field a problem's path names (`spec.model.temperature` →
/// `model.temperature`, `spec.snippets[2].name` → `snippet-2`).
fn field_key(path: &str) -> String {
    let p = path.strip_prefix("spec.").unwrap_or(path);
    let p = if p == "metadata.name" { "name" } else { p };
    if let Some(i) = p
        .strip_prefix("snippets[")
        .and_then(|r| r.split(']').next())
    {
        return format!("snippet-{i}");
    }
    p.split('[').next().unwrap_or(p).to_string()
}

const FIELDS: [&str; 14] = [
    "name",
    "description",
    "model.provider",
    "model.name",
    "model.temperature",
    "model.maxTokens",
    "instructions",
    "knowledgeBases",
    "tools",
    "guardrails",
    "access",
    "tags",
    "snippets",
    "actions",
];

/// Each problem of a refused edit, by the form field it names (`""`: the edit as a whole).
fn notes_of(e: &StagingError) -> Option<Notes> {
    let mut notes = Notes::new();
    let mut add = |field: &str, msg: String| {
        let key = field_key(field);
        let key = if FIELDS.contains(&key.as_str()) || key.starts_with("snippet-") {
            key
        } else {
            String::new()
        };
        notes
            .entry(key)
            .and_modify(|m: &mut String| {
                m.push_str("; ");
                m.push_str(&msg)
            })
            .or_insert(msg);
    };
    match e {
        StagingError::BadField { field, reason } => add(field, format!("{field}: {reason}")),
        StagingError::Invalid { problems } => {
            for d in problems {
                add(d.field.as_deref().unwrap_or(""), d.message.clone());
            }
        }
        _ => return None,
    }
    Some(notes)
}

fn note(notes: &Notes, key: &str) -> Markup {
    html! { @if let Some(m) = notes.get(key) { p.field-error id={ "err-" (key) } role="alert" { (m) } } }
}

fn text_input(label: &str, key: &str, value: &str, notes: &Notes, readonly: bool) -> Markup {
    html! {
        label for=(key) { (label) }
        input id=(key) type="text" name=(key) value=(value) readonly[readonly]
            aria-invalid=[notes.contains_key(key).then_some("true")];
        (note(notes, key))
    }
}

fn checkboxes(
    legend: &str,
    key: &str,
    offer: &Offer,
    on: &[String],
    notes: &Notes,
    readonly: bool,
) -> Markup {
    html! {
        fieldset id={ "fs-" (key) } {
            legend { (legend) }
            @if offer.names.is_empty() { p.muted { "None in this tenant." } }
            @for n in &offer.names {
                label.inline {
                    input type="checkbox" name=(key) value=(n) checked[on.contains(n)] disabled[readonly];
                    (n)
                }
            }
            @if offer.more > 0 && !readonly {
                label for={ (key) "-add" } { (offer.more) " more in this tenant: add by name (comma-separated)" }
                input id={ (key) "-add" } type="text" name={ (key) ".add" } value="";
            }
            (note(notes, key))
        }
    }
}

fn editor_form(
    tenant: &str,
    agent: &str,
    me: &Me,
    v: &Values,
    c: &Choices,
    notes: &Notes,
) -> Markup {
    let ro = !me.may(tenant, Role::Editor);
    html! {
        @if let Some(m) = notes.get("") { div.error role="alert" { p { (m) } } }
        form.card #editor method="post" action={ "/t/" (tenant) "/agents/" (agent) "/edit" } {
            (csrf_field(me))
            (text_input("Name", "name", &v.name, notes, ro))
            (text_input("Description", "description", &v.description, notes, ro))
            fieldset {
                legend { "Model settings" }
                (text_input("Provider", "model.provider", &v.provider, notes, ro))
                (text_input("Model", "model.name", &v.model, notes, ro))
                (text_input("Temperature (0 to 2)", "model.temperature", &v.temperature, notes, ro))
                (text_input("Maximum tokens", "model.maxTokens", &v.max_tokens, notes, ro))
            }
            label for="instructions" { "Instructions" }
            textarea #instructions name="instructions" rows="12" readonly[ro] { (v.instructions) }
            (note(notes, "instructions"))
            (snippets_fieldset(v, notes, ro))
            (checkboxes("Knowledge sources", "knowledgeBases", &c.knowledge_bases, &v.knowledge_bases, notes, ro))
            (checkboxes("Tools", "tools", &c.tools, &v.tools, notes, ro))
            (checkboxes("Guardrails (on)", "guardrails", &Offer { names: c.guardrails.clone(), more: 0 }, &v.guardrails_on, notes, ro))
            label for="access" { "Access" }
            select #access name="access" disabled[ro] {
                option value="" selected[v.access.is_empty()] { "(not set)" }
                @for a in ACCESS_VALUES { option value=(a) selected[v.access == a] { (a) } }
            }
            (note(notes, "access"))
            (text_input("Tags (comma-separated)", "tags", &v.tags, notes, ro))
            @if !ro { p { button #save type="submit" { "Save to staging" } } }
        }
        @if !c.actions.is_empty() { (actions_form(tenant, agent, me, v, c, notes)) }
    }
}

/// The agent's snippets, each with its name, text and a "remove" box, then an empty one to add.
fn snippets_fieldset(v: &Values, notes: &Notes, ro: bool) -> Markup {
    let new = v.snippets.len();
    html! {
        fieldset #fs-snippets {
            legend { "Snippets" }
            @for (i, (name, text)) in v.snippets.iter().chain((!ro).then(|| (String::new(), String::new())).iter()).enumerate() {
                @let key = format!("snippet-{i}");
                div.snippet data-name=(name) {
                    label for={ (key) "-name" } { @if i == new { "New snippet: name" } @else { "Name" } }
                    input id={ (key) "-name" } type="text" name="snippet.name" value=(name) readonly[ro]
                        aria-invalid=[notes.contains_key(&key).then_some("true")];
                    label for={ (key) "-text" } { "Text" }
                    textarea id={ (key) "-text" } name="snippet.text" rows="3" readonly[ro] { (text) }
                    @if i < new && !ro {
                        label.inline { input type="checkbox" name="snippet.remove" value=(i); "Remove this snippet" }
                    }
                    (note(notes, &key))
                }
            }
            @if v.snippets.is_empty() && ro { p.muted { "None." } }
            (note(notes, "snippets"))
        }
    }
}

/// Each action of the tools the agent uses: on or off, and its settings (a JSON object).
fn actions_form(
    tenant: &str,
    agent: &str,
    me: &Me,
    v: &Values,
    c: &Choices,
    notes: &Notes,
) -> Markup {
    let ro = !me.may(tenant, Role::Editor);
    html! {
        form.card #actions method="post" action={ "/t/" (tenant) "/agents/" (agent) "/edit" } {
            (csrf_field(me))
            input type="hidden" name="form" value="actions";
            fieldset {
                legend { "Tool actions" }
                @for (i, a) in c.actions.iter().enumerate() {
                    @let key = a.key();
                    @let on = v.actions_on.as_ref().map_or(a.enabled, |s| s.contains(&key));
                    @let config = v.action_configs.get(&key).cloned()
                        .unwrap_or_else(|| serde_json::to_string_pretty(&a.config).unwrap_or_default());
                    @let id = format!("config-{i}");
                    div.action data-action=(key) {
                        input type="hidden" name="action" value=(key);
                        label.inline {
                            input type="checkbox" name="enabled" value=(key) checked[on] disabled[ro];
                            (a.tool) " · " (a.action) " (on)"
                        }
                        label for=(id) { "Settings of " (a.tool) " · " (a.action) " (JSON)" }
                        textarea id=(id) name="config" rows="3" readonly[ro]
                            aria-invalid=[notes.contains_key(&id).then_some("true")] { (config) }
                        (note(notes, &id))
                    }
                }
                (note(notes, "actions"))
            }
            @if !ro { button #save-actions type="submit" { "Save tool actions" } }
        }
    }
}

fn editor_page(
    tenant: &str,
    agent: &str,
    me: &Me,
    v: &Values,
    c: &Choices,
    notes: &Notes,
    saved: bool,
) -> Markup {
    let body = html! {
        h1 { "Agent " (agent) " — staging" }
        p.row {
            a href={ "/t/" (tenant) "/agents/" (agent) "/diff" } { "Compare with production and publish" }
            a href={ "/t/" (tenant) "/history" } { "History" }
        }
        @if saved { div.notice role="status" { p #saved { "Saved to staging. Production moves at the next publish." } } }
        @if !me.may(tenant, Role::Editor) { p.muted { "You may read this agent; editing needs the editor role." } }
        (editor_form(tenant, agent, me, v, c, notes))
    };
    layout(&format!("Agent {agent}"), Some(me), Some(tenant), body)
}

/// `GET /t/{tenant}/agents/{agent}`: the staging editor.
pub async fn editor(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        agent_view::authorize_reading(store, &me.actor(), tenant)?;
        let (r, spec) = draft_of(store, tenant, &agent)?;
        let c = choices(store, tenant, &spec)?;
        let saved = q.contains_key("saved");
        ok(editor_page(
            tenant,
            r.name(),
            me,
            &values_of(&r, &spec),
            &c,
            &Notes::new(),
            saved,
        ))
    })
    .await
}

/// The patch that turns `old` into `new` when merged (RFC 7396): keys
/// `new` lacks become `null`, objects in both are compared key by key.
fn replacing(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut p: Map<String, Value> = o
                .keys()
                .filter(|k| !n.contains_key(*k))
                .map(|k| (k.clone(), Value::Null))
                .collect();
            for (k, v) in n {
                let v = o.get(k).map_or_else(|| v.clone(), |ov| replacing(ov, v));
                p.insert(k.clone(), v);
            }
            Value::Object(p)
        }
        _ => new.clone(),
    }
}

/// The edits of the tool-actions form (each action it showed: on or off,
/// and its settings as a JSON object), and the notes of settings that do
/// not read as one; `v` keeps what was submitted.
fn action_edits(form: &Form, c: &Choices, v: &mut Values) -> (Vec<StagingEdit>, Notes) {
    let on: BTreeSet<String> = form
        .all("enabled")
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut edits = Vec::new();
    let mut notes = Notes::new();
    for (key, typed) in form.all("action").into_iter().zip(form.all("config")) {
        let Some((i, a)) = c.actions.iter().enumerate().find(|(_, a)| a.key() == key) else {
            continue;
        };
        let (tool, action) = (a.tool.clone(), a.action.clone());
        if on.contains(key) != a.enabled {
            edits.push(StagingEdit::SetToolActionEnabled {
                tool: tool.clone(),
                action: action.clone(),
                enabled: !a.enabled,
            });
        }
        let typed = typed.replace("\r\n", "\n");
        let parsed = match typed.trim() {
            "" => Ok(json!({})),
            t => serde_json::from_str::<Value>(t),
        };
        match parsed {
            Ok(new) if new.is_object() => {
                if new != a.config {
                    let config = replacing(&a.config, &new);
                    edits.push(StagingEdit::UpdateToolAction {
                        tool,
                        action,
                        config,
                    });
                }
            }
            Ok(_) => {
                notes.insert(
                    format!("config-{i}"),
                    "the settings must be a JSON object, such as {\"limit\": 5}".into(),
                );
            }
            Err(e) => {
                notes.insert(format!("config-{i}"), format!("not valid JSON: {e}"));
            }
        }
        v.action_configs.insert(key.to_string(), typed);
    }
    v.actions_on = Some(on);
    (edits, notes)
}

/// `POST /t/{tenant}/agents/{agent}/edit`: save the editor (or the tool
/// actions) to staging, all in one edit; refused, the form comes back with
/// what was typed and each problem beside its field.
pub async fn save(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_form(&state, headers, body, move |store, me, form| {
        // Refused before the agent is looked up: a caller without the role
        // learns nothing of which agents exist.
        staging::authorize_edit(&*store, &me.actor(), &tenant)?;
        let (r, spec) = draft_of(&*store, &tenant, &agent)?;
        let c = choices(&*store, &tenant, &spec)?;
        let (v, edits, mut notes) = if form.get("form") == Some("actions") {
            let mut v = values_of(&r, &spec);
            let (edits, notes) = action_edits(form, &c, &mut v);
            (v, edits, notes)
        } else {
            let v = values_from(form);
            let edit = StagingEdit::UpdateAgent(patch_of(&v, &spec));
            (v, vec![edit], Notes::new())
        };
        if notes.is_empty() {
            match staging::edit_staging_all(store, &me.actor(), &tenant, &agent, &edits) {
                Ok(done) => {
                    let to = format!("/t/{tenant}/agents/{}?saved=1", done.agent_name);
                    return Ok(see_other(&to));
                }
                Err(e) => match notes_of(&e) {
                    Some(n) => notes = n,
                    None => return Err(e.into()),
                },
            }
        }
        let v = without_credentials(v);
        let page = editor_page(&tenant, &agent, me, &v, &c, &notes, false);
        Ok((StatusCode::BAD_REQUEST, Html(page.into_string())).into_response())
    })
    .await
}

fn diff_page(
    tenant: &str,
    agent: &str,
    me: &Me,
    d: &crate::domain::publish::StagingDiff,
    nothing: bool,
) -> Markup {
    let may_publish = me.may(tenant, Role::Admin);
    let body = html! {
        h1 { "Staging diff — agent " (agent) }
        p.row {
            a href={ "/t/" (tenant) "/agents/" (agent) } { "Edit staging" }
            a href={ "/t/" (tenant) "/history" } { "History" }
        }
        @if nothing { div.warning role="status" { p { "Nothing to publish: staging equals production." } } }
        @if d.has_changes {
            p { "Only the fields that differ are shown: Production on the left, Staging on the right." }
        } @else {
            p #no-changes { "No changes: staging equals production for this agent and what it uses." }
        }
        @for r in &d.resources {
            section.card.resource-diff data-id=(r.id) {
                h2 { span class={ "badge " (format!("{:?}", r.status).to_lowercase()) } { (format!("{:?}", r.status).to_lowercase()) } " " (r.kind) " " (r.name) }
                @for c in &r.changes { (view::change(&c.path, &c.production, &c.staging, ("Production", "Staging"))) }
            }
        }
        @if may_publish {
            form.card #publish method="post" action={ "/t/" (tenant) "/agents/" (agent) "/publish" } {
                (csrf_field(me))
                label for="message" { "Publish message" }
                input #message type="text" name="message" disabled[!d.has_changes] placeholder="What changed, for the history";
                p {
                    @if d.has_changes { button #publish-button type="submit" { "Publish" } }
                    @else { button #publish-button type="submit" disabled { "Nothing to publish" } }
                }
            }
        } @else {
            p.muted #publish-needs-admin { "Publishing needs the admin role on " (tenant) "." }
        }
    };
    layout(
        &format!("Staging diff of {agent}"),
        Some(me),
        Some(tenant),
        body,
    )
}

/// `GET /t/{tenant}/agents/{agent}/diff`: Production and Staging side by side, and Publish.
pub async fn diff(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    read_page(&state, headers, tenant, move |store, me, tenant| {
        let d = publishing::staging_diff_for(store, &me.actor(), tenant, Some(&agent))?;
        ok(diff_page(tenant, &agent, me, &d, q.contains_key("nothing")))
    })
    .await
}

/// `POST /t/{tenant}/agents/{agent}/publish`: publish the agent (admin), then show the history.
pub async fn publish(
    State(state): State<Shared>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tagging = state.clone();
    write_form(&state, headers, body, move |store, me, form| {
        publishing::authorize_publish(&*store, &me.actor(), &tenant)?;
        let id = staging::find_agent_id(&*store, &tenant, &agent)?;
        let message = form
            .get("message")
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || format!("publish {agent} from the web UI"),
                str::to_string,
            );
        let tagger = tagging
            .tagger
            .as_deref()
            .map(|t| t as &dyn crate::domain::tagging::PublishTagger);
        let now = crate::backend::store::now_rfc3339();
        let done = publishing::publish(
            store,
            &me.actor(),
            tagger,
            &tenant,
            Some(&id),
            &message,
            &now,
        )?;
        Ok(match done {
            Some(p) => see_other(&format!(
                "/t/{tenant}/history?published={}",
                p.record.number
            )),
            None => see_other(&format!("/t/{tenant}/agents/{agent}/diff?nothing=1")),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The editor offers the agent's own tools first, in its order, and
    /// lists their actions in that order too, whatever order the tenant's
    /// names come in.
    #[test]
    fn the_editor_lists_the_agent_tools_and_their_actions_in_its_order() {
        let (_tmp, store) = crate::service::pipeline::tests::applied();
        let (_, spec) = draft_of(&store, "acme-dev", "refund-bot").unwrap();
        let c = choices(&store, "acme-dev", &spec).unwrap();
        assert_eq!(c.tools.names[..spec.tools.len()], spec.tools[..]);
        let mut tools: Vec<&str> = c.actions.iter().map(|a| a.tool.as_str()).collect();
        tools.dedup();
        let with_actions: Vec<&str> = spec
            .tools
            .iter()
            .map(String::as_str)
            .filter(|t| tools.contains(t))
            .collect();
        assert!(tools.len() > 2, "{tools:?}");
        assert_eq!(tools, with_actions);
    }

    #[test]
    fn problems_land_beside_the_field_they_name() {
        assert_eq!(field_key("spec.model.temperature"), "model.temperature");
        assert_eq!(field_key("metadata.name"), "name");
        assert_eq!(field_key("spec.tools[1]"), "tools");
        let e = StagingError::BadField {
            field: "model.maxTokens".into(),
            reason: "wrong type".into(),
        };
        let notes = notes_of(&e).unwrap();
        assert!(notes["model.maxTokens"].contains("wrong type"));
        assert_eq!(field_key("spec.snippets[2].name"), "snippet-2");
        let e = StagingError::BadField {
            field: "spec.workflows".into(),
            reason: "x".into(),
        };
        assert!(notes_of(&e).unwrap().contains_key(""));
    }

    #[test]
    fn settings_typed_whole_become_a_patch_that_replaces() {
        let old = json!({"limit": 20, "sort": {"by": "date", "desc": true}, "gone": 1});
        let new = json!({"limit": 5, "sort": {"by": "date"}});
        let p = replacing(&old, &new);
        assert_eq!(
            p,
            json!({"limit": 5, "sort": {"by": "date", "desc": null}, "gone": null})
        );
        let mut merged = old.clone();
        staging::merge_patch(&mut merged, &p);
        assert_eq!(merged, new);
    }

    #[test]
    fn a_refused_form_comes_back_without_credentials_in_snippets_or_settings() {
        let token = "Bearer sk-live-0123456789abcdef";
        let mut v = values_from(&Form::parse(&Bytes::from_static(b"description=ok")));
        v.snippets = vec![
            ("greeting".into(), "Hello.".into()),
            ("debug".into(), format!("call with {token}")),
        ];
        v.action_configs
            .insert("crm/list".into(), format!("{{\"auth\": \"{token}\"}}"));
        v.action_configs
            .insert("crm/get".into(), "{\"limit\": 5}".into());
        let v = without_credentials(v);
        assert_eq!(v.description, "ok");
        assert_eq!(
            v.snippets,
            vec![
                ("greeting".to_string(), "Hello.".to_string()),
                ("debug".to_string(), String::new())
            ]
        );
        assert_eq!(v.action_configs["crm/list"], "");
        assert_eq!(v.action_configs["crm/get"], "{\"limit\": 5}");
    }

    #[test]
    fn number_fields_become_numbers_or_stay_text() {
        assert_eq!(number("0.3"), json!(0.3));
        assert_eq!(number("512"), json!(512));
        assert_eq!(number(" "), Value::Null);
        assert_eq!(number("warm"), json!("warm"));
    }
}
