//! Staging and publishing, as pure data: the staging diff, what a publish
//! writes, its record, and the field-level three-way revert of a publish.
//!
//! Every resource has a draft (staging) and published versions (production
//! is the latest). Nothing here touches a store or git: callers read drafts
//! and published versions (stored form, references as IDs), call these
//! functions, and hand the results to the store in one transaction. Values
//! are shown in tree form (references rendered as names).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::model::{Kind, Resource};
use crate::domain::plan::{
    diff_values, field_changes, resource_from_document, ActionKind, FieldChange,
};
use crate::domain::state::content_hash;
use crate::domain::validate::{render_names, NameTable};

/// One changed field between production and staging. It serializes with
/// plain-text credentials hidden ([`crate::domain::secrets::shown`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StagingChange {
    /// Dotted path, e.g. `spec.instructions`.
    pub path: String,
    /// The production value (`null` when absent).
    pub production: Value,
    /// The staging value (`null` when absent).
    pub staging: Value,
}

impl Serialize for StagingChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let staging = crate::domain::secrets::Shown::at(&self.path, &self.staging);
        let mut st = s.serialize_struct("StagingChange", 3)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("production", &staging.beside(&self.production))?;
        st.serialize_field("staging", &staging)?;
        st.end()
    }
}

/// How a resource differs between production and staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Only in staging (never published, or deleted from production).
    Created,
    /// In both, with different fields.
    Updated,
    /// Only in production (the draft was deleted).
    Deleted,
}

/// The changes of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiff {
    /// Kind.
    pub kind: Kind,
    /// Name (the staging name, or the production one for a deletion).
    pub name: String,
    /// ID.
    pub id: String,
    /// Created, updated or deleted.
    pub status: Status,
    /// Only the fields that differ.
    pub changes: Vec<StagingChange>,
}

/// Staging against production: only what differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagingDiff {
    /// Whether there is anything to publish.
    pub has_changes: bool,
    /// Resources that differ, in step order then by name.
    pub resources: Vec<ResourceDiff>,
}

/// A resource named in a publish summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Named {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
}

/// What a publish changed, by kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishSummary {
    /// Resources published for the first time (or again after a deletion).
    pub created: Vec<Named>,
    /// Resources with a new version.
    pub updated: Vec<Named>,
    /// Resources taken out of production.
    pub deleted: Vec<Named>,
}

impl PublishSummary {
    /// Whether the summary names a resource with this ID.
    pub fn mentions(&self, id: &str) -> bool {
        self.created
            .iter()
            .chain(&self.updated)
            .chain(&self.deleted)
            .any(|n| n.id == id)
    }

    /// One line per resource, e.g. `updated Agent support-bot`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (verb, list) in [
            ("created", &self.created),
            ("updated", &self.updated),
            ("deleted", &self.deleted),
        ] {
            for n in list {
                out.push(format!("{verb} {} {}", n.kind, n.name));
            }
        }
        out
    }
}

/// One entry of the publish log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRecord {
    /// The tenant.
    pub tenant: String,
    /// Publish number within the tenant, from 1.
    pub number: u64,
    /// The change-track ID (`chg_...`).
    pub change_track_id: String,
    /// The agent published with `--agent`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Who published.
    pub published_by: String,
    /// When (RFC 3339 UTC).
    pub published_at: String,
    /// The publish message.
    pub message: String,
    /// What changed.
    pub summary: PublishSummary,
    /// The annotated git tag, when the repo held the published tree.
    pub tag: Option<String>,
    /// The commit tagged.
    pub commit: Option<String>,
}

/// A published version to write: the resource, or `None` for a deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedVersion {
    /// The resource ID.
    pub id: String,
    /// The new production state (stored form); `None` takes it out of production.
    pub resource: Option<Resource>,
}

/// The versions of one resource around a publish.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionPair {
    /// The resource ID.
    pub id: String,
    /// Production before the publish (`None`: the publish created it).
    pub before: Option<Resource>,
    /// Production after the publish (`None`: the publish deleted it).
    pub after: Option<Resource>,
}

fn by_id(list: &[Resource]) -> BTreeMap<String, &Resource> {
    list.iter()
        .filter_map(|r| r.id().map(|id| (id.to_string(), r)))
        .collect()
}

