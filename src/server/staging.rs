//! Staging and publishing over HTTP (document 003), under
//! `/api/v2/agents/{agent_id}`: the staging edits, the staging diff,
//! publish, the publish history and its diffs, and rollback.
//!
//! Each handler authenticates the caller, checks their role on their
//! current tenant before looking anything up (so no endpoint reveals what
//! another tenant holds), and calls [`crate::service::staging`] or
//! [`crate::service::publishing`], the functions behind `ferry diff`, `ferry
//! publish`, `ferry publishes` and `ferry revert`, which check the role again
//! and record the caller. Reads need viewer, staging edits and rollback
//! editor, publish admin. A publish tags git as the CLI's does when the
//! server runs in a config repo.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{delete, get, patch, post, put};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::openapi::Registry;
use super::{auth, read_store, with_store, Shared};
use crate::backend::store::Store;
use crate::service::staging::{
    self, ErrorKind, FolderEdit, GuardrailPatch, StagingEdit, StagingError,
};
use crate::service::{agent_view, publishing};

const AGENT: &str = "/api/v2/agents/{agent_id}";
const FOLDER: &str = "/api/v2/agents/{agent_id}/sharepoint/folder";

/// Register the staging and publishing routes.
pub fn routes(r: Registry) -> Registry {
    r.add(Method::GET, "/api/v2/agents", get(list_agents))
        .add(Method::GET, AGENT, get(get_agent))
        .add(Method::PUT, AGENT, put(update_agent))
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/instructions",
            post(create_instructions),
        )
        .add(
            Method::PUT,
            "/api/v2/agents/{agent_id}/instructions",
            put(update_instructions),
        )
        .add(
            Method::DELETE,
            "/api/v2/agents/{agent_id}/instructions/{instruction_id}",
            delete(delete_instruction),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/corpora",
            post(connect_corpora),
        )
        .add(
            Method::DELETE,
            "/api/v2/agents/{agent_id}/corpora",
            delete(disconnect_corpora),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
            post(connect_corpus),
        )
        .add(
            Method::PUT,
            "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
            put(update_corpus),
        )
        .add(
            Method::DELETE,
            "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
            delete(disconnect_corpus),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/tools/{tool_id}/enable",
            post(enable_tool),
        )
        .add(
            Method::DELETE,
            "/api/v2/agents/{agent_id}/tools/{tool_id}/disable",
            delete(disable_tool),
        )
        .add(
            Method::PATCH,
            "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}",
            patch(update_action),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/enable",
            post(enable_action),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/disable",
            post(disable_action),
        )
        .add(
            Method::PATCH,
            "/api/v2/agents/{agent_id}/guardrails",
            patch(guardrails),
        )
        .add(Method::PUT, "/api/v2/agents/{agent_id}/access", put(access))
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/annotates",
            post(annotates),
        )
        .add(Method::POST, FOLDER, post(create_folder))
        .add(Method::PUT, FOLDER, put(update_folder))
        .add(Method::DELETE, FOLDER, delete(delete_folder))
        .add(
            Method::GET,
            "/api/v2/agents/{agent_id}/staging-diff",
            get(staging_diff),
        )
        .add(
            Method::POST,
            "/api/v2/agents/{agent_id}/publish",
            post(publish),
        )
        .add(
            Method::GET,
            "/api/v2/agents/{agent_id}/publishes",
            get(publishes),
        )
        .add(
            Method::GET,
            "/api/v2/agents/{agent_id}/publishes/{change_track_id}/diff",
            get(publish_diff),
        )
        .add(
            Method::PUT,
            "/api/v2/agents/{agent_id}/rollback",
            put(rollback),
        )
}

impl From<StagingError> for ApiError {
    fn from(e: StagingError) -> ApiError {
        if let Some(unavailable) = ApiError::if_unavailable(&e) {
            return unavailable;
        }
        let msg = e.to_string();
        match e.status_kind() {
            ErrorKind::NotFound => {
                let code = match &e {
                    StagingError::NoAgent { .. } => "agent_not_found",
                    StagingError::NoTool { .. } => "tool_not_found",
                    StagingError::NoAction { .. } => "action_not_found",
                    StagingError::NoCorpus { .. } => "corpus_not_found",
                    StagingError::NoInstruction { .. } => "instruction_not_found",
                    StagingError::NoSharePointFolder { .. } => "sharepoint_folder_not_found",
                    StagingError::NoPublish { .. } => "publish_not_found",
                    _ => "not_found",
                };
                ApiError::not_found(code, msg)
            }
            ErrorKind::BadRequest => match &e {
                StagingError::Invalid { problems } => ApiError::bad_request("invalid_edit", msg)
                    .with("problems", problems_json(problems)),
                StagingError::BadField { field, .. } => {
                    ApiError::bad_request("invalid_edit", msg).with("field", json!(field))
                }
                _ => ApiError::bad_request("invalid_edit", msg),
            },
            ErrorKind::Conflict => match e {
                StagingError::Store(s) => s.into(),
                _ => ApiError::conflict("conflict", msg),
            },
            ErrorKind::Forbidden => match e {
                StagingError::Access(a) => a.into(),
                _ => ApiError::forbidden(msg),
            },
            ErrorKind::Unavailable => ApiError::unavailable(msg),
            ErrorKind::Internal => ApiError::internal(msg),
        }
    }
}

