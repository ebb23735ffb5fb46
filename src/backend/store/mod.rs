//! The store: the live state of the platform, behind a trait.
//!
//! A store holds tenants (with their age key pair), each tenant's resources
//! as drafts (version 0) with published versions, the commit a tenant was
//! last applied from, and a store revision that every write bumps. The core
//! reads a tenant's [`Index`] and the drafts a plan needs, and hands back a
//! [`WriteBatch`] that the store applies in one transaction.
//!
//! The contract is four traits, each a part a back end implements:
//! [`ResourceStore`] (tenants, index, drafts, the one `write`, read
//! snapshots), [`PublishStore`] (versions, production, the publish log,
//! drift), [`AccessStore`] (users, grants, token hashes) and [`SyncStore`]
//! (sync records). [`Store`] is all four, implemented for every type that
//! has them. A fifth part, [`TenantAdmin`] (tenant variables and tenant
//! deletion), is handed out by [`ResourceStore::tenant_admin`] where a back
//! end has it; both back ends here do. `tests/it/conformance.rs` states the
//! contract as tests that every back end runs.
//!
//! Implementations, one folder per back end: [`sqlite::SqliteStore`] (the
//! default, an embedded file) and [`postgres::PostgresStore`] (a database
//! server that several `ferry serve` instances share).

pub mod image;
pub mod postgres;
pub mod remote;
pub mod sqlite;

use std::borrow::Cow;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::access::{AccessState, Role, UserRecord};
use crate::domain::model::{Kind, Resource};
use crate::domain::plan::{Absent, HashRefresh};
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::secrets::KeyPair;
use crate::domain::state::{Index, IndexEntry};
use crate::domain::validate::IdNames;

/// An error of the store. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one ferry knows.
    #[error(
        "unsupported store URL `{url}`: expected `sqlite:PATH`, `postgres://USER@HOST:PORT/DB` or `http(s)://HOST[:PORT]` (a ferry serve)"
    )]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The tenant does not exist.
    #[error("tenant `{tenant}` does not exist in the store")]
    NoTenant {
        /// The tenant asked for.
        tenant: String,
    },
    /// No token has this ID.
    #[error("no token has the ID `{id}`\nhint: `ferry token list` shows the IDs")]
    NoToken {
        /// The ID asked for.
        id: String,
    },
    /// The tenant exists already.
    #[error("tenant `{tenant}` already exists in the store")]
    TenantExists {
        /// The tenant asked for.
        tenant: String,
    },
    /// The tenant changed since the plan was made.
    #[error("tenant `{tenant}` changed since the plan was made (plan revision {planned}, store revision {actual}); make a new plan")]
    Stale {
        /// The tenant.
        tenant: String,
        /// The revision the plan was made against.
        planned: u64,
        /// The revision the store is at.
        actual: u64,
    },
    /// Another writer holds the store.
    #[error("another apply to tenant `{tenant}` is running; try again when it has finished")]
    Busy {
        /// The tenant.
        tenant: String,
    },
    /// A stored row does not decode.
    #[error("stored resource `{id}` of tenant `{tenant}` is damaged: {reason}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The resource.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule of the store refused the write.
    #[error("{message}")]
    Refused {
        /// What was refused, and why.
        message: String,
    },
    /// The database failed.
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database server failed a query.
    #[error("store database error: {message}")]
    Database {
        /// The database's message.
        message: String,
    },
    /// The database server cannot be reached (down, restarting, or the connection was lost).
    #[error("the store database is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The store's schema was written by a newer ferry.
    #[error("the store's schema is version {found}, newer than this ferry knows (version {known}); upgrade ferry to use this store")]
    SchemaTooNew {
        /// The version in the store.
        found: u32,
        /// The newest version this binary knows.
        known: u32,
    },
    /// The `ferry serve` of a remote store cannot be reached.
    #[error("cannot reach the ferry server at {url}: {reason}\nhint: check that `ferry serve` runs there, that the store URL (--store or FERRY_STORE) names it, and that this machine can connect to it")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The `ferry serve` of a remote store refused or failed a request.
    #[error("{message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Remote {
        /// The HTTP status (0: refused before any request).
        status: u16,
        /// The server's error code, e.g. `forbidden`.
        code: String,
        /// The server's message.
        message: String,
        /// The server's hint.
        hint: Option<String>,
    },
    /// The store file could not be created.
    #[error("cannot open store at {path}: {reason}")]
    Open {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// The stable code front ends answer with (`{"error": {"code": ...}}`).
    pub fn code(&self) -> &str {
        match self {
            StoreError::Remote { code, .. } => code,
            StoreError::NoTenant { .. } => "tenant_not_found",
            StoreError::NoToken { .. } => "token_not_found",
            StoreError::TenantExists { .. } => "tenant_exists",
            StoreError::Stale { .. } => "stale",
            StoreError::Busy { .. } => "busy",
            StoreError::Refused { .. } => "refused",
            StoreError::Unavailable { .. } | StoreError::Unreachable { .. } => "store_unavailable",
            StoreError::SchemaTooNew { .. } => "schema_too_new",
            StoreError::BadUrl { .. } => "bad_store_url",
            StoreError::Corrupt { .. }
            | StoreError::Sqlite(_)
            | StoreError::Database { .. }
            | StoreError::Open { .. } => "internal",
        }
    }
}

