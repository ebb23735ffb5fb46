//! The store contract as tests: what every back end of [`Store`] must do.
//!
//! Each property is one function taking a [`Fresh`] store (a new, empty
//! store reached by URL), and speaks only through the store traits, never
//! through SQL. [`store_conformance!`] turns the whole list into one
//! `#[test]` per property for a back end's factory; SQLite runs it below,
//! and the PostgreSQL store runs the same list with its own factory:
//!
//! ```ignore
//! store_conformance!(postgres, crate::conformance::postgres_fresh);
//! ```
//!
//! A factory returns a [`Fresh`]: the URL of an empty store that
//! `ferry::backend::store::open_with_options` opens (with a token, for a
//! remote store), and a guard that removes
//! it when dropped. Properties that need a second connection (read
//! snapshots) or an injected fault open the URL again.

use ferry::backend::store::BatchDraft;
use std::any::Any;
use std::path::PathBuf;

use ferry::backend::store::{
    open_with_options, Store, StoreError, SyncRecord, TenantAdmin, VersionRecord, WriteBatch,
    WriteFault,
};
use ferry::domain::access::{Grant, Role, UserRecord};
use ferry::domain::ids::derived_id;
use ferry::domain::model::{Kind, Metadata, Resource, Spec};
use ferry::domain::plan::{Absent, HashRefresh};
use ferry::domain::publish::{Named, PublishRecord, PublishSummary, PublishedVersion};
use ferry::domain::secrets::{encrypt, generate_keypair, KeyPair};
use ferry::domain::state::{content_hash, IndexEntry};
use serde_json::json;

/// A new, empty store of one back end, reached by its URL.
pub struct Fresh {
    /// The store URL, e.g. `sqlite:/tmp/…/store.db`.
    pub url: String,
    /// The folder relative URLs are taken from.
    pub base: PathBuf,
    /// The bearer token of a remote store.
    pub token: Option<String>,
    /// For a back end whose connections take no fault: how to reach the same store with one.
    pub faulty: Option<Faulty>,
    /// Keeps the store alive (a temp folder, a throwaway database).
    pub _guard: Box<dyn Any>,
}

/// Starts what [`Faulty`] reaches the store through: its URL, and what keeps it alive.
pub type StartFaulty = dyn Fn(WriteFault) -> (String, Box<dyn Any>);

/// The same store reached through something whose writes fail (for the
/// remote store: a second `ferry serve` over the same database, its write
/// connection opened with the fault).
pub struct Faulty {
    /// Start one for this fault: the URL to open, and what keeps it alive.
    pub start: Box<StartFaulty>,
    /// Those started, alive until the store is dropped.
    pub kept: std::cell::RefCell<Vec<Box<dyn Any>>>,
}

impl Fresh {
    /// A connection to the store.
    pub fn open(&self) -> Box<dyn Store + Send> {
        self.open_with(None)
    }

    /// A connection whose writes hit `fault`.
    pub fn open_with(&self, fault: Option<WriteFault>) -> Box<dyn Store + Send> {
        let (url, fault) = match (&self.faulty, fault) {
            (Some(faulty), Some(fault)) => {
                let (url, alive) = (faulty.start)(fault);
                faulty.kept.borrow_mut().push(alive);
                (url, None)
            }
            (_, fault) => (self.url.clone(), fault),
        };
        open_with_options(&url, &self.base, fault, self.token.as_deref())
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }
}

/// What a factory gives: a store, or (`None`) a back end skipped on this machine.
pub trait MaybeFresh {
    /// The store, if there is one.
    fn fresh(self) -> Option<Fresh>;
}

impl MaybeFresh for Fresh {
    fn fresh(self) -> Option<Fresh> {
        Some(self)
    }
}

impl MaybeFresh for Option<Fresh> {
    fn fresh(self) -> Option<Fresh> {
        self
    }
}

/// The SQLite factory: a store file in a new temp folder.
pub fn sqlite_fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    Fresh {
        url: format!("sqlite:{}", dir.path().join("store.db").display()),
        base: dir.path().to_path_buf(),
        token: None,
        faulty: None,
        _guard: Box::new(dir),
    }
}

/// One `#[test]` per property of the store contract, in module `$module`,
/// each given a store from `$fresh` (a `fn() -> Fresh`).
#[macro_export]
macro_rules! store_conformance {
    ($module:ident, $fresh:path) => {
        mod $module {
            $crate::store_conformance!(@tests $fresh;
                tenants_are_created_and_listed_by_name,
                a_duplicate_tenant_is_refused,
                an_unknown_tenant_is_refused,
                drafts_round_trip_through_a_write,
                drafts_come_in_chunks_by_id,
                the_tenant_keeps_its_resource_count,
                the_staging_stamp_moves_with_every_change,
                the_index_summarises_every_draft,
                index_entries_are_found_by_path_id_and_name,
                id_names_give_each_resources_kind_and_name,
                reference_closures_follow_references_transitively,
                a_write_is_one_transaction,
                a_stale_batch_is_refused_with_both_revisions,
                a_write_that_changes_nothing_bumps_nothing,
                a_resource_revision_moves_only_with_its_content,
                drafts_record_their_creator_and_last_change,
                a_write_moves_only_its_own_tenant,
                the_source_commit_is_recorded_once,
                versions_are_kept_as_written,
                publish_numbers_count_from_one,
                a_publish_with_a_wrong_number_is_refused,
                production_is_the_latest_published_version,
                publish_changes_pair_each_version_with_the_one_before,
                drift_lists_what_changed_since_the_last_apply_from_git,
                changes_since_the_commit_say_where_each_file_was_and_is,
                the_first_user_owns_the_store,
                grants_name_known_users_and_tenants,
                tokens_are_found_by_their_hash_only,
                a_token_hash_and_id_are_recorded_once,
                sessions_are_kept_by_hash_and_expire,
                tokens_are_listed_and_revoked_once_by_id,
                token_times_and_uses_are_recorded_as_given,
                sync_records_are_kept_per_source,
                a_read_snapshot_sees_one_state,
                variables_are_kept_per_tenant_by_name,
                deleting_a_tenant_removes_everything_it_holds,
            );
        }
    };
    (@tests $fresh:path; $($property:ident),* $(,)?) => {
        $(
            #[test]
            fn $property() {
                // A factory may answer `None`: its back end is not here, and was not required.
                if let Some(fresh) = $crate::conformance::MaybeFresh::fresh($fresh()) {
                    $crate::conformance::$property(&fresh);
                }
            }
        )*
    };
}

store_conformance!(sqlite, crate::conformance::sqlite_fresh);

// ---- building blocks -------------------------------------------------------

const T: &str = "acme-dev";

fn tenant(store: &mut dyn Store, name: &str) -> KeyPair {
    let keys = generate_keypair();
    store.create_tenant(name, Some("dev"), &keys).unwrap();
    keys
}

fn resource(kind: Kind, name: &str, spec: serde_json::Value) -> Resource {
    Resource {
        metadata: Metadata {
            id: Some(derived_id(T, kind, name)),
            name: name.to_string(),
            syncable: false,
            synced_from: None,
            origin_id: None,
            created_by: None,
        },
        spec: Spec::from_json(kind, spec).unwrap(),
        content: None,
    }
}

