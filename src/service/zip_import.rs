//! Import: an archive tree onto a tenant, with the `create`, `merge` and `upgrade` strategies.
//!
//! The pipeline takes an already-read tree (from a ZIP, or from a remote
//! instance for live sync) and never touches a transport. It decodes the
//! tree into a model, decides for every resource which local resource it
//! becomes (a new ID, the resource whose origin or own ID matches, or the
//! structural match of [`crate::domain::matching`]), rewrites it into stored form
//! with the local IDs (restoring the target's own secrets wherever the
//! archive holds a placeholder), and classifies it: CREATE, UPDATE, SKIP
//! (equal after normalisation) or CONFLICT (the target changed since the
//! last sync from this source, a name is taken, or a dependency cannot
//! land). The writes end in [`crate::service::pipeline::plan_resources`] and
//! one [`WriteBatch`] that carries the sync records too, so resources and
//! records land in one transaction, checked against the revision the
//! preview was made at; the records become the baseline of the next sync.
//! [`import_bytes`] is the whole sequence, once, for every front end;
//! [`import_file`] is the same for an archive file, which it reads in place.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::backend::archive::{self, resource_type, ArchiveError, Limits, Manifest, ReadArchive};
use crate::backend::store::{Store, StoreError, SyncRecord, SyncWrite, WriteBatch};
use crate::domain::access::{AccessError, Role};
use crate::domain::diagnostic::{self, Diagnostic};
use crate::domain::ids;
use crate::domain::matching::{self, TargetChoice};
use crate::domain::model::{
    is_builtin, resource_path, Kind, Metadata, Resource, Spec, TenantModel,
};
use crate::domain::plan::DiffOptions;
use crate::domain::secrets::{self, PLACEHOLDER};
use crate::domain::state::{content_hash, Index};
use crate::domain::validate;
use crate::service::access::{authorize, Actor};
use crate::service::apply;
use crate::service::pipeline::{self, PipelineError};

/// How an import maps archive resources onto local ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// New IDs; the origin ID is recorded.
    Create,
    /// Match by origin ID (or own ID); update the match, create the rest.
    Merge,
    /// Structural matching onto a target agent, keeping the target's IDs.
    Upgrade,
}

/// What an import was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The strategy.
    pub strategy: Strategy,
    /// The agent to upgrade (name or ID).
    pub target_agent: Option<String>,
    /// Only these resources (origin or local IDs); a conflict is overwritten only when named here.
    pub selected: Option<Vec<String>>,
    /// Workflows to put first in the agent's list (origin IDs, local IDs or names).
    pub workflow_order: Option<Vec<String>>,
}

/// The action of one preview row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RowAction {
    /// New locally.
    Create,
    /// Exists locally and differs.
    Update,
    /// Exists locally and is equal (or not selected).
    Skip,
    /// Needs review; not written.
    Conflict,
}

/// One row of an import preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `agent`, `workflow`, `tool`, …, `workflowStep`, `snippet`.
    pub resource_type: String,
    /// What happens.
    pub action: RowAction,
    /// The ID in the archive.
    pub origin_id: String,
    /// The local ID.
    pub local_id: String,
    /// The name.
    pub name: String,
    /// The row this one belongs to (steps and snippets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Why, for CONFLICT and for a SKIP that is not about equality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An import preview: the rows, what the target has that the source dropped, and notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImportPreview {
    /// The tenant revision the preview was made at; an import given it is refused once the tenant moved.
    pub base_revision: u64,
    /// One row per resource, then its steps or snippets.
    pub resources: Vec<Row>,
    /// Target resources and parts the source no longer has (reported, never deleted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Row>,
    /// Notes (variables to define, and the like).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Why an import failed as a whole. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive's tree does not decode.
    #[error("the archive is not a valid tree: {}", summary(.diagnostics))]
    Invalid {
        /// Every problem.
        diagnostics: Vec<Diagnostic>,
    },
    /// The store failed (or refused a stale import).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive is refused as a whole (size, paths, manifest).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The actor may not import into the tenant.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    /// `--selected` was given but empty.
    #[error("--selected is empty; leave it out to import everything")]
    EmptySelection,
    /// The target agent does not exist.
    #[error("target agent `{agent}` does not exist in tenant `{tenant}`")]
    NoTargetAgent {
        /// The tenant.
        tenant: String,
        /// The name or ID given.
        agent: String,
    },
    /// More than one local agent came from the source agent.
    #[error("more than one local agent came from source agent `{source_agent}`: {}; choose one with --target-agent", candidates.join(", "))]
    AmbiguousTarget {
        /// The source agent.
        source_agent: String,
        /// The local candidates.
        candidates: Vec<String>,
    },
    /// Upgrade needs an archive of one agent.
    #[error("upgrade needs an archive of one agent; this one holds {agents} agents and names none in manifest.json")]
    NoSourceAgent {
        /// How many agents the archive holds.
        agents: usize,
    },
    /// A workflow of --workflow-order is not one of the agent's.
    #[error("--workflow-order names `{workflow}`, which is not a workflow of the agent")]
    UnknownWorkflow {
        /// What was named.
        workflow: String,
    },
}

