//! Web UI sessions: signing in with an API token, knowing the user again
//! from a session secret, signing out, and each session's CSRF token.
//!
//! A session secret is 32 random bytes, shown once (as the browser's
//! cookie) and kept in the store only as its blake3 hash, like a token
//! (`AccessStore::add_session`). Sessions live in the store, so several
//! `ferry serve` instances on one store share them. A session ends at
//! sign-out, after [`SESSION_SECONDS`], or as soon as the token it was made
//! with is revoked, expires or is gone, or its user is. The CSRF token of a session is derived from
//! its secret (blake3 `derive_key`), so it is never stored and a page from
//! another session cannot forge it.

use crate::backend::store::{now_rfc3339, SessionRecord, Store, StoreError};
use crate::domain::access::{AccessState, TokenStatus};
use crate::service::access::{check_token, token_hash, TokenRefusal};

/// How long a session lasts after sign-in, in seconds (12 hours).
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The token does not let its bearer in (unknown, revoked, expired, its user gone).
    #[error("{0}")]
    Refused(TokenRefusal),
    /// No randomness for the secret.
    #[error("cannot make a session secret: {reason}")]
    Random {
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session just made: the secret goes to the browser once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The secret (the cookie's value).
    pub secret: String,
    /// The signed-in user.
    pub user: String,
    /// When it ends, Unix seconds.
    pub expires_at: i64,
}

/// The user of a live session, with the store's roles as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user.
    pub user: String,
    /// Every user and grant of the store.
    pub access: AccessState,
    /// The session's CSRF token, for its forms.
    pub csrf: String,
}

/// The hash under which the store keeps a session.
pub fn session_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The CSRF token of the session with this secret.
pub fn csrf_token(secret: &str) -> String {
    blake3::derive_key("ferry web ui 2026 csrf token", secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `given` is the CSRF token of the session with this secret (compared in constant time).
pub fn csrf_matches(secret: &str, given: &str) -> bool {
    let expected = blake3::hash(csrf_token(secret).as_bytes());
    expected == blake3::hash(given.as_bytes())
}

/// Sign in with an API token: a new session for the token's user, valid
/// from `now` (Unix seconds) for [`SESSION_SECONDS`].
pub fn sign_in(store: &mut dyn Store, token: &str, now: i64) -> Result<NewSession, SessionError> {
    let token = token.trim();
    let (record, _) = check_token(&*store, token)?.map_err(SessionError::Refused)?;
    let hash = token_hash(token);
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random {
        reason: e.to_string(),
    })?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expires_at = now + SESSION_SECONDS;
    store.add_session(&SessionRecord {
        hash: session_hash(&secret),
        user: record.user.clone(),
        token_hash: hash,
        expires_at,
    })?;
    Ok(NewSession {
        secret,
        user: record.user,
        expires_at,
    })
}

/// The user of the session with this secret at `now`; `None` when there is
/// no such session, it expired, or its token or user is gone.
pub fn session_user(
    store: &dyn Store,
    secret: &str,
    now: i64,
) -> Result<Option<SessionUser>, StoreError> {
    let Some(s) = store.session(&session_hash(secret))? else {
        return Ok(None);
    };
    if s.expires_at <= now {
        return Ok(None);
    }
    let Some(t) = store.token(&s.token_hash)? else {
        return Ok(None);
    };
    let status = TokenStatus::at(
        t.revoked_at.as_deref(),
        t.expires_at.as_deref(),
        &now_rfc3339(),
    );
    if status != TokenStatus::Active {
        return Ok(None);
    }
    let access = store.access()?;
    if access.user(&s.user).is_none() {
        return Ok(None);
    }
    Ok(Some(SessionUser {
        user: s.user,
        access,
        csrf: csrf_token(secret),
    }))
}

/// End the session with this secret (and drop every expired one); whether it existed.
pub fn sign_out(store: &mut dyn Store, secret: &str, now: i64) -> Result<bool, StoreError> {
    store.remove_session(&session_hash(secret), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    #[allow(unused_imports)]
    use crate::backend::store::{AccessStore, ResourceStore};
    use crate::service::access::{create_token, revoke_token, Actor};

    #[test]
    fn a_session_lives_until_sign_out_expiry_or_its_token_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&tmp.path().join("s.db")).unwrap();
        store.add_user("ada").unwrap();
        let made = create_token(&mut store, &Actor::named("ada"), "ada", None, None).unwrap();
        let token = made.token;
        assert!(matches!(
            sign_in(&mut store, "fy_nope", 100),
            Err(SessionError::Refused(TokenRefusal::Unknown))
        ));
        let s = sign_in(&mut store, &token, 100).unwrap();
        assert_eq!(s.user, "ada");
        assert_ne!(s.secret, token);
        // Only the hash is stored.
        assert!(store.session(&s.secret).unwrap().is_none());
        let u = session_user(&store, &s.secret, 101).unwrap().unwrap();
        assert_eq!(u.user, "ada");
        assert!(csrf_matches(&s.secret, &u.csrf));
        assert!(!csrf_matches(&s.secret, "forged"));
        assert!(session_user(&store, "other", 101).unwrap().is_none());
        assert!(session_user(&store, &s.secret, s.expires_at)
            .unwrap()
            .is_none());
        assert!(sign_out(&mut store, &s.secret, 101).unwrap());
        assert!(session_user(&store, &s.secret, 101).unwrap().is_none());
        assert!(!sign_out(&mut store, &s.secret, 101).unwrap());

        // Revoking the token ends its sessions, and it signs in no more.
        let s = sign_in(&mut store, &token, 100).unwrap();
        assert!(session_user(&store, &s.secret, 101).unwrap().is_some());
        revoke_token(&mut store, &Actor::named("ada"), &made.record.id).unwrap();
        assert!(session_user(&store, &s.secret, 101).unwrap().is_none());
        assert!(matches!(
            sign_in(&mut store, &token, 100),
            Err(SessionError::Refused(TokenRefusal::Revoked { .. }))
        ));
    }
}