fn tool(name: &str, description: &str) -> Resource {
    resource(
        Kind::Tool,
        name,
        json!({"type": "http", "description": description}),
    )
}

fn document(name: &str, bytes: &[u8]) -> Resource {
    let mut d = resource(
        Kind::Document,
        name,
        json!({"title": name, "mediaType": "text/plain", "contentFile": format!("{name}.txt")}),
    );
    d.content = Some(bytes.to_vec());
    d
}

fn knowledge_base(name: &str, documents: &[&Resource]) -> Resource {
    let ids: Vec<&str> = documents.iter().filter_map(|d| d.id()).collect();
    resource(
        Kind::KnowledgeBase,
        name,
        json!({"description": "docs", "documents": ids}),
    )
}

fn id(r: &Resource) -> String {
    r.id().unwrap().to_string()
}

fn upserts<'a>(resources: &[&'a Resource]) -> Vec<(BatchDraft<'a>, String)> {
    resources
        .iter()
        .map(|r| (BatchDraft::Borrowed(r), format!("file:{}", r.name())))
        .collect()
}

/// Write `resources` to tenant `T` at its current revision; returns the new revision.
fn put(store: &mut dyn Store, resources: &[&Resource]) -> u64 {
    let base_revision = store.tenant(T).unwrap().revision;
    let batch = WriteBatch {
        base_revision,
        upserts: upserts(resources),
        ..WriteBatch::default()
    };
    store.write(T, &batch).unwrap()
}

fn delete(store: &mut dyn Store, ids: &[String]) -> u64 {
    let batch = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        deletes: ids.to_vec(),
        ..WriteBatch::default()
    };
    store.write(T, &batch).unwrap()
}

/// The tenant revision and its index entries, comparable.
fn entries(store: &dyn Store) -> (u64, Vec<IndexEntry>) {
    let (revision, index) = store.index(T).unwrap();
    (revision, index.entries().to_vec())
}

fn named(r: &Resource) -> Named {
    Named {
        kind: r.kind(),
        name: r.name().to_string(),
        id: id(r),
    }
}

fn record(number: u64, change: &str, created: &[&Resource]) -> PublishRecord {
    PublishRecord {
        tenant: T.to_string(),
        number,
        change_track_id: change.to_string(),
        agent: None,
        published_by: "ada".to_string(),
        published_at: format!("2026-01-0{number}T00:00:00Z"),
        message: format!("publish {number}"),
        summary: PublishSummary {
            created: created.iter().map(|r| named(r)).collect(),
            ..PublishSummary::default()
        },
        tag: None,
        commit: None,
    }
}

fn published(resources: &[&Resource]) -> Vec<PublishedVersion> {
    resources
        .iter()
        .map(|r| PublishedVersion {
            id: id(r),
            resource: Some((*r).clone()),
        })
        .collect()
}

fn names(list: &[Resource]) -> Vec<&str> {
    list.iter().map(Resource::name).collect()
}

// ---- tenants ---------------------------------------------------------------

/// Tenants are listed by name, with their key, revision and resource count.
pub fn tenants_are_created_and_listed_by_name(fresh: &Fresh) {
    let mut store = fresh.open();
    let before = store.revision().unwrap();
    let keys = tenant(&mut *store, "zeta");
    let created = store.create_tenant("alpha", None, &generate_keypair());
    let created = created.unwrap();
    assert_eq!(created.name, "alpha");
    assert_eq!(created.environment, None);
    assert_eq!(created.resources, 0);
    assert!(
        store.revision().unwrap() > before,
        "creating a tenant is a write"
    );
    let list = store.tenants().unwrap();
    let listed: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(listed, ["alpha", "zeta"]);
    let zeta = store.tenant("zeta").unwrap();
    assert_eq!(zeta.environment.as_deref(), Some("dev"));
    assert_eq!(zeta.recipient, keys.recipient);
    assert_eq!(zeta.last_commit, None);
    assert_eq!(store.identity("zeta").unwrap(), keys.identity);
}

/// A second tenant of the same name is refused, and the first keeps its key.
pub fn a_duplicate_tenant_is_refused(fresh: &Fresh) {
    let mut store = fresh.open();
    let keys = tenant(&mut *store, T);
    let revision = store.revision().unwrap();
    let err = store
        .create_tenant(T, Some("prod"), &generate_keypair())
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TenantExists { tenant } if tenant == T),
        "{err}"
    );
    assert_eq!(store.revision().unwrap(), revision, "nothing was written");
    assert_eq!(store.identity(T).unwrap(), keys.identity);
    assert_eq!(store.tenants().unwrap().len(), 1);
}

/// Reads and writes of a tenant the store does not hold are refused by name.
pub fn an_unknown_tenant_is_refused(fresh: &Fresh) {
    let mut store = fresh.open();
    let no_tenant =
        |e: StoreError| matches!(&e, StoreError::NoTenant { tenant } if tenant == "ghost");
    assert!(no_tenant(store.tenant("ghost").unwrap_err()));
    assert!(no_tenant(store.identity("ghost").unwrap_err()));
    assert!(no_tenant(store.index("ghost").unwrap_err()));
    assert!(no_tenant(store.id_names("ghost").unwrap_err()));
    assert!(no_tenant(store.all_drafts("ghost").unwrap_err()));
    let t = tool("crm-lookup", "x");
    let batch = WriteBatch {
        upserts: upserts(&[&t]),
        ..WriteBatch::default()
    };
    assert!(no_tenant(store.write("ghost", &batch).unwrap_err()));
    assert!(store.tenants().unwrap().is_empty());
}

// ---- resources and drafts --------------------------------------------------

/// What a write stores comes back equal from `drafts` and `all_drafts`, content bytes included.
pub fn drafts_round_trip_through_a_write(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let doc = document("refund-policy", b"Refunds within 30 days.\n\x00\xff");
    let kb = knowledge_base("policies", &[&doc]);
    let t = tool("crm-lookup", "Looks up a customer.");
    put(&mut *store, &[&doc, &kb, &t]);
    let ids = vec![id(&t), "tol_unknown".to_string(), id(&doc)];
    let got = store.drafts(T, &ids).unwrap();
    assert_eq!(
        got,
        vec![t.clone(), doc.clone()],
        "unknown IDs are left out"
    );
    let mut all = vec![doc, kb, t];
    all.sort_by(|a, b| a.id().cmp(&b.id()));
    assert_eq!(store.all_drafts(T).unwrap(), all, "every draft, by ID");
    assert_eq!(store.tenant(T).unwrap().resources, 3);
}

/// The index holds each draft's kind, name, hashes, references and revision.
pub fn the_index_summarises_every_draft(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let doc = document("refund-policy", b"text");
    let kb = knowledge_base("policies", &[&doc]);
    let revision = put(&mut *store, &[&doc, &kb]);
    let (at, index) = store.index(T).unwrap();
    assert_eq!(at, revision, "the index comes with the tenant revision");
    assert_eq!(index.len(), 2);
    let entry = index.get(&id(&kb)).unwrap();
    assert_eq!(entry.kind, Kind::KnowledgeBase);
    assert_eq!(entry.name, "policies");
    assert_eq!(entry.content_hash, content_hash(&kb));
    assert_eq!(entry.file_hash, "file:policies");
    assert_eq!(entry.refs, vec![id(&doc)]);
    assert_eq!(entry.revision, 1);
    assert_eq!(
        index.by_name(Kind::Document, "refund-policy").unwrap().id,
        id(&doc)
    );
}

