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
use crate::domain::suggest;
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
    /// The resource in stored form (boxed, as in [`Loaded`]).
    pub resource: Box<Resource>,
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

    /// The names of `kind`, sorted.
    pub fn names_of(&self, kind: Kind) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_name
            .get(&kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
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

/// The kind and name of every ID of an index, and nothing else: what
/// rendering IDs as names needs, at a third of a [`NameTable`]'s size (a
/// whole-tenant export holds it for 100,000 resources).
#[derive(Debug, Clone, Default)]
pub struct IdNames {
    by_id: HashMap<String, (Kind, String)>,
}

impl IdNames {
    /// The names of `index`'s entries, moved out of it.
    pub fn of_index(index: Index) -> Self {
        let entries = index.into_entries();
        let mut by_id = HashMap::with_capacity(entries.len());
        for e in entries {
            by_id.insert(e.id, (e.kind, e.name));
        }
        IdNames { by_id }
    }

    /// Every resource as (ID, kind, name), in no set order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Kind, &str)> {
        self.by_id
            .iter()
            .map(|(id, (kind, name))| (id.as_str(), *kind, name.as_str()))
    }
}

impl FromIterator<(String, Kind, String)> for IdNames {
    fn from_iter<T: IntoIterator<Item = (String, Kind, String)>>(names: T) -> Self {
        IdNames {
            by_id: names
                .into_iter()
                .map(|(id, kind, name)| (id, (kind, name)))
                .collect(),
        }
    }
}