/// A tenant as a listing shows it, on the CLI (`tenant list`, with its
/// folder) and over HTTP (`GET /api/tenants`, with the caller's role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantListing {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: TenantRecord,
    /// Its folder in the repo, relative to the repo root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The caller's role on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::domain::access::Role>,
}

/// One resource that changed since the tenant's last applied commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChange {
    /// Its ID.
    pub id: String,
    /// Its kind and name at the commit (`None`: created since).
    pub then: Option<(Kind, String)>,
    /// Its kind and name now (`None`: deleted since).
    pub now: Option<(Kind, String)>,
}

/// A tenant as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    /// Name, e.g. `acme-dev`.
    pub name: String,
    /// Environment, e.g. `dev`.
    pub environment: Option<String>,
    /// The age public key.
    pub recipient: String,
    /// The store revision of the tenant's last write.
    pub revision: u64,
    /// The git commit the tenant was last applied from.
    pub last_commit: Option<String>,
    /// Number of resources.
    pub resources: u64,
}

/// A draft a [`WriteBatch`] writes: borrowed from the plan it came from, or
/// owned (a batch that arrived over the wire). Two words, however large a
/// resource is, so that a batch of 100,000 upserts stays small.
#[derive(Debug, Clone)]
pub enum BatchDraft<'a> {
    /// A resource someone else holds (a plan made in this process).
    Borrowed(&'a Resource),
    /// A resource of the batch's own.
    Owned(Box<Resource>),
}

impl std::ops::Deref for BatchDraft<'_> {
    type Target = Resource;

    fn deref(&self) -> &Resource {
        match self {
            BatchDraft::Borrowed(r) => r,
            BatchDraft::Owned(r) => r,
        }
    }
}

impl<'a> From<Cow<'a, Resource>> for BatchDraft<'a> {
    fn from(r: Cow<'a, Resource>) -> Self {
        match r {
            Cow::Borrowed(r) => BatchDraft::Borrowed(r),
            Cow::Owned(r) => BatchDraft::Owned(Box::new(r)),
        }
    }
}

/// Everything one apply writes, in order, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch<'a> {
    /// The tenant revision the batch was planned against.
    pub base_revision: u64,
    /// Resources to create or update (stored form), with their unit hashes.
    pub upserts: Vec<(BatchDraft<'a>, String)>,
    /// IDs to delete.
    pub deletes: Vec<String>,
    /// File hashes to refresh (content unchanged).
    pub refresh: Vec<HashRefresh>,
    /// The commit the tree came from, to record.
    pub commit: Option<String>,
    /// Published versions to record as they are (promotion carries a history).
    pub versions: Vec<VersionRecord>,
    /// Sync records to write in the same transaction (ZIP import, live sync).
    pub syncs: Option<SyncWrite>,
    /// Who writes the batch: recorded as the creator of each draft it
    /// creates and the last editor of each draft whose content it changes.
    /// A remote store's server puts its caller here, whatever the client sent.
    pub actor: Option<String>,
}

/// The columns a store derives from a draft it writes: the canonical JSON
/// document, its content hash, and its references, space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DraftColumns {
    /// The canonical JSON of the resource (stored form).
    pub document: String,
    /// The content hash of the resource.
    pub hash: String,
    /// The IDs it references, space-separated.
    pub refs: String,
}

impl DraftColumns {
    /// The columns of `resource`.
    pub(crate) fn of(resource: &Resource) -> DraftColumns {
        let (json, hash) = crate::domain::state::canonical(resource);
        let refs: Vec<String> = resource.refs().into_iter().map(|(_, r)| r).collect();
        DraftColumns {
            document: String::from_utf8(json).unwrap_or_default(),
            hash,
            refs: refs.join(" "),
        }
    }
}

/// How many upserts' columns are computed together, ahead of their rows.
const COLUMN_PART: usize = 2048;

