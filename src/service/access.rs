//! Who acts, and whether they may: the actor of a use case, the role check
//! every write makes, and the users, grants and API tokens use cases.
//!
//! A front end resolves the [`Actor`] once (the CLI from `--as`,
//! `FERRY_USER`, `ferry.toml` and git; the server from the bearer token) and
//! hands it to the use case, which checks it with [`authorize`] and records
//! the same name. A store with no users is in single-user mode: everything
//! is allowed, and the actor is still recorded. The rules themselves are
//! [`crate::domain::access`]'s. Tokens are kept as blake3 hashes only; they
//! may expire ([`create_token`]'s lifetime), are listed without any secret
//! ([`tokens`]), revoked by ID ([`revoke_token`]), checked on each request
//! ([`check_token`]: a revoked or expired token is refused) and their use is
//! recorded at most once per [`TOKEN_USE_INTERVAL`] ([`record_token_use`]).

use serde::Serialize;

use crate::backend::store::{now_rfc3339, now_secs, rfc3339, Store, StoreError, TokenRecord};
use crate::domain::access::{
    AccessError, AccessState, Grant, LifetimeError, Role, TokenStatus, UserRecord,
};

/// The one identity a command or request acts as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    name: Option<String>,
    /// The store's users and grants as the front end read them to know the
    /// actor, in the same transaction or read snapshot as the use case runs
    /// in ([`Actor::with_access`]); [`authorize`] then reads them no second time.
    access: Option<std::sync::Arc<AccessState>>,
}

impl Actor {
    /// An actor with a name.
    pub fn named(name: impl Into<String>) -> Actor {
        Actor::from_name(Some(name.into()))
    }

    /// An actor from an optional name (empty counts as none).
    pub fn from_name(name: Option<String>) -> Actor {
        Actor {
            name: name.filter(|n| !n.trim().is_empty()),
            access: None,
        }
    }

    /// The same actor, with the users and grants the front end read in the
    /// transaction or read snapshot the use case runs in (the server reads
    /// them to authenticate each request).
    pub fn with_access(self, access: std::sync::Arc<AccessState>) -> Actor {
        Actor {
            access: Some(access),
            ..self
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
    /// The token lifetime could not be read.
    #[error(transparent)]
    Lifetime(#[from] LifetimeError),
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
    access_of(store, actor)?.require(actor.name(), tenant, role, action)?;
    Ok(())
}

/// The users and grants `actor` is judged by: those it carries
/// ([`Actor::with_access`]), else the store's, read now.
pub fn access_of<'a>(
    store: &dyn Store,
    actor: &'a Actor,
) -> Result<std::borrow::Cow<'a, AccessState>, StoreError> {
    Ok(match &actor.access {
        Some(state) => std::borrow::Cow::Borrowed(&**state),
        None => std::borrow::Cow::Owned(store.access()?),
    })
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

/// A token just made: the token itself (shown once, never stored) and its record.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token, `fy_` and 64 hex digits.
    pub token: String,
    /// What the store keeps about it.
    pub record: TokenRecord,
}

/// Make a new token for `user` (bound to `tenant` if given), expiring
/// `lifetime` (as [`crate::domain::access::parse_lifetime`] reads it, e.g.
/// `30d`) from now if given, and record its hash; a token for another user
/// needs a store owner.
pub fn create_token(
    store: &mut dyn Store,
    actor: &Actor,
    user: &str,
    tenant: Option<&str>,
    lifetime: Option<&str>,
) -> Result<NewToken, AccessUseError> {
    let expires_at = lifetime
        .map(crate::domain::access::parse_lifetime)
        .transpose()?
        .map(|secs| rfc3339(now_secs().saturating_add_unsigned(secs)));
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
    let record = store.add_token(&token_hash(&token), user, tenant, expires_at.as_deref())?;
    Ok(NewToken { token, record })
}

/// A token as `ferry token list` shows it: its record and where it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// What the store keeps (never the token).
    #[serde(flatten)]
    pub record: TokenRecord,
    /// Active, expired or revoked, now.
    pub status: TokenStatus,
}

