//! `/openapi.json`: the description of every endpoint, and the registry
//! that keeps the router and the description the same.
//!
//! [`ROUTES`] is the one table of endpoints. [`Registry::add`] registers a
//! handler only for a method and path the table holds; any other is kept
//! out of the router and makes [`Registry::into_router`] fail, so the
//! server does not start (in every build). A test checks that every row of
//! the table was registered, so the document can't drift from the router.

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use serde_json::{json, Map, Value};

use super::ferry_api::MAX_NUMBER;
use super::Shared;
use crate::domain::model::Kind;
use crate::service::serving::ServeError;

/// One endpoint, as `/openapi.json` describes it.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path, with `{param}` segments.
    pub path: &'static str,
    /// The group, e.g. `staging`.
    pub tag: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters it reads.
    pub query: &'static [&'static str],
    /// The request body's media type, if it takes one.
    pub body: Option<&'static str>,
}

const fn r(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    query: &'static [&'static str],
    body: Option<&'static str>,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        tag,
        summary,
        query,
        body,
    }
}

const JSON: Option<&str> = Some("application/json");
const ZIP: Option<&str> = Some("application/zip");
const SYNC_Q: &[&str] = &[
    "sourceUrl",
    "sourceAgentId",
    "sourceAgentVersion",
    "targetAgentId",
    "selectedResources",
    "workflowOrder",
];

