//! The tenant model: the seven resource kinds, their fields, and their references.
//!
//! This module is pure data. A [`Resource`] is one configuration object of a
//! tenant; its [`Spec`] is one of seven kinds, listed in [`Kind::ALL`] in
//! sync-step order. References between resources are plain strings: inside a
//! tree they hold names (`crm-lookup`), inside the store they hold IDs
//! (`tol_…`). The same types serve both forms; [`Resource::visit_refs_mut`] is
//! the one place that knows where references live, and every rewrite (name
//! resolution, rendering, promotion) goes through it. Built-in tools are
//! written `builtin/<name>` in both forms and are never rewritten.
//!
//! Field order in these structs is the canonical order of the files on disk.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod free_form;
pub use free_form::FreeForm;

/// The API version every resource file declares.
pub const API_VERSION: &str = "ferry/v1";

/// The prefix that marks a reference to a built-in tool.
pub const BUILTIN_PREFIX: &str = "builtin/";

/// One of the seven resource kinds, in sync-step order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Kind {
    /// An uploaded file or document reference.
    Document,
    /// API credentials and a service endpoint.
    Connection,
    /// A collection of documents with embeddings.
    KnowledgeBase,
    /// A callable tool (HTTP, JavaScript, RAG, web search).
    Tool,
    /// An ordered multi-step process definition.
    Workflow,
    /// An agent configuration.
    Agent,
    /// A test suite for an agent or workflow.
    Evaluation,
}

impl Kind {
    /// Every kind, in sync-step order.
    pub const ALL: [Kind; 7] = [
        Kind::Document,
        Kind::Connection,
        Kind::KnowledgeBase,
        Kind::Tool,
        Kind::Workflow,
        Kind::Agent,
        Kind::Evaluation,
    ];

    /// The sync-step (and folder) name of this kind, e.g. `knowledgeBases`.
    pub fn step(self) -> &'static str {
        match self {
            Kind::Document => "documents",
            Kind::Connection => "connections",
            Kind::KnowledgeBase => "knowledgeBases",
            Kind::Tool => "tools",
            Kind::Workflow => "workflows",
            Kind::Agent => "agents",
            Kind::Evaluation => "evaluations",
        }
    }

    /// The kind whose step (folder) name is `step`.
    pub fn from_step(step: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.step() == step)
    }

    /// The kind named `name` as written in `kind:` (e.g. `KnowledgeBase`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The name written in a file's `kind:` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Document => "Document",
            Kind::Connection => "Connection",
            Kind::KnowledgeBase => "KnowledgeBase",
            Kind::Tool => "Tool",
            Kind::Workflow => "Workflow",
            Kind::Agent => "Agent",
            Kind::Evaluation => "Evaluation",
        }
    }

    /// The prefix of IDs of this kind, e.g. `agt`.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Document => "doc",
            Kind::Connection => "con",
            Kind::KnowledgeBase => "kb",
            Kind::Tool => "tol",
            Kind::Workflow => "wfl",
            Kind::Agent => "agt",
            Kind::Evaluation => "evl",
        }
    }

    /// The lower-case file stem of this kind's JSON Schema, e.g. `knowledge-base`.
    pub fn schema_stem(self) -> &'static str {
        match self {
            Kind::Document => "document",
            Kind::Connection => "connection",
            Kind::KnowledgeBase => "knowledge-base",
            Kind::Tool => "tool",
            Kind::Workflow => "workflow",
            Kind::Agent => "agent",
            Kind::Evaluation => "evaluation",
        }
    }

    /// Position of this kind in the sync-step order (0 for documents).
    pub fn order(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a promoted resource came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncedFrom {
    /// The origin tenant.
    pub tenant: String,
    /// The resource's ID in the origin tenant.
    pub id: String,
}

/// Identity and bookkeeping of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Stable ID; derived from tenant, kind and name when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique name of the resource within its kind; also its file name.
    pub name: String,
    /// Whether tenant promotion selects this resource.
    #[serde(default, skip_serializing_if = "is_false")]
    pub syncable: bool,
    /// The origin of a resource that arrived by promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_from: Option<SyncedFrom>,
    /// The ID of the resource this one was imported from (ZIP `create` strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_id: Option<String>,
    /// Who created the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A list read at its exact length. A format that does not say how long a
/// list is before it ends (YAML) makes serde grow it by doubling, so a list
/// of five evaluation cases kept room for eight, and one of one tag room for
/// four: at 100,000 resources, about 10 MB of resident memory.
fn exact_list<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let mut list = Vec::<T>::deserialize(deserializer)?;
    list.shrink_to_fit();
    Ok(list)
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_true() -> bool {
    true
}

/// A document: uploaded file metadata, optionally with a content file beside its YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DocumentSpec {
    /// Human title.
    pub title: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Content hash, `blake3:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// File name of the content file beside this YAML file, e.g. `refund-policy.pdf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_file: Option<String>,
    /// Where the document was fetched from, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Free labels.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
}

