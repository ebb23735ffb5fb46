//! Export: an agent and what it needs (or a whole tenant) as an archive tree.
//!
//! The scope is computed on the tenant model in tree form (references by
//! name): from the agent, its workflows (and their steps' tools, knowledge
//! bases and sub-workflows), tools, their connections and knowledge bases,
//! knowledge bases' documents, and sub-agents, recursively; built-in tools
//! are never exported. The preview is the same walk as a tree of entries,
//! each with id, kind, name, parent, position and `required`; sub-entries
//! (workflow steps, prompt snippets) get stable ids `<id>#step:<n>` and
//! `<id>#snippet:<name>`. Credentials are scrubbed from every spec before
//! anything is encoded.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use serde::Serialize;

use crate::backend::archive::{resource_type, ArchiveError, Manifest, ManifestSource};
use crate::backend::store::Store;
use crate::domain::model::{Kind, RefSite, Resource, Spec, TenantModel};
use crate::domain::tree::MemoryTree;
use crate::service::pipeline::{self, PipelineError};

/// A resource waiting in the walk: key, parent entry id, position, required.
type Pending = ((Kind, String), Option<String>, Option<usize>, bool);

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One agent (by name or ID) and what it needs.
    Agent(String),
    /// Every resource of the tenant.
    All,
}

/// One entry of the export preview tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportEntry {
    /// Resource ID, or `<id>#step:<n>` / `<id>#snippet:<name>` for sub-entries.
    pub id: String,
    /// `agent`, `workflow`, `tool`, …, `workflowStep`, `snippet`.
    pub resource_type: String,
    /// Name (a step's name, else its type URI).
    pub name: String,
    /// The entry this one hangs under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Position in its parent's list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Whether it is always exported (the agent and its workflows).
    pub required: bool,
}

/// Why an export failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The agent does not exist.
    #[error("agent `{agent}` does not exist in tenant `{tenant}`")]
    NoAgent {
        /// The tenant.
        tenant: String,
        /// The name or ID asked for.
        agent: String,
    },
    /// A selected ID is not in the export preview.
    #[error("selected id `{id}` is not part of this export; see --preview for the ids")]
    UnknownSelection {
        /// The ID.
        id: String,
    },
    /// The agent has no such published version.
    #[error("agent `{agent}` has no published version {version} (latest: {latest})")]
    NoVersion {
        /// The agent asked for.
        agent: String,
        /// The version asked for.
        version: u64,
        /// The latest published version (0: never published).
        latest: u64,
    },
    /// `--selected` was given but empty.
    #[error("--selected is empty; leave it out to export everything")]
    EmptySelection,
    /// The archive could not be written.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A resource could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::domain::yaml::EncodeError),
}

/// A scoped export: the resources (tree form), the root agent and the preview.
#[derive(Debug, Clone)]
pub struct Scoped {
    /// The resources in scope, tree form, IDs set.
    pub model: TenantModel,
    /// The ID of the root agent (agent scope).
    pub agent: Option<String>,
    /// The preview tree, in walk order.
    pub entries: Vec<ExportEntry>,
}

fn id_of(r: &Resource) -> String {
    r.id().unwrap_or_default().to_string()
}

/// Compute what an export of `scope` holds, with its preview tree.
pub fn scope(store: &dyn Store, tenant: &str, scope: &Scope) -> Result<Scoped, ExportError> {
    let full = pipeline::export_model(store, tenant)?;
    scope_in(full, tenant, scope)
}

