//! The embedded SQLite store.
//!
//! One file, WAL journal with `synchronous=NORMAL`. A write takes the
//! database's write lock first (`BEGIN IMMEDIATE`), so two applies to one
//! tenant cannot interleave: the second waits for the lock, then finds the
//! tenant revision moved and is refused as stale. Every write bumps the
//! store revision and records it as the tenant's revision. A failure or a
//! killed process before `COMMIT` leaves the store exactly as it was.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

mod access;
pub mod image;
mod publish;
mod tenant_admin;

use super::{
    now_rfc3339, AccessStore, CommitChange, DraftColumns, DraftStamp, IndexKeys, PublishStore,
    ResourceStore, SessionRecord, StoreError, SyncRecord, SyncStore, TenantRecord, TokenRecord,
    VersionRecord, WriteBatch, WriteFault,
};
use crate::domain::access::{AccessState, Role, UserRecord};
use crate::domain::model::{Kind, Resource};
use crate::domain::plan::{resource_from_document_text, Absent};
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::secrets::KeyPair;
use crate::domain::state::{Index, IndexEntry};
use crate::domain::validate::IdNames;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', '0'), ('schema', '1');
CREATE TABLE IF NOT EXISTS tenants (
  name        TEXT PRIMARY KEY,
  environment TEXT,
  recipient   TEXT NOT NULL,
  identity    TEXT NOT NULL,
  revision    INTEGER NOT NULL,
  last_commit TEXT,
  created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
  tenant       TEXT NOT NULL REFERENCES tenants(name),
  id           TEXT NOT NULL,
  kind         TEXT NOT NULL,
  name         TEXT NOT NULL,
  document     TEXT NOT NULL,
  content      BLOB,
  content_hash TEXT NOT NULL,
  file_hash    TEXT NOT NULL,
  refs         TEXT NOT NULL,
  revision     INTEGER NOT NULL,
  updated_at   TEXT NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS resources_by_name ON resources (tenant, kind, name);
CREATE TABLE IF NOT EXISTS versions (
  tenant       TEXT NOT NULL,
  id           TEXT NOT NULL,
  version      INTEGER NOT NULL,
  document     TEXT NOT NULL,
  content      BLOB,
  content_hash TEXT NOT NULL,
  change_id    TEXT,
  published_at TEXT NOT NULL,
  PRIMARY KEY (tenant, id, version)
);
"#;

/// The columns an [`IndexEntry`] is read from, in order.
const INDEX_COLUMNS: &str = "id, kind, name, content_hash, file_hash, refs, revision";

/// Sync records: what each ZIP import or live sync wrote (baselines for conflicts).
const SYNC_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sync_records (
  tenant        TEXT NOT NULL,
  local_id      TEXT NOT NULL,
  source_key    TEXT NOT NULL,
  origin_id     TEXT NOT NULL,
  revision      INTEGER NOT NULL,
  content_hash  TEXT NOT NULL,
  PRIMARY KEY (tenant, local_id, source_key)
);
"#;

/// The migrations after schema 1, in order: (version, SQL). Never edit one
/// that has shipped; add the next. Each runs in its own immediate
/// transaction with the new version recorded in `meta`, so a killed open
/// leaves the file at the version before or after it.
const MIGRATIONS: &[(u32, &str)] = &[
    (2, access::MIGRATION_2),
    (3, MIGRATION_3),
    (4, publish::MIGRATION_4),
    (5, MIGRATION_5),
];

/// Schema 5: each tenant keeps its resource count, so reading a tenant's
/// record costs one row however many resources it holds.
const MIGRATION_5: &str = r#"
ALTER TABLE tenants ADD COLUMN resource_count INTEGER NOT NULL DEFAULT 0;
UPDATE tenants SET resource_count = (SELECT COUNT(*) FROM resources r WHERE r.tenant = tenants.name);
"#;

/// Schema 3: who created each draft and who last changed it.
const MIGRATION_3: &str = r#"
ALTER TABLE resources ADD COLUMN created_by TEXT;
ALTER TABLE resources ADD COLUMN updated_by TEXT;
"#;

/// The schema version this binary writes.
fn latest_schema() -> u32 {
    MIGRATIONS.last().map_or(1, |(v, _)| *v)
}

/// Run every migration newer than the file's schema; refuse a newer schema.
/// The version found before.
fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let read = |c: &Connection| -> Result<u32, StoreError> {
        let v: String = c.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })?;
        Ok(v.parse().unwrap_or(0))
    };
    let from = read(conn)?;
    if from > latest_schema() {
        return Err(StoreError::SchemaTooNew {
            found: from,
            known: latest_schema(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        let tx = begin(conn, "")?;
        // Another process may have migrated meanwhile.
        if read(&tx)? >= *version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema'",
            params![version.to_string()],
        )?;
        tx.commit()?;
    }
    Ok(from)
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    fault: Option<WriteFault>,
    migrated_from: u32,
    rows_read: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Open (or create) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A store in memory (tests and pure pipelines).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(30))?;
        // Room for every statement a server's request mix prepares, so that
        // none is parsed again per request.
        conn.set_prepared_statement_cache_capacity(128);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(access::SCHEMA)?;
        conn.execute_batch(publish::SCHEMA_PUBLISH)?;
        conn.execute_batch(SYNC_SCHEMA)?;
        conn.execute_batch(tenant_admin::SCHEMA)?;
        let migrated_from = migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            fault: None,
            migrated_from,
            rows_read: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The schema version the store file records.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let v: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })?;
        Ok(v.parse().unwrap_or(0))
    }

    /// The schema version the file had before this open ran its migrations.
    pub fn migrated_from(&self) -> u32 {
        self.migrated_from
    }

    fn count_rows(&self, n: usize) {
        self.rows_read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Index entries from rows of `SELECT id, kind, name, content_hash, file_hash, refs, revision`.
    fn entries_of(
        &self,
        tenant: &str,
        stmt: &mut rusqlite::CachedStatement<'_>,
        params: impl rusqlite::Params,
        out: &mut Vec<IndexEntry>,
    ) -> Result<(), StoreError> {
        let before = out.len();
        let mut rows = stmt.query(params)?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let kind = super::stored_kind(tenant, &id, r.get_ref(1)?.as_str().unwrap_or_default())?;
            let refs = r.get_ref(5)?.as_str().unwrap_or_default();
            out.push(IndexEntry {
                id,
                kind,
                name: r.get(2)?,
                content_hash: r.get(3)?,
                file_hash: r.get(4)?,
                refs: refs.split_whitespace().map(str::to_string).collect(),
                revision: r.get::<_, i64>(6)? as u64,
            });
        }
        self.count_rows(out.len() - before);
        Ok(())
    }

    /// Inject a fault into every later [`ResourceStore::write`] (tests only).
    #[doc(hidden)]
    pub fn set_write_fault(&mut self, fault: Option<WriteFault>) {
        self.fault = fault;
    }

    /// The underlying connection, for modules that extend the schema (publishing).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The underlying connection, mutable.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn row_to_resource(
        tenant: &str,
        id: &str,
        document: &str,
        content: Option<Vec<u8>>,
    ) -> Result<Resource, StoreError> {
        let mut r =
            resource_from_document_text(document).map_err(|reason| StoreError::Corrupt {
                tenant: tenant.to_string(),
                id: id.to_string(),
                reason,
            })?;
        r.content = content;
        Ok(r)
    }
}

