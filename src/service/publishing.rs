//! Publish and rollback as services on a store: the staging diff of a
//! tenant or one agent, preparing and recording a publish, the publish log
//! of one agent, and rolling a publish back out of staging.
//!
//! [`crate::domain::publish`] is the pure part (diffs, records, the three-way
//! revert); this module reads a store, calls it, and writes the result in
//! one transaction. [`publish`] is the one publish of the CLI and the HTTP
//! server: it checks the actor is an admin, records the publish, and then
//! tags the commit that holds it through a [`PublishTagger`] when the front
//! end has one (so a tag exists only for a recorded publish). [`revert`]
//! is the one rollback, with its preview. Errors are [`StagingError`]s.

use crate::backend::store::{BatchDraft, StoreError};
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::backend::store::{IndexKeys, Store, TenantRecord, WriteBatch};
use crate::domain::access::Role;
use crate::domain::model::{Kind, Resource};
use crate::domain::publish::{
    self, PublishRecord, PublishedVersion, RevertConflict, RevertOutcome, RevertedResource,
    StagingDiff,
};
use crate::domain::tagging::{Holding, PublishTagger};
use crate::domain::validate::{render_names, NameTable};
use crate::service::access::{authorize, Actor};
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

/// Staging against production for a tenant, or for one agent (ID or name)
/// and what it needs, read by `actor` (a viewer).
pub fn staging_diff_for(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: Option<&str>,
) -> Result<StagingDiff, StagingError> {
    authorize_reading(store, actor, tenant, "reading the staging diff")?;
    staging_diff_unchecked(store, tenant, agent)
}

/// [`staging_diff_for`] once the actor's role is checked.
fn staging_diff_unchecked(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
) -> Result<StagingDiff, StagingError> {
    store.tenant_revision(tenant)?;
    let (drafts, production) = staging_and_production(store, tenant, agent)?;
    diff_in(tenant, agent, &drafts, &production)
}

/// The drafts and production resources that staging work on `tenant`, or
/// on one agent (ID or name) and what it needs, reads. For an agent with a
/// draft, only its reference closure, in staging and in production: the
/// work follows the agent, not the size of the tenant. Otherwise (the
/// whole tenant, or an agent left only in production) all of them.
fn staging_and_production(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
) -> Result<(Vec<Resource>, Vec<Resource>), StoreError> {
    if let Some(a) = agent {
        if let Some(ids) = agent_closure(store, tenant, a)? {
            return Ok((
                store.drafts(tenant, &ids)?,
                store.production_of(tenant, &ids)?,
            ));
        }
    }
    Ok((store.all_drafts(tenant)?, store.production(tenant)?))
}

/// Staging diffs already rendered (as the front end's bytes), by tenant and
/// agent, each kept with the store's [`staging_stamp`] it was made at. A
/// diff is served from here only while the stamp is unchanged, so a write,
/// publish or version put anywhere in the tenant makes the next read derive
/// it afresh. Back ends without a stamp are never cached.
///
/// [`staging_stamp`]: crate::backend::store::ResourceStore::staging_stamp
#[derive(Debug, Default)]
pub struct StagingDiffCache {
    entries: std::sync::Mutex<std::collections::HashMap<(String, Option<String>), Rendered>>,
}

/// One rendered diff and the stamp it was made at.
#[derive(Debug, Clone)]
struct Rendered {
    stamp: String,
    bytes: std::sync::Arc<[u8]>,
}

/// How many diffs a [`StagingDiffCache`] keeps before it starts over.
const STAGING_DIFF_CACHE_ENTRIES: usize = 1024;

