//! `ferry serve` and `ferry token create/list/revoke`: the CLI side of the HTTP server.
//!
//! `serve` opens the store (from the repo, or `--store` anywhere), reads the
//! `--config` TOML file, and hands both (with a git publish tagger when the
//! repo is a git repository) to the server's entry point, which the
//! composition root passed in as a [`ServeFn`]. It prints
//! the address it listens on to stderr, and the server logs one JSON line
//! per request there too. `token create` prints the new token, and nothing
//! else, on stdout; `token list` shows IDs, never a token.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};

use super::repo::Repo;
use super::{Global, Output, EXIT_OK};
use crate::backend::store::{self, Store};
use crate::backend::sync_config::{self, ServerConfig};
use crate::backend::vcs;
use crate::domain::tagging::PublishTagger;
use crate::service::access;
use crate::service::serving::{ServeFn, ServeRequest};

/// The options of `ferry serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// The server configuration (TOML; its [sync] table sets the live-sync source rules).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `ferry token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for a user; prints it once on stdout. The store keeps only its hash.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// The token's current tenant (the source tenant of a sync).
        #[arg(long)]
        tenant: Option<String>,
        /// Let the token expire after this long: a number and s, m, h, d or w (`12h`, `30d`).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// The tokens you may manage (yours; a tenant's as its owner; all as a store owner):
    /// ID, user, tenant, creation, last use, expiry and status. Never a token.
    List,
    /// Revoke a token by its ID (from `ferry token list`); its next request gets 401.
    Revoke {
        /// The token's ID, `tok_…`.
        id: String,
    },
}

/// Where the server's store is: the repo's, or `--store` from anywhere (URL and base folder).
pub(crate) fn store_location(g: &Global) -> Result<(Option<Repo>, String, PathBuf)> {
    match Repo::discover(g.repo.as_deref()) {
        Ok(repo) => {
            let url = repo.store_url(g.store.as_deref());
            let base = repo.root.clone();
            Ok((Some(repo), url, base))
        }
        Err(e) => match &g.store {
            Some(url) => {
                let cwd = std::env::current_dir().context("cannot read the current folder")?;
                Ok((None, url.clone(), cwd))
            }
            None => Err(e.context("ferry serve needs a config repo or --store URL")),
        },
    }
}

/// Open the store for the server.
fn open_store(g: &Global) -> Result<(Option<Repo>, Box<dyn Store + Send>)> {
    let (repo, url, base) = store_location(g)?;
    Ok((repo, super::remote::open_url(g, &url, &base, None)?))
}

/// The publish tagger of the repo the server runs in, if it is a git repository.
pub(crate) fn repo_tagger(repo: Option<&Repo>) -> Option<Box<dyn PublishTagger + Send + Sync>> {
    let root = repo?.root.clone();
    vcs::is_repo(&root).then(|| {
        Box::new(vcs::GitTagger {
            root,
            identity: super::git::git_identity(),
        }) as Box<dyn PublishTagger + Send + Sync>
    })
}

/// The store contract's test of one-transaction writes through a server:
/// its write connection fails after this many rows of a batch.
fn write_fault() -> Option<store::WriteFault> {
    std::env::var("FERRY_TEST_FAIL_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(store::WriteFault::FailAfter)
}

/// `ferry serve`.
pub fn serve(g: &Global, out: &Output, args: &ServeArgs, serve: ServeFn) -> Result<i32> {
    let config = match &args.config {
        Some(path) => sync_config::load(path)?,
        None => ServerConfig::default(),
    };
    let (repo, url, base) = store_location(g)?;
    let store = store::open_with_fault(&url, &base, write_fault())?;
    // One read connection per core: reads run beside each other and the writer.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let readers = (0..cores.max(2))
        .map(|_| store::open(&url, &base))
        .collect::<Result<Vec<_>, _>>()?;
    serve(ServeRequest {
        store,
        readers,
        config,
        tagger: repo_tagger(repo.as_ref()),
        addr: args.addr.clone(),
        on_listen: Box::new(|addr| out.status(&format!("ferry: listening on http://{addr}"))),
        shutdown: None,
        request_log: None,
    })
    .map_err(|e| anyhow!(e))?;
    out.status("ferry: stopped");
    Ok(EXIT_OK)
}

/// `ferry token …`.
pub fn token(g: &Global, out: &Output, cmd: TokenCommand) -> Result<i32> {
    let (repo, mut store) = open_store(g)?;
    let actor = super::identity::actor(g, repo.as_ref());
    match cmd {
        TokenCommand::Create {
            user,
            tenant,
            expires,
        } => {
            let new = access::create_token(
                store.as_mut(),
                &actor,
                &user,
                tenant.as_deref(),
                expires.as_deref(),
            )?;
            out.data(&new.token);
            if !out.json() {
                let expiry = new
                    .record
                    .expires_at
                    .as_deref()
                    .map_or("never expires".to_string(), |e| format!("expires {e}"));
                out.status(&format!("token {} for {user}, {expiry}", new.record.id));
                out.hint("the token is shown once; send it as `Authorization: Bearer <token>`");
            }
        }
        TokenCommand::List => {
            let list = access::tokens(store.as_ref(), &actor)?;
            if out.json() {
                out.json_value(&crate::domain::answer::Items::new(list));
            } else {
                out.data(&token_table(&list));
            }
        }
        TokenCommand::Revoke { id } => {
            let record = access::revoke_token(store.as_mut(), &actor, &id)?;
            if out.json() {
                out.json_value(&record);
            } else {
                out.data(&format!(
                    "Revoked token {} of {} at {}",
                    record.id,
                    record.user,
                    record.revoked_at.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    Ok(EXIT_OK)
}

/// The text of `ferry token list`: one row per token, `-` where there is nothing.
fn token_table(list: &[access::TokenView]) -> String {
    if list.is_empty() {
        return "No tokens.".to_string();
    }
    let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    let mut rows = vec![[
        "ID".to_string(),
        "USER".into(),
        "TENANT".into(),
        "CREATED".into(),
        "LAST USED".into(),
        "EXPIRES".into(),
        "STATUS".into(),
    ]];
    for t in list {
        let r = &t.record;
        rows.push([
            r.id.clone(),
            r.user.clone(),
            dash(r.tenant.as_deref()),
            r.created_at.clone(),
            dash(r.last_used_at.as_deref()),
            r.expires_at.clone().unwrap_or_else(|| "never".into()),
            t.status.name().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