fn summary(d: &[Diagnostic]) -> String {
    d.iter()
        .filter(|d| d.severity == diagnostic::Severity::Error)
        .take(5)
        .map(|d| {
            let f = d
                .field
                .as_deref()
                .map(|f| format!(" {f}"))
                .unwrap_or_default();
            format!("{}{f}: {}", d.file, d.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An archive decoded into a model.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The manifest, if it had one.
    pub manifest: Option<Manifest>,
    /// Resources in tree form (references by name), IDs set.
    pub model: TenantModel,
    /// The name of the agent the archive was exported for.
    pub root: Option<String>,
    /// Identifies the source for sync records: `<instance>/<tenant>`.
    pub source_key: String,
}

/// Every `(path, value)` of the strings of a JSON value equal to the placeholder.
fn placeholder_paths(v: &Value, path: &str, out: &mut HashSet<String>) {
    match v {
        Value::String(s) if s == PLACEHOLDER => {
            out.insert(path.to_string());
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| placeholder_paths(x, &format!("{path}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| placeholder_paths(x, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Decode an archive's tree into a model, checking it as a tree. The
/// archive's files are freed as soon as they are decoded, and its manifest
/// moves into the result.
pub fn decode(read: ReadArchive) -> Result<Archive, ImportError> {
    let ReadArchive { tree, manifest } = read;
    let tree = crate::domain::tree::TakenTree::from(tree);
    let loaded =
        crate::domain::tree::read_tree(&tree, &|_, _| false).map_err(PipelineError::from)?;
    drop(tree);
    let mut diags: Vec<Diagnostic> = loaded
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == diagnostic::Severity::Error)
        .collect();
    let source_tenant = manifest
        .as_ref()
        .map(|m| m.source.tenant.clone())
        .or_else(|| loaded.tenant_file.as_ref().map(|t| t.name.clone()))
        .unwrap_or_else(|| "archive".to_string());
    let source_key = match &manifest {
        Some(m) => format!("{}/{}", m.source.instance, m.source.tenant),
        None => format!("archive/{source_tenant}"),
    };
    diags.extend(archive_secrets(&loaded.loaded));
    let mut model = TenantModel::default();
    let mut ids_seen: BTreeMap<String, String> = BTreeMap::new();
    for l in loaded.loaded {
        let mut r = l.resource;
        let id = r
            .metadata
            .id
            .clone()
            .unwrap_or_else(|| ids::derived_id(&source_tenant, r.kind(), r.name()));
        r.metadata.id = Some(id.clone());
        if let Some(other) = ids_seen.insert(id.clone(), l.path.clone()) {
            diags.push(
                Diagnostic::error(
                    l.path.clone(),
                    "duplicate-id",
                    format!("id `{id}` is also used by {other}"),
                )
                .in_field("metadata.id"),
            );
        }
        model.insert(*r);
    }
    if !diags.is_empty() {
        diags.sort();
        return Err(ImportError::Invalid { diagnostics: diags });
    }
    let agents: Vec<&Resource> = model.iter().filter(|r| r.kind() == Kind::Agent).collect();
    let root = match manifest.as_ref().and_then(|m| m.agent.clone()) {
        Some(id) => agents
            .iter()
            .find(|r| r.id() == Some(id.as_str()))
            .map(|r| r.name().to_string()),
        None if agents.len() == 1 => Some(agents[0].name().to_string()),
        None => None,
    };
    Ok(Archive {
        manifest,
        model,
        root,
        source_key,
    })
}

/// The plain-text credentials of an archive's resources, checked on every
/// core: a field that holds the scrubbed-secret placeholder is allowed.
fn archive_secrets(loaded: &[crate::domain::tree::Loaded]) -> Vec<Diagnostic> {
    use rayon::prelude::*;
    loaded
        .par_iter()
        .flat_map_iter(|l| {
            let mut allowed = HashSet::new();
            let spec = l.resource.spec.to_json();
            placeholder_paths(&spec, "spec", &mut allowed);
            secrets::find_plain_secrets(&spec)
                .into_iter()
                .filter(|s| !allowed.contains(&s.field))
                .map(|s| {
                    Diagnostic::error(l.path.clone(), "plaintext-secret", s.reason.to_string())
                        .in_field(s.field)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One archive resource on its way in.
#[derive(Debug, Clone)]
struct Item {
    origin_id: String,
    desired: Box<Resource>,
    action: RowAction,
    reason: Option<String>,
    /// Whether the row counts for sync records (written or equal).
    settled: bool,
    sub_rows: Vec<Row>,
}

/// A computed import: the preview and what execution would write.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// The tenant.
    pub tenant: String,
    /// The strategy.
    pub strategy: Strategy,
    /// The tenant revision the plan was made at; execution is checked against it.
    pub base_revision: u64,
    /// The preview.
    pub preview: ImportPreview,
    items: Vec<Item>,
    source_key: String,
    /// Who runs the import, recorded as the creator or last editor of what it writes.
    pub by: Option<String>,
}

/// Restore the target's values wherever `src` holds the placeholder; else a variable.
pub(crate) fn restore(
    src: &mut Value,
    tgt: Option<&Value>,
    path: &str,
    var_base: &str,
    notes: &mut Vec<String>,
) {
    match src {
        Value::String(s) if s == PLACEHOLDER => match tgt {
            Some(Value::String(t)) if t != PLACEHOLDER => *s = t.clone(),
            _ => {
                let field = path.rsplit(['.', '[']).next().unwrap_or("SECRET");
                let var: String = format!("{var_base}_{field}")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                notes.push(format!("{path} of `{var_base}` needs variable {var}"));
                *s = format!("${{vars.{var}}}");
            }
        },
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                let t = tgt.and_then(|t| t.get(i));
                restore(x, t, &format!("{path}[{i}]"), var_base, notes);
            }
        }
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let t = tgt.and_then(|t| t.get(k));
                restore(x, t, &format!("{path}.{k}"), var_base, notes);
            }
        }
        _ => {}
    }
}

fn json_of<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What the target tenant holds, as an import plans against it.
struct Target {
    /// The tenant revision the plan (and its preview) is made at.
    revision: u64,
    index: Index,
    drafts: Vec<Resource>,
    /// The sync records from this archive's source, by local ID.
    records: HashMap<String, SyncRecord>,
}

impl Target {
    fn read(store: &dyn Store, tenant: &str, source_key: &str) -> Result<Target, ImportError> {
        let (revision, index) = store.index(tenant)?;
        let drafts = store.all_drafts(tenant)?;
        let records = store
            .sync_records(tenant, source_key)?
            .into_iter()
            .map(|r| (r.local_id.clone(), r))
            .collect();
        Ok(Target {
            revision,
            index,
            drafts,
            records,
        })
    }

    fn by_id(&self) -> HashMap<String, &Resource> {
        self.drafts
            .iter()
            .filter_map(|r| r.id().map(|id| (id.to_string(), r)))
            .collect()
    }
}

/// Which local resource each archive resource becomes: `(kind, name)` → `(local ID, matched)`.
type LocalIds = BTreeMap<(Kind, String), (String, bool)>;

/// What every step of a plan reads.
struct Ctx<'a> {
    tenant: &'a str,
    archive: &'a Archive,
    opts: &'a ImportOptions,
    target: &'a Target,
    by_id: HashMap<String, &'a Resource>,
    /// The archive's workflows (ID, name), kept apart from its model so
    /// that the model's resources can move into the plan's items.
    workflows: Vec<(Option<String>, String)>,
}

impl<'a> Ctx<'a> {
    fn new(
        tenant: &'a str,
        archive: &'a Archive,
        opts: &'a ImportOptions,
        target: &'a Target,
    ) -> Self {
        Ctx {
            tenant,
            archive,
            opts,
            by_id: target.by_id(),
            target,
            workflows: archive_workflows(&archive.model),
        }
    }
}

/// The workflows of an archive's model: (ID, name).
fn archive_workflows(model: &TenantModel) -> Vec<(Option<String>, String)> {
    model
        .iter()
        .filter(|r| r.kind() == Kind::Workflow)
        .map(|r| (r.id().map(str::to_string), r.name().to_string()))
        .collect()
}

/// Compute an import of `archive` onto `tenant`: the preview and the writes,
/// at the tenant revision the plan records as its base.
///
/// Once the local IDs are mapped, each resource moves out of the archive's
/// model into its item, so the plan never holds the archive's resources
/// twice.
pub fn plan(
    store: &dyn Store,
    tenant: &str,
    archive: Archive,
    opts: &ImportOptions,
) -> Result<ImportPlan, ImportError> {
    plan_with(store, tenant, archive, opts, true)
}

/// [`plan`], with the preview's rows only when `rows`: an import that is
/// not a preview never shows them (at 100,000 resources they are 50 MB).
fn plan_with(
    store: &dyn Store,
    tenant: &str,
    mut archive: Archive,
    opts: &ImportOptions,
    rows: bool,
) -> Result<ImportPlan, ImportError> {
    if opts.selected.as_ref().is_some_and(Vec::is_empty) {
        return Err(ImportError::EmptySelection);
    }
    let target = Target::read(store, tenant, &archive.source_key)?;
    foreign_secrets(store, tenant, &archive)?;
    let mut preview = ImportPreview {
        base_revision: target.revision,
        ..ImportPreview::default()
    };
    let mapping = Ctx::new(tenant, &archive, opts, &target);
    let local = map_ids(&mapping, &mut preview.removed)?;
    let Ctx { workflows, .. } = mapping;
    let model = std::mem::take(&mut archive.model);
    let cx = Ctx {
        tenant,
        archive: &archive,
        opts,
        by_id: target.by_id(),
        target: &target,
        workflows,
    };
    let mut items = Vec::with_capacity(model.len());
    for r in model.resources.into_values() {
        items.push(item_of(&cx, &local, r, &mut preview)?);
    }
    settle_dependencies(&mut items, &target.index, &local);
    preview_rows(&mut items, &mut preview, rows);
    Ok(ImportPlan {
        tenant: tenant.to_string(),
        strategy: opts.strategy,
        base_revision: target.revision,
        preview,
        items,
        source_key: archive.source_key.clone(),
        by: None,
    })
}

/// An archive's `ENC[age,…]` values must decrypt with the target tenant's
/// key (an export scrubs them; a packed tree may hold some): else the
/// import is refused as invalid, naming each field.
fn foreign_secrets(store: &dyn Store, tenant: &str, archive: &Archive) -> Result<(), ImportError> {
    use rayon::prelude::*;
    // Only the resources that hold an encrypted value are checked (and
    // copied for the check); an export scrubs them, so most archives have none.
    let encrypted: Vec<&Resource> = archive
        .model
        .resources
        .par_iter()
        .map(|(_, r)| r)
        .filter(|r| r.spec.mentions(secrets::ENC_PREFIX))
        .collect();
    let desired: Vec<validate::Desired> = encrypted
        .into_iter()
        .map(|r| validate::Desired {
            path: resource_path(r.kind(), r.name()),
            hash: String::new(),
            resource: Box::new(r.clone()),
        })
        .collect();
    let diagnostics = pipeline::undecryptable(store, tenant, &desired, &|_, _, _| None)?;
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Invalid { diagnostics })
    }
}

/// Step 1: which local resource each archive resource becomes, by strategy.
fn map_ids(cx: &Ctx<'_>, removed: &mut Vec<Row>) -> Result<LocalIds, ImportError> {
    match cx.opts.strategy {
        Strategy::Create => Ok(map_created(cx)),
        Strategy::Merge => Ok(map_merged(cx)),
        Strategy::Upgrade => map_upgraded(cx, removed),
    }
}

/// `create`: a new imported ID for everything (matched when imported before).
fn map_created(cx: &Ctx<'_>) -> LocalIds {
    let mut local = LocalIds::new();
    for r in cx.archive.model.iter() {
        let origin = r.id().unwrap_or_default();
        let id = ids::imported_id(cx.tenant, origin, "", r.kind());
        let matched = cx.by_id.contains_key(&id);
        local.insert((r.kind(), r.name().to_string()), (id, matched));
    }
    local
}

/// `merge`: the local resource that came from the same origin (imported
/// from it, or promoted from it: `syncedFrom.id`), else the one with the same ID.
fn map_merged(cx: &Ctx<'_>) -> LocalIds {
    let mut by_origin: HashMap<(Kind, &str), &str> = HashMap::new();
    for r in &cx.target.drafts {
        let Some(id) = r.id() else { continue };
        let promoted = r.metadata.synced_from.as_ref().map(|s| s.id.as_str());
        for o in [r.metadata.origin_id.as_deref(), promoted]
            .into_iter()
            .flatten()
        {
            by_origin.entry((r.kind(), o)).or_insert(id);
        }
    }
    let mut local = LocalIds::new();
    for r in cx.archive.model.iter() {
        let origin = r.id().unwrap_or_default();
        // A copy promoted into the archive's tenant shares its lineage with
        // the copies promoted elsewhere: match on that too.
        let lineage = r.metadata.synced_from.as_ref().map(|s| s.id.as_str());
        let hit = [Some(origin), lineage]
            .into_iter()
            .flatten()
            .find_map(|o| by_origin.get(&(r.kind(), o)))
            .map(|s| s.to_string())
            .or_else(|| {
                cx.by_id
                    .get(origin)
                    .filter(|t| t.kind() == r.kind())
                    .map(|_| origin.to_string())
            });
        let entry = match hit {
            Some(id) => (id, true),
            None => (ids::imported_id(cx.tenant, origin, "", r.kind()), false),
        };
        local.insert((r.kind(), r.name().to_string()), entry);
    }
    local
}

/// `upgrade`: structural matching of the archive's agent onto the target agent.
fn map_upgraded(cx: &Ctx<'_>, removed: &mut Vec<Row>) -> Result<LocalIds, ImportError> {
    let model = &cx.archive.model;
    let root = cx.archive.root.clone().ok_or(ImportError::NoSourceAgent {
        agents: model.iter().filter(|r| r.kind() == Kind::Agent).count(),
    })?;
    let root_id = model
        .get(Kind::Agent, &root)
        .and_then(|r| r.id())
        .unwrap_or_default()
        .to_string();
    let target_root = target_agent(cx, &root_id)?;
    let m = matching::match_structure(
        model,
        Some(&root),
        &cx.target.drafts,
        target_root.as_deref(),
    );
    let mut local = LocalIds::new();
    for r in model.iter() {
        let key = (r.kind(), r.name().to_string());
        let entry = match m.pairs.get(&key) {
            Some(id) => (id.clone(), true),
            None => (
                ids::imported_id(cx.tenant, r.id().unwrap_or_default(), "", r.kind()),
                false,
            ),
        };
        local.insert(key, entry);
    }
    for rm in &m.removed {
        removed.push(Row {
            resource_type: resource_type(rm.kind).to_string(),
            action: RowAction::Skip,
            origin_id: String::new(),
            local_id: rm.local_id.clone(),
            name: rm.name.clone(),
            parent: Some(rm.parent.clone()),
            reason: Some("the source agent no longer lists it; left in place".into()),
        });
    }
    Ok(local)
}

/// The local agent an upgrade lands on: the one named, else the one that came from the source agent.
fn target_agent(cx: &Ctx<'_>, root_id: &str) -> Result<Option<String>, ImportError> {
    if let Some(a) = &cx.opts.target_agent {
        return cx
            .target
            .drafts
            .iter()
            .find(|r| r.kind() == Kind::Agent && (r.id() == Some(a.as_str()) || r.name() == a))
            .and_then(|r| r.id().map(str::to_string))
            .map(Some)
            .ok_or_else(|| ImportError::NoTargetAgent {
                tenant: cx.tenant.to_string(),
                agent: a.clone(),
            });
    }
    let recorded: HashMap<String, String> = cx
        .target
        .records
        .values()
        .map(|r| (r.local_id.clone(), r.origin_id.clone()))
        .collect();
    match matching::find_target_agent(root_id, &cx.target.drafts, &recorded) {
        TargetChoice::One(id) => Ok(Some(id)),
        TargetChoice::None => Ok(None),
        TargetChoice::Many(c) => Err(ImportError::AmbiguousTarget {
            source_agent: root_id.to_string(),
            candidates: c,
        }),
    }
}

/// Step 2: one archive resource in stored form with local IDs, and what happens to it.
fn item_of(
    cx: &Ctx<'_>,
    local: &LocalIds,
    r: Resource,
    preview: &mut ImportPreview,
) -> Result<Item, ImportError> {
    let (local_id, matched) = local
        .get(&(r.kind(), r.name().to_string()))
        .cloned()
        .unwrap_or_default();
    let origin_id = r.id().unwrap_or_default().to_string();
    let tgt = if matched {
        cx.by_id.get(&local_id).copied()
    } else {
        None
    };
    let is_root = r.kind() == Kind::Agent && cx.archive.root.as_deref() == Some(r.name());
    let metadata = local_metadata(cx.opts.strategy, &r, tgt, &local_id, &origin_id);
    // Boxed here, the resource moves from this item into its plan action
    // without another copy.
    let mut d = Box::new(r);
    d.metadata = metadata;
    let dangling = rewrite_refs(&mut d, local, &cx.target.index);
    let (sub_pairs, tgt_json) = aligned_target(&d, tgt);
    // Only a spec holding the scrubbed-secret placeholder has anything to
    // restore; the rest keep the spec as decoded.
    if d.spec.mentions(PLACEHOLDER) {
        let mut spec = d.spec.to_json();
        restore(
            &mut spec,
            tgt_json.as_ref(),
            "spec",
            d.name(),
            &mut preview.warnings,
        );
        if let Ok(s) = Spec::from_json(d.kind(), spec) {
            d.spec = s;
        }
    }
    if is_root {
        if let (Some(order), Spec::Agent(a)) = (&cx.opts.workflow_order, &mut d.spec) {
            a.workflows = ordered_workflows(&a.workflows, order, cx, local)?;
        }
    }
    let sub_rows = sub_rows(
        &d,
        tgt,
        &origin_id,
        &local_id,
        &sub_pairs,
        &mut preview.removed,
    );
    let (action, reason) = classify(cx, &d, &origin_id, &local_id, &dangling);
    let settled = matches!(action, RowAction::Create | RowAction::Update)
        || (action == RowAction::Skip && reason.is_none());
    Ok(Item {
        origin_id,
        desired: d,
        action,
        reason,
        settled,
        sub_rows,
    })
}

/// The metadata a resource lands with: the target's (upgrade), the target's
/// lineage with the archive's name (merge), or a new import's.
fn local_metadata(
    strategy: Strategy,
    r: &Resource,
    tgt: Option<&Resource>,
    local_id: &str,
    origin_id: &str,
) -> Metadata {
    match (strategy, tgt) {
        (Strategy::Upgrade, Some(t)) => t.metadata.clone(),
        (Strategy::Merge, Some(t)) => Metadata {
            id: Some(local_id.to_string()),
            name: r.name().to_string(),
            syncable: r.metadata.syncable,
            synced_from: t.metadata.synced_from.clone(),
            origin_id: t.metadata.origin_id.clone(),
            created_by: t.metadata.created_by.clone(),
        },
        _ => Metadata {
            id: Some(local_id.to_string()),
            name: r.name().to_string(),
            syncable: r.metadata.syncable,
            synced_from: None,
            origin_id: Some(origin_id.to_string()),
            created_by: r.metadata.created_by.clone(),
        },
    }
}

/// Rewrite references by name into local IDs (archive first, then the
/// tenant); returns the references that resolve nowhere.
fn rewrite_refs(d: &mut Resource, local: &LocalIds, index: &Index) -> Vec<String> {
    let mut dangling = Vec::new();
    d.visit_refs_mut(&mut |site, reference| {
        if is_builtin(reference) {
            return;
        }
        if let Some((id, _)) = local.get(&(site.target, reference.clone())) {
            *reference = id.clone();
        } else if let Some(e) = index.by_name(site.target, reference) {
            *reference = e.id.clone();
        } else {
            dangling.push(format!("{} `{reference}`", site.target));
        }
    });
    dangling
}

/// A source part (step or snippet) index paired with a target part index; either may be missing.
type PartPair = (Option<usize>, Option<usize>);

/// Steps pair by type and occurrence, snippets by name: the pairs, and the
/// target's spec as JSON with its steps or snippets aligned to the source's.
fn aligned_target(d: &Resource, tgt: Option<&Resource>) -> (Vec<PartPair>, Option<Value>) {
    let mut tgt_json = tgt.map(|t| t.spec.to_json());
    let (pairs, field, parts): (_, &str, Vec<Value>) = match (&d.spec, tgt.map(|t| &t.spec)) {
        (Spec::Workflow(s), Some(Spec::Workflow(t))) => {
            let pairs = matching::pair_steps(&s.steps, &t.steps);
            let parts = t.steps.iter().map(json_of).collect();
            (pairs, "steps", parts)
        }
        (Spec::Agent(s), Some(Spec::Agent(t))) => {
            let pairs = matching::pair_snippets(&s.snippets, &t.snippets);
            let parts = t.snippets.iter().map(json_of).collect();
            (pairs, "snippets", parts)
        }
        _ => return (Vec::new(), tgt_json),
    };
    if let Some(Value::Object(o)) = &mut tgt_json {
        let aligned: Vec<Value> = pairs
            .iter()
            .filter(|(a, _)| a.is_some())
            .map(|(_, b)| b.and_then(|j| parts.get(j)).cloned().unwrap_or(Value::Null))
            .collect();
        o.insert(field.into(), Value::Array(aligned));
    }
    (pairs, tgt_json)
}

/// The agent's workflow list with the workflows of `order` (origin IDs,
/// local IDs or names) first, the rest after in their order.
fn ordered_workflows(
    workflows: &[String],
    order: &[String],
    cx: &Ctx<'_>,
    local: &LocalIds,
) -> Result<Vec<String>, ImportError> {
    let mut first: Vec<String> = Vec::new();
    for w in order {
        let hit = workflows.iter().find(|id| {
            *id == w
                || cx.workflows.iter().any(|(x_id, x_name)| {
                    (x_id.as_deref() == Some(w.as_str()) || x_name == w)
                        && local.get(&(Kind::Workflow, x_name.clone())).map(|l| &l.0) == Some(*id)
                })
                || cx.by_id.get(*id).is_some_and(|t| t.name() == w)
        });
        match hit {
            Some(id) if !first.contains(id) => first.push(id.clone()),
            Some(_) => {}
            None => {
                return Err(ImportError::UnknownWorkflow {
                    workflow: w.clone(),
                })
            }
        }
    }
    let rest: Vec<String> = workflows
        .iter()
        .filter(|w| !first.contains(w))
        .cloned()
        .collect();
    first.extend(rest);
    Ok(first)
}

/// CREATE, UPDATE, SKIP or CONFLICT for one resource in stored form, and why.
fn classify(
    cx: &Ctx<'_>,
    d: &Resource,
    origin_id: &str,
    local_id: &str,
    dangling: &[String],
) -> (RowAction, Option<String>) {
    let index = &cx.target.index;
    let (mut action, mut reason) = match index.get(local_id) {
        Some(e) if e.content_hash == content_hash(d) => (RowAction::Skip, None),
        Some(e) => {
            let moved = cx
                .target
                .records
                .get(local_id)
                .filter(|rec| e.revision > rec.revision && e.content_hash != rec.content_hash);
            match moved {
                Some(rec) if !is_named(cx.opts, origin_id, local_id) => (
                    RowAction::Conflict,
                    Some(format!(
                        "changed in tenant `{}` since the last sync from {} (revision {} → {}); name it in --selected to overwrite",
                        cx.tenant, cx.archive.source_key, rec.revision, e.revision
                    )),
                ),
                _ => (RowAction::Update, None),
            }
        }
        None => (RowAction::Create, None),
    };
    if action != RowAction::Skip && action != RowAction::Conflict {
        if let Some(other) = index
            .by_name(d.kind(), d.name())
            .filter(|e| e.id != local_id)
        {
            action = RowAction::Conflict;
            reason = Some(format!(
                "a {} named `{}` exists already ({}); {}",
                d.kind(),
                d.name(),
                other.id,
                name_taken_hint(cx.opts.strategy)
            ));
        }
    }
    if !dangling.is_empty() && action != RowAction::Skip {
        action = RowAction::Conflict;
        reason = Some(format!(
            "needs {}, in neither the archive nor tenant `{}`",
            dangling.join(", "),
            cx.tenant
        ));
    }
    if let Some(sel) = &cx.opts.selected {
        let named = sel.iter().any(|s| {
            *s == origin_id
                || *s == local_id
                || s.starts_with(&format!("{origin_id}#"))
                || s.starts_with(&format!("{local_id}#"))
        });
        if !named && matches!(action, RowAction::Create | RowAction::Update) {
            action = RowAction::Skip;
            reason = Some("not selected".into());
        }
    }
    (action, reason)
}

/// What to do about a name taken by a resource the strategy did not match:
/// never the strategy already chosen.
fn name_taken_hint(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Create => "use --strategy merge or upgrade",
        Strategy::Merge => {
            "it did not come from this archive's source (by ID, import or promotion); rename one of them, or use --strategy upgrade to match by structure"
        }
        Strategy::Upgrade => {
            "it is not part of the target agent's structure; rename one of them, or name the agent with --target-agent"
        }
    }
}

/// Step 3, whole or nothing: a write whose references cannot all land is a
/// conflict, repeated until nothing changes.
fn settle_dependencies(items: &mut [Item], index: &Index, local: &LocalIds) {
    let writes = |a: RowAction| matches!(a, RowAction::Create | RowAction::Update);
    loop {
        let landing: HashSet<String> = items
            .iter()
            .filter(|i| writes(i.action))
            .filter_map(|i| i.desired.id().map(str::to_string))
            .collect();
        let mut changed = false;
        for it in items.iter_mut().filter(|i| writes(i.action)) {
            let missing: Vec<String> = it
                .desired
                .refs()
                .into_iter()
                .filter(|(_, r)| index.get(r).is_none() && !landing.contains(r))
                .map(|(site, r)| {
                    let name = local
                        .iter()
                        .find(|(_, (id, _))| *id == r)
                        .map(|((_, name), _)| name.clone())
                        .unwrap_or(r.clone());
                    format!("{} `{name}`", site.target)
                })
                .collect();
            if !missing.is_empty() {
                it.action = RowAction::Conflict;
                it.settled = false;
                it.reason = Some(format!(
                    "not written, so that it lands whole or not at all: it needs {}, which does not land",
                    missing.join(", ")
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Step 4: the items in preview order, and (with `rows`) the preview rows,
/// agents first, each followed by its steps or snippets, which move out of
/// their items.
fn preview_rows(items: &mut [Item], preview: &mut ImportPreview, rows: bool) {
    // Kind and name are unique, so an unstable sort is the same order,
    // without a buffer of half the items.
    items.sort_unstable_by(|a, b| {
        (std::cmp::Reverse(a.desired.kind()), a.desired.name())
            .cmp(&(std::cmp::Reverse(b.desired.kind()), b.desired.name()))
    });
    preview.warnings.sort();
    preview.warnings.dedup();
    if !rows {
        return;
    }
    for it in items.iter_mut() {
        preview.resources.push(Row {
            resource_type: resource_type(it.desired.kind()).to_string(),
            action: it.action,
            origin_id: it.origin_id.clone(),
            local_id: it.desired.id().unwrap_or_default().to_string(),
            name: it.desired.name().to_string(),
            parent: None,
            reason: it.reason.clone(),
        });
        preview.resources.append(&mut it.sub_rows);
    }
}

fn is_named(opts: &ImportOptions, origin_id: &str, local_id: &str) -> bool {
    opts.selected
        .as_ref()
        .is_some_and(|s| s.iter().any(|x| x == origin_id || x == local_id))
}

fn sub_rows(
    d: &Resource,
    tgt: Option<&Resource>,
    origin_id: &str,
    local_id: &str,
    pairs: &[(Option<usize>, Option<usize>)],
    removed: &mut Vec<Row>,
) -> Vec<Row> {
    let mut out = Vec::new();
    let row = |ty: &str, tag: String, name: String, action: RowAction, local_tag: String| Row {
        resource_type: ty.to_string(),
        action,
        origin_id: format!("{origin_id}#{tag}"),
        local_id: format!("{local_id}#{local_tag}"),
        name,
        parent: Some(local_id.to_string()),
        reason: None,
    };
    match (&d.spec, tgt.map(|t| &t.spec)) {
        (Spec::Workflow(s), t) => {
            let t_steps = match t {
                Some(Spec::Workflow(t)) => t.steps.as_slice(),
                _ => &[],
            };
            let pairs: Vec<(Option<usize>, Option<usize>)> = if pairs.is_empty() {
                (0..s.steps.len()).map(|i| (Some(i), None)).collect()
            } else {
                pairs.to_vec()
            };
            for (a, b) in pairs {
                match (a, b) {
                    (Some(i), b) => {
                        let st = &s.steps[i];
                        let action = match b.and_then(|j| t_steps.get(j)) {
                            Some(ts) if ts == st => RowAction::Skip,
                            Some(_) => RowAction::Update,
                            None => RowAction::Create,
                        };
                        let name = st.name.clone().unwrap_or_else(|| st.step_type.clone());
                        out.push(row(
                            "workflowStep",
                            format!("step:{i}"),
                            name,
                            action,
                            format!("step:{i}"),
                        ));
                    }
                    (None, Some(j)) => {
                        let ts = &t_steps[j];
                        let mut r = row(
                            "workflowStep",
                            String::new(),
                            ts.name.clone().unwrap_or_else(|| ts.step_type.clone()),
                            RowAction::Skip,
                            format!("step:{j}"),
                        );
                        r.origin_id = String::new();
                        r.reason = Some("the source workflow no longer has this step".into());
                        removed.push(r);
                    }
                    (None, None) => {}
                }
            }
        }
        (Spec::Agent(s), t) => {
            let t_snips = match t {
                Some(Spec::Agent(t)) => t.snippets.as_slice(),
                _ => &[],
            };
            let pairs: Vec<(Option<usize>, Option<usize>)> = if pairs.is_empty() {
                (0..s.snippets.len()).map(|i| (Some(i), None)).collect()
            } else {
                pairs.to_vec()
            };
            for (a, b) in pairs {
                match (a, b) {
                    (Some(i), b) => {
                        let sn = &s.snippets[i];
                        let action = match b.and_then(|j| t_snips.get(j)) {
                            Some(ts) if ts == sn => RowAction::Skip,
                            Some(_) => RowAction::Update,
                            None => RowAction::Create,
                        };
                        let tag = format!("snippet:{}", sn.name);
                        out.push(row("snippet", tag.clone(), sn.name.clone(), action, tag));
                    }
                    (None, Some(j)) => {
                        let ts = &t_snips[j];
                        let tag = format!("snippet:{}", ts.name);
                        let mut r = row(
                            "snippet",
                            String::new(),
                            ts.name.clone(),
                            RowAction::Skip,
                            tag,
                        );
                        r.origin_id = String::new();
                        r.reason = Some("the source agent no longer has this snippet".into());
                        removed.push(r);
                    }
                    (None, None) => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// One resource's outcome in an import result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `agent`, `workflow`, …
    pub resource_type: String,
    /// The ID in the archive.
    pub origin_id: String,
    /// The local ID.
    pub local_id: String,
    /// The name.
    pub name: String,
    /// The revision after the import (written and equal resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Why, for failures and conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an import did, resource by resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The tenant.
    pub tenant: String,
    /// The strategy.
    pub strategy: Strategy,
    /// The tenant revision afterwards.
    pub revision: u64,
    /// Resources created.
    pub created: Vec<Outcome>,
    /// Resources updated.
    pub updated: Vec<Outcome>,
    /// Resources equal already, or not selected.
    pub skipped: Vec<Outcome>,
    /// Resources not written: conflicts and dependencies that could not land.
    pub failures: Vec<Outcome>,
    /// What the target has that the source dropped (left in place).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Row>,
    /// Notes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Execute an import plan in one transaction: every CREATE and UPDATE, and
/// the sync records of what it settled, checked against the revision the
/// plan (and its preview) was made at. A tenant that moved since is refused
/// as stale, and nothing is written.
pub fn execute(store: &mut dyn Store, mut plan: ImportPlan) -> Result<ImportResult, ImportError> {
    // The preview's rows are not part of the result.
    drop(std::mem::take(&mut plan.preview.resources));
    // The resources to write move out of the plan; what the result needs stays.
    let mut writes: Vec<Box<Resource>> = Vec::with_capacity(plan.items.len());
    let mut done: Vec<Done> = Vec::with_capacity(plan.items.len());
    for it in std::mem::take(&mut plan.items) {
        done.push(Done {
            local_id: it.desired.id().unwrap_or_default().to_string(),
            resource_type: resource_type(it.desired.kind()),
            name: it.desired.name().to_string(),
            origin_id: it.origin_id,
            reason: it.reason,
            action: it.action,
            settled: it.settled,
        });
        if matches!(it.action, RowAction::Create | RowAction::Update) {
            writes.push(it.desired);
        }
    }
    let planned = if writes.is_empty() {
        None
    } else {
        let (p, diags) =
            pipeline::plan_resources(&*store, &plan.tenant, writes, DiffOptions::default())?;
        match p {
            Some(p) => Some(p),
            None => return Err(ImportError::Invalid { diagnostics: diags }),
        }
    };
    let mut batch = match &planned {
        Some(p) => apply::batch_of(p, Vec::new())?,
        None => WriteBatch::default(),
    };
    // The base is the preview's, not the store's now: a tenant that moved is refused.
    batch.base_revision = plan.base_revision;
    batch.actor = plan.by.clone();
    batch.syncs = Some(SyncWrite {
        source_key: plan.source_key.clone(),
        origins: done
            .iter()
            .filter(|d| d.settled)
            .map(|d| (d.local_id.clone(), d.origin_id.clone()))
            .collect(),
    });
    let revision = store.write(&plan.tenant, &batch)?;
    // The written resources are not needed for the result; the index it
    // reads is not held beside them.
    drop(batch);
    drop(planned);
    let (_, index) = store.index(&plan.tenant)?;
    Ok(result_of(&plan, done, revision, &index))
}

/// What execution keeps of one planned item for the result.
struct Done {
    local_id: String,
    resource_type: &'static str,
    name: String,
    origin_id: String,
    reason: Option<String>,
    action: RowAction,
    settled: bool,
}

/// What an executed plan did, resource by resource, as the index now shows it.
fn result_of(plan: &ImportPlan, done: Vec<Done>, revision: u64, index: &Index) -> ImportResult {
    let mut result = ImportResult {
        tenant: plan.tenant.clone(),
        strategy: plan.strategy,
        revision,
        created: Vec::new(),
        updated: Vec::new(),
        skipped: Vec::new(),
        failures: Vec::new(),
        removed: plan.preview.removed.clone(),
        warnings: plan.preview.warnings.clone(),
    };
    for d in done {
        let o = Outcome {
            resource_type: d.resource_type.to_string(),
            origin_id: d.origin_id,
            revision: index
                .get(&d.local_id)
                .filter(|_| d.settled)
                .map(|e| e.revision),
            local_id: d.local_id,
            name: d.name,
            reason: d.reason,
        };
        match d.action {
            RowAction::Create => result.created.push(o),
            RowAction::Update => result.updated.push(o),
            RowAction::Skip => result.skipped.push(o),
            RowAction::Conflict => result.failures.push(o),
        }
    }
    result
}

/// What one import did: a preview, or a result.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Imported {
    /// Nothing written.
    Preview(ImportPreview),
    /// Written.
    Result(ImportResult),
}

/// The role check of [`import_bytes`] alone (editor), for a front end that
/// offers the import form.
pub fn authorize_import(store: &dyn Store, actor: &Actor, tenant: &str) -> Result<(), ImportError> {
    authorize::<ImportError>(store, actor, tenant, Role::Editor, "importing an archive")
}

/// Import ZIP `bytes` into `tenant` as `actor`, an editor of the tenant (the
/// preview needs the role too): check the archive whole, decode it, plan,
/// and unless `preview` execute in one transaction. With `base_revision`
/// (the `baseRevision` of an earlier preview), a tenant that moved since is
/// refused as stale. `ferry sync`, the ZIP upload and the live-sync
/// endpoints call this; `ferry zip import` calls [`import_file`].
pub fn import_bytes(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    bytes: impl AsRef<[u8]>,
    opts: &ImportOptions,
    preview: bool,
    base_revision: Option<u64>,
) -> Result<Imported, ImportError> {
    authorize_import(&*store, actor, tenant)?;
    let read = archive::read_zip(bytes.as_ref(), &Limits::default())?;
    // An archive handed over by value is not needed once read.
    drop(bytes);
    import_read(store, actor, tenant, read, opts, preview, base_revision)
}

/// [`import_bytes`] of an archive file (`ferry zip import`), read in place:
/// the archive is never held in memory whole.
pub fn import_file(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    file: &std::fs::File,
    opts: &ImportOptions,
    preview: bool,
) -> Result<Imported, ImportError> {
    authorize_import(&*store, actor, tenant)?;
    let read = archive::read_zip_file(file, &Limits::default())?;
    import_read(store, actor, tenant, read, opts, preview, None)
}

/// The rest of an import once the archive is read and checked: decode,
/// plan, and unless previewing execute (at `base_revision`, when given).
fn import_read(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    read: ReadArchive,
    opts: &ImportOptions,
    preview: bool,
    base_revision: Option<u64>,
) -> Result<Imported, ImportError> {
    let decoded = decode(read)?;
    let mut plan = plan_with(&*store, tenant, decoded, opts, preview)?;
    if let Some(base) = base_revision {
        if base != plan.base_revision {
            return Err(ImportError::Store(StoreError::Stale {
                tenant: tenant.to_string(),
                planned: base,
                actual: plan.base_revision,
            }));
        }
        plan.base_revision = base;
    }
    if preview {
        return Ok(Imported::Preview(plan.preview));
    }
    plan.by = actor.name().map(str::to_string);
    Ok(Imported::Result(execute(store, plan)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, PublishStore, ResourceStore, SyncStore};
    use crate::service::zip_export::{self, Scope};

    const DEV: &str = "acme-dev";
    const PROD: &str = "acme-prod";

    /// A store with acme-dev applied from the fixture, an empty acme-prod,
    /// and support-bot's export decoded.
    fn setup() -> (tempfile::TempDir, SqliteStore, Archive) {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&tmp.path().join("ferry.db")).unwrap();
        for t in [DEV, PROD] {
            store
                .create_tenant(t, None, &crate::domain::secrets::generate_keypair())
                .unwrap();
        }
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/acme/tenants/acme-dev");
        let source = crate::domain::tree::folder::FolderSource::new(root);
        let tp = pipeline::plan_tree(&store, DEV, &source, DiffOptions::default()).unwrap();
        apply::apply(&mut store, &tp.plan.unwrap(), Default::default()).unwrap();
        let scoped = zip_export::scope(
            &store,
            &Actor::default(),
            DEV,
            &Scope::Agent("support-bot".into()),
        )
        .unwrap();
        let made = zip_export::export_scoped(
            &store,
            DEV,
            scoped,
            None,
            "ferry",
            "2026-01-01T00:00:00Z",
            None,
        )
        .unwrap();
        let read = archive::read_zip(&made.bytes, &Limits::default()).unwrap();
        let decoded = decode(read).unwrap();
        (tmp, store, decoded)
    }

    fn opts(strategy: Strategy) -> ImportOptions {
        ImportOptions {
            strategy,
            target_agent: None,
            selected: None,
            workflow_order: None,
        }
    }

    fn cx<'a>(target: &'a Target, archive: &'a Archive, opts: &'a ImportOptions) -> Ctx<'a> {
        Ctx::new(PROD, archive, opts, target)
    }

    #[test]
    fn execute_writes_resources_and_sync_records_in_one_transaction_at_the_preview_base() {
        let (_t, mut store, archive) = setup();
        let first = plan(&store, PROD, archive.clone(), &opts(Strategy::Create)).unwrap();
        let second = plan(&store, PROD, archive.clone(), &opts(Strategy::Create)).unwrap();
        assert_eq!(first.base_revision, second.base_revision);
        assert_eq!(first.preview.base_revision, first.base_revision);
        let done = execute(&mut store, first.clone()).unwrap();
        assert!(!done.created.is_empty());
        let records = store.sync_records(PROD, &archive.source_key).unwrap();
        let (revision, index) = store.index(PROD).unwrap();
        assert_eq!(records.len(), done.created.len());
        for r in &records {
            let e = index.get(&r.local_id).unwrap();
            assert_eq!((e.revision, &e.content_hash), (r.revision, &r.content_hash));
        }
        // The second plan was made at the old base: refused, nothing written.
        let e = execute(&mut store, second.clone()).unwrap_err();
        assert!(
            matches!(e, ImportError::Store(StoreError::Stale { .. })),
            "{e}"
        );
        assert_eq!(store.index(PROD).unwrap().0, revision);
        assert_eq!(
            store.sync_records(PROD, &archive.source_key).unwrap(),
            records
        );
    }

    #[test]
    fn create_gives_new_ids_and_merge_finds_them_again_by_origin() {
        let (_t, mut store, archive) = setup();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let create = opts(Strategy::Create);
        let created = map_created(&cx(&target, &archive, &create));
        assert!(created
            .values()
            .all(|(id, matched)| !matched && !id.is_empty()));
        let p = plan(&store, PROD, archive.clone(), &create).unwrap();
        execute(&mut store, p.clone()).unwrap();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let merge = opts(Strategy::Merge);
        let merged = map_merged(&cx(&target, &archive, &merge));
        for (key, (id, matched)) in &merged {
            assert!(*matched, "{key:?}");
            assert_eq!(&created[key].0, id);
        }
    }

    #[test]
    fn an_equal_resource_is_skipped_and_an_unselected_one_too() {
        let (_t, mut store, archive) = setup();
        let create = opts(Strategy::Create);
        let first = plan(&store, PROD, archive.clone(), &create).unwrap();
        execute(&mut store, first.clone()).unwrap();
        let again = plan(&store, PROD, archive.clone(), &create).unwrap();
        assert!(again
            .preview
            .resources
            .iter()
            .filter(|r| r.parent.is_none())
            .all(|r| r.action == RowAction::Skip));
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let agent = archive.model.get(Kind::Agent, "support-bot").unwrap();
        let mut changed = agent.clone();
        changed.metadata.id = Some("agt_other".into());
        changed.metadata.name = "other-bot".into();
        let selective = ImportOptions {
            selected: Some(vec!["nothing".into()]),
            ..create.clone()
        };
        let c = cx(&target, &archive, &selective);
        let (action, reason) = classify(&c, &changed, "agt_src", "agt_other", &[]);
        assert_eq!(
            (action, reason.as_deref()),
            (RowAction::Skip, Some("not selected"))
        );
        let all = cx(&target, &archive, &create);
        let (action, reason) =
            classify(&all, &changed, "agt_src", "agt_other", &["tool `x`".into()]);
        assert_eq!(action, RowAction::Conflict);
        assert!(reason.unwrap().contains("tool `x`"));
    }

    #[test]
    fn references_become_local_ids_or_are_reported_dangling() {
        let (_t, store, archive) = setup();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let create = opts(Strategy::Create);
        let local = map_created(&cx(&target, &archive, &create));
        let mut bot = archive
            .model
            .get(Kind::Agent, "support-bot")
            .unwrap()
            .clone();
        assert!(rewrite_refs(&mut bot, &local, &target.index).is_empty());
        let Spec::Agent(a) = &bot.spec else {
            panic!("an agent")
        };
        let triage = &local[&(Kind::Workflow, "triage".to_string())].0;
        assert!(a.workflows.contains(triage));
        let mut lonely = archive
            .model
            .get(Kind::Agent, "support-bot")
            .unwrap()
            .clone();
        let dangling = rewrite_refs(&mut lonely, &LocalIds::new(), &target.index);
        assert!(
            dangling.iter().any(|d| d.contains("`triage`")),
            "{dangling:?}"
        );
    }

    #[test]
    fn workflow_order_puts_the_named_first_and_refuses_a_stranger() {
        let (_t, store, archive) = setup();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let create = opts(Strategy::Create);
        let c = cx(&target, &archive, &create);
        let local = map_created(&c);
        let id = |n: &str| local[&(Kind::Workflow, n.to_string())].0.clone();
        let list = vec![id("triage"), id("answer"), id("escalation")];
        let ordered = ordered_workflows(&list, &["escalation".into()], &c, &local).unwrap();
        assert_eq!(ordered, vec![id("escalation"), id("triage"), id("answer")]);
        let e = ordered_workflows(&list, &["nope".into()], &c, &local).unwrap_err();
        assert!(matches!(e, ImportError::UnknownWorkflow { .. }));
    }

    #[test]
    fn a_write_whose_dependency_does_not_land_becomes_a_conflict() {
        let (_t, store, archive) = setup();
        let create = opts(Strategy::Create);
        let mut p = plan(&store, PROD, archive.clone(), &create).unwrap();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let local = map_created(&cx(&target, &archive, &create));
        for it in p
            .items
            .iter_mut()
            .filter(|i| i.desired.kind() == Kind::Workflow)
        {
            it.action = RowAction::Conflict;
        }
        settle_dependencies(&mut p.items, &target.index, &local);
        let bot = p
            .items
            .iter()
            .find(|i| i.desired.name() == "support-bot")
            .unwrap();
        assert_eq!(bot.action, RowAction::Conflict);
        assert!(!bot.settled);
        assert!(bot
            .reason
            .as_deref()
            .unwrap()
            .contains("lands whole or not at all"));
    }

    #[test]
    fn upgrade_matches_onto_the_named_agent_or_refuses_an_unknown_one() {
        let (_t, mut store, archive) = setup();
        let create = opts(Strategy::Create);
        let first = plan(&store, PROD, archive.clone(), &create).unwrap();
        execute(&mut store, first.clone()).unwrap();
        let target = Target::read(&store, PROD, &archive.source_key).unwrap();
        let upgrade = ImportOptions {
            target_agent: Some("support-bot".into()),
            ..opts(Strategy::Upgrade)
        };
        let c = cx(&target, &archive, &upgrade);
        let root_id = archive
            .model
            .get(Kind::Agent, "support-bot")
            .unwrap()
            .id()
            .unwrap()
            .to_string();
        let local_bot = target_agent(&c, &root_id).unwrap().unwrap();
        let mut removed = Vec::new();
        let local = map_upgraded(&c, &mut removed).unwrap();
        assert_eq!(
            local[&(Kind::Agent, "support-bot".to_string())],
            (local_bot, true)
        );
        assert!(removed.is_empty());
        let nobody = ImportOptions {
            target_agent: Some("ghost".into()),
            ..opts(Strategy::Upgrade)
        };
        let e = target_agent(&cx(&target, &archive, &nobody), &root_id).unwrap_err();
        assert!(matches!(e, ImportError::NoTargetAgent { .. }), "{e}");
    }

    #[test]
    fn upgrade_keeps_the_target_metadata_and_merge_its_lineage() {
        let (_t, store, archive) = setup();
        let r = archive.model.get(Kind::Agent, "support-bot").unwrap();
        let mut t = r.clone();
        t.metadata.id = Some("agt_local".into());
        t.metadata.origin_id = Some("agt_first".into());
        let up = local_metadata(Strategy::Upgrade, r, Some(&t), "agt_local", "agt_src");
        assert_eq!(up, t.metadata);
        let merged = local_metadata(Strategy::Merge, r, Some(&t), "agt_local", "agt_src");
        assert_eq!(merged.origin_id.as_deref(), Some("agt_first"));
        let new = local_metadata(Strategy::Create, r, None, "agt_new", "agt_src");
        assert_eq!(new.origin_id.as_deref(), Some("agt_src"));
        assert_eq!(new.id.as_deref(), Some("agt_new"));
        let _ = store;
    }

    #[test]
    fn an_import_that_is_not_a_preview_plans_the_same_items_without_rows() {
        let (_t, store, archive) = setup();
        let create = opts(Strategy::Create);
        let shown = plan(&store, PROD, archive.clone(), &create).unwrap();
        let bare = plan_with(&store, PROD, archive, &create, false).unwrap();
        assert!(bare.preview.resources.is_empty());
        assert!(
            shown.preview.resources.len() > shown.items.len(),
            "steps and snippets have rows"
        );
        let order = |p: &ImportPlan| -> Vec<(Kind, String, RowAction)> {
            p.items
                .iter()
                .map(|it| (it.desired.kind(), it.desired.name().to_string(), it.action))
                .collect()
        };
        assert_eq!(order(&bare), order(&shown));
        assert_eq!(bare.preview.warnings, shown.preview.warnings);
        assert_eq!(bare.preview.removed, shown.preview.removed);
    }

    #[test]
    fn preview_rows_list_agents_first_then_their_parts() {
        let (_t, store, archive) = setup();
        let p = plan(&store, PROD, archive.clone(), &opts(Strategy::Create)).unwrap();
        assert_eq!(p.preview.resources[0].resource_type, "agent");
        let (pairs, aligned) = aligned_target(
            archive.model.get(Kind::Agent, "support-bot").unwrap(),
            archive.model.get(Kind::Agent, "support-bot"),
        );
        assert!(pairs.iter().all(|(a, b)| a == b));
        assert!(aligned.is_some());
    }
}