/// The tokens `actor` may see (`ferry token list`): their own, every token
/// for a store owner, and those bound to a tenant they own; by creation time.
pub fn tokens(store: &dyn Store, actor: &Actor) -> Result<Vec<TokenView>, AccessUseError> {
    let state = store.access()?;
    let now = now_rfc3339();
    Ok(store
        .tokens()?
        .into_iter()
        .filter(|t| state.may_manage_token(actor.name(), &t.user, t.tenant.as_deref()))
        .map(|record| TokenView {
            status: TokenStatus::at(
                record.revoked_at.as_deref(),
                record.expires_at.as_deref(),
                &now,
            ),
            record,
        })
        .collect())
}

/// Revoke the token with ID `id` (`ferry token revoke`): its user, a store
/// owner, or an owner of the tenant it is bound to. Its next request is refused.
/// Revoking a revoked token changes nothing.
pub fn revoke_token(
    store: &mut dyn Store,
    actor: &Actor,
    id: &str,
) -> Result<TokenRecord, AccessUseError> {
    let state = store.access()?;
    let found = store.tokens()?.into_iter().find(|t| t.id == id);
    let Some(found) = found else {
        return Err(crate::backend::store::unknown_token(id).into());
    };
    state.require_token_of(
        actor.name(),
        &found.user,
        found.tenant.as_deref(),
        "revoking another user's token",
    )?;
    Ok(store.revoke_token(id, &now_rfc3339())?)
}

/// Why a presented token does not let its bearer in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No token has this hash.
    #[error("the bearer token is not known to this server")]
    Unknown,
    /// The token was revoked.
    #[error("the bearer token `{id}` was revoked at {at}")]
    Revoked {
        /// The token's ID.
        id: String,
        /// When.
        at: String,
    },
    /// The token's lifetime is over.
    #[error("the bearer token `{id}` expired at {at}")]
    Expired {
        /// The token's ID.
        id: String,
        /// When.
        at: String,
    },
    /// The token's user was removed from the store.
    #[error("the token's user `{user}` is no longer a user of this store")]
    UserGone {
        /// The user.
        user: String,
    },
}

/// The record of a presented token, if it lets its bearer in now: known,
/// not revoked, not expired, and its user still a user of the store. The
/// `Ok` side also carries the store's users and grants, read once.
pub fn check_token(
    store: &dyn Store,
    token: &str,
) -> Result<Result<(TokenRecord, AccessState), TokenRefusal>, StoreError> {
    let Some(record) = store.token(&token_hash(token))? else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    let now = now_rfc3339();
    match TokenStatus::at(
        record.revoked_at.as_deref(),
        record.expires_at.as_deref(),
        &now,
    ) {
        TokenStatus::Revoked => {
            return Ok(Err(TokenRefusal::Revoked {
                at: record.revoked_at.clone().unwrap_or_default(),
                id: record.id,
            }))
        }
        TokenStatus::Expired => {
            return Ok(Err(TokenRefusal::Expired {
                at: record.expires_at.clone().unwrap_or_default(),
                id: record.id,
            }))
        }
        TokenStatus::Active => {}
    }
    let access = store.access()?;
    if access.user(&record.user).is_none() {
        return Ok(Err(TokenRefusal::UserGone { user: record.user }));
    }
    Ok(Ok((record, access)))
}

/// How often a token's last use is written at most, in seconds.
pub const TOKEN_USE_INTERVAL: i64 = 60;