/// The names by ID are the index's kind and name of every draft, and
/// nothing else.
pub fn id_names_give_each_resources_kind_and_name(fresh: &Fresh) {
    use ferry::domain::validate::Names;
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let doc = document("refund-policy", b"text");
    let kb = knowledge_base("policies", &[&doc]);
    let t = tool("crm-lookup", "x");
    put(&mut *store, &[&doc, &kb, &t]);
    let names = store.id_names(T).unwrap();
    assert_eq!(
        names.lookup(&id(&doc)),
        Some((Kind::Document, "refund-policy"))
    );
    assert_eq!(
        names.lookup(&id(&kb)),
        Some((Kind::KnowledgeBase, "policies"))
    );
    assert_eq!(names.lookup(&id(&t)), Some((Kind::Tool, "crm-lookup")));
    assert_eq!(names.lookup("tol_unknown"), None);
    delete(&mut *store, &[id(&t)]);
    assert_eq!(
        store.id_names(T).unwrap().lookup(&id(&t)),
        None,
        "a deleted draft has no name"
    );
}

/// Index entries looked up by path, by ID, by kind and name or by kind are
/// the whole index's entries, each once; unknown keys find nothing. The
/// counts by kind are the index's.
pub fn index_entries_are_found_by_path_id_and_name(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a, b, c) = (tool("a", "1"), tool("b", "1"), tool("c", "1"));
    put(&mut *store, &[&a, &b, &c]);
    let (revision, all) = entries(&*store);
    let keys = ferry::backend::store::IndexKeys {
        paths: vec![
            "tools/a.yaml".into(),
            "tools/nothing.yaml".into(),
            "odd".into(),
        ],
        ids: vec![id(&b), id(&a), "tol_unknown".into()],
        names: vec![(Kind::Tool, "a".into()), (Kind::Agent, "b".into())],
        kinds: Vec::new(),
    };
    let (at, mut found) = store.index_entries(T, &keys).unwrap();
    assert_eq!(at, revision);
    found.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want: Vec<IndexEntry> = all.iter().filter(|e| e.name != "c").cloned().collect();
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(found, want);
    assert_eq!(store.resource_count(T).unwrap(), 3);
    // Every entry of a kind, with a key that finds one of them again: each once.
    let bot = resource(
        Kind::Agent,
        "bot",
        json!({"type": "chat", "model": {"provider": "openai", "name": "gpt-4o"}}),
    );
    put(&mut *store, &[&bot]);
    let by_kind = ferry::backend::store::IndexKeys {
        kinds: vec![Kind::Tool],
        ids: vec![id(&a)],
        ..Default::default()
    };
    let (_, mut found) = store.index_entries(T, &by_kind).unwrap();
    found.sort_by(|x, y| x.id.cmp(&y.id));
    let mut tools = all;
    tools.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(found, tools);
    let agents = ferry::backend::store::IndexKeys {
        kinds: vec![Kind::Agent, Kind::Workflow],
        ..Default::default()
    };
    let (_, found) = store.index_entries(T, &agents).unwrap();
    let names: Vec<&str> = found.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bot"]);
    // Counts by kind: every kind, in order, as the index has them.
    let counts = store.kind_counts(T).unwrap();
    let kinds: Vec<Kind> = counts.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, Kind::ALL);
    for (kind, n) in counts {
        let want = match kind {
            Kind::Tool => 3,
            Kind::Agent => 1,
            _ => 0,
        };
        assert_eq!(n, want, "{kind:?}");
    }
    assert!(matches!(
        store.kind_counts("nobody"),
        Err(ferry::backend::store::StoreError::NoTenant { .. })
    ));
}

/// A resource's reference closure is itself and everything it references,
/// transitively, sorted; a reference to nothing is named but not followed.
/// The tenant revision is the tenant record's, and an unknown tenant is refused.
pub fn reference_closures_follow_references_transitively(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (d1, d2, d3) = (
        document("d1", b"1"),
        document("d2", b"2"),
        document("d3", b"3"),
    );
    let mut ghost = document("ghost", b"g");
    ghost.metadata.id = Some("doc_ghost".into());
    let kb = knowledge_base("kb", &[&d1, &d2, &ghost]);
    let other = knowledge_base("other", &[&d3]);
    let revision = put(&mut *store, &[&d1, &d2, &d3, &kb, &other]);
    let mut want = vec![id(&d1), id(&d2), "doc_ghost".to_string(), id(&kb)];
    want.sort();
    assert_eq!(store.reference_closure(T, &id(&kb)).unwrap(), want);
    assert_eq!(store.reference_closure(T, &id(&d1)).unwrap(), vec![id(&d1)]);
    assert_eq!(store.tenant_revision(T).unwrap(), revision);
    assert_eq!(store.tenant(T).unwrap().revision, revision);
    assert!(matches!(
        store.tenant_revision("nobody"),
        Err(ferry::backend::store::StoreError::NoTenant { .. })
    ));
}

/// A write that fails halfway leaves the store exactly as it was.
pub fn a_write_is_one_transaction(fresh: &Fresh) {
    let mut setup = fresh.open();
    tenant(&mut *setup, T);
    let old = tool("old", "written before");
    put(&mut *setup, &[&old]);
    drop(setup);

    let mut store = fresh.open_with(Some(WriteFault::FailAfter(2)));
    let revision = store.revision().unwrap();
    let (tenant_revision, index) = entries(&*store);
    let (a, b, c) = (tool("a", "1"), tool("b", "2"), tool("c", "3"));
    let batch = WriteBatch {
        base_revision: tenant_revision,
        upserts: upserts(&[&a, &b, &c]),
        deletes: vec![id(&old)],
        commit: Some("c0ffee".to_string()),
        ..WriteBatch::default()
    };
    let err = store.write(T, &batch).unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(store.revision().unwrap(), revision);
    assert_eq!(entries(&*store), (tenant_revision, index));
    assert_eq!(store.all_drafts(T).unwrap(), vec![old]);
    assert_eq!(store.tenant(T).unwrap().last_commit, None);

    let mut healthy = fresh.open();
    assert!(healthy.write(T, &batch).unwrap() > tenant_revision);
    assert_eq!(names(&healthy.all_drafts(T).unwrap()).len(), 3);
}

/// A batch planned at an older revision is refused, naming both revisions.
pub fn a_stale_batch_is_refused_with_both_revisions(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let planned = store.tenant(T).unwrap().revision;
    let actual = put(&mut *store, &[&tool("a", "first")]);
    let late = tool("b", "late");
    let batch = WriteBatch {
        base_revision: planned,
        upserts: upserts(&[&late]),
        ..WriteBatch::default()
    };
    match store.write(T, &batch).unwrap_err() {
        StoreError::Stale {
            tenant,
            planned: p,
            actual: a,
        } => {
            assert_eq!((tenant.as_str(), p, a), (T, planned, actual));
        }
        other => panic!("expected Stale, got {other}"),
    }
    assert_eq!(names(&store.all_drafts(T).unwrap()), ["a"]);
}