fn names_of(a: &[Resource], b: &[Resource]) -> NameTable {
    // Staging names win over production names for the same ID.
    let mut t = NameTable::of_resources(b.iter());
    for r in a {
        if let Some(id) = r.id() {
            t.insert(r.kind(), r.name(), id);
        }
    }
    t
}

/// The JSON of a resource as people compare it: metadata (no ID), spec, content hash.
fn compare_json(r: &Resource) -> (Value, Value) {
    let mut meta = serde_json::to_value(&r.metadata).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut meta {
        o.remove("id");
    }
    (meta, r.spec.to_json())
}

fn one_sided(r: &Resource, present_is_after: bool) -> Vec<FieldChange> {
    let (meta, spec) = compare_json(r);
    let mut out = Vec::new();
    one_sided_changes("metadata", meta, present_is_after, &mut out);
    one_sided_changes("spec", spec, present_is_after, &mut out);
    if let Some(c) = &r.content {
        let h = Value::String(crate::domain::ids::content_hash(c));
        let (before, after) = if present_is_after {
            (Value::Null, h)
        } else {
            (h, Value::Null)
        };
        out.push(FieldChange {
            path: "content".into(),
            before,
            after,
        });
    }
    out
}

/// The changes between an empty object and `value` (on the present side),
/// as [`diff_values`] gives them: one per field that is not null, in key
/// order, each value moved into its change rather than copied.
fn one_sided_changes(path: &str, value: Value, present_is_after: bool, out: &mut Vec<FieldChange>) {
    let Value::Object(map) = value else {
        let empty = Value::Object(Map::new());
        let (a, b) = if present_is_after {
            (&empty, &value)
        } else {
            (&value, &empty)
        };
        return diff_values(path, a, b, out);
    };
    let mut fields: Vec<(String, Value)> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
    fields.sort_by(|(a, _), (b, _)| a.cmp(b));
    for (k, mut v) in fields {
        crate::domain::secrets::abbreviate_in_place(&mut v);
        let (before, after) = if present_is_after {
            (Value::Null, v)
        } else {
            (v, Value::Null)
        };
        out.push(FieldChange {
            path: format!("{path}.{k}"),
            before,
            after,
        });
    }
}

/// The field changes from `before` to `after` (either may be absent), in tree form.
pub fn resource_changes(
    before: Option<&Resource>,
    after: Option<&Resource>,
    names: &NameTable,
) -> Vec<FieldChange> {
    match (before, after) {
        (Some(b), Some(a)) => field_changes(&render_names(b, names), &render_names(a, names)),
        (None, Some(a)) => one_sided(&render_names(a, names), true),
        (Some(b), None) => one_sided(&render_names(b, names), false),
        (None, None) => Vec::new(),
    }
}

/// Diff two sets of resources by ID: `production` against `staging`,
/// restricted to `scope` (IDs) when given. Only differing fields are kept.
pub fn staging_diff(
    staging: &[Resource],
    production: &[Resource],
    scope: Option<&HashSet<String>>,
) -> StagingDiff {
    let names = names_of(staging, production);
    let s = by_id(staging);
    let p = by_id(production);
    let ids: BTreeSet<&String> = s.keys().chain(p.keys()).collect();
    let mut resources = Vec::new();
    for id in ids {
        if scope.is_some_and(|sc| !sc.contains(id)) {
            continue;
        }
        let (st, pr) = (s.get(id).copied(), p.get(id).copied());
        if let (Some(a), Some(b)) = (st, pr) {
            if content_hash(a) == content_hash(b) {
                continue;
            }
        }
        let changes = staging_changes(pr, st, &names);
        let (status, r) = match (st, pr) {
            (Some(a), Some(_)) => (Status::Updated, a),
            (Some(a), None) => (Status::Created, a),
            (None, Some(b)) => (Status::Deleted, b),
            (None, None) => continue,
        };
        if changes.is_empty() && status == Status::Updated {
            continue;
        }
        resources.push(ResourceDiff {
            kind: r.kind(),
            name: r.name().to_string(),
            id: id.clone(),
            status,
            changes,
        });
    }
    resources.sort_by(|a, b| (a.kind, &a.name, &a.id).cmp(&(b.kind, &b.name, &b.id)));
    StagingDiff {
        has_changes: !resources.is_empty(),
        resources,
    }
}