/// Every problem of an invalid edit: file, field, code and message (never a value).
fn problems_json(problems: &[crate::domain::diagnostic::Diagnostic]) -> Value {
    problems
        .iter()
        .map(|d| {
            serde_json::json!({
                "file": d.file,
                "field": d.field,
                "code": d.code,
                "message": d.message,
                "hint": d.hint,
            })
        })
        .collect()
}

/// The caller and their token's current tenant, for a use case that
/// checks the caller's role itself.
fn caller_and_tenant(
    store: &dyn Store,
    headers: &HeaderMap,
) -> Result<(auth::Caller, String), ApiError> {
    let caller = auth::authenticate(store, headers)?;
    let tenant = caller.current_tenant()?.to_string();
    Ok((caller, tenant))
}

/// A JSON body, or 400 naming what is wrong.
fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("the body is not valid JSON: {e}")))
}

fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| v.get(*n))
}

fn string_field(v: &Value, names: &[&str]) -> Result<Option<String>, ApiError> {
    match field(v, names) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "bad_body",
            format!("field `{}` must be a string", names[0]),
        )),
    }
}

fn string_list(v: &Value, names: &[&str]) -> Result<Vec<String>, ApiError> {
    let list = match v {
        Value::Array(_) => Some(v),
        _ => field(v, names),
    };
    let Some(Value::Array(items)) = list else {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("the body must hold `{}`: a list of strings", names[0]),
        ));
    };
    items
        .iter()
        .map(|x| {
            x.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::bad_request("bad_body", format!("`{}` must hold only strings", names[0]))
            })
        })
        .collect()
}

/// A staging edit that takes a request body, named by its route; the
/// path's own parameters travel with it.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditBody {
    /// `PUT /api/v2/agents/{agent_id}`: a merge patch of the agent.
    UpdateAgent,
    /// `POST …/instructions`.
    CreateInstructions,
    /// `PUT …/instructions`.
    UpdateInstructions,
    /// `POST …/corpora`.
    ConnectCorpora,
    /// `DELETE …/corpora`.
    DisconnectCorpora,
    /// `PUT …/corpora/{corpus_id}`.
    UpdateCorpus {
        /// The path's knowledge base.
        corpus: String,
    },
    /// `PUT …/tools/{tool_id}/actions/{action}`.
    UpdateToolAction {
        /// The path's tool.
        tool: String,
        /// The path's action.
        action: String,
    },
    /// `PATCH …/guardrails`.
    Guardrails,
    /// `PUT …/access`.
    Access,
    /// `PUT …/annotates`.
    Tags,
    /// `POST …/sharepoint/folder`.
    CreateFolder,
    /// `PUT …/sharepoint/folder`.
    UpdateFolder,
}

