//! `export --commit` in proportion to the change: when the repo's HEAD
//! holds the tenant's folder exactly as the last applied commit did, only
//! the resources the store changed since that commit are read, encoded,
//! written to the folder and committed (a tree rebuilt from HEAD's along the
//! changed paths); the rest of the tenant is never read from the store, the
//! folder or git.
//!
//! The store says what changed ([`crate::backend::store::PublishStore::changes_since_commit`]:
//! each resource's path then and now). Whenever that is not enough to be
//! sure of the result, the answer is `None` and the caller runs the whole
//! export: no applied commit, HEAD's folder differs from it, or the changed
//! resources use other `${vars.NAME}` than before (`tenant.toml` lists the
//! tenant's variables, which only a whole read can tell).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::backend::store::{CommitChange, IndexKeys, Store};
use crate::backend::vcs::{self, GitTreeSource, Identity};
use crate::domain::model::{resource_path, TenantModel};
use crate::domain::tree::{self, TreeSource};
use crate::domain::validate::{render_names, NameTable};
use crate::service::access::Actor;
use crate::service::gitplan::{self, tenant_rel, GitPlanError};
use crate::service::pipeline::{self, PipelineError};

/// What an export of only the changes wrote and committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedExport {
    /// The last applied commit the changes were counted from.
    pub since: String,
    /// Files written (relative to the tenant folder).
    pub written: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Plain-text credentials written as the placeholder.
    pub scrubbed: usize,
    /// The new commit, or `None` when HEAD held the tree already.
    pub commit: Option<String>,
}

/// The changed files of one export: bytes by path, paths to remove, credentials scrubbed.
struct ChangedFiles {
    files: BTreeMap<String, Vec<u8>>,
    removed: Vec<String>,
    scrubbed: usize,
}

/// `export --commit` of only what the store changed since the tenant's last
/// applied commit, as `actor` (an editor of the tenant), into the repo at
/// `root`. `None` when the whole export is needed (see the module docs);
/// nothing is written then.
pub fn export_changes(
    store: &mut dyn Store,
    actor: &Actor,
    root: &Path,
    tenant: &str,
    message: &str,
    who: Option<&Identity>,
) -> Result<Option<ChangedExport>, GitPlanError> {
    gitplan::authorize_commit(store, actor, tenant)?;
    let record = store.tenant(tenant)?;
    let Some(since) = record.last_commit.clone() else {
        return Ok(None);
    };
    let Some(changes) = store.changes_since_commit(tenant)? else {
        return Ok(None);
    };
    let rel = tenant_rel(tenant);
    let at_since = vcs::folder_tree_id(root, &rel, &since).ok().flatten();
    if at_since.is_none() || vcs::folder_tree_id(root, &rel, "HEAD")? != at_since {
        return Ok(None);
    }
    let Some(changed) = changed_files(store, root, &rel, tenant, &changes)? else {
        return Ok(None);
    };
    let folder = root.join(&rel);
    let write = |p: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = folder.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    };
    for (p, bytes) in &changed.files {
        write(p, bytes).map_err(|e| io_error(&folder, p, e))?;
    }
    for p in &changed.removed {
        match std::fs::remove_file(folder.join(p)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(&folder, p, e))
            }
            _ => {}
        }
    }
    let written: Vec<String> = changed.files.keys().cloned().collect();
    let outcome = vcs::commit_changes(root, &rel, changed.files, &changed.removed, message, who)?;
    gitplan::record_holding(
        store,
        root,
        tenant,
        outcome.commit.as_deref(),
        record.revision,
    )?;
    Ok(Some(ChangedExport {
        since,
        written,
        removed: changed.removed,
        scrubbed: changed.scrubbed,
        commit: outcome.commit,
    }))
}

fn io_error(folder: &Path, path: &str, e: std::io::Error) -> GitPlanError {
    GitPlanError::Write {
        path: folder.join(path).display().to_string(),
        reason: e.to_string(),
    }
}

/// The files of the changed resources as the whole export would write them,
/// and the files of HEAD's folder they replace or remove. `None` when the
/// changed resources' variables differ from before.
fn changed_files(
    store: &dyn Store,
    root: &Path,
    rel: &str,
    tenant: &str,
    changes: &[CommitChange],
) -> Result<Option<ChangedFiles>, GitPlanError> {
    let ids: Vec<String> = changes
        .iter()
        .filter(|c| c.now.is_some())
        .map(|c| c.id.clone())
        .collect();
    let drafts = store.drafts(tenant, &ids)?;
    let keys = IndexKeys {
        ids: drafts
            .iter()
            .flat_map(|r| r.refs().into_iter().map(|(_, id)| id))
            .collect(),
        ..IndexKeys::default()
    };
    let (_, targets) = store.index_entries(tenant, &keys)?;
    let mut names = NameTable::of_resources(drafts.iter());
    for e in &targets {
        names.insert(e.kind, &e.name, &e.id);
    }
    let mut model = TenantModel::default();
    for r in &drafts {
        model.insert(render_names(r, &names));
    }
    let scrubbed = pipeline::scrub_plain_model(&mut model);
    let tree = tree::encode_model(&model).map_err(PipelineError::from)?;
    let units: HashSet<String> = changes
        .iter()
        .flat_map(|c| [c.then.as_ref(), c.now.as_ref()])
        .flatten()
        .map(|(kind, name)| resource_path(*kind, name))
        .collect();
    let before = GitTreeSource::open_units(root, rel, "HEAD", &units)?;
    if pipeline::variables_of(&model_of(&before)?) != pipeline::variables_of(&model) {
        return Ok(None);
    }
    let removed = before
        .list()
        .map_err(PipelineError::from)?
        .into_iter()
        .filter(|p| !tree.files.contains_key(p))
        .collect();
    Ok(Some(ChangedFiles {
        files: tree.files,
        removed,
        scrubbed,
    }))
}

/// The resources a source's YAML files decode to (what does not decode is left out).
fn model_of(source: &dyn TreeSource) -> Result<TenantModel, PipelineError> {
    let mut model = TenantModel::default();
    for path in source.list()?.iter().filter(|p| p.ends_with(".yaml")) {
        if let (Some(r), _) = tree::decode_unit(path, &source.read(path)?) {
            model.insert(r);
        }
    }
    Ok(model)
}