impl Names for IdNames {
    fn lookup(&self, id: &str) -> Option<(Kind, &str)> {
        self.by_id.get(id).map(|(k, n)| (*k, n.as_str()))
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

    /// `did you mean ...?` for a `kind` name the desired state lacks: the
    /// closest of its names of that kind (an error path; it walks the index).
    pub fn suggest(&self, kind: Kind, wanted: &str) -> Option<String> {
        if let Some(e) = self.index.by_name(kind, wanted) {
            if self.id_of(kind, wanted).is_none() {
                return Some(format!(
                    "its file {} was deleted or renamed in this tree: restore it, or change this reference",
                    e.path()
                ));
            }
        }
        let mut names = self.overlay.names_of(kind);
        names.extend(
            self.index
                .entries()
                .iter()
                .filter(|e| e.kind == kind && self.id_of(kind, &e.name) == Some(e.id.as_str()))
                .map(|e| e.name.as_str()),
        );
        names.sort_unstable();
        names.dedup();
        suggest::did_you_mean(wanted, names)
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
    render_names_in_place(&mut r, table);
    r
}

/// [`render_names`] on a resource the caller owns, without copying it.
pub fn render_names_in_place(r: &mut Resource, table: &dyn Names) {
    r.visit_refs_mut(&mut |_, reference| {
        if is_builtin(reference) {
            return;
        }
        if let Some((_, name)) = table.lookup(reference) {
            *reference = name.to_string();
        }
    });
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
    let mut names = DesiredNames::new(index, unchanged.iter().map(|e| e.id.as_str()).collect());
    let placeholders = stand_in_for_failed(tenant, failed, index, &mut names);
    let (mut desired, explicit) = assign_ids(tenant, loaded, index, &mut names);
    let mut diags = duplicate_ids(&desired, &explicit, index, &names, lines);
    diags.extend(duplicate_names(&desired, index, &names, lines));
    diags.extend(check_each(
        &mut desired,
        &|kind, r| names.id_of(kind, r).map(str::to_string),
        &|kind, r| names.suggest(kind, r),
        lines,
    ));
    diags.extend(renamed_under_unchanged(
        unchanged,
        index,
        &names,
        &placeholders,
        lines,
    ));
    let graph = ReferenceGraph::around(&desired, index, &|id| names.is_unchanged(id));
    diags.extend(graph.cycles(&names, lines));
    diags.sort();
    diags.dedup();
    Resolution {
        desired,
        names,
        diagnostics: diags,
    }
}

/// Stand in for files that failed to decode (their problem is reported
/// already) by the name their path gives, so that their referrers do not add
/// a cascade of dangling-reference errors. Returns the IDs stood in for.
fn stand_in_for_failed(
    tenant: &str,
    failed: &[String],
    index: &Index,
    names: &mut DesiredNames<'_>,
) -> HashSet<String> {
    let mut placeholders = HashSet::new();
    for path in failed {
        let Some((folder, file)) = path.split_once('/') else {
            continue;
        };
        if let (Some(kind), Some(name)) = (Kind::from_step(folder), file.strip_suffix(".yaml")) {
            let id = index
                .by_name(kind, name)
                .map(|e| e.id.clone())
                .unwrap_or_else(|| ids::derived_id(tenant, kind, name));
            names.insert(kind, name, &id);
            placeholders.insert(id);
        }
    }
    placeholders
}

/// Give every decoded resource its ID: the one it writes, else the one the
/// index holds for its name, else one derived from tenant, kind and name.
/// Also returns whether each wrote its ID (a derived ID can only collide
/// with another through a duplicate name, reported as such).
fn assign_ids(
    tenant: &str,
    loaded: Vec<Loaded>,
    index: &Index,
    names: &mut DesiredNames<'_>,
) -> (Vec<Desired>, Vec<bool>) {
    let explicit: Vec<bool> = loaded
        .iter()
        .map(|l| l.resource.metadata.id.is_some())
        .collect();
    // A `Loaded` becomes a `Desired` of the same shape: collected in place,
    // in the same buffer, without copying the tree's resources elsewhere.
    let desired: Vec<Desired> = loaded
        .into_iter()
        .map(|l| {
            let mut resource = l.resource;
            let kind = resource.kind();
            let id = match &resource.metadata.id {
                Some(id) => id.clone(),
                None => match index.by_name(kind, resource.name()) {
                    Some(e) => e.id.clone(),
                    None => ids::derived_id(tenant, kind, resource.name()),
                },
            };
            names.insert(kind, resource.name(), &id);
            resource.metadata.id = Some(id);
            Desired {
                path: l.path,
                hash: l.hash,
                resource,
            }
        })
        .collect();
    (desired, explicit)
}

/// One diagnostic per file of `paths` when two or more files share a value.
fn shared_value(
    mut paths: Vec<String>,
    code: &'static str,
    field: &str,
    what: &str,
    value: &str,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    paths.sort();
    paths.dedup();
    if paths.len() < 2 {
        return Vec::new();
    }
    paths
        .iter()
        .map(|p| {
            Diagnostic::error(
                p.clone(),
                code,
                format!("{what} is used by {}", paths.join(", ")),
            )
            .in_field(field)
            .at_line(lines(p, field, Some(value)))
        })
        .collect()
}

/// IDs written by two decoded files, or by a decoded and an unchanged one.
fn duplicate_ids(
    desired: &[Desired],
    explicit: &[bool],
    index: &Index,
    names: &DesiredNames<'_>,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    let mut by_id: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (d, _) in desired.iter().zip(explicit).filter(|(_, e)| **e) {
        by_id
            .entry(d.resource.id().unwrap_or_default())
            .or_default()
            .push(d.path.clone());
    }
    let mut diags = Vec::new();
    for (id, mut paths) in by_id {
        if let Some(e) = index.get(id).filter(|e| names.is_unchanged(&e.id)) {
            paths.push(e.path());
        }
        let what = format!("id `{id}`");
        diags.extend(shared_value(
            paths,
            "duplicate-id",
            "metadata.id",
            &what,
            id,
            lines,
        ));
    }
    diags
}

/// Names of one kind used by two decoded files, or by a decoded and an unchanged one.
///
/// Sorted in one list of borrowed names rather than grouped in a map of
/// cloned paths: at 100,000 resources the map was 21 MB for a check that
/// almost always finds nothing.
fn duplicate_names(
    desired: &[Desired],
    index: &Index,
    names: &DesiredNames<'_>,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    let mut keyed: Vec<(Kind, &str, &str)> = desired
        .iter()
        .map(|d| (d.resource.kind(), d.resource.name(), d.path.as_str()))
        .collect();
    keyed.sort_unstable();
    let mut diags = Vec::new();
    for group in keyed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (kind, name, _) = group[0];
        let stored = index
            .by_name(kind, name)
            .filter(|e| names.is_unchanged(&e.id));
        if group.len() < 2 && stored.is_none() {
            continue;
        }
        let mut paths: Vec<String> = group.iter().map(|g| g.2.to_string()).collect();
        paths.extend(stored.map(IndexEntry::path));
        let what = format!("{kind} name `{name}`");
        diags.extend(shared_value(
            paths,
            "duplicate-name",
            "metadata.name",
            &what,
            name,
            lines,
        ));
    }
    diags
}