/// How a connection authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionAuth {
    /// `none`, `bearer`, `apiKey`, `basic` or `oauth2`.
    #[serde(rename = "type")]
    pub auth_type: String,
    /// Header that carries the credential, for `apiKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// A connection: a service endpoint and its credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// What a person reads about this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `http`, `database`, `oauth2`, `mcp` and the like.
    #[serde(rename = "type")]
    pub connection_type: String,
    /// Base URL of the service; may be `${vars.NAME}`.
    pub base_url: String,
    /// Authentication scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectionAuth>,
    /// Credentials: each value is `${vars.NAME}` or `ENC[age,…]`, never plain text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, String>,
    /// Extra request headers (no secrets here either).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Embedding settings of a knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Embedding {
    /// Embedding provider, e.g. `openai`.
    pub provider: String,
    /// Embedding model, e.g. `text-embedding-3-small`.
    pub model: String,
}

/// How documents are split into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Chunking {
    /// Chunk size in tokens.
    pub size: u32,
    /// Overlap between chunks in tokens.
    #[serde(default)]
    pub overlap: u32,
}

/// A knowledge base: documents with embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnowledgeBaseSpec {
    /// What a person reads about this knowledge base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Embedding settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
    /// Chunking settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Chunking>,
    /// Documents in this knowledge base (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub documents: Vec<String>,
}

/// The HTTP request a tool makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolRequest {
    /// HTTP method.
    pub method: String,
    /// Path below the connection's base URL.
    pub path: String,
}

/// One action a tool offers; agents may enable or configure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolAction {
    /// Name of the action, unique within the tool.
    pub name: String,
    /// What the action does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the action is enabled.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Free-form configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, FreeForm>,
}

/// A tool an agent or workflow may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolSpec {
    /// What the model reads about this tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `http`, `javascript`, `rag` or `webSearch`.
    #[serde(rename = "type")]
    pub tool_type: String,
    /// The connection this tool calls through (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The knowledge base a `rag` tool searches (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_base: Option<String>,
    /// The request an `http` tool makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ToolRequest>,
    /// The code of a `javascript` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// JSON Schema of the tool's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<FreeForm>,
    /// Actions the tool offers.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub actions: Vec<ToolAction>,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowStep {
    /// Type URI, e.g. `ai.labs.llm`, `ai.labs.httpcalls`, `ai.labs.behavior`.
    #[serde(rename = "type")]
    pub step_type: String,
    /// Optional label of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tools this step may call (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tools: Vec<String>,
    /// Knowledge bases this step reads (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub knowledge_bases: Vec<String>,
    /// A workflow this step runs as a sub-workflow (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Free-form step configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, FreeForm>,
}

/// A workflow: an ordered list of typed steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// What a person reads about this workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steps, in order.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub steps: Vec<WorkflowStep>,
}

/// The model an agent runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelConfig {
    /// Provider, e.g. `openai` (may be `${vars.NAME}`).
    pub provider: String,
    /// Model name, e.g. `gpt-4o-mini` (may be `${vars.NAME}`).
    pub name: String,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Maximum tokens in one answer, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
}

