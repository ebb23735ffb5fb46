//! The agents of a tenant as `GET /api/v2/agents` lists them
//! ([`agent_list`]), and one agent as `GET /api/v2/agents/{id}` shows it: its staging (draft)
//! configuration with the draft's revision, who created it and who last
//! changed it and when (as the store recorded the writes), the production
//! version, and every published version with its change ID, publisher and
//! time (from the versions and the publish log).
//!
//! A read: the caller's viewer role is checked here, before anything is
//! looked up, as every read of the server does.

use serde::Serialize;
use serde_json::Value;

use crate::backend::store::Store;
use crate::domain::access::Role;
use crate::domain::model::{Kind, Spec};
use crate::service::access::{authorize, Actor};
use crate::service::staging::{find_agent_id, StagingError};

/// One published version of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedAgentVersion {
    /// The version number, 1..n.
    pub version: u64,
    /// The publish that made it (`None` for a version recorded without one, e.g. carried by a promotion).
    pub change_track_id: Option<String>,
    /// Who published it, from the publish log.
    pub published_by: Option<String>,
    /// When, RFC 3339.
    pub published_at: String,
}

/// An agent's staging state and publish history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// The agent's ID.
    pub id: String,
    /// Its name (staging).
    pub name: String,
    /// Whether tenant promotion selects it.
    pub syncable: bool,
    /// The staging (draft) configuration, stored form (references by ID).
    pub spec: Value,
    /// The draft's revision: 1 when created, one more at each change of its content.
    pub draft_revision: u64,
    /// The version production runs (`None`: never published, or taken out of production).
    pub production_version: Option<u64>,
    /// Every published version, oldest first.
    pub versions: Vec<PublishedAgentVersion>,
    /// Who created the agent: as the store recorded its first write, else as
    /// its `metadata.createdBy` says (`None` when neither knows).
    pub created_by: Option<String>,
    /// Who last changed the draft's content (`None` when the store does not know).
    pub last_changed_by: Option<String>,
    /// When the draft's content last changed, RFC 3339.
    pub last_changed_at: Option<String>,
}

/// The role check of reading an agent alone (viewer), for a front end that
/// reads the agent's draft itself (the web UI's editor).
pub fn authorize_reading(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<(), StagingError> {
    authorize::<StagingError>(store, actor, tenant, Role::Viewer, "reading agents")
}

/// One line of the agent list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSummary {
    /// The agent's ID.
    pub id: String,
    /// Its name (staging).
    pub name: String,
    /// Its description (staging).
    pub description: Option<String>,
    /// The latest version published (`None`: never published).
    pub published_version: Option<u64>,
    /// Whether tenant promotion selects it.
    pub syncable: bool,
}

/// Every agent of `tenant` in staging, in the store's order, as `actor`
/// (viewer) sees them: with the latest version published of each.
pub fn agent_list(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
) -> Result<Vec<AgentSummary>, StagingError> {
    authorize::<StagingError>(store, actor, tenant, Role::Viewer, "listing agents")?;
    // The agents' IDs by a keyed lookup of their kind; only they are decoded.
    let agents_only = crate::backend::store::IndexKeys {
        kinds: vec![Kind::Agent],
        ..Default::default()
    };
    let (_, entries) = store.index_entries(tenant, &agents_only)?;
    let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
    let mut agents = store.drafts(tenant, &ids)?;
    agents.sort_by(|a, b| a.id().cmp(&b.id()));
    let versions = store.versions(tenant, &ids)?;
    Ok(agents
        .into_iter()
        .map(|r| {
            let id = r.id().unwrap_or_default();
            AgentSummary {
                id: id.to_string(),
                name: r.name().to_string(),
                description: match &r.spec {
                    Spec::Agent(a) => a.description.clone(),
                    _ => None,
                },
                published_version: versions
                    .iter()
                    .filter(|v| v.id == id)
                    .map(|v| v.version)
                    .max(),
                syncable: r.metadata.syncable,
            }
        })
        .collect())
}

/// The agent `agent` (ID or name) of `tenant` as `actor` (viewer) sees it;
/// `Ok(None)` when it is only in production (deleted in staging).
pub fn agent_view(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    agent: &str,
) -> Result<Option<AgentView>, StagingError> {
    authorize_reading(store, actor, tenant)?;
    let id = find_agent_id(store, tenant, agent)?;
    let ids = std::slice::from_ref(&id);
    let Some(draft) = store.drafts(tenant, ids)?.pop() else {
        return Ok(None);
    };
    let stamp = store.draft_stamps(tenant, ids)?.pop();
    let log = store.publishes(tenant)?;
    let versions: Vec<PublishedAgentVersion> = store
        .versions(tenant, ids)?
        .into_iter()
        .map(|v| PublishedAgentVersion {
            version: v.version,
            published_by: v.change_id.as_deref().and_then(|c| {
                log.iter()
                    .find(|p| p.change_track_id == c)
                    .map(|p| p.published_by.clone())
            }),
            change_track_id: v.change_id,
            published_at: v.published_at,
        })
        .collect();
    let in_production = !store.production_of(tenant, ids)?.is_empty();
    let production_version = versions
        .iter()
        .map(|v| v.version)
        .max()
        .filter(|_| in_production);
    Ok(Some(AgentView {
        name: draft.name().to_string(),
        syncable: draft.metadata.syncable,
        spec: draft.spec.to_json(),
        draft_revision: stamp.as_ref().map_or(0, |s| s.revision),
        production_version,
        versions,
        created_by: stamp
            .as_ref()
            .and_then(|s| s.created_by.clone())
            .or_else(|| draft.metadata.created_by.clone()),
        last_changed_by: stamp.as_ref().and_then(|s| s.updated_by.clone()),
        last_changed_at: stamp.map(|s| s.updated_at),
        id,
    }))
}
