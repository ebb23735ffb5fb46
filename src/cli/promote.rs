//! The promotion commands: `ferry promote`, `ferry user …` and `ferry grant`.
//!
//! These functions resolve who is acting once ([`super::identity::actor`])
//! and hand the work to [`crate::service::promote`] and
//! [`crate::service::access`], which check the store's roles.

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;

use super::commands::open;
use super::output::{change_lines, Output, Style};
use super::repo::Repo;
use super::{Global, EXIT_OK};
use crate::backend::store::{Store, StoreError};
use crate::domain::access::Role;
use crate::domain::chain::Chain;
use crate::domain::model::Kind;
use crate::domain::plan::ActionKind;
use crate::domain::tree::folder::write_tree;
use crate::domain::tree::{TenantFile, TENANT_FILE};
use crate::service::access as access_use;
use crate::service::promote::{self, PromoteError, Request};

/// `ferry user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to the store; the first user of a store owns every tenant.
    Add {
        /// The user's name.
        name: String,
    },
    /// List the store's users and their roles.
    List,
}

/// The options of `ferry promote`.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// The source tenant.
    #[arg(long)]
    pub from: String,
    /// The target tenant.
    #[arg(long)]
    pub to: String,
    /// Run one step alone: documents, connections, knowledgeBases, tools, workflows, agents or evaluations.
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    /// Show the plan and change nothing.
    #[arg(long, visible_alias = "preview")]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Write the target tenant's tree to tenants/<TO>/ in the repo instead of the store.
    #[arg(long, conflicts_with = "dry_run")]
    pub write_tree: bool,
    /// The store that holds the target tenant (default: the same store).
    #[arg(long, value_name = "URL")]
    pub to_store: Option<String>,
    /// Promote even against ferry.toml's `[promotion] chain` (backward, or skipping a tenant); the promotion is recorded as against the chain.
    #[arg(long)]
    pub against_chain: bool,
}

/// A store error kept as itself, so the CLI's hints (the closest tenant,
/// `ferry tenant create`) see it.
fn store_hint(e: StoreError) -> anyhow::Error {
    e.into()
}

fn promote_error(e: PromoteError) -> anyhow::Error {
    if let Some(h) = e.hint() {
        return anyhow!("{e}\nhint: {h}");
    }
    match e {
        PromoteError::Store(s) => store_hint(s),
        PromoteError::Apply(crate::service::apply::ApplyError::Store(StoreError::Stale {
            ..
        })) => {
            anyhow!("{e}\nhint: run `ferry promote` again")
        }
        other => anyhow!(other),
    }
}

/// `ferry user add NAME`.
pub fn user_add(g: &Global, out: &Output, name: &str) -> Result<i32> {
    if !crate::domain::model::is_valid_name(name) {
        bail!("user name `{name}` must be lower-case letters, digits, `-`, `_` or `.`");
    }
    let (repo, mut store) = open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    let user = access_use::add_user(store.as_mut(), &actor, name)?;
    if out.json() {
        out.json_value(&user);
    } else if user.owner {
        out.data(&format!(
            "Added user {name}: the first user, owner of every tenant"
        ));
    } else {
        out.data(&format!("Added user {name}"));
        out.hint(&format!(
            "give them a role with `ferry grant {name} TENANT viewer|editor|admin|owner`"
        ));
    }
    Ok(EXIT_OK)
}

/// `ferry user list`.
pub fn user_list(g: &Global, out: &Output) -> Result<i32> {
    let (_repo, store) = open(g)?;
    let state = store.access()?;
    if out.json() {
        out.json_value(&crate::domain::answer::Items::new(state.listing()));
        return Ok(EXIT_OK);
    }
    if state.is_open() {
        out.data("No users: everything is allowed until the first user is added.");
        return Ok(EXIT_OK);
    }
    let mut s = String::new();
    for u in &state.users {
        let mut roles: Vec<String> = state
            .grants
            .iter()
            .filter(|g| g.user == u.name)
            .map(|g| format!("{}={}", g.tenant, g.role))
            .collect();
        if u.owner {
            roles.insert(0, "owner of every tenant".into());
        }
        s.push_str(&format!("{:<20} {}\n", u.name, roles.join(", ")));
    }
    out.data(&s);
    Ok(EXIT_OK)
}