/// A named prompt snippet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Snippet {
    /// Name of the snippet, unique within the agent.
    pub name: String,
    /// The snippet's text.
    pub text: String,
}

/// A guardrail of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Guardrail {
    /// Name of the guardrail, e.g. `pii-redaction`.
    pub name: String,
    /// Whether it is on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Free-form settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, FreeForm>,
}

/// A SharePoint folder connection: a knowledge source of an agent
/// (document 003's `/sharepoint/folder` endpoints edit it in staging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharePointFolder {
    /// The folder's `https://` URL, e.g. `https://acme.sharepoint.com/sites/support/Shared Documents/faq`.
    #[schemars(regex(pattern = r"^https://[^/@\s]+(/.*)?$"))]
    pub folder_url: String,
    /// What a person reads about the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the folders inside it are read too.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub include_subfolders: bool,
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSpec {
    /// What a person reads about this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `chat` or `supervisor`.
    #[serde(rename = "type")]
    pub agent_type: String,
    /// The model block.
    pub model: ModelConfig,
    /// The system instructions; multi-line text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Named prompt snippets.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub snippets: Vec<Snippet>,
    /// Guardrails.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub guardrails: Vec<Guardrail>,
    /// `private`, `team` or `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// Free labels.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    /// Tools (references; `builtin/<name>` for built-in tools).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tools: Vec<String>,
    /// Knowledge bases (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub knowledge_bases: Vec<String>,
    /// A SharePoint folder the agent reads as a knowledge source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharepoint_folder: Option<SharePointFolder>,
    /// Sub-agents of a supervisor (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sub_agents: Vec<String>,
    /// Workflows, in order (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workflows: Vec<String>,
}

/// One case of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EvaluationCase {
    /// Name of the case, unique within the evaluation.
    pub name: String,
    /// The user input.
    pub input: String,
    /// Phrases the answer must contain.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub expect_contains: Vec<String>,
    /// Tools the agent is expected to call (references).
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub expect_tools: Vec<String>,
}

/// What an evaluation tests: one agent or one workflow (references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EvaluationTarget {
    /// The agent under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The workflow under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
}

/// An evaluation: a test suite for an agent or a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EvaluationSpec {
    /// What a person reads about this evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What is under test.
    pub target: EvaluationTarget,
    /// Share of cases that must pass, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub pass_threshold: Option<f64>,
    /// The cases.
    #[serde(
        default,
        deserialize_with = "exact_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cases: Vec<EvaluationCase>,
}

/// The kind-specific body of a resource. Every body is boxed, so that a
/// resource is a few words wherever it moves (plans, batches and models
/// move 100,000 of them), whatever its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// A document.
    Document(Box<DocumentSpec>),
    /// A connection.
    Connection(Box<ConnectionSpec>),
    /// A knowledge base.
    KnowledgeBase(Box<KnowledgeBaseSpec>),
    /// A tool.
    Tool(Box<ToolSpec>),
    /// A workflow.
    Workflow(Box<WorkflowSpec>),
    /// An agent.
    Agent(Box<AgentSpec>),
    /// An evaluation.
    Evaluation(Box<EvaluationSpec>),
}

