//! [`TenantAdmin`] for SQLite: tenant variables in the `tenant_variables`
//! table and deleting a tenant with all its rows.
//!
//! A value is stored only as `ENC[age,…]` ciphertext, and nothing here ever
//! returns it.

use rusqlite::params;

use super::{begin, tenant_revision, touch_tenant, SqliteStore};
use crate::backend::store::{now_rfc3339, StoreError, TenantAdmin};

/// The table of tenant variables.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenant_variables (
  tenant     TEXT NOT NULL,
  name       TEXT NOT NULL,
  value      TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
"#;

/// The tables holding rows of a tenant, in the order they are deleted.
const TENANT_TABLES: &[&str] = &[
    "tenant_variables",
    "sync_records",
    "applied_resources",
    "drift_journal",
    "git_applied",
    "publishes",
    "versions",
    "resources",
    "grants",
    "tokens",
];

impl TenantAdmin for SqliteStore {
    fn variable_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .connection()
            .prepare_cached("SELECT name FROM tenant_variables WHERE tenant = ?1 ORDER BY name")?;
        let names = stmt
            .query_map(params![tenant], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    fn set_variable(
        &mut self,
        tenant: &str,
        name: &str,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        let tx = begin(self.connection_mut(), tenant)?;
        tenant_revision(&tx, tenant)?;
        tx.execute(
            "INSERT INTO tenant_variables (tenant, name, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![tenant, name, ciphertext, now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn unset_variable(&mut self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let tx = begin(self.connection_mut(), tenant)?;
        tenant_revision(&tx, tenant)?;
        let n = tx.execute(
            "DELETE FROM tenant_variables WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn delete_tenant(&mut self, tenant: &str) -> Result<(), StoreError> {
        let tx = begin(self.connection_mut(), tenant)?;
        tenant_revision(&tx, tenant)?;
        // Bump the store revision, so a plan made before the delete is stale.
        touch_tenant(&tx, tenant)?;
        for table in TENANT_TABLES {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1"),
                params![tenant],
            )?;
        }
        tx.execute("DELETE FROM tenants WHERE name = ?1", params![tenant])?;
        tx.commit()?;
        Ok(())
    }
}