/// An empty batch, or one that only refreshes file hashes, moves no revision.
pub fn a_write_that_changes_nothing_bumps_nothing(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let t = tool("crm-lookup", "x");
    let revision = put(&mut *store, &[&t]);
    let store_revision = store.revision().unwrap();
    let empty = WriteBatch {
        base_revision: revision,
        ..WriteBatch::default()
    };
    assert_eq!(store.write(T, &empty).unwrap(), revision);
    let refresh = WriteBatch {
        base_revision: revision,
        refresh: vec![HashRefresh {
            id: id(&t),
            file_hash: "file:reformatted".to_string(),
        }],
        ..WriteBatch::default()
    };
    assert_eq!(store.write(T, &refresh).unwrap(), revision);
    assert_eq!(store.revision().unwrap(), store_revision);
    let (at, index) = store.index(T).unwrap();
    assert_eq!(at, revision);
    assert_eq!(index.get(&id(&t)).unwrap().file_hash, "file:reformatted");
    assert_eq!(index.get(&id(&t)).unwrap().revision, 1);
}

/// Writing a resource again moves its revision only when its content changed; a delete removes it.
pub fn a_resource_revision_moves_only_with_its_content(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let t = tool("crm-lookup", "x");
    put(&mut *store, &[&t]);
    put(&mut *store, &[&t]);
    let entry_revision = |s: &dyn Store| s.index(T).unwrap().1.get(&id(&t)).map(|e| e.revision);
    assert_eq!(entry_revision(&*store), Some(1), "same content");
    put(&mut *store, &[&tool("crm-lookup", "changed")]);
    assert_eq!(entry_revision(&*store), Some(2), "new content");
    delete(&mut *store, &[id(&t)]);
    assert_eq!(entry_revision(&*store), None);
    assert!(store.all_drafts(T).unwrap().is_empty());
}

/// A draft's first writer is its creator; its last editor and time move only with its content.
pub fn drafts_record_their_creator_and_last_change(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let write_as = |store: &mut dyn Store, r: &Resource, by: &str| {
        let batch = WriteBatch {
            base_revision: store.tenant(T).unwrap().revision,
            upserts: upserts(&[r]),
            actor: Some(by.to_string()),
            ..WriteBatch::default()
        };
        store.write(T, &batch).unwrap();
    };
    let t = tool("crm-lookup", "x");
    write_as(&mut *store, &t, "root");
    let ids = [id(&t), "tol_unknown".to_string()];
    let first = store.draft_stamps(T, &ids).unwrap();
    assert_eq!(first.len(), 1, "unknown IDs are left out: {first:?}");
    assert_eq!(first[0].id, id(&t));
    assert_eq!(first[0].revision, 1);
    assert_eq!(first[0].created_by.as_deref(), Some("root"));
    assert_eq!(first[0].updated_by.as_deref(), Some("root"));
    assert!(first[0].updated_at.ends_with('Z'), "{first:?}");
    // The same content again changes nothing of it.
    write_as(&mut *store, &t, "someone-else");
    assert_eq!(store.draft_stamps(T, &ids).unwrap(), first);
    write_as(&mut *store, &tool("crm-lookup", "changed"), "root");
    let second = store.draft_stamps(T, &ids).unwrap();
    assert_eq!(second[0].revision, 2);
    assert_eq!(second[0].created_by.as_deref(), Some("root"));
    assert!(second[0].updated_at >= first[0].updated_at);
}

/// Every write bumps the store revision and records it on its tenant only.
pub fn a_write_moves_only_its_own_tenant(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    tenant(&mut *store, "acme-prod");
    let other = store.tenant("acme-prod").unwrap();
    let before = store.revision().unwrap();
    let revision = put(&mut *store, &[&tool("a", "x")]);
    assert!(revision > before);
    assert_eq!(store.revision().unwrap(), revision);
    assert_eq!(store.tenant(T).unwrap().revision, revision);
    assert_eq!(store.tenant("acme-prod").unwrap(), other);
    assert!(store.all_drafts("acme-prod").unwrap().is_empty());
}

/// The commit a batch came from is recorded; the same commit again changes nothing.
pub fn the_source_commit_is_recorded_once(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let base = store.tenant(T).unwrap().revision;
    let batch = |base_revision| WriteBatch {
        base_revision,
        commit: Some("c0ffee".to_string()),
        ..WriteBatch::default()
    };
    let after = store.write(T, &batch(base)).unwrap();
    assert!(after > base, "a new commit is a change");
    assert_eq!(
        store.tenant(T).unwrap().last_commit.as_deref(),
        Some("c0ffee")
    );
    assert_eq!(store.write(T, &batch(after)).unwrap(), after);
}

// ---- versions and the publish log ------------------------------------------

/// Versions written as they are (by `put_versions` or inside a write) come back by ID, then number.
pub fn versions_are_kept_as_written(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a1, a2, b1) = (tool("a", "1"), tool("a", "2"), tool("b", "1"));
    let version = |r: &Resource, n: u64| VersionRecord {
        id: id(r),
        version: n,
        resource: r.clone(),
        change_id: Some(format!("chg_{n}")),
        published_at: "2026-01-01T00:00:00Z".to_string(),
    };
    store
        .put_versions(T, &[version(&a2, 2), version(&a1, 1)])
        .unwrap();
    let batch = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        upserts: upserts(&[&b1]),
        versions: vec![version(&b1, 1)],
        ..WriteBatch::default()
    };
    store.write(T, &batch).unwrap();
    let mut ids = vec![id(&b1), id(&a1)];
    ids.sort();
    let mut expected = vec![version(&b1, 1), version(&a1, 1), version(&a2, 2)];
    expected.sort_by(|x, y| (&x.id, x.version).cmp(&(&y.id, y.version)));
    assert_eq!(store.versions(T, &ids).unwrap(), expected);
    let mut production = vec![a2, b1];
    production.sort_by(|x, y| x.id().cmp(&y.id()));
    assert_eq!(store.production(T).unwrap(), production);
}

/// Publishes are numbered from 1, listed newest first, and found by change ID.
pub fn publish_numbers_count_from_one(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let t = tool("crm-lookup", "x");
    put(&mut *store, &[&t]);
    assert_eq!(store.next_publish_number(T).unwrap(), 1);
    assert!(store.publishes(T).unwrap().is_empty());
    store
        .publish(T, &record(1, "chg_one", &[&t]), &published(&[&t]))
        .unwrap();
    assert_eq!(store.next_publish_number(T).unwrap(), 2);
    store.publish(T, &record(2, "chg_two", &[]), &[]).unwrap();
    let log = store.publishes(T).unwrap();
    assert_eq!(
        log,
        vec![record(2, "chg_two", &[]), record(1, "chg_one", &[&t])]
    );
    assert!(store.has_publish(T, "chg_one").unwrap());
    assert!(!store.has_publish(T, "chg_three").unwrap());
    assert_eq!(store.next_publish_number(T).unwrap(), 3);
}