/// Finds the ID a reference of a given kind points to (`None`: it points nowhere).
pub type RefLookup<'a> = &'a (dyn Fn(Kind, &str) -> Option<String> + Sync);

/// A did-you-mean hint for a reference of a given kind that points nowhere.
pub type Suggest<'a> = &'a (dyn Fn(Kind, &str) -> Option<String> + Sync);

/// The references of each decoded resource resolved to IDs, on all cores
/// ([`resolve_references`]). The checks of a resource's own fields run as
/// it is read ([`own_field_problems`]).
fn check_each(
    desired: &mut [Desired],
    lookup: RefLookup<'_>,
    suggest: Suggest<'_>,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    desired
        .par_iter_mut()
        .map(|d| resolve_references(&mut d.resource, &d.path, lookup, suggest, lines))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

/// The problems of a resource's own fields, which need no other resource:
/// [`strings::check_values`] and [`plain_secrets`].
pub fn own_field_problems(
    path: &str,
    resource: &Resource,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    let mut found = strings::check_values(path, resource, &|f| lines(path, f, None));
    found.extend(plain_secrets(resource, path, lines));
    found
}

/// Rewrite the references of `resource` (in file `path`) to the IDs
/// `lookup` finds, reporting each that points nowhere (with `suggest`'s
/// did-you-mean as its hint) and each misplaced or misnamed built-in.
/// Built-in tools are left as they are.
pub fn resolve_references(
    resource: &mut Resource,
    path: &str,
    lookup: RefLookup<'_>,
    suggest: Suggest<'_>,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    resource.visit_refs_mut(&mut |site, reference| {
        let mut hint = None;
        let problem = if let Some(builtin) = reference.strip_prefix(BUILTIN_PREFIX) {
            if site.target != Kind::Tool {
                Some((
                    "builtin-reference",
                    format!("`{reference}`: only tools can be built-in"),
                ))
            } else if !is_valid_name(builtin) {
                Some((
                    "builtin-reference",
                    format!("`{reference}` is not a valid built-in tool name"),
                ))
            } else {
                None
            }
        } else if let Some(id) = lookup(site.target, reference) {
            *reference = id;
            None
        } else {
            hint = suggest(site.target, reference);
            Some((
                "dangling-reference",
                format!(
                    "{} `{reference}` does not exist in this tenant",
                    site.target
                ),
            ))
        };
        if let Some((code, message)) = problem {
            diags.push(
                Diagnostic::error(path, code, message)
                    .in_field(site.path.clone())
                    .at_line(lines(path, &site.path, Some(reference)))
                    .with_hint(hint.take()),
            );
        }
    });
    diags
}

/// Plain-text credentials in the spec of `resource` (in file `path`).
pub fn plain_secrets(resource: &Resource, path: &str, lines: LineLookup<'_>) -> Vec<Diagnostic> {
    secrets::find_plain_secrets(&resource.spec.to_json())
        .into_iter()
        .map(|s| {
            Diagnostic::error(
                path,
                "plaintext-secret",
                format!(
                    "{}; keep it out of the tree: write `${{vars.NAME}}` (`ferry vars set`) or an `ENC[age,…]` value (`ferry secret encrypt`)",
                    s.reason
                ),
            )
            .at_line(lines(path, &s.field, None))
            .in_field(s.field)
        })
        .collect()
}