impl StagingDiffCache {
    /// The staging diff of `tenant` (or of one agent and what it needs),
    /// read by `actor` (a viewer, checked before the cache is looked at),
    /// rendered by `render`: from the cache while the store's stamp is the
    /// one it was made at, else made with [`staging_diff_for`] and kept.
    pub fn rendered<E: From<StagingError>>(
        &self,
        store: &dyn Store,
        actor: &Actor,
        tenant: &str,
        agent: Option<&str>,
        render: impl FnOnce(&StagingDiff) -> Result<Vec<u8>, E>,
    ) -> Result<std::sync::Arc<[u8]>, E> {
        authorize_reading(store, actor, tenant, "reading the staging diff")?;
        let stamp = store.staging_stamp(tenant).map_err(StagingError::from)?;
        let key = (tenant.to_string(), agent.map(str::to_string));
        if let Some(stamp) = &stamp {
            if let Some(hit) = self.lock().get(&key).filter(|r| &r.stamp == stamp) {
                return Ok(hit.bytes.clone());
            }
        }
        let bytes: std::sync::Arc<[u8]> =
            render(&staging_diff_unchecked(store, tenant, agent)?)?.into();
        if let Some(stamp) = stamp {
            let mut entries = self.lock();
            if entries.len() >= STAGING_DIFF_CACHE_ENTRIES {
                entries.clear();
            }
            let bytes = bytes.clone();
            entries.insert(key, Rendered { stamp, bytes });
        }
        Ok(bytes)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, Option<String>), Rendered>>
    {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The IDs of a staged agent (ID or name) and everything it references,
/// transitively, from keyed index lookups (never the tenant's whole index);
/// `None` when the agent has no draft.
pub(crate) fn agent_closure(
    store: &dyn Store,
    tenant: &str,
    agent: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let keys = IndexKeys {
        ids: vec![agent.to_string()],
        names: vec![(Kind::Agent, agent.to_string())],
        ..IndexKeys::default()
    };
    let (_, found) = store.index_entries(tenant, &keys)?;
    let agents = || found.iter().filter(|e| e.kind == Kind::Agent);
    let Some(root) = agents()
        .find(|e| e.id == agent)
        .or_else(|| agents().find(|e| e.name == agent))
    else {
        return Ok(None);
    };
    Ok(Some(store.reference_closure(tenant, &root.id)?))
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

/// What a publish of the tenant (or of one agent, ID or name) would record,
/// the tenant's drafts already read: the record (untagged) and the versions;
/// `None` when staging equals production.
fn prepare_publish_in(
    store: &dyn Store,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    actor: &str,
    now: &str,
    (drafts, production): (&[Resource], &[Resource]),
) -> Result<Option<(PublishRecord, Vec<PublishedVersion>)>, StagingError> {
    let d = diff_in(tenant, agent, drafts, production)?;
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

/// [`publish`] as `actor` with no tagger, for tests; `None` when there is nothing to publish.
#[cfg(test)]
pub(crate) fn publish_untagged(
    store: &mut dyn Store,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    actor: &str,
    now: &str,
) -> Result<Option<PublishRecord>, StagingError> {
    let done = publish(
        store,
        &Actor::named(actor),
        None,
        tenant,
        agent,
        message,
        now,
    )?;
    Ok(done.map(|p| p.record))
}

/// Why a publish was not tagged, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum PublishNote {
    /// The tag name is taken (by another store sharing the repo).
    TagExists {
        /// The tag.
        name: String,
    },
    /// No commit holds what was published.
    NotReproducible {
        /// The publish number.
        number: u64,
        /// Why no commit holds it.
        reason: String,
    },
    /// The publish was recorded, and creating its tag failed.
    TagFailed {
        /// The tag.
        name: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for PublishNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishNote::TagExists { name } => write!(
                f,
                "git tag `{name}` exists already (from another store?); this publish is not tagged"
            ),
            PublishNote::NotReproducible { number, reason } => {
                write!(f, "publish {number} can't be reproduced from git: {reason}")
            }
            PublishNote::TagFailed { name, reason } => write!(
                f,
                "the publish is recorded, and its git tag `{name}` could not be created: {reason}"
            ),
        }
    }
}

/// A recorded publish, and why it is not tagged if it is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The record, as stored.
    pub record: PublishRecord,
    /// Notes about tagging.
    pub notes: Vec<PublishNote>,
}

/// What a publish answers, the same on the CLI (`ferry publish --output
/// json`) and over HTTP (`POST .../publish`): the record, `hasChanges:
/// true`, and the tagging notes as warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishAnswer {
    /// Always `true`: a publish with nothing to publish is an error
    /// ([`nothing_to_publish`]).
    pub has_changes: bool,
    /// The record, as stored.
    #[serde(flatten)]
    pub record: PublishRecord,
    /// The tagging notes, as sentences.
    pub warnings: Vec<String>,
}