/// Hand each upsert of `upserts` with its [`DraftColumns`] to `write`, in
/// order, on this thread (the one that holds the transaction). The columns
/// of the next part are computed on the other cores while `write` writes
/// the rows of the current one, so serializing and hashing a large batch
/// does not hold the store's write lock.
pub(crate) fn with_columns<E>(
    upserts: &[(BatchDraft<'_>, String)],
    write: &mut dyn FnMut(&Resource, &str, DraftColumns) -> Result<(), E>,
) -> Result<(), E> {
    use rayon::prelude::*;
    let columns_of = |part: &[(BatchDraft<'_>, String)]| -> Vec<DraftColumns> {
        part.par_iter().map(|(r, _)| DraftColumns::of(r)).collect()
    };
    if upserts.len() <= COLUMN_PART {
        for (resource, file_hash) in upserts {
            write(resource, file_hash, DraftColumns::of(resource))?;
        }
        return Ok(());
    }
    let parts: Vec<&[(BatchDraft<'_>, String)]> = upserts.chunks(COLUMN_PART).collect();
    std::thread::scope(|scope| {
        let mut ahead = parts.first().map(|p| scope.spawn(move || columns_of(p)));
        for (i, part) in parts.iter().enumerate() {
            let columns = match ahead.take().map(|h| h.join()) {
                Some(Ok(columns)) => columns,
                // The helper thread died: compute the part here instead.
                _ => columns_of(part),
            };
            if let Some(next) = parts.get(i + 1) {
                ahead = Some(scope.spawn(move || columns_of(next)));
            }
            let written = part
                .iter()
                .zip(columns)
                .try_for_each(|((resource, file_hash), c)| write(resource, file_hash, c));
            if let Err(e) = written {
                // Joined here, so that a helper that died cannot turn the
                // write's error into a panic when the scope ends.
                if let Some(h) = ahead.take() {
                    let _ = h.join();
                }
                return Err(e);
            }
        }
        Ok(())
    })
}

/// Who created a draft, and who last changed it and when, as the store
/// recorded them when the rows were written (`None` where it does not know:
/// rows written before the store kept it, or by a writer without a name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftStamp {
    /// The resource ID.
    pub id: String,
    /// The draft's revision (1 when created, one more at each change of its content).
    pub revision: u64,
    /// Who wrote the draft first.
    pub created_by: Option<String>,
    /// Who last changed its content.
    pub updated_by: Option<String>,
    /// When its content last changed, RFC 3339.
    pub updated_at: String,
}

/// The sync records of one import: for each local resource, its ID at the
/// source. The store records each one's revision and content hash as the
/// batch leaves them, inside the batch's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncWrite {
    /// Identifies the source: `<instance>/<tenant>`.
    pub source_key: String,
    /// `(local_id, origin_id)` of every resource the import settled.
    pub origins: Vec<(String, String)>,
}

/// One published version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// The resource ID.
    pub id: String,
    /// The version number, 1..n.
    pub version: u64,
    /// The resource as published (stored form).
    pub resource: Resource,
    /// The change (publish) that made this version, if recorded.
    pub change_id: Option<String>,
    /// When it was published, RFC 3339.
    pub published_at: String,
}

/// A fault injected into [`ResourceStore::write`], for tests of the one-transaction rule.
///
/// Not part of the store contract: a back end offers it through a
/// `#[doc(hidden)]` setter on its own type (see
/// [`sqlite::SqliteStore::set_write_fault`]), and [`open_with_fault`] sets it
/// for the binary's crash test.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// Abort the process once this many rows of a batch are written (0: before the first).
    AbortAfter(usize),
    /// Fail the write with [`StoreError::Refused`] once this many rows are written (0: before the first).
    FailAfter(usize),
}

impl WriteFault {
    /// Act on the fault, if `written` rows reach it.
    pub fn check(fault: Option<WriteFault>, written: usize) -> Result<(), StoreError> {
        match fault {
            Some(WriteFault::AbortAfter(n)) if written >= n => std::process::abort(),
            Some(WriteFault::FailAfter(n)) if written >= n => Err(StoreError::Refused {
                message: format!("injected fault after {written} writes"),
            }),
            _ => Ok(()),
        }
    }
}

/// Which index entries to look up: by path of their YAML file, by ID, by
/// kind and name, or every entry of a kind ([`ResourceStore::index_entries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexKeys {
    /// Paths of YAML units, e.g. `agents/support-bot.yaml`.
    pub paths: Vec<String>,
    /// Resource IDs.
    pub ids: Vec<String>,
    /// Kinds and names.
    pub names: Vec<(Kind, String)>,
    /// Kinds whose every entry is asked for (the agents of a tenant, say).
    pub kinds: Vec<Kind>,
}

