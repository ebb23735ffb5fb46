//! Users, grants and API tokens in the SQLite store.
//!
//! The `users` and `grants` tables hold who may do what (see
//! [`crate::domain::access`]); the first user added becomes the store's owner.
//! `tokens` holds API tokens by their blake3 hash, never the token itself;
//! `sessions` holds web UI sessions the same way.
//! `tokens` holds API tokens by their blake3 hash, never the token itself,
//! with their ID, expiry, last use and revocation (schema 2, [`MIGRATION_2`]).

use rusqlite::{params, OptionalExtension};

use super::{begin, tenant_revision, SqliteStore};
use crate::backend::store::{
    now_rfc3339, token_taken, unknown_token, SessionRecord, StoreError, TokenRecord,
};
use crate::domain::access::{AccessState, Grant, Role, UserRecord};

/// Users and their roles per tenant (promotion and the HTTP server check them).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
  name       TEXT PRIMARY KEY,
  owner      INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
  user   TEXT NOT NULL REFERENCES users(name),
  tenant TEXT NOT NULL,
  role   TEXT NOT NULL,
  PRIMARY KEY (user, tenant)
);
CREATE TABLE IF NOT EXISTS tokens (
  hash       TEXT PRIMARY KEY,
  user       TEXT NOT NULL REFERENCES users(name),
  tenant     TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  hash       TEXT PRIMARY KEY,
  user       TEXT NOT NULL REFERENCES users(name),
  token_hash TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
"#;

/// Schema 2: tokens get an ID (derived from the hash, so existing tokens
/// get theirs), an expiry, a last use and a revocation time.
pub(crate) const MIGRATION_2: &str = r#"
ALTER TABLE tokens ADD COLUMN id TEXT;
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12);
CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
"#;

/// The columns of a [`TokenRecord`], in [`token_row`]'s order.
const TOKEN_COLUMNS: &str = "id, user, tenant, created_at, expires_at, last_used_at, revoked_at";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        user: r.get(1)?,
        tenant: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

pub(crate) fn access(store: &SqliteStore) -> Result<AccessState, StoreError> {
    let mut stmt = store
        .connection()
        .prepare_cached("SELECT name, owner FROM users ORDER BY name")?;
    let users = stmt
        .query_map([], |r| {
            Ok(UserRecord {
                name: r.get(0)?,
                owner: r.get::<_, i64>(1)? != 0,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = store
        .connection()
        .prepare_cached("SELECT user, tenant, role FROM grants ORDER BY user, tenant")?;
    let raw = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut grants = Vec::with_capacity(raw.len());
    for (user, tenant, role) in raw {
        let role = Role::from_name(&role).ok_or_else(|| StoreError::Refused {
            message: format!(
                "the store grants `{user}` an unknown role `{role}` on tenant `{tenant}`"
            ),
        })?;
        grants.push(Grant { user, tenant, role });
    }
    Ok(AccessState { users, grants })
}

pub(crate) fn add_user(store: &mut SqliteStore, name: &str) -> Result<UserRecord, StoreError> {
    let tx = begin(store.connection_mut(), name)?;
    let exists: Option<String> = tx
        .query_row(
            "SELECT name FROM users WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Refused {
            message: format!("user `{name}` already exists in the store"),
        });
    }
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    let owner = count == 0;
    tx.execute(
        "INSERT INTO users (name, owner, created_at) VALUES (?1, ?2, ?3)",
        params![name, owner as i64, now_rfc3339()],
    )?;
    tx.commit()?;
    Ok(UserRecord {
        name: name.to_string(),
        owner,
    })
}

pub(crate) fn grant(
    store: &mut SqliteStore,
    user: &str,
    tenant: &str,
    role: Role,
) -> Result<(), StoreError> {
    let tx = begin(store.connection_mut(), tenant)?;
    tenant_revision(&tx, tenant)?;
    require_user(&tx, user)?;
    tx.execute(
        "INSERT OR REPLACE INTO grants (user, tenant, role) VALUES (?1, ?2, ?3)",
        params![user, tenant, role.name()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Refuse a user the store does not know.
fn require_user(tx: &rusqlite::Transaction<'_>, user: &str) -> Result<(), StoreError> {
    let exists: Option<String> = tx
        .query_row(
            "SELECT name FROM users WHERE name = ?1",
            params![user],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::Refused {
            message: format!(
                "user `{user}` does not exist in the store; add them with `ferry user add {user}`"
            ),
        });
    }
    Ok(())
}

pub(crate) fn add_token(
    store: &mut SqliteStore,
    hash: &str,
    user: &str,
    tenant: Option<&str>,
    expires_at: Option<&str>,
) -> Result<TokenRecord, StoreError> {
    let tx = begin(store.connection_mut(), user)?;
    require_user(&tx, user)?;
    if let Some(t) = tenant {
        tenant_revision(&tx, t)?;
    }
    let record = TokenRecord::new(hash, user, tenant, expires_at);
    let taken: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM tokens WHERE hash = ?1 OR id = ?2",
            params![hash, record.id],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(token_taken(&record.id));
    }
    tx.execute(
        "INSERT INTO tokens (hash, id, user, tenant, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![hash, record.id, user, tenant, record.created_at, expires_at],
    )?;
    tx.commit()?;
    Ok(record)
}

pub(crate) fn token(store: &SqliteStore, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    Ok(store
        .connection()
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"
        ))?
        .query_row(params![hash], token_row)
        .optional()?)
}

pub(crate) fn add_session(store: &mut SqliteStore, s: &SessionRecord) -> Result<(), StoreError> {
    let tx = begin(store.connection_mut(), &s.user)?;
    require_user(&tx, &s.user)?;
    tx.execute(
        "INSERT INTO sessions (hash, user, token_hash, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![s.hash, s.user, s.token_hash, s.expires_at],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn session(
    store: &SqliteStore,
    hash: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    Ok(store
        .connection()
        .query_row(
            "SELECT hash, user, token_hash, expires_at FROM sessions WHERE hash = ?1",
            params![hash],
            |r| {
                Ok(SessionRecord {
                    hash: r.get(0)?,
                    user: r.get(1)?,
                    token_hash: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

pub(crate) fn remove_session(
    store: &mut SqliteStore,
    hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let tx = begin(store.connection_mut(), hash)?;
    let removed = tx.execute("DELETE FROM sessions WHERE hash = ?1", params![hash])?;
    tx.execute("DELETE FROM sessions WHERE expires_at < ?1", params![now])?;
    tx.commit()?;
    Ok(removed > 0)
}

pub(crate) fn tokens(store: &SqliteStore) -> Result<Vec<TokenRecord>, StoreError> {
    let mut stmt = store.connection().prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn revoke_token(
    store: &mut SqliteStore,
    id: &str,
    at: &str,
) -> Result<TokenRecord, StoreError> {
    let tx = begin(store.connection_mut(), id)?;
    tx.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, at],
    )?;
    let record = tx
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
            params![id],
            token_row,
        )
        .optional()?
        .ok_or_else(|| unknown_token(id))?;
    tx.commit()?;
    Ok(record)
}

pub(crate) fn touch_token(
    store: &mut SqliteStore,
    hash: &str,
    at: &str,
    not_before: &str,
) -> Result<bool, StoreError> {
    let n = store.connection().execute(
        "UPDATE tokens SET last_used_at = ?2 WHERE hash = ?1 AND revoked_at IS NULL \
         AND (last_used_at IS NULL OR last_used_at < ?3)",
        params![hash, at, not_before],
    )?;
    Ok(n > 0)
}
