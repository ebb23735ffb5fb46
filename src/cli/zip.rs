//! `ferry zip …`: export, import (single and batch), pack and unpack of ZIP artifacts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use super::commands::open;
use super::output::Output;
use super::{Global, EXIT_ERROR, EXIT_OK};
use crate::backend::archive::{self, Limits, ManifestSource};
use crate::backend::store::Store;
use crate::domain::tagging::PublishTagger;
use crate::domain::tree::folder::FolderSource;
use crate::domain::tree::{MemoryTree, TreeSource};
use crate::service::access::Actor;
use crate::service::zip_export::{self, Scope};
use crate::service::zip_import::{
    self, ImportError, ImportOptions, ImportPreview, ImportResult, Imported, Strategy,
};

/// ZIP artifacts.
#[derive(Debug, Subcommand)]
pub enum ZipCommand {
    /// Export an agent and what it needs (or the whole tenant) as a ZIP, secrets scrubbed.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The agent (name or ID).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        agent: Option<String>,
        /// Export every resource of the tenant.
        #[arg(long)]
        all: bool,
        /// Export the agent as published in this version (dependencies as in production); default: staging.
        #[arg(long, value_name = "N", requires = "agent")]
        agent_version: Option<u64>,
        /// Export only these entries (ids from --preview, comma-separated); required ones always go.
        #[arg(long, value_name = "ID,...")]
        selected: Option<String>,
        /// Print the resource tree instead of writing a ZIP.
        #[arg(long, visible_alias = "dry-run")]
        preview: bool,
        /// The ZIP file to write.
        #[arg(
            short = 'o',
            long = "out",
            value_name = "FILE",
            required_unless_present = "preview"
        )]
        out: Option<PathBuf>,
        #[command(flatten)]
        stamp: Stamp,
    },
    /// Import a ZIP into a tenant (or many, with --batch).
    Import {
        /// The ZIP file.
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        file: Option<PathBuf>,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// How archive resources map onto local ones.
        #[arg(long, value_enum)]
        strategy: StrategyArg,
        /// The agent to upgrade (name or ID); default: the one local agent that came from the source agent.
        #[arg(long)]
        target_agent: Option<String>,
        /// Only these resources (origin or local IDs, comma-separated); names a conflict to overwrite it.
        #[arg(long, value_name = "ID,...")]
        selected: Option<String>,
        /// Workflows to put first in the agent's list (IDs or names, comma-separated).
        #[arg(long, value_name = "ID,...")]
        workflow_order: Option<String>,
        /// Show what would happen; change nothing.
        #[arg(long, visible_alias = "dry-run")]
        preview: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// A JSON list of {file, targetAgent, selected, workflowOrder}; each succeeds or fails alone.
        #[arg(long, value_name = "MAPPINGS.json")]
        batch: Option<PathBuf>,
    },
    /// Pack a tree folder into a ZIP (keeping a matching manifest.json byte for byte).
    Pack {
        /// The folder.
        dir: PathBuf,
        /// The ZIP file to write.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        stamp: Stamp,
    },
    /// Unpack a ZIP into a new folder, after checking all of it.
    Unpack {
        /// The ZIP file.
        file: PathBuf,
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
    },
}

/// Manifest stamping options.
#[derive(Debug, Clone, Args)]
pub struct Stamp {
    /// The instance name written in manifest.json.
    #[arg(long, default_value = "ferry")]
    instance: String,
    /// The creation time written in manifest.json (RFC 3339; default: SOURCE_DATE_EPOCH, else now).
    #[arg(long, value_name = "TIME")]
    created_at: Option<String>,
}

impl Stamp {
    fn created_at(&self) -> String {
        if let Some(t) = &self.created_at {
            return t.clone();
        }
        if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
        {
            return crate::backend::store::rfc3339(secs);
        }
        crate::backend::store::now_rfc3339()
    }
}

/// The import strategy on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// New IDs, origin recorded.
    Create,
    /// Match by origin ID or own ID.
    Merge,
    /// Structural matching onto a target agent.
    Upgrade,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Create => Strategy::Create,
            StrategyArg::Merge => Strategy::Merge,
            StrategyArg::Upgrade => Strategy::Upgrade,
        }
    }
}

