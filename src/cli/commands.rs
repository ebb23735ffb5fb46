//! One function per command: parse what the command needs, call the library, print.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::output::{plan_text, Output};
use super::repo::{new_config_text, Repo};
use super::{
    Command, FromArgs, Global, SecretCommand, TenantCommand, EXIT_CHANGES, EXIT_ERROR, EXIT_OK,
};
use crate::backend::store::{self, Store};
use crate::domain::diagnostic::has_errors;
use crate::domain::model::Kind;
use crate::domain::plan::{read_saved, DiffOptions, Plan, SavedPlanError, PLAN_FORMAT};
use crate::domain::tree::folder::{write_tree, FolderSource};
use crate::domain::tree::{TenantFile, TreeSource, TENANT_FILE};
use crate::service::access::Actor;
use crate::service::apply::{self, ApplyOptions};
use crate::service::folder_export;
use crate::service::pipeline::{self, TreePlan};
use crate::service::remote_plan;

/// Dispatch a parsed command.
pub fn run(cmd: Command, g: &Global, out: &Output, frontends: &super::Frontends) -> Result<i32> {
    match cmd {
        Command::Init { dir } => init(dir, out),
        Command::Tenant(TenantCommand::Create {
            name,
            environment,
            force,
        }) => tenant_create(g, out, &name, environment.as_deref(), force),
        Command::Tenant(TenantCommand::List) => tenant_list(g, out),
        Command::Vars(v) => super::vars::run(g, out, v),
        Command::Tenant(TenantCommand::Delete { name, yes, force }) => {
            super::tenant::tenant_delete(g, out, &name, yes, force)
        }
        Command::New(args) => super::scaffold::new_resource(g, out, &args),
        Command::Export {
            tenant,
            out: dir,
            commit,
            message,
            force,
        } => export(g, out, &tenant, dir, commit, message, force),
        Command::Validate { tenant, path } => validate(g, out, tenant, path),
        Command::Plan {
            tenant,
            from,
            prune,
            detailed_exitcode,
            out: save,
        } => plan_cmd(g, out, &tenant, &from, prune, detailed_exitcode, save),
        Command::Apply {
            tenant,
            from,
            prune,
            force,
            yes,
            plan,
        } => apply_cmd(g, out, tenant, &from, prune, force, yes, plan),
        Command::Secret(SecretCommand::Encrypt { tenant }) => secret_encrypt(g, out, &tenant),
        Command::Diff {
            tenant,
            agent,
            revs,
        } => super::git::diff(g, out, tenant, agent, revs),
        Command::Publish {
            tenant,
            agent,
            message,
        } => super::git::publish(g, out, &tenant, agent, &message),
        Command::Publishes { tenant, agent } => super::git::publishes(g, out, &tenant, agent),
        Command::Revert {
            tenant,
            change_id,
            preview,
            write_tree,
            yes,
            force,
        } => super::git::revert(
            g,
            out,
            &tenant,
            &change_id,
            super::git::RevertFlags {
                preview,
                write_tree,
                yes,
                force,
            },
        ),
        Command::Steps => steps(out),
        Command::Schemas { out: dir } => schemas(out, &dir),
        Command::Promote(args) => super::promote::promote(g, out, &args),
        Command::User(super::promote::UserCommand::Add { name }) => {
            super::promote::user_add(g, out, &name)
        }
        Command::User(super::promote::UserCommand::List) => super::promote::user_list(g, out),
        Command::Grant { user, tenant, role } => {
            super::promote::grant(g, out, &user, &tenant, &role)
        }
        Command::Zip(z) => super::zip::run(z, g, out),
        Command::Serve(args) => super::serve::serve(g, out, &args, frontends.serve),
        Command::Token(t) => super::serve::token(g, out, t),
        Command::Store(s) => super::store::run(s, g, out),
        Command::Sync(args) => super::sync::sync(g, out, &args),
        Command::Completions { shell } => super::completions::completions(shell),
        Command::Man => super::completions::man(),
        Command::Demo { keep } => super::demo::run_demo(out, keep, frontends.serve),
    }
}