/// Every endpoint of the server.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "GET",
        "/health",
        "server",
        "Liveness and the store revision",
        &[],
        None,
    ),
    r("GET", "/openapi.json", "server", "This document", &[], None),
    r(
        "GET",
        "/api/tenants",
        "server",
        "The tenants the caller holds a role on: {\"items\": [...]}",
        &[],
        None,
    ),
    // Document 000: tenant-to-tenant sync.
    r(
        "GET",
        "/api/tenant/sync/steps",
        "tenant-sync",
        "The ordered list of sync steps: {\"items\": [...]}",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/tenant/sync/{targetTenantId}/{step}",
        "tenant-sync",
        "Sync one step from the caller's tenant to the target tenant (admin or owner of both)",
        &[],
        None,
    ),
    // Document 002: agent sync and ZIP.
    r(
        "GET",
        "/backup/import/sync/agents",
        "agent-sync",
        "List the agents of the source instance",
        &["sourceUrl"],
        None,
    ),
    r(
        "POST",
        "/backup/import/sync/preview",
        "agent-sync",
        "Preview a single-agent sync",
        SYNC_Q,
        None,
    ),
    r(
        "POST",
        "/backup/import/sync/preview/batch",
        "agent-sync",
        "Preview several agent syncs (body: SyncMapping[])",
        &["sourceUrl"],
        JSON,
    ),
    r(
        "POST",
        "/backup/import/sync",
        "agent-sync",
        "Sync one agent from the source instance",
        SYNC_Q,
        None,
    ),
    r(
        "POST",
        "/backup/import/sync/batch",
        "agent-sync",
        "Sync several agents (body: SyncRequest[]); 207 when some fail",
        &["sourceUrl"],
        JSON,
    ),
    r(
        "POST",
        "/backup/import/preview",
        "zip",
        "Preview importing a ZIP",
        &["targetAgentId", "strategy"],
        ZIP,
    ),
    r(
        "POST",
        "/backup/import",
        "zip",
        "Import a ZIP with a strategy: create, merge or upgrade",
        &[
            "strategy",
            "targetAgentId",
            "selectedResources",
            "workflowOrder",
            "baseRevision",
        ],
        ZIP,
    ),
    r(
        "POST",
        "/backup/export/{agentId}/preview",
        "zip",
        "The resource tree an export of the agent would hold",
        &["agentVersion"],
        None,
    ),
    r(
        "POST",
        "/backup/export/{agentId}",
        "zip",
        "Export the agent and what it needs as a ZIP",
        &["agentVersion", "selectedResources"],
        None,
    ),
    // Document 003: staging and publishing.
    r(
        "GET",
        "/api/v2/agents",
        "staging",
        "The agents of the caller's tenant: {\"items\": [...]}",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/v2/agents/{agent_id}",
        "staging",
        "The agent's staging (draft) configuration, its draft revision, who created it, who last changed it and when, the production version and every published version",
        &[],
        None,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}",
        "staging",
        "Update the agent (JSON merge patch of its fields)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/instructions",
        "staging",
        "Create instructions",
        &[],
        JSON,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}/instructions",
        "staging",
        "Update instructions",
        &[],
        JSON,
    ),
    r(
        "DELETE",
        "/api/v2/agents/{agent_id}/instructions/{instruction_id}",
        "staging",
        "Delete an instruction",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/corpora",
        "staging",
        "Bulk connect corpora (knowledge bases)",
        &[],
        JSON,
    ),
    r(
        "DELETE",
        "/api/v2/agents/{agent_id}/corpora",
        "staging",
        "Bulk disconnect corpora",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        "staging",
        "Connect a corpus",
        &[],
        None,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        "staging",
        "Update a corpus connection",
        &[],
        JSON,
    ),
    r(
        "DELETE",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        "staging",
        "Disconnect a corpus",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/enable",
        "staging",
        "Enable a tool",
        &[],
        None,
    ),
    r(
        "DELETE",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/disable",
        "staging",
        "Disable a tool",
        &[],
        None,
    ),
    r(
        "PATCH",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}",
        "staging",
        "Update an action's config",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/enable",
        "staging",
        "Enable an action",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/disable",
        "staging",
        "Disable an action",
        &[],
        None,
    ),
    r(
        "PATCH",
        "/api/v2/agents/{agent_id}/guardrails",
        "staging",
        "Enable or disable guardrails",
        &[],
        JSON,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}/access",
        "staging",
        "Update the access level",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/annotates",
        "staging",
        "Update tags",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        "staging",
        "Create the agent's SharePoint folder connection (409 when it has one)",
        &[],
        JSON,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        "staging",
        "Update the SharePoint folder connection (JSON merge patch of its fields; 404 when it has none)",
        &[],
        JSON,
    ),
    r(
        "DELETE",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        "staging",
        "Delete the SharePoint folder connection (404 when it has none)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/v2/agents/{agent_id}/staging-diff",
        "publishing",
        "Staging against production, changed fields only",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/v2/agents/{agent_id}/publish",
        "publishing",
        "Publish staging to production (409 with hasChanges: false when equal)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/v2/agents/{agent_id}/publishes",
        "publishing",
        "The agent's publish history: {\"items\": [...]}",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/v2/agents/{agent_id}/publishes/{change_track_id}/diff",
        "publishing",
        "What reverting this publish would change in staging",
        &[],
        None,
    ),
    r(
        "PUT",
        "/api/v2/agents/{agent_id}/rollback",
        "publishing",
        "Remove a publish's changes from staging (body: {\"changeTrackId\": ...})",
        &[],
        JSON,
    ),
    // ferry's own API: the store contract for the remote store (`--store http(s)://…`).
    r(
        "GET",
        "/api/ferry/v1/whoami",
        "ferry",
        "The token's user and current tenant",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/revision",
        "ferry",
        "The store revision",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants",
        "ferry",
        "The tenants the caller holds a role on, as the store keeps them",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants",
        "ferry",
        "Create a tenant with its key pair (store owner)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}",
        "ferry",
        "One tenant (viewer)",
        &[],
        None,
    ),
    r(
        "DELETE",
        "/api/ferry/v1/tenants/{tenant}",
        "ferry",
        "Delete the tenant and all it holds, as checked at its revision; 409 stale or while other tenants came from it, unless forced (owner)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/variables",
        "ferry",
        "The names of the tenant's variables that have a value, never a value (viewer)",
        &[],
        None,
    ),
    r(
        "PUT",
        "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
        "ferry",
        "Set a variable to a value encrypted to the tenant, which must open with its key (editor)",
        &[],
        JSON,
    ),
    r(
        "DELETE",
        "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
        "ferry",
        "Unset a variable: {\"was_set\": bool} (editor)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/identity",
        "ferry",
        "The tenant's private key, for promotion (admin)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/index",
        "ferry",
        "The tenant's revision and index (viewer)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/drafts",
        "ferry",
        "Every draft, stored form (viewer)",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/drafts/lookup",
        "ferry",
        "The drafts of the given IDs (viewer)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/drafts/stamps",
        "ferry",
        "Who created and last changed the drafts of the given IDs, and when (viewer)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/plan",
        "ferry",
        "Plan a tree from what the client sends: every path and unit hash (answered with the paths the server needs, whose bodies come next), or a git commit's changes since the last applied commit; the plan is bound to its base revision (viewer)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/export",
        "ferry",
        "The tenant's exported tree: every path, with the bodies of only the files whose blake3 the client does not hold (viewer)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/write",
        "ferry",
        "Write a batch in one transaction at its base revision; 409 stale with both revisions (editor; admin with published versions)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/versions/lookup",
        "ferry",
        "Published versions of the given IDs (viewer)",
        &[],
        JSON,
    ),
    r(
        "PUT",
        "/api/ferry/v1/tenants/{tenant}/versions",
        "ferry",
        "Record published versions as they are (admin)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/production",
        "ferry",
        "Production: the latest published version of each resource (viewer)",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/production/lookup",
        "ferry",
        "Production of the given IDs (viewer)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes",
        "ferry",
        "The publish log, newest first (viewer)",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/publishes",
        "ferry",
        "Record a publish and its versions in one transaction (admin)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes/next",
        "ferry",
        "The number the next publish gets (viewer)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes/{change_track_id}/changes",
        "ferry",
        "The versions one publish wrote, with production before it (viewer)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/drift",
        "ferry",
        "Resources changed since the last apply from git (viewer)",
        &[],
        None,
    ),
    r(
        "GET",
        "/api/ferry/v1/tenants/{tenant}/syncs",
        "ferry",
        "The sync records of one source (viewer)",
        &["source"],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tenants/{tenant}/syncs",
        "ferry",
        "Record what a sync wrote (editor)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/access",
        "ferry",
        "Every user and grant of the store",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/users",
        "ferry",
        "Add a user (store owner)",
        &[],
        JSON,
    ),
    r(
        "PUT",
        "/api/ferry/v1/grants",
        "ferry",
        "Grant a role on a tenant (owner of the tenant)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tokens",
        "ferry",
        "Record a token by its hash (a store owner for another user's token)",
        &[],
        JSON,
    ),
    r(
        "POST",
        "/api/ferry/v1/tokens/lookup",
        "ferry",
        "The token with this hash, if any (store owner)",
        &[],
        JSON,
    ),
    r(
        "GET",
        "/api/ferry/v1/tokens",
        "ferry",
        "The tokens the caller may manage (never a token)",
        &[],
        None,
    ),
    r(
        "POST",
        "/api/ferry/v1/tokens/{token_id}/revoke",
        "ferry",
        "Revoke a token (its user, a store owner, or an owner of its tenant)",
        &[],
        None,
    ),
];