/// Record that `token` was just used, unless its last recorded use is less
/// than [`TOKEN_USE_INTERVAL`] old (one small write per token per minute at
/// most, never a write per request). Whether a row was written.
pub fn record_token_use(store: &mut dyn Store, token: &str) -> Result<bool, StoreError> {
    let now = now_secs();
    store.touch_token(
        &token_hash(token),
        &rfc3339(now),
        &rfc3339(now - TOKEN_USE_INTERVAL),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, PublishStore, ResourceStore, SyncStore};

    /// An actor carrying the roles its front end read checks against those,
    /// not against a second read of the store; one without reads the store.
    #[test]
    fn an_actor_with_the_roles_read_is_checked_against_them() {
        let (_dir, mut s) = store();
        s.add_user("root").unwrap();
        s.add_user("vic").unwrap();
        let read_before = std::sync::Arc::new(s.access().unwrap());
        s.grant("vic", "dev", Role::Viewer).unwrap();
        let check =
            |actor: &Actor| authorize::<AccessUseError>(&s, actor, "dev", Role::Viewer, "reading");
        check(&Actor::named("vic")).unwrap();
        let snapshot = Actor::named("vic").with_access(read_before);
        assert!(matches!(check(&snapshot), Err(AccessUseError::Access(_))));
    }

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
        let t = create_token(&mut s, &Actor::named("vic"), "vic", None, None)
            .unwrap()
            .token;
        assert!(s.token(&token_hash(&t)).unwrap().is_some());
        assert!(s.token(&t).unwrap().is_none());
        assert!(create_token(&mut s, &Actor::named("vic"), "root", None, None).is_err());
        assert_eq!(token_hash("fy_1"), token_hash("fy_1"));
        assert_ne!(token_hash("fy_1"), "fy_1");
    }

    #[test]
    fn tokens_are_listed_revoked_and_refused_by_their_owners_rules() {
        let (_d, mut s) = store();
        let root = Actor::named("root");
        add_user(&mut s, &Actor::default(), "root").unwrap();
        add_user(&mut s, &root, "vic").unwrap();
        add_user(&mut s, &root, "ann").unwrap();
        grant(&mut s, &root, "ann", "dev", Role::Owner).unwrap();
        let vic = Actor::named("vic");
        let mine = create_token(&mut s, &vic, "vic", None, Some("12h")).unwrap();
        let bound = create_token(&mut s, &root, "vic", Some("dev"), None).unwrap();
        assert!(mine.record.expires_at.is_some() && bound.record.expires_at.is_none());
        assert!(mine.record.id.starts_with("tok_") && !mine.token.contains(&mine.record.id[4..]));
        let ids = |a: &Actor, s: &SqliteStore| -> Vec<String> {
            tokens(s, a)
                .unwrap()
                .into_iter()
                .map(|t| t.record.id)
                .collect()
        };
        assert_eq!(ids(&vic, &s).len(), 2);
        assert_eq!(ids(&Actor::named("ann"), &s), vec![bound.record.id.clone()]);
        let e = revoke_token(&mut s, &Actor::named("ann"), &mine.record.id).unwrap_err();
        assert!(e.to_string().contains("needs a store owner"), "{e}");
        let r = revoke_token(&mut s, &Actor::named("ann"), &bound.record.id).unwrap();
        assert!(r.revoked_at.is_some());
        assert!(matches!(
            check_token(&s, &bound.token).unwrap(),
            Err(TokenRefusal::Revoked { .. })
        ));
        assert!(check_token(&s, &mine.token).unwrap().is_ok());
        assert_eq!(
            check_token(&s, "fy_nope").unwrap(),
            Err(TokenRefusal::Unknown)
        );
        assert!(revoke_token(&mut s, &root, "tok_000000000000").is_err());
        let e = create_token(&mut s, &vic, "vic", None, Some("forever")).unwrap_err();
        assert!(e.to_string().contains("not a token lifetime"), "{e}");
    }

    #[test]
    fn a_token_use_is_written_at_most_once_a_minute() {
        let (_d, mut s) = store();
        let t = create_token(&mut s, &Actor::default(), "root", None, None);
        assert!(t.is_err(), "no such user yet");
        add_user(&mut s, &Actor::default(), "root").unwrap();
        let t = create_token(&mut s, &Actor::named("root"), "root", None, None).unwrap();
        assert!(record_token_use(&mut s, &t.token).unwrap());
        assert!(!record_token_use(&mut s, &t.token).unwrap());
        let used = s.token(&token_hash(&t.token)).unwrap().unwrap();
        assert!(used.last_used_at.is_some());
        assert!(!record_token_use(&mut s, "fy_unknown").unwrap());
    }
}
