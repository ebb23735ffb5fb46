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
use crate::domain::secrets::abbreviate_value;
use crate::domain::state::{content_hash, Index, IndexEntry};
use crate::domain::validate::{render_names, Desired, Names};
use rayon::prelude::*;

/// The format tag of a saved plan file.
pub const PLAN_FORMAT: &str = "ferry-plan/v2";

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

impl ActionKind {
    /// The word people read for it, the same in every rendering: `create`,
    /// `update`, `unchanged`, `delete`, `conflict`.
    pub fn word(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Skip => "unchanged",
            ActionKind::Delete => "delete",
            ActionKind::Conflict => "conflict",
        }
    }
}

/// One changed field. It serializes (plans, previews, HTTP bodies) with
/// plain-text credentials hidden ([`crate::domain::secrets::shown`]); the
/// writes come from payloads, never from these values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FieldChange {
    /// Dotted path, e.g. `spec.instructions`.
    pub path: String,
    /// The value in the store (`null` when absent).
    pub before: Value,
    /// The value in the tree (`null` when absent).
    pub after: Value,
}

impl FieldChange {
    /// The value before, as it may be shown.
    pub fn shown_before(&self) -> Value {
        crate::domain::secrets::shown(&self.path, &self.before)
    }

    /// The value after, as it may be shown.
    pub fn shown_after(&self) -> Value {
        crate::domain::secrets::shown(&self.path, &self.after)
    }
}

impl Serialize for FieldChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("FieldChange", 3)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("before", &self.shown_before())?;
        st.serialize_field("after", &self.shown_after())?;
        st.end()
    }
}

/// What an action would write: the resource in stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    let null = Value::Null;
    let field = |name: &str| document.get(name).unwrap_or(&null);
    let mut r = resource_of(
        document.get("kind").and_then(Value::as_str),
        field("metadata"),
        field("spec"),
    )?;
    if let Some(c) = content {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(c)
            .map_err(|e| format!("content: {e}"))?;
        r.content = Some(bytes);
    }
    Ok(r)
}

/// Rebuild a resource from its JSON envelope as stored text, decoding the
/// metadata and the spec straight into their types (no JSON tree in
/// between): the same answer as [`resource_from_document`] on the parsed
/// text, for the reads that decode every stored resource.
pub fn resource_from_document_text(document: &str) -> Result<Resource, String> {
    use serde_json::value::RawValue;
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(default)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        metadata: Option<&'a RawValue>,
        #[serde(borrow, default)]
        spec: Option<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_str(document).map_err(|e| e.to_string())?;
    fn text(raw: Option<&RawValue>) -> &str {
        raw.map_or("null", RawValue::get)
    }
    let mut metadata = serde_json::Deserializer::from_str(text(envelope.metadata));
    let mut spec = serde_json::Deserializer::from_str(text(envelope.spec));
    resource_of(envelope.kind.as_deref(), &mut metadata, &mut spec)
}

/// A resource from its envelope's parts, whatever they are read from (a
/// JSON tree or JSON text): the kind's name, then the metadata and the
/// spec, each failure prefixed with the part it is in.
fn resource_of<'de, D>(kind_name: Option<&str>, metadata: D, spec: D) -> Result<Resource, String>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let kind_name = kind_name.ok_or("missing kind")?;
    let kind = Kind::from_name(kind_name).ok_or_else(|| format!("unknown kind {kind_name}"))?;
    let metadata = Metadata::deserialize(metadata).map_err(|e| format!("metadata: {e}"))?;
    let spec = Spec::deserialize_as(kind, spec).map_err(|e| format!("spec: {e}"))?;
    Ok(Resource {
        metadata,
        spec,
        content: None,
    })
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    pub staged: Option<Staged>,
}

/// A resource an action writes, in stored form, and its unit hash: the
/// resource's box moves here from the tree it was read from, uncopied.
pub type Staged = (Box<Resource>, String);

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
#[serde(rename_all = "camelCase")]
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
#[serde(rename_all = "camelCase")]
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
#[serde(rename_all = "camelCase")]
pub struct HashRefresh {
    /// The resource ID.
    pub id: String,
    /// The new unit hash.
    pub file_hash: String,
}