/// The router under construction, with what has been registered. It holds
/// its table of routes: the API's [`ROUTES`] ([`Registry::new`]), or
/// another (the web UI's, [`Registry::listing`]).
pub struct Registry {
    router: Router<Shared>,
    registered: Vec<(String, String)>,
    refused: Vec<(String, String)>,
    listed: fn(&str, &str) -> bool,
    unlisted: fn(String, String) -> ServeError,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry for the routes of [`ROUTES`].
    pub fn new() -> Registry {
        Registry::listing(
            |method, path| ROUTES.iter().any(|d| d.method == method && d.path == path),
            |method, path| ServeError::Undocumented { method, path },
        )
    }

    /// An empty registry for the routes `listed` says are in its table; a
    /// route that is not becomes the error `unlisted` makes.
    pub fn listing(
        listed: fn(&str, &str) -> bool,
        unlisted: fn(String, String) -> ServeError,
    ) -> Registry {
        Registry {
            router: Router::new(),
            registered: Vec::new(),
            refused: Vec::new(),
            listed,
            unlisted,
        }
    }

    /// Register `handler` for `method` on `path`; a pair not in the table is
    /// refused (left out, and [`Registry::into_router`] fails).
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        handler: MethodRouter<Shared>,
    ) -> Registry {
        let pair = (method.as_str().to_string(), path.to_string());
        if !(self.listed)(method.as_str(), path) {
            self.refused.push(pair);
            return self;
        }
        self.registered.push(pair);
        self.router = self.router.route(path, handler);
        self
    }

    /// The method and path of every registered route.
    pub fn registered(&self) -> &[(String, String)] {
        &self.registered
    }

    /// The router, or the first route that is not in the table.
    pub fn into_router(self) -> Result<Router<Shared>, ServeError> {
        match self.refused.into_iter().next() {
            Some((method, path)) => Err((self.unlisted)(method, path)),
            None => Ok(self.router),
        }
    }
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The schema of a path parameter: a sync step is one of the steps, in order.
fn path_schema(name: &str) -> Value {
    match name {
        "step" => {
            let steps: Vec<&str> = Kind::ALL.iter().map(|k| k.step()).collect();
            json!({"type": "string", "enum": steps})
        }
        "variable" => json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
        _ => json!({"type": "string", "minLength": 1}),
    }
}

