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
use crate::backend::store::{Store, StoreError};
use crate::domain::access::Role;
use crate::domain::model::{Kind, RefSite, Resource, Spec, TenantModel};
use crate::domain::tagging::PublishTagger;
use crate::domain::tree::MemoryTree;
use crate::service::access::{authorize, Actor};
use crate::service::gitplan;
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
    /// The actor may not read the tenant.
    #[error(transparent)]
    Access(#[from] crate::domain::access::AccessError),
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
    /// Whether every resource is the tenant's draft as read ([`scope`]),
    /// so that no second read is needed to tell whether the export is what
    /// the last applied commit holds.
    pub drafts: bool,
}

fn id_of(r: &Resource) -> String {
    r.id().unwrap_or_default().to_string()
}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> ExportError {
        ExportError::Pipeline(e.into())
    }
}

/// `actor` may export `tenant`, as a ZIP or into a folder: a viewer.
pub fn authorize_export<E: From<crate::domain::access::AccessError> + From<StoreError>>(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(), E> {
    authorize::<E>(store, actor, tenant, Role::Viewer, "exporting")
}

/// Compute what an export of `scope` holds, with its preview tree, for
/// `actor` (a viewer).
pub fn scope(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    scope: &Scope,
) -> Result<Scoped, ExportError> {
    authorize_export::<ExportError>(store, actor, tenant)?;
    // One agent's export reads the agent and what it references, not the
    // tenant; an agent not found leaves the model empty, and `scope_in`
    // says so.
    let full = match scope {
        Scope::Agent(agent) => {
            let closure = crate::service::publishing::agent_closure(store, tenant, agent);
            let ids = closure.map_err(PipelineError::from)?.unwrap_or_default();
            pipeline::export_model_of(store, tenant, &ids)?
        }
        Scope::All => pipeline::export_model(store, tenant)?,
    };
    let mut scoped = scope_in(full, tenant, scope)?;
    scoped.drafts = true;
    Ok(scoped)
}

/// The tenant as of one published version of an agent (tree form): that
/// version of the agent, every other resource as in production (its latest
/// published version), and drafts for what was never published; for
/// `actor` (a viewer).
pub fn model_at_version(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: &str,
    version: u64,
) -> Result<TenantModel, ExportError> {
    authorize_export::<ExportError>(store, actor, tenant)?;
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
///
/// The steps: [`roots_of`] the scope, the walk from them ([`ScopeWalk`]),
/// for a whole tenant the resources no agent reaches ([`ScopeWalk::add_unreached`]),
/// and the model of everything reached.
pub fn scope_in(mut full: TenantModel, tenant: &str, scope: &Scope) -> Result<Scoped, ExportError> {
    let roots = roots_of(&full, tenant, scope)?;
    let mut walk = ScopeWalk::default();
    walk.run(&full, &roots);
    if *scope == Scope::All {
        walk.add_unreached(&full);
    }
    let agent = match scope {
        Scope::Agent(_) => roots.first().and_then(|(k, n)| full.get(*k, n)).map(id_of),
        Scope::All => None,
    };
    // Move what the walk reached out of the full model; nothing is copied.
    // A whole-tenant walk reaches everything: the full model is the model.
    let everything = walk.seen.len() == full.resources.len()
        && walk.seen.iter().all(|k| full.resources.contains_key(k));
    let model = if everything {
        full
    } else {
        let mut model = TenantModel::default();
        for (k, n) in walk.seen {
            if let Some(r) = full.resources.remove(&(k, n)) {
                model.insert(r);
            }
        }
        model
    };
    Ok(Scoped {
        model,
        agent,
        entries: walk.entries,
        drafts: false,
    })
}

/// Where the walk starts: the one agent (by name or ID), or every agent.
fn roots_of(
    full: &TenantModel,
    tenant: &str,
    scope: &Scope,
) -> Result<Vec<(Kind, String)>, ExportError> {
    match scope {
        Scope::Agent(a) => {
            let found = full
                .iter()
                .find(|r| r.kind() == Kind::Agent && (r.name() == a || r.id() == Some(a.as_str())))
                .ok_or_else(|| ExportError::NoAgent {
                    tenant: tenant.to_string(),
                    agent: a.clone(),
                })?;
            Ok(vec![(Kind::Agent, found.name().to_string())])
        }
        Scope::All => Ok(full
            .iter()
            .filter(|r| r.kind() == Kind::Agent)
            .map(|r| (Kind::Agent, r.name().to_string()))
            .collect()),
    }
}

/// The walk of an export's scope, breadth-first from its roots: the preview
/// entries in walk order and the resources reached.
#[derive(Default)]
struct ScopeWalk {
    entries: Vec<ExportEntry>,
    seen: HashSet<(Kind, String)>,
    queue: VecDeque<Pending>,
}

/// The preview entry of a whole resource.
fn resource_entry(
    r: &Resource,
    parent: Option<String>,
    position: Option<usize>,
    required: bool,
) -> ExportEntry {
    ExportEntry {
        id: id_of(r),
        resource_type: resource_type(r.kind()).to_string(),
        name: r.name().to_string(),
        parent,
        position,
        required,
    }
}

impl ScopeWalk {
    /// Walk from `roots` (each required) until nothing new is reached.
    fn run(&mut self, full: &TenantModel, roots: &[(Kind, String)]) {
        self.queue = roots
            .iter()
            .map(|k| (k.clone(), None, None, true))
            .collect();
        while let Some((key, parent, position, required)) = self.queue.pop_front() {
            if !self.seen.insert(key.clone()) {
                continue;
            }
            let Some(r) = full.get(key.0, &key.1) else {
                continue;
            };
            let is_root = parent.is_none() && required;
            self.entries
                .push(resource_entry(r, parent, position, required));
            self.visit(r, is_root);
        }
    }

    /// Queue a reference of the entry `parent` for the walk.
    fn follow(&mut self, site: &RefSite, name: &str, parent: &str, required: bool) {
        self.queue.push_back((
            (site.target, name.to_string()),
            Some(parent.to_string()),
            Some(site.position),
            required,
        ));
    }

    /// What one reached resource adds: an agent's workflows first (required
    /// with the root agent), then its snippets; a workflow's steps, each
    /// followed by its references; then every other reference.
    fn visit(&mut self, r: &Resource, is_root: bool) {
        let id = id_of(r);
        let refs = r.refs();
        let agent_workflow =
            |site: &RefSite| r.kind() == Kind::Agent && site.target == Kind::Workflow;
        for (site, n) in refs.iter().filter(|(s, _)| agent_workflow(s)) {
            self.follow(site, n, &id, is_root);
        }
        match &r.spec {
            Spec::Agent(a) => {
                for (i, s) in a.snippets.iter().enumerate() {
                    self.entries.push(ExportEntry {
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
                    self.entries.push(ExportEntry {
                        id: sid.clone(),
                        resource_type: "workflowStep".into(),
                        name: s.name.clone().unwrap_or_else(|| s.step_type.clone()),
                        parent: Some(id.clone()),
                        position: Some(i),
                        required: false,
                    });
                    for (site, n) in refs.iter().filter(|(s, _)| s.item == Some(i)) {
                        self.follow(site, n, &sid, false);
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
            self.follow(site, n, &id, false);
        }
    }

    /// A whole tenant's export holds what no agent reaches too, as top-level entries.
    fn add_unreached(&mut self, full: &TenantModel) {
        for r in full.iter() {
            if self.seen.insert((r.kind(), r.name().to_string())) {
                self.entries.push(resource_entry(r, None, None, false));
            }
        }
    }
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

/// Export `scope` of a tenant as ZIP bytes with a manifest, for `actor` (a viewer).
pub fn export_zip(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    scope_of: &Scope,
    selected: Option<&[String]>,
    instance: &str,
    created_at: &str,
) -> Result<Exported, ExportError> {
    let scoped = scope(store, actor, tenant, scope_of)?;
    export_scoped(store, tenant, scoped, selected, instance, created_at, None)
}

/// Export an already scoped model (e.g. from [`model_at_version`] and [`scope_in`]) as ZIP bytes.
/// The manifest names a commit only when it holds what the archive holds
/// ([`exported_commit`]); `repo` is the config repo, when at hand, to check that.
pub fn export_scoped(
    store: &dyn Store,
    tenant: &str,
    scoped: Scoped,
    selected: Option<&[String]>,
    instance: &str,
    created_at: &str,
    repo: Option<&dyn PublishTagger>,
) -> Result<Exported, ExportError> {
    let commit = exported_commit(store, tenant, &scoped, repo)?;
    let mut model = match selected {
        Some(s) => select(&scoped, s)?,
        None => scoped.model,
    };
    let scrubbed = scrub_model(&mut model);
    let tree: MemoryTree = crate::domain::tree::encode_owned_model(model)?;
    let manifest = Manifest::for_tree(
        &tree,
        ManifestSource {
            instance: instance.to_string(),
            tenant: tenant.to_string(),
            dirty: commit.is_none(),
            commit,
        },
        created_at,
        scoped.agent.clone(),
    );
    let bytes = crate::backend::archive::write_with_manifest(tree, &manifest)?;
    Ok(Exported {
        bytes,
        manifest,
        scrubbed,
    })
}

/// What a whole-tenant export wrote ([`export_all`]).
#[derive(Debug, Clone)]
pub struct Written {
    /// The archive's size in bytes.
    pub bytes: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// How many credentials were scrubbed.
    pub scrubbed: usize,
}

/// Export every draft of a tenant (scope [`Scope::All`], nothing selected)
/// as a ZIP with a manifest, written into `out` (a file, say) from its
/// start: the same archive as [`export_scoped`] of [`scope`], byte for
/// byte, without ever holding the decoded tenant, its whole tree or the
/// whole archive. The drafts are read, rendered, scrubbed and encoded a
/// chunk at a time ([`pipeline::encode_drafts_chunked`]); each chunk's files
/// are hashed as they come, compressed on the other cores while the next
/// chunks are read and encoded, and spilled to a temporary file
/// ([`crate::backend::archive::SpilledParts`]); at the end the compressed
/// entries are copied into `out` in name order. The paths the last applied
/// commit is checked against are the archive's own; the commit's are read
/// from git on a thread of their own meanwhile.
pub fn export_all<W: std::io::Write + std::io::Seek>(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    instance: &str,
    created_at: &str,
    repo: Option<&(dyn PublishTagger + Sync)>,
    out: W,
) -> Result<(Written, W), ExportError> {
    authorize_export::<ExportError>(store, actor, tenant)?;
    use crate::backend::archive::{self, SpilledParts};
    let gathered = std::sync::Mutex::new(Gathered {
        spill: SpilledParts::new()?,
        failed: None,
    });
    let record = store.tenant(tenant).map_err(PipelineError::from)?;
    let manifest = std::thread::scope(|t| {
        // The last applied commit's side of the check that the archive is
        // that commit's tree, read from git while the drafts are encoded.
        let at_commit = t.spawn(|| match (repo, record.last_commit.as_deref()) {
            (Some(repo), Some(last)) => {
                gitplan::AtCommit::Read(gitplan::units_at(repo, tenant, last))
            }
            _ => gitplan::AtCommit::NoRepo,
        });
        rayon::in_place_scope(|s| {
            // Each chunk's entries are hashed here, and compressed on the
            // other cores while the next chunks are read and encoded.
            let mut entries = BTreeMap::new();
            let (scrubbed, _) = pipeline::encode_drafts_chunked(
                store,
                tenant,
                crate::domain::secrets::scrub,
                false,
                &mut |files| {
                    entries.extend(
                        files
                            .iter()
                            .map(|(p, b)| (p.clone(), archive::entry_hash(b))),
                    );
                    let gathered = &gathered;
                    s.spawn(move |_| {
                        let part = archive::pack_entries(files);
                        if let Ok(mut g) = gathered.lock() {
                            g.gather(part);
                        }
                    });
                    true
                },
            )?;
            // The manifest is made and compressed here while the last
            // chunks are compressed on the other cores.
            // A read that panicked counts as unreadable: no commit, dirty.
            let at_commit = at_commit.join().unwrap_or(gitplan::AtCommit::Read(None));
            let manifest =
                manifest_of_export(store, &record, instance, created_at, at_commit, entries)?;
            let part = archive::pack_manifest(&manifest);
            if let Ok(mut g) = gathered.lock() {
                g.gather(part);
            }
            Ok::<_, ExportError>((manifest, scrubbed))
        })
    });
    let (manifest, scrubbed) = manifest?;
    let Gathered { spill, failed } = gathered.into_inner().map_err(|_| ArchiveError::Write {
        reason: "a thread compressing entries failed".into(),
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let mut out = spill.join_into(out)?;
    let bytes = out.stream_position().map_err(|e| ArchiveError::Write {
        reason: e.to_string(),
    })?;
    let written = Written {
        bytes,
        manifest,
        scrubbed,
    };
    Ok((written, out))
}

/// The manifest of a whole-tenant export of `entries` (path and hash):
/// its source commit is the last applied one when the archive is that
/// commit's tree.
fn manifest_of_export(
    store: &dyn Store,
    record: &crate::backend::store::TenantRecord,
    instance: &str,
    created_at: &str,
    at_commit: gitplan::AtCommit,
    entries: BTreeMap<String, String>,
) -> Result<Manifest, ExportError> {
    let in_store = matches!(at_commit, gitplan::AtCommit::Read(Some(_))).then(|| {
        let paths: Vec<String> = entries.keys().cloned().collect();
        let (units, _) = crate::domain::tree::units_of(&paths);
        units.into_iter().map(|(p, _)| p).collect()
    });
    let commit = gitplan::applied_commit_given(store, record, at_commit, in_store)
        .map_err(PipelineError::from)?;
    let source = ManifestSource {
        instance: instance.to_string(),
        tenant: record.name.clone(),
        dirty: commit.is_none(),
        commit,
    };
    Ok(Manifest::for_entries(entries, source, created_at, None))
}

/// What the compressing side of [`export_all`] gathers from its threads:
/// the compressed parts, spilled to a temporary file, and the first
/// failure.
struct Gathered {
    spill: crate::backend::archive::SpilledParts,
    failed: Option<ArchiveError>,
}

impl Gathered {
    /// Keep one compressed part, or its failure.
    fn gather(&mut self, part: Result<crate::backend::archive::PackedPart, ArchiveError>) {
        if let Err(e) = part.and_then(|p| self.spill.add(p)) {
            self.failed.get_or_insert(e);
        }
    }
}

/// The commit whose tree holds `exported` as it is: the commit the tenant's
/// drafts were last applied from ([`gitplan::applied_commit`]), when every
/// exported resource is its draft (an export of an older published version
/// is not); else `None`.
fn exported_commit(
    store: &dyn Store,
    tenant: &str,
    exported: &Scoped,
    repo: Option<&dyn PublishTagger>,
) -> Result<Option<String>, ExportError> {
    let record = store.tenant(tenant).map_err(PipelineError::from)?;
    // An export of every draft names every path the store holds; the paths
    // are only compared when there is a commit and a repo to compare with.
    let every_draft = exported.drafts
        && repo.is_some()
        && record.last_commit.is_some()
        && u64::try_from(exported.model.resources.len()).ok() == Some(record.resources);
    let in_store = every_draft.then(|| {
        exported
            .model
            .iter()
            .map(|r| crate::domain::model::resource_path(r.kind(), r.name()))
            .collect()
    });
    let Some(commit) =
        gitplan::applied_commit_of(store, repo, &record, in_store).map_err(PipelineError::from)?
    else {
        return Ok(None);
    };
    if exported.drafts {
        return Ok(Some(commit));
    }
    let drafts = pipeline::export_model(store, tenant)?;
    let all_drafts = exported
        .model
        .iter()
        .all(|r| drafts.get(r.kind(), r.name()) == Some(r));
    Ok(all_drafts.then_some(commit))
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

    /// One agent's scope, read from its reference closure, is the scope the
    /// whole tenant's model gives, for every agent; and it reads the
    /// agent's closure, not the tenant (230 more tools change nothing).
    #[test]
    fn an_agent_scope_reads_the_agent_closure_only() {
        use crate::backend::store::ResourceStore;
        let (_tmp, mut store) = crate::service::pipeline::tests::applied();
        let t = "acme-dev";
        let anyone = Actor::default();
        let agents: Vec<String> = store
            .id_names(t)
            .unwrap()
            .iter()
            .filter(|(_, k, _)| *k == Kind::Agent)
            .map(|(_, _, n)| n.to_string())
            .collect();
        assert!(agents.len() > 1);
        let rows_of = |store: &crate::backend::store::sqlite::SqliteStore, agent: &str| {
            let before = store.rows_read();
            let scoped = scope(store, &anyone, t, &Scope::Agent(agent.to_string())).unwrap();
            (scoped, store.rows_read() - before)
        };
        let mut rows_before = Vec::new();
        for agent in &agents {
            let whole = pipeline::export_model(&store, t).unwrap();
            let expected = scope_in(whole, t, &Scope::Agent(agent.clone())).unwrap();
            let (scoped, rows) = rows_of(&store, agent);
            assert_eq!(scoped.model, expected.model, "{agent}");
            assert_eq!(
                (scoped.entries, scoped.agent),
                (expected.entries, expected.agent)
            );
            rows_before.push(rows);
        }
        crate::service::pipeline::tests::add_tools(&mut store, t, 230);
        let rows_after: Vec<u64> = agents.iter().map(|a| rows_of(&store, a).1).collect();
        assert_eq!(rows_after, rows_before);
        let missing = scope(&store, &anyone, t, &Scope::Agent("nobody".into()));
        assert!(matches!(missing, Err(ExportError::NoAgent { .. })));
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

    fn agent(name: &str, tools: &[&str]) -> Resource {
        resource(
            Kind::Agent,
            name,
            json!({"type": "chat", "model": {"provider": "p", "name": "m"}, "tools": tools}),
        )
    }

    #[test]
    fn roots_are_the_agent_by_name_or_id_or_every_agent() {
        let mut full = TenantModel::default();
        full.insert(agent("a", &[]));
        full.insert(agent("b", &[]));
        let by_name = roots_of(&full, "t", &Scope::Agent("b".into())).unwrap();
        assert_eq!(by_name, [(Kind::Agent, "b".to_string())]);
        let by_id = roots_of(&full, "t", &Scope::Agent("id-a".into())).unwrap();
        assert_eq!(by_id, [(Kind::Agent, "a".to_string())]);
        assert_eq!(roots_of(&full, "t", &Scope::All).unwrap().len(), 2);
        let e = roots_of(&full, "t", &Scope::Agent("nobody".into())).unwrap_err();
        assert_eq!(e.to_string(), "agent `nobody` does not exist in tenant `t`");
    }

    #[test]
    fn a_walk_reaches_each_resource_once_and_skips_missing_ones() {
        let mut full = TenantModel::default();
        full.insert(agent("a", &["shared", "gone"]));
        full.insert(agent("b", &["shared"]));
        full.insert(resource(Kind::Tool, "shared", json!({"type": "http"})));
        let mut walk = ScopeWalk::default();
        walk.run(
            &full,
            &[
                (Kind::Agent, "a".to_string()),
                (Kind::Agent, "b".to_string()),
            ],
        );
        let names: Vec<&str> = walk.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "shared"]);
        assert_eq!(walk.seen.len(), 4, "the missing tool is seen, not listed");
    }

    #[test]
    fn a_whole_tenant_adds_what_no_agent_reaches_at_the_top() {
        let mut full = TenantModel::default();
        full.insert(agent("a", &[]));
        full.insert(resource(Kind::Tool, "loose", json!({"type": "http"})));
        let mut walk = ScopeWalk::default();
        walk.run(&full, &[(Kind::Agent, "a".to_string())]);
        walk.add_unreached(&full);
        let loose = walk.entries.last().unwrap();
        assert_eq!(
            (loose.name.as_str(), &loose.parent, loose.required),
            ("loose", &None, false)
        );
        assert_eq!(walk.entries.len(), 2);
        let scoped = scope_in(full, "t", &Scope::All).unwrap();
        assert_eq!(scoped.model.len(), 2);
        assert_eq!(scoped.agent, None);
    }

    #[test]
    fn an_agent_lists_its_snippets_under_it() {
        let mut a = agent("a", &[]);
        if let Spec::Agent(spec) = &mut a.spec {
            spec.snippets =
                serde_json::from_value(json!([{"name": "greet", "text": "hi"}])).unwrap();
        }
        let mut walk = ScopeWalk::default();
        walk.visit(&a, true);
        assert_eq!(walk.entries[0].id, "id-a#snippet:greet");
        assert_eq!(walk.entries[0].resource_type, "snippet");
    }
}