/// The staging edit a request `body` asks for on `route`, or the 400 naming
/// what is wrong with the body (the handlers' one reading of bodies; the
/// fuzz targets call it too).
#[doc(hidden)]
pub fn edit_of_body(route: &EditBody, body: &[u8]) -> Result<StagingEdit, ApiError> {
    let body = Bytes::copy_from_slice(body);
    Ok(match route {
        EditBody::UpdateAgent => {
            let v = json_body(&body)?;
            if !v.is_object() {
                return Err(ApiError::bad_request(
                    "bad_body",
                    "the body must be a JSON object: a merge patch of the agent's fields",
                ));
            }
            StagingEdit::UpdateAgent(v)
        }
        EditBody::CreateInstructions => {
            let (name, text) = instructions_of(&body)?;
            StagingEdit::CreateInstructions { name, text }
        }
        EditBody::UpdateInstructions => {
            let (name, text) = instructions_of(&body)?;
            StagingEdit::UpdateInstructions { name, text }
        }
        EditBody::ConnectCorpora => StagingEdit::ConnectCorpora {
            corpora: string_list(&json_body(&body)?, CORPORA)?,
        },
        EditBody::DisconnectCorpora => StagingEdit::DisconnectCorpora {
            corpora: string_list(&json_body(&body)?, CORPORA)?,
        },
        EditBody::UpdateCorpus { corpus } => StagingEdit::UpdateCorpus {
            corpus: corpus.clone(),
            patch: json_body(&body)?,
        },
        EditBody::UpdateToolAction { tool, action } => {
            let v = json_body(&body)?;
            StagingEdit::UpdateToolAction {
                tool: tool.clone(),
                action: action.clone(),
                config: v.get("config").cloned().unwrap_or(v),
            }
        }
        EditBody::Guardrails => guardrails_of(&body)?,
        EditBody::Access => access_of(&body)?,
        EditBody::Tags => StagingEdit::SetTags {
            tags: string_list(&json_body(&body)?, &["tags"])?,
        },
        EditBody::CreateFolder => {
            StagingEdit::SharePointFolder(FolderEdit::Create(json_body(&body)?))
        }
        EditBody::UpdateFolder => {
            StagingEdit::SharePointFolder(FolderEdit::Update(json_body(&body)?))
        }
    })
}

fn guardrails_of(body: &Bytes) -> Result<StagingEdit, ApiError> {
    let v = json_body(body)?;
    let list = match &v {
        Value::Array(_) => v.clone(),
        Value::Object(o) if o.contains_key("guardrails") => o["guardrails"].clone(),
        Value::Object(_) => Value::Array(vec![v.clone()]),
        _ => Value::Null,
    };
    let patches: Vec<GuardrailPatch> = serde_json::from_value(list).map_err(|e| {
        ApiError::bad_request(
            "bad_body",
            format!(
                "the body must be a guardrail {{name, enabled, config}} or a list of them: {e}"
            ),
        )
    })?;
    Ok(StagingEdit::PatchGuardrails(patches))
}

fn access_of(body: &Bytes) -> Result<StagingEdit, ApiError> {
    let v = json_body(body)?;
    let access =
        string_field(&v, &["access", "access_level", "accessLevel"])?.ok_or_else(|| {
            ApiError::bad_request("bad_body", "the body must hold `access`: a string")
        })?;
    Ok(StagingEdit::SetAccess { access })
}

/// Run one staging edit for the caller and answer with its outcome.
async fn edit(
    state: Shared,
    headers: HeaderMap,
    agent: String,
    make: impl FnOnce() -> Result<StagingEdit, ApiError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let out = with_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        staging::authorize_edit(&*store, &caller.actor(), &tenant)?;
        let e = make()?;
        let outcome = staging::edit_staging(store, &caller.actor(), &tenant, &agent, &e)?;
        serde_json::to_value(outcome).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}

async fn list_agents(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let out = read_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        let list = agent_view::agent_list(store, &caller.actor(), &tenant)?;
        Ok(json!(crate::domain::answer::Items::new(list)))
    })
    .await?;
    Ok(Json(out))
}

async fn get_agent(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let out = read_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        let view =
            agent_view::agent_view(store, &caller.actor(), &tenant, &agent)?.ok_or_else(|| {
                ApiError::not_found(
                    "agent_not_found",
                    format!("agent `{agent}` has no staging state (it was deleted there)"),
                )
            })?;
        serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}

async fn update_agent(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::UpdateAgent, &body)
    })
    .await
}

fn instructions_of(body: &Bytes) -> Result<(Option<String>, String), ApiError> {
    let v = json_body(body)?;
    let name = string_field(&v, &["name", "instruction_id", "id"])?;
    let text = string_field(&v, &["text", "instructions", "content"])?.ok_or_else(|| {
        ApiError::bad_request(
            "bad_body",
            "the body must hold `instructions` (or `text`): a string",
        )
    })?;
    Ok((name, text))
}

async fn create_instructions(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::CreateInstructions, &body)
    })
    .await
}

async fn update_instructions(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::UpdateInstructions, &body)
    })
    .await
}

async fn delete_instruction(
    State(state): State<Shared>,
    Path((agent, instruction_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::DeleteInstruction { instruction_id })
    })
    .await
}

const CORPORA: &[&str] = &["corpora", "corpus_ids", "knowledgeBases", "ids"];

async fn connect_corpora(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::ConnectCorpora, &body)
    })
    .await
}

async fn disconnect_corpora(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::DisconnectCorpora, &body)
    })
    .await
}