/// `ENC[age,…]` values of `resource` (in file `path`) that do not decrypt
/// with tenant `tenant`'s private key `identity`; checked wherever the store
/// (which alone holds that key) is at hand. Names the field, never the value.
pub fn undecryptable_secrets(
    resource: &Resource,
    path: &str,
    tenant: &str,
    identity: &str,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    secrets::undecryptable(&resource.spec.to_json(), tenant, identity)
        .into_iter()
        .map(|s| {
            Diagnostic::error(
                path,
                "foreign-ciphertext",
                format!(
                    "the `ENC[age,…]` value does not decrypt with the key of tenant `{tenant}` (it was encrypted to another key); encrypt it again with `ferry secret encrypt --tenant {tenant}`"
                ),
            )
            .at_line(lines(path, &s.field, None))
            .in_field(s.field)
        })
        .collect()
}

/// [`undecryptable_secrets`] of every decoded resource, on all cores.
pub fn undecryptable_in(
    desired: &[Desired],
    tenant: &str,
    identity: &str,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    desired
        .par_iter()
        .flat_map_iter(|d| undecryptable_secrets(&d.resource, &d.path, tenant, identity, lines))
        .collect()
}

/// Unchanged units still name what they referenced when they were applied:
/// check them only against the index entries that the tree renamed or removed.
fn renamed_under_unchanged(
    unchanged: &[&IndexEntry],
    index: &Index,
    names: &DesiredNames<'_>,
    placeholders: &HashSet<String>,
    lines: LineLookup<'_>,
) -> Vec<Diagnostic> {
    let moved: HashSet<&str> = index
        .entries()
        .iter()
        .filter(|e| !names.is_unchanged(&e.id) && !placeholders.contains(&e.id))
        .filter(|e| names.lookup(&e.id) != Some((e.kind, e.name.as_str())))
        .map(|e| e.id.as_str())
        .collect();
    if moved.is_empty() {
        return Vec::new();
    }
    let mut diags = Vec::new();
    for e in unchanged {
        for r in e.refs.iter().filter(|r| moved.contains(r.as_str())) {
            if let Some(target) = index.get(r) {
                let gone = match names.lookup(&target.id) {
                    Some((_, now)) => format!("renamed to `{now}`"),
                    None => format!("its file {} was deleted or renamed", target.path()),
                };
                diags.push(
                    Diagnostic::error(
                        e.path(),
                        "dangling-reference",
                        format!(
                            "{} `{}` does not exist in this tenant ({gone})",
                            target.kind, target.name
                        ),
                    )
                    .at_line(lines(&e.path(), "spec", Some(&target.name)))
                    .with_hint(Some(format!(
                        "{} still names `{}`: change or remove that reference",
                        e.path(),
                        target.name
                    ))),
                );
            }
        }
    }
    diags
}

/// The sub-agent and sub-workflow edges reachable from a set of decoded
/// resources, through decoded resources and unchanged index entries.
#[derive(Debug, Default)]
pub struct ReferenceGraph {
    edges: HashMap<String, Vec<String>>,
    origin: HashMap<String, (Kind, String)>,
}

impl ReferenceGraph {
    /// The graph around the agents and workflows of `decoded` (stored form):
    /// a new cycle needs a changed edge, so only these are searched from.
    /// Index entries take part when `is_unchanged` says their unit is part
    /// of the desired state as the index holds it.
    pub fn around(decoded: &[Desired], index: &Index, is_unchanged: &dyn Fn(&str) -> bool) -> Self {
        let decoded: HashMap<&str, &Desired> = decoded
            .iter()
            .filter(|d| matches!(d.resource.kind(), Kind::Agent | Kind::Workflow))
            .map(|d| (d.resource.id().unwrap_or_default(), d))
            .collect();
        let mut graph = ReferenceGraph::default();
        let mut queue: Vec<String> = decoded.keys().map(|k| k.to_string()).collect();
        while let Some(id) = queue.pop() {
            if graph.edges.contains_key(&id) {
                continue;
            }
            let (kind, path, next) = match decoded.get(id.as_str()) {
                Some(d) => (
                    d.resource.kind(),
                    d.path.clone(),
                    same_kind_refs(&d.resource),
                ),
                None => match index.get(&id).filter(|e| is_unchanged(&e.id)) {
                    Some(e) => (e.kind, e.path(), same_kind_entries(e, index)),
                    None => continue,
                },
            };
            queue.extend(next.iter().cloned());
            graph.origin.insert(id.clone(), (kind, path));
            graph.edges.insert(id, next);
        }
        graph
    }

