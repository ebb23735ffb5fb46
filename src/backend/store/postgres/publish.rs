//! Published versions, production, the publish log and drift from git, in PostgreSQL.
//!
//! The tables and their meaning are the SQLite store's (see
//! `backend/store/sqlite/publish.rs`): `versions` holds versions 1..n of each
//! resource (a `null` document takes it out of production), `publishes` the
//! log, `git_applied` and `applied_resources` what the last apply from git
//! left, so later changes show as drift, and `drift_journal` (migration 7)
//! the IDs written since, so drift is found by keyed lookups. A publish locks the tenant's row,
//! so two publishes of one tenant are numbered one after the other.

use postgres::{GenericClient, Transaction};

use super::Query;

use super::super::{CommitChange, StoreError, VersionRecord, WriteBatch};
use super::resources::{decode, lock_tenant, touch_tenant};
use super::{signed, unsigned};
use crate::domain::model::{Kind, Resource};
use crate::domain::plan::Absent;
use crate::domain::publish::{PublishRecord, PublishSummary, PublishedVersion, VersionPair};
use crate::domain::state::{canonical_json, content_hash};

/// Write one published version as it is, replacing the same number.
pub(crate) fn put_version(
    tx: &mut Transaction<'_>,
    tenant: &str,
    v: &VersionRecord,
) -> Result<(), StoreError> {
    let document = String::from_utf8(canonical_json(&v.resource)).unwrap_or_default();
    tx.execute(
        "INSERT INTO versions (tenant, id, version, document, content, content_hash, change_id, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant, id, version) DO UPDATE SET document = EXCLUDED.document, \
           content = EXCLUDED.content, content_hash = EXCLUDED.content_hash, \
           change_id = EXCLUDED.change_id, published_at = EXCLUDED.published_at",
        &[
            &tenant,
            &v.id,
            &signed(v.version),
            &document,
            &v.resource.content,
            &content_hash(&v.resource),
            &v.change_id,
            &v.published_at,
        ],
    )?;
    Ok(())
}

/// Record published versions as they are, in one transaction.
pub fn put_versions(
    c: &mut impl GenericClient,
    tenant: &str,
    versions: &[VersionRecord],
) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    lock_tenant(&mut tx, tenant)?;
    for v in versions {
        put_version(&mut tx, tenant, v)?;
    }
    touch_tenant(&mut tx, tenant)?;
    tx.commit()?;
    Ok(())
}

/// Published versions of the given IDs, by ID then version number.
pub fn versions(
    c: &mut impl GenericClient,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<VersionRecord>, StoreError> {
    let rows = c.query(
        "SELECT id, version, document, content, change_id, published_at FROM versions \
         WHERE tenant = $1 AND id = ANY($2) ORDER BY id, version",
        &[&tenant, &ids],
    )?;
    let mut by_id: std::collections::BTreeMap<String, Vec<VersionRecord>> = Default::default();
    for r in rows {
        let id: String = r.get(0);
        // A publish that took the resource out of production is no version of it.
        let Some(resource) = decode_version(tenant, &id, r.get(2), r.get(3))? else {
            continue;
        };
        let record = VersionRecord {
            id: id.clone(),
            version: unsigned(r.get(1)),
            resource,
            change_id: r.get(4),
            published_at: r.get(5),
        };
        by_id.entry(id).or_default().push(record);
    }
    // In the order the IDs were asked, as the SQLite store answers.
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .flatten()
        .collect())
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
    decode(tenant, id, document, content).map(Some)
}

/// The latest published version of each resource still in production, by ID.
pub fn production(q: &mut Query<'_>, tenant: &str) -> Result<Vec<Resource>, StoreError> {
    production_where(q, tenant, None)
}

/// Production of the given IDs only.
pub fn production_of(
    q: &mut Query<'_>,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Resource>, StoreError> {
    production_where(q, tenant, Some(ids))
}

fn production_where(
    q: &mut Query<'_>,
    tenant: &str,
    ids: Option<&[String]>,
) -> Result<Vec<Resource>, StoreError> {
    let rows = q(
        "SELECT DISTINCT ON (id) id, document, content FROM versions \
         WHERE tenant = $1 AND ($2::TEXT[] IS NULL OR id = ANY($2)) ORDER BY id, version DESC",
        &[&tenant, &ids],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(res) = decode_version(tenant, r.get(0), r.get(1), r.get(2))? {
            out.push(res);
        }
    }
    Ok(out)
}