/// `ferry grant USER TENANT ROLE`.
pub fn grant(g: &Global, out: &Output, user: &str, tenant: &str, role: &str) -> Result<i32> {
    let Some(role) = Role::from_name(role) else {
        bail!("unknown role `{role}`: expected viewer, editor, admin or owner");
    };
    let (repo, mut store) = open(g)?;
    store.tenant(tenant).map_err(store_hint)?;
    let actor = super::identity::actor(g, Some(&repo));
    let granted = access_use::grant(store.as_mut(), &actor, user, tenant, role)?;
    if out.json() {
        out.json_value(&granted);
    } else {
        out.data(&format!("Granted {role} on {tenant} to {user}"));
    }
    Ok(EXIT_OK)
}

/// The variables the target's `tenant.toml` in the repo declares, if it has one.
fn declared_variables(repo: &Repo, tenant: &str) -> Result<Option<Vec<String>>> {
    let path = repo.tenant_dir(tenant).join(TENANT_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let tf: TenantFile = toml::from_str(&text)
        .map_err(|e| anyhow!("{}: {}", path.display(), e.to_string().trim()))?;
    Ok(Some(tf.variables))
}

/// The promotion chain of `ferry.toml`, checked.
fn chain_of(repo: &Repo) -> Result<Chain> {
    Chain::new(repo.config.promotion.chain.clone()).map_err(|e| {
        anyhow!(
            "{}: [promotion] chain: {e}\nhint: list each tenant once, in promotion order",
            repo.root.join(super::repo::CONFIG_FILE).display()
        )
    })
}

fn action_symbol(out: &Output, a: ActionKind) -> String {
    let (sym, style) = match a {
        ActionKind::Create => ("+", Style::Green),
        ActionKind::Update => ("~", Style::Yellow),
        ActionKind::Delete => ("-", Style::Red),
        ActionKind::Conflict => ("!", Style::Red),
        ActionKind::Skip => ("=", Style::Dim),
    };
    out.style(style, sym)
}

fn promotion_text(out: &Output, p: &promote::Promotion) -> String {
    let r = promote::report(p);
    let s = &p.plan.summary;
    let mut lines = vec![format!(
        "{} {} → {}{} (revision {}): {} selected, {} to create, {} to update, {} unchanged",
        out.style(Style::Bold, "Promote"),
        out.style(Style::Bold, &r.from),
        out.style(Style::Bold, &r.to),
        r.step.map(|s| format!(", step {s}")).unwrap_or_default(),
        p.plan.base_revision,
        p.mapped.entries.len(),
        s.create,
        s.update,
        s.skip
    )];
    for step in &r.steps {
        lines.push(format!("  {}", step.step));
        for e in &step.resources {
            lines.push(format!(
                "    {} {} {}",
                action_symbol(out, e.action),
                e.kind,
                e.name
            ));
            if let Some(a) = p.plan.actions.iter().find(|a| a.id == e.id) {
                for c in &a.changes {
                    lines.extend(change_lines(out, c, "        "));
                }
            }
        }
    }
    let v = r.versions;
    if v.create + v.update + v.skip > 0 {
        lines.push(format!(
            "  published versions: {} to create, {} to update, {} unchanged",
            v.create, v.update, v.skip
        ));
    }
    if p.mapped.entries.is_empty() {
        lines.push("Nothing to promote.".into());
    } else if !promote::has_changes(p) {
        lines.push("No changes.".into());
    }
    lines.join("\n")
}

/// `ferry promote --from S --to T [--step STEP] [--dry-run] [--write-tree] [--to-store URL]`.
pub fn promote(g: &Global, out: &Output, args: &PromoteArgs) -> Result<i32> {
    let step = match &args.step {
        None => None,
        Some(s) => Some(Kind::from_step(s).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.step()).collect();
            anyhow!(
                "unknown step `{s}`: expected one of {}\nhint: `ferry steps` lists them in order",
                all.join(", ")
            )
        })?),
    };
    let (repo, mut store) = open(g)?;
    let source_url = repo.store_url(g.store.as_deref());
    let mut other: Option<Box<dyn Store>> = match &args.to_store {
        Some(url) if *url != source_url => Some(super::remote::open_url(g, url, &repo.root, None)?),
        _ => None,
    };
    let request = Request {
        from: args.from.clone(),
        to: args.to.clone(),
        step,
        same_store: other.is_none(),
        defined_variables: declared_variables(&repo, &args.to)?,
        chain: chain_of(&repo)?,
        against_chain: args.against_chain,
    };
    let promotion = {
        let target: &dyn Store = other.as_deref().unwrap_or(store.as_ref());
        store.tenant(&args.from).map_err(store_hint)?;
        target.tenant(&args.to).map_err(store_hint)?;
        let actor = super::identity::actor(g, Some(&repo));
        promote::plan_as(store.as_ref(), target, &actor, &request).map_err(promote_error)?
    };
    let report = promote::report(&promotion);
    if !out.json() {
        out.data(&promotion_text(out, &promotion));
        for w in &promotion.plan.warnings {
            out.warn(w);
        }
        if !report.missing_variables.is_empty() {
            out.warn(&format!(
                "{} does not define these variables yet: {}",
                args.to,
                report.missing_variables.join(", ")
            ));
            out.hint(&format!(
                "give each a value: printf %s \"$VALUE\" | ferry vars set --tenant {} {}",
                args.to, report.missing_variables[0]
            ));
        }
    }
    let mut extra = serde_json::Map::new();
    if args.dry_run {
        extra.insert("applied".into(), false.into());
        extra.insert("dryRun".into(), true.into());
    } else if args.write_tree {
        let target: &dyn Store = other.as_deref().unwrap_or(store.as_ref());
        let tree = promote::target_tree(target, &promotion).map_err(promote_error)?;
        let dir = repo.tenant_dir(&args.to);
        let written =
            write_tree(&dir, &tree).map_err(|e| anyhow!("cannot write {}: {e}", dir.display()))?;
        extra.insert("applied".into(), false.into());
        extra.insert("tree".into(), serde_json::to_value(&written)?);
        if !out.json() {
            out.data(&format!(
                "Wrote the promoted tree of {} to {}: {} written, {} removed, {} unchanged",
                args.to,
                repo.tenant_rel(&args.to),
                written.written.len(),
                written.removed.len(),
                written.unchanged
            ));
            out.hint(&format!(
                "review and commit it, then `ferry apply --tenant {}` applies it from git",
                args.to
            ));
        }
    } else if promote::has_changes(&promotion)
        && !args.yes
        && !super::commands::confirm_write(
            out,
            "promote",
            &format!("Promote these changes into {}?", args.to),
        )?
    {
        out.status("Nothing promoted.");
        return Ok(super::EXIT_ERROR);
    } else if promote::has_changes(&promotion) {
        let target: &mut dyn Store = match other.as_mut() {
            Some(o) => o.as_mut(),
            None => store.as_mut(),
        };
        let applied = promote::apply(target, &promotion).map_err(promote_error)?;
        extra.insert("applied".into(), true.into());
        extra.insert("revision".into(), applied.revision.into());
        if !out.json() {
            let s = applied.summary;
            out.data(&format!(
                "Promoted to {} (revision {}): {} created, {} updated, {} unchanged",
                applied.tenant, applied.revision, s.create, s.update, s.skip
            ));
        }
    } else {
        extra.insert("applied".into(), false.into());
    }
    if out.json() {
        let mut v = serde_json::to_value(&report)?;
        if let serde_json::Value::Object(o) = &mut v {
            o.extend(extra);
        }
        out.json_value(&v);
    }
    Ok(EXIT_OK)
}
