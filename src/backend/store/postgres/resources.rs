//! Tenants, drafts, the index, read snapshots and the one write, in PostgreSQL.
//!
//! A write runs in one `READ COMMITTED` transaction that locks the tenant's
//! row first (`SELECT … FOR UPDATE`): a second writer of the same tenant
//! waits for the first to commit, then reads the revision it left and is
//! refused as [`StoreError::Stale`]. The store revision is one row of
//! `meta`, bumped last, after the tenant lock, so two writers never wait on
//! each other in opposite orders.

use postgres::{GenericClient, Row, Transaction};

use super::super::{
    now_rfc3339, DraftStamp, IndexKeys, StoreError, TenantRecord, WriteBatch, WriteFault,
};
use super::{for_tenant, signed, unsigned, Query};
use crate::domain::model::{Kind, Resource};
use crate::domain::secrets::KeyPair;
use crate::domain::state::{Index, IndexEntry};

const TENANT_SELECT: &str =
    "SELECT t.name, t.environment, t.recipient, t.revision, t.last_commit, \
t.resource_count FROM tenants t";

fn tenant_from_row(r: &Row) -> TenantRecord {
    TenantRecord {
        name: r.get(0),
        environment: r.get(1),
        recipient: r.get(2),
        revision: unsigned(r.get(3)),
        last_commit: r.get(4),
        resources: unsigned(r.get(5)),
    }
}

/// A stored draft or version row as a resource (the SQLite store's decoding).
pub(crate) fn decode(
    tenant: &str,
    id: &str,
    document: &str,
    content: Option<Vec<u8>>,
) -> Result<Resource, StoreError> {
    super::super::sqlite::SqliteStore::row_to_resource(tenant, id, document, content)
}

/// Start a read snapshot.
pub fn begin_read(c: &mut impl GenericClient) -> Result<(), StoreError> {
    Ok(c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?)
}

/// End the read snapshot.
pub fn end_read(c: &mut impl GenericClient) -> Result<(), StoreError> {
    Ok(c.batch_execute("COMMIT")?)
}

/// The store revision.
pub fn revision(c: &mut impl GenericClient) -> Result<u64, StoreError> {
    let row = c.query_one("SELECT value FROM meta WHERE key = 'revision'", &[])?;
    Ok(unsigned(row.get(0)))
}

/// Bump the store revision (locking its row until commit); returns the new one.
fn bump_revision(tx: &mut Transaction<'_>) -> Result<u64, StoreError> {
    let row = tx.query_one(
        "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
        &[],
    )?;
    Ok(unsigned(row.get(0)))
}

/// Lock a tenant's row for this transaction and read its revision, refusing a missing tenant.
pub(crate) fn lock_tenant(tx: &mut Transaction<'_>, tenant: &str) -> Result<u64, StoreError> {
    tx.query_opt(
        "SELECT revision FROM tenants WHERE name = $1 FOR UPDATE",
        &[&tenant],
    )
    .map_err(for_tenant(tenant))?
    .map(|r| unsigned(r.get(0)))
    .ok_or_else(|| StoreError::NoTenant {
        tenant: tenant.to_string(),
    })
}

/// Bump the store revision and record it on the tenant; returns it.
pub(crate) fn touch_tenant(tx: &mut Transaction<'_>, tenant: &str) -> Result<u64, StoreError> {
    let next = bump_revision(tx)?;
    tx.execute(
        "UPDATE tenants SET revision = $1 WHERE name = $2",
        &[&signed(next), &tenant],
    )?;
    Ok(next)
}

/// Create a tenant with its key pair.
pub fn create_tenant(
    c: &mut impl GenericClient,
    name: &str,
    environment: Option<&str>,
    keys: &KeyPair,
) -> Result<TenantRecord, StoreError> {
    let mut tx = c.transaction()?;
    // The revision row is the lock here: two creators of one name cannot both pass the check.
    let rev = bump_revision(&mut tx)?;
    let exists = tx.query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&name])?;
    if exists.is_some() {
        return Err(StoreError::TenantExists {
            tenant: name.to_string(),
        });
    }
    tx.execute(
        "INSERT INTO tenants (name, environment, recipient, identity, revision, last_commit, created_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6)",
        &[&name, &environment, &keys.recipient, &keys.identity, &signed(rev), &now_rfc3339()],
    )?;
    tx.commit()?;
    tenant(c, name)
}

/// Every tenant, by name.
pub fn tenants(c: &mut impl GenericClient) -> Result<Vec<TenantRecord>, StoreError> {
    let rows = c.query(&format!("{TENANT_SELECT} ORDER BY t.name"), &[])?;
    Ok(rows.iter().map(tenant_from_row).collect())
}