async fn connect_corpus(
    State(state): State<Shared>,
    Path((agent, corpus)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::ConnectCorpora {
            corpora: vec![corpus],
        })
    })
    .await
}

async fn update_corpus(
    State(state): State<Shared>,
    Path((agent, corpus)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::UpdateCorpus { corpus }, &body)
    })
    .await
}

async fn disconnect_corpus(
    State(state): State<Shared>,
    Path((agent, corpus)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::DisconnectCorpora {
            corpora: vec![corpus],
        })
    })
    .await
}

async fn enable_tool(
    State(state): State<Shared>,
    Path((agent, tool)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::EnableTool { tool })
    })
    .await
}

async fn disable_tool(
    State(state): State<Shared>,
    Path((agent, tool)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::DisableTool { tool })
    })
    .await
}

async fn update_action(
    State(state): State<Shared>,
    Path((agent, tool, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::UpdateToolAction { tool, action }, &body)
    })
    .await
}

async fn enable_action(
    State(state): State<Shared>,
    Path((agent, tool, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::SetToolActionEnabled {
            tool,
            action,
            enabled: true,
        })
    })
    .await
}

async fn disable_action(
    State(state): State<Shared>,
    Path((agent, tool, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::SetToolActionEnabled {
            tool,
            action,
            enabled: false,
        })
    })
    .await
}

async fn guardrails(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::Guardrails, &body)
    })
    .await
}

async fn access(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::Access, &body)
    })
    .await
}

async fn annotates(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::Tags, &body)
    })
    .await
}

async fn create_folder(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::CreateFolder, &body)
    })
    .await
}

async fn update_folder(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        edit_of_body(&EditBody::UpdateFolder, &body)
    })
    .await
}

async fn delete_folder(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    edit(state, headers, agent, move || {
        Ok(StagingEdit::SharePointFolder(FolderEdit::Delete))
    })
    .await
}

async fn staging_diff(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    // Written straight to bytes: a diff can be large, and this is the
    // busiest read there is.
    let cache = state.clone();
    let body = read_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        cache
            .staging_diffs
            .rendered(store, &caller.actor(), &tenant, Some(&agent), |d| {
                serde_json::to_vec(d).map_err(|e| ApiError::internal(e.to_string()))
            })
    })
    .await?;
    let body = axum::body::Bytes::from_owner(body);
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    Ok((json, body).into_response())
}

async fn publish(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tagging = state.clone();
    let out = with_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        publishing::authorize_publish(&*store, &caller.actor(), &tenant)?;
        let v = json_body(&body)?;
        let message = string_field(&v, &["message", "description"])?
            .unwrap_or_else(|| format!("publish {agent} over the API"));
        let id = staging::find_agent_id(&*store, &tenant, &agent)?;
        let tagger = tagging
            .tagger
            .as_deref()
            .map(|t| t as &dyn crate::domain::tagging::PublishTagger);
        let published = publishing::publish(
            store,
            &caller.actor(),
            tagger,
            &tenant,
            Some(&id),
            &message,
            &crate::backend::store::now_rfc3339(),
        )?;
        let Some(done) = published else {
            return Err(ApiError::from_answer(
                StatusCode::CONFLICT,
                publishing::nothing_to_publish(
                    format!("nothing to publish: staging equals production for agent `{agent}`"),
                    "GET staging-diff shows what differs",
                ),
            ));
        };
        serde_json::to_value(done.answer()).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok((StatusCode::OK, Json(out)))
}

async fn publishes(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let out = read_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        let list = publishing::agent_publishes(store, &caller.actor(), &tenant, &agent)?;
        serde_json::to_value(crate::domain::answer::Items::new(list))
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}

async fn publish_diff(
    State(state): State<Shared>,
    Path((agent, change)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let out = read_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        let actor = caller.actor();
        let d = publishing::publish_diff(store, &actor, &tenant, Some(&agent), &change)?;
        serde_json::to_value(d).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}

async fn rollback(
    State(state): State<Shared>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let out = with_store(&state, move |store| {
        let (caller, tenant) = caller_and_tenant(store, &headers)?;
        publishing::authorize_revert(&*store, &caller.actor(), &tenant)?;
        let v = json_body(&body)?;
        let change = string_field(&v, &["changeTrackId", "change_track_id"])?.ok_or_else(|| {
            ApiError::bad_request("bad_body", "the body must hold `changeTrackId`")
        })?;
        staging::find_agent_id(&*store, &tenant, &agent)?;
        let outcome = publishing::revert(store, &caller.actor(), &tenant, &change, false)?;
        serde_json::to_value(outcome).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(out))
}