/// A publish whose number is not the next one is refused and writes nothing.
pub fn a_publish_with_a_wrong_number_is_refused(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let t = tool("crm-lookup", "x");
    put(&mut *store, &[&t]);
    store
        .publish(T, &record(1, "chg_one", &[&t]), &published(&[&t]))
        .unwrap();
    let changed = tool("crm-lookup", "changed");
    for wrong in [1, 3] {
        let err = store
            .publish(T, &record(wrong, "chg_x", &[]), &published(&[&changed]))
            .unwrap_err();
        assert!(matches!(err, StoreError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("next publish is 2"), "{err}");
    }
    assert_eq!(store.publishes(T).unwrap().len(), 1);
    assert_eq!(store.production(T).unwrap(), vec![t]);
}

/// Production is the latest published version of each resource still published.
pub fn production_is_the_latest_published_version(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a, b) = (tool("a", "1"), tool("b", "1"));
    store
        .publish(T, &record(1, "chg_1", &[&a, &b]), &published(&[&a, &b]))
        .unwrap();
    let a2 = tool("a", "2");
    let gone = PublishedVersion {
        id: id(&b),
        resource: None,
    };
    let mut second = published(&[&a2]);
    second.push(gone);
    store.publish(T, &record(2, "chg_2", &[]), &second).unwrap();
    assert_eq!(store.production(T).unwrap(), vec![a2.clone()]);
    let of = store
        .production_of(T, &[id(&b), id(&a), id(&a), "tol_unknown".to_string()])
        .unwrap();
    assert_eq!(of, vec![a2], "deleted and unknown IDs are left out");
    let history = store.versions(T, &[id(&b)]).unwrap();
    let numbers: Vec<u64> = history.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1], "a deletion is not a version of the resource");
}

/// `publish_changes` gives each version a publish wrote beside production before it.
pub fn publish_changes_pair_each_version_with_the_one_before(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a, b) = (tool("a", "1"), tool("b", "1"));
    store
        .publish(T, &record(1, "chg_1", &[&a]), &published(&[&a]))
        .unwrap();
    let a2 = tool("a", "2");
    store
        .publish(T, &record(2, "chg_2", &[&b]), &published(&[&a2, &b]))
        .unwrap();
    let pairs = store.publish_changes(T, "chg_2").unwrap();
    let seen: Vec<(String, Option<Resource>, Option<Resource>)> = pairs
        .into_iter()
        .map(|p| (p.id, p.before, p.after))
        .collect();
    let mut expected = vec![
        (id(&a), Some(a.clone()), Some(a2)),
        (id(&b), None, Some(b.clone())),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(seen, expected);
    let err = store.publish_changes(T, "chg_unknown").unwrap_err();
    assert!(err.to_string().contains("chg_unknown"), "{err}");
}

/// Drafts read in chunks are every draft, by ID, no chunk larger than
/// asked; the reading stops when the reader says so.
pub fn drafts_come_in_chunks_by_id(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let made: Vec<Resource> = (0..7).map(|i| tool(&format!("t{i}"), "1")).collect();
    put(&mut *store, &made.iter().collect::<Vec<_>>());
    let mut all = store.all_drafts(T).unwrap();
    all.sort_by(|a, b| a.id().cmp(&b.id()));
    let mut chunks: Vec<Vec<Resource>> = Vec::new();
    store
        .drafts_chunked(T, 3, &mut |part| {
            chunks.push(part);
            true
        })
        .unwrap();
    assert_eq!(
        chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(chunks.concat(), all);
    let mut seen = 0;
    store
        .drafts_chunked(T, 2, &mut |part| {
            seen += part.len();
            false
        })
        .unwrap();
    assert_eq!(seen, 2, "the reader stopped after the first chunk");
    let err = store
        .drafts_chunked("no-such-tenant", 2, &mut |_| true)
        .unwrap_err();
    assert!(err.to_string().contains("no-such-tenant"), "{err}");
}

/// The tenant's record counts its drafts through every kind of write:
/// new and updated drafts, deletes, both in one batch, and a batch of
/// thousands.
pub fn the_tenant_keeps_its_resource_count(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let counted = |store: &dyn Store| {
        let record = store.tenant(T).unwrap();
        let listed = store.tenants().unwrap();
        let listed = listed.iter().find(|t| t.name == T).unwrap().resources;
        assert_eq!(record.resources, listed);
        assert_eq!(store.resource_count(T).unwrap() as u64, record.resources);
        assert_eq!(store.all_drafts(T).unwrap().len() as u64, record.resources);
        record.resources
    };
    assert_eq!(counted(&*store), 0);
    let (a, b, c, d) = (
        tool("a", "1"),
        tool("b", "1"),
        tool("c", "1"),
        tool("d", "1"),
    );
    put(&mut *store, &[&a, &b]);
    assert_eq!(counted(&*store), 2);
    put(&mut *store, &[&tool("a", "2"), &c]);
    assert_eq!(counted(&*store), 3);
    let batch = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        upserts: upserts(&[&d, &d]),
        deletes: vec![id(&b), "tool_not_there".into()],
        ..WriteBatch::default()
    };
    store.write(T, &batch).unwrap();
    assert_eq!(counted(&*store), 3, "d added twice counts once; b deleted");
    let many: Vec<Resource> = (0..4100).map(|i| tool(&format!("m{i}"), "1")).collect();
    put(&mut *store, &many.iter().collect::<Vec<_>>());
    assert_eq!(counted(&*store), 4103);
    delete(&mut *store, &many.iter().map(id).collect::<Vec<_>>());
    assert_eq!(counted(&*store), 3);
}

/// The staging stamp, where a back end keeps one, stays while only reads
/// happen and moves with every write, version put and publish (a publish
/// leaves the tenant's revision alone), and an unknown tenant is refused by
/// name; a back end without one says so the same way every time.
pub fn the_staging_stamp_moves_with_every_change(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let stamp = |store: &dyn Store| store.staging_stamp(T).unwrap();
    match store.staging_stamp("no-such-tenant") {
        Ok(none) => assert!(none.is_none() && stamp(&*store).is_none()),
        Err(err) => assert!(err.to_string().contains("no-such-tenant"), "{err}"),
    }
    let a = tool("a", "1");
    let mut seen = vec![stamp(&*store)];
    put(&mut *store, &[&a]);
    seen.push(stamp(&*store));
    store.all_drafts(T).unwrap();
    store.index(T).unwrap();
    assert_eq!(stamp(&*store), seen[1], "reads leave the stamp alone");
    store
        .put_versions(
            T,
            &[VersionRecord {
                id: id(&a),
                version: 1,
                resource: a.clone(),
                change_id: Some("chg_1".into()),
                published_at: "2026-01-01T00:00:00Z".to_string(),
            }],
        )
        .unwrap();
    seen.push(stamp(&*store));
    let revision = store.tenant(T).unwrap().revision;
    let a2 = tool("a", "2");
    put(&mut *store, &[&a2]);
    seen.push(stamp(&*store));
    let revision_before_publish = store.tenant(T).unwrap().revision;
    store
        .publish(T, &record(1, "chg_2", &[]), &published(&[&a2]))
        .unwrap();
    seen.push(stamp(&*store));
    assert!(revision_before_publish > revision);
    if seen[0].is_none() {
        assert!(seen.iter().all(Option::is_none), "{seen:?}");
        return;
    }
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "every change moved it: {seen:?}"
    );
}

