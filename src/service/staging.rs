//! Staging edits: small, typed changes to one agent's draft, and to the
//! drafts of the tools and knowledge bases it uses.
//!
//! This module owns [`StagingEdit`], [`apply_edit`] and the one error type of
//! the staging and publish services ([`StagingError`], with [`ErrorKind`] for
//! servers). An edit reads the drafts it touches (stored form, references as
//! IDs), changes them, checks them with the tree's own checks from
//! [`crate::domain::validate`] (types, names, references that must exist,
//! strings, plain-text secrets, sub-agent cycles), reporting every problem
//! at once as [`StagingError::Invalid`], and
//! writes only what changed, in one transaction against the tenant revision
//! it read. Production (published versions) is untouched until a publish;
//! see [`crate::service::publishing`]. An edit that changes nothing writes nothing.
//! The HTTP server and the CLI share this one implementation.

use crate::backend::store::BatchDraft;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::store::{IndexKeys, Store, StoreError, WriteBatch};
use crate::domain::diagnostic::Diagnostic;
use crate::domain::model::resource_path;
use crate::domain::model::{
    is_valid_name, AgentSpec, FreeForm, Guardrail, Kind, KnowledgeBaseSpec, Metadata, Resource,
    Snippet, Spec, ToolSpec, BUILTIN_PREFIX,
};
use crate::domain::publish::Named;
use crate::domain::state::{content_hash, Index, IndexEntry};
use crate::domain::validate::{
    own_field_problems, render_names, resolve_references, Desired, NameTable, ReferenceGraph,
};
use crate::service::pipeline::{self, PipelineError};

/// The instruction ID of an agent's main instructions text.
pub const MAIN_INSTRUCTION: &str = "main";

/// The values an agent's `access` may take.
pub const ACCESS_VALUES: [&str; 3] = ["private", "team", "public"];

/// The field a SharePoint folder edit names in its errors.
const FOLDER: &str = "sharepointFolder";

/// Fields of an agent that an [`StagingEdit::UpdateAgent`] patch may not touch.
const NOT_EDITABLE: [&str; 8] = [
    "id",
    "metadata",
    "syncedFrom",
    "syncable",
    "originId",
    "createdBy",
    "apiVersion",
    "kind",
];

/// Fields of a knowledge base that an [`StagingEdit::UpdateCorpus`] patch may change.
const CORPUS_FIELDS: [&str; 3] = ["description", "chunking", "embedding"];

/// One change to a guardrail of an agent, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailPatch {
    /// The guardrail's name; an unknown name adds the guardrail.
    pub name: String,
    /// Turn it on or off; left as it is when absent (on for a new guardrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replace its settings (a JSON object; `null` clears them); left as they are when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// One edit of an agent's staging state (its draft, version 0).
#[derive(Debug, Clone, PartialEq)]
pub enum StagingEdit {
    /// JSON merge patch (RFC 7396) of the agent's spec fields, e.g.
    /// `{"description": "..."}` or `{"model": {"temperature": 0.3}}`; `"name"`
    /// renames the agent. References in a patch may be names or IDs.
    UpdateAgent(Value),
    /// Create the main instructions (`name` absent or `"main"`) or a named
    /// instruction item (a snippet); refused when it exists already.
    CreateInstructions {
        /// The snippet's name; `None` (or `"main"`) for the main text.
        name: Option<String>,
        /// The text.
        text: String,
    },
    /// Replace the main instructions or a named instruction item; refused when absent.
    UpdateInstructions {
        /// The snippet's name; `None` (or `"main"`) for the main text.
        name: Option<String>,
        /// The text.
        text: String,
    },
    /// Delete a snippet by name, or the main text when the ID is `"main"`.
    DeleteInstruction {
        /// The snippet's name, or `"main"`.
        instruction_id: String,
    },
    /// Attach a tool (ID, name or `builtin/<name>`) to the agent.
    EnableTool {
        /// The tool.
        tool: String,
    },
    /// Detach a tool (ID, name or `builtin/<name>`) from the agent.
    DisableTool {
        /// The tool.
        tool: String,
    },
    /// Merge-patch the `config` of one action of a tool the agent uses (edits the tool's draft).
    UpdateToolAction {
        /// The tool (ID or name).
        tool: String,
        /// The action's name.
        action: String,
        /// A JSON merge patch of the action's config.
        config: Value,
    },
    /// Turn one action of a tool the agent uses on or off (edits the tool's draft).
    SetToolActionEnabled {
        /// The tool (ID or name).
        tool: String,
        /// The action's name.
        action: String,
        /// On or off.
        enabled: bool,
    },
    /// Connect knowledge bases (IDs or names), keeping order, without duplicates.
    ConnectCorpora {
        /// The knowledge bases.
        corpora: Vec<String>,
    },
    /// Disconnect knowledge bases (IDs or names).
    DisconnectCorpora {
        /// The knowledge bases.
        corpora: Vec<String>,
    },
    /// Merge-patch `description`, `chunking` or `embedding` of a connected
    /// knowledge base (edits the knowledge base's draft).
    UpdateCorpus {
        /// The knowledge base (ID or name).
        corpus: String,
        /// A JSON merge patch of its spec fields.
        patch: Value,
    },
    /// Turn guardrails on or off and set their config, by name; unknown names are added.
    PatchGuardrails(Vec<GuardrailPatch>),
    /// Set the agent's access: one of [`ACCESS_VALUES`].
    SetAccess {
        /// The access.
        access: String,
    },
    /// Replace the agent's tags.
    SetTags {
        /// The tags.
        tags: Vec<String>,
    },
    /// Connect, change or disconnect the agent's SharePoint folder (a knowledge source).
    SharePointFolder(FolderEdit),
}

/// An edit of an agent's SharePoint folder connection (document 003's
/// `POST`, `PUT` and `DELETE /api/v2/agents/{agent_id}/sharepoint/folder`).
#[derive(Debug, Clone, PartialEq)]
pub enum FolderEdit {
    /// Connect a folder, `{"folderUrl": ..., "name": ..., "includeSubfolders": ...}`; refused when one is connected.
    Create(Value),
    /// Merge-patch the connected folder's fields; refused when none is connected.
    Update(Value),
    /// Disconnect the folder; refused when none is connected.
    Delete,
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditOutcome {
    /// The tenant.
    pub tenant: String,
    /// The agent's ID.
    pub agent_id: String,
    /// The agent's name after the edit.
    pub agent_name: String,
    /// Whether anything was written.
    pub changed: bool,
    /// The drafts written (empty when nothing changed).
    pub resources: Vec<Named>,
    /// The tenant revision after the edit (unchanged when nothing was written).
    pub revision: u64,
}

/// How a server should answer a [`StagingError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Something named does not exist (404).
    NotFound,
    /// The request is malformed or invalid (400).
    BadRequest,
    /// The state changed meanwhile, or the request clashes with it (409).
    Conflict,
    /// The actor's role is too weak (403).
    Forbidden,
    /// The store's database cannot be reached; the caller may try again (503).
    Unavailable,
    /// The machinery failed (500).
    Internal,
}

