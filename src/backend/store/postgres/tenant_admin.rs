//! [`TenantAdmin`] for PostgreSQL: tenant variables in the
//! `tenant_variables` table (migration 4) and deleting a tenant with all
//! its rows.
//!
//! Each call is one transaction that first locks the tenant's row, as a
//! write does, so a variable set or a deletion never interleaves with an
//! apply to the same tenant. A value is stored only as `ENC[age,…]`
//! ciphertext, and nothing here ever returns it.

use super::super::{now_rfc3339, StoreError, TenantAdmin};
use super::resources::{lock_tenant, touch_tenant};
use super::PostgresStore;

/// The tables holding rows of a tenant, children before parents, with the column naming it.
const TENANT_TABLES: &[(&str, &str)] = &[
    ("tenant_variables", "tenant"),
    ("sync_records", "tenant"),
    ("applied_resources", "tenant"),
    ("drift_journal", "tenant"),
    ("git_applied", "tenant"),
    ("publishes", "tenant"),
    ("versions", "tenant"),
    ("resources", "tenant"),
    ("grants", "tenant"),
    ("tokens", "tenant"),
];

impl TenantAdmin for PostgresStore {
    fn variable_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.client()?.query(
            "SELECT name FROM tenant_variables WHERE tenant = $1 ORDER BY name",
            &[&tenant],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn set_variable(
        &mut self,
        tenant: &str,
        name: &str,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        lock_tenant(&mut tx, tenant)?;
        tx.execute(
            "INSERT INTO tenant_variables (tenant, name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            &[&tenant, &name, &ciphertext, &now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn unset_variable(&mut self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        lock_tenant(&mut tx, tenant)?;
        let n = tx.execute(
            "DELETE FROM tenant_variables WHERE tenant = $1 AND name = $2",
            &[&tenant, &name],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn delete_tenant(&mut self, tenant: &str) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        lock_tenant(&mut tx, tenant)?;
        // Bump the store revision, so a plan made before the delete is stale.
        touch_tenant(&mut tx, tenant)?;
        for (table, column) in TENANT_TABLES {
            tx.execute(
                &format!("DELETE FROM {table} WHERE {column} = $1"),
                &[&tenant],
            )?;
        }
        tx.execute("DELETE FROM tenants WHERE name = $1", &[&tenant])?;
        tx.commit()?;
        Ok(())
    }
}