/// Write a publish in one transaction, refused unless it has the tenant's next number.
pub fn publish(
    c: &mut impl GenericClient,
    tenant: &str,
    record: &PublishRecord,
    versions: &[PublishedVersion],
) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    lock_tenant(&mut tx, tenant)?;
    let next = next_publish_number(&mut tx, tenant)?;
    if next != record.number {
        return Err(StoreError::Refused {
            message: format!(
                "tenant `{tenant}` was published by someone else meanwhile (next publish is {next}, not {}); try again",
                record.number
            ),
        });
    }
    let last =
        tx.prepare("SELECT COALESCE(MAX(version), 0) FROM versions WHERE tenant = $1 AND id = $2")?;
    let insert = tx.prepare(
        "INSERT INTO versions (tenant, id, version, document, content, content_hash, change_id, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
    for v in versions {
        let n: i64 = tx.query_one(&last, &[&tenant, &v.id])?.get(0);
        let (doc, content, hash) = match &v.resource {
            Some(r) => (
                String::from_utf8(canonical_json(r)).unwrap_or_default(),
                r.content.clone(),
                content_hash(r),
            ),
            None => ("null".to_string(), None, "deleted".to_string()),
        };
        tx.execute(
            &insert,
            &[
                &tenant,
                &v.id,
                &(n + 1),
                &doc,
                &content,
                &hash,
                &record.change_track_id,
                &record.published_at,
            ],
        )?;
    }
    let summary = serde_json::to_string(&record.summary).unwrap_or_default();
    tx.execute(
        "INSERT INTO publishes (tenant, number, change_track_id, agent, published_by, published_at, summary, message, tag, commit_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &tenant,
            &signed(record.number),
            &record.change_track_id,
            &record.agent,
            &record.published_by,
            &record.published_at,
            &summary,
            &record.message,
            &record.tag,
            &record.commit,
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The publish log, newest first.
pub fn publishes(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Vec<PublishRecord>, StoreError> {
    let rows = c.query(
        "SELECT number, change_track_id, agent, published_by, published_at, summary, message, tag, commit_id \
         FROM publishes WHERE tenant = $1 ORDER BY number DESC",
        &[&tenant],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let change_track_id: String = r.get(1);
        let summary: PublishSummary =
            serde_json::from_str(r.get(5)).map_err(|e| StoreError::Corrupt {
                tenant: tenant.to_string(),
                id: change_track_id.clone(),
                reason: e.to_string(),
            })?;
        out.push(PublishRecord {
            tenant: tenant.to_string(),
            number: unsigned(r.get(0)),
            change_track_id,
            agent: r.get(2),
            published_by: r.get(3),
            published_at: r.get(4),
            message: r.get(6),
            summary,
            tag: r.get(7),
            commit: r.get(8),
        });
    }
    Ok(out)
}

/// The number the tenant's next publish gets.
pub fn next_publish_number(c: &mut impl GenericClient, tenant: &str) -> Result<u64, StoreError> {
    let row = c.query_one(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM publishes WHERE tenant = $1",
        &[&tenant],
    )?;
    Ok(unsigned(row.get(0)))
}

/// Whether the tenant has a publish with this change ID.
pub fn has_publish(
    c: &mut impl GenericClient,
    tenant: &str,
    change_track_id: &str,
) -> Result<bool, StoreError> {
    Ok(c.query_opt(
        "SELECT 1 FROM publishes WHERE tenant = $1 AND change_track_id = $2",
        &[&tenant, &change_track_id],
    )?
    .is_some())
}

/// The versions one publish wrote, each with production before it.
pub fn publish_changes(
    c: &mut impl GenericClient,
    tenant: &str,
    change_track_id: &str,
) -> Result<Vec<VersionPair>, StoreError> {
    if !has_publish(c, tenant, change_track_id)? {
        return Err(StoreError::Refused {
            message: format!(
                "tenant `{tenant}` has no publish with change id `{change_track_id}`\nhint: `ferry publishes --tenant {tenant}` lists them"
            ),
        });
    }
    let rows = c.query(
        "SELECT v.id, v.document, v.content, p.document, p.content FROM versions v \
         LEFT JOIN versions p ON p.tenant = v.tenant AND p.id = v.id AND p.version = v.version - 1 \
         WHERE v.tenant = $1 AND v.change_id = $2 ORDER BY v.id",
        &[&tenant, &change_track_id],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let after = decode_version(tenant, &id, r.get(1), r.get(2))?;
        let before = match r.get::<_, Option<&str>>(3) {
            Some(doc) => decode_version(tenant, &id, doc, r.get(4))?,
            None => None,
        };
        out.push(VersionPair { id, before, after });
    }
    Ok(out)
}

/// Outside an apply from git: journal the IDs a write touched, when the
/// tenant has an applied commit to drift from.
pub(crate) fn journal_drift(
    tx: &mut Transaction<'_>,
    tenant: &str,
    batch: &WriteBatch<'_>,
) -> Result<(), StoreError> {
    if batch.upserts.is_empty() && batch.deletes.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = batch
        .upserts
        .iter()
        .map(|(r, _)| r.id().unwrap_or_default())
        .chain(batch.deletes.iter().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    tx.execute(
        "INSERT INTO drift_journal (tenant, id) \
         SELECT g.tenant, i FROM git_applied g, unnest($2::text[]) AS i WHERE g.tenant = $1 \
         ON CONFLICT DO NOTHING",
        &[&tenant, &ids],
    )?;
    Ok(())
}

/// Inside an apply from git: remember each resource's revision, so later changes show as drift.
pub(crate) fn record_git_apply(
    tx: &mut Transaction<'_>,
    tenant: &str,
    after: u64,
    batch: &WriteBatch<'_>,
) -> Result<(), StoreError> {
    let prev: Option<i64> = tx
        .query_opt(
            "SELECT revision FROM git_applied WHERE tenant = $1",
            &[&tenant],
        )?
        .map(|r| r.get(0));
    if prev.is_some() {
        // Only what this apply wrote and what the journal holds can differ.
        let mut ids: Vec<String> = tx
            .query(
                "DELETE FROM drift_journal WHERE tenant = $1 RETURNING id",
                &[&tenant],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.extend(
            batch
                .upserts
                .iter()
                .map(|(r, _)| r.id().unwrap_or_default().to_string()),
        );
        ids.extend(batch.deletes.iter().cloned());
        tx.execute(
            "DELETE FROM applied_resources a WHERE a.tenant = $1 AND a.id = ANY($2) AND NOT EXISTS \
               (SELECT 1 FROM resources r WHERE r.tenant = a.tenant AND r.id = a.id)",
            &[&tenant, &ids],
        )?;
        tx.execute(
            "INSERT INTO applied_resources (tenant, id, kind, name, revision) \
             SELECT tenant, id, kind, name, revision FROM resources WHERE tenant = $1 AND id = ANY($2) \
             ON CONFLICT (tenant, id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
               revision = EXCLUDED.revision",
            &[&tenant, &ids],
        )?;
    } else {
        // The first apply from git: every row.
        tx.execute(
            "DELETE FROM applied_resources WHERE tenant = $1",
            &[&tenant],
        )?;
        tx.execute(
            "INSERT INTO applied_resources (tenant, id, kind, name, revision) \
             SELECT tenant, id, kind, name, revision FROM resources WHERE tenant = $1",
            &[&tenant],
        )?;
    }
    tx.execute(
        "INSERT INTO git_applied (tenant, revision) VALUES ($1, $2) \
         ON CONFLICT (tenant) DO UPDATE SET revision = EXCLUDED.revision",
        &[&tenant, &signed(after)],
    )?;
    Ok(())
}

/// Whether the tenant moved since its last applied commit: `None` when it has none.
fn moved_since_commit(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Option<bool>, StoreError> {
    let row = c.query_opt(
        "SELECT g.revision, t.revision FROM git_applied g JOIN tenants t ON t.name = g.tenant \
         WHERE g.tenant = $1",
        &[&tenant],
    )?;
    Ok(row.map(|r| r.get::<_, i64>(0) != r.get::<_, i64>(1)))
}

/// The resources changed since the last applied commit, with their paths then and now.
pub fn changes_since_commit(
    c: &mut impl GenericClient,
    tenant: &str,
) -> Result<Option<Vec<CommitChange>>, StoreError> {
    match moved_since_commit(c, tenant)? {
        None => return Ok(None),
        Some(false) => return Ok(Some(Vec::new())),
        Some(true) => {}
    }
    let rows = c.query(
        "SELECT j.id, a.kind, a.name, r.kind, r.name FROM drift_journal j \
         LEFT JOIN applied_resources a ON a.tenant = j.tenant AND a.id = j.id \
         LEFT JOIN resources r ON r.tenant = j.tenant AND r.id = j.id \
         WHERE j.tenant = $1 AND (a.id IS NOT NULL OR r.id IS NOT NULL) \
           AND (a.id IS NULL OR r.id IS NULL OR a.revision != r.revision OR a.name != r.name) \
         ORDER BY 1",
        &[&tenant],
    )?;
    let place =
        |kind: Option<String>, name: Option<String>| Some((Kind::from_name(&kind?)?, name?));
    Ok(Some(
        rows.iter()
            .map(|r| CommitChange {
                id: r.get(0),
                then: place(r.get(1), r.get(2)),
                now: place(r.get(3), r.get(4)),
            })
            .collect(),
    ))
}

/// Resources changed since the last apply from git, by kind then name.
pub fn drift(c: &mut impl GenericClient, tenant: &str) -> Result<Vec<Absent>, StoreError> {
    if moved_since_commit(c, tenant)? != Some(true) {
        return Ok(Vec::new());
    }
    let rows = c.query(
        "SELECT COALESCE(r.kind, a.kind), COALESCE(r.name, a.name), j.id FROM drift_journal j \
         LEFT JOIN applied_resources a ON a.tenant = j.tenant AND a.id = j.id \
         LEFT JOIN resources r ON r.tenant = j.tenant AND r.id = j.id \
         WHERE j.tenant = $1 AND (a.id IS NOT NULL OR r.id IS NOT NULL) \
           AND (a.id IS NULL OR r.id IS NULL OR a.revision != r.revision)",
        &[&tenant],
    )?;
    let mut out: Vec<Absent> = rows
        .iter()
        .filter_map(|r| {
            Kind::from_name(r.get(0)).map(|kind| Absent {
                kind,
                name: r.get(1),
                id: r.get(2),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(out)
}
