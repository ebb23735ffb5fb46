//! SQLite tables and queries of publishing and of git bookkeeping.
//!
//! `versions` (in the core schema) holds published versions 1..n of each
//! resource (promotion copies them into another tenant as they are); a version whose document is `null` takes the resource out of
//! production. `publishes` is the publish log. `git_applied` records the
//! tenant revision right after the last apply from a git commit, and
//! `applied_resources` each resource's revision at that point: a resource
//! whose revision moved since (or that appeared or disappeared) has drifted
//! from git. When the tenant revision has not moved, there is no drift and
//! nothing is scanned. `drift_journal` (schema 4) is the change journal:
//! the ID of every resource written since the last apply from git, so that
//! drift, an export of what changed and the next apply from git look up
//! only those rows, never the tenant's whole index.

use rusqlite::{params, Connection, OptionalExtension};

use super::{begin, tenant_revision, touch_tenant, SqliteStore};
use crate::backend::store::{CommitChange, StoreError, VersionRecord, WriteBatch};
use crate::domain::model::{Kind, Resource};
use crate::domain::plan::Absent;
use crate::domain::publish::{PublishRecord, PublishSummary, PublishedVersion, VersionPair};
use crate::domain::state::{canonical_json, content_hash};

/// The tables of publishing and git bookkeeping.
pub const SCHEMA_PUBLISH: &str = r#"
CREATE TABLE IF NOT EXISTS publishes (
  tenant          TEXT NOT NULL,
  number          INTEGER NOT NULL,
  change_track_id TEXT NOT NULL,
  agent           TEXT,
  published_by    TEXT NOT NULL,
  published_at    TEXT NOT NULL,
  summary         TEXT NOT NULL,
  message         TEXT NOT NULL,
  tag             TEXT,
  commit_id       TEXT,
  PRIMARY KEY (tenant, number)
);
CREATE INDEX IF NOT EXISTS versions_by_change ON versions (tenant, change_id);
CREATE TABLE IF NOT EXISTS git_applied (
  tenant   TEXT PRIMARY KEY,
  revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_resources (
  tenant   TEXT NOT NULL,
  id       TEXT NOT NULL,
  kind     TEXT NOT NULL,
  name     TEXT NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (tenant, id)
);
"#;

/// Schema 4: the change journal, filled from the drift a store already has.
pub const MIGRATION_4: &str = r#"
CREATE TABLE drift_journal (
  tenant TEXT NOT NULL,
  id     TEXT NOT NULL,
  PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO drift_journal (tenant, id)
  SELECT r.tenant, r.id FROM resources r JOIN git_applied g ON g.tenant = r.tenant
  LEFT JOIN applied_resources a ON a.tenant = r.tenant AND a.id = r.id
  WHERE a.id IS NULL OR a.revision != r.revision OR a.name != r.name OR a.kind != r.kind;
INSERT OR IGNORE INTO drift_journal (tenant, id)
  SELECT a.tenant, a.id FROM applied_resources a
  LEFT JOIN resources r ON r.tenant = a.tenant AND r.id = a.id WHERE r.id IS NULL;
"#;

/// Outside an apply from git: journal the IDs a write touched, when the
/// tenant has an applied commit to drift from.
pub(crate) fn journal_drift(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    if batch.upserts.is_empty() && batch.deletes.is_empty() {
        return Ok(());
    }
    let applied: Option<i64> = tx
        .prepare_cached("SELECT revision FROM git_applied WHERE tenant = ?1")?
        .query_row(params![tenant], |r| r.get(0))
        .optional()?;
    if applied.is_none() {
        return Ok(());
    }
    let mut put =
        tx.prepare_cached("INSERT OR IGNORE INTO drift_journal (tenant, id) VALUES (?1, ?2)")?;
    for (r, _) in &batch.upserts {
        put.execute(params![tenant, r.id().unwrap_or_default()])?;
    }
    for id in &batch.deletes {
        put.execute(params![tenant, id])?;
    }
    Ok(())
}

/// Bring one resource's `applied_resources` row in step with `resources`.
fn settle_applied(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    id: &str,
) -> Result<(), StoreError> {
    let mut up = tx.prepare_cached(
        "INSERT OR REPLACE INTO applied_resources (tenant, id, kind, name, revision) \
         SELECT tenant, id, kind, name, revision FROM resources WHERE tenant = ?1 AND id = ?2",
    )?;
    if up.execute(params![tenant, id])? == 0 {
        tx.prepare_cached("DELETE FROM applied_resources WHERE tenant = ?1 AND id = ?2")?
            .execute(params![tenant, id])?;
    }
    Ok(())
}

/// Inside an apply from git: remember each resource's revision, so later changes show as drift.
pub(crate) fn record_git_apply(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    after: u64,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    let prev: Option<i64> = tx
        .query_row(
            "SELECT revision FROM git_applied WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()?;
    if prev.is_some() {
        // Only what this apply wrote and what the journal holds can differ.
        let journal: Vec<String> = {
            let mut stmt = tx.prepare_cached("SELECT id FROM drift_journal WHERE tenant = ?1")?;
            let ids = stmt.query_map(params![tenant], |r| r.get(0))?;
            ids.collect::<Result<_, _>>()?
        };
        let written = batch
            .upserts
            .iter()
            .map(|(r, _)| r.id().unwrap_or_default());
        for id in journal
            .iter()
            .map(String::as_str)
            .chain(written)
            .chain(batch.deletes.iter().map(String::as_str))
        {
            settle_applied(tx, tenant, id)?;
        }
        tx.prepare_cached("DELETE FROM drift_journal WHERE tenant = ?1")?
            .execute(params![tenant])?;
    } else {
        // The first apply from git: every row.
        tx.execute(
            "DELETE FROM applied_resources WHERE tenant = ?1",
            params![tenant],
        )?;
        tx.execute(
            "INSERT INTO applied_resources (tenant, id, kind, name, revision) \
             SELECT tenant, id, kind, name, revision FROM resources WHERE tenant = ?1",
            params![tenant],
        )?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO git_applied (tenant, revision) VALUES (?1, ?2)",
        params![tenant, after as i64],
    )?;
    Ok(())
}

pub(crate) fn versions(
    store: &SqliteStore,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<VersionRecord>, StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT version, document, content, change_id, published_at FROM versions \
         WHERE tenant = ?1 AND id = ?2 ORDER BY version",
    )?;
    let mut out = Vec::new();
    for id in ids {
        let rows = stmt.query_map(params![tenant, id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        for row in rows {
            let (version, doc, content, change_id, published_at) = row?;
            let Some(resource) = decode_version(tenant, id, &doc, content)? else {
                continue;
            };
            out.push(VersionRecord {
                id: id.clone(),
                version: version as u64,
                resource,
                change_id,
                published_at,
            });
        }
    }
    Ok(out)
}

pub(crate) fn put_versions(
    store: &mut SqliteStore,
    tenant: &str,
    versions: &[VersionRecord],
) -> Result<(), StoreError> {
    let tx = begin(store.connection_mut(), tenant)?;
    tenant_revision(&tx, tenant)?;
    for v in versions {
        put_version(&tx, tenant, v)?;
    }
    touch_tenant(&tx, tenant)?;
    tx.commit()?;
    Ok(())
}

/// Write one published version as it is, replacing the same number.
pub(crate) fn put_version(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    v: &VersionRecord,
) -> Result<(), StoreError> {
    let document = String::from_utf8(canonical_json(&v.resource)).unwrap_or_default();
    tx.execute(
    "INSERT OR REPLACE INTO versions (tenant, id, version, document, content, content_hash, change_id, published_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    params![
        tenant,
        v.id,
        v.version as i64,
        document,
        v.resource.content,
        content_hash(&v.resource),
        v.change_id,
        v.published_at
    ],
)?;
    Ok(())
}

fn decode_version(
    tenant: &str,
    id: &str,
    document: &str,
    content: Option<Vec<u8>>,
) -> Result<Option<Resource>, StoreError> {
    if document == "null" {
        return Ok(None);
    }
    SqliteStore::row_to_resource(tenant, id, document, content).map(Some)
}

/// The latest published version of each resource still in production.
pub(crate) fn production(conn: &Connection, tenant: &str) -> Result<Vec<Resource>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id, v.document, v.content FROM versions v WHERE v.tenant = ?1 AND v.version = \
         (SELECT MAX(w.version) FROM versions w WHERE w.tenant = v.tenant AND w.id = v.id) ORDER BY v.id",
    )?;
    let rows = stmt.query_map(params![tenant], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, doc, content) = row?;
        if let Some(r) = decode_version(tenant, &id, &doc, content)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Production of the given IDs: the latest version of each, if still published.
pub(crate) fn production_of(
    conn: &Connection,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Resource>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT document, content FROM versions WHERE tenant = ?1 AND id = ?2 \
         ORDER BY version DESC LIMIT 1",
    )?;
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out = Vec::new();
    for id in sorted {
        let row = stmt
            .query_row(params![tenant, id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .optional()?;
        if let Some((doc, content)) = row {
            if let Some(r) = decode_version(tenant, id, &doc, content)? {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Write a publish in one transaction.
pub(crate) fn publish(
    conn: &mut Connection,
    tenant: &str,
    record: &PublishRecord,
    versions: &[PublishedVersion],
) -> Result<(), StoreError> {
    let tx = begin(conn, tenant)?;
    tenant_revision(&tx, tenant)?;
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM publishes WHERE tenant = ?1",
        params![tenant],
        |r| r.get(0),
    )?;
    if next as u64 != record.number {
        return Err(StoreError::Refused {
            message: format!(
                "tenant `{tenant}` was published by someone else meanwhile (next publish is {next}, not {}); try again",
                record.number
            ),
        });
    }
    {
        let mut last = tx.prepare_cached(
            "SELECT COALESCE(MAX(version), 0) FROM versions WHERE tenant = ?1 AND id = ?2",
        )?;
        let mut ins = tx.prepare_cached(
            "INSERT INTO versions (tenant, id, version, document, content, content_hash, change_id, published_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for v in versions {
            let n: i64 = last.query_row(params![tenant, v.id], |r| r.get(0))?;
            let (doc, content, hash) = match &v.resource {
                Some(r) => (
                    String::from_utf8(canonical_json(r)).unwrap_or_default(),
                    r.content.clone(),
                    content_hash(r),
                ),
                None => ("null".to_string(), None, "deleted".to_string()),
            };
            ins.execute(params![
                tenant,
                v.id,
                n + 1,
                doc,
                content,
                hash,
                record.change_track_id,
                record.published_at
            ])?;
        }
    }
    let summary = serde_json::to_string(&record.summary).unwrap_or_default();
    tx.execute(
        "INSERT INTO publishes (tenant, number, change_track_id, agent, published_by, published_at, summary, message, tag, commit_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            tenant,
            record.number as i64,
            record.change_track_id,
            record.agent,
            record.published_by,
            record.published_at,
            summary,
            record.message,
            record.tag,
            record.commit
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The publish log, newest first.
pub(crate) fn publishes(conn: &Connection, tenant: &str) -> Result<Vec<PublishRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT number, change_track_id, agent, published_by, published_at, summary, message, tag, commit_id \
         FROM publishes WHERE tenant = ?1 ORDER BY number DESC",
    )?;
    let rows = stmt.query_map(params![tenant], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, Option<String>>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            number,
            change_track_id,
            agent,
            published_by,
            published_at,
            summary,
            message,
            tag,
            commit,
        ) = row?;
        let summary: PublishSummary =
            serde_json::from_str(&summary).map_err(|e| StoreError::Corrupt {
                tenant: tenant.to_string(),
                id: change_track_id.clone(),
                reason: e.to_string(),
            })?;
        out.push(PublishRecord {
            tenant: tenant.to_string(),
            number: number as u64,
            change_track_id,
            agent,
            published_by,
            published_at,
            message,
            summary,
            tag,
            commit,
        });
    }
    Ok(out)
}

/// The versions one publish wrote, with production before each.
pub(crate) fn publish_changes(
    conn: &Connection,
    tenant: &str,
    change_track_id: &str,
) -> Result<Vec<VersionPair>, StoreError> {
    let known: Option<i64> = conn
        .query_row(
            "SELECT number FROM publishes WHERE tenant = ?1 AND change_track_id = ?2",
            params![tenant, change_track_id],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Err(StoreError::Refused {
            message: format!(
                "tenant `{tenant}` has no publish with change id `{change_track_id}`\nhint: `ferry publishes --tenant {tenant}` lists them"
            ),
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, version, document, content FROM versions WHERE tenant = ?1 AND change_id = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![tenant, change_track_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<Vec<u8>>>(3)?,
        ))
    })?;
    let raw: Vec<(String, i64, String, Option<Vec<u8>>)> = rows.collect::<Result<_, _>>()?;
    let mut prev = conn.prepare_cached(
        "SELECT document, content FROM versions WHERE tenant = ?1 AND id = ?2 AND version = ?3",
    )?;
    let mut out = Vec::new();
    for (id, version, doc, content) in raw {
        let after = decode_version(tenant, &id, &doc, content)?;
        let before_row: Option<(String, Option<Vec<u8>>)> = prev
            .query_row(params![tenant, id, version - 1], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let before = match before_row {
            Some((d, c)) => decode_version(tenant, &id, &d, c)?,
            None => None,
        };
        out.push(VersionPair { id, before, after });
    }
    Ok(out)
}

/// Resources changed since the last apply from git.
/// Whether the tenant moved since its last applied commit: `None` when it has none.
fn moved_since_commit(conn: &Connection, tenant: &str) -> Result<Option<bool>, StoreError> {
    let applied: Option<i64> = conn
        .query_row(
            "SELECT revision FROM git_applied WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()?;
    let current: Option<i64> = conn
        .query_row(
            "SELECT revision FROM tenants WHERE name = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match (applied, current) {
        (Some(a), Some(c)) => Some(a != c),
        _ => None,
    })
}

/// The resources changed since the last applied commit, with their paths then and now.
pub(crate) fn changes_since_commit(
    conn: &Connection,
    tenant: &str,
) -> Result<Option<Vec<CommitChange>>, StoreError> {
    match moved_since_commit(conn, tenant)? {
        None => return Ok(None),
        Some(false) => return Ok(Some(Vec::new())),
        Some(true) => {}
    }
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, a.kind, a.name, r.kind, r.name FROM drift_journal j \
         LEFT JOIN applied_resources a ON a.tenant = j.tenant AND a.id = j.id \
         LEFT JOIN resources r ON r.tenant = j.tenant AND r.id = j.id \
         WHERE j.tenant = ?1 AND (a.id IS NOT NULL OR r.id IS NOT NULL) \
           AND (a.id IS NULL OR r.id IS NULL OR a.revision != r.revision OR a.name != r.name) \
         ORDER BY 1",
    )?;
    let place =
        |kind: Option<String>, name: Option<String>| Some((Kind::from_name(&kind?)?, name?));
    let rows = stmt.query_map(params![tenant], |r| {
        Ok(CommitChange {
            id: r.get(0)?,
            then: place(r.get(1)?, r.get(2)?),
            now: place(r.get(3)?, r.get(4)?),
        })
    })?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}

pub(crate) fn drift(conn: &Connection, tenant: &str) -> Result<Vec<Absent>, StoreError> {
    if moved_since_commit(conn, tenant)? != Some(true) {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(r.kind, a.kind), COALESCE(r.name, a.name), j.id FROM drift_journal j \
         LEFT JOIN applied_resources a ON a.tenant = j.tenant AND a.id = j.id \
         LEFT JOIN resources r ON r.tenant = j.tenant AND r.id = j.id \
         WHERE j.tenant = ?1 AND (a.id IS NOT NULL OR r.id IS NOT NULL) \
           AND (a.id IS NULL OR r.id IS NULL OR a.revision != r.revision)",
    )?;
    let rows = stmt.query_map(params![tenant], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, name, id) = row?;
        if let Some(kind) = Kind::from_name(&kind) {
            out.push(Absent { kind, name, id });
        }
    }
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(out)
}