pub(crate) fn id_list(flag: &str, v: Option<&str>) -> Result<Option<Vec<String>>> {
    match v {
        None => Ok(None),
        Some(s) => {
            let ids = archive::split_ids(s);
            if ids.is_empty() {
                bail!("{flag} is empty; an empty selection is an error, not \"everything\"\nhint: leave {flag} out to take everything");
            }
            Ok(Some(ids))
        }
    }
}

/// Write bytes to a file atomically (temporary file beside it, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| Ok(std::io::Write::write_all(w, bytes)?))
}

/// Write a file atomically with `write`, which writes into a buffered
/// temporary file beside it; the file takes its place only once `write`
/// and the flush have succeeded, so a failure leaves the old file (or none).
/// A folder in the file's place is refused before `write` runs.
fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<T>,
) -> Result<T> {
    use std::io::Write;
    if path.is_dir() {
        bail!(
            "cannot write {}: it is a folder\nhint: name a file, e.g. {}",
            path.display(),
            path.join("archive.zip").display()
        );
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let made = write(&mut w)?;
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(w);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(made)
}

/// Run a `ferry zip` command.
pub fn run(cmd: ZipCommand, g: &Global, out: &Output) -> Result<i32> {
    match cmd {
        ZipCommand::Export {
            tenant,
            agent,
            agent_version,
            all,
            selected,
            preview,
            out: file,
            stamp,
        } => {
            let scope = match (agent, all) {
                (Some(a), false) => Scope::Agent(a),
                _ => Scope::All,
            };
            let request = ExportRequest {
                tenant,
                scope,
                agent_version,
                selected: id_list("--selected", selected.as_deref())?,
                file,
                stamp,
            };
            export(g, out, &request, preview)
        }
        ZipCommand::Import {
            file,
            tenant,
            strategy,
            target_agent,
            selected,
            workflow_order,
            preview,
            yes,
            batch,
        } => {
            let (repo, mut store) = open(g)?;
            store.tenant(&tenant)?;
            let actor = super::identity::actor(g, Some(&repo));
            if let Some(batch) = batch {
                if !preview && !yes && !confirm_import(out, &tenant)? {
                    return Ok(EXIT_ERROR);
                }
                return run_batch(
                    Target {
                        store: store.as_mut(),
                        actor: &actor,
                        tenant: &tenant,
                        preview,
                    },
                    out,
                    strategy.into(),
                    &batch,
                );
            }
            let Some(file) = file else {
                bail!("say which ZIP to import, or --batch MAPPINGS.json");
            };
            let opts = ImportOptions {
                strategy: strategy.into(),
                target_agent,
                selected: id_list("--selected", selected.as_deref())?,
                workflow_order: id_list("--workflow-order", workflow_order.as_deref())?,
            };
            if !preview && !yes {
                // Show what the import would do, then ask (a refusal without a terminal comes first).
                if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    print_imported(
                        out,
                        &import_one(
                            Target {
                                store: store.as_mut(),
                                actor: &actor,
                                tenant: &tenant,
                                preview: true,
                            },
                            &file,
                            &opts,
                        )?,
                        false,
                    );
                }
                if !confirm_import(out, &tenant)? {
                    return Ok(EXIT_ERROR);
                }
            }
            let done = import_one(
                Target {
                    store: store.as_mut(),
                    actor: &actor,
                    tenant: &tenant,
                    preview,
                },
                &file,
                &opts,
            )?;
            print_imported(out, &done, false);
            Ok(EXIT_OK)
        }
        ZipCommand::Pack {
            dir,
            out: file,
            stamp,
        } => pack(out, &dir, &file, &stamp),
        ZipCommand::Unpack { file, dir } => unpack(out, &file, &dir),
    }
}

/// What `ferry zip export` was asked for.
struct ExportRequest {
    tenant: String,
    scope: Scope,
    agent_version: Option<u64>,
    selected: Option<Vec<String>>,
    file: Option<PathBuf>,
    stamp: Stamp,
}

/// The resources an export covers: staging, or the agent as published in a version.
fn scoped(store: &dyn Store, actor: &Actor, r: &ExportRequest) -> Result<zip_export::Scoped> {
    Ok(match (&r.scope, r.agent_version.filter(|v| *v > 0)) {
        (Scope::Agent(a), Some(n)) => {
            let model = zip_export::model_at_version(store, actor, &r.tenant, a, n)?;
            zip_export::scope_in(model, &r.tenant, &r.scope)?
        }
        _ => zip_export::scope(store, actor, &r.tenant, &r.scope)?,
    })
}

