//! Git-backed commands: `diff`, `publish`, `publishes`, `revert`, plus the
//! git halves of `plan --ref` and `export --commit`.
//!
//! This is the edge: it reads the environment (the git identity) and
//! the clock, calls [`crate::domain::publish`], [`crate::service::gitplan`] and
//! [`crate::backend::vcs`], and prints.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use super::output::{change_lines, Output};
use super::repo::Repo;
use super::{Global, EXIT_ERROR, EXIT_OK};
use crate::backend::store::{self, Store};
use crate::backend::vcs::{self, GitTreeSource, Identity};
use crate::domain::model::Resource;
use crate::domain::plan::{DiffOptions, FieldChange};
use crate::domain::publish::{self, StagingChange, StagingDiff};
use crate::domain::tree::{self, TreeSource};
use crate::service::access::Actor;
use crate::service::changed_export;
use crate::service::gitplan::{self, tenant_rel};
use crate::service::pipeline::{self, TreePlan};
use crate::service::publishing;
use crate::service::staging::StagingError;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The git identity from the environment (`GIT_COMMITTER_*`, else `GIT_AUTHOR_*`), if complete.
pub(crate) fn git_identity() -> Option<Identity> {
    let name = env("GIT_COMMITTER_NAME").or_else(|| env("GIT_AUTHOR_NAME"))?;
    let email = env("GIT_COMMITTER_EMAIL").or_else(|| env("GIT_AUTHOR_EMAIL"))?;
    Some(Identity { name, email })
}

/// Plan from a git revision (`plan --ref`, `apply --ref`).
pub(crate) fn plan_ref(
    repo: &Repo,
    store: &dyn Store,
    actor: &Actor,
    out: &Output,
    tenant: &str,
    rev: &str,
    prune: bool,
) -> Result<TreePlan> {
    let spinner = out.spinner(&format!("reading {rev}:{}", tenant_rel(tenant)));
    let gp = gitplan::plan_from_git(store, actor, &repo.root, tenant, rev, DiffOptions { prune }).map_err(|e| match e {
        gitplan::GitPlanError::Pipeline(pipeline::PipelineError::Source(tree::SourceError::Missing { path })) => {
            anyhow!("tree not found: {path}\nhint: the revision has no folder {}; commit it with `ferry export --tenant {tenant} --commit -m MSG`", tenant_rel(tenant))
        }
        other => anyhow!(other),
    })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if gp.incremental && !out.json() {
        out.status(&format!(
            "{} file(s) changed since the last applied commit; read only those",
            gp.changed_files.len()
        ));
    }
    super::commands::report_sent(out, &gp.tree_plan);
    Ok(gp.tree_plan)
}

/// The message `export --commit` commits with; a usage error without one.
fn commit_message<'m>(tenant: &str, message: Option<&'m str>) -> Result<&'m str> {
    let Some(message) = message else {
        bail!("export --commit needs a commit message\nhint: `ferry export --tenant {tenant} --commit -m \"MSG\"`");
    };
    Ok(message)
}

/// `export --commit` of only what changed since the last applied commit,
/// when that is enough ([`changed_export::export_changes`]); `None` runs the whole export.
pub(crate) fn export_changes(
    repo: &Repo,
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    message: &Option<String>,
) -> Result<Option<changed_export::ChangedExport>> {
    let message = commit_message(tenant, message.as_deref())?;
    changed_export::export_changes(
        store,
        actor,
        &repo.root,
        tenant,
        message,
        git_identity().as_ref(),
    )
    .map_err(|e| match e {
        gitplan::GitPlanError::Vcs(vcs::VcsError::NoRepo { .. }) => {
            anyhow!("{e}\nhint: `git init` in {}", repo.root.display())
        }
        other => anyhow!(other),
    })
}

/// What an export of only the changes did, as text or JSON.
pub(crate) fn print_changed_export(
    out: &Output,
    repo: &Repo,
    tenant: &str,
    done: &changed_export::ChangedExport,
) {
    let dir = repo.tenant_dir(tenant).display().to_string();
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": tenant, "out": dir, "files": null, "since": done.since,
            "written": done.written, "removed": done.removed, "unchanged": null,
            "commit": done.commit, "scrubbed": done.scrubbed,
        }));
        return;
    }
    if done.scrubbed > 0 {
        out.warn(&format!(
            "{} plain-text credential(s) scrubbed: written as `{}`, the store keeps the values; move them to `${{vars.NAME}}` or `ENC[age,…]`",
            done.scrubbed,
            crate::domain::secrets::PLACEHOLDER
        ));
    }
    out.data(&format!(
        "Exported {tenant} to {dir}: what changed since {} ({} written, {} removed)",
        &done.since[..done.since.len().min(12)],
        done.written.len(),
        done.removed.len()
    ));
    match &done.commit {
        Some(c) => out.data(&format!("Committed {} as {c}", repo.tenant_rel(tenant))),
        None => out.data("Nothing to commit: HEAD holds this tree already"),
    }
}

