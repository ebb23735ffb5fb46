//! Plans against a remote store, made by its server from only what it lacks.
//!
//! The client side ([`plan_tree`] for a folder, [`plan_from_git`] for a git
//! revision, which `gitplan::plan_from_git` hands a remote store to) keeps
//! the tree and git on the client. A full plan sends every path and each
//! unit's hash (`domain::tree::unit_hash`, as `Index::is_unchanged`
//! compares it); the server answers the paths it needs (units it does not
//! hold with that hash), and the client sends only those bodies. A plan
//! from git whose last applied commit is an ancestor of the revision, with
//! no drift, sends the commit, the paths changed since, and the bodies of
//! the units they belong to: a one-file change sends one file.
//!
//! The server side ([`answer`]) plans with the same pipeline as a local
//! plan (`pipeline::plan_tree_changed`, over its own store, every unit it
//! was not sent taken as unchanged), and returns the plan bound to its base
//! revision, with its payloads, the commit and the drift: the client
//! renders, saves and applies it exactly as a plan made locally.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use base64::Engine;

use crate::backend::store::remote::{wire, RemoteStore};
use crate::backend::store::{Store, StoreError};
use crate::backend::vcs::{self, GitTreeSource};
use crate::domain::diagnostic::{self, Diagnostic};
use crate::domain::plan::{DiffOptions, Plan};
use crate::domain::tree::{self, MemoryTree, SourceError, TreeSource, TENANT_FILE};
use crate::service::access::Actor;
use crate::service::gitplan::{
    tenant_rel, tenant_tree, units_of_paths, units_to_read, GitPlan, GitPlanError,
};
use crate::service::partial_plan;
use crate::service::pipeline::{self, PipelineError, ReadStats, Sent, TreePlan};

/// How many times a full plan asks again when the tenant moved between its requests.
const ROUNDS: usize = 3;

/// Plan `source` for `tenant` as `actor` (a viewer), with the store's drift: on the server of a
/// remote store (sending only what it lacks), else here.
pub fn plan_tree(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    source: &dyn TreeSource,
    options: DiffOptions,
) -> Result<TreePlan, PipelineError> {
    authorize_plan(store, actor, tenant)?;
    if let Some(remote) = store.remote() {
        return plan_remote(remote, tenant, source, options, None);
    }
    let mut tp = pipeline::plan_tree(store, tenant, source, options)?;
    if let Some(p) = &mut tp.plan {
        p.drift = store.drift(tenant)?;
    }
    Ok(tp)
}

/// `actor` may plan `tenant`: a viewer (applying the plan needs an editor).
pub fn authorize_plan(store: &dyn Store, actor: &Actor, tenant: &str) -> Result<(), PipelineError> {
    crate::service::access::authorize::<PipelineError>(
        store,
        actor,
        tenant,
        crate::domain::access::Role::Viewer,
        "planning",
    )
}

/// The client's half of a plan made by the server, as a request is filled.
struct Outbox<'a> {
    source: &'a dyn TreeSource,
    request: wire::PlanTree,
    sent: Sent,
}

impl Outbox<'_> {
    /// Add the body of `path` (once).
    fn add(&mut self, path: &str) -> Result<(), SourceError> {
        if self.request.files.contains_key(path) {
            return Ok(());
        }
        let bytes = self.source.read(path)?;
        let body = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.request.files.insert(path.to_string(), body);
        self.sent.files += 1;
        if path.ends_with(".yaml") {
            self.sent.units += 1;
        }
        Ok(())
    }

    /// Read the tree's `tenant.toml` into the request; its problem, if any.
    fn tenant_file(&mut self, paths: &[String]) -> Result<Option<Diagnostic>, SourceError> {
        if !paths.iter().any(|p| p == TENANT_FILE) {
            return Ok(None);
        }
        match tree::tenant_file_of(&self.source.read(TENANT_FILE)?) {
            Ok(tf) => {
                self.request.tenant_file = Some(tf);
                Ok(None)
            }
            Err(d) => Ok(Some(*d)),
        }
    }
}