/// Whether a query parameter is required, and its schema, as the handlers read it.
fn query_schema(name: &str) -> (bool, Value) {
    match name {
        "sourceUrl" => (true, json!({"type": "string", "format": "uri"})),
        "source" => (true, json!({"type": "string", "minLength": 1})),
        "sourceAgentId" => (true, json!({"type": "string", "minLength": 1})),
        "sourceAgentVersion" | "agentVersion" | "baseRevision" => (
            false,
            json!({"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}),
        ),
        "strategy" => (
            false,
            json!({"type": "string", "enum": ["create", "merge", "upgrade"]}),
        ),
        _ => (false, json!({"type": "string", "minLength": 1})),
    }
}

/// A list of strings, or an object holding one under any of `names`.
fn list_body(names: &[&str]) -> Value {
    let list = json!({"type": "array", "items": {"type": "string"}});
    let properties: Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), list.clone()))
        .collect();
    let one_of: Vec<Value> = names.iter().map(|n| json!({"required": [n]})).collect();
    json!({"anyOf": [list, {"type": "object", "properties": properties, "anyOf": one_of}]})
}

/// An object holding a string under any of `names` (and, for
/// instructions, an optional name).
fn text_body(names: &[&str], optional: &[&str]) -> Value {
    let mut properties: Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!({"type": "string"})))
        .collect();
    for n in optional {
        properties.insert(n.to_string(), json!({"type": ["string", "null"]}));
    }
    let one_of: Vec<Value> = names.iter().map(|n| json!({"required": [n]})).collect();
    json!({"type": "object", "properties": properties, "anyOf": one_of})
}

/// A string: a name as `is_valid_name` takes it (tenants, users).
fn name_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9_-][a-z0-9._-]{0,127}$"})
}

/// A whole number as the store contract's `u64` fields read it.
fn count_schema() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_NUMBER})
}

