//! `ferry demo`: the whole story, end to end, in a temporary folder, narrated.
//!
//! The demo drives the same command functions a user runs, against the
//! `fixtures/acme` config repo embedded in the binary.

use std::path::Path;

use anyhow::{Context, Result};

use super::commands::run;
use super::{Command, FromArgs, Global, Output, TenantCommand, EXIT_OK};

include!(concat!(env!("OUT_DIR"), "/acme_fixture.rs"));

fn say(out: &Output, text: &str) {
    out.status("");
    out.status(&format!("== {text}"));
}

fn show(out: &Output, cmd: &str) {
    out.status(&format!("$ ferry {cmd}"));
}

/// Run the demo.
pub fn run_demo(out: &Output, keep: bool) -> Result<i32> {
    let tmp = tempfile::Builder::new().prefix("ferry-demo-").tempdir()?;
    let repo = tmp.path().join("acme-config");
    let g = Global {
        repo: Some(repo.clone()),
        store: None,
        output: super::Format::Text,
        actor: Some("demo".into()),
    };
    say(
        out,
        "A new config repo: ferry.toml, tenants/, .gitignore and a git repository.",
    );
    show(out, &format!("init {}", repo.display()));
    run(
        Command::Init {
            dir: Some(repo.clone()),
        },
        &g,
        out,
    )?;

    say(out, "The acme-dev tenant's tree: agents, tools, connections, knowledge bases, documents, workflows and evaluations as YAML.");
    let mut count = 0;
    for (rel, bytes) in ACME_FIXTURE {
        if let Some(rest) = rel.strip_prefix("tenants/") {
            let dest = repo.join("tenants").join(rest);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&dest, bytes)?;
            if rest.ends_with(".yaml") {
                count += 1;
            }
        }
    }
    out.status(&format!(
        "   copied {count} resource files into tenants/acme-dev/"
    ));

    say(out, "Create the tenant in the store. It adopts the folder and gets an age key pair: the private key stays in the store, the public key goes to tenant.toml.");
    show(out, "tenant create acme-dev --environment dev");
    run(
        Command::Tenant(TenantCommand::Create {
            name: "acme-dev".into(),
            environment: Some("dev".into()),
        }),
        &g,
        out,
    )?;

    say(
        out,
        "Validate: schema, references, cycles and secrets, every problem at once.",
    );
    show(out, "validate --tenant acme-dev");
    run(
        Command::Validate {
            tenant: Some("acme-dev".into()),
            path: None,
        },
        &g,
        out,
    )?;

    say(out, "Plan: what apply would do. Everything is new.");
    show(out, "plan --tenant acme-dev");
    plan(&g, out)?;

    say(out, "Apply, in one transaction.");
    show(out, "apply --tenant acme-dev --yes");
    apply(&g, out)?;

    say(
        out,
        "Apply again: content hashes decide, so nothing changes.",
    );
    show(out, "plan --tenant acme-dev");
    plan(&g, out)?;

    say(
        out,
        "Edit one line of support-bot's instructions, as a pull request would.",
    );
    let agent = repo.join("tenants/acme-dev/agents/support-bot.yaml");
    edit_instructions(&agent)?;
    out.status("   tenants/acme-dev/agents/support-bot.yaml: one instruction line changed");
    show(out, "plan --tenant acme-dev");
    plan(&g, out)?;

    say(out, "Apply the one change.");
    show(out, "apply --tenant acme-dev --yes");
    apply(&g, out)?;

    say(
        out,
        "Export the store back to the tree: byte for byte what is in git.",
    );
    show(out, "export --tenant acme-dev");
    run(
        Command::Export {
            tenant: "acme-dev".into(),
            out: None,
            commit: false,
            message: None,
        },
        &g,
        out,
    )?;

    say(out, "Done.");
    if keep {
        let kept = tmp.keep();
        out.status(&format!(
            "The demo repo is kept at {}",
            kept.join("acme-config").display()
        ));
    }
    Ok(EXIT_OK)
}

fn plan(g: &Global, out: &Output) -> Result<i32> {
    run(
        Command::Plan {
            tenant: "acme-dev".into(),
            from: FromArgs::default(),
            prune: false,
            detailed_exitcode: false,
            out: None,
        },
        g,
        out,
    )
}

fn apply(g: &Global, out: &Output) -> Result<i32> {
    run(
        Command::Apply {
            tenant: Some("acme-dev".into()),
            from: FromArgs::default(),
            prune: false,
            force: false,
            yes: true,
            plan: None,
        },
        g,
        out,
    )
}

fn edit_instructions(path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("instructions: |"))
        .context("support-bot has no instructions block")?;
    if let Some(l) = lines.get_mut(start + 1) {
        l.push_str(" Always answer in the customer's language.");
    }
    let mut new = lines.join("\n");
    new.push('\n');
    std::fs::write(path, new)?;
    Ok(())
}