/// The ID of the agent named `name`, in staging or else in production.
pub fn find_agent(name: &str, staging: &[Resource], production: &[Resource]) -> Option<String> {
    staging
        .iter()
        .chain(production)
        .find(|r| r.kind() == Kind::Agent && r.name() == name)
        .and_then(|r| r.id().map(str::to_string))
}

/// The IDs a resource needs: itself and everything it references, transitively, in staging.
pub fn closure(root: &str, staging: &[Resource]) -> HashSet<String> {
    let s = by_id(staging);
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(r) = s.get(&id) {
            for (_, t) in r.refs() {
                if !seen.contains(&t) {
                    stack.push(t);
                }
            }
        }
    }
    seen
}

/// What a publish would write, from a staging diff: the versions and the summary.
pub fn prepare(
    diff: &StagingDiff,
    staging: &[Resource],
) -> (Vec<PublishedVersion>, PublishSummary) {
    let s = by_id(staging);
    let mut versions = Vec::new();
    let mut summary = PublishSummary::default();
    for r in &diff.resources {
        let named = Named {
            kind: r.kind,
            name: r.name.clone(),
            id: r.id.clone(),
        };
        match r.status {
            Status::Created => summary.created.push(named),
            Status::Updated => summary.updated.push(named),
            Status::Deleted => summary.deleted.push(named),
        }
        versions.push(PublishedVersion {
            id: r.id.clone(),
            resource: s.get(&r.id).map(|x| (*x).clone()),
        });
    }
    (versions, summary)
}

/// The change-track ID of publish `number`: a hash of the tenant, the number and what it wrote.
pub fn change_track_id(tenant: &str, number: u64, versions: &[PublishedVersion]) -> String {
    let content: Vec<String> = versions
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v.id,
                v.resource.as_ref().map(content_hash).unwrap_or_default()
            )
        })
        .collect();
    crate::domain::ids::change_id(tenant, number, &content.join("\n"))
}

/// The annotated tag of publish `number`: `<tenant>/publish/<n>`.
pub fn tag_name(tenant: &str, number: u64) -> String {
    format!("{tenant}/publish/{number}")
}

/// The message of a publish tag: the same record the store keeps.
pub fn tag_message(r: &PublishRecord) -> String {
    let mut s = format!(
        "ferry publish {} of {}\n\n{}\n\n",
        r.number, r.tenant, r.message
    );
    s.push_str(&format!("change_track_id: {}\n", r.change_track_id));
    s.push_str(&format!("published_by: {}\n", r.published_by));
    s.push_str(&format!("published_at: {}\n", r.published_at));
    if let Some(a) = &r.agent {
        s.push_str(&format!("agent: {a}\n"));
    }
    s.push_str("summary:\n");
    for l in r.summary.lines() {
        s.push_str(&format!("  {l}\n"));
    }
    s
}

/// A field that a revert cannot take back: it changed again after the publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertConflict {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
    /// The field (`""` for the whole resource).
    pub path: String,
    /// Why it is a conflict.
    pub reason: String,
    /// The value before the publish.
    pub base: Value,
    /// The value the publish made.
    pub published: Value,
    /// The value in staging now, which is kept.
    pub staging: Value,
}

/// What a revert does to one resource's draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertedResource {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
    /// What happens to the draft: `UPDATE`, `CREATE` or `DELETE`, the plan's action names.
    pub action: ActionKind,
    /// How the draft changes: `before` is staging now, `after` staging after the revert.
    pub changes: Vec<FieldChange>,
}

/// The outcome of a revert: the new drafts, and the conflicts kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevertOutcome {
    /// Drafts to write (stored form).
    pub upserts: Vec<Resource>,
    /// Drafts to delete.
    pub deletes: Vec<String>,
    /// What changes, per resource.
    pub resources: Vec<RevertedResource>,
    /// Fields (or resources) left as they are.
    pub conflicts: Vec<RevertConflict>,
}

type Path = Vec<String>;

