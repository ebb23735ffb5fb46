//! Validation across files, and resolution of names to IDs.
//!
//! Per-file problems are found while decoding (see [`crate::domain::tree`]); this
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

use crate::domain::diagnostic::Diagnostic;
use crate::domain::ids;
use crate::domain::model::{is_builtin, is_valid_name, Kind, Resource, BUILTIN_PREFIX};
use crate::domain::secrets;
use crate::domain::state::{Index, IndexEntry};
use crate::domain::tree::Loaded;

use rayon::prelude::*;

pub mod strings;

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

/// Looks up the kind and name of an ID: what rendering IDs as names needs.
pub trait Names: Sync {
    /// The kind and name of `id`, if known.
    fn lookup(&self, id: &str) -> Option<(Kind, &str)>;
}

/// Names and IDs of a set of resources.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    by_name: HashMap<Kind, HashMap<String, String>>,
    by_id: HashMap<String, (Kind, String)>,
}

impl NameTable {
    /// Record one resource.
    pub fn insert(&mut self, kind: Kind, name: &str, id: &str) {
        self.by_name
            .entry(kind)
            .or_default()
            .insert(name.to_string(), id.to_string());
        self.by_id.insert(id.to_string(), (kind, name.to_string()));
    }

    /// The ID of `kind`/`name`.
    pub fn id_of(&self, kind: Kind, name: &str) -> Option<&str> {
        self.by_name.get(&kind)?.get(name).map(String::as_str)
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

impl Names for NameTable {
    fn lookup(&self, id: &str) -> Option<(Kind, &str)> {
        self.by_id.get(id).map(|(k, n)| (*k, n.as_str()))
    }
}

impl Names for Index {
    fn lookup(&self, id: &str) -> Option<(Kind, &str)> {
        self.get(id).map(|e| (e.kind, e.name.as_str()))
    }
}

/// The names of a desired state: decoded resources laid over the index
/// entries of the units the store holds unchanged. Nothing is copied for the
/// unchanged units, so a tree with one change costs one entry here.
#[derive(Debug)]
pub struct DesiredNames<'a> {
    index: &'a Index,
    present: HashSet<&'a str>,
    overlay: NameTable,
}

impl<'a> DesiredNames<'a> {
    /// Names over `index`, of which the IDs in `present` are part of the desired state.
    pub fn new(index: &'a Index, present: HashSet<&'a str>) -> Self {
        DesiredNames {
            index,
            present,
            overlay: NameTable::default(),
        }
    }

    /// Record a decoded resource.
    pub fn insert(&mut self, kind: Kind, name: &str, id: &str) {
        self.overlay.insert(kind, name, id);
    }

    /// The ID of `kind`/`name` in the desired state.
    pub fn id_of(&self, kind: Kind, name: &str) -> Option<&str> {
        if let Some(id) = self.overlay.id_of(kind, name) {
            return Some(id);
        }
        let e = self.index.by_name(kind, name)?;
        (self.present.contains(e.id.as_str()) && self.overlay.name_of(&e.id).is_none())
            .then_some(e.id.as_str())
    }

    /// Whether `id` is an unchanged unit of the desired state.
    pub fn is_unchanged(&self, id: &str) -> bool {
        self.present.contains(id)
    }
}

impl Names for DesiredNames<'_> {
    fn lookup(&self, id: &str) -> Option<(Kind, &str)> {
        if let Some((k, n)) = self.overlay.name_of(id) {
            return Some((*k, n.as_str()));
        }
        if self.present.contains(id) {
            return self.index.lookup(id);
        }
        None
    }
}

/// Rewrite a stored-form resource into tree form: IDs become names.
///
/// An ID the table does not know is left as it is.
pub fn render_names(resource: &Resource, table: &dyn Names) -> Resource {
    let mut r = resource.clone();
    r.visit_refs_mut(&mut |_, reference| {
        if is_builtin(reference) {
            return;
        }
        if let Some((_, name)) = table.lookup(reference) {
            *reference = name.to_string();
        }
    });
    r
}

/// Looks up the line of a field in a file, for messages. Returns `None` when unknown.
pub type LineLookup<'a> = &'a (dyn Fn(&str, &str, Option<&str>) -> Option<u64> + Sync);

/// The outcome of resolving a tree against an index.
#[derive(Debug)]
pub struct Resolution<'a> {
    /// Decoded resources, in stored form.
    pub desired: Vec<Desired>,
    /// Names and IDs of the whole desired state (decoded and unchanged units).
    pub names: DesiredNames<'a>,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolve decoded units to stored form and check the whole desired state.