/// Check an `export --commit` before anything is written: it needs a
/// message, and commits the tenant's own folder in the repo. The message.
pub(crate) fn check_commit(
    repo: &Repo,
    tenant: &str,
    dir: &Path,
    message: Option<String>,
) -> Result<String> {
    let message = commit_message(tenant, message.as_deref())?.to_string();
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(dir) != canon(&repo.tenant_dir(tenant)) {
        bail!(
            "--commit commits the tenant's folder in the repo ({}), not {}\nhint: leave out --out",
            repo.tenant_rel(tenant),
            dir.display()
        );
    }
    Ok(message)
}

/// `export --commit` of a tree collected from a remote store: commit the
/// exported tenant folder (an editor's write), checked by [`check_commit`]
/// before the export wrote it. A local store's export commits as it writes
/// ([`crate::service::folder_export`]).
pub(crate) fn commit_export(
    repo: &Repo,
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    tree: (BTreeMap<String, Vec<u8>>, u64),
    message: &str,
) -> Result<Option<String>> {
    gitplan::commit_export(
        store,
        actor,
        &repo.root,
        tenant,
        tree.0,
        tree.1,
        message,
        git_identity().as_ref(),
    )
    .map_err(|e| git_error(repo, e))
}

/// A git-side error of an export, with the hint for a folder outside any repo.
pub(crate) fn git_error(repo: &Repo, e: gitplan::GitPlanError) -> anyhow::Error {
    match e {
        gitplan::GitPlanError::Vcs(vcs::VcsError::NoRepo { .. }) => {
            anyhow!("{e}\nhint: `git init` in {}", repo.root.display())
        }
        other => anyhow!(other),
    }
}

fn print_staging_changes(out: &Output, changes: &[StagingChange], indent: &str) -> Vec<String> {
    changes
        .iter()
        .flat_map(|c| {
            change_lines(
                out,
                &FieldChange {
                    path: c.path.clone(),
                    before: c.production.clone(),
                    after: c.staging.clone(),
                },
                indent,
            )
        })
        .collect()
}

fn diff_text(out: &Output, d: &StagingDiff, left: &str, right: &str) -> String {
    if !d.has_changes {
        return format!("No changes: {right} equals {left}.");
    }
    let mut lines = vec![format!(
        "{} resource(s) differ ({left} → {right}):",
        d.resources.len()
    )];
    for r in &d.resources {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        lines.push(format!("  {} {} ({status})", r.kind, r.name));
        lines.extend(print_staging_changes(out, &r.changes, "      "));
    }
    lines.join("\n")
}

/// A library error as a CLI error: store errors stay visible to `hints_for`.
fn cli_error(e: StagingError, tenant: &str) -> anyhow::Error {
    match e {
        StagingError::Store(s) => s.into(),
        StagingError::NoPublish { .. } => {
            anyhow!("{e}\nhint: `ferry publishes --tenant {tenant}` lists them")
        }
        other => other.into(),
    }
}

/// `ferry diff`.
pub(crate) fn diff(
    g: &Global,
    out: &Output,
    tenant: Option<String>,
    agent: Option<String>,
    revs: Vec<String>,
) -> Result<i32> {
    if !revs.is_empty() {
        if revs.len() != 2 {
            bail!("`ferry diff` compares two revisions: `ferry diff REV1 REV2 [--tenant T]`");
        }
        return diff_revs(g, out, tenant, &revs[0], &revs[1]);
    }
    let Some(tenant) = tenant else {
        bail!("say which tenant: `ferry diff --tenant T` (or `ferry diff REV1 REV2`)");
    };
    let (repo, store) = super::commands::open(g)?;
    store.tenant(&tenant)?;
    let actor = super::identity::actor(g, Some(&repo));
    let d = publishing::staging_diff_for(store.as_ref(), &actor, &tenant, agent.as_deref())
        .map_err(|e| cli_error(e, &tenant))?;
    if out.json() {
        out.json_value(&d);
    } else {
        out.data(&diff_text(out, &d, "production", "staging"));
    }
    Ok(EXIT_OK)
}

fn read_at(repo: &Repo, tenant: &str, rev: &str, units: &HashSet<String>) -> Result<Vec<Resource>> {
    let source = GitTreeSource::open(&repo.root, &tenant_rel(tenant), rev)?;
    if !source.exists() {
        return Ok(Vec::new());
    }
    let read = tree::read_tree_skipping(&source, &|_, _| false, &|p| {
        (!units.contains(p)).then(String::new)
    })?;
    let errors: Vec<String> = read
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && units.iter().any(|u| d.file == *u))
        .map(|d| format!("{}:{}: {}", source.describe(), d.file, d.message))
        .collect();
    if !errors.is_empty() {
        bail!("cannot read the tree at {rev}:\n{}", errors.join("\n"));
    }
    Ok(read.loaded.into_iter().map(|l| *l.resource).collect())
}