fn flatten(v: &Value, prefix: &mut Path, out: &mut BTreeMap<Path, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                prefix.push(k.clone());
                flatten(x, prefix, out);
                prefix.pop();
            }
        }
        other => {
            out.insert(prefix.clone(), other.clone());
        }
    }
}

fn flat(r: &Resource) -> BTreeMap<Path, Value> {
    let doc = serde_json::json!({
        "metadata": serde_json::to_value(&r.metadata).unwrap_or(Value::Null),
        "spec": r.spec.to_json(),
        "content": r.content.as_ref().map(|c| Value::String(crate::domain::ids::content_hash(c))).unwrap_or(Value::Null),
    });
    let mut out = BTreeMap::new();
    flatten(&doc, &mut Vec::new(), &mut out);
    out.retain(|_, v| !v.is_null());
    out
}

fn unflatten(map: &BTreeMap<Path, Value>) -> Value {
    let mut root = Value::Object(Map::new());
    for (path, v) in map {
        let mut cur = &mut root;
        for (i, k) in path.iter().enumerate() {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(o) = cur else { break };
            if i + 1 == path.len() {
                o.insert(k.clone(), v.clone());
                break;
            }
            cur = o
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// A field's value as a revert preview shows it: ciphertext abbreviated.
fn show(v: Option<&Value>) -> Value {
    v.map(crate::domain::secrets::abbreviate_value)
        .unwrap_or(Value::Null)
}

/// Take one publish's changes back out of staging: a field-level three-way
/// revert (base = before the publish, theirs = what it published, ours = the
/// draft now). A field still equal to what the publish made goes back to
/// base; a field changed again since is a conflict and is kept.
///
/// The steps: each resource of the publish is reverted on its own
/// ([`Revert::resource`]); then drafts the publish created that a kept draft
/// still references are kept after all ([`still_referenced`],
/// [`Revert::keep_referenced`]).
pub fn revert(pairs: &[VersionPair], staging: &[Resource]) -> RevertOutcome {
    let prior: Vec<Resource> = pairs
        .iter()
        .flat_map(|p| p.before.iter().chain(p.after.iter()).cloned())
        .collect();
    let mut run = Revert {
        staging: by_id(staging),
        names: names_of(staging, &prior),
        out: RevertOutcome::default(),
        deleting: HashSet::new(),
    };
    for pair in pairs {
        run.resource(pair);
    }
    let blocked = still_referenced(staging, &run.deleting, &run.out.upserts);
    run.keep_referenced(&blocked);
    let mut out = run.out;
    out.resources
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out.conflicts
        .sort_by(|a, b| (a.kind, &a.name, &a.path).cmp(&(b.kind, &b.name, &b.path)));
    out
}

/// A revert under way: the drafts by ID, the names values are shown with,
/// what it does so far, and the drafts it would delete.
struct Revert<'a> {
    staging: BTreeMap<String, &'a Resource>,
    names: NameTable,
    out: RevertOutcome,
    deleting: HashSet<String>,
}

/// Whether two optional resources hold the same content.
fn same_content(a: Option<&Resource>, b: Option<&Resource>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => content_hash(x) == content_hash(y),
        (None, None) => true,
        _ => false,
    }
}

/// A whole resource as a conflict shows it: its content hash, or `null`.
fn whole(r: Option<&Resource>) -> Value {
    r.map(|x| Value::String(content_hash(x)))
        .unwrap_or(Value::Null)
}

/// A conflict on `r` at `path` (`""` for the whole resource).
fn conflict(
    r: &Resource,
    path: &str,
    reason: &str,
    [base, published, staging]: [Value; 3],
) -> RevertConflict {
    RevertConflict {
        kind: r.kind(),
        name: r.name().to_string(),
        id: r.id().unwrap_or_default().to_string(),
        path: path.to_string(),
        reason: reason.to_string(),
        base,
        published,
        staging,
    }
}

/// The field changes from `before` to `after` as staging changes (tree form).
fn staging_changes(
    before: Option<&Resource>,
    after: Option<&Resource>,
    names: &NameTable,
) -> Vec<StagingChange> {
    resource_changes(before, after, names)
        .into_iter()
        .map(|c| StagingChange {
            path: c.path,
            production: c.before,
            staging: c.after,
        })
        .collect()
}

impl Revert<'_> {
    /// Revert one resource of the publish, by what the publish did to it and
    /// what staging holds now.
    fn resource(&mut self, pair: &VersionPair) {
        let ours = self.staging.get(&pair.id).copied();
        let (base, theirs) = (pair.before.as_ref(), pair.after.as_ref());
        if same_content(base, theirs) {
            return;
        }
        match (base, theirs, ours) {
            (None, Some(t), Some(o)) => self.undo_create(&pair.id, t, o),
            (Some(b), None, None) => self.restore_deleted(&pair.id, b),
            (Some(b), None, Some(o)) => {
                if !same_content(Some(b), Some(o)) {
                    self.out.conflicts.push(conflict(
                        o,
                        "",
                        "deleted by this publish and created again in staging since; kept",
                        [whole(Some(b)), Value::Null, whole(Some(o))],
                    ));
                }
            }
            (Some(b), Some(t), None) => self.out.conflicts.push(conflict(
                b,
                "",
                "deleted from staging since this publish; not restored",
                [whole(Some(b)), whole(Some(t)), Value::Null],
            )),
            (Some(b), Some(t), Some(o)) => self.undo_update(&pair.id, b, t, o),
            (None, Some(_), None) | (None, None, _) => {}
        }
    }

    /// Created by the publish: delete the draft, unless it changed since.
    fn undo_create(&mut self, id: &str, theirs: &Resource, ours: &Resource) {
        if !same_content(Some(theirs), Some(ours)) {
            self.out.conflicts.push(conflict(
                ours,
                "",
                "created by this publish and changed in staging since; not deleted",
                [Value::Null, whole(Some(theirs)), whole(Some(ours))],
            ));
            return;
        }
        self.deleting.insert(id.to_string());
        self.out.deletes.push(id.to_string());
        self.out.resources.push(RevertedResource {
            kind: ours.kind(),
            name: ours.name().to_string(),
            id: id.to_string(),
            action: ActionKind::Delete,
            changes: resource_changes(Some(ours), None, &self.names),
        });
    }

    /// Deleted by the publish and not in staging: create the draft again.
    fn restore_deleted(&mut self, id: &str, base: &Resource) {
        self.out.upserts.push(base.clone());
        self.out.resources.push(RevertedResource {
            kind: base.kind(),
            name: base.name().to_string(),
            id: id.to_string(),
            action: ActionKind::Create,
            changes: resource_changes(None, Some(base), &self.names),
        });
    }

    /// Updated by the publish: the three-way merge of its fields.
    fn undo_update(&mut self, id: &str, base: &Resource, theirs: &Resource, ours: &Resource) {
        let (merged, field_conflicts) = merge_three_way(id, base, theirs, ours);
        match merged {
            Ok(merged) => {
                self.out.conflicts.extend(field_conflicts);
                if content_hash(&merged) != content_hash(ours) {
                    self.out.resources.push(RevertedResource {
                        kind: merged.kind(),
                        name: merged.name().to_string(),
                        id: id.to_string(),
                        action: ActionKind::Update,
                        changes: resource_changes(Some(ours), Some(&merged), &self.names),
                    });
                    self.out.upserts.push(merged);
                }
            }
            Err(e) => self.out.conflicts.push(conflict(
                ours,
                "",
                &format!("the merged fields do not make a valid resource ({e}); kept"),
                [whole(Some(base)), whole(Some(theirs)), whole(Some(ours))],
            )),
        }
    }

    /// Keep the drafts in `blocked` that the revert would delete: each
    /// becomes a conflict instead of a deletion.
    fn keep_referenced(&mut self, blocked: &HashSet<String>) {
        if blocked.is_empty() {
            return;
        }
        self.out.deletes.retain(|id| !blocked.contains(id));
        let mut kept = Vec::new();
        for rr in std::mem::take(&mut self.out.resources) {
            if rr.action == ActionKind::Delete && blocked.contains(&rr.id) {
                if let Some(o) = self.staging.get(&rr.id) {
                    kept.push(conflict(
                        o,
                        "",
                        "created by this publish but still referenced in staging; not deleted",
                        [Value::Null, whole(Some(o)), whole(Some(o))],
                    ));
                }
            } else {
                self.out.resources.push(rr);
            }
        }
        self.out.conflicts.extend(kept);
    }
}