///
/// `unchanged` are the index entries of units that were not decoded because
/// the store holds them exactly; `index` is the store's whole index (empty
/// when there is no store); `failed` are paths that could not be decoded
/// (their problems are reported already). Work on the unchanged units is
/// limited to what the decoded ones can affect.
pub fn resolve<'a>(
    tenant: &str,
    loaded: Vec<Loaded>,
    unchanged: &[&'a IndexEntry],
    index: &'a Index,
    failed: &[String],
    lines: LineLookup<'_>,
) -> Resolution<'a> {
    let mut diags = Vec::new();
    let mut names = DesiredNames::new(index, unchanged.iter().map(|e| e.id.as_str()).collect());
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

    let mut desired: Vec<Desired> = Vec::with_capacity(loaded.len());
    // Whether each decoded resource wrote its ID (a derived ID can only
    // collide with another through a duplicate name, reported as such).
    let mut explicit: Vec<bool> = Vec::with_capacity(loaded.len());
    for l in loaded {
        let mut resource = l.resource;
        explicit.push(resource.metadata.id.is_some());
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
        desired.push(Desired {
            path: l.path,
            hash: l.hash,
            resource,
        });
    }

    // Duplicate IDs and names: among decoded units, and against unchanged ones.
    {
        let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut by_name: BTreeMap<(Kind, &str), Vec<&str>> = BTreeMap::new();
        for (d, explicit) in desired.iter().zip(&explicit) {
            if *explicit {
                by_id
                    .entry(d.resource.id().unwrap_or_default())
                    .or_default()
                    .push(d.path.as_str());
            }
            by_name
                .entry((d.resource.kind(), d.resource.name()))
                .or_default()
                .push(d.path.as_str());
        }
        let mut extra_paths: Vec<(String, String)> = Vec::new();
        for (id, paths) in &by_id {
            if let Some(e) = index.get(id).filter(|e| names.is_unchanged(&e.id)) {
                extra_paths.push((id.to_string(), e.path()));
            }
            let _ = paths;
        }
        let mut report =
            |all: Vec<String>, code: &'static str, field: &str, what: String, value: &str| {
                if all.len() < 2 {
                    return;
                }
                for p in &all {
                    diags.push(
                        Diagnostic::error(
                            p.clone(),
                            code,
                            format!("{what} is used by {}", all.join(", ")),
                        )
                        .in_field(field)
                        .at_line(lines(p, field, Some(value))),
                    );
                }
            };
        for (id, paths) in &by_id {
            let mut all: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            all.extend(
                extra_paths
                    .iter()
                    .filter(|(i, _)| i == id)
                    .map(|(_, p)| p.clone()),
            );
            all.sort();
            all.dedup();
            report(all, "duplicate-id", "metadata.id", format!("id `{id}`"), id);
        }
        for ((kind, name), paths) in &by_name {
            let mut all: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            if let Some(e) = index
                .by_name(*kind, name)
                .filter(|e| names.is_unchanged(&e.id))
            {
                all.push(e.path());
            }
            all.sort();
            all.dedup();
            report(
                all,
                "duplicate-name",
                "metadata.name",
                format!("{kind} name `{name}`"),
                name,
            );
        }
    }

    // Names to IDs (with dangling references and misplaced built-ins), and
    // plain-text credentials: per resource, on all cores.
    let per_resource: Vec<Vec<Diagnostic>> = desired
        .par_iter_mut()
        .map(|d| {
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
                            .at_line(lines(
                                &path,
                                &site.path,
                                Some(reference),
                            )),
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
            local.extend(strings::check_values(&path, &d.resource, &|f| {
                lines(&path, f, None)
            }));
            for s in secrets::find_plain_secrets(&d.resource.spec.to_json()) {
                local.push(
                    Diagnostic::error(
                        path.clone(),
                        "plaintext-secret",
                        format!(
                            "{}; write `${{vars.NAME}}` or encrypt it with `ferry secret encrypt`",
                            s.reason
                        ),
                    )
                    .at_line(lines(&path, &s.field, None))
                    .in_field(s.field),
                );
            }
            local
        })
        .collect();
    diags.extend(per_resource.into_iter().flatten());

    // Unchanged units still name what they referenced when they were applied:
    // check them only against the index entries that the tree renamed or removed.
    let moved: HashSet<&str> = index
        .entries()
        .iter()
        .filter(|e| !names.is_unchanged(&e.id) && !placeholders.contains(&e.id))
        .filter(|e| names.lookup(&e.id) != Some((e.kind, e.name.as_str())))
        .map(|e| e.id.as_str())
        .collect();
    if !moved.is_empty() {
        for e in unchanged {
            for r in e.refs.iter().filter(|r| moved.contains(r.as_str())) {
                if let Some(target) = index.get(r) {
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
    }

    // Cycles among sub-agents and sub-workflows: a new cycle needs a changed
    // edge, so search only from decoded agents and workflows.
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    let mut paths: HashMap<String, (Kind, String)> = HashMap::new();
    let decoded: HashMap<&str, &Desired> = desired
        .iter()
        .filter(|d| matches!(d.resource.kind(), Kind::Agent | Kind::Workflow))
        .map(|d| (d.resource.id().unwrap_or_default(), d))
        .collect();
    let mut queue: Vec<String> = decoded.keys().map(|k| k.to_string()).collect();
    while let Some(id) = queue.pop() {
        if edges.contains_key(&id) {
            continue;
        }
        let (kind, path, next): (Kind, String, Vec<String>) = match decoded.get(id.as_str()) {
            Some(d) => {
                let kind = d.resource.kind();
                let next = d
                    .resource
                    .refs()
                    .into_iter()
                    .filter(|(site, _)| site.target == kind)
                    .map(|(_, r)| r)
                    .collect();
                (kind, d.path.clone(), next)
            }
            None => match index.get(&id).filter(|e| names.is_unchanged(&e.id)) {
                Some(e) => {
                    let next = e
                        .refs
                        .iter()
                        .filter(|r| index.get(r).is_some_and(|t| t.kind == e.kind))
                        .cloned()
                        .collect();
                    (e.kind, e.path(), next)
                }
                None => continue,
            },
        };
        queue.extend(next.iter().cloned());
        paths.insert(id.clone(), (kind, path));
        edges.insert(id, next);
    }
    for cycle in find_cycles(&edges) {
        let labels: Vec<String> = cycle
            .iter()
            .map(|id| {
                names
                    .lookup(id)
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_else(|| id.clone())
            })
            .collect();
        let (kind, path) = paths
            .get(&cycle[0])
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
            .at_line(lines(&path, field, labels.get(1).map(String::as_str))),
        );
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