/// A full plan of `source` on the server of `remote`: every unit's hash,
/// then the bodies the server asks for.
pub fn plan_remote(
    remote: &RemoteStore,
    tenant: &str,
    source: &dyn TreeSource,
    options: DiffOptions,
    commit: Option<String>,
) -> Result<TreePlan, PipelineError> {
    let listing = source.listing()?;
    let mut here = tree::irregular_diagnostics(&listing);
    // Hash every unit, decode none.
    let read = tree::read_tree(source, &|_, _| true)?;
    here.extend(read.diagnostics.into_iter().filter(|d| d.code == "read"));
    let mut out = Outbox {
        source,
        request: wire::PlanTree {
            paths: Some(listing.files.clone()),
            units: read.unchanged,
            commit,
            prune: options.prune,
            ..wire::PlanTree::default()
        },
        sent: Sent::default(),
    };
    here.extend(out.tenant_file(&listing.files)?);
    for _ in 0..ROUNDS {
        let answer = remote.plan_tree(tenant, &out.request)?;
        if answer.needs.is_empty() {
            return finish(answer, here, out.sent);
        }
        for path in &answer.needs {
            out.add(path)?;
        }
    }
    Err(StoreError::Busy {
        tenant: tenant.to_string(),
    }
    .into())
}

/// Plan tenant `tenant` of a remote store against its tree at git revision
/// `rev`: only the changes since the last applied commit when it can be
/// counted from there, else the full tree (sending only what the server lacks).
pub fn plan_from_git(
    remote: &RemoteStore,
    repo_root: &Path,
    tenant: &str,
    rev: &str,
    options: DiffOptions,
) -> Result<GitPlan, GitPlanError> {
    use crate::backend::store::{PublishStore, ResourceStore};
    let record = remote.tenant(tenant)?;
    let rel = tenant_rel(tenant);
    let commit = vcs::resolve_commit(repo_root, rev)?;
    if let Some(last) = record.last_commit.as_deref() {
        if remote.drift(tenant)?.is_empty() && vcs::is_ancestor(repo_root, last, &commit)? {
            // Only the changed units' files are read, unless tenant.toml changed too.
            let (changed_files, units) =
                vcs::changed_paths_and_units(repo_root, &rel, last, &commit, units_to_read)?;
            let since = (last, commit.as_str());
            let changes = match units {
                Some(changes) => changes,
                // No folder for the tenant at the revision: say so as a whole read does.
                None if units_to_read(&changed_files).is_some() => {
                    tenant_tree(repo_root, tenant, rev)?
                }
                None => tenant_tree(repo_root, tenant, &commit)?,
            };
            if let Some(tree_plan) =
                plan_changes(remote, tenant, &changes, since, &changed_files, options)?
            {
                return Ok(GitPlan {
                    tree_plan,
                    commit,
                    incremental: true,
                    changed_files,
                    partial: false,
                });
            }
        }
    }
    let source = tenant_tree(repo_root, tenant, rev)?;
    let tree_plan = plan_remote(remote, tenant, &source, options, Some(commit.clone()))?;
    Ok(GitPlan {
        tree_plan,
        commit,
        incremental: false,
        changed_files: Vec::new(),
        partial: false,
    })
}

/// Send the changes between commits `since.0` and `since.1`; `None` when
/// the server cannot count from `since.0` (a full plan is needed).
fn plan_changes(
    remote: &RemoteStore,
    tenant: &str,
    source: &GitTreeSource,
    since: (&str, &str),
    changed: &[String],
    options: DiffOptions,
) -> Result<Option<TreePlan>, PipelineError> {
    let listing = source.listing()?;
    let present: HashSet<&str> = listing.files.iter().map(String::as_str).collect();
    let mut here = tree::irregular_diagnostics(&listing);
    let mut out = Outbox {
        source,
        request: wire::PlanTree {
            since: Some(since.0.to_string()),
            changed: changed.to_vec(),
            present: changed
                .iter()
                .filter(|p| present.contains(p.as_str()))
                .cloned()
                .collect(),
            commit: Some(since.1.to_string()),
            prune: options.prune,
            ..wire::PlanTree::default()
        },
        sent: Sent::default(),
    };
    here.extend(out.tenant_file(&listing.files)?);
    let wanted = units_of_paths(changed);
    let (units, _) = tree::units_of(&listing.files);
    for (path, content) in units.iter().filter(|(p, _)| wanted.contains(p)) {
        out.add(path)?;
        if let Some(c) = content {
            out.add(c)?;
        }
    }
    let answer = remote.plan_tree(tenant, &out.request)?;
    if answer.full || !answer.needs.is_empty() {
        return Ok(None);
    }
    finish(answer, here, out.sent).map(Some)
}