/// The tenant as of one published version of an agent (tree form): that
/// version of the agent, every other resource as in production (its latest
/// published version), and drafts for what was never published.
pub fn model_at_version(
    store: &dyn Store,
    tenant: &str,
    agent: &str,
    version: u64,
) -> Result<TenantModel, ExportError> {
    let drafts = store.all_drafts(tenant).map_err(PipelineError::from)?;
    let production = store.production(tenant).map_err(PipelineError::from)?;
    let mut by_id: BTreeMap<String, Resource> = drafts
        .into_iter()
        .chain(production)
        .filter_map(|r| r.id().map(|id| (id.to_string(), r.clone())))
        .collect();
    let id = by_id
        .values()
        .find(|r| r.kind() == Kind::Agent && (r.name() == agent || r.id() == Some(agent)))
        .and_then(|r| r.id().map(str::to_string))
        .ok_or_else(|| ExportError::NoAgent {
            tenant: tenant.to_string(),
            agent: agent.to_string(),
        })?;
    let versions = store
        .versions(tenant, std::slice::from_ref(&id))
        .map_err(PipelineError::from)?;
    let latest = versions.iter().map(|v| v.version).max().unwrap_or(0);
    let at = versions
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ExportError::NoVersion {
            agent: agent.to_string(),
            version,
            latest,
        })?;
    by_id.insert(id, at.resource);
    let names = crate::domain::validate::NameTable::of_resources(by_id.values());
    let mut model = TenantModel::default();
    for r in by_id.values() {
        model.insert(crate::domain::validate::render_names(r, &names));
    }
    Ok(model)
}

/// [`scope`] over a model already read (tree form).
pub fn scope_in(full: TenantModel, tenant: &str, scope: &Scope) -> Result<Scoped, ExportError> {
    let roots: Vec<(Kind, String)> = match scope {
        Scope::Agent(a) => {
            let found = full
                .iter()
                .find(|r| r.kind() == Kind::Agent && (r.name() == a || r.id() == Some(a.as_str())))
                .ok_or_else(|| ExportError::NoAgent {
                    tenant: tenant.to_string(),
                    agent: a.clone(),
                })?;
            vec![(Kind::Agent, found.name().to_string())]
        }
        Scope::All => full
            .iter()
            .filter(|r| r.kind() == Kind::Agent)
            .map(|r| (Kind::Agent, r.name().to_string()))
            .collect(),
    };
    let mut entries = Vec::new();
    let mut seen: HashSet<(Kind, String)> = HashSet::new();
    // (resource key, parent entry id, position, required)
    let mut queue: VecDeque<Pending> = roots
        .iter()
        .map(|k| (k.clone(), None, None, true))
        .collect();
    while let Some((key, parent, position, required)) = queue.pop_front() {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(r) = full.get(key.0, &key.1) else {
            continue;
        };
        let id = id_of(r);
        entries.push(ExportEntry {
            id: id.clone(),
            resource_type: resource_type(r.kind()).to_string(),
            name: r.name().to_string(),
            parent: parent.clone(),
            position,
            required,
        });
        let is_root = parent.is_none() && required;
        // An agent's workflows first (required with the root agent), then its
        // snippets, then every other reference; a step's references follow it.
        let refs = r.refs();
        let push = |site: &RefSite, n: &String, parent: &str, req: bool, q: &mut VecDeque<_>| {
            q.push_back((
                (site.target, n.clone()),
                Some(parent.to_string()),
                Some(site.position),
                req,
            ));
        };
        let agent_workflow =
            |site: &RefSite| r.kind() == Kind::Agent && site.target == Kind::Workflow;
        for (site, n) in refs.iter().filter(|(s, _)| agent_workflow(s)) {
            push(site, n, &id, is_root, &mut queue);
        }
        match &r.spec {
            Spec::Agent(a) => {
                for (i, s) in a.snippets.iter().enumerate() {
                    entries.push(ExportEntry {
                        id: format!("{id}#snippet:{}", s.name),
                        resource_type: "snippet".into(),
                        name: s.name.clone(),
                        parent: Some(id.clone()),
                        position: Some(i),
                        required: false,
                    });
                }
            }
            Spec::Workflow(w) => {
                for (i, s) in w.steps.iter().enumerate() {
                    let sid = format!("{id}#step:{i}");
                    entries.push(ExportEntry {
                        id: sid.clone(),
                        resource_type: "workflowStep".into(),
                        name: s.name.clone().unwrap_or_else(|| s.step_type.clone()),
                        parent: Some(id.clone()),
                        position: Some(i),
                        required: false,
                    });
                    for (site, n) in refs.iter().filter(|(s, _)| s.item == Some(i)) {
                        push(site, n, &sid, false, &mut queue);
                    }
                }
            }
            _ => {}
        }
        // Evaluations are never reached: nothing references one.
        for (site, n) in refs
            .iter()
            .filter(|(s, _)| s.item.is_none() && !agent_workflow(s))
        {
            push(site, n, &id, false, &mut queue);
        }
    }
    if *scope == Scope::All {
        for r in full.iter() {
            if !seen.contains(&(r.kind(), r.name().to_string())) {
                entries.push(ExportEntry {
                    id: id_of(r),
                    resource_type: resource_type(r.kind()).to_string(),
                    name: r.name().to_string(),
                    parent: None,
                    position: None,
                    required: false,
                });
                seen.insert((r.kind(), r.name().to_string()));
            }
        }
    }
    let mut model = TenantModel::default();
    for (k, n) in &seen {
        if let Some(r) = full.get(*k, n) {
            model.insert(r.clone());
        }
    }
    let agent = match scope {
        Scope::Agent(_) => roots.first().and_then(|(k, n)| full.get(*k, n)).map(id_of),
        Scope::All => None,
    };
    Ok(Scoped {
        model,
        agent,
        entries,
    })
}