/// Drift is what changed after the last apply from git: edited, added and deleted resources.
pub fn drift_lists_what_changed_since_the_last_apply_from_git(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a, b) = (tool("a", "1"), tool("b", "1"));
    put(&mut *store, &[&a]);
    assert!(store.drift(T).unwrap().is_empty(), "never applied from git");
    let from_git = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        upserts: upserts(&[&a, &b]),
        commit: Some("c0ffee".to_string()),
        ..WriteBatch::default()
    };
    store.write(T, &from_git).unwrap();
    assert!(store.drift(T).unwrap().is_empty(), "just applied from git");
    let c = tool("c", "1");
    put(&mut *store, &[&tool("a", "edited"), &c]);
    delete(&mut *store, &[id(&b)]);
    let absent = |r: &Resource| Absent {
        kind: r.kind(),
        name: r.name().to_string(),
        id: id(r),
    };
    assert_eq!(
        store.drift(T).unwrap(),
        vec![absent(&a), absent(&b), absent(&c)]
    );
}

/// Where a back end says what changed since the last applied commit, each
/// change has its path then and now: renamed, created, deleted, edited.
/// Recording a commit again leaves nothing changed. (A back end that cannot
/// say answers `None`, and its exports read everything.)
pub fn changes_since_the_commit_say_where_each_file_was_and_is(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let (a, b, d) = (tool("a", "1"), tool("b", "1"), tool("d", "1"));
    let from_git = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        upserts: upserts(&[&a, &b, &d]),
        commit: Some("c0ffee".to_string()),
        ..WriteBatch::default()
    };
    store.write(T, &from_git).unwrap();
    let Some(none) = store.changes_since_commit(T).unwrap() else {
        return;
    };
    assert!(none.is_empty(), "just applied from git: {none:?}");
    let mut renamed = tool("a2", "1");
    renamed.metadata.id = Some(id(&a));
    let c = tool("c", "1");
    put(&mut *store, &[&renamed, &c, &tool("d", "edited")]);
    delete(&mut *store, &[id(&b)]);
    // Made and removed again since the commit: nothing to export.
    let e = tool("e", "1");
    put(&mut *store, &[&e]);
    delete(&mut *store, &[id(&e)]);
    let place = |n: &str| Some((Kind::Tool, n.to_string()));
    let mut changes = store.changes_since_commit(T).unwrap().unwrap();
    changes.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = vec![
        ferry::backend::store::CommitChange {
            id: id(&a),
            then: place("a"),
            now: place("a2"),
        },
        ferry::backend::store::CommitChange {
            id: id(&b),
            then: place("b"),
            now: None,
        },
        ferry::backend::store::CommitChange {
            id: id(&c),
            then: None,
            now: place("c"),
        },
        ferry::backend::store::CommitChange {
            id: id(&d),
            then: place("d"),
            now: place("d"),
        },
    ];
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(changes, want);
    let again = WriteBatch {
        base_revision: store.tenant(T).unwrap().revision,
        commit: Some("c0ffee2".to_string()),
        ..WriteBatch::default()
    };
    store.write(T, &again).unwrap();
    assert_eq!(store.changes_since_commit(T).unwrap(), Some(Vec::new()));
    assert!(
        store.drift(T).unwrap().is_empty(),
        "the commit holds the drafts"
    );
}

// ---- access ----------------------------------------------------------------

/// The first user of a store owns it; later users do not; a name is added once.
pub fn the_first_user_owns_the_store(fresh: &Fresh) {
    let mut store = fresh.open();
    assert!(store.access().unwrap().users.is_empty());
    let ada = store.add_user("ada").unwrap();
    assert_eq!(ada, user("ada", true));
    assert_eq!(store.add_user("bob").unwrap(), user("bob", false));
    let err = store.add_user("ada").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        store.access().unwrap().users,
        vec![user("ada", true), user("bob", false)]
    );
}

fn user(name: &str, owner: bool) -> UserRecord {
    UserRecord {
        name: name.to_string(),
        owner,
    }
}

/// A grant names a known user and tenant, and replaces that user's earlier grant there.
pub fn grants_name_known_users_and_tenants(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    tenant(&mut *store, "acme-prod");
    store.add_user("ada").unwrap();
    store.add_user("bob").unwrap();
    store.grant("bob", T, Role::Viewer).unwrap();
    store.grant("bob", T, Role::Editor).unwrap();
    store.grant("bob", "acme-prod", Role::Viewer).unwrap();
    store.grant("ada", T, Role::Admin).unwrap();
    let err = store.grant("mallory", T, Role::Owner).unwrap_err();
    assert!(err.to_string().contains("mallory"), "{err}");
    let err = store.grant("bob", "ghost", Role::Owner).unwrap_err();
    assert!(matches!(err, StoreError::NoTenant { .. }), "{err}");
    let grant = |user: &str, tenant: &str, role| Grant {
        user: user.to_string(),
        tenant: tenant.to_string(),
        role,
    };
    assert_eq!(
        store.access().unwrap().grants,
        vec![
            grant("ada", T, Role::Admin),
            grant("bob", T, Role::Editor),
            grant("bob", "acme-prod", Role::Viewer),
        ]
    );
}

/// A token is recorded and found by its hash; the token itself finds nothing.
pub fn tokens_are_found_by_their_hash_only(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    store.add_user("ada").unwrap();
    let token = "fy_secret_token_value";
    let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
    let recorded = store.add_token(&hash, "ada", Some(T), None).unwrap();
    assert_eq!(recorded.user, "ada");
    assert_eq!(recorded.tenant.as_deref(), Some(T));
    assert_eq!(recorded.id, format!("tok_{}", &hash[..12]));
    assert_eq!(store.token(&hash).unwrap(), Some(recorded));
    assert_eq!(store.token(token).unwrap(), None);
    let unbound = store
        .add_token("hash-two-000000", "ada", None, None)
        .unwrap();
    assert_eq!(unbound.tenant, None);
    let err = store
        .add_token("hash-three-0000", "mallory", None, None)
        .unwrap_err();
    assert!(err.to_string().contains("mallory"), "{err}");
    let err = store
        .add_token("hash-four-00000", "ada", Some("ghost"), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::NoTenant { .. }), "{err}");
    assert_eq!(store.token("hash-three-0000").unwrap(), None);
}

/// A token whose hash, or whose ID (the hash's first 12 digits), the store
/// already holds is refused, naming the ID, and the first stays as it was.
pub fn a_token_hash_and_id_are_recorded_once(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    store.add_user("ada").unwrap();
    let first = store
        .add_token("cccccccccccc-one", "ada", Some(T), None)
        .unwrap();
    for again in ["cccccccccccc-one", "cccccccccccc-two"] {
        let err = store.add_token(again, "ada", None, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tok_cccccccccccc") && text.contains("already recorded"),
            "{again}: {text}"
        );
    }
    let kept: Vec<_> = store
        .tokens()
        .unwrap()
        .into_iter()
        .filter(|t| t.id == first.id)
        .collect();
    assert_eq!(kept, vec![first.clone()]);
    assert_eq!(store.token("cccccccccccc-one").unwrap(), Some(first));
    assert_eq!(store.token("cccccccccccc-two").unwrap(), None);
}

