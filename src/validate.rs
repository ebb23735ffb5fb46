//! Validation across files, and resolution of names to IDs.
//!
//! Per-file problems are found while decoding (see [`crate::tree`]); this
//! module checks what needs the whole tenant: duplicate names and IDs,
//! references that point nowhere, reference cycles (sub-agents,
//! sub-workflows), and plain-text credentials. It reports every problem at
//! once as [`Diagnostic`]s, and on the way rewrites references from names
//! (tree form) to IDs (stored form).
//!
//! Units the store already holds unchanged take part through their index
//! entries, so a tree with one changed file is checked without reading the
//! others.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diagnostic::Diagnostic;
use crate::ids;
use crate::model::{is_builtin, is_valid_name, Kind, Resource, BUILTIN_PREFIX};
use crate::secrets;
use crate::state::{Index, IndexEntry};
use crate::tree::Loaded;

/// A resource of the desired state, in stored form (ID references, ID set).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Path of its YAML file.
    pub path: String,
    /// Unit hash of the files it was read from.
    pub hash: String,
    /// The resource in stored form.
    pub resource: Resource,
}

/// Names and IDs of every resource of a desired state.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    by_name: HashMap<(Kind, String), String>,
    by_id: HashMap<String, (Kind, String)>,
}

impl NameTable {
    /// Record one resource.
    pub fn insert(&mut self, kind: Kind, name: &str, id: &str) {
        self.by_name
            .insert((kind, name.to_string()), id.to_string());
        self.by_id.insert(id.to_string(), (kind, name.to_string()));
    }

    /// The ID of `kind`/`name`.
    pub fn id_of(&self, kind: Kind, name: &str) -> Option<&str> {
        self.by_name
            .get(&(kind, name.to_string()))
            .map(String::as_str)
    }

    /// The kind and name of `id`.
    pub fn name_of(&self, id: &str) -> Option<&(Kind, String)> {
        self.by_id.get(id)
    }

    /// A table for a set of stored-form resources.
    pub fn of_resources<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Self {
        let mut t = NameTable::default();
        for r in resources {
            if let Some(id) = r.id() {
                t.insert(r.kind(), r.name(), id);
            }
        }
        t
    }

    /// A table for an index.
    pub fn of_index(index: &Index) -> Self {
        let mut t = NameTable::default();
        for e in index.entries() {
            t.insert(e.kind, &e.name, &e.id);
        }
        t
    }
}

/// Rewrite a stored-form resource into tree form: IDs become names.
///
/// An ID the table does not know is left as it is.
pub fn render_names(resource: &Resource, table: &NameTable) -> Resource {
    let mut r = resource.clone();
    r.visit_refs_mut(&mut |_, reference| {
        if is_builtin(reference) {
            return;
        }
        if let Some((_, name)) = table.name_of(reference) {
            *reference = name.clone();
        }
    });
    r
}

/// Looks up the line of a field in a file, for messages. Returns `None` when unknown.
pub type LineLookup<'a> = &'a (dyn Fn(&str, &str, Option<&str>) -> Option<u64> + Sync);

