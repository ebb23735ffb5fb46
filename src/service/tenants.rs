//! Creating a tenant from a name and a key pair (`ferry tenant create`, and
//! a remote store's), and deleting one (`ferry tenant delete`): the owner's
//! use cases; and the tenants an actor may see ([`visible`]), as
//! `ferry tenant list` and `GET /api/tenants` list them.
//!
//! Only an owner of the tenant (or of the store) may delete it, checked with
//! [`authorize`] before anything else is looked at. A tenant that other
//! tenants' resources name as their origin (`syncedFrom`) is refused unless
//! forced, listing those resources. The deletion itself is one transaction
//! of the store's [`TenantAdmin`]: drafts, versions, the publish log,
//! variables, sync records, grants and tokens bound to it go together.

use crate::backend::store::{Store, StoreError, TenantRecord};
use crate::domain::access::{AccessError, Role};
use crate::domain::secrets::{self, KeyPair, SecretError};
use crate::service::access::{authorize, Actor};

/// The tenants `actor` may see, by name, each with their role on it: every
/// tenant (no role) while the store has no users, else those they hold a
/// role on (a store owner, all).
pub fn visible(
    store: &dyn Store,
    actor: &Actor,
) -> Result<Vec<(TenantRecord, Option<Role>)>, StoreError> {
    let access = crate::service::access::access_of(store, actor)?;
    let tenants = store.tenants()?;
    if access.users.is_empty() {
        return Ok(tenants.into_iter().map(|t| (t, None)).collect());
    }
    let Some(name) = actor.name() else {
        return Ok(Vec::new());
    };
    Ok(tenants
        .into_iter()
        .filter_map(|t| access.role(name, &t.name).map(|r| (t, Some(r))))
        .collect())
}

/// A resource of another tenant that names the tenant as its origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dependant {
    /// The other tenant.
    pub tenant: String,
    /// The resource's kind.
    pub kind: String,
    /// The resource's name.
    pub name: String,
}

/// Why a tenant could not be deleted. Nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The actor may not delete the tenant.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Other tenants' resources came from this one.
    #[error("tenant `{tenant}` is the origin (syncedFrom) of {} resource(s) in other tenants", dependants.len())]
    Origin {
        /// The tenant.
        tenant: String,
        /// Those resources.
        dependants: Vec<Dependant>,
    },
    /// This store cannot delete tenants.
    #[error("this store cannot delete tenants")]
    Unsupported,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a tenant could not be created. Nothing was created.
#[derive(Debug, thiserror::Error)]
pub enum NewTenantError {
    /// The name is not a valid tenant name.
    #[error("tenant name `{name}` must be lower-case letters, digits, `-`, `_` or `.`")]
    BadName {
        /// The name sent.
        name: String,
    },
    /// The keys are not an age key pair (a private key and its public key).
    #[error("field `{field}` of new tenant `{tenant}` {problem}")]
    BadKeys {
        /// The tenant.
        tenant: String,
        /// The field at fault: `identity` or `recipient`.
        field: &'static str,
        /// What is wrong with it (never the private key).
        problem: &'static str,
    },
    /// The actor may not create tenants.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Create tenant `name` with the key pair a caller made, as `actor`, an
/// owner of the store. The name and the keys are checked first, so a
/// broken pair never lands: a tenant whose values cannot be encrypted or
/// decrypted would be unusable.
pub fn create(
    store: &mut dyn Store,
    actor: &Actor,
    name: &str,
    environment: Option<&str>,
    keys: &KeyPair,
) -> Result<TenantRecord, NewTenantError> {
    store
        .access()?
        .require_owner(actor.name(), "creating tenants")?;
    check_name(name)?;
    secrets::check_keypair(name, keys).map_err(|e| {
        let (field, problem) = match e {
            SecretError::KeyMismatch { .. } => {
                ("recipient", "is not the public key of field `identity`")
            }
            _ => ("identity", "is not an age private key (AGE-SECRET-KEY-1…)"),
        };
        NewTenantError::BadKeys {
            tenant: name.to_string(),
            field,
            problem,
        }
    })?;
    Ok(store.create_tenant(name, environment, keys)?)
}

/// Whether `name` may name a tenant, checked by [`create`] and, before
/// anything is opened, by a front end.
pub fn check_name(name: &str) -> Result<(), NewTenantError> {
    if crate::domain::model::is_valid_name(name) {
        Ok(())
    } else {
        Err(NewTenantError::BadName {
            name: name.to_string(),
        })
    }
}

/// The resources of other tenants whose `syncedFrom` names `tenant`.
pub fn dependants(store: &dyn Store, tenant: &str) -> Result<Vec<Dependant>, StoreError> {
    let mut found = Vec::new();
    for t in store.tenants()? {
        if t.name == tenant {
            continue;
        }
        for r in store.all_drafts(&t.name)? {
            if r.metadata
                .synced_from
                .as_ref()
                .is_some_and(|s| s.tenant == tenant)
            {
                found.push(Dependant {
                    tenant: t.name.clone(),
                    kind: r.kind().to_string(),
                    name: r.name().to_string(),
                });
            }
        }
    }
    Ok(found)
}

/// Check that `actor` may delete `tenant` (owner), and that nothing comes
/// from it unless `force`; returns the tenant as it is. Changes nothing.
pub fn check_delete(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    force: bool,
) -> Result<TenantRecord, TenantError> {
    let record = store.tenant(tenant)?;
    authorize::<TenantError>(store, actor, tenant, Role::Owner, "deleting a tenant")?;
    if store.tenant_admin().is_none() {
        return Err(TenantError::Unsupported);
    }
    if !force {
        let dependants = dependants(store, tenant)?;
        if !dependants.is_empty() {
            return Err(TenantError::Origin {
                tenant: tenant.to_string(),
                dependants,
            });
        }
    }
    Ok(record)
}

/// `ferry tenant delete`: [`check_delete`], then delete the tenant and all
/// it holds in one transaction; returns the tenant as it was.
pub fn delete(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    force: bool,
) -> Result<TenantRecord, TenantError> {
    let record = check_delete(&*store, actor, tenant, force)?;
    store
        .tenant_admin_mut()
        .ok_or(TenantError::Unsupported)?
        .delete_checked(tenant, record.revision, force)?;
    Ok(record)
}

/// [`delete`] of a tenant a client checked at tenant revision `revision`
/// (a server answering a remote store): refused as [`StoreError::Stale`],
/// with both revisions, when the tenant moved since; nothing is deleted.
pub fn delete_at(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    force: bool,
    revision: u64,
) -> Result<TenantRecord, TenantError> {
    let record = check_delete(&*store, actor, tenant, force)?;
    if record.revision != revision {
        return Err(StoreError::Stale {
            tenant: tenant.to_string(),
            planned: revision,
            actual: record.revision,
        }
        .into());
    }
    store
        .tenant_admin_mut()
        .ok_or(TenantError::Unsupported)?
        .delete_tenant(tenant)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, ResourceStore};
    use crate::domain::secrets::generate_keypair;