/// Tokens are listed with their expiry and revoked once by ID (kept, with
/// the first revocation's time; an unknown ID is refused); nothing of this
/// moves the store revision.
pub fn tokens_are_listed_and_revoked_once_by_id(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    store.add_user("ada").unwrap();
    let before = store.revision().unwrap();
    // A remote store is reached with a token of its own, listed too.
    let mut listed_before = store.tokens().unwrap();
    let a = store
        .add_token(
            "aaaaaaaaaaaa-hash",
            "ada",
            Some(T),
            Some("2030-01-01T00:00:00Z"),
        )
        .unwrap();
    let b = store
        .add_token("bbbbbbbbbbbb-hash", "ada", None, None)
        .unwrap();
    assert_eq!(a.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
    let mut listed = store.tokens().unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    listed_before.extend([a.clone(), b.clone()]);
    listed_before.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, listed_before);

    let revoked = store.revoke_token(&a.id, "2026-01-01T00:00:00Z").unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = store.revoke_token(&a.id, "2026-06-01T00:00:00Z").unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert_eq!(store.token("aaaaaaaaaaaa-hash").unwrap(), Some(again));
    let err = store
        .revoke_token("tok_nothing", "2026-01-01T00:00:00Z")
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoToken { id } if id == "tok_nothing"),
        "{err:?}"
    );
    assert_eq!(store.token("bbbbbbbbbbbb-hash").unwrap(), Some(b));
    assert_eq!(store.revision().unwrap(), before);
}