/// An error of a staging edit, a publish or a rollback. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The agent is not in the tenant.
    #[error("agent `{agent}` is neither in staging nor in production")]
    NoAgent {
        /// The tenant.
        tenant: String,
        /// The agent asked for (ID or name).
        agent: String,
    },
    /// The tool is not in the tenant.
    #[error("tool `{tool}` does not exist in tenant `{tenant}`")]
    NoTool {
        /// The tenant.
        tenant: String,
        /// The tool asked for (ID or name).
        tool: String,
    },
    /// The tool exists but the agent does not use it.
    #[error("tool `{tool}` is not attached to agent `{agent}`")]
    ToolNotAttached {
        /// The agent.
        agent: String,
        /// The tool.
        tool: String,
    },
    /// The tool has no such action.
    #[error("tool `{tool}` has no action `{action}`")]
    NoAction {
        /// The tool.
        tool: String,
        /// The action asked for.
        action: String,
    },
    /// The knowledge base is not in the tenant.
    #[error("knowledge base `{corpus}` does not exist in tenant `{tenant}`")]
    NoCorpus {
        /// The tenant.
        tenant: String,
        /// The knowledge base asked for (ID or name).
        corpus: String,
    },
    /// The knowledge base exists but is not connected to the agent.
    #[error("knowledge base `{corpus}` is not connected to agent `{agent}`")]
    CorpusNotConnected {
        /// The agent.
        agent: String,
        /// The knowledge base.
        corpus: String,
    },
    /// The agent has no such instruction.
    #[error("agent `{agent}` has no instruction `{instruction}`")]
    NoInstruction {
        /// The agent.
        agent: String,
        /// The instruction asked for (`main` or a snippet name).
        instruction: String,
    },
    /// The instruction exists already.
    #[error("agent `{agent}` has an instruction `{instruction}` already; update it instead")]
    InstructionExists {
        /// The agent.
        agent: String,
        /// The instruction (`main` or a snippet name).
        instruction: String,
    },
    /// The agent has no SharePoint folder connection.
    #[error("agent `{agent}` has no SharePoint folder connection\nhint: POST …/sharepoint/folder creates one")]
    NoSharePointFolder {
        /// The agent.
        agent: String,
    },
    /// The agent has a SharePoint folder connection already.
    #[error("agent `{agent}` has a SharePoint folder connection already\nhint: PUT …/sharepoint/folder changes it; DELETE removes it")]
    SharePointFolderExists {
        /// The agent.
        agent: String,
    },
    /// A field of the edit is unknown, of the wrong type, or invalid.
    #[error("field `{field}`: {reason}")]
    BadField {
        /// Dotted path of the field, e.g. `model.temperature`.
        field: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// The edited drafts fail the checks a tree gets: every problem found.
    #[error("the edit is invalid:{}", list_problems(problems))]
    Invalid {
        /// Every problem, each naming its resource file and field (never a value).
        problems: Vec<Diagnostic>,
    },
    /// The tenant has no publish with this change-track ID.
    #[error("tenant `{tenant}` has no publish with change id `{change_track_id}`")]
    NoPublish {
        /// The tenant.
        tenant: String,
        /// The change-track ID asked for.
        change_track_id: String,
    },
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A resource could not be encoded.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The actor may not do this.
    #[error(transparent)]
    Access(#[from] crate::domain::access::AccessError),
}

/// Problems one per line: `file: field: message`.
fn list_problems(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(|d| match &d.field {
            Some(f) => format!("\n  {}: {f}: {}", d.file, d.message),
            None => format!("\n  {}: {}", d.file, d.message),
        })
        .collect()
}

fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::NoTenant { .. } => ErrorKind::NotFound,
        StoreError::Stale { .. }
        | StoreError::Busy { .. }
        | StoreError::TenantExists { .. }
        | StoreError::Refused { .. } => ErrorKind::Conflict,
        StoreError::Unavailable { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

impl StagingError {
    /// How a server should answer this error.
    pub fn status_kind(&self) -> ErrorKind {
        match self {
            StagingError::NoAgent { .. }
            | StagingError::NoTool { .. }
            | StagingError::NoAction { .. }
            | StagingError::NoCorpus { .. }
            | StagingError::NoInstruction { .. }
            | StagingError::NoSharePointFolder { .. }
            | StagingError::NoPublish { .. } => ErrorKind::NotFound,
            StagingError::ToolNotAttached { .. }
            | StagingError::CorpusNotConnected { .. }
            | StagingError::BadField { .. }
            | StagingError::Invalid { .. } => ErrorKind::BadRequest,
            StagingError::InstructionExists { .. }
            | StagingError::SharePointFolderExists { .. } => ErrorKind::Conflict,
            StagingError::Store(e) => store_kind(e),
            StagingError::Pipeline(PipelineError::Store(e)) => store_kind(e),
            StagingError::Pipeline(_) => ErrorKind::Internal,
            StagingError::Access(_) => ErrorKind::Forbidden,
        }
    }

    fn bad(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StagingError::BadField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A staging edit as the `actor` (an editor of the tenant): [`apply_edit`] after the role check.
pub fn edit_staging(
    store: &mut dyn Store,
    actor: &crate::service::access::Actor,
    tenant: &str,
    agent: &str,
    edit: &StagingEdit,
) -> Result<EditOutcome, StagingError> {
    edit_staging_all(store, actor, tenant, agent, std::slice::from_ref(edit))
}

/// Several staging edits as the `actor` (an editor of the tenant), all or
/// none: [`apply_edits`] after the role check. A form that changes several
/// things at once saves through this.
pub fn edit_staging_all(
    store: &mut dyn Store,
    actor: &crate::service::access::Actor,
    tenant: &str,
    agent: &str,
    edits: &[StagingEdit],
) -> Result<EditOutcome, StagingError> {
    authorize_edit(&*store, actor, tenant)?;
    edits_as(store, actor.name(), tenant, agent, edits)
}

/// The role check of a staging edit alone (editor), for a front end that
/// reads the draft to build the edit and should refuse before it looks.
pub fn authorize_edit(
    store: &dyn Store,
    actor: &crate::service::access::Actor,
    tenant: &str,
) -> Result<(), StagingError> {
    crate::service::access::authorize::<StagingError>(
        store,
        actor,
        tenant,
        crate::domain::access::Role::Editor,
        "editing staging",
    )
}

/// Apply a JSON merge patch (RFC 7396) to `target`: objects merge key by
/// key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Why a value does not decode, without the value itself.
fn reason_of(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    for (prefix, what) in [
        ("invalid type: ", "wrong type"),
        ("invalid value: ", "invalid value"),
        ("invalid length ", "invalid length"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return match rest.split_once(", expected ") {
                Some((_, expected)) => format!("{what}, expected {expected}"),
                None => what.to_string(),
            };
        }
    }
    if msg.starts_with("unknown field")
        || msg.starts_with("missing field")
        || msg.starts_with("duplicate field")
    {
        return msg;
    }
    "invalid value".to_string()
}

fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => rest.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

/// Decode `value`, naming the field (below `prefix`) that does not fit.
fn decode<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T, StagingError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let inner = e.inner().to_string();
        // Name an unknown or missing field itself, should it be reported at its parent.
        if let Some(name) = inner
            .strip_prefix("unknown field `")
            .or_else(|| inner.strip_prefix("missing field `"))
            .and_then(|r| r.split_once('`'))
            .map(|(n, _)| n)
        {
            if path.rsplit(['.', '[']).next() != Some(name) {
                path = join_path(&path, name);
            }
        }
        let field = join_path(prefix, &path);
        StagingError::bad(
            if field.is_empty() { "$" } else { &field },
            reason_of(e.inner()),
        )
    })
}

/// The ID of the resource of `kind` that `reference` names (ID or name),
/// in the tenant's drafts. A valid `builtin/<name>` tool is returned as is.
pub(crate) fn resolve(index: &Index, kind: Kind, reference: &str) -> Option<String> {
    if let Some(builtin) = reference.strip_prefix(BUILTIN_PREFIX) {
        return (kind == Kind::Tool && is_valid_name(builtin)).then(|| reference.to_string());
    }
    if let Some(e) = index.get(reference).filter(|e| e.kind == kind) {
        return Some(e.id.clone());
    }
    index.by_name(kind, reference).map(|e| e.id.clone())
}

/// The ID of the agent `agent` (ID or name): in staging (drafts) first, else in production.
/// Only the index entries with that ID or name are read, however big the tenant.
pub fn find_agent_id(store: &dyn Store, tenant: &str, agent: &str) -> Result<String, StagingError> {
    if let Some(id) = resolve(&agent_entries(store, tenant, agent)?, Kind::Agent, agent) {
        return Ok(id);
    }
    store
        .production(tenant)?
        .iter()
        .filter(|r| r.kind() == Kind::Agent)
        .find(|r| r.id() == Some(agent) || r.name() == agent)
        .and_then(|r| r.id().map(str::to_string))
        .ok_or_else(|| StagingError::NoAgent {
            tenant: tenant.to_string(),
            agent: agent.to_string(),
        })
}

/// The index entries that `agent` may name, as an ID or as an agent's name.
fn agent_entries(store: &dyn Store, tenant: &str, agent: &str) -> Result<Index, StoreError> {
    let keys = IndexKeys {
        ids: vec![agent.to_string()],
        names: vec![(Kind::Agent, agent.to_string())],
        ..IndexKeys::default()
    };
    Ok(Index::new(store.index_entries(tenant, &keys)?.1))
}

/// An edit in progress: the agent's draft and the other drafts it touched.
struct Session<'a> {
    store: &'a dyn Store,
    tenant: &'a str,
    /// The index entries the edit has needed so far, read by keyed
    /// lookups (the whole index only to report problems, for its hints).
    index: std::cell::RefCell<Index>,
    agent_id: String,
    meta: Metadata,
    spec: AgentSpec,
    /// Tool and knowledge-base drafts read so far, by ID: (as read, as edited).
    others: BTreeMap<String, (Resource, Resource)>,
}

