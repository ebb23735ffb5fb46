//! Publish and rollback as services on a store: the staging diff of a
//! tenant or one agent, preparing and recording a publish, the publish log
//! of one agent, and rolling a publish back out of staging.
//!
//! [`crate::domain::publish`] is the pure part (diffs, records, the three-way
//! revert); this module reads a store, calls it, and writes the result in
//! one transaction. The CLI (which adds git tags between
//! [`prepare_publish`] and [`Store::publish`]) and the HTTP server share it.
//! Errors are [`StagingError`]s.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::backend::store::{Store, WriteBatch};
use crate::domain::model::{Kind, Resource};
use crate::domain::publish::{
    self, PublishRecord, PublishedVersion, RevertConflict, RevertOutcome, RevertedResource,
    StagingDiff,
};
use crate::domain::validate::{render_names, NameTable};
use crate::service::pipeline;
use crate::service::staging::StagingError;

/// The ID of the agent `agent` (ID or name) among drafts, else among production.
fn agent_id_in(agent: &str, drafts: &[Resource], production: &[Resource]) -> Option<String> {
    let find = |list: &[Resource]| {
        list.iter()
            .filter(|r| r.kind() == Kind::Agent)
            .find(|r| r.id() == Some(agent))
            .and_then(|r| r.id().map(str::to_string))
    };
    find(drafts)
        .or_else(|| publish::find_agent(agent, drafts, production))
        .or_else(|| find(production))
}

/// The IDs `agent` (ID or name) covers: the agent and what it needs, in staging.
pub fn agent_scope(
    tenant: &str,
    agent: &str,
    drafts: &[Resource],
    production: &[Resource],
) -> Result<HashSet<String>, StagingError> {
    let id = agent_id_in(agent, drafts, production).ok_or_else(|| StagingError::NoAgent {
        tenant: tenant.to_string(),
        agent: agent.to_string(),
    })?;
    Ok(publish::closure(&id, drafts))
}

/// Staging against production for a tenant, or for one agent (ID or name) and what it needs.
pub fn staging_diff_for(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
) -> Result<StagingDiff, StagingError> {
    store.tenant(tenant)?;
    if let Some(a) = agent {
        // Read only the agent and what it needs: the work follows the
        // agent's closure, not the size of the tenant.
        let (_, index) = store.index(tenant)?;
        if let Some(ids) = index_closure(&index, a) {
            let drafts = store.drafts(tenant, &ids)?;
            let production = store.production_of(tenant, &ids)?;
            let scope: HashSet<String> = ids.into_iter().collect();
            return Ok(publish::staging_diff(&drafts, &production, Some(&scope)));
        }
    }
    let drafts = store.all_drafts(tenant)?;
    let production = store.production(tenant)?;
    diff_in(tenant, agent, &drafts, &production)
}

/// The IDs of a staged agent (ID or name) and everything it references,
/// transitively, from the index alone; `None` when the agent has no draft.
fn index_closure(index: &crate::domain::state::Index, agent: &str) -> Option<Vec<String>> {
    let entries: std::collections::HashMap<&str, &crate::domain::state::IndexEntry> =
        index.entries().iter().map(|e| (e.id.as_str(), e)).collect();
    let root = index
        .entries()
        .iter()
        .filter(|e| e.kind == Kind::Agent)
        .find(|e| e.id == agent)
        .or_else(|| {
            index
                .entries()
                .iter()
                .find(|e| e.kind == Kind::Agent && e.name == agent)
        })?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut stack = vec![root.id.clone()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(e) = entries.get(id.as_str()) {
            stack.extend(e.refs.iter().filter(|r| !seen.contains(*r)).cloned());
        }
    }
    let mut ids: Vec<String> = seen.into_iter().collect();
    ids.sort();
    Some(ids)
}

fn diff_in(
    tenant: &str,
    agent: Option<&str>,
    drafts: &[Resource],
    production: &[Resource],
) -> Result<StagingDiff, StagingError> {
    let scope = match agent {
        Some(a) => Some(agent_scope(tenant, a, drafts, production)?),
        None => None,
    };
    Ok(publish::staging_diff(drafts, production, scope.as_ref()))
}

/// What a publish of the tenant (or of one agent, ID or name) would record:
/// the record (untagged) and the versions; `None` when staging equals production.
pub fn prepare_publish(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    actor: &str,
    now: &str,
) -> Result<Option<(PublishRecord, Vec<PublishedVersion>)>, StagingError> {
    store.tenant(tenant)?;
    let drafts = store.all_drafts(tenant)?;
    prepare_publish_in(store, tenant, agent, message, actor, now, &drafts)
}

/// [`prepare_publish`] with the tenant's drafts already read.
pub(crate) fn prepare_publish_in(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    actor: &str,
    now: &str,
    drafts: &[Resource],
) -> Result<Option<(PublishRecord, Vec<PublishedVersion>)>, StagingError> {
    let production = store.production(tenant)?;
    let d = diff_in(tenant, agent, drafts, &production)?;
    if !d.has_changes {
        return Ok(None);
    }
    let (versions, summary) = publish::prepare(&d, drafts);
    let number = store.next_publish_number(tenant)?;
    let record = PublishRecord {
        tenant: tenant.to_string(),
        number,
        change_track_id: publish::change_track_id(tenant, number, &versions),
        agent: agent.map(str::to_string),
        published_by: actor.to_string(),
        published_at: now.to_string(),
        message: message.to_string(),
        summary,
        tag: None,
        commit: None,
    };
    Ok(Some((record, versions)))
}