/// Open the repo and its store.
pub(crate) fn open(g: &Global) -> Result<(Repo, Box<dyn Store>)> {
    let repo = Repo::discover(g.repo.as_deref())?;
    let url = repo.store_url(g.store.as_deref());
    let store = super::remote::open_url(g, &url, &repo.root, fault_hook())?;
    Ok((repo, store))
}

fn init(dir: Option<PathBuf>, out: &Output) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cfg = dir.join(super::repo::CONFIG_FILE);
    if cfg.exists() {
        bail!(
            "{} already exists\nhint: this folder is a config repo already",
            cfg.display()
        );
    }
    std::fs::write(&cfg, new_config_text())?;
    std::fs::create_dir_all(dir.join("tenants"))?;
    std::fs::write(dir.join("tenants").join(".gitkeep"), "")?;
    // The `$schema=` comments of resource files point here from the first commit.
    write_schemas(&dir.join("schemas"))?;
    let gi = dir.join(".gitignore");
    let mut ignore = std::fs::read_to_string(&gi).unwrap_or_default();
    if !ignore.lines().any(|l| l.trim() == ".ferry/") {
        ignore.push_str(".ferry/\n");
        std::fs::write(&gi, ignore)?;
    }
    let created_git = crate::backend::vcs::init_repo(&dir)?;
    if out.json() {
        out.json_value(
            &serde_json::json!({"repo": dir.display().to_string(), "gitInit": created_git}),
        );
    } else {
        out.data(&format!("Initialized config repo in {}", dir.display()));
        out.hint("next: `ferry tenant create acme-dev --environment dev`");
    }
    Ok(EXIT_OK)
}

fn tenant_create(
    g: &Global,
    out: &Output,
    name: &str,
    environment: Option<&str>,
    force: bool,
) -> Result<i32> {
    crate::service::tenants::check_name(name)?;
    let (repo, mut store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    let keys = crate::domain::secrets::generate_keypair();
    let dir = repo.tenant_dir(name);
    let tf_path = dir.join(TENANT_FILE);
    // Read an existing tenant.toml before touching the store, so a broken one changes nothing.
    let existing: Option<TenantFile> = if tf_path.is_file() {
        let text = std::fs::read_to_string(&tf_path)?;
        Some(
            toml::from_str(&text)
                .map_err(|e| anyhow!("{}: {}", tf_path.display(), e.to_string().trim()))?,
        )
    } else {
        None
    };
    if let Some(recipient) = existing.as_ref().and_then(|t| t.recipient.as_deref()) {
        if !force && store.tenant(name).is_err() {
            bail!(super::tenant::foreign_recipient(
                &repo.tenant_rel(name),
                name,
                recipient
            ));
        }
    }
    let record = crate::service::tenants::create(
        store.as_mut(),
        &actor,
        name,
        environment.or(existing.as_ref().and_then(|t| t.environment.as_deref())),
        &keys,
    )?;
    let adopted = existing.is_some();
    let mut tf = existing.unwrap_or_else(|| TenantFile {
        name: name.to_string(),
        ..TenantFile::default()
    });
    tf.name = name.to_string();
    tf.recipient = Some(keys.recipient.clone());
    if let Some(e) = environment {
        tf.environment = Some(e.to_string());
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&tf_path, tf.to_toml())?;
    super::tenant::warn_if_store_committable(out, &repo, &repo.store_url(g.store.as_deref()));
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": record.name,
            "environment": tf.environment,
            "recipient": record.recipient,
            "folder": repo.tenant_rel(name),
            "adopted": adopted,
        }));
    } else {
        out.data(&format!(
            "Created tenant {} ({}){}\n  public key: {}",
            record.name,
            repo.tenant_rel(name),
            if adopted {
                ", adopting the existing folder"
            } else {
                ""
            },
            record.recipient
        ));
        out.hint(&format!(
            "next: `ferry plan --tenant {name}` to see what apply would do"
        ));
    }
    Ok(EXIT_OK)
}