fn bump_revision(tx: &rusqlite::Transaction<'_>) -> Result<u64, StoreError> {
    let rev: String = tx.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
        r.get(0)
    })?;
    let next = rev.parse::<u64>().unwrap_or(0) + 1;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'revision'",
        params![next.to_string()],
    )?;
    Ok(next)
}

/// Begin an immediate transaction, turning a lock time-out into [`StoreError::Busy`].
pub(crate) fn begin<'c>(
    conn: &'c mut Connection,
    tenant: &str,
) -> Result<rusqlite::Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                StoreError::Busy {
                    tenant: tenant.to_string(),
                }
            }
            other => StoreError::Sqlite(other),
        })
}

/// Read a tenant's revision inside a transaction, refusing a missing tenant.
pub(crate) fn tenant_revision(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
) -> Result<u64, StoreError> {
    tx.query_row(
        "SELECT revision FROM tenants WHERE name = ?1",
        params![tenant],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|r| r as u64)
    .ok_or_else(|| StoreError::NoTenant {
        tenant: tenant.to_string(),
    })
}

/// Bump the store revision and record it on the tenant; returns it.
pub(crate) fn touch_tenant(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
) -> Result<u64, StoreError> {
    let next = bump_revision(tx)?;
    tx.execute(
        "UPDATE tenants SET revision = ?1 WHERE name = ?2",
        params![next as i64, tenant],
    )?;
    Ok(next)
}

