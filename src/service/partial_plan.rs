//! Plans whose reads follow the change: when the units that differ from the
//! store are known (a git diff since the last applied commit said so), only
//! those units are read from the tree, and only the index entries they touch
//! are read from the store.
//!
//! The entries a plan of changed units needs are: the entries at those
//! units' paths; the entries their references and explicit IDs name; and,
//! for the cycle check, the sub-agent and sub-workflow closure reachable
//! from them. Every other resource of the tenant is unchanged by definition
//! and is never loaded. Two cases go back to the whole index, so that their
//! output is exactly what a whole plan says: a unit the tree deleted (its
//! referrers anywhere in the tenant must be found), and a plan with errors
//! (whose hints suggest names from the whole tenant).

use std::collections::HashSet;

use crate::backend::store::{IndexKeys, Store};
use crate::domain::diagnostic;
use crate::domain::model::Kind;
use crate::domain::plan::DiffOptions;
use crate::domain::state::{Index, IndexEntry};
use crate::domain::tree::{self, TreeSource};
use crate::service::pipeline::{plan_against, Against, PipelineError, TreePlan};

/// Plan tenant `tenant` from `source`, which lists only the files of the
/// `units` that may differ from the store. `None` when the plan needs the
/// whole index after all (a deleted unit, or errors to report).
pub fn plan_units(
    store: &dyn Store,
    tenant: &str,
    source: &dyn TreeSource,
    units: &HashSet<String>,
    options: DiffOptions,
) -> Result<Option<TreePlan>, PipelineError> {
    let keys = IndexKeys {
        paths: units.iter().cloned().collect(),
        ..IndexKeys::default()
    };
    let (revision, mut entries) = store.index_entries(tenant, &keys)?;
    let listed: HashSet<String> = source.list()?.into_iter().collect();
    if entries.iter().any(|e| !listed.contains(&e.path())) {
        return Ok(None);
    }
    let mut named = names_in(source, units, &listed);
    // What the changed resources referred to before, so that field changes
    // show the names of references they drop.
    named
        .ids
        .extend(entries.iter().flat_map(|e| e.refs.iter().cloned()));
    if !named.is_empty() {
        let (_, more) = store.index_entries(tenant, &named)?;
        entries.extend(more);
    }
    add_closure(store, tenant, &mut entries)?;
    let index = Index::new(dedup(entries));
    let against = Against {
        revision,
        index: &index,
        changed: Some(units),
        partial: true,
    };
    let mut tree_plan = plan_against(store, tenant, source, options, against)?;
    if diagnostic::has_errors(&tree_plan.diagnostics) {
        return Ok(None);
    }
    // Every stored resource not updated is unchanged (nothing is deleted here).
    let total = store.resource_count(tenant)?;
    if let Some(plan) = &mut tree_plan.plan {
        plan.summary.skip = total.saturating_sub(plan.summary.update);
        tree_plan.stats.units = total + plan.summary.create;
        tree_plan.stats.unchanged = tree_plan.stats.units.saturating_sub(tree_plan.stats.parsed);
    }
    Ok(Some(tree_plan))
}

/// The names and IDs the decodable units of `source` refer to (tree form:
/// names; an explicit `metadata.id` too), as keys to look up.
fn names_in(
    source: &dyn TreeSource,
    units: &HashSet<String>,
    listed: &HashSet<String>,
) -> IndexKeys {
    let mut keys = IndexKeys::default();
    for unit in units.iter().filter(|u| listed.contains(*u)) {
        let Ok(bytes) = source.read(unit) else {
            continue;
        };
        let (Some(resource), _) = tree::decode_unit(unit, &bytes) else {
            continue;
        };
        if let Some(id) = resource.id() {
            keys.ids.push(id.to_string());
        }
        for (site, name) in resource.refs() {
            keys.names.push((site.target, name.clone()));
            keys.ids.push(name);
        }
    }
    keys
}

/// Add the sub-agent and sub-workflow closure of `entries`: what the
/// reference-cycle check walks through unchanged resources.
pub(crate) fn add_closure(
    store: &dyn Store,
    tenant: &str,
    entries: &mut Vec<IndexEntry>,
) -> Result<(), crate::backend::store::StoreError> {
    let mut known: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    let mut frontier: Vec<String> = walked_refs(entries.iter(), &known);
    while !frontier.is_empty() {
        let keys = IndexKeys {
            ids: frontier,
            ..IndexKeys::default()
        };
        let (_, found) = store.index_entries(tenant, &keys)?;
        known.extend(found.iter().map(|e| e.id.clone()));
        frontier = walked_refs(found.iter(), &known);
        entries.extend(found);
    }
    Ok(())
}

/// The references of agents and workflows among `entries` not yet in `known`.
fn walked_refs<'a>(
    entries: impl Iterator<Item = &'a IndexEntry>,
    known: &HashSet<String>,
) -> Vec<String> {
    let mut out: Vec<String> = entries
        .filter(|e| matches!(e.kind, Kind::Agent | Kind::Workflow))
        .flat_map(|e| e.refs.iter())
        .filter(|r| !known.contains(*r))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Entries with each ID once.
fn dedup(entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .filter(|e| seen.insert(e.id.clone()))
        .collect()
}