/// A token is revoked at the time given, and its use is written only when
/// the last one is older than the interval (never for a revoked or unknown
/// token); nothing of this moves the store revision.
pub fn token_times_and_uses_are_recorded_as_given(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    store.add_user("ada").unwrap();
    let before = store.revision().unwrap();
    let a = store
        .add_token("aaaaaaaaaaaa-hash", "ada", Some(T), None)
        .unwrap();
    store
        .add_token("bbbbbbbbbbbb-hash", "ada", None, None)
        .unwrap();
    let revoked = store.revoke_token(&a.id, "2026-01-01T00:00:00Z").unwrap();
    assert_eq!(revoked.revoked_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    let again = store.revoke_token(&a.id, "2026-06-01T00:00:00Z").unwrap();
    assert_eq!(again.revoked_at.as_deref(), Some("2026-01-01T00:00:00Z"));

    let touch = |s: &mut dyn Store, at: &str, not_before: &str| {
        s.touch_token("bbbbbbbbbbbb-hash", at, not_before).unwrap()
    };
    assert!(touch(
        &mut *store,
        "2026-01-01T00:00:00Z",
        "2025-12-31T23:59:00Z"
    ));
    assert!(!touch(
        &mut *store,
        "2026-01-01T00:00:30Z",
        "2025-12-31T23:59:30Z"
    ));
    assert!(!touch(
        &mut *store,
        "2026-01-01T00:01:00Z",
        "2026-01-01T00:00:00Z"
    ));
    assert!(touch(
        &mut *store,
        "2026-01-01T00:01:01Z",
        "2026-01-01T00:00:01Z"
    ));
    let used = store.token("bbbbbbbbbbbb-hash").unwrap().unwrap();
    assert_eq!(used.last_used_at.as_deref(), Some("2026-01-01T00:01:01Z"));
    // A revoked or unknown token's use is not written.
    assert!(!store
        .touch_token(
            "aaaaaaaaaaaa-hash",
            "2026-02-01T00:00:00Z",
            "2026-01-31T00:00:00Z"
        )
        .unwrap());
    assert!(!store
        .touch_token("unknown", "2026-02-01T00:00:00Z", "2026-01-31T00:00:00Z")
        .unwrap());
    assert_eq!(store.revision().unwrap(), before);
}

/// Sessions are found by their hash, refused for an unknown user, and
/// removed one by one; removing one also drops every expired session.
pub fn sessions_are_kept_by_hash_and_expire(fresh: &Fresh) {
    let mut store = fresh.open();
    store.add_user("ada").unwrap();
    let session = |hash: &str, expires_at: i64| ferry::backend::store::SessionRecord {
        hash: hash.into(),
        user: "ada".into(),
        token_hash: "token-hash".into(),
        expires_at,
    };
    store.add_session(&session("live", 1_000)).unwrap();
    store.add_session(&session("old", 10)).unwrap();
    assert_eq!(store.session("live").unwrap(), Some(session("live", 1_000)));
    assert_eq!(store.session("nope").unwrap(), None);
    let mut ghost = session("ghost", 1_000);
    ghost.user = "mallory".into();
    let err = store.add_session(&ghost).unwrap_err();
    assert!(err.to_string().contains("mallory"), "{err}");
    assert!(!store.remove_session("nope", 100).unwrap());
    assert_eq!(
        store.session("old").unwrap(),
        None,
        "expired at 10, removed at 100"
    );
    assert!(store.session("live").unwrap().is_some());
    assert!(store.remove_session("live", 100).unwrap());
    assert_eq!(store.session("live").unwrap(), None);
}

// ---- sync records ----------------------------------------------------------

/// Sync records are kept per tenant and source, replaced per resource, listed by local ID.
pub fn sync_records_are_kept_per_source(fresh: &Fresh) {
    let mut store = fresh.open();
    tenant(&mut *store, T);
    let sync = |local: &str, revision| SyncRecord {
        local_id: local.to_string(),
        origin_id: format!("origin-{local}"),
        revision,
        content_hash: format!("hash-{revision}"),
    };
    store
        .record_syncs(T, "zip:one", &[sync("tol_b", 1), sync("tol_a", 1)])
        .unwrap();
    store
        .record_syncs(T, "zip:one", &[sync("tol_b", 2)])
        .unwrap();
    store
        .record_syncs(T, "https://other", &[sync("tol_c", 1)])
        .unwrap();
    assert_eq!(
        store.sync_records(T, "zip:one").unwrap(),
        vec![sync("tol_a", 1), sync("tol_b", 2)]
    );
    assert_eq!(
        store.sync_records(T, "https://other").unwrap(),
        vec![sync("tol_c", 1)]
    );
    assert!(store.sync_records(T, "zip:none").unwrap().is_empty());
    let err = store.record_syncs("ghost", "zip:one", &[sync("tol_a", 1)]);
    assert!(matches!(err, Err(StoreError::NoTenant { .. })));
}

// ---- read snapshots --------------------------------------------------------

/// Between `begin_read` and `end_read` a reader sees one committed state, whatever others write.
pub fn a_read_snapshot_sees_one_state(fresh: &Fresh) {
    let mut writer = fresh.open();
    tenant(&mut *writer, T);
    put(&mut *writer, &[&tool("a", "1")]);
    let reader = fresh.open();
    reader.begin_read().unwrap();
    let (revision, index) = entries(&*reader);
    put(&mut *writer, &[&tool("b", "1")]);
    writer.publish(T, &record(1, "chg_1", &[]), &[]).unwrap();
    assert_eq!(entries(&*reader), (revision, index));
    assert_eq!(names(&reader.all_drafts(T).unwrap()), ["a"]);
    assert!(reader.publishes(T).unwrap().is_empty());
    reader.end_read().unwrap();
    let (after, index_after) = reader.index(T).unwrap();
    assert!(after > revision);
    assert_eq!(index_after.len(), 2);
    assert_eq!(reader.publishes(T).unwrap().len(), 1);
}

// ---- tenant housekeeping ---------------------------------------------------

/// The store's [`TenantAdmin`]: every back end has one.
fn admin(store: &mut dyn Store) -> &mut dyn TenantAdmin {
    store
        .tenant_admin_mut()
        .expect("the back end keeps tenant variables and deletes tenants")
}

/// Variables are kept per tenant as ciphertext, listed by name only and
/// sorted; setting again replaces; unsetting says whether one was set.
pub fn variables_are_kept_per_tenant_by_name(fresh: &Fresh) {
    let mut store = fresh.open();
    let keys = tenant(&mut *store, T);
    tenant(&mut *store, "acme-prod");
    let revision = store.revision().unwrap();
    let enc = |v: &[u8]| encrypt(&keys.recipient, v).unwrap();
    admin(&mut *store)
        .set_variable(T, "ZETA", &enc(b"z"))
        .unwrap();
    admin(&mut *store)
        .set_variable(T, "CRM_API_KEY", &enc(b"one"))
        .unwrap();
    admin(&mut *store)
        .set_variable(T, "CRM_API_KEY", &enc(b"two"))
        .unwrap();
    let read = fresh.open();
    let admin_of = |s: &dyn Store, t: &str| s.tenant_admin().unwrap().variable_names(t).unwrap();
    assert_eq!(admin_of(&*read, T), ["CRM_API_KEY", "ZETA"]);
    assert!(admin_of(&*read, "acme-prod").is_empty());
    assert!(admin(&mut *store).unset_variable(T, "ZETA").unwrap());
    assert!(!admin(&mut *store).unset_variable(T, "ZETA").unwrap());
    assert_eq!(admin_of(&*read, T), ["CRM_API_KEY"]);
    let err = admin(&mut *store)
        .set_variable("ghost", "X", &enc(b"x"))
        .unwrap_err();
    assert!(matches!(err, StoreError::NoTenant { .. }), "{err}");
    let err = admin(&mut *store).unset_variable("ghost", "X").unwrap_err();
    assert!(matches!(err, StoreError::NoTenant { .. }), "{err}");
    // Variables are not drafts: they move no revision, so no plan goes stale.
    assert_eq!(store.revision().unwrap(), revision);
}

/// Deleting a tenant removes its drafts, versions, publishes, variables,
/// sync records, grants and bound tokens in one step, moves the store
/// revision, leaves other tenants alone, and frees the name.
pub fn deleting_a_tenant_removes_everything_it_holds(fresh: &Fresh) {
    let mut store = fresh.open();
    let keys = tenant(&mut *store, T);
    let prod_keys = tenant(&mut *store, "acme-prod");
    let a = tool("a", "1");
    put(&mut *store, &[&a]);
    store
        .publish(T, &record(1, "chg_1", &[&a]), &published(&[&a]))
        .unwrap();
    let other = WriteBatch {
        base_revision: store.tenant("acme-prod").unwrap().revision,
        upserts: upserts(&[&a]),
        ..WriteBatch::default()
    };
    store.write("acme-prod", &other).unwrap();
    let secret = encrypt(&keys.recipient, b"v").unwrap();
    admin(&mut *store).set_variable(T, "X", &secret).unwrap();
    let prod_secret = encrypt(&prod_keys.recipient, b"v").unwrap();
    admin(&mut *store)
        .set_variable("acme-prod", "X", &prod_secret)
        .unwrap();
    let sync = SyncRecord {
        local_id: id(&a),
        origin_id: "origin".into(),
        revision: 1,
        content_hash: "h".into(),
    };
    store.record_syncs(T, "zip:one", &[sync]).unwrap();
    store.add_user("ada").unwrap();
    store.grant("ada", T, Role::Editor).unwrap();
    store.grant("ada", "acme-prod", Role::Viewer).unwrap();
    store.add_token("bound", "ada", Some(T), None).unwrap();
    store.add_token("free", "ada", None, None).unwrap();
    let before = store.revision().unwrap();

    admin(&mut *store).delete_tenant(T).unwrap();
    assert!(store.revision().unwrap() > before);
    let names: Vec<String> = store
        .tenants()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme-prod"]);
    assert!(matches!(store.tenant(T), Err(StoreError::NoTenant { .. })));
    let grants = store.access().unwrap().grants;
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].tenant, "acme-prod");
    assert_eq!(store.token("bound").unwrap(), None);
    assert!(store.token("free").unwrap().is_some());
    assert_eq!(store.all_drafts("acme-prod").unwrap().len(), 1);
    let prod_vars = store
        .tenant_admin()
        .unwrap()
        .variable_names("acme-prod")
        .unwrap();
    assert_eq!(prod_vars, ["X"]);

    // The name is free again, and the new tenant starts empty.
    tenant(&mut *store, T);
    assert!(store.all_drafts(T).unwrap().is_empty());
    assert!(store.versions(T, &[id(&a)]).unwrap().is_empty());
    assert!(store.publishes(T).unwrap().is_empty());
    assert!(store.sync_records(T, "zip:one").unwrap().is_empty());
    assert!(store
        .tenant_admin()
        .unwrap()
        .variable_names(T)
        .unwrap()
        .is_empty());
    let err = admin(&mut *store).delete_tenant("ghost").unwrap_err();
    assert!(matches!(err, StoreError::NoTenant { .. }), "{err}");
}

/// SQLite's staging stamp is built from the tenant's revision, which a
/// loaded image carries from another store: a tenant replaced by one with
/// the same revision and publish number but other drafts still gets a new
/// stamp (the store counts its loads), so a kept diff is never served for it.
#[test]
fn a_tenant_loaded_from_another_store_gets_a_new_staging_stamp() {
    use ferry::backend::store::image::ImageStore;
    use ferry::backend::store::sqlite::SqliteStore;
    use ferry::backend::store::ResourceStore;
    let dir = tempfile::tempdir().unwrap();
    let with_tool = |file: &str, description: &str| {
        let mut store = SqliteStore::open(&dir.path().join(file)).unwrap();
        tenant(&mut store, T);
        put(&mut store, &[&tool("a", description)]);
        store
    };
    let mut here = with_tool("here.db", "here");
    let there = with_tool("there.db", "there");
    let revision = here.tenant(T).unwrap().revision;
    assert_eq!(there.tenant(T).unwrap().revision, revision);
    let before = here.staging_stamp(T).unwrap();
    assert!(before.is_some());
    let image = there.dump(Some(&[T.to_string()])).unwrap();
    here.load(&image, true).unwrap();
    assert_eq!(here.tenant(T).unwrap().revision, revision, "carried");
    assert_eq!(here.all_drafts(T).unwrap(), there.all_drafts(T).unwrap());
    let after = here.staging_stamp(T).unwrap();
    assert!(after.is_some());
    assert_ne!(after, before);
}
