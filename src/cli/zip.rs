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
use crate::domain::tree::folder::FolderSource;
use crate::domain::tree::{MemoryTree, TreeSource};
use crate::service::zip_export::{self, Scope};
use crate::service::zip_import::{self, ImportOptions, ImportPreview, ImportResult, Strategy};

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
        #[arg(long)]
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
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
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
            let (_, store) = open(g)?;
            let scope = match (agent, all) {
                (Some(a), false) => Scope::Agent(a),
                _ => Scope::All,
            };
            let selected = id_list("--selected", selected.as_deref())?;
            let scoped = match (&scope, agent_version.filter(|v| *v > 0)) {
                (Scope::Agent(a), Some(n)) => {
                    let model = zip_export::model_at_version(store.as_ref(), &tenant, a, n)?;
                    zip_export::scope_in(model, &tenant, &scope)?
                }
                _ => zip_export::scope(store.as_ref(), &tenant, &scope)?,
            };
            if preview {
                if out.json() {
                    out.json_value(&serde_json::json!({
                        "tenant": tenant, "agent": scoped.agent, "resources": scoped.entries,
                    }));
                } else {
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
                return Ok(EXIT_OK);
            }
            let Some(file) = file else {
                bail!("say where to write the ZIP: -o FILE");
            };
            let made = zip_export::export_scoped(
                store.as_ref(),
                &tenant,
                scoped,
                selected.as_deref(),
                &stamp.instance,
                &stamp.created_at(),
            )?;
            write_atomic(&file, &made.bytes)?;
            if out.json() {
                out.json_value(&serde_json::json!({
                    "tenant": tenant, "out": file.display().to_string(), "bytes": made.bytes.len(),
                    "counts": made.manifest.counts, "scrubbed": made.scrubbed,
                }));
            } else {
                let total: usize = made.manifest.counts.values().sum();
                out.data(&format!(
                    "Exported {total} resources of {tenant} to {} ({} bytes, {} credentials scrubbed)",
                    file.display(),
                    made.bytes.len(),
                    made.scrubbed
                ));
            }
            Ok(EXIT_OK)
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
            let (_, mut store) = open(g)?;
            store.tenant(&tenant)?;
            if let Some(batch) = batch {
                if !preview && !yes && !confirm_import(out, &tenant)? {
                    return Ok(EXIT_ERROR);
                }
                return run_batch(
                    store.as_mut(),
                    out,
                    &tenant,
                    strategy.into(),
                    &batch,
                    preview,
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
                    if let Done::Preview(p) =
                        import_one(store.as_mut(), &tenant, &file, &opts, true)?
                    {
                        print_preview(out, &p);
                    }
                }
                if !confirm_import(out, &tenant)? {
                    return Ok(EXIT_ERROR);
                }
            }
            match import_one(store.as_mut(), &tenant, &file, &opts, preview)? {
                Done::Preview(p) => print_preview(out, &p),
                Done::Result(r) => print_result(out, &r),
            }
            Ok(EXIT_OK)
        }
        ZipCommand::Pack {
            dir,
            out: file,
            stamp,
        } => {
            let src = FolderSource::new(&dir);
            let mut tree = MemoryTree::default();
            for p in src.list()? {
                tree.files.insert(p.clone(), src.read(&p)?);
            }
            let tenant = tree
                .files
                .get(crate::domain::tree::TENANT_FILE)
                .and_then(|b| {
                    toml::from_str::<crate::domain::tree::TenantFile>(&String::from_utf8_lossy(b))
                        .ok()
                })
                .map(|t| t.name)
                .unwrap_or_default();
            let source = ManifestSource {
                instance: stamp.instance.clone(),
                tenant,
                commit: None,
            };
            let (bytes, rewritten) = archive::pack(&tree, source, &stamp.created_at())?;
            write_atomic(&file, &bytes)?;
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
        ZipCommand::Unpack { file, dir } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let read = archive::read_zip(&bytes, &Limits::default())
                .with_context(|| format!("{} refused; nothing was written", file.display()))?;
            if dir.exists()
                && std::fs::read_dir(&dir)
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
                std::fs::write(&dest, b)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
            }
            if out.json() {
                out.json_value(&serde_json::json!({"dir": dir.display().to_string(), "files": read.tree.files.len()}));
            } else {
                out.data(&format!(
                    "Unpacked {} files into {}",
                    read.tree.files.len(),
                    dir.display()
                ));
            }
            Ok(EXIT_OK)
        }
    }
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

enum Done {
    Preview(ImportPreview),
    Result(ImportResult),
}

fn import_one(
    store: &mut dyn Store,
    tenant: &str,
    file: &Path,
    opts: &ImportOptions,
    preview: bool,
) -> Result<Done> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let read = archive::read_zip(&bytes, &Limits::default())
        .with_context(|| format!("{} refused; nothing was written", file.display()))?;
    let decoded = zip_import::decode(&read)
        .with_context(|| format!("{} refused; nothing was written", file.display()))?;
    let plan = zip_import::plan(&*store, tenant, &decoded, opts)?;
    if preview {
        return Ok(Done::Preview(plan.preview));
    }
    Ok(Done::Result(zip_import::execute(store, &plan)?))
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

fn run_batch(
    store: &mut dyn Store,
    out: &Output,
    tenant: &str,
    strategy: Strategy,
    batch: &Path,
    preview: bool,
) -> Result<i32> {
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
        let mut run = || -> Result<Done> {
            if m.selected.as_ref().is_some_and(Vec::is_empty) {
                bail!("selected is empty; an empty selection is an error, not \"everything\"");
            }
            let opts = ImportOptions {
                strategy,
                target_agent: m.target_agent.clone(),
                selected: m.selected.clone(),
                workflow_order: m.workflow_order.clone(),
            };
            import_one(store, tenant, &path, &opts, preview)
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
            Ok(Done::Preview(p)) => item.preview = Some(p),
            Ok(Done::Result(r)) => item.result = Some(r),
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