/// The tree plan the server answered, with the problems found here.
fn finish(
    answer: wire::PlanAnswer,
    mut diagnostics: Vec<Diagnostic>,
    sent: Sent,
) -> Result<TreePlan, PipelineError> {
    diagnostics.extend(
        answer
            .diagnostics
            .iter()
            .map(wire::WireDiagnostic::diagnostic),
    );
    diagnostics.sort();
    diagnostics.dedup();
    let plan = match answer.plan {
        Some(v) if !diagnostic::has_errors(&diagnostics) => Some(
            serde_json::from_value::<Plan>(v).map_err(|e| StoreError::Remote {
                status: 0,
                code: "bad_answer".into(),
                message: format!("the ferry server's plan does not decode: {e}"),
                hint: Some("compare `ferry --version` on both sides".into()),
            })?,
        ),
        _ => None,
    };
    Ok(TreePlan {
        plan,
        diagnostics,
        stats: ReadStats {
            units: answer.units,
            parsed: answer.parsed,
            unchanged: answer.unchanged,
        },
        tenant_file: answer.tenant_file,
        sent: Some(sent),
    })
}

/// Why the server could not plan what it was sent.
#[derive(Debug, thiserror::Error)]
pub enum RemotePlanError {
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A body is not base64.
    #[error("the body of `{path}` is not base64")]
    BadBody {
        /// The file.
        path: String,
    },
}

impl From<StoreError> for RemotePlanError {
    fn from(e: StoreError) -> Self {
        RemotePlanError::Pipeline(e.into())
    }
}

/// A tree made of what a client sent: its listing, the bodies it sent, and
/// its `tenant.toml` as settings. Every other file is not here, and is
/// never read: the plan takes its unit as unchanged.
struct SentTree {
    paths: Vec<String>,
    bodies: MemoryTree,
}

impl TreeSource for SentTree {
    fn describe(&self) -> String {
        "the tree the client sent".to_string()
    }
    fn list(&self) -> Result<Vec<String>, SourceError> {
        Ok(self.paths.clone())
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        self.bodies.read(path)
    }
}