    /// One diagnostic per cycle of the graph, at the file of its smallest member.
    pub fn cycles(&self, names: &dyn Names, lines: LineLookup<'_>) -> Vec<Diagnostic> {
        find_cycles(&self.edges)
            .into_iter()
            .map(|cycle| {
                let labels: Vec<String> = cycle
                    .iter()
                    .map(|id| {
                        names
                            .lookup(id)
                            .map_or_else(|| id.clone(), |(_, n)| n.to_string())
                    })
                    .collect();
                let (kind, path) = self
                    .origin
                    .get(&cycle[0])
                    .cloned()
                    .unwrap_or((Kind::Agent, String::new()));
                let field = if kind == Kind::Agent {
                    "spec.subAgents"
                } else {
                    "spec.steps"
                };
                let message = format!(
                    "{kind} reference cycle: {} → {}",
                    labels.join(" → "),
                    labels[0]
                );
                Diagnostic::error(path.clone(), "reference-cycle", message)
                    .in_field(field)
                    .at_line(lines(&path, field, labels.get(1).map(String::as_str)))
            })
            .collect()
    }
}

/// The references of a resource to its own kind (sub-agents, sub-workflows).
fn same_kind_refs(resource: &Resource) -> Vec<String> {
    let kind = resource.kind();
    resource
        .refs()
        .into_iter()
        .filter(|(site, _)| site.target == kind)
        .map(|(_, r)| r)
        .collect()
}