impl Session<'_> {
    fn agent_name(&self) -> String {
        self.meta.name.clone()
    }

    fn no_tool(&self, tool: &str) -> StagingError {
        StagingError::NoTool {
            tenant: self.tenant.to_string(),
            tool: tool.to_string(),
        }
    }

    fn no_corpus(&self, corpus: &str) -> StagingError {
        StagingError::NoCorpus {
            tenant: self.tenant.to_string(),
            corpus: corpus.to_string(),
        }
    }

    fn tool_id(&self, tool: &str) -> Result<String, StagingError> {
        self.resolved(Kind::Tool, tool)?
            .ok_or_else(|| self.no_tool(tool))
    }

    fn corpus_id(&self, corpus: &str) -> Result<String, StagingError> {
        self.resolved(Kind::KnowledgeBase, corpus)?
            .ok_or_else(|| self.no_corpus(corpus))
    }

    /// The ID `reference` (an ID or a name of `kind`) stands for, looked up
    /// in the store when the session has not read its entry yet.
    fn resolved(&self, kind: Kind, reference: &str) -> Result<Option<String>, StagingError> {
        if let Some(id) = resolve(&self.index.borrow(), kind, reference) {
            return Ok(Some(id));
        }
        self.fetch(IndexKeys {
            ids: vec![reference.to_string()],
            names: vec![(kind, reference.to_string())],
            ..IndexKeys::default()
        })?;
        Ok(resolve(&self.index.borrow(), kind, reference))
    }

    /// Read the index entries `keys` name into the session's index.
    fn fetch(&self, keys: IndexKeys) -> Result<(), StagingError> {
        let (_, found) = self.store.index_entries(self.tenant, &keys)?;
        self.add_entries(found);
        Ok(())
    }

    /// Add entries to the session's index, each ID once.
    fn add_entries(&self, found: Vec<IndexEntry>) {
        let mut index = self.index.borrow_mut();
        let mut entries = std::mem::take(&mut *index).into_entries();
        let known: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
        let mut seen = HashSet::new();
        entries.extend(
            found
                .into_iter()
                .filter(|e| !known.contains(&e.id) && seen.insert(e.id.clone())),
        );
        *index = Index::new(entries);
    }

    /// Read what the edited drafts name (themselves, their names and their
    /// references) and the sub-agent and sub-workflow closure the cycle
    /// check walks, so that checking them reads nothing else.
    fn fetch_for_checks(&self, edited: &[&Resource]) -> Result<(), StagingError> {
        let mut keys = IndexKeys::default();
        for r in edited {
            keys.ids.extend(r.id().map(str::to_string));
            keys.names.push((r.kind(), r.name().to_string()));
            for (site, reference) in r.refs() {
                keys.names.push((site.target, reference.clone()));
                keys.ids.push(reference);
            }
        }
        let (_, mut found) = self.store.index_entries(self.tenant, &keys)?;
        found.extend(self.index.borrow().entries().iter().cloned());
        crate::service::partial_plan::add_closure(self.store, self.tenant, &mut found)?;
        self.add_entries(found);
        Ok(())
    }

    /// The draft of `id`, read once, for editing.
    fn other(&mut self, id: &str) -> Result<Option<&mut Resource>, StagingError> {
        if !self.others.contains_key(id) {
            let Some(r) = self.store.drafts(self.tenant, &[id.to_string()])?.pop() else {
                return Ok(None);
            };
            self.others.insert(id.to_string(), (r.clone(), r));
        }
        Ok(self.others.get_mut(id).map(|(_, r)| r))
    }

    /// The tool (attached to the agent) whose actions an edit changes.
    fn attached_tool(&mut self, tool: &str) -> Result<&mut ToolSpec, StagingError> {
        if tool.starts_with(BUILTIN_PREFIX) {
            return Err(StagingError::bad(
                "tool",
                "a built-in tool has no editable actions",
            ));
        }
        let id = self.tool_id(tool)?;
        if !self.spec.tools.contains(&id) {
            return Err(StagingError::ToolNotAttached {
                agent: self.agent_name(),
                tool: tool.to_string(),
            });
        }
        let err = self.no_tool(tool);
        match self.other(&id)?.map(|r| &mut r.spec) {
            Some(Spec::Tool(t)) => Ok(t),
            _ => Err(err),
        }
    }

    fn action<'t>(
        spec: &'t mut ToolSpec,
        tool: &str,
        action: &str,
    ) -> Result<&'t mut crate::domain::model::ToolAction, StagingError> {
        spec.actions
            .iter_mut()
            .find(|a| a.name == action)
            .ok_or_else(|| StagingError::NoAction {
                tool: tool.to_string(),
                action: action.to_string(),
            })
    }

    fn apply(&mut self, edit: &StagingEdit) -> Result<(), StagingError> {
        match edit {
            StagingEdit::UpdateAgent(patch) => self.update_agent(patch),
            StagingEdit::CreateInstructions { name, text } => {
                self.set_instruction(name.as_deref(), text, true)
            }
            StagingEdit::UpdateInstructions { name, text } => {
                self.set_instruction(name.as_deref(), text, false)
            }
            StagingEdit::DeleteInstruction { instruction_id } => {
                let missing = || StagingError::NoInstruction {
                    agent: self.meta.name.clone(),
                    instruction: instruction_id.clone(),
                };
                if instruction_id == MAIN_INSTRUCTION {
                    if self.spec.instructions.is_none() {
                        return Err(missing());
                    }
                    self.spec.instructions = None;
                } else {
                    let before = self.spec.snippets.len();
                    self.spec.snippets.retain(|s| &s.name != instruction_id);
                    if self.spec.snippets.len() == before {
                        return Err(missing());
                    }
                }
                Ok(())
            }
            StagingEdit::EnableTool { tool } => {
                let id = self.tool_id(tool)?;
                if !self.spec.tools.contains(&id) {
                    self.spec.tools.push(id);
                }
                Ok(())
            }
            StagingEdit::DisableTool { tool } => {
                let id = match self.tool_id(tool) {
                    Ok(id) => id,
                    // A dangling entry can still be taken out.
                    Err(_) if self.spec.tools.contains(tool) => tool.clone(),
                    Err(e) => return Err(e),
                };
                self.spec.tools.retain(|t| *t != id);
                Ok(())
            }
            StagingEdit::UpdateToolAction {
                tool,
                action,
                config,
            } => {
                if !config.is_object() {
                    return Err(StagingError::bad("config", "expected a JSON object"));
                }
                let spec = self.attached_tool(tool)?;
                let a = Self::action(spec, tool, action)?;
                let mut current = FreeForm::object_of(&a.config);
                merge_patch(&mut current, config);
                a.config = decode(current, "config")?;
                Ok(())
            }
            StagingEdit::SetToolActionEnabled {
                tool,
                action,
                enabled,
            } => {
                let spec = self.attached_tool(tool)?;
                Self::action(spec, tool, action)?.enabled = *enabled;
                Ok(())
            }
            StagingEdit::ConnectCorpora { corpora } => {
                for c in corpora {
                    let id = self.corpus_id(c)?;
                    if !self.spec.knowledge_bases.contains(&id) {
                        self.spec.knowledge_bases.push(id);
                    }
                }
                Ok(())
            }
            StagingEdit::DisconnectCorpora { corpora } => {
                let mut ids = HashSet::new();
                for c in corpora {
                    match self.corpus_id(c) {
                        Ok(id) => ids.insert(id),
                        Err(_) if self.spec.knowledge_bases.contains(c) => ids.insert(c.clone()),
                        Err(e) => return Err(e),
                    };
                }
                self.spec.knowledge_bases.retain(|k| !ids.contains(k));
                Ok(())
            }
            StagingEdit::UpdateCorpus { corpus, patch } => self.update_corpus(corpus, patch),
            StagingEdit::PatchGuardrails(patches) => self.patch_guardrails(patches),
            StagingEdit::SetAccess { access } => {
                if !ACCESS_VALUES.contains(&access.as_str()) {
                    return Err(StagingError::bad(
                        "access",
                        format!("expected one of {}", ACCESS_VALUES.join(", ")),
                    ));
                }
                self.spec.access = Some(access.clone());
                Ok(())
            }
            StagingEdit::SetTags { tags } => {
                if let Some(i) = tags.iter().position(|t| t.trim().is_empty()) {
                    return Err(StagingError::bad(format!("tags[{i}]"), "must not be empty"));
                }
                self.spec.tags = tags.clone();
                Ok(())
            }
            StagingEdit::SharePointFolder(edit) => self.edit_folder(edit),
        }
    }

    /// Connect, change or disconnect the agent's SharePoint folder.
    fn edit_folder(&mut self, edit: &FolderEdit) -> Result<(), StagingError> {
        let agent = self.meta.name.clone();
        let current = self.spec.sharepoint_folder.take();
        let (mut base, patch) = match (edit, current) {
            (FolderEdit::Delete, Some(_)) => return Ok(()),
            (FolderEdit::Create(_), Some(_)) => {
                return Err(StagingError::SharePointFolderExists { agent })
            }
            (FolderEdit::Update(_) | FolderEdit::Delete, None) => {
                return Err(StagingError::NoSharePointFolder { agent })
            }
            (FolderEdit::Create(body), None) => (Value::Object(Map::new()), body),
            (FolderEdit::Update(body), Some(folder)) => (
                serde_json::to_value(folder)
                    .map_err(|e| StagingError::bad(FOLDER, e.to_string()))?,
                body,
            ),
        };
        if !patch.is_object() {
            return Err(StagingError::bad(FOLDER, "expected a JSON object"));
        }
        merge_patch(&mut base, patch);
        self.spec.sharepoint_folder = Some(decode(base, FOLDER)?);
        Ok(())
    }

    fn update_agent(&mut self, patch: &Value) -> Result<(), StagingError> {
        let Value::Object(fields) = patch else {
            return Err(StagingError::bad("$", "expected a JSON object"));
        };
        let mut spec_patch = Map::new();
        let mut rename = None;
        for (k, v) in fields {
            if k == "name" {
                let Some(n) = v.as_str() else {
                    return Err(StagingError::bad("name", "wrong type, expected a string"));
                };
                rename = Some(n.to_string());
            } else if NOT_EDITABLE.contains(&k.as_str()) {
                return Err(StagingError::bad(k.clone(), "not editable"));
            } else {
                spec_patch.insert(k.clone(), v.clone());
            }
        }
        let mut json = serde_json::to_value(&self.spec).map_err(|e| {
            StagingError::bad("$", format!("the agent does not encode: {}", reason_of(&e)))
        })?;
        merge_patch(&mut json, &Value::Object(spec_patch));
        self.spec = decode(json, "")?;
        if let Some(n) = rename {
            self.meta.name = n;
        }
        Ok(())
    }

    fn set_instruction(
        &mut self,
        name: Option<&str>,
        text: &str,
        create: bool,
    ) -> Result<(), StagingError> {
        let name = name.unwrap_or(MAIN_INSTRUCTION);
        if name.trim().is_empty() {
            return Err(StagingError::bad("name", "must not be empty"));
        }
        let agent = self.meta.name.clone();
        let exists = if name == MAIN_INSTRUCTION {
            self.spec.instructions.is_some()
        } else {
            self.spec.snippets.iter().any(|s| s.name == name)
        };
        match (create, exists) {
            (true, true) => {
                return Err(StagingError::InstructionExists {
                    agent,
                    instruction: name.to_string(),
                })
            }
            (false, false) => {
                return Err(StagingError::NoInstruction {
                    agent,
                    instruction: name.to_string(),
                })
            }
            _ => {}
        }
        if name == MAIN_INSTRUCTION {
            self.spec.instructions = Some(text.to_string());
        } else if let Some(s) = self.spec.snippets.iter_mut().find(|s| s.name == name) {
            s.text = text.to_string();
        } else {
            self.spec.snippets.push(Snippet {
                name: name.to_string(),
                text: text.to_string(),
            });
        }
        Ok(())
    }

    fn update_corpus(&mut self, corpus: &str, patch: &Value) -> Result<(), StagingError> {
        let Value::Object(fields) = patch else {
            return Err(StagingError::bad("patch", "expected a JSON object"));
        };
        if let Some(k) = fields.keys().find(|k| !CORPUS_FIELDS.contains(&k.as_str())) {
            return Err(StagingError::bad(
                k.clone(),
                format!("not editable; expected one of {}", CORPUS_FIELDS.join(", ")),
            ));
        }
        let id = self.corpus_id(corpus)?;
        if !self.spec.knowledge_bases.contains(&id) {
            return Err(StagingError::CorpusNotConnected {
                agent: self.agent_name(),
                corpus: corpus.to_string(),
            });
        }
        let err = self.no_corpus(corpus);
        let Some(Spec::KnowledgeBase(kb)) = self.other(&id)?.map(|r| &mut r.spec) else {
            return Err(err);
        };
        let mut json = serde_json::to_value(&*kb).map_err(|e| {
            StagingError::bad(
                "$",
                format!("the knowledge base does not encode: {}", reason_of(&e)),
            )
        })?;
        merge_patch(&mut json, patch);
        **kb = decode::<KnowledgeBaseSpec>(json, "")?;
        Ok(())
    }

    fn patch_guardrails(&mut self, patches: &[GuardrailPatch]) -> Result<(), StagingError> {
        for (i, p) in patches.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(StagingError::bad(
                    format!("[{i}].name"),
                    "must not be empty",
                ));
            }
            let config = match &p.config {
                None => None,
                Some(Value::Null) => Some(BTreeMap::new()),
                Some(v @ Value::Object(_)) => Some(decode(v.clone(), &format!("[{i}].config"))?),
                Some(_) => {
                    return Err(StagingError::bad(
                        format!("[{i}].config"),
                        "wrong type, expected a JSON object",
                    ))
                }
            };
            match self.spec.guardrails.iter_mut().find(|g| g.name == p.name) {
                Some(g) => {
                    if let Some(e) = p.enabled {
                        g.enabled = e;
                    }
                    if let Some(c) = config {
                        g.config = c;
                    }
                }
                None => self.spec.guardrails.push(Guardrail {
                    name: p.name.clone(),
                    enabled: p.enabled.unwrap_or(true),
                    config: config.unwrap_or_default(),
                }),
            }
        }
        Ok(())
    }

    /// Check one edited draft as a tree would be checked, resolving
    /// references given by name: every problem, none of them fatal alone.
    fn check(&self, r: &mut Resource) -> Vec<Diagnostic> {
        let id = r.id().unwrap_or_default().to_string();
        let kind = r.kind();
        let path = resource_path(kind, r.name());
        let mut problems = Vec::new();
        let name_problem = |code, message: String| {
            Diagnostic::error(path.clone(), code, message).in_field("metadata.name")
        };
        if !is_valid_name(r.name()) {
            problems.push(name_problem(
                "invalid-name",
                "expected lower-case letters, digits, `-`, `_` and `.`, 1 to 128 long".into(),
            ));
        }
        let index = self.index.borrow();
        if index.by_name(kind, r.name()).is_some_and(|e| e.id != id) {
            problems.push(name_problem(
                "duplicate-name",
                format!("a {kind} named `{}` exists already", r.name()),
            ));
        }
        let no_lines = |_: &str, _: &str, _: Option<&str>| None;
        let index: &Index = &index;
        let lookup = |kind: Kind, reference: &str| resolve(index, kind, reference);
        let suggest = |kind: Kind, reference: &str| {
            let names = index
                .entries()
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| e.name.as_str());
            crate::domain::suggest::did_you_mean(reference, names)
        };
        problems.extend(resolve_references(r, &path, &lookup, &suggest, &no_lines));
        problems.extend(own_field_problems(&path, r, &no_lines));
        problems
    }

    /// Check each edited draft (`before`, `after`), resolving the
    /// references `after` gives by name: the drafts that still differ,
    /// and every problem.
    fn checked(
        &self,
        pairs: Vec<(Resource, Resource)>,
    ) -> Result<(Vec<Resource>, Vec<Diagnostic>), StagingError> {
        let mut changed = Vec::new();
        let mut problems = Vec::new();
        for (before, mut after) in pairs {
            problems.extend(self.check(&mut after));
            if content_hash(&before) != content_hash(&after) {
                changed.push(after);
            }
        }
        problems.extend(self.cycles(&changed));
        problems.extend(undecryptable_edits(self.store, self.tenant, &changed)?);
        Ok((changed, problems))
    }

    /// Sub-agent cycles through the edited drafts (stored form), as a tree's are found.
    fn cycles(&self, edited: &[Resource]) -> Vec<Diagnostic> {
        let decoded = as_desired(edited);
        let ids: HashSet<&str> = edited.iter().filter_map(Resource::id).collect();
        let index = self.index.borrow();
        let graph = ReferenceGraph::around(&decoded, &index, &|id| !ids.contains(id));
        let mut names = NameTable::of_index(&index);
        for r in edited {
            names.insert(r.kind(), r.name(), r.id().unwrap_or_default());
        }
        graph.cycles(&names, &|_, _, _| None)
    }
}

