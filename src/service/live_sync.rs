//! Live agent sync from another ferry instance (document 002): the use case
//! behind `ferry sync` and the `/backup/import/sync` endpoints.
//!
//! The source URL passes [`crate::backend::ssrf::check_source`] under the
//! `[sync]` rules first, and the [`SourceClient`] connects only to the
//! address that check vetted. The agent comes over as the source's own ZIP
//! export and lands through [`crate::service::zip_import::import_bytes`]
//! with the `upgrade` strategy: a live sync is a ZIP import whose bytes came
//! over HTTP. Listing the source's agents, previewing and syncing all need
//! the editor role on the local tenant, checked before any request leaves.

use serde_json::Value;

use crate::backend::source::{SourceClient, SourceError};
use crate::backend::ssrf::{self, SsrfError};
use crate::backend::store::{Store, StoreError};
use crate::backend::sync_config::SyncConfig;
use crate::domain::access::{AccessError, Role};
use crate::service::access::{authorize, Actor};
use crate::service::zip_import::{ImportOptions, Strategy};

/// Why a live sync could not reach or read its source.
#[derive(Debug, thiserror::Error)]
pub enum LiveSyncError {
    /// The source URL was refused by the `[sync]` rules.
    #[error(transparent)]
    Ssrf(#[from] SsrfError),
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The actor may not sync into the tenant.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Allow `actor` to list, preview or sync from a source into `tenant`: an editor there.
pub fn authorize_sync(store: &dyn Store, actor: &Actor, tenant: &str) -> Result<(), LiveSyncError> {
    authorize::<LiveSyncError>(
        store,
        actor,
        tenant,
        Role::Editor,
        "syncing agents from another instance",
    )
}

/// A client for the source at `url`, after the SSRF check; `authorization`
/// is sent as the source's `Authorization` header.
pub fn connect(
    url: &str,
    cfg: &SyncConfig,
    authorization: Option<String>,
) -> Result<SourceClient, LiveSyncError> {
    let checked = ssrf::check_source(url, cfg)?;
    Ok(SourceClient::new(checked, cfg, authorization))
}

/// The source's agents, as it lists them.
pub fn list_agents(client: &SourceClient) -> Result<Value, LiveSyncError> {
    Ok(client.get_json("/api/v2/agents")?)
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The source's export endpoint for an agent (and version).
pub fn export_path(agent: &str, version: Option<u64>) -> String {
    let mut path = format!("/backup/export/{}", encode(agent));
    if let Some(v) = version {
        path.push_str(&format!("?agentVersion={v}"));
    }
    path
}

/// The source agent's ZIP export (staging, or published version `version`).
pub fn fetch_agent(
    client: &SourceClient,
    agent: &str,
    version: Option<u64>,
) -> Result<Vec<u8>, LiveSyncError> {
    Ok(client.post(&export_path(agent, version), None, &[])?)
}

/// The import options of a sync: strategy `upgrade`, onto `target_agent` if named.
pub fn sync_options(
    target_agent: Option<String>,
    selected: Option<Vec<String>>,
    workflow_order: Option<Vec<String>>,
) -> ImportOptions {
    ImportOptions {
        strategy: Strategy::Upgrade,
        target_agent,
        selected,
        workflow_order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_paths_encode_the_agent_and_carry_the_version() {
        assert_eq!(export_path("agt_1", None), "/backup/export/agt_1");
        assert_eq!(
            export_path("a b/c", Some(3)),
            "/backup/export/a+b%2Fc?agentVersion=3"
        );
    }

    #[test]
    fn a_private_source_is_refused_by_default() {
        let e = connect("http://127.0.0.1:1", &SyncConfig::default(), None).unwrap_err();
        assert!(matches!(e, LiveSyncError::Ssrf(_)), "{e}");
    }
}