/// `ferry zip export`: the resource tree with `--preview`, else the ZIP.
fn export(g: &Global, out: &Output, r: &ExportRequest, preview: bool) -> Result<i32> {
    let (repo, store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    if preview {
        let scoped = scoped(store.as_ref(), &actor, r)?;
        print_export_preview(out, &r.tenant, &scoped);
        return Ok(EXIT_OK);
    }
    let Some(file) = &r.file else {
        bail!("say where to write the ZIP: -o FILE");
    };
    let shared = super::serve::repo_tagger(Some(&repo));
    let shared = shared.as_deref().map(|t| t as &(dyn PublishTagger + Sync));
    let tagger = shared.map(|t| t as &dyn PublishTagger);
    let (instance, created_at) = (&r.stamp.instance, &r.stamp.created_at());
    let (manifest, scrubbed, bytes) = match (&r.scope, &r.selected) {
        (Scope::All, None) => {
            let (store, tenant) = (store.as_ref(), &r.tenant);
            let written = write_atomic_with(file, |w| {
                let exported =
                    zip_export::export_all(store, &actor, tenant, instance, created_at, shared, w);
                match exported {
                    Ok((written, _)) => Ok(written),
                    // Only a failed write of the archive is about the file.
                    Err(zip_export::ExportError::Archive(e)) => {
                        Err(anyhow::Error::new(e)
                            .context(format!("cannot write {}", file.display())))
                    }
                    Err(e) => Err(e.into()),
                }
            })?;
            (written.manifest, written.scrubbed, written.bytes)
        }
        _ => {
            let made = zip_export::export_scoped(
                store.as_ref(),
                &r.tenant,
                scoped(store.as_ref(), &actor, r)?,
                r.selected.as_deref(),
                instance,
                created_at,
                tagger,
            )?;
            write_atomic(file, &made.bytes)?;
            (made.manifest, made.scrubbed, made.bytes.len() as u64)
        }
    };
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": r.tenant, "out": file.display().to_string(), "bytes": bytes,
            "counts": manifest.counts, "scrubbed": scrubbed,
        }));
    } else {
        let total: usize = manifest.counts.values().sum();
        out.data(&format!(
            "Exported {total} resources of {} to {} ({bytes} bytes, {scrubbed} credentials scrubbed)",
            r.tenant,
            file.display(),
        ));
    }
    Ok(EXIT_OK)
}

fn print_export_preview(out: &Output, tenant: &str, scoped: &zip_export::Scoped) {
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": tenant, "agent": scoped.agent, "resources": scoped.entries,
        }));
        return;
    }
    for e in &scoped.entries {
        let depth = depth_of(&scoped.entries, e);
        out.data(&format!(
            "{}{} {} ({}){}",
            "  ".repeat(depth),
            e.resource_type,
            e.name,
            e.id,
            if e.required { " required" } else { "" }
        ));
    }
}

/// The tenant a packed tree names in its tenant.toml (empty when none).
fn tenant_of_tree(tree: &MemoryTree) -> String {
    tree.files
        .get(crate::domain::tree::TENANT_FILE)
        .and_then(|b| {
            toml::from_str::<crate::domain::tree::TenantFile>(&String::from_utf8_lossy(b)).ok()
        })
        .map(|t| t.name)
        .unwrap_or_default()
}

/// `ferry zip pack`.
fn pack(out: &Output, dir: &Path, file: &Path, stamp: &Stamp) -> Result<i32> {
    let src = FolderSource::new(dir);
    let mut tree = MemoryTree::default();
    for p in src.list()? {
        tree.files.insert(p.clone(), src.read(&p)?);
    }
    let source = ManifestSource {
        instance: stamp.instance.clone(),
        tenant: tenant_of_tree(&tree),
        commit: None,
        dirty: false,
    };
    let (bytes, rewritten) = archive::pack(&tree, source, &stamp.created_at())?;
    write_atomic(file, &bytes)?;
    if rewritten {
        out.status(&format!("wrote a new manifest.json for {}", dir.display()));
    }
    if out.json() {
        out.json_value(&serde_json::json!({"out": file.display().to_string(), "entries": tree.files.len() + usize::from(!tree.files.contains_key(archive::MANIFEST)), "manifestRewritten": rewritten}));
    } else {
        out.data(&format!(
            "Packed {} into {} ({} bytes)",
            dir.display(),
            file.display(),
            bytes.len()
        ));
    }
    Ok(EXIT_OK)
}