/// The request bodies of ferry's own API (`/api/ferry/v1/…`, the types of
/// `backend::store::remote::wire`); `None` for a path outside it.
fn store_body(method: &str, path: &str) -> Option<Value> {
    let rest = path.strip_prefix("/api/ferry/v1/")?;
    let text = json!({"type": "string"});
    let opt_text = json!({"type": ["string", "null"]});
    let resource = json!({"type": "object", "required": ["document"], "properties": {
        "document": {"type": "object"}, "content": opt_text}});
    let version = json!({"type": "object", "required": ["id", "version", "resource", "published_at"], "properties": {
        "id": text, "version": count_schema(), "resource": resource, "change_id": opt_text, "published_at": text}});
    let texts = json!({"type": "array", "items": text});
    let schema = match (method, rest.rsplit('/').next().unwrap_or_default()) {
        ("POST", "tenants") => {
            json!({"type": "object", "required": ["name", "recipient", "identity"], "properties": {
            "name": name_schema(), "environment": opt_text, "recipient": text, "identity": text}})
        }
        ("POST", "lookup") if rest.starts_with("tokens/") => {
            json!({"type": "object", "required": ["hash"], "properties": {"hash": text}})
        }
        ("POST", "lookup" | "stamps") => {
            json!({"type": "object", "required": ["ids"], "properties": {"ids": texts}})
        }
        ("POST", "write") => json!({"type": "object",
            "required": ["base_revision", "upserts", "deletes", "refresh", "versions"], "properties": {
            "base_revision": count_schema(),
            "upserts": {"type": "array", "items": {"type": "array", "prefixItems": [resource, text], "minItems": 2, "maxItems": 2}},
            "deletes": texts,
            "refresh": {"type": "array", "items": {"type": "object", "required": ["id", "fileHash"], "properties": {"id": text, "fileHash": text}}},
            "commit": opt_text,
            "versions": {"type": "array", "items": version},
            "syncs": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["source_key", "origins"], "properties": {
                "source_key": text,
                "origins": {"type": "array", "items": {"type": "array", "prefixItems": [text, text], "minItems": 2, "maxItems": 2}}}}]}}}),
        ("PUT", "versions") => json!({"type": "object", "required": ["versions"], "properties": {
            "versions": {"type": "array", "items": version}}}),
        ("POST", "publishes") => {
            let named = json!({"type": "array", "items": {"type": "object", "required": ["kind", "name", "id"], "properties": {
                "kind": {"type": "string", "enum": Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>()}, "name": text, "id": text}}});
            json!({"type": "object", "required": ["record", "versions"], "properties": {
                "record": {"type": "object",
                    "required": ["tenant", "number", "changeTrackId", "publishedBy", "publishedAt", "message", "summary"],
                    "properties": {"tenant": text, "number": count_schema(), "changeTrackId": text, "agent": opt_text,
                        "publishedBy": text, "publishedAt": text, "message": text,
                        "summary": {"type": "object", "required": ["created", "updated", "deleted"], "properties": {
                            "created": named, "updated": named, "deleted": named}},
                        "tag": opt_text, "commit": opt_text}},
                "versions": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {
                    "id": text, "resource": {"anyOf": [{"type": "null"}, resource]}}}}}})
        }
        ("POST", "syncs") => {
            json!({"type": "object", "required": ["source_key", "records"], "properties": {
            "source_key": text,
            "records": {"type": "array", "items": {"type": "object",
                "required": ["localId", "originId", "revision", "contentHash"], "properties": {
                "localId": text, "originId": text, "revision": count_schema(), "contentHash": text}}}}})
        }
        ("POST", "users") => {
            json!({"type": "object", "required": ["name"], "properties": {"name": name_schema()}})
        }
        ("PUT", "grants") => {
            json!({"type": "object", "required": ["user", "tenant", "role"], "properties": {
            "user": text, "tenant": text, "role": {"type": "string", "enum": ["viewer", "editor", "admin", "owner"]}}})
        }
        ("POST", "tokens") => {
            let at = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
            json!({"type": "object", "required": ["hash", "user"], "properties": {
            "hash": text, "user": text, "tenant": opt_text, "expires_at": {"type": ["string", "null"], "pattern": at}}})
        }
        ("DELETE", "{tenant}") => {
            json!({"type": "object", "required": ["revision"], "properties": {
            "revision": count_schema(), "force": {"type": "boolean"}}})
        }
        ("PUT", "{variable}") => {
            json!({"type": "object", "required": ["ciphertext"], "properties": {
            "ciphertext": {"type": "string", "pattern": "^ENC\\[age,[A-Za-z0-9+/=]+\\]$"}}})
        }
        ("POST", "plan") => {
            let pairs = json!({"type": "array", "items": {"type": "array", "prefixItems": [text, text], "minItems": 2, "maxItems": 2}});
            json!({"type": "object", "required": [], "properties": {
            "paths": {"type": ["array", "null"], "items": text}, "units": pairs, "since": opt_text,
            "changed": texts, "present": texts, "files": {"type": "object", "additionalProperties": text},
            "commit": opt_text, "prune": {"type": "boolean"},
            "tenant_file": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": text, "environment": opt_text, "recipient": opt_text, "variables": texts}}]}}})
        }
        ("POST", "export") => {
            let pairs = json!({"type": "array", "items": {"type": "array", "prefixItems": [text, text], "minItems": 2, "maxItems": 2}});
            json!({"type": "object", "required": [], "properties": {"have": pairs}})
        }
        _ => return None,
    };
    Some(schema)
}

/// Whether a route's request body is required, and its schema: what the handler accepts.
fn body_schema(method: &str, path: &str) -> (bool, Value) {
    if let Some(schema) = store_body(method, path) {
        return (true, schema);
    }
    let guardrail = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "enabled": {"type": ["boolean", "null"]}, "config": {}}});
    let mapping = json!({"type": "object", "required": ["sourceAgentId"], "additionalProperties": false, "properties": {
        "sourceAgentId": {"type": "string", "minLength": 1},
        "sourceAgentVersion": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_NUMBER},
        "targetAgentId": {"type": ["string", "null"]},
        "selectedResources": {"type": ["array", "null"], "items": {"type": "string"}},
        "workflowOrder": {"type": ["array", "null"], "items": {"type": "string"}}}});
    let last = path.rsplit('/').next().unwrap_or_default();
    match (method, last) {
        (_, "import" | "preview") => (true, json!({"type": "string", "format": "binary"})),
        (_, "batch") => (
            true,
            json!({"type": "array", "minItems": 1, "items": mapping}),
        ),
        (_, "instructions") => (
            true,
            text_body(
                &["text", "instructions", "content"],
                &["name", "instruction_id", "id"],
            ),
        ),
        (_, "corpora") => (
            true,
            list_body(&["corpora", "corpus_ids", "knowledgeBases", "ids"]),
        ),
        (_, "annotates") => (true, list_body(&["tags"])),
        (_, "access") => (
            true,
            text_body(&["access", "access_level", "accessLevel"], &[]),
        ),
        ("POST" | "PUT", "folder") => {
            let folder = json!({"type": "object", "additionalProperties": false, "properties": {
                "folderUrl": {"type": "string", "pattern": "^https://[^/@\\s]+(/.*)?$",
                              "description": "The folder's https:// URL"},
                "name": {"type": ["string", "null"]},
                "includeSubfolders": {"type": ["boolean", "null"]}}});
            let mut create = folder.clone();
            create["required"] = json!(["folderUrl"]);
            (true, if method == "POST" { create } else { folder })
        }
        (_, "rollback") => (true, text_body(&["change_track_id", "changeTrackId"], &[])),
        (_, "guardrails") => (
            true,
            json!({"anyOf": [
                {"type": "array", "items": guardrail},
                {"type": "object", "required": ["guardrails"], "properties": {"guardrails": {"type": "array", "items": guardrail}}},
                guardrail]}),
        ),
        (_, "publish") => (
            false,
            json!({"type": "object", "properties": {"message": {"type": "string"}, "description": {"type": "string"}}}),
        ),
        _ => (true, json!({"type": "object"})),
    }
}