/// The references of an index entry to entries of its own kind.
fn same_kind_entries(entry: &IndexEntry, index: &Index) -> Vec<String> {
    entry
        .refs
        .iter()
        .filter(|r| index.get(r).is_some_and(|t| t.kind == entry.kind))
        .cloned()
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Metadata, Spec};
    use serde_json::json;

    const T: &str = "acme-dev";

    fn no_lines(_: &str, _: &str, _: Option<&str>) -> Option<u64> {
        None
    }

    fn resource(kind: Kind, name: &str, id: Option<&str>, spec: serde_json::Value) -> Resource {
        Resource {
            metadata: Metadata {
                id: id.map(str::to_string),
                name: name.to_string(),
                syncable: false,
                synced_from: None,
                origin_id: None,
                created_by: None,
            },
            spec: Spec::from_json(kind, spec).unwrap(),
            content: None,
        }
    }

    fn agent(name: &str, id: Option<&str>, sub_agents: &[&str]) -> Resource {
        resource(
            Kind::Agent,
            name,
            id,
            json!({"type": "chat", "model": {"provider": "openai", "name": "gpt"}, "subAgents": sub_agents}),
        )
    }

    fn tool(name: &str, id: Option<&str>) -> Resource {
        resource(Kind::Tool, name, id, json!({"type": "http"}))
    }

    fn loaded(r: Resource) -> Loaded {
        Loaded {
            path: crate::domain::model::resource_path(r.kind(), r.name()),
            hash: format!("h-{}", r.name()),
            resource: Box::new(r),
        }
    }

    fn entry(kind: Kind, name: &str, id: &str, refs: &[&str]) -> IndexEntry {
        IndexEntry {
            id: id.to_string(),
            kind,
            name: name.to_string(),
            content_hash: "c".to_string(),
            file_hash: "f".to_string(),
            refs: refs.iter().map(|r| r.to_string()).collect(),
            revision: 1,
        }
    }

    fn desired(r: Resource) -> Desired {
        let l = loaded(r);
        Desired {
            path: l.path,
            hash: l.hash,
            resource: l.resource,
        }
    }

    fn codes(diags: &[Diagnostic]) -> Vec<&str> {
        diags.iter().map(|d| d.code).collect()
    }

    #[test]
    fn a_failed_file_stands_in_under_its_name() {
        let index = Index::new(vec![entry(Kind::Tool, "kept", "tol_kept", &[])]);
        let mut names = DesiredNames::new(&index, HashSet::new());
        let failed = vec![
            "tools/kept.yaml".into(),
            "tools/new.yaml".into(),
            "junk".into(),
        ];
        let placeholders = stand_in_for_failed(T, &failed, &index, &mut names);
        let derived = ids::derived_id(T, Kind::Tool, "new");
        assert_eq!(names.id_of(Kind::Tool, "kept"), Some("tol_kept"));
        assert_eq!(names.id_of(Kind::Tool, "new"), Some(derived.as_str()));
        assert_eq!(placeholders, HashSet::from(["tol_kept".into(), derived]));
    }

    #[test]
    fn ids_are_written_or_kept_from_the_index_or_derived() {
        let index = Index::new(vec![entry(Kind::Tool, "known", "tol_known", &[])]);
        let mut names = DesiredNames::new(&index, HashSet::new());
        let loaded = vec![
            loaded(tool("own", Some("tol_own"))),
            loaded(tool("known", None)),
            loaded(tool("fresh", None)),
        ];
        let (desired, explicit) = assign_ids(T, loaded, &index, &mut names);
        let got: Vec<&str> = desired.iter().filter_map(|d| d.resource.id()).collect();
        let derived = ids::derived_id(T, Kind::Tool, "fresh");
        assert_eq!(got, ["tol_own", "tol_known", derived.as_str()]);
        assert_eq!(explicit, [true, false, false]);
        assert_eq!(names.id_of(Kind::Tool, "fresh"), Some(derived.as_str()));
    }

    #[test]
    fn a_shared_id_is_reported_in_every_file_that_uses_it() {
        let index = Index::new(vec![entry(Kind::Tool, "old", "tol_same", &[])]);
        let names = DesiredNames::new(&index, HashSet::from(["tol_same"]));
        let desired = vec![
            desired(tool("a", Some("tol_same"))),
            desired(tool("b", None)),
        ];
        let diags = duplicate_ids(&desired, &[true, false], &index, &names, &no_lines);
        let files: Vec<&str> = diags.iter().map(|d| d.file.as_str()).collect();
        assert_eq!(files, ["tools/a.yaml", "tools/old.yaml"]);
        assert!(diags[0].message.contains("tools/a.yaml, tools/old.yaml"));
        assert_eq!(codes(&diags), ["duplicate-id", "duplicate-id"]);
    }

    #[test]
    fn a_shared_name_is_reported_among_decoded_files() {
        let index = Index::default();
        let names = DesiredNames::new(&index, HashSet::new());
        let mut second = desired(tool("a", Some("tol_2")));
        second.path = "tools/a-copy.yaml".into();
        let desired = vec![
            desired(tool("a", Some("tol_1"))),
            second,
            desired(tool("b", None)),
        ];
        let diags = duplicate_names(&desired, &index, &names, &no_lines);
        assert_eq!(codes(&diags), ["duplicate-name", "duplicate-name"]);
        assert_eq!(diags[0].field.as_deref(), Some("metadata.name"));
    }

    #[test]
    fn references_become_ids_and_every_bad_one_is_reported() {
        let mut r = resource(
            Kind::Agent,
            "bot",
            None,
            json!({"type": "chat", "model": {"provider": "o", "name": "m"},
                   "tools": ["crm", "builtin/web-search", "nope", "builtin/Bad Name"],
                   "subAgents": ["builtin/x"]}),
        );
        let lookup = |kind: Kind, name: &str| {
            (kind == Kind::Tool && name == "crm").then(|| "tol_crm".to_string())
        };
        let diags = resolve_references(&mut r, "agents/bot.yaml", &lookup, &|_, _| None, &no_lines);
        let fields: Vec<&str> = diags.iter().filter_map(|d| d.field.as_deref()).collect();
        assert_eq!(
            fields,
            ["spec.tools[2]", "spec.tools[3]", "spec.subAgents[0]"]
        );
        assert_eq!(
            codes(&diags),
            [
                "dangling-reference",
                "builtin-reference",
                "builtin-reference"
            ]
        );
        let Spec::Agent(a) = &r.spec else { panic!() };
        assert_eq!(a.tools[..2], ["tol_crm", "builtin/web-search"]);
    }

    #[test]
    fn plain_text_credentials_are_reported_by_field() {
        let r = resource(
            Kind::Tool,
            "crm",
            None,
            json!({"type": "http", "actions": [{"name": "a", "config": {"apiKey": "sk-live-0123456789abcdefghijklmnop"}}]}),
        );
        let diags = plain_secrets(&r, "tools/crm.yaml", &no_lines);
        assert_eq!(codes(&diags), ["plaintext-secret"]);
        assert!(diags[0].field.as_deref().unwrap_or("").contains("apiKey"));
        assert!(!diags[0].message.contains("sk-live"), "never the value");
        assert!(plain_secrets(&tool("t", None), "tools/t.yaml", &no_lines).is_empty());
    }

    #[test]
    fn an_unchanged_unit_is_told_when_its_target_was_renamed() {
        let index = Index::new(vec![
            entry(Kind::Tool, "crm", "tol_crm", &[]),
            entry(Kind::Agent, "bot", "agt_bot", &["tol_crm"]),
        ]);
        let mut names = DesiredNames::new(&index, HashSet::from(["agt_bot"]));
        names.insert(Kind::Tool, "crm-renamed", "tol_crm");
        let unchanged = [index.get("agt_bot").unwrap()];
        let diags = renamed_under_unchanged(&unchanged, &index, &names, &HashSet::new(), &no_lines);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].file, "agents/bot.yaml");
        assert!(diags[0].message.contains("renamed to `crm-renamed`"));
        let placeholders = HashSet::from(["tol_crm".to_string()]);
        assert!(
            renamed_under_unchanged(&unchanged, &index, &names, &placeholders, &no_lines)
                .is_empty()
        );
    }

    #[test]
    fn a_cycle_through_an_unchanged_agent_is_found_once() {
        let index = Index::new(vec![
            entry(Kind::Agent, "a", "agt_a", &[]),
            entry(Kind::Agent, "b", "agt_b", &["agt_a"]),
        ]);
        let mut names = DesiredNames::new(&index, HashSet::from(["agt_b"]));
        names.insert(Kind::Agent, "a", "agt_a");
        let decoded = vec![desired(agent("a", Some("agt_a"), &["agt_b"]))];
        let graph = ReferenceGraph::around(&decoded, &index, &|id| names.is_unchanged(id));
        let diags = graph.cycles(&names, &no_lines);
        assert_eq!(codes(&diags), ["reference-cycle"]);
        assert_eq!(diags[0].message, "Agent reference cycle: a → b → a");
        assert_eq!(diags[0].field.as_deref(), Some("spec.subAgents"));
        let none = ReferenceGraph::around(&decoded, &index, &|_| false);
        assert!(
            none.cycles(&names, &no_lines).is_empty(),
            "b is not part of the tree"
        );
    }

    #[test]
    fn resolve_reports_every_problem_of_a_tree_at_once() {
        let index = Index::default();
        let loaded = vec![
            loaded(agent("a", None, &["b"])),
            loaded(agent("b", None, &["a", "ghost"])),
        ];
        let r = resolve(T, loaded, &[], &index, &[], &no_lines);
        assert_eq!(
            codes(&r.diagnostics),
            ["reference-cycle", "dangling-reference"]
        );
        assert_eq!(r.desired.len(), 2);
        assert_eq!(r.names.id_of(Kind::Agent, "b"), r.desired[1].resource.id());
    }
}