/// The three-way merge of an updated resource: each field of `ours` still
/// equal to `theirs` goes back to `base`; a field changed since is a
/// conflict and is kept. The merged resource, or why it is not valid, and
/// the conflicts.
fn merge_three_way(
    id: &str,
    base: &Resource,
    theirs: &Resource,
    ours: &Resource,
) -> (Result<Resource, String>, Vec<RevertConflict>) {
    let (fields, mut conflicts) = merge_fields(&flat(base), &flat(theirs), &flat(ours), ours);
    let (content, content_conflict) = merge_content(base, theirs, ours);
    conflicts.extend(content_conflict);
    let merged = rebuild(&fields, ours.kind(), id, content);
    (merged, conflicts)
}

/// The flattened fields of `ours` after taking back what the publish
/// changed, and a conflict per field changed again since (`content` is
/// merged apart, by [`merge_content`]).
fn merge_fields(
    base: &BTreeMap<Path, Value>,
    theirs: &BTreeMap<Path, Value>,
    ours: &BTreeMap<Path, Value>,
    resource: &Resource,
) -> (BTreeMap<Path, Value>, Vec<RevertConflict>) {
    let paths: BTreeSet<&Path> = base
        .keys()
        .chain(theirs.keys())
        .chain(ours.keys())
        .collect();
    let mut result = ours.clone();
    let mut conflicts = Vec::new();
    for p in paths {
        if p.first().is_some_and(|k| k == "content") {
            continue;
        }
        let (vb, vt, vo) = (base.get(p), theirs.get(p), ours.get(p));
        if vt == vb || vo == vb {
            continue;
        }
        if vo == vt {
            match vb {
                Some(v) => result.insert(p.clone(), v.clone()),
                None => result.remove(p),
            };
        } else {
            conflicts.push(conflict(
                resource,
                &p.join("."),
                "changed in staging since this publish; kept",
                [show(vb), show(vt), show(vo)],
            ));
        }
    }
    (result, conflicts)
}