/// The `ENC[age,…]` values of the edited drafts that do not decrypt with the
/// tenant's key, as a tree's are found.
fn undecryptable_edits(
    store: &dyn Store,
    tenant: &str,
    edited: &[Resource],
) -> Result<Vec<Diagnostic>, StagingError> {
    Ok(pipeline::undecryptable(
        store,
        tenant,
        &as_desired(edited),
        &|_, _, _| None,
    )?)
}

/// Edited drafts as a tree's decoded resources, at the paths their files would have.
fn as_desired(edited: &[Resource]) -> Vec<Desired> {
    edited
        .iter()
        .map(|r| Desired {
            path: resource_path(r.kind(), r.name()),
            hash: String::new(),
            resource: Box::new(r.clone()),
        })
        .collect()
}

/// Apply one staging edit to the draft of `agent` (ID or name) in `tenant`,
/// in one transaction; production is untouched.
///
/// The drafts the edit changes are checked (types, names, references,
/// sub-agent cycles, plain-text secrets) before anything is written; an
/// edit that changes nothing writes nothing.
pub fn apply_edit(
    store: &mut dyn Store,
    tenant: &str,
    agent: &str,
    edit: &StagingEdit,
) -> Result<EditOutcome, StagingError> {
    edits_as(store, None, tenant, agent, std::slice::from_ref(edit))
}