/// Batches with more upserts than this recount the tenant's resources after
/// writing, instead of looking up each upsert's ID before it.
const KEYED_COUNT_LIMIT: usize = 4096;

/// How many of a batch's upserts are new drafts, looked up by key before
/// writing; `None` for a batch too big for that, which is recounted after.
fn new_drafts(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    batch: &WriteBatch<'_>,
) -> Result<Option<usize>, StoreError> {
    if batch.upserts.len() > KEYED_COUNT_LIMIT {
        return Ok(None);
    }
    let mut exists = tx.prepare_cached("SELECT 1 FROM resources WHERE tenant = ?1 AND id = ?2")?;
    let mut seen = std::collections::HashSet::new();
    let mut added = 0;
    for (resource, _) in &batch.upserts {
        let id = resource.id().unwrap_or_default();
        if seen.insert(id) && !exists.exists(params![tenant, id])? {
            added += 1;
        }
    }
    Ok(Some(added))
}

/// Keep the tenant's resource count in step with a write: add the new
/// drafts and take off the deleted ones, or recount when the new drafts
/// were not looked up.
fn keep_count(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    added: Option<usize>,
    removed: usize,
) -> Result<(), StoreError> {
    match added {
        Some(added) if added == removed => {}
        Some(added) => {
            let delta = added as i64 - removed as i64;
            tx.prepare_cached(
                "UPDATE tenants SET resource_count = resource_count + ?2 WHERE name = ?1",
            )?
            .execute(params![tenant, delta])?;
        }
        None => recount(tx, tenant)?,
    }
    Ok(())
}

/// Count the tenant's resources again into its row (a big write, a store
/// copy's load).
pub(crate) fn recount(tx: &rusqlite::Transaction<'_>, tenant: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE tenants SET resource_count = \
           (SELECT COUNT(*) FROM resources r WHERE r.tenant = tenants.name) WHERE name = ?1",
    )?
    .execute(params![tenant])?;
    Ok(())
}

/// Write one draft (insert or update), bumping its revision, its last
/// change and its last editor when its content changed; `by` is recorded as
/// the creator of a new draft. `columns` are computed ahead ([`DraftColumns`]).
fn insert_draft(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    (resource, file_hash, columns): (&Resource, &str, DraftColumns),
    now: &str,
    by: Option<&str>,
) -> Result<(), StoreError> {
    let id = resource.id().unwrap_or_default();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO resources (tenant, id, kind, name, document, content, content_hash, file_hash, refs, revision, updated_at, created_by, updated_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?11, ?11) \
         ON CONFLICT (tenant, id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
           document = excluded.document, content = excluded.content, content_hash = excluded.content_hash, \
           file_hash = excluded.file_hash, refs = excluded.refs, \
           updated_at = CASE WHEN resources.content_hash = excluded.content_hash \
                             THEN resources.updated_at ELSE excluded.updated_at END, \
           updated_by = CASE WHEN resources.content_hash = excluded.content_hash \
                             THEN resources.updated_by ELSE excluded.updated_by END, \
           revision = CASE WHEN resources.content_hash = excluded.content_hash \
                           THEN resources.revision ELSE resources.revision + 1 END",
    )?;
    stmt.execute(params![
        tenant,
        id,
        resource.kind().name(),
        resource.name(),
        columns.document,
        resource.content,
        columns.hash,
        file_hash,
        columns.refs,
        now,
        by
    ])?;
    Ok(())
}

fn tenant_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRecord> {
    Ok(TenantRecord {
        name: r.get(0)?,
        environment: r.get(1)?,
        recipient: r.get(2)?,
        revision: r.get::<_, i64>(3)? as u64,
        last_commit: r.get(4)?,
        resources: r.get::<_, i64>(5)? as u64,
    })
}