impl Published {
    /// The answer front ends give for this publish.
    pub fn answer(&self) -> PublishAnswer {
        PublishAnswer {
            has_changes: true,
            record: self.record.clone(),
            warnings: self.notes.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The error answer of a publish with nothing to publish: code
/// `nothing_to_publish` and `hasChanges: false`, on the CLI and over HTTP.
pub fn nothing_to_publish(
    message: impl Into<String>,
    hint: impl Into<String>,
) -> crate::domain::answer::ErrorAnswer {
    crate::domain::answer::ErrorAnswer::new("nothing_to_publish", message, Some(hint.into()))
        .with("hasChanges", false.into())
}

/// Publish staging (of the tenant, or of one agent and what it needs) as
/// `actor`, an admin of the tenant: record it in one transaction, then tag
/// the commit holding it through `tagger`, if there is one. `None` when
/// staging equals production.
pub fn publish(
    store: &mut dyn Store,
    actor: &Actor,
    tagger: Option<&dyn PublishTagger>,
    tenant: &str,
    agent: Option<&str>,
    message: &str,
    now: &str,
) -> Result<Option<Published>, StagingError> {
    authorize_publish(&*store, actor, tenant)?;
    let record = store.tenant(tenant)?;
    let (drafts, production) = staging_and_production(&*store, tenant, agent)?;
    let prepared = prepare_publish_in(
        &*store,
        tenant,
        agent,
        message,
        actor.recorded(),
        now,
        (&drafts, &production),
    )?;
    let Some((mut rec, versions)) = prepared else {
        return Ok(None);
    };
    let mut notes = Vec::new();
    if let Some(t) = tagger {
        // The tag goes on the commit holding the whole tenant's tree: a
        // publish of one agent (which read only its closure) reads every
        // draft for it only when tree IDs cannot tell that commit.
        let every = || -> Result<std::borrow::Cow<'_, [Resource]>, StagingError> {
            Ok(match agent {
                Some(_) => std::borrow::Cow::Owned(store.all_drafts(tenant)?),
                None => std::borrow::Cow::Borrowed(&drafts),
            })
        };
        if let Some(note) = choose_tag(&*store, t, &record, &every, &mut rec)? {
            notes.push(note);
        }
    }
    store.publish(tenant, &rec, &versions)?;
    if let (Some(t), Some(name), Some(commit)) = (tagger, rec.tag.clone(), rec.commit.clone()) {
        if let Err(e) = t.tag(
            &name,
            &commit,
            &publish::tag_message(&rec),
            &rec.published_by,
        ) {
            notes.push(PublishNote::TagFailed {
                name,
                reason: e.message,
            });
        }
    }
    Ok(Some(Published { record: rec, notes }))
}

/// The tenant's drafts, whole, read only when asked for.
type DraftsOnDemand<'a> = dyn Fn() -> Result<std::borrow::Cow<'a, [Resource]>, StagingError> + 'a;

/// Name the tag and the commit a publish gets (set on `rec`), or say why it
/// gets none. The commit is HEAD when it holds the tenant's drafts. When
/// the drafts are what the last applied commit holds (no drift, the same
/// files) and HEAD holds that commit's folder unchanged, that is known
/// from tree IDs alone; otherwise the drafts are read and encoded, and
/// compared with HEAD's files, the applied commit standing in when they
/// differ.
fn choose_tag<'a>(
    store: &dyn Store,
    tagger: &dyn PublishTagger,
    tenant: &TenantRecord,
    drafts: &DraftsOnDemand<'a>,
    rec: &mut PublishRecord,
) -> Result<Option<PublishNote>, StagingError> {
    let folder = crate::service::gitplan::tenant_rel(&tenant.name);
    let applied = crate::service::gitplan::applied_commit(store, Some(tagger), tenant)?;
    let head = applied
        .as_deref()
        .and_then(|last| tagger.head_with_folder_of(&folder, last));
    let holding = match (head, applied) {
        (Some(head), _) => Holding::Commit(head),
        (None, applied) => {
            let tree = pipeline::tree_of_resources(tenant, &drafts()?)?;
            let holding = tagger
                .holding(&folder, &tree.files)
                .unwrap_or_else(|e| Holding::NotHeld(e.message));
            match (holding, applied) {
                (Holding::NotHeld(_), Some(last)) => Holding::Commit(last),
                (holding, _) => holding,
            }
        }
    };
    match holding {
        Holding::Commit(c) => {
            let name = publish::tag_name(&tenant.name, rec.number);
            if tagger.tag_exists(&name) {
                return Ok(Some(PublishNote::TagExists { name }));
            }
            rec.tag = Some(name);
            rec.commit = Some(c);
            Ok(None)
        }
        Holding::NotHeld(reason) => Ok(Some(PublishNote::NotReproducible {
            number: rec.number,
            reason,
        })),
    }
}

/// The tenant's publish log, newest first, read by `actor` (a viewer); with
/// `agent` (ID or name), only the publishes made for it or naming it in
/// their summary.
pub fn publishes_of(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: Option<&str>,
) -> Result<Vec<PublishRecord>, StagingError> {
    authorize_reading(store, actor, tenant, "reading the publish history")?;
    let Some(a) = agent else {
        store.tenant(tenant)?;
        return Ok(store.publishes(tenant)?);
    };
    // A keyed lookup (the production's agents for one deleted in staging);
    // an agent neither holds still matches the publishes made for that name.
    let id = match crate::service::staging::find_agent_id(store, tenant, a) {
        Ok(id) => Some(id),
        Err(StagingError::NoAgent { .. }) => None,
        Err(e) => return Err(e),
    };
    publishes_naming(store, tenant, a, id.as_deref())
}

/// The publish log of one agent (ID or name) that staging or production
/// holds, read by `actor` (a viewer); an agent neither holds is
/// [`StagingError::NoAgent`], told only to a viewer.
pub fn agent_publishes(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: &str,
) -> Result<Vec<PublishRecord>, StagingError> {
    authorize_reading(store, actor, tenant, "reading the publish history")?;
    let id = crate::service::staging::find_agent_id(store, tenant, agent)?;
    publishes_naming(store, tenant, &id, Some(&id))
}

/// The publish log, newest first, of the publishes made for `given` (an
/// agent's ID or name, as the publish was asked) or whose summary names
/// agent `id`; the actor's role already checked.
fn publishes_naming(
    store: &dyn Store,
    tenant: &str,
    given: &str,
    id: Option<&str>,
) -> Result<Vec<PublishRecord>, StagingError> {
    store.tenant(tenant)?;
    let mut list = store.publishes(tenant)?;
    list.retain(|p| p.agent.as_deref() == Some(given) || id.is_some_and(|i| p.summary.mentions(i)));
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
#[serde(rename_all = "camelCase")]
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
    let revision = store.tenant_revision(tenant)?;
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
fn write_rollback(
    store: &mut dyn Store,
    tenant: &str,
    plan: &RollbackPlan,
    by: Option<&str>,
) -> Result<Option<u64>, StagingError> {
    if !plan.has_writes() {
        return Ok(None);
    }
    let names = NameTable::of_resources(plan.result.iter());
    let mut batch = WriteBatch {
        base_revision: plan.revision,
        deletes: plan.outcome.deletes.clone(),
        actor: by.map(str::to_string),
        ..WriteBatch::default()
    };
    for r in &plan.outcome.upserts {
        let hash = pipeline::canonical_unit_hash(&render_names(r, &names))?;
        batch.upserts.push((BatchDraft::Borrowed(r), hash));
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
/// one transaction unless `preview`, and recording `by` as the last editor
/// of the drafts it changes. Production is unchanged until a publish.
fn rollback_by(
    store: &mut dyn Store,
    by: Option<&str>,
    tenant: &str,
    change_track_id: &str,
    preview: bool,
) -> Result<RollbackOutcome, StagingError> {
    let plan = plan_rollback(&*store, tenant, change_track_id)?;
    let revision = if preview {
        None
    } else {
        write_rollback(store, tenant, &plan, by)?
    };
    Ok(rollback_outcome(
        tenant,
        change_track_id,
        preview,
        revision,
        plan,
    ))
}

/// Roll publish `change_track_id` back out of staging as `actor`: an editor
/// of the tenant, unless `preview` (then nothing is written and nothing is checked).
pub fn revert(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    change_track_id: &str,
    preview: bool,
) -> Result<RollbackOutcome, StagingError> {
    if preview {
        authorize_revert_preview(&*store, actor, tenant)?;
    } else {
        authorize_revert(&*store, actor, tenant)?;
    }
    rollback_by(store, actor.name(), tenant, change_track_id, preview)
}

/// The check of every read here: `actor` is a viewer of `tenant`.
fn authorize_reading(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    action: &str,
) -> Result<(), StagingError> {
    authorize::<StagingError>(store, actor, tenant, Role::Viewer, action)
}

/// The role check of [`publish`] alone (admin), for a front end that looks
/// the agent up before it publishes and should refuse before it looks.
pub fn authorize_publish(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(), StagingError> {
    authorize::<StagingError>(store, actor, tenant, Role::Admin, "publishing")
}

/// The role check of a [`revert`] preview alone (viewer), for a front end
/// that works the revert out without writing it to the store.
pub fn authorize_revert_preview(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(), StagingError> {
    authorize_reading(store, actor, tenant, "previewing a revert")
}

/// The role check of [`revert`] alone (editor), for a front end that asks
/// before it writes and should refuse a lacking role before it asks.
pub fn authorize_revert(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(), StagingError> {
    authorize::<StagingError>(store, actor, tenant, Role::Editor, "reverting a publish")
}

/// What rolling publish `change_track_id` back would change in staging
/// (nothing is written), read by `actor` (a viewer); with `agent` (ID or
/// name), that agent must be in staging or production.
pub fn publish_diff(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: Option<&str>,
    change_track_id: &str,
) -> Result<RollbackOutcome, StagingError> {
    authorize_reading(store, actor, tenant, "reading a publish")?;
    if let Some(agent) = agent {
        crate::service::staging::find_agent_id(store, tenant, agent)?;
    }
    let plan = plan_rollback(store, tenant, change_track_id)?;
    Ok(rollback_outcome(tenant, change_track_id, true, None, plan))
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, PublishStore, ResourceStore, SyncStore};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    use crate::domain::tagging::TagError;

    const T: &str = "acme-dev";
    const NOW: &str = "2026-01-01T00:00:00Z";

    /// A store file with the acme-dev fixture applied, never published.
    fn applied() -> (tempfile::TempDir, PathBuf, SqliteStore) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ferry.db");
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .create_tenant(T, None, &crate::domain::secrets::generate_keypair())
            .unwrap();
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/acme/tenants/acme-dev");
        let source = crate::domain::tree::folder::FolderSource::new(root);
        let tp = pipeline::plan_tree(&store, T, &source, Default::default()).unwrap();
        crate::service::apply::apply(&mut store, &tp.plan.unwrap(), Default::default()).unwrap();
        (tmp, path, store)
    }

    /// A tagger that says HEAD holds everything and, when asked to tag,
    /// looks in the store (through its own connection) for the publish.
    struct Spy {
        store: PathBuf,
        seen: RefCell<Vec<(String, bool)>>,
    }

    impl PublishTagger for Spy {
        fn holding(&self, _: &str, _: &BTreeMap<String, Vec<u8>>) -> Result<Holding, TagError> {
            Ok(Holding::Commit("c0ffee".into()))
        }
        fn paths_at(&self, _: &str, _: &str) -> Option<Vec<String>> {
            None
        }
        fn head_with_folder_of(&self, _: &str, _: &str) -> Option<String> {
            None
        }
        fn tag_exists(&self, _: &str) -> bool {
            false
        }
        fn tag(&self, name: &str, _: &str, _: &str, _: &str) -> Result<(), TagError> {
            let other = SqliteStore::open(&self.store).unwrap();
            let recorded = other
                .publishes(T)
                .unwrap()
                .iter()
                .any(|p| p.tag.as_deref() == Some(name));
            self.seen.borrow_mut().push((name.to_string(), recorded));
            Ok(())
        }
    }

    #[test]
    fn a_publish_is_recorded_before_it_is_tagged() {
        let (_tmp, path, mut store) = applied();
        let spy = Spy {
            store: path,
            seen: RefCell::new(Vec::new()),
        };
        let done = publish(
            &mut store,
            &Actor::named("dora"),
            Some(&spy),
            T,
            None,
            "m",
            NOW,
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.record.tag.as_deref(), Some("acme-dev/publish/1"));
        assert_eq!(done.record.published_by, "dora");
        assert_eq!(
            *spy.seen.borrow(),
            vec![("acme-dev/publish/1".to_string(), true)],
            "the tag is made once the publish is in the store"
        );
    }

    #[test]
    fn a_refused_publish_makes_no_tag() {
        let (_tmp, path, mut store) = applied();
        store.add_user("root").unwrap();
        store.add_user("vic").unwrap();
        let spy = Spy {
            store: path,
            seen: RefCell::new(Vec::new()),
        };
        let e = publish(
            &mut store,
            &Actor::named("vic"),
            Some(&spy),
            T,
            None,
            "m",
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, StagingError::Access(_)), "{e}");
        assert!(spy.seen.borrow().is_empty());
        assert!(store.publishes(T).unwrap().is_empty());
    }

    /// [`applied`], published once, with users: `root` (the owner), `vic`
    /// (a viewer of the tenant) and `eve` (no role on it); and the publish.
    fn published_with_readers() -> (tempfile::TempDir, SqliteStore, PublishRecord) {
        let (tmp, _path, mut store) = applied();
        let rec = publish(&mut store, &Actor::default(), None, T, None, "m", NOW)
            .unwrap()
            .unwrap()
            .record;
        for user in ["root", "vic", "eve"] {
            store.add_user(user).unwrap();
        }
        store.grant("vic", T, Role::Viewer).unwrap();
        (tmp, store, rec)
    }

    #[test]
    fn a_revert_needs_an_editor_and_its_preview_a_viewer() {
        let (_tmp, mut store, rec) = published_with_readers();
        let (vic, eve) = (Actor::named("vic"), Actor::named("eve"));
        revert(&mut store, &vic, T, &rec.change_track_id, true).unwrap();
        let e = revert(&mut store, &vic, T, &rec.change_track_id, false).unwrap_err();
        assert!(e.to_string().contains("needs the editor role"), "{e}");
        let e = revert(&mut store, &eve, T, &rec.change_track_id, true).unwrap_err();
        assert!(e.to_string().contains("previewing a revert"), "{e}");
    }

    /// An agent's publish history and the agent list read the same rows
    /// however many other resources the tenant holds, and give the same
    /// answers: keyed lookups (the agents by their kind) and the agents'
    /// drafts, never every draft or every name.
    #[test]
    fn agent_reads_do_not_grow_with_the_tenant() {
        let (_tmp, _path, mut store) = applied();
        publish(&mut store, &Actor::default(), None, T, None, "m", NOW)
            .unwrap()
            .unwrap();
        let anyone = Actor::default();
        let read = |store: &SqliteStore| {
            let before = store.rows_read();
            let history = agent_publishes(store, &anyone, T, "billing-bot").unwrap();
            let by_id = publishes_of(store, &anyone, T, Some("billing-bot")).unwrap();
            let agents = crate::service::agent_view::agent_list(store, &anyone, T).unwrap();
            let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
            let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
            assert!(ids.is_sorted(), "{ids:?}");
            let found = (history.len(), by_id.len(), names);
            (found, store.rows_read() - before)
        };
        let (found, rows) = read(&store);
        assert_eq!((found.0, found.1), (1, 1));
        assert!(
            found.2.contains(&"billing-bot".to_string()),
            "{:?}",
            found.2
        );
        pipeline::tests::add_tools(&mut store, T, 230);
        let (found_after, rows_after) = read(&store);
        assert_eq!(found_after, found);
        assert_eq!(rows_after, rows);
    }

    /// A publish of one agent works out what to publish from the agent's
    /// closure: the same rows, and the same record, with 230 more tools in
    /// the tenant (an untagged publish; a tagged one may read every draft,
    /// when tree IDs cannot tell the commit to tag).
    #[test]
    fn an_agent_publish_reads_what_the_agent_needs() {
        let publish_billing = |extra: usize| {
            let (_tmp, _path, mut store) = applied();
            if extra > 0 {
                pipeline::tests::add_tools(&mut store, T, extra);
            }
            let once = |store: &mut SqliteStore| {
                let who = Actor::default();
                publish(store, &who, None, T, Some("billing-bot"), "m", NOW).unwrap()
            };
            let before = store.rows_read();
            let rec = once(&mut store).unwrap().record;
            let first = store.rows_read() - before;
            let again = once(&mut store);
            assert!(again.is_none(), "nothing left to publish");
            let second = store.rows_read() - before - first;
            (rec.summary, rec.change_track_id, first, second)
        };
        let small = publish_billing(0);
        assert_eq!(publish_billing(230), small);
    }

    /// Every read here is a viewer's: a user without a role on the tenant
    /// is refused, naming what they tried, before anything is looked up
    /// (an unknown agent or publish is not told to them).
    #[test]
    fn every_read_needs_a_viewer() {
        let (_tmp, store, rec) = published_with_readers();
        let (vic, eve) = (Actor::named("vic"), Actor::named("eve"));
        let change = rec.change_track_id.as_str();
        let cache = StagingDiffCache::default();
        let rendered = |actor: &Actor| {
            cache
                .rendered::<StagingError>(&store, actor, T, None, |_| Ok(Vec::new()))
                .map(|_| ())
        };
        type Read<'a> = Box<dyn Fn(&Actor) -> Result<(), StagingError> + 'a>;
        let reads: Vec<(&str, Read)> = vec![
            (
                "reading the staging diff",
                Box::new(|a| staging_diff_for(&store, a, T, Some("nobody")).map(|_| ())),
            ),
            ("reading the staging diff", Box::new(rendered)),
            (
                "reading the publish history",
                Box::new(|a| publishes_of(&store, a, T, None).map(|_| ())),
            ),
            (
                "reading the publish history",
                Box::new(|a| agent_publishes(&store, a, T, "nobody").map(|_| ())),
            ),
            (
                "reading a publish",
                Box::new(|a| publish_diff(&store, a, T, None, "chg_nope").map(|_| ())),
            ),
            (
                "previewing a revert",
                Box::new(|a| authorize_revert_preview(&store, a, T)),
            ),
        ];
        for (action, read) in &reads {
            let e = read(&eve).unwrap_err();
            assert!(matches!(e, StagingError::Access(_)), "{action}: {e}");
            assert!(e.to_string().contains(action), "{e}");
        }
        staging_diff_for(&store, &vic, T, None).unwrap();
        assert_eq!(publishes_of(&store, &vic, T, None).unwrap().len(), 1);
        assert_eq!(
            agent_publishes(&store, &vic, T, "billing-bot")
                .unwrap()
                .len(),
            1
        );
        publish_diff(&store, &vic, T, Some("billing-bot"), change).unwrap();
        let e = agent_publishes(&store, &vic, T, "nobody").unwrap_err();
        assert!(matches!(e, StagingError::NoAgent { .. }), "{e}");
    }
}