/// A document's content after the revert, and a conflict when it changed
/// again since the publish.
fn merge_content(
    base: &Resource,
    theirs: &Resource,
    ours: &Resource,
) -> (Option<Vec<u8>>, Option<RevertConflict>) {
    if theirs.content == base.content {
        return (ours.content.clone(), None);
    }
    if ours.content == theirs.content {
        return (base.content.clone(), None);
    }
    if ours.content == base.content {
        return (ours.content.clone(), None);
    }
    let kept = conflict(
        ours,
        "content",
        "changed in staging since this publish; kept",
        [whole(None), whole(None), whole(None)],
    );
    (ours.content.clone(), Some(kept))
}

/// A resource of `kind` with ID `id` from merged flattened fields and content.
fn rebuild(
    fields: &BTreeMap<Path, Value>,
    kind: Kind,
    id: &str,
    content: Option<Vec<u8>>,
) -> Result<Resource, String> {
    let mut doc = unflatten(fields);
    if let Value::Object(obj) = &mut doc {
        obj.remove("content");
        obj.insert(
            "apiVersion".into(),
            Value::String(crate::domain::model::API_VERSION.into()),
        );
        obj.insert("kind".into(), Value::String(kind.name().into()));
    }
    let mut merged = resource_from_document(&doc, None)?;
    merged.content = content;
    merged.metadata.id = Some(id.to_string());
    Ok(merged)
}