fn tenant_list(g: &Global, out: &Output) -> Result<i32> {
    let (repo, store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    let visible = crate::service::tenants::visible(store.as_ref(), &actor)?;
    if out.json() {
        let items: Vec<store::TenantListing> = visible
            .iter()
            .map(|(t, role)| store::TenantListing {
                tenant: t.clone(),
                folder: Some(repo.tenant_rel(&t.name)),
                role: *role,
            })
            .collect();
        out.json_value(&crate::domain::answer::Items::new(items));
        return Ok(EXIT_OK);
    }
    let tenants: Vec<_> = visible.into_iter().map(|(t, _)| t).collect();
    if tenants.is_empty() {
        out.data("No tenants.");
        if !store.tenants()?.is_empty() {
            out.hint(&format!(
                "`{}` holds no role on the store's tenants; an owner grants one with `ferry grant USER TENANT viewer`",
                actor.recorded()
            ));
        }
    } else {
        let mut s = format!(
            "{:<20} {:<12} {:>9} {:>8}  {:<24} {}\n",
            "TENANT", "ENVIRONMENT", "RESOURCES", "REVISION", "FOLDER", "PUBLIC KEY"
        );
        for t in &tenants {
            s.push_str(&format!(
                "{:<20} {:<12} {:>9} {:>8}  {:<24} {}\n",
                t.name,
                t.environment.as_deref().unwrap_or("-"),
                t.resources,
                t.revision,
                repo.tenant_rel(&t.name),
                t.recipient
            ));
        }
        out.data(&s);
    }
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)]
fn export(
    g: &Global,
    out: &Output,
    tenant: &str,
    dir: Option<PathBuf>,
    commit: bool,
    message: Option<String>,
    force: bool,
) -> Result<i32> {
    let (repo, mut store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    if commit && dir.is_none() {
        let done = super::git::export_changes(&repo, store.as_mut(), &actor, tenant, &message)?;
        if let Some(done) = done {
            super::git::print_changed_export(out, &repo, tenant, &done);
            return Ok(EXIT_OK);
        }
    }
    let spinner = out.spinner("exporting");
    let record = store.tenant(tenant)?;
    let drafts_at = record.revision;
    let dir = dir.unwrap_or_else(|| repo.tenant_dir(tenant));
    // An empty tenant exported over a tree would delete the whole tree (a
    // wrong --store does that): never without --force.
    if record.resources == 0 && !force {
        refuse_emptying(tenant, &dir)?;
    }
    let message = match commit {
        true => Some(super::git::check_commit(&repo, tenant, &dir, message)?),
        false => None,
    };
    let (files, scrubbed, report, committed) = if store.remote().is_some() {
        // The folder is written before the commit: a commit the actor may
        // not make is refused before that.
        if message.is_some() {
            crate::service::gitplan::authorize_commit(store.as_ref(), &actor, tenant)?;
        }
        let (tree, scrubbed, received) =
            crate::service::remote_export::export_tree(store.as_ref(), tenant, &dir)?;
        if let Some(n) = received {
            out.status(&format!(
                "received {n} of {} file(s) from the server; the others are in {} as they are",
                tree.files.len(),
                dir.display()
            ));
        }
        let report =
            write_tree(&dir, &tree).with_context(|| format!("cannot write {}", dir.display()))?;
        let files = tree.files.len();
        let committed = match &message {
            // The tree is handed over: its bytes go as their blobs are written.
            Some(m) => super::git::commit_export(
                &repo,
                store.as_mut(),
                &actor,
                tenant,
                (tree.files, drafts_at),
                m,
            )?,
            None => None,
        };
        (files, scrubbed, report, committed)
    } else {
        let who = super::git::git_identity();
        let commit_as = message.as_deref().map(|m| folder_export::CommitAs {
            root: &repo.root,
            message: m,
            who: who.as_ref(),
        });
        let done = folder_export::export_to_folder(store.as_mut(), &actor, tenant, &dir, commit_as)
            .map_err(|e| super::git::git_error(&repo, e))?;
        (done.files, done.scrubbed, done.report, done.commit)
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": tenant, "out": dir.display().to_string(), "files": files,
            "written": report.written, "removed": report.removed, "unchanged": report.unchanged,
            "commit": committed, "scrubbed": scrubbed,
        }));
    } else {
        if scrubbed > 0 {
            out.warn(&format!(
                "{scrubbed} plain-text credential(s) scrubbed: written as `{}`, the store keeps the values; move them to `${{vars.NAME}}` or `ENC[age,…]`",
                crate::domain::secrets::PLACEHOLDER
            ));
        }
        out.data(&format!(
            "Exported {tenant} to {}: {} files ({} written, {} removed, {} unchanged)",
            dir.display(),
            files,
            report.written.len(),
            report.removed.len(),
            report.unchanged
        ));
        if commit {
            match &committed {
                Some(c) => out.data(&format!("Committed {} as {c}", repo.tenant_rel(tenant))),
                None => out.data("Nothing to commit: HEAD holds this tree already"),
            }
        }
    }
    Ok(EXIT_OK)
}