impl IndexKeys {
    /// Whether no key is asked for.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
            && self.ids.is_empty()
            && self.names.is_empty()
            && self.kinds.is_empty()
    }

    /// Whether `entry` matches one of the keys.
    pub fn matches(&self, entry: &IndexEntry) -> bool {
        self.ids.contains(&entry.id)
            || self.kinds.contains(&entry.kind)
            || self
                .names
                .iter()
                .any(|(k, n)| *k == entry.kind && *n == entry.name)
            || self.paths.iter().any(|p| *p == entry.path())
    }

    /// The paths as kinds and names (a path that no resource could have is left out).
    pub fn path_names(&self) -> Vec<(Kind, String)> {
        self.paths
            .iter()
            .filter_map(|p| {
                let (folder, file) = p.split_once('/')?;
                let name = file.strip_suffix(".yaml")?;
                Some((Kind::from_step(folder)?, name.to_string()))
            })
            .collect()
    }
}

/// Tenants, their resources (drafts) and the one way to change them: [`ResourceStore::write`].
pub trait ResourceStore {
    /// Tenant variables and tenant deletion, when this store has them.
    fn tenant_admin(&self) -> Option<&dyn TenantAdmin> {
        None
    }
    /// [`ResourceStore::tenant_admin`], to write.
    fn tenant_admin_mut(&mut self) -> Option<&mut dyn TenantAdmin> {
        None
    }
    /// The remote store this is, when it is one: a use case that can hand
    /// work to the server (planning a tree) asks.
    fn remote(&self) -> Option<&remote::RemoteStore> {
        None
    }
    /// The store revision.
    fn revision(&self) -> Result<u64, StoreError>;
    /// The revision of a tenant's last write, refused as
    /// [`StoreError::NoTenant`] for an unknown tenant: [`ResourceStore::tenant`]
    /// without counting the tenant's resources, for reads that follow a
    /// change rather than the tenant's size.
    fn tenant_revision(&self, tenant: &str) -> Result<u64, StoreError> {
        Ok(self.tenant(tenant)?.revision)
    }
    /// Create a tenant with its key pair.
    fn create_tenant(
        &mut self,
        name: &str,
        environment: Option<&str>,
        keys: &KeyPair,
    ) -> Result<TenantRecord, StoreError>;
    /// Every tenant, by name.
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    /// One tenant.
    fn tenant(&self, name: &str) -> Result<TenantRecord, StoreError>;
    /// The tenant's private key, for decryption inside the store.
    fn identity(&self, tenant: &str) -> Result<String, StoreError>;
    /// The tenant's revision and index.
    fn index(&self, tenant: &str) -> Result<(u64, Index), StoreError>;
    /// The kind and name of each of the tenant's resources, by ID: all that
    /// rendering stored ID references as names needs. This default takes
    /// them from the whole index; back ends read only those three columns.
    fn id_names(&self, tenant: &str) -> Result<IdNames, StoreError> {
        Ok(IdNames::of_index(self.index(tenant)?.1))
    }
    /// How many resources of each kind the tenant holds, every kind in
    /// [`Kind::ALL`] order (none is 0). This default counts the names;
    /// back ends count in one grouped query.
    fn kind_counts(&self, tenant: &str) -> Result<Vec<(Kind, usize)>, StoreError> {
        let mut counts: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        for (_, kind, _) in self.id_names(tenant)?.iter() {
            add_to_kind(&mut counts, kind, 1);
        }
        Ok(counts)
    }
    /// The tenant's revision and the index entries that match `keys` (by
    /// path, by ID, or by kind and name), each once, in no set order. A
    /// plan that knows which units changed asks only for these, so its
    /// reads follow the change, not the tenant. Back ends answer with keyed
    /// queries; this default filters the whole index.
    fn index_entries(
        &self,
        tenant: &str,
        keys: &IndexKeys,
    ) -> Result<(u64, Vec<IndexEntry>), StoreError> {
        let (revision, index) = self.index(tenant)?;
        let entries = index
            .entries()
            .iter()
            .filter(|e| keys.matches(e))
            .cloned()
            .collect();
        Ok((revision, entries))
    }
    /// How many resource rows (index entries, drafts, changes) this
    /// connection's reads have returned so far, for back ends that count
    /// them (0 otherwise). The scale guard compares it across tenant sizes:
    /// a count of work, not a time.
    #[doc(hidden)]
    fn rows_read(&self) -> u64 {
        0
    }
    /// A stamp of what the tenant's staging and production are now: it
    /// changes with every write, publish and version put, and with a
    /// replaced tenant row, so a reader may keep what it derived from them
    /// while the stamp stays the same. `None`, without a read, when the
    /// back end keeps no such stamp (readers then derive afresh, and find
    /// an unknown tenant then); a back end that keeps one refuses an
    /// unknown tenant.
    fn staging_stamp(&self, _tenant: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// How many resources the tenant holds.
    fn resource_count(&self, tenant: &str) -> Result<usize, StoreError> {
        Ok(self.index(tenant)?.1.len())
    }
    /// The drafts of the given IDs (stored form); unknown IDs are left out.
    fn drafts(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError>;
    /// Every draft of the tenant (stored form).
    fn all_drafts(&self, tenant: &str) -> Result<Vec<Resource>, StoreError>;
    /// Every draft of the tenant (stored form, by ID) in chunks of at most
    /// `chunk`, handed to `each` in order until it returns `false`. A back
    /// end that can stream its rows decodes one chunk at a time, from one
    /// consistent read; the default reads them all first.
    fn drafts_chunked(
        &self,
        tenant: &str,
        chunk: usize,
        each: &mut dyn FnMut(Vec<Resource>) -> bool,
    ) -> Result<(), StoreError> {
        let mut all = self.all_drafts(tenant)?.into_iter();
        loop {
            let part: Vec<Resource> = all.by_ref().take(chunk.max(1)).collect();
            if part.is_empty() || !each(part) {
                return Ok(());
            }
        }
    }
    /// Who created and last changed the drafts of the given IDs, and when; unknown IDs are left out.
    fn draft_stamps(&self, tenant: &str, ids: &[String]) -> Result<Vec<DraftStamp>, StoreError>;
    /// Apply a batch in one transaction, refused as [`StoreError::Stale`]
    /// when the tenant moved past `batch.base_revision`; returns the new
    /// tenant revision (unchanged when the batch changes nothing).
    fn write(&mut self, tenant: &str, batch: &WriteBatch<'_>) -> Result<u64, StoreError>;
    /// Start a read snapshot: every read until [`ResourceStore::end_read`] sees the same state.
    fn begin_read(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// End the read snapshot started by [`ResourceStore::begin_read`].
    fn end_read(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// `root` and the IDs it references, transitively, from the index (a
    /// referenced ID without a resource is included; the walk stops there),
    /// sorted. The default walks one level of references per
    /// [`ResourceStore::index_entries`] lookup; a database server answers
    /// with one recursive query.
    fn reference_closure(&self, tenant: &str, root: &str) -> Result<Vec<String>, StoreError> {
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut level = vec![root.to_string()];
        while !level.is_empty() {
            level.retain(|id| seen.insert(id.clone()));
            if level.is_empty() {
                break;
            }
            let keys = IndexKeys {
                ids: std::mem::take(&mut level),
                ..IndexKeys::default()
            };
            let (_, entries) = self.index_entries(tenant, &keys)?;
            level = entries
                .iter()
                .flat_map(|e| e.refs.iter())
                .filter(|r| !seen.contains(*r))
                .cloned()
                .collect();
        }
        Ok(seen.into_iter().collect())
    }
    /// Whether reads are local work that never waits on another machine (a
    /// database file here, not a server over the network): a server may run
    /// such short reads in place rather than hand them to another thread.
    fn reads_are_local(&self) -> bool {
        false
    }
}

/// Tenant housekeeping: a tenant's variables (the values behind
/// `${vars.NAME}`, kept only as `ENC[age,…]` ciphertext encrypted to the
/// tenant's key, never returned) and deleting a tenant.
///
/// A store that has it hands it out through [`ResourceStore::tenant_admin`].
pub trait TenantAdmin {
    /// The names of the tenant's variables that have a value, sorted.
    fn variable_names(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Set a variable to `ciphertext` (an `ENC[age,…]` value encrypted to the tenant).
    fn set_variable(
        &mut self,
        tenant: &str,
        name: &str,
        ciphertext: &str,
    ) -> Result<(), StoreError>;
    /// Remove a variable; returns whether it was set.
    fn unset_variable(&mut self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// Delete a tenant and everything the store keeps of it (drafts,
    /// versions, the publish log, variables, sync records, grants, tokens
    /// bound to it), in one transaction that bumps the store revision.
    fn delete_tenant(&mut self, tenant: &str) -> Result<(), StoreError>;
    /// [`TenantAdmin::delete_tenant`], for a use case that checked the
    /// tenant at tenant revision `revision` (and its dependants, unless
    /// `force`). A local store just deletes it; a remote store sends both, so
    /// its server checks the role, the revision and the dependants again.
    fn delete_checked(
        &mut self,
        tenant: &str,
        revision: u64,
        force: bool,
    ) -> Result<(), StoreError> {
        let _ = (revision, force);
        self.delete_tenant(tenant)
    }
}

/// Published versions, production and the publish log (and drift from git).
pub trait PublishStore {
    /// Published versions of the given IDs, by ID then version number. A
    /// publish that took a resource out of production is not a version of
    /// it and is left out (its number stays used).
    fn versions(&self, tenant: &str, ids: &[String]) -> Result<Vec<VersionRecord>, StoreError>;
    /// Record published versions as they are, replacing the same numbers, in one transaction.
    fn put_versions(&mut self, tenant: &str, versions: &[VersionRecord]) -> Result<(), StoreError>;
    /// Production: the latest published version of each resource still published (stored form).
    fn production(&self, tenant: &str) -> Result<Vec<Resource>, StoreError>;
    /// Production of the given IDs only (the latest published version of each still published).
    fn production_of(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        Ok(self
            .production(tenant)?
            .into_iter()
            .filter(|r| r.id().is_some_and(|id| wanted.contains(id)))
            .collect())
    }
    /// Record a publish in one transaction: the new versions and the log entry.
    /// Refused when `record.number` is not the tenant's next publish number.
    fn publish(
        &mut self,
        tenant: &str,
        record: &PublishRecord,
        versions: &[PublishedVersion],
    ) -> Result<(), StoreError>;
    /// The tenant's publish log, newest first.
    fn publishes(&self, tenant: &str) -> Result<Vec<PublishRecord>, StoreError>;
    /// The number the tenant's next publish gets (1 for the first).
    fn next_publish_number(&self, tenant: &str) -> Result<u64, StoreError> {
        Ok(self.publishes(tenant)?.first().map_or(1, |p| p.number + 1))
    }
    /// Whether the tenant has a publish with this change ID.
    fn has_publish(&self, tenant: &str, change_track_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .publishes(tenant)?
            .iter()
            .any(|p| p.change_track_id == change_track_id))
    }
    /// The versions one publish wrote, each with production before it.
    fn publish_changes(
        &self,
        tenant: &str,
        change_track_id: &str,
    ) -> Result<Vec<VersionPair>, StoreError>;
    /// Resources changed in the store since the last apply from git (empty when none, or never applied from git).
    fn drift(&self, tenant: &str) -> Result<Vec<Absent>, StoreError>;
    /// The same changes as [`PublishStore::drift`], each with where its file
    /// was at the last applied commit and where it is now, so that an export
    /// can rewrite only those files. `None` when the tenant has no applied
    /// commit, or the back end cannot say without reading every draft.
    fn changes_since_commit(&self, _tenant: &str) -> Result<Option<Vec<CommitChange>>, StoreError> {
        Ok(None)
    }
}

/// Users, their grants per tenant, and API tokens (kept as hashes only).
pub trait AccessStore {
    /// Every user and grant of the store.
    fn access(&self) -> Result<AccessState, StoreError>;
    /// Add a user; the first user of a store becomes its owner.
    fn add_user(&mut self, name: &str) -> Result<UserRecord, StoreError>;
    /// Grant `role` on `tenant` to `user`, replacing an earlier grant there.
    fn grant(&mut self, user: &str, tenant: &str, role: Role) -> Result<(), StoreError>;
    /// Record an API token by its hash (the token itself is never stored),
    /// expiring at `expires_at` (RFC 3339) if given; its ID is [`token_id`] of the hash.
    fn add_token(
        &mut self,
        hash: &str,
        user: &str,
        tenant: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<TokenRecord, StoreError>;
    /// The token with this hash, if any (revoked and expired ones too).
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Record a web UI session by the hash of its secret (the secret itself is never stored).
    fn add_session(&mut self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this hash, if any (expired or not: the caller checks).
    fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Remove the session with this hash, and every session that expired
    /// before `now` (Unix seconds); whether the named one existed.
    fn remove_session(&mut self, hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Every token of the store, by creation time then ID.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Mark the token with this ID revoked at `at` (kept for the record);
    /// a token revoked before keeps its first time. Refused for an unknown ID.
    fn revoke_token(&mut self, id: &str, at: &str) -> Result<TokenRecord, StoreError>;
    /// Record that the token with this hash was used at `at`, unless its last
    /// recorded use is at or after `not_before` (so a busy token writes at most
    /// once per interval); revoked or unknown tokens are left alone. Whether a
    /// row was written. Does not move any revision.
    fn touch_token(&mut self, hash: &str, at: &str, not_before: &str) -> Result<bool, StoreError>;
}

/// What ZIP imports and live syncs wrote: the baselines of conflict detection.
pub trait SyncStore {
    /// The sync records of a tenant written by syncs from `source_key` (ZIP import, live sync).
    fn sync_records(&self, tenant: &str, source_key: &str) -> Result<Vec<SyncRecord>, StoreError>;
    /// Record what a sync from `source_key` wrote (replacing earlier records of the same resources).
    fn record_syncs(
        &mut self,
        tenant: &str,
        source_key: &str,
        records: &[SyncRecord],
    ) -> Result<(), StoreError>;
}

/// The live state of the platform: every part of the store contract.
///
/// A back end implements the four parts; `Store` comes with them, so
/// callers hold a `&mut dyn Store` or a `Box<dyn Store + Send>`.
pub trait Store: ResourceStore + PublishStore + AccessStore + SyncStore {}

impl<T: ResourceStore + PublishStore + AccessStore + SyncStore + ?Sized> Store for T {}

/// An API token as the store keeps it: whose it is, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The token's ID (`tok_…`, [`token_id`] of its hash): safe to show and to revoke by.
    pub id: String,
    /// The user the token acts as.
    pub user: String,
    /// The token's current tenant (the source tenant of a sync), if bound to one.
    pub tenant: Option<String>,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// When it stops working, RFC 3339 (`None`: never).
    pub expires_at: Option<String>,
    /// When it was last used (recorded at most about once a minute), RFC 3339.
    pub last_used_at: Option<String>,
    /// When it was revoked, RFC 3339.
    pub revoked_at: Option<String>,
}

impl TokenRecord {
    /// A token just made: created now, never used, not revoked.
    pub fn new(hash: &str, user: &str, tenant: Option<&str>, expires_at: Option<&str>) -> Self {
        TokenRecord {
            id: token_id(hash),
            user: user.to_string(),
            tenant: tenant.map(str::to_string),
            created_at: now_rfc3339(),
            expires_at: expires_at.map(str::to_string),
            last_used_at: None,
            revoked_at: None,
        }
    }
}

/// The ID of the token whose blake3 hash (hex) is `hash`: `tok_` and the
/// hash's first 12 hex digits. It names the token in lists and revocations;
/// it cannot be turned back into the token.
pub fn token_id(hash: &str) -> String {
    format!("tok_{}", hash.get(..12).unwrap_or(hash))
}

/// The refusal of a token whose hash or ID the store already holds (two
/// hashes can share the 12 digits an ID keeps).
pub fn token_taken(id: &str) -> StoreError {
    StoreError::Refused {
        message: format!(
            "a token with the ID `{id}` is already recorded\nhint: make a new token; each token's ID must be unique"
        ),
    }
}

/// The refusal of a token ID the store does not hold.
pub fn unknown_token(id: &str) -> StoreError {
    StoreError::NoToken { id: id.to_string() }
}

/// A web UI session as the store keeps it: the hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// blake3 of the session secret (hex).
    pub hash: String,
    /// The signed-in user.
    pub user: String,
    /// The hash of the API token signed in with: removing the token ends the session.
    pub token_hash: String,
    /// When the session ends, Unix seconds.
    pub expires_at: i64,
}

/// What one sync wrote to one resource: the baseline for conflict detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The local resource ID.
    pub local_id: String,
    /// The resource's ID at the source.
    pub origin_id: String,
    /// The resource revision after the sync.
    pub revision: u64,
    /// The content hash after the sync.
    pub content_hash: String,
}

/// Open the store at `url`; relative paths are taken from `base`.
pub fn open(url: &str, base: &Path) -> Result<Box<dyn Store + Send>, StoreError> {
    open_with_fault(url, base, None)
}

/// [`open`], with a [`WriteFault`] injected into its writes (the crash test).
#[doc(hidden)]
pub fn open_with_fault(
    url: &str,
    base: &Path,
    fault: Option<WriteFault>,
) -> Result<Box<dyn Store + Send>, StoreError> {
    open_with_options(url, base, fault, None)
}

/// [`open`], with a fault for local stores and the bearer token of a remote
/// one (`http(s)://HOST[:PORT]`, a [`remote::RemoteStore`]).
#[doc(hidden)]
pub fn open_with_options(
    url: &str,
    base: &Path,
    fault: Option<WriteFault>,
    token: Option<&str>,
) -> Result<Box<dyn Store + Send>, StoreError> {
    if remote::is_remote_url(url) {
        if fault.is_some() {
            return Err(StoreError::Refused {
                message: "write faults are injected into local stores only".into(),
            });
        }
        return Ok(Box::new(remote::RemoteStore::open(url, token)?));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        let p = Path::new(path);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        let mut store = sqlite::SqliteStore::open(&full)?;
        store.set_write_fault(fault);
        return Ok(Box::new(store));
    }
    if postgres::is_postgres_url(url) {
        let mut store = postgres::PostgresStore::open(url)?;
        store.set_write_fault(fault);
        return Ok(Box::new(store));
    }
    Err(StoreError::BadUrl {
        url: url.to_string(),
    })
}

/// Schema migrations and row copies work on a store's own database, not through a `ferry serve`.
fn refuse_remote(url: &str) -> Result<(), StoreError> {
    if remote::is_remote_url(url) {
        return Err(StoreError::Refused {
            message: format!("`{url}` is a ferry serve: its schema and rows are the server's own\nhint: run `ferry store` commands on the server, against the store it serves"),
        });
    }
    Ok(())
}

/// A store's schema, as `ferry store migrate` and `ferry store status` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaState {
    /// `sqlite` or `postgres`.
    pub back_end: &'static str,
    /// The schema version found before opening (0: a new store).
    pub from: u32,
    /// The schema version now.
    pub version: u32,
}

/// Open the store at `url`, running its migrations, and say what its schema was and is.
pub fn open_migrated(
    url: &str,
    base: &Path,
) -> Result<(Box<dyn Store + Send>, SchemaState), StoreError> {
    refuse_remote(url)?;
    if postgres::is_postgres_url(url) {
        let store = postgres::PostgresStore::open(url)?;
        let m = store.migrated();
        let state = SchemaState {
            back_end: "postgres",
            from: m.from.unsigned_abs(),
            version: m.to.unsigned_abs(),
        };
        return Ok((Box::new(store), state));
    }
    let Some(path) = url.strip_prefix("sqlite:") else {
        return Err(StoreError::BadUrl {
            url: url.to_string(),
        });
    };
    let full = base.join(path);
    let existed = full.is_file();
    let store = sqlite::SqliteStore::open(&full)?;
    let version = store.schema_version()?;
    let state = SchemaState {
        back_end: "sqlite",
        from: if existed { store.migrated_from() } else { 0 },
        version,
    };
    Ok((Box::new(store), state))
}

/// Open the store at `url` as rows, for `ferry store copy`.
pub fn open_image(url: &str, base: &Path) -> Result<Box<dyn image::ImageStore>, StoreError> {
    refuse_remote(url)?;
    if postgres::is_postgres_url(url) {
        return Ok(Box::new(postgres::PostgresStore::open(url)?));
    }
    match url.strip_prefix("sqlite:") {
        Some(path) => Ok(Box::new(sqlite::SqliteStore::open(&base.join(path))?)),
        None => Err(StoreError::BadUrl {
            url: url.to_string(),
        }),
    }
}

/// The time now as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// The time now in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Format Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Add `n` to `kind`'s count in `counts` (one entry per kind).
pub(crate) fn add_to_kind(counts: &mut [(Kind, usize)], kind: Kind, n: usize) {
    if let Some((_, count)) = counts.iter_mut().find(|(k, _)| *k == kind) {
        *count += n;
    }
}

/// The kind a stored row names, or [`StoreError::Corrupt`] naming the row
/// when no kind has that name.
pub(crate) fn stored_kind(tenant: &str, id: &str, kind: &str) -> Result<Kind, StoreError> {
    Kind::from_name(kind).ok_or_else(|| StoreError::Corrupt {
        tenant: tenant.to_string(),
        id: id.to_string(),
        reason: format!("unknown kind {kind}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::tests::res;

    fn connections(n: usize) -> Vec<Resource> {
        (0..n)
            .map(|i| {
                res(
                    "Connection",
                    &format!("con_{i:05}"),
                    &format!("crm-{i:05}"),
                    serde_json::json!({"type": "http", "baseUrl": format!("https://{i}.example")}),
                )
            })
            .collect()
    }

    #[test]
    fn columns_come_in_order_and_match_each_draft() {
        let drafts = connections(COLUMN_PART * 2 + 5);
        let upserts: Vec<(BatchDraft<'_>, String)> = drafts
            .iter()
            .map(|r| (BatchDraft::Borrowed(r), format!("file:{}", r.name())))
            .collect();
        let mut seen = Vec::new();
        with_columns::<()>(&upserts, &mut |r, file_hash, c| {
            assert_eq!(c, DraftColumns::of(r));
            assert_eq!(file_hash, format!("file:{}", r.name()));
            seen.push(r.id().unwrap_or_default().to_string());
            Ok(())
        })
        .unwrap();
        let want: Vec<String> = drafts.iter().map(|r| r.id().unwrap().to_string()).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_failed_row_stops_the_columns() {
        let drafts = connections(COLUMN_PART + 10);
        let upserts: Vec<(BatchDraft<'_>, String)> = drafts
            .iter()
            .map(|r| (BatchDraft::Owned(Box::new(r.clone())), String::new()))
            .collect();
        let mut written = 0;
        let out = with_columns(&upserts, &mut |_, _, _| {
            written += 1;
            if written == COLUMN_PART + 3 {
                return Err("row refused");
            }
            Ok(())
        });
        assert_eq!(out, Err("row refused"));
        assert_eq!(written, COLUMN_PART + 3);
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