/// The drafts the revert would delete that a draft it keeps still
/// references, transitively (a kept draft keeps what it references too).
/// A kept draft is read as the revert leaves it (`upserts`).
fn still_referenced(
    staging: &[Resource],
    deleting: &HashSet<String>,
    upserts: &[Resource],
) -> HashSet<String> {
    let merged: HashMap<&str, &Resource> = upserts
        .iter()
        .filter_map(|r| r.id().map(|i| (i, r)))
        .collect();
    let mut blocked: HashSet<String> = HashSet::new();
    loop {
        let mut more = Vec::new();
        for r in staging {
            let id = r.id().unwrap_or_default();
            if deleting.contains(id) && !blocked.contains(id) {
                continue;
            }
            let r = merged.get(id).copied().unwrap_or(r);
            for (_, t) in r.refs() {
                if deleting.contains(&t) && !blocked.contains(&t) {
                    more.push(t);
                }
            }
        }
        if more.is_empty() {
            return blocked;
        }
        blocked.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::tests::res;

    #[test]
    fn one_sided_changes_are_the_diff_against_an_empty_object() {
        let k = crate::domain::secrets::generate_keypair();
        let enc = crate::domain::secrets::encrypt(&k.recipient, b"v").unwrap();
        let values = [
            serde_json::json!({
                "zeta": 1, "alpha": {"nested": [1, 2], "enc": enc}, "gone": null,
                "list": [{"a": 1}, {"b": enc}], "text": "hello", "empty": {}
            }),
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!([1, 2]),
            serde_json::json!("plain"),
        ];
        let empty = Value::Object(Map::new());
        for v in values {
            for present_is_after in [true, false] {
                let mut owned = Vec::new();
                one_sided_changes("spec", v.clone(), present_is_after, &mut owned);
                let mut diffed = Vec::new();
                if present_is_after {
                    diff_values("spec", &empty, &v, &mut diffed);
                } else {
                    diff_values("spec", &v, &empty, &mut diffed);
                }
                assert_eq!(owned, diffed, "{v}");
            }
        }
    }

    /// A connection and a tool that uses it.
    fn connection_and_tool() -> (Resource, Resource) {
        let conn = res(
            "Connection",
            "con_1",
            "crm",
            serde_json::json!({"type": "http", "baseUrl": "https://crm.example"}),
        );
        let tool = res(
            "Tool",
            "tol_1",
            "lookup",
            serde_json::json!({"type": "http", "connection": "con_1"}),
        );
        (conn, tool)
    }

    #[test]
    fn reverting_a_first_publish_keeps_what_staging_still_references_transitively() {
        let (conn, tool) = connection_and_tool();
        let lone = res(
            "Tool",
            "tol_2",
            "lone",
            serde_json::json!({"type": "javascript", "code": "1"}),
        );
        let agent = res(
            "Agent",
            "agt_1",
            "bot",
            serde_json::json!({"type": "assistant",
            "model": {"provider": "openai", "name": "gpt-4o"}, "tools": ["tol_1"]}),
        );
        let staging = vec![conn.clone(), tool.clone(), lone.clone(), agent];
        // The publish created the connection and both tools; the agent was not in it.
        let pairs: Vec<VersionPair> = [&conn, &tool, &lone]
            .into_iter()
            .map(|r| VersionPair {
                id: r.id().unwrap().to_string(),
                before: None,
                after: Some(r.clone()),
            })
            .collect();
        let out = revert(&pairs, &staging);
        assert_eq!(
            out.deletes,
            vec!["tol_2".to_string()],
            "only what nothing references goes"
        );
        let kept: Vec<&str> = out.conflicts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(kept, ["con_1", "tol_1"]);
        assert!(out
            .conflicts
            .iter()
            .all(|c| c.reason.contains("still referenced")));
    }

    fn revert_of<'a>(staging: &'a [Resource]) -> Revert<'a> {
        Revert {
            staging: by_id(staging),
            names: names_of(staging, &[]),
            out: RevertOutcome::default(),
            deleting: HashSet::new(),
        }
    }

    fn js_tool(id: &str, name: &str, code: &str) -> Resource {
        res(
            "Tool",
            id,
            name,
            serde_json::json!({"type": "javascript", "code": code}),
        )
    }

    #[test]
    fn undo_create_deletes_an_unchanged_draft_and_keeps_a_changed_one() {
        let published = js_tool("tol_1", "a", "1");
        let changed = js_tool("tol_1", "a", "2");
        let staging = [published.clone()];
        let mut run = revert_of(&staging);
        run.undo_create("tol_1", &published, &published);
        assert_eq!(run.out.deletes, ["tol_1"]);
        assert_eq!(run.out.resources[0].action, ActionKind::Delete);
        assert!(run.deleting.contains("tol_1"));

        let staging = [changed.clone()];
        let mut run = revert_of(&staging);
        run.undo_create("tol_1", &published, &changed);
        assert!(run.out.deletes.is_empty());
        assert!(run.out.conflicts[0]
            .reason
            .contains("changed in staging since"));
        assert_eq!(run.out.conflicts[0].published, whole(Some(&published)));
    }

    #[test]
    fn restore_deleted_creates_the_draft_again() {
        let base = js_tool("tol_1", "a", "1");
        let mut run = revert_of(&[]);
        run.restore_deleted("tol_1", &base);
        assert_eq!(run.out.upserts, [base]);
        assert_eq!(run.out.resources[0].action, ActionKind::Create);
        assert!(run.out.resources[0]
            .changes
            .iter()
            .any(|c| c.path == "spec.code" && c.after == "1"));
    }

    #[test]
    fn merge_fields_takes_back_what_the_publish_changed_and_keeps_what_changed_since() {
        let f = |code: &str, desc: Option<&str>| {
            let mut spec = serde_json::json!({"type": "javascript", "code": code});
            if let Some(d) = desc {
                spec["description"] = d.into();
            }
            flat(&res("Tool", "tol_1", "a", spec))
        };
        let ours_resource = js_tool("tol_1", "a", "3");
        // code: base 1, published 2, staging 3 (changed since) — a conflict;
        // description: added by the publish, untouched since — removed again.
        let (merged, conflicts) = merge_fields(
            &f("1", None),
            &f("2", Some("new")),
            &f("3", Some("new")),
            &ours_resource,
        );
        let code = vec!["spec".to_string(), "code".to_string()];
        let desc = vec!["spec".to_string(), "description".to_string()];
        assert_eq!(merged.get(&code), Some(&Value::String("3".into())));
        assert!(!merged.contains_key(&desc));
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].path, "spec.code");
        assert_eq!(
            (
                &conflicts[0].base,
                &conflicts[0].published,
                &conflicts[0].staging
            ),
            (&"1".into(), &"2".into(), &"3".into())
        );
    }

    #[test]
    fn merge_content_goes_back_only_when_staging_kept_what_was_published() {
        let doc = |content: &[u8]| {
            let mut r = res(
                "Document",
                "doc_1",
                "d",
                serde_json::json!({"title": "D", "mediaType": "text/plain"}),
            );
            r.content = Some(content.to_vec());
            r
        };
        let (b, t) = (doc(b"base"), doc(b"published"));
        assert_eq!(merge_content(&b, &t, &t), (Some(b"base".to_vec()), None));
        assert_eq!(merge_content(&b, &t, &b), (Some(b"base".to_vec()), None));
        assert_eq!(
            merge_content(&b, &b, &t),
            (Some(b"published".to_vec()), None)
        );
        let (kept, conflict) = merge_content(&b, &t, &doc(b"since"));
        assert_eq!(kept, Some(b"since".to_vec()));
        assert_eq!(conflict.map(|c| c.path), Some("content".to_string()));
    }

    #[test]
    fn rebuild_makes_a_resource_of_merged_fields_or_says_why_not() {
        let r = js_tool("tol_1", "a", "1");
        let mut fields = flat(&r);
        let rebuilt = rebuild(&fields, Kind::Tool, "tol_1", None).unwrap();
        assert_eq!(content_hash(&rebuilt), content_hash(&r));
        fields.insert(
            vec!["spec".to_string(), "nonsense".to_string()],
            Value::Bool(true),
        );
        assert!(rebuild(&fields, Kind::Tool, "tol_1", None).is_err());
    }

    #[test]
    fn still_referenced_follows_kept_drafts_and_their_new_references() {
        let (conn, tool) = connection_and_tool();
        let staging = vec![conn.clone(), tool.clone()];
        let deleting: HashSet<String> = ["con_1".to_string()].into();
        // The tool stays and references the connection: kept.
        assert_eq!(still_referenced(&staging, &deleting, &[]), deleting);
        // The revert rewrites the tool without its connection: deleted after all.
        let rewritten = res(
            "Tool",
            "tol_1",
            "lookup",
            serde_json::json!({"type": "http"}),
        );
        assert!(still_referenced(&staging, &deleting, &[rewritten]).is_empty());
    }
}