/// What apply would do to one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    ///
    /// Built field by field, so that the resources the plan would write
    /// (all of them, for a first apply) are never copied only to be dropped.
    pub fn report(&self) -> Plan {
        let actions = self
            .actions
            .iter()
            .map(|a| Action {
                action: a.action,
                kind: a.kind,
                name: a.name.clone(),
                id: a.id.clone(),
                changes: a.changes.clone(),
                reason: a.reason.clone(),
                payload: None,
                staged: None,
            })
            .collect();
        Plan {
            tenant: self.tenant.clone(),
            base_revision: self.base_revision,
            summary: self.summary,
            actions,
            absent: self.absent.clone(),
            refresh: Vec::new(),
            source_commit: self.source_commit.clone(),
            drift: self.drift.clone(),
            warnings: self.warnings.clone(),
        }
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
        // Field changes are for people: ciphertext is shown abbreviated.
        _ => out.push(FieldChange {
            path: path.to_string(),
            before: abbreviate_value(a),
            after: abbreviate_value(b),
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
///
/// The steps: [`compare_with_index`] sorts the desired resources into
/// creates, updates and unchanged ones by content hash; [`upsert_actions`]
/// orders creates and updates top-down with their field changes (only the
/// updated drafts are fetched); the resources the tree no longer has are
/// then deleted bottom-up with prune ([`delete_actions`]) or reported as
/// absent ([`absent_of`]).
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
    let compared = compare_with_index(desired, index, &mut summary);
    let update_ids: Vec<String> = compared
        .updates
        .iter()
        .map(|s| s.0.id().unwrap_or_default().to_string())
        .collect();
    let current: HashMap<String, Resource> = fetch(&update_ids)?
        .into_iter()
        .filter_map(|r| r.id().map(|id| (id.to_string(), r.clone())))
        .collect();
    let upserts = compared
        .creates
        .into_iter()
        .map(|s| (ActionKind::Create, s))
        .chain(
            compared
                .updates
                .into_iter()
                .map(|s| (ActionKind::Update, s)),
        )
        .collect();
    let mut actions = upsert_actions(upserts, &current, index, names, &mut summary);

    let gone: Vec<&IndexEntry> = index
        .entries()
        .iter()
        .filter(|e| !compared.desired_ids.contains(&e.id) && !unchanged.contains(e.id.as_str()))
        .collect();
    let absent = if options.prune {
        let updated: HashSet<&str> = update_ids.iter().map(String::as_str).collect();
        let deletes = delete_actions(&gone, &actions, index, &updated, &mut summary);
        actions.extend(deletes);
        Vec::new()
    } else {
        absent_of(&gone)
    };
    let mut refresh = compared.refresh;
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

/// The desired resources sorted against the index.
struct Compared {
    /// Not in the index.
    creates: Vec<Staged>,
    /// In the index with other content.
    updates: Vec<Staged>,
    /// Equal content, new file bytes: the unit hash to refresh.
    refresh: Vec<HashRefresh>,
    /// Every desired ID.
    desired_ids: HashSet<String>,
}

/// Sort the desired resources by their content hash against the index:
/// creates, updates, and unchanged ones (counted as skips in `summary`).
fn compare_with_index(desired: Vec<Desired>, index: &Index, summary: &mut Summary) -> Compared {
    let mut out = Compared {
        creates: Vec::with_capacity(desired.len()),
        updates: Vec::new(),
        refresh: Vec::new(),
        desired_ids: HashSet::with_capacity(desired.len()),
    };
    let hashes: Vec<String> = desired
        .par_iter()
        .map(|d| content_hash(&d.resource))
        .collect();
    for (d, hash) in desired.into_iter().zip(hashes) {
        let id = d.resource.id().unwrap_or_default().to_string();
        out.desired_ids.insert(id.clone());
        match index.get(&id) {
            None => out.creates.push((d.resource, d.hash)),
            Some(e) if e.content_hash == hash => {
                summary.skip += 1;
                if e.file_hash != d.hash {
                    out.refresh.push(HashRefresh {
                        id,
                        file_hash: d.hash,
                    });
                }
            }
            Some(_) => out.updates.push((d.resource, d.hash)),
        }
    }
    out
}

/// The create and update actions, top-down along references; an update
/// carries its field changes against `current` (the stored drafts).
fn upsert_actions(
    upserts: Vec<(ActionKind, Staged)>,
    current: &HashMap<String, Resource>,
    index: &Index,
    names: &dyn Names,
    summary: &mut Summary,
) -> Vec<Action> {
    let order = topo(
        &upserts
            .iter()
            .map(|(_, s)| {
                let r = &s.0;
                (
                    r.id().unwrap_or_default(),
                    r.kind(),
                    r.name(),
                    r.refs().into_iter().map(|(_, x)| x).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut slots: Vec<Option<(ActionKind, Staged)>> = upserts.into_iter().map(Some).collect();
    let mut actions = Vec::with_capacity(slots.len());
    for i in order {
        let Some((kind_of_action, staged)) = slots[i].take() else {
            continue;
        };
        let resource = &staged.0;
        let id = resource.id().unwrap_or_default().to_string();
        let changes = match (kind_of_action, current.get(&id)) {
            (ActionKind::Update, Some(cur)) => {
                field_changes(&render_names(cur, index), &render_names(resource, names))
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
            staged: Some(staged),
        });
    }
    actions
}

/// Who still references each resource that would be deleted, from outside
/// the delete set: the resources being written (`actions`), and the stored
/// ones neither deleted nor `updated` (an update's references are its new ones).
fn referrers_of<'a>(
    gone: &[&'a IndexEntry],
    actions: &[Action],
    index: &Index,
    updated: &HashSet<&str>,
) -> BTreeMap<&'a str, Vec<String>> {
    let gone_ids: HashSet<&'a str> = gone.iter().map(|e| e.id.as_str()).collect();
    let mut referrers: BTreeMap<&'a str, Vec<String>> = BTreeMap::new();
    for a in actions {
        if let Some(s) = &a.staged {
            for (_, t) in s.0.refs() {
                if let Some(&t) = gone_ids.get(t.as_str()) {
                    referrers.entry(t).or_default().push(a.name.clone());
                }
            }
        }
    }
    for e in index.entries() {
        if gone_ids.contains(e.id.as_str()) || updated.contains(e.id.as_str()) {
            continue;
        }
        for t in &e.refs {
            if let Some(&t) = gone_ids.get(t.as_str()) {
                referrers.entry(t).or_default().push(e.name.clone());
            }
        }
    }
    referrers
}

/// With prune: the resources the tree no longer has, deleted bottom-up; one
/// still referenced from outside the delete set is a conflict instead.
fn delete_actions(
    gone: &[&IndexEntry],
    actions: &[Action],
    index: &Index,
    updated: &HashSet<&str>,
    summary: &mut Summary,
) -> Vec<Action> {
    let referrers = referrers_of(gone, actions, index, updated);
    let order = topo(
        &gone
            .iter()
            .map(|e| {
                let refs: Vec<&str> = e.refs.iter().map(String::as_str).collect();
                (e.id.as_str(), e.kind, e.name.as_str(), refs)
            })
            .collect::<Vec<_>>(),
    );
    let mut out = Vec::with_capacity(gone.len());
    for i in order.into_iter().rev() {
        let e = gone[i];
        let (action, reason) = match referrers.get(e.id.as_str()) {
            Some(by) => {
                summary.conflict += 1;
                let reason = format!("not deleted: still referenced by {}", by.join(", "));
                (ActionKind::Conflict, Some(reason))
            }
            None => {
                summary.delete += 1;
                (ActionKind::Delete, None)
            }
        };
        out.push(Action {
            action,
            kind: e.kind,
            name: e.name.clone(),
            id: e.id.clone(),
            changes: Vec::new(),
            reason,
            payload: None,
            staged: None,
        });
    }
    out
}

/// Without prune: the resources the tree no longer has, by kind and name.
fn absent_of(gone: &[&IndexEntry]) -> Vec<Absent> {
    let mut absent: Vec<Absent> = gone
        .iter()
        .map(|e| Absent {
            kind: e.kind,
            name: e.name.clone(),
            id: e.id.clone(),
        })
        .collect();
    absent.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    absent
}

/// Order items so that each comes after what it references: by kind, then
/// by dependency within a kind, then by name.
pub fn topo<R: AsRef<str>>(items: &[(&str, Kind, &str, Vec<R>)]) -> Vec<usize> {
    let mut by_kind: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_kind.entry(it.1).or_default().push(i);
    }
    let mut out = Vec::with_capacity(items.len());
    for (_, mut members) in by_kind {
        members.sort_by(|a, b| items[*a].2.cmp(items[*b].2));
        let pos: HashMap<&str, usize> = members.iter().map(|i| (items[*i].0, *i)).collect();
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
                    if let Some(&j) = pos.get(r.as_ref()) {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A resource of `kind` from its stored-form spec (test data).
    pub(crate) fn res(kind: &str, id: &str, name: &str, spec: Value) -> Resource {
        resource_from_document(
            &serde_json::json!({"apiVersion": "ferry/v1", "kind": kind,
                "metadata": {"id": id, "name": name}, "spec": spec}),
            None,
        )
        .unwrap()
    }

    fn connection(id: &str, name: &str) -> Resource {
        res(
            "Connection",
            id,
            name,
            serde_json::json!({"type": "http", "baseUrl": "https://crm.example"}),
        )
    }

    fn tool(id: &str, name: &str, connection: Option<&str>) -> Resource {
        let mut spec = serde_json::json!({"type": "http"});
        if let Some(c) = connection {
            spec["connection"] = c.into();
        }
        res("Tool", id, name, spec)
    }

    fn entry(r: &Resource, file_hash: &str) -> IndexEntry {
        IndexEntry {
            id: r.id().unwrap().to_string(),
            kind: r.kind(),
            name: r.name().to_string(),
            content_hash: content_hash(r),
            file_hash: file_hash.to_string(),
            refs: r.refs().into_iter().map(|(_, t)| t).collect(),
            revision: 1,
        }
    }

    fn desired(r: &Resource, hash: &str) -> Desired {
        Desired {
            path: resource_path_of(r),
            hash: hash.to_string(),
            resource: Box::new(r.clone()),
        }
    }

    fn resource_path_of(r: &Resource) -> String {
        crate::domain::model::resource_path(r.kind(), r.name())
    }

    #[test]
    fn compare_with_index_sorts_by_content_hash() {
        let same = connection("con_1", "crm");
        let reformatted = connection("con_2", "erp");
        let changed = tool("tol_1", "lookup", None);
        let index = Index::new(vec![
            entry(&same, "h1"),
            entry(&reformatted, "h2"),
            entry(&tool("tol_1", "lookup", Some("con_1")), "h3"),
        ]);
        let new = tool("tol_2", "fresh", None);
        let mut summary = Summary::default();
        let c = compare_with_index(
            vec![
                desired(&same, "h1"),
                desired(&reformatted, "h2-new"),
                desired(&changed, "h3"),
                desired(&new, "h4"),
            ],
            &index,
            &mut summary,
        );
        assert_eq!(summary.skip, 2);
        assert_eq!(c.creates, vec![(Box::new(new), "h4".to_string())]);
        assert_eq!(c.updates, vec![(Box::new(changed), "h3".to_string())]);
        assert_eq!(
            c.refresh,
            vec![HashRefresh {
                id: "con_2".into(),
                file_hash: "h2-new".into()
            }]
        );
        assert_eq!(c.desired_ids.len(), 4);
    }

    #[test]
    fn upsert_actions_come_top_down_with_the_changes_of_updates() {
        let old = tool("tol_1", "lookup", None);
        let index = Index::new(vec![entry(&old, "h")]);
        let conn = connection("con_1", "crm");
        let new = tool("tol_1", "lookup", Some("con_1"));
        let mut summary = Summary::default();
        let current: HashMap<String, Resource> = [("tol_1".to_string(), old)].into();
        let mut names = crate::domain::validate::NameTable::of_resources([&conn, &new]);
        names.insert(Kind::Tool, "lookup", "tol_1");
        let actions = upsert_actions(
            vec![
                (ActionKind::Update, (Box::new(new), "h2".into())),
                (ActionKind::Create, (Box::new(conn), "h1".into())),
            ],
            &current,
            &index,
            &names,
            &mut summary,
        );
        let order: Vec<(&str, ActionKind)> =
            actions.iter().map(|a| (a.id.as_str(), a.action)).collect();
        assert_eq!(
            order,
            [("con_1", ActionKind::Create), ("tol_1", ActionKind::Update)]
        );
        assert_eq!((summary.create, summary.update), (1, 1));
        assert_eq!(actions[1].changes[0].path, "spec.connection");
        assert_eq!(actions[1].changes[0].after, "crm");
        assert!(actions[0].changes.is_empty());
    }

    #[test]
    fn delete_actions_come_bottom_up_and_spare_what_is_still_referenced() {
        let conn = connection("con_1", "crm");
        let user = tool("tol_1", "lookup", Some("con_1"));
        let lone = connection("con_2", "erp");
        let index = Index::new(vec![
            entry(&conn, "a"),
            entry(&user, "b"),
            entry(&lone, "c"),
        ]);
        let gone: Vec<&IndexEntry> = index.entries().iter().filter(|e| e.id != "tol_1").collect();
        let mut summary = Summary::default();
        let actions = delete_actions(&gone, &[], &index, &HashSet::new(), &mut summary);
        let by_id: HashMap<&str, &Action> = actions.iter().map(|a| (a.id.as_str(), a)).collect();
        assert_eq!(by_id["con_2"].action, ActionKind::Delete);
        assert_eq!(by_id["con_1"].action, ActionKind::Conflict);
        assert_eq!(
            by_id["con_1"].reason.as_deref(),
            Some("not deleted: still referenced by lookup")
        );
        assert_eq!((summary.delete, summary.conflict), (1, 1));

        // An update that drops the reference frees the connection.
        let updated: HashSet<&str> = ["tol_1"].into();
        let mut summary = Summary::default();
        let actions = delete_actions(&gone, &[], &index, &updated, &mut summary);
        assert!(actions.iter().all(|a| a.action == ActionKind::Delete));
    }

    #[test]
    fn referrers_of_counts_what_is_being_written() {
        let conn = connection("con_1", "crm");
        let index = Index::new(vec![entry(&conn, "a")]);
        let gone: Vec<&IndexEntry> = index.entries().iter().collect();
        let writes = Action {
            action: ActionKind::Create,
            kind: Kind::Tool,
            name: "new-tool".into(),
            id: "tol_9".into(),
            changes: Vec::new(),
            reason: None,
            payload: None,
            staged: Some((
                Box::new(tool("tol_9", "new-tool", Some("con_1"))),
                "h".into(),
            )),
        };
        let r = referrers_of(&gone, &[writes], &index, &HashSet::new());
        assert_eq!(r["con_1"], ["new-tool"]);
    }

    #[test]
    fn a_report_is_the_plan_without_what_it_would_write() {
        let written = tool("tol_9", "new-tool", Some("con_1"));
        let action = Action {
            action: ActionKind::Create,
            kind: Kind::Tool,
            name: "new-tool".into(),
            id: "tol_9".into(),
            changes: Vec::new(),
            reason: Some("why".into()),
            payload: Some(Payload::of(&written, "h")),
            staged: Some((Box::new(written), "h".into())),
        };
        let plan = Plan {
            tenant: "acme".into(),
            base_revision: 7,
            summary: Summary {
                create: 1,
                ..Summary::default()
            },
            actions: vec![action.clone()],
            absent: Vec::new(),
            refresh: vec![HashRefresh {
                id: "tol_1".into(),
                file_hash: "h2".into(),
            }],
            source_commit: Some("abc".into()),
            drift: Vec::new(),
            warnings: vec!["careful".into()],
        };
        let mut expected = plan.clone();
        expected.refresh.clear();
        expected.actions[0].payload = None;
        expected.actions[0].staged = None;
        assert_eq!(plan.report(), expected);
    }

    #[test]
    fn absent_of_lists_by_kind_then_name() {
        let index = Index::new(vec![
            entry(&tool("tol_1", "b-tool", None), "a"),
            entry(&tool("tol_2", "a-tool", None), "b"),
            entry(&connection("con_1", "z-conn"), "c"),
        ]);
        let gone: Vec<&IndexEntry> = index.entries().iter().collect();
        let names: Vec<String> = absent_of(&gone).into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["z-conn", "a-tool", "b-tool"]);
    }
}
