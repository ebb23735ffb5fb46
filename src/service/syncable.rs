//! Marking a resource syncable (document 000, step 1): the flag that makes
//! tenant sync ([`crate::service::promote`]) select it, and the list of a
//! tenant's resources it is set from ([`resources_matching`]).
//!
//! [`set_syncable`] is a staging edit of one draft of any kind: an editor
//! of the tenant flips `metadata.syncable`, and the draft is written in one
//! transaction against the tenant revision it was read at, with the unit
//! hash its tree form would have. Production is untouched until a publish.

use std::collections::{BTreeMap, HashMap};

use crate::backend::store::BatchDraft;

use crate::backend::store::{Store, StoreError, WriteBatch};
use crate::domain::access::{AccessError, Role};
use crate::domain::model::{Kind, Resource};
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

/// How many resources of one kind a page of the resource list shows.
pub const RESOURCES_PER_PAGE: usize = 100;

/// One kind's part of a page of the resource list.
#[derive(Debug, Clone, PartialEq)]
pub struct KindPage {
    /// The kind.
    pub kind: Kind,
    /// How many resources of this kind match, on every page.
    pub matching: usize,
    /// The position (0-based, by name) of the first one shown.
    pub first: usize,
    /// The drafts shown, by name: at most [`RESOURCES_PER_PAGE`].
    pub resources: Vec<Resource>,
}

/// A page of the drafts of `tenant` whose name holds `query` (any case;
/// every draft for an empty query), as `actor` (a viewer) lists them: for
/// each kind that has a match (or only `kind`), page `page` of its matches
/// by name, [`RESOURCES_PER_PAGE`] to a page, and how many match in all.
/// Only the names are read for the whole tenant; only the drafts shown
/// are read whole.
pub fn resources_matching(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    query: &str,
    kind: Option<Kind>,
    page: usize,
) -> Result<Vec<KindPage>, SyncableError> {
    authorize::<SyncableError>(store, actor, tenant, Role::Viewer, "listing resources")?;
    let query = query.trim().to_lowercase();
    let names = store.id_names(tenant)?;
    let mut by_kind: BTreeMap<Kind, Vec<(&str, &str)>> = BTreeMap::new();
    for (id, k, name) in names.iter() {
        let wanted = kind.is_none_or(|want| want == k);
        if wanted && (query.is_empty() || name.to_lowercase().contains(&query)) {
            by_kind.entry(k).or_default().push((name, id));
        }
    }
    let first = page.saturating_mul(RESOURCES_PER_PAGE);
    let mut shown: Vec<(Kind, usize, Vec<String>)> = Vec::new();
    for (k, mut matches) in by_kind {
        matches.sort_unstable();
        let ids = matches
            .iter()
            .skip(first)
            .take(RESOURCES_PER_PAGE)
            .map(|(_, id)| id.to_string())
            .collect();
        shown.push((k, matches.len(), ids));
    }
    let wanted: Vec<String> = shown
        .iter()
        .flat_map(|(_, _, ids)| ids.iter().cloned())
        .collect();
    let mut drafts: HashMap<String, Resource> = store
        .drafts(tenant, &wanted)?
        .into_iter()
        .filter_map(|r| Some((r.id()?.to_string(), r)))
        .collect();
    // By kind in sync-step order (the map's), each by name.
    let pages = shown
        .into_iter()
        .map(|(kind, matching, ids)| KindPage {
            kind,
            matching,
            first,
            resources: ids.iter().filter_map(|id| drafts.remove(id)).collect(),
        })
        .collect();
    Ok(pages)
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

    /// The list is by kind, then by name, filtered by any-case substring,
    /// a page at a time, and needs a viewer once the store has users.
    #[test]
    fn the_resource_list_matches_names_by_the_page_and_needs_a_viewer() {
        use crate::backend::store::AccessStore;
        let (_tmp, mut store) = pipeline::tests::applied();
        let t = "acme-dev";
        let anyone = Actor::default();
        let names = |pages: &[KindPage]| -> Vec<String> {
            let shown = pages.iter().flat_map(|p| &p.resources);
            shown.map(|r| r.name().to_string()).collect()
        };
        let all = resources_matching(&store, &anyone, t, "", None, 0).unwrap();
        let total: usize = all.iter().map(|p| p.matching).sum();
        assert_eq!(total, store.index(t).unwrap().1.entries().len());
        assert_eq!(names(&all).len(), total, "one page holds them all");
        for p in &all {
            let shown: Vec<&str> = p.resources.iter().map(|r| r.name()).collect();
            assert!(shown.is_sorted(), "{shown:?}");
            assert!(p.resources.iter().all(|r| r.kind() == p.kind));
        }
        let kinds: Vec<Kind> = all.iter().map(|p| p.kind).collect();
        assert!(kinds.is_sorted(), "{kinds:?}");
        let bots = resources_matching(&store, &anyone, t, "  BOT ", None, 0).unwrap();
        assert!(!bots.is_empty() && names(&bots).len() < total);
        assert!(names(&bots).iter().all(|n| n.contains("bot")));
        let agents = resources_matching(&store, &anyone, t, "", Some(Kind::Agent), 0).unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].kind, Kind::Agent);
        let past = resources_matching(&store, &anyone, t, "", Some(Kind::Agent), 1).unwrap();
        assert_eq!((past[0].matching, past[0].first), (agents[0].matching, 100));
        assert!(past[0].resources.is_empty());

        for user in ["root", "vic", "eve"] {
            store.add_user(user).unwrap();
        }
        store.grant("vic", t, Role::Viewer).unwrap();
        let vic = Actor::named("vic");
        assert_eq!(
            resources_matching(&store, &vic, t, "bot", None, 0).unwrap(),
            bots
        );
        let e = resources_matching(&store, &Actor::named("eve"), t, "", None, 0).unwrap_err();
        assert!(
            e.to_string()
                .contains("listing resources needs the viewer role"),
            "{e}"
        );
    }

    /// A kind with more matches than a page holds is cut into pages by
    /// name, and each page reads whole only the drafts it shows.
    #[test]
    fn a_long_list_is_cut_into_pages() {
        let (_tmp, mut store) = pipeline::tests::applied();
        let t = "acme-dev";
        let tools = 250;
        pipeline::tests::add_tools(&mut store, t, tools);
        let anyone = Actor::default();
        let read = |page| {
            let before = store.rows_read();
            let pages = resources_matching(&store, &anyone, t, "extra-", Some(Kind::Tool), page);
            (pages.unwrap().remove(0), store.rows_read() - before)
        };
        let mut seen = Vec::new();
        for page in 0..3 {
            let (p, _) = read(page);
            assert_eq!((p.matching, p.first), (tools, page * 100));
            seen.extend(p.resources.iter().map(|r| r.name().to_string()));
        }
        let expected: Vec<String> = (0..tools).map(|i| format!("extra-{i:04}")).collect();
        assert_eq!(seen, expected);
        // The names of every resource, and the drafts of only the 100 shown.
        let (_, rows) = read(0);
        let names = store.resource_count(t).unwrap() as u64;
        assert_eq!(rows, names + 100);
    }
}