    fn store_with_users() -> SqliteStore {
        let mut store = SqliteStore::in_memory().unwrap();
        for t in ["acme-dev", "acme-prod"] {
            store.create_tenant(t, None, &generate_keypair()).unwrap();
        }
        store.add_user("root").unwrap();
        for (user, role) in [("olga", Role::Owner), ("adam", Role::Admin)] {
            store.add_user(user).unwrap();
            store.grant(user, "acme-dev", role).unwrap();
        }
        store
    }

    #[test]
    fn only_a_store_owner_creates_a_tenant_and_only_with_a_key_pair() {
        let mut store = store_with_users();
        let keys = generate_keypair();
        let err = create(&mut store, &Actor::named("olga"), "acme-qa", None, &keys).unwrap_err();
        assert!(matches!(err, NewTenantError::Access(_)), "{err}");
        let root = Actor::named("root");
        let crossed = KeyPair {
            identity: keys.identity.clone(),
            recipient: generate_keypair().recipient,
        };
        let err = create(&mut store, &root, "acme-qa", None, &crossed).unwrap_err();
        assert!(
            matches!(
                err,
                NewTenantError::BadKeys {
                    field: "recipient",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("field `recipient`"), "{err}");
        let err = create(&mut store, &root, "Acme QA", None, &keys).unwrap_err();
        assert!(matches!(err, NewTenantError::BadName { .. }), "{err}");
        assert!(store.tenant("acme-qa").is_err());
        let made = create(&mut store, &root, "acme-qa", Some("qa"), &keys).unwrap();
        assert_eq!(made.recipient, keys.recipient);
    }

    #[test]
    fn only_an_owner_of_the_tenant_deletes_it() {
        let mut store = store_with_users();
        for who in ["adam", "olga"] {
            let err = delete(&mut store, &Actor::named(who), "acme-prod", false).unwrap_err();
            assert!(matches!(err, TenantError::Access(_)), "{who}: {err}");
        }
        let err = delete(&mut store, &Actor::named("adam"), "acme-dev", false).unwrap_err();
        assert!(err.to_string().contains("owner"), "{err}");
        assert_eq!(store.tenants().unwrap().len(), 2, "nothing was deleted");
        delete(&mut store, &Actor::named("olga"), "acme-dev", false).unwrap();
        delete(&mut store, &Actor::named("root"), "acme-prod", false).unwrap();
        assert!(store.tenants().unwrap().is_empty());
    }

    #[test]
    fn an_unknown_tenant_is_refused_before_the_role() {
        let mut store = store_with_users();
        let err = delete(&mut store, &Actor::named("adam"), "ghost", false).unwrap_err();
        assert!(
            matches!(err, TenantError::Store(StoreError::NoTenant { .. })),
            "{err}"
        );
    }
}
