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
//! [`crate::service::apply::apply`], in one transaction, and the sync records of
//! what was written become the baseline of the next sync.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::backend::archive::{resource_type, Manifest, ReadArchive};
use crate::backend::store::{Store, StoreError, SyncRecord};
use crate::domain::diagnostic::{self, Diagnostic};
use crate::domain::ids;
use crate::domain::matching::{self, TargetChoice};
use crate::domain::model::{is_builtin, Kind, Metadata, Resource, Spec, TenantModel};
use crate::domain::plan::DiffOptions;
use crate::domain::secrets::{self, PLACEHOLDER};
use crate::domain::state::{content_hash, Index};
use crate::service::apply::{self, ApplyOptions};
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
pub struct ImportPreview {
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Decode an archive's tree into a model, checking it as a tree.
pub fn decode(read: &ReadArchive) -> Result<Archive, ImportError> {
    let loaded =
        crate::domain::tree::read_tree(&read.tree, &|_, _| false).map_err(PipelineError::from)?;
    let mut diags: Vec<Diagnostic> = loaded
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == diagnostic::Severity::Error)
        .collect();
    let source_tenant = read
        .manifest
        .as_ref()
        .map(|m| m.source.tenant.clone())
        .or_else(|| loaded.tenant_file.as_ref().map(|t| t.name.clone()))
        .unwrap_or_else(|| "archive".to_string());
    let source_key = match &read.manifest {
        Some(m) => format!("{}/{}", m.source.instance, m.source.tenant),
        None => format!("archive/{source_tenant}"),
    };
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
        let mut allowed = HashSet::new();
        let spec = r.spec.to_json();
        placeholder_paths(&spec, "spec", &mut allowed);
        for s in secrets::find_plain_secrets(&spec) {
            if !allowed.contains(&s.field) {
                diags.push(
                    Diagnostic::error(l.path.clone(), "plaintext-secret", s.reason.to_string())
                        .in_field(s.field),
                );
            }
        }
        model.insert(r);
    }
    if !diags.is_empty() {
        diags.sort();
        return Err(ImportError::Invalid { diagnostics: diags });
    }
    let agents: Vec<&Resource> = model.iter().filter(|r| r.kind() == Kind::Agent).collect();
    let root = match read.manifest.as_ref().and_then(|m| m.agent.clone()) {
        Some(id) => agents
            .iter()
            .find(|r| r.id() == Some(id.as_str()))
            .map(|r| r.name().to_string()),
        None if agents.len() == 1 => Some(agents[0].name().to_string()),
        None => None,
    };
    Ok(Archive {
        manifest: read.manifest.clone(),
        model,
        root,
        source_key,
    })
}

/// One archive resource on its way in.
#[derive(Debug, Clone)]
struct Item {
    origin_id: String,
    desired: Resource,
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
    /// The preview.
    pub preview: ImportPreview,
    items: Vec<Item>,
    source_key: String,
}