impl Spec {
    /// The kind of this spec.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Document(_) => Kind::Document,
            Spec::Connection(_) => Kind::Connection,
            Spec::KnowledgeBase(_) => Kind::KnowledgeBase,
            Spec::Tool(_) => Kind::Tool,
            Spec::Workflow(_) => Kind::Workflow,
            Spec::Agent(_) => Kind::Agent,
            Spec::Evaluation(_) => Kind::Evaluation,
        }
    }

    /// The spec as a JSON value (canonical field order).
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Spec::Document(s) => serde_json::to_value(s),
            Spec::Connection(s) => serde_json::to_value(s),
            Spec::KnowledgeBase(s) => serde_json::to_value(s),
            Spec::Tool(s) => serde_json::to_value(s),
            Spec::Workflow(s) => serde_json::to_value(s),
            Spec::Agent(s) => serde_json::to_value(s),
            Spec::Evaluation(s) => serde_json::to_value(s),
        };
        // Serializing these plain structs to a JSON value cannot fail: every
        // map key is a string and every float is finite by construction.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Whether this spec's JSON form contains `marker` (an ASCII marker
    /// such as `ENC[age,` or the scrubbed-secret placeholder, which JSON
    /// writes unescaped). Written straight to bytes, without a JSON tree.
    pub fn mentions(&self, marker: &str) -> bool {
        let mut json = Vec::with_capacity(2048);
        if serde_json::to_writer(&mut json, self).is_err() {
            return self.to_json().to_string().contains(marker);
        }
        let marker = marker.as_bytes();
        !marker.is_empty()
            && json
                .windows(marker.len())
                .any(|w| w[0] == marker[0] && w == marker)
    }

    /// Deserialize a spec of `kind` from any serde format (a JSON tree, JSON
    /// text, YAML): the one place that knows which type each kind's spec is.
    pub fn deserialize_as<'de, D: serde::Deserializer<'de>>(
        kind: Kind,
        d: D,
    ) -> Result<Spec, D::Error> {
        Ok(match kind {
            Kind::Document => Spec::Document(Box::new(DocumentSpec::deserialize(d)?)),
            Kind::Connection => Spec::Connection(Box::new(ConnectionSpec::deserialize(d)?)),
            Kind::KnowledgeBase => {
                Spec::KnowledgeBase(Box::new(KnowledgeBaseSpec::deserialize(d)?))
            }
            Kind::Tool => Spec::Tool(Box::new(ToolSpec::deserialize(d)?)),
            Kind::Workflow => Spec::Workflow(Box::new(WorkflowSpec::deserialize(d)?)),
            Kind::Agent => Spec::Agent(Box::new(AgentSpec::deserialize(d)?)),
            Kind::Evaluation => Spec::Evaluation(Box::new(EvaluationSpec::deserialize(d)?)),
        })
    }

    /// Build a spec of `kind` from a JSON value.
    pub fn from_json(kind: Kind, value: serde_json::Value) -> Result<Spec, serde_json::Error> {
        Spec::deserialize_as(kind, value)
    }
}

/// The field of a resource a reference sits in, and the kind it must point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSite {
    /// Dotted path of the field, e.g. `spec.tools[1]`.
    pub path: String,
    /// The kind the reference must point to.
    pub target: Kind,
    /// Its position in its list (0 for a field holding one reference).
    pub position: usize,
    /// The list item the field belongs to: the workflow step or evaluation case.
    pub item: Option<usize>,
}

/// The one description of where references live, for [`Resource::visit_refs`]
/// and [`Resource::visit_refs_mut`] (`$m` is `mut` or nothing).
macro_rules! walk_refs {
    ($self:ident, $f:ident, $($m:tt)?) => {{
        fn list(
            path: &str,
            target: Kind,
            item: Option<usize>,
            v: &$($m)? [String],
            f: &mut dyn FnMut(&RefSite, &$($m)? String),
        ) {
            for (i, r) in v.into_iter().enumerate() {
                f(&RefSite { path: format!("{path}[{i}]"), target, position: i, item }, r);
            }
        }
        fn one(
            path: &str,
            target: Kind,
            item: Option<usize>,
            v: &$($m)? Option<String>,
            f: &mut dyn FnMut(&RefSite, &$($m)? String),
        ) {
            if let Some(r) = v {
                f(&RefSite { path: path.to_string(), target, position: 0, item }, r);
            }
        }
        match &$($m)? $self.spec {
            Spec::Document(_) | Spec::Connection(_) => {}
            Spec::KnowledgeBase(s) => list("spec.documents", Kind::Document, None, &$($m)? s.documents, $f),
            Spec::Tool(s) => {
                one("spec.connection", Kind::Connection, None, &$($m)? s.connection, $f);
                one("spec.knowledgeBase", Kind::KnowledgeBase, None, &$($m)? s.knowledge_base, $f);
            }
            Spec::Workflow(s) => {
                for (i, step) in (&$($m)? s.steps).into_iter().enumerate() {
                    let p = format!("spec.steps[{i}]");
                    list(&format!("{p}.tools"), Kind::Tool, Some(i), &$($m)? step.tools, $f);
                    list(&format!("{p}.knowledgeBases"), Kind::KnowledgeBase, Some(i), &$($m)? step.knowledge_bases, $f);
                    one(&format!("{p}.workflow"), Kind::Workflow, Some(i), &$($m)? step.workflow, $f);
                }
            }
            Spec::Agent(s) => {
                list("spec.tools", Kind::Tool, None, &$($m)? s.tools, $f);
                list("spec.knowledgeBases", Kind::KnowledgeBase, None, &$($m)? s.knowledge_bases, $f);
                list("spec.subAgents", Kind::Agent, None, &$($m)? s.sub_agents, $f);
                list("spec.workflows", Kind::Workflow, None, &$($m)? s.workflows, $f);
            }
            Spec::Evaluation(s) => {
                one("spec.target.agent", Kind::Agent, None, &$($m)? s.target.agent, $f);
                one("spec.target.workflow", Kind::Workflow, None, &$($m)? s.target.workflow, $f);
                for (i, c) in (&$($m)? s.cases).into_iter().enumerate() {
                    list(&format!("spec.cases[{i}].expectTools"), Kind::Tool, Some(i), &$($m)? c.expect_tools, $f);
                }
            }
        }
    }};
}

