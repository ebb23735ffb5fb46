//! Plans: `diff(current, desired)` as a value.
//!
//! A [`Plan`] lists what would turn a store tenant into a tree: `CREATE`,
//! `UPDATE` (with field-level changes), `SKIP`, `DELETE` and `CONFLICT`.
//! Content hashes decide SKIP; only the resources that differ are fetched in
//! full to compute their field changes. A plan is bound to the tenant
//! revision it was made against (`base_revision`) and carries the payloads
//! it would write, so it can be saved as JSON and applied later, or refused
//! if the store moved in between.
//!
//! Creates and updates come top-down along dependencies (documents first,
//! sub-agents before their supervisor); deletes come bottom-up.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::model::{Kind, Metadata, Resource, Spec};
use crate::domain::state::{content_hash, Index};
use crate::domain::validate::{render_names, Desired, Names};
use rayon::prelude::*;

/// The format tag of a saved plan file.
pub const PLAN_FORMAT: &str = "ferry-plan/v1";

/// Why the bytes of a saved plan file are not a plan.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// The bytes are not JSON.
    #[error("not a plan file: {reason}")]
    NotJson {
        /// What the JSON reader said.
        reason: String,
    },
    /// JSON, but not tagged as a ferry plan.
    #[error("not a saved ferry plan (expected \"format\": \"{PLAN_FORMAT}\")")]
    NotAPlan,
    /// A ferry plan whose fields do not fit.
    #[error("{reason}")]
    Invalid {
        /// What does not fit, and where.
        reason: String,
    },
}

/// Read a saved plan file (`ferry plan --out FILE`): JSON tagged with
/// [`PLAN_FORMAT`], whose payloads are decoded only when applied.
pub fn read_saved(bytes: &[u8]) -> Result<Plan, SavedPlanError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| SavedPlanError::NotJson {
        reason: e.to_string(),
    })?;
    if v.get("format").and_then(Value::as_str) != Some(PLAN_FORMAT) {
        return Err(SavedPlanError::NotAPlan);
    }
    serde_json::from_value(v).map_err(|e| SavedPlanError::Invalid {
        reason: e.to_string(),
    })
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActionKind {
    /// The resource is new.
    Create,
    /// The resource exists and differs.
    Update,
    /// The resource exists and is equal.
    Skip,
    /// The resource is removed (only with prune).
    Delete,
    /// The resource cannot be changed as asked; see `reason`.
    Conflict,
}

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted path, e.g. `spec.instructions`.
    pub path: String,
    /// The value in the store (`null` when absent).
    pub before: Value,
    /// The value in the tree (`null` when absent).
    pub after: Value,
}

/// What an action would write: the resource in stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The resource envelope as JSON (`apiVersion`, `kind`, `metadata`, `spec`), ID references.
    pub document: Value,
    /// A document's content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Unit hash of the files it came from.
    pub file_hash: String,
}

/// A payload that does not describe a valid resource.
#[derive(Debug, thiserror::Error)]
#[error("plan payload for `{id}` is not a valid resource: {reason}")]
pub struct PayloadError {
    /// The action's resource ID.
    pub id: String,
    /// What is wrong.
    pub reason: String,
}

impl Payload {
    /// The payload of a stored-form resource.
    pub fn of(resource: &Resource, file_hash: &str) -> Payload {
        Payload {
            document: serde_json::from_slice(&crate::domain::state::canonical_json(resource))
                .unwrap_or(Value::Null),
            content: resource
                .content
                .as_ref()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
            file_hash: file_hash.to_string(),
        }
    }

    /// The resource this payload describes.
    pub fn resource(&self, id: &str) -> Result<Resource, PayloadError> {
        resource_from_document(&self.document, self.content.as_deref()).map_err(|reason| {
            PayloadError {
                id: id.to_string(),
                reason,
            }
        })
    }
}

