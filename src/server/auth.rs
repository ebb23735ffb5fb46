//! Bearer tokens: making them, and knowing the caller from one.
//!
//! A token is 32 random bytes, printed once as `fy_<hex>`; the store keeps
//! only its blake3 hash. A request's `Authorization: Bearer <token>` names
//! the user and, if the token was made with `--tenant`, the current tenant
//! (the source tenant of a sync). Roles are checked per tenant through
//! [`crate::domain::access`], the same rules the CLI uses.

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::backend::store::{Store, StoreError, TokenRecord};
use crate::domain::access::{AccessState, Role};

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The system's random source failed.
    #[error("cannot draw random bytes for a token: {reason}")]
    Random {
        /// Why.
        reason: String,
    },
    /// The store refused the token.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash under which the store keeps a token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Make a new token for `user` (bound to `tenant` if given) and record its hash.
///
/// Returns the token; it is shown once and never stored.
pub fn create_token(
    store: &mut dyn Store,
    user: &str,
    tenant: Option<&str>,
) -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random {
        reason: e.to_string(),
    })?;
    let token = format!(
        "fy_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    store.add_token(&token_hash(&token), user, tenant)?;
    Ok(token)
}

/// Who is calling, from their token, with the store's roles as read for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: String,
    /// The token's current tenant, if bound to one.
    pub tenant: Option<String>,
    /// Every user and grant of the store.
    pub access: AccessState,
}

impl Caller {
    /// The current tenant, or a 400 saying the token has none.
    pub fn current_tenant(&self) -> Result<&str, ApiError> {
        self.tenant.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "no_current_tenant",
                format!("the token of `{}` is not bound to a tenant", self.user),
            )
            .hint("make one with `ferry token create --user USER --tenant TENANT`")
        })
    }

    /// Require at least `role` on `tenant`; a tenant the caller may not see is a 403.
    pub fn require(&self, tenant: &str, role: Role, action: &str) -> Result<(), ApiError> {
        self.access
            .require(Some(&self.user), tenant, role, action)?;
        Ok(())
    }
}

/// The bearer token of a request, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Know the caller from the request's token: 401 when there is none or the store does not know it.
pub fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized("this endpoint needs a bearer token"));
    };
    let Some(TokenRecord { user, tenant, .. }) = store.token(&token_hash(token))? else {
        return Err(ApiError::unauthorized(
            "the bearer token is not known to this server",
        ));
    };
    let access = store.access()?;
    if access.user(&user).is_none() {
        return Err(ApiError::unauthorized(format!(
            "the token's user `{user}` is no longer a user of this store"
        )));
    }
    Ok(Caller {
        user,
        tenant,
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn hash_is_stable_and_not_the_token() {
        assert_eq!(token_hash("fy_1"), token_hash("fy_1"));
        assert_ne!(token_hash("fy_1"), "fy_1");
    }
}
