//! Marking a resource syncable (document 000, step 1): the flag that makes
//! tenant sync ([`crate::service::promote`]) select it, and the list of a
//! tenant's resources it is set from ([`resources_matching`]).
//!
//! [`set_syncable`] is a staging edit of one draft of any kind: an editor
//! of the tenant flips `metadata.syncable`, and the draft is written in one
//! transaction against the tenant revision it was read at, with the unit
//! hash its tree form would have. Production is untouched until a publish.

use crate::backend::store::BatchDraft;

use crate::backend::store::{Store, StoreError, WriteBatch};
use crate::domain::access::{AccessError, Role};
use crate::domain::validate::render_names;
use crate::service::access::{authorize, Actor};
use crate::service::pipeline::{self, PipelineError};

/// Why the flag could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SyncableError {
    /// No draft has that ID.
    #[error("tenant `{tenant}` has no resource `{id}` in staging")]
    NoResource {
        /// The tenant.
        tenant: String,
        /// The ID asked for.
        id: String,
    },
    /// The actor's role is too weak.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The draft does not encode.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What setting the flag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncableOutcome {
    /// The resource's name.
    pub name: String,
    /// The flag now.
    pub syncable: bool,
    /// Whether the draft was written (false when it already had the flag).
    pub changed: bool,
    /// The tenant revision after the edit.
    pub revision: u64,
}

/// The drafts of `tenant` whose name holds `query` (any case; every draft
/// for an empty query), by name, as `actor` (a viewer) lists them.
pub fn resources_matching(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    query: &str,
) -> Result<Vec<crate::domain::model::Resource>, SyncableError> {
    authorize::<SyncableError>(store, actor, tenant, Role::Viewer, "listing resources")?;
    let query = query.trim().to_lowercase();
    let mut drafts = store.all_drafts(tenant)?;
    drafts.retain(|r| query.is_empty() || r.name().to_lowercase().contains(&query));
    drafts.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(drafts)
}

/// Set `metadata.syncable` of the draft `id` in `tenant` as `actor` (an editor).
pub fn set_syncable(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    id: &str,
    syncable: bool,
) -> Result<SyncableOutcome, SyncableError> {
    authorize::<SyncableError>(
        &*store,
        actor,
        tenant,
        Role::Editor,
        "marking resources syncable",
    )?;
    let revision = store.tenant_revision(tenant)?;
    let mut draft = store
        .drafts(tenant, &[id.to_string()])?
        .pop()
        .ok_or_else(|| SyncableError::NoResource {
            tenant: tenant.to_string(),
            id: id.to_string(),
        })?;
    let mut outcome = SyncableOutcome {
        name: draft.name().to_string(),
        syncable,
        changed: draft.metadata.syncable != syncable,
        revision,
    };
    if !outcome.changed {
        return Ok(outcome);
    }
    draft.metadata.syncable = syncable;
    // The tenant's whole index is never read for one flag.
    let names = pipeline::names_of_references(&*store, tenant, &draft)?;
    let hash = pipeline::canonical_unit_hash(&render_names(&draft, &names))?;
    let batch = WriteBatch {
        base_revision: revision,
        upserts: vec![(BatchDraft::Borrowed(&draft), hash)],
        actor: actor.name().map(str::to_string),
        ..WriteBatch::default()
    };
    outcome.revision = store.write(tenant, &batch)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::ResourceStore;
    use crate::domain::model::Kind;

    /// Flagging an agent reads its own draft and what it references, not
    /// the whole index, and writes the unit hash a plan of its tree form
    /// would give, with every reference named.
    #[test]
    fn a_flag_reads_only_the_draft_and_what_it_references() {
        let (_tmp, mut store) = pipeline::tests::applied();
        let t = "acme-dev";
        let (_, index) = store.index(t).unwrap();
        let agent = index
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Agent)
            .max_by_key(|e| e.refs.len())
            .unwrap()
            .clone();
        assert!(!agent.refs.is_empty(), "an agent with references");
        let ids = std::slice::from_ref(&agent.id);
        let flag = !store.drafts(t, ids).unwrap()[0].metadata.syncable;
        let before = store.rows_read();
        let done = set_syncable(&mut store, &Actor::default(), t, &agent.id, flag).unwrap();
        assert!(done.changed);
        let read = store.rows_read() - before;
        assert!(
            read <= 2 + agent.refs.len() as u64,
            "{read} rows read for {} references",
            agent.refs.len()
        );
        let draft = store.drafts(t, ids).unwrap().remove(0);
        assert_eq!(draft.metadata.syncable, flag);
        let (_, index) = store.index(t).unwrap();
        let whole = crate::domain::validate::NameTable::of_index(&index);
        let expected = pipeline::canonical_unit_hash(&render_names(&draft, &whole)).unwrap();
        assert_eq!(index.get(&agent.id).unwrap().file_hash, expected);
    }

    /// The list is by name, filtered by any-case substring, and needs a
    /// viewer once the store has users.
    #[test]
    fn the_resource_list_matches_names_and_needs_a_viewer() {
        use crate::backend::store::AccessStore;
        let (_tmp, mut store) = pipeline::tests::applied();
        let t = "acme-dev";
        let anyone = Actor::default();
        let all = resources_matching(&store, &anyone, t, "").unwrap();
        let names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(all.len(), store.index(t).unwrap().1.entries().len());
        let bots = resources_matching(&store, &anyone, t, "  BOT ").unwrap();
        assert!(!bots.is_empty() && bots.len() < all.len());
        assert!(bots.iter().all(|r| r.name().contains("bot")));

        for user in ["root", "vic", "eve"] {
            store.add_user(user).unwrap();
        }
        store.grant("vic", t, Role::Viewer).unwrap();
        assert_eq!(
            resources_matching(&store, &Actor::named("vic"), t, "bot").unwrap(),
            bots
        );
        let e = resources_matching(&store, &Actor::named("eve"), t, "").unwrap_err();
        assert!(
            e.to_string()
                .contains("listing resources needs the viewer role"),
            "{e}"
        );
    }
}
