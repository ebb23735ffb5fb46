//! Users, grants, API token hashes and sync records, in PostgreSQL.
//!
//! The rules are the SQLite store's: the first user added owns the store, a
//! grant names a user and a tenant that exist, a token is kept as its hash
//! only. Adding a user locks the `users` table for the transaction, so two
//! first users cannot both become owner.

use postgres::GenericClient;

use super::Query;

use super::super::{
    now_rfc3339, token_taken, unknown_token, SessionRecord, StoreError, SyncRecord, TokenRecord,
};
use super::resources::lock_tenant;
use super::{signed, unsigned};
use crate::domain::access::{AccessState, Grant, Role, UserRecord};

/// Every user and grant of the store.
pub fn access(q: &mut Query<'_>) -> Result<AccessState, StoreError> {
    let users = q("SELECT name, owner FROM users ORDER BY name", &[])?
        .iter()
        .map(|r| UserRecord {
            name: r.get(0),
            owner: r.get(1),
        })
        .collect();
    let rows = q(
        "SELECT \"user\", tenant, role FROM grants ORDER BY \"user\", tenant",
        &[],
    )?;
    let mut grants = Vec::with_capacity(rows.len());
    for r in rows {
        let (user, tenant, role): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let role = Role::from_name(&role).ok_or_else(|| StoreError::Refused {
            message: format!(
                "the store grants `{user}` an unknown role `{role}` on tenant `{tenant}`"
            ),
        })?;
        grants.push(Grant { user, tenant, role });
    }
    Ok(AccessState { users, grants })
}

/// Add a user; the first user of a store becomes its owner.
pub fn add_user(c: &mut impl GenericClient, name: &str) -> Result<UserRecord, StoreError> {
    let mut tx = c.transaction()?;
    tx.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")?;
    if tx
        .query_opt("SELECT 1 FROM users WHERE name = $1", &[&name])?
        .is_some()
    {
        return Err(StoreError::Refused {
            message: format!("user `{name}` already exists in the store"),
        });
    }
    let count: i64 = tx.query_one("SELECT COUNT(*) FROM users", &[])?.get(0);
    let owner = count == 0;
    tx.execute(
        "INSERT INTO users (name, owner, created_at) VALUES ($1, $2, $3)",
        &[&name, &owner, &now_rfc3339()],
    )?;
    tx.commit()?;
    Ok(UserRecord {
        name: name.to_string(),
        owner,
    })
}

/// Refuse a user the store does not know.
fn require_user(c: &mut impl GenericClient, user: &str) -> Result<(), StoreError> {
    if c.query_opt("SELECT 1 FROM users WHERE name = $1", &[&user])?
        .is_none()
    {
        return Err(StoreError::Refused {
            message: format!(
                "user `{user}` does not exist in the store; add them with `ferry user add {user}`"
            ),
        });
    }
    Ok(())
}

/// Grant `role` on `tenant` to `user`, replacing an earlier grant there.
pub fn grant(
    c: &mut impl GenericClient,
    user: &str,
    tenant: &str,
    role: Role,
) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    lock_tenant(&mut tx, tenant)?;
    require_user(&mut tx, user)?;
    tx.execute(
        "INSERT INTO grants (\"user\", tenant, role) VALUES ($1, $2, $3) \
         ON CONFLICT (\"user\", tenant) DO UPDATE SET role = EXCLUDED.role",
        &[&user, &tenant, &role.name()],
    )?;
    tx.commit()?;
    Ok(())
}

/// The columns of a [`TokenRecord`], in [`token_row`]'s order.
/// The columns [`token_row`] reads, as a literal (for `concat!`).
macro_rules! token_columns {
    () => {
        "id, \"user\", tenant, created_at, expires_at, last_used_at, revoked_at"
    };
}

const TOKEN_COLUMNS: &str = token_columns!();

const TOKEN_BY_HASH: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = $1");

fn token_row(r: &postgres::Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        user: r.get(1),
        tenant: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    }
}

/// Record an API token by its hash.
pub fn add_token(
    c: &mut impl GenericClient,
    hash: &str,
    user: &str,
    tenant: Option<&str>,
    expires_at: Option<&str>,
) -> Result<TokenRecord, StoreError> {
    let mut tx = c.transaction()?;
    require_user(&mut tx, user)?;
    if let Some(t) = tenant {
        lock_tenant(&mut tx, t)?;
    }
    let record = TokenRecord::new(hash, user, tenant, expires_at);
    if tx
        .query_opt(
            "SELECT 1 FROM tokens WHERE hash = $1 OR id = $2",
            &[&hash, &record.id],
        )?
        .is_some()
    {
        return Err(token_taken(&record.id));
    }
    tx.execute(
        "INSERT INTO tokens (hash, id, \"user\", tenant, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &hash,
            &record.id,
            &user,
            &tenant,
            &record.created_at,
            &expires_at,
        ],
    )?;
    tx.commit()?;
    Ok(record)
}