/// One tenant.
pub fn tenant(c: &mut impl GenericClient, name: &str) -> Result<TenantRecord, StoreError> {
    c.query_opt(&format!("{TENANT_SELECT} WHERE t.name = $1"), &[&name])?
        .map(|r| tenant_from_row(&r))
        .ok_or_else(|| StoreError::NoTenant {
            tenant: name.to_string(),
        })
}

/// The revision of the tenant's last write (no count of its resources).
pub fn tenant_revision(q: &mut Query<'_>, tenant: &str) -> Result<u64, StoreError> {
    q("SELECT revision FROM tenants WHERE name = $1", &[&tenant])?
        .first()
        .map(|r| unsigned(r.get(0)))
        .ok_or_else(|| StoreError::NoTenant {
            tenant: tenant.to_string(),
        })
}

/// The tenant's revision, its row's version (`xmin`: a new one for every
/// update of the row, and for a tenant deleted and made again or loaded
/// from an image) and its last publish number, in one read.
pub fn staging_stamp(q: &mut Query<'_>, tenant: &str) -> Result<String, StoreError> {
    q(
        "SELECT t.revision, t.xmin::text, \
           COALESCE((SELECT MAX(p.number) FROM publishes p WHERE p.tenant = t.name), 0) \
         FROM tenants t WHERE t.name = $1",
        &[&tenant],
    )?
    .first()
    .map(|r| {
        let (revision, row, publish): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
        format!("{revision}.{row}.{publish}")
    })
    .ok_or_else(|| StoreError::NoTenant {
        tenant: tenant.to_string(),
    })
}

/// The tenant's private key.
pub fn identity(c: &mut impl GenericClient, tenant: &str) -> Result<String, StoreError> {
    c.query_opt("SELECT identity FROM tenants WHERE name = $1", &[&tenant])?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NoTenant {
            tenant: tenant.to_string(),
        })
}

/// The tenant's revision and index.
pub fn index(c: &mut impl GenericClient, tenant: &str) -> Result<(u64, Index), StoreError> {
    let rev = tenant_revision(&mut |sql, params| Ok(c.query(sql, params)?), tenant)?;
    let rows = c.query(
        "SELECT id, kind, name, content_hash, file_hash, refs, revision FROM resources WHERE tenant = $1",
        &[&tenant],
    )?;
    Ok((rev, Index::new(entries_of(tenant, rows)?)))
}

