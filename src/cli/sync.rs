//! `ferry sync`: live agent sync from another ferry instance into a tenant
//! of the local store, the command-line twin of `POST /backup/import/sync`.
//!
//! The use case is [`crate::service::live_sync`], the server's too: the
//! source URL goes through the SSRF check (the `[sync]` table of
//! `--config`, strict by default), the agent comes over as the source's ZIP
//! export, and the import is [`crate::service::zip_import::import_bytes`],
//! as for `ferry zip import --strategy upgrade`. Without `--agent` it lists
//! the source's agents. Every form needs the editor role on the tenant.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::commands::open;
use super::zip::{id_list, print_imported};
use super::{Global, Output, EXIT_OK};
use crate::backend::sync_config::{self, ServerConfig};
use crate::service::live_sync;
use crate::service::zip_import;

/// The options of `ferry sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// The local tenant to sync into.
    #[arg(long)]
    pub tenant: String,
    /// The source instance's base URL.
    #[arg(long, value_name = "URL")]
    pub source_url: String,
    /// A bearer token of the source instance (sent as `Authorization: Bearer`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FERRY_SOURCE_TOKEN",
        hide_env_values = true
    )]
    pub source_token: Option<String>,
    /// The source agent's ID; without it, list the source's agents.
    #[arg(long)]
    pub agent: Option<String>,
    /// The source agent's published version (default: its staging state).
    #[arg(long)]
    pub agent_version: Option<u64>,
    /// The local agent to upgrade (name or ID); default: the one that came from the source agent, else a new one.
    #[arg(long)]
    pub target_agent: Option<String>,
    /// Show what would change; write nothing.
    #[arg(long, visible_alias = "dry-run")]
    pub preview: bool,
    /// Only these resources (comma-separated IDs); names a conflict to overwrite it.
    #[arg(long, value_name = "ID,...")]
    pub selected: Option<String>,
    /// Workflows to put first in the agent's list (comma-separated).
    #[arg(long, value_name = "ID,...")]
    pub workflow_order: Option<String>,
    /// The `[sync]` source rules (TOML, as for `ferry serve --config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `ferry sync`.
pub fn sync(g: &Global, out: &Output, args: &SyncArgs) -> Result<i32> {
    let cfg: ServerConfig = match &args.config {
        Some(p) => sync_config::load(p)?,
        None => ServerConfig::default(),
    };
    let (repo, mut store) = open(g)?;
    store.tenant(&args.tenant)?;
    let actor = super::identity::actor(g, Some(&repo));
    live_sync::authorize_sync(store.as_ref(), &actor, &args.tenant)?;
    let auth = args.source_token.as_ref().map(|t| format!("Bearer {t}"));
    let client = live_sync::connect(&args.source_url, &cfg.sync, auth)?;
    let Some(agent) = &args.agent else {
        let agents = live_sync::list_agents(&client)?;
        if out.json() {
            out.json_value(&agents);
        } else {
            // The source answers `{"items": [...]}`, as `GET /api/v2/agents` does.
            let items = agents.get("items").unwrap_or(&agents);
            for a in items.as_array().into_iter().flatten() {
                out.data(&format!(
                    "{}  {}  published: {}",
                    a["id"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or(""),
                    a["publishedVersion"]
                ));
            }
            out.hint("sync one with --agent ID");
        }
        return Ok(EXIT_OK);
    };
    let opts = live_sync::sync_options(
        args.target_agent.clone(),
        id_list("--selected", args.selected.as_deref())?,
        id_list("--workflow-order", args.workflow_order.as_deref())?,
    );
    let spinner = out.spinner(&format!("reading {agent} from {}", args.source_url));
    let bytes = live_sync::fetch_agent(&client, agent, args.agent_version);
    drop(spinner);
    let bytes = bytes?;
    let done = zip_import::import_bytes(
        store.as_mut(),
        &actor,
        &args.tenant,
        &bytes,
        &opts,
        args.preview,
        None,
    )?;
    print_imported(out, &done, args.preview);
    Ok(EXIT_OK)
}
