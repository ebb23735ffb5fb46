//! `ferry store migrate` and `ferry store status`: the store's schema and contents, for either back end.
//!
//! Both open the store the way every command does (`--store`, `FERRY_STORE`,
//! `ferry.toml`, or the repo's SQLite file), which runs the migrations the
//! store lacks; `migrate` says which versions it went from and to, `status`
//! prints the schema version, the tenant count and the resources per tenant.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::{Global, Output, EXIT_OK};
use crate::backend::store::{self, SchemaState};

/// `ferry store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Bring the store's schema up to date (opening a store does this too) and say what changed.
    Migrate,
    /// The store's back end, schema version, tenants and resources per tenant.
    Status,
    /// Copy every tenant (keys, drafts, versions, publish log, sync records) and the users, grants and token hashes to another store, then check it.
    Copy {
        /// The source store URL (`sqlite:PATH` or `postgres://…`).
        #[arg(long)]
        from: String,
        /// The target store URL.
        #[arg(long)]
        to: String,
        /// Replace tenants the target already holds.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Serialize)]
struct TenantCount {
    tenant: String,
    resources: u64,
    revision: u64,
}

#[derive(Serialize)]
struct Status {
    #[serde(flatten)]
    schema: SchemaState,
    tenants: Vec<TenantCount>,
}

/// Run a `ferry store` command.
pub fn run(cmd: StoreCommand, g: &Global, out: &Output) -> Result<i32> {
    if let StoreCommand::Copy { from, to, force } = &cmd {
        return copy(out, from, to, *force);
    }
    let (_repo, url, base) = super::serve::store_location(g)?;
    let (store, schema) = store::open_migrated(&url, &base)?;
    match cmd {
        StoreCommand::Migrate => {
            if out.json() {
                out.json_value(&schema);
            } else if schema.from == schema.version {
                out.data(&format!(
                    "{} store schema is at version {}; nothing to migrate",
                    schema.back_end, schema.version
                ));
            } else {
                out.data(&format!(
                    "{} store schema migrated from version {} to {}",
                    schema.back_end, schema.from, schema.version
                ));
            }
        }
        StoreCommand::Copy { .. } => {}
        StoreCommand::Status => {
            let tenants = store
                .tenants()?
                .into_iter()
                .map(|t| TenantCount {
                    tenant: t.name,
                    resources: t.resources,
                    revision: t.revision,
                })
                .collect::<Vec<_>>();
            if out.json() {
                out.json_value(&Status { schema, tenants });
            } else {
                out.data(&format!("back end:       {}", schema.back_end));
                out.data(&format!("schema version: {}", schema.version));
                out.data(&format!("tenants:        {}", tenants.len()));
                for t in &tenants {
                    out.data(&format!(
                        "  {:<20} {:>6} resources  revision {}",
                        t.tenant, t.resources, t.revision
                    ));
                }
            }
        }
    }
    Ok(EXIT_OK)
}

/// `ferry store copy`: relative `sqlite:` paths are taken from the current folder.
fn copy(out: &Output, from: &str, to: &str, force: bool) -> Result<i32> {
    if from == to {
        anyhow::bail!("--from and --to name the same store `{from}`");
    }
    let base = std::env::current_dir()?;
    let source = store::open_image(from, &base)?;
    let mut target = store::open_image(to, &base)?;
    let report = crate::service::store_copy::copy(source.as_ref(), target.as_mut(), force)?;
    if out.json() {
        out.json_value(&report);
        return Ok(EXIT_OK);
    }
    out.data(&format!(
        "copied {} tenant(s): {}",
        report.tenants.len(),
        report.tenants.join(", ")
    ));
    for t in &report.tables {
        out.data(&format!(
            "  {:<18} {:>7} rows  blake3 {}",
            t.table, t.rows, t.blake3
        ));
    }
    out.status("ferry: the target reads back the same rows and hashes");
    Ok(EXIT_OK)
}