/// Keep only the selected entries (plus the required ones).
///
/// A resource is kept when it is required or its id is selected. A step or
/// snippet is kept when its own id is selected, or its parent's id is.
pub fn select(scoped: &Scoped, selected: &[String]) -> Result<TenantModel, ExportError> {
    if selected.is_empty() {
        return Err(ExportError::EmptySelection);
    }
    let known: HashSet<&str> = scoped.entries.iter().map(|e| e.id.as_str()).collect();
    if let Some(bad) = selected.iter().find(|s| !known.contains(s.as_str())) {
        return Err(ExportError::UnknownSelection { id: bad.clone() });
    }
    let chosen: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    let required: HashSet<&str> = scoped
        .entries
        .iter()
        .filter(|e| e.required)
        .map(|e| e.id.as_str())
        .collect();
    let mut model = TenantModel::default();
    for r in scoped.model.iter() {
        let id = id_of(r);
        if !(required.contains(id.as_str()) || chosen.contains(id.as_str())) {
            continue;
        }
        let whole = chosen.contains(id.as_str());
        let mut r = r.clone();
        match &mut r.spec {
            Spec::Workflow(w) if !whole => {
                let steps = std::mem::take(&mut w.steps);
                w.steps = steps
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| chosen.contains(format!("{id}#step:{i}").as_str()))
                    .map(|(_, s)| s)
                    .collect();
            }
            Spec::Agent(a) if !whole => {
                a.snippets
                    .retain(|s| chosen.contains(format!("{id}#snippet:{}", s.name).as_str()));
            }
            _ => {}
        }
        model.insert(r);
    }
    Ok(model)
}

/// Replace every credential of every spec with the placeholder; returns how many.
pub fn scrub_model(model: &mut TenantModel) -> usize {
    pipeline::scrub_model_with(model, crate::domain::secrets::scrub)
}

/// What an export made.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The ZIP bytes.
    pub bytes: Vec<u8>,
    /// Its manifest.
    pub manifest: Manifest,
    /// How many credentials were scrubbed.
    pub scrubbed: usize,
}

/// Export `scope` of a tenant as ZIP bytes with a manifest.
pub fn export_zip(
    store: &dyn Store,
    tenant: &str,
    scope_of: &Scope,
    selected: Option<&[String]>,
    instance: &str,
    created_at: &str,
) -> Result<Exported, ExportError> {
    let scoped = scope(store, tenant, scope_of)?;
    export_scoped(store, tenant, scoped, selected, instance, created_at)
}

