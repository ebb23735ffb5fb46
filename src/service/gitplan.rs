//! Plans from git revisions: a tenant's tree read straight from the object
//! database at a commit, with no checkout.
//!
//! When the commit the store was last applied from is an ancestor of (or
//! equal to) the revision, and the store has not drifted since, only the
//! files that differ between the two commits' tenant folders are decoded;
//! every other unit is taken as unchanged without reading it. Otherwise the
//! whole tree is read (units whose hash the store knows are still skipped
//! before parsing). Either way the plan records the commit, so apply can
//! record it in the store.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::backend::store::{Store, StoreError, TenantRecord, WriteBatch};
use crate::backend::vcs::{self, GitTreeSource, Identity, VcsError};
use crate::domain::access::{AccessError, Role};
use crate::domain::plan::DiffOptions;
use crate::domain::tagging::PublishTagger;
use crate::domain::tree::SourceError;
use crate::service::partial_plan;
use crate::service::pipeline::{self, PipelineError, TreePlan};

/// An error of planning from git.
#[derive(Debug, thiserror::Error)]
pub enum GitPlanError {
    /// git failed, or the revision names no commit.
    #[error(transparent)]
    Vcs(#[from] VcsError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The actor may not commit the tenant's tree.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The exported folder could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or folder.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Allow `actor` to commit a tenant's exported tree: an editor of the tenant.
/// `ferry export --commit` asks before it writes the folder, so a refusal changes nothing.
pub fn authorize_commit(
    store: &dyn Store,
    actor: &crate::service::access::Actor,
    tenant: &str,
) -> Result<(), GitPlanError> {
    crate::service::access::authorize::<GitPlanError>(
        store,
        actor,
        tenant,
        Role::Editor,
        "committing the exported tree",
    )
}

/// `export --commit`: commit a tenant's exported `files` (its drafts as of
/// tenant revision `drafts_at`) as its folder in the repo at `root`, as
/// `actor` (an editor of the tenant). Returns the new commit, or `None` when
/// HEAD holds the tree already.
///
/// Either way the commit holding the drafts becomes the tenant's last
/// applied commit, so drift (a revert, a staging edit) is cleared by
/// committing it. That is recorded as an empty [`WriteBatch`] naming the
/// commit, checked against `drafts_at`: when the drafts moved on meanwhile,
/// the commit does not hold them and nothing is recorded.
#[allow(clippy::too_many_arguments)]
pub fn commit_export(
    store: &mut dyn Store,
    actor: &crate::service::access::Actor,
    root: &Path,
    tenant: &str,
    files: BTreeMap<String, Vec<u8>>,
    drafts_at: u64,
    message: &str,
    who: Option<&Identity>,
) -> Result<Option<String>, GitPlanError> {
    authorize_commit(store, actor, tenant)?;
    let outcome = vcs::commit_folder(root, &tenant_rel(tenant), files, message, who)?;
    record_holding(store, root, tenant, outcome.commit.as_deref(), drafts_at)?;
    Ok(outcome.commit)
}

/// Start [`finish_streamed_export`]: a commit of the tenant's folder that
/// the export feeds a chunk at a time as it writes the files.
pub(crate) fn begin_streamed_export(
    root: &Path,
    tenant: &str,
) -> Result<vcs::StreamedCommit, GitPlanError> {
    Ok(vcs::StreamedCommit::begin(root, &tenant_rel(tenant))?)
}

/// [`commit_export`] of an export that fed `commit` as it wrote the files,
/// never holding the tree. The caller checked that `actor` may commit
/// before it wrote anything ([`crate::service::folder_export::export_to_folder`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_streamed_export(
    store: &mut dyn Store,
    root: &Path,
    tenant: &str,
    commit: vcs::StreamedCommit,
    drafts_at: u64,
    message: &str,
    who: Option<&Identity>,
) -> Result<Option<String>, GitPlanError> {
    let outcome = commit.finish(message, who)?;
    record_holding(store, root, tenant, outcome.commit.as_deref(), drafts_at)?;
    Ok(outcome.commit)
}

/// After an export commit: the new commit (or HEAD, when nothing needed
/// committing) holds the drafts as of tenant revision `drafts_at`, so it
/// becomes the tenant's last applied commit; an empty [`WriteBatch`]
/// naming it, checked against `drafts_at` (when the drafts moved on
/// meanwhile, nothing is recorded).
pub fn record_holding(
    store: &mut dyn Store,
    root: &Path,
    tenant: &str,
    commit: Option<&str>,
    drafts_at: u64,
) -> Result<(), GitPlanError> {
    let holding = match commit {
        Some(c) => Some(c.to_string()),
        None => vcs::head_commit(root)?,
    };
    if let Some(commit) = holding {
        let batch = WriteBatch {
            base_revision: drafts_at,
            commit: Some(commit),
            ..WriteBatch::default()
        };
        match store.write(tenant, &batch) {
            Ok(_) | Err(StoreError::Stale { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The commit the tenant was last applied from, when it still holds the
/// tenant's drafts: nothing drifted since that apply, and (when the repo is
/// at hand) the commit's folder has exactly the store's resources. `None`
/// when the drafts moved on, or were never applied from git.
pub fn applied_commit(
    store: &dyn Store,
    repo: Option<&dyn PublishTagger>,
    tenant: &TenantRecord,
) -> Result<Option<String>, StoreError> {
    applied_commit_of(store, repo, tenant, None)
}

/// [`applied_commit`] when the caller holds every draft's path already
/// (`in_store`): the store's index is then not read again.
pub fn applied_commit_of(
    store: &dyn Store,
    repo: Option<&dyn PublishTagger>,
    tenant: &TenantRecord,
    in_store: Option<HashSet<String>>,
) -> Result<Option<String>, StoreError> {
    let at_commit = match (repo, tenant.last_commit.as_deref()) {
        (Some(repo), Some(last)) => AtCommit::Read(units_at(repo, &tenant.name, last)),
        _ => AtCommit::NoRepo,
    };
    applied_commit_given(store, tenant, at_commit, in_store)
}

/// What the last applied commit's folder holds, read ahead of
/// [`applied_commit_given`] (on another thread, say).
#[derive(Debug)]
pub enum AtCommit {
    /// No repo to compare with: only drift is checked.
    NoRepo,
    /// The commit's units ([`units_at`]); `None` when unreadable.
    Read(Option<HashSet<String>>),
}

/// The unit paths (resource files, not their content files) of a tenant's
/// folder at `commit`, as [`applied_commit`] compares them with the store's;
/// `None` when the folder cannot be read there.
pub fn units_at(repo: &dyn PublishTagger, tenant: &str, commit: &str) -> Option<HashSet<String>> {
    let paths = repo.paths_at(&tenant_rel(tenant), commit)?;
    let (units, _) = crate::domain::tree::units_of(&paths);
    Some(units.into_iter().map(|(p, _)| p).collect())
}

/// [`applied_commit_of`] with the commit's side already read.
pub fn applied_commit_given(
    store: &dyn Store,
    tenant: &TenantRecord,
    at_commit: AtCommit,
    in_store: Option<HashSet<String>>,
) -> Result<Option<String>, StoreError> {
    let Some(last) = tenant.last_commit.as_deref() else {
        return Ok(None);
    };
    if !store.drift(&tenant.name)?.is_empty() {
        return Ok(None);
    }
    if let AtCommit::Read(at_commit) = at_commit {
        let Some(at_commit) = at_commit else {
            return Ok(None);
        };
        let in_store = match in_store {
            Some(paths) => paths,
            None => store
                .id_names(&tenant.name)?
                .iter()
                .map(|(_, kind, name)| crate::domain::model::resource_path(kind, name))
                .collect(),
        };
        if at_commit != in_store {
            return Ok(None);
        }
    }
    Ok(Some(last.to_string()))
}

/// A plan made from a git revision, with how it was read.
#[derive(Debug)]
pub struct GitPlan {
    /// The plan (or the problems that prevent one); its `source_commit` is set.
    pub tree_plan: TreePlan,
    /// The full commit ID.
    pub commit: String,
    /// Whether only the files changed since the last applied commit were read.
    pub incremental: bool,
    /// Files that differ from the last applied commit (incremental plans only).
    pub changed_files: Vec<String>,
    /// Whether only the index entries the changed files touch were read
    /// from the store ([`partial_plan`]), not the whole index.
    pub partial: bool,
}

/// The folder of a tenant inside the config repo.
pub fn tenant_rel(tenant: &str) -> String {
    format!("tenants/{tenant}")
}

/// The units to read for files changed since the last applied commit, or
/// `None` when a file at the tenant's top (tenant.toml) changed, which only
/// a whole read checks.
pub fn units_to_read(changed: &[String]) -> Option<HashSet<String>> {
    changed
        .iter()
        .all(|p| p.contains('/'))
        .then(|| units_of_paths(changed))
}

/// The YAML units that files of a tree belong to (a content file belongs to the YAML beside it).
pub fn units_of_paths(paths: &[String]) -> HashSet<String> {
    paths
        .iter()
        .filter(|p| p.contains('/'))
        .map(|p| {
            if p.ends_with(".yaml") {
                p.clone()
            } else {
                let (dir, file) = p.rsplit_once('/').unwrap_or(("", p));
                let stem = match file.rfind('.') {
                    Some(i) if i > 0 => &file[..i],
                    _ => file,
                };
                format!("{dir}/{stem}.yaml")
            }
        })
        .collect()
}

/// The tree of `tenant` at git revision `rev`; missing when the revision has no folder for it.
pub fn tenant_tree(
    repo_root: &Path,
    tenant: &str,
    rev: &str,
) -> Result<GitTreeSource, GitPlanError> {
    open_tree(repo_root, &tenant_rel(tenant), rev, rev)
}

/// Plan tenant `tenant` of the store against its tree at git revision `rev`
/// of the config repo at `repo_root`, as `actor` (a viewer). This is the
/// entry point the benchmark times next to a full plan.
pub fn plan_from_git(
    store: &dyn Store,
    actor: &crate::service::access::Actor,
    repo_root: &Path,
    tenant: &str,
    rev: &str,
    options: DiffOptions,
) -> Result<GitPlan, GitPlanError> {
    crate::service::remote_plan::authorize_plan(store, actor, tenant)?;
    if let Some(remote) = store.remote() {
        return crate::service::remote_plan::plan_from_git(remote, repo_root, tenant, rev, options);
    }
    let record = store.tenant(tenant)?;
    let rel = tenant_rel(tenant);
    let commit = vcs::resolve_commit(repo_root, rev)?;
    let drift = store.drift(tenant)?;
    let mut since_last = None;
    let mut units_source = None;
    if let Some(last) = record.last_commit.as_deref() {
        if drift.is_empty() && vcs::is_ancestor(repo_root, last, &commit)? {
            let (changed, source) =
                vcs::changed_paths_and_units(repo_root, &rel, last, &commit, units_to_read)?;
            since_last = Some(changed);
            units_source = source;
        }
    }
    let incremental = since_last.is_some();
    let changed_files = since_last.unwrap_or_default();
    let mut tree_plan = match units_source {
        Some(source) => plan_changed(store, tenant, &source, &changed_files, options)?,
        None => None,
    };
    let partial = tree_plan.is_some();
    if tree_plan.is_none() {
        let source = open_tree(repo_root, &rel, &commit, rev)?;
        tree_plan = Some(if incremental {
            let units = units_of_paths(&changed_files);
            pipeline::plan_tree_changed(store, tenant, &source, options, Some(&units))?
        } else {
            pipeline::plan_tree(store, tenant, &source, options)?
        });
    }
    let mut tree_plan = tree_plan.ok_or_else(|| {
        GitPlanError::Pipeline(PipelineError::Source(SourceError::Missing {
            path: format!("{rev}:{rel}"),
        }))
    })?;
    if let Some(p) = &mut tree_plan.plan {
        p.source_commit = Some(commit.clone());
        p.drift = drift;
    }
    Ok(GitPlan {
        tree_plan,
        commit,
        incremental,
        changed_files,
        partial,
    })
}

/// The whole tenant folder at `commit`, or the error that names `rev` when it has none.
fn open_tree(
    repo_root: &Path,
    rel: &str,
    commit: &str,
    rev: &str,
) -> Result<GitTreeSource, GitPlanError> {
    let source = GitTreeSource::open(repo_root, rel, commit)?;
    if !source.exists() {
        return Err(PipelineError::Source(SourceError::Missing {
            path: format!("{rev}:{rel}"),
        })
        .into());
    }
    Ok(source)
}

/// The plan of only the units changed since the last applied commit,
/// reading only those files and the index entries they touch
/// ([`partial_plan::plan_units`]); `None` when the whole index is needed.
fn plan_changed(
    store: &dyn Store,
    tenant: &str,
    source: &GitTreeSource,
    changed_files: &[String],
    options: DiffOptions,
) -> Result<Option<TreePlan>, GitPlanError> {
    let units = units_of_paths(changed_files);
    Ok(partial_plan::plan_units(
        store, tenant, source, &units, options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_files_belong_to_their_yaml() {
        let u = units_of_paths(&[
            "documents/policy.pdf".into(),
            "agents/bot.yaml".into(),
            "tenant.toml".into(),
        ]);
        assert!(u.contains("documents/policy.yaml"));
        assert!(u.contains("agents/bot.yaml"));
        assert_eq!(u.len(), 2);
    }
}