const TENANT_SELECT: &str =
    "SELECT t.name, t.environment, t.recipient, t.revision, t.last_commit, \
t.resource_count FROM tenants t";

impl ResourceStore for SqliteStore {
    fn tenant_admin(&self) -> Option<&dyn super::TenantAdmin> {
        Some(self)
    }

    fn tenant_admin_mut(&mut self) -> Option<&mut dyn super::TenantAdmin> {
        Some(self)
    }

    fn reads_are_local(&self) -> bool {
        true
    }

    fn begin_read(&self) -> Result<(), StoreError> {
        self.conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
        Ok(())
    }

    fn end_read(&self) -> Result<(), StoreError> {
        if !self.conn.is_autocommit() {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
        }
        Ok(())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let rev: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                    r.get(0)
                })?;
        Ok(rev.parse().unwrap_or(0))
    }

    fn create_tenant(
        &mut self,
        name: &str,
        environment: Option<&str>,
        keys: &KeyPair,
    ) -> Result<TenantRecord, StoreError> {
        let tx = begin(&mut self.conn, name)?;
        let exists: Option<String> = tx
            .query_row(
                "SELECT name FROM tenants WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::TenantExists {
                tenant: name.to_string(),
            });
        }
        let rev = bump_revision(&tx)?;
        tx.execute(
            "INSERT INTO tenants (name, environment, recipient, identity, revision, last_commit, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
            params![name, environment, keys.recipient, keys.identity, rev as i64, now_rfc3339()],
        )?;
        tx.commit()?;
        self.tenant(name)
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{TENANT_SELECT} ORDER BY t.name"))?;
        let rows = stmt.query_map([], tenant_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn tenant(&self, name: &str) -> Result<TenantRecord, StoreError> {
        self.conn
            .prepare_cached(&format!("{TENANT_SELECT} WHERE t.name = ?1"))?
            .query_row(params![name], tenant_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NoTenant {
                tenant: name.to_string(),
            })
    }

    fn tenant_revision(&self, tenant: &str) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT revision FROM tenants WHERE name = ?1")?
            .query_row(params![tenant], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|rev| rev as u64)
            .ok_or_else(|| StoreError::NoTenant {
                tenant: tenant.to_string(),
            })
    }

    fn staging_stamp(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        // Every write to the drafts and every version put moves the tenant
        // to a new store revision (one counter for all tenants, never
        // reused); a publish moves the publish number; an image load, which
        // carries revisions from another store, moves the load count.
        let stamp = self
            .conn
            .prepare_cached(
                "SELECT t.revision, \
                   COALESCE((SELECT MAX(p.number) FROM publishes p WHERE p.tenant = t.name), 0), \
                   COALESCE((SELECT value FROM meta WHERE key = 'loads'), '0') \
                 FROM tenants t WHERE t.name = ?1",
            )?
            .query_row(params![tenant], |r| {
                let (revision, publish, loads): (i64, i64, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok(format!("{revision}.{publish}.{loads}"))
            })
            .optional()?;
        stamp.map(Some).ok_or_else(|| StoreError::NoTenant {
            tenant: tenant.to_string(),
        })
    }

    fn identity(&self, tenant: &str) -> Result<String, StoreError> {
        self.conn
            .query_row(
                "SELECT identity FROM tenants WHERE name = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoTenant {
                tenant: tenant.to_string(),
            })
    }

    fn index(&self, tenant: &str) -> Result<(u64, Index), StoreError> {
        let rev = self.tenant_revision(tenant)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {INDEX_COLUMNS} FROM resources WHERE tenant = ?1"
        ))?;
        let mut entries = Vec::new();
        self.entries_of(tenant, &mut stmt, params![tenant], &mut entries)?;
        Ok((rev, Index::new(entries)))
    }

    fn id_names(&self, tenant: &str) -> Result<IdNames, StoreError> {
        // An unknown tenant is refused, not answered with no names.
        self.tenant_revision(tenant)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, kind, name FROM resources WHERE tenant = ?1")?;
        let mut rows = stmt.query(params![tenant])?;
        let mut names = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let kind = super::stored_kind(tenant, &id, r.get_ref(1)?.as_str().unwrap_or_default())?;
            names.push((id, kind, r.get(2)?));
        }
        self.count_rows(names.len());
        Ok(names.into_iter().collect())
    }

    fn kind_counts(&self, tenant: &str) -> Result<Vec<(Kind, usize)>, StoreError> {
        self.tenant_revision(tenant)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, count(*), min(id) FROM resources WHERE tenant = ?1 GROUP BY kind",
        )?;
        let mut rows = stmt.query(params![tenant])?;
        let mut counts: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        while let Some(r) = rows.next()? {
            let some_id: String = r.get(2)?;
            let kind =
                super::stored_kind(tenant, &some_id, r.get_ref(0)?.as_str().unwrap_or_default())?;
            super::add_to_kind(
                &mut counts,
                kind,
                usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            );
        }
        Ok(counts)
    }

    fn index_entries(
        &self,
        tenant: &str,
        keys: &IndexKeys,
    ) -> Result<(u64, Vec<IndexEntry>), StoreError> {
        let rev = self.tenant_revision(tenant)?;
        let mut entries = Vec::new();
        let mut by_id = self.conn.prepare_cached(&format!(
            "SELECT {INDEX_COLUMNS} FROM resources WHERE tenant = ?1 AND id = ?2"
        ))?;
        for id in &keys.ids {
            self.entries_of(tenant, &mut by_id, params![tenant, id], &mut entries)?;
        }
        let mut by_name = self.conn.prepare_cached(&format!(
            "SELECT {INDEX_COLUMNS} FROM resources WHERE tenant = ?1 AND kind = ?2 AND name = ?3"
        ))?;
        for (kind, name) in keys.names.iter().cloned().chain(keys.path_names()) {
            let p = params![tenant, kind.name(), name];
            self.entries_of(tenant, &mut by_name, p, &mut entries)?;
        }
        let mut by_kind = self.conn.prepare_cached(&format!(
            "SELECT {INDEX_COLUMNS} FROM resources WHERE tenant = ?1 AND kind = ?2"
        ))?;
        for kind in &keys.kinds {
            let p = params![tenant, kind.name()];
            self.entries_of(tenant, &mut by_kind, p, &mut entries)?;
        }
        let mut seen = std::collections::HashSet::new();
        entries.retain(|e| seen.insert(e.id.clone()));
        Ok((rev, entries))
    }

    fn rows_read(&self) -> u64 {
        self.rows_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn resource_count(&self, tenant: &str) -> Result<usize, StoreError> {
        Ok(usize::try_from(self.tenant(tenant)?.resources).unwrap_or(0))
    }

    fn drafts(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT document, content FROM resources WHERE tenant = ?1 AND id = ?2",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row: Option<(String, Option<Vec<u8>>)> = stmt
                .query_row(params![tenant, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((doc, content)) = row {
                out.push(Self::row_to_resource(tenant, id, &doc, content)?);
            }
        }
        self.count_rows(out.len());
        Ok(out)
    }

    fn draft_stamps(&self, tenant: &str, ids: &[String]) -> Result<Vec<DraftStamp>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT revision, created_by, updated_by, updated_at FROM resources WHERE tenant = ?1 AND id = ?2",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row(params![tenant, id], |r| {
                    Ok(DraftStamp {
                        id: id.clone(),
                        revision: r.get::<_, i64>(0)? as u64,
                        created_by: r.get(1)?,
                        updated_by: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                })
                .optional()?;
            out.extend(row);
        }
        Ok(out)
    }

    fn all_drafts(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        self.tenant(tenant)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, document, content FROM resources WHERE tenant = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let raw: Vec<(String, String, Option<Vec<u8>>)> = rows.collect::<Result<_, _>>()?;
        self.count_rows(raw.len());
        use rayon::prelude::*;
        raw.into_par_iter()
            .map(|(id, doc, content)| Self::row_to_resource(tenant, &id, &doc, content))
            .collect()
    }

    fn drafts_chunked(
        &self,
        tenant: &str,
        chunk: usize,
        each: &mut dyn FnMut(Vec<Resource>) -> bool,
    ) -> Result<(), StoreError> {
        use rayon::prelude::*;
        self.tenant(tenant)?;
        // One statement is one consistent read, even between chunks.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, document, content FROM resources WHERE tenant = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![tenant])?;
        let mut raw: Vec<(String, String, Option<Vec<u8>>)> = Vec::with_capacity(chunk.max(1));
        let mut more = true;
        while more {
            more = match rows.next()? {
                Some(r) => {
                    raw.push((r.get(0)?, r.get(1)?, r.get(2)?));
                    true
                }
                None => false,
            };
            if (more && raw.len() < chunk.max(1)) || raw.is_empty() {
                continue;
            }
            self.count_rows(raw.len());
            let part: Vec<Resource> = std::mem::take(&mut raw)
                .into_par_iter()
                .map(|(id, doc, content)| Self::row_to_resource(tenant, &id, &doc, content))
                .collect::<Result<_, _>>()?;
            if !each(part) {
                return Ok(());
            }
        }
        Ok(())
    }

    fn write(&mut self, tenant: &str, batch: &WriteBatch<'_>) -> Result<u64, StoreError> {
        let now = now_rfc3339();
        let tx = begin(&mut self.conn, tenant)?;
        let actual = tenant_revision(&tx, tenant)?;
        if actual != batch.base_revision {
            return Err(StoreError::Stale {
                tenant: tenant.to_string(),
                planned: batch.base_revision,
                actual,
            });
        }
        let added = new_drafts(&tx, tenant, batch)?;
        let mut removed = 0usize;
        let mut n = 0usize;
        WriteFault::check(self.fault, n)?;
        super::with_columns(&batch.upserts, &mut |resource, file_hash, columns| {
            insert_draft(
                &tx,
                tenant,
                (resource, file_hash, columns),
                &now,
                batch.actor.as_deref(),
            )?;
            n += 1;
            WriteFault::check(self.fault, n)
        })?;
        {
            let mut del =
                tx.prepare_cached("DELETE FROM resources WHERE tenant = ?1 AND id = ?2")?;
            for id in &batch.deletes {
                removed += del.execute(params![tenant, id])?;
                n += 1;
                WriteFault::check(self.fault, n)?;
            }
            let mut refresh = tx.prepare_cached(
                "UPDATE resources SET file_hash = ?3 WHERE tenant = ?1 AND id = ?2",
            )?;
            for r in &batch.refresh {
                refresh.execute(params![tenant, r.id, r.file_hash])?;
            }
        }
        keep_count(&tx, tenant, added, removed)?;
        for v in &batch.versions {
            publish::put_version(&tx, tenant, v)?;
        }
        if let Some(syncs) = &batch.syncs {
            let mut rec = tx.prepare_cached(
                "INSERT OR REPLACE INTO sync_records (tenant, local_id, source_key, origin_id, revision, content_hash) \
                 SELECT tenant, id, ?3, ?4, revision, content_hash FROM resources WHERE tenant = ?1 AND id = ?2",
            )?;
            for (local_id, origin_id) in &syncs.origins {
                rec.execute(params![tenant, local_id, syncs.source_key, origin_id])?;
            }
        }
        let changed =
            !batch.upserts.is_empty() || !batch.deletes.is_empty() || !batch.versions.is_empty();
        let prev_commit: Option<String> = tx.query_row(
            "SELECT last_commit FROM tenants WHERE name = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        let new_commit = batch.commit.is_some() && batch.commit != prev_commit;
        if let Some(c) = batch.commit.as_ref().filter(|_| new_commit) {
            tx.execute(
                "UPDATE tenants SET last_commit = ?1 WHERE name = ?2",
                params![c, tenant],
            )?;
        }
        let rev = if changed || new_commit {
            touch_tenant(&tx, tenant)?
        } else {
            actual
        };
        if batch.commit.is_some() {
            publish::record_git_apply(&tx, tenant, rev, batch)?;
        } else {
            publish::journal_drift(&tx, tenant, batch)?;
        }
        tx.commit()?;
        Ok(rev)
    }
}

