//! `ferry vars set/list/unset`: a tenant's variables at the edge. The value
//! comes from standard input, never from an argument, and is never printed.

use anyhow::{bail, Result};
use clap::Subcommand;

use super::output::Output;
use super::{Global, EXIT_OK};
use crate::service::vars;

/// `ferry vars …`.
#[derive(Debug, Subcommand)]
pub enum VarsCommand {
    /// Set a variable: the value is read from standard input and stored encrypted to the tenant.
    #[command(
        after_help = "Examples:\n  printf %s \"$CRM_API_KEY\" | ferry vars set --tenant acme-prod CRM_API_KEY"
    )]
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The variable, as in `${vars.NAME}`.
        name: String,
    },
    /// The names set, and the names the tenant's resources use without a value (never a value).
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Remove a variable.
    Unset {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The variable.
        name: String,
    },
}

/// Run one `ferry vars` command.
pub(crate) fn run(g: &Global, out: &Output, command: VarsCommand) -> Result<i32> {
    let (repo, mut store) = super::commands::open(g)?;
    let actor = super::identity::actor(g, Some(&repo));
    match command {
        VarsCommand::Set { tenant, name } => {
            let value = super::commands::secret_from_stdin()?;
            if value.is_empty() {
                bail!("nothing on standard input for `{name}`\nhint: `printf %s \"$VALUE\" | ferry vars set --tenant {tenant} {name}`");
            }
            vars::set(store.as_mut(), &actor, &tenant, &name, &value)?;
            out.status(&format!("Set {name} in {tenant} (stored encrypted)"));
        }
        VarsCommand::Unset { tenant, name } => {
            if vars::unset(store.as_mut(), &actor, &tenant, &name)? {
                out.status(&format!("Unset {name} in {tenant}"));
            } else {
                out.status(&format!("{name} was not set in {tenant}"));
            }
        }
        VarsCommand::List { tenant } => {
            let list = vars::list(store.as_ref(), &actor, &tenant)?;
            if out.json() {
                out.json_value(&serde_json::to_value(&list)?);
            } else {
                let mut lines: Vec<String> = list.set.iter().map(|n| format!("{n}  set")).collect();
                lines.extend(list.missing.iter().map(|n| format!("{n}  missing")));
                if lines.is_empty() {
                    lines.push(format!("{tenant} uses no variables"));
                }
                out.data(&lines.join("\n"));
                if let Some(first) = list.missing.first() {
                    out.hint(&format!(
                        "give it a value: printf %s \"$VALUE\" | ferry vars set --tenant {tenant} {first}"
                    ));
                }
            }
        }
    }
    Ok(EXIT_OK)
}