/// The schema of a route's 200 answer, where the document describes it.
fn answer_schema(method: &str, path: &str) -> Option<Value> {
    let text_or_null = json!({"type": ["string", "null"]});
    let number = json!({"type": "integer", "minimum": 0});
    match (method, path) {
        ("GET", "/api/v2/agents/{agent_id}") => Some(json!({
            "type": "object",
            "required": ["id", "name", "syncable", "spec", "draftRevision", "productionVersion",
                         "versions", "createdBy", "lastChangedBy", "lastChangedAt"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "syncable": {"type": "boolean"},
                "spec": {"type": "object", "description": "The staging (draft) configuration, references by ID"},
                "draftRevision": {"type": "integer", "minimum": 0,
                                  "description": "1 when created, one more at each change of the draft's content"},
                "productionVersion": {"type": ["integer", "null"], "minimum": 1,
                                      "description": "The published version production runs; null when not in production"},
                "versions": {"type": "array", "description": "Every published version, oldest first", "items": {
                    "type": "object",
                    "required": ["version", "changeTrackId", "publishedBy", "publishedAt"],
                    "properties": {
                        "version": number,
                        "changeTrackId": text_or_null,
                        "publishedBy": text_or_null,
                        "publishedAt": {"type": "string"}
                    }
                }},
                "createdBy": {"type": ["string", "null"],
                              "description": "Who created the agent (the store's record of its first write, else metadata.createdBy)"},
                "lastChangedBy": {"type": ["string", "null"], "description": "Who last changed the draft's content"},
                "lastChangedAt": {"type": ["string", "null"], "description": "When the draft's content last changed, RFC 3339"}
            }
        })),
        _ => None,
    }
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for d in ROUTES {
        let mut params: Vec<Value> = path_params(d.path)
            .into_iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": path_schema(p)}))
            .collect();
        params.extend(d.query.iter().map(|q| {
            let (required, schema) = query_schema(q);
            json!({"name": q, "in": "query", "required": required, "schema": schema})
        }));
        let secured = !matches!(
            d.path,
            "/health" | "/openapi.json" | "/api/tenant/sync/steps"
        );
        let mut op = json!({
            "summary": d.summary,
            "tags": [d.tag],
            "operationId": format!("{}{}", d.method.to_lowercase(), d.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"}
            }
        });
        if let Some(schema) = answer_schema(d.method, d.path) {
            op["responses"]["200"] =
                json!({"description": "OK", "content": {"application/json": {"schema": schema}}});
        }
        if let Some(media) = d.body {
            let (required, schema) = body_schema(d.method, d.path);
            op["requestBody"] =
                json!({"required": required, "content": {media: {"schema": schema}}});
        }
        if d.path.ends_with("/batch") {
            op["responses"]["207"] =
                json!({"description": "Some items failed; each item says which"});
        }
        if d.body == ZIP {
            for status in ["413", "415"] {
                op["responses"][status] = json!({"$ref": "#/components/responses/Error"});
            }
        }
        if !secured {
            op["security"] = json!([]);
        }
        let entry = paths
            .entry(d.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[d.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "ferry", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Tenant sync, agent sync and ZIP, staging and publishing over the ferry store."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}}}}
            }}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_described_and_every_description_is_routed() {
        let registry = crate::server::registry();
        let registered: BTreeSet<(String, String)> =
            registry.registered().iter().cloned().collect();
        let described: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|d| (d.method.to_string(), d.path.to_string()))
            .collect();
        assert_eq!(
            registered.len(),
            registry.registered().len(),
            "a route registered twice"
        );
        assert_eq!(registered, described);
        let refused = crate::server::registry().add(
            Method::GET,
            "/not/in/the/table",
            axum::routing::get(|| async { "" }),
        );
        let err = refused.into_router().unwrap_err();
        assert!(err.to_string().contains("GET /not/in/the/table"), "{err}");
        assert!(registry.into_router().is_ok());
        let doc = document();
        for d in ROUTES {
            assert!(
                doc["paths"][d.path][d.method.to_lowercase()].is_object(),
                "{} {}",
                d.method,
                d.path
            );
        }
    }

    #[test]
    fn bodies_and_parameters_are_described_as_the_handlers_read_them() {
        let doc = document();
        let op = |m: &str, p: &str| doc["paths"][p][m].clone();
        let sync = op("post", "/api/tenant/sync/{targetTenantId}/{step}");
        let step = sync["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "step")
            .unwrap()
            .clone();
        assert_eq!(step["schema"]["enum"][0], "documents", "{step}");
        let import = op("post", "/backup/import");
        assert!(import["responses"]["415"].is_object(), "{import}");
        let version = &import["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "baseRevision")
            .unwrap()["schema"];
        assert_eq!(version["type"], "integer");
        let instructions = op("post", "/api/v2/agents/{agent_id}/instructions");
        let schema = &instructions["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["anyOf"].as_array().unwrap().len(), 3, "{schema}");
        let batch = op("post", "/backup/import/sync/batch");
        let schema = &batch["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["items"]["required"][0], "sourceAgentId", "{schema}");
        let publish = op("post", "/api/v2/agents/{agent_id}/publish");
        assert_eq!(publish["requestBody"]["required"], false);
        let agent = op("get", "/api/v2/agents/{agent_id}");
        let answer = &agent["responses"]["200"]["content"]["application/json"]["schema"];
        for field in [
            "draftRevision",
            "productionVersion",
            "versions",
            "createdBy",
            "lastChangedAt",
        ] {
            assert!(answer["properties"][field].is_object(), "{field}: {answer}");
        }
        assert_eq!(op("get", "/api/tenant/sync/steps")["security"], json!([]));
        // ferry's own API: each body names the fields its handler requires.
        let body = |m: &str, p: &str| {
            op(m, &format!("/api/ferry/v1{p}"))["requestBody"]["content"]["application/json"]
                ["schema"]
                .clone()
        };
        let required = |m: &str, p: &str| body(m, p)["required"].clone();
        assert_eq!(required("post", "/users"), json!(["name"]));
        assert_eq!(
            required("put", "/grants"),
            json!(["user", "tenant", "role"])
        );
        assert_eq!(required("post", "/tokens/lookup"), json!(["hash"]));
        assert_eq!(
            required("post", "/tenants/{tenant}/drafts/lookup"),
            json!(["ids"])
        );
        assert_eq!(
            required("post", "/tenants/{tenant}/syncs"),
            json!(["source_key", "records"])
        );
        assert_eq!(
            required("put", "/tenants/{tenant}/versions"),
            json!(["versions"])
        );
        assert_eq!(
            required("post", "/tenants/{tenant}/publishes"),
            json!(["record", "versions"])
        );
        let write = body("post", "/tenants/{tenant}/write");
        assert_eq!(write["properties"]["base_revision"]["maximum"], MAX_NUMBER);
        let syncs = op("get", "/api/ferry/v1/tenants/{tenant}/syncs");
        assert_eq!(syncs["parameters"][1]["name"], "source");
        assert_eq!(syncs["parameters"][1]["required"], true);
        for d in ROUTES
            .iter()
            .filter(|d| d.path.starts_with("/api/ferry/v1/") && d.body.is_some())
        {
            let m = d.method.to_lowercase();
            assert!(
                body(&m, &d.path["/api/ferry/v1".len()..])["required"].is_array(),
                "{} {}",
                d.method,
                d.path
            );
        }
    }
}