impl PublishStore for SqliteStore {
    fn versions(&self, tenant: &str, ids: &[String]) -> Result<Vec<VersionRecord>, StoreError> {
        publish::versions(self, tenant, ids)
    }

    fn put_versions(&mut self, tenant: &str, versions: &[VersionRecord]) -> Result<(), StoreError> {
        publish::put_versions(self, tenant, versions)
    }

    fn production(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        publish::production(&self.conn, tenant)
    }

    fn production_of(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        publish::production_of(&self.conn, tenant, ids)
    }

    fn publish(
        &mut self,
        tenant: &str,
        record: &PublishRecord,
        versions: &[PublishedVersion],
    ) -> Result<(), StoreError> {
        publish::publish(&mut self.conn, tenant, record, versions)
    }

    fn publishes(&self, tenant: &str) -> Result<Vec<PublishRecord>, StoreError> {
        publish::publishes(&self.conn, tenant)
    }

    fn next_publish_number(&self, tenant: &str) -> Result<u64, StoreError> {
        let next: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM publishes WHERE tenant = ?1",
            rusqlite::params![tenant],
            |r| r.get(0),
        )?;
        Ok(next as u64)
    }

    fn has_publish(&self, tenant: &str, change_track_id: &str) -> Result<bool, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM publishes WHERE tenant = ?1 AND change_track_id = ?2",
                rusqlite::params![tenant, change_track_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn publish_changes(
        &self,
        tenant: &str,
        change_track_id: &str,
    ) -> Result<Vec<VersionPair>, StoreError> {
        publish::publish_changes(&self.conn, tenant, change_track_id)
    }

    fn drift(&self, tenant: &str) -> Result<Vec<Absent>, StoreError> {
        publish::drift(&self.conn, tenant)
    }

    fn changes_since_commit(&self, tenant: &str) -> Result<Option<Vec<CommitChange>>, StoreError> {
        let changes = publish::changes_since_commit(&self.conn, tenant)?;
        self.count_rows(changes.as_ref().map_or(0, Vec::len));
        Ok(changes)
    }
}