/// One configuration object of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Identity and bookkeeping.
    pub metadata: Metadata,
    /// The kind-specific body.
    pub spec: Spec,
    /// The bytes of a document's content file, when it has one.
    pub content: Option<Vec<u8>>,
}

impl Resource {
    /// The kind of this resource.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// The name of this resource.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The ID of this resource, if set.
    pub fn id(&self) -> Option<&str> {
        self.metadata.id.as_deref()
    }

    /// Visit every reference of this resource, letting `f` rewrite it.
    ///
    /// References to built-in tools are passed too; callers leave them alone.
    pub fn visit_refs_mut(&mut self, f: &mut dyn FnMut(&RefSite, &mut String)) {
        walk_refs!(self, f, mut);
    }

    /// Visit every reference of this resource, read-only.
    ///
    /// References to built-in tools are passed too.
    pub fn visit_refs(&self, f: &mut dyn FnMut(&RefSite, &String)) {
        walk_refs!(self, f,);
    }

    /// Every reference of this resource with its site, built-ins excluded.
    pub fn refs(&self) -> Vec<(RefSite, String)> {
        let mut out = Vec::new();
        self.visit_refs(&mut |site, r| {
            if !is_builtin(r) {
                out.push((site.clone(), r.clone()));
            }
        });
        out
    }

    /// Drop the bulk of a resource in place (texts, settings, schemas,
    /// content), keeping its identity and every reference: what the checks
    /// across resources (names, IDs, references, cycles) read, once each
    /// resource's own fields are checked.
    ///
    /// It clears what is known to hold no reference, rather than keeping
    /// what is known to hold one, so that [`Resource::visit_refs_mut`] stays
    /// the one place that knows where references live: a field added later
    /// is kept until it is listed here. Lists whose items hold references
    /// (workflow steps, evaluation cases) keep their items.
    pub fn keep_only_references(&mut self) {
        use std::mem::take;
        self.content = None;
        match &mut self.spec {
            Spec::Document(s) => {
                take(&mut s.title);
                s.content_hash = None;
                s.content_file = None;
                s.source_url = None;
                take(&mut s.tags);
            }
            Spec::Connection(s) => {
                s.description = None;
                take(&mut s.base_url);
                s.auth = None;
                take(&mut s.credentials);
                take(&mut s.headers);
            }
            Spec::KnowledgeBase(s) => {
                s.description = None;
                s.embedding = None;
            }
            Spec::Tool(s) => {
                s.description = None;
                s.request = None;
                s.code = None;
                s.input_schema = None;
                take(&mut s.actions);
            }
            Spec::Workflow(s) => {
                s.description = None;
                for step in &mut s.steps {
                    step.name = None;
                    take(&mut step.config);
                }
            }
            Spec::Agent(s) => {
                s.description = None;
                s.instructions = None;
                take(&mut s.snippets);
                take(&mut s.guardrails);
                take(&mut s.tags);
                s.sharepoint_folder = None;
            }
            Spec::Evaluation(s) => {
                s.description = None;
                for case in &mut s.cases {
                    take(&mut case.name);
                    take(&mut case.input);
                    take(&mut case.expect_contains);
                }
            }
        }
    }