/// Several staging edits in order, as one: checked together, written in
/// one transaction, or nothing written when any of them is refused.
pub fn apply_edits(
    store: &mut dyn Store,
    tenant: &str,
    agent: &str,
    edits: &[StagingEdit],
) -> Result<EditOutcome, StagingError> {
    edits_as(store, None, tenant, agent, edits)
}

/// [`apply_edits`], recording `by` as the last editor of the drafts they change.
fn edits_as(
    store: &mut dyn Store,
    by: Option<&str>,
    tenant: &str,
    agent: &str,
    edits: &[StagingEdit],
) -> Result<EditOutcome, StagingError> {
    let revision = store.tenant_revision(tenant)?;
    let no_agent = || StagingError::NoAgent {
        tenant: tenant.to_string(),
        agent: agent.to_string(),
    };
    let index = agent_entries(&*store, tenant, agent)?;
    let agent_id = resolve(&index, Kind::Agent, agent).ok_or_else(no_agent)?;
    let original = store
        .drafts(tenant, std::slice::from_ref(&agent_id))?
        .pop()
        .ok_or_else(no_agent)?;
    let Spec::Agent(spec) = &original.spec else {
        return Err(no_agent());
    };
    let mut session = Session {
        store: &*store,
        tenant,
        index: std::cell::RefCell::new(index),
        agent_id: agent_id.clone(),
        meta: original.metadata.clone(),
        spec: (**spec).clone(),
        others: BTreeMap::new(),
    };
    for edit in edits {
        session.apply(edit)?;
    }
    let mut edited = Resource {
        metadata: session.meta.clone(),
        spec: Spec::Agent(Box::new(session.spec.clone())),
        content: original.content.clone(),
    };
    edited.metadata.id = Some(session.agent_id.clone());
    let pairs: Vec<(Resource, Resource)> = std::iter::once((original.clone(), edited))
        .chain(std::mem::take(&mut session.others).into_values())
        .filter(|(before, after)| content_hash(before) != content_hash(after))
        .collect();
    session.fetch_for_checks(&pairs.iter().map(|(_, after)| after).collect::<Vec<_>>())?;
    let (mut changed, mut problems) = session.checked(pairs.clone())?;
    if !problems.is_empty() {
        // Problems are reported against the whole index, whose names the
        // hints suggest from; the partial one found every entry checked.
        *session.index.borrow_mut() = session.store.index(tenant)?.1;
        (changed, problems) = session.checked(pairs)?;
    }
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(StagingError::Invalid { problems });
    }
    let agent_name = session.meta.name.clone();
    let index = session.index.into_inner();
    let mut outcome = EditOutcome {
        tenant: tenant.to_string(),
        agent_id,
        agent_name,
        changed: !changed.is_empty(),
        resources: changed
            .iter()
            .map(|r| Named {
                kind: r.kind(),
                name: r.name().to_string(),
                id: r.id().unwrap_or_default().to_string(),
            })
            .collect(),
        revision,
    };
    if changed.is_empty() {
        return Ok(outcome);
    }
    let mut names = NameTable::of_index(&index);
    for r in &changed {
        if let Some(id) = r.id() {
            names.insert(r.kind(), r.name(), id);
        }
    }
    let mut batch = WriteBatch {
        base_revision: revision,
        actor: by.map(str::to_string),
        ..WriteBatch::default()
    };
    for r in &changed {
        let hash = pipeline::canonical_unit_hash(&render_names(r, &names))?;
        batch.upserts.push((BatchDraft::Borrowed(r), hash));
    }
    outcome.revision = store.write(tenant, &batch)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    use crate::backend::store::{PublishStore, ResourceStore};
    use crate::domain::publish::StagingDiff;
    use crate::service::access::Actor;
    use crate::service::publishing::{
        publish_diff, publish_untagged, publishes_of, revert, staging_diff_for,
    };
    use serde_json::json;

    const T: &str = "acme-dev";
    const NOW: &str = "2026-01-01T00:00:00Z";

    /// A store with the acme-dev fixture applied and published once.
    fn setup() -> (tempfile::TempDir, SqliteStore) {
        let (tmp, mut store) = pipeline::tests::applied();
        publish_untagged(&mut store, T, None, "first", "dora", NOW)
            .unwrap()
            .unwrap();
        (tmp, store)
    }

    fn paths(d: &StagingDiff) -> Vec<String> {
        d.resources
            .iter()
            .flat_map(|r| r.changes.iter().map(|c| c.path.clone()))
            .collect()
    }

    fn bad_field(e: StagingError) -> String {
        assert_eq!(e.status_kind(), ErrorKind::BadRequest, "{e}");
        match e {
            StagingError::BadField { field, .. } => field,
            StagingError::Invalid { problems } => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                let field = problems[0].field.clone().unwrap_or_default();
                let field = field.strip_prefix("metadata.").unwrap_or(&field);
                field.strip_prefix("spec.").unwrap_or(field).to_string()
            }
            other => panic!("expected BadField or Invalid, got {other:?}"),
        }
    }

    #[test]
    fn stored_documents_decode_the_same_from_text_and_from_a_tree() {
        use crate::domain::plan::{resource_from_document, resource_from_document_text};
        let (_tmp, store) = setup();
        let drafts = store.all_drafts(T).unwrap();
        assert!(drafts.len() > 10);
        for r in drafts.iter().map(|r| Resource {
            content: None,
            ..r.clone()
        }) {
            let text = String::from_utf8(crate::domain::state::canonical_json(&r)).unwrap();
            let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(resource_from_document_text(&text).unwrap(), r);
            assert_eq!(resource_from_document(&tree, None).unwrap(), r);
        }
        for (bad, says) in [
            (
                r#"{"metadata": {"id": "x", "name": "x"}, "spec": {}}"#,
                "missing kind",
            ),
            (r#"{"kind": "Gadget", "spec": {}}"#, "unknown kind Gadget"),
            (
                r#"{"kind": "Tool", "metadata": 7, "spec": {}}"#,
                "metadata: ",
            ),
            (
                r#"{"kind": "Tool", "metadata": {"id": "x", "name": "x"}, "spec": 7}"#,
                "spec: ",
            ),
        ] {
            let tree: serde_json::Value = serde_json::from_str(bad).unwrap();
            // The same message; the text's also says where in it.
            let from_text = resource_from_document_text(bad).unwrap_err();
            let from_tree = resource_from_document(&tree, None).unwrap_err();
            assert!(
                from_text.starts_with(&from_tree),
                "{from_text} / {from_tree}"
            );
            assert!(from_text.starts_with(says), "{from_text}");
        }
    }

    #[test]
    fn an_edit_with_two_problems_reports_both_and_writes_nothing() {
        let (_tmp, mut store) = setup();
        let before = store.revision().unwrap();
        let e = apply_edit(
            &mut store,
            T,
            "support-bot",
            &StagingEdit::UpdateAgent(json!({
                "tools": ["nope"],
                "subAgents": ["support-bot"],
            })),
        )
        .unwrap_err();
        assert_eq!(e.status_kind(), ErrorKind::BadRequest);
        let StagingError::Invalid { problems } = &e else {
            panic!("expected Invalid, got {e:?}");
        };
        let codes: Vec<&str> = problems.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            ["reference-cycle", "dangling-reference"],
            "{problems:?}"
        );
        let text = e.to_string();
        assert_eq!(text.lines().count(), 3, "one line per problem:\n{text}");
        assert!(
            text.contains("spec.tools[0]") && text.contains("`nope`"),
            "{text}"
        );
        assert_eq!(store.revision().unwrap(), before, "nothing was written");
    }

    #[test]
    fn edits_go_in_together_or_not_at_all_and_snippet_names_are_checked() {
        let (_tmp, mut store) = setup();
        let before = store.revision().unwrap();
        let edits = [
            StagingEdit::SetTags {
                tags: vec!["first".into()],
            },
            StagingEdit::UpdateAgent(json!({"snippets": [
                {"name": "a", "text": "1"}, {"name": "a", "text": "2"}, {"name": " ", "text": "3"}
            ]})),
        ];
        let e = apply_edits(&mut store, T, "support-bot", &edits).unwrap_err();
        let StagingError::Invalid { problems } = &e else {
            panic!("expected Invalid, got {e:?}");
        };
        let fields: Vec<(&str, &str)> = problems
            .iter()
            .map(|d| (d.field.as_deref().unwrap_or(""), d.code))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.snippets[1].name", "duplicate-name"),
                ("spec.snippets[2].name", "empty-name")
            ]
        );
        assert_eq!(
            store.revision().unwrap(),
            before,
            "the tags were not written either"
        );
        let ok = apply_edits(&mut store, T, "support-bot", &edits[..1]).unwrap();
        assert!(ok.changed);
    }

    #[test]
    fn an_agent_diff_read_from_its_closure_equals_the_whole_tenant_diff_scoped() {
        let (_tmp, mut store) = setup();
        apply_edit(
            &mut store,
            T,
            "support-bot",
            &StagingEdit::UpdateAgent(json!({"description": "changed"})),
        )
        .unwrap();
        apply_edit(
            &mut store,
            T,
            "support-bot",
            &StagingEdit::UpdateToolAction {
                tool: "crm-lookup".into(),
                action: "list-orders".into(),
                config: json!({"limit": 3}),
            },
        )
        .unwrap();
        apply_edit(
            &mut store,
            T,
            "billing-bot",
            &StagingEdit::SetTags {
                tags: vec!["x".into()],
            },
        )
        .unwrap();
        let drafts = store.all_drafts(T).unwrap();
        let production = store.production(T).unwrap();
        for agent in ["support-bot", "billing-bot", "refund-bot"] {
            let scope =
                crate::service::publishing::agent_scope(T, agent, &drafts, &production).unwrap();
            let whole = crate::domain::publish::staging_diff(&drafts, &production, Some(&scope));
            let read = staging_diff_for(&store, &Actor::named("ada"), T, Some(agent)).unwrap();
            assert_eq!(
                serde_json::to_value(&read).unwrap(),
                serde_json::to_value(&whole).unwrap(),
                "{agent}"
            );
        }
    }

    /// An agent is found by ID or by name from its own index rows, not the
    /// tenant's whole index.
    #[test]
    fn an_agent_is_found_from_its_own_index_rows() {
        let (_tmp, store) = setup();
        let before = store.rows_read();
        let id = find_agent_id(&store, T, "billing-bot").unwrap();
        assert_eq!(find_agent_id(&store, T, &id).unwrap(), id);
        let read = store.rows_read() - before;
        assert!(read <= 2, "{read} index rows read to find one agent twice");
        assert!(store.resource_count(T).unwrap() > 10);
        assert!(matches!(
            find_agent_id(&store, T, "no-such-agent"),
            Err(StagingError::NoAgent { .. })
        ));
    }

    /// An edit reads the index entries of what it touches, not the
    /// tenant's whole index; a refused edit reads the whole index for its
    /// hints.
    #[test]
    fn an_edit_reads_only_the_index_entries_it_touches() {
        let (_tmp, mut store) = setup();
        let total = store.resource_count(T).unwrap() as u64;
        let read = |store: &mut SqliteStore, tools: Value| {
            let before = store.rows_read();
            let edit = StagingEdit::UpdateAgent(json!({ "tools": tools }));
            let done = apply_edit(store, T, "refund-bot", &edit);
            (done, store.rows_read() - before)
        };
        let (done, rows) = read(&mut store, json!(["crm-lookup", "order-status"]));
        assert!(done.unwrap().changed);
        assert!(rows < total / 2, "{rows} rows read of {total}");
        let (refused, rows) = read(&mut store, json!(["order-statsu"]));
        let Err(StagingError::Invalid { problems }) = refused else {
            panic!("expected Invalid, got {refused:?}");
        };
        let hint = problems[0].hint.as_deref().unwrap_or_default();
        assert!(hint.contains("did you mean `order-status`"), "{problems:?}");
        assert!(rows >= total, "{rows} rows read of {total}");
    }

    #[test]
    fn every_edit_changes_staging_only() {
        let (_tmp, mut store) = setup();
        let id = find_agent_id(&store, T, "billing-bot").unwrap();
        let edits: Vec<(StagingEdit, &str)> = vec![
            (
                StagingEdit::UpdateAgent(
                    json!({"description": "Bills.", "model": {"temperature": 0.5}}),
                ),
                "spec.model.temperature",
            ),
            (
                StagingEdit::CreateInstructions {
                    name: Some("greeting".into()),
                    text: "Hello.".into(),
                },
                "spec.snippets",
            ),
            (
                StagingEdit::UpdateInstructions {
                    name: None,
                    text: "Be brief.".into(),
                },
                "spec.instructions",
            ),
            (
                StagingEdit::UpdateInstructions {
                    name: Some("greeting".into()),
                    text: "Hi.".into(),
                },
                "spec.snippets",
            ),
            (
                StagingEdit::DeleteInstruction {
                    instruction_id: "greeting".into(),
                },
                "spec.snippets",
            ),
            (
                StagingEdit::DeleteInstruction {
                    instruction_id: MAIN_INSTRUCTION.into(),
                },
                "spec.instructions",
            ),
            (
                StagingEdit::CreateInstructions {
                    name: None,
                    text: "Again.".into(),
                },
                "spec.instructions",
            ),
            (
                StagingEdit::EnableTool {
                    tool: "order-status".into(),
                },
                "spec.tools",
            ),
            (
                StagingEdit::EnableTool {
                    tool: "builtin/web-search".into(),
                },
                "spec.tools",
            ),
            (
                StagingEdit::DisableTool {
                    tool: "crm-lookup".into(),
                },
                "spec.tools",
            ),
            (
                StagingEdit::UpdateToolAction {
                    tool: "billing-invoices".into(),
                    action: "download-pdf".into(),
                    config: json!({"linkTtlSeconds": 60, "format": "pdf"}),
                },
                "spec.actions",
            ),
            (
                StagingEdit::SetToolActionEnabled {
                    tool: "billing-invoices".into(),
                    action: "list-invoices".into(),
                    enabled: false,
                },
                "spec.actions",
            ),
            (
                StagingEdit::ConnectCorpora {
                    corpora: vec!["policies-kb".into(), "billing-kb".into()],
                },
                "spec.knowledgeBases",
            ),
            (
                StagingEdit::DisconnectCorpora {
                    corpora: vec!["billing-kb".into()],
                },
                "spec.knowledgeBases",
            ),
            (
                StagingEdit::UpdateCorpus {
                    corpus: "policies-kb".into(),
                    patch: json!({"chunking": {"size": 500}, "description": "Policies."}),
                },
                "spec.chunking.size",
            ),
            (
                StagingEdit::PatchGuardrails(vec![
                    GuardrailPatch {
                        name: "pii-redaction".into(),
                        enabled: Some(false),
                        config: None,
                    },
                    GuardrailPatch {
                        name: "toxicity".into(),
                        enabled: None,
                        config: Some(json!({"threshold": 0.8})),
                    },
                ]),
                "spec.guardrails",
            ),
            (
                StagingEdit::SetAccess {
                    access: "public".into(),
                },
                "spec.access",
            ),
            (
                StagingEdit::SetTags {
                    tags: vec!["billing".into(), "finance".into()],
                },
                "spec.tags",
            ),
            (
                StagingEdit::UpdateAgent(
                    json!({"name": "billing-agent", "tools": ["crm-lookup", "billing-invoices"]}),
                ),
                "metadata.name",
            ),
        ];
        for (n, (edit, path)) in edits.into_iter().enumerate() {
            let production = store.production(T).unwrap();
            let before = store.revision().unwrap();
            let out = apply_edit(&mut store, T, &id, &edit).unwrap();
            assert!(out.changed, "edit {n} changed nothing: {edit:?}");
            assert!(out.revision > before, "edit {n}");
            assert_eq!(out.agent_id, id);
            assert_eq!(store.production(T).unwrap(), production, "edit {n}");
            let d = staging_diff_for(&store, &Actor::named("ada"), T, Some(&id)).unwrap();
            assert!(
                paths(&d).iter().any(|p| p.starts_with(path)),
                "edit {n}: no change at {path} in {:?}",
                paths(&d)
            );
            publish_untagged(&mut store, T, Some(&id), "edit", "dora", NOW)
                .unwrap()
                .unwrap();
        }
        let Spec::Agent(a) = &store.drafts(T, std::slice::from_ref(&id)).unwrap()[0].spec else {
            panic!("not an agent");
        };
        assert_eq!(a.instructions.as_deref(), Some("Again."));
        assert_eq!(a.access.as_deref(), Some("public"));
        assert_eq!(a.model.temperature, Some(0.5));
        assert_eq!(a.guardrails.len(), 2);
        assert!(
            a.tools.iter().all(|t| t.starts_with("tol_")),
            "{:?}",
            a.tools
        );
        assert_eq!(find_agent_id(&store, T, "billing-agent").unwrap(), id);
        // The whole tenant still plans clean from its own export.
        let tree = pipeline::export_tree(&store, T).unwrap();
        let tp = pipeline::plan_tree(&store, T, &tree, Default::default()).unwrap();
        assert!(!crate::domain::diagnostic::has_errors(&tp.diagnostics));
        assert_eq!(tp.plan.unwrap().summary.update, 0);
    }

    #[test]
    fn unknown_names_are_not_found() {
        let (_tmp, mut store) = setup();
        let e = apply_edit(
            &mut store,
            T,
            "nobody",
            &StagingEdit::SetTags { tags: vec![] },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::NoAgent { .. }), "{e:?}");
        assert_eq!(e.status_kind(), ErrorKind::NotFound);
        let edit = |s: &mut SqliteStore, e: StagingEdit| apply_edit(s, T, "billing-bot", &e);
        let e = edit(
            &mut store,
            StagingEdit::EnableTool {
                tool: "nope".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::NoTool { .. }), "{e:?}");
        let e = edit(
            &mut store,
            StagingEdit::ConnectCorpora {
                corpora: vec!["nope".into()],
            },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::NoCorpus { .. }), "{e:?}");
        assert_eq!(e.status_kind(), ErrorKind::NotFound);
        let e = edit(
            &mut store,
            StagingEdit::UpdateToolAction {
                tool: "billing-invoices".into(),
                action: "nope".into(),
                config: json!({}),
            },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::NoAction { .. }), "{e:?}");
        let e = edit(
            &mut store,
            StagingEdit::SetToolActionEnabled {
                tool: "order-status".into(),
                action: "x".into(),
                enabled: true,
            },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::ToolNotAttached { .. }), "{e:?}");
        let e = edit(
            &mut store,
            StagingEdit::DeleteInstruction {
                instruction_id: "nope".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::NoInstruction { .. }), "{e:?}");
        let e = edit(
            &mut store,
            StagingEdit::CreateInstructions {
                name: None,
                text: "x".into(),
            },
        )
        .unwrap_err();
        assert_eq!(e.status_kind(), ErrorKind::Conflict);
        let e = edit(
            &mut store,
            StagingEdit::UpdateCorpus {
                corpus: "policies-kb".into(),
                patch: json!({"description": "x"}),
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, StagingError::CorpusNotConnected { .. }),
            "{e:?}"
        );
        let e = revert(&mut store, &Actor::named("ada"), T, "chg_nope", true).unwrap_err();
        assert!(matches!(e, StagingError::NoPublish { .. }), "{e:?}");
        assert_eq!(e.status_kind(), ErrorKind::NotFound);
    }

    #[test]
    fn bad_fields_are_named() {
        let (_tmp, mut store) = setup();
        let before = store.revision().unwrap();
        let mut edit = |e: StagingEdit| apply_edit(&mut store, T, "billing-bot", &e).unwrap_err();
        let up = |v: Value| StagingEdit::UpdateAgent(v);
        let e = edit(up(json!({"model": {"temperature": "hot"}})));
        assert!(!e.to_string().contains("hot"), "{e}");
        assert_eq!(bad_field(e), "model.temperature");
        assert_eq!(bad_field(edit(up(json!({"colour": "red"})))), "colour");
        assert_eq!(
            bad_field(edit(up(json!({"model": {"colour": "red"}})))),
            "model.colour"
        );
        assert_eq!(bad_field(edit(up(json!({"id": "agt_x"})))), "id");
        assert_eq!(
            bad_field(edit(up(json!({"syncedFrom": null})))),
            "syncedFrom"
        );
        assert_eq!(bad_field(edit(up(json!({"name": 3})))), "name");
        assert_eq!(bad_field(edit(up(json!({"name": "Bad Name"})))), "name");
        assert_eq!(bad_field(edit(up(json!({"name": "refund-bot"})))), "name");
        assert_eq!(bad_field(edit(up(json!({"type": null})))), "type");
        assert_eq!(bad_field(edit(up(json!({"tools": ["nope"]})))), "tools[0]");
        assert_eq!(
            bad_field(edit(up(json!({"knowledgeBases": ["crm-lookup"]})))),
            "knowledgeBases[0]"
        );
        assert_eq!(bad_field(edit(up(json!(["x"])))), "$");
        let e = edit(StagingEdit::SetAccess {
            access: "tenant".into(),
        });
        assert_eq!(bad_field(e), "access");
        let e = edit(StagingEdit::UpdateCorpus {
            corpus: "billing-kb".into(),
            patch: json!({"documents": []}),
        });
        assert_eq!(bad_field(e), "documents");
        let e = edit(StagingEdit::UpdateCorpus {
            corpus: "billing-kb".into(),
            patch: json!({"chunking": {"size": -1}}),
        });
        assert_eq!(bad_field(e), "chunking.size");
        let e = edit(StagingEdit::UpdateToolAction {
            tool: "billing-invoices".into(),
            action: "download-pdf".into(),
            config: json!({"apiKey": "sk-live-0123456789abcdefghijklmnop"}),
        });
        let field = bad_field(e);
        assert!(field.contains("apiKey"), "{field}");
        assert_eq!(store.revision().unwrap(), before, "nothing was written");
    }

    #[test]
    fn sub_agent_cycles_are_refused() {
        let (_tmp, mut store) = setup();
        let e = apply_edit(
            &mut store,
            T,
            "refund-bot",
            &StagingEdit::UpdateAgent(json!({"subAgents": ["support-bot"]})),
        )
        .unwrap_err();
        assert_eq!(bad_field(e), "subAgents");
        let e = apply_edit(
            &mut store,
            T,
            "support-bot",
            &StagingEdit::UpdateAgent(json!({"subAgents": ["refund-bot", "support-bot"]})),
        )
        .unwrap_err();
        assert_eq!(bad_field(e), "subAgents");
    }

    #[test]
    fn an_edit_that_changes_nothing_writes_nothing() {
        let (_tmp, mut store) = setup();
        let before = store.revision().unwrap();
        for edit in [
            StagingEdit::SetAccess {
                access: "team".into(),
            },
            StagingEdit::EnableTool {
                tool: "crm-lookup".into(),
            },
            StagingEdit::UpdateAgent(
                json!({"description": "Explains invoices, payment methods and charges."}),
            ),
            StagingEdit::ConnectCorpora {
                corpora: vec!["billing-kb".into()],
            },
            StagingEdit::UpdateToolAction {
                tool: "billing-invoices".into(),
                action: "download-pdf".into(),
                config: json!({"linkTtlSeconds": 900}),
            },
        ] {
            let out = apply_edit(&mut store, T, "billing-bot", &edit).unwrap();
            assert!(!out.changed, "{edit:?}");
            assert!(out.resources.is_empty());
            assert_eq!(out.revision, before);
        }
        assert_eq!(store.revision().unwrap(), before);
        assert!(
            !staging_diff_for(&store, &Actor::named("ada"), T, None)
                .unwrap()
                .has_changes
        );
    }

    #[test]
    fn publish_then_rollback_shows_the_reverse() {
        let (_tmp, mut store) = setup();
        let edit = StagingEdit::UpdateAgent(json!({"description": "Bills only."}));
        apply_edit(&mut store, T, "billing-bot", &edit).unwrap();
        let rec = publish_untagged(&mut store, T, Some("billing-bot"), "desc", "dora", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(rec.number, 2);
        assert!(rec.tag.is_none() && rec.commit.is_none());
        assert!(
            !staging_diff_for(&store, &Actor::named("ada"), T, None)
                .unwrap()
                .has_changes
        );
        assert!(publish_untagged(&mut store, T, None, "again", "dora", NOW)
            .unwrap()
            .is_none());
        let listed = publishes_of(&store, &Actor::named("ada"), T, Some("billing-bot")).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].change_track_id, rec.change_track_id);
        let before = store.revision().unwrap();
        let preview =
            publish_diff(&store, &Actor::named("ada"), T, None, &rec.change_track_id).unwrap();
        assert!(!preview.written && preview.preview);
        assert_eq!(preview.resources.len(), 1);
        assert_eq!(store.revision().unwrap(), before);
        let done = revert(
            &mut store,
            &Actor::named("ada"),
            T,
            &rec.change_track_id,
            false,
        )
        .unwrap();
        assert!(done.written);
        assert!(done.conflicts.is_empty());
        assert_eq!(done.resources, preview.resources);
        assert!(done.revision > before);
        let d = staging_diff_for(&store, &Actor::named("ada"), T, Some("billing-bot")).unwrap();
        let c = d
            .resources
            .iter()
            .flat_map(|r| &r.changes)
            .find(|c| c.path == "spec.description")
            .unwrap();
        assert_eq!(c.production, json!("Bills only."));
        assert_eq!(
            c.staging,
            json!("Explains invoices, payment methods and charges.")
        );
    }
}