/// The outcome of resolving a tree against an index.
#[derive(Debug, Default)]
pub struct Resolution {
    /// Decoded resources, in stored form.
    pub desired: Vec<Desired>,
    /// Names and IDs of the whole desired state (decoded and unchanged units).
    pub names: NameTable,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolve decoded units to stored form and check the whole desired state.
///
/// `unchanged` are the index entries of units that were not decoded because
/// the store holds them exactly; `index` is the store's whole index (empty
/// when there is no store).
pub fn resolve(
    tenant: &str,
    loaded: Vec<Loaded>,
    unchanged: &[&IndexEntry],
    index: &Index,
    failed: &[String],
    lines: LineLookup<'_>,
) -> Resolution {
    let mut diags = Vec::new();
    let mut names = NameTable::default();
    // Files that failed to decode already have their diagnostic; stand in for
    // them by the name their path gives, so that their referrers do not add
    // a cascade of dangling-reference errors.
    let mut placeholders: HashSet<String> = HashSet::new();
    for path in failed {
        if let Some((folder, file)) = path.split_once('/') {
            if let (Some(kind), Some(name)) = (Kind::from_step(folder), file.strip_suffix(".yaml"))
            {
                let id = index
                    .by_name(kind, name)
                    .map(|e| e.id.clone())
                    .unwrap_or_else(|| ids::derived_id(tenant, kind, name));
                names.insert(kind, name, &id);
                placeholders.insert(id);
            }
        }
    }
    let mut id_paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name_paths: BTreeMap<(Kind, String), Vec<String>> = BTreeMap::new();

    for e in unchanged {
        names.insert(e.kind, &e.name, &e.id);
        id_paths.entry(e.id.clone()).or_default().push(e.path());
        name_paths
            .entry((e.kind, e.name.clone()))
            .or_default()
            .push(e.path());
    }
    let mut desired: Vec<Desired> = Vec::with_capacity(loaded.len());
    for l in loaded {
        let mut resource = l.resource;
        let kind = resource.kind();
        let id = match &resource.metadata.id {
            Some(id) => id.clone(),
            None => match index.by_name(kind, resource.name()) {
                Some(e) => e.id.clone(),
                None => ids::derived_id(tenant, kind, resource.name()),
            },
        };
        resource.metadata.id = Some(id.clone());
        names.insert(kind, resource.name(), &id);
        id_paths.entry(id).or_default().push(l.path.clone());
        name_paths
            .entry((kind, resource.name().to_string()))
            .or_default()
            .push(l.path.clone());
        desired.push(Desired {
            path: l.path,
            hash: l.hash,
            resource,
        });
    }
    for (id, paths) in &id_paths {
        if paths.len() > 1 {
            for p in paths {
                diags.push(
                    Diagnostic::error(
                        p.clone(),
                        "duplicate-id",
                        format!("id `{id}` is used by {}", paths.join(", ")),
                    )
                    .in_field("metadata.id")
                    .at_line(lines(p, "metadata.id", Some(id))),
                );
            }
        }
    }
    for ((kind, name), paths) in &name_paths {
        if paths.len() > 1 {
            for p in paths {
                diags.push(
                    Diagnostic::error(
                        p.clone(),
                        "duplicate-name",
                        format!("{kind} name `{name}` is used by {}", paths.join(", ")),
                    )
                    .in_field("metadata.name")
                    .at_line(lines(p, "metadata.name", Some(name))),
                );
            }
        }
    }

    // Names to IDs, with dangling references and misplaced built-ins reported.
    for d in &mut desired {
        let path = d.path.clone();
        let mut local = Vec::new();
        d.resource.visit_refs_mut(&mut |site, reference| {
            if let Some(builtin) = reference.strip_prefix(BUILTIN_PREFIX) {
                if site.target != Kind::Tool {
                    local.push(
                        Diagnostic::error(
                            path.clone(),
                            "builtin-reference",
                            format!("`{reference}`: only tools can be built-in"),
                        )
                        .in_field(site.path.clone())
                        .at_line(lines(&path, &site.path, Some(reference))),
                    );
                } else if !is_valid_name(builtin) {
                    local.push(
                        Diagnostic::error(
                            path.clone(),
                            "builtin-reference",
                            format!("`{reference}` is not a valid built-in tool name"),
                        )
                        .in_field(site.path.clone()),
                    );
                }
                return;
            }
            match names.id_of(site.target, reference) {
                Some(id) => *reference = id.to_string(),
                None => local.push(
                    Diagnostic::error(
                        path.clone(),
                        "dangling-reference",
                        format!(
                            "{} `{reference}` does not exist in this tenant",
                            site.target
                        ),
                    )
                    .in_field(site.path.clone())
                    .at_line(lines(&path, &site.path, Some(reference))),
                ),
            }
        });
        diags.extend(local);
    }

    // Unchanged units still name what they referenced when they were applied.
    for e in unchanged {
        for r in &e.refs {
            let Some(target) = index.get(r) else { continue };
            if placeholders.contains(r) {
                continue;
            }
            let still = names
                .name_of(r)
                .is_some_and(|(k, n)| *k == target.kind && *n == target.name);
            if !still {
                diags.push(Diagnostic::error(
                    e.path(),
                    "dangling-reference",
                    format!(
                        "{} `{}` does not exist in this tenant (it was renamed or removed)",
                        target.kind, target.name
                    ),
                ));
            }
        }
    }

    // Cycles among sub-agents and sub-workflows.
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    let mut kinds: HashMap<String, (Kind, String)> = HashMap::new();
    for e in unchanged {
        if matches!(e.kind, Kind::Agent | Kind::Workflow) {
            kinds.insert(e.id.clone(), (e.kind, e.path()));
            let same: Vec<String> = e
                .refs
                .iter()
                .filter(|r| names.name_of(r).is_some_and(|(k, _)| *k == e.kind))
                .cloned()
                .collect();
            edges.insert(e.id.clone(), same);
        }
    }
    for d in &desired {
        let kind = d.resource.kind();
        if matches!(kind, Kind::Agent | Kind::Workflow) {
            let id = d.resource.id().unwrap_or_default().to_string();
            kinds.insert(id.clone(), (kind, d.path.clone()));
            let same: Vec<String> = d
                .resource
                .refs()
                .into_iter()
                .filter(|(site, _)| site.target == kind)
                .map(|(_, r)| r)
                .collect();
            edges.insert(id, same);
        }
    }
    for cycle in find_cycles(&edges) {
        let labels: Vec<String> = cycle
            .iter()
            .map(|id| {
                names
                    .name_of(id)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_else(|| id.clone())
            })
            .collect();
        let first = &cycle[0];
        let (kind, path) = kinds
            .get(first)
            .cloned()
            .unwrap_or((Kind::Agent, String::new()));
        let field = if kind == Kind::Agent {
            "spec.subAgents"
        } else {
            "spec.steps"
        };
        diags.push(
            Diagnostic::error(
                path.clone(),
                "reference-cycle",
                format!(
                    "{kind} reference cycle: {} → {}",
                    labels.join(" → "),
                    labels[0]
                ),
            )
            .in_field(field)
            .at_line(lines(&path, field, None)),
        );
    }

    // Plain-text credentials.
    for d in &desired {
        for s in secrets::find_plain_secrets(&d.resource.spec.to_json()) {
            diags.push(
                Diagnostic::error(
                    d.path.clone(),
                    "plaintext-secret",
                    format!(
                        "{}; write `${{vars.NAME}}` or encrypt it with `ferry secret encrypt`",
                        s.reason
                    ),
                )
                .at_line(lines(&d.path, &s.field, None))
                .in_field(s.field),
            );
        }
    }

    diags.sort();
    diags.dedup();
    Resolution {
        desired,
        names,
        diagnostics: diags,
    }
}

/// Every elementary cycle reachable in a directed graph, each reported once,
/// starting at its smallest member.
fn find_cycles(edges: &HashMap<String, Vec<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut keys: Vec<&String> = edges.keys().collect();
    keys.sort();
    let mut mark: HashMap<&str, Mark> = keys.iter().map(|k| (k.as_str(), Mark::New)).collect();
    let mut cycles: Vec<Vec<String>> = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for start in keys {
        if mark.get(start.as_str()) != Some(&Mark::New) {
            continue;
        }
        // Iterative DFS with an explicit path.
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        let mut path: Vec<&str> = vec![start.as_str()];
        mark.insert(start.as_str(), Mark::Active);
        while let Some((node, i)) = stack.last().copied() {
            let next = edges.get(node).and_then(|v| v.get(i));
            match next {
                Some(n) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match mark.get(n.as_str()).copied() {
                        Some(Mark::New) => {
                            mark.insert(n.as_str(), Mark::Active);
                            stack.push((n.as_str(), 0));
                            path.push(n.as_str());
                        }
                        Some(Mark::Active) => {
                            if let Some(pos) = path.iter().position(|p| *p == n.as_str()) {
                                let mut cyc: Vec<String> =
                                    path[pos..].iter().map(|s| s.to_string()).collect();
                                let min = cyc
                                    .iter()
                                    .enumerate()
                                    .min_by(|a, b| a.1.cmp(b.1))
                                    .map(|(i, _)| i)
                                    .unwrap_or(0);
                                cyc.rotate_left(min);
                                if seen.insert(cyc.clone()) {
                                    cycles.push(cyc);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                None => {
                    mark.insert(node, Mark::Done);
                    stack.pop();
                    path.pop();
                }
            }
        }
    }
    cycles
}