/// `ferry zip unpack`: check the whole archive, then write into a new folder.
fn unpack(out: &Output, file: &Path, dir: &Path) -> Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let read = archive::read_zip(&bytes, &Limits::default())
        .with_context(|| format!("{} refused; nothing was written", file.display()))?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty; unpack into a new folder",
            dir.display()
        );
    }
    for (p, b) in &read.tree.files {
        let dest = dir.join(p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, b).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    if out.json() {
        out.json_value(
            &serde_json::json!({"dir": dir.display().to_string(), "files": read.tree.files.len()}),
        );
    } else {
        out.data(&format!(
            "Unpacked {} files into {}",
            read.tree.files.len(),
            dir.display()
        ));
    }
    Ok(EXIT_OK)
}

/// Ask before an import writes; false (and a status line) when the answer is no.
fn confirm_import(out: &Output, tenant: &str) -> Result<bool> {
    let yes = super::commands::confirm_write(out, "zip import", &format!("Import into {tenant}?"))?;
    if !yes {
        out.status("Nothing imported.");
    }
    Ok(yes)
}

fn depth_of(entries: &[zip_export::ExportEntry], e: &zip_export::ExportEntry) -> usize {
    let mut d = 0;
    let mut cur = e.parent.clone();
    while let Some(p) = cur {
        d += 1;
        if d > 64 {
            break;
        }
        cur = entries
            .iter()
            .find(|x| x.id == p)
            .and_then(|x| x.parent.clone());
    }
    d
}

/// Where imports go: the store, who imports, the tenant, and whether only to preview.
struct Target<'a> {
    store: &'a mut dyn Store,
    actor: &'a Actor,
    tenant: &'a str,
    preview: bool,
}

/// Import one ZIP file through the library's one import sequence.
fn import_one(t: Target<'_>, file: &Path, opts: &ImportOptions) -> Result<Imported> {
    let archive =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    zip_import::import_file(t.store, t.actor, t.tenant, &archive, opts, t.preview).map_err(|e| {
        match e {
            ImportError::Archive(_) | ImportError::Invalid { .. } => anyhow::Error::new(e)
                .context(format!("{} refused; nothing was written", file.display())),
            other => other.into(),
        }
    })
}

/// Print what an import did (or, in preview, would do); `note_preview` adds a hint that nothing was written.
pub(crate) fn print_imported(out: &Output, done: &Imported, note_preview: bool) {
    match done {
        Imported::Preview(p) => {
            print_preview(out, p);
            if note_preview && !out.json() {
                out.hint("nothing was written (--preview)");
            }
        }
        Imported::Result(r) => print_result(out, r),
    }
}

pub(crate) fn print_preview(out: &Output, p: &ImportPreview) {
    if out.json() {
        out.json_value(p);
        return;
    }
    for r in &p.resources {
        let indent = if r.parent.is_some() { "    " } else { "" };
        let reason = r
            .reason
            .as_deref()
            .map(|x| format!("  ({x})"))
            .unwrap_or_default();
        out.data(&format!(
            "{indent}{:<8} {} {}  {} -> {}{reason}",
            format!("{:?}", r.action).to_uppercase(),
            r.resource_type,
            r.name,
            r.origin_id,
            r.local_id
        ));
    }
    for r in &p.removed {
        out.data(&format!(
            "REMOVED  {} {}  {}",
            r.resource_type, r.name, r.local_id
        ));
    }
    for w in &p.warnings {
        out.warn(w);
    }
}

pub(crate) fn print_result(out: &Output, r: &ImportResult) {
    if out.json() {
        out.json_value(r);
    } else {
        out.data(&format!(
            "Imported into {} ({:?}): {} created, {} updated, {} skipped, {} failed",
            r.tenant,
            r.strategy,
            r.created.len(),
            r.updated.len(),
            r.skipped.len(),
            r.failures.len()
        ));
        for f in &r.failures {
            out.data(&format!(
                "  not written: {} {} ({}): {}",
                f.resource_type,
                f.name,
                f.local_id,
                f.reason.as_deref().unwrap_or("")
            ));
        }
        for w in &r.warnings {
            out.warn(w);
        }
    }
    if !r.failures.is_empty() && !out.json() {
        out.hint("a conflict is overwritten only when its id is named in --selected");
    }
}