fn diff_revs(g: &Global, out: &Output, tenant: Option<String>, a: &str, b: &str) -> Result<i32> {
    let repo = Repo::discover(g.repo.as_deref())?;
    let tenant = match tenant {
        Some(t) => t,
        None => {
            let dirs: Vec<String> = std::fs::read_dir(repo.root.join("tenants"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            match dirs.as_slice() {
                [one] => one.clone(),
                _ => bail!("say which tenant: `ferry diff {a} {b} --tenant T`"),
            }
        }
    };
    let changed = vcs::changed_paths(&repo.root, &tenant_rel(&tenant), a, b)?;
    let units = gitplan::units_of_paths(&changed);
    // Compare in tree form, keyed by kind and name; IDs stand in for identity.
    let key = |r: &Resource| format!("{}/{}", r.kind().step(), r.name());
    let with_ids = |list: Vec<Resource>| -> Vec<Resource> {
        list.into_iter()
            .map(|mut r| {
                r.metadata.id = Some(key(&r));
                r
            })
            .collect()
    };
    let before = with_ids(read_at(&repo, &tenant, a, &units)?);
    let after = with_ids(read_at(&repo, &tenant, b, &units)?);
    let mut d = publish::staging_diff(&after, &before, None);
    for r in &mut d.resources {
        r.id.clear();
    }
    if out.json() {
        let resources: Vec<serde_json::Value> = d
            .resources
            .iter()
            .map(|r| {
                json!({
                    "kind": r.kind, "name": r.name, "status": r.status,
                    "changes": r.changes.iter().map(|c| json!({"path": c.path, "before": c.production, "after": c.staging})).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.json_value(&json!({"tenant": tenant, "from": a, "to": b, "hasChanges": d.has_changes, "resources": resources}));
    } else {
        out.data(&diff_text(out, &d, a, b));
    }
    Ok(EXIT_OK)
}

/// `ferry publish`.
pub(crate) fn publish(
    g: &Global,
    out: &Output,
    tenant: &str,
    agent: Option<String>,
    message: &str,
) -> Result<i32> {
    let (repo, mut store) = super::commands::open(g)?;
    store.tenant(tenant)?;
    let actor = super::identity::actor(g, Some(&repo));
    let tagger = vcs::GitTagger {
        root: repo.root.clone(),
        identity: git_identity(),
    };
    let published = publishing::publish(
        store.as_mut(),
        &actor,
        Some(&tagger),
        tenant,
        agent.as_deref(),
        message,
        &store::now_rfc3339(),
    )
    .map_err(|e| cli_error(e, tenant))?;
    let Some(done) = published else {
        let what = agent
            .as_deref()
            .map(|a| format!("agent `{a}`"))
            .unwrap_or_else(|| format!("tenant `{tenant}`"));
        return Err(
            super::output::Failure::from_answer(publishing::nothing_to_publish(
                format!("nothing to publish: staging equals production for {what}"),
                format!("`ferry diff --tenant {tenant}` compares them"),
            ))
            .into(),
        );
    };
    let (rec, notes) = (&done.record, &done.notes);
    for note in notes {
        out.warn(&note.to_string());
        if let publishing::PublishNote::NotReproducible { .. } = note {
            out.hint(&format!("commit the tree first: `ferry export --tenant {tenant} --commit -m MSG`, then publish"));
        }
    }
    if out.json() {
        out.json_value(&done.answer());
    } else {
        let mut s = format!(
            "Published {tenant} #{} ({}) by {}",
            rec.number, rec.change_track_id, rec.published_by
        );
        if let Some(t) = &rec.tag {
            s.push_str(&format!("\n  tagged {t}"));
        }
        for l in rec.summary.lines() {
            s.push_str(&format!("\n  {l}"));
        }
        out.data(&s);
    }
    Ok(EXIT_OK)
}

/// `ferry publishes`.
pub(crate) fn publishes(
    g: &Global,
    out: &Output,
    tenant: &str,
    agent: Option<String>,
) -> Result<i32> {
    let (repo, store) = super::commands::open(g)?;
    store.tenant(tenant)?;
    let actor = super::identity::actor(g, Some(&repo));
    let list = publishing::publishes_of(store.as_ref(), &actor, tenant, agent.as_deref())
        .map_err(|e| cli_error(e, tenant))?;
    if out.json() {
        out.json_value(&crate::domain::answer::Items::new(list));
    } else if list.is_empty() {
        out.data("No publishes.");
    } else {
        let mut lines = Vec::new();
        for p in &list {
            lines.push(format!(
                "#{} {}  {}  {}  {}",
                p.number,
                p.change_track_id,
                p.published_at,
                p.published_by,
                p.tag.as_deref().unwrap_or("(untagged)")
            ));
            lines.push(format!("    {}", p.message));
            for l in p.summary.lines() {
                lines.push(format!("    {l}"));
            }
        }
        out.data(&lines.join("\n"));
    }
    Ok(EXIT_OK)
}

/// What `ferry revert` prints: how each draft changes, and the conflicts.
struct RevertView {
    resources: Vec<crate::domain::publish::RevertedResource>,
    conflicts: Vec<crate::domain::publish::RevertConflict>,
}

/// The switches of `ferry revert`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RevertFlags {
    /// Show, write nothing.
    pub preview: bool,
    /// Write the tree into the repo instead of the store.
    pub write_tree: bool,
    /// Do not ask.
    pub yes: bool,
    /// Allow deleting more than half of the drafts.
    pub force: bool,
}

/// `ferry revert`.
pub(crate) fn revert(
    g: &Global,
    out: &Output,
    tenant: &str,
    publish: &str,
    flags: RevertFlags,
) -> Result<i32> {
    let RevertFlags {
        preview,
        write_tree,
        ..
    } = flags;
    let (repo, mut store) = super::commands::open(g)?;
    let record = store.tenant(tenant)?;
    let actor = super::identity::actor(g, Some(&repo));
    if !preview && !write_tree {
        publishing::authorize_revert(store.as_ref(), &actor, tenant)
    } else {
        publishing::authorize_revert_preview(store.as_ref(), &actor, tenant)
    }
    .map_err(|e| cli_error(e, tenant))?;
    let change_id = &super::revert_guard::change_id_of(store.as_ref(), tenant, publish)?;
    // The guard reads what the revert would write; the library plans it again in its transaction.
    let guarded = publishing::plan_rollback(store.as_ref(), tenant, change_id)
        .map_err(|e| cli_error(e, tenant))?;
    super::revert_guard::check(out, &record, &guarded, flags)?;
    let deletes = guarded.outcome.deletes.len();
    let mut tree_written = None;
    // Into the store (or a preview): the same library call as the rollback endpoint.
    let (written, revision, resources, conflicts) = if write_tree && !preview {
        let plan = guarded;
        if plan.has_writes() {
            let tree = pipeline::tree_of_resources(&record, &plan.result)?;
            let dir = repo.tenant_dir(tenant);
            crate::domain::tree::folder::write_tree(&dir, &tree)?;
            tree_written = Some(repo.tenant_rel(tenant));
        }
        (
            false,
            record.revision,
            plan.outcome.resources,
            plan.outcome.conflicts,
        )
    } else {
        let done = publishing::revert(store.as_mut(), &actor, tenant, change_id, preview)
            .map_err(|e| cli_error(e, tenant))?;
        (done.written, done.revision, done.resources, done.conflicts)
    };
    let outcome = RevertView {
        resources,
        conflicts,
    };
    if out.json() {
        out.json_value(&json!({
            "tenant": tenant, "changeTrackId": change_id, "preview": preview, "deletes": deletes,
            "written": written, "revision": revision, "tree": tree_written,
            "resources": outcome.resources, "conflicts": outcome.conflicts,
        }));
    } else {
        let mut lines = Vec::new();
        let verb = if preview { "Reverting" } else { "Reverted" };
        if outcome.resources.is_empty() {
            lines.push(format!("{verb} {change_id}: nothing to change in staging"));
        } else {
            lines.push(format!(
                "{verb} {change_id}: staging changes as follows (staging now → after the revert)"
            ));
        }
        for r in &outcome.resources {
            lines.push(format!(
                "  {} {} ({} draft)",
                r.kind,
                r.name,
                r.action.word()
            ));
            lines.extend(
                r.changes
                    .iter()
                    .flat_map(|c| change_lines(out, c, "      ")),
            );
        }
        for c in &outcome.conflicts {
            let field = if c.path.is_empty() {
                String::new()
            } else {
                format!(" {}", c.path)
            };
            lines.push(format!(
                "  CONFLICT {} {}{field}: {}",
                c.kind, c.name, c.reason
            ));
        }
        out.data(&lines.join("\n"));
        if let Some(t) = &tree_written {
            out.hint(&format!("the reverted tree is in {t}: commit it and open a pull request; the store is unchanged"));
        } else if written {
            out.hint(&format!(
                "production is unchanged until `ferry publish --tenant {tenant} -m MSG`"
            ));
        } else if preview {
            out.hint("nothing was written (--preview)");
        }
    }
    if !outcome.conflicts.is_empty() {
        out.status(&format!(
            "{} conflict(s) kept as they are in staging",
            outcome.conflicts.len()
        ));
        return Ok(EXIT_ERROR);
    }
    Ok(EXIT_OK)
}