/// The kind and name of each of the tenant's resources, by ID.
pub fn id_names(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Vec<(String, Kind, String)>, StoreError> {
    tenant_revision(&mut |sql, params| Ok(c.query(sql, params)?), tenant)?;
    let rows = c.query(
        "SELECT id, kind, name FROM resources WHERE tenant = $1",
        &[&tenant],
    )?;
    rows.into_iter()
        .map(|r| {
            let id: String = r.get(0);
            let kind = super::super::stored_kind(tenant, &id, r.get(1))?;
            Ok((id, kind, r.get(2)))
        })
        .collect()
}

/// How many resources of each kind the tenant holds, every kind in
/// [`Kind::ALL`] order, by one grouped query.
pub fn kind_counts(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Vec<(Kind, usize)>, StoreError> {
    tenant_revision(&mut |sql, params| Ok(c.query(sql, params)?), tenant)?;
    let rows = c.query(
        "SELECT kind, count(*), min(id) FROM resources WHERE tenant = $1 GROUP BY kind",
        &[&tenant],
    )?;
    let mut counts: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for r in rows {
        let some_id: String = r.get(2);
        let kind = super::super::stored_kind(tenant, &some_id, r.get(0))?;
        let n: i64 = r.get(1);
        super::super::add_to_kind(&mut counts, kind, usize::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// The tenant's revision and the index entries matching `keys`, by keyed queries.
pub fn index_entries(
    q: &mut Query<'_>,
    tenant: &str,
    keys: &IndexKeys,
) -> Result<(u64, Vec<IndexEntry>), StoreError> {
    let rev = tenant_revision(q, tenant)?;
    let (kinds, names): (Vec<String>, Vec<String>) = keys
        .names
        .iter()
        .cloned()
        .chain(keys.path_names())
        .map(|(k, n)| (k.name().to_string(), n))
        .unzip();
    let every_of: Vec<&str> = keys.kinds.iter().map(|k| k.name()).collect();
    let rows = q(
        "SELECT id, kind, name, content_hash, file_hash, refs, revision FROM resources \
         WHERE tenant = $1 AND (id = ANY($2) OR (kind, name) IN \
           (SELECT * FROM unnest($3::text[], $4::text[])) OR kind = ANY($5))",
        &[&tenant, &keys.ids, &kinds, &names, &every_of],
    )?;
    Ok((rev, entries_of(tenant, rows)?))
}

/// `root` and everything it references, transitively, in one recursive
/// query over the space-separated `refs` column (`UNION` stops at cycles).
pub fn reference_closure(
    q: &mut Query<'_>,
    tenant: &str,
    root: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = q(
        "WITH RECURSIVE closure(id) AS ( \
           SELECT $2::text COLLATE \"C\" \
           UNION \
           SELECT ref FROM closure c \
             JOIN resources r ON r.tenant = $1 AND r.id = c.id \
             CROSS JOIN LATERAL unnest(string_to_array(r.refs, ' ')) AS ref \
           WHERE ref <> '' \
         ) SELECT id FROM closure ORDER BY id",
        &[&tenant, &root],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How many resources the tenant holds.
pub fn resource_count(c: &mut impl GenericClient, tenant: &str) -> Result<usize, StoreError> {
    Ok(usize::try_from(self::tenant(c, tenant)?.resources).unwrap_or(0))
}

/// Index entries from rows of `id, kind, name, content_hash, file_hash, refs, revision`.
fn entries_of(tenant: &str, rows: Vec<Row>) -> Result<Vec<IndexEntry>, StoreError> {
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let kind = super::super::stored_kind(tenant, &id, r.get(1))?;
        let refs: String = r.get(5);
        entries.push(IndexEntry {
            id,
            kind,
            name: r.get(2),
            content_hash: r.get(3),
            file_hash: r.get(4),
            refs: refs.split_whitespace().map(str::to_string).collect(),
            revision: unsigned(r.get(6)),
        });
    }
    Ok(entries)
}

/// The drafts of the given IDs, in the order asked; unknown IDs are left out.
pub fn drafts(
    q: &mut Query<'_>,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Resource>, StoreError> {
    let rows = q(
        "SELECT id, document, content FROM resources WHERE tenant = $1 AND id = ANY($2)",
        &[&tenant, &ids],
    )?;
    let mut found: std::collections::HashMap<String, Resource> =
        std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let res = decode(tenant, &id, r.get(1), r.get(2))?;
        found.insert(id, res);
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Who created and last changed the drafts of the given IDs, in the order asked.
pub fn draft_stamps(
    c: &mut impl GenericClient,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<DraftStamp>, StoreError> {
    let rows = c.query(
        "SELECT id, revision, created_by, updated_by, updated_at FROM resources WHERE tenant = $1 AND id = ANY($2)",
        &[&tenant, &ids],
    )?;
    let mut found: std::collections::HashMap<String, DraftStamp> = rows
        .into_iter()
        .map(|r| {
            let id: String = r.get(0);
            let stamp = DraftStamp {
                id: id.clone(),
                revision: unsigned(r.get(1)),
                created_by: r.get(2),
                updated_by: r.get(3),
                updated_at: r.get(4),
            };
            (id, stamp)
        })
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Every draft of the tenant, by ID.
pub fn all_drafts(c: &mut impl GenericClient, tenant: &str) -> Result<Vec<Resource>, StoreError> {
    self::tenant(c, tenant)?;
    let rows = c.query(
        "SELECT id, document, content FROM resources WHERE tenant = $1 ORDER BY id",
        &[&tenant],
    )?;
    use rayon::prelude::*;
    rows.into_par_iter()
        .map(|r| decode(tenant, r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Apply a batch in one transaction, refused when the tenant moved past its base revision.
pub fn write(
    c: &mut impl GenericClient,
    tenant: &str,
    batch: &WriteBatch<'_>,
    fault: Option<WriteFault>,
) -> Result<u64, StoreError> {
    let now = now_rfc3339();
    let mut tx = c.transaction()?;
    let actual = lock_tenant(&mut tx, tenant)?;
    if actual != batch.base_revision {
        return Err(StoreError::Stale {
            tenant: tenant.to_string(),
            planned: batch.base_revision,
            actual,
        });
    }
    write_drafts(&mut tx, tenant, batch, &now, fault)?;
    for v in &batch.versions {
        super::publish::put_version(&mut tx, tenant, v)?;
    }
    write_sync_records(&mut tx, tenant, batch)?;
    let changed =
        !batch.upserts.is_empty() || !batch.deletes.is_empty() || !batch.versions.is_empty();
    let prev_commit: Option<String> = tx
        .query_one(
            "SELECT last_commit FROM tenants WHERE name = $1",
            &[&tenant],
        )?
        .get(0);
    let new_commit = batch.commit.is_some() && batch.commit != prev_commit;
    if let Some(commit) = batch.commit.as_ref().filter(|_| new_commit) {
        tx.execute(
            "UPDATE tenants SET last_commit = $1 WHERE name = $2",
            &[commit, &tenant],
        )?;
    }
    let rev = if changed || new_commit {
        touch_tenant(&mut tx, tenant)?
    } else {
        actual
    };
    if batch.commit.is_some() {
        super::publish::record_git_apply(&mut tx, tenant, rev, batch)?;
    } else {
        super::publish::journal_drift(&mut tx, tenant, batch)?;
    }
    tx.commit()?;
    Ok(rev)
}

/// The sync records of a batch (ZIP import, live sync): each settled
/// resource's revision and content hash as this transaction leaves them.
fn write_sync_records(
    tx: &mut impl GenericClient,
    tenant: &str,
    batch: &WriteBatch<'_>,
) -> Result<(), StoreError> {
    let Some(syncs) = &batch.syncs else {
        return Ok(());
    };
    let stmt = tx.prepare(
        "INSERT INTO sync_records (tenant, local_id, source_key, origin_id, revision, content_hash) \
         SELECT tenant, id, $3, $4, revision, content_hash FROM resources WHERE tenant = $1 AND id = $2 \
         ON CONFLICT (tenant, local_id, source_key) DO UPDATE SET origin_id = EXCLUDED.origin_id, \
           revision = EXCLUDED.revision, content_hash = EXCLUDED.content_hash",
    )?;
    for (local_id, origin_id) in &syncs.origins {
        tx.execute(&stmt, &[&tenant, local_id, &syncs.source_key, origin_id])?;
    }
    Ok(())
}

/// The upserts, deletes and file-hash refreshes of a batch, checking
/// `fault` after each row, and the tenant's resource count kept in step:
/// each upsert says whether it inserted a row (`xmax = 0`), each delete how
/// many rows it removed.
fn write_drafts(
    tx: &mut Transaction<'_>,
    tenant: &str,
    batch: &WriteBatch<'_>,
    now: &str,
    fault: Option<WriteFault>,
) -> Result<(), StoreError> {
    let mut added: i64 = 0;
    let mut n = 0usize;
    WriteFault::check(fault, n)?;
    let upsert = tx.prepare(
        "INSERT INTO resources (tenant, id, kind, name, document, content, content_hash, file_hash, refs, revision, updated_at, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $11) \
         ON CONFLICT (tenant, id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
           document = EXCLUDED.document, content = EXCLUDED.content, content_hash = EXCLUDED.content_hash, \
           file_hash = EXCLUDED.file_hash, refs = EXCLUDED.refs, \
           updated_at = CASE WHEN resources.content_hash = EXCLUDED.content_hash \
                             THEN resources.updated_at ELSE EXCLUDED.updated_at END, \
           updated_by = CASE WHEN resources.content_hash = EXCLUDED.content_hash \
                             THEN resources.updated_by ELSE EXCLUDED.updated_by END, \
           revision = CASE WHEN resources.content_hash = EXCLUDED.content_hash \
                           THEN resources.revision ELSE resources.revision + 1 END \
         RETURNING (xmax = 0)",
    )?;
    super::super::with_columns(&batch.upserts, &mut |resource, file_hash, columns| {
        let inserted: bool = tx
            .query_one(
                &upsert,
                &[
                    &tenant,
                    &resource.id().unwrap_or_default(),
                    &resource.kind().name(),
                    &resource.name(),
                    &columns.document,
                    &resource.content,
                    &columns.hash,
                    &file_hash,
                    &columns.refs,
                    &now,
                    &batch.actor,
                ],
            )?
            .get(0);
        added += i64::from(inserted);
        n += 1;
        WriteFault::check(fault, n)
    })?;
    let delete = tx.prepare("DELETE FROM resources WHERE tenant = $1 AND id = $2")?;
    for id in &batch.deletes {
        added -= i64::try_from(tx.execute(&delete, &[&tenant, id])?).unwrap_or(0);
        n += 1;
        WriteFault::check(fault, n)?;
    }
    let refresh =
        tx.prepare("UPDATE resources SET file_hash = $3 WHERE tenant = $1 AND id = $2")?;
    for r in &batch.refresh {
        tx.execute(&refresh, &[&tenant, &r.id, &r.file_hash])?;
    }
    if added != 0 {
        tx.execute(
            "UPDATE tenants SET resource_count = resource_count + $2 WHERE name = $1",
            &[&tenant, &added],
        )?;
    }
    Ok(())
}
