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
use crate::domain::plan::{diff_values, field_changes, resource_from_document, FieldChange};
use crate::domain::state::content_hash;
use crate::domain::validate::{render_names, NameTable};

/// One changed field between production and staging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingChange {
    /// Dotted path, e.g. `spec.instructions`.
    pub path: String,
    /// The production value (`null` when absent).
    pub production: Value,
    /// The staging value (`null` when absent).
    pub staging: Value,
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
    let empty = Value::Object(Map::new());
    let mut out = Vec::new();
    let mut push = |path: &str, v: &Value| {
        if present_is_after {
            diff_values(path, &empty, v, &mut out)
        } else {
            diff_values(path, v, &empty, &mut out)
        }
    };
    push("metadata", &meta);
    push("spec", &spec);
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
        let changes: Vec<StagingChange> = resource_changes(pr, st, &names)
            .into_iter()
            .map(|c| StagingChange {
                path: c.path,
                production: c.before,
                staging: c.after,
            })
            .collect();
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
pub struct RevertedResource {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID.
    pub id: String,
    /// `update`, `create` or `delete`, of the draft.
    pub action: String,
    /// How the draft changes.
    pub changes: Vec<StagingChange>,
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
pub fn revert(pairs: &[VersionPair], staging: &[Resource]) -> RevertOutcome {
    let s = by_id(staging);
    let prior: Vec<Resource> = pairs
        .iter()
        .flat_map(|p| p.before.iter().chain(p.after.iter()).cloned())
        .collect();
    let names = names_of(staging, &prior);
    let mut out = RevertOutcome::default();
    let mut deleting: HashSet<String> = HashSet::new();
    let changes_of = |a: Option<&Resource>, b: Option<&Resource>| -> Vec<StagingChange> {
        resource_changes(a, b, &names)
            .into_iter()
            .map(|c| StagingChange {
                path: c.path,
                production: c.before,
                staging: c.after,
            })
            .collect()
    };
    let conflict =
        |r: &Resource, path: &str, reason: &str, b: Value, t: Value, o: Value| RevertConflict {
            kind: r.kind(),
            name: r.name().to_string(),
            id: r.id().unwrap_or_default().to_string(),
            path: path.to_string(),
            reason: reason.to_string(),
            base: b,
            published: t,
            staging: o,
        };
    let whole = |r: Option<&Resource>| {
        r.map(|x| Value::String(content_hash(x)))
            .unwrap_or(Value::Null)
    };
    for pair in pairs {
        let ours = s.get(&pair.id).copied();
        let same = |a: Option<&Resource>, b: Option<&Resource>| match (a, b) {
            (Some(x), Some(y)) => content_hash(x) == content_hash(y),
            (None, None) => true,
            _ => false,
        };
        let (base, theirs) = (pair.before.as_ref(), pair.after.as_ref());
        if same(base, theirs) {
            continue;
        }
        match (base, theirs, ours) {
            // Created by the publish.
            (None, Some(t), Some(o)) => {
                if same(Some(t), Some(o)) {
                    deleting.insert(pair.id.clone());
                    out.deletes.push(pair.id.clone());
                    out.resources.push(RevertedResource {
                        kind: o.kind(),
                        name: o.name().to_string(),
                        id: pair.id.clone(),
                        action: "delete".into(),
                        changes: changes_of(Some(o), None),
                    });
                } else {
                    out.conflicts.push(conflict(
                        o,
                        "",
                        "created by this publish and changed in staging since; not deleted",
                        Value::Null,
                        whole(Some(t)),
                        whole(Some(o)),
                    ));
                }
            }
            (None, Some(_), None) => {}
            // Deleted by the publish.
            (Some(b), None, None) => {
                out.upserts.push(b.clone());
                out.resources.push(RevertedResource {
                    kind: b.kind(),
                    name: b.name().to_string(),
                    id: pair.id.clone(),
                    action: "create".into(),
                    changes: changes_of(None, Some(b)),
                });
            }
            (Some(b), None, Some(o)) => {
                if !same(Some(b), Some(o)) {
                    out.conflicts.push(conflict(
                        o,
                        "",
                        "deleted by this publish and created again in staging since; kept",
                        whole(Some(b)),
                        Value::Null,
                        whole(Some(o)),
                    ));
                }
            }
            (Some(b), Some(t), None) => {
                out.conflicts.push(conflict(
                    b,
                    "",
                    "deleted from staging since this publish; not restored",
                    whole(Some(b)),
                    whole(Some(t)),
                    Value::Null,
                ));
            }
            (Some(b), Some(t), Some(o)) => {
                let (fb, ft, fo) = (flat(b), flat(t), flat(o));
                let paths: BTreeSet<&Path> = fb.keys().chain(ft.keys()).chain(fo.keys()).collect();
                let mut result = fo.clone();
                let mut local_conflicts = Vec::new();
                for p in paths {
                    if p.first().is_some_and(|k| k == "content") {
                        continue;
                    }
                    let (vb, vt, vo) = (fb.get(p), ft.get(p), fo.get(p));
                    if vt == vb || vo == vb {
                        continue;
                    }
                    if vo == vt {
                        match vb {
                            Some(v) => result.insert(p.clone(), v.clone()),
                            None => result.remove(p),
                        };
                    } else {
                        local_conflicts.push(conflict(
                            o,
                            &p.join("."),
                            "changed in staging since this publish; kept",
                            show(vb),
                            show(vt),
                            show(vo),
                        ));
                    }
                }
                let mut content = o.content.clone();
                if t.content != b.content {
                    if o.content == t.content {
                        content = b.content.clone();
                    } else if o.content != b.content {
                        local_conflicts.push(conflict(
                            o,
                            "content",
                            "changed in staging since this publish; kept",
                            whole(None),
                            whole(None),
                            whole(None),
                        ));
                    }
                }
                let mut doc = unflatten(&result);
                if let Value::Object(obj) = &mut doc {
                    obj.remove("content");
                    obj.insert(
                        "apiVersion".into(),
                        Value::String(crate::domain::model::API_VERSION.into()),
                    );
                    obj.insert("kind".into(), Value::String(o.kind().name().into()));
                }
                match resource_from_document(&doc, None) {
                    Ok(mut merged) => {
                        merged.content = content;
                        merged.metadata.id = Some(pair.id.clone());
                        out.conflicts.extend(local_conflicts);
                        if content_hash(&merged) != content_hash(o) {
                            out.resources.push(RevertedResource {
                                kind: merged.kind(),
                                name: merged.name().to_string(),
                                id: pair.id.clone(),
                                action: "update".into(),
                                changes: changes_of(Some(o), Some(&merged)),
                            });
                            out.upserts.push(merged);
                        }
                    }
                    Err(e) => out.conflicts.push(conflict(
                        o,
                        "",
                        &format!("the merged fields do not make a valid resource ({e}); kept"),
                        whole(Some(b)),
                        whole(Some(t)),
                        whole(Some(o)),
                    )),
                }
            }
            (None, None, _) => {}
        }
    }
    // A draft still referenced by one that stays cannot be deleted.
    let merged: HashMap<String, &Resource> = out
        .upserts
        .iter()
        .filter_map(|r| r.id().map(|i| (i.to_string(), r)))
        .collect();
    // Until nothing changes: a kept draft keeps what it references too.
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
            break;
        }
        blocked.extend(more);
    }
    if !blocked.is_empty() {
        out.deletes.retain(|id| !blocked.contains(id));
        let mut kept = Vec::new();
        for rr in std::mem::take(&mut out.resources) {
            if rr.action == "delete" && blocked.contains(&rr.id) {
                if let Some(o) = s.get(&rr.id) {
                    kept.push(conflict(
                        o,
                        "",
                        "created by this publish but still referenced in staging; not deleted",
                        Value::Null,
                        whole(Some(o)),
                        whole(Some(o)),
                    ));
                }
            } else {
                out.resources.push(rr);
            }
        }
        out.conflicts.extend(kept);
    }
    out.resources
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out.conflicts
        .sort_by(|a, b| (a.kind, &a.name, &a.path).cmp(&(b.kind, &b.name, &b.path)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::resource_from_document;

    fn res(kind: &str, id: &str, name: &str, spec: Value) -> Resource {
        resource_from_document(
            &serde_json::json!({"apiVersion": "ferry/v1", "kind": kind,
                "metadata": {"id": id, "name": name}, "spec": spec}),
            None,
        )
        .unwrap()
    }

    #[test]
    fn reverting_a_first_publish_keeps_what_staging_still_references_transitively() {
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
}