/// Export an already scoped model (e.g. from [`model_at_version`] and [`scope_in`]) as ZIP bytes.
pub fn export_scoped(
    store: &dyn Store,
    tenant: &str,
    scoped: Scoped,
    selected: Option<&[String]>,
    instance: &str,
    created_at: &str,
) -> Result<Exported, ExportError> {
    let mut model = match selected {
        Some(s) => select(&scoped, s)?,
        None => scoped.model.clone(),
    };
    let scrubbed = scrub_model(&mut model);
    let tree: MemoryTree = crate::domain::tree::encode_model(&model)?;
    let record = store.tenant(tenant).map_err(PipelineError::from)?;
    let manifest = Manifest::for_tree(
        &tree,
        ManifestSource {
            instance: instance.to_string(),
            tenant: tenant.to_string(),
            commit: record.last_commit.clone(),
        },
        created_at,
        scoped.agent.clone(),
    );
    let bytes = crate::backend::archive::write_with_manifest(&tree, &manifest)?;
    Ok(Exported {
        bytes,
        manifest,
        scrubbed,
    })
}

/// Count entries per type in a preview (for summaries).
pub fn preview_counts(entries: &[ExportEntry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(e.resource_type.clone()).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(kind: Kind, name: &str, spec: serde_json::Value) -> Resource {
        Resource {
            metadata: serde_json::from_value(json!({ "name": name, "id": format!("id-{name}") }))
                .unwrap(),
            spec: Spec::from_json(kind, spec).unwrap(),
            content: None,
        }
    }

    /// The scope walk through the one reference visitor: workflows first and
    /// required, step references parented to their step, positions kept,
    /// built-ins never exported.
    #[test]
    fn scope_walks_references_through_the_visitor() {
        let mut full = TenantModel::default();
        full.insert(resource(
            Kind::Agent,
            "bot",
            json!({"type": "chat", "model": {"provider": "p", "name": "m"},
                "tools": ["builtin/web-search", "crm"], "workflows": ["flow"]}),
        ));
        full.insert(resource(
            Kind::Workflow,
            "flow",
            json!({"steps": [{"type": "a"}, {"type": "b", "tools": ["builtin/x", "lookup"]}]}),
        ));
        full.insert(resource(
            Kind::Tool,
            "crm",
            json!({"type": "http", "connection": "api"}),
        ));
        full.insert(resource(Kind::Tool, "lookup", json!({"type": "http"})));
        full.insert(resource(
            Kind::Connection,
            "api",
            json!({"type": "http", "baseUrl": "https://x.test"}),
        ));
        let scoped = scope_in(full, "t", &Scope::Agent("bot".into())).unwrap();
        let rows: Vec<(String, Option<String>, Option<usize>, bool)> = scoped
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.parent.clone(), e.position, e.required))
            .collect();
        let bot = id_of(scoped.model.get(Kind::Agent, "bot").unwrap());
        let flow = id_of(scoped.model.get(Kind::Workflow, "flow").unwrap());
        let crm = id_of(scoped.model.get(Kind::Tool, "crm").unwrap());
        assert_eq!(
            rows,
            vec![
                ("bot".into(), None, None, true),
                ("flow".into(), Some(bot.clone()), Some(0), true),
                ("a".into(), Some(flow.clone()), Some(0), false),
                ("b".into(), Some(flow.clone()), Some(1), false),
                ("crm".into(), Some(bot.clone()), Some(1), false),
                (
                    "lookup".into(),
                    Some(format!("{flow}#step:1")),
                    Some(1),
                    false
                ),
                ("api".into(), Some(crm), Some(0), false),
            ]
        );
        assert_eq!(scoped.model.len(), 5);
    }
}
