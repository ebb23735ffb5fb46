//! The CLI side of a remote store (`--store http(s)://HOST[:PORT]`): the
//! token, and acting as the token's user.
//!
//! The token comes from `--token-file PATH` (its first line), else from
//! `FERRY_TOKEN`; there is no `--token` flag, so it never lands in shell
//! history. Opening the store asks the server whose token it is, and every
//! command then acts as that user ([`super::identity::actor`]), so the
//! services' own role checks agree with the server's. `--as` naming someone
//! else is refused.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::Global;
use crate::backend::store::remote::{is_remote_url, RemoteStore};
use crate::backend::store::{self, Store, WriteFault};

/// The token for a remote store: `--token-file`, else `FERRY_TOKEN`.
fn token(g: &Global) -> Result<Option<String>> {
    if let Some(path) = &g.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.is_empty() {
            bail!(
                "the token file {} is empty\nhint: write the token `ferry token create` printed into it",
                path.display()
            );
        }
        return Ok(Some(token));
    }
    Ok(std::env::var("FERRY_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Open the store at `url` as every command does: a remote store with the
/// token (acting as its user from then on), or a local one with `fault`.
pub(crate) fn open_url(
    g: &Global,
    url: &str,
    base: &Path,
    fault: Option<WriteFault>,
) -> Result<Box<dyn Store + Send>> {
    if !is_remote_url(url) {
        return Ok(store::open_with_fault(url, base, fault)?);
    }
    let remote = RemoteStore::open(url, token(g)?.as_deref())?;
    if let Some(asked) = g.actor.as_deref() {
        if asked != remote.user() {
            bail!(
                "--as `{asked}` does not match the token's user `{}` on {}\nhint: against a remote store you act as your token's user; leave out --as, or use a token of `{asked}`",
                remote.user(),
                remote.base()
            );
        }
    }
    super::identity::act_as_token_user(remote.user());
    Ok(Box::new(remote))
}