/// Publish staging (of the tenant, or of one agent and what it needs) without
/// a git tag, in one transaction; `None` when there is nothing to publish.
pub fn publish_untagged(
    store: &mut dyn Store,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    actor: &str,
    now: &str,
) -> Result<Option<PublishRecord>, StagingError> {
    let Some((record, versions)) = prepare_publish(&*store, tenant, agent, message, actor, now)?
    else {
        return Ok(None);
    };
    store.publish(tenant, &record, &versions)?;
    Ok(Some(record))
}

/// The tenant's publish log, newest first; with `agent` (ID or name), only
/// the publishes made for it or naming it in their summary.
pub fn publishes_of(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
) -> Result<Vec<PublishRecord>, StagingError> {
    store.tenant(tenant)?;
    let mut list = store.publishes(tenant)?;
    if let Some(a) = agent {
        let drafts = store.all_drafts(tenant)?;
        let production = store.production(tenant)?;
        let id = agent_id_in(a, &drafts, &production);
        list.retain(|p| {
            p.agent.as_deref() == Some(a) || id.as_deref().is_some_and(|i| p.summary.mentions(i))
        });
    }
    Ok(list)
}

/// A rollback worked out but not written: the revert and the drafts after it.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPlan {
    /// The tenant revision it was worked out at.
    pub revision: u64,
    /// The three-way revert of the publish against the drafts now.
    pub outcome: RevertOutcome,
    /// Every draft after the rollback (stored form), by ID.
    pub result: Vec<Resource>,
}

impl RollbackPlan {
    /// Whether the rollback changes any draft.
    pub fn has_writes(&self) -> bool {
        !self.outcome.upserts.is_empty() || !self.outcome.deletes.is_empty()
    }
}

/// What a rollback did (or, in preview, would do) to staging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackOutcome {
    /// The tenant.
    pub tenant: String,
    /// The publish rolled back.
    pub change_track_id: String,
    /// Whether this was only a preview.
    pub preview: bool,
    /// Whether staging was written.
    pub written: bool,
    /// The tenant revision after the rollback (unchanged when nothing was written).
    pub revision: u64,
    /// How each draft changes (staging now → after the rollback).
    pub resources: Vec<RevertedResource>,
    /// Fields (or resources) kept as they are in staging.
    pub conflicts: Vec<RevertConflict>,
}

/// Work out the rollback of publish `change_track_id` out of staging, without writing.
pub fn plan_rollback(
    store: &dyn Store,
    tenant: &str,
    change_track_id: &str,
) -> Result<RollbackPlan, StagingError> {
    store.tenant(tenant)?;
    if !store.has_publish(tenant, change_track_id)? {
        return Err(StagingError::NoPublish {
            tenant: tenant.to_string(),
            change_track_id: change_track_id.to_string(),
        });
    }
    let pairs = store.publish_changes(tenant, change_track_id)?;
    let (revision, _) = store.index(tenant)?;
    let drafts = store.all_drafts(tenant)?;
    let outcome = publish::revert(&pairs, &drafts);
    let mut result: BTreeMap<String, Resource> = drafts
        .into_iter()
        .filter_map(|r| r.id().map(|i| (i.to_string(), r.clone())))
        .collect();
    for id in &outcome.deletes {
        result.remove(id);
    }
    for r in &outcome.upserts {
        if let Some(id) = r.id() {
            result.insert(id.to_string(), r.clone());
        }
    }
    Ok(RollbackPlan {
        revision,
        outcome,
        result: result.into_values().collect(),
    })
}

/// Write a worked-out rollback to staging in one transaction; returns the new
/// tenant revision, or `None` when it changes nothing.
pub fn write_rollback(
    store: &mut dyn Store,
    tenant: &str,
    plan: &RollbackPlan,
) -> Result<Option<u64>, StagingError> {
    if !plan.has_writes() {
        return Ok(None);
    }
    let names = NameTable::of_resources(plan.result.iter());
    let mut batch = WriteBatch {
        base_revision: plan.revision,
        deletes: plan.outcome.deletes.clone(),
        ..WriteBatch::default()
    };
    for r in &plan.outcome.upserts {
        let hash = pipeline::canonical_unit_hash(&render_names(r, &names))?;
        batch.upserts.push((Cow::Borrowed(r), hash));
    }
    Ok(Some(store.write(tenant, &batch)?))
}

fn rollback_outcome(
    tenant: &str,
    change_track_id: &str,
    preview: bool,
    revision: Option<u64>,
    plan: RollbackPlan,
) -> RollbackOutcome {
    RollbackOutcome {
        tenant: tenant.to_string(),
        change_track_id: change_track_id.to_string(),
        preview,
        written: revision.is_some(),
        revision: revision.unwrap_or(plan.revision),
        resources: plan.outcome.resources,
        conflicts: plan.outcome.conflicts,
    }
}

/// Roll publish `change_track_id` back out of staging (a field-level
/// three-way revert; conflicts are kept as they are), writing the drafts in
/// one transaction unless `preview`. Production is unchanged until a publish.
pub fn rollback(
    store: &mut dyn Store,
    tenant: &str,
    change_track_id: &str,
    preview: bool,
) -> Result<RollbackOutcome, StagingError> {
    let plan = plan_rollback(&*store, tenant, change_track_id)?;
    let revision = if preview {
        None
    } else {
        write_rollback(store, tenant, &plan)?
    };
    Ok(rollback_outcome(
        tenant,
        change_track_id,
        preview,
        revision,
        plan,
    ))
}

/// What rolling publish `change_track_id` back would change in staging (nothing is written).
pub fn publish_diff(
    store: &dyn Store,
    tenant: &str,
    change_track_id: &str,
) -> Result<RollbackOutcome, StagingError> {
    let plan = plan_rollback(store, tenant, change_track_id)?;
    Ok(rollback_outcome(tenant, change_track_id, true, None, plan))
}