/// Refuse to export a tenant with no resources over `dir` when it holds
/// resource files (the export would delete them).
fn refuse_emptying(tenant: &str, dir: &Path) -> Result<()> {
    let existing = FolderSource::new(dir).list().unwrap_or_default();
    let resources = existing
        .iter()
        .filter(|p| p.ends_with(".yaml") && p.contains('/'))
        .count();
    if resources > 0 {
        bail!(
            "tenant `{tenant}` has no resources in the store, and exporting it would delete the {resources} resource file(s) in {}\nhint: check --store; pass --force if the tree is meant to be emptied",
            dir.display()
        );
    }
    Ok(())
}

/// The tenant a folder belongs to: its tenant.toml's name, else the folder name.
fn tenant_of_folder(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(TENANT_FILE))
        .ok()
        .and_then(|t| toml::from_str::<TenantFile>(&t).ok())
        .map(|t| t.name)
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

fn validate(
    g: &Global,
    out: &Output,
    tenant: Option<String>,
    path: Option<PathBuf>,
) -> Result<i32> {
    let (name, dir) = match (tenant, path) {
        (Some(t), _) => {
            let repo = Repo::discover(g.repo.as_deref())?;
            let d = repo.tenant_dir(&t);
            (t, d)
        }
        (None, Some(p)) => (tenant_of_folder(&p), p),
        (None, None) => bail!("say what to validate: --tenant T or a tenant folder\nhint: `ferry validate --tenant acme-dev`"),
    };
    let source = FolderSource::new(&dir);
    let repo = Repo::discover(g.repo.as_deref()).ok();
    let store = repo.as_ref().and_then(|r| store_at_hand(g, r));
    let actor = super::identity::actor(g, repo.as_ref());
    let (diags, stats) = pipeline::validate_tree(&name, &source, store.as_deref(), &actor)?;
    let ok = !has_errors(&diags);
    if out.json() {
        out.json_value(&serde_json::json!({
            "tenant": name, "path": dir.display().to_string(), "valid": ok,
            "resources": stats.units, "diagnostics": diags,
        }));
    } else {
        out.diagnostics(&diags);
        if ok {
            out.data(&format!(
                "{}: {} {}, valid",
                dir.display(),
                stats.units,
                if stats.units == 1 {
                    "resource"
                } else {
                    "resources"
                }
            ));
        } else {
            let n = diags.iter().filter(|d| d.is_error()).count();
            let problems = if n == 1 { "problem" } else { "problems" };
            out.status(&format!("{}: {n} {problems} found", dir.display()));
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_ERROR })
}

/// The repo's store, when there is one already (validate never creates one).
fn store_at_hand(g: &Global, repo: &Repo) -> Option<Box<dyn Store>> {
    let url = repo.store_url(g.store.as_deref());
    if let Some(path) = url.strip_prefix("sqlite:") {
        if !repo.root.join(path).is_file() {
            return None;
        }
    }
    store::open(&url, &repo.root)
        .ok()
        .map(|s| s as Box<dyn Store>)
}