/// The server's half: the paths it still needs, or whether it must be sent
/// the full tree, or the plan of `request` for `tenant` on `store`. The
/// caller admitted a viewer of the tenant (a plan reads, it writes nothing).
pub fn answer(
    store: &dyn Store,
    tenant: &str,
    request: &wire::PlanTree,
) -> Result<wire::PlanAnswer, RemotePlanError> {
    let mut files = BTreeMap::new();
    for (path, body) in &request.files {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| RemotePlanError::BadBody { path: path.clone() })?;
        files.insert(path.clone(), bytes);
    }
    if request.paths.is_none() {
        if let Some(answer) = answer_changes(store, tenant, request, &files)? {
            return Ok(answer);
        }
    }
    let (revision, index) = store.index(tenant)?;
    let (mut paths, changed) = match &request.paths {
        Some(paths) => {
            let hashes: HashMap<&str, &str> = request
                .units
                .iter()
                .map(|(p, h)| (p.as_str(), h.as_str()))
                .collect();
            let (units, _) = tree::units_of(paths);
            let mut needs = Vec::new();
            let mut changed = HashSet::new();
            for (path, content) in &units {
                let sent = files.contains_key(path);
                let known = hashes
                    .get(path.as_str())
                    .is_some_and(|h| index.is_unchanged(path, h));
                if sent {
                    changed.insert(path.clone());
                }
                if !sent && !known {
                    needs.push(path.clone());
                }
                if (sent || !known) && content.as_ref().is_some_and(|c| !files.contains_key(c)) {
                    needs.extend(content.clone());
                }
            }
            if !needs.is_empty() {
                return Ok(wire::PlanAnswer {
                    revision,
                    needs,
                    ..wire::PlanAnswer::default()
                });
            }
            (paths.clone(), changed)
        }
        None => {
            let record = store.tenant(tenant)?;
            let counted = request.since.is_some() && record.last_commit == request.since;
            if !counted || !store.drift(tenant)?.is_empty() {
                return Ok(wire::PlanAnswer {
                    revision,
                    full: true,
                    ..wire::PlanAnswer::default()
                });
            }
            let changed = units_of_paths(&request.changed);
            let mut paths: BTreeSet<String> = index
                .entries()
                .iter()
                .map(|e| e.path())
                .filter(|p| !changed.contains(p))
                .collect();
            paths.extend(request.present.iter().cloned());
            paths.extend(files.keys().cloned());
            (paths.into_iter().collect(), changed)
        }
    };
    let files_received = files.len();
    paths.retain(|p| p != TENANT_FILE);
    if let Some(tf) = &request.tenant_file {
        files.insert(TENANT_FILE.to_string(), tf.to_toml().into_bytes());
        paths.push(TENANT_FILE.to_string());
        paths.sort();
    }
    let source = SentTree {
        paths,
        bodies: MemoryTree { files },
    };
    let options = DiffOptions {
        prune: request.prune,
    };
    let tp = pipeline::plan_tree_changed(store, tenant, &source, options, Some(&changed))?;
    plan_answer(store, tenant, request, tp, revision, files_received)
}

/// A git change the server can count from its last applied commit, with
/// every changed unit's files sent and tenant.toml unchanged: planned from
/// those files and the index entries they touch alone
/// ([`partial_plan::plan_units`]). `None` when the whole index is needed.
fn answer_changes(
    store: &dyn Store,
    tenant: &str,
    request: &wire::PlanTree,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<wire::PlanAnswer>, RemotePlanError> {
    let record = store.tenant(tenant)?;
    let counted = request.since.is_some() && record.last_commit == request.since;
    if !counted
        || request.changed.iter().any(|p| !p.contains('/'))
        || !store.drift(tenant)?.is_empty()
    {
        return Ok(None);
    }
    let units = units_of_paths(&request.changed);
    let tree = MemoryTree {
        files: files.clone(),
    };
    let options = DiffOptions {
        prune: request.prune,
    };
    let Some(tp) = partial_plan::plan_units(store, tenant, &tree, &units, options)? else {
        return Ok(None);
    };
    let revision = tp
        .plan
        .as_ref()
        .map_or(record.revision, |p| p.base_revision);
    plan_answer(store, tenant, request, tp, revision, files.len()).map(Some)
}

/// The server's answer holding the plan `tp` made at `revision`.
fn plan_answer(
    store: &dyn Store,
    tenant: &str,
    request: &wire::PlanTree,
    tp: TreePlan,
    revision: u64,
    files_received: usize,
) -> Result<wire::PlanAnswer, RemotePlanError> {
    let plan = match tp.plan {
        Some(mut p) => {
            p.source_commit = request.commit.clone();
            p.drift = store.drift(tenant)?;
            serde_json::to_value(p.with_payloads()).ok()
        }
        None => None,
    };
    Ok(wire::PlanAnswer {
        revision,
        plan,
        diagnostics: tp
            .diagnostics
            .iter()
            .map(wire::WireDiagnostic::of)
            .collect(),
        units: tp.stats.units,
        parsed: tp.stats.parsed,
        unchanged: tp.stats.unchanged,
        tenant_file: tp.tenant_file,
        files_received,
        ..wire::PlanAnswer::default()
    })
}
