//! Tenant variables: the values behind `${vars.NAME}`, kept in the store
//! encrypted to the tenant's key (`ferry vars set/list/unset`).
//!
//! Setting and unsetting need the editor role; listing needs viewer and
//! returns names only (never a value), with the names the tenant's
//! resources use but that have no value yet.

use crate::backend::store::{Store, StoreError, TenantAdmin};
use crate::domain::access::{AccessError, Role};
use crate::domain::model::TenantModel;
use crate::domain::secrets::{self, SecretError};
use crate::service::access::{authorize, Actor};
use crate::service::pipeline;

/// Why a variables use case failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    /// The actor may not do this.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The name is not a variable name.
    #[error("`{name}` is not a variable name: use letters, digits and `_`, starting with a letter or `_`")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The value is empty.
    #[error("the value of `{name}` is empty")]
    Empty {
        /// The variable.
        name: String,
    },
    /// This store keeps no variables.
    #[error("this store cannot keep tenant variables")]
    Unsupported,
    /// Encryption failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tenant's variables: which are set, and which its resources use without a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VariableList {
    /// The tenant.
    pub tenant: String,
    /// Names with a value, sorted.
    pub set: Vec<String>,
    /// Names used as `${vars.NAME}` by the tenant's resources but not set, sorted.
    pub missing: Vec<String>,
}

fn check_name(name: &str) -> Result<(), VarsError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(VarsError::BadName {
            name: name.to_string(),
        })
    }
}

fn admin(store: &dyn Store) -> Result<&dyn TenantAdmin, VarsError> {
    store.tenant_admin().ok_or(VarsError::Unsupported)
}

/// The names of `tenant`'s variables that have a value (empty when the store keeps none).
pub fn set_names(store: &dyn Store, tenant: &str) -> Result<Vec<String>, StoreError> {
    match store.tenant_admin() {
        Some(a) => a.variable_names(tenant),
        None => Ok(Vec::new()),
    }
}

/// `ferry vars set`: store `value` for `name`, encrypted to the tenant's key (editor).
pub fn set(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    name: &str,
    value: &[u8],
) -> Result<(), VarsError> {
    check_name(name)?;
    let record = store.tenant(tenant)?;
    authorize::<VarsError>(&*store, actor, tenant, Role::Editor, "setting a variable")?;
    if value.is_empty() {
        return Err(VarsError::Empty {
            name: name.to_string(),
        });
    }
    let ciphertext = secrets::encrypt(&record.recipient, value)?;
    let admin = store.tenant_admin_mut().ok_or(VarsError::Unsupported)?;
    admin.set_variable(tenant, name, &ciphertext)?;
    Ok(())
}

/// `ferry vars set` as a server receives it from a remote store: the value
/// already encrypted to the tenant (the plain value never travels). The
/// same checks as [`set`] (editor), and the ciphertext must open with the
/// tenant's key, so nothing else is kept as a variable.
pub fn set_ciphertext(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    name: &str,
    ciphertext: &str,
) -> Result<(), VarsError> {
    check_name(name)?;
    store.tenant(tenant)?;
    authorize::<VarsError>(&*store, actor, tenant, Role::Editor, "setting a variable")?;
    let identity = store.identity(tenant)?;
    match secrets::decrypt(tenant, &identity, ciphertext) {
        Ok(plain) if plain.is_empty() => {
            return Err(VarsError::Empty {
                name: name.to_string(),
            })
        }
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    let admin = store.tenant_admin_mut().ok_or(VarsError::Unsupported)?;
    admin.set_variable(tenant, name, ciphertext)?;
    Ok(())
}

/// `ferry vars unset`: remove `name`; returns whether it was set (editor).
pub fn unset(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    name: &str,
) -> Result<bool, VarsError> {
    check_name(name)?;
    store.tenant(tenant)?;
    authorize::<VarsError>(&*store, actor, tenant, Role::Editor, "unsetting a variable")?;
    let admin = store.tenant_admin_mut().ok_or(VarsError::Unsupported)?;
    Ok(admin.unset_variable(tenant, name)?)
}

/// `ferry vars list`: the names set and the names still missing (viewer).
pub fn list(store: &dyn Store, actor: &Actor, tenant: &str) -> Result<VariableList, VarsError> {
    store.tenant(tenant)?;
    authorize::<VarsError>(store, actor, tenant, Role::Viewer, "listing variables")?;
    let set = admin(store)?.variable_names(tenant)?;
    let mut model = TenantModel::default();
    for r in store.all_drafts(tenant)? {
        model.insert(r);
    }
    let missing = pipeline::variables_of(&model)
        .into_iter()
        .filter(|v| !set.contains(v))
        .collect();
    Ok(VariableList {
        tenant: tenant.to_string(),
        set,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::backend::store::{ResourceStore, SyncStore};

    #[test]
    fn variable_names_are_identifiers() {
        assert!(check_name("CRM_API_KEY").is_ok());
        assert!(check_name("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "A}"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