/// Rebuild a resource from its JSON envelope and optional base64 content.
pub fn resource_from_document(document: &Value, content: Option<&str>) -> Result<Resource, String> {
    let kind_name = document
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("missing kind")?;
    let kind = Kind::from_name(kind_name).ok_or_else(|| format!("unknown kind {kind_name}"))?;
    let metadata: Metadata =
        serde_json::from_value(document.get("metadata").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("metadata: {e}"))?;
    let spec = Spec::from_json(kind, document.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("spec: {e}"))?;
    let content = match content {
        Some(c) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .map_err(|e| format!("content: {e}"))?,
        ),
        None => None,
    };
    Ok(Resource {
        metadata,
        spec,
        content,
    })
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What it does.
    pub action: ActionKind,
    /// Kind of the resource.
    pub kind: Kind,
    /// Name of the resource (the new name, for a rename).
    pub name: String,
    /// ID of the resource.
    pub id: String,
    /// Field-level changes (for UPDATE).
    #[serde(default)]
    pub changes: Vec<FieldChange>,
    /// Why, for a CONFLICT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it would write (CREATE and UPDATE), in a saved plan; left out of reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// What it would write, held in memory by a plan that was just made
    /// (the resource in stored form and its unit hash); saved as `payload`.
    #[serde(skip)]
    pub staged: Option<Box<(Resource, String)>>,
}

impl Action {
    /// The resource this action writes (stored form) and its unit hash, if it
    /// writes one; borrowed from a plan made in this process.
    pub fn written(&self) -> Result<Option<(Cow<'_, Resource>, String)>, PayloadError> {
        if let Some(s) = &self.staged {
            return Ok(Some((Cow::Borrowed(&s.0), s.1.clone())));
        }
        match &self.payload {
            Some(p) => Ok(Some((
                Cow::Owned(p.resource(&self.id)?),
                p.file_hash.clone(),
            ))),
            None => Ok(None),
        }
    }
}

/// Counts of actions by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update.
    pub update: usize,
    /// Resources equal already.
    pub skip: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Resources in conflict.
    pub conflict: usize,
}

impl Summary {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }
}

/// A resource in the store that the tree does not have, left alone without prune.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absent {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
}

/// A unit whose content is equal but whose file bytes changed (reformatted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashRefresh {
    /// The resource ID.
    pub id: String,
    /// The new unit hash.
    pub file_hash: String,
}

/// What apply would do to one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The tenant.
    pub tenant: String,
    /// The tenant revision this plan was made against.
    pub base_revision: u64,
    /// Counts by action.
    pub summary: Summary,
    /// Every action that is not SKIP, in apply order.
    pub actions: Vec<Action>,
    /// Resources in the store but not in the tree, left alone (no prune).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Absent>,
    /// Unchanged resources whose file hashes apply will refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh: Vec<HashRefresh>,
    /// The git commit the tree was read from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// Resources changed in the store since the last apply from git (drift).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Absent>,
    /// Notes for the person reading the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes()
    }

    /// The plan without payloads and bookkeeping: what people and CI read.
    pub fn report(&self) -> Plan {
        let mut p = self.clone();
        for a in &mut p.actions {
            a.payload = None;
            a.staged = None;
        }
        p.refresh.clear();
        p
    }

    /// The plan with every staged resource written out as a payload, for saving.
    pub fn with_payloads(&self) -> Plan {
        let mut p = self.clone();
        for a in &mut p.actions {
            if let Some(s) = a.staged.take() {
                a.payload = Some(Payload::of(&s.0, &s.1));
            }
        }
        p
    }
}

/// Diff a JSON value into field changes under `path`.
pub fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y))
            if x.len() == y.len()
                && x.iter().all(Value::is_object)
                && y.iter().all(Value::is_object) =>
        {
            for (i, (ea, eb)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), ea, eb, out);
            }
        }
        _ => out.push(FieldChange {
            path: path.to_string(),
            before: a.clone(),
            after: b.clone(),
        }),
    }
}

/// The field changes between two resources in tree form (`metadata.id` aside).
pub fn field_changes(before: &Resource, after: &Resource) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut mb = serde_json::to_value(&before.metadata).unwrap_or(Value::Null);
    let mut ma = serde_json::to_value(&after.metadata).unwrap_or(Value::Null);
    for m in [&mut mb, &mut ma] {
        if let Value::Object(o) = m {
            o.remove("id");
        }
    }
    diff_values("metadata", &mb, &ma, &mut out);
    diff_values(
        "spec",
        &before.spec.to_json(),
        &after.spec.to_json(),
        &mut out,
    );
    if before.content != after.content {
        let h = |c: &Option<Vec<u8>>| {
            c.as_ref()
                .map(|b| Value::String(crate::domain::ids::content_hash(b)))
                .unwrap_or(Value::Null)
        };
        out.push(FieldChange {
            path: "content".into(),
            before: h(&before.content),
            after: h(&after.content),
        });
    }
    out
}