    /// The references of this resource that point to `target`, in field
    /// order, built-ins included.
    pub fn refs_to(&self, target: Kind) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_refs(&mut |site, r| {
            if site.target == target {
                out.push(r.clone());
            }
        });
        out
    }
}

/// Whether a reference names a built-in tool (`builtin/<name>`).
pub fn is_builtin(reference: &str) -> bool {
    reference.starts_with(BUILTIN_PREFIX)
}

/// The relative path of a resource's YAML file in a tenant tree, e.g. `agents/support-bot.yaml`.
pub fn resource_path(kind: Kind, name: &str) -> String {
    format!("{}/{}.yaml", kind.step(), name)
}

/// Whether `name` is a valid resource name: lower-case letters, digits, `-`, `_` and `.`, 1 to 128 long.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

/// Whether `id` is a valid resource ID: ASCII letters, digits, `_` and `-`, 1 to 64 long.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The full model of one tenant: its resources, keyed by kind and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantModel {
    /// Resources by (kind, name).
    pub resources: BTreeMap<(Kind, String), Resource>,
}

impl TenantModel {
    /// Insert a resource, replacing any of the same kind and name.
    pub fn insert(&mut self, r: Resource) {
        self.resources
            .insert((r.kind(), r.metadata.name.clone()), r);
    }

    /// The resource of `kind` named `name`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Resource> {
        self.resources.get(&(kind, name.to_string()))
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether the tenant has no resources.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Resources in sync-step order, then by name.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }
}

impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Spec::Document(x) => x.serialize(s),
            Spec::Connection(x) => x.serialize(s),
            Spec::KnowledgeBase(x) => x.serialize(s),
            Spec::Tool(x) => x.serialize(s),
            Spec::Workflow(x) => x.serialize(s),
            Spec::Agent(x) => x.serialize(s),
            Spec::Evaluation(x) => x.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::plan::tests::res;
    use crate::domain::secrets::{ENC_PREFIX, PLACEHOLDER};

    #[test]
    fn lists_read_from_yaml_keep_no_spare_room() {
        let text = "apiVersion: ferry/v1\nkind: KnowledgeBase\nmetadata:\n  name: kb\nspec:\n  \
                    documents:\n  - a\n  - b\n  - c\n  - d\n  - e\n  - f\n";
        let r =
            crate::domain::tree::decode_file("knowledgeBases/kb.yaml", text.as_bytes()).unwrap();
        let super::Spec::KnowledgeBase(kb) = &r.spec else {
            panic!("a knowledge base")
        };
        assert_eq!(kb.documents.len(), 6);
        assert_eq!(kb.documents.capacity(), 6);
    }

    #[test]
    fn a_spec_mentions_what_its_strings_hold() {
        let plain = res(
            "Connection",
            "con_1",
            "crm",
            serde_json::json!({"type": "http", "baseUrl": "https://crm.example"}),
        );
        assert!(!plain.spec.mentions(ENC_PREFIX));
        assert!(!plain.spec.mentions(PLACEHOLDER));
        assert!(plain.spec.mentions("crm.example"));
        let nested = res(
            "Connection",
            "con_2",
            "erp",
            serde_json::json!({"type": "http", "baseUrl": "https://erp.example",
                "credentials": {"token": PLACEHOLDER}}),
        );
        assert!(nested.spec.mentions(PLACEHOLDER));
        assert!(!nested.spec.mentions(ENC_PREFIX));
        assert!(!nested.spec.mentions(""));
    }
}
