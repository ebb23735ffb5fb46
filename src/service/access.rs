//! Who acts, and whether they may: the actor of a use case, the role check
//! every write makes, and the users, grants and API tokens use cases.
//!
//! A front end resolves the [`Actor`] once (the CLI from `--as`,
//! `FERRY_USER`, `ferry.toml` and git; the server from the bearer token) and
//! hands it to the use case, which checks it with [`authorize`] and records
//! the same name. A store with no users is in single-user mode: everything
//! is allowed, and the actor is still recorded. The rules themselves are
//! [`crate::domain::access`]'s. Tokens are kept as blake3 hashes only.

use crate::backend::store::{Store, StoreError};
use crate::domain::access::{AccessError, AccessState, Grant, Role, UserRecord};

/// The one identity a command or request acts as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    name: Option<String>,
}

impl Actor {
    /// An actor with a name.
    pub fn named(name: impl Into<String>) -> Actor {
        Actor {
            name: Some(name.into()),
        }
    }

    /// An actor from an optional name (empty counts as none).
    pub fn from_name(name: Option<String>) -> Actor {
        Actor {
            name: name.filter(|n| !n.trim().is_empty()),
        }
    }

    /// The name, if one was resolved.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name recorded for what this actor does (`unknown` when none was resolved).
    pub fn recorded(&self) -> &str {
        self.name.as_deref().unwrap_or("unknown")
    }
}

/// Why a users, grants or tokens use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessUseError {
    /// The actor may not do this.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The name is not a valid user name.
    #[error("user name `{name}` must be lower-case letters, digits, `-`, `_` or `.`")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The system's random source failed.
    #[error("cannot draw random bytes for a token: {reason}")]
    Random {
        /// Why.
        reason: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Allow `actor` to do `action` on `tenant` if they hold at least `role`
/// there; a store with no users allows everything.
///
/// Generic over the caller's error type, so each use case keeps its own.
pub fn authorize<E: From<AccessError> + From<StoreError>>(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    role: Role,
    action: &str,
) -> Result<(), E> {
    let state = store.access()?;
    state.require(actor.name(), tenant, role, action)?;
    Ok(())
}

/// Add a user (`ferry user add`): only a store owner, or anyone while the store has none.
pub fn add_user(
    store: &mut dyn Store,
    actor: &Actor,
    name: &str,
) -> Result<UserRecord, AccessUseError> {
    if !crate::domain::model::is_valid_name(name) {
        return Err(AccessUseError::BadName {
            name: name.to_string(),
        });
    }
    store
        .access()?
        .require_owner(actor.name(), "adding users")?;
    Ok(store.add_user(name)?)
}

/// Every user and grant of the store (`ferry user list`).
pub fn users(store: &dyn Store) -> Result<AccessState, AccessUseError> {
    Ok(store.access()?)
}

/// Grant `role` on `tenant` to `user` (`ferry grant`): an owner of the tenant.
pub fn grant(
    store: &mut dyn Store,
    actor: &Actor,
    user: &str,
    tenant: &str,
    role: Role,
) -> Result<Grant, AccessUseError> {
    store.tenant(tenant)?;
    store.access()?.require_grant(actor.name(), tenant)?;
    store.grant(user, tenant, role)?;
    Ok(Grant {
        user: user.to_string(),
        tenant: tenant.to_string(),
        role,
    })
}

/// The hash under which the store keeps a token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Make a new token for `user` (bound to `tenant` if given) and record its
/// hash; a token for another user needs a store owner. Returns the token; it
/// is shown once and never stored.
pub fn create_token(
    store: &mut dyn Store,
    actor: &Actor,
    user: &str,
    tenant: Option<&str>,
) -> Result<String, AccessUseError> {
    if actor.name() != Some(user) {
        store
            .access()?
            .require_owner(actor.name(), "making tokens for other users")?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AccessUseError::Random {
        reason: e.to_string(),
    })?;
    let token = format!(
        "fy_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    store.add_token(&token_hash(&token), user, tenant)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, PublishStore, ResourceStore, SyncStore};

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        s.create_tenant("dev", None, &crate::domain::secrets::generate_keypair())
            .unwrap();
        (dir, s)
    }

    #[test]
    fn single_user_mode_allows_everything_and_users_end_it() {
        let (_d, mut s) = store();
        let nobody = Actor::default();
        authorize::<AccessUseError>(&s, &nobody, "dev", Role::Owner, "anything").unwrap();
        assert_eq!(nobody.recorded(), "unknown");
        add_user(&mut s, &nobody, "root").unwrap();
        let e = authorize::<AccessUseError>(
            &s,
            &Actor::named("mallory"),
            "dev",
            Role::Editor,
            "applying",
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs the editor role"), "{e}");
        authorize::<AccessUseError>(&s, &Actor::named("root"), "dev", Role::Owner, "x").unwrap();
    }

    #[test]
    fn tokens_for_others_need_an_owner_and_are_kept_as_hashes() {
        let (_d, mut s) = store();
        add_user(&mut s, &Actor::default(), "root").unwrap();
        add_user(&mut s, &Actor::named("root"), "vic").unwrap();
        let t = create_token(&mut s, &Actor::named("vic"), "vic", None).unwrap();
        assert!(s.token(&token_hash(&t)).unwrap().is_some());
        assert!(s.token(&t).unwrap().is_none());
        assert!(create_token(&mut s, &Actor::named("vic"), "root", None).is_err());
        assert_eq!(token_hash("fy_1"), token_hash("fy_1"));
        assert_ne!(token_hash("fy_1"), "fy_1");
    }
}