/// Options of a diff.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Delete what the tree does not have.
    pub prune: bool,
}

/// The inputs of a diff: the tenant's index and the desired state.
pub struct DiffInput<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The tenant revision the index was read at.
    pub base_revision: u64,
    /// The store's index of the tenant.
    pub index: &'a Index,
    /// Decoded resources of the desired state, stored form.
    pub desired: Vec<Desired>,
    /// IDs of units the store holds unchanged (not decoded).
    pub unchanged: HashSet<&'a str>,
    /// Names of the whole desired state.
    pub names: &'a dyn Names,
}

/// Fetches the stored drafts of the given IDs.
pub type FetchDrafts<'a, E> = dyn Fn(&[String]) -> Result<Vec<Resource>, E> + 'a;

/// Compute a plan. `fetch` returns the stored drafts of the given IDs.
pub fn diff<E>(
    input: DiffInput<'_>,
    options: DiffOptions,
    fetch: &FetchDrafts<'_, E>,
) -> Result<Plan, E> {
    let DiffInput {
        tenant,
        base_revision,
        index,
        desired,
        unchanged,
        names,
    } = input;
    let mut summary = Summary {
        skip: unchanged.len(),
        ..Summary::default()
    };
    let mut refresh = Vec::new();
    let mut creates: Vec<(Resource, String)> = Vec::new();
    let mut updates: Vec<(Resource, String)> = Vec::new();
    let mut desired_ids: HashSet<String> = HashSet::with_capacity(desired.len());
    let hashes: Vec<String> = desired
        .par_iter()
        .map(|d| content_hash(&d.resource))
        .collect();
    for (d, hash) in desired.into_iter().zip(hashes) {
        let id = d.resource.id().unwrap_or_default().to_string();
        desired_ids.insert(id.clone());
        match index.get(&id) {
            None => creates.push((d.resource, d.hash)),
            Some(e) => {
                if e.content_hash == hash {
                    summary.skip += 1;
                    if e.file_hash != d.hash {
                        refresh.push(HashRefresh {
                            id,
                            file_hash: d.hash,
                        });
                    }
                } else {
                    updates.push((d.resource, d.hash));
                }
            }
        }
    }
    let update_ids: Vec<String> = updates
        .iter()
        .map(|(r, _)| r.id().unwrap_or_default().to_string())
        .collect();
    let current: HashMap<String, Resource> = fetch(&update_ids)?
        .into_iter()
        .filter_map(|r| r.id().map(|id| (id.to_string(), r.clone())))
        .collect();

    // Create and update, top-down.
    let mut upserts: Vec<(ActionKind, Resource, String)> = creates
        .into_iter()
        .map(|(r, h)| (ActionKind::Create, r, h))
        .chain(updates.into_iter().map(|(r, h)| (ActionKind::Update, r, h)))
        .collect();
    let order = topo(
        &upserts
            .iter()
            .map(|(_, r, _)| {
                (
                    r.id().unwrap_or_default().to_string(),
                    r.kind(),
                    r.name().to_string(),
                    r.refs().into_iter().map(|(_, x)| x).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut slots: Vec<Option<(ActionKind, Resource, String)>> =
        upserts.drain(..).map(Some).collect();
    let mut actions = Vec::new();
    for i in order {
        let Some((kind_of_action, resource, hash)) = slots[i].take() else {
            continue;
        };
        let id = resource.id().unwrap_or_default().to_string();
        let changes = match (kind_of_action, current.get(&id)) {
            (ActionKind::Update, Some(cur)) => {
                field_changes(&render_names(cur, index), &render_names(&resource, names))
            }
            _ => Vec::new(),
        };
        match kind_of_action {
            ActionKind::Create => summary.create += 1,
            _ => summary.update += 1,
        }
        actions.push(Action {
            action: kind_of_action,
            kind: resource.kind(),
            name: resource.name().to_string(),
            id,
            changes,
            reason: None,
            payload: None,
            staged: Some(Box::new((resource, hash))),
        });
    }

    // Absent resources: reported, or deleted bottom-up with prune.
    let gone: Vec<&crate::domain::state::IndexEntry> = index
        .entries()
        .iter()
        .filter(|e| !desired_ids.contains(&e.id) && !unchanged.contains(e.id.as_str()))
        .collect();
    let mut absent = Vec::new();
    if options.prune {
        let gone_ids: HashSet<&str> = gone.iter().map(|e| e.id.as_str()).collect();
        // Who still references what would be deleted (from outside the delete set)?
        let mut referrers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for a in &actions {
            if let Some(s) = &a.staged {
                for (_, t) in s.0.refs() {
                    if let Some(t) = gone_ids.get(t.as_str()) {
                        referrers.entry(t).or_default().push(a.name.clone());
                    }
                }
            }
        }
        let updated: HashSet<&str> = update_ids.iter().map(String::as_str).collect();
        for e in index.entries() {
            if gone_ids.contains(e.id.as_str()) || updated.contains(e.id.as_str()) {
                continue;
            }
            for t in &e.refs {
                if let Some(t) = gone_ids.get(t.as_str()) {
                    referrers.entry(t).or_default().push(e.name.clone());
                }
            }
        }
        let order = topo(
            &gone
                .iter()
                .map(|e| (e.id.clone(), e.kind, e.name.clone(), e.refs.clone()))
                .collect::<Vec<_>>(),
        );
        for i in order.into_iter().rev() {
            let e = gone[i];
            match referrers.get(e.id.as_str()) {
                Some(by) => {
                    summary.conflict += 1;
                    actions.push(Action {
                        action: ActionKind::Conflict,
                        kind: e.kind,
                        name: e.name.clone(),
                        id: e.id.clone(),
                        changes: Vec::new(),
                        reason: Some(format!(
                            "not deleted: still referenced by {}",
                            by.join(", ")
                        )),
                        payload: None,
                        staged: None,
                    });
                }
                None => {
                    summary.delete += 1;
                    actions.push(Action {
                        action: ActionKind::Delete,
                        kind: e.kind,
                        name: e.name.clone(),
                        id: e.id.clone(),
                        changes: Vec::new(),
                        reason: None,
                        payload: None,
                        staged: None,
                    });
                }
            }
        }
    } else {
        for e in gone {
            absent.push(Absent {
                kind: e.kind,
                name: e.name.clone(),
                id: e.id.clone(),
            });
        }
        absent.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    }
    refresh.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Plan {
        tenant: tenant.to_string(),
        base_revision,
        summary,
        actions,
        absent,
        refresh,
        source_commit: None,
        drift: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Order items so that each comes after what it references: by kind, then
/// by dependency within a kind, then by name.
pub fn topo(items: &[(String, Kind, String, Vec<String>)]) -> Vec<usize> {
    let mut by_kind: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_kind.entry(it.1).or_default().push(i);
    }
    let mut out = Vec::with_capacity(items.len());
    for (_, mut members) in by_kind {
        members.sort_by(|a, b| items[*a].2.cmp(&items[*b].2));
        let pos: HashMap<&str, usize> =
            members.iter().map(|i| (items[*i].0.as_str(), *i)).collect();
        let mut done: HashSet<usize> = HashSet::new();
        for start in members {
            // Iterative post-order DFS within the kind.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut active: HashSet<usize> = HashSet::new();
            while let Some(&(node, next)) = stack.last() {
                if done.contains(&node) {
                    stack.pop();
                    continue;
                }
                active.insert(node);
                let refs = &items[node].3;
                if let Some(r) = refs.get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    if let Some(&j) = pos.get(r.as_str()) {
                        if !done.contains(&j) && !active.contains(&j) {
                            stack.push((j, 0));
                        }
                    }
                } else {
                    stack.pop();
                    active.remove(&node);
                    done.insert(node);
                    out.push(node);
                }
            }
        }
    }
    out
}