/// Restore the target's values wherever `src` holds the placeholder; else a variable.
fn restore(
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

/// Compute an import of `archive` onto `tenant`: the preview and the writes.
pub fn plan(
    store: &dyn Store,
    tenant: &str,
    archive: &Archive,
    opts: &ImportOptions,
) -> Result<ImportPlan, ImportError> {
    if opts.selected.as_ref().is_some_and(Vec::is_empty) {
        return Err(ImportError::EmptySelection);
    }
    let (_, index) = store.index(tenant)?;
    let target: Vec<Resource> = store.all_drafts(tenant)?;
    let by_id: HashMap<String, &Resource> = target
        .iter()
        .filter_map(|r| r.id().map(|id| (id.to_string(), r)))
        .collect();
    let records: HashMap<String, SyncRecord> = store
        .sync_records(tenant, &archive.source_key)?
        .into_iter()
        .map(|r| (r.local_id.clone(), r))
        .collect();
    let mut preview = ImportPreview::default();

    // 1. Which local resource each archive resource becomes.
    let mut local: BTreeMap<(Kind, String), (String, bool)> = BTreeMap::new(); // id, matched
    match opts.strategy {
        Strategy::Create => {
            for r in archive.model.iter() {
                let origin = r.id().unwrap_or_default();
                let id = ids::imported_id(tenant, origin, "", r.kind());
                let matched = by_id.contains_key(&id);
                local.insert((r.kind(), r.name().to_string()), (id, matched));
            }
        }
        Strategy::Merge => {
            let mut by_origin: HashMap<&str, &str> = HashMap::new();
            for r in &target {
                if let (Some(o), Some(id)) = (r.metadata.origin_id.as_deref(), r.id()) {
                    by_origin.entry(o).or_insert(id);
                }
            }
            for r in archive.model.iter() {
                let origin = r.id().unwrap_or_default();
                let hit = by_origin.get(origin).map(|s| s.to_string()).or_else(|| {
                    by_id
                        .get(origin)
                        .filter(|t| t.kind() == r.kind())
                        .map(|_| origin.to_string())
                });
                let entry = match hit {
                    Some(id) => (id, true),
                    None => (ids::imported_id(tenant, origin, "", r.kind()), false),
                };
                local.insert((r.kind(), r.name().to_string()), entry);
            }
        }
        Strategy::Upgrade => {
            let root = archive.root.clone().ok_or(ImportError::NoSourceAgent {
                agents: archive
                    .model
                    .iter()
                    .filter(|r| r.kind() == Kind::Agent)
                    .count(),
            })?;
            let root_id = archive
                .model
                .get(Kind::Agent, &root)
                .and_then(|r| r.id())
                .unwrap_or_default()
                .to_string();
            let target_root = match &opts.target_agent {
                Some(a) => Some(
                    target
                        .iter()
                        .find(|r| {
                            r.kind() == Kind::Agent && (r.id() == Some(a.as_str()) || r.name() == a)
                        })
                        .and_then(|r| r.id().map(str::to_string))
                        .ok_or_else(|| ImportError::NoTargetAgent {
                            tenant: tenant.to_string(),
                            agent: a.clone(),
                        })?,
                ),
                None => {
                    let recorded: HashMap<String, String> = records
                        .values()
                        .map(|r| (r.local_id.clone(), r.origin_id.clone()))
                        .collect();
                    match matching::find_target_agent(&root_id, &target, &recorded) {
                        TargetChoice::One(id) => Some(id),
                        TargetChoice::None => None,
                        TargetChoice::Many(c) => {
                            return Err(ImportError::AmbiguousTarget {
                                source_agent: root_id,
                                candidates: c,
                            })
                        }
                    }
                }
            };
            let m = matching::match_structure(
                &archive.model,
                Some(&root),
                &target,
                target_root.as_deref(),
            );
            for r in archive.model.iter() {
                let key = (r.kind(), r.name().to_string());
                let entry = match m.pairs.get(&key) {
                    Some(id) => (id.clone(), true),
                    None => (
                        ids::imported_id(tenant, r.id().unwrap_or_default(), "", r.kind()),
                        false,
                    ),
                };
                local.insert(key, entry);
            }
            for rm in &m.removed {
                preview.removed.push(Row {
                    resource_type: resource_type(rm.kind).to_string(),
                    action: RowAction::Skip,
                    origin_id: String::new(),
                    local_id: rm.local_id.clone(),
                    name: rm.name.clone(),
                    parent: Some(rm.parent.clone()),
                    reason: Some("the source agent no longer lists it; left in place".into()),
                });
            }
        }
    }

    // 2. Stored form with local IDs, placeholders restored.
    let mut items: Vec<Item> = Vec::new();
    for r in archive.model.iter() {
        let key = (r.kind(), r.name().to_string());
        let (local_id, matched) = local.get(&key).cloned().unwrap_or_default();
        let origin_id = r.id().unwrap_or_default().to_string();
        let tgt = if matched {
            by_id.get(&local_id).copied()
        } else {
            None
        };
        let mut d = r.clone();
        d.metadata = match (opts.strategy, tgt) {
            (Strategy::Upgrade, Some(t)) => t.metadata.clone(),
            (Strategy::Merge, Some(t)) => Metadata {
                id: Some(local_id.clone()),
                name: r.name().to_string(),
                syncable: r.metadata.syncable,
                synced_from: t.metadata.synced_from.clone(),
                origin_id: t.metadata.origin_id.clone(),
                created_by: t.metadata.created_by.clone(),
            },
            _ => Metadata {
                id: Some(local_id.clone()),
                name: r.name().to_string(),
                syncable: r.metadata.syncable,
                synced_from: None,
                origin_id: Some(origin_id.clone()),
                created_by: r.metadata.created_by.clone(),
            },
        };
        let mut dangling: Vec<String> = Vec::new();
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
        // Steps pair by type and occurrence, snippets by name: align the target to the source.
        let mut sub_pairs: Vec<(Option<usize>, Option<usize>)> = Vec::new();
        let mut tgt_json = tgt.map(|t| t.spec.to_json());
        match (&d.spec, tgt.map(|t| &t.spec)) {
            (Spec::Workflow(s), Some(Spec::Workflow(t))) => {
                sub_pairs = matching::pair_steps(&s.steps, &t.steps);
                if let Some(Value::Object(o)) = &mut tgt_json {
                    let aligned: Vec<Value> = sub_pairs
                        .iter()
                        .filter(|(a, _)| a.is_some())
                        .map(|(_, b)| {
                            b.and_then(|j| t.steps.get(j))
                                .map(json_of)
                                .unwrap_or(Value::Null)
                        })
                        .collect();
                    o.insert("steps".into(), Value::Array(aligned));
                }
            }
            (Spec::Agent(s), Some(Spec::Agent(t))) => {
                sub_pairs = matching::pair_snippets(&s.snippets, &t.snippets);
                if let Some(Value::Object(o)) = &mut tgt_json {
                    let aligned: Vec<Value> = sub_pairs
                        .iter()
                        .filter(|(a, _)| a.is_some())
                        .map(|(_, b)| {
                            b.and_then(|j| t.snippets.get(j))
                                .map(json_of)
                                .unwrap_or(Value::Null)
                        })
                        .collect();
                    o.insert("snippets".into(), Value::Array(aligned));
                }
            }
            _ => {}
        }
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
        if d.kind() == Kind::Agent && archive.root.as_deref() == Some(r.name()) {
            if let (Some(order), Spec::Agent(a)) = (&opts.workflow_order, &mut d.spec) {
                let mut first: Vec<String> = Vec::new();
                for w in order {
                    let hit = a.workflows.iter().find(|id| {
                        *id == w
                            || archive.model.iter().any(|x| {
                                x.kind() == Kind::Workflow
                                    && (x.id() == Some(w.as_str()) || x.name() == w)
                                    && local
                                        .get(&(Kind::Workflow, x.name().to_string()))
                                        .map(|l| &l.0)
                                        == Some(*id)
                            })
                            || by_id.get(*id).is_some_and(|t| t.name() == w)
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
                let rest: Vec<String> = a
                    .workflows
                    .iter()
                    .filter(|w| !first.contains(w))
                    .cloned()
                    .collect();
                first.extend(rest);
                a.workflows = first;
            }
        }
        // Sub-rows: steps and snippets.
        let sub_rows = sub_rows(
            &d,
            tgt,
            &origin_id,
            &local_id,
            &sub_pairs,
            &mut preview.removed,
        );
        // Classify.
        let entry = index.get(&local_id);
        let (mut action, mut reason) = match entry {
            Some(e) if e.content_hash == content_hash(&d) => (RowAction::Skip, None),
            Some(e) => {
                let moved = records
                    .get(&local_id)
                    .filter(|rec| e.revision > rec.revision && e.content_hash != rec.content_hash);
                match moved {
                    Some(rec) if !is_named(opts, &origin_id, &local_id) => (
                        RowAction::Conflict,
                        Some(format!(
                            "changed in tenant `{tenant}` since the last sync from {} (revision {} → {}); name it in --selected to overwrite",
                            archive.source_key, rec.revision, e.revision
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
                    "a {} named `{}` exists already ({}); use --strategy merge or upgrade",
                    d.kind(),
                    d.name(),
                    other.id
                ));
            }
        }
        if !dangling.is_empty() && action != RowAction::Skip {
            action = RowAction::Conflict;
            reason = Some(format!(
                "needs {}, in neither the archive nor tenant `{tenant}`",
                dangling.join(", ")
            ));
        }
        if let Some(sel) = &opts.selected {
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
        let settled = matches!(action, RowAction::Create | RowAction::Update)
            || (action == RowAction::Skip && reason.is_none());
        items.push(Item {
            origin_id,
            desired: d,
            action,
            reason,
            settled,
            sub_rows,
        });
    }

    // 3. Whole or nothing: a write whose references cannot all land is a conflict.
    loop {
        let landing: HashSet<String> = items
            .iter()
            .filter(|i| matches!(i.action, RowAction::Create | RowAction::Update))
            .filter_map(|i| i.desired.id().map(str::to_string))
            .collect();
        let mut changed = false;
        for it in items.iter_mut() {
            if !matches!(it.action, RowAction::Create | RowAction::Update) {
                continue;
            }
            let missing: Vec<String> = it
                .desired
                .refs()
                .into_iter()
                .filter(|(_, r)| index.get(r).is_none() && !landing.contains(r))
                .map(|(site, r)| {
                    let name = archive
                        .model
                        .iter()
                        .find(|x| {
                            local.get(&(x.kind(), x.name().to_string())).map(|l| &l.0) == Some(&r)
                        })
                        .map(|x| x.name().to_string())
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

    items.sort_by(|a, b| {
        (std::cmp::Reverse(a.desired.kind()), a.desired.name())
            .cmp(&(std::cmp::Reverse(b.desired.kind()), b.desired.name()))
    });
    for it in &items {
        preview.resources.push(Row {
            resource_type: resource_type(it.desired.kind()).to_string(),
            action: it.action,
            origin_id: it.origin_id.clone(),
            local_id: it.desired.id().unwrap_or_default().to_string(),
            name: it.desired.name().to_string(),
            parent: None,
            reason: it.reason.clone(),
        });
        preview.resources.extend(it.sub_rows.iter().cloned());
    }
    preview.warnings.sort();
    preview.warnings.dedup();
    Ok(ImportPlan {
        tenant: tenant.to_string(),
        strategy: opts.strategy,
        preview,
        items,
        source_key: archive.source_key.clone(),
    })
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

/// Execute an import plan: one apply of every CREATE and UPDATE, then the sync records.
pub fn execute(store: &mut dyn Store, plan: &ImportPlan) -> Result<ImportResult, ImportError> {
    let writes: Vec<Resource> = plan
        .items
        .iter()
        .filter(|i| matches!(i.action, RowAction::Create | RowAction::Update))
        .map(|i| i.desired.clone())
        .collect();
    let mut revision = store.index(&plan.tenant)?.0;
    if !writes.is_empty() {
        let (p, diags) =
            pipeline::plan_resources(&*store, &plan.tenant, writes, DiffOptions::default())?;
        let Some(p) = p else {
            return Err(ImportError::Invalid { diagnostics: diags });
        };
        if p.has_changes() {
            revision = apply::apply(store, &p, ApplyOptions::default())?.revision;
        }
    }
    let (_, index): (u64, Index) = store.index(&plan.tenant)?;
    let mut records = Vec::new();
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
    for it in &plan.items {
        let local_id = it.desired.id().unwrap_or_default().to_string();
        let entry = index.get(&local_id);
        let o = Outcome {
            resource_type: resource_type(it.desired.kind()).to_string(),
            origin_id: it.origin_id.clone(),
            local_id: local_id.clone(),
            name: it.desired.name().to_string(),
            revision: entry.filter(|_| it.settled).map(|e| e.revision),
            reason: it.reason.clone(),
        };
        if it.settled {
            if let Some(e) = entry {
                records.push(SyncRecord {
                    local_id: local_id.clone(),
                    origin_id: it.origin_id.clone(),
                    revision: e.revision,
                    content_hash: e.content_hash.clone(),
                });
            }
        }
        match it.action {
            RowAction::Create => result.created.push(o),
            RowAction::Update => result.updated.push(o),
            RowAction::Skip => result.skipped.push(o),
            RowAction::Conflict => result.failures.push(o),
        }
    }
    let existing: BTreeSet<(String, u64, String)> = store
        .sync_records(&plan.tenant, &plan.source_key)?
        .into_iter()
        .map(|r| (r.local_id, r.revision, r.content_hash))
        .collect();
    records
        .retain(|r| !existing.contains(&(r.local_id.clone(), r.revision, r.content_hash.clone())));
    if !records.is_empty() {
        store.record_syncs(&plan.tenant, &plan.source_key, &records)?;
    }
    Ok(result)
}