/// Read the tree a plan needs and plan it against the store.
pub(crate) fn make_plan(
    repo: &Repo,
    store: &dyn Store,
    actor: &Actor,
    out: &Output,
    tenant: &str,
    from: &FromArgs,
    prune: bool,
) -> Result<TreePlan> {
    store.tenant(tenant)?;
    if let Some(rev) = &from.git_ref {
        return super::git::plan_ref(repo, store, actor, out, tenant, rev, prune);
    }
    let dir = from.from.clone().unwrap_or_else(|| repo.tenant_dir(tenant));
    let source = FolderSource::new(&dir);
    if !dir.is_dir() {
        bail!(
            "tree not found: {}\nhint: `ferry export --tenant {tenant}` writes the store's tree there",
            dir.display()
        );
    }
    let spinner = out.spinner(&format!("reading {}", source.describe()));
    let tp = remote_plan::plan_tree(store, actor, tenant, &source, DiffOptions { prune })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    report_sent(out, &tp);
    Ok(tp)
}

/// Say what a remote store's server was sent to make the plan.
pub(crate) fn report_sent(out: &Output, tp: &TreePlan) {
    if let Some(sent) = tp.sent {
        out.status(&format!(
            "sent the server {} file(s) of {} resource(s) it lacked; it planned the other {} from its store",
            sent.files, sent.units, tp.stats.unchanged
        ));
    }
}

fn report_invalid(out: &Output, tp: &TreePlan) -> Result<i32> {
    if !out.json() {
        out.diagnostics(&tp.diagnostics);
    }
    let n = tp.diagnostics.iter().filter(|d| d.is_error()).count();
    let answer = crate::domain::answer::ErrorAnswer::new(
        "invalid_tree",
        format!("the tree has {n} problem(s); nothing was changed"),
        Some("`ferry validate` lists them".into()),
    )
    .with("valid", false.into())
    .with("diagnostics", serde_json::to_value(&tp.diagnostics)?);
    Err(super::output::Failure::from_answer(answer).into())
}

fn print_plan(out: &Output, plan: &Plan) {
    match out.format {
        super::Format::Json => out.json_value(&plan.report()),
        super::Format::Markdown => out.data(&plan_markdown(plan)),
        super::Format::Text => out.data(&plan_text(out, plan)),
    }
}

/// The hidden first line of a Markdown plan: a CI step finds the pull
/// request's earlier plan comment by it and updates that comment in place.
pub fn plan_marker(tenant: &str) -> String {
    format!("<!-- ferry-plan:{tenant} -->")
}

/// A compact pull-request comment: a summary table and one collapsible
/// section per resource, in the text plan's words; a multi-line field is a
/// line diff (changed lines with a little context), as in the text plan.
pub fn plan_markdown(plan: &Plan) -> String {
    use super::output::{is_multiline, line_diff, show_value, DiffLine};
    let s = &plan.summary;
    let mut md = format!(
        "{}\n### ferry plan for `{}`\n\n| create | update | unchanged | delete | conflict |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n\n",
        plan_marker(&plan.tenant),
        plan.tenant,
        s.create, s.update, s.skip, s.delete, s.conflict
    );
    if let Some(c) = &plan.source_commit {
        md.push_str(&format!("From commit `{c}`.\n\n"));
    }
    if !plan.drift.is_empty() {
        let names: Vec<String> = plan
            .drift
            .iter()
            .map(|d| format!("{} `{}`", d.kind, d.name))
            .collect();
        md.push_str(&format!(
            "> **Drift:** the store changed outside git since the last apply: {}.\n\n",
            names.join(", ")
        ));
    }
    for a in &plan.actions {
        md.push_str(&format!(
            "<details><summary><code>{}</code> {} <b>{}</b></summary>\n\n",
            a.action.word(),
            a.kind,
            a.name
        ));
        if let Some(r) = &a.reason {
            md.push_str(&format!("{r}\n\n"));
        }
        for c in &a.changes {
            let (before, after) = (show_value(&c.shown_before()), show_value(&c.shown_after()));
            if !is_multiline(c) {
                md.push_str(&format!("`{}`: `{before}` → `{after}`\n\n", c.path));
                continue;
            }
            md.push_str(&format!("`{}`\n\n```diff\n", c.path));
            for l in line_diff(&before, &after) {
                md.push_str(&match l {
                    DiffLine::Removed(t) => format!("- {t}\n"),
                    DiffLine::Added(t) => format!("+ {t}\n"),
                    DiffLine::Same(t) => format!("  {t}\n"),
                    DiffLine::Gap => "  …\n".to_string(),
                });
            }
            md.push_str("```\n\n");
        }
        md.push_str("</details>\n\n");
    }
    if !plan.has_changes() {
        md.push_str("No changes.\n");
    }
    md
}