impl AccessStore for SqliteStore {
    fn access(&self) -> Result<AccessState, StoreError> {
        access::access(self)
    }

    fn add_user(&mut self, name: &str) -> Result<UserRecord, StoreError> {
        access::add_user(self, name)
    }

    fn grant(&mut self, user: &str, tenant: &str, role: Role) -> Result<(), StoreError> {
        access::grant(self, user, tenant, role)
    }

    fn add_token(
        &mut self,
        hash: &str,
        user: &str,
        tenant: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<TokenRecord, StoreError> {
        access::add_token(self, hash, user, tenant, expires_at)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        access::token(self, hash)
    }

    fn add_session(&mut self, session: &SessionRecord) -> Result<(), StoreError> {
        access::add_session(self, session)
    }

    fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        access::session(self, hash)
    }

    fn remove_session(&mut self, hash: &str, now: i64) -> Result<bool, StoreError> {
        access::remove_session(self, hash, now)
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        access::tokens(self)
    }

    fn revoke_token(&mut self, id: &str, at: &str) -> Result<TokenRecord, StoreError> {
        access::revoke_token(self, id, at)
    }

    fn touch_token(&mut self, hash: &str, at: &str, not_before: &str) -> Result<bool, StoreError> {
        access::touch_token(self, hash, at, not_before)
    }
}

impl SyncStore for SqliteStore {
    fn sync_records(&self, tenant: &str, source_key: &str) -> Result<Vec<SyncRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT local_id, origin_id, revision, content_hash FROM sync_records \
             WHERE tenant = ?1 AND source_key = ?2 ORDER BY local_id",
        )?;
        let rows = stmt.query_map(params![tenant, source_key], |r| {
            Ok(SyncRecord {
                local_id: r.get(0)?,
                origin_id: r.get(1)?,
                revision: r.get::<_, i64>(2)? as u64,
                content_hash: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_syncs(
        &mut self,
        tenant: &str,
        source_key: &str,
        records: &[SyncRecord],
    ) -> Result<(), StoreError> {
        let tx = begin(&mut self.conn, tenant)?;
        tenant_revision(&tx, tenant)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO sync_records (tenant, local_id, source_key, origin_id, revision, content_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in records {
                stmt.execute(params![
                    tenant,
                    r.local_id,
                    source_key,
                    r.origin_id,
                    r.revision as i64,
                    r.content_hash
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