/// One mapping of a batch file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Mapping {
    file: PathBuf,
    #[serde(default)]
    target_agent: Option<String>,
    #[serde(default)]
    selected: Option<Vec<String>>,
    #[serde(default)]
    workflow_order: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_agent: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<ImportPreview>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ImportResult>,
}

fn run_batch(target: Target<'_>, out: &Output, strategy: Strategy, batch: &Path) -> Result<i32> {
    let Target {
        store,
        actor,
        tenant,
        preview,
    } = target;
    let text = std::fs::read_to_string(batch)
        .with_context(|| format!("cannot read {}", batch.display()))?;
    let mappings: Vec<Mapping> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a list of {{file, targetAgent, selected, workflowOrder}}",
            batch.display()
        )
    })?;
    let base = batch.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut items = Vec::new();
    for m in mappings {
        let path = if m.file.is_absolute() {
            m.file.clone()
        } else {
            base.join(&m.file)
        };
        let mut run = || -> Result<Imported> {
            if m.selected.as_ref().is_some_and(Vec::is_empty) {
                bail!("selected is empty; an empty selection is an error, not \"everything\"");
            }
            let opts = ImportOptions {
                strategy,
                target_agent: m.target_agent.clone(),
                selected: m.selected.clone(),
                workflow_order: m.workflow_order.clone(),
            };
            let t = Target {
                store: &mut *store,
                actor,
                tenant,
                preview,
            };
            import_one(t, &path, &opts)
        };
        let mut item = BatchItem {
            file: m.file.display().to_string(),
            target_agent: m.target_agent.clone(),
            ok: true,
            error: None,
            preview: None,
            result: None,
        };
        match run() {
            Ok(Imported::Preview(p)) => item.preview = Some(p),
            Ok(Imported::Result(r)) => item.result = Some(r),
            Err(e) => {
                item.ok = false;
                item.error = Some(format!("{e:#}"));
            }
        }
        items.push(item);
    }
    let failed = items.iter().filter(|i| !i.ok).count();
    if out.json() {
        out.json_value(&serde_json::json!({"succeeded": items.len() - failed, "failed": failed, "results": items}));
    } else {
        for i in &items {
            match (&i.error, &i.result) {
                (Some(e), _) => out.data(&format!("FAILED  {}: {e}", i.file)),
                (None, Some(r)) => out.data(&format!(
                    "OK      {}: {} created, {} updated, {} skipped, {} not written",
                    i.file,
                    r.created.len(),
                    r.updated.len(),
                    r.skipped.len(),
                    r.failures.len()
                )),
                (None, None) => out.data(&format!("OK      {} (preview)", i.file)),
            }
        }
        out.data(&format!(
            "{} succeeded, {failed} failed",
            items.len() - failed
        ));
    }
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_tree_names_its_tenant_from_tenant_toml() {
        let mut tree = MemoryTree::default();
        assert_eq!(tenant_of_tree(&tree), "");
        tree.files.insert(
            crate::domain::tree::TENANT_FILE.into(),
            b"name = \"acme-dev\"\n".to_vec(),
        );
        assert_eq!(tenant_of_tree(&tree), "acme-dev");
    }

    #[test]
    fn an_empty_selection_is_an_error_not_everything() {
        assert_eq!(id_list("--selected", None).unwrap(), None);
        assert_eq!(
            id_list("--selected", Some("a, b")).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert!(id_list("--selected", Some(" , ")).is_err());
    }

    #[test]
    fn writes_are_atomic_and_create_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/out.zip");
        write_atomic(&file, b"PK").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"PK");
    }

    #[test]
    fn export_preview_depth_follows_parents() {
        let entry = |id: &str, parent: Option<&str>| zip_export::ExportEntry {
            id: id.into(),
            resource_type: "agent".into(),
            name: id.into(),
            parent: parent.map(str::to_string),
            position: None,
            required: false,
        };
        let entries = vec![
            entry("a", None),
            entry("b", Some("a")),
            entry("c", Some("b")),
        ];
        assert_eq!(depth_of(&entries, &entries[2]), 2);
        assert_eq!(depth_of(&entries, &entries[0]), 0);
    }
}