#[allow(clippy::too_many_arguments)]
fn plan_cmd(
    g: &Global,
    out: &Output,
    tenant: &str,
    from: &FromArgs,
    prune: bool,
    detailed: bool,
    save: Option<PathBuf>,
) -> Result<i32> {
    let (repo, store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    let tp = make_plan(&repo, store.as_ref(), &actor, out, tenant, from, prune)?;
    let Some(plan) = &tp.plan else {
        return report_invalid(out, &tp);
    };
    if out.format == super::Format::Text {
        out.diagnostics(&tp.diagnostics);
    }
    print_plan(out, plan);
    if prune
        && apply::is_mass_delete(
            plan.summary.delete,
            plan.summary.skip + plan.summary.update + plan.summary.delete + plan.summary.conflict,
        )
    {
        out.warn("this prune deletes more than half of the tenant; apply will need --force");
    }
    if let Some(path) = save {
        let mut v = serde_json::to_value(plan.with_payloads())?;
        if let serde_json::Value::Object(o) = &mut v {
            o.insert(
                "format".into(),
                serde_json::Value::String(PLAN_FORMAT.into()),
            );
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.status(&format!("Saved the plan to {}", path.display()));
        out.hint(&format!(
            "apply it with `ferry apply --plan {}`",
            path.display()
        ));
    }
    Ok(if detailed && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

fn load_saved_plan(path: &Path) -> Result<Plan> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    read_saved(&bytes).map_err(|e| match e {
        SavedPlanError::NotAPlan => anyhow!(
            "{}: {e}\nhint: save one with `ferry plan --out FILE`",
            path.display()
        ),
        other => anyhow!("{}: {other}", path.display()),
    })
}

/// The fault-injection hook used by tests: abort the process after N writes.
/// The crash test's fault: abort the process after this many writes of an apply.
fn fault_hook() -> Option<store::WriteFault> {
    std::env::var("FERRY_TEST_ABORT_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(store::WriteFault::AbortAfter)
}

fn confirm(out: &Output, question: &str) -> Result<bool> {
    confirm_write(out, "apply", question)
}

/// Ask `question` on the terminal before `command` writes; without a
/// terminal, refuse (the caller passes `--yes` to skip the question).
pub(crate) fn confirm_write(out: &Output, command: &str, question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{command} needs confirmation, and standard input is not a terminal\nhint: pass --yes to {command} without asking");
    }
    out.status(&format!("{question} [y/N] "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[allow(clippy::too_many_arguments)]
fn apply_cmd(
    g: &Global,
    out: &Output,
    tenant: Option<String>,
    from: &FromArgs,
    prune: bool,
    force: bool,
    yes: bool,
    saved: Option<PathBuf>,
) -> Result<i32> {
    let (repo, mut store) = open(g)?;
    super::tenant::warn_if_store_committable(out, &repo, &repo.store_url(g.store.as_deref()));
    let actor = super::identity::actor(g, Some(&repo));
    let plan = match &saved {
        Some(path) => {
            let p = load_saved_plan(path)?;
            apply::authorize_apply(store.as_ref(), &actor, &p.tenant)?;
            if let Some(t) = &tenant {
                if *t != p.tenant {
                    bail!(
                        "{} is a plan for tenant `{}`, not `{t}`",
                        path.display(),
                        p.tenant
                    );
                }
            }
            p
        }
        None => {
            let tenant = tenant.clone().unwrap_or_default();
            // A role that may not apply is refused before the tree is read.
            if store.tenant(&tenant).is_ok() {
                apply::authorize_apply(store.as_ref(), &actor, &tenant)?;
            }
            let tp = make_plan(&repo, store.as_ref(), &actor, out, &tenant, from, prune)?;
            match tp.plan {
                Some(p) => {
                    if out.format == super::Format::Text {
                        out.diagnostics(&tp.diagnostics);
                    }
                    p
                }
                None => return report_invalid(out, &tp),
            }
        }
    };
    if !out.json() {
        out.data(&plan_text(out, &plan));
    }
    if !plan.has_changes() && plan.refresh.is_empty() && plan.source_commit.is_none() {
        if out.json() {
            out.json_value(&serde_json::json!({"tenant": plan.tenant, "applied": false, "revision": plan.base_revision, "summary": plan.summary}));
        }
        return Ok(EXIT_OK);
    }
    if plan.has_changes()
        && !yes
        && !confirm(out, &format!("Apply these changes to {}?", plan.tenant))?
    {
        out.status("Nothing applied.");
        return Ok(EXIT_ERROR);
    }
    let options = ApplyOptions { force };
    let report = apply::apply_as(store.as_mut(), &actor, &plan, options).map_err(|e| match e {
        apply::ApplyError::MassDelete { .. } => {
            anyhow!("{e}\nhint: check the tree is complete; pass --force if the deletes are meant")
        }
        apply::ApplyError::Store(store::StoreError::Stale { .. }) => {
            anyhow!("{e}\nhint: run `ferry plan` again")
        }
        other => anyhow!(other),
    })?;
    if out.json() {
        out.json_value(&serde_json::json!({"tenant": report.tenant, "applied": true, "revision": report.revision, "summary": report.summary}));
    } else {
        let s = report.summary;
        out.data(&format!(
            "Applied to {} (revision {}): {} created, {} updated, {} deleted, {} unchanged",
            report.tenant, report.revision, s.create, s.update, s.delete, s.skip
        ));
    }
    Ok(EXIT_OK)
}

/// A secret value from standard input, without its trailing line break.
pub(crate) fn secret_from_stdin() -> Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    while input.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        input.pop();
    }
    Ok(input)
}

fn secret_encrypt(g: &Global, out: &Output, tenant: &str) -> Result<i32> {
    let (_repo, store) = open(g)?;
    let record = store.tenant(tenant)?;
    let input = secret_from_stdin()?;
    if input.is_empty() {
        bail!("nothing on standard input to encrypt\nhint: `printf %s \"$VALUE\" | ferry secret encrypt --tenant {tenant}`");
    }
    let enc = crate::domain::secrets::encrypt(&record.recipient, &input)?;
    if out.json() {
        out.json_value(&serde_json::json!({"tenant": tenant, "value": enc}));
    } else {
        out.data(&enc);
    }
    Ok(EXIT_OK)
}

fn steps(out: &Output) -> Result<i32> {
    let steps: Vec<&str> = Kind::ALL.iter().map(|k| k.step()).collect();
    if out.json() {
        out.json_value(&crate::domain::answer::Items::new(steps));
    } else {
        for (i, s) in steps.iter().enumerate() {
            out.data(&format!("{}. {s}", i + 1));
        }
    }
    Ok(EXIT_OK)
}

/// Write the JSON Schema of every kind into `dir`; returns how many.
fn write_schemas(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = crate::domain::schema::generate();
    for (name, text) in &files {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(files.len())
}

fn schemas(out: &Output, dir: &Path) -> Result<i32> {
    let n = write_schemas(dir)?;
    out.data(&format!("Wrote {n} schemas to {}", dir.display()));
    Ok(EXIT_OK)
}