/// The token with this hash, if any.
pub fn token(q: &mut Query<'_>, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    Ok(q(TOKEN_BY_HASH, &[&hash])?.first().map(token_row))
}

/// Every token, by creation time then ID.
pub fn tokens(c: &mut impl GenericClient) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(c.query(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"),
        &[],
    )?
    .iter()
    .map(token_row)
    .collect())
}

/// Mark a token revoked (once); refused for an unknown ID.
pub fn revoke_token(
    c: &mut impl GenericClient,
    id: &str,
    at: &str,
) -> Result<TokenRecord, StoreError> {
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&id, &at],
    )?;
    let record = tx
        .query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(token_row)
        .ok_or_else(|| unknown_token(id))?;
    tx.commit()?;
    Ok(record)
}

/// Record a token's use, at most once per interval.
pub fn touch_token(
    c: &mut impl GenericClient,
    hash: &str,
    at: &str,
    not_before: &str,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE tokens SET last_used_at = $2 WHERE hash = $1 AND revoked_at IS NULL \
         AND (last_used_at IS NULL OR last_used_at < $3)",
        &[&hash, &at, &not_before],
    )?;
    Ok(n > 0)
}

/// Record a web UI session by the hash of its secret.
pub fn add_session(c: &mut impl GenericClient, s: &SessionRecord) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    require_user(&mut tx, &s.user)?;
    tx.execute(
        "INSERT INTO sessions (hash, \"user\", token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        &[&s.hash, &s.user, &s.token_hash, &s.expires_at],
    )?;
    tx.commit()?;
    Ok(())
}

/// The session with this hash, if any.
pub fn session(
    c: &mut impl GenericClient,
    hash: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(c.query_opt(
        "SELECT hash, \"user\", token_hash, expires_at FROM sessions WHERE hash = $1",
        &[&hash],
    )?
    .map(|r| SessionRecord {
        hash: r.get(0),
        user: r.get(1),
        token_hash: r.get(2),
        expires_at: r.get(3),
    }))
}

/// Remove one session and every expired one.
pub fn remove_session(
    c: &mut impl GenericClient,
    hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = c.transaction()?;
    let removed = tx.execute("DELETE FROM sessions WHERE hash = $1", &[&hash])?;
    tx.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now])?;
    tx.commit()?;
    Ok(removed > 0)
}

/// The sync records of a tenant written by syncs from `source_key`, by local ID.
pub fn sync_records(
    c: &mut impl GenericClient,
    tenant: &str,
    source_key: &str,
) -> Result<Vec<SyncRecord>, StoreError> {
    let rows = c.query(
        "SELECT local_id, origin_id, revision, content_hash FROM sync_records \
         WHERE tenant = $1 AND source_key = $2 ORDER BY local_id",
        &[&tenant, &source_key],
    )?;
    Ok(rows
        .iter()
        .map(|r| SyncRecord {
            local_id: r.get(0),
            origin_id: r.get(1),
            revision: unsigned(r.get(2)),
            content_hash: r.get(3),
        })
        .collect())
}

/// Write sync records inside a transaction, replacing earlier records of the same resources.
pub(crate) fn put_sync_records(
    c: &mut impl GenericClient,
    tenant: &str,
    source_key: &str,
    records: &[SyncRecord],
) -> Result<(), StoreError> {
    let stmt = c.prepare(
        "INSERT INTO sync_records (tenant, local_id, source_key, origin_id, revision, content_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant, local_id, source_key) DO UPDATE SET origin_id = EXCLUDED.origin_id, \
           revision = EXCLUDED.revision, content_hash = EXCLUDED.content_hash",
    )?;
    for r in records {
        c.execute(
            &stmt,
            &[
                &tenant,
                &r.local_id,
                &source_key,
                &r.origin_id,
                &signed(r.revision),
                &r.content_hash,
            ],
        )?;
    }
    Ok(())
}

/// Record what a sync from `source_key` wrote, in one transaction.
pub fn record_syncs(
    c: &mut impl GenericClient,
    tenant: &str,
    source_key: &str,
    records: &[SyncRecord],
) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    lock_tenant(&mut tx, tenant)?;
    put_sync_records(&mut tx, tenant, source_key, records)?;
    tx.commit()?;
    Ok(())
}
